"""A gate that lets at most ``limit`` switch sessions write at once, the lowest rank first.

A fast reroute hands several switches their updates at the same moment. On a machine with
few cores, writes that go out together share the CPU (the controller's loop and every
switch's agent) and all finish late together; through the gate the first ones, the switches
that repair the most traffic, finish early and the last no later. Passes without a rank
(start-up, periodic and recompute passes) never wait here.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import AsyncIterator

REROUTE_WRITES = 2
"""The default limit: switches a fast reroute writes at once. Where the switches' agents
share the controller's CPU (the lab: two cores), the writes that go out together all
finish late together: on fat-tree-4, a gray agg1-core1 with its 9 writes at once left p99
loss windows of 55-56 ms; 2 at a time, 34-48 ms (the last switch answered later: 47 against
64-74 ms after the fault). Switches on their own hardware want more."""


class WriteGate:
    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"a write gate needs a limit of at least 1, not {limit}")
        self.limit = limit
        self.active = 0
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    @contextlib.asynccontextmanager
    async def slot(self, rank: int) -> AsyncIterator[None]:
        """Hold one of the ``limit`` slots; waiters get them lowest ``rank`` first (then in
        arrival order)."""
        await self._acquire(rank)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, rank: int) -> None:
        if self.active < self.limit and not self._waiting:
            self.active += 1
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (rank, next(self._order), granted))
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self._release()  # granted, then cancelled before it could run: pass it on
            else:
                self._waiting = [w for w in self._waiting if w[2] is not granted]
                heapq.heapify(self._waiting)
            raise

    def _release(self) -> None:
        self.active -= 1
        while self._waiting and self.active < self.limit:
            _, _, granted = heapq.heappop(self._waiting)
            if not granted.done():
                self.active += 1
                granted.set_result(None)
