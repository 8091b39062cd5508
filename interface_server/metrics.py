"""Prometheus metrics of the interface server: cheap counts on the hot path, the rest read at scrape time.

With `--metrics-port` the server gets a `Stats` (`server.stats`; `None`
without it, and every hook is then one `is None` test). The hot path only
adds integers and drops a latency in a histogram bucket (`LatencyHistogram`:
a bisect and two additions, no lock: it runs in the reactor thread only).
Everything the server keeps anyway (its open connections, `server.counters`,
the sender's backlog, the layer's drop counts) is read when `/metrics` is
scraped, by `metrics_collector.InterfaceCollector`, in the reactor thread,
so nothing is read while it changes.

Reply latency (`channels_interface_reply_latency_seconds`, label `kind`):

- `http`: from the request head's arrival to the application's response start
  being written (a large body's upload time is included);
- `websocket_connect`: from the handshake request to the application's
  accept or reject;
- `websocket_receive`: from the oldest `websocket.receive` of a socket not
  answered yet to the next reply that writes a frame on that socket (what a
  request/response WebSocket client waits; frames the application pushes
  unasked are not timed).

This module is what the hot path imports (no prometheus_client: a server
without `--metrics-port` never loads it); `metrics_collector` turns it into
metrics, `metrics_server` serves them. The metric names, types, labels and
meanings are in the README ("Metrics, health and JSON logs").
"""

from __future__ import annotations

from bisect import bisect_left

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0)
"""Upper bounds (seconds) of the reply latency buckets: 0.5 ms (an echo on one machine) up to --http-timeout."""


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
