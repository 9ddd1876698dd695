"""The convergence report (lab/report.py) from synthetic generator results: the schema
issue #5 asks for, the statistics, the PNG; and the benchmark's link choice."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from controller.topology import load
from lab import report as rpt
from lab.convergence import crossing_link, default_link, parse_place
from lab.errors import LabError
from lab.faults import Fault, PortAction, Stamp
from lab.traffic.generator import TrafficResult

ROOT = Path(__file__).resolve().parents[2]
MS = 1_000_000
T0 = 10_000 * MS


def traffic(lost: dict[int, set[int]], sent: int = 3000) -> TrafficResult:
    flows = []
    for flow_id in (1, 2):
        seqs = [s for s in range(sent) if s not in lost.get(flow_id, set())]
        send = [T0 + s * MS for s in seqs]
        flows.append(
            {
                "flow_id": flow_id,
                "src": "h1",
                "dst": f"h{flow_id + 4}",
                "sport": 40000 + flow_id,
                "dport": 47000,
                "sent": sent,
                "send_errors": 0,
                "seq": seqs,
                "send_ns": send,
                "recv_ns": [t + 40_000 for t in send],
            }
        )
    sender = {"started_ns": T0, "stopped_ns": T0 + sent * MS, "ticks": sent, "late_ticks": 0,
              "max_lateness_ns": 200_000, "stalls": [], "realtime": "SCHED_FIFO 20"}  # fmt: skip
    return TrafficResult(1000.0, T0, T0 + sent * MS + 200 * MS, flows, sender, None)


def fault(fail_ms: int = 1000, restore_ms: int = 2000) -> Fault:
    return Fault(
        "admin",
        ("agg1", "core1"),
        (PortAction("down", "agg1", "p-agg1", "agg1-eth3", "fe80::53:201:3"),),
        "both ends of agg1-core1 administratively down",
        injected=Stamp(T0 + fail_ms * MS, 1),
        applied=Stamp(T0 + fail_ms * MS + 100_000, 2),
        restored=Stamp(T0 + restore_ms * MS, 3),
        restore_done=Stamp(T0 + restore_ms * MS + 5 * MS, 4),
    )


def build(reps: list[dict[str, Any]]) -> dict[str, Any]:
    return rpt.build(
        topology="fat-tree-4",
        switch_kind="kernel",
        kind="admin",
        place="agg1-core1",
        models="both ends down",
        rate_pps=1000.0,
        flows=2,
        programmed_by="test",
        repetitions=reps,
    )


def test_report_has_what_issue_5_asks_for() -> None:
    rep0 = rpt.repetition(0, fault(), traffic({1: {1000, 1001}, 2: set()}), {1, 2})
    rep1 = rpt.repetition(1, fault(), traffic({1: {1000}, 2: {1000, 1001, 1002, 1003}}), {1, 2})
    report = build([rep0, rep1])
    assert rpt.problems(report) == []
    # Windows over every affected flow of every repetition: 3, 0, 2, 5 ms.
    assert report["loss_window_ms"]["max"] == pytest.approx(5.0)
    assert report["loss_window_ms"]["p50"] == pytest.approx(2.5)
    assert report["loss_window_ms"]["flows"] == 4
    assert report["packets_lost"] == 2 + 0 + 1 + 4
    assert report["restore_packets_lost"] == 0
    assert report["generator_kept_up"] is True
    assert report["repaired_before_restore"] is True
    assert report["controller"] is None and report["collective"] is None
    flow = report["repetitions"][0]["flows"][0]
    assert flow["failure"]["loss_window_ms"] == pytest.approx(3.0)
    assert flow["failure"]["recovered_before_restore"] is True
    assert report["repetitions"][0]["fault"]["injected"]["monotonic_ns"] == T0 + 1000 * MS
    json.dumps(report)  # plain JSON


def test_unrepaired_failure_is_said_so() -> None:
    gray = set(range(1000, 2003))  # lost from the failure until just after the restore
    report = build([rpt.repetition(0, fault(), traffic({1: gray, 2: gray}), {1, 2})])
    assert report["repaired_before_restore"] is False
    assert any("did not recover until the link was restored" in n for n in report["notes"])


def test_unaffected_flows_stay_out_of_the_statistics() -> None:
    report = build([rpt.repetition(0, fault(), traffic({2: {1000, 1001}}), {1})])
    assert report["loss_window_ms"]["flows"] == 1
    assert report["packets_lost"] == 0


def test_generator_that_fell_behind_is_reported() -> None:
    result = traffic({})
    result.flows[0]["sent"] = 2000  # a third of its schedule missing
    report = build([rpt.repetition(0, fault(), result, {1, 2})])
    assert report["generator_kept_up"] is False


def test_problems_name_what_is_missing() -> None:
    report = build([rpt.repetition(0, fault(), traffic({}), {1, 2})])
    del report["packets_lost"]
    assert rpt.problems(report) == ["missing 'packets_lost'"]
    report = build([rpt.repetition(0, fault(), traffic({}), {1, 2})])
    del report["loss_window_ms"]["p99"]
    assert "loss_window_ms has no 'p99'" in rpt.problems(report)


def test_png_timeline(tmp_path: Path) -> None:
    result = traffic({1: {1000, 1001}})
    report = build([rpt.repetition(0, fault(), result, {1, 2})])
    out = tmp_path / "timeline.png"
    rpt.write_png(report, [result], out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_default_link_is_a_core_link_crossed_upward() -> None:
    topo = load(ROOT / "topologies" / "fat-tree-4.yaml")
    assert default_link(topo) == ("agg1", "core1")
    assert parse_place(topo, "agg3-core2") == ("agg3", "core2")
    assert crossing_link(topo, "switch", ("core2",))[1] == "core2"
    with pytest.raises(LabError, match="no link between agg1 and core3"):
        parse_place(topo, "agg1-core3")
    with pytest.raises(LabError, match="not a node"):
        parse_place(topo, "x-y")


def test_losses_outside_the_measured_flows_and_windows_are_counted() -> None:
    # flow 2 was not seen on the link but lost packets at the failure; flow 1 lost some
    # 500 ms after the restore was done (the controller taking the link back)
    rep = rpt.repetition(
        0, fault(), traffic({1: {1001, 2600, 2601}, 2: {1002, 1003}}), affected={1}
    )
    flow1 = next(f for f in rep["flows"] if f["flow_id"] == 1)
    assert flow1["failure"]["loss_began_after_fault_ms"] == pytest.approx(0.0)
    report = build([rep])
    assert report["unaffected_packets_lost"] == 2
    assert report["other_packets_lost"] == 2
    assert any("not seen crossing" in note for note in report["notes"])
    assert any("outside the failure and restore" in note for note in report["notes"])


def test_an_overloaded_data_plane_and_losses_before_the_fault_are_said_so() -> None:
    # flow 1 loses from 50 ms before the fault until 20 ms after it, and both flows lose
    # 2 % of their packets elsewhere: the switches did not carry the load
    elsewhere = set(range(100, 160))
    lost = {1: set(range(950, 1020)) | elsewhere, 2: set(elsewhere)}
    rep = rpt.repetition(0, fault(), traffic(lost), affected={1, 2})
    flow1 = next(f for f in rep["flows"] if f["flow_id"] == 1)
    # (from the last packet that arrived before the run: 949 ms, the fault at 1,000)
    assert flow1["failure"]["loss_began_after_fault_ms"] == pytest.approx(-51.0)
    notes = build([rep])["notes"]
    assert any("did not carry the offered load" in n for n in notes), notes
    assert any("1 loss window(s) began before the fault" in n for n in notes), notes
    quiet = build([rpt.repetition(0, fault(), traffic({1: {1001}}), affected={1, 2})])
    assert not any("offered load" in n or "before the fault" in n for n in quiet["notes"])
