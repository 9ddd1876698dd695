"""The convergence benchmark: bring a lab up, program its switches, send probe flows that
cross a link, fail the link mid-run, restore it, repeat, and report (lab/report.py).

Two steps are parameters, so that the controller plugs in without touching the rest:

- ``program``: who programs the switches (:data:`ProgramSwitches`). Today
  :func:`program_with_fabric`, the one-shot compiled ECMP fabric; with the controller, a
  function that starts it on the lab's switches.json and returns once it has installed.
- ``controller_timeline``: called after each repetition with its fault; returns the
  controller's timeline of that failure (event seen, reroute computed, last switch
  acknowledged: monotonic ns) or None when no controller ran.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx

from controller.topology import Topology
from lab.errors import LabError
from lab.faults import Fault, LabView, fail, restore
from lab.session import RunningLab
from lab.traffic.flows import choose_flows, read_crossings, watch
from lab.traffic.generator import CollectiveSpec, Rank, TrafficGenerator, TrafficResult, TrafficSpec
from lab.traffic.probe import ProbeFlow

ProgramSwitches = Callable[[Topology, RunningLab], str]
"""Program every switch of the running lab; returns what did it, for the report."""
ControllerTimeline = Callable[[Fault], dict[str, Any] | None]
SNIFF_S = 0.2
Progress = Callable[[str], None]


def program_with_fabric(topo: Topology, lab: RunningLab) -> str:
    """The data-plane-only fabric: every route toward every locator and host prefix with
    ECMP groups whose members watch their ports (lab/fabric.py), installed once."""
    from lab.fabric import program_fabric

    entries, seconds = program_fabric(topo, lab.run.path / "switches.json")
    return f"lab/fabric.py program_fabric: {entries} entries in {seconds:.1f} s, no controller"


def no_controller(_fault: Fault) -> dict[str, Any] | None:
    return None


Steer = Callable[[Topology, RunningLab, list[ProbeFlow], tuple[str, str]], str]
"""Steer the chosen probe flows onto SRv6 paths across the link (intents); returns what
was done, for the report."""


def no_steering(
    _topo: Topology, _lab: RunningLab, _flows: list[ProbeFlow], _link: tuple[str, str]
) -> str:
    return ""


def program_with_controller(topo: Topology, lab: RunningLab) -> str:
    """The controller (srv6lab controller run) on the lab's switches: connectivity (ECMP
    routing, watch ports), link events, fast reroute, path probes."""
    del topo
    if lab.controller is None:
        raise LabError("the lab was started without its controller")
    return (
        f"srv6lab controller (connectivity intent) programmed every switch in "
        f"{lab.controller.ready_seconds:.1f} s"
    )


def steer_with_intents(
    topo: Topology, lab: RunningLab, flows: list[ProbeFlow], link: tuple[str, str]
) -> str:
    """An explicit intent per probe host pair through both ends of the link (in the flows'
    direction), so that the flows ride SRv6 policies the controller must repair; a pair
    whose ingress and destination another pair already claimed keeps plain routing."""
    from controller.client import ApiError, call, stub
    from controller.northbound import srv6lab_pb2 as pb

    assert lab.controller is not None
    address = lab.controller.address
    api = stub(address)
    made, skipped = 0, 0
    for src, dst in sorted({(f.src, f.dst) for f in flows}):
        spec = pb.IntentSpec(explicit=pb.Explicit(src=src, dst=dst, waypoints=list(link)))
        try:
            call(
                api.CreateIntent,
                pb.CreateIntentRequest(id=f"steer-{src}-{dst}", spec=spec),
                address,
            )
            made += 1
        except ApiError:
            skipped += 1
    del topo
    return f"{made} explicit intents steer the probe host pairs across {link[0]}-{link[1]}" + (
        f" ({skipped} pairs left on plain routing: policy taken or no such path)" if skipped else ""
    )


def controller_timeline_of(lab: RunningLab) -> ControllerTimeline:
    """The controller's timeline of the reroute that followed a fault (the first one seen
    after the fault was injected)."""

    def timeline(fault: Fault) -> dict[str, Any] | None:
        from controller.client import ApiError, timelines

        if lab.controller is None or fault.injected is None:
            return None
        injected = fault.injected.monotonic_ns
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                found = [t for t in timelines(lab.controller.address)
                         if t.get("event_seen_ns", 0) >= injected]  # fmt: skip
            except ApiError:
                return None
            if found and found[0].get("recompute_acked_ns"):
                out = dict(found[0])
                for key in (
                    "event_seen",
                    "reroute_computed",
                    "last_switch_acked",
                    "recompute_done",
                    "recompute_acked",
                ):
                    out[f"{key}_after_fault_ms"] = round((out[f"{key}_ns"] - injected) / 1e6, 3)
                return out
            time.sleep(0.1)
        return None

    return timeline


@dataclass(frozen=True)
class ConvergenceConfig:
    kind: str = "admin"
    fail: tuple[str, ...] | None = None
    """(X, Y): flows cross X->Y and the link fails; (X,) with kind switch: X dies."""
    flows: int = 16
    rate_pps: float = 1000.0
    repeat: int = 5
    before_s: float = 1.0
    failed_s: float = 1.0
    after_s: float = 1.5
    collective: str | None = None
    gpus: int = 8
    collective_bytes: int = 4 * 1024 * 1024
    realtime_traffic: bool = False
    """The probe generator at SCHED_FIFO (the behaviour before; see lab.traffic.probe)."""


def parse_place(topo: Topology, text: str) -> tuple[str, ...]:
    """``X-Y`` (a link) or ``X`` (a switch); node names may contain '-'."""
    names = {s.name for s in topo.switches} | {h.name for h in topo.hosts}
    if text in names:
        return (text,)
    splits = [
        (text[:i], text[i + 1 :])
        for i, c in enumerate(text)
        if c == "-" and text[:i] in names and text[i + 1 :] in names
    ]
    if not splits:
        raise LabError(f"--fail {text!r}: not a node nor X-Y of two nodes of {topo.name}")
    x, y = splits[0]
    try:
        topo.link(x, y)
    except KeyError:
        raise LabError(f"--fail {text}: no link between {x} and {y} in {topo.name}") from None
    return (x, y)


def tier(topo: Topology, node: str) -> int:
    """Hops from the nearest host (edge switches 1, aggregation 2, core 3 in a fat tree)."""
    dist = nx.single_source_shortest_path_length(topo.graph, node)
    return int(min(dist[h.name] for h in topo.hosts))


def default_link(topo: Topology) -> tuple[str, str]:
    """The first core link (between the two highest tiers), lower tier first: the end
    whose ECMP group can route around it."""
    fabric = [(link.a.node, link.b.node) for link in topo.fabric_links]
    if not fabric:
        raise LabError(f"{topo.name} has no switch-to-switch link to fail")
    tiers = {n: tier(topo, n) for pair in fabric for n in pair}
    best = max(fabric, key=lambda p: (min(tiers[p[0]], tiers[p[1]]), -fabric.index(p)))
    x, y = best
    return (x, y) if tiers[x] <= tiers[y] else (y, x)


def crossing_link(topo: Topology, kind: str, place: tuple[str, ...] | None) -> tuple[str, str]:
    """The link X->Y the probe flows must cross."""
    if place is None:
        return default_link(topo)
    if len(place) == 2:
        return (place[0], place[1])
    (sw,) = place
    if kind != "switch":
        raise LabError(f"--fail {sw}: kind {kind} fails a link, give X-Y")
    if not topo.is_switch(sw):
        raise LabError(f"--fail {sw}: a host; kind switch fails a switch")
    below = [
        link.peer_of(sw).node for link in topo.links_of(sw) if topo.is_switch(link.peer_of(sw).node)
    ]
    if not below:
        raise LabError(f"{sw} has no neighbouring switch for flows to come from")
    return (min(below, key=lambda n: (tier(topo, n), n)), sw)


def fault_target(kind: str, link: tuple[str, str], place: tuple[str, ...] | None) -> list[str]:
    if kind == "switch":
        return [place[0]] if place and len(place) == 1 else [link[1]]
    return list(link)


def gpu_ranks(topo: Topology, netns: dict[str, str], count: int) -> tuple[Rank, ...]:
    hosts = [h for h in topo.hosts if h.gpu] or list(topo.hosts)
    if len(hosts) < 2:
        raise LabError(f"{topo.name} has fewer than 2 GPU hosts for a collective")
    step = max(1, len(hosts) // count)
    chosen = hosts[::step][:count]
    return tuple(Rank(h.name, netns[h.name], str(h.address)) for h in chosen)


@dataclass
class ConvergenceRun:
    report: dict[str, Any]
    traffic: list[TrafficResult]
    flows: list[ProbeFlow]
    link: tuple[str, str]


def run_convergence(
    topo: Topology,
    lab: RunningLab,
    cfg: ConvergenceConfig,
    *,
    program: ProgramSwitches = program_with_fabric,
    controller_timeline: ControllerTimeline = no_controller,
    steer: Steer = no_steering,
    progress: Progress = print,
    workdir: Path | None = None,
) -> ConvergenceRun:
    """The benchmark on a running lab (see the module's docstring)."""
    from lab import report as rpt

    say = progress

    workdir = workdir or lab.run.path
    netns = {name: info.netns for name, info in lab.state.nodes.items()}
    view = LabView(
        topo, lab.state.switch_kind, lab.state.netns_prefix, (lab.state.pid, lab.state.started_at)
    )
    link = crossing_link(topo, cfg.kind, cfg.fail)
    target = fault_target(cfg.kind, link, cfg.fail)
    say("programming the switches")
    programmed_by = program(topo, lab)
    say(programmed_by)
    flows = choose_flows(topo, netns, link[0], link[1], cfg.flows)
    steered = steer(topo, lab, flows, link)
    if steered:
        say(steered)
        programmed_by += f"; {steered}"
    pairs = sorted({(f.src, f.dst) for f in flows})
    say(
        f"{len(flows)} probe flows cross {link[0]}->{link[1]} ({len(pairs)} host pairs), "
        f"{cfg.rate_pps:g} pkt/s each"
    )
    collective = None
    if cfg.collective is not None:
        ranks = gpu_ranks(topo, netns, cfg.gpus)
        collective = CollectiveSpec(cfg.collective, ranks, cfg.collective_bytes)
        say(f"{cfg.collective} among {', '.join(r.host for r in ranks)}")
    port = topo.link(*link).interface_at(link[0]).name
    # The generator is stopped after the restore; its own duration is only a safety net.
    duration = cfg.before_s + cfg.failed_s + cfg.after_s + 60.0
    import pyroute2  # noqa: F401 (imported now, not while the first failure is due)

    reps: list[dict[str, Any]] = []
    results: list[TrafficResult] = []
    models = ""
    for i in range(cfg.repeat):
        spec = TrafficSpec(
            duration, cfg.rate_pps, tuple(flows), collective, realtime=cfg.realtime_traffic
        )
        with TrafficGenerator(spec, workdir / "traffic.json") as gen:
            t0 = gen.ready_ns / 1e9
            _sleep_until(t0 + cfg.before_s - SNIFF_S - 0.05)
            with watch(netns[link[0]], port) as sniffer:
                seen = read_crossings(sniffer, SNIFF_S)
            affected = {c.flow_id for c in seen if c.flow_id is not None}
            _sleep_until(t0 + cfg.before_s)
            fault = fail(lab.run, view, cfg.kind, target)
            models = fault.models
            assert fault.injected is not None
            _sleep_until(fault.injected.monotonic_ns / 1e9 + cfg.failed_s)
            (fault,) = restore(lab.run, view, target)
            assert fault.restore_done is not None
            _sleep_until(fault.restore_done.monotonic_ns / 1e9 + cfg.after_s)
            traffic = gen.stop()
        rep = rpt.repetition(i, fault, traffic, affected, controller_timeline(fault))
        reps.append(rep)
        results.append(traffic)
        say(_rep_line(i, cfg.repeat, rep))
    report = rpt.build(
        topology=topo.name,
        switch_kind=lab.state.switch_kind,
        kind=cfg.kind,
        place="-".join(target),
        models=models,
        rate_pps=cfg.rate_pps,
        flows=len(flows),
        programmed_by=programmed_by,
        repetitions=reps,
        notes=_notes(cfg, link, programmed_by),
        controller=_controller_summary(reps),
    )
    report["probe_flows_cross"] = f"{link[0]}->{link[1]}"
    return ConvergenceRun(report, results, flows, link)


def _controller_summary(reps: list[dict[str, Any]]) -> dict[str, Any] | None:
    """p50 and max over the repetitions of the controller's own timeline, in ms after the
    fault was injected; None when no controller ran."""
    timelines = [r["controller"] for r in reps if r.get("controller")]
    if not timelines:
        return None
    out: dict[str, Any] = {"repetitions": len(timelines)}
    for key in ("event_seen", "reroute_computed", "last_switch_acked", "recompute_acked"):
        values = sorted(t[f"{key}_after_fault_ms"] for t in timelines)
        out[f"{key}_ms"] = {"p50": values[len(values) // 2], "max": values[-1]}
    out["sources"] = sorted({str(t.get("source", "")) for t in timelines})
    return out


def _notes(cfg: ConvergenceConfig, link: tuple[str, str], programmed_by: str) -> list[str]:
    notes = []
    if cfg.fail is None:
        notes.append(
            f"no --fail given: picked core link {link[0]}-{link[1]}; probe flows cross it "
            f"from {link[0]} toward {link[1]}"
        )
    if "no controller" in programmed_by:
        notes.append(
            "no controller ran: only the data plane reacts (ECMP members watching the dead "
            "port leave their group); loss windows are the data plane's alone"
        )
        if cfg.kind == "gray":
            notes.append(
                "gray failures are invisible to the data plane (the link stays up); without "
                "the controller's path probing nothing repairs them until the restore"
            )
    notes.append(
        "loss window: last packet before to first packet after a run of lost packets, on "
        "the senders' clock (send stamps, CLOCK_MONOTONIC); arrival_window_ms is the same "
        "gap on the receivers' clock"
    )
    return notes


def _rep_line(i: int, repeat: int, rep: dict[str, Any]) -> str:
    affected = [f for f in rep["flows"] if f["affected"]]
    windows = [
        f["failure"]["loss_window_ms"]
        for f in affected
        if f["failure"]["loss_window_ms"] is not None
    ]
    lost = sum(f["failure"]["packets_lost"] for f in affected)
    restore_lost = sum(f["restore"]["packets_lost"] for f in rep["flows"])
    worst = f"{max(windows):.1f} ms" if windows else "n/a"
    kept = "yes" if rep["traffic"]["kept_up"] else "NO"
    return (
        f"repetition {i + 1}/{repeat}: {rep['fault']['kind']} {rep['fault']['place']}: "
        f"{len(affected)} flows affected, {lost} packets lost, worst window {worst}; "
        f"restore lost {restore_lost}; generator kept up: {kept}"
    )


def _sleep_until(deadline_s: float) -> None:
    delay = deadline_s - time.monotonic()
    if delay > 0:
        time.sleep(delay)  # the benchmark's schedule is the condition waited for


def summary_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    lw = report["loss_window_ms"]

    def ms(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.2f} ms"

    return [
        ("topology / switches", f"{report['topology']} / {report['switch_kind']}"),
        ("failure", f"{report['failure']['kind']} {report['failure']['place']}"),
        ("what it models", report["failure"]["models"]),
        ("probe flows", f"{report['flows_per_repetition']} x {report['offered_pps_per_flow']:g}"
         " pkt/s"),
        ("repetitions", str(len(report["repetitions"]))),
        ("loss window p50", ms(lw["p50"])),
        ("loss window p99", ms(lw["p99"])),
        ("loss window max", ms(lw["max"])),
        ("packets lost (failures)", str(report["packets_lost"])),
        ("packets lost (restores)", str(report["restore_packets_lost"])),
        ("packets lost (other)", str(report.get("other_packets_lost", 0))),
        ("repaired before restore", "yes" if report["repaired_before_restore"] else "NO"),
        ("generator kept up", "yes" if report["generator_kept_up"] else "NO"),
        *_controller_rows(report.get("controller")),
    ]  # fmt: skip


def _controller_rows(ctl: dict[str, Any] | None) -> list[tuple[str, str]]:
    if not ctl:
        return [("controller", "none (data plane only)")]
    rows = [("controller heard it from", ", ".join(ctl.get("sources", [])))]
    for key, what in (
        ("event_seen_ms", "controller saw it"),
        ("last_switch_acked_ms", "fast reroute acked"),
        ("recompute_acked_ms", "recompute acked"),
    ):
        v = ctl[key]
        rows.append((what, f"p50 {v['p50']:.1f} ms, max {v['max']:.1f} ms after the fault"))
    return rows
