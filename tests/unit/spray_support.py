"""A spray engine without a network, for the unit tests: unbound UDP sockets, and what
would go on the wire captured instead of sent (its NIC's pacer charged as for a send)."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from lab.traffic.spray import WIRE_EXTRA, SprayConfig, SprayEngine, SprayFlow


@contextlib.contextmanager
def offline_engine(
    flows: Sequence[SprayFlow],
    send_keys: Iterable[tuple[int, str, int]],
    recv_ranks: Iterable[int],
    **kwargs: Any,
) -> Iterator[tuple[SprayEngine, list[bytes]]]:
    """The engine of ``flows`` with a socket per ``(rank, address, mark)`` of
    ``send_keys`` and a receiving socket per rank, and the list its sends go to."""
    socks: list[socket.socket] = []

    def sock() -> socket.socket:
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        socks.append(s)
        return s

    try:
        send = {key: sock() for key in send_keys}
        recv = {rank: sock() for rank in recv_ranks}
        eng = SprayEngine(flows, send, recv, config=kwargs.pop("config", SprayConfig()), **kwargs)
        sent: list[bytes] = []

        def capture(sock: socket.socket, data: bytes, _addr: str, control: bool = False) -> bool:
            sent.append(data)
            pacer = eng._pacer_of.get(sock)
            if pacer is not None:  # as the engine's own send does
                pacer.tokens -= len(data) + WIRE_EXTRA
            return True

        eng._send = capture  # type: ignore[method-assign,assignment]
        try:
            yield eng, sent
        finally:
            eng.close()
    finally:
        for s in socks:
            s.close()
