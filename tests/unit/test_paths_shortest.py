"""Shortest paths and ECMP sets, checked against networkx's all_shortest_paths on every
small graph of the atlas, plus hosts, live links and zero-cost links."""

from __future__ import annotations

import itertools
import pathlib
import random
from functools import cache

import networkx as nx
import pytest

from controller.paths import (
    LiveGraph,
    NoPathError,
    Path,
    count_equal_cost_paths,
    ecmp_next_hops,
    equal_cost_paths,
    live_view,
    shortest_path,
)
from controller.topology import load

ROOT = pathlib.Path(__file__).resolve().parents[2]


@cache
def atlas() -> tuple[nx.Graph, ...]:
    """Every graph of the atlas (up to 7 nodes) with at least one edge, nodes renamed."""
    return tuple(
        nx.relabel_nodes(g, lambda v: f"n{v}") for g in nx.graph_atlas_g() if g.number_of_edges()
    )


def weighted(g: nx.Graph, seed: int) -> nx.Graph:
    rng = random.Random(seed)
    h = g.copy()
    for u, v in h.edges:
        h[u][v]["weight"] = rng.randint(1, 3)
    return h


@pytest.mark.parametrize("weights", [False, True])
def test_ecmp_next_hops_match_all_shortest_paths(weights: bool) -> None:
    for i, plain in enumerate(atlas()):
        g = weighted(plain, i) if weights else plain
        live = LiveGraph(g)
        for dst in sorted(g):
            table = ecmp_next_hops(live, dst)
            for u in sorted(g):
                if u == dst:
                    assert u not in table
                    continue
                if not nx.has_path(g, u, dst):
                    assert u not in table
                    continue
                expected = {p[1] for p in nx.all_shortest_paths(g, u, dst, weight="weight")}
                assert table[u] == tuple(sorted(expected)), (u, dst)


def test_shortest_and_equal_cost_paths_match_networkx() -> None:
    for i, plain in enumerate(atlas()[::3]):
        g = weighted(plain, i)
        live = LiveGraph(g)
        for src, dst in itertools.permutations(sorted(g), 2):
            if not nx.has_path(g, src, dst):
                with pytest.raises(NoPathError, match=f"no path from {src} to {dst}"):
                    shortest_path(live, src, dst)
                continue
            every = sorted(tuple(p) for p in nx.all_shortest_paths(g, src, dst, weight="weight"))
            cost = nx.shortest_path_length(g, src, dst, weight="weight")
            assert shortest_path(live, src, dst) == Path(cost, every[0])
            assert [p.nodes for p in equal_cost_paths(live, src, dst)] == every
            assert {p.cost for p in equal_cost_paths(live, src, dst)} == {cost}
            assert count_equal_cost_paths(live, src, dst) == len(every)
            assert len(equal_cost_paths(live, src, dst, limit=1)) == 1


def test_fat_tree_ecmp_groups() -> None:
    g = load(ROOT / "topologies" / "fat-tree-4.yaml").graph
    table = ecmp_next_hops(g, "h9")
    assert table["edge1"] == ("agg1", "agg2")
    assert table["agg1"] == ("core1", "core2")
    assert table["core3"] == ("agg6",)
    assert table["agg5"] == ("edge5",)
    assert table["edge5"] == ("h9",)
    assert table["h1"] == ("edge1",)
    assert "h9" not in table
    assert all(not hop.startswith("h") or hop == "h9" for hops in table.values() for hop in hops)
    assert count_equal_cost_paths(g, "h1", "h9") == 4
    assert shortest_path(g, "h1", "h9").nodes == (
        "h1",
        "edge1",
        "agg1",
        "core1",
        "agg5",
        "edge5",
        "h9",
    )


def test_hosts_are_never_transit() -> None:
    # s1 - hx - s2 would be the short way; hosts do not forward, so s1 - s3 - s4 - s2.
    g = nx.Graph()
    for sw in ("s1", "s2", "s3", "s4"):
        g.add_node(sw, kind="switch")
    g.add_node("hx", kind="host")
    g.add_edges_from([("s1", "hx"), ("hx", "s2"), ("s1", "s3"), ("s3", "s4"), ("s4", "s2")])
    assert shortest_path(g, "s1", "s2").nodes == ("s1", "s3", "s4", "s2")
    assert ecmp_next_hops(g, "s2")["s1"] == ("s3",)
    assert ecmp_next_hops(g, "hx")["s3"] == ("s1",)
    # A host with NICs in two planes reaches both, as an endpoint.
    gpu = load(ROOT / "topologies" / "gpu-pod-2plane.yaml").graph
    table = ecmp_next_hops(gpu, "gpu3")
    assert table["gpu1"] == ("p0leaf1", "p1leaf1")
    assert table["p0leaf1"] == ("p0spine1", "p0spine2")
    assert "gpu2" not in {hop for hops in table.values() for hop in hops}


def test_down_links_are_left_out() -> None:
    topo = load(ROOT / "topologies" / "fat-tree-4.yaml")
    g = topo.graph
    edges_before = g.number_of_edges()
    table = ecmp_next_hops(g, "h9", down=["edge1-agg1", ("core3", "agg6")])
    assert table["edge1"] == ("agg2",)
    assert table["agg2"] == ("core4",)
    assert g.number_of_edges() == edges_before
    view = live_view(g, ["edge1-agg1"])
    assert not view.has_edge("edge1", "agg1")
    assert g.has_edge("edge1", "agg1")
    with pytest.raises(NoPathError, match="no path from h1 to h9"):
        shortest_path(g, "h1", "h9", down=["h1-edge1"])


def test_zero_cost_links_give_loop_free_next_hops() -> None:
    rng = random.Random(3)
    for g in atlas()[::5]:
        h = g.copy()
        for u, v in h.edges:
            h[u][v]["weight"] = rng.choice([0, 0, 1, 2])
        live = LiveGraph(h)
        for dst in h:
            table = ecmp_next_hops(live, dst)
            dist = nx.single_source_dijkstra_path_length(h, dst)
            for u, hops in table.items():
                assert hops
                for v in hops:
                    assert dist[u] == h[u][v]["weight"] + dist[v]
            # Following any next hops always arrives: no forwarding loop.
            for u in table:
                seen = {u}
                frontier = [u]
                while frontier:
                    x = frontier.pop()
                    for v in table.get(x, ()):
                        if v not in seen:
                            seen.add(v)
                            frontier.append(v)
                assert dst in seen
            assert nx.is_directed_acyclic_graph(
                nx.DiGraph([(u, v) for u, hops in table.items() for v in hops])
            )


def test_same_node_and_unknown_nodes() -> None:
    g = nx.path_graph(["a", "b", "c"])
    assert shortest_path(g, "a", "a") == Path(0, ("a",))
    with pytest.raises(ValueError, match="source 'x' is not in the graph"):
        shortest_path(g, "x", "a")
    with pytest.raises(ValueError, match="destination 'x' is not in the graph"):
        ecmp_next_hops(g, "x")
