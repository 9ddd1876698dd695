"""The controller's ``srv6lab`` subcommands: ``topology`` (and later ``controller``,
``intent``, ``paths``). Heavy imports happen inside the handlers."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    topo = sub.add_parser("topology", help="check and show topology files")
    tsub = topo.add_subparsers(dest="topology_cmd", required=True, metavar="COMMAND")

    check = tsub.add_parser(
        "check", help="validate a topology file: a summary, or every error and exit 1"
    )
    check.add_argument("file", metavar="FILE", help="topology YAML file")
    check.set_defaults(func=_topology_check)

    show = tsub.add_parser("show", help="print a topology with its addressing plan")
    show.add_argument("file", metavar="FILE", help="topology YAML file")
    show.add_argument(
        "--format",
        choices=("text", "json", "dot"),
        default="text",
        help="text for people (default), json for programs, dot for Graphviz",
    )
    show.set_defaults(func=_topology_show)

    paths = sub.add_parser(
        "paths",
        help="k disjoint paths between two nodes, with the segment list that forces each",
        description="Compute k edge- or node-disjoint paths of minimum total cost between "
        "two hosts or switches on a topology (links named with --down left out), and the "
        "SRv6 segment list (uSID containers, or full SIDs) that forces each path. Works "
        "offline on the topology file; the controller's GetPaths API will answer the same "
        "on the live network.",
    )
    paths.add_argument("src", metavar="SRC", help="host or switch name")
    paths.add_argument("dst", metavar="DST", help="host or switch name")
    paths.add_argument("--topology", required=True, metavar="FILE", help="topology YAML file")
    paths.add_argument("-k", type=int, default=2, help="number of paths (default: 2)")
    paths.add_argument(
        "--mode", choices=("edge", "node"), default="edge", help="disjointness (default: edge)"
    )
    paths.add_argument(
        "--down",
        action="append",
        default=[],
        metavar="X-Y",
        help="a link that is down, by name (e.g. agg1-core1); repeat for more",
    )
    paths.add_argument(
        "--encoding",
        choices=("usid", "full"),
        default="usid",
        help="segment lists as uSID containers (default) or full SIDs",
    )
    paths.set_defaults(func=_paths)


def _paths(args: argparse.Namespace) -> int:
    from controller.compiler import Encoding, SegmentError, segment_list
    from controller.paths import NoPathError, disjoint_paths
    from controller.topology import TopologyError, load

    try:
        topo = load(args.topology)
    except TopologyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name, what in ((args.src, "SRC"), (args.dst, "DST")):
        try:
            topo.node(name)
        except KeyError:
            known = ", ".join(sorted(h.name for h in topo.hosts)[:8])
            print(f"error: {what} {name!r} is not a node of {topo.name} (hosts: {known}, ...)",
                  file=sys.stderr)  # fmt: skip
            return 2
    if args.k < 1:
        print("error: -k must be at least 1", file=sys.stderr)
        return 2
    try:
        found = disjoint_paths(
            topo.graph, args.src, args.dst, args.k, mode=args.mode, down=args.down
        )
    except NoPathError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (KeyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    encoding = Encoding(args.encoding)
    print(f"{len(found)} {args.mode}-disjoint paths {args.src} -> {args.dst} on {topo.name}"
          f", total cost {sum(p.cost for p in found):g}")  # fmt: skip
    for i, path in enumerate(found, 1):
        print(f"  {i}. cost {path.cost:g}: {path}")
        try:
            segments = segment_list(topo, path.nodes, encoding=encoding, down=args.down)
            print(f"     segments: {segments}")
        except SegmentError as exc:
            print(f"     segments: cannot be forced: {exc}")
    return 0


def _topology_check(args: argparse.Namespace) -> int:
    from controller.topology import TopologyError, load

    try:
        topo = load(args.file)
    except TopologyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"ok: {topo.summary()}")
    return 0


def _topology_show(args: argparse.Namespace) -> int:
    from controller.topology import TopologyError, load
    from controller.topology.render import to_dict, to_dot, to_text

    try:
        topo = load(args.file)
    except TopologyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.format == "json":
        print(json.dumps(to_dict(topo), indent=2))
    elif args.format == "dot":
        print(to_dot(topo))
    else:
        print(to_text(topo))
    return 0
