"""The controller on fat-tree-4 with real switches: ``lab up --controller`` installs
connectivity (every host reaches every other); a 2-disjoint intent's packets take both of
its link-disjoint paths (the per-SID counters of the core switches the paths cross, read
over P4Runtime); killing and restarting the controller under traffic loses no packet and
writes nothing."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import finsy as fy
import pytest

from controller.topology import Topology
from lab.controller_proc import ControllerOptions, start_controller
from lab.session import RunningLab, running_lab
from tests.integration.conftest import Cli
from tests.integration.switchd_support import P4INFO, Flow, send_udp

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def lab(topology: Callable[[str], Topology], private_netns: str) -> Iterator[RunningLab]:
    with running_lab(topology("fat-tree-4"), controller=ControllerOptions()) as running:
        yield running


def srv6lab(*args: str) -> str:
    """``srv6lab ARGS`` with the session's run directory; must succeed; its output."""
    return Cli(Path(os.environ["SRV6LAB_RUN_DIR"])).ok(*args)


def sid_packets(lab: RunningLab, switch: str) -> int:
    """Packets counted by the switch's my_sid entries, read over P4Runtime as a backup
    client (election id 1: the controller stays primary)."""
    from controller.southbound import load_inventory

    address = next(s for s in load_inventory(lab.run.path / "switches.json") if s.name == switch)
    options = fy.SwitchOptions(
        p4info=P4INFO, p4blob=b"", device_id=address.device_id, initial_election_id=1
    )

    async def read() -> int:
        async with fy.Switch(switch, address.p4runtime, options) as sw:
            assert not sw.is_primary
            counts = [
                c.data.packet_count
                async for c in sw.read(fy.P4DirectCounterEntry("my_sid_counter"))
                if c.data is not None
            ]
            return sum(counts)

    return asyncio.run(asyncio.wait_for(read(), 30))


def test_lab_up_with_the_controller_connects_every_host(lab: RunningLab) -> None:
    assert lab.controller is not None
    out = srv6lab("lab", "pingall")
    assert "240/240" in out, out
    listed = srv6lab("intent", "list")
    assert "connectivity" in listed and "installed" in listed


def test_a_disjoint_intent_uses_both_link_disjoint_paths(lab: RunningLab) -> None:
    added = srv6lab("intent", "add", "disjoint", "h1", "h16", "-k", "2", "--id", "pair")
    assert "installed" in added, added
    cores = sorted({line.split("->")[3].strip() for line in added.splitlines()
                    if line.strip().startswith(("1.", "2.")) and "h1 ->" in line})  # fmt: skip
    assert len(cores) == 2, f"paths do not cross two cores: {added}"
    before = {c: sid_packets(lab, c) for c in ("core1", "core2", "core3", "core4")}
    dst = str(next(h for h in lab.network.topology.hosts if h.name == "h16").address)
    send_udp("h1", dst, range(20000, 20064), count=3)
    after = {c: sid_packets(lab, c) for c in before}
    delta = {c: after[c] - before[c] for c in before}
    for core in cores:
        assert delta[core] > 0, f"no packet took the path through {core}: {delta}"
    for core in set(before) - set(cores):
        assert delta[core] == 0, f"packets through {core}, which no path crosses: {delta}"
    assert sum(delta.values()) >= 64 * 3, delta
    srv6lab("intent", "delete", "pair")


def test_restarting_the_controller_under_traffic_loses_nothing_and_writes_nothing(
    lab: RunningLab,
) -> None:
    assert lab.controller is not None
    srv6lab("intent", "add", "disjoint", "h3", "h14", "-k", "2", "--id", "steady")
    h14 = str(next(h for h in lab.network.topology.hosts if h.name == "h14").address)
    flow = Flow("h3", "h14", h14, rate=1000, seconds=6)
    restarted = None
    try:
        lab.controller.stop()
        log = lab.run.path / "controller.log"
        mark = log.stat().st_size
        restarted = start_controller(
            Path(lab.network.topology.source).resolve(), lab.run.path, ControllerOptions()
        )
        sent, received = flow.result()
        assert sent >= 5000
        assert received == sent, f"lost {sent - received} of {sent} packets across the restart"
        text = log.read_text()[mark:]
        assert "updates in" not in text, f"the restarted controller wrote:\n{text}"
        assert "all 20 switches programmed" in text
        assert "steady" in srv6lab("intent", "list")
    finally:
        flow.close()
        if restarted is not None:
            restarted.stop()
        # the module's lab stops its own (already stopped) controller at teardown
