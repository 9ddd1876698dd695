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
``watch_port``, no counter data). ``apply`` may be called more than once per Write (a batch
is split where a later update depends on an earlier one, and into chunks so that the kernel
applies one while the server validates the next; ROLLBACK_ON_ERROR sends the inverse changes
as one more call). Data plane methods run on one worker thread, one call at a time.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from finsy.proto import p4i, p4r


class ChangeKind(enum.Enum):
    INSERT = "INSERT"
    MODIFY = "MODIFY"
    DELETE = "DELETE"


@dataclass(frozen=True, slots=True)
class Change:
    """One validated update. ``before`` is the stored entity that a MODIFY or DELETE
    replaces (``None`` for INSERT); ``after`` is the new entity (``None`` for DELETE)."""

    kind: ChangeKind
    before: p4r.Entity | None
    after: p4r.Entity | None


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
