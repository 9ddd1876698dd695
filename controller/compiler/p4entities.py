"""Abstract rules to P4Runtime entities of srv6.p4, by name (finsy): tables, actions, match
fields and parameters are named as in ``p4/README.md``, never by numeric id. Pure: finsy
resolves the names against the P4Info only when an entity is encoded.

Entities come in write order: next hops, ECMP members, ECMP groups, routes, my_sid,
host_port, sid_block, headend members, headend groups, headend entries. A headend member
shared by several policies of a switch (the same segment list) is emitted once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import finsy as fy

from controller.compiler.entries import (
    EcmpGroup,
    EcmpMember,
    HeadendPolicy,
    HostPort,
    MySid,
    NextHop,
    Route,
    SidBlock,
    SwitchRules,
)
from controller.compiler.segments import MAX_SEGMENTS

DST = "hdr.ipv6.dst_addr"

Entity = Any
"""A finsy entity (finsy has no type hints for mypy here)."""


def next_hop(rule: NextHop) -> Entity:
    return fy.P4TableEntry(
        "next_hop",
        match=fy.P4TableMatch({"local_metadata.nexthop_id": rule.id}),
        action=fy.P4TableAction(
            "rewrite", port=rule.port, src_mac=rule.src_mac, dst_mac=rule.dst_mac
        ),
    )


def ecmp_member(rule: EcmpMember) -> Entity:
    return fy.P4ActionProfileMember(
        "ecmp_selector",
        member_id=rule.id,
        action=fy.P4TableAction("set_next_hop", nexthop_id=rule.nexthop_id),
    )


def ecmp_group(rule: EcmpGroup) -> Entity:
    return fy.P4ActionProfileGroup(
        "ecmp_selector",
        group_id=rule.id,
        members=[
            fy.P4Member(m.member_id, weight=(m.weight, m.watch_port))
            if m.watch_port is not None
            else fy.P4Member(m.member_id, weight=m.weight)
            for m in rule.members
        ],
    )


def route(rule: Route) -> Entity:
    action = (
        fy.P4IndirectAction(member_id=rule.member_id)
        if rule.member_id is not None
        else fy.P4IndirectAction(group_id=rule.group_id)
    )
    return fy.P4TableEntry(
        "routing_v6", match=fy.P4TableMatch({DST: str(rule.prefix)}), action=action
    )


def my_sid(rule: MySid) -> Entity:
    params = {} if rule.nexthop_id is None else {"nexthop_id": rule.nexthop_id}
    return fy.P4TableEntry(
        "my_sid",
        match=fy.P4TableMatch({DST: str(rule.prefix)}),
        action=fy.P4TableAction(rule.behaviour, **params),
    )


def host_port(rule: HostPort) -> Entity:
    return fy.P4TableEntry(
        "host_port",
        match=fy.P4TableMatch({"standard_metadata.ingress_port": rule.port}),
        action=fy.P4TableAction("mark_host_port"),
    )


def sid_block(rule: SidBlock) -> Entity:
    return fy.P4TableEntry(
        "sid_block",
        match=fy.P4TableMatch({DST: str(rule.prefix)}),
        action=fy.P4TableAction("mark_internal_sid"),
    )


def headend_members(rule: HeadendPolicy) -> list[Entity]:
    out: list[Entity] = []
    for path in rule.paths:
        params: dict[str, int] = {
            "src_addr": int(rule.src_addr),
            "num_segments": len(path.segments),
        }
        for n in range(MAX_SEGMENTS):
            params[f"s{n + 1}"] = int(path.segments[n]) if n < len(path.segments) else 0
        out.append(
            fy.P4ActionProfileMember(
                "headend_selector",
                member_id=path.member_id,
                action=fy.P4TableAction(rule.action, **params),
            )
        )
    return out


def headend_group(rule: HeadendPolicy) -> Entity | None:
    if rule.group_id is None:
        return None
    return fy.P4ActionProfileGroup(
        "headend_selector",
        group_id=rule.group_id,
        members=[fy.P4Member(p.member_id, weight=p.weight) for p in rule.paths],
    )


def headend_entry(rule: HeadendPolicy) -> Entity:
    action = (
        fy.P4IndirectAction(member_id=rule.paths[0].member_id)
        if rule.group_id is None
        else fy.P4IndirectAction(group_id=rule.group_id)
    )
    return fy.P4TableEntry(
        "srv6_headend", match=fy.P4TableMatch({DST: str(rule.prefix)}), action=action
    )


def policy_entities(policies: Iterable[HeadendPolicy]) -> list[Entity]:
    """Members (each once), then groups, then table entries."""
    rules = list(policies)
    members: list[Entity] = []
    seen: set[int] = set()
    for rule in rules:
        for path, member in zip(rule.paths, headend_members(rule), strict=True):
            if path.member_id not in seen:
                seen.add(path.member_id)
                members.append(member)
    groups = [g for g in (headend_group(r) for r in rules) if g is not None]
    return members + groups + [headend_entry(r) for r in rules]


def entities(rules: SwitchRules) -> list[Entity]:
    """One switch's rules as finsy entities, in write order."""
    return [
        *(next_hop(r) for r in rules.next_hops),
        *(ecmp_member(r) for r in rules.ecmp_members),
        *(ecmp_group(r) for r in rules.ecmp_groups),
        *(route(r) for r in rules.routes),
        *(my_sid(r) for r in rules.my_sids),
        *(host_port(r) for r in rules.host_ports),
        *(sid_block(r) for r in rules.sid_blocks),
        *policy_entities(rules.policies),
    ]
