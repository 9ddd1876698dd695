"""k edge-/node-disjoint paths: optimality against brute force on every small graph of
networkx's atlas, the host-endpoint rules, errors, live links and determinism."""

from __future__ import annotations

import itertools
import pathlib
import random
from collections.abc import Hashable, Iterator
from functools import cache
from typing import Any

import networkx as nx
import pytest

from controller.paths import (
    LiveGraph,
    NoPathError,
    Path,
    count_disjoint_paths,
    disjoint_paths,
    max_disjoint_paths,
)
from controller.paths.disjoint import Mode
from controller.topology import load
from controller.topology.generate import fat_tree

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODES: tuple[Mode, ...] = ("edge", "node")


@cache
def atlas(max_nodes: int) -> tuple[nx.Graph, ...]:
    """Every graph of the atlas with 2..max_nodes nodes and at least one edge, nodes
    renamed n0, n1, ... (the path engine wants string names)."""
    out = []
    for g in nx.graph_atlas_g():
        if g.number_of_nodes() > max_nodes:
            break
        if g.number_of_nodes() >= 2 and g.number_of_edges():
            out.append(nx.relabel_nodes(g, lambda v: f"n{v}"))
    return tuple(out)


def atlas_of_size(n: int) -> list[nx.Graph]:
    return [g for g in atlas(6) if g.number_of_nodes() == n]


# -- brute force ------------------------------------------------------------------------------


def _is_host(g: nx.Graph, v: str) -> bool:
    return bool(g.nodes[v].get("kind") == "host")


def candidates(
    g: nx.Graph, s: str, t: str, mode: Mode, *, share: bool, weight: str
) -> list[tuple[float, frozenset[Hashable]]]:
    """Every simple path from s to t that never passes through a host, as (cost, the
    resources it uses), under the rules documented in controller.paths.disjoint."""
    shared_s = share and _is_host(g, s)
    shared_t = share and _is_host(g, t)
    src_set = set(g[s]) if shared_s else {s}
    dst_set = set(g[t]) if shared_t else {t}
    common = src_set & dst_set
    out: list[tuple[float, frozenset[Hashable]]] = []
    for p in nx.all_simple_paths(g, s, t):
        if any(_is_host(g, v) for v in p[1:-1]):
            continue
        cost = sum(g[a][b].get(weight, 1) for a, b in itertools.pairwise(p))
        fabric = p[1 if shared_s else 0 : len(p) - 1 if shared_t else len(p)]
        if fabric[0] == fabric[-1] and fabric[0] in common:
            out.append((cost, frozenset([("direct", fabric[0])])))
            continue
        if (shared_s and fabric[0] in common) or (shared_t and fabric[-1] in common):
            continue
        if mode == "node" and shared_s and shared_t and common & set(fabric):
            continue
        res: set[Hashable] = {frozenset(e) for e in itertools.pairwise(fabric)}
        if mode == "node":
            shared_nodes = (src_set if shared_s else set()) | (dst_set if shared_t else set())
            res |= {v for v in fabric if v not in (s, t) and v not in shared_nodes}
        out.append((cost, frozenset(res)))
    out.sort(key=lambda x: x[0])
    return out


def brute_force(
    g: nx.Graph, s: str, t: str, mode: Mode, *, share: bool = True, weight: str = "weight"
) -> dict[int, float]:
    """For every count c of pairwise disjoint paths that exists, the least total cost."""
    items = candidates(g, s, t, mode, share=share, weight=weight)
    best: dict[int, float] = {0: 0}

    def grow(start: int, used: frozenset[Hashable], count: int, cost: float) -> None:
        if cost < best.get(count, float("inf")):
            best[count] = cost
        for i in range(start, len(items)):
            c, res = items[i]
            if not used & res:
                grow(i + 1, used | res, count + 1, cost + c)

    grow(0, frozenset(), 0, 0)
    return best


def assert_disjoint(
    g: nx.Graph, s: str, t: str, mode: Mode, paths: list[Path], *, share: bool = True
) -> None:
    shared = {v for v in (s, t) if share and _is_host(g, v)}
    attach = {x for v in shared for x in g[v]}
    seen: set[Hashable] = set()
    for p in paths:
        assert p.nodes[0] == s and p.nodes[-1] == t, p
        assert len(set(p.nodes)) == len(p.nodes), f"not simple: {p}"
        assert all(g.has_edge(a, b) for a, b in p.edges()), p
        assert not any(_is_host(g, v) for v in p.nodes[1:-1]), f"host transit: {p}"
        edges = [frozenset(e) for e in p.edges() if not (set(e) & shared)]
        parts: list[Hashable] = list(edges)
        if mode == "node":
            parts += [v for v in p.nodes[1:-1] if v not in attach]
        if not parts:
            parts = [("direct", p.nodes[1])]
        for x in parts:
            assert x not in seen, f"{x} used twice in {paths}"
            seen.add(x)
    assert paths == sorted(paths)


def check_against_brute_force(
    g: nx.Graph,
    pairs: Iterator[tuple[str, str]],
    *,
    share: bool = True,
    weight: str = "weight",
) -> int:
    live = LiveGraph(g, weight=weight)
    checked = 0
    for s, t in pairs:
        for mode in MODES:
            best = brute_force(g, s, t, mode, share=share, weight=weight)
            most = max(best)
            found = max_disjoint_paths(live, s, t, mode=mode, share_access=share)
            assert len(found) == most, (s, t, mode, found, best)
            assert sum(p.cost for p in found) == pytest.approx(best[most]), (s, t, mode)
            assert_disjoint(g, s, t, mode, found, share=share)
            for k in range(1, most + 2):
                if k > most:
                    with pytest.raises(NoPathError) as err:
                        disjoint_paths(live, s, t, k, mode=mode, share_access=share)
                    assert err.value.available == most
                    assert err.value.requested == k
                    continue
                paths = disjoint_paths(live, s, t, k, mode=mode, share_access=share)
                assert len(paths) == k
                assert sum(p.cost for p in paths) == pytest.approx(best[k]), (s, t, mode, k)
                assert_disjoint(g, s, t, mode, paths, share=share)
                for p in paths:
                    cost = sum(g[a][b].get(weight, 1) for a, b in p.edges())
                    assert p.cost == pytest.approx(cost)
            checked += 1
    return checked


# -- optimality on the atlas ------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 3, 4, 5, 6])
def test_atlas_unit_weights_match_brute_force(n: int) -> None:
    checked = 0
    for g in atlas_of_size(n):
        checked += check_against_brute_force(g, itertools.combinations(sorted(g), 2))
    assert checked > 0


@pytest.mark.parametrize("n", [3, 4, 5, 6])
def test_atlas_random_weights_match_brute_force(n: int) -> None:
    """Weights 0..4, zero included: zero-cost links make ties and zero-cost cycles."""
    rng = random.Random(n)
    for g in atlas_of_size(n):
        h = g.copy()
        for u, v in h.edges:
            h[u][v]["cost"] = rng.randint(0, 4)
        pairs = list(itertools.permutations(sorted(h), 2))
        check_against_brute_force(h, iter(rng.sample(pairs, min(6, len(pairs)))), weight="cost")


def test_suurballe_trap() -> None:
    """The shortest path s-a-b-t blocks a second disjoint path; the optimum uses neither
    of its middle link: s-a-t and s-b-t (cost 6), not s-a-b-t plus nothing."""
    g = nx.Graph()
    g.add_edge("s", "a", weight=1)
    g.add_edge("a", "b", weight=1)
    g.add_edge("b", "t", weight=1)
    g.add_edge("s", "b", weight=2)
    g.add_edge("a", "t", weight=2)
    assert disjoint_paths(g, "s", "t", 1) == [Path(3, ("s", "a", "b", "t"))]
    for mode in MODES:
        paths = disjoint_paths(g, "s", "t", 2, mode=mode)
        assert paths == [Path(3, ("s", "a", "t")), Path(3, ("s", "b", "t"))]


def test_node_disjoint_is_stricter_than_edge_disjoint() -> None:
    # Two triangles sharing the node m: 2 edge-disjoint paths from a to d, 1 node-disjoint.
    g = nx.Graph([("a", "b"), ("a", "m"), ("b", "m"), ("m", "c"), ("m", "d"), ("c", "d")])
    assert count_disjoint_paths(g, "a", "d", mode="edge") == 2
    assert count_disjoint_paths(g, "a", "d", mode="node") == 1
    with pytest.raises(NoPathError, match="only 1 node-disjoint path exists from a to d"):
        disjoint_paths(g, "a", "d", 2, mode="node")


def test_adjacent_endpoints_use_their_link_once() -> None:
    g = nx.complete_graph(["a", "b", "c", "d"])
    for mode in MODES:
        paths = disjoint_paths(g, "a", "b", 3, mode=mode)
        assert paths[0] == Path(1, ("a", "b"))
        assert [p.hops for p in paths] == [1, 2, 2]


# -- fat trees and hosts ----------------------------------------------------------------------


@pytest.mark.parametrize("k", [4, 6])
def test_fat_tree_edge_switches(k: int) -> None:
    topo = fat_tree(k, hosts_per_edge=1)
    live = LiveGraph(topo.graph)
    half = k // 2
    same_pod, other_pod = "edge2", f"edge{half + 1}"
    for mode in MODES:
        far = max_disjoint_paths(live, "edge1", other_pod, mode=mode)
        assert [p.cost for p in far] == [4] * half
        near = max_disjoint_paths(live, "edge1", same_pod, mode=mode)
        assert [p.cost for p in near] == [2] * half
        assert_disjoint(topo.graph, "edge1", other_pod, mode, far)
        assert not any(p.nodes[i].startswith("h") for p in far for i in range(len(p.nodes)))


def test_hosts_share_their_access_links() -> None:
    topo = load(ROOT / "topologies" / "fat-tree-4.yaml")
    g = topo.graph
    for mode in MODES:
        paths = disjoint_paths(g, "h1", "h9", 2, mode=mode)
        assert [p.nodes[1] for p in paths] == ["edge1", "edge1"]
        assert [p.nodes[-2] for p in paths] == ["edge5", "edge5"]
        assert {p.nodes[2] for p in paths} == {"agg1", "agg2"}
        # Counted on the fabric, the hosts' paths are those of their edge switches.
        fabric = disjoint_paths(g, "edge1", "edge5", 2, mode=mode)
        assert [p.nodes[1:-1] for p in paths] == [p.nodes for p in fabric]
        # Strict: the single NIC is a single link.
        assert count_disjoint_paths(g, "h1", "h9", mode=mode, share_access=False) == 1


def test_hosts_on_one_switch_have_one_path() -> None:
    topo = load(ROOT / "topologies" / "fat-tree-4.yaml")
    assert max_disjoint_paths(topo.graph, "h1", "h2") == [Path(2, ("h1", "edge1", "h2"))]
    with pytest.raises(NoPathError) as err:
        disjoint_paths(topo.graph, "h1", "h2", 2)
    assert err.value.available == 1
    assert max_disjoint_paths(topo.graph, "edge1", "h1") == [Path(1, ("edge1", "h1"))]


def test_multi_plane_hosts_use_both_nics() -> None:
    g = load(ROOT / "topologies" / "gpu-pod-2plane.yaml").graph
    for mode in MODES:
        same_leaves = max_disjoint_paths(g, "gpu1", "gpu2", mode=mode)
        assert [p.nodes for p in same_leaves] == [
            ("gpu1", "p0leaf1", "gpu2"),
            ("gpu1", "p1leaf1", "gpu2"),
        ]
        shared = max_disjoint_paths(g, "gpu1", "gpu3", mode=mode)
        assert len(shared) == 4
        strict = max_disjoint_paths(g, "gpu1", "gpu3", mode=mode, share_access=False)
        assert [p.nodes[1][:2] for p in strict] == ["p0", "p1"]


def host_graphs(seed: int) -> Iterator[tuple[nx.Graph, list[tuple[str, str]]]]:
    """Small switch graphs with two endpoint hosts (one or two NICs each) and a third
    host with two NICs that would make a shortcut if hosts could be transit."""
    rng = random.Random(seed)
    for g in atlas(5):
        if g.number_of_nodes() < 3 or not nx.is_connected(g):
            continue
        h = nx.relabel_nodes(g, lambda v: v.replace("n", "s"))
        switches = sorted(h)
        for v in switches:
            h.nodes[v]["kind"] = "switch"
        for host in ("h1", "h2", "hx"):
            h.add_node(host, kind="host")
            nics = 2 if host == "hx" else rng.choice([1, 2])
            for sw in rng.sample(switches, nics):
                h.add_edge(host, sw)
        for u, v in h.edges:
            h[u][v]["weight"] = rng.choice([1, 1, 2, 3])
        pairs = [("h1", "h2"), ("h1", rng.choice(switches)), (rng.choice(switches), "h2")]
        yield h, pairs


@pytest.mark.parametrize("share", [True, False])
def test_host_endpoints_match_brute_force(share: bool) -> None:
    checked = 0
    for seed in range(2):
        for g, pairs in host_graphs(seed):
            checked += check_against_brute_force(g, iter(pairs), share=share)
    assert checked > 100


# -- live links, errors, determinism ----------------------------------------------------------


def test_down_links_are_left_out_and_the_graph_is_untouched() -> None:
    topo = load(ROOT / "topologies" / "fat-tree-4.yaml")
    g = topo.graph
    before = nx.to_dict_of_dicts(g)
    paths = disjoint_paths(g, "edge1", "edge5", 1, down=["edge1-agg1", ("agg2", "core3")])
    assert paths[0].nodes == ("edge1", "agg2", "core4", "agg6", "edge5")
    assert count_disjoint_paths(g, "edge1", "edge5", down=["edge1-agg1"]) == 1
    assert count_disjoint_paths(g, "edge1", "edge5", down=["edge1-agg1", "edge1-agg2"]) == 0
    with pytest.raises(NoPathError, match="no edge-disjoint path from edge1 to edge5"):
        disjoint_paths(g, "edge1", "edge5", 1, down=["edge1-agg1", "edge1-agg2"])
    assert nx.to_dict_of_dicts(g) == before
    assert topo.graph is g
    live = LiveGraph(g, ["edge1-agg1"])
    assert count_disjoint_paths(live, "edge1", "edge5") == 1
    assert count_disjoint_paths(live, "edge1", "edge5", down=["edge1-agg2"]) == 0
    assert count_disjoint_paths(live, "edge1", "edge5") == 1


def test_no_path_error_says_how_many_exist() -> None:
    g = load(ROOT / "topologies" / "fat-tree-4.yaml").graph
    with pytest.raises(NoPathError) as err:
        disjoint_paths(g, "edge1", "edge5", 4, mode="node")
    assert err.value.available == 2
    assert err.value.requested == 4
    assert str(err.value) == "only 2 node-disjoint paths exist from edge1 to edge5 (asked for 4)"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"src": "edge1", "dst": "edge9", "k": 1}, "destination 'edge9' is not in the graph"),
        ({"src": "edge1", "dst": "edge1", "k": 1}, "same node"),
        ({"src": "edge1", "dst": "edge5", "k": 0}, "k must be a positive integer"),
        ({"src": "edge1", "dst": "edge5", "k": 1, "mode": "link"}, "mode must be"),
        ({"src": "edge1", "dst": "edge5", "k": 1, "down": ["edge1-core1"]}, "no link of that"),
        ({"src": "edge1", "dst": "edge5", "k": 1, "down": [("edge1", "h3")]}, "no link between"),
    ],
)
def test_bad_requests_are_rejected(kwargs: dict[str, Any], message: str) -> None:
    g = load(ROOT / "topologies" / "fat-tree-4.yaml").graph
    with pytest.raises(ValueError, match=message):
        disjoint_paths(g, **kwargs)


def test_bad_weights_are_rejected() -> None:
    g = nx.Graph()
    g.add_edge("a", "b", weight=-1)
    with pytest.raises(ValueError, match="weight must be a finite number >= 0"):
        LiveGraph(g)
    with pytest.raises(ValueError, match="relabel"):
        LiveGraph(nx.path_graph(3))


def test_results_do_not_depend_on_insertion_order() -> None:
    g = fat_tree(6, hosts_per_edge=1).graph
    edges = list(g.edges(data=True))
    random.Random(7).shuffle(edges)
    shuffled = nx.Graph()
    shuffled.add_nodes_from(sorted(g.nodes(data=True), reverse=True))
    shuffled.add_edges_from(edges)
    for src, dst in [("edge1", "edge9"), ("h1", "h7"), ("h1", "h2"), ("edge2", "agg1")]:
        for mode in MODES:
            a = max_disjoint_paths(g, src, dst, mode=mode)
            b = max_disjoint_paths(shuffled, src, dst, mode=mode)
            assert a == b
            assert a == max_disjoint_paths(g, src, dst, mode=mode)


def test_queries_leave_the_snapshot_clean() -> None:
    """Queries share one residual network; each must put it back exactly."""
    live = LiveGraph(fat_tree(4).graph)
    first = {
        (s, t, m): max_disjoint_paths(live, s, t, mode=m)
        for s, t in [("h1", "h9"), ("edge1", "edge3"), ("h1", "h2"), ("h3", "edge3")]
        for m in MODES
    }
    for (s, t, m), paths in reversed(list(first.items())):
        assert max_disjoint_paths(live, s, t, mode=m) == paths


# -- salt: spreading equal-cost sets ------------------------------------------------------------


def _cores(paths: list[Path]) -> list[str]:
    return [n for p in paths for n in p.nodes if n.startswith("core")]


@pytest.mark.parametrize(
    ("salt", "cores"),
    [
        # By hand: toward h5 every node's scan, among its arcs with capacity left, starts at
        # index salt mod their count. edge1 has 2 (agg1, agg2), agg1 and agg2 2 cores each
        # (agg j of a pod reaches cores 2j+1, 2j+2). Salt 0 takes the first core of each
        # agg (core1, core3), an odd salt the second (core2, core4); edge1's rotation only
        # changes which agg the first augmentation takes, not the set.
        (0, ["core1", "core3"]),
        (1, ["core2", "core4"]),
        (2, ["core1", "core3"]),
        (3, ["core2", "core4"]),
        (2**32 - 1, ["core2", "core4"]),
    ],
)
def test_salt_picks_the_cores_on_the_fat_tree(salt: int, cores: list[str]) -> None:
    g = load(ROOT / "topologies" / "fat-tree-4.yaml").graph
    found = disjoint_paths(g, "h1", "h5", 2, salt=salt)
    assert _cores(found) == cores
    baseline = disjoint_paths(g, "h1", "h5", 2)
    assert sum(p.cost for p in found) == sum(p.cost for p in baseline)  # still minimum
    assert max_disjoint_paths(g, "h1", "h5", salt=salt) == found


def test_salt_spreads_an_all_to_all_over_every_core() -> None:
    """D-mod-k: the 8 hosts of two pods, salted by the destination's index: every core
    carries the same number of paths (without the salt only core1 and core3 carry any)."""
    g = load(ROOT / "topologies" / "fat-tree-4.yaml").graph
    hosts = [f"h{i}" for i in range(1, 9)]
    for salted in (False, True):
        count: dict[str, int] = {}
        for i, dst in enumerate(hosts):
            for src in hosts:
                if src != dst:
                    paths = max_disjoint_paths(g, src, dst, salt=i if salted else 0)
                    for c in _cores(paths):
                        count[c] = count.get(c, 0) + 1
        if salted:
            assert count == {"core1": 16, "core2": 16, "core3": 16, "core4": 16}
        else:
            assert count == {"core1": 32, "core3": 32}


def test_salt_zero_is_the_unsalted_result() -> None:
    live = LiveGraph(fat_tree(6, hosts_per_edge=1).graph)
    for src, dst in [("edge1", "edge9"), ("h1", "h7"), ("h1", "h2"), ("edge2", "agg1")]:
        for mode in MODES:
            assert max_disjoint_paths(live, src, dst, mode=mode, salt=0) == max_disjoint_paths(
                live, src, dst, mode=mode
            )


@pytest.mark.parametrize("n", [3, 4, 5])
def test_any_salt_keeps_the_minimum_total_cost(n: int) -> None:
    for g in atlas_of_size(n):
        live = LiveGraph(g)
        for s, t in itertools.permutations(sorted(g), 2):
            for mode in MODES:
                base = max_disjoint_paths(live, s, t, mode=mode)
                for salt in (1, 2, 5):
                    salted = max_disjoint_paths(live, s, t, mode=mode, salt=salt)
                    assert len(salted) == len(base)
                    assert sum(p.cost for p in salted) == pytest.approx(sum(p.cost for p in base))
                    assert all(p.nodes[0] == s and p.nodes[-1] == t for p in salted)


@pytest.mark.parametrize("salt", [-1, True, 1.5])
def test_bad_salts_are_rejected(salt: Any) -> None:
    g = load(ROOT / "topologies" / "fat-tree-4.yaml").graph
    with pytest.raises(ValueError, match="salt must be a non-negative integer"):
        disjoint_paths(g, "h1", "h5", 2, salt=salt)
