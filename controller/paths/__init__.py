"""The path engine (pure, synchronous, no I/O): shortest paths and ECMP sets, k edge- or
node-disjoint paths of minimum total cost, explicit paths through waypoints, and placement
of a collective's flows.

Every function works on the live graph: a networkx topology graph (``Topology.graph``)
minus the links that are down (``down=``: link names or node pairs), or a prebuilt
:class:`LiveGraph` snapshot, which is faster for many queries on one state of the network
because it keeps its indexes and caches. The topology's graph is never modified. Hosts are
endpoints, never transit. Results are deterministic (ties go to the smaller names).
"""

from controller.paths.disjoint import (
    Mode,
    count_disjoint_paths,
    disjoint_paths,
    max_disjoint_paths,
)
from controller.paths.explicit import explicit_path
from controller.paths.graph import LinkRef, LiveGraph, NoPathError, Path, live_view
from controller.paths.placement import (
    Flow,
    LinkLoad,
    Pattern,
    Placement,
    candidate_paths,
    collective_channels,
    collective_flows,
    ecmp_hash_paths,
    first_path_placement,
    host_planes,
    place_collective,
    place_flows,
    placement_of,
    spread_salt,
)
from controller.paths.shortest import (
    count_equal_cost_paths,
    ecmp_next_hops,
    equal_cost_paths,
    shortest_path,
)

__all__ = [
    "Flow",
    "LinkLoad",
    "LinkRef",
    "LiveGraph",
    "Mode",
    "NoPathError",
    "Path",
    "Pattern",
    "Placement",
    "candidate_paths",
    "collective_channels",
    "collective_flows",
    "count_disjoint_paths",
    "count_equal_cost_paths",
    "disjoint_paths",
    "ecmp_hash_paths",
    "ecmp_next_hops",
    "equal_cost_paths",
    "explicit_path",
    "first_path_placement",
    "host_planes",
    "live_view",
    "max_disjoint_paths",
    "place_collective",
    "place_flows",
    "placement_of",
    "shortest_path",
    "spread_salt",
]
