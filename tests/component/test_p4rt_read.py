"""Read: wildcards over all tables, one table and one entry; filters; default entries;
members and groups; direct counters (DirectCounterEntry and TableEntry.counter_data, values
from the data plane, and written ones); per-request errors; responses in chunks."""

from __future__ import annotations

from typing import Any

import grpc
from finsy.proto import p4r

OK, INVALID_ARGUMENT, NOT_FOUND, UNIMPLEMENTED = 0, 3, 5, 12


def entity(**kw: Any) -> p4r.Entity:
    return p4r.Entity(**kw)


async def populated(p4rt: Any, sw: Any) -> None:
    await sw.primary(10)
    await sw.set_pipeline()
    b = sw.build
    await sw.write(
        [p4rt.insert(b.next_hop(i, i)) for i in (1, 2, 3)]
        + [p4rt.insert(b.member(i, i)) for i in (1, 2, 3)]
        + [
            p4rt.insert(b.my_sid("fcbb:bb00:1::/48", "usid_un")),
            p4rt.insert(b.my_sid("fcbb:bb00:1:e001::/64", "usid_ua", nexthop_id=b"\x01")),
        ]
    )
    await sw.write([p4rt.insert(b.group(1, [(1, 1, 1), (2, 1, 2)]))])
    await sw.write(
        [
            p4rt.insert(b.route("2001:db8:1::/64", group=1)),
            p4rt.insert(b.route("2001:db8:2::/64", member=3)),
        ]
    )


def test_wildcards_and_filters(p4rt: Any) -> None:
    async def scenario() -> None:
        async with p4rt.switchd() as sw:
            await populated(p4rt, sw)
            b, n = sw.build, sw.names
            every = await sw.read(entity(table_entry=p4r.TableEntry()))
            assert len(every) == 3 + 2 + 2
            one_table = await sw.read(
                entity(table_entry=p4r.TableEntry(table_id=n.table("my_sid")))
            )
            assert len(one_table) == 2
            (one,) = await sw.read(b.route("2001:db8:2::/64"))
            assert one.table_entry.action.action_profile_member_id == 3
            assert await sw.read(b.route("2001:db8:9::/64")) == []
            by_action = p4r.TableEntry(table_id=n.table("my_sid"))
            by_action.action.action.action_id = n.action("usid_ua")
            (ua,) = await sw.read(entity(table_entry=by_action))
            assert ua.table_entry.match[0].lpm.prefix_len == 64
            # Several requests in one Read, answered in order.
            both = await sw.read(
                entity(table_entry=p4r.TableEntry(table_id=n.table("routing_v6"))),
                entity(table_entry=p4r.TableEntry(table_id=n.table("next_hop"))),
            )
            assert [e.table_entry.table_id for e in both] == [n.table("routing_v6")] * 2 + [
                n.table("next_hop")
            ] * 3

    p4rt.run(scenario())


def test_priority_and_metadata_filters(p4rt: Any) -> None:
    async def scenario() -> None:
        async with p4rt.switchd() as sw:
            await sw.primary(10)
            await sw.set_pipeline()
            b, n = sw.build, sw.names

            def acl(port: int, priority: int, metadata: bytes) -> p4r.Entity:
                e = b.entry(
                    "acl",
                    [b.exact("acl", "ingress_port", bytes([port]))],
                    b.action("drop"),
                    priority=priority,
                )
                e.table_entry.metadata = metadata
                e.table_entry.controller_metadata = priority * 100
                return e

            await sw.write(
                [
                    p4rt.insert(acl(1, 10, b"a")),
                    p4rt.insert(acl(2, 20, b"b")),
                    p4rt.insert(acl(3, 20, b"a")),
                ]
            )
            table = n.table("acl")
            assert (
                len(await sw.read(entity(table_entry=p4r.TableEntry(table_id=table, priority=20))))
                == 2
            )
            assert (
                len(
                    await sw.read(entity(table_entry=p4r.TableEntry(table_id=table, metadata=b"a")))
                )
                == 2
            )
            assert (
                len(
                    await sw.read(
                        entity(table_entry=p4r.TableEntry(table_id=table, controller_metadata=1000))
                    )
                )
                == 1
            )
            # A specific entry needs its priority: it is part of the key.
            (found,) = await sw.read(acl(2, 20, b""))
            assert found.table_entry.metadata == b"b"
            assert await sw.read(acl(2, 21, b"")) == []

    p4rt.run(scenario())


def test_members_and_groups(p4rt: Any) -> None:
    async def scenario() -> None:
        async with p4rt.switchd() as sw:
            await populated(p4rt, sw)
            n = sw.names
            ecmp = n.profile("ecmp_selector")
            apm, apg = p4r.ActionProfileMember, p4r.ActionProfileGroup
            assert len(await sw.read(entity(action_profile_member=apm()))) == 3
            assert (
                len(await sw.read(entity(action_profile_member=apm(action_profile_id=ecmp)))) == 3
            )
            (m2,) = await sw.read(
                entity(action_profile_member=apm(action_profile_id=ecmp, member_id=2))
            )
            assert m2.action_profile_member.action.params[0].value == b"\x02"
            assert (
                await sw.read(
                    entity(
                        action_profile_member=apm(action_profile_id=n.profile("headend_selector"))
                    )
                )
                == []
            )
            (g,) = await sw.read(entity(action_profile_group=apg()))
            assert [
                (m.member_id, m.weight, m.watch_port) for m in g.action_profile_group.members
            ] == [(1, 1, b"\x01"), (2, 1, b"\x02")]
            (g1,) = await sw.read(
                entity(action_profile_group=apg(action_profile_id=ecmp, group_id=1))
            )
            assert g1 == g
            assert (
                await sw.read(entity(action_profile_group=apg(action_profile_id=ecmp, group_id=2)))
                == []
            )

    p4rt.run(scenario())


def test_per_request_errors_and_the_rest_still_answered(p4rt: Any) -> None:
    async def scenario() -> None:
        async with p4rt.switchd() as sw:
            await populated(p4rt, sw)
            n = sw.names
            request = p4r.ReadRequest(
                device_id=1,
                entities=[
                    entity(table_entry=p4r.TableEntry(table_id=n.table("next_hop"))),
                    entity(table_entry=p4r.TableEntry(table_id=4242)),
                    entity(),  # no entity kind: never a wildcard over everything
                    entity(
                        counter_entry=p4r.CounterEntry(
                            counter_id=n.counters["port_counter"].preamble.id
                        )
                    ),
                    entity(meter_entry=p4r.MeterEntry()),  # none declared: none to read
                    entity(meter_entry=p4r.MeterEntry(meter_id=5)),
                    entity(packet_replication_engine_entry=p4r.PacketReplicationEngineEntry()),
                    entity(action_profile_member=p4r.ActionProfileMember(action_profile_id=7)),
                    entity(action_profile_member=p4r.ActionProfileMember()),
                ],
            )
            got: list[p4r.Entity] = []
            try:
                async for response in sw.stub.Read(request):
                    got.extend(response.entities)
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.UNKNOWN
                codes = [d.canonical_code for d in p4rt.status_details(exc)]
                assert codes == [
                    OK,
                    INVALID_ARGUMENT,
                    INVALID_ARGUMENT,
                    UNIMPLEMENTED,
                    OK,
                    INVALID_ARGUMENT,
                    OK,
                    INVALID_ARGUMENT,
                    OK,
                ]
            else:
                raise AssertionError("the read did not fail")
            assert len(got) == 3 + 3
            try:
                await sw.read(entity(table_entry=p4r.TableEntry()), device_id=3)
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.NOT_FOUND
            else:
                raise AssertionError("a read of device 3 was answered")

    p4rt.run(scenario())


def test_direct_counters(p4rt: Any) -> None:
    async def scenario() -> None:
        async with p4rt.switchd() as sw:
            await populated(p4rt, sw)
            b, n = sw.build, sw.names
            un = b.my_sid("fcbb:bb00:1::/48", "usid_un")
            ua = b.my_sid("fcbb:bb00:1:e001::/64", "usid_ua", nexthop_id=b"\x01")
            sw.dataplane.count(un, 5, 500)
            sw.dataplane.count(ua, 1, 100)

            def dce(te: p4r.TableEntry, data: p4r.CounterData | None = None) -> p4r.Entity:
                d = p4r.DirectCounterEntry(table_entry=te)
                if data is not None:
                    d.data.CopyFrom(data)
                return entity(direct_counter_entry=d)

            key_only = p4r.TableEntry(table_id=un.table_entry.table_id, match=un.table_entry.match)
            (one,) = await sw.read(dce(key_only))
            data = one.direct_counter_entry.data
            assert (data.packet_count, data.byte_count) == (5, 500)
            assert one.direct_counter_entry.table_entry.match == un.table_entry.match
            every = await sw.read(dce(p4r.TableEntry(table_id=n.table("my_sid"))))
            assert sorted(e.direct_counter_entry.data.packet_count for e in every) == [1, 5]
            assert len(await sw.read(dce(p4r.TableEntry()))) == 2  # all tables with counters
            # Through TableEntry.counter_data.
            with_counters = p4r.TableEntry(table_id=n.table("my_sid"))
            with_counters.counter_data.SetInParent()
            rows = await sw.read(entity(table_entry=with_counters))
            assert sorted(r.table_entry.counter_data.byte_count for r in rows) == [100, 500]
            plain = await sw.read(entity(table_entry=p4r.TableEntry(table_id=n.table("my_sid"))))
            assert not any(r.table_entry.HasField("counter_data") for r in plain)

            # Writing a counter: the value read from then on counts from it.
            await sw.write(
                [p4rt.modify(dce(key_only, p4r.CounterData(packet_count=0, byte_count=0)))]
            )
            sw.dataplane.count(un, 2, 200)
            (one,) = await sw.read(dce(key_only))
            assert (
                one.direct_counter_entry.data.packet_count,
                one.direct_counter_entry.data.byte_count,
            ) == (2, 200)
            # ... and an INSERT may give the initial value.
            end = b.my_sid("fcbb:bb00:2::/48", "end")
            end.table_entry.counter_data.packet_count = 40
            end.table_entry.counter_data.byte_count = 4000
            await sw.write([p4rt.insert(end)])
            sw.dataplane.count(end, 1, 10)
            (row,) = await sw.read(
                dce(p4r.TableEntry(table_id=end.table_entry.table_id, match=end.table_entry.match))
            )
            assert row.direct_counter_entry.data.packet_count == 41
            assert row.direct_counter_entry.data.byte_count == 4010

            # Errors: a table without a direct counter, an entry that does not exist,
            # DirectCounterEntry INSERT.
            nh_key = p4r.TableEntry(
                table_id=n.table("next_hop"), match=[b.exact("next_hop", "nexthop_id", b"\x01")]
            )
            missing = p4r.TableEntry(
                table_id=n.table("my_sid"), match=[b.lpm("my_sid", "fcbb:bb00:9::/48")]
            )
            for request, code in ((dce(nh_key), INVALID_ARGUMENT), (dce(missing), NOT_FOUND)):
                try:
                    await sw.read(request)
                except grpc.aio.AioRpcError as exc:
                    assert [d.canonical_code for d in p4rt.status_details(exc)] == [code]
                else:
                    raise AssertionError(f"{request} was answered")
            codes = await sw.write_codes(
                [p4rt.insert(dce(key_only)), p4rt.modify(dce(missing)), p4rt.modify(dce(nh_key))]
            )
            assert codes == [INVALID_ARGUMENT, NOT_FOUND, INVALID_ARGUMENT]

    p4rt.run(scenario())


def test_large_reads_come_in_chunks(p4rt: Any) -> None:
    async def scenario() -> None:
        async with p4rt.switchd() as sw:
            await sw.primary(10)
            await sw.set_pipeline()
            b = sw.build
            total = 10_000
            for start in range(0, total, 2_000):
                await sw.write(
                    [
                        p4rt.insert(b.my_sid(f"fcbb:bb00:{i // 256 + 1:x}:{i % 256 + 1:x}::/64"))
                        for i in range(start, start + 2_000)
                    ]
                )
            responses = [
                r
                async for r in sw.stub.Read(
                    p4r.ReadRequest(device_id=1, entities=[entity(table_entry=p4r.TableEntry())])
                )
            ]
            assert sum(len(r.entities) for r in responses) == total
            assert len(responses) > 1

    p4rt.run(scenario())
