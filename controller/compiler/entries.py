"""The topology (and the links that are down) to per-switch rules of srv6.p4, abstractly.
Pure: frozen dataclasses in, frozen dataclasses out; :mod:`controller.compiler.p4entities`
turns them into P4Runtime entities.

Every switch gets:

- a next hop per live neighbour (switch or host): ``id`` = the local port number;
  ``src_mac`` = the port's MAC, ``dst_mac`` = the peer port's MAC (the addressing plan);
- an ECMP member per next hop (``ecmp_selector``, ``set_next_hop``), member id = next hop
  id;
- a route for every other switch's uN locator and every host NIC prefix, toward the path
  engine's ECMP next hops: one next hop points at its member, several at an ECMP group
  whose members watch their own ports (weight 1). A NIC prefix is routed toward the
  switch it attaches to, which delivers it over the access link; it is left out
  everywhere when that link is down. Nothing is routed toward this switch's own SIDs;
- my_sid: ``usid_un`` for its locator ``<block>:<id>::/48``, ``usid_ua`` for the uA SID
  ``<block>:<E000+port>::/48`` of every live port, ``end_dt6`` for uDT6
  ``<block>:FE00::/48``;
- ``host_port`` for every port that faces a host (also when its link is down: the filter
  is about the port, not the link) and ``sid_block`` for the uSID block.

Headend policies come from :func:`compile_policies`: per (ingress switch, destination
prefix), one or more segment lists with weights. One list points the ``srv6_headend``
entry at its member; several make a ``headend_selector`` group.

IDs are deterministic and depend only on what they name, so that recompiling after a
change moves as few ids as possible:

- next hop id = ECMP member id = port number;
- ECMP group id = ``hash("ecmp:<member ids>")``: one group per distinct set of next hops on a
  switch, shared by all routes with that set;
- headend member id = ``hash("headend:<action>:<src>:<segments>")``: identical segment
  lists share a member, a changed list is a new member (make-before-break friendly);
- headend group id = ``hash("policy:<prefix>")``: stays while the policy's lists change;

where ``hash`` is CRC-32 folded into 1..0x0FFFFFFF (switchd's id range). Two keys of one
switch that land on one id are resolved by probing upward, keys taken in sorted order.
"""

from __future__ import annotations

import ipaddress
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from controller.compiler.segments import DT6_FUNCTION, SegmentList, container
from controller.paths import LinkRef, LiveGraph
from controller.paths.shortest import next_hop_table
from controller.topology import Link, Topology

MAX_ID = 0x0FFF_FFFF
Sids = tuple[ipaddress.IPv6Address, ...]
Behaviour = Literal["usid_un", "usid_ua", "end_dt6", "end", "end_x"]


class CompileError(ValueError):
    """An input the compiler cannot turn into rules (names the bad part)."""


# -- the rules --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, order=True)
class NextHop:
    switch: str
    id: int
    port: int
    src_mac: str
    dst_mac: str
    neighbour: str


@dataclass(frozen=True, slots=True, order=True)
class EcmpMember:
    switch: str
    id: int
    nexthop_id: int


@dataclass(frozen=True, slots=True, order=True)
class GroupMember:
    member_id: int
    weight: int
    watch_port: int | None = None


@dataclass(frozen=True, slots=True, order=True)
class EcmpGroup:
    switch: str
    id: int
    members: tuple[GroupMember, ...]


@dataclass(frozen=True, slots=True, order=True)
class Route:
    """``prefix`` -> an ECMP member (one next hop) or an ECMP group."""

    switch: str
    prefix: ipaddress.IPv6Network
    member_id: int | None
    group_id: int | None
    destination: str
    """The node the prefix belongs to (for people)."""

    def __post_init__(self) -> None:
        if (self.member_id is None) == (self.group_id is None):
            raise CompileError(f"route {self.prefix}: needs exactly one of member and group")


@dataclass(frozen=True, slots=True, order=True)
class MySid:
    switch: str
    prefix: ipaddress.IPv6Network
    behaviour: Behaviour
    nexthop_id: int | None = None


@dataclass(frozen=True, slots=True, order=True)
class HostPort:
    switch: str
    port: int
    host: str


@dataclass(frozen=True, slots=True, order=True)
class SidBlock:
    switch: str
    prefix: ipaddress.IPv6Network


@dataclass(frozen=True, slots=True, order=True)
class HeadendPath:
    """One segment list of a policy: its headend_selector member and weight."""

    member_id: int
    weight: int
    segments: tuple[ipaddress.IPv6Address, ...]
    via: tuple[str, ...] = ()
    """The switches the list forces (when it was compiled from a path), for people."""


@dataclass(frozen=True, slots=True, order=True)
class HeadendPolicy:
    """``prefix`` at ``switch`` -> encapsulate into one of ``paths`` (weighted).
    ``group_id`` is None when there is one path (the entry points at its member)."""

    switch: str
    prefix: ipaddress.IPv6Network
    src_addr: ipaddress.IPv6Address
    reduced: bool
    paths: tuple[HeadendPath, ...]
    group_id: int | None

    @property
    def action(self) -> str:
        return "h_encaps_red" if self.reduced else "h_encaps"


Rule = NextHop | EcmpMember | EcmpGroup | Route | MySid | HostPort | SidBlock | HeadendPolicy


@dataclass(frozen=True, slots=True)
class SwitchRules:
    """Everything one switch should hold, each kind sorted."""

    switch: str
    next_hops: tuple[NextHop, ...] = ()
    ecmp_members: tuple[EcmpMember, ...] = ()
    ecmp_groups: tuple[EcmpGroup, ...] = ()
    routes: tuple[Route, ...] = ()
    my_sids: tuple[MySid, ...] = ()
    host_ports: tuple[HostPort, ...] = ()
    sid_blocks: tuple[SidBlock, ...] = ()
    policies: tuple[HeadendPolicy, ...] = ()

    def rules(self) -> tuple[Rule, ...]:
        """All rules, referenced ones before those that refer to them (write order)."""
        return (
            *self.next_hops,
            *self.ecmp_members,
            *self.ecmp_groups,
            *self.routes,
            *self.my_sids,
            *self.host_ports,
            *self.sid_blocks,
            *self.policies,
        )

    def with_policies(self, policies: Iterable[HeadendPolicy]) -> SwitchRules:
        mine = tuple(sorted(p for p in policies if p.switch == self.switch))
        return SwitchRules(
            self.switch,
            self.next_hops,
            self.ecmp_members,
            self.ecmp_groups,
            self.routes,
            self.my_sids,
            self.host_ports,
            self.sid_blocks,
            mine,
        )


# -- ids --------------------------------------------------------------------------------------


def stable_id(key: str) -> int:
    """``key``'s id before probing: CRC-32 folded into 1..MAX_ID."""
    return zlib.crc32(key.encode()) % MAX_ID + 1


def assign_ids(keys: Iterable[str], taken: Iterable[int] = ()) -> dict[str, int]:
    """An id per distinct key: :func:`stable_id`, probing upward on a clash, keys in
    sorted order (so the result depends only on the set of keys)."""
    used = set(taken)
    out: dict[str, int] = {}
    for key in sorted(set(keys)):
        value = stable_id(key)
        while value in used:
            value = value % MAX_ID + 1
        used.add(value)
        out[key] = value
    return out


# -- the fabric -------------------------------------------------------------------------------


def dt6_prefix(topo: Topology) -> ipaddress.IPv6Network:
    """uDT6, node-local: ``<block>:FE00::/48`` (processed after the egress's uN shift)."""
    return ipaddress.IPv6Network((int(container(topo.addressing.usid_block, [DT6_FUNCTION])), 48))


def tunnel_source(topo: Topology, switch: str) -> ipaddress.IPv6Address:
    """The outer source a switch encapsulates with: ``<its locator>::1`` (one per switch,
    as the kernel's ``ip sr tunsrc`` requires)."""
    return topo.switch(switch).locator.network_address + 1


def host_prefix(topo: Topology, host: str, switch: str | None = None) -> ipaddress.IPv6Network:
    """The prefix of ``host``'s NIC on ``switch`` (the egress of a path to it), or of its
    first NIC: what a headend policy toward that host matches."""
    nics = topo.host(host).nics
    if switch is None:
        return nics[0].prefix
    for nic in nics:
        if nic.switch == switch:
            return nic.prefix
    raise CompileError(f"host {host} has no NIC on {switch}")


def compile_fabric(
    topo: Topology,
    down: Iterable[LinkRef] = (),
    *,
    live: LiveGraph | None = None,
    host_routes: bool = True,
) -> dict[str, SwitchRules]:
    """Every switch's routing, SIDs and edge filter on the live graph (``live``, or the
    topology without the ``down`` links), keyed by switch name in topology order.

    ``host_routes=False`` routes a host NIC's prefix only at the switch it attaches to
    (delivery after decapsulation), not across the fabric: SRv6 policies only, no plain
    IPv6 connectivity between hosts."""
    graph = live if live is not None else LiveGraph(topo.graph, down)
    dead = graph.down

    def is_live(a: str, b: str) -> bool:
        return frozenset((a, b)) not in dead

    # per destination switch, every node's equal-cost next hops (the path engine's ECMP
    # sets, by node index); the prefixes that go there: its locator, its hosts' NICs
    names = graph.names
    toward = {sw.name: next_hop_table(graph, graph.node(sw.name)) for sw in topo.switches}
    targets: list[tuple[ipaddress.IPv6Network, str, str]] = []  # (prefix, switch, name)
    for sw in topo.switches:
        targets.append((sw.locator, sw.name, sw.name))
    for host in topo.hosts:
        for nic in host.nics:
            if is_live(host.name, nic.switch):
                targets.append((nic.prefix, nic.switch, host.name))
    links_of: dict[str, list[Link]] = {sw.name: [] for sw in topo.switches}
    for link in topo.links:
        for end in link.ends():
            if end in links_of:
                links_of[end].append(link)

    out: dict[str, SwitchRules] = {}
    for sw in topo.switches:
        name = sw.name
        next_hops: list[NextHop] = []
        by_neighbour: dict[str, int] = {}
        my_sids = [MySid(name, sw.locator, "usid_un"), MySid(name, dt6_prefix(topo), "end_dt6")]
        host_ports: list[HostPort] = []
        for link in links_of[name]:
            mine, peer = link.interface_at(name), link.peer_of(name)
            if link.kind == "access":
                host_ports.append(HostPort(name, mine.port, peer.node))
            if not is_live(name, peer.node):
                continue
            next_hops.append(NextHop(name, mine.port, mine.port, mine.mac, peer.mac, peer.node))
            by_neighbour[peer.node] = mine.port
            ua = link.ua_sid_at(name)
            if ua is not None:
                my_sids.append(MySid(name, ua, "usid_ua", mine.port))

        me = graph.node(name)
        hops_to: dict[str, tuple[int, ...]] = {}  # per destination switch
        wanted: list[tuple[ipaddress.IPv6Network, str, tuple[int, ...]]] = []
        for prefix, target, owner in targets:
            if target == name:
                if owner == name:
                    continue  # our own locator: my_sid, never a route
                hops: tuple[int, ...] = (by_neighbour[owner],)
            elif not host_routes and owner != target:
                continue  # another switch's host, and no connectivity intent
            else:
                if target not in hops_to:
                    hops_to[target] = tuple(
                        sorted(by_neighbour[names[h]] for h in toward[target][me])
                    )
                hops = hops_to[target]
                if not hops:
                    continue  # cut off from it
            wanted.append((prefix, owner, hops))

        keys = {hops: _ecmp_key(hops) for hops in set(hops_to.values()) if len(hops) > 1}
        group_ids = assign_ids(keys.values())
        groups = [
            EcmpGroup(
                name,
                gid,
                tuple(GroupMember(p, 1, p) for p in _ecmp_ports(key)),
            )
            for key, gid in group_ids.items()
        ]
        routes = [
            Route(name, prefix, hops[0], None, owner)
            if len(hops) == 1
            else Route(name, prefix, None, group_ids[keys[hops]], owner)
            for prefix, owner, hops in wanted
        ]
        out[name] = SwitchRules(
            switch=name,
            next_hops=tuple(sorted(next_hops)),
            ecmp_members=tuple(sorted(EcmpMember(name, nh.id, nh.id) for nh in next_hops)),
            ecmp_groups=tuple(sorted(groups)),
            routes=tuple(sorted(routes, key=_by_prefix)),
            my_sids=tuple(sorted(my_sids)),
            host_ports=tuple(sorted(host_ports)),
            sid_blocks=(SidBlock(name, topo.addressing.usid_block),),
        )
    return out


def _by_prefix(route: Route) -> tuple[int, int]:
    return int(route.prefix.network_address), route.prefix.prefixlen


def _ecmp_key(ports: Sequence[int]) -> str:
    return "ecmp:" + ",".join(str(p) for p in sorted(ports))


def _ecmp_ports(key: str) -> list[int]:
    return [int(p) for p in key.removeprefix("ecmp:").split(",")]


# -- headend policies -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PolicySpec:
    """Traffic to ``prefix`` entering at ``ingress`` is spread over ``lists`` (segment
    lists, or plain SID tuples, with positive integer weights)."""

    ingress: str
    prefix: ipaddress.IPv6Network
    lists: tuple[tuple[SegmentList | tuple[ipaddress.IPv6Address, ...], int], ...]
    reduced: bool = True
    src_addr: ipaddress.IPv6Address | None = field(default=None)
    """The outer source; default: :func:`tunnel_source` of the ingress."""


class _Resolved(NamedTuple):
    spec: PolicySpec
    src: ipaddress.IPv6Address
    weights: dict[Sids, int]
    via: dict[Sids, tuple[str, ...]]


def compile_policies(topo: Topology, specs: Iterable[PolicySpec]) -> tuple[HeadendPolicy, ...]:
    """Headend policies with their ids, sorted by switch and prefix. Raises
    :class:`CompileError` on an unknown switch, a duplicate (switch, prefix), an empty
    policy, a weight below 1, or a segment list of the wrong length."""
    resolved: list[_Resolved] = []
    seen: set[tuple[str, ipaddress.IPv6Network]] = set()
    for spec in specs:
        where = f"policy {spec.prefix} at {spec.ingress}"
        if not topo.is_switch(spec.ingress):
            raise CompileError(f"{where}: ingress {spec.ingress!r} is not a switch")
        if (spec.ingress, spec.prefix) in seen:
            raise CompileError(f"{where}: a second policy for the same prefix")
        seen.add((spec.ingress, spec.prefix))
        if not spec.lists:
            raise CompileError(f"{where}: no segment list")
        weights: dict[Sids, int] = {}
        via: dict[Sids, tuple[str, ...]] = {}
        for n, (segs, weight) in enumerate(spec.lists):
            sids = segs.sids if isinstance(segs, SegmentList) else tuple(segs)
            if isinstance(segs, SegmentList) and segs.ingress != spec.ingress:
                raise CompileError(
                    f"{where}: segment list {n + 1} starts at {segs.ingress}, not the ingress"
                )
            if not 1 <= len(sids) <= 6:
                raise CompileError(f"{where}: segment list {n + 1} has {len(sids)} SIDs (1..6)")
            if isinstance(weight, bool) or not isinstance(weight, int) or weight < 1:
                raise CompileError(f"{where}: segment list {n + 1}: weight {weight!r} below 1")
            weights[sids] = weights.get(sids, 0) + weight
            if isinstance(segs, SegmentList):
                via[sids] = segs.switches
        src = spec.src_addr or tunnel_source(topo, spec.ingress)
        resolved.append(_Resolved(spec, src, weights, via))

    out: list[HeadendPolicy] = []
    for switch in sorted({r.spec.ingress for r in resolved}):
        mine = [r for r in resolved if r.spec.ingress == switch]
        member_key = {
            (spec.reduced, src, sids): _member_key(spec.reduced, src, sids)
            for spec, src, weights, _ in mine
            for sids in weights
        }
        member_ids = assign_ids(member_key.values())
        group_ids = assign_ids(f"policy:{r.spec.prefix}" for r in mine if len(r.weights) > 1)
        for spec, src, weights, via in mine:
            paths = tuple(
                sorted(
                    HeadendPath(
                        member_ids[member_key[(spec.reduced, src, sids)]],
                        w,
                        sids,
                        via.get(sids, ()),
                    )
                    for sids, w in weights.items()
                )
            )
            group = group_ids.get(f"policy:{spec.prefix}") if len(paths) > 1 else None
            out.append(HeadendPolicy(switch, spec.prefix, src, spec.reduced, paths, group))
    return tuple(sorted(out))


def _member_key(reduced: bool, src: ipaddress.IPv6Address, sids: Sequence[object]) -> str:
    action = "h_encaps_red" if reduced else "h_encaps"
    return f"headend:{action}:{src}:{','.join(str(s) for s in sids)}"


def compile_network(
    topo: Topology,
    down: Iterable[LinkRef] = (),
    policies: Iterable[PolicySpec] = (),
    *,
    live: LiveGraph | None = None,
    host_routes: bool = True,
) -> dict[str, SwitchRules]:
    """The fabric plus the headend policies: what every switch should hold."""
    fabric = compile_fabric(topo, down, live=live, host_routes=host_routes)
    compiled = compile_policies(topo, policies)
    return {name: rules.with_policies(compiled) for name, rules in fabric.items()}


# -- a readable dump --------------------------------------------------------------------------


def dump(topo: Topology, network: Mapping[str, SwitchRules]) -> str:
    """The rules as text, one line per rule, for people and golden files."""
    lines = [f"# {topo.name}: compiled rules"]
    for name, rules in network.items():
        sw = topo.switch(name)
        lines.append("")
        lines.append(f"switch {name} (node {sw.node_id:#x}, locator {sw.locator})")
        for nh in rules.next_hops:
            lines.append(
                f"  next_hop {nh.id}: port {nh.port} {nh.src_mac} -> {nh.dst_mac} ({nh.neighbour})"
            )
        for m in rules.ecmp_members:
            lines.append(f"  ecmp_member {m.id}: set_next_hop {m.nexthop_id}")
        for g in rules.ecmp_groups:
            members = ", ".join(
                f"{m.member_id} w{m.weight} watch {m.watch_port}" for m in g.members
            )
            lines.append(f"  ecmp_group {g.id:#09x}: {members}")
        for r in rules.routes:
            target = f"member {r.member_id}" if r.group_id is None else f"group {r.group_id:#09x}"
            lines.append(f"  route {r.prefix} -> {target} ({r.destination})")
        for s in rules.my_sids:
            param = "" if s.nexthop_id is None else f" nexthop {s.nexthop_id}"
            lines.append(f"  my_sid {s.prefix}: {s.behaviour}{param}")
        for hp in rules.host_ports:
            lines.append(f"  host_port {hp.port} ({hp.host})")
        for b in rules.sid_blocks:
            lines.append(f"  sid_block {b.prefix}")
        for p in rules.policies:
            target = "member" if p.group_id is None else f"group {p.group_id:#09x}"
            lines.append(f"  headend {p.prefix} -> {target}: {p.action} src {p.src_addr}")
            for path in p.paths:
                segs = " ".join(str(s) for s in path.segments)
                via = f" (via {' '.join(path.via)})" if path.via else ""
                lines.append(f"    member {path.member_id:#09x} w{path.weight}: {segs}{via}")
    return "\n".join(lines) + "\n"
