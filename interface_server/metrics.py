"""Prometheus metrics of the interface server: cheap counts on the hot path, the rest read at scrape time.

With `--metrics-port` the server gets a `Stats` (`server.stats`; `None`
without it, and every hook is then one `is None` test). The hot path only
adds integers and drops a latency in a histogram bucket (`LatencyHistogram`:
a bisect and two additions, no lock: it runs in the reactor thread only).
Everything the server keeps anyway (its open connections, `server.counters`,
the sender's backlog, the layer's drop counts) is read when `/metrics` is
scraped, by `InterfaceCollector`, in the reactor thread, so nothing is read
while it changes.

Reply latency (`channels_interface_reply_latency_seconds`, label `kind`):

- `http`: from the request head's arrival to the application's response start
  being written (a large body's upload time is included);
- `websocket_connect`: from the handshake request to the application's
  accept or reject;
- `websocket_receive`: from the oldest `websocket.receive` of a socket not
  answered yet to the next reply that writes a frame on that socket (what a
  request/response WebSocket client waits; frames the application pushes
  unasked are not timed).

The metric names, types and labels are listed in `METRICS` (and in the README).
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

if TYPE_CHECKING:
    from .server import Server

PREFIX = "channels_interface_"

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0)
"""Upper bounds (seconds) of the reply latency buckets: 0.5 ms (an echo on one machine) up to --http-timeout."""

clock = time.monotonic

# The counters of `server.counters` that have their own metric (the others are `events_total{event}`).
_OWN_METRIC = {"paused", "replies_dropped"}


class LatencyHistogram:
    """A histogram for one thread (no lock): `observe(seconds)` is a bisect and two additions."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one: above every bound (+Inf)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        # bisect_left: a value equal to a bound belongs to that bucket (Prometheus buckets are "le").
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.total += seconds

    def cumulative(self) -> list[tuple[str, int]]:
        """`(le, count)` pairs as Prometheus wants them: cumulative, ending with `+Inf`."""
        out, running = [], 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += n
            out.append(("+Inf" if bound == float("inf") else repr(bound), running))
        return out


class Stats:
    """What the hot path counts (reactor thread only), for `InterfaceCollector` to export."""

    __slots__ = (
        "accepted",
        "websockets_opened",
        "bytes_in_http",
        "bytes_in_websocket",
        "bytes_out_http",
        "bytes_out_websocket",
        "messages_out",
        "replies_in",
        "http_responses",
        "latency_http",
        "latency_ws_connect",
        "latency_ws_receive",
    )

    def __init__(self) -> None:
        self.accepted = 0  # TCP connections (every WebSocket starts as one)
        self.websockets_opened = 0  # WebSocket handshakes received (upgrades)
        self.bytes_in_http = 0
        self.bytes_in_websocket = 0
        self.bytes_out_http = 0
        self.bytes_out_websocket = 0
        self.messages_out: dict[str, int] = {}  # channel ("http.request.body?" for every body channel) -> count
        self.replies_in = 0
        self.http_responses: dict[int, int] = {}  # status -> count
        self.latency_http = LatencyHistogram()
        self.latency_ws_connect = LatencyHistogram()
        self.latency_ws_receive = LatencyHistogram()

    def message_out(self, channel: str) -> None:
        """One message queued for `channel`; a body channel (`http.request.body?x`) counts as its type."""
        if "?" in channel:
            channel = channel[: channel.index("?") + 1]
        out = self.messages_out
        out[channel] = out.get(channel, 0) + 1


def connection_type(connection: Any) -> str:
    """`websocket` for a WebSocket protocol (handshaking or open), `http` for an HTTP connection."""
    return "websocket" if hasattr(connection, "onMessage") else "http"


def layer_drops(layer: Any) -> int:
    """Messages this process's layer dropped as unreadable (the Redis layer's `decoder.drops`), else 0."""
    drops = getattr(getattr(layer, "decoder", None), "drops", None) or getattr(layer, "drops", None)
    total = getattr(drops, "total", 0)
    return int(total) if isinstance(total, (int, float)) else 0


class InterfaceCollector(Collector):
    """Reads `server` (its `stats`, `counters`, connections, sender and layer) at each scrape."""

    def __init__(self, server: Server) -> None:
        self.server = server

    def describe(self) -> list:
        return []  # collected only when scraped: nothing is read at registration

    def collect(self) -> Iterator[Any]:
        server = self.server
        stats: Stats = server.stats or Stats()
        counters = dict(server.counters)

        open_now = {"http": 0, "websocket": 0}
        for connection in list(server.connections):
            open_now[connection_type(connection)] += 1
        gauge = GaugeMetricFamily(PREFIX + "connections", "Open client connections, by type.", labels=["type"])
        for kind, n in open_now.items():
            gauge.add_metric([kind], n)
        yield gauge

        yield CounterMetricFamily(
            PREFIX + "connections_accepted",
            "Client connections accepted (TCP; a WebSocket starts as one of them).",
            value=stats.accepted,
        )
        yield CounterMetricFamily(
            PREFIX + "websockets_opened",
            "WebSocket handshakes received (accepted, rejected or abandoned later).",
            value=stats.websockets_opened,
        )

        counter = CounterMetricFamily(
            PREFIX + "messages_out",
            "Messages queued for the channel layer, by channel (every body channel counts as http.request.body?).",
            labels=["channel"],
        )
        for channel, n in sorted(stats.messages_out.items()):
            counter.add_metric([channel], n)
        yield counter

        yield CounterMetricFamily(
            PREFIX + "replies_in", "Replies read from this server's reply channel.", value=stats.replies_in
        )
        yield CounterMetricFamily(
            PREFIX + "replies_dropped",
            "Replies for a client that was gone or closing.",
            value=counters.get("replies_dropped", 0),
        )

        counter = CounterMetricFamily(PREFIX + "http_responses", "HTTP responses written, by status.", labels=["code"])
        for status, n in sorted(stats.http_responses.items()):
            counter.add_metric([str(status)], n)
        yield counter

        histogram = HistogramMetricFamily(
            PREFIX + "reply_latency_seconds",
            "From the client's event to the application's reply being written (see the README for each kind).",
            labels=["kind"],
        )
        for kind, hist in (
            ("http", stats.latency_http),
            ("websocket_connect", stats.latency_ws_connect),
            ("websocket_receive", stats.latency_ws_receive),
        ):
            histogram.add_metric([kind], hist.cumulative(), hist.total)
        yield histogram

        for direction, http, websocket in (
            ("received", stats.bytes_in_http, stats.bytes_in_websocket),
            ("sent", stats.bytes_out_http, stats.bytes_out_websocket),
        ):
            counter = CounterMetricFamily(
                PREFIX + f"bytes_{direction}",
                f"Bytes {direction} on client connections (a WebSocket's upgrade request counts as http).",
                labels=["type"],
            )
            counter.add_metric(["http"], http)
            counter.add_metric(["websocket"], websocket)
            yield counter

        sender = server.sender
        counter = CounterMetricFamily(
            PREFIX + "channel_full",
            "Times the layer answered ChannelFull to this server, by channel (retries of a waiting message included).",
            labels=["channel"],
        )
        for channel, n in sorted(dict(sender.queues.full_counts).items()):
            counter.add_metric([channel], n)
        yield counter

        yield CounterMetricFamily(
            PREFIX + "backpressure_pauses",
            "Times a connection stopped being read because its messages waited for the layer.",
            value=counters.get("paused", 0),
        )
        yield GaugeMetricFamily(
            PREFIX + "send_backlog",
            "Messages (and layer calls) waiting in this server for the channel layer.",
            value=max(0, sender.handed - sender.queues.finished_count),
        )
        yield GaugeMetricFamily(
            PREFIX + "layer_available",
            "0 while the layer has failed or not answered for 2 s (new HTTP requests are then answered 503), else 1.",
            value=0 if sender.unavailable() else 1,
        )
        yield CounterMetricFamily(
            PREFIX + "layer_dropped",
            "Messages the layer dropped in this process as unreadable (garbage on the reply channel).",
            value=layer_drops(server.channel_layer),
        )

        counter = CounterMetricFamily(
            PREFIX + "events",
            "Messages dropped, connections closed and requests refused, by event (server.counters).",
            labels=["event"],
        )
        for name, n in sorted(counters.items()):
            if name not in _OWN_METRIC:
                counter.add_metric([name], n)
        yield counter


def build_registry(server: Server, process_metrics: bool = True) -> CollectorRegistry:
    """A registry of its own (several servers in one process, as in tests, never collide) for `server`.

    With `process_metrics`, the standard `process_*` (CPU, memory, open
    file descriptors) and `python_*` metrics of prometheus_client join it.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(InterfaceCollector(server))
    if process_metrics:
        from prometheus_client import GCCollector, PlatformCollector, ProcessCollector

        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
    return registry
