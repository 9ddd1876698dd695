"""Enter a named network namespace on the calling thread only (``setns(2)`` through ctypes:
Python 3.11 has no ``os.setns``). A socket keeps the namespace it was created in, so one
process can hold sockets in many namespaces: the traffic generators open theirs this way,
and fault injection talks netlink to every switch from one process.

A child process started inside the block (``subprocess``) inherits the thread's namespace.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from controller.netns import setns
from lab.errors import LabError

NETNS_DIR = Path("/run/netns")


@contextmanager
def netns(name: str) -> Iterator[None]:
    """Run the block with this thread in the named namespace (``/run/netns/<name>``);
    the thread goes back to where it was afterwards, also when the block raises."""
    try:
        target = os.open(NETNS_DIR / name, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise LabError(f"network namespace {name} does not exist (is the lab running?)") from None
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            setns(target)
        except OSError as exc:
            raise LabError(f"cannot enter network namespace {name}: {exc}") from None
        try:
            yield
        finally:
            setns(home)
    finally:
        os.close(target)
        os.close(home)
