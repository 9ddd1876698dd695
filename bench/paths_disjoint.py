"""Benchmark: k-disjoint paths for every pair of edge switches of a fat tree, ours against
a per-pair baseline built on networkx's own flow functions, in the same run.

Usage, from the repository root::

    .venv/bin/python bench/paths_disjoint.py [--k 8 16 32] [--modes edge node]
        [--baseline-all N] [--baseline-sample M] [--seed S] [--json OUT] [--check]

For each fat tree (``controller.topology.generate.fat_tree(k)``, no hosts: only the fabric
matters here), each mode (edge- or node-disjoint) and each request (k=2, and "all": as
many paths as exist, k/2 between edge switches):

- ours: :mod:`controller.paths` on a :class:`LiveGraph` built in the timed region, every
  unordered pair of edge switches (k=32: 512 edge switches, 130,816 pairs), queried
  destination by destination (queries toward one destination share its distances);
- baseline: networkx, one call per pair on a flow network built once (not timed):
  ``network_simplex`` with demand 2 for k=2, ``max_flow_min_cost`` for "all" (networkx has
  no minimum-cost disjoint-paths function; ``edge_disjoint_paths`` / ``node_disjoint_paths``
  find the maximum number, not the cheapest set, and are no faster). Node-disjoint uses the
  usual split of every node into in -> out with capacity 1;
- both must find the same number of paths with the same total cost on every pair the
  baseline ran, and our paths are checked to be disjoint and to join the two switches.

The baseline runs on all pairs when there are at most ``--baseline-all`` of them (default
10,000: k=8 and k=16), else on ``--baseline-sample`` randomly sampled pairs (seeded; default
200, as at k=32 networkx needs about a second per pair); its time per pair is then the
sample's mean, and the table says so.
The speed ratio is baseline time per pair over ours per pair. Issue 4's goal: at least 10
times faster at k=16 (``--check`` exits 1 if a run at k=16 misses it or any result differs).
Run it alone: the machine's other load changes the figures (the load average is printed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import networkx as nx

from controller.paths import LiveGraph, NoPathError, disjoint_paths, max_disjoint_paths
from controller.paths import Path as RoutePath
from controller.paths.disjoint import Mode
from controller.topology.generate import fat_tree

GOAL_K = 16
GOAL_RATIO = 10.0


@dataclass
class Run:
    k: int
    mode: str
    request: str
    pairs: int
    paths: int
    ours_s: float
    ours_us_per_pair: float
    baseline_pairs: int
    baseline_s: float
    baseline_us_per_pair: float
    ratio: float
    mismatches: int
    sampled: bool


def flow_network(graph: nx.Graph, mode: Mode) -> nx.DiGraph:
    """The directed network networkx solves: both directions of every link with capacity
    1, and for node-disjoint paths every node split into ``(v, 'in') -> (v, 'out')``."""
    net = nx.DiGraph()
    if mode == "edge":
        for u, v, w in graph.edges(data="weight", default=1):
            net.add_edge(u, v, capacity=1, weight=w)
            net.add_edge(v, u, capacity=1, weight=w)
        return net
    for v in graph.nodes:
        net.add_edge((v, "in"), (v, "out"), capacity=1, weight=0)
    for u, v, w in graph.edges(data="weight", default=1):
        net.add_edge((u, "out"), (v, "in"), capacity=1, weight=w)
        net.add_edge((v, "out"), (u, "in"), capacity=1, weight=w)
    return net


def baseline(net: nx.DiGraph, mode: Mode, s: str, t: str, k: int | None) -> tuple[int, float]:
    """(number of paths, total cost) by networkx: the min-cost flow of k units (None: of the
    maximum flow)."""
    src, dst = (s, t) if mode == "edge" else ((s, "out"), (t, "in"))
    if k is not None:
        net.nodes[src]["demand"] = -k
        net.nodes[dst]["demand"] = k
        try:
            cost, _ = nx.network_simplex(net)
            return k, cost
        except nx.NetworkXUnfeasible:
            pass
        finally:
            net.nodes[src]["demand"] = 0
            net.nodes[dst]["demand"] = 0
    flow = nx.max_flow_min_cost(net, src, dst)
    return sum(flow[src].values()), nx.cost_of_flow(net, flow)


def check_paths(graph: nx.Graph, mode: Mode, s: str, t: str, paths: list[RoutePath]) -> bool:
    used: set[Any] = set()
    for p in paths:
        if p.nodes[0] != s or p.nodes[-1] != t or len(set(p.nodes)) != len(p.nodes):
            return False
        if any(not graph.has_edge(a, b) for a, b in p.edges()):
            return False
        parts: list[Any] = (
            [frozenset(e) for e in p.edges()] if mode == "edge" else list(p.nodes[1:-1])
        )
        if mode == "node" and p.hops == 1:
            parts.append(frozenset(p.nodes))
        for x in parts:
            if x in used:
                return False
            used.add(x)
    return True


def run_one(
    k: int,
    mode: Mode,
    want: int | None,
    *,
    run_all: int,
    sample: int,
    seed: int,
    log: Callable[[str], None],
) -> Run:
    topo = fat_tree(k, hosts_per_edge=0)
    graph = topo.graph
    edges = [sw.name for sw in topo.switches if sw.name.startswith("edge")]
    pairs = [(s, t) for j, t in enumerate(edges) for s in edges[:j]]
    label = "all" if want is None else str(want)
    log(f"fat-tree-{k} {mode}-disjoint k={label}: {len(pairs)} pairs")

    results: dict[tuple[str, str], tuple[int, float]] = {}
    paths_found = 0
    bad = 0
    t0 = time.perf_counter()
    live = LiveGraph(graph)
    for s, t in pairs:  # grouped by destination: t is the outer loop
        if want is None:
            found = max_disjoint_paths(live, s, t, mode=mode)
        else:
            try:
                found = disjoint_paths(live, s, t, want, mode=mode)
            except NoPathError as exc:
                results[(s, t)] = (exc.available, float("nan"))
                continue
        results[(s, t)] = (len(found), sum(p.cost for p in found))
        paths_found += len(found)
    ours = time.perf_counter() - t0

    rng = random.Random(seed)
    sampled = len(pairs) > run_all and sample < len(pairs)
    chosen = sorted(rng.sample(range(len(pairs)), sample)) if sampled else range(len(pairs))
    check = [pairs[i] for i in chosen]
    net = flow_network(graph, mode)
    nx.set_node_attributes(net, 0, "demand")
    mismatches = 0
    t1 = time.perf_counter()
    expected = {(s, t): baseline(net, mode, s, t, want) for s, t in check}
    base = time.perf_counter() - t1
    for (s, t), (n, cost) in expected.items():
        got_n, got_cost = results[(s, t)]
        if want is not None and n < want:
            ok = got_n == n  # both say fewer than asked; compare the count only
        else:
            ok = got_n == n and abs(got_cost - cost) < 1e-9
        if not ok:
            mismatches += 1
            log(f"  MISMATCH {s} {t}: ours {got_n} paths cost {got_cost}, networkx {n} cost {cost}")
    for s, t in check:
        found = (
            max_disjoint_paths(live, s, t, mode=mode)
            if want is None
            else disjoint_paths(live, s, t, want, mode=mode)
        )
        if not check_paths(graph, mode, s, t, found):
            bad += 1
            log(f"  NOT DISJOINT {s} {t}: {found}")
    ours_pp = ours / len(pairs)
    base_pp = base / max(len(check), 1)
    return Run(
        k=k,
        mode=mode,
        request=label,
        pairs=len(pairs),
        paths=paths_found,
        ours_s=round(ours, 3),
        ours_us_per_pair=round(ours_pp * 1e6, 1),
        baseline_pairs=len(check),
        baseline_s=round(base, 3),
        baseline_us_per_pair=round(base_pp * 1e6, 1),
        ratio=round(base_pp / ours_pp, 1),
        mismatches=mismatches + bad,
        sampled=sampled,
    )


def table(runs: list[Run]) -> str:
    head = (
        f"{'fat tree':>9} {'mode':>5} {'k':>4} {'pairs':>8} {'paths':>9} "
        f"{'ours s':>8} {'us/pair':>8} {'nx pairs':>9} {'nx s':>9} {'us/pair':>9} "
        f"{'ratio':>7} {'diff':>5}"
    )
    lines = [head, "-" * len(head)]
    for r in runs:
        nx_pairs = f"{r.baseline_pairs}{'*' if r.sampled else ''}"
        lines.append(
            f"{'k=' + str(r.k):>9} {r.mode:>5} {r.request:>4} {r.pairs:>8} {r.paths:>9} "
            f"{r.ours_s:>8.2f} {r.ours_us_per_pair:>8.1f} {nx_pairs:>9} {r.baseline_s:>9.2f} "
            f"{r.baseline_us_per_pair:>9.1f} {r.ratio:>6.1f}x {r.mismatches:>5}"
        )
    if any(r.sampled for r in runs):
        lines.append("* baseline on a random sample of the pairs (time per pair = sample mean)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--k", type=int, nargs="+", default=[8, 16, 32], help="fat tree k")
    parser.add_argument("--modes", nargs="+", choices=["edge", "node"], default=["edge", "node"])
    parser.add_argument(
        "--baseline-all",
        type=int,
        default=10_000,
        help="run the networkx baseline on every pair when there are at most this many",
    )
    parser.add_argument(
        "--baseline-sample",
        type=int,
        default=200,
        help="else on this many randomly sampled pairs",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    parser.add_argument("--check", action="store_true", help="exit 1 if a goal is missed")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)

    def log(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    load_before = os.getloadavg()
    runs: list[Run] = []
    for k in args.k:
        for mode in args.modes:
            for want in (2, None):
                runs.append(
                    run_one(
                        k,
                        mode,
                        want,
                        run_all=args.baseline_all,
                        sample=args.baseline_sample,
                        seed=args.seed,
                        log=log,
                    )
                )
                log(table(runs[-1:]).splitlines()[2])
    load_after = os.getloadavg()
    print(table(runs))
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    if args.json:
        doc = {
            "benchmark": "paths_disjoint",
            "python": platform.python_version(),
            "networkx": nx.__version__,
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "load_average": {"before": load_before[0], "after": load_after[0]},
            "baseline": "networkx network_simplex (k=2) / max_flow_min_cost (all), per pair",
            "runs": [asdict(r) for r in runs],
        }
        args.json.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    failed = [r for r in runs if r.mismatches]
    failed += [r for r in runs if r.k == GOAL_K and r.ratio < GOAL_RATIO]
    return 1 if args.check and failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
