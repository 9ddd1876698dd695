"""The reconciler's pure core: entities in canonical form (:mod:`.normalize`) and the
make-before-break plan that turns what a switch holds into what it should hold
(:mod:`.diff`). No I/O: the southbound reads the switch and writes the plan's batches."""

from controller.reconcile.diff import (
    NEXT_HOP_REFERENCES,
    Batch,
    Change,
    ChangeKind,
    Plan,
    ReconcileError,
    breaks_deferred,
    dangling,
    diff,
    references,
)
from controller.reconcile.normalize import (
    Action,
    ActionSet,
    EntityKey,
    GroupMember,
    GroupRef,
    MemberRef,
    Normalized,
    NormalizeError,
    WeightedAction,
    normalize,
    normalize_all,
)

__all__ = [
    "NEXT_HOP_REFERENCES",
    "Action",
    "ActionSet",
    "Batch",
    "Change",
    "ChangeKind",
    "EntityKey",
    "GroupMember",
    "GroupRef",
    "MemberRef",
    "NormalizeError",
    "Normalized",
    "Plan",
    "ReconcileError",
    "WeightedAction",
    "breaks_deferred",
    "dangling",
    "diff",
    "normalize",
    "normalize_all",
    "references",
]
