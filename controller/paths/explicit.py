"""Explicit paths: through a list of waypoints, shortest path segment by segment."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

from controller.paths.graph import GraphLike, LinkRef, LiveGraph, NoPathError, Path
from controller.paths.shortest import shortest_walk


def explicit_path(
    graph: GraphLike,
    src: str,
    dst: str,
    waypoints: Sequence[str],
    *,
    down: Iterable[LinkRef] = (),
) -> Path:
    """The path from ``src`` through every waypoint in order to ``dst``: the shortest path
    (name-smallest of equals, as :func:`~controller.paths.shortest.shortest_path`) from
    each point to the next, joined.

    Waypoints must be switches (hosts do not forward). The path may visit a node more
    than once if the waypoints ask for it. Raises :class:`NoPathError` whose ``segment``
    (0-based) and ``src``/``dst`` name the first segment that has no path.
    """
    live = LiveGraph.of(graph, down)
    points = [live.node(src, "source")]
    for i, name in enumerate(waypoints):
        w = live.node(name, f"waypoint {i + 1}")
        if live.is_host[w]:
            raise ValueError(f"waypoint {i + 1} {name!r} is a host; waypoints must be switches")
        points.append(w)
    points.append(live.node(dst, "destination"))
    nodes = [points[0]]
    segments = len(points) - 1
    for i, (a, b) in enumerate(itertools.pairwise(points)):
        try:
            walk = shortest_walk(live, a, b)
        except NoPathError:
            raise NoPathError(
                live.names[a],
                live.names[b],
                segment=i,
                detail=f"{segments} segment(s): {' -> '.join(live.names[p] for p in points)}",
            ) from None
        nodes.extend(walk[1:])
    return live.path(nodes)
