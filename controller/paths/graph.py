"""The live graph: an integer-indexed, immutable snapshot of a topology graph with the links
that are down left out, plus the types every path function returns.

The path engine never touches networkx in its inner loops: a :class:`LiveGraph` numbers the
nodes in sorted name order (so every tie is broken by name, deterministically) and keeps
adjacency as plain lists. It never mutates the graph it was built from.

Hosts are endpoints, never transit: a path may start or end at a host but never passes
through one, even when a host has NICs in several planes.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import networkx as nx

LinkRef = str | tuple[str, str]
"""A link, by its name (the edge attribute ``link``) or by the pair of nodes it joins."""

INF = math.inf


@dataclass(frozen=True, slots=True, order=True)
class Path:
    """A path: its total cost and its nodes, source first. Paths sort shortest first, then
    by node names."""

    cost: float
    nodes: tuple[str, ...]

    @property
    def src(self) -> str:
        return self.nodes[0]

    @property
    def dst(self) -> str:
        return self.nodes[-1]

    @property
    def hops(self) -> int:
        return len(self.nodes) - 1

    def edges(self) -> tuple[tuple[str, str], ...]:
        """The directed links the path crosses, in order."""
        return tuple(itertools.pairwise(self.nodes))

    def __str__(self) -> str:
        return " -> ".join(self.nodes)


class NoPathError(Exception):
    """Fewer paths exist than were asked for.

    ``available`` says how many do (0: the endpoints are not connected). For a path through
    waypoints, ``segment`` is the index of the segment that has no path (``src`` and ``dst``
    are then that segment's ends).
    """

    def __init__(
        self,
        src: str,
        dst: str,
        *,
        requested: int = 1,
        available: int = 0,
        what: str = "path",
        segment: int | None = None,
        detail: str = "",
    ) -> None:
        self.src = src
        self.dst = dst
        self.requested = requested
        self.available = available
        self.segment = segment
        if available == 0:
            msg = f"no {what} from {src} to {dst}"
        elif available == 1:
            msg = f"only 1 {what} exists from {src} to {dst} (asked for {requested})"
        else:
            msg = f"only {available} {what}s exist from {src} to {dst} (asked for {requested})"
        if segment is not None:
            msg += f" (segment {segment + 1} of the explicit path)"
        if detail:
            msg += f": {detail}"
        super().__init__(msg)


def live_view(graph: nx.Graph, down: Iterable[LinkRef] = ()) -> nx.Graph:
    """A read-only networkx view of ``graph`` without the links in ``down`` (no copy)."""
    pairs = _resolve_down(graph, down)
    return nx.restricted_view(graph, [], pairs)


def _resolve_down(
    graph: nx.Graph, down: Iterable[LinkRef], what: str = "down link"
) -> list[tuple[str, str]]:
    refs = list(down)
    if not refs:
        return []
    by_name: dict[str, tuple[str, str]] = {}
    if any(isinstance(r, str) for r in refs):
        for u, v, name in graph.edges(data="link"):
            if name is not None:
                by_name[name] = (u, v)
    pairs: list[tuple[str, str]] = []
    for ref in refs:
        if isinstance(ref, str):
            if ref not in by_name:
                raise ValueError(f"{what} {ref!r}: no link of that name in the graph")
            pairs.append(by_name[ref])
        else:
            u, v = ref
            if not graph.has_edge(u, v):
                raise ValueError(f"{what} {u}-{v}: no link between those nodes")
            pairs.append((u, v))
    return pairs


class LiveGraph:
    """An immutable, integer-indexed snapshot of ``graph`` without the links in ``down``.

    Build one per topology change and pass it to every path function: they accept either a
    networkx graph (and build a LiveGraph on the fly) or a LiveGraph (and reuse its
    caches). ``weight`` names the edge attribute that holds a link's cost (missing: 1);
    ``weights`` overrides it per link. Costs must be finite and non-negative.

    A snapshot never changes once built (a topology change makes a new one), but its caches
    and the path modules' work areas live in it: use it from one thread (the controller's
    single event loop).
    """

    def __init__(
        self,
        graph: nx.Graph,
        down: Iterable[LinkRef] = (),
        *,
        weight: str = "weight",
        weights: Mapping[LinkRef, float] | None = None,
    ) -> None:
        if graph.is_directed() or graph.is_multigraph():
            raise ValueError("the path engine needs an undirected simple graph")
        self.graph = graph
        self.weight = weight
        self.weights: Mapping[LinkRef, float] = dict(weights or {})
        down_pairs = _resolve_down(graph, down)
        self.down: frozenset[frozenset[str]] = frozenset(frozenset(p) for p in down_pairs)
        names = sorted(graph.nodes)
        for name in names:
            if not isinstance(name, str):
                raise ValueError(f"node {name!r} is not a string; relabel the graph's nodes")
        self.names: tuple[str, ...] = tuple(names)
        self.index: dict[str, int] = {name: i for i, name in enumerate(names)}
        self.is_host: tuple[bool, ...] = tuple(
            graph.nodes[name].get("kind") == "host" for name in names
        )
        overrides = _resolve_weights(graph, weights) if weights else {}
        edges: list[tuple[int, int, float]] = []
        edge_data: list[dict[str, Any]] = []
        for u, v, data in graph.edges(data=True):
            key = frozenset((u, v))
            if key in self.down:
                continue
            w = overrides.get(key, data.get(weight, 1))
            if isinstance(w, bool) or not isinstance(w, int | float) or not 0 <= w < INF:
                raise ValueError(f"link {u}-{v}: {weight} must be a finite number >= 0, got {w!r}")
            iu, iv = self.index[u], self.index[v]
            if iu > iv:
                iu, iv = iv, iu
            edges.append((iu, iv, w))
            edge_data.append(data)
        order = sorted(range(len(edges)), key=lambda e: edges[e][:2])
        self.edges: tuple[tuple[int, int, float], ...] = tuple(edges[e] for e in order)
        """``(u, v, cost)`` with ``u < v``, sorted: edge ``e`` of the snapshot."""
        self.edge_data: tuple[dict[str, Any], ...] = tuple(edge_data[e] for e in order)
        nbrs: list[list[tuple[int, float, int]]] = [[] for _ in names]
        for e, (u, v, w) in enumerate(self.edges):
            nbrs[u].append((v, w, e))
            nbrs[v].append((u, w, e))
        for row in nbrs:
            row.sort()
        self.adj: tuple[tuple[tuple[int, float, int], ...], ...] = tuple(tuple(row) for row in nbrs)
        """Per node: ``(neighbour, cost, edge)`` sorted by neighbour."""
        self.edge_index: dict[tuple[int, int], int] = {
            (u, v): e for e, (u, v, _) in enumerate(self.edges)
        }
        self.unit = all(w == 1 for _, _, w in self.edges)
        self.integral = all(isinstance(w, int) for _, _, w in self.edges)
        self._dist_cache: OrderedDict[int, tuple[list[float], list[float]]] = OrderedDict()
        self.caches: dict[Hashable, Any] = {}
        """Per-snapshot caches of the path modules (valid because the snapshot is frozen)."""

    @classmethod
    def of(cls, graph: nx.Graph | LiveGraph, down: Iterable[LinkRef] = ()) -> LiveGraph:
        """``graph`` itself if it is a LiveGraph and nothing more is down, else a new one."""
        if isinstance(graph, LiveGraph):
            extra = list(down)
            if not extra:
                return graph
            return LiveGraph(
                graph.graph,
                [*graph.down_pairs(), *extra],
                weight=graph.weight,
                weights=graph.weights,
            )
        return cls(graph, down)

    def down_pairs(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for pair in self.down:
            u, v = sorted(pair)
            out.append((u, v))
        return sorted(out)

    def node(self, name: str, what: str = "node") -> int:
        try:
            return self.index[name]
        except KeyError:
            raise ValueError(f"{what} {name!r} is not in the graph") from None

    def edge_between(self, u: int, v: int) -> int:
        return self.edge_index[(u, v) if u < v else (v, u)]

    def cost(self, nodes: Iterable[int]) -> float:
        seq = list(nodes)
        total: float = 0
        for a, b in itertools.pairwise(seq):
            total += self.edges[self.edge_between(a, b)][2]
        return total

    def path(self, nodes: Iterable[int]) -> Path:
        seq = list(nodes)
        return Path(self.cost(seq), tuple(self.names[i] for i in seq))

    def distances_to(self, target: int) -> list[float]:
        """Cost of the cheapest path from every node to ``target`` (INF if none).

        Hosts other than ``target`` are reached but never expanded (never transit). The
        last few results are cached; do not mutate the returned list.
        """
        return self._to(target)[0]

    def hops_to(self, target: int) -> list[float]:
        """The fewest hops among the cheapest paths from every node to ``target``: with
        zero-cost links, "next hop" must also mean "one hop closer", or ECMP could loop."""
        return self._to(target)[1]

    def _to(self, target: int) -> tuple[list[float], list[float]]:
        cached = self._dist_cache.get(target)
        if cached is not None:
            self._dist_cache.move_to_end(target)
            return cached
        if self.unit:
            dist = self._bfs(target)
            result = (dist, dist)
        else:
            result = self._dijkstra(target)
        self._dist_cache[target] = result
        if len(self._dist_cache) > 64:
            self._dist_cache.popitem(last=False)
        return result

    def _bfs(self, target: int) -> list[float]:
        dist: list[float] = [INF] * len(self.names)
        dist[target] = 0
        frontier = [target]
        adj, is_host = self.adj, self.is_host
        d = 0
        while frontier:
            d += 1
            nxt: list[int] = []
            for u in frontier:
                if is_host[u] and u != target:
                    continue
                for v, _, _ in adj[u]:
                    if dist[v] == INF:
                        dist[v] = d
                        nxt.append(v)
            frontier = nxt
        return dist

    def _dijkstra(self, target: int) -> tuple[list[float], list[float]]:
        dist: list[float] = [INF] * len(self.names)
        hops: list[float] = [INF] * len(self.names)
        dist[target] = 0
        hops[target] = 0
        heap: list[tuple[float, float, int]] = [(0, 0, target)]
        adj, is_host = self.adj, self.is_host
        while heap:
            d, h, u = heapq.heappop(heap)
            if (d, h) > (dist[u], hops[u]) or (is_host[u] and u != target):
                continue
            for v, w, _ in adj[u]:
                nd, nh = d + w, h + 1
                if (nd, nh) < (dist[v], hops[v]):
                    dist[v], hops[v] = nd, nh
                    heapq.heappush(heap, (nd, nh, v))
        return dist, hops

    def tolerance(self) -> float:
        """How far apart two path costs may be and still count as equal."""
        if self.integral:
            return 0.0
        top = max((w for _, _, w in self.edges), default=1.0)
        return 1e-9 * max(top, 1.0) * max(len(self.names), 1)


def _resolve_weights(
    graph: nx.Graph, weights: Mapping[LinkRef, float]
) -> dict[frozenset[str], float]:
    pairs = _resolve_down(graph, weights.keys(), "weight of link")
    return {frozenset(p): w for p, w in zip(pairs, weights.values(), strict=True)}


GraphLike = nx.Graph | LiveGraph
