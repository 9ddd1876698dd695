"""The difference between what one switch should hold and what it holds, as a
make-before-break plan of write batches. Pure: entities in, a :class:`Plan` out.

Entities are compared in canonical form (:mod:`.normalize`): same key and same value is
nothing to do, same key and another value is a MODIFY, a desired key the switch lacks an
INSERT, a key only the switch has a DELETE. Const entries and default entries the switch
reports are never deleted; a desired default entry is always a MODIFY.

Order (every batch is one P4Runtime WriteRequest: a switch may apply the updates of one
request in any order, so nothing in a batch depends on anything else in it):

1. make: inserts and modifies of what others refer to, the referenced first: the next-hop
   table (the target of ``nexthop_id`` action parameters), then action profile members,
   then action profile groups. A member or group modified in place is in its new form
   before any table entry starts using it, and the members a group gains exist before it;
2. move: inserts and modifies of every other table (``routing_v6``, ``srv6_headend``,
   ``my_sid``, ``host_port``, ``sid_block``): traffic moves to what step 1 made;
3. break: deletes in reverse: table entries, then groups, then members, then next hops. A
   member a group stops using goes after the group's modify, a group after the entries that
   used it.

The desired set must be closed under references (every member, group and next hop it
names is in it): otherwise the plan would write a dangling reference, and :func:`diff`
raises :class:`ReconcileError` naming it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import finsy as fy

from controller.reconcile.normalize import (
    Action,
    ActionSet,
    Entity,
    EntityKey,
    Normalized,
    normalize,
)

ChangeKind = Literal["insert", "modify", "delete"]
Phase = Literal["make", "move", "break"]

NEXT_HOP_REFERENCES: Mapping[str, tuple[str, str]] = {
    "nexthop_id": ("next_hop", "local_metadata.nexthop_id")
}
"""Action parameters that name an entry of another table: parameter name -> (table, exact
match field). In srv6.p4, ``set_next_hop``, ``end_x`` and ``usid_ua`` name a ``next_hop``
entry by its ``nexthop_id``."""

RANK_REFERENCED_TABLE, RANK_MEMBER, RANK_GROUP, RANK_TABLE = 0, 1, 2, 3
RANKS = (RANK_REFERENCED_TABLE, RANK_MEMBER, RANK_GROUP, RANK_TABLE)


class ReconcileError(ValueError):
    """A desired state that cannot be written as it is (names the entity)."""


@dataclass(frozen=True, slots=True)
class Change:
    """One update: ``entity`` is what gets written (the desired form for an insert or a
    modify, the switch's for a delete); ``before`` is what a modify replaces."""

    kind: ChangeKind
    entity: Normalized
    before: Normalized | None = None

    def update(self) -> Any:
        """A fresh finsy update: ``+entity``, ``~entity`` or ``-entity``."""
        entity = self.entity.to_finsy()
        if self.kind == "insert":
            return +entity
        if self.kind == "modify":
            return ~entity
        return -entity

    def __str__(self) -> str:
        if self.kind == "insert":
            return f"+ {self.entity}"
        if self.kind == "delete":
            return f"- {self.entity}"
        assert self.before is not None
        return (
            f"~ {self.entity.key}: {self.before.describe_value()} -> {self.entity.describe_value()}"
        )


@dataclass(frozen=True, slots=True)
class Batch:
    """Updates that may go to the switch in one WriteRequest; ``stage`` names what they
    touch (tables, or action profile members or groups)."""

    phase: Phase
    stage: str
    changes: tuple[Change, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    """The batches, in the order they must be written, each after the previous one
    succeeded."""

    batches: tuple[Batch, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.batches)

    def __len__(self) -> int:
        return sum(len(b.changes) for b in self.batches)

    def changes(self) -> list[Change]:
        return [c for b in self.batches for c in b.changes]

    def updates(self) -> list[list[Any]]:
        """Per batch, the finsy updates for one ``await switch.write(batch)``; fresh
        entities on every call. A batch too large for one request may be split into
        several sent one after another; two batches must never share a request."""
        return [[c.update() for c in b.changes] for b in self.batches]

    def counts(self) -> dict[tuple[str, ChangeKind], int]:
        """(table or action profile kind, change kind) -> number of updates."""
        out: Counter[tuple[str, ChangeKind]] = Counter()
        for c in self.changes():
            out[(_what(c.entity.key), c.kind)] += 1
        return dict(sorted(out.items()))

    def describe(self) -> str:
        """For people (``srv6lab intent diff``): counts per table and kind, then every
        change on one line, batch by batch."""
        if not self:
            return "no changes\n"
        counts = self.counts()
        lines = [f"{_count(len(self), 'change')} in {_count(len(self.batches), 'batch')}"]
        width = max(len(what) for what, _ in counts)
        for what in sorted({what for what, _ in counts}):
            parts = [
                f"{counts[(what, kind)]} {kind}"
                for kind in ("insert", "modify", "delete")
                if (what, kind) in counts
            ]
            lines.append(f"  {what:<{width}}  {', '.join(parts)}")
        for n, batch in enumerate(self.batches, 1):
            lines.append(f"batch {n} ({batch.phase}: {batch.stage})")
            lines.extend(f"  {c}" for c in batch.changes)
        return "\n".join(lines) + "\n"


def _count(n: int, noun: str) -> str:
    plural = "es" if noun.endswith("ch") else "s"
    return f"{n} {noun}" if n == 1 else f"{n} {noun}{plural}"


def _what(key: EntityKey) -> str:
    if key.kind == "table_entry":
        return key.table
    return f"{key.table} {key.kind}s"


def references(
    entity: Normalized, param_refs: Mapping[str, tuple[str, str]] = NEXT_HOP_REFERENCES
) -> frozenset[EntityKey]:
    """What ``entity`` needs on the switch: its members and groups, and the entries its
    action parameters name (``param_refs``)."""
    refs = set(entity.references())
    actions: list[Action] = []
    if isinstance(entity.action, Action):
        actions.append(entity.action)
    elif isinstance(entity.action, ActionSet):
        actions.extend(a.action for a in entity.action.actions)
    for action in actions:
        for name, value in action.params:
            if name in param_refs:
                table, match_field = param_refs[name]
                refs.add(EntityKey("table_entry", table, ((match_field, "exact", (value,)),)))
    return frozenset(refs)


def rank(key: EntityKey, param_refs: Mapping[str, tuple[str, str]] = NEXT_HOP_REFERENCES) -> int:
    """Where an entity stands in the dependency order: referenced tables, members, groups,
    other tables."""
    if key.kind == "member":
        return RANK_MEMBER
    if key.kind == "group":
        return RANK_GROUP
    if key.table in {table for table, _ in param_refs.values()}:
        return RANK_REFERENCED_TABLE
    return RANK_TABLE


def by_key(
    entities: Iterable[Entity | Normalized], schema: fy.P4Schema, what: str
) -> dict[EntityKey, Normalized]:
    """Normalised entities by key; the same key twice must hold the same value."""
    out: dict[EntityKey, Normalized] = {}
    for entity in entities:
        n = normalize(entity, schema)
        seen = out.get(n.key)
        if seen is not None and seen != n:
            raise ReconcileError(
                f"{what}: {n.key} twice with different values:"
                f" {seen.describe_value()} and {n.describe_value()}"
            )
        out[n.key] = n
    return out


def dangling(
    state: Mapping[EntityKey, Normalized],
    param_refs: Mapping[str, tuple[str, str]] = NEXT_HOP_REFERENCES,
) -> list[tuple[EntityKey, EntityKey]]:
    """(entity, what it names but ``state`` lacks), sorted."""
    return sorted(
        (key, ref)
        for key, entity in state.items()
        for ref in references(entity, param_refs)
        if ref not in state
    )


def diff(
    desired: Iterable[Entity | Normalized],
    actual: Iterable[Entity | Normalized],
    schema: fy.P4Schema,
    *,
    param_refs: Mapping[str, tuple[str, str]] = NEXT_HOP_REFERENCES,
) -> Plan:
    """The make-before-break plan that turns ``actual`` (read back from one switch) into
    ``desired`` (for the same switch). Entities: finsy, ``p4.v1.Entity`` or normalised."""
    want = by_key(desired, schema, "desired")
    have = by_key(actual, schema, "actual")
    missing = dangling(want, param_refs)
    if missing:
        key, ref = missing[0]
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ReconcileError(f"desired: {key} names {ref}, which is not desired{more}")
    for key, n in want.items():
        if n.const:
            raise ReconcileError(f"desired: {key} is const; const entries come with the program")

    writes: dict[int, list[Change]] = {r: [] for r in RANKS}
    deletes: dict[int, list[Change]] = {r: [] for r in RANKS}
    # only what changes is sorted (by key, for a plan that reads the same every time):
    # sorting every key of both sides was half of a diff's time
    for key in sorted(k for k, n in want.items() if have.get(k) != n):
        n = want[key]
        old = have.get(key)
        if old is None:
            kind: ChangeKind = "modify" if key.is_default else "insert"
            writes[rank(key, param_refs)].append(Change(kind, n, old))
        else:
            if old.const:
                raise ReconcileError(f"{key} is const on the switch and cannot change")
            writes[rank(key, param_refs)].append(Change("modify", n, old))
    for key in sorted(k for k in have if k not in want):
        old = have[key]
        if not old.const and not key.is_default:
            deletes[rank(key, param_refs)].append(Change("delete", old))

    order: list[tuple[Phase, list[Change]]] = [
        ("make", writes[RANK_REFERENCED_TABLE]),
        ("make", writes[RANK_MEMBER]),
        ("make", writes[RANK_GROUP]),
        ("move", writes[RANK_TABLE]),
        ("break", deletes[RANK_TABLE]),
        ("break", deletes[RANK_GROUP]),
        ("break", deletes[RANK_MEMBER]),
        ("break", deletes[RANK_REFERENCED_TABLE]),
    ]
    return Plan(tuple(_batch(phase, changes) for phase, changes in order if changes))


def breaks_deferred(
    desired: Iterable[Normalized],
    current: Iterable[Normalized],
    param_refs: Mapping[str, tuple[str, str]] = NEXT_HOP_REFERENCES,
) -> list[Normalized]:
    """``desired`` plus what of ``current`` it drops that only a reference reaches (action
    profile members and groups, entries of the tables that action parameters name): a plan
    toward the result makes and moves like one toward ``desired`` and leaves out most of the
    break phase, the larger part of a reroute's updates. Nothing forwards through an entity
    that nothing references, so keeping it a while changes no packet's path; the next plan
    toward ``desired`` itself deletes it. Table entries that match packets are never kept.
    Closed under references when both sets are: what a kept entity names is desired or
    kept."""
    out = list(desired)
    keys = {n.key for n in out}
    out.extend(n for n in current if n.key not in keys and rank(n.key, param_refs) != RANK_TABLE)
    return out


def _batch(phase: Phase, changes: list[Change]) -> Batch:
    stage = ", ".join(sorted({_what(c.entity.key) for c in changes}))
    return Batch(phase, stage, tuple(changes))
