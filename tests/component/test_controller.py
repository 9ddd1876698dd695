"""The controller and switchd in one process: a switchd per switch of fat-tree-4 (the real
P4Runtime server with srv6.p4's P4Info over an in-memory data plane, on Unix sockets), the
controller's service with its finsy sessions, and the northbound gRPC API, all on one
asyncio loop. What the switches hold is read from their own data planes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from controller.intents import Disjoint, fast_reroute, repair_order
from controller.northbound import srv6lab_pb2 as pb
from controller.northbound import srv6lab_pb2_grpc as pb_grpc
from controller.northbound.server import start_api, stop_api
from controller.service import ControllerService
from controller.southbound import SwitchAddress
from controller.topology import Topology, load
from switchd.dataplane import Change, ChangeKind, DataplaneError
from switchd.p4rt.pipeline import DEFAULT_P4INFO_PATH
from switchd.p4rt.server import P4RuntimeServer, Switchd
from tests.component.conftest import MemoryDataplane

ROOT = Path(__file__).resolve().parents[2]
FAT_TREE = ROOT / "topologies" / "fat-tree-4.yaml"
HEADEND = "IngressPipeImpl.srv6_headend"

pytestmark = pytest.mark.skipif(
    not DEFAULT_P4INFO_PATH.exists(), reason="p4/build/srv6.p4info.txtpb not built"
)


@dataclass
class Fabric:
    topo: Topology
    dataplanes: dict[str, MemoryDataplane]
    addresses: list[SwitchAddress]
    tmp: Path

    def headend_entries(self, switch: str) -> int:
        dp = self.dataplanes[switch]
        assert dp.p4info is not None
        table = next(t.preamble.id for t in dp.p4info.tables if t.preamble.name == HEADEND)
        return sum(
            1
            for e in dp.entities.values()
            if e.WhichOneof("entity") == "table_entry" and e.table_entry.table_id == table
        )

    def writes(self) -> dict[str, int]:
        return {name: dp.apply_calls for name, dp in self.dataplanes.items()}

    def service(self, election_id: int = 10, **kw: Any) -> ControllerService:
        return ControllerService(
            self.topo,
            self.addresses,
            election_id=election_id,
            state_dir=self.tmp / "controller",
            apply_timeout=20,
            **kw,
        )


@asynccontextmanager
async def fabric(tmp: Path) -> AsyncIterator[Fabric]:
    topo = load(FAT_TREE)
    dataplanes: dict[str, MemoryDataplane] = {}
    addresses: list[SwitchAddress] = []
    async with AsyncExitStack() as stack:
        for sw in topo.switches:
            ports = {
                link.interface_at(sw.name).port: link.interface_at(sw.name).name
                for link in topo.links
                if sw.name in link.ends()
            }
            dp = MemoryDataplane()
            server = P4RuntimeServer(dp, device_id=sw.node_id, ports=ports)
            switchd = Switchd(server)
            await switchd.start(f"unix:{tmp}/{sw.name}.sock")
            stack.push_async_callback(switchd.stop, None)
            dataplanes[sw.name] = dp
            addresses.append(SwitchAddress(sw.name, sw.node_id, f"unix:{tmp}/{sw.name}.sock"))
        yield Fabric(topo, dataplanes, addresses, tmp)


async def until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def programmed(service: ControllerService) -> None:
    await until(lambda: not service.waiting_switches())


def run(scenario: Callable[[Path], Awaitable[None]], tmp: Path, timeout: float = 120) -> None:
    async def main() -> None:
        await asyncio.wait_for(scenario(tmp), timeout)

    asyncio.run(main())


def test_programs_every_switch_and_a_restart_writes_nothing(tmp_path: Path) -> None:
    async def scenario(tmp: Path) -> None:
        async with fabric(tmp) as f:
            service = f.service()
            await service.start()
            await programmed(service)
            for name, dp in f.dataplanes.items():
                want = len(service.desired_entities(name))
                assert want > 40, name
                assert len(dp.entities) == want, name
                assert dp.pipelines == 1, name
            plans = await service.plans()
            assert all(not p for p in plans.values()), plans
            await service.stop()

            before = f.writes()
            again = f.service()
            await again.start()
            await programmed(again)
            assert f.writes() == before, "a restart with nothing changed wrote something"
            assert all(dp.pipelines == 1 for dp in f.dataplanes.values()), "pipeline re-pushed"
            await again.stop()

    run(scenario, tmp_path)


@asynccontextmanager
async def api(f: Fabric, **kw: Any) -> AsyncIterator[tuple[ControllerService, Any]]:
    service = f.service(**kw)
    await service.start()
    await programmed(service)
    server = await start_api(service, f"unix:{f.tmp}/controller.sock")
    channel = grpc.aio.insecure_channel(f"unix:{f.tmp}/controller.sock")
    try:
        yield service, pb_grpc.ControllerStub(channel)
    finally:
        await channel.close()
        await stop_api(server)
        await service.stop()


async def refused(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value


def disjoint(src: str, dst: str, k: int, mode: str = "edge", **kw: Any) -> pb.IntentSpec:
    return pb.IntentSpec(disjoint=pb.Disjoint(src=src, dst=dst, k=k, mode=mode, **kw))


def test_api_installs_checks_and_deletes_intents(tmp_path: Path) -> None:
    async def scenario(tmp: Path) -> None:
        async with fabric(tmp) as f, api(f) as (_service, stub):
            reply = await stub.CreateIntent(
                pb.CreateIntentRequest(id="gpu", spec=disjoint("h1", "h16", 2))
            )
            assert reply.status == pb.Intent.INSTALLED, reply
            assert len(reply.paths) == 4  # two each way
            forward = [p for p in reply.paths if p.nodes[0] == "h1"]
            links = [
                {frozenset(e) for e in zip(p.nodes, p.nodes[1:], strict=False)} for p in forward
            ]
            shared = (links[0] & links[1]) - {
                frozenset(("h1", "edge1")),
                frozenset(("h16", "edge8")),
            }
            assert not shared, f"paths share fabric links: {shared}"
            assert f.headend_entries("edge1") == 1 and f.headend_entries("edge8") == 1
            assert all(p.sids for p in reply.paths)

            listed = await stub.ListIntents(pb.ListIntentsRequest())
            assert [i.id for i in listed.intents] == ["connectivity", "gpu"]
            got = await stub.GetIntent(pb.GetIntentRequest(id="gpu"))
            assert got.spec.disjoint.k == 2 and got.status == pb.Intent.INSTALLED

            # bad input names the field
            err = await refused(
                stub.CreateIntent(pb.CreateIntentRequest(spec=disjoint("h1", "h99", 2)))
            )
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "spec.disjoint.dst" in (err.details() or "")
            err = await refused(
                stub.CreateIntent(pb.CreateIntentRequest(spec=disjoint("h1", "h2", 0)))
            )
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "spec.disjoint.k" in (err.details() or "")
            err = await refused(stub.CreateIntent(pb.CreateIntentRequest()))
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
            # impossible: says what is possible
            err = await refused(
                stub.CreateIntent(pb.CreateIntentRequest(spec=disjoint("h3", "h14", 4, "node")))
            )
            assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "only 2 node-disjoint paths" in (err.details() or "")
            # needs what "gpu" holds
            err = await refused(
                stub.CreateIntent(
                    pb.CreateIntentRequest(
                        spec=pb.IntentSpec(
                            explicit=pb.Explicit(src="h2", dst="h16", waypoints=["core2"])
                        )
                    )
                )
            )
            assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "gpu" in (err.details() or "")
            err = await refused(
                stub.CreateIntent(pb.CreateIntentRequest(id="gpu", spec=disjoint("h3", "h9", 1)))
            )
            assert err.code() == grpc.StatusCode.ALREADY_EXISTS
            assert [i.id for i in (await stub.ListIntents(pb.ListIntentsRequest())).intents] == [
                "connectivity",
                "gpu",
            ]

            await stub.DeleteIntent(pb.DeleteIntentRequest(id="gpu"))
            assert f.headend_entries("edge1") == 0 and f.headend_entries("edge8") == 0
            err = await refused(stub.GetIntent(pb.GetIntentRequest(id="gpu")))
            assert err.code() == grpc.StatusCode.NOT_FOUND

            paths = await stub.GetPaths(pb.GetPathsRequest(src="h1", dst="h16", k=2))
            assert len(paths.paths) == 2 and all(p.sids for p in paths.paths)
            cores = [[n for n in p.nodes if n.startswith("core")] for p in paths.paths]
            assert cores == [["core1"], ["core3"]]
            # spread (the salt): an odd one starts every equal-cost scan at the second
            # next hop, so the same pair crosses the other two cores at the same cost
            spread = await stub.GetPaths(pb.GetPathsRequest(src="h1", dst="h16", k=2, spread=5))
            cores = [[n for n in p.nodes if n.startswith("core")] for p in spread.paths]
            assert cores == [["core2"], ["core4"]] and all(p.sids for p in spread.paths)
            assert [p.cost for p in spread.paths] == [p.cost for p in paths.paths]
            zero = await stub.GetPaths(pb.GetPathsRequest(src="h1", dst="h16", k=2, spread=0))
            assert list(zero.paths) == list(paths.paths)
            topo = await stub.GetTopology(pb.GetTopologyRequest())
            assert topo.name == "fat-tree-4" and all(s.role == "primary" for s in topo.switches)
            diff = await stub.Diff(pb.DiffRequest())
            assert all(s.readable and s.changes == 0 for s in diff.switches), diff

    run(scenario, tmp_path)


def test_a_refused_write_rolls_the_intent_back(tmp_path: Path) -> None:
    def refuse_headend(change: Change) -> DataplaneError | None:
        entity = change.after or change.before
        if (
            change.kind is ChangeKind.INSERT
            and entity is not None
            and entity.WhichOneof("entity") == "action_profile_member"
        ):
            return DataplaneError(13, "edge8: out of seg6 encap resources (test)")
        return None

    async def scenario(tmp: Path) -> None:
        async with fabric(tmp) as f, api(f) as (_service, stub):
            f.dataplanes["edge8"].refuse = refuse_headend
            err = await refused(
                stub.CreateIntent(pb.CreateIntentRequest(id="gpu", spec=disjoint("h1", "h16", 2)))
            )
            assert err.code() == grpc.StatusCode.ABORTED, err
            assert "edge8" in (err.details() or "")
            listed = await stub.ListIntents(pb.ListIntentsRequest())
            assert [i.id for i in listed.intents] == ["connectivity"]
            # nothing half-installed: edge1's part was taken out again
            await until(lambda: f.headend_entries("edge1") == 0)
            assert f.headend_entries("edge8") == 0
            f.dataplanes["edge8"].refuse = None
            diff = await stub.Diff(pb.DiffRequest())
            assert all(s.changes == 0 for s in diff.switches), diff

    run(scenario, tmp_path)


def test_link_down_moves_intents_to_backups_then_recomputes(tmp_path: Path) -> None:
    async def scenario(tmp: Path) -> None:
        async with fabric(tmp) as f, api(f) as (service, stub):
            await stub.CreateIntent(pb.CreateIntentRequest(id="gpu", spec=disjoint("h1", "h16", 2)))
            events = stub.WatchEvents(pb.WatchEventsRequest(history=1000))
            gpu = service.solution.states["gpu"]
            nodes = gpu.paths[0].path.nodes  # h1 edge1 aggX coreY ...
            dead = frozenset(nodes[2:4])
            assert "gpu" in service.solution.affected(dead)
            assert await service.link_changed(dead, False, "test")
            assert not await service.link_changed(dead, False, "duplicate"), "not deduplicated"
            state = service.state_of("gpu")
            assert state.status == "installed"
            assert all(dead not in s.links for s in state.paths), "a path still uses the dead link"
            timeline = service.timelines[-1]
            assert timeline.seen_ns <= timeline.computed_ns <= timeline.acked_ns
            assert timeline.acked_ns <= timeline.recompute_acked_ns
            assert not any((await service.plans()).values())

            kinds = []
            async for ev in events:
                kinds.append((ev.kind, ev.state))
                if ev.kind == "reroute" and ev.state == "recomputed":
                    break
            assert ("link", "down") in kinds and ("reroute", "backup") in kinds
            events.cancel()

            assert await service.link_changed(dead, True, "test")
            assert service.state_of("gpu").paths == gpu.paths, "preferred paths not restored"
            assert not any((await service.plans()).values())

    run(scenario, tmp_path)


def test_a_fast_reroute_writes_in_repair_order_and_leaves_deletes_to_the_recompute(
    tmp_path: Path,
) -> None:
    """One write at a time (``reroute_writes=1``): the fast reroute reaches its switches in
    :func:`repair_order`, the ends of the dead link first, and none of its writes deletes a
    member or group (what the new paths no longer use waits for the recompute, which
    deletes it)."""

    async def scenario(tmp: Path) -> None:
        async with fabric(tmp) as f, api(f, reroute_writes=1) as (service, stub):
            await stub.CreateIntent(pb.CreateIntentRequest(id="gpu", spec=disjoint("h1", "h16", 2)))
            nodes = service.solution.states["gpu"].paths[0].path.nodes
            dead = frozenset(nodes[2:4])  # aggX-coreY
            expected = repair_order(
                service.solution, [dead], fast_reroute(f.topo, service.solution, [dead], prune=True)
            )
            assert set(dead) <= set(expected[:2])  # both ends prune: every route through it
            seen: list[tuple[int, str, Change]] = []
            for name, dp in f.dataplanes.items():

                def watch(change: Change, name: str = name) -> None:
                    seen.append((time.monotonic_ns(), name, change))

                dp.refuse = watch
            assert await service.link_changed(dead, False, "test")
            acked = service.timelines[-1].acked_ns
            fast = [(name, c) for t, name, c in seen if t <= acked]
            first = list(dict.fromkeys(name for name, _ in fast))
            assert first == expected
            profile = ("action_profile_member", "action_profile_group")

            def deleted(c: Change) -> bool:
                return c.kind is ChangeKind.DELETE and (
                    c.before is not None and c.before.WhichOneof("entity") in profile
                )

            assert not any(deleted(c) for _, c in fast)
            assert any(deleted(c) for t, _, c in seen if t > acked)
            assert not any((await service.plans()).values())

    run(scenario, tmp_path)


def test_a_backup_controller_takes_over_when_the_primary_stops(tmp_path: Path) -> None:
    async def scenario(tmp: Path) -> None:
        async with fabric(tmp) as f:
            primary = f.service(election_id=20)
            await primary.start()
            await programmed(primary)
            backup = ControllerService(
                f.topo, f.addresses, election_id=10, state_dir=tmp / "backup", apply_timeout=20
            )
            await backup.start()
            await until(lambda: all(s.role == "backup" for s in backup.sessions.values()))
            before = f.writes()
            await primary.stop()
            await until(lambda: all(s.role == "primary" for s in backup.sessions.values()))
            await programmed(backup)
            assert f.writes() == before, "the take-over rewrote an identical state"
            state = await backup.create_intent(
                "gpu", {"kind": "disjoint", "src": "h1", "dst": "h16"}
            )
            assert state.status == "installed"
            assert isinstance(backup.intents["gpu"].spec, Disjoint)
            await backup.stop()

    run(scenario, tmp_path)
