"""``srv6lab bench``: benchmarks on a lab of their own. ``bench convergence`` measures how
long probe flows lose packets when a link fails (lab/convergence.py, lab/report.py);
``bench collectives`` compares ECMP, pinned SRv6 paths and spraying for a GPU collective
(lab/collectives.py)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TOPOLOGY = ROOT / "topologies" / "fat-tree-4.yaml"
JUMBO_MTU = 9000
BASE_MTU = 1500
BASE_LINK_MBPS = 5.0
"""Collectives: the link rate and size per rank of the 1500-byte runs (the CPU keeps up
with the Python spraying hosts at this packet rate); other MTUs scale both with it."""
BASE_SIZE = 512 * 1024

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
    conv.add_argument(
        "--switch", default="kernel", choices=("kernel", "bmv2"),
        help="switch kind (default kernel; bmv2 needs simple_switch_grpc, see README's BMv2)",
    )  # fmt: skip
    conv.add_argument(
        "--no-controller", action="store_true",
        help="program the switches once with the ECMP fabric and run no controller (the "
        "data plane alone); default: the controller runs (connectivity, link events, "
        "fast reroute, path probes)",
    )  # fmt: skip
    conv.add_argument(
        "--steer", choices=("auto", "on", "off"), default="auto",
        help="put the probe host pairs on SRv6 policies across the failed link (explicit "
        "intents), so the controller must repair them; auto: only for gray failures, "
        "which only the controller's path probes can see",
    )  # fmt: skip
    conv.add_argument(
        "--realtime-traffic", action="store_true",
        help="run the probe generator at SCHED_FIFO, ahead of the controller and switchd "
        "(the data plane's forwarding runs in the sender's context, so this starves the "
        "control plane; for comparison only; default: normal priority, below them)",
    )  # fmt: skip
    conv.add_argument("--json", type=Path, metavar="OUT", help="write the JSON report here")
    conv.add_argument("--png", type=Path, metavar="OUT", help="write the PNG timeline here")
    conv.set_defaults(func=_convergence)  # fmt: skip
    _register_collectives(bsub)
    return bsub


_COLLECTIVE_EXAMPLES = """\
examples:
  srv6lab bench collectives --topology fat-tree-4 --pattern all-to-all --json a2a.json --png a2a.png
  srv6lab bench collectives --topology gpu-pod-2plane --pattern ring --mode spray
  srv6lab bench collectives --topology fat-tree-4 --pattern all-to-all \\
      --fail agg1-core1 --kind gray --json a2a-gray.json --png a2a-gray.png

Modes: ecmp (TCP, the controller's ECMP connectivity), pinned (TCP on the controller's
collective intent: one SRv6 path per flow; on hosts with a NIC in each plane, one
connection and path per plane and flow: channels), spray (UDP from the hosts over each flow's
disjoint SRv6 paths from GetPaths, retiring a path at its first loss). The ideal is the
host cut (the busiest host's payload over its NICs). With --fail, the link fails a third
of the way into iteration 3 and is restored --failed-for seconds later; progress lost is
the extra completion time of the iterations it overlapped. With a failure longer than two
iterations (--failed-for 3), the iterations entirely inside it give the fabric's pace
without the link, and the report also gives the progress lost beyond that (what the
reaction, not the missing capacity, cost).
"""


def _register_collectives(
    bsub: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    col = bsub.add_parser(
        "collectives",
        help="a GPU collective with ECMP, pinned SRv6 paths and MRC-style spraying",
        description="Bring up TOPOLOGY with kernel switches and the controller (links capped "
        "at --link-mbps), run the collective in each mode, read every switch port's byte "
        "counters, print a table and write the JSON report and a PNG with the modes side by "
        "side. Needs root; about 20 s for the lab plus 5-15 s per mode.",
        epilog=_COLLECTIVE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    col.add_argument(
        "--topology", default="fat-tree-4", metavar="NAME|FILE",
        help="fat-tree-4, gpu-pod-2plane (from topologies/) or a topology file "
        "(default: fat-tree-4)",
    )  # fmt: skip
    col.add_argument(
        "--pattern", choices=("all-to-all", "ring"), default="all-to-all",
        help="all-to-all, or ring (ring all-reduce) (default: all-to-all)",
    )  # fmt: skip
    col.add_argument(
        "--mode", action="append", choices=("ecmp", "pinned", "spray"), metavar="MODE",
        help="ecmp, pinned or spray; repeat for several (default: all three)",
    )  # fmt: skip
    col.add_argument(
        "--hosts", nargs="+", metavar="HOST",
        help="the collective's hosts (default: the first 8 GPU hosts)",
    )  # fmt: skip
    col.add_argument(
        "--mtu", type=int, default=JUMBO_MTU, metavar="BYTES",
        help=f"the hosts' NIC MTU (default: {JUMBO_MTU}, jumbo frames as AI fabrics run; "
        "1500 for the first figures); fabric links are above it so that a headend's SRv6 "
        "encapsulation fits. TCP's MSS and spray's datagrams follow it",
    )  # fmt: skip
    col.add_argument(
        "--size", type=_positive_int, metavar="BYTES",
        help="bytes per rank per iteration (nccl-tests' size; default: 512 KiB per 1500 "
        "bytes of MTU, 3 MiB at 9000: the same packets per iteration at any MTU)",
    )  # fmt: skip
    col.add_argument(
        "--iterations", type=_positive_int, default=8, metavar="N",
        help="iterations per mode (default: 8; at least 4 with --fail)",
    )  # fmt: skip
    col.add_argument(
        "--link-mbps", type=_positive_float, metavar="MBPS",
        help="cap every link at this rate (default: 5 per 1500 bytes of MTU, 30 at 9000: "
        "the same packets per second, 2.4 ms per full-size packet per hop, at any MTU; the "
        "spraying hosts are Python processes, and the link, not the CPU, must be the "
        "bottleneck)",
    )  # fmt: skip
    col.add_argument("--fail", metavar="X-Y", help="fail this link mid-run (default: no failure)")
    col.add_argument(
        "--kind", default="gray", choices=("admin", "carrier", "gray"),
        help="failure kind (default: gray; see `srv6lab lab fail --help`)",
    )  # fmt: skip
    col.add_argument(
        "--failed-for", type=_positive_float, default=1.0, metavar="S",
        help="seconds the failure lasts (default: 1; 3 also measures the pace without "
        "the link, see above)",
    )  # fmt: skip
    col.add_argument(
        "--spray-k", type=_positive_int, default=4, metavar="K",
        help="disjoint paths per flow asked of GetPaths (fewer when fewer exist; default: 4)",
    )  # fmt: skip
    col.add_argument(
        "--window", type=_positive_int, default=1, metavar="PKTS",
        help="spray: packets in flight per path, at least (default: 1)",
    )  # fmt: skip
    col.add_argument(
        "--host-window", type=_positive_int, default=8, metavar="PKTS",
        help="spray: packets in flight per host NIC, shared by the host's flows that have "
        "data to send, at least 2 per flow (default: 8, about a NIC's bandwidth-delay "
        "product on fat-tree-4)",
    )  # fmt: skip
    col.add_argument(
        "--spray-workers", type=_positive_int, metavar="N",
        help="spray: processes that run the hosts' spray, each a part of the hosts balanced "
        "by flows (default: one per CPU core, at most one per host; 1: all in one process, "
        "as before)",
    )  # fmt: skip
    col.add_argument(
        "--oracle", action="store_true",
        help="spray with --fail, measurement only: tell the spraying hosts the moment the "
        "link fails and comes back, so that they need no detection; against a run without, "
        "what detecting the failure costs",
    )  # fmt: skip
    col.add_argument(
        "--unpaced", action="store_true",
        help="do not pace the senders to their NICs (TCP: max-min fair share per connection; "
        "spray: a token bucket per NIC); for comparison",
    )  # fmt: skip
    col.add_argument("--json", type=Path, metavar="OUT", help="write the JSON report here")
    col.add_argument("--png", type=Path, metavar="OUT", help="write the PNG here")
    col.set_defaults(func=_collectives)


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
        realtime_traffic=args.realtime_traffic,
    )
    started = time.monotonic()
    print(
        f"srv6lab bench convergence: {topo.summary()}, {args.kind} failure, "
        f"{args.flows} flows x {args.rate:g} pkt/s, {args.repeat} repetitions",
        flush=True,
    )

    def step(text: str) -> None:
        print(f"  [{time.monotonic() - started:5.1f} s] {text}", flush=True)

    from lab.controller_proc import ControllerOptions
    from lab.convergence import (
        controller_timeline_of,
        no_controller,
        no_steering,
        program_with_controller,
        program_with_fabric,
        steer_with_intents,
    )

    use_controller = not args.no_controller
    steering = args.steer == "on" or (args.steer == "auto" and args.kind == "gray")
    if steering and not use_controller:
        print("error: --steer needs the controller", file=sys.stderr)
        return 2
    try:
        with running_lab(
            topo,
            args.switch,
            on_step=step,
            controller=ControllerOptions() if use_controller else None,
        ) as lab:
            step("lab ready")
            result = run_convergence(
                topo,
                lab,
                cfg,
                progress=step,
                program=program_with_controller if use_controller else program_with_fabric,
                controller_timeline=controller_timeline_of(lab)
                if use_controller
                else no_controller,
                steer=steer_with_intents if steering else no_steering,
            )
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


def _collectives(args: argparse.Namespace) -> int:
    import os
    import tempfile

    from controller.topology import TopologyError, load

    source = Path(args.topology)
    if not source.exists():
        named = ROOT / "topologies" / f"{args.topology}.yaml"
        if not named.exists():
            print(f"error: --topology {args.topology}: no such file nor topology name "
                  "(fat-tree-4, gpu-pod-2plane, ...)", file=sys.stderr)  # fmt: skip
            return 1
        source = named
    if os.geteuid() != 0:
        print("error: srv6lab bench collectives needs root (network namespaces)", file=sys.stderr)
        return 1
    import signal

    from lab import collectives as coll
    from lab.controller_proc import ControllerOptions
    from lab.convergence import parse_place
    from lab.errors import LabError
    from lab.session import running_lab
    from lab.topo import check_host_mtu
    from lab.traffic.spray import SprayConfig, packet_for_mtu

    started = time.monotonic()

    def step(text: str) -> None:
        print(f"  [{time.monotonic() - started:5.1f} s] {text}", flush=True)

    def terminated(_sig: int, _frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not cut the cleanup
        raise SystemExit(143)  # unwinds: the generator, spray routes and the lab go too

    signal.signal(signal.SIGTERM, terminated)
    with tempfile.TemporaryDirectory(prefix="srv6lab-collectives-") as tmp:
        try:
            check_host_mtu(args.mtu)
            scale = args.mtu / BASE_MTU
            link_mbps = args.link_mbps or BASE_LINK_MBPS * scale
            size = args.size or round(BASE_SIZE * scale)
            spray_cfg = SprayConfig(
                window=args.window, host_window=args.host_window, packet=packet_for_mtu(args.mtu)
            )
            topo = load(str(coll.scaled_topology(source, link_mbps, Path(tmp) / source.name)))
            hosts = tuple(args.hosts) if args.hosts else coll.gpu_hosts(topo, 8)
            for h in hosts:
                topo.host(h)
            coll.check_size(size, len(hosts), spray_cfg.payload)
            place = parse_place(topo, args.fail) if args.fail else None
            if place is not None and len(place) != 2:
                raise LabError(f"--fail {args.fail}: give a link X-Y")
            if args.fail and args.iterations < 4:
                raise LabError("--iterations: at least 4 with --fail")
            if args.oracle and not args.fail:
                raise LabError("--oracle: only with --fail (it tells the hosts of that failure)")
        except (TopologyError, LabError, KeyError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        cfg = coll.BenchConfig(
            pattern=args.pattern,
            modes=tuple(dict.fromkeys(args.mode or coll.MODES)),
            hosts=hosts,
            size=size,
            iterations=args.iterations,
            fail=(place[0], place[1]) if place else None,
            kind=args.kind,
            failed_s=args.failed_for,
            spray_k=args.spray_k,
            spray=spray_cfg,
            pace=not args.unpaced,
            mtu=args.mtu,
            spray_workers=args.spray_workers or 0,
            oracle=args.oracle,
        )
        print(
            f"srv6lab bench collectives: {topo.summary()}, links at {link_mbps:g} Mbit/s, "
            f"host MTU {args.mtu}, {size} bytes per rank, "
            f"{args.pattern} among {', '.join(hosts)}, modes {', '.join(cfg.modes)}"
            + (f", {args.kind} failure of {args.fail}" if args.fail else ""),
            flush=True,
        )
        try:
            with running_lab(
                topo, "kernel", on_step=step, controller=ControllerOptions(), host_mtu=args.mtu
            ) as lab:
                step("lab and controller ready")
                report = coll.run_bench(topo, lab, cfg, Path(tmp), step)
                step("stopping the lab")
        except LabError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    report["topology_file"] = str(source)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    if args.png:
        coll.write_png(report, args.png)
    print()
    for line in coll.summary_rows(report):
        print(line)
    for path in (args.json, args.png):
        if path:
            print(f"  wrote {path}")
    print(f"  whole run {time.monotonic() - started:.1f} s; load average {os.getloadavg()[0]:.1f}"
          f" on {os.cpu_count()} cores")  # fmt: skip
    return 0
