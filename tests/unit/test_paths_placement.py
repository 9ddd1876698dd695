"""Placement of collectives: fewer flows on the most loaded link than naive placement,
loads that add up, and determinism."""

from __future__ import annotations

import pathlib
from collections import Counter

import networkx as nx
import pytest

from controller.paths import (
    Flow,
    NoPathError,
    Placement,
    candidate_paths,
    collective_channels,
    collective_flows,
    ecmp_hash_paths,
    equal_cost_paths,
    first_path_placement,
    host_planes,
    place_collective,
    place_flows,
    placement_of,
)
from controller.topology import load

ROOT = pathlib.Path(__file__).resolve().parents[2]
HOSTS = [f"h{i}" for i in range(1, 17)]
# Neighbours in the ring sit in different pods, so every flow crosses the core.
SCATTERED = ["h1", "h5", "h9", "h13", "h3", "h7", "h11", "h15", "h2", "h6", "h10", "h14"]


@pytest.fixture(scope="module")
def fat_tree() -> nx.Graph:
    return load(ROOT / "topologies" / "fat-tree-4.yaml").graph


def recount(placement: Placement) -> Counter[tuple[str, str]]:
    return Counter(e for path in placement.paths.values() for e in path.edges())


def test_collective_flows() -> None:
    assert collective_flows(["a", "b", "c"], "ring") == [
        Flow("a", "b"),
        Flow("b", "c"),
        Flow("c", "a"),
    ]
    assert collective_flows(["a", "b"], "ring") == [Flow("a", "b"), Flow("b", "a")]
    a2a = collective_flows(["a", "b", "c"], "all-to-all")
    assert len(a2a) == 6 and len(set(a2a)) == 6
    with pytest.raises(ValueError, match="at least 2 hosts"):
        collective_flows(["a"], "ring")
    with pytest.raises(ValueError, match="more than once in the collective: a"):
        collective_flows(["a", "b", "a"], "ring")
    with pytest.raises(ValueError, match="pattern must be one of ring, all-to-all"):
        collective_flows(["a", "b"], "tree")  # type: ignore[arg-type]


def test_ring_placement_beats_first_path(fat_tree: nx.Graph) -> None:
    flows = collective_flows(SCATTERED, "ring")
    naive = first_path_placement(fat_tree, flows)
    placed = place_flows(fat_tree, flows)
    assert naive.max_load >= 3
    assert placed.max_load == 1
    assert placed.max_load < naive.max_load


def test_all_to_all_reaches_the_access_bound(fat_tree: nx.Graph) -> None:
    placed = place_collective(fat_tree, HOSTS, "all-to-all")
    naive = first_path_placement(fat_tree, collective_flows(HOSTS, "all-to-all"))
    # Each host sends 15 flows through its one NIC: nothing can do better than 15.
    assert placed.max_load == 15
    assert naive.max_load > placed.max_load
    fabric = [x.load for x in placed.links if not x.link.startswith("h")]
    naive_fabric = [x.load for x in naive.links if not x.link.startswith("h")]
    assert max(fabric) < max(naive_fabric)


def test_loads_add_up_and_paths_are_candidates(fat_tree: nx.Graph) -> None:
    placed = place_collective(fat_tree, SCATTERED, "all-to-all")
    counts = recount(placed)
    assert {(x.src, x.dst): x.flows for x in placed.links} == dict(counts)
    assert all(x.load == x.flows for x in placed.links)
    assert placed.max_load == max(counts.values())
    assert placed.hottest() and all(x.load == placed.max_load for x in placed.hottest())
    assert [x.load for x in placed.links] == sorted((x.load for x in placed.links), reverse=True)
    for flow, path in placed.paths.items():
        assert path in placed.candidates[flow]
        assert (path.src, path.dst) == (flow.src, flow.dst)
    link = placed.links[0]
    assert placed.load(link.src, link.dst) == link.load
    assert placed.load("h1", "h2") == 0


def test_placement_is_deterministic(fat_tree: nx.Graph) -> None:
    a = place_collective(fat_tree, SCATTERED, "all-to-all")
    b = place_collective(fat_tree, SCATTERED, "all-to-all")
    assert a.paths == b.paths
    assert a.links == b.links


def test_weighted_placement_avoids_a_slow_link() -> None:
    g = load(ROOT / "topologies" / "leaf-spine-2x4.yaml").graph.copy()
    spine, leaf = "spine1", "leaf1"
    assert g.has_edge(leaf, spine)
    g[leaf][spine]["bandwidth"] = g[leaf][spine]["bandwidth"] / 4
    hosts = sorted(h for h, kind in g.nodes(data="kind") if kind == "host")
    flows = collective_flows(hosts, "ring")
    placed = place_flows(g, flows, weighted=True)
    assert placed.weighted
    slow = placed.load(leaf, spine) + placed.load(spine, leaf)
    assert slow == 0
    for x in placed.links:
        bw = g[x.src][x.dst]["bandwidth"]
        assert x.load == pytest.approx(x.flows * max(d for *_, d in g.edges(data="bandwidth")) / bw)


def test_down_links_are_avoided(fat_tree: nx.Graph) -> None:
    down = ["agg1-core1", "edge5-agg5"]
    placed = place_collective(fat_tree, SCATTERED, "ring", down=down)
    used = {frozenset(e) for p in placed.paths.values() for e in p.edges()}
    assert frozenset(("agg1", "core1")) not in used
    assert frozenset(("edge5", "agg5")) not in used


def test_hash_based_ecmp_for_comparison(fat_tree: nx.Graph) -> None:
    flows = collective_flows(HOSTS, "all-to-all")
    hashed = ecmp_hash_paths(fat_tree, flows, seed=1)
    for flow, path in hashed.items():
        assert path in equal_cost_paths(fat_tree, flow.src, flow.dst)
    assert ecmp_hash_paths(fat_tree, flows, seed=1) == hashed
    measured = placement_of(fat_tree, hashed)
    assert measured.max_load >= place_flows(fat_tree, flows).max_load
    assert measured.candidates == {}


def test_candidates_and_errors(fat_tree: nx.Graph) -> None:
    cands = candidate_paths(fat_tree, Flow("h1", "h9"))
    assert len(cands) == 4  # the 2 disjoint paths are among the 4 equal-cost ones
    assert list(cands) == sorted(cands)
    assert len(candidate_paths(fat_tree, Flow("h1", "h9"), kind="disjoint")) == 2
    assert len(candidate_paths(fat_tree, Flow("h1", "h9"), kind="ecmp", limit=3)) == 3
    with pytest.raises(NoPathError, match="flow h1->h9"):
        place_flows(fat_tree, [Flow("h1", "h9")], down=["h9-edge5"])


# -- channels: hosts with a NIC in each of two planes ---------------------------------------

GPUS = [f"gpu{i}" for i in range(1, 9)]


@pytest.fixture(scope="module")
def pod() -> nx.Graph:
    return load(ROOT / "topologies" / "gpu-pod-2plane.yaml").graph


def plane_of(graph: nx.Graph, path_nodes: tuple[str, ...]) -> set[object]:
    return {graph.nodes[n].get("plane") for n in path_nodes[1:-1]}


def test_channels_split_two_plane_flows_and_leave_single_plane_ones(
    pod: nx.Graph, fat_tree: nx.Graph
) -> None:
    assert host_planes(pod, "gpu1") == (0, 1)
    assert host_planes(fat_tree, "h1") is None  # one NIC
    channels, demand = collective_channels(pod, GPUS[:3], "ring")
    assert channels == [
        Flow("gpu1", "gpu2", 0), Flow("gpu1", "gpu2", 1),
        Flow("gpu2", "gpu3", 0), Flow("gpu2", "gpu3", 1),
        Flow("gpu3", "gpu1", 0), Flow("gpu3", "gpu1", 1),
    ]  # fmt: skip
    assert set(demand.values()) == {0.5}
    assert str(channels[1]) == "gpu1->gpu2@plane1" and channels[1].parent == Flow("gpu1", "gpu2")
    flat, ones = collective_channels(fat_tree, HOSTS[:4], "all-to-all")
    assert flat == collective_flows(HOSTS[:4], "all-to-all") and set(ones.values()) == {1.0}


def test_two_plane_ring_gives_one_channel_per_plane_inside_its_plane(pod: nx.Graph) -> None:
    placed = place_collective(pod, GPUS, "ring")
    assert len(placed.flows) == 16  # 8 flows x 2 planes
    for flow, chans in placed.channels().items():
        assert [c.plane for c in chans] == [0, 1], flow
        for c in chans:
            assert plane_of(pod, placed.paths[c].nodes) == {c.plane}, str(placed.paths[c])
            assert placed.demand[c] == 0.5
    # Hand count: every NIC sends one channel and receives one (0.5 each); the four flows
    # that change leaves (gpu2->gpu3, gpu4->gpu5, gpu6->gpu7, gpu8->gpu1) put one channel
    # per plane on one uplink and one downlink: 0.5 on 8 leaf->spine directions.
    assert placed.max_load == pytest.approx(0.5)
    assert placed.load("gpu1", "p0leaf1") == placed.load("gpu1", "p1leaf1") == 0.5
    up = [x.load for x in placed.links if "leaf" in x.src and "spine" in x.dst]
    assert sorted(up) == [0.5] * 8


def test_two_plane_all_to_all_balances_both_planes(pod: nx.Graph) -> None:
    placed = place_collective(pod, GPUS, "all-to-all")
    assert len(placed.flows) == 112  # 56 flows x 2 planes
    for c, path in placed.paths.items():
        assert plane_of(pod, path.nodes) == {c.plane}, str(path)
    # Hand count: a host sends 7 channels of 0.5 on each NIC (3.5, the host cut: 7 flows
    # over 2 NICs); a plane's leaf sends its 2 hosts x 6 remote hosts = 12 channels (6.0)
    # over 2 uplinks: 3.0 on each of the 16 leaf->spine directions, and 3.0 back down.
    assert placed.max_load == pytest.approx(3.5)
    for gpu in GPUS:
        for leaf in pod.neighbors(gpu):
            assert placed.load(gpu, leaf) == pytest.approx(3.5)
            assert placed.load(leaf, gpu) == pytest.approx(3.5)
    fabric = [x.load for x in placed.links if "spine" in x.src or "spine" in x.dst]
    assert len(fabric) == 32 and all(v == pytest.approx(3.0) for v in fabric)


def test_whole_flows_on_two_planes_use_one_nic_each(pod: nx.Graph) -> None:
    placed = place_collective(pod, GPUS, "ring", channels=False)
    assert len(placed.flows) == 8 and all(f.plane is None for f in placed.flows)
    assert placed.max_load == pytest.approx(1.0)  # twice the channels' 0.5


def test_a_channel_without_a_path_in_its_plane_says_so(pod: nx.Graph) -> None:
    cut = [("p0leaf1", "p0spine1"), ("p0leaf1", "p0spine2")]
    with pytest.raises(NoPathError, match=r"gpu1->gpu3@plane0"):
        candidate_paths(pod, Flow("gpu1", "gpu3", 0), down=cut)
    assert all(
        plane_of(pod, p.nodes) == {1}
        for p in candidate_paths(pod, Flow("gpu1", "gpu3", 1), down=cut)
    )
