"""``srv6lab analyze ecmp``: the collision analysis of a collective, as a table and a PNG
heat map, optionally against the link loads a benchmark run counted."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

_EXAMPLES = """\
examples:
  srv6lab analyze ecmp --topology topologies/fat-tree-4.yaml --pattern all-to-all \\
      --hosts h1 h3 h5 h7 h9 h11 h13 h15 --png a2a.png
  srv6lab analyze ecmp --topology topologies/gpu-pod-2plane.yaml --pattern ring
  srv6lab analyze ecmp --topology topologies/fat-tree-4.yaml --pattern all-to-all \\
      --measured bench-a2a.json          # compare with what the switches counted

Every switch hashes with a seed of its own (the lab derives it from the switch's name; the
kernel's hash function is its own business): the exact choices of a lab cannot be computed
offline. The analysis gives the exact expected load per link, the distribution of
the hottest link over many seeds of a hash model, and one sample draw; --measured shows
where a real run fell (its per-port counters are the truth).
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    an = sub.add_parser(
        "analyze",
        help="analyses of a collective's traffic (ECMP collisions)",
        description="Offline analyses of what the network does to traffic.",
    )
    asub = an.add_subparsers(dest="analyze_command", required=True, metavar="COMMAND")
    ecmp = asub.add_parser(
        "ecmp",
        help="predict which flows of a collective collide under hash-based ECMP",
        description="Predict the link loads of a collective under per-flow ECMP hashing "
        "(expected, hash-model distribution, one sample draw), next to the controller's "
        "pinned placement and MRC-style spraying over disjoint paths, relative to the "
        "topology's capacity bound. Prints a table; --png writes a heat map.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ecmp.add_argument("--topology", required=True, metavar="FILE", help="topology file")
    ecmp.add_argument(
        "--pattern", choices=("all-to-all", "ring"), default="all-to-all",
        help="collective pattern (default: all-to-all)",
    )  # fmt: skip
    ecmp.add_argument(
        "--hosts", nargs="+", metavar="HOST",
        help="the collective's hosts, in ring order (default: 8 GPU hosts spread over the "
        "topology, as bench collectives picks them; with --measured: the run's hosts)",
    )  # fmt: skip
    ecmp.add_argument(
        "--seeds", type=int, default=200, metavar="N",
        help="seeds of the hash model (default: 200)",
    )  # fmt: skip
    ecmp.add_argument(
        "--sample-seed", type=int, default=0, metavar="S",
        help="the seed of the sample draw shown flow by flow (default: 0)",
    )  # fmt: skip
    ecmp.add_argument(
        "--measured", type=Path, metavar="RUN.json",
        help="a `srv6lab bench collectives` JSON report: compare with its counted loads",
    )  # fmt: skip
    ecmp.add_argument(
        "--mode", choices=("ecmp", "pinned", "spray"), default="ecmp",
        help="with --measured: which mode's run to compare (default: ecmp)",
    )  # fmt: skip
    ecmp.add_argument("--top", type=int, default=16, metavar="N", help="rows shown (default: 16)")
    ecmp.add_argument("--png", type=Path, metavar="OUT", help="write the heat map here")
    ecmp.add_argument("--json", type=Path, metavar="OUT", help="write the analysis as JSON")
    ecmp.set_defaults(func=_ecmp)


def _ecmp(args: argparse.Namespace) -> int:
    from controller.analysis.ecmp import MeasuredComparison, analyze_ecmp, compare_measured
    from controller.analysis.ecmp import default_hosts as pick_hosts
    from controller.analysis.render import text_report, write_png
    from controller.topology import TopologyError, load

    try:
        topo = load(args.topology)
    except TopologyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    run: dict[str, object] | None = None
    link_bytes: dict[str, float] | None = None
    hosts = args.hosts
    if args.measured is not None:
        try:
            run = json.loads(args.measured.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            print(f"error: --measured {args.measured}: {exc}", file=sys.stderr)
            return 1
        assert isinstance(run, dict)
        modes = run.get("modes")
        if not isinstance(modes, dict) or args.mode not in modes:
            have = ", ".join(modes) if isinstance(modes, dict) else "none"
            print(
                f"error: --measured {args.measured}: no {args.mode} run in it (modes: {have})",
                file=sys.stderr,
            )
            return 1
        link_bytes = modes[args.mode].get("link_bytes")
        if not isinstance(link_bytes, dict):
            print(f"error: --measured {args.measured}: {args.mode} has no link_bytes",
                  file=sys.stderr)  # fmt: skip
            return 1
        if run.get("topology") != topo.name:
            print(
                f"error: --measured {args.measured} is a run on {run.get('topology')}, "
                f"not {topo.name}",
                file=sys.stderr,
            )
            return 1
        if run.get("pattern") != args.pattern:
            print(f"note: the run's pattern is {run.get('pattern')}; using it")
            args.pattern = run.get("pattern")
        hosts = hosts or run.get("hosts")
    hosts = hosts or list(pick_hosts(topo))
    try:
        analysis = analyze_ecmp(
            topo, hosts, args.pattern, seeds=args.seeds, sample_seed=args.sample_seed
        )
        measured: MeasuredComparison | None = None
        if link_bytes is not None:
            measured = compare_measured(analysis, link_bytes, args.mode)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(text_report(analysis, measured, top=args.top))
    if args.json:
        data = analysis.to_json()
        if measured is not None:
            data["measured"] = {
                "mode": measured.mode,
                "ratio_to_ideal": measured.ratio_to_ideal,
                "hash_model_percentile": measured.percentile,
                "loads": {f"{a}->{b}": v for (a, b), v in sorted(measured.loads.items())},
            }
        args.json.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    if args.png:
        write_png(analysis, args.png, measured)
        print(f"wrote {args.png}")
    return 0
