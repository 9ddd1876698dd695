"""The controller, unchanged, on a BMv2 lab (leaf-spine-2x4, simple_switch_grpc in every
switch namespace): connectivity for every host pair, a 2-disjoint intent's packets on both
spines (my_sid counters read over P4Runtime), reroute after an admin failure between two
BMv2 switches (the lab port behind BMv2's patch goes down, never BMv2's own interface,
behavioral-model #1215) with the switches in sync after it and after the restore; and the
parity command: kernel and BMv2 hold the same entries and send packets over the same SIDs,
before and after the same failure."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.topology import Topology, load
from tests.bmv2.bmv2_support import bmv2_lab_or_skip

ROOT = Path(__file__).resolve().parents[2]
TOPOLOGY = ROOT / "topologies" / "leaf-spine-2x4.yaml"
PREFIX = f"srv6lab-bc{os.getpid()}-"


@pytest.fixture(scope="module")
def topo() -> Topology:
    return load(TOPOLOGY)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, topo: Topology) -> Iterator[Path]:
    """A BMv2 lab with the controller; yields its run directory."""
    bmv2_lab_or_skip()
    from lab.controller_proc import ControllerOptions
    from lab.runtime import RunDir, environment
    from lab.session import running_lab

    run_dir = tmp_path_factory.mktemp("bmv2-ctl") / "run"
    with (
        environment(SRV6LAB_RUN_DIR=str(run_dir), SRV6LAB_NETNS_PREFIX=PREFIX),
        running_lab(topo, "bmv2", run=RunDir(run_dir), controller=ControllerOptions()),
    ):
        yield run_dir


def srv6lab(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "lab.cli", *args],
        capture_output=True, text=True, check=False, timeout=300, cwd=ROOT,
    )  # fmt: skip
    if check:
        assert proc.returncode == 0, f"srv6lab {' '.join(args)}: {proc.stdout}{proc.stderr}"
    return proc


def sid_hits(run_dir: Path) -> dict[str, int]:
    """Packets counted by each switch's my_sid entries (read as a backup client)."""
    from lab.parity import read_switches

    _, counters = read_switches(run_dir / "switches.json")
    hits: dict[str, int] = {}
    for (switch, _entry), packets in counters.items():
        hits[switch] = hits.get(switch, 0) + packets
    return hits


def send(topo: Topology, src: str, dst: str) -> None:
    from lab.parity import send_bursts

    send_bursts(topo, PREFIX, [(src, dst)])


def wait_counted(run_dir: Path, before: dict[str, int], at_least: int) -> dict[str, int]:
    """Per-switch SID hits since ``before``, once the egress has counted ``at_least``
    (BMv2 forwards in its own threads: the last packets may still be inside it)."""
    deadline = time.monotonic() + 30
    while True:
        after = sid_hits(run_dir)
        delta = {s: after.get(s, 0) - before.get(s, 0) for s in after}
        if delta.get("leaf4", 0) >= at_least or time.monotonic() > deadline:
            return delta
        time.sleep(0.1)  # polling the counters


def test_the_controller_connects_every_host_and_stays_in_sync(lab: Path) -> None:
    assert "56/56" in srv6lab("lab", "pingall").stdout
    assert "6 of 6 switches in sync" in srv6lab("intent", "diff").stdout
    status = srv6lab("controller", "status").stdout
    assert "6 of 6 switches hold it" in status, status


def test_a_disjoint_intent_uses_both_spines(lab: Path, topo: Topology) -> None:
    added = srv6lab("intent", "add", "disjoint", "h1", "h7", "-k", "2", "--id", "pair").stdout
    assert "installed" in added, added
    try:
        before = sid_hits(lab)
        send(topo, "h1", "h7")
        # h1 -> h7: 16 flows x 2 packets, each decapsulated at leaf4 (uN + uDT6 there)
        delta = wait_counted(lab, before, 2 * 32)
        assert delta["spine1"] > 0 and delta["spine2"] > 0, delta
        # h7 answers some datagrams with ICMPv6 port unreachable (nothing listens; rate
        # limited), which crosses a spine on the way back: at least the 32 forward ones
        assert delta["spine1"] + delta["spine2"] >= 32, delta
        assert delta["leaf2"] == delta["leaf3"] == 0, delta
    finally:
        srv6lab("intent", "delete", "pair")


def test_reroute_after_an_admin_failure_between_two_bmv2_switches(
    lab: Path, topo: Topology
) -> None:
    srv6lab("intent", "add", "disjoint", "h1", "h7", "-k", "2", "--id", "pair")
    try:
        srv6lab("lab", "fail", "leaf1", "spine1", "--kind", "admin")
        try:
            from lab.parity import wait_in_sync

            wait_in_sync(lab, down="leaf1-spine1")
            # the fast reroute (the link's members out of the groups at its ends, in place)
            # was taken by both BMv2s: PI d28b31e throws on it unless patched (README)
            log = (lab / "controller.log").read_text()
            assert "fast reroute of leaf1-spine1" in log, log[-3000:]
            assert "not applied" not in log, log[-3000:]
            assert "56/56" in srv6lab("lab", "pingall").stdout
            before = sid_hits(lab)
            send(topo, "h1", "h7")
            delta = wait_counted(lab, before, 2 * 32)
            # One path left: its segment list needs no spine waypoint (leaf4's uN and
            # uDT6 only), so the spines count nothing; every packet reaches leaf4's SIDs.
            assert delta["leaf4"] == 2 * 32, f"not every packet arrived: {delta}"
            assert delta["spine1"] == 0, f"packets through the failed link: {delta}"
            assert srv6lab("intent", "diff").returncode == 0
        finally:
            srv6lab("lab", "restore", "leaf1", "spine1")
        from lab.parity import wait_in_sync

        wait_in_sync(lab)
        assert "0 down" in srv6lab("controller", "status").stdout
        assert "56/56" in srv6lab("lab", "pingall").stdout
        before = sid_hits(lab)
        send(topo, "h1", "h7")
        delta = wait_counted(lab, before, 2 * 32)
        assert delta["spine1"] > 0 and delta["spine2"] > 0, f"not back on both: {delta}"
    finally:
        srv6lab("intent", "delete", "pair")


def test_parity_of_kernel_and_bmv2(tmp_path: Path) -> None:
    """Runs after the module's lab is gone only in the sense that it uses its own run
    directories and namespaces; both kinds come up one after the other."""
    bmv2_lab_or_skip()
    env = {**os.environ, "SRV6LAB_RUN_DIR": str(tmp_path / "run")}
    proc = subprocess.run(
        [sys.executable, "-m", "lab.cli", "lab", "parity", str(TOPOLOGY),
         "--intent", "disjoint h1 h7 -k 2", "--fail", "leaf1", "spine1"],
        capture_output=True, text=True, check=False, timeout=600, cwd=ROOT, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "parity: kernel and bmv2 agree" in proc.stdout
