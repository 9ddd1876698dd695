"""One supervised P4Runtime session per switch, on finsy.

finsy's ``Switch.run()`` already does what a session needs underneath: it connects and
reconnects with back-off, runs the StreamChannel arbitration (our election id; a switch
whose primary is another controller makes us backup, and finsy re-arbitrates when that
primary goes away), and pushes the pipeline only when the switch's cookie differs from
our P4Info's. This module adds what it lacks: the reconciler loop.

While the session is primary, :meth:`SwitchSession._serve` keeps the switch equal to the
desired entities: on becoming primary (connect, reconnect, take-over) it reads everything
back and writes the make-before-break plan; after that it wakes on every change of the
desired state (diffing against what it wrote last, so a change costs no read) and every
``interval`` seconds (a full read-back again, which also repairs what someone else
changed). A write the switch refuses is reported, the cache is dropped, and the next pass
reads back and tries again after a back-off: nothing half-written is ever trusted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import finsy as fy

from controller.reconcile import EntityKey, Normalized, Plan, ReconcileError, diff, normalize_all
from controller.southbound.gate import WriteGate
from controller.southbound.inventory import SwitchAddress

ROOT = Path(__file__).resolve().parents[2]
P4INFO = ROOT / "p4" / "build" / "srv6.p4info.txtpb"
BMV2_JSON = ROOT / "p4" / "build" / "srv6.json"
MAX_BATCH = 1000
"""Updates per WriteRequest; a plan's phase larger than this is split (the updates of one
phase never depend on each other)."""

LOG = logging.getLogger("srv6lab.southbound")

Role = Literal["connecting", "primary", "backup", "down"]


@dataclass(frozen=True, slots=True)
class SessionEvent:
    """What a session reports to the controller."""

    switch: str
    kind: Literal["role", "synced", "error"]
    role: Role
    version: int = 0
    """synced: the desired version the switch now holds."""
    written: int = 0
    """synced: updates written in this pass."""
    seconds: float = 0.0
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Desired:
    version: int
    entities: tuple[Normalized, ...]
    rank: int | None = None
    """Where this switch's writes stand in a fast reroute (lowest first, through the
    session's :class:`WriteGate`); None: write at once."""


def read_all_requests() -> list[Any]:
    """Wildcard reads of everything the reconciler owns."""
    return [fy.P4TableEntry(), fy.P4ActionProfileMember(), fy.P4ActionProfileGroup()]


class SwitchSession:
    def __init__(
        self,
        address: SwitchAddress,
        *,
        schema: fy.P4Schema,
        p4info: Path = P4INFO,
        election_id: int = 10,
        interval: float = 30.0,
        on_event: Callable[[SessionEvent], None] = lambda _e: None,
        gate: WriteGate | None = None,
    ) -> None:
        self.address = address
        self.gate = gate
        self.schema = schema
        self.interval = interval
        self.on_event = on_event
        blob: Path | bytes = BMV2_JSON if address.kind == "bmv2" else b""
        options = fy.SwitchOptions(
            p4info=p4info,
            p4blob=blob,
            device_id=address.device_id,
            initial_election_id=election_id,
            ready_handler=self._serve,
        )
        self.switch = fy.Switch(address.name, address.p4runtime, options)
        self.role: Role = "connecting"
        self.desired: Desired | None = None
        self.synced_version = -1
        self.last_error: tuple[int, str] | None = None
        """(desired version, message) of the last pass the switch refused."""
        self._installed: dict[EntityKey, Normalized] | None = None
        self._wake = asyncio.Event()
        self._full = True
        self._task: asyncio.Task[None] | None = None
        self.switch.ee.on(fy.SwitchEvent.CHANNEL_DOWN, self._channel_down)

    @property
    def name(self) -> str:
        return self.address.name

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self.switch.run(), name=f"session:{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        self._set_role("down")

    def set_desired(
        self, version: int, entities: Sequence[Normalized], *, rank: int | None = None
    ) -> None:
        """The switch should hold ``entities``; an unchanged set only moves the version
        (a switch that held the old one holds the new one, nothing is written). With a
        ``rank``, the pass that writes them waits for the gate (lowest rank first)."""
        new = tuple(entities)
        old = self.desired
        if old is not None and old.entities == new:
            if self.synced_version == old.version:
                self.synced_version = version
            self.desired = Desired(version, new)
            return
        self.desired = Desired(version, new, rank)
        self._wake.set()

    def touch(self, version: int) -> None:
        """A new version that changes nothing on this switch."""
        if self.desired is not None:
            self.set_desired(version, self.desired.entities)

    def resync(self) -> None:
        """Read everything back on the next pass (a periodic pass does this anyway)."""
        self._full = True
        self._wake.set()

    # -- events ------------------------------------------------------------------------------

    def _set_role(self, role: Role) -> None:
        if role != self.role:
            self.role = role
            self.on_event(SessionEvent(self.name, "role", role))

    def _channel_down(self, _sw: Any = None) -> None:
        self._installed = None
        self._full = True
        self._set_role("down")

    # -- the reconciler loop -----------------------------------------------------------------

    async def _serve(self, sw: fy.Switch) -> None:
        """finsy's ready handler: runs while this channel is ready; cancelled when the
        role changes (finsy starts it again)."""
        if not sw.is_primary:
            self._installed = None
            self._set_role("backup")
            return
        self._set_role("primary")
        self._full = True
        backoff = 0.2
        while True:
            self._wake.clear()
            ok = await self._pass(sw)
            if ok:
                backoff = 0.2
                try:
                    await asyncio.wait_for(self._wake.wait(), self.interval)
                except TimeoutError:
                    self._full = True
            else:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _pass(self, sw: fy.Switch) -> bool:
        ranked = self.desired is not None and self.desired.rank is not None
        if ranked and self.gate is not None:
            assert self.desired is not None and self.desired.rank is not None
            # the gate before the diff: a session that waits takes no loop time from the
            # ones writing ahead of it (a diff made meanwhile also held back their sends,
            # which start on the loop's next round)
            async with self.gate.slot(self.desired.rank):
                return await self._pass_now(sw)
        return await self._pass_now(sw)

    async def _pass_now(self, sw: fy.Switch) -> bool:
        desired = self.desired
        if desired is None:
            return True
        started = time.monotonic()
        try:
            if self._full or self._installed is None:
                have: Sequence[Any] = await self._read_all(sw)
                self._full = False
            else:
                have = list(self._installed.values())
            plan = diff(desired.entities, have, self.schema)
            written = await self._write(sw, plan)
        except (fy.P4ClientError, ReconcileError, ValueError) as exc:
            self._installed = None
            self._full = True
            LOG.warning("switch %s: reconcile failed: %s", self.name, exc)
            self.last_error = (desired.version, str(exc))
            self.on_event(
                SessionEvent(self.name, "error", self.role, desired.version, detail=str(exc))
            )
            return False
        self._installed = {n.key: n for n in desired.entities}
        self.synced_version = desired.version
        self.on_event(
            SessionEvent(
                self.name,
                "synced",
                self.role,
                desired.version,
                written,
                time.monotonic() - started,
            )
        )
        return True

    async def _write(self, sw: fy.Switch, plan: Plan) -> int:
        written = 0
        for batch in plan.updates():
            for i in range(0, len(batch), MAX_BATCH):
                chunk = batch[i : i + MAX_BATCH]
                await sw.write(chunk)
                written += len(chunk)
        return written

    async def read_back(self) -> list[Normalized]:
        """Everything the switch holds now (for a dry-run diff); needs the channel up."""
        return await self._read_all(self.switch)

    async def _read_all(self, sw: fy.Switch) -> list[Normalized]:
        actual: list[Any] = []
        reader: Any = sw.read
        for request in read_all_requests():
            actual.extend([e async for e in reader(request)])
        return normalize_all(actual, self.schema)
