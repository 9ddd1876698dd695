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
