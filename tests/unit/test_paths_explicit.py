"""Explicit paths through waypoints: shortest segment by segment, and which segment has
no path."""

from __future__ import annotations

import itertools
import pathlib

import networkx as nx
import pytest

from controller.paths import NoPathError, Path, explicit_path, shortest_path
from controller.topology import load

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fat_tree() -> nx.Graph:
    return load(ROOT / "topologies" / "fat-tree-4.yaml").graph


def test_through_one_core(fat_tree: nx.Graph) -> None:
    path = explicit_path(fat_tree, "h1", "h9", ["core4"])
    assert path == Path(6, ("h1", "edge1", "agg2", "core4", "agg6", "edge5", "h9"))


def test_segments_are_shortest_paths_joined(fat_tree: nx.Graph) -> None:
    waypoints = ["core2", "agg3", "core1"]
    path = explicit_path(fat_tree, "h1", "h16", waypoints)
    points = ["h1", *waypoints, "h16"]
    expected: list[str] = ["h1"]
    for a, b in itertools.pairwise(points):
        expected += shortest_path(fat_tree, a, b).nodes[1:]
    assert path.nodes == tuple(expected)
    assert path.cost == path.hops == len(expected) - 1
    # The waypoints ask for a detour through agg3 and back up: core1 is visited once,
    # agg3 is crossed, and the path is not simple (it asked for it).
    assert path.nodes.count("agg3") == 1
    assert path.nodes[:4] == ("h1", "edge1", "agg1", "core2")


def test_no_waypoints_is_the_shortest_path(fat_tree: nx.Graph) -> None:
    assert explicit_path(fat_tree, "h1", "h9", []) == shortest_path(fat_tree, "h1", "h9")
    assert explicit_path(fat_tree, "h1", "h9", ["edge1"]) == shortest_path(fat_tree, "h1", "h9")


def test_the_segment_without_a_path_is_named(fat_tree: nx.Graph) -> None:
    cut = ["agg3-core1", "agg5-core1", "agg7-core1", "agg1-core1"]
    with pytest.raises(NoPathError) as err:
        explicit_path(fat_tree, "h1", "h16", ["agg3", "core1", "agg7"], down=cut)
    assert err.value.segment == 1
    assert (err.value.src, err.value.dst) == ("agg3", "core1")
    assert str(err.value).startswith("no path from agg3 to core1 (segment 2 of the explicit")
    assert "h1 -> agg3 -> core1 -> agg7 -> h16" in str(err.value)


def test_down_links_reroute_segments(fat_tree: nx.Graph) -> None:
    path = explicit_path(fat_tree, "h1", "h9", ["core1"], down=["edge1-agg1"])
    assert path.nodes[:5] == ("h1", "edge1", "agg2", "edge2", "agg1")
    assert "core1" in path.nodes


def test_bad_waypoints(fat_tree: nx.Graph) -> None:
    with pytest.raises(ValueError, match="waypoint 2 'h5' is a host"):
        explicit_path(fat_tree, "h1", "h9", ["core1", "h5"])
    with pytest.raises(ValueError, match="waypoint 1 'core9' is not in the graph"):
        explicit_path(fat_tree, "h1", "h9", ["core9"])
