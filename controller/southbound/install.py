"""A first, one-shot southbound: connect to each switch with finsy, become primary, push
srv6.p4's pipeline if the switch lacks it, and insert the compiled entities in batches,
all switches at once on one asyncio loop.

This is what the demo and the lab need today. It only inserts (the switches must not
already hold the entries): the supervised per-switch sessions with reconnects, read-back
and the reconciler's make-before-break diff (issue 4) replace it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller.southbound.inventory import SwitchAddress

ROOT = Path(__file__).resolve().parents[2]
P4INFO = ROOT / "p4" / "build" / "srv6.p4info.txtpb"
BMV2_JSON = ROOT / "p4" / "build" / "srv6.json"
BATCH = 500


class InstallError(RuntimeError):
    """A switch refused a write or could not be reached; the message names the switch."""


@dataclass(frozen=True, slots=True)
class Installed:
    switch: str
    entries: int
    seconds: float


async def install_switch(
    switch: SwitchAddress,
    entities: Sequence[Any],
    *,
    p4info: Path = P4INFO,
    election_id: int = 10,
    timeout: float = 60.0,
) -> Installed:
    import finsy as fy

    # switchd implements srv6.p4 itself; BMv2 needs the compiled program with the pipeline.
    blob: Path | bytes = BMV2_JSON if switch.kind == "bmv2" else b""
    options = fy.SwitchOptions(
        p4info=p4info, p4blob=blob, device_id=switch.device_id, initial_election_id=election_id
    )
    started = time.monotonic()
    try:
        async with (
            asyncio.timeout(timeout),
            fy.Switch(switch.name, switch.p4runtime, options) as sw,
        ):
            for i in range(0, len(entities), BATCH):
                await sw.insert(list(entities[i : i + BATCH]))
    except TimeoutError:
        raise InstallError(
            f"{switch.name} ({switch.p4runtime}): no answer in {timeout:g} s"
        ) from None
    except fy.P4ClientError as exc:
        raise InstallError(f"{switch.name}: write refused: {exc}") from None
    return Installed(switch.name, len(entities), time.monotonic() - started)


async def install_all(
    switches: Sequence[SwitchAddress],
    entities: Mapping[str, Sequence[Any]],
    *,
    p4info: Path = P4INFO,
) -> list[Installed]:
    """Install every switch's entities concurrently; raises the first error (naming the
    switch) after all attempts finished."""
    results = await asyncio.gather(
        *(install_switch(s, entities.get(s.name, ()), p4info=p4info) for s in switches),
        return_exceptions=True,
    )
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        raise InstallError("; ".join(str(e) for e in errors))
    return [r for r in results if isinstance(r, Installed)]
