"""The private names of `interface_server.compat`, checked on the installed Twisted, Autobahn, h11 and Python.

Each test fails when an upgrade renames or changes what `compat` relies
on. The server would mostly go on working on the public path (see the
module's docstring), only slower or with a limit less; these tests make
the change loud instead. When one fails after an upgrade: adapt `compat`,
then update its "checked" lines and the bounds in `setup.cfg`.
"""

from __future__ import annotations

import importlib
import inspect
import socket
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from twisted.internet import tcp
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactor, StringTransport

from interface_server import compat

# -- Autobahn: timers ----------------------------------------------------------------------------


class RecordingTimer:
    """Takes Autobahn's timers and never runs them (nothing is left on the global reactor)."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, object]] = []

    def call_later(self, delay, func, *args, **kwargs):
        self.calls.append((delay, func))
        return self

    def cancel(self) -> None:
        pass


def _connected_protocol(factory: WebSocketServerFactory | None = None) -> WebSocketServerProtocol:
    if factory is None:
        factory = WebSocketServerFactory()
        compat.use_exact_timers(factory, RecordingTimer())
    factory.protocol = WebSocketServerProtocol
    protocol = factory.buildProtocol(None)
    protocol.makeConnection(StringTransport())
    return protocol


def test_autobahn_factories_still_have_the_timer_slot():
    timer = WebSocketServerFactory()._batched_timer
    assert callable(timer.call_later), "Autobahn's WebSocketServerFactory._batched_timer changed"


def test_autobahn_protocols_schedule_their_timers_on_the_factorys_timer():
    factory = WebSocketServerFactory()
    factory.setProtocolOptions(openHandshakeTimeout=7)
    timer = RecordingTimer()
    compat.use_exact_timers(factory, timer)
    protocol = _connected_protocol(factory)
    assert timer.calls == [(7, protocol.onOpenHandshakeTimeout)], (
        "Autobahn no longer reads factory._batched_timer for its handshake timeout:"
        " its timers would be quantized to whole seconds again"
    )


def test_exact_timers_fire_on_time_and_may_be_cancelled_after_firing(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(compat, "reactor", clock)
    fired = []
    call = compat.ExactTimer().call_later(0.5, fired.append, "ping")
    clock.advance(0.4)
    assert fired == []
    clock.advance(0.1)
    assert fired == ["ping"]
    call.cancel()  # Autobahn does this; Twisted's own DelayedCall would raise AlreadyCalled


# -- Autobahn: the write path -----------------------------------------------------------------------


def test_autobahn_senddata_keeps_its_signature():
    assert list(inspect.signature(WebSocketServerProtocol.sendData).parameters) == ["self", "data", "sync", "chopsize"]


def test_a_fresh_autobahn_protocol_writes_plainly_unless_asked_otherwise():
    protocol = _connected_protocol()
    assert compat.autobahn_write_is_plain(protocol, False, None)
    assert not compat.autobahn_write_is_plain(protocol, True, None)
    assert not compat.autobahn_write_is_plain(protocol, False, 10)
    protocol.send_queue.append((b"x", False))
    assert not compat.autobahn_write_is_plain(protocol, False, None)
    protocol.send_queue.clear()
    protocol.logOctets = True
    assert not compat.autobahn_write_is_plain(protocol, False, None)


def test_autobahn_queues_synced_writes_in_send_queue():
    """What `autobahn_write_is_plain` reads `send_queue` for: a write waiting there must not be overtaken."""
    protocol = _connected_protocol()
    protocol._trigger = lambda: None  # keep it queued: no reactor turn here
    WebSocketServerProtocol.sendData(protocol, b"first", sync=True)
    assert list(protocol.send_queue) == [(b"first", True)]
    assert not compat.autobahn_write_is_plain(protocol, False, None)


@pytest.mark.parametrize("state", ["STATE_CONNECTING", "STATE_OPEN", "STATE_CLOSING"])
def test_counting_around_autobahn_counts_what_autobahns_own_senddata_counts(state):
    theirs, ours = _connected_protocol(), _connected_protocol()
    for protocol in (theirs, ours):
        protocol.state = getattr(WebSocketServerProtocol, state)
    WebSocketServerProtocol.sendData(theirs, b"x" * 10)
    compat.autobahn_count_sent(ours, 10)
    assert ours.trafficStats.__json__() == theirs.trafficStats.__json__()


# -- Twisted: the TCP write buffers ------------------------------------------------------------------


@pytest.fixture
def tcp_server():
    """A real `tcp.Server` transport on one end of a socket pair, on a reactor that is never run."""
    ours, theirs = socket.socketpair()
    transport = tcp.Server(ours, Protocol(), ("127.0.0.1", 1), None, 1, MemoryReactor())
    yield transport, theirs
    ours.close()
    theirs.close()


def test_twisted_transports_keep_their_write_buffer_names(tcp_server):
    transport, _ = tcp_server
    for name in ("_tempDataLen", "dataBuffer", "offset", "_writeDisconnected", "socket"):
        assert hasattr(transport, name), f"twisted's tcp.Server has no {name} any more"


def test_an_idle_tcp_transport_hands_out_its_socket(tcp_server):
    transport, _ = tcp_server
    assert compat.idle_tcp_socket(transport) is transport.socket


def test_a_tcp_transport_with_a_write_queued_is_not_idle(tcp_server):
    transport, theirs = tcp_server
    transport.write(b"queued")
    assert compat.idle_tcp_socket(transport) is None
    transport.doWrite()  # the reactor's turn: the queued bytes go out
    assert theirs.recv(100) == b"queued"
    assert compat.idle_tcp_socket(transport) is transport.socket


def test_a_closing_tcp_transport_is_not_idle(tcp_server):
    transport, _ = tcp_server
    transport.loseConnection()
    assert compat.idle_tcp_socket(transport) is None


def test_other_transports_are_never_idle():
    assert compat.idle_tcp_socket(StringTransport()) is None


def test_write_buffer_size_counts_what_twisted_queued_for_the_tcp_transport(tcp_server):
    transport, theirs = tcp_server
    assert compat.write_buffer_size(transport) == 0
    transport.write(b"a" * 1000)
    transport.write(b"b" * 500)
    assert compat.write_buffer_size(transport) == 1500  # still in _tempDataBuffer
    theirs.setblocking(False)
    transport.doWrite()  # moves it to dataBuffer and sends what the kernel takes
    assert compat.write_buffer_size(transport) == 0
    assert len(theirs.recv(4000)) == 1500


def test_write_buffer_size_counts_what_the_kernel_would_not_take(tcp_server):
    transport, theirs = tcp_server
    transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    transport.write(b"x" * 4_000_000)
    transport.doWrite()
    queued = compat.write_buffer_size(transport)
    assert 3_000_000 < queued < 4_000_000  # dataBuffer minus offset: the part the kernel did not take
    assert queued == len(transport.dataBuffer) - transport.offset


def test_write_buffer_size_looks_through_tls_wrappers(tcp_server):
    transport, _ = tcp_server
    wrapper = SimpleNamespace(transport=transport, _appSendBuffer=[b"12345"])
    transport.write(b"abc")
    assert compat.write_buffer_size(wrapper) == 8
    assert compat.write_buffer_size(StringTransport()) == 0


def test_tls_transports_keep_their_pending_write_buffer():
    from twisted.protocols.tls import TLSMemoryBIOProtocol

    assert "_appSendBuffer" in inspect.getsource(TLSMemoryBIOProtocol), "TLSMemoryBIOProtocol._appSendBuffer is gone"


def test_is_reading_follows_pause_and_resume_on_a_real_reactor():
    from twisted.internet.epollreactor import EPollReactor
    from twisted.internet.selectreactor import SelectReactor

    for reactor_class in (EPollReactor, SelectReactor):
        a_reactor = reactor_class()
        assert hasattr(a_reactor, "_reads"), f"{reactor_class.__name__} has no _reads any more"
        ours, theirs = socket.socketpair()
        try:
            transport = tcp.Server(ours, Protocol(), ("127.0.0.1", 1), None, 1, a_reactor)
            transport.startReading()
            assert compat.is_reading(transport)
            transport.pauseProducing()
            assert not compat.is_reading(transport)
            transport.resumeProducing()
            assert compat.is_reading(transport)
            transport.stopReading()
        finally:
            ours.close()
            theirs.close()
    assert compat.is_reading(StringTransport())  # unknown: never counted as paused


# -- h11: the size a chunk declared ------------------------------------------------------------------

H11_BUILDS = ["h11", "h11_mypyc"]


@pytest.mark.parametrize("module_name", H11_BUILDS)
@pytest.mark.parametrize("declared", [5, 0x1000, 2**64 + 5])
def test_declared_chunk_size_reads_what_the_client_declared(module_name, declared):
    """If this fails, the server stops refusing chunk sizes over 64 bits early and leans on the body size limit."""
    try:
        h11 = importlib.import_module(module_name)
    except ImportError:
        if module_name == "h11_mypyc":
            pytest.fail("h11-mypyc is not installed: CI installs the speedups extra, which this check covers")
        raise
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + f"{declared:x}\r\n".encode() + b"hello"
    )
    assert isinstance(conn.next_event(), h11.Request)
    event = conn.next_event()
    assert isinstance(event, h11.Data) and event.chunk_start
    assert compat.declared_chunk_size(conn, event.data) == declared


def test_declared_chunk_size_is_unknown_without_the_private_name():
    assert compat.declared_chunk_size(object(), b"hello") is None


# -- the standard library: at the main thread's end -----------------------------------------------


def test_the_threading_exit_hook_runs_before_non_daemon_threads_are_joined():
    """A non-daemon thread waits for the hook: with plain `atexit` the interpreter would wait forever."""
    assert callable(getattr(__import__("threading"), "_register_atexit", None))
    code = textwrap.dedent(
        """
        import threading
        from interface_server.compat import at_threading_exit

        stop = threading.Event()
        threading.Thread(target=stop.wait).start()
        at_threading_exit(lambda: print("hook ran", flush=True) or stop.set())
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert (done.returncode, done.stdout) == (0, "hook ran\n"), done.stderr
