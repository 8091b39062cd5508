"""The metrics port: `/metrics` (Prometheus), `/healthz` and `/readyz`, on their own listener.

Started by `Server.start` when `--metrics-port` is given; it never shares the
public port (a client could otherwise read the server's figures, and a
readiness check would queue behind client traffic). Every page is rendered
in the reactor thread: `/metrics` reads the server's state while nothing
changes it (a scrape of a server with 10,000 sockets costs about a
millisecond), and the health pages only read a few attributes.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from prometheus_client.exposition import choose_encoder
from twisted.internet import reactor
from twisted.web.resource import Resource
from twisted.web.server import Site

from .health import LayerProbe, readiness
from .metrics_collector import build_registry

if TYPE_CHECKING:
    from .server import Server

logger = logging.getLogger("interface_server.metrics")


class _Page(Resource):
    isLeaf = True

    def __init__(self, render: Any) -> None:
        super().__init__()
        self._render = render

    def render_GET(self, request: Any) -> bytes:
        return self._render(request)

    def render_HEAD(self, request: Any) -> bytes:
        return self._render(request)


class MetricsSite:
    """The resources of the metrics port for `server` (its registry, its probe)."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.registry = build_registry(server)
        root = Resource()
        root.putChild(b"metrics", _Page(self.metrics))
        root.putChild(b"healthz", _Page(self.healthz))
        root.putChild(b"readyz", _Page(self.readyz))
        root.putChild(b"", _Page(self.index))
        self.site = Site(root)
        self.site.noisy = False
        self.site.log = lambda request: None  # scrapes every few seconds are not worth a log line each

    def metrics(self, request: Any) -> bytes:
        accept = (request.getHeader("accept") or "").strip()
        encoder, content_type = choose_encoder(accept)
        request.setHeader(b"content-type", content_type.encode("ascii"))
        return encoder(self.registry)

    def healthz(self, request: Any) -> bytes:
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"ok\n"

    def readyz(self, request: Any) -> bytes:
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        problem = readiness(self.server)
        if problem is None:
            return b"ready\n"
        request.setResponseCode(503)
        return f"not ready: {problem}\n".encode()

    def index(self, request: Any) -> bytes:
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"/metrics /healthz /readyz\n"


def start_metrics(server: Server) -> Any:
    """Listen on `server.config.metrics_host:metrics_port` and start the layer probe; returns the port.

    Port 0 picks a free port; the line "Metrics on http://host:port/metrics"
    is logged either way.
    """
    config = server.config
    probe = server.layer_probe = LayerProbe(server.channel_layer)
    if probe.enabled:
        probe.start()
    metrics_site = MetricsSite(server)
    port = reactor.listenTCP(config.metrics_port, metrics_site.site, interface=config.metrics_host)
    address = port.getHost()
    host = f"[{address.host}]" if ":" in address.host else address.host
    logger.info("Metrics on http://%s:%d/metrics (and /healthz, /readyz)", host, address.port)

    def stop() -> None:
        probe.stop()
        port.stopListening()

    reactor.addSystemEventTrigger("after", "shutdown", stop)
    return port
