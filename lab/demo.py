"""``srv6lab demo``: the README's main job, issue 5's convergence demo.

1. Bring up fat-tree-4 (or ``--topology``) with kernel switches (switchd) and the
   controller, which installs connectivity; check that every host reaches every other.
2. Place an all-to-all collective among 8 GPU hosts on disjoint SRv6 paths (a
   ``collective`` intent: the controller spreads its flows so that the most loaded link
   carries as little as possible), start it in bulk-synchronous iterations, plus 16 UDP
   probe flows (1,000 packets/s each) that cross a core link.
3. Fail that link mid-run (``admin`` by default), restore it, let traffic settle.
4. Tear everything down; print a summary table (loss windows, packets lost, the
   controller's own timeline, the collective's completion time per iteration) and write
   the JSON report and PNG timeline (``reports/demo.json``, ``reports/demo.png``).

About a minute on the 2-core lab machine; it shows progress while it runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from controller.topology import TopologyError, load

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TOPOLOGY = ROOT / "topologies" / "fat-tree-4.yaml"
REPORTS = ROOT / "reports"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = sub.add_parser(
        "demo",
        help="the convergence demo: lab + controller, a collective and probe flows, a core "
        "link fails and comes back, a report",
        description="Bring up fat-tree-4 with kernel switches and the controller, place an "
        "all-to-all collective among 8 GPU hosts on disjoint SRv6 paths, run it with 16 probe "
        "flows across a core link, fail that link mid-run and restore it, tear everything "
        "down, print a summary and write the JSON report and PNG timeline. Needs root; about "
        "a minute.",
    )
    demo.add_argument("--topology", default=str(DEFAULT_TOPOLOGY), metavar="FILE",
                      help="topology file (default: topologies/fat-tree-4.yaml)")  # fmt: skip
    demo.add_argument("--kind", default="admin", choices=("admin", "carrier", "gray", "switch"),
                      help="failure kind (default admin)")  # fmt: skip
    demo.add_argument("--fail", metavar="X-Y", help="the link to fail (default: a core link)")
    demo.add_argument("--gpus", type=int, default=8, help="GPU hosts in the collective (8)")
    demo.add_argument("--json", type=Path, default=REPORTS / "demo.json", metavar="OUT",
                      help="JSON report (default reports/demo.json)")  # fmt: skip
    demo.add_argument("--png", type=Path, default=REPORTS / "demo.png", metavar="OUT",
                      help="PNG timeline (default reports/demo.png)")  # fmt: skip
    demo.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os

    if os.geteuid() != 0:
        print("error: srv6lab demo needs root (network namespaces)", file=sys.stderr)
        return 1
    try:
        topo = load(args.topology)
    except TopologyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    from controller.client import ApiError
    from lab import report as rpt
    from lab.controller_proc import ControllerOptions
    from lab.convergence import (
        ConvergenceConfig,
        controller_timeline_of,
        gpu_ranks,
        parse_place,
        program_with_controller,
        run_convergence,
        summary_rows,
    )
    from lab.errors import LabError
    from lab.fabric import ping_all
    from lab.session import running_lab

    print(f"srv6lab demo: {topo.summary()}", flush=True)
    started = time.monotonic()

    def step(text: str) -> None:
        print(f"  [{time.monotonic() - started:5.1f} s] {text}", flush=True)

    placed: dict[str, Any] = {}
    try:
        place = parse_place(topo, args.fail) if args.fail else None
        cfg = ConvergenceConfig(
            kind=args.kind, fail=place, flows=16, rate_pps=1000.0, repeat=1,
            before_s=2.0, failed_s=2.0, after_s=2.0, collective="all-to-all", gpus=args.gpus,
        )  # fmt: skip
        # path probes find gray failures; for the others they only cost CPU on 2 cores
        probes = () if args.kind == "gray" else ("--probe-interval", "0")
        with running_lab(topo, on_step=step, controller=ControllerOptions(extra=probes)) as lab:
            step("lab and controller ready; every host pings every host")
            netns = {name: info.netns for name, info in lab.state.nodes.items()}
            pairs = ping_all(topo, netns)
            reachable = sum(1 for _, _, ok in pairs if ok)
            step(f"{reachable}/{len(pairs)} host pairs reachable")
            if reachable != len(pairs):
                raise LabError("connectivity is incomplete; not starting the collective")
            ranks = [r.host for r in gpu_ranks(topo, netns, cfg.gpus)]

            def pin_collective(*_: Any) -> str:
                placed.update(_pin(lab, ranks))
                return (
                    f"collective intent {placed['id']}: all-to-all among {len(ranks)} GPU hosts "
                    f"pinned to {placed['paths']} SRv6 paths ({placed['status']})"
                )

            result = run_convergence(
                topo, lab, cfg, progress=step, program=program_with_controller,
                controller_timeline=controller_timeline_of(lab), steer=pin_collective,
            )  # fmt: skip
            step("stopping the lab and the controller")
    except (LabError, ApiError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    report = result.report
    report["demo"] = {"reachable_pairs": reachable, "pairs": len(pairs), "collective": placed}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.png.parent.mkdir(parents=True, exist_ok=True)
    rpt.write_json(report, args.json)
    rpt.write_png(report, result.traffic, args.png)

    print()
    rows = [("host pairs reachable", f"{reachable}/{len(pairs)}"), *summary_rows(report)]
    for what, value in rows:
        print(f"  {what:<26}{value}")
    for it in _iterations(report):
        print(f"  {'collective iteration ' + str(it.get('index')):<26}"
              f"{it.get('seconds', 0) * 1000:8.1f} ms  busbw {it.get('busbw_GBps', 0):.3f} GB/s"
              f"  ({it.get('phase', '')} the failure)")  # fmt: skip
    print(f"  wrote {args.json} and {args.png}")
    print(f"  whole demo {time.monotonic() - started:.1f} s")
    missing = rpt.problems(report)
    if missing:
        print("error: the report is incomplete: " + "; ".join(missing), file=sys.stderr)
        return 1
    return 0 if reachable == len(pairs) else 1


def _pin(lab: Any, ranks: list[str]) -> dict[str, Any]:
    """The collective as an intent: the controller places its flows on SRv6 paths."""
    from controller.client import call, stub
    from controller.northbound import srv6lab_pb2 as pb

    address = lab.controller.address
    spec = pb.IntentSpec(collective=pb.Collective(hosts=ranks, pattern="all-to-all"))
    request = pb.CreateIntentRequest(id="demo", spec=spec)
    intent = call(stub(address).CreateIntent, request, address)
    status = {1: "installed", 2: "degraded", 3: "failed"}.get(intent.status, "?")
    return {"id": intent.id, "paths": len(intent.paths), "status": status, "hosts": ranks}


def _iterations(report: dict[str, Any]) -> list[dict[str, Any]]:
    collectives = report.get("collective") or []
    out: list[dict[str, Any]] = []
    for c in collectives:
        for it in c.get("iterations", []):
            seconds = it.get("seconds")
            if seconds is None and "finished_ns" in it and "started_ns" in it:
                seconds = (it["finished_ns"] - it["started_ns"]) / 1e9
            out.append({**it, "seconds": seconds or 0.0})
    return out
