"""Per-switch rules: golden files, ECMP groups exactly where several equal-cost next hops
exist, no route over a switch's own SIDs, down links left out, deterministic ids, and the
finsy entities encode against srv6.p4's P4Info.

Regenerate the golden files with
``SRV6LAB_UPDATE_GOLDEN=1 pytest tests/unit/test_compiler_entries.py`` and review the diff."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable
from pathlib import Path

import finsy as fy
import pytest

from controller.compiler import (
    CompileError,
    Encoding,
    PolicySpec,
    compile_fabric,
    compile_network,
    compile_policies,
    dt6_prefix,
    dump,
    entities,
    segment_list,
)
from controller.compiler.entries import assign_ids, stable_id
from controller.paths import ecmp_next_hops
from controller.topology import Topology, load

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent / "golden"
P4INFO = ROOT / "p4" / "build" / "srv6.p4info.txtpb"
TOPOLOGIES = ["line-3", "leaf-spine-2x4", "fat-tree-4", "gpu-pod-2plane"]


def topology(name: str) -> Topology:
    return load(ROOT / "topologies" / f"{name}.yaml")


def prefix_of(topo: Topology, host: str) -> ipaddress.IPv6Network:
    return topo.host(host).nics[0].prefix


def line3_policies(topo: Topology) -> list[PolicySpec]:
    there = segment_list(topo, ["h1", "s1", "s2", "s3", "h2"])
    back = segment_list(topo, ["h2", "s3", "s2", "s1", "h1"], encoding=Encoding.FULL)
    return [
        PolicySpec("s1", prefix_of(topo, "h2"), ((there, 1),)),
        PolicySpec("s3", prefix_of(topo, "h1"), ((back, 1),), reduced=False),
    ]


def leaf_spine_policies(topo: Topology) -> list[PolicySpec]:
    via1 = segment_list(topo, ["h1", "leaf1", "spine1", "leaf3", "h5"])
    via2 = segment_list(topo, ["h1", "leaf1", "spine2", "leaf3", "h5"])
    zigzag = ["h3", "leaf2", "spine1", "leaf1", "spine2", "leaf4", "h7"]
    return [
        PolicySpec("leaf1", prefix_of(topo, "h5"), ((via1, 1), (via2, 3))),
        PolicySpec("leaf1", prefix_of(topo, "h6"), ((via1, 1),)),  # shares h5's member
        PolicySpec("leaf2", prefix_of(topo, "h7"), ((segment_list(topo, zigzag), 1),)),
        PolicySpec(
            "leaf2",
            prefix_of(topo, "h8"),
            ((segment_list(topo, [*zigzag[:-1], "h8"], encoding=Encoding.FULL), 1),),
        ),
    ]


GOLDEN_CASES: dict[str, tuple[str, list[str], Callable[[Topology], list[PolicySpec]]]] = {
    "line-3": ("line-3", [], line3_policies),
    "leaf-spine-2x4": ("leaf-spine-2x4", [], leaf_spine_policies),
    "leaf-spine-2x4-down": ("leaf-spine-2x4", ["leaf1-spine1", "h4-leaf2"], lambda t: []),
}


@pytest.mark.parametrize("case", sorted(GOLDEN_CASES))
def test_golden(case: str) -> None:
    name, down, policies = GOLDEN_CASES[case]
    topo = topology(name)
    network = compile_network(topo, down, policies(topo))
    text = dump(topo, network)
    if down:
        text = f"# down: {', '.join(down)}\n" + text
    path = GOLDEN / f"{case}.txt"
    if os.environ.get("SRV6LAB_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"no golden file {path}: run with SRV6LAB_UPDATE_GOLDEN=1"
    assert text == path.read_text(), (
        f"compiled rules differ from {path.name}; if the change is intended, regenerate with "
        "SRV6LAB_UPDATE_GOLDEN=1 and review the diff"
    )


def test_the_golden_files_have_no_leftovers() -> None:
    assert sorted(p.stem for p in GOLDEN.glob("*.txt")) == sorted(GOLDEN_CASES)


# -- properties over the shipped topologies ---------------------------------------------------


@pytest.mark.parametrize("name", TOPOLOGIES)
def test_ecmp_groups_exactly_where_several_next_hops_exist(name: str) -> None:
    topo = topology(name)
    network = compile_fabric(topo)
    groups_seen = 0
    for rules in network.values():
        groups = {g.id: g for g in rules.ecmp_groups}
        members = {m.id: m for m in rules.ecmp_members}
        used: set[int] = set()
        for route in rules.routes:
            owner_nics = (
                [] if topo.is_switch(route.destination) else topo.host(route.destination).nics
            )
            target = next(
                (n.switch for n in owner_nics if n.prefix == route.prefix), route.destination
            )
            if target == rules.switch:
                want: tuple[int, ...] = (
                    topo.link(rules.switch, route.destination).interface_at(rules.switch).port,
                )
            else:
                hops = ecmp_next_hops(topo.graph, target).get(rules.switch, ())
                want = tuple(
                    sorted(topo.link(rules.switch, h).interface_at(rules.switch).port for h in hops)
                )
            if len(want) == 1:
                assert route.group_id is None and route.member_id == want[0], route
                assert members[want[0]].nexthop_id == want[0]
            else:
                assert route.member_id is None and route.group_id is not None, route
                used.add(route.group_id)
                group = groups[route.group_id]
                assert tuple(m.member_id for m in group.members) == want
                assert all(m.watch_port == m.member_id and m.weight == 1 for m in group.members)
        assert used == set(groups), "a group no route uses"
        groups_seen += len(groups)
    assert groups_seen > 0 or name == "line-3"


@pytest.mark.parametrize("name", TOPOLOGIES)
def test_every_destination_is_routed_and_no_route_covers_own_sids(name: str) -> None:
    topo = topology(name)
    targets = {s.locator: s.name for s in topo.switches} | {
        nic.prefix: nic.switch for h in topo.hosts for nic in h.nics
    }
    reachable = {s.name: set(ecmp_next_hops(topo.graph, s.name)) | {s.name} for s in topo.switches}
    for switch, rules in compile_fabric(topo).items():
        prefixes = {p for p, target in targets.items() if switch in reachable[target]}
        own = [s.prefix for s in rules.my_sids]
        assert topo.switch(switch).locator in own
        assert dt6_prefix(topo) in own
        for route in rules.routes:
            for sid in own:
                assert not route.prefix.overlaps(sid), f"{switch}: {route.prefix} covers {sid}"
        assert {r.prefix for r in rules.routes} == prefixes - {topo.switch(switch).locator}


def test_my_sids_of_a_switch() -> None:
    topo = topology("line-3")
    s2 = compile_fabric(topo)["s2"]
    got = {(str(s.prefix), s.behaviour, s.nexthop_id) for s in s2.my_sids}
    assert got == {
        ("fcbb:bb00:2::/48", "usid_un", None),
        ("fcbb:bb00:e001::/48", "usid_ua", 1),
        ("fcbb:bb00:e002::/48", "usid_ua", 2),
        ("fcbb:bb00:fe00::/48", "end_dt6", None),
    }
    s1 = compile_fabric(topo)["s1"]
    assert [(h.port, h.host) for h in s1.host_ports] == [(1, "h1")]
    assert [str(b.prefix) for b in s1.sid_blocks] == ["fcbb:bb00::/32"]
    nh = {n.neighbour: n for n in s1.next_hops}
    assert (nh["s2"].id, nh["s2"].port) == (2, 2)
    assert nh["s2"].src_mac == topo.link("s1", "s2").interface_at("s1").mac
    assert nh["s2"].dst_mac == topo.link("s1", "s2").interface_at("s2").mac
    assert nh["h1"].dst_mac == topo.host("h1").nics[0].interface.mac


def test_down_links_are_left_out() -> None:
    topo = topology("fat-tree-4")
    fabric = topo.fabric_links[0]
    access = topo.access_links[0]
    network = compile_fabric(topo, [fabric.name, access.name])
    for link in (fabric, access):
        for end in (link.a, link.b):
            if not topo.is_switch(end.node):
                continue
            rules = network[end.node]
            assert end.port not in {n.id for n in rules.next_hops}
            assert end.port not in {m.id for m in rules.ecmp_members}
            assert all(end.port not in {m.member_id for m in g.members} for g in rules.ecmp_groups)
            assert end.port not in {r.member_id for r in rules.routes}
            assert end.port not in {s.nexthop_id for s in rules.my_sids}
    host_prefix = next(n.prefix for n in topo.host(access.a.node).nics if n.link == access.name)
    for rules in network.values():
        assert host_prefix not in {r.prefix for r in rules.routes}
    # the port still faces a host: the edge filter stays
    assert access.b.port in {h.port for h in network[access.b.node].host_ports}
    # the fabric is still routed around the failure, by the path engine's ECMP sets
    for rules in network.values():
        for route in rules.routes:
            if topo.is_switch(route.destination) and route.destination != rules.switch:
                hops = ecmp_next_hops(topo.graph, route.destination, down=[fabric.name])
                count = len(hops[rules.switch])
                assert (route.group_id is not None) == (count > 1)


def test_compiling_is_deterministic_and_ids_depend_only_on_what_they_name() -> None:
    a, b = topology("leaf-spine-2x4"), topology("leaf-spine-2x4")
    first = compile_network(a, [], leaf_spine_policies(a))
    again = compile_network(b, [], list(reversed(leaf_spine_policies(b))))
    assert first == again
    assert dump(a, first) == dump(b, again)
    # an unrelated failure leaves the ids of the groups that still exist alone
    failed = compile_fabric(a, ["leaf4-spine2"])
    for switch in ("leaf1", "leaf2"):
        before = {g.members: g.id for g in first[switch].ecmp_groups}
        after = {g.members: g.id for g in failed[switch].ecmp_groups}
        assert before == after
    # a policy added elsewhere leaves the others' members and groups alone
    extra = PolicySpec(
        "leaf1",
        prefix_of(a, "h8"),
        ((segment_list(a, ["h1", "leaf1", "spine1", "leaf4", "h8"]), 1),),
    )
    more = compile_policies(a, [*leaf_spine_policies(a), extra])
    assert set(compile_policies(a, leaf_spine_policies(a))) <= set(more)


def test_policies_share_members_and_weigh_their_lists() -> None:
    topo = topology("leaf-spine-2x4")
    policies = {p.prefix: p for p in compile_policies(topo, leaf_spine_policies(topo))}
    h5, h6 = policies[prefix_of(topo, "h5")], policies[prefix_of(topo, "h6")]
    assert h5.group_id is not None and len(h5.paths) == 2
    assert sorted(p.weight for p in h5.paths) == [1, 3]
    assert h6.group_id is None and h6.paths[0].member_id in {p.member_id for p in h5.paths}
    assert h5.reduced and str(h5.src_addr) == "fcbb:bb00:201::1"
    # the same list twice is one member with the summed weight
    sl = segment_list(topo, ["leaf1", "spine1", "leaf3"])
    (doubled,) = compile_policies(
        topo, [PolicySpec("leaf1", prefix_of(topo, "h5"), ((sl, 1), (sl, 2)))]
    )
    assert doubled.group_id is None and [p.weight for p in doubled.paths] == [3]


def test_bad_policies_are_rejected_naming_the_problem() -> None:
    topo = topology("line-3")
    sl = segment_list(topo, ["s1", "s2", "s3"])
    h2 = prefix_of(topo, "h2")
    cases = [
        (PolicySpec("h1", h2, ((sl, 1),)), "ingress 'h1' is not a switch"),
        (PolicySpec("s1", h2, ()), "no segment list"),
        (PolicySpec("s1", h2, ((sl, 0),)), "weight 0 below 1"),
        (PolicySpec("s2", h2, ((sl, 1),)), "starts at s1, not the ingress"),
        (PolicySpec("s1", h2, (((), 1),)), "has 0 SIDs"),
    ]
    for spec, message in cases:
        with pytest.raises(CompileError, match=message):
            compile_policies(topo, [spec])
    with pytest.raises(CompileError, match="a second policy for the same prefix"):
        compile_policies(topo, [PolicySpec("s1", h2, ((sl, 1),))] * 2)


def test_ids_probe_past_a_clash_deterministically() -> None:
    taken = stable_id("ecmp:2,3")
    assert assign_ids(["ecmp:2,3"]) == {"ecmp:2,3": taken}
    assert assign_ids(["ecmp:2,3"], taken=[taken]) == {"ecmp:2,3": taken + 1}
    ids = assign_ids(f"k{n}" for n in range(2000))
    assert len(set(ids.values())) == 2000
    assert all(0 < v <= 0x0FFF_FFFF for v in ids.values())


# -- P4Runtime entities -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def schema() -> fy.P4Schema:
    return fy.P4Schema(P4INFO)


@pytest.mark.parametrize("name", ["line-3", "leaf-spine-2x4", "gpu-pod-2plane"])
def test_entities_encode_against_the_p4info(name: str, schema: fy.P4Schema) -> None:
    topo = topology(name)
    specs = line3_policies(topo) if name == "line-3" else []
    if name == "leaf-spine-2x4":
        specs = leaf_spine_policies(topo)
    for rules in compile_network(topo, [], specs).values():
        ents = entities(rules)
        encoded = [e.encode(schema) for e in ents]
        assert len(encoded) == len(ents)
        n_members = len({p.member_id for pol in rules.policies for p in pol.paths})
        n_groups = sum(1 for pol in rules.policies if pol.group_id is not None)
        expected = (
            len(rules.rules()) - len(rules.policies) + n_members + n_groups + len(rules.policies)
        )
        assert len(ents) == expected


def test_entities_by_name(schema: fy.P4Schema) -> None:
    topo = topology("line-3")
    network = compile_network(topo, [], line3_policies(topo))
    s1 = entities(network["s1"])
    by_kind: dict[str, list[object]] = {}
    for e in s1:
        key = getattr(e, "table_id", "") or getattr(e, "action_profile_id", "")
        by_kind.setdefault(key, []).append(e)
    assert set(by_kind) == {
        "next_hop",
        "ecmp_selector",
        "routing_v6",
        "my_sid",
        "host_port",
        "sid_block",
        "headend_selector",
        "srv6_headend",
    }
    member = next(
        e
        for e in s1
        if isinstance(e, fy.P4ActionProfileMember) and e.action_profile_id == "headend_selector"
    )
    assert member.action.name == "h_encaps_red"
    params = dict(member.action.args)
    assert params["num_segments"] == 1
    assert ipaddress.IPv6Address(params["s1"]) == ipaddress.IPv6Address("fcbb:bb00:3:fe00::")
    assert params["s2"] == 0
    assert ipaddress.IPv6Address(params["src_addr"]) == ipaddress.IPv6Address("fcbb:bb00:1::1")
    s3 = entities(network["s3"])
    full = next(
        e
        for e in s3
        if isinstance(e, fy.P4ActionProfileMember) and e.action_profile_id == "headend_selector"
    )
    assert full.action.name == "h_encaps"
    assert ipaddress.IPv6Address(dict(full.action.args)["s1"]) == ipaddress.IPv6Address(
        "fcbb:bb00:1:fe00::"
    )
