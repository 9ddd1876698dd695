"""The names of srv6.p4 that the kernel data plane implements, resolved against a P4Info.

Everything is looked up by name (DESIGN.md: names from the P4Info, never numeric IDs); the
ids are only used to decode the messages a client sends. p4/README.md documents each table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from finsy.proto import p4i

PREFIX = "IngressPipeImpl."

# table -> (match field names)
TABLES: dict[str, tuple[str, ...]] = {
    "host_port": ("standard_metadata.ingress_port",),
    "sid_block": ("hdr.ipv6.dst_addr",),
    "my_sid": ("hdr.ipv6.dst_addr",),
    "srv6_headend": ("hdr.ipv6.dst_addr",),
    "routing_v6": ("hdr.ipv6.dst_addr",),
    "next_hop": ("local_metadata.nexthop_id",),
}

ACTIONS: dict[str, tuple[str, ...]] = {
    "mark_host_port": (),
    "mark_internal_sid": (),
    "end": (),
    "end_x": ("nexthop_id",),
    "usid_un": (),
    "usid_ua": ("nexthop_id",),
    "end_dt6": (),
    "h_encaps": ("src_addr", "num_segments", "s1", "s2", "s3", "s4", "s5", "s6"),
    "h_encaps_red": ("src_addr", "num_segments", "s1", "s2", "s3", "s4", "s5", "s6"),
    "set_next_hop": ("nexthop_id",),
    "rewrite": ("port", "src_mac", "dst_mac"),
}

ACTION_PROFILES = ("ecmp_selector", "headend_selector")
ROUTE_TABLES = ("routing_v6", "srv6_headend")


class SchemaError(ValueError):
    """The P4Info lacks a table, action, field or parameter the kernel data plane needs."""


@dataclass(frozen=True, slots=True)
class Schema:
    """Id <-> short name maps for the parts of srv6.p4 the kernel implements."""

    table_by_id: dict[int, str]
    table_id: dict[str, int]
    field_id: dict[tuple[str, str], int]
    """(table, field name) -> match field id"""
    action_by_id: dict[int, str]
    action_id: dict[str, int]
    param_by_id: dict[tuple[str, int], str]
    """(action, param id) -> param name"""
    param_id: dict[tuple[str, str], int]
    profile_by_id: dict[int, str]
    profile_id: dict[str, int]
    counter_table: dict[int, str]
    """direct counter id -> table"""
    dst_field_id: dict[str, int]
    """table -> id of its LPM match field hdr.ipv6.dst_addr (the tables that have one)"""
    route_table_by_id: dict[int, tuple[str, bytes]]
    """id of routing_v6 and srv6_headend -> (name, how their match key starts: the id of
    hdr.ipv6.dst_addr as 4 bytes; see switchd.dataplane.EntityKey)"""

    @classmethod
    def from_p4info(cls, p4info: p4i.P4Info) -> Schema:
        def short(name: str) -> str:
            return name[len(PREFIX) :] if name.startswith(PREFIX) else name

        missing: list[str] = []
        tables = {short(t.preamble.name): t for t in p4info.tables}
        actions = {short(a.preamble.name): a for a in p4info.actions}
        profiles = {short(p.preamble.name): p for p in p4info.action_profiles}
        table_id: dict[str, int] = {}
        field_id: dict[tuple[str, str], int] = {}
        for name, fields in TABLES.items():
            if name not in tables:
                missing.append(f"table {PREFIX}{name}")
                continue
            table_id[name] = tables[name].preamble.id
            have = {f.name: f.id for f in tables[name].match_fields}
            for f in fields:
                if f not in have:
                    missing.append(f"match field {f} of table {PREFIX}{name}")
                else:
                    field_id[(name, f)] = have[f]
        action_id: dict[str, int] = {}
        param_id: dict[tuple[str, str], int] = {}
        for name, params in ACTIONS.items():
            if name not in actions:
                missing.append(f"action {PREFIX}{name}")
                continue
            action_id[name] = actions[name].preamble.id
            have = {p.name: p.id for p in actions[name].params}
            for p in params:
                if p not in have:
                    missing.append(f"param {p} of action {PREFIX}{name}")
                else:
                    param_id[(name, p)] = have[p]
        profile_id: dict[str, int] = {}
        for name in ACTION_PROFILES:
            if name not in profiles:
                missing.append(f"action profile {PREFIX}{name}")
            else:
                profile_id[name] = profiles[name].preamble.id
        if missing:
            raise SchemaError("the P4Info is not srv6.p4's: missing " + "; ".join(missing))
        counter_table = {
            c.preamble.id: short(
                next(t.preamble.name for t in p4info.tables if t.preamble.id == c.direct_table_id)
            )
            for c in p4info.direct_counters
        }
        return cls(
            table_by_id={v: k for k, v in table_id.items()},
            table_id=table_id,
            field_id=field_id,
            action_by_id={v: k for k, v in action_id.items()},
            action_id=action_id,
            param_by_id={(a, pid): p for (a, p), pid in param_id.items()},
            param_id=param_id,
            profile_by_id={v: k for k, v in profile_id.items()},
            profile_id=profile_id,
            counter_table=counter_table,
            dst_field_id={t: i for (t, f), i in field_id.items() if f == "hdr.ipv6.dst_addr"},
            route_table_by_id={
                table_id[t]: (t, field_id[(t, "hdr.ipv6.dst_addr")].to_bytes(4, "big"))
                for t in ROUTE_TABLES
            },
        )
