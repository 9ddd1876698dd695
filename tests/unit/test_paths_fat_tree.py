"""The fat-tree generator used by the path engine's tests and benchmark: valid models
through the normal loader, the same graph as the shipped fat-tree-4, any even k to 32."""

from __future__ import annotations

import pathlib
import re

import networkx as nx
import pytest

from controller.topology import load
from controller.topology.generate import fat_tree, fat_tree_yaml
from controller.topology.loader import IFNAMSIZ, MAX_GLOBAL_NODE_ID

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_k4_is_the_shipped_fat_tree() -> None:
    shipped = load(ROOT / "topologies" / "fat-tree-4.yaml")
    generated = fat_tree(4)
    assert nx.utils.graphs_equal(shipped.graph, generated.graph)
    assert [(s.name, s.node_id) for s in shipped.switches] == [
        (s.name, s.node_id) for s in generated.switches
    ]
    assert [(x.name, x.a.name, x.b.name) for x in shipped.links] == [
        (x.name, x.a.name, x.b.name) for x in generated.links
    ]


@pytest.mark.parametrize("k", [2, 6, 8])
def test_shape(k: int) -> None:
    topo = fat_tree(k)
    half = k // 2
    kinds = {"core": half * half, "agg": k * half, "edge": k * half}
    for prefix, count in kinds.items():
        assert sum(1 for s in topo.switches if s.name.startswith(prefix)) == count
    assert len(topo.hosts) == k * half * half
    assert all(h.gpu for h in topo.hosts)
    g = topo.graph
    assert all(g.degree(s.name) == k for s in topo.switches if not s.name.startswith("core"))
    assert all(g.degree(s.name) == k for s in topo.switches if s.name.startswith("core"))
    assert nx.is_connected(g)


def test_options() -> None:
    topo = fat_tree(4, hosts_per_edge=1, bandwidth=40, gpu=False)
    assert len(topo.hosts) == 8
    assert not topo.gpu_hosts
    assert {x.bandwidth_mbps for x in topo.links} == {40.0}
    assert not fat_tree(4, hosts_per_edge=0).hosts


def test_k32_is_a_valid_model() -> None:
    text = fat_tree_yaml(32)
    ids = [int(x, 16) for x in re.findall(r"id: (0x[0-9a-f]+)", text)]
    assert len(ids) == len(set(ids)) == 1280
    assert max(ids) <= MAX_GLOBAL_NODE_ID
    names = re.findall(r"name: (\w+)", text)
    assert max(len(f"{n}-eth32") for n in names) <= IFNAMSIZ
    topo = fat_tree(32, hosts_per_edge=0)  # the loader validates everything else
    assert len(topo.switches) == 1280
    assert len(topo.fabric_links) == 16384
    assert max(i.port for x in topo.links for i in (x.a, x.b)) == 32
    assert max(len(i.name) for x in topo.links for i in (x.a, x.b)) <= IFNAMSIZ


@pytest.mark.parametrize("k", [0, 3, -2, 66, True])
def test_bad_k(k: int) -> None:
    with pytest.raises(ValueError, match="fat tree k"):
        fat_tree_yaml(k)
    with pytest.raises(ValueError, match="hosts_per_edge"):
        fat_tree_yaml(4, hosts_per_edge=-1)
