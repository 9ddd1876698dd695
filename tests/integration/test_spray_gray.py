"""Spraying over disjoint SRv6 paths from the hosts, with a gray failure: the path through
the failed link is retired at its first loss, probed while the link drops everything, and
re-admitted after the restore; the collective finishes every iteration, and the spray
routes leave the host namespaces afterwards. Real packets, real namespaces, the
controller's GetPaths; no timing asserts."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from controller.topology import Topology, load
from lab.collectives import BenchConfig, run_bench, scaled_topology, write_png
from lab.controller_proc import ControllerOptions
from lab.session import running_lab
from lab.traffic.spray import MARK

pytestmark = pytest.mark.root
ROOT = Path(__file__).resolve().parents[2]


def test_spray_retires_the_gray_path_and_readmits_it(
    topology: Callable[[str], Topology], private_netns: str, tmp_path: Path
) -> None:
    source = ROOT / "topologies" / "leaf-spine-2x4.yaml"
    topo = load(scaled_topology(source, 5.0, tmp_path / "leaf-spine-2x4.yaml"))
    cfg = BenchConfig(
        pattern="all-to-all",
        modes=("spray",),
        hosts=("h1", "h3"),
        size=256 * 1024,
        iterations=8,
        fail=("leaf1", "spine1"),
        kind="gray",
        failed_s=0.5,
    )
    lines: list[str] = []
    with running_lab(topo, controller=ControllerOptions()) as lab:
        report = run_bench(topo, lab, cfg, tmp_path, lines.append)
        rules = subprocess.run(
            ["ip", "-n", lab.state.netns_prefix + "h1", "-6", "rule", "show"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    assert f"fwmark {MARK:#x}" not in rules, "the spray rules were not removed"

    m = report["modes"]["spray"]
    assert len(m["cct_ms"]) == cfg.iterations, lines
    assert m["progress_lost_ms"] is not None and m["failure_iterations"]
    spray = m["spray"]
    assert m["paths_per_flow"] == [2]  # leaf1 has two spines: two edge-disjoint paths
    events = spray["path_events"]
    failed = [e for e in events if "spine1" in e["nodes"] and e["nodes"][1] in ("leaf1",)]
    retired = [e for e in failed if e["event"] == "retired"]
    assert retired, f"no retirement of the path through leaf1-spine1: {events}"
    assert retired[0]["src"] == 0 and retired[0]["reason"]  # h1 -> h3 crosses leaf1->spine1
    fault = m["fault"]
    assert fault["injected_ns"] <= retired[0]["monotonic_ns"]
    readmitted = [
        e for e in failed if e["event"] == "readmitted" and e["flow"] == retired[0]["flow"]
    ]
    assert readmitted, f"the path was not re-admitted after the restore: {events}"
    assert readmitted[-1]["monotonic_ns"] >= fault["restored_ns"]
    assert all(p["healthy_at_end"] for p in spray["paths"])
    # The failure never cost the path through spine2 (a flow's last healthy path is kept
    # meanwhile); the receiver saw and counted reordering. Outside the failure a verdict
    # on spine2 is possible: one CI run (session 6) retired it once, when is not known.
    spine2 = [
        e
        for e in events
        if "spine2" in e["nodes"]
        and e["event"] == "retired"
        and fault["injected_ns"] <= e["monotonic_ns"] <= fault["restored_ns"]
    ]
    assert not spine2, f"spine2's path retired during the failure: {spine2}, fault {fault}"
    assert sum(spray["reorder_histogram"].values()) > 0
    assert spray["retransmits"] > 0
    # Counters moved on both spines: both paths carried traffic.
    assert m["link_bytes"]["leaf1->spine1"] > 0 and m["link_bytes"]["leaf1->spine2"] > 0
    # Both flows cross leaf1-spine1 (and their acks, back). Each kept receiving on spine2:
    # no gap in its deliveries lasted the failure (0.5 s).
    windows = m["recovery_window_ms"]
    assert windows["flows"] == 2 and sorted(windows["by_flow"]) == ["h1->h3/0", "h3->h1/0"], windows
    assert windows["max"] < cfg.failed_s * 1000, windows
    assert report["recovery_window_ms"]["spray"]["flows"] == 2
    out = tmp_path / "spray.png"
    write_png(report, out)
    assert out.read_bytes()[:4] == b"\x89PNG"
