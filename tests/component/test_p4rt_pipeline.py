"""SetForwardingPipelineConfig (srv6.p4's P4Info only; VERIFY, VERIFY_AND_COMMIT,
RECONCILE_AND_COMMIT, COMMIT), GetForwardingPipelineConfig, Capabilities, and the pipeline
kept in the state directory across a restart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest
from finsy import pbutil
from finsy.proto import p4i, p4r

SET = p4r.SetForwardingPipelineConfigRequest
GET = p4r.GetForwardingPipelineConfigRequest
REPO = Path(__file__).resolve().parents[2]
SRV6_P4INFO = REPO / "p4" / "build" / "srv6.p4info.txtpb"


async def expect_error(awaitable: Any, code: grpc.StatusCode) -> str:
    try:
        await awaitable
    except grpc.aio.AioRpcError as exc:
        assert exc.code() == code, (exc.code(), exc.details())
        return exc.details() or ""
    raise AssertionError(f"expected {code.name}")


def test_no_pipeline_yet(p4rt: Any) -> None:
    from finsy.p4client import P4ClientError

    async def scenario() -> None:
        async with p4rt.switchd() as sw:
            await sw.primary(10)
            reply = await sw.stub.GetForwardingPipelineConfig(GET(device_id=1))
            assert not reply.HasField("config")
            try:
                await sw.write([p4rt.insert(sw.build.next_hop(1, 1))])
            except p4rt.WriteFailed as exc:
                assert exc.code == grpc.StatusCode.FAILED_PRECONDITION
                assert exc.details == []
                assert "pipeline" in exc.message
            else:
                raise AssertionError("a write without a pipeline was accepted")
            try:
                await sw.read(p4r.Entity(table_entry=p4r.TableEntry()))
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.FAILED_PRECONDITION
                # finsy recognises the message as "no pipeline configured".
                assert P4ClientError(exc, "Read").is_pipeline_missing
            else:
                raise AssertionError("a read without a pipeline was accepted")

    p4rt.run(scenario())


def test_a_different_p4info_is_refused_with_what_differs(p4rt: Any) -> None:
    async def scenario() -> None:
        async with p4rt.switchd() as sw:
            await sw.primary(10)
            other = p4i.P4Info()
            other.CopyFrom(sw.p4info)
            # Remove routing_v6, widen rewrite's port, add an unknown table.
            kept = [t for t in other.tables if t.preamble.name != "IngressPipeImpl.routing_v6"]
            del other.tables[:]
            other.tables.extend(kept)
            for action in other.actions:
                if action.preamble.name == "IngressPipeImpl.rewrite":
                    action.params[0].bitwidth = 16
            extra = other.tables.add()
            extra.preamble.id = 49999999
            extra.preamble.name = "Other.table"
            for action in (SET.VERIFY, SET.VERIFY_AND_COMMIT, SET.RECONCILE_AND_COMMIT):
                message = await expect_error(
                    sw.set_pipeline(other, action=action), grpc.StatusCode.INVALID_ARGUMENT
                )
                assert "table IngressPipeImpl.routing_v6: missing" in message
                assert "action IngressPipeImpl.rewrite param port: bitwidth 16, expected 9" in (
                    message
                )
                assert "table Other.table: not in the expected P4Info" in message
            # Nothing was committed.
            reply = await sw.stub.GetForwardingPipelineConfig(GET(device_id=1))
            assert not reply.HasField("config")
            assert sw.dataplane.pipelines == 0

    p4rt.run(scenario())


def test_documentation_and_annotations_do_not_count(p4rt: Any) -> None:
    async def scenario() -> None:
        async with p4rt.switchd() as sw:
            await sw.primary(10)
            same = p4i.P4Info()
            same.CopyFrom(sw.p4info)
            same.tables[0].preamble.annotations.append('@brief("x")')
            same.tables[0].preamble.doc.brief = "the host ports"
            same.actions[1].params.add()  # ... but an extra param does
            message = await expect_error(
                sw.set_pipeline(same, action=SET.VERIFY), grpc.StatusCode.INVALID_ARGUMENT
            )
            assert "param" in message and "not expected" in message
            del same.actions[1].params[-1]
            await sw.set_pipeline(same, action=SET.VERIFY)

    p4rt.run(scenario())


def test_verify_and_commit_then_get_every_response_type(p4rt: Any) -> None:
    async def scenario() -> None:
        async with p4rt.switchd() as sw:
            await sw.primary(10)
            await sw.set_pipeline(action=SET.VERIFY)
            assert sw.dataplane.pipelines == 0
            await sw.set_pipeline(cookie=42, device_config=b"{json}")
            assert sw.dataplane.pipelines == 1

            async def get(rtype: int) -> p4r.ForwardingPipelineConfig:
                reply = await sw.stub.GetForwardingPipelineConfig(
                    GET(device_id=1, response_type=rtype)
                )
                return reply.config

            full = await get(GET.ALL)
            assert full.p4info == sw.p4info
            assert full.p4_device_config == b"{json}"
            assert full.cookie.cookie == 42
            cookie = await get(GET.COOKIE_ONLY)
            assert cookie.cookie.cookie == 42
            assert not cookie.HasField("p4info") and not cookie.p4_device_config
            p4info = await get(GET.P4INFO_AND_COOKIE)
            assert p4info.p4info == sw.p4info and not p4info.p4_device_config
            device = await get(GET.DEVICE_CONFIG_AND_COOKIE)
            assert device.p4_device_config == b"{json}" and not device.HasField("p4info")
            await expect_error(
                sw.stub.GetForwardingPipelineConfig(GET(device_id=2)), grpc.StatusCode.NOT_FOUND
            )

    p4rt.run(scenario())


def test_commit_clears_and_reconcile_keeps_the_entries(p4rt: Any) -> None:
    async def scenario() -> None:
        async with p4rt.switchd() as sw:
            await sw.primary(10)
            await sw.set_pipeline(cookie=1)
            await sw.write([p4rt.insert(sw.build.next_hop(1, 1))])
            all_entries = p4r.Entity(table_entry=p4r.TableEntry())

            await sw.set_pipeline(cookie=2, action=SET.RECONCILE_AND_COMMIT)
            assert len(await sw.read(all_entries)) == 1
            assert sw.dataplane.pipelines == 1  # the data plane was not flushed
            reply = await sw.stub.GetForwardingPipelineConfig(
                GET(device_id=1, response_type=GET.COOKIE_ONLY)
            )
            assert reply.config.cookie.cookie == 2

            await sw.set_pipeline(cookie=3, action=SET.VERIFY_AND_COMMIT)
            assert await sw.read(all_entries) == []
            assert sw.dataplane.pipelines == 2
            assert sw.dataplane.entities == {}

    p4rt.run(scenario())


def test_reconcile_without_a_pipeline_commits(p4rt: Any) -> None:
    async def scenario() -> None:
        async with p4rt.switchd() as sw:
            await sw.primary(10)
            await sw.set_pipeline(action=SET.RECONCILE_AND_COMMIT)
            assert sw.dataplane.pipelines == 1
            await sw.write([p4rt.insert(sw.build.next_hop(1, 1))])

    p4rt.run(scenario())


def test_unsupported_actions_are_refused_clearly(p4rt: Any) -> None:
    async def scenario() -> None:
        async with p4rt.switchd() as sw:
            await sw.primary(10)
            message = await expect_error(
                sw.set_pipeline(action=SET.VERIFY_AND_SAVE), grpc.StatusCode.UNIMPLEMENTED
            )
            assert "VERIFY_AND_SAVE" in message
            # COMMIT: nothing was saved; a config must not be given.
            await expect_error(sw.set_pipeline(action=SET.COMMIT), grpc.StatusCode.INVALID_ARGUMENT)
            await expect_error(
                sw.stub.SetForwardingPipelineConfig(
                    SET(device_id=1, election_id=p4r.Uint128(low=10), action=SET.COMMIT)
                ),
                grpc.StatusCode.NOT_FOUND,
            )
            await expect_error(
                sw.set_pipeline(action=SET.UNSPECIFIED), grpc.StatusCode.INVALID_ARGUMENT
            )
            # A request without a config at all.
            await expect_error(
                sw.stub.SetForwardingPipelineConfig(
                    SET(device_id=1, election_id=p4r.Uint128(low=10), action=SET.VERIFY)
                ),
                grpc.StatusCode.INVALID_ARGUMENT,
            )
            await expect_error(
                sw.stub.SetForwardingPipelineConfig(
                    SET(device_id=7, election_id=p4r.Uint128(low=10), action=SET.VERIFY)
                ),
                grpc.StatusCode.NOT_FOUND,
            )

    p4rt.run(scenario())


def test_capabilities(p4rt: Any) -> None:
    async def scenario() -> None:
        async with p4rt.switchd() as sw:
            reply = await sw.stub.Capabilities(p4r.CapabilitiesRequest())
            assert reply.p4runtime_api_version == "1.5.0"

    p4rt.run(scenario())


@pytest.mark.skipif(not SRV6_P4INFO.exists(), reason="p4/build/srv6.p4info.txtpb not built")
def test_by_default_only_srv6_p4info_is_accepted(p4rt: Any) -> None:
    srv6 = pbutil.from_text(SRV6_P4INFO.read_text(), p4i.P4Info)

    async def scenario() -> None:
        # p4info=SRV6_P4INFO is what the server does by default; the kit passes its own.
        from switchd.p4rt.pipeline import DEFAULT_P4INFO_PATH

        assert DEFAULT_P4INFO_PATH == SRV6_P4INFO
        async with p4rt.switchd(p4info=DEFAULT_P4INFO_PATH) as sw:
            await sw.primary(10)
            message = await expect_error(
                sw.set_pipeline(sw.p4info), grpc.StatusCode.INVALID_ARGUMENT
            )
            assert "table IngressPipeImpl.acl: not in the expected P4Info" in message
            await sw.set_pipeline(srv6)

    p4rt.run(scenario())


def test_missing_reference_p4info_is_failed_precondition(p4rt: Any, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with p4rt.switchd(p4info=tmp_path / "nowhere.txtpb") as sw:
            await sw.primary(10)
            message = await expect_error(sw.set_pipeline(), grpc.StatusCode.FAILED_PRECONDITION)
            assert "nowhere.txtpb" in message

    p4rt.run(scenario())


def test_a_restarted_switchd_serves_the_saved_pipeline_and_recovered_entries(
    p4rt: Any, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    dataplane = p4rt.MemoryDataplane()

    async def first_run() -> None:
        async with p4rt.switchd(dataplane, state_dir=state) as sw:
            await sw.primary(10)
            await sw.set_pipeline(cookie=77)
            b = sw.build
            await sw.write(
                [
                    p4rt.insert(b.next_hop(1, 1)),
                    p4rt.insert(b.next_hop(2, 2)),
                    p4rt.insert(b.member(1, 1)),
                    p4rt.insert(b.member(2, 2)),
                ]
            )
            await sw.write([p4rt.insert(b.group(1, [(1, 1, 1), (2, 1, 2)]))])
            await sw.write([p4rt.insert(b.route("2001:db8:1::/64", group=1))])

    async def second_run() -> None:
        async with p4rt.switchd(dataplane, state_dir=state) as sw:
            reply = await sw.stub.GetForwardingPipelineConfig(GET(device_id=1))
            assert reply.config.cookie.cookie == 77
            assert reply.config.p4info == sw.p4info
            entries = await sw.read(p4r.Entity(table_entry=p4r.TableEntry()))
            assert len(entries) == 3
            groups = await sw.read(p4r.Entity(action_profile_group=p4r.ActionProfileGroup()))
            assert len(groups) == 1
            # The store knows the references again: the group cannot go while a route uses it.
            await sw.primary(11)
            codes = await sw.write_codes(
                [p4rt.delete(sw.build.group(1, [])), p4rt.delete(sw.build.member(1, 1))],
                election_id=11,
            )
            assert codes == [9, 9]  # FAILED_PRECONDITION

    p4rt.run(first_run())
    assert dataplane.pipelines == 1
    p4rt.run(second_run())
    assert dataplane.pipelines == 1  # the restart did not flush the data plane


def test_a_saved_pipeline_that_is_not_accepted_any_more_is_dropped(
    p4rt: Any, tmp_path: Path
) -> None:
    from switchd.p4rt.pipeline import PipelineState

    state = tmp_path / "state"
    other = p4i.P4Info()
    other.CopyFrom(p4rt.p4info)
    del other.tables[-1]
    PipelineState(state).save(p4r.ForwardingPipelineConfig(p4info=other))

    async def scenario() -> None:
        async with p4rt.switchd(state_dir=state) as sw:
            reply = await sw.stub.GetForwardingPipelineConfig(GET(device_id=1))
            assert not reply.HasField("config")
            assert not (state / "pipeline.binpb").exists()

    p4rt.run(scenario())
