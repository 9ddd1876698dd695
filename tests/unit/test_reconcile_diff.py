"""The make-before-break diff: nothing to do for identical sets (in any encoding), inserts,
modifies and deletes found, and every plan checked on a model of a switch that refuses a
reference to a missing member, group or next hop and the deletion of anything in use, with
each batch applied in a shuffled order (a switch may reorder one WriteRequest). Random
desired/actual pairs come from the compiler on line-3 and leaf-spine-2x4 with random down
links, headend policies and a tampered switch state (fixed seeds: hypothesis is not
installed)."""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Hashable, Iterable
from pathlib import Path
from typing import Any

import finsy as fy
import pytest
from finsy.proto import p4r

from controller.compiler import (
    CompileError,
    Encoding,
    PolicySpec,
    SegmentError,
    compile_network,
    entities,
    host_prefix,
    segment_list,
)
from controller.reconcile import Normalized, Plan, ReconcileError, breaks_deferred, diff, normalize
from controller.topology import Topology, load

ROOT = Path(__file__).resolve().parents[2]
P4INFO = ROOT / "p4" / "build" / "srv6.p4info.txtpb"
DST = "hdr.ipv6.dst_addr"
NEXT_HOP_PARAM = "nexthop_id"


@pytest.fixture(scope="module")
def schema() -> fy.P4Schema:
    return fy.P4Schema(P4INFO)


# -- a switch that checks references ----------------------------------------------------------


class SwitchModel:
    """What a P4Runtime switch holds, with its reference rules, worked out from the wire
    messages (independently of the diff's own idea of references): a table entry needs the
    member or group it points at, a group its members, and anything with a ``nexthop_id``
    parameter the ``next_hop`` entry of that id. Inserting or modifying something whose
    references are missing fails, so does deleting something still referenced."""

    def __init__(self, schema: fy.P4Schema, entities: Iterable[Any] = ()) -> None:
        self.schema = schema
        self.next_hop_table = schema.tables["next_hop"].id
        self.state: dict[Hashable, p4r.Entity] = {}
        for entity in entities:
            msg = entity if isinstance(entity, p4r.Entity) else entity.encode(schema)
            self.state[self.ident(msg)] = msg
        for ident, msg in self.state.items():
            missing = self.needs(msg) - self.state.keys()
            assert not missing, f"the initial state is inconsistent: {ident} needs {missing}"

    def ident(self, msg: p4r.Entity) -> Hashable:
        which = msg.WhichOneof("entity")
        if which == "table_entry" and msg.table_entry.table_id == self.next_hop_table:
            return ("next_hop", int.from_bytes(msg.table_entry.match[0].exact.value, "big"))
        if which == "action_profile_member":
            m = msg.action_profile_member
            return ("member", m.action_profile_id, m.member_id)
        if which == "action_profile_group":
            g = msg.action_profile_group
            return ("group", g.action_profile_id, g.group_id)
        return ("entry", normalize(msg, self.schema).key)

    def _next_hops(self, action: p4r.Action) -> set[Hashable]:
        params = self.schema.actions[action.action_id].params
        return {
            ("next_hop", int.from_bytes(p.value, "big"))
            for p in action.params
            if params[p.param_id].name == NEXT_HOP_PARAM
        }

    def needs(self, msg: p4r.Entity) -> set[Hashable]:
        which = msg.WhichOneof("entity")
        if which == "action_profile_member":
            return self._next_hops(msg.action_profile_member.action)
        if which == "action_profile_group":
            g = msg.action_profile_group
            return {("member", g.action_profile_id, m.member_id) for m in g.members}
        te = msg.table_entry
        table = self.schema.tables[te.table_id]
        kind = te.action.WhichOneof("type")
        if kind == "action":
            return self._next_hops(te.action.action)
        if kind == "action_profile_member_id":
            return {("member", table.action_profile.id, te.action.action_profile_member_id)}
        if kind == "action_profile_group_id":
            return {("group", table.action_profile.id, te.action.action_profile_group_id)}
        if kind == "action_profile_action_set":
            out: set[Hashable] = set()
            for a in te.action.action_profile_action_set.action_profile_actions:
                out |= self._next_hops(a.action)
            return out
        return set()

    def apply(self, update: p4r.Update) -> None:
        msg = update.entity
        ident = self.ident(msg)
        if update.type == p4r.Update.DELETE:
            assert ident in self.state, f"delete of absent {ident}"
            users = [i for i, m in self.state.items() if i != ident and ident in self.needs(m)]
            assert not users, f"delete of {ident} while {users} use it"
            del self.state[ident]
            return
        missing = self.needs(msg) - self.state.keys()
        assert not missing, f"{ident} written before {missing} exist"
        if update.type == p4r.Update.INSERT:
            assert ident not in self.state, f"insert of existing {ident}"
        else:
            assert update.type == p4r.Update.MODIFY
            assert ident in self.state, f"modify of absent {ident}"
            assert normalize(self.state[ident], self.schema) != normalize(msg, self.schema), (
                f"modify of {ident} writes what it holds"
            )
        self.state[ident] = msg

    def write(self, batch: list[Any], rng: random.Random) -> None:
        """One WriteRequest: the switch may take its updates in any order."""
        updates = [u.encode_update(self.schema) for u in batch]
        rng.shuffle(updates)
        for update in updates:
            self.apply(update)

    def run(self, plan: Plan, rng: random.Random) -> None:
        for batch in plan.updates():
            self.write(batch, rng)

    def normalized(self) -> set[Normalized]:
        return {normalize(m, self.schema) for m in self.state.values()}


def assert_in_place_changes_come_first(plan: Plan) -> None:
    """A member or group modified in place is written in an earlier batch than every table
    entry that points at it after the plan, and a member that a group stops using is
    deleted in a later batch than the group's modify."""
    where: dict[Any, int] = {}
    for n, batch in enumerate(plan.batches):
        for change in batch.changes:
            where[(change.kind, change.entity.key)] = n
    for n, batch in enumerate(plan.batches):
        for change in batch.changes:
            if change.kind == "delete":
                continue
            for ref in change.entity.references():
                modified = where.get(("modify", ref))
                assert modified is None or modified < n, f"{change} before {ref} changed"
                inserted = where.get(("insert", ref))
                assert inserted is None or inserted < n, f"{change} before {ref} exists"
            if change.kind == "modify" and change.before is not None:
                dropped = change.before.references() - change.entity.references()
                for ref in dropped:
                    deleted = where.get(("delete", ref))
                    assert deleted is None or deleted > n, f"{ref} deleted before {change}"


def reconcile(
    desired: list[Any], actual: list[Any], schema: fy.P4Schema, rng: random.Random
) -> Plan:
    """Plan, check the plan on the model, and check that it reaches ``desired``."""
    plan = diff(desired, actual, schema)
    assert_in_place_changes_come_first(plan)
    model = SwitchModel(schema, actual)
    model.run(plan, rng)
    assert model.normalized() == {normalize(e, schema) for e in desired}
    again = diff(desired, list(model.state.values()), schema)
    assert not again, again.describe()
    return plan


# -- entities by hand --------------------------------------------------------------------------


def next_hop(nh: int, port: int | None = None, mac: int = 0x0200_0000_0001) -> Any:
    return fy.P4TableEntry(
        "next_hop",
        match=fy.P4TableMatch({"local_metadata.nexthop_id": nh}),
        action=fy.P4TableAction("rewrite", port=port or nh, src_mac=mac, dst_mac=mac + 0x100),
    )


def member(mid: int, nh: int) -> Any:
    return fy.P4ActionProfileMember(
        "ecmp_selector", member_id=mid, action=fy.P4TableAction("set_next_hop", nexthop_id=nh)
    )


def group(gid: int, *mids: int) -> Any:
    return fy.P4ActionProfileGroup(
        "ecmp_selector", group_id=gid, members=[fy.P4Member(m, weight=(1, m)) for m in mids]
    )


def route(prefix: str, *, member_id: int | None = None, group_id: int | None = None) -> Any:
    action = (
        fy.P4IndirectAction(member_id=member_id)
        if member_id is not None
        else fy.P4IndirectAction(group_id=group_id)
    )
    return fy.P4TableEntry("routing_v6", match=fy.P4TableMatch({DST: prefix}), action=action)


def ua(prefix: str, nh: int) -> Any:
    return fy.P4TableEntry(
        "my_sid",
        match=fy.P4TableMatch({DST: prefix}),
        action=fy.P4TableAction("usid_ua", nexthop_id=nh),
    )


def base() -> list[Any]:
    return [
        next_hop(1),
        next_hop(2),
        member(1, 1),
        member(2, 2),
        group(100, 1, 2),
        route("2001:db8:1::/64", group_id=100),
        route("2001:db8:2::/64", member_id=1),
        ua("fcbb:bb00:e001::/48", 1),
    ]


def wire(entity: Any, schema: fy.P4Schema) -> p4r.Entity:
    out = p4r.Entity()
    out.ParseFromString(entity.encode(schema).SerializeToString())
    return out


def kinds(plan: Plan) -> list[tuple[str, str, str]]:
    """(phase, kind, entity key) per change, in plan order."""
    return [(b.phase, c.kind, str(c.entity.key)) for b in plan.batches for c in b.changes]


def test_identical_sets_need_nothing(schema: fy.P4Schema) -> None:
    plan = diff(base(), base(), schema)
    assert not plan
    assert len(plan) == 0
    assert plan.updates() == []
    assert plan.describe() == "no changes\n"
    # the switch answers in its own encoding and order
    read_back = [wire(e, schema) for e in reversed(base())]
    for msg in read_back:
        if msg.HasField("table_entry"):
            msg.table_entry.counter_data.packet_count = 7
        if msg.HasField("action_profile_group"):
            msg.action_profile_group.members.reverse()
            for m in msg.action_profile_group.members:
                m.watch = int.from_bytes(m.watch_port, "big")
    assert not diff(base(), read_back, schema)
    assert not diff([], [], schema)


def test_inserts_modifies_and_deletes_are_found(schema: fy.P4Schema) -> None:
    desired = [
        next_hop(1, mac=0x0200_0000_0009),  # modify: new MAC
        next_hop(2),
        next_hop(3),  # insert
        member(1, 1),
        member(2, 2),
        member(3, 3),  # insert
        group(100, 1, 3),  # modify: 2 -> 3
        route("2001:db8:1::/64", group_id=100),
        route("2001:db8:2::/64", member_id=3),  # modify
        route("2001:db8:3::/64", member_id=2),  # insert
        # ua deleted
    ]
    plan = reconcile(desired, base(), schema, random.Random(1))
    assert plan.counts() == {
        ("ecmp_selector groups", "modify"): 1,
        ("ecmp_selector members", "insert"): 1,
        ("my_sid", "delete"): 1,
        ("next_hop", "insert"): 1,
        ("next_hop", "modify"): 1,
        ("routing_v6", "insert"): 1,
        ("routing_v6", "modify"): 1,
    }
    assert kinds(plan) == [
        ("make", "modify", "next_hop nexthop_id=1"),
        ("make", "insert", "next_hop nexthop_id=3"),
        ("make", "insert", "ecmp_selector member 0x3"),
        ("make", "modify", "ecmp_selector group 0x64"),
        ("move", "modify", "routing_v6 dst_addr=2001:db8:2::/64"),
        ("move", "insert", "routing_v6 dst_addr=2001:db8:3::/64"),
        ("break", "delete", "my_sid dst_addr=fcbb:bb00:e001::/48"),
    ]
    assert [(b.phase, b.stage) for b in plan.batches] == [
        ("make", "next_hop"),
        ("make", "ecmp_selector members"),
        ("make", "ecmp_selector groups"),
        ("move", "routing_v6"),
        ("break", "my_sid"),
    ]


def test_break_goes_in_reverse_dependency_order(schema: fy.P4Schema) -> None:
    """Everything of the base goes: entries, then the group, then members, then next hops."""
    plan = reconcile([], base(), schema, random.Random(2))
    assert [b.stage for b in plan.batches] == [
        "my_sid, routing_v6",
        "ecmp_selector groups",
        "ecmp_selector members",
        "next_hop",
    ]
    assert {b.phase for b in plan.batches} == {"break"}
    # and from nothing, the other way round
    plan = reconcile(base(), [], schema, random.Random(3))
    assert [b.stage for b in plan.batches] == [
        "next_hop",
        "ecmp_selector members",
        "ecmp_selector groups",
        "my_sid, routing_v6",
    ]


def test_a_member_modified_in_place_comes_before_its_new_users(schema: fy.P4Schema) -> None:
    """Member 2 moves to next hop 3 (new) and a route starts using it; member 1 leaves the
    group and is deleted only after the group's modify."""
    actual = base()
    desired = [
        next_hop(1),
        next_hop(2),
        next_hop(3),
        member(2, 3),
        group(100, 2),
        route("2001:db8:1::/64", group_id=100),
        route("2001:db8:2::/64", member_id=2),
        ua("fcbb:bb00:e001::/48", 1),
    ]
    plan = reconcile(desired, actual, schema, random.Random(4))
    assert kinds(plan) == [
        ("make", "insert", "next_hop nexthop_id=3"),
        ("make", "modify", "ecmp_selector member 0x2"),
        ("make", "modify", "ecmp_selector group 0x64"),
        ("move", "modify", "routing_v6 dst_addr=2001:db8:2::/64"),
        ("break", "delete", "ecmp_selector member 0x1"),
    ]


def test_a_route_moves_from_a_group_to_a_new_group(schema: fy.P4Schema) -> None:
    desired = [*base()[:4], group(200, 1, 2), route("2001:db8:1::/64", group_id=200)]
    desired += [base()[6], base()[7]]
    plan = reconcile(desired, base(), schema, random.Random(5))
    assert kinds(plan) == [
        ("make", "insert", "ecmp_selector group 0xc8"),
        ("move", "modify", "routing_v6 dst_addr=2001:db8:1::/64"),
        ("break", "delete", "ecmp_selector group 0x64"),
    ]


def test_updates_are_finsy_updates_and_fresh_on_every_call(schema: fy.P4Schema) -> None:
    plan = diff(base(), [], schema)
    first, second = plan.updates(), plan.updates()
    assert [len(b) for b in first] == [2, 2, 1, 3]
    for batch in first + second:
        for update in batch:
            assert update.encode_update(schema).type == p4r.Update.INSERT
    assert first[0][0] is not second[0][0]
    deletes = diff([], base(), schema).updates()
    assert {u.encode_update(schema).type for b in deletes for u in b} == {p4r.Update.DELETE}


def test_describe_counts_and_lists_every_change(schema: fy.P4Schema) -> None:
    desired = [*base()[:7], ua("fcbb:bb00:e001::/48", 2)]
    text = diff(desired, base(), schema).describe()
    assert text == (
        "1 change in 1 batch\n"
        "  my_sid  1 modify\n"
        "batch 1 (move: my_sid)\n"
        "  ~ my_sid dst_addr=fcbb:bb00:e001::/48: usid_ua(nexthop_id=1)"
        " -> usid_ua(nexthop_id=2)\n"
    )
    text = diff(base(), [], schema).describe()
    assert text.splitlines()[:6] == [
        "8 changes in 4 batches",
        "  ecmp_selector groups   1 insert",
        "  ecmp_selector members  2 insert",
        "  my_sid                 1 insert",
        "  next_hop               2 insert",
        "  routing_v6             2 insert",
    ]
    assert "  + routing_v6 dst_addr=2001:db8:1::/64: group 0x64" in text.splitlines()
    assert "  - ecmp_selector member 0x1: set_next_hop(nexthop_id=1)" in (
        diff([], base(), schema).describe().splitlines()
    )


def test_a_dangling_desired_state_is_refused(schema: fy.P4Schema) -> None:
    with pytest.raises(ReconcileError, match=r"routing_v6 .* names ecmp_selector member 0x9"):
        diff([route("2001:db8:9::/64", member_id=9)], [], schema)
    with pytest.raises(ReconcileError, match="names next_hop nexthop_id=7"):
        diff([ua("fcbb:bb00:e007::/48", 7)], [], schema)
    with pytest.raises(ReconcileError, match="twice with different values"):
        diff([next_hop(1), next_hop(1, port=5)], [], schema)
    # the same entity twice is fine
    assert len(diff([next_hop(1), next_hop(1)], [], schema)) == 1


def test_const_and_default_entries(schema: fy.P4Schema) -> None:
    """The switch's const entries and default entries are never deleted; a desired
    default entry is a modify."""
    const = wire(ua("fcbb:bb00:e001::/48", 1), schema)
    const.table_entry.is_const = True
    default = fy.P4TableEntry("my_sid", is_default_action=True, action=fy.P4TableAction("NoAction"))
    plan = diff([next_hop(1)], [next_hop(1), const, default], schema)
    assert not plan
    plan = diff([next_hop(1), default], [next_hop(1)], schema)
    assert kinds(plan) == [("move", "modify", "my_sid default")]


# -- random pairs from the compiler ------------------------------------------------------------


def topology(name: str) -> Topology:
    return load(ROOT / "topologies" / f"{name}.yaml")


def random_policies(topo: Topology, down: list[str], rng: random.Random) -> list[PolicySpec]:
    """A few headend policies over live paths: one or two weighted segment lists."""
    hosts = [h.name for h in topo.hosts]
    out: list[PolicySpec] = []
    seen: set[tuple[str, ipaddress.IPv6Network]] = set()
    for _ in range(rng.randint(0, 6)):
        src, dst = rng.sample(hosts, 2)
        ingress, egress = topo.host(src).nics[0].switch, topo.host(dst).nics[0].switch
        if ingress == egress:
            continue
        middles = sorted(
            set(topo.graph.neighbors(ingress))
            & set(topo.graph.neighbors(egress)) - {h.name for h in topo.hosts}
        )
        lists = []
        for via in rng.sample(middles, min(len(middles), rng.randint(1, 2))):
            encoding = rng.choice(list(Encoding))
            try:
                segs = segment_list(
                    topo, [src, ingress, via, egress, dst], encoding=encoding, down=down
                )
            except (SegmentError, CompileError, ValueError):
                continue  # through a down link, or not a path
            lists.append((segs, rng.randint(1, 3)))
        prefix = host_prefix(topo, dst)
        if lists and (ingress, prefix) not in seen:
            seen.add((ingress, prefix))
            out.append(PolicySpec(ingress, prefix, tuple(lists), reduced=rng.random() < 0.5))
    return out


def random_state(topo: Topology, rng: random.Random) -> dict[str, list[Any]]:
    down = rng.sample([link.name for link in topo.links], rng.randint(0, 3))
    return {
        name: entities(rules)
        for name, rules in compile_network(topo, down, random_policies(topo, down, rng)).items()
    }


def tamper(actual: list[Any], schema: fy.P4Schema, rng: random.Random) -> list[Any]:
    """What a switch might hold besides: lost table entries, next hops with other MACs,
    stray routes, members and groups, other weights; still consistent (a switch refuses
    dangling references), and read back in its own encoding and order."""
    state = [normalize(e, schema) for e in actual]
    members = [n for n in state if n.key.kind == "member" and n.key.table == "ecmp_selector"]
    next_hops = [n for n in state if n.key.table == "next_hop"]
    out: list[Any] = []
    for n in state:
        entity = n.to_finsy()
        if n.key.kind == "table_entry" and n.key.table != "next_hop" and rng.random() < 0.1:
            continue  # lost
        if n.key.table == "next_hop" and rng.random() < 0.2:
            entity = fy.P4TableEntry(
                "next_hop", match=entity.match, action=entity.action(dst_mac=rng.getrandbits(48))
            )
        if n.key.kind == "group" and rng.random() < 0.3:
            entity = fy.P4ActionProfileGroup(
                n.key.table,
                group_id=n.key.id,
                members=[fy.P4Member(m.member_id, weight=rng.randint(1, 4)) for m in n.members],
            )
        out.append(entity)
    for k in range(rng.randint(0, 3)):
        if next_hops:
            stray_member = 0x0FFF_0000 + k
            nh_id = rng.choice(next_hops).key.match[0][2][0]
            out.append(member(stray_member, nh_id))
            if members and rng.random() < 0.5:
                out.append(group(0x0FFF_0000 + k, stray_member, rng.choice(members).key.id))
            out.append(route(f"2001:db8:ff{k}::/64", member_id=stray_member))
    rng.shuffle(out)
    return [wire(e, schema) for e in out]


@pytest.mark.parametrize("name", ["line-3", "leaf-spine-2x4"])
def test_random_states_reconcile_on_the_model(name: str, schema: fy.P4Schema) -> None:
    topo = topology(name)
    rng = random.Random(f"reconcile:{name}")
    writes = 0
    for _ in range(25):
        before, after = random_state(topo, rng), random_state(topo, rng)
        for switch in topo.switches:
            desired = after[switch.name]
            actual = tamper(before[switch.name], schema, rng)
            plan = reconcile(desired, actual, schema, rng)
            writes += len(plan)
            # a switch already in the desired state needs nothing
            assert not diff(desired, [wire(e, schema) for e in desired], schema)
    assert writes > 0


def test_the_model_refuses_what_breaks_before_it_makes(schema: fy.P4Schema) -> None:
    """The checker has teeth: the same plan in the wrong order, or squeezed into one
    WriteRequest, fails on it."""
    desired = [
        next_hop(1),
        next_hop(3),
        member(1, 1),
        member(3, 3),
        group(200, 1, 3),
        route("2001:db8:1::/64", group_id=200),
        route("2001:db8:2::/64", member_id=3),
    ]
    plan = diff(desired, base(), schema)
    backwards = Plan(tuple(reversed(plan.batches)))
    with pytest.raises(AssertionError):
        SwitchModel(schema, base()).run(backwards, random.Random(6))
    failures = 0
    for seed in range(20):
        one_request = [u for batch in plan.updates() for u in batch]
        try:
            SwitchModel(schema, base()).write(one_request, random.Random(seed))
        except AssertionError:
            failures += 1
    assert failures > 0
    SwitchModel(schema, base()).run(plan, random.Random(7))  # in order: fine


def test_a_headend_policy_changes_its_lists_make_before_break(schema: fy.P4Schema) -> None:
    """leaf1 -> h5 over two lists: the weights change and one list is replaced. The new
    member comes first, the group moves to it, and the old member goes last; the
    srv6_headend entry keeps pointing at the same group and is not written."""
    topo = topology("leaf-spine-2x4")
    via1 = segment_list(topo, ["h1", "leaf1", "spine1", "leaf3", "h5"])
    via2 = segment_list(topo, ["h1", "leaf1", "spine2", "leaf3", "h5"])
    via2_full = segment_list(topo, ["h1", "leaf1", "spine2", "leaf3", "h5"], encoding=Encoding.FULL)
    prefix = host_prefix(topo, "h5")
    old = PolicySpec("leaf1", prefix, ((via1, 1), (via2, 3)))
    new = PolicySpec("leaf1", prefix, ((via1, 2), (via2_full, 1)))
    before = entities(compile_network(topo, [], [old])["leaf1"])
    after = entities(compile_network(topo, [], [new])["leaf1"])
    plan = reconcile(after, before, schema, random.Random(8))
    assert [(b.phase, b.stage, [c.kind for c in b.changes]) for b in plan.batches] == [
        ("make", "headend_selector members", ["insert"]),
        ("make", "headend_selector groups", ["modify"]),
        ("break", "headend_selector members", ["delete"]),
    ]
    # and back to a single list: the entry points at the member, the group goes after it
    single = PolicySpec("leaf1", prefix, ((via1, 1),))
    back = entities(compile_network(topo, [], [single])["leaf1"])
    plan = reconcile(back, after, schema, random.Random(9))
    assert [(b.phase, b.stage, [c.kind for c in b.changes]) for b in plan.batches] == [
        ("move", "srv6_headend", ["modify"]),
        ("break", "headend_selector groups", ["delete"]),
        ("break", "headend_selector members", ["delete"]),
    ]


def test_breaks_deferred_keeps_unused_members_and_groups_not_entries(
    schema: fy.P4Schema,
) -> None:
    """A fast reroute's state: route 1 leaves group 100 for member 2, route 2 is gone. The
    plan makes and moves as the one toward ``after`` does but deletes only the route (a
    table entry may forward); group 100 and member 1 stay until a plan toward ``after``
    itself, which then deletes them in make-before-break order."""
    before = base()
    after = [
        next_hop(1),
        next_hop(2),
        member(1, 1),
        member(2, 2),
        route("2001:db8:1::/64", member_id=2),
        ua("fcbb:bb00:e001::/48", 1),
    ]
    want = [normalize(e, schema) for e in after]
    held = [normalize(e, schema) for e in before]
    deferred = breaks_deferred(want, held)
    group_key = normalize(group(100, 1, 2), schema).key
    assert {n.key for n in deferred} - {n.key for n in want} == {group_key}
    plan = reconcile(deferred, before, schema, random.Random(11))
    assert kinds(plan) == [
        ("move", "modify", str(want[4].key)),
        ("break", "delete", str(normalize(route("2001:db8:2::/64", member_id=1), schema).key)),
    ]
    later = reconcile(after, [n.to_finsy() for n in deferred], schema, random.Random(12))
    assert kinds(later) == [("break", "delete", str(group_key))]


def test_breaks_deferred_takes_the_desired_form_of_a_key_both_hold(schema: fy.P4Schema) -> None:
    """A group the new state modifies is in its new form, not kept as it was; a kept
    member keeps the next hop it names (only a reference reaches either); the result is
    closed under references."""
    want = [normalize(e, schema) for e in [next_hop(1), member(1, 1), group(100, 1)]]
    assert breaks_deferred(want, want) == want
    deferred = breaks_deferred(want, [normalize(e, schema) for e in base()])
    by_key = {n.key: n for n in deferred}
    assert by_key[want[2].key] == want[2]  # group 100 with member 1 only
    assert normalize(member(2, 2), schema) in deferred  # unused, kept
    assert normalize(next_hop(2), schema) in deferred  # member 2 names it
    assert not any(n.key.table in ("routing_v6", "my_sid") for n in deferred)
    assert not diff(deferred, deferred, schema)  # closed: diff checks every reference
