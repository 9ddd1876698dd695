"""Intents: what an engineer asks of the network, validated against the topology.

Four kinds (issue 4):

- ``connectivity``: ECMP routing between all hosts (the fabric). The default: the
  controller creates it at start unless told otherwise;
- ``disjoint``: ``k`` edge- or node-disjoint paths between two hosts, traffic spread over
  them by weight, both directions;
- ``explicit``: one path from ``src`` through ``waypoints`` (switches, in order) to
  ``dst``, both directions (the reverse path goes through the waypoints backwards);
- ``collective``: a group of GPU hosts and a pattern (``ring`` all-reduce or
  ``all-to-all``); every flow of the pattern is placed on a path so that the most loaded
  link carries as little as possible.

An intent's spec comes in as a plain mapping (from the gRPC API, the CLI or the state
file) and is checked by :func:`parse_spec`: every problem is an :class:`IntentError`
naming the field (``spec.k``, ``spec.hosts[2]``), never a crash. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from controller.topology import Topology

Kind = Literal["connectivity", "disjoint", "explicit", "collective"]
KINDS: tuple[Kind, ...] = get_args(Kind)
Mode = Literal["edge", "node"]
Pattern = Literal["ring", "all-to-all"]
EncodingName = Literal["usid", "full"]
MAX_K = 16
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


class IntentError(ValueError):
    """A bad intent: ``field`` names what is wrong (``spec.k``), the message says why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class Connectivity:
    kind: Literal["connectivity"] = "connectivity"


@dataclass(frozen=True, slots=True)
class Disjoint:
    src: str
    dst: str
    k: int = 2
    mode: Mode = "edge"
    weights: tuple[int, ...] = ()
    """Traffic share per path, shortest path first; empty: equal shares."""
    encoding: EncodingName = "usid"
    kind: Literal["disjoint"] = "disjoint"


@dataclass(frozen=True, slots=True)
class Explicit:
    src: str
    dst: str
    waypoints: tuple[str, ...]
    encoding: EncodingName = "usid"
    kind: Literal["explicit"] = "explicit"


@dataclass(frozen=True, slots=True)
class Collective:
    hosts: tuple[str, ...]
    pattern: Pattern = "all-to-all"
    encoding: EncodingName = "usid"
    kind: Literal["collective"] = "collective"


Spec = Connectivity | Disjoint | Explicit | Collective


@dataclass(frozen=True, slots=True)
class Intent:
    id: str
    spec: Spec
    created: float = field(default=0.0, compare=False)
    """Unix time of creation (for people; order is the store's)."""


# -- parsing ------------------------------------------------------------------------------------

_FIELDS: dict[str, frozenset[str]] = {
    "connectivity": frozenset({"kind"}),
    "disjoint": frozenset({"kind", "src", "dst", "k", "mode", "weights", "encoding"}),
    "explicit": frozenset({"kind", "src", "dst", "waypoints", "encoding"}),
    "collective": frozenset({"kind", "hosts", "pattern", "encoding"}),
}


def check_id(value: object, where: str = "id") -> str:
    if not isinstance(value, str) or not _ID.match(value):
        raise IntentError(
            where,
            f"{value!r} is not an intent id (1-64 letters, digits, '_', '.', ':' or '-', "
            "starting with a letter or digit)",
        )
    return value


def parse_spec(data: Mapping[str, Any], topo: Topology, where: str = "spec") -> Spec:
    """The spec in ``data`` checked against ``topo``; raises :class:`IntentError`."""
    if not isinstance(data, Mapping):
        raise IntentError(where, "must be an object")
    kind = data.get("kind")
    if kind not in KINDS:
        raise IntentError(f"{where}.kind", f"must be one of {', '.join(KINDS)}, not {kind!r}")
    unknown = sorted(set(data) - _FIELDS[kind])
    if unknown:
        allowed = ", ".join(sorted(_FIELDS[kind] - {"kind"})) or "none"
        raise IntentError(f"{where}.{unknown[0]}", f"unknown field for {kind} (fields: {allowed})")
    encoding = _choice(data, "encoding", ("usid", "full"), "usid", where)
    if kind == "connectivity":
        return Connectivity()
    if kind == "disjoint":
        src, dst = _host(data, "src", topo, where), _host(data, "dst", topo, where)
        if src == dst:
            raise IntentError(f"{where}.dst", f"is the same host as src ({src})")
        k = data.get("k", 2)
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise IntentError(f"{where}.k", f"must be an integer from 1 to {MAX_K}, not {k!r}")
        mode = _choice(data, "mode", ("edge", "node"), "edge", where)
        weights = _weights(data.get("weights", []), k, f"{where}.weights")
        return Disjoint(src, dst, k, mode, weights, encoding)  # type: ignore[arg-type]
    if kind == "explicit":
        src, dst = _host(data, "src", topo, where), _host(data, "dst", topo, where)
        if src == dst:
            raise IntentError(f"{where}.dst", f"is the same host as src ({src})")
        raw = data.get("waypoints")
        if not isinstance(raw, Sequence) or isinstance(raw, str) or not raw:
            raise IntentError(f"{where}.waypoints", "must be a non-empty list of switch names")
        points: list[str] = []
        for i, name in enumerate(raw):
            here = f"{where}.waypoints[{i}]"
            if not isinstance(name, str) or not topo.is_switch(name):
                raise IntentError(
                    here,
                    f"{name!r} is not a switch of {topo.name}{_hint(topo, name, switches=True)}",
                )
            points.append(name)
        return Explicit(src, dst, tuple(points), encoding)  # type: ignore[arg-type]
    raw = data.get("hosts")
    if not isinstance(raw, Sequence) or isinstance(raw, str) or len(raw) < 2:
        raise IntentError(f"{where}.hosts", "must be a list of at least 2 host names")
    hosts: list[str] = []
    for i, name in enumerate(raw):
        here = f"{where}.hosts[{i}]"
        if not isinstance(name, str) or not _is_host(topo, name):
            raise IntentError(here, f"{name!r} is not a host of {topo.name}{_hint(topo, name)}")
        if name in hosts:
            raise IntentError(here, f"{name} appears twice")
        hosts.append(name)
    pattern = _choice(data, "pattern", ("ring", "all-to-all"), "all-to-all", where)
    return Collective(tuple(hosts), pattern, encoding)  # type: ignore[arg-type]


def spec_dict(spec: Spec) -> dict[str, Any]:
    """The spec as the plain mapping :func:`parse_spec` reads (defaults included)."""
    match spec:
        case Connectivity():
            return {"kind": "connectivity"}
        case Disjoint():
            out: dict[str, Any] = {
                "kind": "disjoint",
                "src": spec.src,
                "dst": spec.dst,
                "k": spec.k,
                "mode": spec.mode,
                "encoding": spec.encoding,
            }
            if spec.weights:
                out["weights"] = list(spec.weights)
            return out
        case Explicit():
            return {
                "kind": "explicit",
                "src": spec.src,
                "dst": spec.dst,
                "waypoints": list(spec.waypoints),
                "encoding": spec.encoding,
            }
        case Collective():
            return {
                "kind": "collective",
                "hosts": list(spec.hosts),
                "pattern": spec.pattern,
                "encoding": spec.encoding,
            }


def describe(spec: Spec) -> str:
    """One line for people: ``disjoint h1 <-> h9, k=2 edge``."""
    match spec:
        case Connectivity():
            return "connectivity: ECMP routing between all hosts"
        case Disjoint():
            w = f", weights {':'.join(map(str, spec.weights))}" if spec.weights else ""
            return f"disjoint {spec.src} <-> {spec.dst}, k={spec.k} {spec.mode}{w}"
        case Explicit():
            return f"explicit {spec.src} -> {' -> '.join(spec.waypoints)} -> {spec.dst}"
        case Collective():
            return f"collective {spec.pattern} over {len(spec.hosts)} hosts: {' '.join(spec.hosts)}"


def _choice(
    data: Mapping[str, Any], name: str, allowed: tuple[str, ...], default: str, where: str
) -> str:
    value = data.get(name, default)
    if value not in allowed:
        raise IntentError(f"{where}.{name}", f"must be one of {', '.join(allowed)}, not {value!r}")
    return str(value)


def _is_host(topo: Topology, name: str) -> bool:
    try:
        topo.host(name)
    except KeyError:
        return False
    return True


def _host(data: Mapping[str, Any], name: str, topo: Topology, where: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise IntentError(f"{where}.{name}", "must be a host name")
    if not _is_host(topo, value):
        raise IntentError(
            f"{where}.{name}", f"{value!r} is not a host of {topo.name}{_hint(topo, value)}"
        )
    return value


def _hint(topo: Topology, name: object, *, switches: bool = False) -> str:
    import difflib

    pool = [s.name for s in topo.switches] if switches else [h.name for h in topo.hosts]
    close = difflib.get_close_matches(str(name), pool, n=1) if isinstance(name, str) else []
    return f" (did you mean {close[0]}?)" if close else ""


def _weights(raw: object, k: int, where: str) -> tuple[int, ...]:
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        raise IntentError(where, "must be a list of positive integers")
    if not raw:
        return ()
    if len(raw) != k:
        raise IntentError(where, f"has {len(raw)} weights for k={k} paths")
    out: list[int] = []
    for i, w in enumerate(raw):
        if isinstance(w, bool) or not isinstance(w, int) or not 1 <= w <= 1000:
            raise IntentError(f"{where}[{i}]", f"must be an integer from 1 to 1000, not {w!r}")
        out.append(w)
    return tuple(out)
