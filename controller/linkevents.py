"""Link events: port status from the switches, turned into link up/down for the service.

Two sources, both optional, both deduplicated by the service (whichever reports a change
first wins; the other finds nothing to change):

- gNMI: switchd serves ``/interfaces/interface/state/oper-status`` with ON_CHANGE
  subscriptions on its P4Runtime socket (``gnmi`` in the switch inventory);
- netlink: RTM_NEWLINK in each switch's network namespace (``netns`` in the inventory),
  the only source for BMv2, which has no gNMI. A carrier loss arrives here in about half a
  millisecond.

A link is down when any of its switch ends is down. A link that comes back is reported
after ``hold_down`` seconds of staying up (flap damping); going down is never delayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import struct
from pathlib import Path
from typing import Any

from controller.intents.engine import LinkKey
from controller.netns import socket_in

LOG = logging.getLogger("srv6lab.linkevents")
IFF_UP = 0x1
IFF_LOWER_UP = 0x10000
Port = tuple[str, str]  # (switch, interface name)


class LinkWatcher:
    def __init__(
        self, service: Any, inventory: Path, *, mode: str = "auto", hold_down: float = 0.0
    ) -> None:
        self.service = service
        self.mode = mode
        self.hold_down = hold_down
        try:
            raw = json.loads(inventory.read_text()).get("switches", [])
        except (OSError, ValueError):
            raw = []
        self.switches: list[dict[str, Any]] = [s for s in raw if isinstance(s, dict)]
        self.links: dict[Port, LinkKey] = {}
        self.ends: dict[LinkKey, list[Port]] = {}
        for link in service.topo.links:
            key = frozenset(link.ends())
            for iface in (link.a, link.b):
                if service.topo.is_switch(iface.node):
                    port = (iface.node, iface.name)
                    self.links[port] = key
                    self.ends.setdefault(key, []).append(port)
        self.up: dict[Port, bool] = {}
        self.reported: dict[tuple[Port, str], bool] = {}
        self.why: dict[LinkKey, str] = {}
        self._dirty: set[LinkKey] = set()
        self._wake = asyncio.Event()
        self._pending: dict[LinkKey, asyncio.Task[None]] = {}
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        if self.mode == "off":
            return
        self._tasks.append(asyncio.create_task(self._apply(), name="link-events"))
        for sw in self.switches:
            name = str(sw.get("name"))
            if self.mode in ("auto", "netlink") and sw.get("netns"):
                self._tasks.append(
                    asyncio.create_task(self._netlink(name, sw["netns"]), name=f"netlink:{name}")
                )
            if self.mode in ("auto", "gnmi") and sw.get("gnmi"):
                self._tasks.append(
                    asyncio.create_task(self._gnmi(name, sw["gnmi"]), name=f"gnmi:{name}")
                )

    async def stop(self) -> None:
        for task in [*self._tasks, *self._pending.values()]:
            task.cancel()
        for task in [*self._tasks, *self._pending.values()]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    # -- the merge ---------------------------------------------------------------------------

    def port(self, switch: str, ifname: str, up: bool, source: str) -> None:
        """A port's state from a source. Never waits for the controller: the readers keep
        reading while a reroute runs, and the link's latest state is what gets applied
        (a report a source repeats, or one the other source already gave, changes
        nothing)."""
        port = (switch, ifname)
        key = self.links.get(port)
        if key is None:
            return
        if self.reported.get((port, source)) == up:
            return  # this source said so already (a change of another flag)
        self.reported[(port, source)] = up
        if self.up.get(port, True) == up and port in self.up:
            return  # the other source was first
        self.up[port] = up
        self.why[key] = f"{source} {switch}:{ifname}"
        self._dirty.add(key)
        self._wake.set()

    async def _apply(self) -> None:
        """One worker hands link changes to the service, the latest state of each link."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._dirty:
                key = self._dirty.pop()
                link_up = all(self.up.get(p, True) for p in self.ends[key])
                pending = self._pending.pop(key, None)
                if pending is not None:
                    pending.cancel()
                source = self.why.get(key, "?")
                try:
                    if not link_up:
                        await self.service.link_changed(key, False, source)
                    elif self.hold_down > 0 and key in self.service.down:
                        self._pending[key] = asyncio.create_task(self._after_hold(key, source))
                    else:
                        await self.service.link_changed(key, True, source)
                except Exception:
                    LOG.exception("link %s: applying the change failed", "-".join(sorted(key)))

    async def _after_hold(self, key: LinkKey, source: str) -> None:
        await asyncio.sleep(self.hold_down)
        self._pending.pop(key, None)
        if all(self.up.get(p, True) for p in self.ends[key]):
            await self.service.link_changed(key, True, f"{source} (held {self.hold_down:g} s)")

    # -- netlink -----------------------------------------------------------------------------

    async def _netlink(self, switch: str, netns: str) -> None:
        loop = asyncio.get_running_loop()
        backoff = 0.5
        while True:
            sock: socket.socket | None = None
            try:
                sock = await loop.run_in_executor(None, _netlink_socket_in, netns)
                sock.setblocking(False)
                # subscribe first, then dump: no change falls between the two
                sock.send(_dump_request())
                backoff = 0.5
                while True:
                    data = await loop.sock_recv(sock, 65536)
                    for name, flags in parse_links(data):
                        if (switch, name) in self.links:
                            up = bool(flags & IFF_UP) and bool(flags & IFF_LOWER_UP)
                            self.port(switch, name, up, "netlink")
            except asyncio.CancelledError:
                raise
            except OSError as exc:
                LOG.warning("netlink in %s: %s; retrying in %.1f s", netns, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
            finally:
                if sock is not None:
                    sock.close()

    # -- gNMI --------------------------------------------------------------------------------

    async def _gnmi(self, switch: str, address: str) -> None:
        import grpc
        from finsy.proto import gnmi, gnmi_grpc

        request = gnmi.SubscribeRequest(
            subscribe=gnmi.SubscriptionList(
                mode=gnmi.SubscriptionList.STREAM,
                encoding=gnmi.JSON,
                subscription=[
                    gnmi.Subscription(
                        path=gnmi.Path(
                            elem=[
                                gnmi.PathElem(name="interfaces"),
                                gnmi.PathElem(name="interface", key={"name": "*"}),
                                gnmi.PathElem(name="state"),
                                gnmi.PathElem(name="oper-status"),
                            ]
                        ),
                        mode=gnmi.ON_CHANGE,
                    )
                ],
            )
        )
        backoff = 0.5
        while True:
            try:
                async with grpc.aio.insecure_channel(address) as channel:
                    stub = gnmi_grpc.gNMIStub(channel)
                    call = stub.Subscribe(iter([request]))
                    async for resp in call:
                        backoff = 0.5
                        if not resp.HasField("update"):
                            continue
                        for u in resp.update.update:
                            elems = [*resp.update.prefix.elem, *u.path.elem]
                            name = next(
                                (e.key.get("name") for e in elems if e.name == "interface"), None
                            )
                            if name is None:
                                continue
                            value = _gnmi_value(u.val)
                            self.port(switch, name, value == "UP", "gnmi")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                LOG.debug("gNMI %s (%s): %s; retrying in %.1f s", switch, address, exc, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)


# -- netlink, by hand: a socket opened inside the namespace, RTM_NEWLINK parsed directly ------

RTMGRP_LINK = 0x1
RTM_NEWLINK, RTM_GETLINK, NLMSG_DONE = 16, 18, 3
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
IFLA_IFNAME = 3
_NLMSG = struct.Struct("=IHHII")
_IFINFO = struct.Struct("=BxHiII")
_RTA = struct.Struct("=HH")


def _netlink_socket_in(netns: str) -> socket.socket:
    """A NETLINK_ROUTE socket bound to RTMGRP_LINK inside ``netns``."""

    def bind(sock: socket.socket) -> None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.bind((0, RTMGRP_LINK))

    return socket_in(netns, socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE, bind)


def _dump_request() -> bytes:
    body = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
    return (
        _NLMSG.pack(_NLMSG.size + len(body), RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + body
    )


def parse_links(data: bytes) -> list[tuple[str, int]]:
    """(interface name, flags) of every RTM_NEWLINK message in ``data``."""
    out: list[tuple[str, int]] = []
    offset = 0
    while offset + _NLMSG.size <= len(data):
        length, kind, _flags, _seq, _pid = _NLMSG.unpack_from(data, offset)
        if length < _NLMSG.size:
            break
        if kind == RTM_NEWLINK:
            body = offset + _NLMSG.size
            _family, _type, _index, flags, _change = _IFINFO.unpack_from(data, body)
            pos = body + _IFINFO.size
            end = offset + length
            while pos + _RTA.size <= end:
                rta_len, rta_type = _RTA.unpack_from(data, pos)
                if rta_len < _RTA.size:
                    break
                if rta_type == IFLA_IFNAME:
                    raw = data[pos + _RTA.size : pos + rta_len]
                    out.append((raw.split(b"\0", 1)[0].decode(errors="replace"), flags))
                    break
                pos += (rta_len + 3) & ~3
        offset += (length + 3) & ~3
    return out


def _gnmi_value(val: Any) -> str:
    kind = val.WhichOneof("value")
    if kind in {"json_val", "json_ietf_val"}:
        raw = getattr(val, kind)
        with contextlib.suppress(ValueError):
            return str(json.loads(raw))
        return str(raw.decode(errors="replace")).strip('"')
    return str(getattr(val, kind)) if kind else ""
