"""Paths to SRv6 segment lists: the fewest segments that force a path, given shortest-path
(ECMP) forwarding between segments. Pure.

A path runs host, switches, host (or switch to switch). Its switch part ``p0 .. pk`` goes
from the ingress ``p0`` (the headend) to the egress ``pk`` (which decapsulates). The
compiler plans *steps* on the live graph, then encodes them in one of two ways.

Steps
    ``Node(n)``: the packet is routed to ``n`` along the shortest paths (ECMP) and ``n``
    processes its End / uN SID. ``Adjacency(n, m)``: ``n`` forwards the packet over the
    link to ``m`` whatever the routing says (End.X / uA). A node step from ``p_i`` to
    ``p_j`` keeps the packet on the path exactly when every node ``p_i .. p_(j-1)`` has one
    equal-cost next hop toward ``p_j``, the next node of the path: the path's piece is the
    only shortest path. Pieces of a unique shortest path are unique shortest paths, so the
    farthest node step reachable from ``p_i`` never moves backward as ``i`` grows, and a
    dynamic programme over path positions finds the minimum (ties: fewer adjacencies).

Full-SID mode (``Encoding.FULL``)
    One 128-bit SID per segment (at most 6: the pipeline's limit). ``Node(n)`` is n's uN
    locator used as an End SID, ``<block>:<n>::`` (uN with an empty argument is End). An
    adjacency of ``n`` is ``<block>:<n>:<E000+port>::``: routed to ``n`` by its locator,
    where uN shifts and exposes the uA, which forwards over ``port`` (End.X behaviour,
    reachable from anywhere, so one segment covers "go to n, then cross n -> m"). The last
    segment is the egress's decapsulation SID ``<block>:<egress>:FE00::``: routed to the
    egress, shifted by its uN, decapsulated by End.DT6 (Segments Left is 0 there).

uSID mode (``Encoding.USID``, the default; F3216, RFC 9800 NEXT-C-SID)
    A sequence of 16-bit uSIDs: a node ID (uN, routed), or a node-local ID processed where
    the packet is: the uA ``0xE000 + port`` of the node that just shifted, that just
    received the packet over an adjacency, or the headend itself; and last, the egress's
    uDT6 ``0xFE00`` (``DT6_FUNCTION``). Each step is one uSID. The sequence is packed into
    containers of up to six uSIDs behind the 32-bit block. When a container's last uSID is
    processed its argument is empty, so uN / uA fall back to End and the next container
    comes from the SRH (H.Encaps.Red: the first container is the outer destination, the SRH
    carries the others); its first uSID is then processed at the node that is holding the
    packet, which is where the sequence expects it. uDT6 is always in the last container
    (Segments Left 0). At most 6 containers (36 uSIDs).
"""

from __future__ import annotations

import enum
import ipaddress
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from controller.paths import LinkRef, LiveGraph
from controller.paths.shortest import next_hop_table
from controller.topology import Topology

UA_BASE = 0xE000
DT6_FUNCTION = 0xFE00
"""The node-local uSID of End.DT6 (uDT6): ``<block>:FE00::/48`` in every switch's my_sid."""
USIDS_PER_CONTAINER = 6
MAX_SEGMENTS = 6
"""srv6.p4's headend writes 1 to 6 segments (``num_segments``)."""


class Encoding(enum.Enum):
    USID = "usid"
    FULL = "full"


class SegmentError(ValueError):
    """A path cannot be turned into a segment list (not a path of the live graph, or more
    segments than the pipeline carries)."""


@dataclass(frozen=True, slots=True)
class Node:
    """Route to ``node`` (shortest paths) and run its End / uN."""

    node: str

    def __str__(self) -> str:
        return self.node


@dataclass(frozen=True, slots=True)
class Adjacency:
    """``node`` forwards over its link to ``neighbour`` (End.X / uA)."""

    node: str
    neighbour: str

    def __str__(self) -> str:
        return f"{self.node}>{self.neighbour}"


Step = Node | Adjacency


@dataclass(frozen=True, slots=True)
class SegmentList:
    """A compiled segment list: the SIDs a headend writes, in visiting order."""

    encoding: Encoding
    switches: tuple[str, ...]
    """The switch part of the path it forces, ingress first."""
    steps: tuple[Step, ...]
    sids: tuple[ipaddress.IPv6Address, ...]
    usids: tuple[int, ...] = ()
    """uSID mode: the uSID sequence the containers hold (empty in full-SID mode)."""

    @property
    def ingress(self) -> str:
        return self.switches[0]

    @property
    def egress(self) -> str:
        return self.switches[-1]

    def __str__(self) -> str:
        return " ".join(str(s) for s in self.sids)


# -- planning ---------------------------------------------------------------------------------


def _check_path(live: LiveGraph, nodes: Sequence[str], *, host_ends: bool = False) -> list[int]:
    if not nodes:
        raise SegmentError("empty path")
    shown = " -> ".join(nodes)
    idx: list[int] = []
    for name in nodes:
        if name not in live.index:
            raise SegmentError(f"path {shown}: {name!r} is not in the topology")
        idx.append(live.index[name])
    if len(set(idx)) != len(idx):
        raise SegmentError(f"path {shown} visits a node twice")
    for a, b in itertools.pairwise(idx):
        if (min(a, b), max(a, b)) not in live.edge_index:
            raise SegmentError(f"path {shown}: no live link {live.names[a]}-{live.names[b]}")
    for n, i in enumerate(idx):
        if live.is_host[i] and not (host_ends and n in (0, len(idx) - 1)):
            raise SegmentError(f"path {shown}: {live.names[i]} is a host, not a switch")
    return idx


def reach(live: LiveGraph, nodes: Sequence[str]) -> list[int]:
    """Per position ``i`` of the switch path, the farthest ``j >= i`` such that
    shortest-path forwarding from ``p_i`` toward ``p_j`` keeps the packet on
    ``p_i .. p_j`` (uses the path engine's ECMP next hops, as the routes do)."""
    idx = _check_path(live, nodes)
    k = len(idx) - 1
    on_path = [[False] * (k + 1) for _ in range(k + 1)]  # on_path[i][j]: node step i -> j
    for j in range(k + 1):
        on_path[j][j] = True
        table = next_hop_table(live, idx[j])
        ok = True
        for i in range(j - 1, -1, -1):
            ok = ok and table[idx[i]] == (idx[i + 1],)
            on_path[i][j] = ok
    far: list[int] = []
    for i in range(k + 1):
        j = i
        while j < k and on_path[i][j + 1]:
            j += 1
        far.append(j)
    return far


def plan(live: LiveGraph, nodes: Sequence[str], encoding: Encoding) -> tuple[Step, ...]:
    """The fewest steps that force the switch path ``nodes`` (module docstring).

    uSID mode: one uSID per step, then uDT6 at the egress. Full-SID mode: one SID per step;
    the last step is always ``Node(egress)``, whose SID is the egress's decapsulation SID.
    Among minimal plans the one with the fewest adjacencies wins, then the one whose
    choices come first (deterministic).
    """
    far = reach(live, nodes)
    k = len(nodes) - 1
    unreached = (1 << 30, 0)
    # best[i]: (segments, adjacencies) to hold the packet at p_i; how[i]: (from, step).
    best: list[tuple[int, int]] = [unreached] * (k + 1)
    how: list[tuple[int, Step] | None] = [None] * (k + 1)
    best[0] = (0, 0)

    def offer(i: int, j: int, step: Step) -> None:
        segs, adjs = best[i]
        cost = (segs + 1, adjs + isinstance(step, Adjacency))
        if cost < best[j]:
            best[j], how[j] = cost, (i, step)

    for i in range(k + 1):
        for j in range(i + 1, far[i] + 1):
            offer(i, j, Node(nodes[j]))
        if encoding is Encoding.USID:
            if i < k:  # a uA is local: only the node holding the packet can run it
                offer(i, i + 1, Adjacency(nodes[i], nodes[i + 1]))
        else:  # an End.X SID is routed to its node first
            for j in range(i, min(far[i], k - 1) + 1):
                offer(i, j + 1, Adjacency(nodes[j], nodes[j + 1]))
    if encoding is Encoding.USID:
        return tuple(_steps_to(how, k))
    # Full SIDs: the decapsulation SID is a node step to the egress from some p_i.
    _, _, last = min((best[i][0], best[i][1], i) for i in range(k + 1) if far[i] == k)
    return (*_steps_to(how, last), Node(nodes[k]))


def _steps_to(how: Sequence[tuple[int, Step] | None], j: int) -> list[Step]:
    out: list[Step] = []
    while j != 0:
        entry = how[j]
        assert entry is not None
        j, step = entry
        out.append(step)
    out.reverse()
    return out


# -- encoding ---------------------------------------------------------------------------------


def node_sid(topo: Topology, node: str, *functions: int) -> ipaddress.IPv6Address:
    """``<block>:<node id>:<f1>:<f2>...::``: a uN locator with optional uSIDs after it."""
    return container(topo.addressing.usid_block, (topo.switch(node).node_id, *functions))


def container(block: ipaddress.IPv6Network, usids: Sequence[int]) -> ipaddress.IPv6Address:
    """One F3216 container: the 32-bit block, then up to 6 uSIDs, then zeros."""
    if not 1 <= len(usids) <= USIDS_PER_CONTAINER:
        raise SegmentError(f"a container holds 1 to {USIDS_PER_CONTAINER} uSIDs, not {len(usids)}")
    value = int(block.network_address)
    for n, usid in enumerate(usids):
        if not 0 < usid <= 0xFFFF:
            raise SegmentError(f"uSID {usid:#x} is not a 16-bit non-zero value")
        value |= usid << (80 - 16 * n)
    return ipaddress.IPv6Address(value)


def pack_usids(
    block: ipaddress.IPv6Network, usids: Sequence[int]
) -> tuple[ipaddress.IPv6Address, ...]:
    """uSIDs into containers of up to six, in order (module docstring: chaining)."""
    if not usids:
        raise SegmentError("no uSIDs to pack")
    chunks = [usids[i : i + USIDS_PER_CONTAINER] for i in range(0, len(usids), USIDS_PER_CONTAINER)]
    if len(chunks) > MAX_SEGMENTS:
        raise SegmentError(
            f"{len(usids)} uSIDs need {len(chunks)} containers; the headend writes at most "
            f"{MAX_SEGMENTS} ({MAX_SEGMENTS * USIDS_PER_CONTAINER} uSIDs)"
        )
    return tuple(container(block, chunk) for chunk in chunks)


def ua_function(topo: Topology, node: str, neighbour: str) -> int:
    """The node-local uA ID of ``node``'s port toward ``neighbour``."""
    return UA_BASE + topo.link(node, neighbour).interface_at(node).port


def usid_sequence(topo: Topology, steps: Sequence[Step]) -> tuple[int, ...]:
    out: list[int] = []
    for step in steps:
        if isinstance(step, Node):
            out.append(topo.switch(step.node).node_id)
        else:
            out.append(ua_function(topo, step.node, step.neighbour))
    out.append(DT6_FUNCTION)
    return tuple(out)


def full_sids(topo: Topology, steps: Sequence[Step]) -> tuple[ipaddress.IPv6Address, ...]:
    out: list[ipaddress.IPv6Address] = []
    for n, step in enumerate(steps):
        if isinstance(step, Adjacency):
            out.append(node_sid(topo, step.node, ua_function(topo, step.node, step.neighbour)))
        elif n == len(steps) - 1:
            out.append(node_sid(topo, step.node, DT6_FUNCTION))
        else:
            out.append(node_sid(topo, step.node))
    if len(out) > MAX_SEGMENTS:
        raise SegmentError(
            f"{len(out)} SIDs force this path; the headend writes at most {MAX_SEGMENTS} "
            "(use uSID mode)"
        )
    return tuple(out)


def switch_path(topo: Topology, path: Sequence[str]) -> tuple[str, ...]:
    """``path`` without its host ends."""
    nodes = list(path)
    if nodes and not topo.is_switch(nodes[0]):
        nodes = nodes[1:]
    if nodes and not topo.is_switch(nodes[-1]):
        nodes = nodes[:-1]
    if not nodes:
        raise SegmentError(f"path {' -> '.join(path)} has no switch")
    return tuple(nodes)


def segment_list(
    topo: Topology,
    path: Sequence[str],
    *,
    encoding: Encoding = Encoding.USID,
    live: LiveGraph | None = None,
    down: Iterable[LinkRef] = (),
) -> SegmentList:
    """The shortest segment list that forces ``path`` (host .. switches .. host, or
    switches only) on the live graph (``live``, or the topology without ``down``)."""
    graph = live if live is not None else LiveGraph(topo.graph, down)
    nodes = switch_path(topo, path)
    _check_path(graph, path, host_ends=True)  # the host ends' links must be live too
    steps = plan(graph, nodes, encoding)
    if encoding is Encoding.USID:
        usids = usid_sequence(topo, steps)
        sids = pack_usids(topo.addressing.usid_block, usids)
        return SegmentList(encoding, nodes, steps, sids, usids)
    return SegmentList(encoding, nodes, steps, full_sids(topo, steps))
