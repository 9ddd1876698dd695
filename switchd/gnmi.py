"""gNMI for port status, the way Stratum serves it, so that a P4Runtime controller (finsy's
Switch, ONOS) sees a port go down or up the moment the kernel does.

Served paths (OpenConfig interfaces; ``name`` is the interface name, ``*`` for all ports):

    /interfaces/interface[name=N]/state/oper-status    UP, DOWN, LOWER_LAYER_DOWN, NOT_PRESENT ...
    /interfaces/interface[name=N]/state/admin-status   UP or DOWN
    /interfaces/interface[name=N]/state/ifindex        the port's P4 (SDN) port number
    /interfaces/interface[name=N]/state/id             the same
    /interfaces/interface[name=N]/state/name           N

``ifindex`` carries the P4 port number, not the kernel's ifindex: that is what Stratum
answers and what finsy reads to number its ports.

Get answers those leaves. Subscribe in STREAM mode with ON_CHANGE (or TARGET_DEFINED)
subscriptions sends the current value of every subscribed leaf, then ``sync_response``, then
one update each time a port's state changes; ONCE mode ends after ``sync_response``. Port
state comes from netlink link events (RTM_NEWLINK, RTM_DELLINK) in the switch's network
namespace, read with pyroute2's asyncio socket in switchd's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from finsy.proto import gnmi, gnmi_grpc

log = logging.getLogger("switchd.gnmi")

IFF_UP = 0x1
IFF_LOWER_UP = 0x10000

# IFLA_OPERSTATE (RFC 2863 names, as the kernel reports them) -> OpenConfig oper-status
_OPER_STATUS = {
    "UP": "UP",
    "DOWN": "DOWN",
    "LOWERLAYERDOWN": "LOWER_LAYER_DOWN",
    "DORMANT": "DORMANT",
    "TESTING": "TESTING",
    "NOTPRESENT": "NOT_PRESENT",
}

LEAVES = ("name", "oper-status", "admin-status", "ifindex", "id")
CHANGING_LEAVES = frozenset({"oper-status", "admin-status"})


def oper_status(operstate: str | None, flags: int) -> str:
    """The OpenConfig oper-status of a link from the kernel's operstate and flags (a driver
    that does not track its state reports UNKNOWN: then the flags decide)."""
    status = _OPER_STATUS.get(operstate or "UNKNOWN")
    if status is None:
        return "UP" if flags & IFF_UP and flags & IFF_LOWER_UP else "DOWN"
    return status


@dataclass(frozen=True, slots=True)
class PortState:
    name: str
    port: int
    oper_status: str
    admin_status: str


class PortMonitor:
    """The state of the switch's ports, kept current from netlink link events.

    ``ports`` maps P4 port numbers to interface names; ``netns`` names the network namespace
    of the interfaces (None: switchd's own). Subscribers get a PortState each time a port's
    oper-status or admin-status changes.
    """

    def __init__(self, ports: Mapping[int, str], netns: str | None = None) -> None:
        self.ports = dict(ports)
        self.netns = netns
        self._by_name = {name: port for port, name in self.ports.items()}
        self._state: dict[str, PortState] = {
            name: PortState(name, port, "NOT_PRESENT", "DOWN") for port, name in self.ports.items()
        }
        self._subscribers: set[asyncio.Queue[PortState]] = set()
        self._ipr: Any = None
        self._task: asyncio.Task[None] | None = None

    def state(self, name: str) -> PortState | None:
        return self._state.get(name)

    def states(self) -> list[PortState]:
        return [self._state[name] for name in sorted(self._state, key=self._by_name.__getitem__)]

    def subscribe(self) -> asyncio.Queue[PortState]:
        queue: asyncio.Queue[PortState] = asyncio.Queue()
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[PortState]) -> None:
        self._subscribers.discard(queue)

    def set_state(self, name: str, oper: str, admin: str) -> None:
        """Record a port's state; subscribers hear of it if it changed."""
        old = self._state.get(name)
        if old is None or (old.oper_status == oper and old.admin_status == admin):
            return
        new = PortState(name, old.port, oper, admin)
        self._state[name] = new
        log.info("port %s (%d): oper-status %s, admin-status %s", name, new.port, oper, admin)
        for queue in self._subscribers:
            queue.put_nowait(new)

    async def start(self) -> None:
        """Open the netlink socket, read every port's state, then follow link events."""
        from pyroute2 import AsyncIPRoute
        from pyroute2.netlink.rtnl import RTMGRP_LINK

        self._ipr = AsyncIPRoute(netns=self.netns) if self.netns else AsyncIPRoute()
        await self._ipr.bind(groups=RTMGRP_LINK)
        await self._dump()
        self._task = asyncio.create_task(self._follow(), name="switchd-port-monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None

    async def _dump(self) -> None:
        present: set[str] = set()
        dump = await self._ipr.link("dump")
        async for msg in dump:
            name = msg.get("ifname")
            if name in self._by_name:
                present.add(name)
                self._link_message(msg)
        log.debug(
            "link dump%s: ports present: %s",
            f" in {self.netns}" if self.netns else "",
            sorted(present),
        )
        for name in self._by_name:
            if name not in present:
                self.set_state(name, "NOT_PRESENT", "DOWN")

    async def _follow(self) -> None:
        while True:
            try:
                async for msg in self._ipr.get():
                    event = msg.get("event")
                    if event == "RTM_NEWLINK":
                        self._link_message(msg)
                    elif event == "RTM_DELLINK":
                        name = msg.get("ifname")
                        if name in self._by_name:
                            self.set_state(name, "NOT_PRESENT", "DOWN")
            except asyncio.CancelledError:
                raise
            except Exception:
                # A lost event (socket overrun) or a message pyroute2 cannot parse: read the
                # whole state again rather than miss a change.
                log.exception("netlink link events: resynchronising")
                await self._dump()

    def _link_message(self, msg: Any) -> None:
        name = msg.get("ifname")
        if name not in self._by_name:
            return
        flags = int(msg.get("flags") or 0)
        self.set_state(
            name,
            oper_status(msg.get("IFLA_OPERSTATE"), flags),
            "UP" if flags & IFF_UP else "DOWN",
        )


# -- gNMI ------------------------------------------------------------------------------------


class GnmiError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def interface_path(name: str, leaf: str) -> gnmi.Path:
    return gnmi.Path(
        elem=[
            gnmi.PathElem(name="interfaces"),
            gnmi.PathElem(name="interface", key={"name": name}),
            gnmi.PathElem(name="state"),
            gnmi.PathElem(name=leaf),
        ]
    )


def path_text(path: gnmi.Path) -> str:
    parts = []
    for elem in path.elem:
        keys = "".join(f"[{k}={v}]" for k, v in sorted(elem.key.items()))
        parts.append(f"{elem.name}{keys}")
    return "/" + "/".join(parts)


class GnmiServer(gnmi_grpc.gNMIServicer):
    """The gNMI service of a switchd: Capabilities, Get and Subscribe for port status."""

    GNMI_VERSION = "0.10.0"

    def __init__(self, monitor: PortMonitor) -> None:
        self.monitor = monitor

    def add_to_server(self, server: Any) -> None:
        gnmi_grpc.add_gNMIServicer_to_server(self, server)

    # -- paths ----------------------------------------------------------------------------

    def resolve(self, prefix: gnmi.Path | None, path: gnmi.Path) -> list[tuple[str, str]]:
        """The (interface name, leaf) pairs a path selects."""
        if path.element and not path.elem:
            raise GnmiError(
                grpc.StatusCode.INVALID_ARGUMENT, "the deprecated Path.element is not supported"
            )
        elems = list(prefix.elem if prefix is not None else []) + list(path.elem)
        origin = path.origin or (prefix.origin if prefix is not None else "")
        if origin not in ("", "openconfig", "openconfig-interfaces"):
            raise GnmiError(grpc.StatusCode.NOT_FOUND, f"unknown origin {origin!r}")
        text = path_text(gnmi.Path(elem=elems))
        names = [e.name for e in elems]
        if not names or names[0] != "interfaces":
            raise GnmiError(
                grpc.StatusCode.NOT_FOUND, f"{text}: switchd serves /interfaces/interface only"
            )
        if len(names) == 1:
            return [(s.name, leaf) for s in self.monitor.states() for leaf in LEAVES]
        if names[1] != "interface" or (len(names) > 2 and names[2] != "state") or len(names) > 4:
            raise GnmiError(grpc.StatusCode.NOT_FOUND, f"{text}: no such path")
        key = dict(elems[1].key)
        wanted = key.get("name", "*")
        if wanted == "*":
            ports = [s.name for s in self.monitor.states()]
        elif self.monitor.state(wanted) is not None:
            ports = [wanted]
        else:
            raise GnmiError(grpc.StatusCode.NOT_FOUND, f"{text}: {wanted} is not a switch port")
        if len(names) == 4:
            if names[3] not in LEAVES:
                raise GnmiError(
                    grpc.StatusCode.NOT_FOUND,
                    f"{text}: unknown leaf {names[3]!r} (served: {', '.join(LEAVES)})",
                )
            leaves: Iterable[str] = (names[3],)
        else:
            leaves = LEAVES
        return [(name, leaf) for name in ports for leaf in leaves]

    def value(self, name: str, leaf: str) -> gnmi.TypedValue:
        state = self.monitor.state(name)
        assert state is not None
        if leaf == "oper-status":
            return gnmi.TypedValue(string_val=state.oper_status)
        if leaf == "admin-status":
            return gnmi.TypedValue(string_val=state.admin_status)
        if leaf in ("ifindex", "id"):
            return gnmi.TypedValue(uint_val=state.port)
        return gnmi.TypedValue(string_val=state.name)

    def _update(self, name: str, leaf: str) -> gnmi.Update:
        return gnmi.Update(path=interface_path(name, leaf), val=self.value(name, leaf))

    # -- RPCs -----------------------------------------------------------------------------

    async def Capabilities(
        self, request: gnmi.CapabilityRequest, context: Any
    ) -> gnmi.CapabilityResponse:
        return gnmi.CapabilityResponse(
            supported_models=[
                gnmi.ModelData(
                    name="openconfig-interfaces",
                    organization="OpenConfig working group",
                    version="2.4.3",
                )
            ],
            supported_encodings=[gnmi.PROTO, gnmi.JSON, gnmi.JSON_IETF],
            gNMI_version=self.GNMI_VERSION,
        )

    async def Get(self, request: gnmi.GetRequest, context: Any) -> gnmi.GetResponse:
        try:
            if request.type == gnmi.GetRequest.CONFIG:
                raise GnmiError(
                    grpc.StatusCode.UNIMPLEMENTED, "switchd has no configuration data, only state"
                )
            prefix = request.prefix if request.HasField("prefix") else None
            updates = [
                self._update(name, leaf)
                for path in request.path
                for name, leaf in self.resolve(prefix, path)
            ]
        except GnmiError as exc:
            log.info("gNMI Get from %s: %s", context.peer(), exc.message)
            await context.abort(exc.code, exc.message)
            raise AssertionError("unreachable") from exc
        except Exception as exc:
            log.exception("gNMI Get failed")
            await context.abort(grpc.StatusCode.INTERNAL, f"Get failed: {exc}")
            raise AssertionError("unreachable") from exc
        return gnmi.GetResponse(
            notification=[gnmi.Notification(timestamp=time.time_ns(), update=updates)]
        )

    async def Set(self, request: gnmi.SetRequest, context: Any) -> gnmi.SetResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "switchd's gNMI is read-only")
        raise AssertionError("unreachable")

    async def Subscribe(
        self, request_iterator: AsyncIterator[gnmi.SubscribeRequest], context: Any
    ) -> AsyncIterator[gnmi.SubscribeResponse]:
        queue: asyncio.Queue[PortState] | None = None
        try:
            try:
                first = await anext(aiter(request_iterator))
            except StopAsyncIteration:
                return
            watched, once, updates_only = self._subscription(first)
            queue = self.monitor.subscribe()  # before the initial values: no change is lost
            if not updates_only:
                for name, leaf in watched:
                    yield _notification([self._update(name, leaf)])
            yield gnmi.SubscribeResponse(sync_response=True)
            if once:
                return
            by_name: dict[str, list[str]] = {}
            for name, leaf in watched:
                if leaf in CHANGING_LEAVES:
                    by_name.setdefault(name, []).append(leaf)
            sent = {(n, leaf): self.value(n, leaf) for n, leaf in watched}
            while True:
                state = await queue.get()
                changed = []
                for leaf in by_name.get(state.name, ()):
                    value = self.value(state.name, leaf)
                    if sent.get((state.name, leaf)) != value:
                        sent[(state.name, leaf)] = value
                        changed.append(
                            gnmi.Update(path=interface_path(state.name, leaf), val=value)
                        )
                if changed:
                    yield _notification(changed)
        except GnmiError as exc:
            log.info("gNMI Subscribe from %s: %s", context.peer(), exc.message)
            await context.abort(exc.code, exc.message)
        finally:
            if queue is not None:
                self.monitor.unsubscribe(queue)

    def _subscription(
        self, request: gnmi.SubscribeRequest
    ) -> tuple[list[tuple[str, str]], bool, bool]:
        if request.WhichOneof("request") != "subscribe":
            raise GnmiError(
                grpc.StatusCode.INVALID_ARGUMENT,
                "the first SubscribeRequest must carry a SubscriptionList",
            )
        sl = request.subscribe
        if sl.mode == gnmi.SubscriptionList.POLL:
            raise GnmiError(grpc.StatusCode.UNIMPLEMENTED, "POLL subscriptions are not supported")
        once = sl.mode == gnmi.SubscriptionList.ONCE
        prefix = sl.prefix if sl.HasField("prefix") else None
        watched: list[tuple[str, str]] = []
        for sub in sl.subscription:
            if not once and sub.mode == gnmi.SAMPLE:
                raise GnmiError(
                    grpc.StatusCode.UNIMPLEMENTED,
                    f"{path_text(sub.path)}: SAMPLE subscriptions are not supported; use ON_CHANGE",
                )
            for pair in self.resolve(prefix, sub.path):
                if pair not in watched:
                    watched.append(pair)
        if not watched:
            raise GnmiError(grpc.StatusCode.INVALID_ARGUMENT, "the subscription names no path")
        return watched, once, sl.updates_only


def _notification(updates: list[gnmi.Update]) -> gnmi.SubscribeResponse:
    return gnmi.SubscribeResponse(
        update=gnmi.Notification(timestamp=time.time_ns(), update=updates)
    )
