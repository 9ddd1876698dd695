"""The path engine (pure, synchronous, no I/O): shortest paths and ECMP sets, k edge- or
node-disjoint paths of minimum total cost, explicit paths through waypoints, and placement
of a collective's flows. Every function works on the live graph: a networkx topology graph
minus the links that are down, or a prebuilt :class:`LiveGraph` snapshot (faster for many
queries on one state of the network)."""

from controller.paths.disjoint import (
    Mode,
    count_disjoint_paths,
    disjoint_paths,
    max_disjoint_paths,
)
from controller.paths.graph import LinkRef, LiveGraph, NoPathError, Path, live_view
from controller.paths.shortest import (
    count_equal_cost_paths,
    ecmp_next_hops,
    equal_cost_paths,
    shortest_path,
)

__all__ = [
    "LinkRef",
    "LiveGraph",
    "Mode",
    "NoPathError",
    "Path",
    "count_disjoint_paths",
    "count_equal_cost_paths",
    "disjoint_paths",
    "ecmp_next_hops",
    "equal_cost_paths",
    "live_view",
    "max_disjoint_paths",
    "shortest_path",
]
