"""Hosts for tests as Linux network namespaces on one private Ethernet segment (needs root and iproute2).

    with Network() as net:                       # or: net = Network(); try: ... finally: net.remove()
        a, b = net.add_host("a"), net.add_host("b")
        redis = a.run(["redis-server", "--bind", a.address, ...], label="redis")
        ...
        b.crash()                                # its link goes down, then SIGKILL of all its processes

The layout: a "switch" namespace holds a bridge; every host namespace gets a
veth pair whose host end is `eth0` (address 10.213.X.N/24, `lo` up) and whose
other end is a port of the bridge. The root namespace (the test process) is
plugged into the same bridge with address .1, so a test reaches every host
by its address and the hosts reach each other. The bridge lives in its own
namespace so that the root namespace's firewall (br_netfilter, a FORWARD
policy of DROP left by Docker) never sees the traffic between hosts.

Every name carries the test process's pid (namespaces `chmh-<pid>n<k>-<host>`,
links `mh<pid>n<k>...`), so two runs never collide; `Network()` first removes
what a crashed run left behind (names whose pid is no longer alive), and
`remove()` kills every process still in a namespace before deleting it, since
a namespace with a process in it outlives `ip netns del`.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Self

from channels_core.test.processes import ChildProcess, alive

__all__ = ["Host", "Network", "NetnsUnavailable"]

PREFIX = "chmh-"  # every namespace this module creates; nothing else is ever touched
_counter = itertools.count()
_IP_TIMEOUT = 15.0


class NetnsUnavailable(RuntimeError):
    """Network namespaces cannot be made here (not root, no iproute2, or the kernel refuses)."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=_IP_TIMEOUT)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def _namespaces() -> list[str]:
    result = _ip("netns", "list", check=False)
    return [line.split()[0] for line in result.stdout.splitlines() if line.strip()]


def _kill_namespace(name: str) -> None:
    """SIGKILL every process in namespace `name`, wait (up to 5 s) for them to go, then delete it."""
    pids = [int(p) for p in _ip("netns", "pids", name, check=False).stdout.split()]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    _ip("netns", "del", name, check=False)


def remove_stale() -> list[str]:
    """Delete the namespaces of runs whose process is gone (a crashed or SIGKILLed test); returns their names."""
    removed = []
    for name in _namespaces():
        match = re.match(rf"{PREFIX}([0-9a-f]+)n\d+-", name)
        if match and not alive(int(match.group(1), 16)):
            _kill_namespace(name)
            removed.append(name)
    return removed


def _free_subnet(start: int) -> int:
    """X such that 10.213.X.0/24 is neither routed nor assigned in the root namespace."""
    used = _ip("-4", "route").stdout + _ip("-4", "addr").stdout
    for offset in range(250):
        third = (start + offset) % 250 + 1
        if f"10.213.{third}." not in used:
            return third
    raise RuntimeError("no free 10.213.X.0/24 subnet")


class Host:
    """One namespace on the network: its name, its address, and the processes it runs."""

    def __init__(self, network: Network, label: str, namespace: str, address: str, switch_port: str) -> None:
        self.network = network
        self.label = label
        self.namespace = namespace
        self.address = address
        self.switch_port = switch_port  # the bridge's end of this host's cable
        self.processes: list[ChildProcess] = []

    def run(
        self,
        argv: Sequence[str],
        *,
        label: str | None = None,
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        log: str | os.PathLike[str] | None = None,
    ) -> ChildProcess:
        """Start `argv` inside this host (`ip netns exec`, which execs it: the pid is the command's own)."""
        process = ChildProcess(
            ["ip", "netns", "exec", self.namespace, *argv],
            label=f"{self.label}:{label or Path(argv[0]).name}",
            cwd=cwd,
            env=env,
            log=log,
            die_with_parent=True,  # a crashed test leaves no server running in a namespace
        )
        self.processes.append(process)
        return process

    def pids(self) -> list[int]:
        """Every process living in this namespace (from `ip netns pids`)."""
        return [int(p) for p in _ip("netns", "pids", self.namespace, check=False).stdout.split()]

    def unplug(self) -> None:
        """Take this host's cable out: its bridge port goes down, so nothing more gets in or out (no FIN, no RST)."""
        _ip("-n", self.network.switch, "link", "set", self.switch_port, "down")

    def crash(self) -> None:
        """The host dies: unplugged first (its peers see silence, as from a dead machine), then SIGKILL of
        every process in it; waits until they are gone and reaps the ones this host started."""
        self.unplug()
        pids = self.pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(5)
        deadline = time.monotonic() + 5
        while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.02)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the processes this host started (SIGKILL after `timeout`) and remove their temporary logs."""
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            process.wait_or_kill(timeout)
            process.close()

    def __repr__(self) -> str:
        return f"<Host {self.label} {self.address} in {self.namespace}>"


class Network:
    """A bridge in a namespace of its own, the root namespace plugged in at 10.213.X.1, and hosts added on demand."""

    def __init__(self) -> None:
        self.token = f"{os.getpid():x}n{next(_counter)}"
        self.switch = f"{PREFIX}{self.token}-switch"
        self.hosts: dict[str, Host] = {}
        self._namespaces: list[str] = []
        self._root_link = f"mh{self.token}r"
        try:
            version = subprocess.run(["ip", "-V"], capture_output=True, text=True, timeout=_IP_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise NetnsUnavailable(f"iproute2's `ip` cannot run: {exc}") from exc
        if version.returncode != 0:
            raise NetnsUnavailable(f"`ip -V` failed: {version.stderr.strip()}")
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            remove_stale()
        added = _ip("netns", "add", self.switch, check=False)
        if added.returncode != 0:
            raise NetnsUnavailable(
                f"`ip netns add` refused (root and kernel netns support needed): {added.stderr.strip()}"
            )
        self._namespaces.append(self.switch)
        try:
            self.subnet = _free_subnet(os.getpid())
            self.gateway = f"10.213.{self.subnet}.1"
            _ip("-n", self.switch, "link", "set", "lo", "up")
            _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
            _ip("-n", self.switch, "link", "set", "br0", "up")
            # The root namespace's cable: one end stays here with .1, the other becomes a bridge port.
            _ip("link", "add", self._root_link, "type", "veth", "peer", "name", f"mh{self.token}rs")
            self._plug(f"mh{self.token}rs")
            _ip("addr", "add", f"{self.gateway}/24", "dev", self._root_link)
            _ip("link", "set", self._root_link, "up")
        except BaseException:
            self.remove()
            raise

    def _plug(self, port: str) -> None:
        _ip("link", "set", port, "netns", self.switch)
        _ip("-n", self.switch, "link", "set", port, "master", "br0")
        _ip("-n", self.switch, "link", "set", port, "up")

    def add_host(self, label: str) -> Host:
        """A new namespace `label` (a short word: it is part of interface names) with the next address."""
        if not re.fullmatch(r"[a-z0-9]{1,3}", label):
            raise ValueError(f"host label {label!r}: 1 to 3 lowercase letters or digits (interface names are short)")
        namespace = f"{PREFIX}{self.token}-{label}"
        address = f"10.213.{self.subnet}.{10 + len(self.hosts)}"
        inner, port = f"mh{self.token}{label}", f"mh{self.token}{label}s"
        _ip("netns", "add", namespace)
        self._namespaces.append(namespace)
        _ip("-n", namespace, "link", "set", "lo", "up")
        _ip("link", "add", inner, "type", "veth", "peer", "name", port)
        _ip("link", "set", inner, "netns", namespace, "name", "eth0")
        _ip("-n", namespace, "addr", "add", f"{address}/24", "dev", "eth0")
        _ip("-n", namespace, "link", "set", "eth0", "up")
        self._plug(port)
        host = Host(self, label, namespace, address, port)
        self.hosts[label] = host
        return host

    def remove(self) -> None:
        """Stop every host's processes, kill whatever else is left in the namespaces, delete them all.

        Deleting a namespace destroys its veth ends, and with them their peers (the root's cable too)."""
        for host in self.hosts.values():
            with contextlib.suppress(Exception):
                host.stop(timeout=3)
        for namespace in reversed(self._namespaces):
            _kill_namespace(namespace)
        _ip("link", "del", self._root_link, check=False)  # gone already unless the switch was never made
        self._namespaces.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.remove()
