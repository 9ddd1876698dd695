"""k edge- or node-disjoint paths with the minimum total cost (Suurballe/Bhandari).

The problem is a min-cost flow of k units from source to sink where every link carries at
most one unit each way, and, for node-disjoint paths, every node too (each node is split
into ``in -> out`` with capacity 1). Links are undirected: flow that crosses a link both ways
cancels out (it never helps, and costs nothing when it is removed), so no two paths share a
link in either direction.
We solve it with successive shortest augmenting paths on the residual network, the
primal-dual way:

- node potentials keep every residual arc's reduced cost ``cost + p[tail] - p[head]`` at or
  above 0, so a residual path of reduced cost 0 (an *admissible* path) is a shortest
  augmenting path, and augmenting along it keeps the flow minimum-cost for its value;
- the first potentials are minus the distances to the destination, so at first the
  admissible arcs are exactly the equal-cost next hops toward it: the first paths are found
  by a depth-first search over a handful of arcs, without a priority queue;
- only when no admissible path is left does a Dijkstra search (stopped when it reaches the
  sink) update the potentials; if it cannot reach the sink, fewer than k paths exist.

The residual network does not depend on the endpoints, so it is built once per
:class:`~controller.paths.graph.LiveGraph`; a query changes capacities in place and puts
back exactly the arcs it touched. The distances and admissible arcs toward a destination
are cached per destination, so all queries toward one destination share them: to compute
many pairs, go destination by destination.

Host endpoints (``share_access=True``, the default): a host usually has one NIC, which
would limit every host pair to one disjoint path. So the links between an endpoint host and
the switches it attaches to are shared by all paths (and, for node-disjoint paths, those
switches too): disjointness is counted on the fabric between the hosts' attachment
switches. A switch that both endpoints attach to (or that is the other endpoint) gives
exactly one path, the direct one (``h1 - s - h2``, ``h1 - s``); a host's other paths leave
or enter through the attachment switches it does not share with the other endpoint, and
for node-disjoint paths between two hosts a shared switch carries its direct path only.
With ``share_access=False`` access links count like any other link (a host with one
NIC then has at most one edge-disjoint path). Hosts are never transit nodes.

Results are deterministic: nodes are numbered in name order and every search scans them in
that order; paths come back shortest first, then by node names.

Spreading (``salt``): the depth-first search takes the first admissible arc with capacity
left, so with ``salt=0`` ties among equal-cost next hops always go to the smallest node
name (on a fat tree every pair's paths cross the same cores). A ``salt`` rotates where
each node's scan starts: among the node's admissible arcs that have capacity left, it
begins at index ``salt mod count``. Only those with capacity count: the admissible lists
also hold residual arcs back toward where the flow came from, with capacity 0 until flow
crosses them, and counting them tied the choice to how many of those a node has (on
fat-tree-4 an aggregation switch has 2 cores and 2 such arcs: salts 0 and 3 took core1,
1 and 2 core2, where D-mod-k wants the salt's parity). Which
admissible path is found changes, its cost does not: every admissible path (reduced cost
0) is a shortest augmenting path, so the result still has the minimum total cost; only
the choice among equal-cost sets changes. Callers that give each destination its own
salt (D-mod-k routing on a fat tree) spread the pairs toward different destinations over
different equal-cost links. The cached admissible lists are never reordered; ``salt=0``
scans exactly as before.
"""

from __future__ import annotations

import heapq
from array import array
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from controller.paths.graph import INF, GraphLike, LinkRef, LiveGraph, NoPathError, Path

Mode = Literal["edge", "node"]
MODES: tuple[Mode, ...] = ("edge", "node")
_TARGET_CACHE = 64


def disjoint_paths(
    graph: GraphLike,
    src: str,
    dst: str,
    k: int,
    *,
    mode: Mode = "edge",
    down: Iterable[LinkRef] = (),
    share_access: bool = True,
    salt: int = 0,
) -> list[Path]:
    """``k`` edge- (``mode="edge"``) or node-disjoint (``mode="node"``) paths from ``src``
    to ``dst`` whose total cost is the minimum over all such sets, shortest first.

    ``salt`` picks among equal-cost sets (a different salt may give different paths of
    the same total cost; 0: ties go to the smallest node names). Raises
    :class:`NoPathError` (with ``available`` set) when fewer than ``k`` exist. See the
    module documentation for how host endpoints are treated and what the salt rotates.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    _check_salt(salt)
    live = LiveGraph.of(graph, down)
    paths, available = _network(live, mode).solve(live, src, dst, k, share_access, salt=salt)
    if available < k:
        raise NoPathError(src, dst, requested=k, available=available, what=f"{mode}-disjoint path")
    return paths


def max_disjoint_paths(
    graph: GraphLike,
    src: str,
    dst: str,
    *,
    mode: Mode = "edge",
    down: Iterable[LinkRef] = (),
    share_access: bool = True,
    salt: int = 0,
) -> list[Path]:
    """As many disjoint paths as exist (the maximum number), with the minimum total cost
    for that number, shortest first. Empty if ``src`` and ``dst`` are not connected.
    ``salt``: as for :func:`disjoint_paths`."""
    _check_salt(salt)
    live = LiveGraph.of(graph, down)
    paths, _ = _network(live, mode).solve(live, src, dst, None, share_access, salt=salt)
    return paths


def count_disjoint_paths(
    graph: GraphLike,
    src: str,
    dst: str,
    *,
    mode: Mode = "edge",
    down: Iterable[LinkRef] = (),
    share_access: bool = True,
) -> int:
    """How many disjoint paths exist from ``src`` to ``dst``."""
    return len(max_disjoint_paths(graph, src, dst, mode=mode, down=down, share_access=share_access))


def _check_salt(salt: int) -> None:
    if isinstance(salt, bool) or not isinstance(salt, int) or salt < 0:
        raise ValueError(f"salt must be a non-negative integer, got {salt!r}")


def _network(live: LiveGraph, mode: Mode) -> _Network:
    if mode not in MODES:
        raise ValueError(f"mode must be 'edge' or 'node', got {mode!r}")
    key = ("disjoint-network", mode)
    net: _Network | None = live.caches.get(key)
    if net is None:
        net = _Network(live, mode)
        live.caches[key] = net
    return net


@dataclass(slots=True)
class _Target:
    """What all queries toward one destination share: its potentials and the admissible
    arcs under them (computed lazily, node by node)."""

    potential: list[float]
    admissible: dict[int, list[int]] = field(default_factory=dict)


class _Network:
    """The residual network of a snapshot for one mode.

    Arcs come in pairs ``a`` / ``a ^ 1`` (an arc and its residual reverse). Even arcs are
    the real ones: for every link ``u - v`` one arc each way (cost = link cost, capacity 1),
    and for node-disjoint mode one ``in -> out`` arc per node (cost 0, capacity 1). Arcs
    into hosts start with capacity 0; a query opens those into its own destination.
    """

    def __init__(self, live: LiveGraph, mode: Mode) -> None:
        self.mode = mode
        n = len(live.names)
        split = mode == "node"
        self.split = split
        size = 2 * n if split else n
        self.node_of = [x // 2 for x in range(size)] if split else list(range(n))
        self.entry = [2 * v for v in range(n)] if split else list(range(n))
        self.exit = [2 * v + 1 for v in range(n)] if split else list(range(n))
        head: list[int] = []
        cost: list[float] = []
        cap: list[int] = []
        out: list[list[int]] = [[] for _ in range(size)]
        twin: list[int] = []  # per even arc: the even arc of the other direction, or -1

        def add(x: int, y: int, c: int, w: float) -> int:
            a = len(head)
            head.extend((y, x))
            cost.extend((w, -w))
            cap.extend((c, 0))
            out[x].append(a)
            out[y].append(a + 1)
            twin.extend((-1, -1))
            return a

        self.split_arc: list[int] = []
        if split:
            self.split_arc = [add(2 * v, 2 * v + 1, 1, 0) for v in range(n)]
        is_host = live.is_host
        self.into: list[list[int]] = [[] for _ in range(n)]
        """Per node: the arcs that enter it from a neighbour (its access arcs for hosts)."""
        self.out_of: list[list[int]] = [[] for _ in range(n)]
        for u, v, w in live.edges:
            uv = add(self.exit[u], self.entry[v], 0 if is_host[v] else 1, w)
            vu = add(self.exit[v], self.entry[u], 0 if is_host[u] else 1, w)
            twin[uv], twin[vu] = vu, uv
            self.into[v].append(uv)
            self.into[u].append(vu)
            self.out_of[u].append(uv)
            self.out_of[v].append(vu)
        node_of = self.node_of
        for arcs in out:
            arcs.sort(key=lambda a: (node_of[head[a]], a))
        self.head = head
        self.cost = cost
        self.cap0 = array("l", cap)
        """The capacities of an idle network; queries work on ``cap`` and restore it."""
        self.cap = cap
        self.out = out
        self.twin = twin
        self.size = size
        self.tol = live.tolerance()
        total = sum(abs(w) for _, _, w in live.edges)
        self.far = total + 1 if live.integral else float(total) + 1.0
        self.targets: OrderedDict[int, _Target] = OrderedDict()

    # -- per destination -------------------------------------------------------------------

    def target(self, live: LiveGraph, t: int) -> _Target:
        state = self.targets.get(t)
        if state is not None:
            self.targets.move_to_end(t)
            return state
        dist = live.distances_to(t)
        far = self.far
        potential = [-(d if d != INF else far) for d in dist]
        if self.split:
            potential = [potential[x // 2] for x in range(self.size)]
        state = _Target(potential)
        self.targets[t] = state
        if len(self.targets) > _TARGET_CACHE:
            self.targets.popitem(last=False)
        return state

    # -- one query -------------------------------------------------------------------------

    def solve(
        self,
        live: LiveGraph,
        src: str,
        dst: str,
        k: int | None,
        share_access: bool,
        *,
        salt: int = 0,
    ) -> tuple[list[Path], int]:
        """Up to ``k`` (None: as many as exist) min-cost disjoint paths, and how many exist
        (exact when fewer than ``k``; otherwise ``k``)."""
        s, t = live.node(src, "source"), live.node(dst, "destination")
        if s == t:
            raise ValueError(f"source and destination are the same node {src!r}")
        is_host = live.is_host
        source, sink = self.exit[s], self.entry[t]

        # Endpoint sets: the attachment switches of a host whose access links are shared,
        # or the endpoint itself. Switches in both sets give one direct path each.
        src_shared = share_access and is_host[s]
        dst_shared = share_access and is_host[t]
        src_set = set(self._nbrs(s)) if src_shared else {s}
        dst_set = set(self._nbrs(t)) if dst_shared else {t}
        common = sorted(src_set & dst_set)
        trivial = sorted(live.path(_dedupe([s, x, t])) for x in common)

        limit = self._upper_bound(
            live,
            s,
            t,
            starts=src_set.difference(common) if src_shared else {s},
            ends=dst_set.difference(common) if dst_shared else {t},
        )
        need = limit if k is None else k
        width = max(need, 1)
        opened: dict[int, int] = {}
        if is_host[t]:
            for a in self.into[t]:
                opened[a] = width if dst_shared else 1
        for x in common:
            if src_shared:
                opened[self._arc(s, x)] = 0
            if dst_shared:
                opened[self._arc(x, t)] = 0
            if self.split and src_shared and dst_shared:
                opened[self.split_arc[x]] = 0
        if src_shared:
            for x in src_set.difference(common):
                opened[self._arc(s, x)] = width
                if self.split:
                    opened[self.split_arc[x]] = width
        if dst_shared and self.split:
            for x in dst_set.difference(common):
                opened[self.split_arc[x]] = width

        state = self.target(live, t)
        flows: list[tuple[float, list[int]]] = []
        if state.potential[source] != -self.far:
            # The working capacities are shared by all queries: change them in place and
            # put back exactly what changed (cheaper than copying every arc per query).
            cap, cap0 = self.cap, self.cap0
            try:
                for a, c in opened.items():
                    cap[a] = c
                self._augment(source, sink, min(need, limit), state, flows, salt=salt)
            finally:
                for a in opened:
                    cap[a] = cap0[a]
                for _, arcs in flows:
                    for a in arcs:
                        cap[a] = cap0[a]
                        cap[a ^ 1] = cap0[a ^ 1]

        # Merge direct paths (disjoint from everything) with the flow's augmentations: both
        # lists are sorted by incremental cost, so taking the cheaper head each time gives
        # the cheapest total for every count.
        available = len(trivial) + len(flows)
        want = available if k is None else min(k, available)
        take_trivial = take_flow = 0
        while take_trivial + take_flow < want:
            if take_flow == len(flows) or (
                take_trivial < len(trivial)
                and trivial[take_trivial].cost <= flows[take_flow][0] + self.tol
            ):
                take_trivial += 1
            else:
                take_flow += 1
        paths = trivial[:take_trivial] + self._decompose(live, s, t, flows[:take_flow])
        paths.sort()
        return paths, available

    def _nbrs(self, v: int) -> list[int]:
        return [self.node_of[self.head[a]] for a in self.out_of[v]]

    def _arc(self, u: int, v: int) -> int:
        for a in self.out_of[u]:
            if self.node_of[self.head[a]] == v:
                return a
        raise KeyError((u, v))

    def _upper_bound(
        self,
        live: LiveGraph,
        s: int,
        t: int,
        *,
        starts: set[int],
        ends: set[int],
    ) -> int:
        """How many paths could at most leave the source side and reach the destination
        side (links that can carry them), so that asking for "all" needs no failing search
        when the bound is met."""
        is_host, head, node_of = live.is_host, self.head, self.node_of
        out_links = 0
        for x in starts:
            for a in self.out_of[x]:
                y = node_of[head[a]]
                if y == t or (y != s and not is_host[y]):
                    out_links += 1
        in_links = 0
        for x in ends:
            for a in self.into[x]:
                y = node_of[head[a ^ 1]]
                if y == s or (y != t and not is_host[y]):
                    in_links += 1
        return min(out_links, in_links)

    def _augment(
        self,
        source: int,
        sink: int,
        need: int,
        state: _Target,
        done: list[tuple[float, list[int]]],
        *,
        salt: int = 0,
    ) -> None:
        """Successive shortest augmenting paths: up to ``need`` of them, each appended to
        ``done`` as (its cost, its arcs) as soon as it is applied. Their costs never
        decrease. ``salt`` rotates the depth-first scans (see the module's docstring)."""
        head, cost, out, tol, cap = self.head, self.cost, self.out, self.tol, self.cap
        potential = state.potential
        admissible = state.admissible
        shared = True  # potentials still those of the destination (no Dijkstra yet)

        def arcs_of(x: int) -> list[int]:
            arcs = admissible.get(x)
            if arcs is None:
                px = potential[x]
                arcs = [a for a in out[x] if cost[a] + px - potential[head[a]] <= tol]
                admissible[x] = arcs
            return arcs

        while len(done) < need:
            path = _admissible_path(source, sink, arcs_of, cap, head, salt=salt)
            if path is None:
                found = _dijkstra(self, cap, potential, source, sink)
                if found is None:
                    break
                settled, path = found
                if shared:
                    potential = list(potential)
                    shared = False
                at_sink = settled[sink]
                for x, d in settled.items():
                    potential[x] += d - at_sink
                admissible = {}
            done.append((sum(cost[a] for a in path), path))
            for a in path:
                cap[a] -= 1
                cap[a ^ 1] += 1

    def _decompose(
        self, live: LiveGraph, s: int, t: int, augmentations: list[tuple[float, list[int]]]
    ) -> list[Path]:
        """Turn the flow (the sum of the augmentations) into paths.

        When no augmentation cancelled another's flow (no reverse arc used, no link crossed
        both ways), each augmentation is a path. Otherwise cancel flow that crosses a link
        both ways, then walk from the source taking the smallest next node first and cutting
        out any loop (a zero-cost cycle).
        """
        if not augmentations:
            return []
        head, twin, node_of, names = self.head, self.twin, self.node_of, live.names
        used: set[int] = set()
        simple = True
        for _, arcs in augmentations:
            for a in arcs:
                if a & 1 or twin[a] in used:
                    simple = False
                    break
                used.add(a)
            if not simple:
                break
        if simple:
            paths: list[Path] = []
            for cost, arcs in augmentations:
                nodes = [s]
                for a in arcs:
                    v = node_of[head[a]]
                    if v != nodes[-1]:
                        nodes.append(v)
                paths.append(Path(cost, tuple(names[v] for v in nodes)))
            return paths
        flow: dict[int, int] = {}
        for _, arcs in augmentations:
            for a in arcs:
                if a & 1:
                    flow[a ^ 1] = flow.get(a ^ 1, 0) - 1
                else:
                    flow[a] = flow.get(a, 0) + 1
        succ: dict[int, list[int]] = {}
        for a, units in flow.items():
            other = twin[a]
            if other < 0 or units <= 0:
                continue
            net = units - max(flow.get(other, 0), 0)
            if net > 0:
                tail = node_of[head[a ^ 1]]
                succ.setdefault(tail, []).extend([node_of[head[a]]] * net)
        for nxt in succ.values():
            nxt.sort(reverse=True)
        paths = []
        for _ in augmentations:
            walk = [s]
            where = {s: 0}
            x = s
            while x != t:
                y = succ[x].pop()
                if y in where:
                    cut = where[y]
                    for z in walk[cut + 1 :]:
                        del where[z]
                    del walk[cut + 1 :]
                else:
                    where[y] = len(walk)
                    walk.append(y)
                x = y
            paths.append(live.path(walk))
        return paths


def _dedupe(nodes: list[int]) -> list[int]:
    out: list[int] = []
    for v in nodes:
        if not out or out[-1] != v:
            out.append(v)
    return out


def _admissible_path(
    source: int,
    sink: int,
    arcs_of: Callable[[int], list[int]],
    cap: list[int],
    head: list[int],
    *,
    salt: int = 0,
) -> list[int] | None:
    """A path of admissible arcs with capacity left, by depth-first search in arc order
    (with a ``salt``, each node's scan starts at index ``salt mod count`` of its arcs that
    have capacity left; the capacities do not change during one search)."""

    def scan(arcs: list[int]) -> Iterator[int]:
        if not salt:
            return iter(arcs)
        open_ = [a for a in arcs if cap[a] > 0]
        r = salt % len(open_) if open_ else 0
        return iter(open_[r:] + open_[:r])

    seen = {source}
    path: list[int] = []
    stack = [scan(arcs_of(source))]
    while stack:
        for a in stack[-1]:
            if cap[a] > 0:
                v = head[a]
                if v not in seen:
                    seen.add(v)
                    path.append(a)
                    if v == sink:
                        return path
                    stack.append(scan(arcs_of(v)))
                    break
        else:
            stack.pop()
            if path:
                path.pop()
    return None


def _dijkstra(
    net: _Network, cap: list[int], potential: list[float], source: int, sink: int
) -> tuple[dict[int, float], list[int]] | None:
    """Shortest residual path by reduced cost, stopped once the sink is settled: the
    settled nodes with their distances, and the path's arcs. None if the sink is cut off."""
    out, head, cost = net.out, net.head, net.cost
    dist: dict[int, float] = {source: 0}
    pred: dict[int, int] = {}
    settled: dict[int, float] = {}
    heap: list[tuple[float, int]] = [(0, source)]
    while heap:
        d, x = heapq.heappop(heap)
        if x in settled:
            continue
        settled[x] = d
        if x == sink:
            path: list[int] = []
            while x != source:
                a = pred[x]
                path.append(a)
                x = head[a ^ 1]
            path.reverse()
            return settled, path
        px = potential[x]
        for a in out[x]:
            if cap[a] > 0:
                v = head[a]
                if v in settled:
                    continue
                nd = d + cost[a] + px - potential[v]
                if nd < dist.get(v, INF):
                    dist[v] = nd
                    pred[v] = a
                    heapq.heappush(heap, (nd, v))
    return None
