"""The fast reroute's write gate: at most ``limit`` holders, waiters served lowest rank
first (then in arrival order), and a waiter that is cancelled neither holds a slot nor
loses one for the others."""

from __future__ import annotations

import asyncio

import pytest

from controller.southbound.gate import WriteGate


async def _hold(gate: WriteGate, rank: int, log: list[int], release: asyncio.Event) -> None:
    async with gate.slot(rank):
        log.append(rank)
        await release.wait()


def test_a_gate_needs_a_slot() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        WriteGate(0)


def test_waiters_get_slots_lowest_rank_first() -> None:
    async def run() -> list[int]:
        gate = WriteGate(2)
        log: list[int] = []
        release = asyncio.Event()
        tasks = [asyncio.create_task(_hold(gate, r, log, release)) for r in (5, 4, 3, 1, 2, 0)]
        while len(log) < 2:
            await asyncio.sleep(0)
        assert gate.active == 2 and log == [5, 4]  # free slots go in arrival order
        release.set()
        await asyncio.gather(*tasks)
        assert gate.active == 0
        return log

    assert asyncio.run(run()) == [5, 4, 0, 1, 2, 3]


def test_a_cancelled_waiter_takes_no_slot() -> None:
    async def run() -> None:
        gate = WriteGate(1)
        log: list[int] = []
        first, second = asyncio.Event(), asyncio.Event()
        holder = asyncio.create_task(_hold(gate, 0, log, first))
        waiter = asyncio.create_task(_hold(gate, 1, log, second))
        last = asyncio.create_task(_hold(gate, 2, log, second))
        while not log:
            await asyncio.sleep(0)
        waiter.cancel()
        first.set()  # the slot passes over the cancelled waiter
        await holder
        while len(log) < 2:
            await asyncio.sleep(0)
        assert log == [0, 2]
        second.set()
        await last
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert gate.active == 0

    asyncio.run(run())


def test_granted_then_cancelled_passes_the_slot_on() -> None:
    async def run() -> None:
        gate = WriteGate(1)
        log: list[int] = []
        release = asyncio.Event()
        held = gate.slot(0)
        await held.__aenter__()
        waiter = asyncio.create_task(_hold(gate, 1, log, release))
        last = asyncio.create_task(_hold(gate, 2, log, release))
        while len(gate._waiting) < 2:
            await asyncio.sleep(0)
        await held.__aexit__(None, None, None)  # grants the waiter its slot...
        waiter.cancel()  # ...which is cancelled before it runs
        release.set()
        await asyncio.gather(waiter, last, return_exceptions=True)
        assert log == [2]
        assert gate.active == 0

    asyncio.run(run())
