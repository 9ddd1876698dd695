"""Segment lists: they force the path, and no shorter list does (brute force on the graphs of
networkx's atlas), in both encodings; uSID containers pack and chain."""

from __future__ import annotations

import ipaddress
import itertools
import random
from collections.abc import Iterator, Sequence

import networkx as nx
import pytest

from controller.compiler.segments import (
    DT6_FUNCTION,
    UA_BASE,
    Adjacency,
    Encoding,
    Node,
    SegmentError,
    container,
    pack_usids,
    segment_list,
)
from controller.paths import LiveGraph
from controller.topology import Topology, loads

BLOCK = ipaddress.IPv6Network("fcbb:bb00::/32")


def topology_of(graph: nx.Graph, name: str = "g") -> Topology:
    """A topology whose switches are the graph's nodes: ``s<n>`` with node id n + 1."""
    switches = ", ".join(f"{{name: s{n}, id: {n + 1}}}" for n in sorted(graph.nodes))
    links = "\n".join(f"  - {{ends: [s{u}, s{v}]}}" for u, v in sorted(graph.edges))
    return loads(f"name: {name}\nswitches: [{switches}]\nlinks:\n{links}\n")


# -- an independent model of the data plane --------------------------------------------------


class Walker:
    """Follows SIDs through a topology the way srv6.p4 does, on every ECMP branch (built on
    networkx's shortest paths, not on the path engine)."""

    def __init__(self, topo: Topology) -> None:
        self.topo = topo
        self.graph = topo.graph.subgraph(s.name for s in topo.switches)
        self.by_id = {s.node_id: s.name for s in topo.switches}
        self.shortest: dict[tuple[str, str], list[tuple[str, ...]]] = {}
        self.peers = {
            (link.interface_at(n).node, link.interface_at(n).port): link.peer_of(n).node
            for link in topo.links
            for n in link.ends()
        }

    def port_peer(self, node: str, port: int) -> str | None:
        return self.peers.get((node, port))

    def route(self, walks: set[tuple[str, ...]], node: str) -> set[tuple[str, ...]]:
        out: set[tuple[str, ...]] = set()
        for walk in walks:
            key = (walk[-1], node)
            if key not in self.shortest:
                self.shortest[key] = [
                    tuple(p[1:]) for p in nx.all_shortest_paths(self.graph, walk[-1], node)
                ]
            for tail in self.shortest[key]:
                out.add(walk + tail)
        return out

    def run_usids(self, ingress: str, usids: Sequence[int]) -> set[tuple[str, ...]] | None:
        """Every walk the packet can take, or None when some branch drops it or never
        decapsulates at a switch."""
        walks = {(ingress,)}
        for n, usid in enumerate(usids):
            if usid == DT6_FUNCTION:
                return walks if n == len(usids) - 1 else None
            if usid >= UA_BASE:  # local: processed by the node that holds the packet
                nxt: set[tuple[str, ...]] = set()
                for walk in walks:
                    peer = self.port_peer(walk[-1], usid - UA_BASE)
                    if peer is None:
                        return None
                    nxt.add((*walk, peer))
                walks = nxt
            elif usid in self.by_id:
                walks = self.route(walks, self.by_id[usid])
            else:
                return None
        return None

    def run_full(
        self, ingress: str, sids: Sequence[ipaddress.IPv6Address]
    ) -> set[tuple[str, ...]] | None:
        walks = {(ingress,)}
        for n, sid in enumerate(sids):
            node_id, function, rest = usids_of(sid)[0], usids_of(sid)[1:2], usids_of(sid)[2:]
            if rest or node_id not in self.by_id:
                return None
            walks = self.route(walks, self.by_id[node_id])
            if function == [DT6_FUNCTION]:
                return walks if n == len(sids) - 1 else None
            if function:
                result = self.run_usids_from(walks, function[0])
                if result is None:
                    return None
                walks = result
        return None

    def run_usids_from(self, walks: set[tuple[str, ...]], ua: int) -> set[tuple[str, ...]] | None:
        out: set[tuple[str, ...]] = set()
        for walk in walks:
            peer = self.port_peer(walk[-1], ua - UA_BASE) if ua >= UA_BASE else None
            if peer is None:
                return None
            out.add((*walk, peer))
        return out


def usids_of(sid: ipaddress.IPv6Address) -> list[int]:
    value = int(sid)
    assert value >> 96 == int(BLOCK.network_address) >> 96, f"{sid} is outside the block"
    out = []
    for n in range(6):
        usid = (value >> (80 - 16 * n)) & 0xFFFF
        if usid == 0:
            break
        out.append(usid)
    return out


def forces(
    walker: Walker, path: tuple[str, ...], encoding: Encoding, sids: Sequence[object]
) -> bool:
    if encoding is Encoding.USID:
        walks = walker.run_usids(path[0], list(sids))  # type: ignore[arg-type]
    else:
        walks = walker.run_full(path[0], list(sids))  # type: ignore[arg-type]
    return walks == {path}


def alphabet(topo: Topology, path: tuple[str, ...], encoding: Encoding) -> list[object]:
    """Every SID or uSID that could appear in a list forcing ``path``: a segment naming a
    node off the path, or a link the path does not cross forward, makes the packet visit
    it, so the brute force need not try those."""
    ids = [topo.switch(n).node_id for n in path]
    uas = [
        (topo.switch(a).node_id, UA_BASE + topo.link(a, b).interface_at(a).port)
        for a, b in itertools.pairwise(path)
    ]
    if encoding is Encoding.USID:
        return [*ids, *(ua for _, ua in uas)]
    return [container(BLOCK, [i]) for i in ids] + [container(BLOCK, list(u)) for u in uas]


def decap(topo: Topology, path: tuple[str, ...], encoding: Encoding) -> object:
    egress = topo.switch(path[-1]).node_id
    if encoding is Encoding.USID:
        return DT6_FUNCTION
    return container(BLOCK, [egress, DT6_FUNCTION])


def sample_paths(graph: nx.Graph, rng: random.Random, count: int) -> Iterator[tuple[str, ...]]:
    nodes = sorted(graph.nodes)
    pairs = [(s, t) for s in nodes for t in nodes if s != t]
    rng.shuffle(pairs)
    for s, t in pairs[:count]:
        paths = sorted(nx.all_simple_paths(graph, s, t))
        path = rng.choice(paths)
        yield tuple(f"s{n}" for n in path)


def atlas_cases() -> list[tuple[int, nx.Graph]]:
    out = []
    for index, graph in enumerate(nx.graph_atlas_g()):
        if 3 <= graph.number_of_nodes() <= 7 and nx.is_connected(graph):
            out.append((index, graph))
    return out


ATLAS = atlas_cases()


@pytest.mark.parametrize("encoding", list(Encoding))
def test_lists_force_the_path_and_none_shorter_does(encoding: Encoding) -> None:
    rng = random.Random(4)
    small = [case for case in ATLAS if case[1].number_of_nodes() <= 6]
    cases = small + rng.sample([case for case in ATLAS if case not in small], 10)
    checked = 0
    lengths: set[int] = set()
    for index, graph in cases:
        topo = topology_of(graph, f"atlas-{index}")
        walker = Walker(topo)
        live = LiveGraph(topo.graph)
        for path in sample_paths(graph, rng, 4):
            result = segment_list(topo, path, encoding=encoding, live=live)
            found = list(result.usids) if encoding is Encoding.USID else list(result.sids)
            assert forces(walker, path, encoding, found), (index, path, found)
            letters = alphabet(topo, path, encoding)
            last = decap(topo, path, encoding)
            for length in range(len(found) - 1):
                for head in itertools.product(letters, repeat=length):
                    shorter = [*head, last]
                    assert not forces(walker, path, encoding, shorter), (
                        f"atlas graph {index}, path {path}: {shorter} is shorter than {found}"
                    )
            checked += 1
            lengths.add(len(found))
    assert checked == 4 * len(cases)
    # the brute force saw lists that needed waypoints (uSID: plus uDT6)
    assert max(lengths) >= 3


def test_a_unique_shortest_path_needs_only_the_egress() -> None:
    topo = topology_of(nx.path_graph(5))
    usid = segment_list(topo, ("s0", "s1", "s2", "s3", "s4"))
    assert usid.steps == (Node("s4"),)
    assert [str(s) for s in usid.sids] == ["fcbb:bb00:5:fe00::"]
    full = segment_list(topo, ("s0", "s1", "s2", "s3", "s4"), encoding=Encoding.FULL)
    assert [str(s) for s in full.sids] == ["fcbb:bb00:5:fe00::"]


def test_a_square_is_forced_with_a_waypoint() -> None:
    """s0 reaches s2 two ways round the square: one way needs s1 (uN) as a waypoint."""
    topo = topology_of(nx.cycle_graph(4))
    usid = segment_list(topo, ("s0", "s1", "s2"))
    assert usid.usids == (2, 3, DT6_FUNCTION)
    assert [str(s) for s in usid.sids] == ["fcbb:bb00:2:3:fe00::"]
    full = segment_list(topo, ("s0", "s1", "s2"), encoding=Encoding.FULL)
    assert [str(s) for s in full.sids] == ["fcbb:bb00:2::", "fcbb:bb00:3:fe00::"]


def test_the_long_way_round_a_triangle() -> None:
    """s0 -> s1 -> s2 where s0-s2 is direct: s1 is a waypoint, then s2."""
    topo = topology_of(nx.complete_graph(3))
    usid = segment_list(topo, ("s0", "s1", "s2"))
    assert usid.steps == (Node("s1"), Node("s2"))
    assert usid.usids == (2, 3, DT6_FUNCTION)


def test_hosts_at_the_ends_are_left_out() -> None:
    topo = loads(
        "name: t\nswitches: [{name: a, id: 1}, {name: b, id: 2}]\n"
        "hosts: [{name: h1, nics: [a]}, {name: h2, nics: [b]}]\nlinks: [{ends: [a, b]}]\n"
    )
    result = segment_list(topo, ("h1", "a", "b", "h2"))
    assert result.switches == ("a", "b")
    assert result.ingress == "a" and result.egress == "b"
    assert result.usids == (2, DT6_FUNCTION)
    same_switch = segment_list(topo, ("h1", "a"))
    assert same_switch.usids == (DT6_FUNCTION,)


def test_bad_paths_are_rejected_naming_the_problem() -> None:
    topo = topology_of(nx.path_graph(3))
    with pytest.raises(SegmentError, match="no live link s0-s2"):
        segment_list(topo, ("s0", "s2"))
    with pytest.raises(SegmentError, match="'s9' is not in the topology"):
        segment_list(topo, ("s0", "s9"))
    with pytest.raises(SegmentError, match="visits a node twice"):
        segment_list(topo, ("s0", "s1", "s0"))
    with pytest.raises(SegmentError, match="no live link s0-s1"):
        segment_list(topo, ("s0", "s1", "s2"), down=["s0-s1"])


# -- uSID containers --------------------------------------------------------------------------


@pytest.mark.parametrize("count", range(1, 7))
def test_up_to_six_usids_fit_one_container(count: int) -> None:
    usids = list(range(1, count + 1))
    (only,) = pack_usids(BLOCK, usids)
    assert usids_of(only) == usids
    words = [(int(only) >> (112 - 16 * n)) & 0xFFFF for n in range(8)]
    assert words[:2] == [0xFCBB, 0xBB00]
    assert words[2 : 2 + count] == usids
    assert all(w == 0 for w in words[2 + count :])


@pytest.mark.parametrize(("count", "containers"), [(7, 2), (12, 2), (13, 3), (36, 6)])
def test_longer_sequences_chain_full_containers(count: int, containers: int) -> None:
    usids = list(range(1, count + 1))
    packed = pack_usids(BLOCK, usids)
    assert len(packed) == containers
    assert all(len(usids_of(c)) == 6 for c in packed[:-1])
    assert [u for c in packed for u in usids_of(c)] == usids


def test_more_than_six_containers_do_not_fit_the_headend() -> None:
    with pytest.raises(SegmentError, match="at most 6"):
        pack_usids(BLOCK, list(range(1, 38)))


def test_a_long_forced_path_chains_containers_and_decapsulates_last() -> None:
    """A ladder (two rails joined by rungs): a zig-zag needs a waypoint at every corner."""
    rungs = 10
    graph = nx.ladder_graph(rungs)  # nodes 0..n-1 on one rail, n..2n-1 on the other
    topo = topology_of(graph, "ladder")
    nodes: list[int] = []
    for i in range(rungs):  # zig-zag: a0 b0 b1 a1 a2 b2 b3 a3 ...
        pair = [i, i + rungs] if i % 2 == 0 else [i + rungs, i]
        nodes.extend(pair)
    path = tuple(f"s{n}" for n in nodes)
    result = segment_list(topo, path)
    assert len(result.usids) > 6
    assert len(result.sids) == (len(result.usids) + 5) // 6
    assert result.usids[-1] == DT6_FUNCTION
    assert usids_of(result.sids[-1])[-1] == DT6_FUNCTION
    walker = Walker(topo)
    assert walker.run_usids(path[0], [u for s in result.sids for u in usids_of(s)]) == {path}
    with pytest.raises(SegmentError, match="at most 6"):
        segment_list(topo, path, encoding=Encoding.FULL)


def test_full_sids_use_end_x_where_a_waypoint_would_not_do() -> None:
    """A square s0 s1 s2 s3 with the diagonal s1-s3 (a "diamond"): s0 -> s1 -> s2 -> s3
    needs s2 then s3 in uSIDs, and an End.X of s1 toward s2 is one full SID that goes to s1
    and crosses to s2."""
    graph = nx.cycle_graph(4)
    graph.add_edge(1, 3)
    topo = topology_of(graph)
    path = ("s0", "s1", "s2", "s3")
    full = segment_list(topo, path, encoding=Encoding.FULL)
    port = topo.link("s1", "s2").interface_at("s1").port
    assert full.steps == (Adjacency("s1", "s2"), Node("s3"))
    assert [str(s) for s in full.sids] == [f"fcbb:bb00:2:{0xE000 + port:x}::", "fcbb:bb00:4:fe00::"]
    assert forces(Walker(topo), path, Encoding.FULL, full.sids)
