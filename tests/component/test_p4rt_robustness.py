"""Nothing a client sends ends switchd: bytes that are no protobuf, a client that goes away in
the middle of a write (the write still completes, so the store matches the data plane), a
data plane that raises."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

import grpc
from finsy.proto import p4r

ALL_ENTRIES = p4r.Entity(table_entry=p4r.TableEntry())
METHODS = (
    "Write",
    "Read",
    "SetForwardingPipelineConfig",
    "GetForwardingPipelineConfig",
    "Capabilities",
)


def test_bytes_that_are_no_protobuf(p4rt: Any) -> None:
    async def scenario() -> None:
        async with p4rt.switchd() as sw:
            await sw.primary(10)
            await sw.set_pipeline()
            for method in METHODS:
                path = f"/p4.v1.P4Runtime/{method}"
                if method == "Read":
                    call: Any = sw.channel.unary_stream(path)
                else:
                    call = sw.channel.unary_unary(path)
                try:
                    result = call(b"\xff\xff\xff\x0f garbage")
                    if method == "Read":
                        async for _ in result:
                            pass
                    else:
                        await result
                except grpc.aio.AioRpcError as exc:
                    assert exc.code() != grpc.StatusCode.OK
                else:
                    raise AssertionError(f"{method} accepted garbage")
            stream = sw.channel.stream_stream("/p4.v1.P4Runtime/StreamChannel")()
            await stream.write(b"\xff\xff\xff\x0f garbage")
            try:
                await asyncio.wait_for(stream.read(), 10)
            except grpc.aio.AioRpcError as exc:
                assert exc.code() != grpc.StatusCode.OK
            # Still serving, and still the same primary.
            await sw.write([p4rt.insert(sw.build.next_hop(1, 1))])
            assert len(await sw.read(ALL_ENTRIES)) == 1

    p4rt.run(scenario())


class GatedDataplane:
    """A MemoryDataplane whose apply() waits for a gate, to hold a write in the data plane."""

    def __init__(self, base: Any) -> None:
        self.base = base
        self.entered = threading.Event()
        self.gate = threading.Event()

    def set_pipeline(self, p4info: Any) -> None:
        self.base.set_pipeline(p4info)

    def apply(self, changes: Any) -> Any:
        self.entered.set()
        assert self.gate.wait(30)
        return self.base.apply(changes)

    def direct_counter(self, entry: Any) -> Any:
        raise RuntimeError("counter hardware on fire")

    def recover(self, p4info: Any) -> Any:
        return self.base.recover(p4info)


def test_a_write_whose_client_leaves_still_completes(p4rt: Any) -> None:
    async def scenario() -> None:
        dp = GatedDataplane(p4rt.MemoryDataplane())
        async with p4rt.switchd(dp) as sw:
            await sw.primary(10)
            await sw.set_pipeline()
            request = p4r.WriteRequest(
                device_id=1,
                election_id=p4r.Uint128(low=10),
                updates=[p4rt.insert(sw.build.next_hop(i, 1)) for i in (1, 2, 3)],
            )
            call = sw.stub.Write(request)
            assert await asyncio.to_thread(dp.entered.wait, 30)
            call.cancel()  # the client goes away while the kernel is being programmed
            with contextlib.suppress(asyncio.CancelledError):
                await call
            dp.gate.set()
            # The write finishes: the store holds exactly what the data plane holds.
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while len(await sw.read(ALL_ENTRIES)) < 3:
                assert loop.time() < deadline, "the abandoned write was not committed"
                await asyncio.sleep(0.01)
            assert len(dp.base.entities) == 3

    p4rt.run(scenario())


def test_a_data_plane_that_raises_on_counters(p4rt: Any) -> None:
    async def scenario() -> None:
        dp = GatedDataplane(p4rt.MemoryDataplane())
        dp.gate.set()
        async with p4rt.switchd(dp) as sw:
            await sw.primary(10)
            await sw.set_pipeline()
            await sw.write([p4rt.insert(sw.build.my_sid("fcbb:bb00:1::/48", "end"))])
            te = p4r.TableEntry(table_id=sw.names.table("my_sid"))
            te.counter_data.SetInParent()
            try:
                await sw.read(p4r.Entity(table_entry=te))
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.INTERNAL
                assert "on fire" in (exc.details() or "")
            else:
                raise AssertionError("the read did not fail")
            assert len(await sw.read(ALL_ENTRIES)) == 1

    p4rt.run(scenario())
