"""The entity store: what the switch holds, as P4Runtime entities, for Read to serve.

Entities are stored in canonical form (see validate.py) under canonical keys, so that any
spelling of the same match finds the same entry. They are kept serialized: a standalone
protobuf message costs about 1.6 KB here, its bytes about 100, and a Read sends bytes anyway.
Stored values are immutable, so a Read takes a snapshot (a list of references) and streams it
while writes go on. The store also counts references (members used by groups and table
entries, groups used by table entries) so that deleting something still in use is refused.
"""

from __future__ import annotations

from typing import cast

from finsy.proto import p4r

from switchd.dataplane import Change, CounterValue, EntityKey
from switchd.p4rt.validate import P4InfoIndex


def parse(data: bytes) -> p4r.Entity:
    return cast(p4r.Entity, p4r.Entity.FromString(data))


class EntityStore:
    def __init__(self, index: P4InfoIndex) -> None:
        self.index = index
        self._entries: dict[int, dict[bytes, bytes]] = {t: {} for t in index.tables}
        self._defaults: dict[int, p4r.Entity] = {}
        self._initial_defaults: dict[int, p4r.Entity] = {}
        self._members: dict[int, dict[int, bytes]] = {p: {} for p in index.action_profiles}
        self._groups: dict[int, dict[int, bytes]] = {p: {} for p in index.action_profiles}
        self._member_in_groups: dict[tuple[int, int], int] = {}
        self._member_in_entries: dict[tuple[int, int], int] = {}
        self._group_in_entries: dict[tuple[int, int], int] = {}
        self._counter_base: dict[tuple[int, bytes], CounterValue] = {}

    # -- lookups --------------------------------------------------------------------------

    def table_entry(self, table_id: int, key: bytes) -> p4r.Entity | None:
        entries = self._entries.get(table_id)
        data = None if entries is None else entries.get(key)
        return None if data is None else parse(data)

    def initial_default_entry(self, table_id: int) -> p4r.Entity:
        """The default entry the program starts with (action unset when the P4Info does not
        say which it is: the data plane then uses the program's own default)."""
        entity = self._initial_defaults.get(table_id)
        if entity is None:
            te = p4r.TableEntry(table_id=table_id, is_default_action=True)
            initial = self.index.table(table_id).initial_default_action
            if initial is not None:
                te.action.action.CopyFrom(initial)
            entity = p4r.Entity(table_entry=te)
            self._initial_defaults[table_id] = entity
        return entity

    def default_entry(self, table_id: int) -> p4r.Entity:
        entity = self._defaults.get(table_id)
        return entity if entity is not None else self.initial_default_entry(table_id)

    def has_member(self, profile_id: int, member_id: int) -> bool:
        return member_id in self._members.get(profile_id, {})

    def has_group(self, profile_id: int, group_id: int) -> bool:
        return group_id in self._groups.get(profile_id, {})

    def member(self, profile_id: int, member_id: int) -> p4r.Entity | None:
        data = self._members.get(profile_id, {}).get(member_id)
        return None if data is None else parse(data)

    def group(self, profile_id: int, group_id: int) -> p4r.Entity | None:
        data = self._groups.get(profile_id, {}).get(group_id)
        return None if data is None else parse(data)

    def member_users(self, profile_id: int, member_id: int) -> tuple[int, int]:
        """How many groups and how many table entries use a member."""
        key = (profile_id, member_id)
        return self._member_in_groups.get(key, 0), self._member_in_entries.get(key, 0)

    def group_users(self, profile_id: int, group_id: int) -> int:
        return self._group_in_entries.get((profile_id, group_id), 0)

    def refs_of(self, entity: p4r.Entity) -> tuple[EntityKey, ...]:
        """The members and groups an entity refers to."""
        which = entity.WhichOneof("entity")
        if which == "table_entry":
            te = entity.table_entry
            info = self.index.tables.get(te.table_id)
            if info is None or not info.implementation_id:
                return ()
            kind = te.action.WhichOneof("type")
            if kind == "action_profile_member_id":
                return (("member", info.implementation_id, te.action.action_profile_member_id),)
            if kind == "action_profile_group_id":
                return (("group", info.implementation_id, te.action.action_profile_group_id),)
            return ()
        if which == "action_profile_group":
            g = entity.action_profile_group
            return tuple(("member", g.action_profile_id, m.member_id) for m in g.members)
        return ()

    # -- changes ----------------------------------------------------------------------------

    def commit(
        self, key: EntityKey, change: Change, refs: tuple[EntityKey, ...] | None = None
    ) -> None:
        """Record a change the data plane has applied. ``refs``: what ``change.after``
        refers to, when the caller knows it already (see :attr:`Validated.refs`)."""
        kind, owner, ident = key
        if change.before is not None:
            self._count_refs(kind, self.refs_of(change.before), -1)
        if change.after is not None:
            if refs is None:
                refs = change.refs if change.refs is not None else self.refs_of(change.after)
            if refs:
                self._count_refs(kind, refs, +1)
        if kind == "table":
            assert isinstance(ident, bytes)
            entries = self._entries[owner]
            if change.after is None:
                entries.pop(ident, None)
            else:
                entries[ident] = change.after.SerializeToString()
            if self._counter_base and (change.before is None or change.after is None):
                self._counter_base.pop((owner, ident), None)
        elif kind == "default":
            if change.after is None or change.after == self.initial_default_entry(owner):
                self._defaults.pop(owner, None)
            else:
                self._defaults[owner] = change.after
        elif kind in ("member", "group"):
            assert isinstance(ident, int)
            container = (self._members if kind == "member" else self._groups)[owner]
            if change.after is None:
                container.pop(ident, None)
            else:
                container[ident] = change.after.SerializeToString()
        else:
            raise ValueError(f"unknown entity key kind {kind!r}")

    def _count_refs(self, kind: str, refs: tuple[EntityKey, ...], delta: int) -> None:
        """Count the references of an entity stored under a key of ``kind``."""
        for ref_kind, profile, ident in refs:
            assert isinstance(ident, int)
            if ref_kind == "group":
                counts = self._group_in_entries
            elif kind == "group":
                counts = self._member_in_groups
            else:
                counts = self._member_in_entries
            n = counts.get((profile, ident), 0) + delta
            if n > 0:
                counts[(profile, ident)] = n
            else:
                counts.pop((profile, ident), None)

    # -- direct counters ----------------------------------------------------------------------

    def counter_base(self, table_id: int, key: bytes) -> CounterValue | None:
        """What to subtract from the data plane's counter of an entry (a client wrote the
        counter, or set it when it inserted the entry)."""
        return self._counter_base.get((table_id, key))

    def set_counter_base(self, table_id: int, key: bytes, base: CounterValue) -> None:
        if base.packets == 0 and base.bytes == 0:
            self._counter_base.pop((table_id, key), None)
        else:
            self._counter_base[(table_id, key)] = base

    # -- reads (snapshots of serialized entities) ---------------------------------------------

    def table_entries(self, table_id: int = 0) -> list[tuple[int, bytes, bytes]]:
        """(table id, key, serialized entity) of the entries of one table, or of all tables
        (table_id 0)."""
        tables = [table_id] if table_id else list(self._entries)
        return [(t, key, data) for t in tables for key, data in self._entries.get(t, {}).items()]

    def default_entries(self, table_id: int = 0) -> list[p4r.Entity]:
        ids = [table_id] if table_id else list(self.index.tables)
        return [self.default_entry(t) for t in ids]

    def members(self, profile_id: int = 0) -> list[bytes]:
        if profile_id:
            return list(self._members.get(profile_id, {}).values())
        return [e for members in self._members.values() for e in members.values()]

    def groups(self, profile_id: int = 0) -> list[bytes]:
        if profile_id:
            return list(self._groups.get(profile_id, {}).values())
        return [e for groups in self._groups.values() for e in groups.values()]

    def counts(self) -> dict[str, int]:
        return {
            "table_entries": sum(len(e) for e in self._entries.values()),
            "modified_defaults": len(self._defaults),
            "members": sum(len(m) for m in self._members.values()),
            "groups": sum(len(g) for g in self._groups.values()),
        }
