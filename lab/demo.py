"""``srv6lab demo``: the README's main job.

Until the convergence demo exists (link failures under GPU-like traffic), the demo brings the
default lab up (fat-tree-4, kernel switches each running switchd), shows that every link
passes packets both ways, compiles the fabric's SRv6 routing (uN locators, ECMP groups with
watch ports, uA and uDT6 SIDs, the SR-domain edge filter) and installs it into every
switch over P4Runtime, pings every host from every host, prints a summary table, and tears
the lab down.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from controller.topology import Interface, Topology, TopologyError, load

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TOPOLOGY = ROOT / "topologies" / "fat-tree-4.yaml"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = sub.add_parser(
        "demo",
        help="bring the default lab up, show that every link passes packets, tear it down",
        description="The main job: bring up fat-tree-4 (or --topology FILE) with kernel "
        "switches, ping across every link in both directions, print a summary table and "
        "install the compiled SRv6 fabric over P4Runtime, ping every host pair, stop the lab. "
        "Needs root; takes about 25 s.",
    )
    demo.add_argument(
        "--topology",
        default=str(DEFAULT_TOPOLOGY),
        metavar="FILE",
        help="topology file (default: topologies/fat-tree-4.yaml)",
    )
    demo.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lab.errors import LabError
    from lab.fabric import check_links, ping_all, program_fabric
    from lab.session import running_lab

    try:
        topo = load(args.topology)
    except TopologyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"srv6lab demo: {topo.summary()}")
    started = time.monotonic()

    def step(text: str) -> None:
        print(f"  [{time.monotonic() - started:5.1f} s] {text}", flush=True)

    try:
        with running_lab(topo, on_step=step) as lab:
            ready = time.monotonic() - started
            print(f"  lab ready in {ready:.1f} s; pinging across every link, both ways")
            netns = {name: info.netns for name, info in lab.state.nodes.items()}
            results = check_links(topo, netns)
            step("compiling the fabric and installing it over P4Runtime")
            entries, install_s = program_fabric(topo, lab.run.path / "switches.json")
            step(f"{entries} entries in {len(topo.switches)} switches in {install_s:.1f} s; "
                 "pinging every host from every host")  # fmt: skip
            pairs = ping_all(topo, netns)
            print(f"  [{time.monotonic() - started:5.1f} s] stopping the lab")
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    total = time.monotonic() - started
    print_summary(
        topo,
        results=results,
        ready=ready,
        total=total,
        entries=entries,
        install_s=install_s,
        pairs=pairs,
    )
    ok = all(ok for _, _, ok in results) and all(ok for _, _, ok in pairs)
    return 0 if ok else 1


def print_summary(
    topo: Topology,
    *,
    results: list[tuple[Interface, Interface, bool]],
    ready: float,
    total: float,
    entries: int,
    install_s: float,
    pairs: list[tuple[str, str, bool]],
) -> None:
    failed = [(a, b) for a, b, ok in results if not ok]
    unreachable = [(a, b) for a, b, ok in pairs if not ok]
    print()
    print(f"{'':2}{'what':<28}{'result':>12}")
    print(f"{'':2}{'-' * 40}")
    rows = [
        ("topology", topo.name),
        ("switches / hosts", f"{len(topo.switches)} / {len(topo.hosts)}"),
        ("links (fabric + host)", f"{len(topo.fabric_links)} + {len(topo.access_links)}"),
        ("lab ready after", f"{ready:.1f} s"),
        ("links pinged, both ways", f"{len(results) - len(failed)}/{len(results)}"),
        ("P4Runtime entries installed", f"{entries}"),
        ("... in", f"{install_s:.1f} s"),
        ("host pairs reachable", f"{len(pairs) - len(unreachable)}/{len(pairs)}"),
        ("whole demo", f"{total:.1f} s"),
    ]
    for what, value in rows:
        print(f"{'':2}{what:<28}{value:>12}")
    for a, b in failed:
        print(f"  FAILED: {a.endpoint} -> {b.endpoint} ({b.link_local})")
    for src, dst in unreachable:
        print(f"  UNREACHABLE: {src} -> {dst}")
    print()
    print("  next: srv6lab lab up topologies/fat-tree-4.yaml --detach; srv6lab lab status")
