"""Placement of a collective: one path per flow so that the most loaded link carries as
little as possible.

A collective is a group of GPU hosts and a pattern: ``ring`` (all-reduce: host i sends to
host i+1, the last to the first) or ``all-to-all`` (every ordered pair). Each flow gets
candidate paths (its disjoint paths and its equal-cost paths); a greedy pass puts each flow,
in order, on the candidate that raises the maximum load least, then a local search moves
flows off the most loaded links while that lowers (maximum load, number of links at the
maximum, sum of squared loads), in that order. Everything is deterministic.

Channels (NCCL's answer to hosts with a NIC in each of several planes): one TCP
connection per flow uses one NIC, so a host reaches at most 1/P of its NICs' capacity.
:func:`collective_channels` splits each flow whose two hosts both have one NIC in each of
the same P >= 2 planes into P channels, ``Flow(src, dst, plane)``, each carrying 1/P of
the flow's bytes (its demand in the placement), and each placed on a path inside its
plane (:func:`candidate_paths`). Flows between hosts without such NICs stay one channel
(``plane`` None): single-plane topologies are placed exactly as before.

Load is counted per direction of a link (links are full duplex): the sum of the demands of
the flows crossing it (1 per flow by default). Weighted by bandwidth, each flow counts
``fastest / bandwidth`` times on a link, so a link of half the fastest bandwidth carries a
flow twice. :func:`placement_of` measures any assignment of paths the same way (the naive
first-path placement, or hash-based ECMP from :func:`ecmp_hash_paths`) for comparison.
"""

from __future__ import annotations

import contextlib
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from controller.paths.disjoint import max_disjoint_paths
from controller.paths.graph import GraphLike, LinkRef, LiveGraph, NoPathError, Path
from controller.paths.shortest import equal_cost_paths, next_hop_table

Pattern = Literal["ring", "all-to-all"]
PATTERNS: tuple[Pattern, ...] = ("ring", "all-to-all")
CandidateKind = Literal["disjoint", "ecmp", "both"]
_EPS = 1e-9


@dataclass(frozen=True, slots=True, order=True)
class Flow:
    """One flow of a collective, from one host to another; with ``plane``, one channel of
    it: the share of its bytes that crosses that plane (see :func:`collective_channels`)."""

    src: str
    dst: str
    plane: int | None = None
    """None: the whole flow, on any path."""

    def __str__(self) -> str:
        return f"{self.src}->{self.dst}" + ("" if self.plane is None else f"@plane{self.plane}")

    @property
    def parent(self) -> Flow:
        """The flow this channel belongs to (itself when it has no plane)."""
        return self if self.plane is None else Flow(self.src, self.dst)


@dataclass(frozen=True, slots=True)
class LinkLoad:
    """The load of one direction of one link."""

    link: str
    """The link's name (its ``link`` edge attribute) or ``u-v``."""
    src: str
    dst: str
    flows: int
    load: float


@dataclass(frozen=True)
class Placement:
    """Where every flow goes, and what that does to the links."""

    flows: tuple[Flow, ...]
    paths: Mapping[Flow, Path]
    links: tuple[LinkLoad, ...]
    """Every link direction that carries a flow, most loaded first (then by name)."""
    max_load: float
    weighted: bool
    candidates: Mapping[Flow, tuple[Path, ...]]
    """The paths each flow could take (empty when the paths were given)."""
    demand: Mapping[Flow, float] = field(default_factory=dict)
    """Each flow's weight in the loads (1 when absent; a channel of P: 1/P)."""

    def channels(self) -> dict[Flow, tuple[Flow, ...]]:
        """Per flow of the collective (``plane`` None), its channels in order (the flow
        itself when it was not split)."""
        out: dict[Flow, list[Flow]] = {}
        for f in self.flows:
            out.setdefault(f.parent, []).append(f)
        return {k: tuple(v) for k, v in out.items()}

    def load(self, src: str, dst: str) -> float:
        """The load on the link from ``src`` to ``dst`` (0 if it carries nothing)."""
        for item in self.links:
            if item.src == src and item.dst == dst:
                return item.load
        return 0.0

    def hottest(self) -> tuple[LinkLoad, ...]:
        """The link directions at the maximum load."""
        return tuple(x for x in self.links if x.load >= self.max_load - _EPS)


def collective_flows(hosts: Sequence[str], pattern: Pattern) -> list[Flow]:
    """The flows of a collective among ``hosts`` (in the given order)."""
    if pattern not in PATTERNS:
        raise ValueError(f"pattern must be one of {', '.join(PATTERNS)}, got {pattern!r}")
    if len(hosts) < 2:
        raise ValueError(f"a collective needs at least 2 hosts, got {len(hosts)}")
    dup = sorted(h for h, n in Counter(hosts).items() if n > 1)
    if dup:
        raise ValueError(f"hosts appear more than once in the collective: {', '.join(dup)}")
    if pattern == "ring":
        return [Flow(a, b) for a, b in zip(hosts, [*hosts[1:], hosts[0]], strict=True)]
    return [Flow(a, b) for a in hosts for b in hosts if a != b]


def spread_salt(hosts: Sequence[str], dst: str) -> int:
    """The salt (``disjoint_paths(..., salt=)``, GetPaths' ``spread``) for a collective's
    flows toward ``dst``: its index among the hosts. D-mod-k routing, the classic balanced
    fat-tree routing: the flows toward different destinations start their equal-cost scans
    at different next hops, so consecutive destinations take different cores."""
    try:
        return list(hosts).index(dst)
    except ValueError:
        raise ValueError(f"{dst!r} is not one of the collective's hosts") from None


def host_planes(graph: GraphLike, host: str) -> tuple[int, ...] | None:
    """The planes of ``host``'s NICs (the planes of the switches it is linked to, links
    down or not), sorted, when it has at least two NICs, each in its own plane; else None
    (one NIC, a NIC on a switch without a plane, or two NICs in one plane)."""
    g = graph.graph if isinstance(graph, LiveGraph) else graph
    if host not in g:
        raise ValueError(f"{host!r} is not a node of the topology")
    planes = [g.nodes[n].get("plane") for n in sorted(g.neighbors(host))]
    if len(planes) < 2 or any(p is None for p in planes) or len(set(planes)) != len(planes):
        return None
    return tuple(sorted(int(p) for p in planes))


def collective_channels(
    graph: GraphLike, hosts: Sequence[str], pattern: Pattern
) -> tuple[list[Flow], dict[Flow, float]]:
    """The channels of a collective among ``hosts`` and their demands: each flow of
    :func:`collective_flows` becomes one channel per plane when both its hosts have one NIC
    in each of the same two or more planes (:func:`host_planes`), each with demand 1/P;
    otherwise it stays one channel (``plane`` None, demand 1)."""
    out: list[Flow] = []
    demand: dict[Flow, float] = {}
    for f in collective_flows(hosts, pattern):
        a, b = host_planes(graph, f.src), host_planes(graph, f.dst)
        planes = a if a is not None and a == b else None
        if planes is None:
            out.append(f)
            demand[f] = 1.0
            continue
        for p in planes:
            channel = Flow(f.src, f.dst, p)
            out.append(channel)
            demand[channel] = 1.0 / len(planes)
    return out, demand


def candidate_paths(
    graph: GraphLike,
    flow: Flow,
    *,
    kind: CandidateKind = "both",
    limit: int = 16,
    down: Iterable[LinkRef] = (),
) -> tuple[Path, ...]:
    """The paths a flow may be placed on, shortest first: its edge-disjoint paths (host
    access links shared), its equal-cost paths (at most ``limit``), or both. A channel
    (``flow.plane`` set) takes only paths whose switches are all in its plane."""
    if flow.plane is not None:
        return _plane_paths(graph, flow, kind=kind, limit=limit, down=down)
    live = LiveGraph.of(graph, down)
    found: set[Path] = set()
    if kind in ("disjoint", "both"):
        found.update(max_disjoint_paths(live, flow.src, flow.dst))
    if kind in ("ecmp", "both"):
        with contextlib.suppress(NoPathError):
            found.update(equal_cost_paths(live, flow.src, flow.dst, limit=limit))
    if kind not in ("disjoint", "ecmp", "both"):
        raise ValueError(f"candidate kind must be disjoint, ecmp or both, got {kind!r}")
    if not found:
        raise NoPathError(flow.src, flow.dst, detail=f"flow {flow}")
    return tuple(sorted(found))


def place_collective(
    graph: GraphLike,
    hosts: Sequence[str],
    pattern: Pattern,
    *,
    down: Iterable[LinkRef] = (),
    weighted: bool = False,
    kind: CandidateKind = "both",
    limit: int = 16,
    channels: bool = True,
) -> Placement:
    """Place the channels of a collective (:func:`collective_channels`; with ``channels``
    False, its whole flows) (see :func:`place_flows`)."""
    if channels:
        flows, demand = collective_channels(graph, hosts, pattern)
    else:
        flows, demand = collective_flows(hosts, pattern), {}
    return place_flows(
        graph,
        flows,
        down=down,
        weighted=weighted,
        kind=kind,
        limit=limit,
        demand=demand,
    )


def place_flows(
    graph: GraphLike,
    flows: Sequence[Flow],
    *,
    down: Iterable[LinkRef] = (),
    weighted: bool = False,
    kind: CandidateKind = "both",
    limit: int = 16,
    demand: Mapping[Flow, float] | None = None,
    rounds: int = 10_000,
) -> Placement:
    """One path per flow, chosen among its candidates (:func:`candidate_paths`) so that
    the maximum link load is as low as the greedy pass and local search can make it.

    ``demand`` gives a flow's weight (default 1). At most ``rounds`` improving moves.
    Raises :class:`NoPathError` if some flow has no path.
    """
    live = LiveGraph.of(graph, down)
    order = tuple(flows)
    cands = {f: candidate_paths(live, f, kind=kind, limit=limit) for f in dict.fromkeys(order)}
    scale = _scales(live, weighted)
    dem = [1.0 if demand is None else float(demand.get(f, 1.0)) for f in order]
    options = [[_edge_ids(live, p) for p in cands[f]] for f in order]
    state = _LoadState()

    def add(i: int, c: int, sign: float) -> None:
        for e in options[i][c]:
            state.change(e, sign * dem[i] * scale[e[0]])

    choice: list[int] = []
    for i, opts in enumerate(options):
        best = 0
        best_key: tuple[float, float] | None = None
        for c, edges in enumerate(opts):
            peak = max((state.get(e) + dem[i] * scale[e[0]] for e in edges), default=0.0)
            grow = sum(
                2 * state.get(e) * dem[i] * scale[e[0]] + (dem[i] * scale[e[0]]) ** 2 for e in edges
            )
            key = (round(peak, 9), round(grow, 9))
            if best_key is None or key < best_key:
                best, best_key = c, key
        choice.append(best)
        add(i, best, 1.0)

    users: dict[tuple[int, bool], set[int]] = {}
    for i, c in enumerate(choice):
        for e in options[i][c]:
            users.setdefault(e, set()).add(i)
    for _ in range(rounds):
        current = state.objective()
        top = current[0]
        if top <= 0:
            break
        movers = sorted({i for e in state.at(top) for i in users.get(e, ())})
        moved = False
        for i in movers:
            for c in range(len(options[i])):
                if c == choice[i]:
                    continue
                old = choice[i]
                add(i, old, -1.0)
                add(i, c, 1.0)
                if _better(state.objective(), current):
                    for e in options[i][old]:
                        users[e].discard(i)
                    for e in options[i][c]:
                        users.setdefault(e, set()).add(i)
                    choice[i] = c
                    moved = True
                    break
                add(i, c, -1.0)
                add(i, old, 1.0)
            if moved:
                break
        if not moved:
            break
    paths = {f: cands[f][choice[i]] for i, f in enumerate(order)}
    return _placement(live, order, paths, dem, scale, weighted=weighted, cands=cands)


def _plane_paths(
    graph: GraphLike, flow: Flow, *, kind: CandidateKind, limit: int, down: Iterable[LinkRef]
) -> tuple[Path, ...]:
    """:func:`candidate_paths` of a channel: the hosts' NICs in other planes are cut, and
    only paths whose switches are all in the channel's plane are kept."""
    base = LiveGraph.of(graph, down)
    g = base.graph

    def plane(node: str) -> object:
        return g.nodes[node].get("plane")

    others = [
        (host, sw)
        for host in (flow.src, flow.dst)
        if host in g
        for sw in g.neighbors(host)
        if plane(sw) != flow.plane and frozenset((host, sw)) not in base.down
    ]
    inside = LiveGraph.of(base, others)
    try:
        found = candidate_paths(inside, flow.parent, kind=kind, limit=limit)
    except NoPathError:
        found = ()
    kept = tuple(p for p in found if all(plane(n) == flow.plane for n in p.nodes[1:-1]))
    if not kept:
        raise NoPathError(flow.src, flow.dst, detail=f"channel {flow} (no path inside plane)")
    return kept


def placement_of(
    graph: GraphLike,
    paths: Mapping[Flow, Path],
    *,
    down: Iterable[LinkRef] = (),
    weighted: bool = False,
    demand: Mapping[Flow, float] | None = None,
) -> Placement:
    """Measure a given assignment of paths (naive, hashed, or computed elsewhere)."""
    live = LiveGraph.of(graph, down)
    order = tuple(paths)
    dem = [1.0 if demand is None else float(demand.get(f, 1.0)) for f in order]
    return _placement(
        live, order, dict(paths), dem, _scales(live, weighted), weighted=weighted, cands={}
    )


def first_path_placement(
    graph: GraphLike,
    flows: Sequence[Flow],
    *,
    down: Iterable[LinkRef] = (),
    weighted: bool = False,
) -> Placement:
    """The naive placement: every flow on its first candidate (its shortest path)."""
    live = LiveGraph.of(graph, down)
    paths = {f: candidate_paths(live, f)[0] for f in flows}
    return placement_of(live, paths, weighted=weighted)


def ecmp_hash_paths(
    graph: GraphLike,
    flows: Sequence[Flow],
    *,
    down: Iterable[LinkRef] = (),
    seed: int = 0,
) -> dict[Flow, Path]:
    """The path per-flow ECMP hashing gives each flow: at every hop, the next hop picked by
    a hash of (seed, flow, node) among the equal-cost next hops. A stand-in for a switch's
    5-tuple hash, for comparing placements."""
    live = LiveGraph.of(graph, down)
    out: dict[Flow, Path] = {}
    for f in flows:
        s, t = live.node(f.src, "source"), live.node(f.dst, "destination")
        table = next_hop_table(live, t)
        if s != t and not table[s]:
            raise NoPathError(f.src, f.dst, detail=f"flow {f}")
        walk = [s]
        u = s
        while u != t:
            hops = table[u]
            key = f"{seed}|{f.src}|{f.dst}|{live.names[u]}".encode()
            u = hops[zlib.crc32(key) % len(hops)]
            walk.append(u)
        out[f] = live.path(walk)
    return out


# -- internals ----------------------------------------------------------------------------

LinkDir = tuple[int, bool]
"""An edge of the snapshot and a direction (True: from its lower-numbered end)."""


class _LoadState:
    def __init__(self) -> None:
        self.load: dict[LinkDir, float] = {}
        self.levels: Counter[float] = Counter()
        self.sumsq = 0.0

    def get(self, e: LinkDir) -> float:
        return self.load.get(e, 0.0)

    def change(self, e: LinkDir, delta: float) -> None:
        old = self.load.get(e, 0.0)
        new = old + delta
        if abs(new) < _EPS:
            new = 0.0
        self.load[e] = new
        self.sumsq += new * new - old * old
        ko, kn = round(old, 9), round(new, 9)
        if ko:
            self.levels[ko] -= 1
            if not self.levels[ko]:
                del self.levels[ko]
        if kn:
            self.levels[kn] += 1

    def objective(self) -> tuple[float, int, float]:
        if not self.levels:
            return (0.0, 0, 0.0)
        top = max(self.levels)
        return (top, self.levels[top], self.sumsq)

    def at(self, level: float) -> list[LinkDir]:
        return sorted(e for e, x in self.load.items() if round(x, 9) == level)


def _better(new: tuple[float, int, float], old: tuple[float, int, float]) -> bool:
    if new[0] != old[0]:
        return new[0] < old[0]
    if new[1] != old[1]:
        return new[1] < old[1]
    return new[2] < old[2] - _EPS


def _scales(live: LiveGraph, weighted: bool) -> list[float]:
    if not weighted:
        return [1.0] * len(live.edges)
    bws = [float(data.get("bandwidth") or 1.0) for data in live.edge_data]
    fastest = max(bws, default=1.0)
    return [fastest / bw for bw in bws]


def _edge_ids(live: LiveGraph, path: Path) -> list[LinkDir]:
    index = live.index
    out: list[LinkDir] = []
    for a, b in path.edges():
        u, v = index[a], index[b]
        out.append((live.edge_between(u, v), u < v))
    return out


def _placement(
    live: LiveGraph,
    order: tuple[Flow, ...],
    paths: dict[Flow, Path],
    dem: list[float],
    scale: list[float],
    *,
    weighted: bool,
    cands: Mapping[Flow, tuple[Path, ...]],
) -> Placement:
    load: dict[LinkDir, float] = {}
    count: dict[LinkDir, int] = {}
    for i, f in enumerate(order):
        for e in _edge_ids(live, paths[f]):
            load[e] = load.get(e, 0.0) + dem[i] * scale[e[0]]
            count[e] = count.get(e, 0) + 1
    names = live.names
    links: list[LinkLoad] = []
    for key, value in load.items():
        edge, forward = key
        u, v, _ = live.edges[edge]
        a, b = (u, v) if forward else (v, u)
        name = live.edge_data[edge].get("link") or f"{names[u]}-{names[v]}"
        links.append(LinkLoad(str(name), names[a], names[b], count[key], value))
    links.sort(key=lambda x: (-round(x.load, 9), x.link, x.src))
    return Placement(
        flows=order,
        paths=paths,
        links=tuple(links),
        max_load=max((x.load for x in links), default=0.0),
        weighted=weighted,
        candidates=dict(cands),
        demand={f: dem[i] for i, f in enumerate(order)},
    )
