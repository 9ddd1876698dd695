"""Intents (pure): what an engineer asks for (:mod:`.model`), and what every switch must
hold to give it on the live network (:mod:`.engine`)."""

from controller.intents.engine import (
    Impossible,
    IntentState,
    Policy,
    Solution,
    Status,
    Steered,
    check_possible,
    fast_reroute,
    solve,
)
from controller.intents.model import (
    KINDS,
    Collective,
    Connectivity,
    Disjoint,
    Explicit,
    Intent,
    IntentError,
    Kind,
    Spec,
    check_id,
    describe,
    parse_spec,
    spec_dict,
)

__all__ = [
    "KINDS",
    "Collective",
    "Connectivity",
    "Disjoint",
    "Explicit",
    "Impossible",
    "Intent",
    "IntentError",
    "IntentState",
    "Kind",
    "Policy",
    "Solution",
    "Spec",
    "Status",
    "Steered",
    "check_id",
    "check_possible",
    "describe",
    "fast_reroute",
    "parse_spec",
    "solve",
    "spec_dict",
]
