"""srv6.p4 entries as typed values, decoded from and encoded to P4Runtime entities.

Pure: no kernel access. :func:`decode` turns a validated ``p4.v1.Entity`` into one of the
records below (or raises :class:`~switchd.dataplane.DataplaneError`); :func:`encode` is its
inverse, used when entries are recovered from the kernel after a restart.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any, NamedTuple

from finsy.proto import p4r

from switchd.dataplane import Change, DataplaneError
from switchd.kernel.schema import Schema

_ntop = socket.inet_ntop
_AF_INET6 = socket.AF_INET6

MAX_ID = 0x0FFF_FFFF
"""Member and group ids must fit the kernel nexthop id ranges (see render.py)."""


class Prefix(NamedTuple):
    """An IPv6 prefix as (network address as an int, length): hashed and printed many
    thousand times per second on the write path, where ipaddress.IPv6Network is slow."""

    value: int
    length: int

    def __str__(self) -> str:
        return f"{_ntop(_AF_INET6, self.value.to_bytes(16, 'big'))}/{self.length}"

    @classmethod
    def parse(cls, text: str) -> Prefix:
        net = ipaddress.IPv6Network(text if "/" in text else f"{text}/128")
        return cls(int(net.network_address), net.prefixlen)


@dataclass(frozen=True, slots=True)
class NextHop:
    nexthop_id: int
    port: int
    src_mac: bytes
    dst_mac: bytes


@dataclass(frozen=True, slots=True)
class EcmpMember:
    member_id: int
    nexthop_id: int


@dataclass(frozen=True, slots=True)
class SegmentList:
    member_id: int
    reduced: bool
    src: ipaddress.IPv6Address
    segments: tuple[ipaddress.IPv6Address, ...]


@dataclass(frozen=True, slots=True)
class GroupMember:
    member_id: int
    weight: int
    watch_port: int | None


@dataclass(frozen=True, slots=True)
class Group:
    profile: str  # "ecmp_selector" or "headend_selector"
    group_id: int
    members: tuple[GroupMember, ...]


class Route(NamedTuple):
    """A routing_v6 or srv6_headend entry: prefix to an action profile member or group. (A
    NamedTuple, like Prefix: one is made for every route written, and the data plane holds
    one per route.)"""

    table: str
    prefix: Prefix
    member_id: int | None
    group_id: int | None


@dataclass(frozen=True, slots=True)
class MySid:
    prefix: Prefix
    behaviour: str  # end, end_x, usid_un, usid_ua, end_dt6
    nexthop_id: int | None


@dataclass(frozen=True, slots=True)
class HostPort:
    port: int


@dataclass(frozen=True, slots=True)
class SidBlock:
    prefix: Prefix


Record = NextHop | EcmpMember | SegmentList | Group | Route | MySid | HostPort | SidBlock


def record_key(record: Record) -> tuple[Any, ...]:
    """The identity of a record: what a P4Runtime key (match or id) identifies."""
    match record:
        case Route():  # first: by far the most frequent
            return ("route", record.table, record.prefix)
        case NextHop():
            return ("next_hop", record.nexthop_id)
        case EcmpMember():
            return ("member", "ecmp_selector", record.member_id)
        case SegmentList():
            return ("member", "headend_selector", record.member_id)
        case Group():
            return ("group", record.profile, record.group_id)
        case MySid():
            return ("route", "my_sid", record.prefix)
        case HostPort():
            return ("host_port", record.port)
        case SidBlock():
            return ("sid_block", record.prefix)


def _int(data: bytes) -> int:
    return int.from_bytes(data, "big")


def _bytes(value: int, width_bits: int) -> bytes:
    """P4Runtime canonical form: the shortest big-endian string, at least one byte."""
    del width_bits
    length = max(1, (value.bit_length() + 7) // 8)
    return value.to_bytes(length, "big")


def _lpm(schema: Schema, table: str, entry: p4r.TableEntry) -> Prefix:
    fid = schema.dst_field_id[table]
    for m in entry.match:
        if m.field_id == fid:
            lpm = m.lpm
            plen = lpm.prefix_len
            addr = int.from_bytes(lpm.value, "big")
            mask = ((1 << plen) - 1) << (128 - plen) if plen else 0
            return Prefix(addr & mask, plen)
    # An LPM field left out of the match is the /0 default route.
    return Prefix(0, 0)


def _exact(schema: Schema, table: str, field: str, entry: p4r.TableEntry) -> int:
    fid = schema.field_id[(table, field)]
    for m in entry.match:
        if m.field_id == fid:
            return _int(m.exact.value)
    raise DataplaneError("INVALID_ARGUMENT", f"{table}: the exact field {field} is missing")


def _params(schema: Schema, action: p4r.Action) -> tuple[str, dict[str, int]]:
    name = schema.action_by_id.get(action.action_id)
    if name is None:
        raise DataplaneError("INVALID_ARGUMENT", f"action id {action.action_id} is not srv6.p4's")
    values = {schema.param_by_id[(name, p.param_id)]: _int(p.value) for p in action.params}
    return name, values


def _check_id(what: str, value: int) -> int:
    if not 0 < value <= MAX_ID:
        raise DataplaneError(
            "OUT_OF_RANGE", f"{what} {value}: switchd supports ids 1..{MAX_ID} (kernel nexthop ids)"
        )
    return value


def decode(schema: Schema, entity: p4r.Entity) -> Record:
    """A P4Runtime entity of srv6.p4 as a record."""
    kind = entity.WhichOneof("entity")
    if kind == "table_entry":
        return _decode_table_entry(schema, entity.table_entry)
    if kind == "action_profile_member":
        member = entity.action_profile_member
        profile = schema.profile_by_id.get(member.action_profile_id)
        mid = _check_id("member id", member.member_id)
        name, params = _params(schema, member.action)
        if profile == "ecmp_selector" and name == "set_next_hop":
            return EcmpMember(mid, params["nexthop_id"])
        if profile == "headend_selector" and name in ("h_encaps", "h_encaps_red"):
            return _segment_list(mid, name, params)
        raise DataplaneError(
            "INVALID_ARGUMENT", f"action {name} is not allowed in action profile {profile}"
        )
    if kind == "action_profile_group":
        group = entity.action_profile_group
        profile = schema.profile_by_id.get(group.action_profile_id)
        if profile is None:
            raise DataplaneError("INVALID_ARGUMENT", "unknown action profile")
        members = tuple(
            GroupMember(
                m.member_id,
                max(1, m.weight),
                _int(m.watch_port) if m.watch_port else (m.watch or None),
            )
            for m in group.members
        )
        return Group(profile, _check_id("group id", group.group_id), members)
    raise DataplaneError("UNIMPLEMENTED", f"switchd does not implement {kind} writes")


def route_of_change(schema: Schema, change: Change) -> tuple[tuple[Any, ...], Route | None] | None:
    """A routing_v6 or srv6_headend change as (record key, record; None for a DELETE), read
    from the key and refs the server has already worked out, without reading the protobuf
    again (the write path's most frequent change). None when they do not say: decode the
    entity then."""
    key = change.key
    if key is None or key[0] != "table":
        return None
    table = schema.route_table_by_id.get(key[1])
    match = key[2]
    if table is None or not isinstance(match, bytes):
        return None
    name, head = table
    if len(match) == 4:  # the LPM field left out: the /0 default route (priority 0 follows)
        prefix = Prefix(0, 0)
    else:
        # field id (4 bytes), value length (2), value, prefix length (2), priority (4); the
        # lengths fit their low bytes
        if len(match) < 13:
            return None
        size = match[5]
        if match[4] or len(match) != size + 12 or match[size + 6] or match[:4] != head:
            return None
        prefix = Prefix(int.from_bytes(match[6 : 6 + size], "big"), match[size + 7])
    rkey = ("route", name, prefix)
    if change.after is None:
        return rkey, None
    refs = change.refs
    if refs is None or len(refs) != 1:
        return None
    kind, _, ident = refs[0]
    if not isinstance(ident, int):
        return None
    if kind == "member":
        return rkey, Route(name, prefix, ident, None)
    if kind == "group":
        return rkey, Route(name, prefix, None, ident)
    return None


def _segment_list(mid: int, action: str, params: dict[str, int]) -> SegmentList:
    count = params["num_segments"]
    if not 1 <= count <= 6:
        raise DataplaneError("INVALID_ARGUMENT", f"num_segments {count} must be 1..6")
    segments = tuple(ipaddress.IPv6Address(params[f"s{i}"]) for i in range(1, count + 1))
    return SegmentList(
        member_id=mid,
        reduced=action == "h_encaps_red",
        src=ipaddress.IPv6Address(params["src_addr"]),
        segments=segments,
    )


def _decode_table_entry(schema: Schema, entry: p4r.TableEntry) -> Record:
    table = schema.table_by_id.get(entry.table_id)
    if table is None:
        raise DataplaneError("INVALID_ARGUMENT", f"table id {entry.table_id} is not srv6.p4's")
    if entry.is_default_action:
        raise DataplaneError(
            "UNIMPLEMENTED", f"switchd keeps the default action of {table} (drop/NoAction)"
        )
    which = entry.action.WhichOneof("type")
    if table in ("routing_v6", "srv6_headend"):
        prefix = _lpm(schema, table, entry)
        if which == "action_profile_member_id":
            return Route(table, prefix, entry.action.action_profile_member_id, None)
        if which == "action_profile_group_id":
            return Route(table, prefix, None, entry.action.action_profile_group_id)
        raise DataplaneError(
            "UNIMPLEMENTED", f"{table}: use an action profile member or group (one-shot not yet)"
        )
    if which != "action":
        raise DataplaneError("INVALID_ARGUMENT", f"{table} takes a direct action")
    name, params = _params(schema, entry.action.action)
    if table == "next_hop" and name == "rewrite":
        return NextHop(
            nexthop_id=_exact(schema, table, "local_metadata.nexthop_id", entry),
            port=params["port"],
            src_mac=params["src_mac"].to_bytes(6, "big"),
            dst_mac=params["dst_mac"].to_bytes(6, "big"),
        )
    if table == "my_sid" and name in ("end", "end_x", "usid_un", "usid_ua", "end_dt6"):
        return MySid(_lpm(schema, table, entry), name, params.get("nexthop_id"))
    if table == "host_port" and name == "mark_host_port":
        return HostPort(_exact(schema, table, "standard_metadata.ingress_port", entry))
    if table == "sid_block" and name == "mark_internal_sid":
        return SidBlock(_lpm(schema, table, entry))
    raise DataplaneError("INVALID_ARGUMENT", f"action {name} is not allowed in table {table}")


# -- encoding (recovery) ----------------------------------------------------------------------


def _lpm_match(schema: Schema, table: str, prefix: Prefix) -> list[p4r.FieldMatch]:
    if prefix.length == 0:
        return []
    return [
        p4r.FieldMatch(
            field_id=schema.field_id[(table, "hdr.ipv6.dst_addr")],
            lpm=p4r.FieldMatch.LPM(value=_bytes(prefix.value, 128), prefix_len=prefix.length),
        )
    ]


def _action(schema: Schema, name: str, params: dict[str, int]) -> p4r.Action:
    return p4r.Action(
        action_id=schema.action_id[name],
        params=[
            p4r.Action.Param(param_id=schema.param_id[(name, k)], value=_bytes(v, 128))
            for k, v in params.items()
        ],
    )


def encode(schema: Schema, record: Record) -> p4r.Entity:
    match record:
        case NextHop():
            entry = p4r.TableEntry(
                table_id=schema.table_id["next_hop"],
                match=[
                    p4r.FieldMatch(
                        field_id=schema.field_id[("next_hop", "local_metadata.nexthop_id")],
                        exact=p4r.FieldMatch.Exact(value=_bytes(record.nexthop_id, 16)),
                    )
                ],
                action=p4r.TableAction(
                    action=_action(
                        schema,
                        "rewrite",
                        {
                            "port": record.port,
                            "src_mac": _int(record.src_mac),
                            "dst_mac": _int(record.dst_mac),
                        },
                    )
                ),
            )
            return p4r.Entity(table_entry=entry)
        case EcmpMember():
            return p4r.Entity(
                action_profile_member=p4r.ActionProfileMember(
                    action_profile_id=schema.profile_id["ecmp_selector"],
                    member_id=record.member_id,
                    action=_action(schema, "set_next_hop", {"nexthop_id": record.nexthop_id}),
                )
            )
        case SegmentList():
            params = {"src_addr": int(record.src), "num_segments": len(record.segments)}
            for i in range(1, 7):
                seg = record.segments[i - 1] if i <= len(record.segments) else None
                params[f"s{i}"] = int(seg) if seg is not None else 0
            name = "h_encaps_red" if record.reduced else "h_encaps"
            return p4r.Entity(
                action_profile_member=p4r.ActionProfileMember(
                    action_profile_id=schema.profile_id["headend_selector"],
                    member_id=record.member_id,
                    action=_action(schema, name, params),
                )
            )
        case Group():
            return p4r.Entity(
                action_profile_group=p4r.ActionProfileGroup(
                    action_profile_id=schema.profile_id[record.profile],
                    group_id=record.group_id,
                    members=[
                        p4r.ActionProfileGroup.Member(
                            member_id=m.member_id,
                            weight=m.weight,
                            watch_port=_bytes(m.watch_port, 9) if m.watch_port else b"",
                        )
                        for m in record.members
                    ],
                )
            )
        case Route():
            action = (
                p4r.TableAction(action_profile_member_id=record.member_id)
                if record.member_id is not None
                else p4r.TableAction(action_profile_group_id=record.group_id or 0)
            )
            return p4r.Entity(
                table_entry=p4r.TableEntry(
                    table_id=schema.table_id[record.table],
                    match=_lpm_match(schema, record.table, record.prefix),
                    action=action,
                )
            )
        case MySid():
            params = {} if record.nexthop_id is None else {"nexthop_id": record.nexthop_id}
            return p4r.Entity(
                table_entry=p4r.TableEntry(
                    table_id=schema.table_id["my_sid"],
                    match=_lpm_match(schema, "my_sid", record.prefix),
                    action=p4r.TableAction(action=_action(schema, record.behaviour, params)),
                )
            )
        case HostPort():
            return p4r.Entity(
                table_entry=p4r.TableEntry(
                    table_id=schema.table_id["host_port"],
                    match=[
                        p4r.FieldMatch(
                            field_id=schema.field_id[
                                ("host_port", "standard_metadata.ingress_port")
                            ],
                            exact=p4r.FieldMatch.Exact(value=_bytes(record.port, 9)),
                        )
                    ],
                    action=p4r.TableAction(action=_action(schema, "mark_host_port", {})),
                )
            )
        case SidBlock():
            return p4r.Entity(
                table_entry=p4r.TableEntry(
                    table_id=schema.table_id["sid_block"],
                    match=_lpm_match(schema, "sid_block", record.prefix),
                    action=p4r.TableAction(action=_action(schema, "mark_internal_sid", {})),
                )
            )
