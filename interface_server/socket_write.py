"""Write a response straight to the socket when nothing is queued before it.

Twisted's `transport.write()` only queues: it registers the socket for
writability, sends on the next reactor turn, then unregisters it. For a
small response on an idle connection that is two `epoll_ctl` calls and an
extra loop turn per response, a measurable share of the server's CPU under
load. When the transport's buffers are empty we can `send()` at once, in
order; whatever the kernel does not take (or any error) goes through
Twisted's normal path, which buffers it and reports failures as usual.
Anything that is not a plain TCP transport (TLS, unix sockets) always uses
the normal path. Whether anything is queued is Twisted's private state:
`compat.idle_tcp_socket` reads it.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import ITCPTransport

from .compat import idle_tcp_socket


def write(transport: Any, data: bytes) -> None:
    """`transport.write(data)`, sending right away when the transport has nothing queued."""
    sock = idle_tcp_socket(transport)
    if sock is None:
        transport.write(data)
    else:
        write_idle(sock, transport, data)


def write_idle(sock: Any, transport: Any, data: bytes) -> None:
    """`write` for a transport `compat.idle_tcp_socket` just found idle, `sock` being the socket it gave."""
    try:
        sent = sock.send(data)
    except OSError:
        sent = 0  # EAGAIN, or an error Twisted's write path will find and report itself
    if sent != len(data):
        transport.write(data[sent:])


def no_delay(transport: Any) -> None:
    """Turn Nagle's algorithm off on an accepted TCP connection (TLS included; unix sockets have none).

    With it on, a small write that follows one the client has not yet
    acknowledged waits for that ACK, and clients delay ACKs (~40 ms on
    Linux) when they have nothing to send: the second of two replies (a
    group message then a direct one, a response's head then its body)
    would arrive 40 ms late. WebSocket connections start as HTTP ones on
    the same transport, so setting it when the connection is made covers
    both. (Autobahn's own attempt, in its `connectionMade`, reads
    `tcpNoDelay` before the factory's options are copied to the protocol;
    the AttributeError is swallowed and nothing is set.)
    """
    if ITCPTransport.providedBy(transport):
        try:
            transport.setTcpNoDelay(True)
        except OSError:
            pass  # e.g. an adopted --fd that is not TCP after all: nothing to tune
