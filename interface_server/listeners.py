"""Listening sockets opened before the reactor exists: what a process group's parent hands to its children.

Twisted opens a server's sockets itself (`serverFromString(...).listen`),
inside the reactor. A group's parent has no reactor: it opens the same
sockets here, with the options Twisted would set, and each child adopts
them (`reactor.adoptStreamPort`), exactly as it adopts a `--fd`.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat

BACKLOG = 50
"""Twisted's listenTCP/listenUNIX default."""


class ListenError(Exception):
    """A socket could not be opened (the port is taken, the path exists, ...): exit code 1, like a server's."""


def open_tcp(host: str | None, port: int | None, reuse_port: bool = False) -> socket.socket:
    """A listening TCP socket on `host` (default 127.0.0.1) and `port` (default 8000; 0: any free port).

    `reuse_port`: SO_REUSEPORT, so that several sockets (one per process of
    a group) listen on the same port and the kernel spreads connections
    over them.
    """
    host = (host or "127.0.0.1").strip("[]")
    port = 8000 if port is None else port
    try:
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise ListenError(f"cannot resolve {host!r}: {exc}") from None
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # As Twisted does: a restarted server can bind while old connections sit in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        raise ListenError(f"Couldn't listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock


def open_unix(path: str) -> socket.socket:
    """A listening UNIX socket at `path` (mode 0666 like Twisted's; an existing path is an error, as there)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        os.chmod(path, 0o666)
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        raise ListenError(f"Couldn't listen on {path}: {exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock


def remove_unix(path: str) -> None:
    """Remove the socket file a group listened on (Twisted's UNIX port does it when it stops)."""
    with contextlib.suppress(OSError):
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)


def address_of(sock: socket.socket) -> str:
    """`tcp 127.0.0.1:8000` / `unix /run/x.sock`: the bound address, for the log."""
    name = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return f"unix {name}"
    host, port = name[:2]
    return f"tcp [{host}]:{port}" if ":" in host else f"tcp {host}:{port}"


class GroupListeners:
    """The sockets of a process group: one SO_REUSEPORT TCP socket per slot, the others shared by all.

    Why one TCP socket per process: on one socket shared by several
    processes, Linux wakes the process that waited last, so a few take
    nearly every connection (measured: 40 of 40 requests on one of two
    processes). With SO_REUSEPORT each process accepts on a socket of its
    own and the kernel spreads connections over them by a hash of the
    client's address and port. UNIX sockets and `--fd` have no such
    option: they are shared (the spread is then the kernel's wake-up order).

    The parent keeps every socket; a child keeps its slot's TCP socket and
    the shared ones, closing the other slots' (`keep_only`). When a child
    dies the parent closes its slot's socket (`release`): connections the
    kernel had queued on it are reset, and new ones go to the live
    processes until the replacement opens a fresh one (`fds`).
    """

    def __init__(self, bind: str | None, port: int | None, tcp: bool, unix_socket: str | None, fds: list[int]) -> None:
        self.shared: list[socket.socket] = []
        self.per_slot: dict[int, socket.socket] = {}
        self.fds_given = list(fds)
        self.bind = bind
        self.port: int | None = None
        self.unix_socket = unix_socket
        try:
            if tcp:
                first = open_tcp(bind, port, reuse_port=True)
                self.port = first.getsockname()[1]  # port 0 resolved: every slot binds the same one
                self.per_slot[0] = first
            if unix_socket is not None:
                self.shared.append(open_unix(unix_socket))
        except ListenError:
            self.close()
            raise

    def describe(self) -> list[str]:
        out = [address_of(sock) for sock in self.per_slot.values()][:1]
        out += [address_of(sock) for sock in self.shared] + [f"fd {fd}" for fd in self.fds_given]
        return out

    def fds(self, slot: int) -> list[int]:
        """The descriptors slot `slot`'s child adopts (opening its TCP socket if it has none)."""
        if self.port is not None and slot not in self.per_slot:
            self.per_slot[slot] = open_tcp(self.bind, self.port, reuse_port=True)
        own = [self.per_slot[slot].fileno()] if slot in self.per_slot else []
        return own + [sock.fileno() for sock in self.shared] + self.fds_given

    def keep_only(self, slot: int) -> None:
        """In a child: close the other slots' sockets (holding them would keep a dead slot's queue alive)."""
        for index, sock in list(self.per_slot.items()):
            if index != slot:
                sock.close()

    def release(self, slot: int) -> None:
        """In the parent, after slot `slot`'s child died: close its TCP socket (its replacement gets a new one)."""
        sock = self.per_slot.pop(slot, None)
        if sock is not None:
            sock.close()

    def close(self) -> None:
        for sock in [*self.per_slot.values(), *self.shared]:
            with contextlib.suppress(OSError):
                sock.close()
        self.per_slot.clear()
        self.shared = []
