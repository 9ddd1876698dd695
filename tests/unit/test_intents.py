"""Intents: validation that names the field, and the pure engine (policies per ingress,
conflicts, degraded and failed states, the link index, backups and fast reroute)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from controller.compiler import compile_policies
from controller.intents import (
    Collective,
    Connectivity,
    Disjoint,
    Explicit,
    Impossible,
    Intent,
    IntentError,
    check_possible,
    fast_reroute,
    parse_spec,
    repair_order,
    solve,
    spec_dict,
)
from controller.paths import LiveGraph
from controller.topology import Topology, load

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ft() -> Topology:
    return load(ROOT / "topologies" / "fat-tree-4.yaml")


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        ({}, "spec.kind", "must be one of"),
        ({"kind": "teleport"}, "spec.kind", "teleport"),
        ({"kind": "disjoint", "src": "h1"}, "spec.dst", "host name"),
        ({"kind": "disjoint", "src": "h1", "dst": "h99"}, "spec.dst", "not a host"),
        ({"kind": "disjoint", "src": "h1", "dst": "edge1"}, "spec.dst", "not a host"),
        ({"kind": "disjoint", "src": "h1", "dst": "h1"}, "spec.dst", "same host"),
        ({"kind": "disjoint", "src": "h1", "dst": "h2", "k": 0}, "spec.k", "1 to 16"),
        ({"kind": "disjoint", "src": "h1", "dst": "h2", "k": True}, "spec.k", "1 to 16"),
        ({"kind": "disjoint", "src": "h1", "dst": "h2", "mode": "x"}, "spec.mode", "edge, node"),
        ({"kind": "disjoint", "src": "h1", "dst": "h2", "weights": [1]}, "spec.weights", "k=2"),
        ({"kind": "disjoint", "src": "h1", "dst": "h2", "weights": [1, 0]}, "spec.weights[1]", ""),
        ({"kind": "disjoint", "src": "h1", "dst": "h2", "colour": 1}, "spec.colour", "unknown"),
        ({"kind": "explicit", "src": "h1", "dst": "h2"}, "spec.waypoints", "non-empty"),
        ({"kind": "explicit", "src": "h1", "dst": "h2", "waypoints": ["cor1"]},
         "spec.waypoints[0]", "did you mean core1"),
        ({"kind": "collective", "hosts": ["h1"]}, "spec.hosts", "at least 2"),
        ({"kind": "collective", "hosts": ["h1", "h2", "h1"]}, "spec.hosts[2]", "twice"),
        ({"kind": "collective", "hosts": ["h1", "h2"], "pattern": "ring-ish"},
         "spec.pattern", "all-to-all"),
        ({"kind": "disjoint", "src": "h1", "dst": "h2", "encoding": "srv7"}, "spec.encoding", ""),
    ],
)  # fmt: skip
def test_bad_specs_name_the_field(
    ft: Topology, data: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(IntentError) as info:
        parse_spec(data, ft)
    assert info.value.field == field, str(info.value)
    assert words in str(info.value)


def test_specs_round_trip(ft: Topology) -> None:
    for data in (
        {"kind": "connectivity"},
        {
            "kind": "disjoint",
            "src": "h1",
            "dst": "h9",
            "k": 3,
            "mode": "node",
            "weights": [3, 2, 1],
        },
        {"kind": "explicit", "src": "h1", "dst": "h9", "waypoints": ["core2", "agg5"]},
        {"kind": "collective", "hosts": ["h1", "h3", "h5"], "pattern": "ring", "encoding": "full"},
    ):
        spec = parse_spec(data, ft)
        assert parse_spec(spec_dict(spec), ft) == spec


def links_of(path: Any) -> set[frozenset[str]]:
    return {frozenset(e) for e in path.edges()}


def test_disjoint_intent_gets_a_weighted_policy_each_way(ft: Topology) -> None:
    spec = parse_spec({"kind": "disjoint", "src": "h1", "dst": "h16", "weights": [3, 1]}, ft)
    sol = solve(ft, LiveGraph(ft.graph), [Intent("c", Connectivity()), Intent("d", spec)])
    state = sol.states["d"]
    assert state.status == "installed", state.reason
    keys = sorted((p.key[0], str(p.key[1])) for p in sol.policies)
    assert keys == [("edge1", "2001:db8:10::/64"), ("edge8", "2001:db8:1::/64")]
    forward = [s for s in state.paths if s.path.src == "h1"]
    assert [s.weight for s in forward] == [3, 1]
    access = {frozenset(("h1", "edge1")), frozenset(("edge8", "h16"))}
    assert not (links_of(forward[0].path) & links_of(forward[1].path)) - access
    edge1 = sol.rules["edge1"].policies
    assert len(edge1) == 1 and edge1[0].group_id is not None and len(edge1[0].paths) == 2
    # the link index knows which intents cross a link
    core = frozenset(forward[0].path.nodes[2:4])
    assert sol.affected(core) == frozenset({"d"})


def test_conflicts_fail_the_later_intent_and_name_the_earlier(ft: Topology) -> None:
    a = Intent("a", Disjoint("h1", "h16"))
    b = Intent("b", Explicit("h2", "h16", ("core4",)))  # h2 is behind edge1 too
    sol = solve(ft, LiveGraph(ft.graph), [a, b])
    assert sol.states["a"].status == "installed"
    assert sol.states["b"].status == "failed"
    assert "intent a" in sol.states["b"].reason


def test_fewer_paths_than_asked_is_degraded_and_none_is_failed(ft: Topology) -> None:
    intent = Intent("d", Disjoint("h1", "h16", k=2))
    live = LiveGraph(ft.graph, [("edge1", "agg2")])
    state = solve(ft, live, [intent]).states["d"]
    assert state.status == "degraded" and "1 of 2" in state.reason
    cut = LiveGraph(ft.graph, [("edge1", "agg1"), ("edge1", "agg2")])
    assert solve(ft, cut, [intent]).states["d"].status == "failed"


def test_impossible_intents_say_what_is_possible(ft: Topology) -> None:
    with pytest.raises(Impossible, match=r"only 2 node-disjoint paths .* k <= 2"):
        check_possible(ft, Disjoint("h1", "h16", k=4, mode="node"))
    check_possible(ft, Disjoint("h1", "h16", k=2, mode="node"))


def test_without_connectivity_host_prefixes_are_routed_only_where_they_attach(ft: Topology) -> None:
    sol = solve(ft, LiveGraph(ft.graph), [Intent("d", Disjoint("h1", "h16"))])
    routed = {str(r.prefix) for r in sol.rules["agg1"].routes}
    assert "2001:db8:1::/64" not in routed  # h1 is behind edge1, not agg1
    assert any(p.startswith("fcbb:bb00:") for p in routed)  # locators stay
    assert "2001:db8:1::/64" in {str(r.prefix) for r in sol.rules["edge1"].routes}


def test_fast_reroute_changes_only_the_ingress_headends(ft: Topology) -> None:
    explicit = Intent("e", Explicit("h1", "h16", ("core1",)))
    sol = solve(ft, LiveGraph(ft.graph), [Intent("c", Connectivity()), explicit])
    policy = next(p for p in sol.policies if p.key[0] == "edge1")
    assert policy.backup, "no precomputed backup"
    backup_links = {link for s in policy.backup for link in s.links}
    primary_links = {link for s in policy.lists for link in s.links}
    assert backup_links & primary_links <= {frozenset(("h1", "edge1")), frozenset(("edge8", "h16"))}
    dead = frozenset(("agg1", "core1"))
    assert dead in primary_links
    rules = fast_reroute(ft, sol, [dead])
    assert set(rules) == {"edge1", "edge8"}  # both directions cross it
    moved = rules["edge1"].policies[0]
    assert moved.paths[0].segments == policy.backup[0].segments.sids
    assert rules["edge1"].routes == sol.rules["edge1"].routes  # the fabric is left alone
    assert fast_reroute(ft, sol, [frozenset(("agg8", "core4"))]) == {}


def test_collective_flows_share_ingress_policies(ft: Topology) -> None:
    hosts = ("h1", "h3", "h5", "h7")
    sol = solve(ft, LiveGraph(ft.graph), [Intent("x", Collective(hosts, "all-to-all"))])
    state = sol.states["x"]
    assert state.status == "installed", state.reason
    assert len(state.paths) == 12  # every ordered pair
    assert len(sol.policies) == 12  # one host per edge switch: one policy per flow


def test_fast_reroute_prunes_a_dead_link_from_the_groups_at_its_ends(ft: Topology) -> None:
    sol = solve(ft, LiveGraph(ft.graph), [Intent("c", Connectivity())])
    dead = frozenset(("agg1", "core1"))
    assert fast_reroute(ft, sol, [dead]) == {}  # no policy crosses it
    rules = fast_reroute(ft, sol, [dead], prune=True)
    assert set(rules) == {"agg1", "core1"}
    for end in ("agg1", "core1"):
        port = ft.link("agg1", "core1").interface_at(end).port
        before, after = sol.rules[end], rules[end]
        assert [g.id for g in after.ecmp_groups] == [g.id for g in before.ecmp_groups]
        assert any(m.watch_port == port for g in before.ecmp_groups for m in g.members)
        assert all(m.watch_port != port for g in after.ecmp_groups for m in g.members)
        assert all(g.members for g in after.ecmp_groups)
        # prefix-independent: no route moves, only groups lose a member (core1's route to
        # pod 1, whose only next hop is agg1, waits for the recompute)
        assert after.routes == before.routes
        assert after.next_hops == before.next_hops


def test_backups_enter_and_leave_where_their_policy_does() -> None:
    """gpu-pod-2plane hosts have a NIC in each plane: a policy at a plane-0 leaf must not get
    a backup that leaves the host through its plane-1 NIC (its headend could not hold it)."""
    pod = load(ROOT / "topologies" / "gpu-pod-2plane.yaml")
    hosts = tuple(h.name for h in pod.gpu_hosts)
    intents = [Intent("c", Connectivity()), Intent("x", Collective(hosts, "all-to-all"))]
    sol = solve(pod, LiveGraph(pod.graph), intents)
    with_backup = [p for p in sol.policies if p.backup]
    assert with_backup
    for policy in with_backup:
        for steered in (*policy.lists, *policy.backup):
            assert steered.path.nodes[1] == policy.key[0], (policy.key, str(steered.path))
    compile_policies(pod, [p.spec(p.backup) for p in with_backup])  # raises if not


def test_two_plane_collective_steers_one_channel_per_plane() -> None:
    """Each flow of a collective among hosts with a NIC in each plane becomes a channel per
    plane: a policy at the plane's ingress leaf toward the destination's prefix in that
    plane, its path inside the plane."""
    pod = load(ROOT / "topologies" / "gpu-pod-2plane.yaml")
    hosts = tuple(h.name for h in pod.gpu_hosts)
    sol = solve(pod, LiveGraph(pod.graph), [Intent("r", Collective(hosts, "ring"))])
    state = sol.states["r"]
    assert state.status == "installed", state.reason
    # 4 of the ring's 8 flows change leaves (the others stay on one leaf: plain routing)
    assert len(state.paths) == 8 and len(sol.policies) == 8
    for policy in sol.policies:
        plane = pod.graph.nodes[policy.key[0]]["plane"]
        (steered,) = policy.lists
        nodes = steered.path.nodes
        assert {pod.graph.nodes[n]["plane"] for n in nodes[1:-1]} == {plane}, nodes
        dst_nic = next(n for n in pod.host(nodes[-1]).nics if n.switch == nodes[-2])
        assert dst_nic.plane == plane and policy.key[1] == dst_nic.prefix
    planes = sorted(pod.graph.nodes[p.key[0]]["plane"] for p in sol.policies)
    assert planes == [0, 0, 0, 0, 1, 1, 1, 1]


def test_repair_order_puts_the_switches_that_repair_the_most_first(ft: Topology) -> None:
    """A gray agg1-core1 under connectivity and explicit h1 -> hN intents through core1:
    agg1's pruned group is the local repair of every route through it (all of pod 1's
    traffic leaving by core1), edge1 moves the most policies, core1's prune repairs only
    the locators it reaches through agg1, and each reverse path's ingress moves one."""
    intents = [Intent("c", Connectivity())] + [
        Intent(f"e{n}", Explicit("h1", f"h{n}", ("core1",))) for n in (5, 7, 9, 11, 13, 15)
    ]
    sol = solve(ft, LiveGraph(ft.graph), intents)
    dead = frozenset(("agg1", "core1"))
    rules = fast_reroute(ft, sol, [dead], prune=True)
    order = repair_order(sol, [dead], rules)
    assert sorted(order) == sorted(rules)
    assert order[:3] == ["agg1", "edge1", "core1"]
    assert order[3:] == sorted(order[3:])  # one policy each: by name
    assert repair_order(sol, [dead], {}) == []
