"""Failures under probe traffic on leaf-spine-2x4 with the compiled ECMP fabric (no
controller): one test per failure kind, each a short convergence run whose report must be
complete; traffic recovers where the data plane can recover it (admin, carrier, switch:
the leaf's ECMP group drops the dead member), and after the restore for a gray failure.
Also: fail / restore through the CLI from another process, link-locals put back. No
timing asserts: the figures belong to `srv6lab bench convergence`."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.topology import Topology
from lab import report as rpt
from lab.convergence import ConvergenceConfig, program_with_fabric, run_convergence
from lab.session import RunningLab, running_lab

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def lab(
    topology: Callable[[str], Topology], private_netns: str
) -> Iterator[tuple[RunningLab, Topology]]:
    topo = topology("leaf-spine-2x4")
    with running_lab(topo) as running:
        program_with_fabric(topo, running)
        yield running, topo


def already_programmed(_topo: Topology, _lab: RunningLab) -> str:
    return "programmed once by the test fixture (lab/fabric.py), no controller"


def converge(lab: tuple[RunningLab, Topology], kind: str, place: tuple[str, ...]) -> Any:
    running, topo = lab
    cfg = ConvergenceConfig(
        kind=kind,
        fail=place,
        flows=4,
        rate_pps=500.0,
        repeat=1,
        before_s=0.6,
        failed_s=0.6,
        after_s=0.8,
    )
    return run_convergence(topo, running, cfg, program=already_programmed, progress=print)


def affected(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for rep in report["repetitions"] for f in rep["flows"] if f["affected"]]


def assert_complete(report: dict[str, Any]) -> None:
    assert rpt.problems(report) == []
    json.dumps(report)
    assert affected(report), "no probe flow was seen on the link before the failure"
    for rep in report["repetitions"]:
        for flow in rep["flows"]:
            # Traffic flows again at the end of the run: the last packets arrived.
            assert flow["received"] > 0
            assert flow["restore"]["recovered"], flow


@pytest.mark.parametrize(
    ("kind", "place"),
    [("admin", ("leaf1", "spine1")), ("carrier", ("leaf1", "spine1")), ("switch", ("spine1",))],
)
def test_data_plane_recovers(lab: tuple[RunningLab, Topology], kind: str, place: tuple) -> None:
    result = converge(lab, kind, place)
    report = result.report
    assert_complete(report)
    assert report["failure"]["kind"] == kind
    for flow in affected(report):
        assert flow["failure"]["recovered"], flow
        assert flow["failure"]["recovered_before_restore"], flow
    assert report["repaired_before_restore"] is True


def test_gray_is_not_repaired_without_controller(
    lab: tuple[RunningLab, Topology], tmp_path: Path
) -> None:
    result = converge(lab, "gray", ("leaf1", "spine1"))
    report = result.report
    assert_complete(report)
    # Nothing sees a gray link: every affected flow lost packets until the restore.
    for flow in affected(report):
        assert flow["failure"]["packets_lost"] > 0
        assert not flow["failure"]["recovered_before_restore"]
    assert report["repaired_before_restore"] is False
    assert any("gray" in note for note in report["notes"])
    rpt.write_png(report, result.traffic, tmp_path / "gray.png")
    assert (tmp_path / "gray.png").stat().st_size > 0


def test_cli_fail_and_restore_from_another_process(
    lab: tuple[RunningLab, Topology], cli: Any, probe: Any
) -> None:
    running, topo = lab
    link = topo.link("leaf2", "spine2")
    end = link.interface_at("leaf2")
    done = cli("lab", "fail", "leaf2", "spine2", "--kind", "admin")
    assert done.returncode == 0, done.stderr
    assert "monotonic" in done.stdout
    assert (running.run.path / "faults.json").exists()
    assert probe.links("leaf2")[end.name]["operstate"] == "DOWN"
    again = cli("lab", "fail", "spine2", "leaf2", "--kind", "gray")
    assert again.returncode == 1 and "already has an active admin failure" in again.stderr
    done = cli("lab", "restore")
    assert done.returncode == 0, done.stderr
    assert not (running.run.path / "faults.json").exists()
    assert probe.links("leaf2")[end.name]["operstate"] == "UP"
    assert f"{end.link_local}/64" in probe.addresses("leaf2")[end.name]
    peer = link.interface_at("spine2")
    assert probe.ping("leaf2", str(peer.link_local), end.name)
    nothing = cli("lab", "restore", "leaf2", "spine2")
    assert nothing.returncode == 1 and "no active failure" in nothing.stderr


def test_cli_scenario(lab: tuple[RunningLab, Topology], cli: Any, tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "- {at: 0, fail: [leaf3, spine1], kind: carrier}\n"
        "- {at: 0.2, fail: [spine2], kind: switch}\n"
        "- {at: 0.4, restore: all}\n"
    )
    done = cli("lab", "scenario", str(path))
    assert done.returncode == 0, done.stderr
    assert "restore all" in done.stdout and "switch" in done.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("- {at: 0, fail: [leaf3, spine9], kind: carrier}\n")
    done = cli("lab", "scenario", str(bad))
    assert done.returncode == 1
    assert f"{bad}:1: [0].fail: no node 'spine9'" in done.stderr


@pytest.mark.parametrize("pattern", ["all-reduce", "all-to-all"])
def test_collective_iterations(
    lab: tuple[RunningLab, Topology], tmp_path: Path, pattern: str
) -> None:
    from lab.convergence import gpu_ranks
    from lab.traffic.collective import bus_factor
    from lab.traffic.generator import CollectiveSpec, TrafficGenerator, TrafficSpec

    running, topo = lab
    netns = {name: info.netns for name, info in running.state.nodes.items()}
    ranks = gpu_ranks(topo, netns, 4)
    spec = TrafficSpec(
        duration_s=20.0, collective=CollectiveSpec(pattern, ranks, 256 * 1024, iterations=2)
    )
    with TrafficGenerator(spec, tmp_path / "traffic.json") as gen:
        result = gen.finish()
    assert result.collective is not None
    iterations = result.collective["iterations"]
    assert [it["index"] for it in iterations] == [0, 1]
    for it in iterations:
        assert it["seconds"] > 0
        assert it["busbw_GBps"] == pytest.approx(it["algbw_GBps"] * bus_factor(pattern, 4))
