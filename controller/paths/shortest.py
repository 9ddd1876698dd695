"""Shortest paths and ECMP sets.

One search from each destination gives, for every node, all of its equal-cost next hops
toward it: exactly what an ECMP group needs, and the DAG every shortest path follows.
Ties are broken by name: :func:`shortest_path` returns the lexicographically smallest of
the shortest paths, and next hops are listed in name order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from controller.paths.graph import INF, GraphLike, LinkRef, LiveGraph, NoPathError, Path


def next_hop_table(live: LiveGraph, target: int) -> tuple[tuple[int, ...], ...]:
    """Per node index, the indexes of its equal-cost next hops toward ``target`` (empty for
    ``target`` itself and for nodes that cannot reach it). Cached on the snapshot.

    A next hop over a zero-cost link must also be one hop closer (fewest hops among the
    cheapest paths), so that zero-cost links can never make a forwarding loop.
    """
    tables: dict[int, tuple[tuple[int, ...], ...]] = live.caches.setdefault("next-hops", {})
    cached = tables.get(target)
    if cached is not None:
        return cached
    dist, hops = live.distances_to(target), live.hops_to(target)
    tol = live.tolerance()
    is_host = live.is_host
    table: list[tuple[int, ...]] = []
    for u, row in enumerate(live.adj):
        du = dist[u]
        if u == target or du == INF:
            table.append(())
            continue
        hu = hops[u] - 1
        table.append(
            tuple(
                v
                for v, w, _ in row
                if (v == target or not is_host[v])
                and abs(du - w - dist[v]) <= tol
                and (w > tol or hops[v] == hu)
            )
        )
    result = tuple(table)
    tables[target] = result
    return result


def ecmp_next_hops(
    graph: GraphLike, dst: str, *, down: Iterable[LinkRef] = ()
) -> dict[str, tuple[str, ...]]:
    """Every equal-cost next hop toward ``dst``, from every node that can reach it.

    Keys are switches and hosts (a host with several NICs has one next hop per NIC on a
    shortest path); ``dst`` and nodes cut off from it are left out. Next hops are in name
    order and are never hosts other than ``dst`` (hosts do not forward). One search from
    ``dst`` computes the whole table.
    """
    live = LiveGraph.of(graph, down)
    t = live.node(dst, "destination")
    names = live.names
    return {
        names[u]: tuple(names[v] for v in hops)
        for u, hops in enumerate(next_hop_table(live, t))
        if hops
    }


def shortest_path(graph: GraphLike, src: str, dst: str, *, down: Iterable[LinkRef] = ()) -> Path:
    """The cheapest path from ``src`` to ``dst``; of several, the one whose node names are
    lexicographically smallest. Raises :class:`NoPathError`."""
    live = LiveGraph.of(graph, down)
    s, t = live.node(src, "source"), live.node(dst, "destination")
    return live.path(shortest_walk(live, s, t))


def shortest_walk(live: LiveGraph, s: int, t: int) -> list[int]:
    """Node indexes of the name-smallest cheapest path (raises :class:`NoPathError`)."""
    if s == t:
        return [s]
    table = next_hop_table(live, t)
    if not table[s]:
        raise NoPathError(live.names[s], live.names[t])
    walk = [s]
    u = s
    while u != t:
        u = table[u][0]
        walk.append(u)
    return walk


def equal_cost_paths(
    graph: GraphLike,
    src: str,
    dst: str,
    *,
    down: Iterable[LinkRef] = (),
    limit: int | None = None,
) -> list[Path]:
    """All cheapest paths from ``src`` to ``dst`` in name order (at most ``limit``): the
    paths ECMP spreads flows over. Raises :class:`NoPathError`."""
    live = LiveGraph.of(graph, down)
    s, t = live.node(src, "source"), live.node(dst, "destination")
    if s == t:
        return [live.path([s])]
    table = next_hop_table(live, t)
    if not table[s]:
        raise NoPathError(src, dst)
    out: list[Path] = []
    for nodes in _enumerate(table, s, t):
        out.append(live.path(nodes))
        if limit is not None and len(out) >= limit:
            break
    return out


def _enumerate(table: tuple[tuple[int, ...], ...], s: int, t: int) -> Iterator[list[int]]:
    walk = [s]
    its = [iter(table[s])]
    while its:
        v = next(its[-1], None)
        if v is None:
            its.pop()
            walk.pop()
            continue
        walk.append(v)
        if v == t:
            yield list(walk)
            walk.pop()
        else:
            its.append(iter(table[v]))


def count_equal_cost_paths(
    graph: GraphLike, src: str, dst: str, *, down: Iterable[LinkRef] = ()
) -> int:
    """How many cheapest paths lead from ``src`` to ``dst`` (without listing them)."""
    live = LiveGraph.of(graph, down)
    s, t = live.node(src, "source"), live.node(dst, "destination")
    if s == t:
        return 1
    table = next_hop_table(live, t)
    dist = live.distances_to(t)
    hops = live.hops_to(t)
    count = [0] * len(live.names)
    count[t] = 1
    order = sorted(
        (u for u in range(len(live.names)) if dist[u] < INF), key=lambda u: (dist[u], hops[u])
    )
    for u in order:
        if u != t:
            count[u] = sum(count[v] for v in table[u])
    return count[s]
