"""Analyses of what the network does to traffic (pure): :mod:`controller.analysis.ecmp`
predicts which flows of a collective collide under hash-based ECMP."""

from controller.analysis.ecmp import (
    Collision,
    EcmpAnalysis,
    MeasuredComparison,
    ModeLoads,
    analyze_ecmp,
    compare_measured,
    default_hosts,
    expected_ecmp_loads,
    hashed_paths,
    ideal_pressure,
    measured_loads,
    path_loads,
)

__all__ = [
    "Collision",
    "EcmpAnalysis",
    "MeasuredComparison",
    "ModeLoads",
    "analyze_ecmp",
    "compare_measured",
    "default_hosts",
    "expected_ecmp_loads",
    "hashed_paths",
    "ideal_pressure",
    "measured_loads",
    "path_loads",
]
