"""Sockets inside a switch's network namespace, for a controller that never forks: a fresh
thread enters the namespace (``setns(2)`` through ctypes; Python 3.11 has no
``os.setns``), creates the socket and ends. A socket keeps the namespace it was created
in, so the controller's own threads never change namespace."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import socket
import threading
from collections.abc import Callable

CLONE_NEWNET = 0x40000000
_libc: ctypes.CDLL | None = None


def setns(fd: int) -> None:
    """Move the calling thread into the network namespace open at ``fd``."""
    global _libc  # noqa: PLW0603 (loaded once, on first use)
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def socket_in(
    netns: str,
    family: int,
    kind: int,
    proto: int = 0,
    setup: Callable[[socket.socket], None] | None = None,
) -> socket.socket:
    """A socket created in ``/run/netns/<netns>``; ``setup`` runs there too (bind to an
    interface, which must be looked up inside the namespace)."""
    result: list[socket.socket | BaseException] = []

    def enter() -> None:
        try:
            with open(f"/run/netns/{netns}", "rb") as f:
                try:
                    setns(f.fileno())
                except OSError as exc:
                    raise OSError(exc.errno, f"setns {netns}: {exc.strerror}") from None
            sock = socket.socket(family, kind, proto)
            try:
                if setup is not None:
                    setup(sock)
            except BaseException:
                sock.close()
                raise
            result.append(sock)
        except BaseException as exc:
            result.append(exc)

    thread = threading.Thread(target=enter, name=f"netns-{netns}")
    thread.start()
    thread.join()
    out = result[0]
    if isinstance(out, BaseException):
        raise out
    return out
