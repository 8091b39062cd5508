"""`--metrics-port`: /metrics after real traffic, /healthz, /readyz, and `--log-format json`, on the real process.

Every metric docs/operations.md documents is read here after traffic that must move
it, with the exact amount where the traffic fixes it.
"""

from __future__ import annotations

import http.client
import json
import re
import signal
import time

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from channels_core.layers import RedisChannelLayer
from channels_core.test.processes import free_port
from tests.support.redis_server import RedisServer

from .harness import EchoWorker, http_request
from .ws_support import Worker, open_ws, wait_closed, ws_connect

DOCUMENTED = {
    # name as exposed: (type, labels)
    "channels_interface_connections": ("gauge", {"type"}),
    "channels_interface_connections_accepted": ("counter", set()),
    "channels_interface_websockets_opened": ("counter", set()),
    "channels_interface_messages_out": ("counter", {"channel"}),
    "channels_interface_replies_in": ("counter", set()),
    "channels_interface_replies_dropped": ("counter", set()),
    "channels_interface_http_responses": ("counter", {"code"}),
    "channels_interface_reply_latency_seconds": ("histogram", {"kind"}),
    "channels_interface_bytes_received": ("counter", {"type"}),
    "channels_interface_bytes_sent": ("counter", {"type"}),
    "channels_interface_channel_full": ("counter", {"channel"}),
    "channels_interface_backpressure_pauses": ("counter", set()),
    "channels_interface_send_backlog": ("gauge", set()),
    "channels_interface_layer_available": ("gauge", set()),
    "channels_interface_layer_dropped": ("counter", set()),
    "channels_interface_events": ("counter", {"event"}),
}


# -- reading the metrics port ---------------------------------------------------------------------


def get(port: int, path: str, timeout: float = 5.0) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


class Scrape:
    """One /metrics page: `value(name, **labels)` (the `_total`, `_count`, `_bucket` sample names included)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.families = {f.name: f for f in text_string_to_metric_families(text)}
        self.samples = [s for f in self.families.values() for s in f.samples]

    def value(self, name: str, **labels: str) -> float:
        found = [
            s.value for s in self.samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        ]
        assert len(found) == 1, f"{name} {labels}: {found}\n{self.text}"
        return found[0]

    def sum(self, name: str) -> float:
        return sum(s.value for s in self.samples if s.name == name)


def scrape(port: int) -> Scrape:
    status, text = get(port, "/metrics")
    assert status == 200, text
    return Scrape(text)


def wait_for(check, timeout: float = 10.0, interval: float = 0.1):
    """Call `check()` until it returns without AssertionError; returns its result."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(interval)


def metrics_port_of(server) -> int:
    match = re.search(r"Metrics on http://127\.0\.0\.1:(\d+)/metrics", server.output())
    assert match, server.output()
    return int(match.group(1))


@pytest.fixture
def second_layer(redis_url, key_prefix):
    """Another connection to the test's layer, for a second worker thread."""
    layer = RedisChannelLayer(hosts=[redis_url], prefix=key_prefix, blocking_timeout=1, capacity=1000)
    yield layer
    layer.close()


# -- the traffic test ---------------------------------------------------------------------------


def test_metrics_move_with_real_http_and_websocket_traffic(start_server, worker_layer, second_layer, redis_url):
    metrics_port = free_port()
    server = start_server("--metrics-port", str(metrics_port), "--log-format", "json")
    assert metrics_port_of(server) == metrics_port  # bound to 127.0.0.1 by default

    before = scrape(metrics_port)
    assert {name: f.type for name, f in before.families.items() if name.startswith("channels_interface_")} == {
        name: kind for name, (kind, _) in DOCUMENTED.items()
    }
    assert before.value("channels_interface_connections_accepted_total") == 0
    assert before.sum("channels_interface_messages_out_total") == 0

    with EchoWorker(second_layer), Worker(worker_layer):
        # HTTP: five GETs and one POST with a body, each on its own connection.
        for i in range(5):
            assert http_request(server.port, path=f"/get/{i}").status == 200
        assert http_request(server.port, "POST", "/post", body=b"x" * 1000).status == 200
        # /metrics on the public port is the application's page, never the server's figures.
        public = http_request(server.port, path="/metrics")
        assert public.body == b"GET /metrics" and b"channels_interface_" not in public.body

        # WebSocket: two sockets, three echoes each; the first is closed, the second stays open.
        first, second = ws_connect(server.ws_url + "/a"), ws_connect(server.ws_url + "/b")
        for ws in (first, second):
            for n in range(3):
                ws.send(f"hello {n}")
                assert ws.recv(timeout=5) == f"hello {n}"
        first.close()

        def settled() -> Scrape:
            page = scrape(metrics_port)
            assert page.value("channels_interface_connections", type="websocket") == 1
            assert page.value("channels_interface_connections", type="http") == 0
            assert page.value("channels_interface_messages_out_total", channel="websocket.disconnect") == 1
            return page

        page = wait_for(settled)
        second.close()

    for name, (_, labels) in DOCUMENTED.items():
        assert _labels(page.families[name]) <= labels, name
    value = page.value
    assert value("channels_interface_connections_accepted_total") == 7 + 2  # 7 HTTP requests, 2 WebSockets
    assert value("channels_interface_websockets_opened_total") == 2
    assert value("channels_interface_messages_out_total", channel="http.request") == 7
    assert value("channels_interface_messages_out_total", channel="websocket.connect") == 2
    assert value("channels_interface_messages_out_total", channel="websocket.receive") == 6
    assert value("channels_interface_http_responses_total", code="200") == 7
    # 7 responses + 2 accepts + 6 echoes
    assert value("channels_interface_replies_in_total") == 15
    assert value("channels_interface_reply_latency_seconds_count", kind="http") == 7
    assert value("channels_interface_reply_latency_seconds_count", kind="websocket_connect") == 2
    assert value("channels_interface_reply_latency_seconds_count", kind="websocket_receive") == 6
    for kind in ("http", "websocket_connect", "websocket_receive"):
        total = value("channels_interface_reply_latency_seconds_sum", kind=kind)
        assert 0 < total < 10 * value("channels_interface_reply_latency_seconds_count", kind=kind)
        assert value("channels_interface_reply_latency_seconds_bucket", kind=kind, le="+Inf") == value(
            "channels_interface_reply_latency_seconds_count", kind=kind
        )
    # Bytes: the POST body alone is 1,000 bytes in; each echo frame comes back (7 + 2-byte header each).
    assert value("channels_interface_bytes_received_total", type="http") > 1000 + 7 * 30
    assert value("channels_interface_bytes_received_total", type="websocket") >= 6 * (7 + 6)  # masked client frames
    assert value("channels_interface_bytes_sent_total", type="http") > 7 * 50
    # The two handshake responses (about 150 bytes each) and six 9-byte frames.
    assert value("channels_interface_bytes_sent_total", type="websocket") >= 2 * 100 + 6 * 9
    assert value("channels_interface_layer_available") == 1
    assert page.sum("channels_interface_channel_full_total") == 0
    assert value("channels_interface_backpressure_pauses_total") == 0
    assert "process_resident_memory_bytes" in page.families  # the standard process metrics come along

    # A reply for a client that does not exist is dropped and counted; garbage on the reply list too.
    prefix = re.search(r'"Replies arrive on (\S+!)"', server.output()).group(1)
    worker_layer.send(prefix + "nosuchclient", {"text": "late"})
    client = redis.Redis.from_url(redis_url)
    try:
        client.rpush(worker_layer.keys.send_target(prefix + "x").keys[0], b"not a layer element")
    finally:
        client.close()

    def dropped() -> None:
        page = scrape(metrics_port)
        assert page.value("channels_interface_replies_dropped_total") == 1
        assert page.value("channels_interface_layer_dropped_total") == 1
        assert page.value("channels_interface_send_backlog") == 0  # the last disconnect has left too

    wait_for(dropped)

    # --log-format json: every line of the output is one JSON object; the access lines carry the fields.
    lines = [line for line in server.output().splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]
    assert all({"time", "level", "logger", "message"} <= set(e) for e in entries)
    access = [e for e in entries if e["logger"] == "interface_server.access"]
    posts = [e for e in access if e.get("method") == "POST"]
    assert len(posts) == 1
    post = posts[0]
    assert post["channel_type"] == "http.request" and post["path"] == "/post" and post["status"] == 200
    assert post["client"].startswith("127.0.0.1:") and post["size"] == len(b"POST /post")
    assert 0 < post["duration_ms"] < 10_000
    ws_events = [(e["channel_type"], e["message"].split()[0]) for e in access if e["path"] in ("/a", "/b")]
    assert ws_events.count(("websocket.connect", "WSCONNECT")) == 2
    assert ws_events.count(("websocket.disconnect", "WSDISCONNECT")) >= 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", post["time"])


def _labels(family) -> set[str]:
    names: set[str] = set()
    for sample in family.samples:
        names |= set(sample.labels) - {"le"}
    return names


# -- backpressure, ChannelFull, events ----------------------------------------------------------


def test_a_full_channel_is_counted_and_pauses_the_socket(start_server, worker_layer):
    """Capacity 2 and nobody reading websocket.receive: ChannelFull, a pause, then send_timeouts (1013)."""
    server = start_server("--metrics-port", "0", "--send-timeout", "1", layer_options={"capacity": 2})
    metrics_port = metrics_port_of(server)  # port 0: a free one, named in the log
    ws, _ = open_ws(server, worker_layer)
    for n in range(20):
        ws.send(f"flood {n}")
    _, closed = wait_closed(ws, timeout=10)
    assert closed.rcvd is not None and closed.rcvd.code == 1013

    def counted() -> Scrape:
        page = scrape(metrics_port)
        assert page.value("channels_interface_channel_full_total", channel="websocket.receive") >= 1
        assert page.value("channels_interface_backpressure_pauses_total") >= 1
        assert page.value("channels_interface_events_total", event="send_timeouts") >= 1
        assert page.value("channels_interface_events_total", event="websockets_closed_send_timeout") == 1
        return page

    page = wait_for(counted)
    # Read until the socket was paused (8 frames waiting), not all 20.
    assert 8 <= page.value("channels_interface_messages_out_total", channel="websocket.receive") <= 20


# -- health -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_readyz_follows_redis_and_healthz_the_process(start_server, key_prefix):
    with RedisServer() as private:
        metrics_port = free_port()
        server = start_server("--metrics-port", str(metrics_port), env={"TEST_REDIS_URL": private.url})
        assert get(metrics_port, "/healthz") == (200, "ok\n")
        wait_for(lambda: _assert_status(metrics_port, "/readyz", 200))

        private.stop()
        started = time.monotonic()
        status, text = wait_for(lambda: _assert_status(metrics_port, "/readyz", 503), timeout=15)
        took = time.monotonic() - started
        assert text.startswith("not ready: ") and ("channel layer" in text or "reply reader" in text), text
        assert took < 10, took
        assert get(metrics_port, "/healthz") == (200, "ok\n")  # the process is still up
        assert scrape(metrics_port).value("channels_interface_layer_available") == 1  # nothing was sent yet
        # A request the sender cannot get into the layer: after 2 s the layer counts as unavailable (503).
        assert http_request(server.port, timeout=15).status == 503

        def unavailable() -> None:
            page = scrape(metrics_port)  # /metrics keeps answering without Redis
            assert page.value("channels_interface_layer_available") == 0
            assert page.value("channels_interface_events_total", event="unavailable_503") == 1
            assert page.value("channels_interface_http_responses_total", code="503") == 1

        wait_for(unavailable)

        private.start()
        # Nothing is left to retry the layer with (the request was answered 503): the sender probes it.
        wait_for(lambda: _assert_status(metrics_port, "/readyz", 200), timeout=15)
        assert get(metrics_port, "/readyz") == (200, "ready\n")
        layer = RedisChannelLayer(hosts=[private.url], prefix=key_prefix, blocking_timeout=1)
        try:
            with EchoWorker(layer):
                assert http_request(server.port, timeout=15).status == 200  # HTTP is served again too
        finally:
            layer.flush()
            layer.close()
        assert scrape(metrics_port).value("channels_interface_layer_available") == 1

        # A Redis that accepts but never answers (SIGSTOP): the probe's question goes unanswered.
        private.process.send_signal(signal.SIGSTOP)
        try:
            status, text = wait_for(lambda: _assert_status(metrics_port, "/readyz", 503), timeout=15)
            assert "not answered" in text or "reply reader" in text, text
        finally:
            private.process.send_signal(signal.SIGCONT)
        wait_for(lambda: _assert_status(metrics_port, "/readyz", 200), timeout=15)


def _assert_status(port: int, path: str, expected: int) -> tuple[int, str]:
    status, text = get(port, path)
    assert status == expected, (status, text)
    return status, text


# -- options ----------------------------------------------------------------------------------


def test_metrics_options():
    from interface_server.cli import UsageError, build_parser, config_from_args

    parser = build_parser()
    config = config_from_args(parser.parse_args(["app:layer"]), {})
    assert config.metrics_port is None and config.metrics_host == "127.0.0.1"
    config = config_from_args(parser.parse_args(["app:layer", "--metrics-port", "9100", "--metrics-host", "::"]), {})
    assert (config.metrics_port, config.metrics_host) == (9100, "::")
    with pytest.raises(UsageError, match="must differ from the public port"):
        config_from_args(parser.parse_args(["app:layer", "-p", "9100", "--metrics-port", "9100"]), {})
    with pytest.raises(UsageError, match="must differ from the public port"):
        config_from_args(parser.parse_args(["app:layer", "--metrics-port", "9100"]), {"PORT": "9100"})
    with pytest.raises(UsageError, match="invalid choice"):
        parser.parse_args(["app:layer", "--log-format", "xml"])


# -- the pieces, without a process ------------------------------------------------------------


def test_latency_histogram_buckets_are_le_and_cumulative():
    from interface_server.metrics import LatencyHistogram

    hist = LatencyHistogram((0.001, 0.01))
    for seconds in (0.0005, 0.001, 0.002, 0.5):
        hist.observe(seconds)
    assert hist.cumulative() == [("0.001", 2), ("0.01", 3), ("+Inf", 4)]
    assert hist.total == pytest.approx(0.5035)


def test_json_formatter_writes_one_parseable_line_with_extra_fields():
    import io
    import logging

    from channels_core.layers.log_format import JsonFormatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("tests.metrics.json")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("two\nlines %s", "here", extra={"channel_type": "websocket.receive", "client": ("::1", 5)})
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["message"] == "two\nlines here" and first["level"] == "WARNING"
    assert first["logger"] == "tests.metrics.json" and first["channel_type"] == "websocket.receive"
    assert first["client"] == ["::1", 5]
    assert "ValueError: boom" in second["exception"]


def test_readiness_reasons():
    """Each check of /readyz, on a stand-in server: the first problem found is the answer."""
    import threading
    from types import SimpleNamespace

    from interface_server.health import PROBE_STALE, PROBE_TIMEOUT, LayerProbe, readiness

    class Layer:
        extensions = ["statistics"]
        fail = False

        def global_statistics(self):
            if self.fail:
                raise ConnectionError("refused")
            return {}

        def channel_statistics(self, channel):
            return {}

    now = [100.0]
    layer = Layer()
    probe = LayerProbe(layer, clock=lambda: now[0])
    reader = SimpleNamespace(stopping=False, outage_since=None, reading=True)
    sender = SimpleNamespace(unavailable=lambda: False)
    server = SimpleNamespace(shutting_down=False, reader=reader, layer_probe=probe, sender=sender)

    assert readiness(server) == "the channel layer has not been reached yet"
    probe.probe_once()
    assert readiness(server) is None
    now[0] += PROBE_STALE + 1
    assert "last answered" in readiness(server)
    layer.fail = True
    probe.probe_once()
    assert readiness(server) == "the channel layer is unreachable (ConnectionError: refused)"
    layer.fail = False
    probe.probe_once()
    assert readiness(server) is None
    probe.asking_since = now[0] - PROBE_TIMEOUT  # a question nobody answers
    assert "has not answered for 2.0 s" in readiness(server)
    probe.asking_since = None

    server.sender = SimpleNamespace(unavailable=lambda: True)
    assert readiness(server) == "the channel layer has not taken a message for 2 s"
    server.sender = sender
    reader.reading = False
    assert readiness(server) == "the reply reader is connecting"
    reader.outage_since = time.monotonic() - 3
    assert "the reply reader lost the channel layer 3." in readiness(server)
    thread_reader = threading.Thread(target=lambda: None)
    thread_reader.stopping = threading.Event()
    thread_reader.start()
    thread_reader.join()
    server.reader = thread_reader
    assert readiness(server) == "the reply reader thread is not running"
    server.shutting_down = True
    assert readiness(server) == "shutting down"
