"""Write a response straight to the socket when nothing is queued before it.

Twisted's `transport.write()` only queues: it registers the socket for
writability, sends on the next reactor turn, then unregisters it. For a
small response on an idle connection that is two `epoll_ctl` calls and an
extra loop turn per response, a measurable share of the server's CPU under
load. When the transport's buffers are empty we can `send()` at once, in
order; whatever the kernel does not take (or any error) goes through
Twisted's normal path, which buffers it and reports failures as usual.
Anything that is not a plain TCP transport (TLS, unix sockets) always uses
the normal path.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import tcp

_PLAIN_TCP = tcp.Server


def write(transport: Any, data: bytes) -> None:
    """`transport.write(data)`, sending right away when the transport has nothing queued."""
    if (
        type(transport) is _PLAIN_TCP
        and transport.connected
        and not transport.disconnecting
        and not getattr(transport, "_writeDisconnected", True)
        and not getattr(transport, "_tempDataLen", 1)
        and transport.offset == len(transport.dataBuffer)
    ):
        try:
            sent = transport.socket.send(data)
        except OSError:
            sent = 0  # EAGAIN, or an error Twisted's write path will find and report itself
        if sent == len(data):
            return
        data = data[sent:]
    transport.write(data)
