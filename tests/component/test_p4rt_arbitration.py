"""StreamChannel arbitration: primary and backups by election id, notifications, errors, and
PERMISSION_DENIED for writes that do not come from the primary."""

from __future__ import annotations

from typing import Any

import grpc

OK, NOT_FOUND, ALREADY_EXISTS = 0, 5, 6


def test_highest_election_id_is_primary_and_everyone_is_told(p4rt: Any) -> None:
    async def scenario() -> None:
        async with p4rt.switchd() as sw:
            a = sw.stream()
            await a.arbitrate(10)
            assert await a.next_arbitration() == (OK, 10)

            # A lower id joins as a backup; only it is answered.
            b = sw.stream()
            await b.arbitrate(5)
            assert await b.next_arbitration() == (ALREADY_EXISTS, 10)

            # A higher id takes over: everyone hears of it.
            c = sw.stream()
            await c.arbitrate(20)
            assert await c.next_arbitration() == (OK, 20)
            assert await a.next_arbitration() == (ALREADY_EXISTS, 20)
            assert await b.next_arbitration() == (ALREADY_EXISTS, 20)

            # The primary goes away: the next highest (a, 10) becomes primary, all are told.
            c.cancel()
            assert await a.next_arbitration() == (OK, 10)
            assert await b.next_arbitration() == (ALREADY_EXISTS, 10)

            # A backup may claim the primary role with a higher id.
            await b.arbitrate(30)
            assert await b.next_arbitration() == (OK, 30)
            assert await a.next_arbitration() == (ALREADY_EXISTS, 30)

    p4rt.run(scenario())


def test_stream_without_election_id_stays_backup(p4rt: Any) -> None:
    async def scenario() -> None:
        async with p4rt.switchd() as sw:
            s = sw.stream()
            await s.arbitrate(None)
            # No primary at all: NOT_FOUND, and no election id has been seen yet.
            assert await s.next_arbitration() == (NOT_FOUND, None)
            p = await sw.primary(7)
            assert await s.next_arbitration() == (ALREADY_EXISTS, 7)
            p.cancel()
            # The primary left and nobody else can be primary: NOT_FOUND with the highest id.
            assert await s.next_arbitration() == (NOT_FOUND, 7)

    p4rt.run(scenario())


def test_wrong_device_id_ends_the_stream_with_not_found(p4rt: Any) -> None:
    async def scenario() -> None:
        async with p4rt.switchd() as sw:
            s = sw.stream()
            await s.arbitrate(10, device_id=99)
            assert await s.ended_with() == grpc.StatusCode.NOT_FOUND
            # The server is fine: another client becomes primary.
            await sw.primary(10)

    p4rt.run(scenario())


def test_duplicate_election_id_is_invalid_argument(p4rt: Any) -> None:
    async def scenario() -> None:
        async with p4rt.switchd() as sw:
            first = await sw.primary(10)
            second = sw.stream()
            await second.arbitrate(10)
            assert await second.ended_with() == grpc.StatusCode.INVALID_ARGUMENT
            # The first stream is still the primary and hears nothing.
            await sw.set_pipeline()
            del first

    p4rt.run(scenario())


def test_duplicate_election_id_message_is_understood_by_finsy(p4rt: Any) -> None:
    from finsy.p4client import P4ClientError

    async def scenario() -> None:
        async with p4rt.switchd() as sw:
            await sw.primary(10)
            second = sw.stream()
            await second.arbitrate(10)
            try:
                await second.next()
            except grpc.aio.AioRpcError as exc:
                assert P4ClientError(exc, "test").is_election_id_used
            else:
                raise AssertionError("the second stream was not refused")

    p4rt.run(scenario())


def test_roles_other_than_default_are_refused(p4rt: Any) -> None:
    from finsy.proto import p4r

    async def scenario() -> None:
        async with p4rt.switchd() as sw:
            s = sw.stream()
            await s.arbitrate(10, role=p4r.Role(name="sdn"))
            assert await s.ended_with() == grpc.StatusCode.INVALID_ARGUMENT

    p4rt.run(scenario())


def test_write_from_a_backup_or_without_stream_is_permission_denied(p4rt: Any) -> None:
    async def scenario() -> None:
        async with p4rt.switchd() as sw:
            await sw.primary(10)
            await sw.set_pipeline(election_id=10)
            backup = sw.stream()
            await backup.arbitrate(5)
            assert (await backup.next_arbitration())[0] == ALREADY_EXISTS
            update = p4rt.insert(sw.build.next_hop(1, 1))
            for eid in (5, 11, None):
                try:
                    await sw.write([update], election_id=eid)
                except p4rt.WriteFailed as exc:
                    assert exc.code == grpc.StatusCode.PERMISSION_DENIED, exc
                    assert exc.details == []
                else:
                    raise AssertionError(f"a write with election id {eid} was accepted")
            # SetForwardingPipelineConfig likewise.
            try:
                await sw.set_pipeline(election_id=5)
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.PERMISSION_DENIED
            else:
                raise AssertionError("a backup set the pipeline")
            await sw.write([update], election_id=10)

    p4rt.run(scenario())


def test_old_primary_loses_write_access_when_replaced(p4rt: Any) -> None:
    async def scenario() -> None:
        async with p4rt.switchd() as sw:
            old = await sw.primary(10)
            await sw.set_pipeline(election_id=10)
            await sw.write([p4rt.insert(sw.build.next_hop(1, 1))], election_id=10)
            new = sw.stream()
            await new.arbitrate(11)
            assert await new.next_arbitration() == (OK, 11)
            assert await old.next_arbitration() == (ALREADY_EXISTS, 11)
            try:
                await sw.write([p4rt.insert(sw.build.next_hop(2, 1))], election_id=10)
            except p4rt.WriteFailed as exc:
                assert exc.code == grpc.StatusCode.PERMISSION_DENIED
            else:
                raise AssertionError("the old primary could still write")
            await sw.write([p4rt.insert(sw.build.next_hop(2, 1))], election_id=11)

    p4rt.run(scenario())


def test_packet_out_gets_a_stream_error_and_the_stream_lives_on(p4rt: Any) -> None:
    from finsy.proto import p4r

    async def scenario() -> None:
        async with p4rt.switchd() as sw:
            s = await sw.primary(10)
            await s.call.write(p4r.StreamMessageRequest(packet=p4r.PacketOut(payload=b"x")))
            msg = await s.next()
            assert msg.WhichOneof("update") == "error"
            assert msg.error.canonical_code == grpc.StatusCode.UNIMPLEMENTED.value[0]
            assert msg.error.packet_out.packet_out.payload == b"x"
            await sw.set_pipeline(election_id=10)  # still primary

    p4rt.run(scenario())
