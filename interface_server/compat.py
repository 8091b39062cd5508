"""Every private name of Twisted, Autobahn, h11 and the standard library that this project relies on.

None of these libraries offers a public way to do what is done here; each
function says which private name it uses, why, and which versions were
checked. `tests/interface_server/test_compat.py` checks each one on the
installed versions and fails loudly when an upgrade changes it, and
`setup.cfg` keeps Twisted, Autobahn and h11 below their next big release
(its comment says why each bound is where it is). Before raising a bound,
run that test file on the new release and update the "Checked:" lines.

When a private name is gone the server keeps working on the public path
(the direct writes fall back to Twisted's and Autobahn's own, the
chunk-size check to the body size limit, the early exit hook to `atexit`,
the "is this socket paused" query to the reactor's public reader list; the
output limit reads an unknown write buffer as empty, so it stops cutting
anyone), except the exact timers: Autobahn would silently go back to its
second-quantized ones and the ping and handshake timeouts would be off.
Only the test notices that.
"""

from __future__ import annotations

import atexit
import socket
import threading
from collections.abc import Callable
from typing import Any

from twisted.internet import abstract, reactor, tcp

# -- Autobahn: the protocols' timers -------------------------------------------------------


class ExactTimer:
    """Autobahn's protocol timers (handshake, closing handshake, auto-ping) on plain `reactor.callLater`.

    Autobahn schedules them on a txaio "batched timer" that quantizes every
    deadline down to a whole second (`int(now + delay)`). A 0.5 s ping
    interval then fires at once and, as soon as the pong is back, again
    (thousands of pings a second), a 1 s ping timeout fires after 0-1 s, and
    the 1 s closing-handshake timeout can drop a client before it had any
    chance to answer the close frame. This replacement is exact, and costs
    nothing while no timer is due.
    """

    def call_later(self, delay: float, func: Any, *args: Any, **kwargs: Any) -> _TimerCall:
        return _TimerCall(reactor.callLater(max(0.0, delay), func, *args, **kwargs))


class _TimerCall:
    __slots__ = ("call",)

    def __init__(self, call: Any) -> None:
        self.call = call

    def cancel(self) -> None:
        # Autobahn may cancel a call that already ran; the batched timer allowed it, Twisted does not.
        if self.call.active():
            self.call.cancel()


def use_exact_timers(factory: Any, timer: Any = None) -> None:
    """Make every protocol `factory` builds schedule its timers on `timer` (default: an `ExactTimer`).

    Private name: `WebSocketServerFactory._batched_timer`, which Autobahn's
    protocols read for every `call_later`. No public option chooses the
    timer or its resolution. Checked: Autobahn 23.1.1, 24.4.2, 25.12.2,
    26.6.2 (source) and 26.11.1 (installed).
    """
    factory._batched_timer = ExactTimer() if timer is None else timer


# -- Autobahn: the write path (`WebSocketServerProtocol.sendData`) ------------------------------


def autobahn_write_is_plain(protocol: Any, sync: bool, chopsize: int | None) -> bool:
    """True when Autobahn's `sendData` would write `data` to the transport at once, untouched.

    Private names: the protocol's `send_queue` (writes waiting for a reactor
    turn) and `logOctets`. Overriding `sendData` is the only way to change
    how frames reach the transport; whatever is chopped, synced, queued or
    logged keeps Autobahn's own path. Checked: Autobahn 23.1.1, 24.4.2,
    25.12.2, 26.6.2 (source) and 26.11.1 (installed). A missing name reads
    as "not plain", so every write then takes Autobahn's path.
    """
    return not (chopsize or sync or getattr(protocol, "send_queue", True) or getattr(protocol, "logOctets", True))


def autobahn_count_sent(protocol: Any, size: int) -> None:
    """Count `size` bytes written around Autobahn, as its `sendData` counts what it writes.

    Private names: the protocol's `trafficStats.outgoingOctetsWireLevel`
    and `.preopenOutgoingOctetsWireLevel`, and `state` against
    `STATE_OPEN` / `STATE_CONNECTING`: Autobahn keeps its traffic counters
    there and nowhere public. Nothing is counted when they are gone.
    Checked: as `autobahn_write_is_plain`.
    """
    stats = getattr(protocol, "trafficStats", None)
    if stats is None:
        return
    if protocol.state == protocol.STATE_OPEN:
        stats.outgoingOctetsWireLevel += size
    elif protocol.state == protocol.STATE_CONNECTING:
        stats.preopenOutgoingOctetsWireLevel += size


# -- Twisted: is anything queued on a TCP transport? ------------------------------------------

_PLAIN_TCP = tcp.Server


def idle_tcp_socket(transport: Any) -> socket.socket | None:
    """The socket of a plain TCP server transport that has nothing queued to write, else None.

    Private names: `_tempDataLen`, `dataBuffer`, `offset` and
    `_writeDisconnected` of `twisted.internet.abstract.FileDescriptor` (its
    write buffers) and `tcp.Connection.socket`. Twisted offers no public
    "is the write buffer empty" query, and writing around a non-empty buffer
    would reorder bytes. A missing name reads as "something is queued", so
    every write then takes Twisted's own path. Checked: Twisted 23.10.0,
    24.7.0 (source) and 26.10.0 (installed).
    """
    if (
        type(transport) is _PLAIN_TCP
        and transport.connected
        and not transport.disconnecting
        and not getattr(transport, "_writeDisconnected", True)
        and not getattr(transport, "_tempDataLen", 1)
        and getattr(transport, "offset", -1) == len(getattr(transport, "dataBuffer", b""))
    ):
        return getattr(transport, "socket", None)
    return None


# -- Twisted: how much is queued on a transport, and is it being read? ------------------------


def _file_descriptor(transport: Any) -> Any:
    """The `FileDescriptor` under `transport` (itself, or under TLS wrappers), or None."""
    for _ in range(4):
        if isinstance(transport, abstract.FileDescriptor):
            return transport
        transport = getattr(transport, "transport", None)
        if transport is None:
            return None
    return None


def write_buffer_size(transport: Any) -> int:
    """Bytes Twisted holds for `transport` that the kernel has not taken yet (0 when unknown).

    Private names: `_tempDataLen`, `dataBuffer` and `offset` of
    `twisted.internet.abstract.FileDescriptor` (TCP and unix transports;
    under TLS, of the TCP transport the `TLSMemoryBIOProtocol` writes to,
    plus that wrapper's `_appSendBuffer`, the writes made before its
    handshake finished). Twisted has no public query for it (a producer is
    only told "pause" at 64 KiB). A missing name counts as 0, which
    disables the output limit rather than closing healthy connections.
    Checked: Twisted 23.10.0, 24.7.0 (source) and 26.10.0 (installed).
    """
    size = 0
    current = transport
    for _ in range(4):
        if isinstance(current, abstract.FileDescriptor):
            data = getattr(current, "dataBuffer", b"")
            return size + getattr(current, "_tempDataLen", 0) + max(0, len(data) - getattr(current, "offset", 0))
        pending = getattr(current, "_appSendBuffer", None)
        if pending:
            size += sum(len(chunk) for chunk in pending)
        current = getattr(current, "transport", None)
        if current is None:
            break
    return size


def is_reading(transport: Any) -> bool:
    """True unless the reactor has stopped reading `transport` (`pauseProducing`, flow control).

    Private name: the reactor's `_reads` (a set of file descriptors for the
    epoll and poll reactors, of `FileDescriptor`s for the select one);
    the public `getReaders()` builds a list of every reader, too costly to
    call per connection. Falls back to it when the name is gone; an unknown
    transport reads as "reading". Checked: Twisted 23.10.0, 24.7.0 (source)
    and 26.10.0 (installed).
    """
    descriptor = _file_descriptor(transport)
    if descriptor is None:
        return True
    its_reactor = getattr(descriptor, "reactor", reactor)
    reads = getattr(its_reactor, "_reads", None)
    if reads is None:
        return descriptor in its_reactor.getReaders()
    if descriptor in reads:
        return True
    try:
        return descriptor.fileno() in reads
    except Exception:
        return False


# -- h11: the size a chunk declared -----------------------------------------------------------


def declared_chunk_size(conn: Any, data: bytes) -> int | None:
    """The size the client declared for the chunk that `data` starts, when h11 exposes it.

    Call it for an `h11.Data` event with `chunk_start`. Private name: the
    connection's `_reader._bytes_in_chunk` (what is left of the chunk being
    read), the same in the pure and the compiled build. h11 has no public
    way to tell the declared size. None when the name is gone; then the
    body size limit still stops an endless chunk. Checked: h11 0.14.0,
    0.15.0 (source), 0.16.0 and h11-mypyc 0.17.0 (installed).
    """
    remaining = getattr(getattr(conn, "_reader", None), "_bytes_in_chunk", None)
    return len(data) + remaining if isinstance(remaining, int) else None


# -- the standard library: code to run when the main thread ends ---------------------------------


def at_threading_exit(func: Callable[[], Any]) -> None:
    """Run `func` when the main thread ends, before the interpreter joins non-daemon threads.

    Private name: `threading._register_atexit` (what `concurrent.futures`
    uses to stop its workers); the standard library has no public hook
    that runs this early. `atexit` handlers run later, after non-daemon
    threads are joined and among other libraries' clean-up; the reactor's
    graceful stop (runserver under Django's autoreloader: the reactor runs
    in a thread of its own) should finish while everything is still alive.
    Falls back to `atexit` when the name is gone or the interpreter is
    already shutting down. It lives here, with the other private names,
    although its one caller is `channels_core`'s `runserver`, which runs
    this server in-process. Checked: CPython 3.11.7 (installed), 3.12.1
    and 3.13.0.
    """
    register = getattr(threading, "_register_atexit", None)
    if register is not None:
        try:
            register(func)
            return
        except RuntimeError:  # the interpreter is already shutting down
            pass
    atexit.register(func)
