"""Canonical entities: what a switch reads back normalises to what was written, through
real encodings (finsy against srv6.p4's P4Info, protobuf bytes), whatever byte form,
field order, member order, weight default or watch kind the switch answers with; and what
really differs stays different."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import finsy as fy
import pytest
from finsy.proto import p4i, p4r
from google.protobuf import text_format

from controller.compiler import (
    Encoding,
    PolicySpec,
    compile_network,
    entities,
    host_prefix,
    segment_list,
)
from controller.reconcile import (
    Action,
    ActionSet,
    EntityKey,
    GroupMember,
    GroupRef,
    MemberRef,
    NormalizeError,
    normalize,
)
from controller.topology import Topology, load

ROOT = Path(__file__).resolve().parents[2]
P4INFO = ROOT / "p4" / "build" / "srv6.p4info.txtpb"
DST = "hdr.ipv6.dst_addr"

# A table with every match kind (srv6.p4's tables have one field each).
ACL_P4INFO = """
tables {
  preamble { id: 1 name: "acl" alias: "acl" }
  match_fields { id: 1 name: "a_exact" bitwidth: 16 match_type: EXACT }
  match_fields { id: 2 name: "b_lpm" bitwidth: 32 match_type: LPM }
  match_fields { id: 3 name: "c_ternary" bitwidth: 8 match_type: TERNARY }
  match_fields { id: 4 name: "d_range" bitwidth: 16 match_type: RANGE }
  match_fields { id: 5 name: "e_optional" bitwidth: 12 match_type: OPTIONAL }
  action_refs { id: 10 }
  size: 16
}
actions {
  preamble { id: 10 name: "fwd" alias: "fwd" }
  params { id: 1 name: "port" bitwidth: 9 }
  params { id: 2 name: "tag" bitwidth: 12 }
}
"""


@pytest.fixture(scope="module")
def schema() -> fy.P4Schema:
    return fy.P4Schema(P4INFO)


@pytest.fixture(scope="module")
def acl() -> fy.P4Schema:
    return fy.P4Schema(text_format.Parse(ACL_P4INFO, p4i.P4Info()))


def topology(name: str) -> Topology:
    return load(ROOT / "topologies" / f"{name}.yaml")


def policies(topo: Topology) -> list[PolicySpec]:
    """Headend policies with one and with two weighted lists (a headend group), uSID and
    full-SID encodings."""
    if topo.name == "line-3":
        there = segment_list(topo, ["h1", "s1", "s2", "s3", "h2"])
        back = segment_list(topo, ["h2", "s3", "s2", "s1", "h1"], encoding=Encoding.FULL)
        return [
            PolicySpec("s1", host_prefix(topo, "h2"), ((there, 1),)),
            PolicySpec("s3", host_prefix(topo, "h1"), ((back, 1),), reduced=False),
        ]
    via1 = segment_list(topo, ["h1", "leaf1", "spine1", "leaf3", "h5"])
    via2 = segment_list(topo, ["h1", "leaf1", "spine2", "leaf3", "h5"], encoding=Encoding.FULL)
    return [PolicySpec("leaf1", host_prefix(topo, "h5"), ((via1, 1), (via2, 3)))]


CASES: dict[str, tuple[str, list[str]]] = {
    "line-3": ("line-3", []),
    "leaf-spine-2x4": ("leaf-spine-2x4", []),
    "leaf-spine-2x4-down": ("leaf-spine-2x4", ["leaf1-spine1", "h4-leaf2"]),
}


def compiled(case: str) -> list[Any]:
    """Every entity the compiler makes for the case, headend policies included."""
    name, down = CASES[case]
    topo = topology(name)
    network = compile_network(topo, down, policies(topo))
    return [e for rules in network.values() for e in entities(rules)]


def wire(entity: Any, schema: fy.P4Schema) -> p4r.Entity:
    """``entity`` encoded and read back from protobuf bytes."""
    out = p4r.Entity()
    out.ParseFromString(entity.encode(schema).SerializeToString())
    return out


def pad(data: bytes, rng: random.Random) -> bytes:
    """A longer, still valid bytestring for the same value (leading zero bytes)."""
    return b"\x00" * rng.randint(1, 3) + data


def uncanonical(msg: p4r.Entity, rng: random.Random) -> p4r.Entity:
    """The same entity as a sloppy switch might answer: padded bytestrings, LPM values with
    bits set past the prefix, match fields, parameters and members reordered, weight 1
    written as 0, watch_port as the deprecated watch, counter data and max_size filled."""
    out = p4r.Entity()
    out.CopyFrom(msg)
    which = out.WhichOneof("entity")
    if which == "table_entry":
        te = out.table_entry
        for fm in te.match:
            kind = fm.WhichOneof("field_match_type")
            if kind == "exact":
                fm.exact.value = pad(fm.exact.value, rng)
            elif kind == "lpm":
                width = 128
                host = (1 << (width - fm.lpm.prefix_len)) - 1
                value = int.from_bytes(fm.lpm.value, "big") | (rng.getrandbits(width) & host)
                fm.lpm.value = pad(value.to_bytes(16, "big"), rng)
        fields = list(te.match)
        rng.shuffle(fields)
        del te.match[:]
        te.match.extend(fields)
        if te.action.HasField("action"):
            _sloppy_params(te.action.action, rng)
        te.counter_data.packet_count = rng.randint(1, 1000)
        te.counter_data.byte_count = rng.randint(1000, 10**6)
    elif which == "action_profile_member":
        _sloppy_params(out.action_profile_member.action, rng)
    elif which == "action_profile_group":
        g = out.action_profile_group
        members = []
        for m in g.members:
            copy = p4r.ActionProfileGroup.Member()
            copy.CopyFrom(m)
            if copy.weight == 1:
                copy.weight = 0
            if copy.WhichOneof("watch_kind") == "watch_port":
                copy.watch = int.from_bytes(copy.watch_port, "big")
            members.append(copy)
        rng.shuffle(members)
        del g.members[:]
        g.members.extend(members)
        g.max_size = 64
    return out


def _sloppy_params(action: p4r.Action, rng: random.Random) -> None:
    params = list(action.params)
    for p in params:
        p.value = pad(p.value, rng)
    rng.shuffle(params)
    del action.params[:]
    action.params.extend(params)


@pytest.mark.parametrize("case", sorted(CASES))
def test_compiled_entities_survive_the_wire_in_any_form(case: str, schema: fy.P4Schema) -> None:
    rng = random.Random(case)
    for entity in compiled(case):
        written = normalize(entity, schema)
        msg = wire(entity, schema)
        assert normalize(msg, schema) == written
        sloppy = uncanonical(msg, rng)
        assert sloppy != msg
        assert normalize(sloppy, schema) == written, sloppy
        # back to finsy: the same entity, and it encodes against the P4Info
        again = written.to_finsy()
        assert normalize(again, schema) == written
        assert normalize(wire(again, schema), schema) == written


def test_finsy_read_back_normalises_like_the_written_entity(schema: fy.P4Schema) -> None:
    """What finsy's switch.read() hands back (decoded from canonical bytes)."""
    decoders: dict[str, Callable[[p4r.Entity, fy.P4Schema], Any]] = {
        "table_entry": fy.P4TableEntry.decode,
        "action_profile_member": fy.P4ActionProfileMember.decode,
        "action_profile_group": fy.P4ActionProfileGroup.decode,
    }
    for entity in compiled("leaf-spine-2x4"):
        msg = wire(entity, schema)
        read = decoders[msg.WhichOneof("entity")](msg, schema)
        assert normalize(read, schema) == normalize(entity, schema)


def test_shortest_byte_form_is_the_same_value(schema: fy.P4Schema) -> None:
    entry = fy.P4TableEntry(
        "next_hop",
        match=fy.P4TableMatch({"local_metadata.nexthop_id": 1}),
        action=fy.P4TableAction("rewrite", port=1, src_mac="02:00:00:00:00:01", dst_mac=2),
    )
    msg = wire(entry, schema)
    assert msg.table_entry.match[0].exact.value == b"\x01"  # finsy writes the shortest form
    padded = p4r.Entity()
    padded.CopyFrom(msg)
    padded.table_entry.match[0].exact.value = b"\x00\x01"
    padded.table_entry.action.action.params[0].value = b"\x00\x01"
    assert normalize(padded, schema) == normalize(entry, schema)
    n = normalize(entry, schema)
    assert n.key == EntityKey(
        "table_entry", "next_hop", (("local_metadata.nexthop_id", "exact", (1,)),)
    )
    assert n.action == Action("rewrite", (("dst_mac", 2), ("port", 1), ("src_mac", 0x020000000001)))


def test_lpm_values_are_masked(schema: fy.P4Schema) -> None:
    route = fy.P4TableEntry(
        "routing_v6",
        match=fy.P4TableMatch({DST: "2001:db8:1::/64"}),
        action=fy.P4IndirectAction(member_id=1),
    )
    msg = wire(route, schema)
    msg.table_entry.match[0].lpm.value = bytes.fromhex("20010db8000100000000000000000001")
    read = fy.P4TableEntry.decode(msg, schema)
    assert read != route  # finsy keeps the bits past the prefix: compared as is, a change
    n = normalize(msg, schema)
    assert n == normalize(route, schema) == normalize(read, schema)
    assert n.key.match == ((DST, "lpm", (0x20010DB8000100000000000000000000, 64)),)
    assert n.action == MemberRef(1)
    assert n.profile == "ecmp_selector"
    # the prefix length is part of the key
    longer = fy.P4TableEntry(
        "routing_v6", match=fy.P4TableMatch({DST: "2001:db8:1::/65"}), action=route.action
    )
    assert normalize(longer, schema).key != n.key


def test_every_match_kind(acl: fy.P4Schema) -> None:
    entry = fy.P4TableEntry(
        "acl",
        match=fy.P4TableMatch(
            a_exact=5, b_lpm="10.1.0.0/16", c_ternary=(0x12, 0xF0), d_range=(10, 20), e_optional=7
        ),
        action=fy.P4TableAction("fwd", port=3, tag=9),
        priority=10,
    )
    n = normalize(entry, acl)
    assert n.key.match == (
        ("a_exact", "exact", (5,)),
        ("b_lpm", "lpm", (0x0A010000, 16)),
        ("c_ternary", "ternary", (0x10, 0xF0)),
        ("d_range", "range", (10, 20)),
        ("e_optional", "optional", (7,)),
    )
    assert n.key.priority == 10
    # reordered fields, padded values, unmasked LPM and ternary values: the same entry
    msg = wire(entry, acl)
    fields = list(reversed(msg.table_entry.match))
    for fm in fields:
        kind = fm.WhichOneof("field_match_type")
        if kind == "lpm":
            fm.lpm.value = b"\x00\x0a\x01\xff\x01"
        elif kind == "ternary":
            fm.ternary.value = b"\x00\x1f"
    del msg.table_entry.match[:]
    msg.table_entry.match.extend(fields)
    assert normalize(msg, acl) == n
    assert normalize(n.to_finsy(), acl) == n
    # "don't care" matches are dropped, whether written or left out
    wide = fy.P4TableEntry(
        "acl",
        match=fy.P4TableMatch(a_exact=5),
        action=fy.P4TableAction("fwd", port=3, tag=9),
        priority=10,
    )
    msg = wire(wide, acl)
    msg.table_entry.match.add(field_id=2, lpm=p4r.FieldMatch.LPM(value=b"\x00", prefix_len=0))
    msg.table_entry.match.add(
        field_id=3, ternary=p4r.FieldMatch.Ternary(value=b"\x00", mask=b"\x00")
    )
    msg.table_entry.match.add(field_id=4, range=p4r.FieldMatch.Range(low=b"\x00", high=b"\xff\xff"))
    assert normalize(msg, acl) == normalize(wide, acl)
    # priority is part of the key
    assert normalize(msg, acl).key != normalize(n.to_finsy(), acl).key


def test_group_members_in_any_order_weight_zero_and_watch(schema: fy.P4Schema) -> None:
    group = fy.P4ActionProfileGroup(
        "ecmp_selector",
        group_id=7,
        members=[
            fy.P4Member(2, weight=(1, 2)),
            fy.P4Member(1, weight=(1, 1)),
            fy.P4Member(3, weight=2),
        ],
    )
    n = normalize(group, schema)
    assert n.members == (GroupMember(1, 1, 1), GroupMember(2, 1, 2), GroupMember(3, 2, None))
    msg = wire(group, schema)
    g = msg.action_profile_group
    g.members[0].watch = 2  # the deprecated int32 kind
    g.members[1].weight = 0  # 0 means 1
    g.members.reverse()
    g.max_size = 16  # not compared
    with pytest.raises(ValueError):
        fy.P4ActionProfileGroup.decode(msg, schema)  # finsy refuses "watch"
    assert normalize(msg, schema) == n
    # no watch port: watch 0, or an empty watch_port (switchd answers that)
    for member in (
        p4r.ActionProfileGroup.Member(member_id=3, weight=2, watch=0),
        p4r.ActionProfileGroup.Member(member_id=3, weight=2, watch_port=b""),
    ):
        del g.members[:]
        g.members.extend(
            [
                p4r.ActionProfileGroup.Member(member_id=1, weight=1, watch_port=b"\x00\x01"),
                p4r.ActionProfileGroup.Member(member_id=2, weight=1, watch_port=b"\x02"),
                member,
            ]
        )
        assert normalize(msg, schema) == n


def test_counters_meters_and_timers_are_left_out(schema: fy.P4Schema) -> None:
    sid = fy.P4TableEntry(
        "my_sid",
        match=fy.P4TableMatch({DST: "fcbb:bb00:1::/48"}),
        action=fy.P4TableAction("usid_un"),
    )
    read = fy.P4TableEntry(
        "my_sid",
        match=fy.P4TableMatch({DST: "fcbb:bb00:1::/48"}),
        action=fy.P4TableAction("usid_un"),
        counter_data=fy.P4CounterData(byte_count=1500, packet_count=3),
        meter_config=fy.P4MeterConfig(cir=1, cburst=2, pir=3, pburst=4),
        idle_timeout_ns=5,
        time_since_last_hit=6,
    )
    assert normalize(read, schema) == normalize(sid, schema)
    assert hash(normalize(read, schema)) == hash(normalize(sid, schema))


def test_real_differences_stay_different(schema: fy.P4Schema) -> None:
    def nh(**changes: Any) -> Any:
        args = {"port": 1, "src_mac": 1, "dst_mac": 2} | changes
        return fy.P4TableEntry(
            "next_hop",
            match=fy.P4TableMatch({"local_metadata.nexthop_id": 1}),
            action=fy.P4TableAction("rewrite", **args),
        )

    base = normalize(nh(), schema)
    other = normalize(nh(port=2), schema)
    assert base.key == other.key
    assert base != other
    cookie = normalize(nh(), schema)
    with_cookie = fy.P4TableEntry(
        "next_hop",
        match=fy.P4TableMatch({"local_metadata.nexthop_id": 1}),
        action=fy.P4TableAction("rewrite", port=1, src_mac=1, dst_mac=2),
        metadata=b"srv6lab",
    )
    assert normalize(with_cookie, schema) != cookie

    def group(*members: Any) -> Any:
        return normalize(
            fy.P4ActionProfileGroup("ecmp_selector", group_id=1, members=list(members)), schema
        )

    assert group(fy.P4Member(1, weight=1)) != group(fy.P4Member(1, weight=2))
    assert group(fy.P4Member(1, weight=1)) != group(fy.P4Member(1, weight=(1, 1)))
    assert group(fy.P4Member(1, weight=(1, 1))) != group(fy.P4Member(1, weight=(1, 2)))
    assert group(fy.P4Member(1, weight=1)) != group(
        fy.P4Member(1, weight=1), fy.P4Member(2, weight=1)
    )
    member = fy.P4ActionProfileMember(
        "ecmp_selector", member_id=1, action=fy.P4TableAction("set_next_hop", nexthop_id=1)
    )
    moved = fy.P4ActionProfileMember(
        "ecmp_selector", member_id=1, action=fy.P4TableAction("set_next_hop", nexthop_id=2)
    )
    assert normalize(member, schema) != normalize(moved, schema)
    other_profile = fy.P4ActionProfileMember(
        "headend_selector", member_id=1, action=fy.P4TableAction("set_next_hop", nexthop_id=1)
    )
    assert normalize(member, schema).key != normalize(other_profile, schema).key
    route = fy.P4TableEntry("routing_v6", match=fy.P4TableMatch({DST: "2001:db8::/64"}))
    to_member = normalize(route, schema)
    assert to_member.action is None
    to_group = fy.P4TableEntry(
        "routing_v6",
        match=fy.P4TableMatch({DST: "2001:db8::/64"}),
        action=fy.P4IndirectAction(group_id=1),
    )
    assert normalize(to_group, schema).action == GroupRef(1)


def test_a_direct_action_on_an_indirect_table_is_a_one_shot_set(schema: fy.P4Schema) -> None:
    entry = fy.P4TableEntry(
        "routing_v6",
        match=fy.P4TableMatch({DST: "2001:db8::/64"}),
        action=fy.P4TableAction("set_next_hop", nexthop_id=3),
    )
    n = normalize(entry, schema)
    assert n.action == ActionSet((_weighted("set_next_hop", nexthop_id=3),))
    assert normalize(n.to_finsy(), schema) == n
    assert normalize(wire(n.to_finsy(), schema), schema) == n


def _weighted(name: str, **params: int) -> Any:
    from controller.reconcile import WeightedAction

    return WeightedAction(Action(name, tuple(sorted(params.items()))), 1, None)


def test_bad_entities_are_refused_naming_the_part(schema: fy.P4Schema) -> None:
    entry = fy.P4TableEntry(
        "next_hop",
        match=fy.P4TableMatch({"local_metadata.nexthop_id": 1}),
        action=fy.P4TableAction("rewrite", port=1, src_mac=1, dst_mac=2),
    )
    msg = wire(entry, schema)
    msg.table_entry.action.action.params[0].value = b"\x02\x00"  # 512 does not fit 9 bits
    with pytest.raises(NormalizeError, match="rewrite port"):
        normalize(msg, schema)
    msg = wire(entry, schema)
    msg.table_entry.match[0].exact.value = b""
    with pytest.raises(NormalizeError, match="nexthop_id: empty"):
        normalize(msg, schema)
    group = wire(
        fy.P4ActionProfileGroup("ecmp_selector", group_id=1, members=[fy.P4Member(1, weight=1)]),
        schema,
    )
    group.action_profile_group.members.add(member_id=1, weight=2)
    with pytest.raises(NormalizeError, match="listed twice"):
        normalize(group, schema)
    with pytest.raises(NormalizeError, match="counter_entry"):
        normalize(p4r.Entity(counter_entry=p4r.CounterEntry(counter_id=1)), schema)
    with pytest.raises(NormalizeError, match="table id"):
        normalize(p4r.Entity(table_entry=p4r.TableEntry(table_id=12345)), schema)


def test_keys_and_values_read_well(schema: fy.P4Schema) -> None:
    entry = fy.P4TableEntry(
        "next_hop",
        match=fy.P4TableMatch({"local_metadata.nexthop_id": 3}),
        action=fy.P4TableAction(
            "rewrite", port=3, src_mac="02:53:02:01:00:03", dst_mac="02:53:01:01:00:01"
        ),
    )
    assert str(normalize(entry, schema)) == (
        "next_hop nexthop_id=3: rewrite(dst_mac=02:53:01:01:00:01, port=3,"
        " src_mac=02:53:02:01:00:03)"
    )
    route = fy.P4TableEntry(
        "routing_v6",
        match=fy.P4TableMatch({DST: "fcbb:bb00:101::/48"}),
        action=fy.P4IndirectAction(group_id=0x10),
    )
    assert str(normalize(route, schema)) == "routing_v6 dst_addr=fcbb:bb00:101::/48: group 0x10"
    group = fy.P4ActionProfileGroup(
        "ecmp_selector", group_id=0x10, members=[fy.P4Member(3, weight=(1, 3))]
    )
    assert str(normalize(group, schema)) == "ecmp_selector group 0x10: members 0x3 w1 watch 3"
