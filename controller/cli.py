"""The controller's ``srv6lab`` subcommands: ``topology``, ``paths``, ``controller`` (run
the daemon; status and events of a running one) and ``intent`` (the API client). Heavy
imports happen inside the handlers."""

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
    paths.add_argument(
        "--topology",
        metavar="FILE",
        help="compute offline on this topology file; without it, ask the running controller "
        "(GetPaths, on the live network)",
    )
    paths.add_argument("-k", type=int, default=2, help="number of paths (default: 2)")
    paths.add_argument(
        "--mode", choices=("edge", "node"), default="edge", help="disjointness (default: edge)"
    )
    paths.add_argument(
        "--spread",
        type=_salt,
        default=0,
        metavar="SALT",
        help="choose among equal-cost path sets: each node's scan of its equal-cost next hops "
        "starts at index SALT mod their count (default 0: smallest node names first; the "
        "spray benchmark uses the destination's index, D-mod-k)",
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
    from controller.client import add_controller_option

    add_controller_option(paths)
    paths.set_defaults(func=_paths)
    _register_controller(sub)
    _register_intent(sub)
    from controller.analysis.cli import register as register_analyze

    register_analyze(sub)


def _register_controller(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from controller import client, daemon

    ctl = sub.add_parser("controller", help="run the controller daemon; status and events")
    csub = ctl.add_subparsers(dest="controller_cmd", required=True, metavar="COMMAND")
    run = csub.add_parser(
        "run",
        help="run the controller until SIGTERM",
        description="Run the controller: one supervised P4Runtime session per switch, the "
        "intents kept installed (reconciled on connect, on every change and periodically), "
        "link events from gNMI and netlink with fast reroute, the northbound gRPC API and "
        "Prometheus metrics. SIGTERM or SIGINT stops it cleanly; the switches keep their "
        "state, and a restarted controller writes nothing when nothing changed.",
    )
    daemon.add_run_arguments(run)
    run.set_defaults(func=daemon.run)

    status = csub.add_parser("status", help="sessions, desired-state version, links down")
    client.add_controller_option(status)
    status.add_argument(
        "--wait", type=float, default=0, metavar="SECONDS",
        help="first wait (up to SECONDS) until every switch is programmed",
    )  # fmt: skip
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=client.controller_status)

    ev = csub.add_parser("events", help="follow link, intent, switch and reroute events")
    client.add_controller_option(ev)
    ev.add_argument("--history", type=int, default=20, help="past events to show first")
    ev.set_defaults(func=client.controller_events)


def _register_intent(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from controller import client

    intent = sub.add_parser("intent", help="add, list, show, delete intents; diff the switches")
    isub = intent.add_subparsers(dest="intent_cmd", required=True, metavar="COMMAND")

    add = isub.add_parser("add", help="add an intent (waits until the switches hold it)")
    ksub = add.add_subparsers(dest="kind", required=True, metavar="KIND")
    common = argparse.ArgumentParser(add_help=False)
    client.add_controller_option(common)
    common.add_argument("--id", help="intent id (default: KIND-N)")
    common.add_argument("--json", action="store_true", help="print the intent as JSON")
    common.add_argument("--timeout", type=float, default=60, help="seconds (default 60)")
    enc = argparse.ArgumentParser(add_help=False)
    enc.add_argument("--encoding", choices=("usid", "full"), default="usid",
                     help="segment lists as uSID containers (default) or full SIDs")  # fmt: skip

    conn = ksub.add_parser("connectivity", parents=[common],
                           help="ECMP routing between all hosts (the default intent)")  # fmt: skip
    conn.set_defaults(func=client.intent_add)
    dis = ksub.add_parser("disjoint", parents=[common, enc],
                          help="k disjoint paths between two hosts, both directions")  # fmt: skip
    dis.add_argument("src", metavar="SRC", help="host")
    dis.add_argument("dst", metavar="DST", help="host")
    dis.add_argument("-k", type=int, default=2, help="number of paths (default 2)")
    dis.add_argument("--mode", choices=("edge", "node"), default="edge")
    dis.add_argument("--weights", metavar="W1,W2,..", help="traffic share per path")
    dis.set_defaults(func=client.intent_add)
    exp = ksub.add_parser("explicit", parents=[common, enc],
                          help="one path through waypoints (switches, in order)")  # fmt: skip
    exp.add_argument("src", metavar="SRC", help="host")
    exp.add_argument("dst", metavar="DST", help="host")
    exp.add_argument("--via", required=True, metavar="S1,S2,..", help="waypoints")
    exp.set_defaults(func=client.intent_add)
    col = ksub.add_parser(
        "collective", parents=[common, enc],
        help="place a collective's flows so that the hottest link carries least",
    )  # fmt: skip
    col.add_argument("hosts", nargs="+", metavar="HOST", help="GPU hosts, in ring order")
    col.add_argument("--pattern", choices=("all-to-all", "ring"), default="all-to-all")
    col.set_defaults(func=client.intent_add)

    lst = isub.add_parser("list", help="every intent with its status")
    client.add_controller_option(lst)
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=client.intent_list)
    show = isub.add_parser("show", help="one intent with its paths and segment lists")
    client.add_controller_option(show)
    show.add_argument("id", metavar="ID")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=client.intent_show)
    delete = isub.add_parser("delete", help="delete intents")
    client.add_controller_option(delete)
    delete.add_argument("ids", nargs="+", metavar="ID")
    delete.set_defaults(func=client.intent_delete)
    diff = isub.add_parser(
        "diff", help="dry run: what the controller would write to each switch now (exit 1 "
        "if any switch is out of sync)",
    )  # fmt: skip
    client.add_controller_option(diff)
    diff.add_argument("-v", "--verbose", action="store_true", help="list switches in sync too")
    diff.set_defaults(func=client.intent_diff)


def _salt(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, not {text!r}") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"must be from 0 to {2**32 - 1}, not {value}")
    return value


def _paths(args: argparse.Namespace) -> int:
    if not args.topology:
        if args.down:
            print("error: --down needs --topology (the controller knows what is down)",
                  file=sys.stderr)  # fmt: skip
            return 2
        from controller.client import remote_paths

        return remote_paths(args)
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
            topo.graph,
            args.src,
            args.dst,
            args.k,
            mode=args.mode,
            down=args.down,
            salt=args.spread,
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
