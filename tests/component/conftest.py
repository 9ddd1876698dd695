"""Shared fixtures of the component tests.

switchd (P4Runtime, gNMI): the ``p4rt`` fixture gives a kit to start a switchd in-process on
a loopback port (or a Unix socket) and drive it with real gRPC clients: a P4Info shaped like
srv6.p4's (same names as the kernel data plane expects, plus a few tables that exercise every
match kind), an in-memory data plane, message builders and client helpers. The ``netns``
fixture makes a network namespace (root only) and removes it, also when the test fails.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest
from finsy import pbutil
from finsy.proto import U128, p4i, p4r, p4r_grpc, rpc_status

from switchd.dataplane import Change, ChangeKind, CounterValue, DataplaneError
from switchd.p4rt.server import P4RuntimeServer, Switchd

T = TypeVar("T")

# -- a P4Info shaped like srv6.p4's -------------------------------------------------------------

TEST_P4INFO_TEXT = r"""
pkg_info { arch: "v1model" }
tables {
  preamble { id: 40000001 name: "IngressPipeImpl.host_port" alias: "host_port" }
  match_fields { id: 1 name: "standard_metadata.ingress_port" bitwidth: 9 match_type: EXACT }
  action_refs { id: 21000001 }
  action_refs { id: 21000000 scope: DEFAULT_ONLY }
  size: 256
}
tables {
  preamble { id: 40000002 name: "IngressPipeImpl.sid_block" alias: "sid_block" }
  match_fields { id: 1 name: "hdr.ipv6.dst_addr" bitwidth: 128 match_type: LPM }
  action_refs { id: 21000002 }
  action_refs { id: 21000000 scope: DEFAULT_ONLY }
  size: 64
}
tables {
  preamble { id: 40000003 name: "IngressPipeImpl.my_sid" alias: "my_sid" }
  match_fields { id: 1 name: "hdr.ipv6.dst_addr" bitwidth: 128 match_type: LPM }
  action_refs { id: 21000003 }
  action_refs { id: 21000004 }
  action_refs { id: 21000005 }
  action_refs { id: 21000006 }
  action_refs { id: 21000007 }
  action_refs { id: 21000000 scope: DEFAULT_ONLY }
  direct_resource_ids: 31000001
  size: 4096
}
tables {
  preamble { id: 40000004 name: "IngressPipeImpl.srv6_headend" alias: "srv6_headend" }
  match_fields { id: 1 name: "hdr.ipv6.dst_addr" bitwidth: 128 match_type: LPM }
  action_refs { id: 21000008 }
  action_refs { id: 21000009 }
  action_refs { id: 21000000 scope: DEFAULT_ONLY }
  const_default_action_id: 21000000
  implementation_id: 29000002
  size: 4096
}
tables {
  preamble { id: 40000005 name: "IngressPipeImpl.routing_v6" alias: "routing_v6" }
  match_fields { id: 1 name: "hdr.ipv6.dst_addr" bitwidth: 128 match_type: LPM }
  action_refs { id: 21000010 }
  action_refs { id: 21000000 scope: DEFAULT_ONLY }
  const_default_action_id: 21000000
  implementation_id: 29000001
  size: 65536
}
tables {
  preamble { id: 40000006 name: "IngressPipeImpl.next_hop" alias: "next_hop" }
  match_fields { id: 1 name: "local_metadata.nexthop_id" bitwidth: 16 match_type: EXACT }
  action_refs { id: 21000011 }
  action_refs { id: 21000000 scope: DEFAULT_ONLY }
  size: 4096
}
tables {
  preamble { id: 40000007 name: "IngressPipeImpl.acl" alias: "acl" }
  match_fields { id: 1 name: "hdr.ipv6.src_addr" bitwidth: 128 match_type: TERNARY }
  match_fields { id: 2 name: "local_metadata.l4_dst_port" bitwidth: 16 match_type: RANGE }
  match_fields { id: 3 name: "hdr.ipv6.next_hdr" bitwidth: 8 match_type: OPTIONAL }
  match_fields { id: 4 name: "standard_metadata.ingress_port" bitwidth: 9 match_type: EXACT }
  action_refs { id: 21000020 }
  action_refs { id: 21000021 scope: TABLE_ONLY }
  action_refs { id: 21000000 }
  size: 128
}
tables {
  preamble { id: 40000008 name: "IngressPipeImpl.keyless" alias: "keyless" }
  action_refs { id: 21000020 }
  action_refs { id: 21000000 }
  size: 1
}
tables {
  preamble { id: 40000009 name: "IngressPipeImpl.const_default" alias: "const_default" }
  match_fields { id: 1 name: "hdr.ipv6.next_hdr" bitwidth: 8 match_type: EXACT }
  action_refs { id: 21000020 }
  const_default_action_id: 21000020
  size: 16
}
tables {
  preamble { id: 40000010 name: "IngressPipeImpl.plain_profile_table" alias: "plain_profile_table" }
  match_fields { id: 1 name: "hdr.ipv6.next_hdr" bitwidth: 8 match_type: EXACT }
  action_refs { id: 21000010 }
  action_refs { id: 21000000 scope: DEFAULT_ONLY }
  const_default_action_id: 21000000
  implementation_id: 29000003
  size: 16
}
actions { preamble { id: 21000000 name: "NoAction" alias: "NoAction" } }
actions { preamble { id: 21000001 name: "IngressPipeImpl.mark_host_port" alias: "mark_host_port" } }
actions {
  preamble { id: 21000002 name: "IngressPipeImpl.mark_internal_sid" alias: "mark_internal_sid" }
}
actions { preamble { id: 21000003 name: "IngressPipeImpl.end" alias: "end" } }
actions {
  preamble { id: 21000004 name: "IngressPipeImpl.end_x" alias: "end_x" }
  params { id: 1 name: "nexthop_id" bitwidth: 16 }
}
actions { preamble { id: 21000005 name: "IngressPipeImpl.usid_un" alias: "usid_un" } }
actions {
  preamble { id: 21000006 name: "IngressPipeImpl.usid_ua" alias: "usid_ua" }
  params { id: 1 name: "nexthop_id" bitwidth: 16 }
}
actions { preamble { id: 21000007 name: "IngressPipeImpl.end_dt6" alias: "end_dt6" } }
actions {
  preamble { id: 21000008 name: "IngressPipeImpl.h_encaps" alias: "h_encaps" }
  params { id: 1 name: "src_addr" bitwidth: 128 }
  params { id: 2 name: "num_segments" bitwidth: 8 }
  params { id: 3 name: "s1" bitwidth: 128 }
  params { id: 4 name: "s2" bitwidth: 128 }
  params { id: 5 name: "s3" bitwidth: 128 }
  params { id: 6 name: "s4" bitwidth: 128 }
  params { id: 7 name: "s5" bitwidth: 128 }
  params { id: 8 name: "s6" bitwidth: 128 }
}
actions {
  preamble { id: 21000009 name: "IngressPipeImpl.h_encaps_red" alias: "h_encaps_red" }
  params { id: 1 name: "src_addr" bitwidth: 128 }
  params { id: 2 name: "num_segments" bitwidth: 8 }
  params { id: 3 name: "s1" bitwidth: 128 }
  params { id: 4 name: "s2" bitwidth: 128 }
  params { id: 5 name: "s3" bitwidth: 128 }
  params { id: 6 name: "s4" bitwidth: 128 }
  params { id: 7 name: "s5" bitwidth: 128 }
  params { id: 8 name: "s6" bitwidth: 128 }
}
actions {
  preamble { id: 21000010 name: "IngressPipeImpl.set_next_hop" alias: "set_next_hop" }
  params { id: 1 name: "nexthop_id" bitwidth: 16 }
}
actions {
  preamble { id: 21000011 name: "IngressPipeImpl.rewrite" alias: "rewrite" }
  params { id: 1 name: "port" bitwidth: 9 }
  params { id: 2 name: "src_mac" bitwidth: 48 }
  params { id: 3 name: "dst_mac" bitwidth: 48 }
}
actions { preamble { id: 21000020 name: "IngressPipeImpl.drop" alias: "drop" } }
actions { preamble { id: 21000021 name: "IngressPipeImpl.allow" alias: "allow" } }
action_profiles {
  preamble { id: 29000001 name: "IngressPipeImpl.ecmp_selector" alias: "ecmp_selector" }
  table_ids: 40000005
  with_selector: true
  size: 4096
  max_group_size: 16
}
action_profiles {
  preamble { id: 29000002 name: "IngressPipeImpl.headend_selector" alias: "headend_selector" }
  table_ids: 40000004
  with_selector: true
  size: 1024
}
action_profiles {
  preamble { id: 29000003 name: "IngressPipeImpl.plain_profile" alias: "plain_profile" }
  table_ids: 40000010
  size: 64
}
counters {
  preamble { id: 30000001 name: "IngressPipeImpl.port_counter" alias: "port_counter" }
  spec { unit: BOTH }
  size: 512
}
direct_counters {
  preamble { id: 31000001 name: "IngressPipeImpl.my_sid_counter" alias: "my_sid_counter" }
  spec { unit: BOTH }
  direct_table_id: 40000003
}
"""

DEVICE_ID = 1
PORTS = {1: "s1-eth1", 2: "s1-eth2", 3: "s1-eth3"}


def load_test_p4info() -> p4i.P4Info:
    return pbutil.from_text(TEST_P4INFO_TEXT, p4i.P4Info)


class Names:
    """Ids by name (short names: the part after the last dot) from a P4Info."""

    def __init__(self, p4info: p4i.P4Info) -> None:
        self.p4info = p4info

        def short(name: str) -> str:
            return name.rsplit(".", 1)[-1]

        self.tables = {short(t.preamble.name): t for t in p4info.tables}
        self.actions = {short(a.preamble.name): a for a in p4info.actions}
        self.profiles = {short(p.preamble.name): p for p in p4info.action_profiles}
        self.counters = {short(c.preamble.name): c for c in p4info.counters}

    def table(self, name: str) -> int:
        return int(self.tables[name].preamble.id)

    def field(self, table: str, name: str) -> int:
        for f in self.tables[table].match_fields:
            if f.name == name or f.name.rsplit(".", 1)[-1] == name:
                return int(f.id)
        raise KeyError(f"{table}.{name}")

    def action(self, name: str) -> int:
        return int(self.actions[name].preamble.id)

    def param(self, action: str, name: str) -> int:
        for p in self.actions[action].params:
            if p.name == name:
                return int(p.id)
        raise KeyError(f"{action}.{name}")

    def profile(self, name: str) -> int:
        return int(self.profiles[name].preamble.id)


# -- message builders ----------------------------------------------------------------------------


def b(value: int, width_bytes: int | None = None) -> bytes:
    """An integer as bytes: shortest form, or ``width_bytes`` long."""
    if width_bytes is None:
        width_bytes = max(1, (value.bit_length() + 7) // 8)
    return value.to_bytes(width_bytes, "big")


def ip6(text: str) -> bytes:
    import ipaddress

    return ipaddress.IPv6Address(text).packed


class Builder:
    """Entities of the test P4Info, by name."""

    def __init__(self, names: Names) -> None:
        self.n = names

    def action(self, name: str, **params: bytes) -> p4r.Action:
        return p4r.Action(
            action_id=self.n.action(name),
            params=[
                p4r.Action.Param(param_id=self.n.param(name, k), value=v) for k, v in params.items()
            ],
        )

    def exact(self, table: str, field: str, value: bytes) -> p4r.FieldMatch:
        return p4r.FieldMatch(
            field_id=self.n.field(table, field), exact=p4r.FieldMatch.Exact(value=value)
        )

    def lpm(self, table: str, prefix: str, field: str = "dst_addr") -> p4r.FieldMatch:
        addr, plen = prefix.split("/")
        return p4r.FieldMatch(
            field_id=self.n.field(table, field),
            lpm=p4r.FieldMatch.LPM(value=ip6(addr), prefix_len=int(plen)),
        )

    def entry(
        self,
        table: str,
        match: list[p4r.FieldMatch] | None = None,
        action: p4r.Action | None = None,
        *,
        member: int = 0,
        group: int = 0,
        priority: int = 0,
        default: bool = False,
    ) -> p4r.Entity:
        te = p4r.TableEntry(
            table_id=self.n.table(table),
            match=match or [],
            priority=priority,
            is_default_action=default,
        )
        if action is not None:
            te.action.action.CopyFrom(action)
        elif member:
            te.action.action_profile_member_id = member
        elif group:
            te.action.action_profile_group_id = group
        return p4r.Entity(table_entry=te)

    def route(self, prefix: str, *, member: int = 0, group: int = 0) -> p4r.Entity:
        return self.entry(
            "routing_v6", [self.lpm("routing_v6", prefix)], member=member, group=group
        )

    def next_hop(self, nexthop_id: int, port: int, dst_mac: int = 0x0A0000000001) -> p4r.Entity:
        return self.entry(
            "next_hop",
            [self.exact("next_hop", "nexthop_id", b(nexthop_id))],
            self.action(
                "rewrite", port=b(port), src_mac=b(0x025300000001, 6), dst_mac=b(dst_mac, 6)
            ),
        )

    def my_sid(self, prefix: str, action: str = "end", **params: bytes) -> p4r.Entity:
        return self.entry("my_sid", [self.lpm("my_sid", prefix)], self.action(action, **params))

    def member(self, member_id: int, nexthop_id: int, profile: str = "ecmp_selector") -> p4r.Entity:
        return p4r.Entity(
            action_profile_member=p4r.ActionProfileMember(
                action_profile_id=self.n.profile(profile),
                member_id=member_id,
                action=self.action("set_next_hop", nexthop_id=b(nexthop_id)),
            )
        )

    def group(
        self,
        group_id: int,
        members: list[tuple[int, int, int]],
        profile: str = "ecmp_selector",
        max_size: int = 0,
    ) -> p4r.Entity:
        """members: (member id, weight, watch port; 0 for none)"""
        return p4r.Entity(
            action_profile_group=p4r.ActionProfileGroup(
                action_profile_id=self.n.profile(profile),
                group_id=group_id,
                max_size=max_size,
                members=[
                    p4r.ActionProfileGroup.Member(
                        member_id=m, weight=w, watch_port=b(port) if port else b""
                    )
                    for m, w, port in members
                ],
            )
        )


def insert(entity: p4r.Entity) -> p4r.Update:
    return p4r.Update(type=p4r.Update.INSERT, entity=entity)


def modify(entity: p4r.Entity) -> p4r.Update:
    return p4r.Update(type=p4r.Update.MODIFY, entity=entity)


def delete(entity: p4r.Entity) -> p4r.Update:
    return p4r.Update(type=p4r.Update.DELETE, entity=entity)


# -- an in-memory data plane ---------------------------------------------------------------------


def _entity_key(entity: p4r.Entity) -> tuple[Any, ...]:
    which = entity.WhichOneof("entity")
    if which == "table_entry":
        te = entity.table_entry
        return (
            "t",
            te.table_id,
            te.is_default_action,
            tuple(m.SerializeToString() for m in te.match),
            te.priority,
        )
    if which == "action_profile_member":
        m = entity.action_profile_member
        return ("m", m.action_profile_id, m.member_id)
    g = entity.action_profile_group
    return ("g", g.action_profile_id, g.group_id)


@dataclass
class MemoryDataplane:
    """The Dataplane protocol over a dict, with failure injection: ``refuse`` is called on
    every change and may return a DataplaneError for it."""

    p4info: p4i.P4Info | None = None
    entities: dict[tuple[Any, ...], p4r.Entity] = field(default_factory=dict)
    applied: list[Change] = field(default_factory=list)
    apply_calls: int = 0
    pipelines: int = 0
    counters: dict[tuple[Any, ...], CounterValue] = field(default_factory=dict)
    refuse: Callable[[Change], DataplaneError | None] | None = None

    def set_pipeline(self, p4info: p4i.P4Info) -> None:
        self.p4info = p4info
        self.entities.clear()
        self.counters.clear()
        self.pipelines += 1

    def apply(self, changes: list[Change]) -> list[DataplaneError | None]:
        self.apply_calls += 1
        results: list[DataplaneError | None] = []
        for change in changes:
            error = self.refuse(change) if self.refuse is not None else None
            if error is not None:
                results.append(error)
                continue
            self.applied.append(change)
            if change.kind is ChangeKind.DELETE:
                assert change.before is not None
                self.entities.pop(_entity_key(change.before), None)
            else:
                assert change.after is not None
                self.entities[_entity_key(change.after)] = change.after
            results.append(None)
        return results

    def direct_counter(self, entry: p4r.TableEntry) -> CounterValue | None:
        assert self.p4info is not None
        table = next(t for t in self.p4info.tables if t.preamble.id == entry.table_id)
        if not any(
            r in {c.preamble.id for c in self.p4info.direct_counters}
            for r in table.direct_resource_ids
        ):
            return None
        return self.counters.get(_entity_key(p4r.Entity(table_entry=entry)), CounterValue(0, 0))

    def count(self, entity: p4r.Entity, packets: int, nbytes: int) -> None:
        """Simulate traffic hitting a table entry."""
        key = _entity_key(entity)
        old = self.counters.get(key, CounterValue(0, 0))
        self.counters[key] = CounterValue(old.packets + packets, old.bytes + nbytes)

    def recover(self, p4info: p4i.P4Info) -> list[p4r.Entity]:
        del p4info
        return list(self.entities.values())


# -- clients -------------------------------------------------------------------------------------


class WriteFailed(Exception):
    def __init__(self, code: grpc.StatusCode, message: str, details: list[p4r.Error]) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.details = details


def status_details(error: grpc.aio.AioRpcError) -> list[p4r.Error]:
    """The p4.v1.Error details of a failed RPC, unpacked with finsy's google.rpc.Status."""
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = rpc_status.Status.FromString(value)
            out = []
            for detail in status.details:
                err = p4r.Error()
                assert detail.Unpack(err)
                out.append(err)
            return out
    return []


class Stream:
    """A StreamChannel, read with timeouts."""

    def __init__(self, stub: Any) -> None:
        self.call = stub.StreamChannel()

    async def arbitrate(
        self, election_id: int | None, device_id: int = DEVICE_ID, role: p4r.Role | None = None
    ) -> None:
        update = p4r.MasterArbitrationUpdate(device_id=device_id)
        if election_id is not None:
            update.election_id.CopyFrom(U128.encode(election_id))
        if role is not None:
            update.role.CopyFrom(role)
        await self.call.write(p4r.StreamMessageRequest(arbitration=update))

    async def next(self, timeout: float = 5.0) -> p4r.StreamMessageResponse:
        msg = await asyncio.wait_for(self.call.read(), timeout)
        assert msg is not grpc.aio.EOF, "the stream ended"
        return msg  # type: ignore[no-any-return]

    async def next_arbitration(self, timeout: float = 5.0) -> tuple[int, int | None]:
        """(status code, election id) of the next arbitration update."""
        msg = await self.next(timeout)
        assert msg.WhichOneof("update") == "arbitration", msg
        arb = msg.arbitration
        eid = U128.decode(arb.election_id) if arb.HasField("election_id") else None
        return arb.status.code, eid

    async def ended_with(self, timeout: float = 5.0) -> grpc.StatusCode:
        """Wait for the server to end the stream; its status code."""
        try:
            while True:
                msg = await asyncio.wait_for(self.call.read(), timeout)
                if msg is grpc.aio.EOF:
                    break
        except grpc.aio.AioRpcError as exc:
            return exc.code()
        return await asyncio.wait_for(self.call.code(), timeout)

    def cancel(self) -> None:
        self.call.cancel()


@dataclass
class Running:
    """A switchd running in this process, and a client channel to it."""

    switchd: Switchd
    server: P4RuntimeServer
    address: str
    channel: Any
    stub: Any
    dataplane: Any
    p4info: p4i.P4Info
    names: Names
    build: Builder
    streams: list[Stream] = field(default_factory=list)

    def stream(self) -> Stream:
        s = Stream(self.stub)
        self.streams.append(s)
        return s

    async def primary(self, election_id: int = 10) -> Stream:
        """Open a stream and become primary with ``election_id``."""
        s = self.stream()
        await s.arbitrate(election_id)
        code, eid = await s.next_arbitration()
        assert code == 0 and eid == election_id, (code, eid)
        return s

    async def set_pipeline(
        self,
        p4info: p4i.P4Info | None = None,
        election_id: int = 10,
        action: int = p4r.SetForwardingPipelineConfigRequest.VERIFY_AND_COMMIT,
        cookie: int | None = 0xC0FFEE,
        device_config: bytes = b"",
    ) -> None:
        config = p4r.ForwardingPipelineConfig(
            p4info=p4info if p4info is not None else self.p4info,
            p4_device_config=device_config,
        )
        if cookie is not None:
            config.cookie.cookie = cookie
        await self.stub.SetForwardingPipelineConfig(
            p4r.SetForwardingPipelineConfigRequest(
                device_id=DEVICE_ID,
                election_id=U128.encode(election_id),
                action=action,
                config=config,
            )
        )

    async def write(
        self,
        updates: list[p4r.Update],
        election_id: int | None = 10,
        atomicity: int = p4r.WriteRequest.CONTINUE_ON_ERROR,
        device_id: int = DEVICE_ID,
    ) -> None:
        """Write; raise WriteFailed with the per-update details when it fails."""
        request = p4r.WriteRequest(device_id=device_id, updates=updates, atomicity=atomicity)
        if election_id is not None:
            request.election_id.CopyFrom(U128.encode(election_id))
        try:
            await self.stub.Write(request)
        except grpc.aio.AioRpcError as exc:
            raise WriteFailed(exc.code(), exc.details() or "", status_details(exc)) from None

    async def write_codes(self, updates: list[p4r.Update], **kw: Any) -> list[int]:
        """The canonical code of each update (all 0 when the write succeeds)."""
        try:
            await self.write(updates, **kw)
        except WriteFailed as exc:
            assert exc.code == grpc.StatusCode.UNKNOWN, exc
            assert len(exc.details) == len(updates), exc.details
            return [d.canonical_code for d in exc.details]
        return [0] * len(updates)

    async def read(self, *entities: p4r.Entity, device_id: int = DEVICE_ID) -> list[p4r.Entity]:
        out: list[p4r.Entity] = []
        async for response in self.stub.Read(
            p4r.ReadRequest(device_id=device_id, entities=list(entities))
        ):
            out.extend(response.entities)
        return out


def free_unix_path(tmp: Path) -> str:
    return f"unix:{tmp / 'p4rt.sock'}"


class Kit:
    """Everything a switchd component test needs (the ``p4rt`` fixture)."""

    TEST_P4INFO_TEXT = TEST_P4INFO_TEXT
    DEVICE_ID = DEVICE_ID
    PORTS = PORTS
    MemoryDataplane = MemoryDataplane
    WriteFailed = WriteFailed
    Names = Names
    Builder = Builder
    insert = staticmethod(insert)
    modify = staticmethod(modify)
    delete = staticmethod(delete)
    b = staticmethod(b)
    ip6 = staticmethod(ip6)
    status_details = staticmethod(status_details)

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.p4info = load_test_p4info()
        self.names = Names(self.p4info)
        self.build = Builder(self.names)

    def p4info_file(self) -> Path:
        path = self.tmp_path / "test.p4info.txtpb"
        if not path.exists():
            path.write_text(TEST_P4INFO_TEXT)
        return path

    @asynccontextmanager
    async def switchd(
        self,
        dataplane: Any = None,
        *,
        p4info: p4i.P4Info | Path | None = None,
        ports: dict[int, str] | None = None,
        state_dir: Path | None = None,
        listen: str = "127.0.0.1:0",
        gnmi: Any = None,
    ) -> AsyncIterator[Running]:
        dp = dataplane if dataplane is not None else MemoryDataplane()
        server = P4RuntimeServer(
            dp,
            device_id=DEVICE_ID,
            ports=PORTS if ports is None else ports,
            state_dir=state_dir,
            p4info=self.p4info if p4info is None else p4info,
        )
        sw = Switchd(server, gnmi)
        await sw.start(listen)
        assert sw.address is not None
        channel = grpc.aio.insecure_channel(sw.address)
        running = Running(
            sw,
            server,
            sw.address,
            channel,
            p4r_grpc.P4RuntimeStub(channel),
            dp,
            self.p4info,
            self.names,
            self.build,
        )
        try:
            yield running
        finally:
            for s in running.streams:
                s.cancel()
            await channel.close()
            await sw.stop(grace=None)

    @staticmethod
    def run(coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        """Run a test scenario on a fresh event loop, with an overall deadline."""
        return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.fixture
def p4rt(tmp_path: Path) -> Kit:
    return Kit(tmp_path)


# -- network namespaces (root) -------------------------------------------------------------------

_ns_counter = itertools.count()


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@pytest.fixture
def netns() -> Iterator[str]:
    """A fresh network namespace ``srv6lab-t<pid>-<n>``, removed at the end."""
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces)")
    name = f"srv6lab-t{os.getpid()}-{next(_ns_counter)}"
    ip("netns", "add", name)
    try:
        ip("-n", name, "link", "set", "lo", "up")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


def wait_until(
    condition: Callable[[], bool], timeout: float = 10.0, what: str = "condition"
) -> None:
    """Poll a condition (with back-off) until it holds; fail after ``timeout`` seconds."""
    import time

    deadline = time.monotonic() + timeout
    delay = 0.005
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


@pytest.fixture
def waiter() -> Callable[..., None]:
    return wait_until
