"""switchd's mapping of srv6.p4 records to kernel objects (pure; no kernel needed)."""

from __future__ import annotations

import ipaddress

from switchd.dataplane import Change, ChangeKind
from switchd.kernel.render import (
    ECMP_GROUP_BASE,
    MEMBER_BASE,
    KKey,
    KObj,
    Ports,
    RKey,
    dependencies,
    kernel_key,
    nexthop_of_neighbour,
    render,
    synthetic_neighbour,
)
from switchd.kernel.state import (
    EcmpMember,
    Group,
    GroupMember,
    MySid,
    NextHop,
    Prefix,
    Record,
    Route,
    SegmentList,
    record_key,
)
from switchd.p4rt.validate import Validated

PORTS = Ports({1: "s1-eth1", 2: "s1-eth2"}, frozenset({1, 2}))
MAC = bytes.fromhex("025300020001")


def render_all(records: list[Record], ports: Ports = PORTS) -> dict[KKey, KObj]:
    by_key: dict[RKey, Record] = {record_key(r): r for r in records}
    objects: dict[KKey, KObj] = {}
    for record in records:  # callers list dependencies first
        obj = render(record, objects, by_key, ports, 222)
        if obj is not None:
            objects[obj.key] = obj
    return objects


def test_synthetic_neighbour_round_trips() -> None:
    for n in (1, 0xFFFF, 0x12345):
        assert nexthop_of_neighbour(str(synthetic_neighbour(n))) == n
    assert nexthop_of_neighbour("fe80::53:1:2") is None


def test_next_hop_is_a_permanent_neighbour_and_a_nexthop_object() -> None:
    objs = render_all([NextHop(7, 2, MAC, MAC)])
    assert objs[("nh", 7)].add == (
        "neigh replace fe80::5d:0:7 lladdr 02:53:00:02:00:01 dev s1-eth2 nud permanent",
        "nexthop replace id 7 via fe80::5d:0:7 dev s1-eth2 proto 222",
    )


def test_ecmp_group_and_route() -> None:
    records: list[Record] = [
        NextHop(1, 1, MAC, MAC),
        NextHop(2, 2, MAC, MAC),
        EcmpMember(10, 1),
        EcmpMember(11, 2),
        Group("ecmp_selector", 5, (GroupMember(10, 1, 1), GroupMember(11, 3, 2))),
        Route("routing_v6", Prefix.parse("2001:db8:2::/64"), None, 5),
    ]
    objs = render_all(records)
    g = ECMP_GROUP_BASE + 5
    assert objs[("nh", g)].add == (
        f"nexthop replace id {g} group {MEMBER_BASE + 10}/{MEMBER_BASE + 11},3 proto 222",
    )
    route = objs[("route", 254, Prefix.parse("2001:db8:2::/64"))]
    # every group in full (cheaper to make); ip reads it as 2001:db8:2::/64
    full = "2001:0db8:0002:0000:0000:0000:0000:0000/64"
    assert route.add == (f"route replace {full} nhid {g} table 254 proto 222",)
    assert route.delete == (f"route del {full} table 254 proto 222",)


def test_a_dead_port_removes_its_members_and_keeps_the_group() -> None:
    records: list[Record] = [
        NextHop(1, 1, MAC, MAC),
        NextHop(2, 2, MAC, MAC),
        EcmpMember(10, 1),
        EcmpMember(11, 2),
        Group("ecmp_selector", 5, (GroupMember(10, 1, 1), GroupMember(11, 1, 2))),
    ]
    objs = render_all(records, Ports(PORTS.names, frozenset({2})))
    assert ("nh", 1) not in objs
    assert ("nh", MEMBER_BASE + 10) not in objs
    assert objs[("nh", ECMP_GROUP_BASE + 5)].add[0].endswith(f"group {MEMBER_BASE + 11} proto 222")
    # With no port up, the group and anything routed through it are absent: dropped.
    objs = render_all(
        [*records, Route("routing_v6", Prefix(0, 0), None, 5)],
        Ports(PORTS.names, frozenset()),
    )
    assert not any(k[0] == "route" for k in objs)


def test_headend_segment_lists_and_my_sid_behaviours() -> None:
    seg = SegmentList(
        3,
        True,
        ipaddress.IPv6Address("fcbb:bb00:1::1"),
        (ipaddress.IPv6Address("fcbb:bb00:2::"), ipaddress.IPv6Address("fcbb:bb00:3::")),
    )
    objs = render_all(
        [
            NextHop(1, 1, MAC, MAC),
            seg,
            MySid(Prefix.parse("fcbb:bb00:1::/48"), "usid_un", None),
            MySid(Prefix.parse("fcbb:bb00:e001::/48"), "usid_ua", 1),
            MySid(Prefix.parse("fcbb:bb00:1:fe00::/64"), "end_dt6", None),
        ]
    )
    assert (
        "encap seg6 mode encap.red segs fcbb:bb00:2::,fcbb:bb00:3:: dev srv6sid0"
        in (objs[("nh", 0x3000_0003)].add[0])
    )
    un = objs[("route", 200, Prefix.parse("fcbb:bb00:1::/48"))].add[0]
    assert "seg6local action End flavors next-csid lblen 32 nflen 16 count" in un
    ua = objs[("route", 200, Prefix.parse("fcbb:bb00:e001::/48"))].add[0]
    assert "action End.X nh6 fe80::5d:0:1 oif s1-eth1 flavors next-csid" in ua
    dt6 = objs[("route", 200, Prefix.parse("fcbb:bb00:1:fe00::/64"))].add[0]
    assert "action End.DT6 table 254 count" in dt6


def test_dependencies_and_kernel_keys() -> None:
    route = Route("srv6_headend", Prefix.parse("2001:db8:9::/64"), 4, None)
    assert dependencies(route) == (("member", "headend_selector", 4),)
    assert kernel_key(dependencies(route)[0]) == ("nh", 0x3000_0004)
    assert kernel_key(record_key(route)) == ("route", 201, route.prefix)


def test_a_route_read_from_the_servers_key_is_the_decoded_entity() -> None:
    """The data plane reads routes from the key and refs validation worked out (no second
    parse of the protobuf): the same record as decoding the entity, /0 included."""
    from finsy import pbutil
    from finsy.proto import p4i, p4r

    from switchd.kernel.schema import Schema
    from switchd.kernel.state import decode, route_of_change
    from switchd.p4rt.pipeline import DEFAULT_P4INFO_PATH
    from switchd.p4rt.store import EntityStore
    from switchd.p4rt.validate import P4InfoIndex, Validator

    info = pbutil.from_text(DEFAULT_P4INFO_PATH.read_text(), p4i.P4Info)
    schema = Schema.from_p4info(info)
    index = P4InfoIndex(info)
    store = EntityStore(index)
    validator = Validator(index, store)

    def insert(entity: p4r.Entity) -> Change:
        v = validator.update(p4r.Update(type=p4r.Update.INSERT, entity=entity))
        assert isinstance(v, Validated)
        store.commit(v.key, v.change, v.refs)
        return v.change

    param = schema.param_id[("set_next_hop", "nexthop_id")]
    ecmp = schema.profile_id["ecmp_selector"]
    insert(
        p4r.Entity(
            action_profile_member=p4r.ActionProfileMember(
                action_profile_id=ecmp,
                member_id=4,
                action=p4r.Action(
                    action_id=schema.action_id["set_next_hop"],
                    params=[p4r.Action.Param(param_id=param, value=b"\x01")],
                ),
            )
        )
    )
    members = [p4r.ActionProfileGroup.Member(member_id=4, weight=1)]
    group = p4r.ActionProfileGroup(action_profile_id=ecmp, group_id=7, members=members)
    insert(p4r.Entity(action_profile_group=group))
    for prefix, action in (
        ("2001:db8:9::/64", p4r.TableAction(action_profile_member_id=4)),
        ("::/0", p4r.TableAction(action_profile_group_id=7)),
    ):
        net = Prefix.parse(prefix)
        match = []
        if net.length:
            lpm = p4r.FieldMatch.LPM(value=net.value.to_bytes(16, "big"), prefix_len=net.length)
            match = [p4r.FieldMatch(field_id=schema.dst_field_id["routing_v6"], lpm=lpm)]
        entry = p4r.TableEntry(table_id=schema.table_id["routing_v6"], match=match, action=action)
        entity = p4r.Entity(table_entry=entry)
        record = decode(schema, entity)
        assert isinstance(record, Route)
        assert route_of_change(schema, insert(entity)) == (record_key(record), record)
        assert record.prefix == net


def test_a_key_route_of_change_cannot_read_is_decoded_instead() -> None:
    """Keys that are not one LPM field's (or that a caller made up) give None: the data
    plane then decodes the entity, as before the fast path."""
    from finsy import pbutil
    from finsy.proto import p4i

    from switchd.dataplane import ChangeKind
    from switchd.kernel.schema import Schema
    from switchd.kernel.state import route_of_change
    from switchd.p4rt.pipeline import DEFAULT_P4INFO_PATH

    schema = Schema.from_p4info(pbutil.from_text(DEFAULT_P4INFO_PATH.read_text(), p4i.P4Info))
    table = schema.table_id["routing_v6"]
    head = schema.dst_field_id["routing_v6"].to_bytes(4, "big")
    value = b"\x20" + bytes(15)  # 2000::, the shortest bytes of the 128-bit value
    good = head + b"\x00\x10" + value + b"\x00\x08" + b"\x00\x00\x00\x00"
    for key in (
        None,
        ("member", 1, 1),
        ("default", table, b""),
        ("table", schema.table_id["my_sid"], good),
        ("table", table, b"\x00" * 5),
        ("table", table, good[:-1]),
        ("table", table, b"\x00\x00\x00\x09" + good[4:]),
    ):
        change = Change(ChangeKind.DELETE, None, None, key, ())
        assert route_of_change(schema, change) is None, key
    change = Change(ChangeKind.DELETE, None, None, ("table", table, good), ())
    assert route_of_change(schema, change) == (
        ("route", "routing_v6", Prefix(0x20 << 120, 8)),
        None,
    )


def test_routes_validated_from_the_wire_as_the_general_path_validates_them() -> None:
    """Validation reads a plain route from its wire form (one serialization instead of
    twenty-odd field reads). Over many entries, canonical and not, with every extra field
    set in turn: whatever it accepts, the general path accepts with the same key, refs and
    stored entity; what it refuses or raises, the general path refuses with the same code."""
    import dataclasses
    import random

    from finsy import pbutil
    from finsy.proto import p4i, p4r

    from switchd.p4rt.errors import P4RuntimeError
    from switchd.p4rt.pipeline import DEFAULT_P4INFO_PATH
    from switchd.p4rt.store import EntityStore
    from switchd.p4rt.validate import P4InfoIndex, Validator, _parse_plain

    info = pbutil.from_text(DEFAULT_P4INFO_PATH.read_text(), p4i.P4Info)
    index = P4InfoIndex(info)
    routing = next(t for t in index.tables.values() if t.name.endswith("routing_v6"))
    assert routing.plain is not None
    general = P4InfoIndex(info)
    general.tables = {t: dataclasses.replace(i, plain=None) for t, i in general.tables.items()}
    store = EntityStore(index)
    fast_v, slow_v = Validator(index, store), Validator(general, store)
    ecmp = routing.plain.profile_id
    action = next(a for a in index.actions.values() if a.name.endswith("set_next_hop"))
    for member in (1, 300):
        m = p4r.ActionProfileMember(
            action_profile_id=ecmp,
            member_id=member,
            action=p4r.Action(
                action_id=action.id, params=[p4r.Action.Param(param_id=1, value=b"\x01")]
            ),
        )
        v = fast_v.update(
            p4r.Update(type=p4r.Update.INSERT, entity=p4r.Entity(action_profile_member=m))
        )
        assert isinstance(v, Validated)
        store.commit(v.key, v.change, v.refs)
    group = p4r.ActionProfileGroup(
        action_profile_id=ecmp,
        group_id=7,
        members=[p4r.ActionProfileGroup.Member(member_id=1, weight=1)],
    )
    v = fast_v.update(
        p4r.Update(type=p4r.Update.INSERT, entity=p4r.Entity(action_profile_group=group))
    )
    assert isinstance(v, Validated)
    store.commit(v.key, v.change, v.refs)

    rng = random.Random(3)
    extras = [
        lambda te: setattr(te, "priority", 1),
        lambda te: setattr(te, "is_const", True),
        lambda te: setattr(te, "is_default_action", True),
        lambda te: setattr(te, "metadata", b"m"),
        lambda te: setattr(te, "controller_metadata", 1),
        lambda te: setattr(te, "idle_timeout_ns", 5),
        lambda te: te.counter_data.SetInParent(),
        lambda te: te.meter_config.SetInParent(),
        lambda te: te.time_since_last_hit.SetInParent(),
        lambda te: te.match.add(field_id=1).lpm.SetInParent(),
        lambda te: setattr(te.match[0], "field_id", 2),
        lambda te: te.match[0].exact.SetInParent(),
    ]
    fast_seen = 0
    for n in range(3000):
        plen = rng.choice([0, 1, 7, 8, 48, 64, 127, 128, 129, rng.randrange(0, 140)])
        net = rng.getrandbits(128) & (((1 << plen) - 1) << (128 - plen)) if plen <= 128 else 1
        if rng.random() < 0.1:
            net |= 1  # a bit beyond the prefix
        value = net.to_bytes(16, "big").lstrip(b"\x00") or b"\x00"
        if rng.random() < 0.1:
            value = b"\x00" + value  # not the shortest form
        if rng.random() < 0.05:
            value = b"\x01" + bytes(16)  # 136 bits
        te = p4r.TableEntry(table_id=routing.id)
        te.match.add(field_id=1, lpm=p4r.FieldMatch.LPM(value=value, prefix_len=plen))
        kind = rng.choice(["member", "member", "group", "none", "action"])
        ident = rng.choice([0, 1, 7, 300, 5, 1 << 20])
        if kind == "member":
            te.action.action_profile_member_id = ident
        elif kind == "group":
            te.action.action_profile_group_id = ident
        elif kind == "action":
            te.action.action.action_id = action.id
        if rng.random() < 0.2:
            rng.choice(extras)(te)
        utype = rng.choice([p4r.Update.INSERT, p4r.Update.INSERT, p4r.Update.MODIFY])
        update = p4r.Update(type=utype, entity=p4r.Entity(table_entry=te))
        results = []
        for validator in (fast_v, slow_v):
            try:
                v = validator.update(update)
                assert isinstance(v, Validated)
                results.append((v.key, v.refs, v.change.kind, v.change.after))
            except P4RuntimeError as exc:
                results.append(exc.code)
        assert results[0] == results[1], (n, te, results)
        if _parse_plain(routing.plain, te.SerializeToString()) is not None:
            fast_seen += 1
            if isinstance(results[0], tuple) and rng.random() < 0.5:
                key, refs, _, after = results[0]
                store.commit(key, Change(ChangeKind.INSERT, None, after, key, refs))
    assert fast_seen > 500
