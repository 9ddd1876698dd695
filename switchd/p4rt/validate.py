"""Decode and validate P4Runtime entities against a P4Info (P4Runtime specification 1.4,
"P4 Entity Messages" and "Bytestrings").

Everything is generic over the P4Info: tables, fields, actions, parameters and action profiles
are looked up by the ids the P4Info gives. A validated entity comes out *canonical*: every
bytestring in its shortest form (the specification's read-write symmetry), match fields and
action parameters sorted by id. The store keeps and serves canonical entities, and the data
plane only ever sees canonical ones.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from finsy.proto import p4i, p4r

from switchd.dataplane import Change, ChangeKind, EntityKey
from switchd.p4rt.errors import (
    ALREADY_EXISTS,
    FAILED_PRECONDITION,
    INVALID_ARGUMENT,
    NOT_FOUND,
    PERMISSION_DENIED,
    RESOURCE_EXHAUSTED,
    UNIMPLEMENTED,
    P4RuntimeError,
)

if TYPE_CHECKING:
    from switchd.p4rt.store import EntityStore


EXACT: int = p4i.MatchField.EXACT
LPM: int = p4i.MatchField.LPM
TERNARY: int = p4i.MatchField.TERNARY
RANGE: int = p4i.MatchField.RANGE
OPTIONAL: int = p4i.MatchField.OPTIONAL

_KIND_OF_TYPE: dict[int, str] = {
    EXACT: "exact",
    LPM: "lpm",
    TERNARY: "ternary",
    RANGE: "range",
    OPTIONAL: "optional",
}

TABLE_AND_DEFAULT: int = p4i.ActionRef.TABLE_AND_DEFAULT
TABLE_ONLY: int = p4i.ActionRef.TABLE_ONLY
DEFAULT_ONLY: int = p4i.ActionRef.DEFAULT_ONLY

INSERT: int = p4r.Update.INSERT
MODIFY: int = p4r.Update.MODIFY
DELETE: int = p4r.Update.DELETE

_CHANGE_KIND: dict[int, ChangeKind] = {
    INSERT: ChangeKind.INSERT,
    MODIFY: ChangeKind.MODIFY,
    DELETE: ChangeKind.DELETE,
}


def invalid(message: str) -> P4RuntimeError:
    return P4RuntimeError(INVALID_ARGUMENT, message)


def canonical(value: bytes, bitwidth: int, what: str) -> bytes:
    """``value`` in its shortest form, if it fits ``bitwidth`` bits (leading zero bytes are
    accepted, as the specification requires); INVALID_ARGUMENT otherwise."""
    if not value:
        raise invalid(f"{what}: empty bytestring")
    short = value if value[0] or len(value) == 1 else (value.lstrip(b"\x00") or b"\x00")
    bits = (len(short) - 1) * 8 + short[0].bit_length()
    if bits > bitwidth:
        raise invalid(f"{what}: value 0x{value.hex()} does not fit in {bitwidth} bits")
    return short


def encode_int(value: int) -> bytes:
    """The canonical bytestring of a non-negative integer."""
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


# -- the P4Info, indexed by id --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MatchFieldInfo:
    id: int
    name: str
    bitwidth: int
    match_type: int
    """a p4i.MatchField.MatchType; UNSPECIFIED for an architecture-specific match kind"""
    other_match_type: str
    kind: str
    """the FieldMatch oneof that carries its value (exact, lpm ...), or the other kind's name"""
    head: bytes
    """the field's id as it starts the field's part of a store key"""


@dataclass(frozen=True, slots=True)
class ParamInfo:
    id: int
    name: str
    bitwidth: int


@dataclass(frozen=True, slots=True)
class ActionInfo:
    id: int
    name: str
    params: dict[int, ParamInfo]


@dataclass(frozen=True, slots=True)
class TableInfo:
    id: int
    name: str
    fields: dict[int, MatchFieldInfo]
    exact_fields: tuple[int, ...]
    needs_priority: bool
    actions: dict[int, int]
    """action id -> p4i.ActionRef scope"""
    implementation_id: int
    direct_counter_id: int
    direct_meter_id: int
    const_default_action_id: int
    is_const: bool
    idle_timeout: bool
    initial_default_action: p4r.Action | None
    """the default action the program starts with, when the P4Info says"""
    single_field: MatchFieldInfo | None
    """the table's only match field, when it has one, of kind exact or LPM (no priority):
    most tables (routes, next hops), whose keys have a fast path"""
    plain: PlainShape | None = None
    """how the table's plainest entries look on the wire, for the tables whose entries are
    routes (see :func:`_plain_entry`)"""


@dataclass(frozen=True, slots=True)
class PlainShape:
    """The wire form of a route: an entry of a table whose only match field is an LPM and
    whose action is an action profile's member or group, and that sets nothing else."""

    head: bytes
    """table_id's tag and value, then match's tag"""
    field_head: bytes
    """in the one FieldMatch: field_id's tag and value, then lpm's tag"""
    field: MatchFieldInfo
    profile_id: int
    with_selector: bool


@dataclass(frozen=True, slots=True)
class ActionProfileInfo:
    id: int
    name: str
    table_ids: tuple[int, ...]
    with_selector: bool
    size: int
    max_group_size: int
    weights_disallowed: bool
    actions: dict[int, int]
    """the actions a member may bind: those of the tables it implements (id -> scope)"""


@dataclass(frozen=True, slots=True)
class CounterInfo:
    id: int
    name: str
    size: int


class P4InfoIndex:
    """A P4Info indexed by id, with what validation needs precomputed."""

    def __init__(self, p4info: p4i.P4Info) -> None:
        self.p4info = p4info
        self.actions: dict[int, ActionInfo] = {}
        for action in p4info.actions:
            params = {p.id: ParamInfo(p.id, p.name, p.bitwidth) for p in action.params}
            self.actions[action.preamble.id] = ActionInfo(
                action.preamble.id, action.preamble.name, params
            )
        direct_counters = {c.preamble.id for c in p4info.direct_counters}
        direct_meters = {m.preamble.id for m in p4info.direct_meters}
        self.tables: dict[int, TableInfo] = {}
        for table in p4info.tables:
            fields = {
                f.id: MatchFieldInfo(
                    f.id,
                    f.name,
                    f.bitwidth,
                    f.match_type if f.WhichOneof("match") == "match_type" else 0,
                    f.other_match_type,
                    _KIND_OF_TYPE.get(
                        f.match_type if f.WhichOneof("match") == "match_type" else 0,
                        f.other_match_type or "unspecified",
                    ),
                    f.id.to_bytes(4, "big"),
                )
                for f in table.match_fields
            }
            initial: p4r.Action | None = None
            if table.HasField("initial_default_action"):
                call = table.initial_default_action
                initial = p4r.Action(
                    action_id=call.action_id,
                    params=[
                        p4r.Action.Param(param_id=a.param_id, value=a.value) for a in call.arguments
                    ],
                )
            elif table.const_default_action_id:
                initial = p4r.Action(action_id=table.const_default_action_id)
            only = next(iter(fields.values())) if len(fields) == 1 else None
            self.tables[table.preamble.id] = TableInfo(
                id=table.preamble.id,
                name=table.preamble.name,
                fields=fields,
                exact_fields=tuple(f.id for f in fields.values() if f.match_type == EXACT),
                needs_priority=any(
                    f.match_type in (TERNARY, RANGE, OPTIONAL) or f.other_match_type
                    for f in fields.values()
                ),
                actions={ref.id: ref.scope for ref in table.action_refs},
                implementation_id=table.implementation_id,
                direct_counter_id=next(
                    (r for r in table.direct_resource_ids if r in direct_counters), 0
                ),
                direct_meter_id=next(
                    (r for r in table.direct_resource_ids if r in direct_meters), 0
                ),
                const_default_action_id=table.const_default_action_id,
                is_const=table.is_const_table,
                idle_timeout=table.idle_timeout_behavior == p4i.Table.NOTIFY_CONTROL,
                initial_default_action=initial,
                single_field=only if only is not None and only.kind in ("exact", "lpm") else None,
            )
        self.action_profiles: dict[int, ActionProfileInfo] = {}
        for profile in p4info.action_profiles:
            actions: dict[int, int] = {}
            for table_id in profile.table_ids:
                info = self.tables.get(table_id)
                if info is not None:
                    actions.update({a: s for a, s in info.actions.items() if s != DEFAULT_ONLY})
            self.action_profiles[profile.preamble.id] = ActionProfileInfo(
                id=profile.preamble.id,
                name=profile.preamble.name,
                table_ids=tuple(profile.table_ids),
                with_selector=profile.with_selector,
                size=profile.size,
                max_group_size=profile.max_group_size,
                weights_disallowed=profile.weights_disallowed,
                actions=actions,
            )
        for info in list(self.tables.values()):
            plain = _plain_shape(info, self.action_profiles.get(info.implementation_id))
            if plain is not None:
                self.tables[info.id] = dataclasses.replace(info, plain=plain)
        self.counters: dict[int, CounterInfo] = {
            c.preamble.id: CounterInfo(c.preamble.id, c.preamble.name, c.size)
            for c in p4info.counters
        }
        self.direct_counter_ids = frozenset(direct_counters)

    def table(self, table_id: int) -> TableInfo:
        info = self.tables.get(table_id)
        if info is None:
            raise invalid(f"unknown table id {table_id}")
        return info

    def action_profile(self, profile_id: int) -> ActionProfileInfo:
        info = self.action_profiles.get(profile_id)
        if info is None:
            raise invalid(f"unknown action profile id {profile_id}")
        return info

    def counter(self, counter_id: int) -> CounterInfo:
        info = self.counters.get(counter_id)
        if info is None:
            raise invalid(f"unknown counter id {counter_id}")
        return info


# -- validation results ---------------------------------------------------------------------


class Validated(NamedTuple):
    """An update that passed validation: the change for the data plane, the key it has in
    the store, and the keys of the stored entities it refers to (members, groups). (A
    NamedTuple: one is made for every update written.)"""

    change: Change
    key: EntityKey
    refs: tuple[EntityKey, ...]
    counter: p4r.CounterData | None = None
    """a direct counter value written together with a table entry (INSERT or MODIFY)"""


@dataclass(frozen=True, slots=True)
class CounterWrite:
    """A DirectCounterEntry MODIFY: it sets the counter of a stored table entry."""

    key: EntityKey
    entry: p4r.Entity
    data: p4r.CounterData | None
    """None: the request leaves the counter as it is"""


class Validator:
    """Validates updates against the P4Info and the store's current content.

    ``ports`` are the SDN port numbers that a group member may watch (None: any).
    """

    def __init__(
        self, index: P4InfoIndex, store: EntityStore, ports: Collection[int] | None = None
    ) -> None:
        self.index = index
        self.store = store
        self.ports = frozenset(ports) if ports is not None else None

    # -- updates ----------------------------------------------------------------------------

    def update(self, update: p4r.Update) -> Validated | CounterWrite:
        """Validate one update; raise P4RuntimeError with the code the specification gives."""
        utype = update.type
        if utype not in _CHANGE_KIND:
            raise invalid(f"update type {utype} is not INSERT, MODIFY or DELETE")
        entity = update.entity
        which = entity.WhichOneof("entity")
        if which == "table_entry":
            return self.table_entry(utype, entity.table_entry, entity)
        if which == "action_profile_member":
            return self.member(utype, entity.action_profile_member)
        if which == "action_profile_group":
            return self.group(utype, entity.action_profile_group)
        if which == "direct_counter_entry":
            return self.direct_counter_write(utype, entity.direct_counter_entry)
        if which == "counter_entry":
            counter = self.index.counter(entity.counter_entry.counter_id)
            raise P4RuntimeError(
                UNIMPLEMENTED, f"counter {counter.name}: writing indirect counters is not supported"
            )
        if which is None:
            raise invalid("the update's entity is not set")
        raise P4RuntimeError(UNIMPLEMENTED, f"{which} is not supported by switchd")

    def table_entry(
        self, utype: int, te: p4r.TableEntry, entity: p4r.Entity | None = None
    ) -> Validated:
        """Validate a table entry write. ``entity`` is the Entity that holds ``te``: when
        ``te`` is already canonical it is stored as it is, without a copy."""
        table = self.index.tables.get(te.table_id) or self.index.table(te.table_id)
        if table.plain is not None and entity is not None and utype != DELETE:
            plain = self._plain_entry(utype, table, table.plain, te, entity)
            if plain is not None:
                return plain
        if te.is_const:
            raise invalid(f"table {table.name}: is_const must be false in a write")
        if te.is_default_action:
            return self._default_entry(utype, table, te)
        if table.is_const:
            raise P4RuntimeError(
                PERMISSION_DENIED, f"table {table.name} is const: its entries cannot be written"
            )
        if not table.fields and utype == INSERT:
            raise invalid(f"table {table.name} has no match key: only its default entry exists")
        copied: p4r.Entity | None = None
        match_key = _canonical_key(table, te)
        if match_key is None:
            # Not in canonical form (or not valid): validated and made canonical in a copy,
            # which is then stored as is; the request itself is never changed.
            copied = p4r.Entity()
            copied.table_entry.CopyFrom(te)
            match_key = self.canonical_match(table, copied.table_entry)
        key: EntityKey = ("table", table.id, match_key)
        before = self.store.table_entry(table.id, match_key)
        if utype == DELETE:
            if before is None:
                raise P4RuntimeError(NOT_FOUND, f"table {table.name}: no such entry")
            return Validated(Change(ChangeKind.DELETE, before, None, key, ()), key, ())
        if utype == INSERT and before is not None:
            raise P4RuntimeError(ALREADY_EXISTS, f"table {table.name}: the entry already exists")
        if utype == MODIFY and before is None:
            raise P4RuntimeError(NOT_FOUND, f"table {table.name}: no such entry")
        if (
            te.idle_timeout_ns
            or te.HasField("time_since_last_hit")
            or te.HasField("meter_config")
            or te.HasField("meter_counter_data")
        ):
            self._check_entry_extras(table, te)
        counter = self._counter_data(table, te) if te.HasField("counter_data") else None
        has_action = te.HasField("action")
        which = te.action.WhichOneof("type") if has_action else None
        if (
            copied is None
            and entity is not None
            and has_action
            and counter is None
            and (which != "action" or _params_are_canonical(te.action.action))
        ):
            out = entity  # canonical as sent: validated in place, nothing in it changes
            after = te
        else:
            if copied is not None:
                out = copied
            else:
                out = p4r.Entity()
                out.table_entry.CopyFrom(te)
            after = out.table_entry
        if counter is not None:
            after.ClearField("counter_data")
        if has_action:
            refs = self._table_action(table, after.action, which=which)
        elif utype == INSERT:
            raise invalid(f"table {table.name}: an INSERT needs an action")
        else:
            assert before is not None
            after.action.CopyFrom(before.table_entry.action)
            refs = self.store.refs_of(before)
        change = Change(_CHANGE_KIND[utype], before, out, key, refs)
        return Validated(change, key, refs, counter)

    def _plain_entry(
        self,
        utype: int,
        table: TableInfo,
        plain: PlainShape,
        te: p4r.TableEntry,
        entity: p4r.Entity,
    ) -> Validated | None:
        """An INSERT or MODIFY of a route, the most frequent write, validated from its wire
        form: one call instead of the twenty-odd field reads (each costs more than the
        checks around it) that the general path makes. None for anything that is not a
        valid route in canonical form that sets nothing else, or whose member or group does
        not exist: the general path then validates it, and says what is wrong."""
        parsed = _parse_plain(plain, te.SerializeToString())
        if parsed is None:
            return None
        match_key, group, ident = parsed
        store = self.store
        if group:
            if not plain.with_selector or not store.has_group(plain.profile_id, ident):
                return None
        elif not store.has_member(plain.profile_id, ident):
            return None
        before = store.table_entry(table.id, match_key)
        if utype == INSERT:
            if before is not None:
                raise P4RuntimeError(
                    ALREADY_EXISTS, f"table {table.name}: the entry already exists"
                )
        elif before is None:
            raise P4RuntimeError(NOT_FOUND, f"table {table.name}: no such entry")
        key: EntityKey = ("table", table.id, match_key)
        refs: tuple[EntityKey, ...] = (("group" if group else "member", plain.profile_id, ident),)
        return Validated(Change(_CHANGE_KIND[utype], before, entity, key, refs), key, refs)

    def _default_entry(self, utype: int, table: TableInfo, te: p4r.TableEntry) -> Validated:
        if utype != MODIFY:
            raise invalid(
                f"table {table.name}: the default entry always exists; it can only be modified"
            )
        if te.match or te.priority:
            raise invalid(f"table {table.name}: a default entry has no match and no priority")
        if table.const_default_action_id:
            raise P4RuntimeError(
                PERMISSION_DENIED, f"table {table.name}: the default action is const"
            )
        if table.implementation_id:
            raise P4RuntimeError(
                PERMISSION_DENIED,
                f"table {table.name}: the default entry of an indirect table cannot be modified",
            )
        self._check_entry_extras(table, te)
        if te.HasField("counter_data"):
            raise P4RuntimeError(
                UNIMPLEMENTED, f"table {table.name}: the default entry has no direct counter here"
            )
        if te.HasField("action"):
            entity = p4r.Entity()
            after = entity.table_entry
            after.table_id = table.id
            after.is_default_action = True
            after.controller_metadata = te.controller_metadata
            after.metadata = te.metadata
            after.action.CopyFrom(te.action)
            self._table_action(table, after.action, default=True)
        else:
            entity = self.store.initial_default_entry(table.id)
        before = self.store.default_entry(table.id)
        key: EntityKey = ("default", table.id, b"")
        return Validated(Change(ChangeKind.MODIFY, before, entity, key, ()), key, ())

    def _check_entry_extras(self, table: TableInfo, te: p4r.TableEntry) -> None:
        if te.idle_timeout_ns or te.HasField("time_since_last_hit"):
            if not table.idle_timeout:
                raise invalid(f"table {table.name} does not support idle timeouts")
            raise P4RuntimeError(
                UNIMPLEMENTED, f"table {table.name}: idle timeouts are not supported by switchd"
            )
        if te.HasField("meter_config") or te.HasField("meter_counter_data"):
            if not table.direct_meter_id:
                raise invalid(f"table {table.name} has no direct meter")
            raise P4RuntimeError(
                UNIMPLEMENTED, f"table {table.name}: meters are not supported by switchd"
            )

    def _counter_data(self, table: TableInfo, te: p4r.TableEntry) -> p4r.CounterData | None:
        if not te.HasField("counter_data"):
            return None
        if not table.direct_counter_id:
            raise invalid(f"table {table.name} has no direct counter")
        return te.counter_data

    def direct_counter_write(self, utype: int, dce: p4r.DirectCounterEntry) -> CounterWrite:
        if utype != MODIFY:
            raise invalid("a DirectCounterEntry can only be modified")
        te = dce.table_entry
        table = self.index.table(te.table_id)
        if not table.direct_counter_id:
            raise invalid(f"table {table.name} has no direct counter")
        if te.is_default_action:
            raise P4RuntimeError(
                UNIMPLEMENTED, f"table {table.name}: the default entry has no direct counter here"
            )
        match_key = self.match_key(table, te)
        entry = self.store.table_entry(table.id, match_key)
        if entry is None:
            raise P4RuntimeError(NOT_FOUND, f"table {table.name}: no such entry")
        # "if this field is not set, the counter value is not modified"
        data = dce.data if dce.HasField("data") else None
        return CounterWrite(("table", table.id, match_key), entry, data)

    # -- match keys and actions -------------------------------------------------------------

    def match_key(self, table: TableInfo, te: p4r.TableEntry) -> bytes:
        """The store key of a table entry's match (the entry itself is not changed)."""
        copy = p4r.TableEntry()
        copy.match.extend(te.match)
        copy.priority = te.priority
        return self.canonical_match(table, copy)

    def canonical_match(self, table: TableInfo, te: p4r.TableEntry) -> bytes:
        """Validate the match and priority of ``te`` and make them canonical, in place: values
        in their shortest form, fields sorted by id. Returns the entry's key in the store."""
        fields = table.fields
        seen: set[int] = set()
        keyed: list[tuple[int, bytes]] = []
        last = 0
        ordered = True
        for fm in te.match:
            field_id = fm.field_id
            field = fields.get(field_id)
            if field is None:
                raise invalid(f"table {table.name}: unknown match field id {field_id}")
            if field_id in seen:
                raise invalid(f"table {table.name}: match field {field.name} given twice")
            seen.add(field_id)
            if field_id < last:
                ordered = False
            last = field_id
            keyed.append((field_id, _canonical_field(table, field, fm)))
        for field_id in table.exact_fields:
            if field_id not in seen:
                raise invalid(
                    f"table {table.name}: exact match field {fields[field_id].name} "
                    "is missing (an exact match cannot be omitted)"
                )
        priority = te.priority
        if table.needs_priority:
            if priority <= 0:
                raise invalid(
                    f"table {table.name} has ternary, range or optional fields: "
                    "entries need a priority above 0"
                )
        elif priority:
            raise invalid(f"table {table.name}: priority must be 0 (no ternary, range, optional)")
        if not ordered:
            copies = []
            for fm in te.match:
                copy = p4r.FieldMatch()
                copy.CopyFrom(fm)
                copies.append(copy)
            copies.sort(key=lambda f: f.field_id)
            del te.match[:]
            te.match.extend(copies)
            keyed.sort()
        return b"".join(k for _, k in keyed) + priority.to_bytes(4, "big", signed=True)

    def _table_action(
        self,
        table: TableInfo,
        ta: p4r.TableAction,
        *,
        default: bool = False,
        which: str | None = None,
    ) -> tuple[EntityKey, ...]:
        """Validate a table entry's action, making it canonical in place; the members and
        groups it refers to. ``which``: its kind, when the caller has read it."""
        if which is None:
            which = ta.WhichOneof("type")
        if table.implementation_id == 0:
            if which != "action":
                raise invalid(
                    f"table {table.name} is a direct table: its entries take an action, "
                    f"not {which or 'nothing'}"
                )
            self.action(ta.action, table.actions, table.name, default)
            return ()
        profile = self.index.action_profiles.get(table.implementation_id)
        if profile is None:
            raise invalid(
                f"table {table.name}: its implementation {table.implementation_id} "
                "is not in the P4Info"
            )
        if which == "action_profile_member_id":
            member_id = ta.action_profile_member_id
            if member_id == 0:
                raise invalid(f"table {table.name}: member id 0 is not valid")
            if not self.store.has_member(profile.id, member_id):
                raise P4RuntimeError(
                    NOT_FOUND, f"table {table.name}: no member {member_id} in {profile.name}"
                )
            return (("member", profile.id, member_id),)
        if which == "action_profile_group_id":
            group_id = ta.action_profile_group_id
            if not profile.with_selector:
                raise invalid(f"table {table.name}: {profile.name} has no selector, so no groups")
            if group_id == 0:
                raise invalid(f"table {table.name}: group id 0 is not valid")
            if not self.store.has_group(profile.id, group_id):
                raise P4RuntimeError(
                    NOT_FOUND, f"table {table.name}: no group {group_id} in {profile.name}"
                )
            return (("group", profile.id, group_id),)
        if which == "action_profile_action_set":
            raise P4RuntimeError(
                UNIMPLEMENTED,
                f"table {table.name}: one-shot action selector programming is not supported; "
                "write ActionProfileMember and ActionProfileGroup entities",
            )
        raise invalid(
            f"table {table.name} is implemented by {profile.name}: its entries take a member "
            f"or group id, not {which or 'nothing'}"
        )

    def action(
        self, action: p4r.Action, allowed: dict[int, int], where: str, default: bool = False
    ) -> None:
        """Validate an action bound in ``where`` (``allowed``: action id -> scope) and make it
        canonical in place."""
        info = self.index.actions.get(action.action_id)
        if info is None:
            raise invalid(f"{where}: unknown action id {action.action_id}")
        scope = allowed.get(action.action_id)
        if scope is None:
            raise invalid(f"{where}: action {info.name} is not one of its actions")
        if default and scope == TABLE_ONLY:
            raise P4RuntimeError(
                PERMISSION_DENIED, f"{where}: action {info.name} cannot be the default action"
            )
        if not default and scope == DEFAULT_ONLY:
            raise P4RuntimeError(
                PERMISSION_DENIED, f"{where}: action {info.name} can only be the default action"
            )
        params = info.params
        seen: set[int] = set()
        last = 0
        ordered = True
        for param in action.params:
            param_id = param.param_id
            pinfo = params.get(param_id)
            if pinfo is None:
                raise invalid(f"{where}: action {info.name} has no param id {param_id}")
            if param_id in seen:
                raise invalid(f"{where}: action {info.name} param {pinfo.name} given twice")
            seen.add(param_id)
            if param_id < last:
                ordered = False
            last = param_id
            value = param.value
            if value and value[0] and len(value) * 8 <= pinfo.bitwidth:
                continue  # canonical and fits: nothing to do
            short = canonical(
                value, pinfo.bitwidth, f"{where}: action {info.name} param {pinfo.name}"
            )
            if short is not value:
                param.value = short
        if len(seen) != len(params):
            missing = [p.name for p in params.values() if p.id not in seen]
            raise invalid(f"{where}: action {info.name} is missing param {', '.join(missing)}")
        if not ordered:
            values = {p.param_id: p.value for p in action.params}
            del action.params[:]
            for param_id in sorted(values):
                action.params.add(param_id=param_id, value=values[param_id])

    # -- action profiles --------------------------------------------------------------------

    def member(self, utype: int, m: p4r.ActionProfileMember) -> Validated:
        profile = self.index.action_profile(m.action_profile_id)
        if m.member_id == 0:
            raise invalid(f"{profile.name}: member id 0 is not valid")
        key: EntityKey = ("member", profile.id, m.member_id)
        before = self.store.member(profile.id, m.member_id)
        what = f"{profile.name} member {m.member_id}"
        if utype == DELETE:
            if before is None:
                raise P4RuntimeError(NOT_FOUND, f"{what} does not exist")
            groups, entries = self.store.member_users(profile.id, m.member_id)
            if groups or entries:
                raise P4RuntimeError(
                    FAILED_PRECONDITION,
                    f"{what} is still used by {groups} group(s) and {entries} table entr"
                    f"{'y' if entries == 1 else 'ies'}",
                )
            return Validated(Change(ChangeKind.DELETE, before, None, key, ()), key, ())
        if utype == INSERT and before is not None:
            raise P4RuntimeError(ALREADY_EXISTS, f"{what} already exists")
        if utype == MODIFY and before is None:
            raise P4RuntimeError(NOT_FOUND, f"{what} does not exist")
        if not m.HasField("action"):
            raise invalid(f"{what}: the action must be set")
        entity = p4r.Entity()
        after = entity.action_profile_member
        after.action_profile_id = profile.id
        after.member_id = m.member_id
        after.action.CopyFrom(m.action)
        self.action(after.action, profile.actions, what)
        return Validated(Change(_CHANGE_KIND[utype], before, entity, key, ()), key, ())

    def group(self, utype: int, g: p4r.ActionProfileGroup) -> Validated:
        profile = self.index.action_profile(g.action_profile_id)
        if not profile.with_selector:
            raise invalid(f"{profile.name} is an action profile without selector: no groups")
        if g.group_id == 0:
            raise invalid(f"{profile.name}: group id 0 is not valid")
        key: EntityKey = ("group", profile.id, g.group_id)
        before = self.store.group(profile.id, g.group_id)
        what = f"{profile.name} group {g.group_id}"
        if utype == DELETE:
            if before is None:
                raise P4RuntimeError(NOT_FOUND, f"{what} does not exist")
            users = self.store.group_users(profile.id, g.group_id)
            if users:
                raise P4RuntimeError(
                    FAILED_PRECONDITION,
                    f"{what} is still used by {users} table entr{'y' if users == 1 else 'ies'}",
                )
            return Validated(Change(ChangeKind.DELETE, before, None, key, ()), key, ())
        if utype == INSERT and before is not None:
            raise P4RuntimeError(ALREADY_EXISTS, f"{what} already exists")
        if utype == MODIFY and before is None:
            raise P4RuntimeError(NOT_FOUND, f"{what} does not exist")
        if before is not None and before.action_profile_group.max_size != g.max_size:
            raise invalid(
                f"{what}: max_size cannot change (was {before.action_profile_group.max_size}, "
                f"got {g.max_size})"
            )
        if g.max_size < 0:
            raise invalid(f"{what}: max_size {g.max_size} is negative")
        if profile.max_group_size > 0 and g.max_size > profile.max_group_size:
            raise invalid(
                f"{what}: max_size {g.max_size} is above the selector's max_group_size "
                f"{profile.max_group_size}"
            )
        members: list[p4r.ActionProfileGroup.Member] = []
        refs: list[EntityKey] = []
        seen: set[int] = set()
        total = 0
        for m in g.members:
            if m.member_id in seen:
                raise invalid(f"{what}: member {m.member_id} is listed twice (use its weight)")
            seen.add(m.member_id)
            if not self.store.has_member(profile.id, m.member_id):
                raise P4RuntimeError(
                    NOT_FOUND, f"{what}: member {m.member_id} does not exist in {profile.name}"
                )
            if profile.weights_disallowed:
                if m.weight != 0:
                    raise invalid(f"{what}: {profile.name} does not allow weights")
            elif m.weight <= 0:
                raise invalid(f"{what}: member {m.member_id} has weight {m.weight}; must be > 0")
            total += max(m.weight, 1)
            watch_port = self._watch_port(what, m)
            member = p4r.ActionProfileGroup.Member(member_id=m.member_id, weight=m.weight)
            if watch_port:  # no watch port: leave the oneof unset (b"" is not a port)
                member.watch_port = watch_port
            members.append(member)
            refs.append(("member", profile.id, m.member_id))
        limit = g.max_size or profile.max_group_size
        if limit and total > limit:
            raise P4RuntimeError(
                RESOURCE_EXHAUSTED, f"{what}: the members' total weight {total} exceeds {limit}"
            )
        after = p4r.ActionProfileGroup(
            action_profile_id=profile.id, group_id=g.group_id, members=members, max_size=g.max_size
        )
        group_refs = tuple(refs)
        return Validated(
            Change(
                _CHANGE_KIND[utype], before, p4r.Entity(action_profile_group=after), key, group_refs
            ),
            key,
            group_refs,
        )

    def _watch_port(self, what: str, m: p4r.ActionProfileGroup.Member) -> bytes:
        """A member's watch port as canonical bytes (the deprecated int32 ``watch`` is taken
        too, and answered as ``watch_port``); b"" for none."""
        kind = m.WhichOneof("watch_kind")
        if kind == "watch_port" and m.watch_port:
            port = int.from_bytes(m.watch_port, "big")
        elif kind == "watch" and m.watch:
            if m.watch < 0:
                raise invalid(f"{what}: member {m.member_id}: watch port {m.watch} is negative")
            port = m.watch
        else:
            return b""
        if self.ports is not None and port not in self.ports:
            raise invalid(
                f"{what}: member {m.member_id}: watch port {port} is not a port of this switch "
                f"(ports: {', '.join(map(str, sorted(self.ports))) or 'none'})"
            )
        return encode_int(port)


def _canonical_key(table: TableInfo, te: p4r.TableEntry) -> bytes | None:
    """The store key of a table entry whose match is valid and already canonical (fields
    in id order, exact and LPM values in their shortest form, no priority): the common case,
    recognised without changing or copying anything. None for anything else, which the
    general path (:meth:`Validator.canonical_match`) then validates, or rejects with the
    precise error. Gives the same key as the general path."""
    field = table.single_field
    if field is not None:
        return _single_field_key(field, te)
    if te.priority or table.needs_priority:
        return None
    fields = table.fields
    parts: list[bytes] = []
    exact = 0
    last = 0
    for fm in te.match:
        field_id = fm.field_id
        if field_id <= last:
            return None
        last = field_id
        field = fields.get(field_id)
        if field is None:
            return None
        kind = field.kind
        if kind == "lpm":
            if not fm.HasField("lpm"):
                return None
            lpm = fm.lpm
            plen = lpm.prefix_len
            value = lpm.value
            width = field.bitwidth
            if not (0 < plen <= width and value and (value[0] or len(value) == 1)):
                return None
            number = int.from_bytes(value, "big")
            if number.bit_length() > width or number & ((1 << (width - plen)) - 1):
                return None
            parts.append(field.head + _lp(value) + plen.to_bytes(2, "big"))
        elif kind == "exact":
            if not fm.HasField("exact"):
                return None
            value = fm.exact.value
            if not value or not (value[0] or len(value) == 1):
                return None
            if (len(value) - 1) * 8 + value[0].bit_length() > field.bitwidth:
                return None
            parts.append(field.head + _lp(value))
            exact += 1
        else:
            return None
    if exact != len(table.exact_fields):
        return None
    parts.append(b"\x00\x00\x00\x00")  # priority 0
    return b"".join(parts)


def _plain_shape(table: TableInfo, profile: ActionProfileInfo | None) -> PlainShape | None:
    field = table.single_field
    if field is None or field.kind != "lpm" or profile is None or table.is_const:
        return None
    return PlainShape(
        head=b"\x08" + varint(table.id) + b"\x12",
        field_head=b"\x08" + varint(field.id) + b"\x22",
        field=field,
        profile_id=profile.id,
        with_selector=profile.with_selector,
    )


def varint(value: int) -> bytes:
    """``value`` as a protobuf base-128 varint."""
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """The varint at ``pos`` and the position after it (IndexError past the end)."""
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _parse_plain(plain: PlainShape, data: bytes) -> tuple[bytes, bool, int] | None:
    """(match key, whether the action is a group, member or group id) of a serialized
    TableEntry that is exactly a route in canonical form: table_id, one FieldMatch with
    field_id and lpm (value in its shortest form, 1 <= prefix_len <= width, no bits beyond
    it), and an action that is a member or group id above 0; nothing else set (no priority,
    is_const, is_default_action, metadata, counter or meter data, idle timeout, unknown
    fields). None for anything else. Serialization writes fields in number order and
    varints in their shortest form, so one layout is all there is to recognise; every
    length is checked against what it frames."""
    head = plain.head
    pos = len(head)
    if data[:pos] != head:
        return None
    try:
        match_len = data[pos]
        field_head = plain.field_head
        start = pos + 1
        pos = start + len(field_head)
        if match_len > 0x7F or data[start:pos] != field_head:
            return None
        lpm_len = data[pos]
        if data[pos + 1] != 0x0A:  # lpm.value's tag
            return None
        size = data[pos + 2]
        value = data[pos + 3 : pos + 3 + size]
        at = pos + 3 + size
        if data[at] != 0x10:  # lpm.prefix_len's tag
            return None
        plen = data[at + 1]
        if plen < 0x80:  # (the varints here are a byte long, but for /128 and large ids)
            end = at + 2
        else:
            plen, end = _read_varint(data, at + 1)
        if lpm_len != end - pos - 1 or match_len != end - start:
            return None
        if data[end] != 0x1A:  # action's tag
            return None
        action_len = data[end + 1]
        tag = data[end + 2]
        ident = data[end + 3]
        if ident < 0x80:
            stop = end + 4
        else:
            ident, stop = _read_varint(data, end + 3)
    except IndexError:
        return None
    if stop != len(data) or action_len != stop - end - 2 or tag not in (0x10, 0x18):
        return None  # (0x10: action_profile_member_id, 0x18: action_profile_group_id)
    width = plain.field.bitwidth
    if not (ident > 0 and 0 < plen <= width and 0 < size == len(value)):
        return None
    if not (value[0] or size == 1) or (size - 1) * 8 + value[0].bit_length() > width:
        return None
    if int.from_bytes(value, "big") & ((1 << (width - plen)) - 1):
        return None
    key = plain.field.head + _lp(value) + plen.to_bytes(2, "big") + b"\x00\x00\x00\x00"
    return key, tag == 0x18, ident


def _single_field_key(field: MatchFieldInfo, te: p4r.TableEntry) -> bytes | None:
    """:func:`_canonical_key` for a table whose only field is ``field`` (exact or LPM), with
    as few reads of the message as it takes: each costs more than the checks."""
    match = te.match
    if len(match) != 1 or te.priority:
        return None  # (an LPM left out, the /0 route, takes the general path)
    fm = match[0]
    if fm.field_id != field.id:
        return None
    width = field.bitwidth
    if field.kind == "lpm":
        lpm = fm.lpm  # the wrong kind reads as an empty value: the general path says why
        plen: int = lpm.prefix_len
        value: bytes = lpm.value
        if not (0 < plen <= width and value and (value[0] or len(value) == 1)):
            return None
        number = int.from_bytes(value, "big")
        if number.bit_length() > width or number & ((1 << (width - plen)) - 1):
            return None
        return field.head + _lp(value) + plen.to_bytes(2, "big") + b"\x00\x00\x00\x00"
    exact: bytes = fm.exact.value
    if not exact or not (exact[0] or len(exact) == 1):
        return None
    if (len(exact) - 1) * 8 + exact[0].bit_length() > width:
        return None
    return field.head + _lp(exact) + b"\x00\x00\x00\x00"


def _params_are_canonical(action: p4r.Action) -> bool:
    """Whether validating ``action`` (see :meth:`Validator.action`) would leave it as it is:
    parameters in id order, values in their shortest form."""
    last = 0
    for param in action.params:
        value = param.value
        if param.param_id <= last or not value or not (value[0] or len(value) == 1):
            return False
        last = param.param_id
    return True


def _lp(value: bytes) -> bytes:
    return len(value).to_bytes(2, "big") + value


def _canonical_field(table: TableInfo, field: MatchFieldInfo, fm: p4r.FieldMatch) -> bytes:
    """Validate one field match, make it canonical in place, and return its part of the
    entry's key."""
    which = fm.WhichOneof("field_match_type")
    if which == field.kind and which == "lpm":
        # the common case first, without building messages for errors that do not happen
        lpm = fm.lpm
        plen = lpm.prefix_len
        width = field.bitwidth
        value = lpm.value
        if 0 < plen <= width and value and (value[0] or len(value) == 1):
            bits = (len(value) - 1) * 8 + value[0].bit_length()
            if bits <= width and not int.from_bytes(value, "big") & ((1 << (width - plen)) - 1):
                return field.id.to_bytes(4, "big") + _lp(value) + plen.to_bytes(2, "big")
    where = f"table {table.name} field {field.name}"
    if which is None:
        raise invalid(f"{where}: no match value is set")
    if not field.match_type:
        raise P4RuntimeError(UNIMPLEMENTED, f"{where}: match kind {field.kind} is not supported")
    if which != field.kind:
        raise invalid(f"{where} is a {field.kind} match, got {which}")
    width = field.bitwidth
    head = field.id.to_bytes(4, "big")
    if which == "exact":
        exact = fm.exact
        value = exact.value
        short = canonical(value, width, where)
        if short is not value:
            exact.value = short
        return head + _lp(short)
    if which == "lpm":
        lpm = fm.lpm
        plen = lpm.prefix_len
        if plen <= 0 or plen > width:
            raise invalid(
                f"{where}: prefix length {plen} is outside 1..{width} "
                "(a don't-care LPM match is omitted, not /0)"
            )
        value = lpm.value
        short = canonical(value, width, where)
        if int.from_bytes(short, "big") & ((1 << (width - plen)) - 1):
            raise invalid(f"{where}: bits beyond the /{plen} prefix must be 0")
        if short is not value:
            lpm.value = short
        return head + _lp(short) + plen.to_bytes(2, "big")
    if which == "ternary":
        ternary = fm.ternary
        value = canonical(ternary.value, width, where)
        mask = canonical(ternary.mask, width, f"{where} mask")
        v, m = int.from_bytes(value, "big"), int.from_bytes(mask, "big")
        if m == 0:
            raise invalid(f"{where}: a zero mask is a don't-care match; omit the field instead")
        if v & ~m:
            raise invalid(f"{where}: value has bits set outside the mask")
        ternary.value = value
        ternary.mask = mask
        return head + _lp(value) + _lp(mask)
    if which == "range":
        rng = fm.range
        low = canonical(rng.low, width, f"{where} low")
        high = canonical(rng.high, width, f"{where} high")
        lo, hi = int.from_bytes(low, "big"), int.from_bytes(high, "big")
        if lo > hi:
            raise invalid(f"{where}: range low {lo} is above high {hi}")
        if lo == 0 and hi == (1 << width) - 1:
            raise invalid(f"{where}: the full range is a don't-care match; omit the field")
        rng.low = low
        rng.high = high
        return head + _lp(low) + _lp(high)
    if which == "optional":
        optional = fm.optional
        value = canonical(optional.value, width, where)
        optional.value = value
        return head + _lp(value)
    raise P4RuntimeError(UNIMPLEMENTED, f"{where}: match kind {which} is not supported")
