"""Write: per-update p4.v1.Error details in order, ALREADY_EXISTS / NOT_FOUND, validation of
ids, widths and values against the P4Info (every match kind), default entries, action profile
members and groups and their references, data plane failures, batch dependencies."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from finsy.proto import p4r

from switchd.dataplane import ChangeKind, DataplaneError

OK, INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, ABORTED = 0, 3, 5, 6, 10
PERMISSION_DENIED, RESOURCE_EXHAUSTED, FAILED_PRECONDITION = 7, 8, 9
UNIMPLEMENTED, INTERNAL = 12, 13

ALL_ENTRIES = p4r.Entity(table_entry=p4r.TableEntry())


async def ready(p4rt: Any, sw: Any) -> None:
    await sw.primary(10)
    await sw.set_pipeline()


def test_insert_modify_delete_and_per_update_errors(p4rt: Any) -> None:
    async def scenario() -> None:
        async with p4rt.switchd() as sw:
            await ready(p4rt, sw)
            b = sw.build
            nh1, nh2 = b.next_hop(1, 1), b.next_hop(2, 2)
            assert await sw.write_codes([p4rt.insert(nh1), p4rt.insert(nh2)]) == [OK, OK]
            missing = b.next_hop(9, 1)
            codes = await sw.write_codes(
                [
                    p4rt.insert(nh1),  # exists
                    p4rt.modify(b.next_hop(2, 3)),  # fine
                    p4rt.modify(missing),
                    p4rt.delete(missing),
                    p4rt.delete(nh1),  # fine
                ]
            )
            assert codes == [ALREADY_EXISTS, OK, NOT_FOUND, NOT_FOUND, OK]
            entries = await sw.read(ALL_ENTRIES)
            assert len(entries) == 1
            port = entries[0].table_entry.action.action.params[0].value
            assert port == b"\x03"

    p4rt.run(scenario())


def test_the_status_is_unknown_with_one_error_per_update(p4rt: Any) -> None:
    from finsy.p4client import P4ClientError

    async def scenario() -> None:
        async with p4rt.switchd() as sw:
            await ready(p4rt, sw)
            nh = sw.build.next_hop(1, 1)
            await sw.write([p4rt.insert(nh)])
            request = p4r.WriteRequest(
                device_id=1,
                election_id=p4r.Uint128(low=10),
                updates=[p4rt.insert(sw.build.next_hop(2, 2)), p4rt.insert(nh)],
            )
            try:
                await sw.stub.Write(request)
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.UNKNOWN
                details = p4rt.status_details(exc)
                assert [d.canonical_code for d in details] == [OK, ALREADY_EXISTS]
                assert details[0].message == ""
                assert "already exists" in details[1].message
                # finsy reads the same details.
                error = P4ClientError(exc, "Write", msg=request)
                assert set(error.details) == {1}
                assert error.details[1].canonical_code.name == "ALREADY_EXISTS"
            else:
                raise AssertionError("the write did not fail")

    p4rt.run(scenario())


def test_rpc_level_checks(p4rt: Any) -> None:
    async def scenario() -> None:
        async with p4rt.switchd() as sw:
            await ready(p4rt, sw)
            update = p4rt.insert(sw.build.next_hop(1, 1))
            for kwargs, code in (
                ({"device_id": 2}, grpc.StatusCode.NOT_FOUND),
                ({"atomicity": p4r.WriteRequest.DATAPLANE_ATOMIC}, grpc.StatusCode.UNIMPLEMENTED),
            ):
                try:
                    await sw.write([update], **kwargs)
                except p4rt.WriteFailed as exc:
                    assert exc.code == code, (kwargs, exc)
                    assert exc.details == []
                else:
                    raise AssertionError(f"{kwargs} was accepted")
            request = p4r.WriteRequest(
                device_id=1, election_id=p4r.Uint128(low=10), role="other", updates=[update]
            )
            try:
                await sw.stub.Write(request)
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.NOT_FOUND
            else:
                raise AssertionError("a write for an unknown role was accepted")
            assert await sw.read(ALL_ENTRIES) == []
            await sw.write([])  # an empty batch is fine

    p4rt.run(scenario())


def test_values_are_checked_against_bitwidths_and_stored_canonical(p4rt: Any) -> None:
    async def scenario() -> None:
        async with p4rt.switchd() as sw:
            await ready(p4rt, sw)
            b, n = sw.build, sw.names

            def nh(nid: bytes, port: bytes, mac: bytes = b"\x0a" * 6) -> p4r.Update:
                return p4rt.insert(
                    b.entry(
                        "next_hop",
                        [b.exact("next_hop", "nexthop_id", nid)],
                        b.action("rewrite", port=port, src_mac=mac, dst_mac=mac),
                    )
                )

            codes = await sw.write_codes(
                [
                    nh(b"\x00\x00\x00\x07", b"\x00\x01"),  # long but fits: accepted
                    nh(b"\x08", b"\x02\x00"),  # port 512 > 9 bits
                    nh(b"\x01\x00\x00", b"\x01"),  # nexthop id 65536 > 16 bits
                    nh(b"", b"\x01"),  # empty bytestring
                    nh(b"\x09", b"\x01", mac=b"\x01" * 7),  # 56-bit MAC
                ]
            )
            assert codes == [OK] + [INVALID_ARGUMENT] * 4
            (change,) = sw.dataplane.applied
            te = change.after.table_entry
            assert te.match[0].exact.value == b"\x07"
            assert te.action.action.params[0].value == b"\x01"
            # Read answers the canonical form; any spelling finds the entry.
            (read,) = await sw.read(ALL_ENTRIES)
            assert read.table_entry.match[0].exact.value == b"\x07"
            assert await sw.write_codes([nh(b"\x00\x07", b"\x01")]) == [ALREADY_EXISTS]
            del n

    p4rt.run(scenario())


def test_route_prefixes_are_checked_and_handed_over_decoded(p4rt: Any) -> None:
    """Routes take a fast path through validation (one LPM field): it rejects what the
    general path rejects, and hands the data plane the entry's key and references."""

    async def scenario() -> None:
        async with p4rt.switchd() as sw:
            await ready(p4rt, sw)
            b, n = sw.build, sw.names
            await sw.write([p4rt.insert(b.next_hop(1, 1)), p4rt.insert(b.member(1, 1))])

            def route(value: bytes, plen: int) -> p4r.Update:
                entity = b.route("2001:db8::/32", member=1)
                lpm = entity.table_entry.match[0].lpm
                lpm.value, lpm.prefix_len = value, plen
                return p4rt.insert(entity)

            net = bytes.fromhex("20010db8") + bytes(12)
            codes = await sw.write_codes(
                [
                    route(net, 0),  # /0 is spelt by leaving the field out
                    route(net, 129),
                    route(net[:5] + b"\x01" + net[6:], 32),  # bits beyond the prefix
                    route(b"\x01" + net, 32),  # 136 bits
                    route(b"", 32),
                    route(b"\x00" + net, 32),  # long but fits: accepted, stored short
                ]
            )
            assert codes == [INVALID_ARGUMENT] * 5 + [OK]
            change = sw.dataplane.applied[-1]
            assert change.after.table_entry.match[0].lpm.value == net
            profile = n.profile("ecmp_selector")
            assert change.refs == (("member", profile, 1),)
            assert change.key is not None and change.key[:2] == ("table", n.table("routing_v6"))
            delete = p4rt.delete(b.route("2001:db8::/32", member=1))
            assert await sw.write_codes([delete]) == [OK]
            assert sw.dataplane.applied[-1].key == change.key

    p4rt.run(scenario())


def test_match_kinds(p4rt: Any) -> None:
    async def scenario() -> None:
        async with p4rt.switchd() as sw:
            await ready(p4rt, sw)
            b, n = sw.build, sw.names
            acl = n.table("acl")

            def fm(field: str, **kind: Any) -> p4r.FieldMatch:
                return p4r.FieldMatch(field_id=n.field("acl", field), **kind)

            port = fm("ingress_port", exact=p4r.FieldMatch.Exact(value=b"\x01"))

            def acl_entry(*fields: p4r.FieldMatch, priority: int = 10) -> p4r.Update:
                te = p4r.TableEntry(
                    table_id=acl,
                    match=list(fields),
                    priority=priority,
                    action=p4r.TableAction(action=b.action("drop")),
                )
                return p4rt.insert(p4r.Entity(table_entry=te))

            tern = p4r.FieldMatch.Ternary
            rng = p4r.FieldMatch.Range
            opt = p4r.FieldMatch.Optional
            cases = [
                (acl_entry(port, fm("src_addr", ternary=tern(value=b"\x20", mask=b"\xf0"))), OK),
                (
                    acl_entry(port, fm("src_addr", ternary=tern(value=b"\x21", mask=b"\xf0"))),
                    INVALID_ARGUMENT,
                ),  # value bits outside the mask
                (
                    acl_entry(port, fm("src_addr", ternary=tern(value=b"\x00", mask=b"\x00"))),
                    INVALID_ARGUMENT,
                ),  # don't care must be omitted
                (acl_entry(port, fm("l4_dst_port", range=rng(low=b"\x10", high=b"\x20"))), OK),
                (
                    acl_entry(port, fm("l4_dst_port", range=rng(low=b"\x30", high=b"\x20"))),
                    INVALID_ARGUMENT,
                ),  # low > high
                (
                    acl_entry(port, fm("l4_dst_port", range=rng(low=b"\x00", high=b"\xff\xff"))),
                    INVALID_ARGUMENT,
                ),  # the full range is don't care
                (acl_entry(port, fm("next_hdr", optional=opt(value=b"\x11"))), OK),
                (acl_entry(port, priority=0), INVALID_ARGUMENT),  # needs a priority
                (
                    acl_entry(fm("next_hdr", optional=opt(value=b"\x11"))),
                    INVALID_ARGUMENT,
                ),  # the exact field is missing
                (acl_entry(port, port), INVALID_ARGUMENT),  # the same field twice
                (
                    acl_entry(port, fm("next_hdr", exact=p4r.FieldMatch.Exact(value=b"\x11"))),
                    INVALID_ARGUMENT,
                ),  # wrong match kind
                (
                    acl_entry(
                        port, p4r.FieldMatch(field_id=99, exact=p4r.FieldMatch.Exact(value=b"\x01"))
                    ),
                    INVALID_ARGUMENT,
                ),  # unknown field id
                (
                    acl_entry(port, p4r.FieldMatch(field_id=n.field("acl", "next_hdr"))),
                    INVALID_ARGUMENT,
                ),  # no value at all
            ]
            codes = await sw.write_codes([u for u, _ in cases])
            assert codes == [c for _, c in cases]

            def route(prefix: bytes, plen: int) -> p4r.Update:
                return p4rt.insert(
                    p4r.Entity(
                        table_entry=p4r.TableEntry(
                            table_id=n.table("sid_block"),
                            match=[
                                p4r.FieldMatch(
                                    field_id=1,
                                    lpm=p4r.FieldMatch.LPM(value=prefix, prefix_len=plen),
                                )
                            ],
                            action=p4r.TableAction(action=b.action("mark_internal_sid")),
                        )
                    )
                )

            block = p4rt.ip6("fcbb:bb00::")
            codes = await sw.write_codes(
                [
                    route(block, 32),
                    route(block, 0),  # /0 is don't care: omit the field
                    route(block, 129),
                    route(p4rt.ip6("fcbb:bb00:1::"), 32),  # host bits set
                    route(block, 32),  # same key again
                    route(p4rt.ip6("fcbb:bb00:1::"), 48),
                ]
            )
            assert codes == [
                OK,
                INVALID_ARGUMENT,
                INVALID_ARGUMENT,
                INVALID_ARGUMENT,
                ALREADY_EXISTS,
                OK,
            ]
            # a priority where none is allowed
            te = b.next_hop(5, 1)
            te.table_entry.priority = 3
            assert await sw.write_codes([p4rt.insert(te)]) == [INVALID_ARGUMENT]

    p4rt.run(scenario())


def test_ids_actions_and_params(p4rt: Any) -> None:
    async def scenario() -> None:
        async with p4rt.switchd() as sw:
            await ready(p4rt, sw)
            b, n = sw.build, sw.names
            match = [b.exact("next_hop", "nexthop_id", b"\x01")]

            def nh_with(action: p4r.Action) -> p4r.Update:
                return p4rt.insert(b.entry("next_hop", match, action))

            rewrite = n.action("rewrite")
            good = b.action("rewrite", port=b"\x01", src_mac=b"\x02" * 6, dst_mac=b"\x02" * 6)
            missing_param = p4r.Action(action_id=rewrite, params=list(good.params)[:2])
            dup_param = p4r.Action(action_id=rewrite, params=[*list(good.params), good.params[0]])
            extra_param = p4r.Action(
                action_id=rewrite,
                params=[*list(good.params), p4r.Action.Param(param_id=9, value=b"\x01")],
            )
            unknown_table = p4r.Entity(table_entry=p4r.TableEntry(table_id=12345, match=match))
            cases = [
                (p4rt.insert(unknown_table), INVALID_ARGUMENT),
                (nh_with(p4r.Action(action_id=777)), INVALID_ARGUMENT),  # unknown action
                (nh_with(b.action("set_next_hop", nexthop_id=b"\x01")), INVALID_ARGUMENT),
                (nh_with(b.action("NoAction")), PERMISSION_DENIED),  # @defaultonly
                (nh_with(missing_param), INVALID_ARGUMENT),
                (nh_with(dup_param), INVALID_ARGUMENT),
                (nh_with(extra_param), INVALID_ARGUMENT),
                (p4rt.insert(b.entry("next_hop", match)), INVALID_ARGUMENT),  # no action
                (p4rt.insert(b.entry("next_hop", match, member=1)), INVALID_ARGUMENT),
                (p4rt.insert(b.entry("keyless", [], b.action("drop"))), INVALID_ARGUMENT),
                (nh_with(good), OK),
            ]
            codes = await sw.write_codes([u for u, _ in cases])
            assert codes == [c for _, c in cases]
            const = b.next_hop(2, 1)
            const.table_entry.is_const = True
            idle = b.next_hop(3, 1)
            idle.table_entry.idle_timeout_ns = 1000
            metered = b.next_hop(4, 1)
            metered.table_entry.meter_config.cir = 1
            counted = b.next_hop(5, 1)
            counted.table_entry.counter_data.packet_count = 1
            codes = await sw.write_codes(
                [p4rt.insert(const), p4rt.insert(idle), p4rt.insert(metered), p4rt.insert(counted)]
            )
            assert codes == [INVALID_ARGUMENT] * 4

    p4rt.run(scenario())


def test_unsupported_and_malformed_updates(p4rt: Any) -> None:
    async def scenario() -> None:
        async with p4rt.switchd() as sw:
            await ready(p4rt, sw)
            b, n = sw.build, sw.names
            one_shot = p4r.TableEntry(
                table_id=n.table("routing_v6"),
                match=[b.lpm("routing_v6", "2001:db8::/32")],
                action=p4r.TableAction(
                    action_profile_action_set=p4r.ActionProfileActionSet(
                        action_profile_actions=[
                            p4r.ActionProfileAction(
                                action=b.action("set_next_hop", nexthop_id=b"\x01"), weight=1
                            )
                        ]
                    )
                ),
            )
            counter = p4r.CounterEntry(counter_id=n.counters["port_counter"].preamble.id)
            cases = [
                (
                    p4r.Update(type=p4r.Update.UNSPECIFIED, entity=b.next_hop(1, 1)),
                    INVALID_ARGUMENT,
                ),
                (p4r.Update(type=p4r.Update.INSERT), INVALID_ARGUMENT),  # no entity
                (p4r.Update(type=77, entity=b.next_hop(1, 1)), INVALID_ARGUMENT),
                (p4rt.insert(p4r.Entity(table_entry=one_shot)), UNIMPLEMENTED),
                (p4rt.insert(p4r.Entity(meter_entry=p4r.MeterEntry(meter_id=1))), UNIMPLEMENTED),
                (p4rt.modify(p4r.Entity(counter_entry=counter)), UNIMPLEMENTED),
                (
                    p4rt.insert(p4r.Entity(register_entry=p4r.RegisterEntry(register_id=1))),
                    UNIMPLEMENTED,
                ),
                (p4rt.insert(b.next_hop(1, 1)), OK),
            ]
            codes = await sw.write_codes([u for u, _ in cases])
            assert codes == [c for _, c in cases]

    p4rt.run(scenario())


def test_default_entries(p4rt: Any) -> None:
    async def scenario() -> None:
        async with p4rt.switchd() as sw:
            await ready(p4rt, sw)
            b = sw.build
            set_default = b.entry("sid_block", action=b.action("mark_internal_sid"), default=True)
            reset = b.entry("sid_block", default=True)
            codes = await sw.write_codes(
                [
                    p4rt.modify(set_default),
                    p4rt.insert(set_default),  # the default entry always exists
                    p4rt.delete(set_default),
                    p4rt.modify(b.entry("const_default", action=b.action("drop"), default=True)),
                    p4rt.modify(b.entry("routing_v6", member=1, default=True)),  # indirect
                    p4rt.modify(b.entry("acl", action=b.action("allow"), default=True)),
                    p4rt.modify(
                        b.entry(
                            "sid_block",
                            [b.lpm("sid_block", "fcbb::/16")],
                            b.action("mark_internal_sid"),
                            default=True,
                        )
                    ),
                ]
            )
            assert codes == [
                OK,
                INVALID_ARGUMENT,
                INVALID_ARGUMENT,
                PERMISSION_DENIED,
                PERMISSION_DENIED,
                PERMISSION_DENIED,
                INVALID_ARGUMENT,
            ]
            (change,) = sw.dataplane.applied
            assert change.kind is ChangeKind.MODIFY
            assert change.before.table_entry.is_default_action
            assert not change.before.table_entry.HasField("action")  # the program's default
            read_default = b.entry("sid_block", default=True)
            (entry,) = await sw.read(read_default)
            assert entry.table_entry.action.action.action_id == sw.names.action("mark_internal_sid")
            # Reads of non-default entries do not show it.
            assert await sw.read(ALL_ENTRIES) == []
            # MODIFY without an action resets it.
            await sw.write([p4rt.modify(reset)])
            (entry,) = await sw.read(read_default)
            assert not entry.table_entry.HasField("action")
            (entry,) = await sw.read(b.entry("const_default", default=True))
            assert entry.table_entry.action.action.action_id == sw.names.action("drop")

    p4rt.run(scenario())


def test_members_groups_and_references(p4rt: Any) -> None:
    async def scenario() -> None:
        async with p4rt.switchd() as sw:
            await ready(p4rt, sw)
            b = sw.build
            await sw.write([p4rt.insert(b.next_hop(i, i)) for i in (1, 2, 3)])
            await sw.write([p4rt.insert(b.member(i, i)) for i in (1, 2, 3)])
            group = b.group(1, [(1, 1, 1), (2, 2, 2)])
            codes = await sw.write_codes(
                [
                    p4rt.insert(group),
                    p4rt.insert(group),
                    p4rt.insert(b.group(2, [(1, 1, 1), (9, 1, 0)])),  # no member 9
                    p4rt.insert(b.group(3, [(1, 1, 1), (1, 1, 1)])),  # twice
                    p4rt.insert(b.group(4, [(1, 0, 1)])),  # weight 0
                    p4rt.insert(b.group(5, [(1, 1, 7)])),  # port 7 does not exist
                    p4rt.insert(b.group(6, [(1, 1, 1)], max_size=17)),  # > max_group_size 16
                    p4rt.insert(b.group(7, [(1, 10, 1), (2, 10, 2)], max_size=16)),  # 20 > 16
                    p4rt.insert(b.group(8, [(1, 1, 1)], profile="plain_profile")),  # no selector
                    p4rt.insert(b.member(1, 1)),
                    p4rt.insert(b.member(0, 1)),  # member id 0
                    p4rt.modify(b.member(99, 1)),
                    p4rt.modify(b.group(99, [(1, 1, 1)])),
                    p4rt.insert(b.route("2001:db8:9::/48", group=42)),  # no group 42
                    p4rt.insert(b.route("2001:db8:9::/48", member=42)),  # no member 42
                    p4rt.insert(b.route("2001:db8:1::/48", group=1)),
                    p4rt.insert(b.route("2001:db8:2::/48", member=3)),
                ]
            )
            assert codes == [
                OK,
                ALREADY_EXISTS,
                NOT_FOUND,
                INVALID_ARGUMENT,
                INVALID_ARGUMENT,
                INVALID_ARGUMENT,
                INVALID_ARGUMENT,
                RESOURCE_EXHAUSTED,
                INVALID_ARGUMENT,
                ALREADY_EXISTS,
                INVALID_ARGUMENT,
                NOT_FOUND,
                NOT_FOUND,
                NOT_FOUND,
                NOT_FOUND,
                OK,
                OK,
            ]
            # In use: the members by the group (and member 3 by a route), the group by a route.
            codes = await sw.write_codes(
                [
                    p4rt.delete(b.member(1, 1)),
                    p4rt.delete(b.member(3, 3)),
                    p4rt.delete(b.group(1, [])),
                    p4rt.modify(b.group(1, [(2, 1, 2)], max_size=8)),  # max_size cannot change
                ]
            )
            assert codes == [
                FAILED_PRECONDITION,
                FAILED_PRECONDITION,
                FAILED_PRECONDITION,
                INVALID_ARGUMENT,
            ]
            # Shrink the group: member 1 is free; point the route elsewhere: the group is free.
            await sw.write([p4rt.modify(b.group(1, [(2, 1, 2)]))])
            await sw.write([p4rt.delete(b.member(1, 1))])
            await sw.write([p4rt.modify(b.route("2001:db8:1::/48", member=2))])
            await sw.write([p4rt.delete(b.group(1, []))])
            codes = await sw.write_codes([p4rt.delete(b.member(2, 2))])
            assert codes == [FAILED_PRECONDITION]  # the route uses it
            (stored,) = await sw.read(b.route("2001:db8:1::/48"))
            assert stored.table_entry.action.action_profile_member_id == 2

    p4rt.run(scenario())


def test_watch_port_forms(p4rt: Any) -> None:
    async def scenario() -> None:
        async with p4rt.switchd() as sw:
            await ready(p4rt, sw)
            b = sw.build
            await sw.write([p4rt.insert(b.next_hop(1, 1)), p4rt.insert(b.member(1, 1))])
            group = b.group(1, [(1, 1, 0)])
            group.action_profile_group.members[0].watch = 2  # deprecated int32 form
            group2 = b.group(2, [(1, 1, 0)])
            group2.action_profile_group.members[0].watch_port = b"\x00\x03"  # not canonical
            await sw.write([p4rt.insert(group), p4rt.insert(group2)])
            groups = await sw.read(p4r.Entity(action_profile_group=p4r.ActionProfileGroup()))
            ports = {
                g.action_profile_group.group_id: g.action_profile_group.members[0] for g in groups
            }
            assert ports[1].watch_port == b"\x02"
            assert ports[2].watch_port == b"\x03"

    p4rt.run(scenario())


def test_modify_without_action_keeps_the_action(p4rt: Any) -> None:
    async def scenario() -> None:
        async with p4rt.switchd() as sw:
            await ready(p4rt, sw)
            b = sw.build
            await sw.write([p4rt.insert(b.my_sid("fcbb:bb00:1::/48", "usid_un"))])
            bare = b.entry("my_sid", [b.lpm("my_sid", "fcbb:bb00:1::/48")])
            bare.table_entry.metadata = b"cookie"
            await sw.write([p4rt.modify(bare)])
            (entry,) = await sw.read(ALL_ENTRIES)
            assert entry.table_entry.action.action.action_id == sw.names.action("usid_un")
            assert entry.table_entry.metadata == b"cookie"

    p4rt.run(scenario())


def test_data_plane_refusals_are_reported_and_not_stored(p4rt: Any) -> None:
    def refuse(change: Any) -> DataplaneError | None:
        te = change.after.table_entry if change.after is not None else None
        if te is not None and te.match and te.match[0].exact.value == b"\x02":
            return DataplaneError("RESOURCE_EXHAUSTED", "no room in the kernel")
        if te is not None and te.match and te.match[0].exact.value == b"\x03":
            return DataplaneError("NOT_A_CODE", "odd")
        return None

    async def scenario() -> None:
        dp = p4rt.MemoryDataplane(refuse=refuse)
        async with p4rt.switchd(dp) as sw:
            await ready(p4rt, sw)
            b = sw.build
            try:
                await sw.write([p4rt.insert(b.next_hop(i, 1)) for i in (1, 2, 3)])
            except p4rt.WriteFailed as exc:
                assert [d.canonical_code for d in exc.details] == [OK, RESOURCE_EXHAUSTED, INTERNAL]
                assert exc.details[1].message == "no room in the kernel"
            else:
                raise AssertionError("the write did not fail")
            entries = await sw.read(ALL_ENTRIES)
            assert [e.table_entry.match[0].exact.value for e in entries] == [b"\x01"]

    p4rt.run(scenario())


def test_a_data_plane_that_raises_fails_its_updates_only(p4rt: Any) -> None:
    class Broken(p4rt.MemoryDataplane):  # type: ignore[misc,name-defined]
        def apply(self, changes: Any) -> Any:
            if any(
                c.after is not None and c.after.table_entry.match[0].exact.value == b"\x09"
                for c in changes
            ):
                raise RuntimeError("kernel on fire")
            return super().apply(changes)

    async def scenario() -> None:
        async with p4rt.switchd(Broken()) as sw:
            await ready(p4rt, sw)
            codes = await sw.write_codes([p4rt.insert(sw.build.next_hop(9, 1))])
            assert codes == [INTERNAL]
            await sw.write([p4rt.insert(sw.build.next_hop(1, 1))])  # still serving

    p4rt.run(scenario())


def test_updates_of_one_batch_see_the_earlier_ones(p4rt: Any) -> None:
    async def scenario() -> None:
        async with p4rt.switchd() as sw:
            await ready(p4rt, sw)
            b = sw.build
            nh = b.next_hop(1, 1)
            batch = [
                p4rt.insert(nh),
                p4rt.insert(b.member(1, 1)),
                p4rt.insert(b.group(1, [(1, 1, 1)])),  # uses the member inserted just before
                p4rt.insert(b.route("2001:db8::/32", group=1)),  # uses that group
                p4rt.insert(nh),  # exists now
                p4rt.delete(nh),
                p4rt.insert(nh),
            ]
            calls_before = sw.dataplane.apply_calls
            assert await sw.write_codes(batch) == [OK, OK, OK, OK, ALREADY_EXISTS, OK, OK]
            kinds = [c.kind for c in sw.dataplane.applied]
            assert kinds == [ChangeKind.INSERT] * 4 + [ChangeKind.DELETE, ChangeKind.INSERT]
            # Independent updates still go to the data plane together.
            calls = sw.dataplane.apply_calls
            await sw.write([p4rt.insert(b.next_hop(i, 2)) for i in range(10, 60)])
            assert sw.dataplane.apply_calls == calls + 1
            assert calls > calls_before

    p4rt.run(scenario())


ROLLBACK = p4r.WriteRequest.ROLLBACK_ON_ERROR


def test_rollback_on_error_is_all_or_nothing(p4rt: Any) -> None:
    def refuse(change: Any) -> DataplaneError | None:
        after = change.after
        if after is not None and after.WhichOneof("entity") == "table_entry":
            match = after.table_entry.match
            exact = bool(match) and match[0].WhichOneof("field_match_type") == "exact"
            if exact and match[0].exact.value == b"\x63":
                return DataplaneError("RESOURCE_EXHAUSTED", "kernel full")
        return None

    async def scenario() -> None:
        dp = p4rt.MemoryDataplane(refuse=refuse)
        async with p4rt.switchd(dp) as sw:
            await ready(p4rt, sw)
            b = sw.build
            await sw.write([p4rt.insert(b.next_hop(1, 1)), p4rt.insert(b.next_hop(2, 2))])
            snapshot = dict(dp.entities)
            before = await sw.read(ALL_ENTRIES)

            # A validation failure: nothing of the batch stays.
            codes = await sw.write_codes(
                [
                    p4rt.modify(b.next_hop(1, 3)),
                    p4rt.delete(b.next_hop(2, 2)),
                    p4rt.insert(b.next_hop(5, 1)),
                    p4rt.insert(b.next_hop(1, 1)),  # exists
                    p4rt.insert(b.next_hop(6, 1)),  # never attempted
                ],
                atomicity=ROLLBACK,
            )
            assert codes == [ABORTED, ABORTED, ABORTED, ALREADY_EXISTS, ABORTED]
            assert dp.entities == snapshot
            assert await sw.read(ALL_ENTRIES) == before

            # A data plane failure after dependent updates: undone newest first.
            codes = await sw.write_codes(
                [
                    p4rt.insert(b.member(1, 1)),
                    p4rt.insert(b.group(1, [(1, 1, 1)])),
                    p4rt.insert(b.route("2001:db8::/32", group=1)),
                    p4rt.insert(b.next_hop(0x63, 1)),  # the data plane refuses it
                ],
                atomicity=ROLLBACK,
            )
            assert codes == [ABORTED, ABORTED, ABORTED, RESOURCE_EXHAUSTED]
            assert dp.entities == snapshot
            assert await sw.read(ALL_ENTRIES) == before
            assert await sw.read(p4r.Entity(action_profile_member=p4r.ActionProfileMember())) == []
            undone = [c.kind for c in dp.applied[-3:]]
            assert undone == [ChangeKind.DELETE] * 3
            assert dp.applied[-3].before.WhichOneof("entity") == "table_entry"  # route first

            # A batch that succeeds is applied as usual.
            await sw.write(
                [p4rt.insert(b.member(1, 1)), p4rt.insert(b.group(1, [(1, 1, 1)]))],
                atomicity=ROLLBACK,
            )
            assert (
                len(await sw.read(p4r.Entity(action_profile_group=p4r.ActionProfileGroup()))) == 1
            )

    p4rt.run(scenario())


def test_a_large_write_is_pipelined_in_chunks_with_the_same_results(
    p4rt: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from switchd.p4rt import server

    # Small chunks: a write of a few dozen updates spans several (the error details of
    # hundreds of updates exceed what a gRPC client takes in trailing metadata).
    monkeypatch.setattr(server, "PIPELINE_CHUNK", 8)
    PIPELINE_CHUNK = server.PIPELINE_CHUNK
    n = PIPELINE_CHUNK * 2 + 10

    def refuse(change: Any) -> DataplaneError | None:
        after = change.after
        if after is not None and after.WhichOneof("entity") == "table_entry":
            match = after.table_entry.match
            exact = match[0].WhichOneof("field_match_type") == "exact"
            if exact and match[0].exact.value == b"\x07":
                return DataplaneError("RESOURCE_EXHAUSTED", "kernel full")
        return None

    async def scenario() -> None:
        dp = p4rt.MemoryDataplane(refuse=refuse)
        async with p4rt.switchd(dp) as sw:
            await ready(p4rt, sw)
            b = sw.build
            calls = dp.apply_calls
            # Next hops 1..n; the data plane refuses 7; the last update needs a member that
            # an update in the second chunk inserts, which needs next hop 1 of the first.
            updates = [p4rt.insert(b.next_hop(i, 1)) for i in range(1, n + 1)]
            updates[PIPELINE_CHUNK + 3] = p4rt.insert(b.member(1, 1))
            updates.append(p4rt.insert(b.route("2001:db8::/32", member=1)))
            updates.append(p4rt.insert(b.next_hop(2, 1)))  # exists (first chunk)
            codes = await sw.write_codes(updates)
            expected = [OK] * len(updates)
            expected[6] = RESOURCE_EXHAUSTED
            expected[-1] = ALREADY_EXISTS
            assert codes == expected
            assert dp.apply_calls - calls >= 3  # chunks, not one call
            entries = await sw.read(ALL_ENTRIES)
            assert len(entries) == n - 1 - 1 + 1  # no 7, one slot is the member, + route

            # ROLLBACK_ON_ERROR across chunks: a refusal in the last chunk undoes them all.
            snapshot = dict(dp.entities)
            updates = [p4rt.insert(b.next_hop(i, 2)) for i in range(1000, 1000 + n)]
            updates.append(p4rt.modify(b.next_hop(1, 2)))
            updates.append(p4rt.insert(b.next_hop(7, 2)))  # refused
            codes = await sw.write_codes(updates, atomicity=ROLLBACK)
            assert codes == [ABORTED] * (n + 1) + [RESOURCE_EXHAUSTED]
            assert dp.entities == snapshot
            assert len(await sw.read(ALL_ENTRIES)) == len(entries)

            # A refusal in the first chunk, found out while the next chunks are already on
            # their way to the data plane (PIPELINE_DEPTH): they are undone too, and ABORTED.
            updates = [p4rt.insert(b.next_hop(i, 2)) for i in range(2000, 2000 + n)]
            updates[2] = p4rt.insert(b.next_hop(7, 2))  # refused
            codes = await sw.write_codes(updates, atomicity=ROLLBACK)
            assert codes == [ABORTED] * 2 + [RESOURCE_EXHAUSTED] + [ABORTED] * (n - 3)
            assert dp.entities == snapshot
            assert len(await sw.read(ALL_ENTRIES)) == len(entries)

    p4rt.run(scenario())
