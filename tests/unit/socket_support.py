"""Connected socket pairs standing in for a collective's connections (unit tests)."""

from __future__ import annotations

import socket

from lab.traffic.collective import ConnKey


def connect(
    keys: list[ConnKey], opened: list[socket.socket]
) -> dict[ConnKey, tuple[socket.socket, socket.socket]]:
    """A socket pair per connection (sending side, receiving side), added to ``opened``."""
    pairs = {}
    for key in keys:
        tx, rx = socket.socketpair()
        opened += [tx, rx]
        pairs[key] = (tx, rx)
    return pairs
