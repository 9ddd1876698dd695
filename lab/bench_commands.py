"""``srv6lab bench``: benchmarks on a lab of their own. ``bench convergence`` measures how
long probe flows lose packets when a link fails (lab/convergence.py, lab/report.py)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TOPOLOGY = ROOT / "topologies" / "fat-tree-4.yaml"

_EXAMPLES = """\
examples:
  srv6lab bench convergence --kind admin --repeat 5 --json admin.json --png admin.png
  srv6lab bench convergence --fail agg3-core2 --kind carrier --flows 8 --rate 2000
  srv6lab bench convergence --fail core1 --kind switch
  srv6lab bench convergence --kind admin --collective all-to-all --gpus 8

Probe flows cross the failed link from X toward Y (--fail X-Y; for --kind switch, --fail X
fails switch X and the flows enter it from a neighbour). Without --fail it picks a core link.
Loss window: from the last packet before to the first packet after a run of lost packets,
per flow, on the senders' clock.
"""


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """Add ``bench`` and ``bench convergence``; returns bench's subcommands, so that more
    benchmarks (``bench collectives``) can be added next to it."""
    bench = sub.add_parser(
        "bench",
        help="benchmarks on a lab of their own (convergence after failures)",
        description="Benchmarks that bring up their own lab, measure, and tear it down.",
    )
    bsub = bench.add_subparsers(dest="bench_command", required=True, metavar="COMMAND")
    conv = bsub.add_parser(
        "convergence",
        help="loss window of probe flows when a link fails and is restored",
        description="Bring up TOPOLOGY with kernel switches, program them, send N probe "
        "flows (UDP, stamped, RATE pkt/s each) that cross the failed link, fail it after "
        "1 s, restore it 1 s later, repeat R times; print a summary table and write the "
        "JSON report and PNG timeline. Needs root and a free run directory (one lab at a "
        "time); about 15 s + 4 s per repetition on fat-tree-4.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    conv.add_argument(
        "--topology",
        default=str(DEFAULT_TOPOLOGY),
        metavar="FILE",
        help="topology file (default: topologies/fat-tree-4.yaml)",
    )
    conv.add_argument(
        "--fail",
        metavar="X-Y",
        help="the link to fail (flows cross X->Y), or X with --kind switch; "
        "default: a core link, named in the output",
    )
    conv.add_argument(
        "--kind",
        default="admin",
        choices=("admin", "carrier", "gray", "switch"),
        help="failure kind (default: admin; see `srv6lab lab fail --help`)",
    )
    conv.add_argument(
        "--flows", type=_positive_int, default=16, metavar="N", help="probe flows (default: 16)"
    )
    conv.add_argument(
        "--rate",
        type=_positive_float,
        default=1000.0,
        metavar="PPS",
        help="packets per second per flow (default: 1000)",
    )
    conv.add_argument(
        "--repeat", type=_positive_int, default=5, metavar="R", help="repetitions (default: 5)"
    )
    conv.add_argument(
        "--failed-for",
        type=_positive_float,
        default=1.0,
        metavar="S",
        help="seconds the failure lasts (default: 1)",
    )
    conv.add_argument(
        "--collective",
        choices=("all-reduce", "all-to-all"),
        help="also run this GPU-like collective over TCP during the runs",
    )
    conv.add_argument(
        "--gpus",
        type=_positive_int,
        default=8,
        metavar="N",
        help="GPU hosts in the collective (default: 8)",
    )
    conv.add_argument("--json", type=Path, metavar="OUT", help="write the JSON report here")
    conv.add_argument("--png", type=Path, metavar="OUT", help="write the PNG timeline here")
    conv.set_defaults(func=_convergence)  # fmt: skip
    return bsub


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return value


def _convergence(args: argparse.Namespace) -> int:
    import os

    from controller.topology import TopologyError, load

    try:
        topo = load(args.topology)
    except TopologyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if os.geteuid() != 0:
        print("error: srv6lab bench convergence needs root (network namespaces)", file=sys.stderr)
        return 1
    from lab import report as rpt
    from lab.convergence import ConvergenceConfig, parse_place, run_convergence, summary_rows
    from lab.errors import LabError
    from lab.session import running_lab

    try:
        place = parse_place(topo, args.fail) if args.fail else None
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    cfg = ConvergenceConfig(
        kind=args.kind,
        fail=place,
        flows=args.flows,
        rate_pps=args.rate,
        repeat=args.repeat,
        failed_s=args.failed_for,
        collective=args.collective,
        gpus=args.gpus,
    )
    started = time.monotonic()
    print(
        f"srv6lab bench convergence: {topo.summary()}, {args.kind} failure, "
        f"{args.flows} flows x {args.rate:g} pkt/s, {args.repeat} repetitions",
        flush=True,
    )

    def step(text: str) -> None:
        print(f"  [{time.monotonic() - started:5.1f} s] {text}", flush=True)

    try:
        with running_lab(topo, "kernel", on_step=step) as lab:
            step("lab ready")
            result = run_convergence(topo, lab, cfg, progress=step)
            step("stopping the lab")
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    report = result.report
    missing = rpt.problems(report)
    if args.json:
        rpt.write_json(report, args.json)
    if args.png:
        rpt.write_png(report, result.traffic, args.png)
    print()
    for what, value in summary_rows(report):
        print(f"  {what:<26}{value}")
    for note in report["notes"]:
        print(f"  note: {note}")
    for path in (args.json, args.png):
        if path:
            print(f"  wrote {path}")
    print(f"  whole run {time.monotonic() - started:.1f} s")
    if missing:
        print("error: the report is incomplete: " + "; ".join(missing), file=sys.stderr)
        return 1
    return 0
