"""The convergence report (DESIGN.md, "Measuring convergence"): JSON for machines, a PNG
timeline for people.

The JSON carries, for one topology, switch kind and failure (kind and place):

- ``loss_window_ms`` {p50, p99, max, flows}: over every affected flow of every repetition
  (a flow is affected when its packets were seen leaving through the failed link just
  before the failure); a flow that lost nothing counts with 0;
- ``packets_lost`` (to the failures) and ``restore_packets_lost`` (to the restores);
- ``generator_kept_up``: every repetition's generator sent what its schedule asked for
  (within 2 %), with ``offered_pps_per_flow`` and the sender's lateness;
- ``repaired_before_restore``: every affected flow recovered while the failure lasted;
  false for failures nothing repairs (a gray failure without a controller);
- ``repetitions``: per repetition, the fault's timestamps (CLOCK_MONOTONIC and wall ns),
  every flow's loss to the failure and to the restore, and the ``controller`` timeline;
- ``controller``: the controller's own timeline (event seen, reroute computed, last switch
  acknowledged), null when no controller ran;
- ``collective``: completion time and algbw/busbw per iteration, null when none ran.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lab.faults import Fault, Stamp
from lab.traffic.generator import TrafficResult
from lab.traffic.loss import EventLoss, attribute, loss_runs, percentile
from lab.traffic.probe import KEPT_UP_TOLERANCE

SCHEMA = "srv6lab-convergence/1"
REQUIRED = (
    "schema",
    "topology",
    "switch_kind",
    "failure",
    "offered_pps_per_flow",
    "flows_per_repetition",
    "loss_window_ms",
    "packets_lost",
    "restore_packets_lost",
    "generator_kept_up",
    "repaired_before_restore",
    "repetitions",
    "controller",
    "collective",
    "notes",
)
PNG_BIN_S = 0.01


def _ms(ns: int | None) -> float | None:
    return None if ns is None else round(ns / 1e6, 3)


def _stamp(stamp: Stamp | None) -> dict[str, int] | None:
    return None if stamp is None else {"monotonic_ns": stamp.monotonic_ns, "wall_ns": stamp.wall_ns}


def _done(stamp: Stamp | None, default: int) -> int:
    return default if stamp is None else stamp.monotonic_ns


def _event(loss: EventLoss) -> dict[str, Any]:
    return {
        "packets_lost": loss.packets_lost,
        "loss_window_ms": _ms(loss.window_ns),
        "arrival_window_ms": _ms(loss.arrival_window_ns),
        "runs": loss.runs,
        "recovered": loss.recovered,
    }


def repetition(
    index: int,
    fault: Fault,
    traffic: TrafficResult,
    affected: set[int],
    controller: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One repetition: what the failure and the restore cost each flow."""
    assert fault.injected is not None and fault.restored is not None
    fail_at, restore_at = fault.injected.monotonic_ns, fault.restored.monotonic_ns
    period_ns = 1e9 / traffic.rate_pps
    flows = []
    for f in traffic.flows:
        runs = loss_runs(f["sent"], f["seq"], f["send_ns"], f["recv_ns"])
        events, other = attribute(
            runs,
            [
                ("failure", fail_at, _done(fault.applied, fail_at)),
                ("restore", restore_at, _done(fault.restore_done, restore_at)),
            ],
            traffic.stopped_ns,
        )
        failure = _event(events["failure"])
        window = events["failure"].window_ns
        if window is not None and events["failure"].packets_lost:
            # Time inside the window in which the sender itself sent nothing (a CPU stall),
            # beyond the gap the lost packets explain.
            explained = (events["failure"].packets_lost + 1) * period_ns
            failure["sender_idle_ms"] = _ms(max(0, int(window - explained)))
        else:
            failure["sender_idle_ms"] = 0.0
        rec_at = events["failure"].recovered_at_ns
        # when the loss began (the last packet sent before it), after the fault's stamp
        failure["loss_began_after_fault_ms"] = (
            _ms(rec_at - window - fail_at) if rec_at is not None and window is not None else None
        )
        failure["recovered_before_restore"] = events["failure"].packets_lost == 0 or (
            rec_at is not None and rec_at < restore_at
        )
        flows.append(
            {
                "flow_id": f["flow_id"],
                "flow": f"{f['src']}->{f['dst']} udp {f['sport']}->{f['dport']}",
                "src": f["src"],
                "dst": f["dst"],
                "sport": f["sport"],
                "affected": f["flow_id"] in affected,
                "sent": f["sent"],
                "received": len(set(f["seq"])),
                "send_errors": f["send_errors"],
                "failure": failure,
                "restore": _event(events["restore"]),
                "other_packets_lost": sum(r.count for r in other),
            }
        )
    sender = traffic.sender
    duration_ns = sender.get("stopped_ns", 0) - sender.get("started_ns", 0)
    offered = duration_ns * traffic.rate_pps / 1e9
    sent_min = min((f["sent"] - f["send_errors"] for f in traffic.flows), default=0)
    return {
        "index": index,
        "fault": {
            "kind": fault.kind,
            "place": fault.place,
            "models": fault.models,
            "actions": [a.describe() for a in (*fault.actions, *fault.senses)],
            "injected": _stamp(fault.injected),
            "applied": _stamp(fault.applied),
            "restored": _stamp(fault.restored),
            "restore_done": _stamp(fault.restore_done),
            "failed_for_ms": _ms(restore_at - fail_at),
        },
        "traffic": {
            "started_ns": traffic.started_ns,
            "stopped_ns": traffic.stopped_ns,
            "offered_packets_per_flow": round(offered, 1),
            "sent_packets_per_flow_min": sent_min,
            "kept_up": offered > 0 and sent_min >= offered * (1 - KEPT_UP_TOLERANCE),
            "late_ticks": sender.get("late_ticks", 0),
            "ticks": sender.get("ticks", 0),
            "max_lateness_ms": _ms(sender.get("max_lateness_ns", 0)),
            "scheduling": sender.get("realtime", ""),
            "stalls": [
                {"at_s": round((due - traffic.started_ns) / 1e9, 3), "late_ms": _ms(late)}
                for due, late in sender.get("stalls", [])
            ],
        },
        "flows": flows,
        "controller": controller,
        "collective": _collective(traffic, fail_at, restore_at),
    }


def _collective(traffic: TrafficResult, fail_at: int, restore_at: int) -> dict[str, Any] | None:
    if traffic.collective is None:
        return None
    out = dict(traffic.collective)
    iterations = []
    for it in out.get("iterations", []):
        if it["finished_ns"] < fail_at:
            phase = "before"
        elif it["started_ns"] > restore_at:
            phase = "after"
        else:
            phase = "during"
        iterations.append({**it, "phase": phase})
    out["iterations"] = iterations
    return out


OVERLOAD_SHARE = 0.01
"""Losses outside any window above this share of all packets sent: the switches are
overloaded, and the report says so."""
EARLY_LOSS_INTERVALS = 2
"""A loss run that began more than this many packet intervals before the fault was not
started by it."""


def build(
    *,
    topology: str,
    switch_kind: str,
    kind: str,
    place: str,
    models: str,
    rate_pps: float,
    flows: int,
    programmed_by: str,
    repetitions: Sequence[dict[str, Any]],
    notes: Sequence[str] = (),
    controller: dict[str, Any] | None = None,
) -> dict[str, Any]:
    windows: list[float] = []
    unrepaired = early = 0
    lost = restore_lost = unaffected_lost = other_lost = sent = 0
    for rep in repetitions:
        for f in rep["flows"]:
            sent += f["sent"]
            restore_lost += f["restore"]["packets_lost"]
            other_lost += f["other_packets_lost"]
            if not f["affected"]:
                unaffected_lost += f["failure"]["packets_lost"]
                continue
            lost += f["failure"]["packets_lost"]
            w = f["failure"]["loss_window_ms"]
            if w is not None:
                windows.append(w)
            began = f["failure"].get("loss_began_after_fault_ms")
            if began is not None and began < -EARLY_LOSS_INTERVALS * 1000.0 / rate_pps:
                early += 1
            if not f["failure"]["recovered_before_restore"]:
                unrepaired += 1
    summary = (
        {
            "p50": round(percentile(windows, 50), 3),
            "p99": round(percentile(windows, 99), 3),
            "max": round(max(windows), 3),
            "flows": len(windows),
        }
        if windows
        else {"p50": None, "p99": None, "max": None, "flows": 0}
    )
    all_notes = list(notes)
    if unrepaired:
        all_notes.append(
            f"{unrepaired} affected flow(s) did not recover until the link was restored: "
            "nothing repaired this failure (their loss window is the failure's duration)"
        )
    if unaffected_lost:
        all_notes.append(
            f"flows not seen crossing the link lost {unaffected_lost} packets at the "
            "failure (not in the loss window figures)"
        )
    if other_lost:
        all_notes.append(
            f"{other_lost} packets were lost outside the failure and restore windows (e.g. "
            "when the controller takes a repaired link back into use, after the restore)"
        )
    if sent and other_lost > OVERLOAD_SHARE * sent:
        all_notes.append(
            f"{100.0 * other_lost / sent:.1f} % of the packets sent were lost outside the "
            "failure and restore windows: the switches did not carry the offered load, and "
            "loss windows include their own drops; offer fewer or slower flows (BMv2 on 2 "
            "cores carries about 2,000 pkt/s of fat-tree traffic)"
        )
    if early:
        all_notes.append(
            f"{early} loss window(s) began before the fault (loss_began_after_fault_ms < 0): "
            "the flow was already losing packets, so that window is not the failure's alone"
        )
    collectives = [rep["collective"] for rep in repetitions if rep.get("collective")]
    return {
        "schema": SCHEMA,
        "topology": topology,
        "switch_kind": switch_kind,
        "failure": {"kind": kind, "place": place, "models": models},
        "programmed_by": programmed_by,
        "offered_pps_per_flow": rate_pps,
        "flows_per_repetition": flows,
        "loss_window_ms": summary,
        "packets_lost": lost,
        "restore_packets_lost": restore_lost,
        "unaffected_packets_lost": unaffected_lost,
        "other_packets_lost": other_lost,
        "generator_kept_up": all(rep["traffic"]["kept_up"] for rep in repetitions),
        "repaired_before_restore": unrepaired == 0,
        "repetitions": list(repetitions),
        "controller": controller,
        "collective": collectives or None,
        "notes": all_notes,
    }


def problems(report: dict[str, Any]) -> list[str]:
    """What is missing or malformed in a report (empty when it is complete)."""
    out = [f"missing {key!r}" for key in REQUIRED if key not in report]
    if out:
        return out
    if report["schema"] != SCHEMA:
        out.append(f"schema {report['schema']!r}, expected {SCHEMA!r}")
    lw = report["loss_window_ms"]
    for key in ("p50", "p99", "max"):
        if key not in lw:
            out.append(f"loss_window_ms has no {key!r}")
        elif lw[key] is not None and not isinstance(lw[key], int | float):
            out.append(f"loss_window_ms.{key} is not a number")
    if not isinstance(report["packets_lost"], int):
        out.append("packets_lost is not an integer")
    if not isinstance(report["generator_kept_up"], bool):
        out.append("generator_kept_up is not a boolean")
    for key in ("kind", "place", "models"):
        if not report["failure"].get(key):
            out.append(f"failure.{key} is empty")
    if not report["repetitions"]:
        out.append("no repetitions")
    for rep in report["repetitions"]:
        for key in ("fault", "traffic", "flows", "controller", "collective"):
            if key not in rep:
                out.append(f"repetition {rep.get('index')}: missing {key!r}")
        fault = rep.get("fault", {})
        for key in ("injected", "restored"):
            if not fault.get(key):
                out.append(f"repetition {rep.get('index')}: fault.{key} has no timestamp")
        for f in rep.get("flows", []):
            for key in ("flow_id", "affected", "failure", "restore", "sent", "received"):
                if key not in f:
                    out.append(f"repetition {rep.get('index')} flow: missing {key!r}")
    return out


def write_json(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


def write_png(
    report: dict[str, Any],
    traffic: Sequence[TrafficResult],
    path: Path,
) -> None:
    """Throughput of every flow over time (10 ms bins), one panel per repetition, with
    the failure and the restore marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    reps = report["repetitions"]
    fig, axes = plt.subplots(
        len(reps), 1, figsize=(11, 2.4 * len(reps) + 0.8), squeeze=False, sharex=True
    )
    for ax, rep, result in zip(axes[:, 0], reps, traffic, strict=True):
        t0 = result.started_ns
        span = (result.stopped_ns - t0) / 1e9
        bins = max(1, int(span / PNG_BIN_S) + 1)
        for f in result.flows:
            counts = [0] * bins
            for r in f["recv_ns"]:
                i = int((r - t0) / 1e9 / PNG_BIN_S)
                if 0 <= i < bins:
                    counts[i] += 1
            xs = [i * PNG_BIN_S for i in range(bins)]
            ax.plot(xs, [c / PNG_BIN_S for c in counts], linewidth=0.7, alpha=0.8)
        fault = rep["fault"]
        fail_s = (fault["injected"]["monotonic_ns"] - t0) / 1e9
        restore_s = (fault["restored"]["monotonic_ns"] - t0) / 1e9
        ax.axvline(fail_s, color="red", linestyle="--", linewidth=1.2, label="failure")
        ax.axvline(restore_s, color="green", linestyle="--", linewidth=1.2, label="restore")
        windows = [
            f["failure"]["loss_window_ms"]
            for f in rep["flows"]
            if f["affected"] and f["failure"]["loss_window_ms"] is not None
        ]
        worst = f"{max(windows):.1f} ms" if windows else "n/a"
        ax.set_title(
            f"repetition {rep['index'] + 1}: {fault['kind']} {fault['place']}; worst loss "
            f"window {worst}",
            fontsize=9,
        )
        ax.set_ylabel("pkt/s per flow", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.legend(loc="lower right", fontsize=7)
    axes[-1, 0].set_xlabel("seconds since traffic started")
    lw = report["loss_window_ms"]
    fig.suptitle(
        f"{report['topology']} ({report['switch_kind']} switches): {report['failure']['kind']} "
        f"failure of {report['failure']['place']}, {report['flows_per_repetition']} flows x "
        f"{report['offered_pps_per_flow']:g} pkt/s; loss window p50 {lw['p50']} / p99 "
        f"{lw['p99']} / max {lw['max']} ms",
        fontsize=10,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
