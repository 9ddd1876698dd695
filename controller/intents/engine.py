"""Intents to desired switch state (pure): a snapshot of the topology, the live graph and
the intents in, a :class:`Solution` out — every switch's rules, every intent's status and
paths, the link-to-intents index, and a precomputed backup per steered path.

Each directional path of an intent becomes a headend policy at its ingress switch for the
destination NIC's prefix: traffic from any host behind that switch to that prefix is
encapsulated with the path's segment list (weighted lists when an intent has several
paths). One (ingress switch, prefix) belongs to one intent: a second intent that needs it
fails with a reason naming the first. A path that stays inside one switch needs no
policy (plain routing delivers it). A collective among hosts with a NIC in each of several
planes is placed per channel (:func:`controller.paths.collective_channels`): each channel's
path stays in its plane and ends at the destination's NIC in that plane, so its policy is
keyed by that NIC's prefix and the sender selects the channel with the plane's addresses.

Status: ``installed`` when the intent got everything it asked for on the live graph,
``degraded`` when it got less (fewer disjoint paths than k, a collective flow that fell
back to fabric routing), ``failed`` when it got nothing (reason given).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from controller.compiler import (
    CompileError,
    Encoding,
    PolicySpec,
    SegmentError,
    SegmentList,
    SwitchRules,
    compile_network,
    compile_policies,
    host_prefix,
    segment_list,
)
from controller.intents.model import Collective, Connectivity, Disjoint, Explicit, Intent, Spec
from controller.paths import (
    LiveGraph,
    NoPathError,
    Path,
    disjoint_paths,
    explicit_path,
    max_disjoint_paths,
    place_collective,
)
from controller.topology import Topology

Status = Literal["installed", "degraded", "failed"]
PolicyKey = tuple[str, ipaddress.IPv6Network]
LinkKey = frozenset[str]


class Impossible(ValueError):
    """An intent that cannot be met even with every link up (says what is possible)."""


@dataclass(frozen=True, slots=True)
class Steered:
    """One directional path of an intent and the segment list that forces it."""

    path: Path
    segments: SegmentList
    weight: int

    @property
    def links(self) -> frozenset[LinkKey]:
        return frozenset(frozenset(e) for e in self.path.edges())


@dataclass(frozen=True, slots=True)
class IntentState:
    id: str
    status: Status
    reason: str
    paths: tuple[Steered, ...]


@dataclass(frozen=True, slots=True)
class Policy:
    """A headend policy and where it came from."""

    intent: str
    key: PolicyKey
    lists: tuple[Steered, ...]
    backup: tuple[Steered, ...] = ()
    """Precomputed: a path link-disjoint from every list (empty if none exists)."""

    def spec(self, lists: Sequence[Steered] | None = None) -> PolicySpec:
        use = self.lists if lists is None else lists
        return PolicySpec(self.key[0], self.key[1], tuple((s.segments, s.weight) for s in use))


@dataclass(frozen=True)
class Solution:
    rules: dict[str, SwitchRules]
    states: dict[str, IntentState]
    policies: tuple[Policy, ...]
    links: Mapping[LinkKey, frozenset[str]] = field(default_factory=dict)
    """Link (pair of node names) -> the intents whose paths cross it."""
    host_routes: bool = True

    def affected(self, link: LinkKey) -> frozenset[str]:
        return self.links.get(link, frozenset())


def solve(topo: Topology, live: LiveGraph, intents: Sequence[Intent]) -> Solution:
    """What every switch should hold for ``intents`` (in order: an earlier intent keeps a
    contested policy) on the live graph."""
    states: dict[str, IntentState] = {}
    policies: list[Policy] = []
    owner: dict[PolicyKey, str] = {}
    connectivity = False
    for intent in intents:
        if isinstance(intent.spec, Connectivity):
            connectivity = True
            states[intent.id] = _connectivity_state(intent.id, topo, live)
            continue
        try:
            mine, degraded = _policies(intent, topo, live)
        except (NoPathError, SegmentError, CompileError, ValueError) as exc:
            states[intent.id] = IntentState(intent.id, "failed", str(exc), ())
            continue
        clash = next((p for p in mine if p.key in owner), None)
        if clash is not None:
            states[intent.id] = IntentState(
                intent.id,
                "failed",
                f"conflicts with intent {owner[clash.key]}: both steer traffic entering at "
                f"{clash.key[0]} toward {clash.key[1]}",
                (),
            )
            continue
        for p in mine:
            owner[p.key] = intent.id
        policies.extend(mine)
        paths = tuple(s for p in mine for s in p.lists)
        if not paths:
            states[intent.id] = IntentState(intent.id, "failed", degraded or "no path", ())
        else:
            status: Status = "degraded" if degraded else "installed"
            states[intent.id] = IntentState(intent.id, status, degraded, paths)

    rules = compile_network(
        topo, policies=[p.spec() for p in policies], live=live, host_routes=connectivity
    )
    index: dict[LinkKey, set[str]] = {}
    for p in policies:
        for s in (*p.lists, *p.backup):
            for link in s.links:
                index.setdefault(link, set()).add(p.intent)
    return Solution(
        rules,
        states,
        tuple(policies),
        {k: frozenset(v) for k, v in index.items()},
        connectivity,
    )


def fast_reroute(
    topo: Topology,
    before: Solution,
    dead: Iterable[LinkKey],
    *,
    prune: bool = False,
) -> dict[str, SwitchRules]:
    """The first reaction to dead links, before any recompute: every policy that crosses
    one keeps the lists that avoid them, or moves to its precomputed backup (only the
    headend entries of its ingress switch change). With ``prune``, the switches at the ends
    of a dead link also drop its members from their ECMP groups, in place: one group
    modification however many prefixes use the group (prefix-independent), where a
    recompiled fabric would move every route of a group whose member set changed. A kernel
    switch does that by itself for a port that goes down, BMv2 only when its port monitor
    polls (every 200 ms), and no switch for a link that stays up and drops (gray). Routes
    with the dead link as their only next hop wait for the recompute. The result holds just
    the switches that change."""
    gone = frozenset(dead)
    changed: set[str] = set()
    specs: list[PolicySpec] = []
    for p in before.policies:
        keep = [s for s in p.lists if not (s.links & gone)]
        if len(keep) < len(p.lists):
            changed.add(p.key[0])
            if not keep:
                keep = [s for s in p.backup if not (s.links & gone)]
        if keep:
            specs.append(p.spec(keep))
    pruned = _prune_dead_members(topo, before, gone) if prune else {}
    if not changed and not pruned:
        return {}
    policies = compile_policies(topo, specs)
    out = {name: before.rules[name].with_policies(policies) for name in sorted(changed)}
    for name, rules in pruned.items():
        out[name] = rules.with_policies(policies)
    return out


def repair_order(
    before: Solution, dead: Iterable[LinkKey], rules: Mapping[str, SwitchRules]
) -> list[str]:
    """The switches of a fast reroute (``rules``, from :func:`fast_reroute`) in the order
    their writes should go: the ones that repair the most destinations first. A switch
    repairs a destination for every route whose ECMP group the reroute changes there (the
    point of local repair: every flow toward it that crossed the dead link, whatever its
    ingress) and for every policy of its own that moves off the dead links; ties by name.
    On a shared CPU, writes that go out together all finish late together; in this order
    the first ones finish early and the last no later."""
    gone = frozenset(dead)
    repaired: dict[str, int] = {}
    for p in before.policies:
        if any(s.links & gone for s in p.lists):
            repaired[p.key[0]] = repaired.get(p.key[0], 0) + 1
    for name, after in rules.items():
        old = before.rules.get(name)
        if old is None:
            continue
        kept = set(old.ecmp_groups)
        changed = {g.id for g in after.ecmp_groups if g not in kept}
        hit = sum(1 for r in old.routes if r.group_id is not None and r.group_id in changed)
        repaired[name] = repaired.get(name, 0) + hit
    return sorted(rules, key=lambda n: (-repaired.get(n, 0), n))


def _prune_dead_members(
    topo: Topology, before: Solution, dead: frozenset[LinkKey]
) -> dict[str, SwitchRules]:
    """The end switches of ``dead`` links with those links' members left out of their ECMP
    groups (same group ids); a group that would lose every member stays as it is."""
    ports: dict[str, set[int]] = {}
    for key in dead:
        x, y = pair(key)
        link = topo.link(x, y)
        for end in (link.a, link.b):
            if topo.is_switch(end.node):
                ports.setdefault(end.node, set()).add(end.port)
    out: dict[str, SwitchRules] = {}
    for name, down in sorted(ports.items()):
        rules = before.rules.get(name)
        if rules is None:
            continue
        groups = []
        for group in rules.ecmp_groups:
            keep = tuple(m for m in group.members if m.watch_port not in down)
            groups.append(replace(group, members=keep) if keep else group)
        if groups != list(rules.ecmp_groups):
            out[name] = replace(rules, ecmp_groups=tuple(groups))
    return out


def check_possible(topo: Topology, spec: Spec) -> None:
    """Raise :class:`Impossible` when ``spec`` cannot be met with every link up."""
    full = LiveGraph(topo.graph)
    if isinstance(spec, Disjoint):
        found = max_disjoint_paths(full, spec.src, spec.dst, mode=spec.mode)
        if len(found) < spec.k:
            raise Impossible(
                f"only {len(found)} {spec.mode}-disjoint path{'s' if len(found) != 1 else ''} "
                f"exist between {spec.src} and {spec.dst} on {topo.name} (asked for "
                f"k={spec.k}); ask for k <= {len(found)}"
                + ("" if spec.mode == "edge" else " or mode edge")
            )
    elif isinstance(spec, Explicit):
        try:
            path = explicit_path(full, spec.src, spec.dst, spec.waypoints)
            segment_list(topo, path.nodes, encoding=Encoding(spec.encoding), live=full)
        except (NoPathError, SegmentError) as exc:
            raise Impossible(str(exc)) from None


# -- per intent -------------------------------------------------------------------------------


def _connectivity_state(intent_id: str, topo: Topology, live: LiveGraph) -> IntentState:
    import networkx as nx

    g = topo.graph.copy()
    g.remove_edges_from(tuple(pair) for pair in live.down)
    parts = [c for c in nx.connected_components(g) if any(h.name in c for h in topo.hosts)]
    if len(parts) > 1:
        sizes = sorted((sum(1 for h in topo.hosts if h.name in c) for c in parts), reverse=True)
        return IntentState(
            intent_id,
            "degraded",
            f"hosts are split into {len(parts)} groups ({', '.join(map(str, sizes))} hosts)",
            (),
        )
    return IntentState(intent_id, "installed", "", ())


def _steer(topo: Topology, live: LiveGraph, path: Path, weight: int, enc: Encoding) -> Steered:
    return Steered(path, segment_list(topo, path.nodes, encoding=enc, live=live), weight)


def pair(link: LinkKey) -> tuple[str, str]:
    a, b = sorted(link)
    return (a, b)


def _reverse(path: Path) -> Path:
    return Path(path.cost, tuple(reversed(path.nodes)))


def _key(topo: Topology, path: Path) -> PolicyKey:
    return (path.nodes[1], host_prefix(topo, path.nodes[-1], path.nodes[-2]))


def _backup(
    topo: Topology, live: LiveGraph, paths: Sequence[Path], enc: Encoding
) -> tuple[Steered, ...]:
    """A path between the same ends that avoids every link of ``paths`` (not the hosts'
    access links), if one exists. It enters and leaves the fabric where ``paths[0]`` does:
    the policy it stands in for is an entry of that ingress switch for a prefix of that
    egress switch (a host with NICs in two planes must not fall back to its other NIC)."""
    src, dst = paths[0].src, paths[0].dst
    used = {frozenset(e) for p in paths for e in p.edges()}
    access = {frozenset(paths[0].nodes[:2]), frozenset(paths[0].nodes[-2:])}
    other_nics = {
        frozenset((host, link.peer_of(host).node))
        for host in (src, dst)
        for link in topo.links_of(host)
    } - access
    avoid = [pair(e) for e in (used - access) | other_nics]
    try:
        other = LiveGraph.of(live, avoid)
        alt = max_disjoint_paths(other, src, dst, mode="edge")
    except (NoPathError, ValueError):
        return ()
    for path in alt[:1]:
        try:
            return (_steer(topo, live, path, 1, enc),)
        except SegmentError:
            return ()
    return ()


def _policies(intent: Intent, topo: Topology, live: LiveGraph) -> tuple[list[Policy], str]:
    """The intent's policies and, when it got less than it asked for, why."""
    spec = intent.spec
    enc = Encoding(spec.encoding) if not isinstance(spec, Connectivity) else Encoding.USID
    degraded = ""
    if isinstance(spec, Disjoint):
        try:
            found = disjoint_paths(live, spec.src, spec.dst, spec.k, mode=spec.mode)
        except NoPathError:
            found = max_disjoint_paths(live, spec.src, spec.dst, mode=spec.mode)
            if not found:
                raise NoPathError(
                    spec.src,
                    spec.dst,
                    requested=spec.k,
                    available=0,
                    what=f"{spec.mode}-disjoint path",
                ) from None
            degraded = f"{len(found)} of {spec.k} {spec.mode}-disjoint paths (links down)"
        weights = list(spec.weights) or [1] * spec.k
        out: list[Policy] = []
        for paths in (found, [_reverse(p) for p in found]):
            if len(paths[0].nodes) <= 3:
                continue  # both hosts on one switch
            lists = tuple(_steer(topo, live, p, weights[i], enc) for i, p in enumerate(paths))
            backup = _backup(topo, live, paths, enc) if len(paths) == 1 else ()
            out.append(Policy(intent.id, _key(topo, paths[0]), lists, backup))
        return out, degraded
    if isinstance(spec, Explicit):
        path = explicit_path(live, spec.src, spec.dst, spec.waypoints)
        out = []
        for p in (path, _reverse(path)):
            if len(p.nodes) <= 3:
                continue
            lists = (_steer(topo, live, p, 1, enc),)
            out.append(Policy(intent.id, _key(topo, p), lists, _backup(topo, live, [p], enc)))
        return out, degraded
    assert isinstance(spec, Collective)
    placement = place_collective(live, spec.hosts, spec.pattern)
    grouped: dict[PolicyKey, list[Path]] = {}
    missing = [f for f in placement.flows if f not in placement.paths]
    if missing:
        degraded = f"{len(missing)} flow(s) have no path: {', '.join(map(str, missing[:4]))}"
    for flow in placement.flows:
        placed = placement.paths.get(flow)
        if placed is None or len(placed.nodes) <= 3:
            continue
        grouped.setdefault(_key(topo, placed), []).append(placed)
    out = []
    for key, paths in sorted(grouped.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        lists = tuple(_steer(topo, live, p, 1, enc) for p in paths)
        out.append(Policy(intent.id, key, lists, _backup(topo, live, paths, enc)))
    return out, degraded
