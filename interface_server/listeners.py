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


def open_tcp(host: str | None, port: int | None) -> socket.socket:
    """A listening TCP socket on `host` (default 127.0.0.1) and `port` (default 8000; 0: any free port)."""
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
