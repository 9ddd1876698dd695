"""Enter a named network namespace on the calling thread only (``setns(2)`` through ctypes:
Python 3.11 has no ``os.setns``). A socket keeps the namespace it was created in, so one
process can hold sockets in many namespaces: the traffic generators open theirs this way,
and fault injection talks netlink to every switch from one process.

A child process started inside the block (``subprocess``) inherits the thread's namespace.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lab.errors import LabError

CLONE_NEWNET = 0x40000000
NETNS_DIR = Path("/run/netns")
_libc: ctypes.CDLL | None = None


def _setns(fd: int) -> None:
    global _libc  # noqa: PLW0603 (loaded once, on first use)
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


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
            _setns(target)
        except OSError as exc:
            raise LabError(f"cannot enter network namespace {name}: {exc}") from None
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(target)
        os.close(home)
