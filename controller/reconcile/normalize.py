"""A canonical, hashable form of a P4Runtime entity, so that what a switch reads back
compares equal to what was written.

The canonical form is built from the wire message, ``p4.v1.Entity``: a finsy entity (what
the compiler produces and what finsy's ``switch.read()`` returns) is first encoded against
the P4Info, a protobuf is taken as it is. The protobuf is the one form both sides share, and
finsy's decoded entities do not compare as the switch means them (an LPM value with bits
set past its prefix stays as it came) or do not decode at all (the deprecated ``watch``, an
empty ``watch_port``). Names, never numeric ids, end up in the
canonical form: tables, action profiles and actions by their P4Info alias, match fields and
action parameters by name, so that a key reads well in a diff.

What normalising does (and why):

- bytestrings become integers: ``b"\\x00\\x01"`` and ``b"\\x01"`` are the same value (BMv2
  answers in the shortest form, a client may write it padded); a value wider than its
  field is an error, never silently truncated;
- LPM values are masked to their prefix; "don't care" matches (LPM prefix 0, ternary mask
  0, a range over the whole field) are dropped, as the specification wants them omitted;
  ternary values are masked;
- match fields, action parameters, group members and one-shot action sets are sorted:
  switches answer them in any order;
- a group member's or one-shot action's weight 0 counts as 1 (the specification's default);
  the deprecated ``watch`` (int32) and ``watch_port`` (bytes) are one watch port; ``watch
  0`` and an empty ``watch_port`` mean none;
- left out of the comparison: counter data, meter config and meter counter data, idle
  time-out and time since last hit (state or features the controller does not program), a
  group's ``max_size`` (a capacity hint a target may report its own way, and switchd cannot
  change it in place), ``is_const`` (kept as a flag: the diff never touches const entries).
  Kept: the action, priority, ``is_default_action`` and the controller's cookies
  (``metadata``, ``controller_metadata``).

Only table entries, action profile members and action profile groups are normalised: they
are all the controller writes.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import finsy as fy
from finsy.proto import p4r

Entity = Any
"""A finsy entity (``P4TableEntry``, ``P4ActionProfileMember``, ``P4ActionProfileGroup``)
or a ``p4.v1.Entity`` protobuf; finsy has no type hints for mypy here."""

Kind = Literal["table_entry", "member", "group"]

MatchKind = Literal["exact", "lpm", "ternary", "range", "optional"]

FieldValue = tuple[str, MatchKind, tuple[int, ...]]
"""(field name, match kind, values): exact and optional ``(value,)``, LPM ``(value,
prefix_len)``, ternary ``(value, mask)``, range ``(low, high)``."""


class NormalizeError(ValueError):
    """An entity that cannot be normalised: unknown kind, a value wider than its field, a
    member listed twice (the message names the part)."""


@dataclass(frozen=True, slots=True, order=True)
class EntityKey:
    """What identifies an entity on a switch: a table entry by table, match, priority (and
    the default entry by its table); a member or group by its action profile and id."""

    kind: Kind
    table: str
    """The table's alias, or the action profile's for members and groups."""
    match: tuple[FieldValue, ...] = ()
    priority: int = 0
    is_default: bool = False
    id: int = 0
    """The member or group id."""

    def __str__(self) -> str:
        if self.kind == "member":
            return f"{self.table} member {self.id:#x}"
        if self.kind == "group":
            return f"{self.table} group {self.id:#x}"
        if self.is_default:
            return f"{self.table} default"
        fields = " ".join(_format_field(f) for f in self.match)
        prio = f" priority {self.priority}" if self.priority else ""
        return f"{self.table} {fields}{prio}"


@dataclass(frozen=True, slots=True, order=True)
class Action:
    """A direct action: its alias and parameters by name, as integers, sorted."""

    name: str
    params: tuple[tuple[str, int], ...] = ()

    def __str__(self) -> str:
        args = ", ".join(f"{k}={_format_param(k, v)}" for k, v in self.params)
        return f"{self.name}({args})"


@dataclass(frozen=True, slots=True, order=True)
class MemberRef:
    member_id: int

    def __str__(self) -> str:
        return f"member {self.member_id:#x}"


@dataclass(frozen=True, slots=True, order=True)
class GroupRef:
    group_id: int

    def __str__(self) -> str:
        return f"group {self.group_id:#x}"


@dataclass(frozen=True, slots=True, order=True)
class WeightedAction:
    """One action of a one-shot action set (or a group's member: ``action`` is None)."""

    action: Action
    weight: int = 1
    watch_port: int | None = None


@dataclass(frozen=True, slots=True, order=True)
class ActionSet:
    """A one-shot action set, sorted; finsy writes a direct action on an indirect table as
    a set of one with weight 1."""

    actions: tuple[WeightedAction, ...]
    selection_mode: int = 0
    size_semantics: int = 0

    def __str__(self) -> str:
        return " ".join(f"{a.weight}*{a.action}{_watch(a.watch_port)}" for a in self.actions)


@dataclass(frozen=True, slots=True, order=True)
class GroupMember:
    member_id: int
    weight: int = 1
    watch_port: int | None = None

    def __str__(self) -> str:
        return f"{self.member_id:#x} w{self.weight}{_watch(self.watch_port)}"


TableAction = Action | MemberRef | GroupRef | ActionSet


@dataclass(frozen=True, slots=True)
class Normalized:
    """An entity in canonical form: ``key`` says which entity, ``value`` what it holds.
    Two entities are the same on a switch exactly when both are equal; ``profile`` (the
    action profile of an indirect table) and ``const`` are carried along for the diff."""

    key: EntityKey
    action: TableAction | None = None
    members: tuple[GroupMember, ...] = ()
    metadata: bytes = b""
    controller_metadata: int = 0
    profile: str | None = field(default=None, compare=False)
    const: bool = field(default=False, compare=False)

    @property
    def value(self) -> tuple[object, ...]:
        return (self.action, self.members, self.metadata, self.controller_metadata)

    def references(self) -> frozenset[EntityKey]:
        """The members and groups this entity needs to exist (P4Runtime's own references)."""
        refs: set[EntityKey] = set()
        if isinstance(self.action, MemberRef) and self.profile is not None:
            refs.add(EntityKey("member", self.profile, id=self.action.member_id))
        elif isinstance(self.action, GroupRef) and self.profile is not None:
            refs.add(EntityKey("group", self.profile, id=self.action.group_id))
        for m in self.members:
            refs.add(EntityKey("member", self.key.table, id=m.member_id))
        return frozenset(refs)

    def describe_value(self) -> str:
        if self.key.kind == "group":
            return "members " + (", ".join(str(m) for m in self.members) or "none")
        out = str(self.action) if self.action is not None else "no action"
        if self.metadata:
            out += f" metadata {self.metadata.hex()}"
        if self.controller_metadata:
            out += f" cookie {self.controller_metadata:#x}"
        return out

    def __str__(self) -> str:
        return f"{self.key}: {self.describe_value()}"

    def to_finsy(self) -> Entity:
        """A fresh finsy entity holding exactly this (encodes back to the canonical form;
        safe to mark with ``+``, ``~`` or ``-``)."""
        key = self.key
        if key.kind == "member":
            action = self.action
            assert isinstance(action, Action)
            return fy.P4ActionProfileMember(
                key.table,
                member_id=key.id,
                action=fy.P4TableAction(action.name, **dict(action.params)),
            )
        if key.kind == "group":
            return fy.P4ActionProfileGroup(
                key.table,
                group_id=key.id,
                members=[
                    fy.P4Member(
                        m.member_id,
                        weight=m.weight if m.watch_port is None else (m.weight, m.watch_port),
                    )
                    for m in self.members
                ],
            )
        match = fy.P4TableMatch(
            {name: _finsy_field(kind, values) for name, kind, values in key.match}
        )
        return fy.P4TableEntry(
            key.table,
            match=match or None,
            action=_finsy_action(self.action),
            priority=key.priority,
            is_default_action=key.is_default,
            metadata=self.metadata,
            controller_metadata=self.controller_metadata,
        )


def _finsy_field(kind: MatchKind, values: tuple[int, ...]) -> Any:
    if kind in ("exact", "optional"):
        return values[0]
    return values  # (value, prefix_len), (value, mask), (low, high)


def _finsy_action(action: TableAction | None) -> Any:
    match action:
        case None:
            return None
        case Action(name, params):
            return fy.P4TableAction(name, **dict(params))
        case MemberRef(member_id):
            return fy.P4IndirectAction(member_id=member_id)
        case GroupRef(group_id):
            return fy.P4IndirectAction(group_id=group_id)
        case ActionSet(actions, mode, size):
            return fy.P4IndirectAction(
                [
                    (
                        a.weight if a.watch_port is None else (a.weight, a.watch_port),
                        fy.P4TableAction(a.action.name, **dict(a.action.params)),
                    )
                    for a in actions
                ],
                selection_mode=fy.P4ActionSelectionMode(mode),
                size_semantics=fy.P4ActionSizeSemantics(size),
            )
    raise NormalizeError(f"unknown action {action!r}")


# -- normalising ------------------------------------------------------------------------------


def normalize(entity: Entity | Normalized, schema: fy.P4Schema) -> Normalized:
    """``entity`` (finsy or ``p4.v1.Entity``) in canonical form, checked against the P4Info."""
    if isinstance(entity, Normalized):
        return entity
    msg = entity if isinstance(entity, p4r.Entity) else entity.encode(schema)
    which = msg.WhichOneof("entity")
    if which == "table_entry":
        return _table_entry(msg.table_entry, schema)
    if which == "action_profile_member":
        return _member(msg.action_profile_member, schema)
    if which == "action_profile_group":
        return _group(msg.action_profile_group, schema)
    raise NormalizeError(f"cannot normalise a {which or 'empty'} entity")


def normalize_all(entities: Iterable[Entity | Normalized], schema: fy.P4Schema) -> list[Normalized]:
    return [normalize(e, schema) for e in entities]


def to_int(data: bytes, bitwidth: int, what: str) -> int:
    """A P4Runtime bytestring as an integer (any number of leading zero bytes)."""
    if not data:
        raise NormalizeError(f"{what}: empty bytestring")
    value = int.from_bytes(data, "big")
    if bitwidth and value >> bitwidth:
        raise NormalizeError(f"{what}: {data.hex()} is wider than {bitwidth} bits")
    return value


def _table_entry(te: p4r.TableEntry, schema: fy.P4Schema) -> Normalized:
    try:
        table = schema.tables[te.table_id]
    except Exception as ex:
        raise NormalizeError(f"table id {te.table_id}: {ex}") from ex
    fields: dict[str, FieldValue] = {}
    for fm in te.match:
        try:
            mf = table.match_fields[fm.field_id]
        except Exception as ex:
            raise NormalizeError(f"{table.alias}: match field id {fm.field_id}: {ex}") from ex
        what = f"{table.alias} {mf.name}"
        if mf.name in fields:
            raise NormalizeError(f"{what}: matched twice")
        value = _field(fm, mf.bitwidth, what)
        if value is not None:
            fields[mf.name] = (mf.name, value[0], value[1])
    action: TableAction | None = None
    if te.HasField("action"):
        action = _table_action(te.action, table, schema)
    profile = table.action_profile.alias if table.action_profile is not None else None
    return Normalized(
        EntityKey(
            "table_entry",
            table.alias,
            tuple(sorted(fields.values())),
            te.priority,
            te.is_default_action,
        ),
        action=action,
        metadata=te.metadata,
        controller_metadata=te.controller_metadata,
        profile=profile,
        const=te.is_const,
    )


def _field(
    fm: p4r.FieldMatch, bitwidth: int, what: str
) -> tuple[MatchKind, tuple[int, ...]] | None:
    full = (1 << bitwidth) - 1
    kind = fm.WhichOneof("field_match_type")
    if kind == "exact":
        return "exact", (to_int(fm.exact.value, bitwidth, what),)
    if kind == "lpm":
        plen = fm.lpm.prefix_len
        if not 0 <= plen <= bitwidth:
            raise NormalizeError(f"{what}: prefix length {plen} outside 0..{bitwidth}")
        if plen == 0:
            return None
        mask = full ^ ((1 << (bitwidth - plen)) - 1)
        return "lpm", (to_int(fm.lpm.value, bitwidth, what) & mask, plen)
    if kind == "ternary":
        mask = to_int(fm.ternary.mask, bitwidth, what)
        if mask == 0:
            return None
        return "ternary", (to_int(fm.ternary.value, bitwidth, what) & mask, mask)
    if kind == "range":
        low, high = to_int(fm.range.low, bitwidth, what), to_int(fm.range.high, bitwidth, what)
        if low == 0 and high == full:
            return None
        return "range", (low, high)
    if kind == "optional":
        return "optional", (to_int(fm.optional.value, bitwidth, what),)
    raise NormalizeError(f"{what}: unsupported match {kind!r}")


def _action(msg: p4r.Action, schema: fy.P4Schema, what: str) -> Action:
    try:
        action = schema.actions[msg.action_id]
    except Exception as ex:
        raise NormalizeError(f"{what}: action id {msg.action_id}: {ex}") from ex
    params: dict[str, int] = {}
    for p in msg.params:
        try:
            ap = action.params[p.param_id]
        except Exception as ex:
            raise NormalizeError(f"{what}: {action.alias} param id {p.param_id}: {ex}") from ex
        if ap.name in params:
            raise NormalizeError(f"{what}: {action.alias} {ap.name} given twice")
        params[ap.name] = to_int(p.value, ap.bitwidth, f"{what}: {action.alias} {ap.name}")
    return Action(action.alias, tuple(sorted(params.items())))


def _watch(port: int | None) -> str:
    return "" if port is None else f" watch {port}"


def _watch_port(m: p4r.ActionProfileGroup.Member | p4r.ActionProfileAction) -> int | None:
    kind = m.WhichOneof("watch_kind")
    if kind == "watch_port" and m.watch_port:
        return int.from_bytes(m.watch_port, "big")
    if kind == "watch" and m.watch:
        return int(m.watch)
    return None


def _table_action(msg: p4r.TableAction, table: Any, schema: fy.P4Schema) -> TableAction:
    what = table.alias
    kind = msg.WhichOneof("type")
    if kind == "action":
        return _action(msg.action, schema, what)
    if kind == "action_profile_member_id":
        return MemberRef(msg.action_profile_member_id)
    if kind == "action_profile_group_id":
        return GroupRef(msg.action_profile_group_id)
    if kind == "action_profile_action_set":
        aset = msg.action_profile_action_set
        actions = sorted(
            WeightedAction(_action(a.action, schema, what), max(a.weight, 1), _watch_port(a))
            for a in aset.action_profile_actions
        )
        return ActionSet(tuple(actions), aset.action_selection_mode, aset.size_semantics)
    raise NormalizeError(f"{what}: unsupported action {kind!r}")


def _profile(profile_id: int, schema: fy.P4Schema) -> Any:
    try:
        return schema.action_profiles[profile_id]
    except Exception as ex:
        raise NormalizeError(f"action profile id {profile_id}: {ex}") from ex


def _member(m: p4r.ActionProfileMember, schema: fy.P4Schema) -> Normalized:
    profile = _profile(m.action_profile_id, schema)
    what = f"{profile.alias} member {m.member_id:#x}"
    action = _action(m.action, schema, what) if m.HasField("action") else None
    return Normalized(EntityKey("member", profile.alias, id=m.member_id), action=action)


def _group(g: p4r.ActionProfileGroup, schema: fy.P4Schema) -> Normalized:
    profile = _profile(g.action_profile_id, schema)
    members: dict[int, GroupMember] = {}
    for m in g.members:
        if m.member_id in members:
            raise NormalizeError(
                f"{profile.alias} group {g.group_id:#x}: member {m.member_id:#x} listed twice"
            )
        members[m.member_id] = GroupMember(m.member_id, max(m.weight, 1), _watch_port(m))
    return Normalized(
        EntityKey("group", profile.alias, id=g.group_id),
        members=tuple(sorted(members.values())),
    )


# -- formatting -------------------------------------------------------------------------------


def _format_int(value: int) -> str:
    if value >= 1 << 64:
        return _ipv6(value)
    return str(value) if value < 1 << 16 else f"{value:#x}"


def _format_param(name: str, value: int) -> str:
    if name.endswith("mac") and value < 1 << 48:
        return ":".join(f"{b:02x}" for b in value.to_bytes(6, "big"))
    return _format_int(value)


def _ipv6(value: int) -> str:
    return str(ipaddress.IPv6Address(value))


def _format_field(f: FieldValue) -> str:
    name, kind, values = f
    short = name.rsplit(".", 1)[-1]
    if kind == "lpm":
        value, plen = values
        text = _ipv6(value) if plen > 48 or value >> 48 else f"{value:#x}"
        return f"{short}={text}/{plen}"
    if kind == "ternary":
        return f"{short}={values[0]:#x}&&&{values[1]:#x}"
    if kind == "range":
        return f"{short}={values[0]}..{values[1]}"
    return f"{short}={_format_int(values[0])}"
