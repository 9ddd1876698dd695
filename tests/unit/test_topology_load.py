"""Loading the shipped topologies and the addressing plan they yield."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from controller.topology import load, loads

ROOT = Path(__file__).resolve().parents[2]
TOPOLOGIES = sorted((ROOT / "topologies").glob("*.yaml"))


def test_all_shipped_topologies_are_present() -> None:
    names = {p.stem for p in TOPOLOGIES}
    assert {"line-3", "leaf-spine-2x4", "fat-tree-4", "gpu-pod-2plane"} <= names


@pytest.mark.parametrize("path", TOPOLOGIES, ids=lambda p: p.stem)
def test_shipped_topology_loads_and_is_connected(path: Path) -> None:
    import networkx as nx

    topo = load(path)
    g = topo.graph
    if topo.name == "gpu-pod-2plane":
        # Two planes joined only through the multi-NIC hosts.
        fabric = g.subgraph(s.name for s in topo.switches)
        assert nx.number_connected_components(fabric) == 2
    assert nx.is_connected(g)


def test_fat_tree_4_shape() -> None:
    topo = load(ROOT / "topologies/fat-tree-4.yaml")
    assert len(topo.switches) == 20
    assert len(topo.hosts) == 16
    assert len(topo.fabric_links) == 32
    degrees = {s.name: topo.graph.degree(s.name) for s in topo.switches}
    assert all(d == 4 for d in degrees.values())
    assert all(h.gpu for h in topo.hosts)


def test_gpu_pod_has_two_nics_per_host_one_per_plane() -> None:
    topo = load(ROOT / "topologies/gpu-pod-2plane.yaml")
    assert len(topo.gpu_hosts) == 8
    for host in topo.hosts:
        assert [n.plane for n in host.nics] == [0, 1]
        assert len({n.prefix for n in host.nics}) == 2
    for link in topo.fabric_links:
        assert topo.switch(link.a.node).plane == topo.switch(link.b.node).plane == link.plane


def test_addressing_plan_of_line_3() -> None:
    topo = load(ROOT / "topologies/line-3.yaml")
    s2 = topo.switch("s2")
    assert s2.locator == ipaddress.IPv6Network("fcbb:bb00:2::/48")
    h1 = topo.host("h1")
    assert h1.nics[0].prefix == ipaddress.IPv6Network("2001:db8:1::/64")
    assert h1.address == ipaddress.IPv6Address("2001:db8:1::1")
    # h1 attaches to s1 port 1 (host NICs take the first ports), and its gateway is
    # that port's link-local address.
    s1_port = topo.link("h1", "s1").interface_at("s1")
    assert (s1_port.name, s1_port.port) == ("s1-eth1", 1)
    assert h1.nics[0].gateway == s1_port.link_local == ipaddress.IPv6Address("fe80::53:1:1")
    link = topo.link("s1", "s2")
    assert (link.a.name, link.b.name) == ("s1-eth2", "s2-eth1")
    assert link.a.mac == "02:53:00:01:00:02"
    assert link.ua_sid_at("s1") == ipaddress.IPv6Network("fcbb:bb00:e002::/48")
    assert link.peer_of("s1").link_local == ipaddress.IPv6Address("fe80::53:2:1")


def test_plan_is_deterministic() -> None:
    from controller.topology.render import to_dict

    for path in TOPOLOGIES:
        assert to_dict(load(path)) == to_dict(load(path))
        text = path.read_text()
        assert to_dict(loads(text, str(path))) == to_dict(load(path))


def test_all_addresses_and_macs_are_unique() -> None:
    for path in TOPOLOGIES:
        topo = load(path)
        interfaces = [i for link in topo.links for i in (link.a, link.b)]
        assert len({i.mac for i in interfaces}) == len(interfaces)
        assert len({i.link_local for i in interfaces}) == len(interfaces)
        assert len({i.name for i in interfaces}) == len(interfaces)
        assert len({s.locator for s in topo.switches}) == len(topo.switches)


def test_overrides_of_the_plan() -> None:
    topo = loads(
        """
name: custom
addressing: {usid_block: "fc00:1::/32", host_block: "2001:db9::/32"}
defaults: {bandwidth: 50, host_bandwidth: 10}
switches: [{name: a, id: 0x10}, {name: b, id: 0x20}]
hosts:
  - name: x
    id: 7
    nics: [{switch: a, prefix: "2001:db9:99::/64", address: "2001:db9:99::42", port: 9}]
  - {name: y, nics: [b]}
links:
  - {ends: [a, b], bandwidth: 25, ports: [3, 4]}
"""
    )
    assert topo.switch("a").locator == ipaddress.IPv6Network("fc00:1:10::/48")
    x = topo.host("x")
    assert x.address == ipaddress.IPv6Address("2001:db9:99::42")
    assert topo.link("x", "a").interface_at("a").port == 9
    assert topo.link("x", "a").bandwidth_mbps == 10
    # Host ids default to the position in the list.
    assert topo.host("y").nics[0].prefix == ipaddress.IPv6Network("2001:db9:2::/64")
    link = topo.link("a", "b")
    assert (link.a.port, link.b.port, link.bandwidth_mbps) == (3, 4, 25)
    assert link.ua_sid_at("b") == ipaddress.IPv6Network("fc00:1:e004::/48")
