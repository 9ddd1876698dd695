"""switchd's gNMI: Capabilities, Get and Subscribe for the OpenConfig interface state, with
port state from the kernel (netlink link events in a real network namespace; root)."""

from __future__ import annotations

import asyncio
import subprocess
from typing import Any

import grpc
import pytest
from finsy.proto import gnmi, gnmi_grpc

from switchd.gnmi import GnmiServer, PortMonitor, interface_path

PORTS = {1: "s1-eth1", 2: "s1-eth2"}


def ip(netns: str, *args: str) -> None:
    subprocess.run(["ip", "-n", netns, *args], check=True, capture_output=True, text=True)


def make_ports(netns: str) -> None:
    for port, name in PORTS.items():
        ip(netns, "link", "add", name, "type", "veth", "peer", "name", f"h{port}-eth0")
        ip(netns, "link", "set", name, "up")
        ip(netns, "link", "set", f"h{port}-eth0", "up")


def oper_path(name: str = "*") -> gnmi.Path:
    return interface_path(name, "oper-status")


def subscribe_request(
    *paths: gnmi.Path,
    mode: int = gnmi.SubscriptionList.STREAM,
    sub_mode: int = gnmi.ON_CHANGE,
    updates_only: bool = False,
) -> gnmi.SubscribeRequest:
    return gnmi.SubscribeRequest(
        subscribe=gnmi.SubscriptionList(
            mode=mode,
            updates_only=updates_only,
            subscription=[gnmi.Subscription(path=p, mode=sub_mode) for p in paths],
        )
    )


def updates_of(response: gnmi.SubscribeResponse) -> list[tuple[str, Any]]:
    out = []
    for u in response.update.update:
        name = u.path.elem[1].key["name"]
        out.append((name, getattr(u.val, u.val.WhichOneof("value"))))
    return out


class Subscription:
    def __init__(self, stub: Any, request: gnmi.SubscribeRequest) -> None:
        self.call = stub.Subscribe()
        self.request = request

    async def start(self) -> None:
        await self.call.write(self.request)

    async def next(self, timeout: float = 10.0) -> gnmi.SubscribeResponse:
        msg = await asyncio.wait_for(self.call.read(), timeout)
        assert msg is not grpc.aio.EOF
        return msg  # type: ignore[no-any-return]

    async def initial(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        while True:
            msg = await self.next()
            if msg.sync_response:
                return values
            values.update(updates_of(msg))

    async def until(self, name: str, value: str) -> None:
        """Wait for an update that reports ``name`` with ``value``."""
        while True:
            if (name, value) in updates_of(await self.next()):
                return


@pytest.fixture
def gnmi_switchd(p4rt: Any, netns: str) -> Any:
    make_ports(netns)

    def start(**kw: Any) -> Any:
        return p4rt.switchd(gnmi=GnmiServer(PortMonitor(PORTS, netns)), ports=PORTS, **kw)

    return start


def test_capabilities_and_get(p4rt: Any, gnmi_switchd: Any) -> None:
    async def scenario() -> None:
        async with gnmi_switchd() as sw:
            stub = gnmi_grpc.gNMIStub(sw.channel)
            caps = await stub.Capabilities(gnmi.CapabilityRequest())
            assert caps.gNMI_version
            assert any(m.name == "openconfig-interfaces" for m in caps.supported_models)
            reply = await stub.Get(
                gnmi.GetRequest(path=[interface_path("*", "ifindex")], encoding=gnmi.PROTO)
            )
            got = {
                u.path.elem[1].key["name"]: u.val.uint_val
                for n in reply.notification
                for u in n.update
            }
            assert got == {"s1-eth1": 1, "s1-eth2": 2}  # the P4 port numbers, as Stratum
            reply = await stub.Get(gnmi.GetRequest(path=[oper_path("s1-eth2")]))
            (update,) = reply.notification[0].update
            assert update.val.string_val == "UP"
            # A prefix and the whole state container of one interface.
            reply = await stub.Get(
                gnmi.GetRequest(
                    prefix=gnmi.Path(elem=[gnmi.PathElem(name="interfaces")]),
                    path=[
                        gnmi.Path(
                            elem=[
                                gnmi.PathElem(name="interface", key={"name": "s1-eth1"}),
                                gnmi.PathElem(name="state"),
                            ]
                        )
                    ],
                )
            )
            leaves = {u.path.elem[-1].name for u in reply.notification[0].update}
            assert {"oper-status", "admin-status", "ifindex", "name"} <= leaves

            for request, code in (
                (gnmi.GetRequest(path=[oper_path("s9-eth9")]), grpc.StatusCode.NOT_FOUND),
                (gnmi.GetRequest(path=[interface_path("*", "mtu")]), grpc.StatusCode.NOT_FOUND),
                (
                    gnmi.GetRequest(path=[gnmi.Path(elem=[gnmi.PathElem(name="system")])]),
                    grpc.StatusCode.NOT_FOUND,
                ),
                (
                    gnmi.GetRequest(path=[oper_path()], type=gnmi.GetRequest.CONFIG),
                    grpc.StatusCode.UNIMPLEMENTED,
                ),
            ):
                try:
                    await stub.Get(request)
                except grpc.aio.AioRpcError as exc:
                    assert exc.code() == code, (request, exc)
                else:
                    raise AssertionError(f"{request} was answered")
            try:
                await stub.Set(gnmi.SetRequest())
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.UNIMPLEMENTED

    p4rt.run(scenario())


def test_subscribe_on_change_follows_the_kernel(p4rt: Any, gnmi_switchd: Any, netns: str) -> None:
    async def scenario() -> None:
        async with gnmi_switchd() as sw:
            stub = gnmi_grpc.gNMIStub(sw.channel)
            sub = Subscription(stub, subscribe_request(oper_path()))
            await sub.start()
            assert await sub.initial() == {"s1-eth1": "UP", "s1-eth2": "UP"}
            # The far end goes down: carrier loss on our port.
            ip(netns, "link", "set", "h1-eth0", "down")
            await sub.until("s1-eth1", "LOWER_LAYER_DOWN")
            ip(netns, "link", "set", "h1-eth0", "up")
            await sub.until("s1-eth1", "UP")
            # Our own port set down.
            ip(netns, "link", "set", "s1-eth2", "down")
            await sub.until("s1-eth2", "DOWN")
            ip(netns, "link", "set", "s1-eth2", "up")
            await sub.until("s1-eth2", "UP")
            # Deleted, then back.
            ip(netns, "link", "del", "s1-eth2")
            await sub.until("s1-eth2", "NOT_PRESENT")
            ip(netns, "link", "add", "s1-eth2", "type", "veth", "peer", "name", "h2-eth0")
            ip(netns, "link", "set", "h2-eth0", "up")
            ip(netns, "link", "set", "s1-eth2", "up")
            await sub.until("s1-eth2", "UP")
            sub.call.cancel()

    p4rt.run(scenario())


def test_subscribe_one_port_updates_only_and_once(p4rt: Any, gnmi_switchd: Any, netns: str) -> None:
    async def scenario() -> None:
        async with gnmi_switchd() as sw:
            stub = gnmi_grpc.gNMIStub(sw.channel)
            sub = Subscription(stub, subscribe_request(oper_path("s1-eth2"), updates_only=True))
            await sub.start()
            assert await sub.initial() == {}
            ip(netns, "link", "set", "s1-eth1", "down")  # not subscribed
            ip(netns, "link", "set", "s1-eth2", "down")
            assert updates_of(await sub.next()) == [("s1-eth2", "DOWN")]
            sub.call.cancel()

            once = Subscription(
                stub, subscribe_request(oper_path(), mode=gnmi.SubscriptionList.ONCE)
            )
            await once.start()
            assert await once.initial() == {"s1-eth1": "DOWN", "s1-eth2": "DOWN"}
            assert await asyncio.wait_for(once.call.read(), 10) is grpc.aio.EOF

    p4rt.run(scenario())


def test_subscribe_errors(p4rt: Any, gnmi_switchd: Any) -> None:
    async def scenario() -> None:
        async with gnmi_switchd() as sw:
            stub = gnmi_grpc.gNMIStub(sw.channel)
            for request, code in (
                (
                    subscribe_request(oper_path(), sub_mode=gnmi.SAMPLE),
                    grpc.StatusCode.UNIMPLEMENTED,
                ),
                (
                    subscribe_request(oper_path(), mode=gnmi.SubscriptionList.POLL),
                    grpc.StatusCode.UNIMPLEMENTED,
                ),
                (subscribe_request(interface_path("*", "counters")), grpc.StatusCode.NOT_FOUND),
                (subscribe_request(), grpc.StatusCode.INVALID_ARGUMENT),
                (gnmi.SubscribeRequest(poll=gnmi.Poll()), grpc.StatusCode.INVALID_ARGUMENT),
            ):
                sub = Subscription(stub, request)
                await sub.start()
                try:
                    await sub.next()
                except grpc.aio.AioRpcError as exc:
                    assert exc.code() == code, (request, exc)
                else:
                    raise AssertionError(f"{request} was accepted")

    p4rt.run(scenario())


def test_gnmi_on_its_own_address(p4rt: Any, netns: str) -> None:
    from switchd.p4rt.server import P4RuntimeServer, Switchd

    make_ports(netns)

    async def scenario() -> None:
        server = P4RuntimeServer(p4rt.MemoryDataplane(), p4info=p4rt.p4info, ports=PORTS)
        sw = Switchd(server, GnmiServer(PortMonitor(PORTS, netns)))
        await sw.start("127.0.0.1:0", "127.0.0.1:0")
        try:
            assert sw.gnmi_address != sw.address
            async with grpc.aio.insecure_channel(sw.gnmi_address) as channel:
                reply = await gnmi_grpc.gNMIStub(channel).Get(
                    gnmi.GetRequest(path=[oper_path("s1-eth1")])
                )
                assert reply.notification[0].update[0].val.string_val == "UP"
        finally:
            await sw.stop(grace=None)

    p4rt.run(scenario())
