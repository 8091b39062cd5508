"""`InterfaceCollector`: the interface server's metrics, read from the server at each scrape.

Runs in the reactor thread (`metrics_server` renders /metrics there), so the
server's sets and dicts are read while nothing changes them. The hot path's
counts come from `metrics.Stats`; the rest (open connections,
`server.counters`, the sender's state, the layer's drop count) is what the
server keeps anyway.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from .metrics import Stats

if TYPE_CHECKING:
    from .server import Server

PREFIX = "channels_interface_"

# The counters of `server.counters` that have their own metric (the others are `events_total{event}`).
_OWN_METRIC = {"paused", "replies_dropped"}


def connection_type(connection: Any) -> str:
    """`websocket` for a WebSocket protocol (handshaking or open), `http` for an HTTP connection."""
    if hasattr(connection, "onMessage") or getattr(connection, "is_fallback_socket", False):  # SSE, long-polling too
        return "websocket"
    return "http"


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
