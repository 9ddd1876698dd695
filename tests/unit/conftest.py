"""Fixtures of the unit tests."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    """A list the test adds its sockets to; every one is closed afterwards."""
    opened: list[socket.socket] = []
    yield opened
    for s in opened:
        s.close()
