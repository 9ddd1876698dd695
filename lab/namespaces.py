"""The lab's named network namespaces (``srv6lab-<node>``) and the processes inside them.

Mininet keeps a node's namespace alive only through its shell's pid. The lab also names
each one (``ip netns attach``) so that engineers can use the usual tools
(``ip netns exec srv6lab-s1 ip -6 route``), and so that a crashed run leaves something that
can be found and removed. A process belongs to the lab when its network namespace is one of
the lab's, which is how leftovers are found without guessing by process name.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lab.errors import LabError

DEFAULT_PREFIX = "srv6lab-"
ENV_PREFIX = "SRV6LAB_NETNS_PREFIX"
"""Overrides the prefix, so that test sessions running side by side (each with its own
``SRV6LAB_RUN_DIR``) do not compete for the same names."""
NETNS_DIR = Path("/run/netns")
_PREFIX_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")


def prefix() -> str:
    """The prefix of the lab's namespace names: ``srv6lab-``, or ``$SRV6LAB_NETNS_PREFIX``."""
    value = os.environ.get(ENV_PREFIX) or DEFAULT_PREFIX
    if not _PREFIX_RE.match(value):
        raise LabError(
            f"{ENV_PREFIX}={value!r} is not a usable namespace name prefix "
            "(letters, digits, '_', '.', '-'; at most 40)"
        )
    return value


def netns_name(node: str, prefix_: str | None = None) -> str:
    return (prefix_ if prefix_ is not None else prefix()) + node


def lab_netns_names(prefix_: str | None = None) -> list[str]:
    """Named namespaces with the lab's prefix that exist now (``ip netns list``)."""
    start = prefix_ if prefix_ is not None else prefix()
    try:
        names = os.listdir(NETNS_DIR)
    except FileNotFoundError:
        return []
    return sorted(name for name in names if name.startswith(start))


def netns_inode(name: str) -> int | None:
    """The inode that identifies a named namespace, or None if it is gone."""
    try:
        return os.stat(NETNS_DIR / name).st_ino
    except FileNotFoundError:
        return None


def pid_netns_inode(pid: int) -> int | None:
    """The inode of a process's network namespace, or None if the process is gone (or is
    one we may not inspect, such as a protected init)."""
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def root_netns_inode() -> int:
    """The namespace the lab commands run in: the root one, never to be swept."""
    return os.stat("/proc/self/ns/net").st_ino


def attach(name: str, pid: int) -> None:
    """Give the network namespace of ``pid`` the name ``name``."""
    _ip(["netns", "attach", name, str(pid)], f"naming the namespace of pid {pid} {name}")


def delete(names: Iterable[str]) -> list[str]:
    """Remove named namespaces (the namespace itself goes when nothing else holds it).
    Returns the names removed."""
    removed = []
    for name in names:
        if not (NETNS_DIR / name).exists():
            continue
        _ip(["netns", "delete", name], f"removing namespace {name}")
        removed.append(name)
    return removed


def _ip(args: Sequence[str], what: str) -> None:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()
        raise LabError(f"{what}: `ip {' '.join(args)}` failed: {detail}")


@dataclass(frozen=True, slots=True)
class Process:
    pid: int
    ppid: int
    netns: int
    cmdline: str

    def __str__(self) -> str:
        return f"pid {self.pid} ({self.cmdline[:60]})"

    @property
    def node_shell(self) -> str | None:
        """The node name if this is a Mininet node shell (``bash ... mininet:<node>``)."""
        last = self.cmdline.rsplit(" ", 1)[-1]
        if "bash" in self.cmdline and last.startswith("mininet:"):
            return last[len("mininet:") :]
        return None


def process_info(pid: int) -> Process | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as f:
            stat = f.read()
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        netns = os.stat(f"/proc/{pid}/ns/net").st_ino
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return Process(pid, ppid, netns, cmdline)


def processes_in(inodes: Iterable[int]) -> list[Process]:
    """Every process whose network namespace is one of ``inodes`` (never the root one)."""
    wanted = set(inodes) - {root_netns_inode()}
    if not wanted:
        return []
    found = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        pid = int(entry)
        netns = pid_netns_inode(pid)
        if netns not in wanted:
            continue
        info = process_info(pid)
        if info is not None:
            found.append(info)
    return sorted(found, key=lambda p: p.pid)


def child_node_shells(names: Iterable[str]) -> list[Process]:
    """Node shells of this process for the given node names, found by their command line:
    also those of a node whose creation was interrupted before Mininet recorded it."""
    wanted = set(names)
    me = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        info = process_info(int(entry))
        if info is not None and info.ppid == me and info.node_shell in wanted:
            found.append(info)
    return found


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def terminate(pids: Iterable[int], timeout: float = 3.0) -> list[int]:
    """SIGTERM the processes, wait for them to go, SIGKILL what is left. Returns the pids
    that were alive when asked to stop."""
    alive = [pid for pid in pids if _signal(pid, signal.SIGTERM)]
    if wait_gone(alive, timeout):
        return alive
    for pid in alive:
        _signal(pid, signal.SIGKILL)
    if not wait_gone(alive, timeout):
        still = [pid for pid in alive if is_alive(pid)]
        raise LabError(f"processes {still} survived SIGKILL for {timeout:g} s")
    return alive


def wait_gone(pids: Sequence[int], timeout: float) -> bool:
    """Wait until none of ``pids`` runs. A zombie counts as gone: it is left for its
    parent to reap (which may be our caller, holding a Popen for it)."""
    deadline = time.monotonic() + timeout
    pending = list(pids)
    delay = 0.002
    while pending:
        pending = [pid for pid in pending if not _gone(pid)]
        if not pending:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)  # polling the condition; there is no event for a foreign pid
        delay = min(delay * 2, 0.05)
    return True


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return True
    state = stat[stat.rindex(")") + 2 :].split()[0]
    return state in ("Z", "X")


def _signal(pid: int, sig: signal.Signals) -> bool:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True
