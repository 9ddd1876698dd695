"""The boundary between switchd's P4Runtime server and the data plane that realises it.

The server (``switchd.p4rt``) owns the protocol: arbitration, the pipeline config, decoding
and validating every update against the P4Info, and the entity store that Read serves.
A :class:`Dataplane` owns the kernel: it turns validated P4Runtime changes into kernel state.

The contract, per Write RPC:

1. The server validates each update against the P4Info and its store (unknown ids, widths,
   ALREADY_EXISTS, NOT_FOUND, references to members/groups that do not exist, ...). Updates
   that fail get their p4.v1.Error and never reach the data plane.
2. The server calls :meth:`Dataplane.apply` once with the remaining changes, in order.
3. The data plane applies each change fully or not at all, and returns one result per
   change: ``None`` for success or a :class:`DataplaneError` (with a gRPC status code name and
   a message). A failed change leaves no kernel state behind.
4. The server commits exactly the successful changes to its store.

All entities are finsy's ``p4.v1`` protobuf messages (``finsy.proto.p4r``), canonical
(shortest bytestrings, match fields and params sorted by id, ``watch`` turned into
``watch_port``, no counter data). The server also hands over what its validation already
read from them (a change's ``key`` and ``refs``), so that a data plane need not read the
protobuf again: on the write path each field read from a message costs about as much as
the data plane's own work per entry. ``apply`` may be called more than once per Write (a batch
is split where a later update depends on an earlier one, and into chunks so that the kernel
applies one while the server validates the next; ROLLBACK_ON_ERROR sends the inverse changes
as one more call). Data plane methods run on one worker thread, one call at a time.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, Protocol

if TYPE_CHECKING:
    from finsy.proto import p4i, p4r


class ChangeKind(enum.Enum):
    INSERT = "INSERT"
    MODIFY = "MODIFY"
    DELETE = "DELETE"


EntityKey = tuple[str, int, int | bytes]
"""The identity of an entity, as the server stores it: ("table", table id, match key),
("default", table id, b""), ("member", profile id, member id) or ("group", profile id, group
id). A match key is the canonical match as bytes: for each field in id order, the field id
(4 bytes) and its value (a 2-byte length, then the shortest big-endian bytes), followed for
an LPM field by the prefix length (2 bytes), for a ternary field by the mask and for a range
field by the high end (each length-prefixed like the value); then the priority (4 bytes,
signed). An entry whose LPM field is left out (the /0 default route) has no part for it."""


class Change(NamedTuple):
    """One validated update. ``before`` is the stored entity that a MODIFY or DELETE
    replaces (``None`` for INSERT); ``after`` is the new entity (``None`` for DELETE).

    ``key`` is the entity's identity (see :data:`EntityKey`); ``refs`` the action profile
    members and groups ``after`` refers to, as keys. Either may be ``None`` (not known:
    read the entity). (A NamedTuple: one is made for every update written.)"""

    kind: ChangeKind
    before: p4r.Entity | None
    after: p4r.Entity | None
    key: EntityKey | None = None
    refs: tuple[EntityKey, ...] | None = None


class DataplaneError(Exception):
    """A change the data plane refused or failed to apply. ``code`` is a
    ``google.rpc.Code`` name such as ``"INVALID_ARGUMENT"`` or ``"INTERNAL"``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class CounterValue:
    packets: int
    bytes: int


class Dataplane(Protocol):
    """What the P4Runtime server needs from a data plane."""

    def set_pipeline(self, p4info: p4i.P4Info) -> None:
        """A new pipeline was committed: forget all entries (flush kernel state)."""

    def apply(self, changes: list[Change]) -> list[DataplaneError | None]:
        """Apply changes in order; each fully or not at all; one result per change."""
        ...

    def direct_counter(self, entry: p4r.TableEntry) -> CounterValue | None:
        """The direct counter of a stored table entry, or None if its table has none."""
        ...

    def recover(self, p4info: p4i.P4Info) -> list[p4r.Entity]:
        """At start, with the pipeline a previous run committed (no flush): the entities the
        kernel still holds, so forwarding never stops while switchd restarts and Read
        serves them again."""
        ...
