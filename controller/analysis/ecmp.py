"""Collision analysis of a collective under hash-based ECMP (pure: no I/O, no network).

A collective's flows (:func:`controller.paths.collective_flows`) are routed three ways and
the load of every link direction is compared with the topology's capacity bound:

- ``ecmp``: per-flow hashing at every hop among the equal-cost next hops. The kernel's
  multipath hash (L4 policy) has a random seed per network namespace, so the exact choices
  of a lab cannot be computed offline. What can be: the **expected** load of every link
  under uniform hashing (exact, by propagating each flow's probability along its
  equal-cost DAG), and the **distribution** of the most loaded link over many seeds of a
  hash model (:func:`hashed_paths`: BLAKE2b of seed, flow and node; the CRC-32 model of
  :func:`controller.paths.ecmp_hash_paths` is linear in its input, so changing its seed
  never changes how flows split, and it cannot show a distribution). One seed's concrete
  flow-to-path map is shown as an example of what a lab may draw, never as its truth: the
  switches' counters are the truth (:func:`compare_measured`).
- ``pinned``: the controller's placement (:func:`controller.paths.place_collective`): on
  hosts with a NIC in each of several planes, every flow is one channel per plane (1/P of
  its bytes on a path inside that plane), so a flow's ``paths`` are its channels' paths.
- ``spray``: every flow split evenly over its edge-disjoint paths (MRC-style spraying),
  the paths the spray benchmark asks GetPaths for: salted with the destination's index
  (:func:`controller.paths.spread_salt`, D-mod-k), so that the pairs toward different
  destinations use different equal-cost links (a fat tree's cores).

Hosts send from their first NIC to the destination's first NIC in ``ecmp`` mode (plain
routing to a host's primary address); the other modes may use every NIC.

Units: a link direction's *load* is the number of flows on it (fractions for spray); its
*pressure* is load per Mbit/s of the link. A flow that moves B bytes is done, at the
earliest, after ``pressure * B * 8 / 1e6`` seconds on its busiest link, so the ratio of the
maximum pressure to the ideal one is the predicted ratio of completion time to the ideal.
The ideal is the cut around each host: the flows it sends (receives) over the sum of its
NIC bandwidths; :func:`ideal_pressure` also checks that spraying reaches it.
"""

from __future__ import annotations

import hashlib
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from controller.paths import (
    Flow,
    LiveGraph,
    Path,
    Pattern,
    collective_flows,
    max_disjoint_paths,
    place_collective,
    spread_salt,
)
from controller.paths.shortest import next_hop_table
from controller.topology import Topology

Dir = tuple[str, str]
"""A link direction: (from node, to node)."""
MODES = ("ecmp", "pinned", "spray")
_EPS = 1e-9


@dataclass(frozen=True)
class Collision:
    """A link direction that carries more than the ideal: its flows are slowed."""

    src: str
    dst: str
    link: str
    flows: tuple[Flow, ...]
    pressure_ratio: float
    """This link's pressure over the ideal pressure."""


@dataclass(frozen=True)
class ModeLoads:
    """Per link direction: load in flows (expected for ``ecmp``), and the max pressure."""

    mode: str
    loads: dict[Dir, float]
    ratio_to_ideal: float
    """Max pressure / ideal pressure: the predicted CCT ratio to the ideal."""
    paths: dict[Flow, tuple[Path, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class EcmpAnalysis:
    topology: str
    pattern: Pattern
    hosts: tuple[str, ...]
    flows: tuple[Flow, ...]
    bandwidth: dict[Dir, float]
    """Mbit/s of every link direction."""
    link_names: dict[Dir, str]
    ideal_pressure: float
    ideal_reached_by_spray: bool
    expected: ModeLoads
    """ECMP: expected flows per link direction under uniform hashing."""
    sample_seed: int
    sample: ModeLoads
    """ECMP with the CRC hash model and ``sample_seed``: one possible draw."""
    collisions: tuple[Collision, ...]
    """Of the sample draw."""
    seed_ratios: tuple[float, ...]
    """Max pressure / ideal, per seed of the CRC hash model."""
    seed_loads_min: dict[Dir, float]
    seed_loads_max: dict[Dir, float]
    pinned: ModeLoads | None
    spray: ModeLoads | None
    notes: tuple[str, ...]

    def pressure(self, d: Dir, load: float) -> float:
        return load / self.bandwidth[d]

    def ratio_stats(self) -> dict[str, float]:
        r = sorted(self.seed_ratios)
        return {
            "mean": statistics.fmean(r),
            "p50": _quantile(r, 0.5),
            "p90": _quantile(r, 0.9),
            "min": r[0],
            "max": r[-1],
            "share_above_ideal": sum(1 for x in r if x > 1 + _EPS) / len(r),
        }

    def to_json(self) -> dict[str, Any]:
        def loads(m: ModeLoads | None) -> dict[str, Any] | None:
            if m is None:
                return None
            return {
                "ratio_to_ideal": m.ratio_to_ideal,
                "loads": {f"{a}->{b}": v for (a, b), v in sorted(m.loads.items())},
            }

        return {
            "topology": self.topology,
            "pattern": self.pattern,
            "hosts": list(self.hosts),
            "flows": len(self.flows),
            "ideal_pressure_flows_per_mbps": self.ideal_pressure,
            "ideal_reached_by_spray": self.ideal_reached_by_spray,
            "ecmp_expected": loads(self.expected),
            "ecmp_seed_model": {
                "seeds": len(self.seed_ratios),
                "ratio_to_ideal": self.ratio_stats(),
                "sample_seed": self.sample_seed,
                "sample": loads(self.sample),
                "sample_paths": {
                    str(f): list(p[0].nodes) for f, p in sorted(self.sample.paths.items())
                },
            },
            "collisions": [
                {
                    "link": c.link,
                    "direction": f"{c.src}->{c.dst}",
                    "flows": [str(f) for f in c.flows],
                    "pressure_ratio": c.pressure_ratio,
                }
                for c in self.collisions
            ],
            "pinned": loads(self.pinned),
            "spray": loads(self.spray),
            "notes": list(self.notes),
        }


def default_hosts(topo: Topology, count: int = 8) -> tuple[str, ...]:
    """The first ``count`` GPU hosts in topology order (a contiguous job: on a fat tree,
    hosts that share edge switches and pods, where hashed flows can collide)."""
    hosts = [h for h in topo.hosts if h.gpu] or list(topo.hosts)
    return tuple(h.name for h in hosts[:count])


def primary_only_down(topo: Topology) -> list[tuple[str, str]]:
    """The access links of every host NIC but the first: what plain routing to a host's
    primary address never uses."""
    return [(h.name, nic.switch) for h in topo.hosts for nic in h.nics[1:]]


def expected_ecmp_loads(live: LiveGraph, flows: Iterable[Flow]) -> dict[Dir, float]:
    """Expected flows per link direction when every hop picks uniformly among its
    equal-cost next hops (exact: probabilities propagated along each flow's ECMP DAG)."""
    out: dict[Dir, float] = {}
    names = live.names
    for f in flows:
        s, t = live.node(f.src, "source"), live.node(f.dst, "destination")
        table = next_hop_table(live, t)
        dist = live.distances_to(t)
        hops = live.hops_to(t)
        prob = {s: 1.0}
        # Every next hop is strictly closer (cost, then hops): process farthest first.
        order = [s]
        seen = {s}
        i = 0
        while i < len(order):
            for v in table[order[i]]:
                if v not in seen:
                    seen.add(v)
                    order.append(v)
            i += 1
        order.sort(key=lambda u: (-dist[u], -hops[u]))
        for u in order:
            p = prob.get(u, 0.0)
            nxt = table[u]
            if not p or not nxt:
                continue
            share = p / len(nxt)
            for v in nxt:
                prob[v] = prob.get(v, 0.0) + share
                d = (names[u], names[v])
                out[d] = out.get(d, 0.0) + share
    return out


def hashed_paths(live: LiveGraph, flows: Iterable[Flow], seed: int) -> dict[Flow, Path]:
    """The path of each flow when every hop picks among its equal-cost next hops by a
    well-mixed hash of (seed, flow, node): one draw of per-flow ECMP."""
    out: dict[Flow, Path] = {}
    names = live.names
    for f in flows:
        s, t = live.node(f.src, "source"), live.node(f.dst, "destination")
        table = next_hop_table(live, t)
        if s != t and not table[s]:
            raise ValueError(f"flow {f}: no path")
        walk = [s]
        u = s
        while u != t:
            hops = table[u]
            key = f"{seed}|{f.src}|{f.dst}|{names[u]}".encode()
            digest = hashlib.blake2b(key, digest_size=8).digest()
            u = hops[int.from_bytes(digest, "big") % len(hops)]
            walk.append(u)
        out[f] = live.path(walk)
    return out


def path_loads(paths: Mapping[Flow, Sequence[Path]]) -> dict[Dir, float]:
    """Flows per link direction when each flow is split evenly over its paths."""
    out: dict[Dir, float] = {}
    for ps in paths.values():
        for p in ps:
            for d in p.edges():
                out[d] = out.get(d, 0.0) + 1.0 / len(ps)
    return out


def ideal_pressure(topo: Topology, flows: Sequence[Flow]) -> float:
    """The host cut: max over hosts of flows sent (or received) per Mbit/s of all its NICs."""
    nic_bw = {
        h.name: sum(topo.link(h.name, nic.switch).bandwidth_mbps for nic in h.nics)
        for h in topo.hosts
    }
    out: dict[str, int] = {}
    inn: dict[str, int] = {}
    for f in flows:
        out[f.src] = out.get(f.src, 0) + 1
        inn[f.dst] = inn.get(f.dst, 0) + 1
    return max(
        [n / nic_bw[h] for h, n in out.items()] + [n / nic_bw[h] for h, n in inn.items()],
        default=0.0,
    )


def analyze_ecmp(
    topo: Topology,
    hosts: Sequence[str],
    pattern: Pattern,
    *,
    seeds: int = 200,
    sample_seed: int = 0,
    compare: bool = True,
) -> EcmpAnalysis:
    """Predict ECMP's collisions for the collective (see the module's docstring); with
    ``compare``, also the pinned and sprayed loads."""
    for h in hosts:
        if h not in {x.name for x in topo.hosts}:
            raise ValueError(f"--hosts: {h!r} is not a host of {topo.name}")
    if seeds < 1:
        raise ValueError(f"seeds must be at least 1, got {seeds}")
    flows = tuple(collective_flows(list(hosts), pattern))
    bandwidth: dict[Dir, float] = {}
    names: dict[Dir, str] = {}
    for link in topo.links:
        a, b = link.ends()
        for d in ((a, b), (b, a)):
            bandwidth[d] = link.bandwidth_mbps
            names[d] = link.name
    ideal = ideal_pressure(topo, flows)
    primary = LiveGraph(topo.graph, primary_only_down(topo))
    full = LiveGraph(topo.graph)

    def mode(name: str, loads: dict[Dir, float], paths: dict[Flow, tuple[Path, ...]]) -> ModeLoads:
        top = max((v / bandwidth[d] for d, v in loads.items()), default=0.0)
        return ModeLoads(name, loads, top / ideal if ideal else 0.0, paths)

    expected = mode("ecmp", expected_ecmp_loads(primary, flows), {})
    ratios: list[float] = []
    lo: dict[Dir, float] = {}
    hi: dict[Dir, float] = {}
    sample: ModeLoads | None = None
    for seed in range(seeds):
        drawn = hashed_paths(primary, flows, seed)
        m = mode("ecmp", path_loads({f: (p,) for f, p in drawn.items()}), {})
        ratios.append(m.ratio_to_ideal)
        for d in set(m.loads) | set(lo) | set(expected.loads):
            v = m.loads.get(d, 0.0)
            lo[d] = min(lo.get(d, v), v)
            hi[d] = max(hi.get(d, v), v)
    drawn = hashed_paths(primary, flows, sample_seed)
    sample = mode(
        "ecmp",
        path_loads({f: (p,) for f, p in drawn.items()}),
        {f: (p,) for f, p in drawn.items()},
    )
    collisions = []
    for d, load in sorted(sample.loads.items()):
        ratio = load / bandwidth[d] / ideal if ideal else 0.0
        if ratio > 1 + _EPS:
            on = tuple(sorted(f for f, ps in sample.paths.items() if d in ps[0].edges()))
            collisions.append(Collision(d[0], d[1], names[d], on, ratio))
    collisions.sort(key=lambda c: (-c.pressure_ratio, c.link, c.src))
    pinned = spray = None
    if compare:
        placed = place_collective(full, list(hosts), pattern, weighted=True)
        # A flow split into channels (one per plane, 1/P of its bytes each) is its
        # channels' paths, evenly: what path_loads counts.
        pinned_paths = {
            f: tuple(placed.paths[c] for c in chans) for f, chans in placed.channels().items()
        }
        pinned = mode("pinned", path_loads(pinned_paths), pinned_paths)
        sprayed = {
            f: tuple(max_disjoint_paths(full, f.src, f.dst, salt=spread_salt(hosts, f.dst)))
            for f in flows
        }
        spray = mode("spray", path_loads(sprayed), sprayed)
    notes = [
        "every switch hashes with a seed of its own (lab/nodes.py switch_hash_seed) and the "
        "kernel's hash function: the lab's exact flow-to-path choices cannot be computed "
        "offline; 'expected' is exact under independent uniform "
        f"hashing, the seed statistics come from a hash model over {seeds} seeds, and the "
        "sample is one possible draw; the switches' counters are the truth",
        "ecmp: hosts send from their first NIC to the destination's first NIC (plain "
        "routing to primary addresses)",
    ]
    if any(len(topo.host(h).nics) > 1 for h in hosts):
        notes.append(
            "hosts have several NICs: the ideal counts all of them; ecmp uses one, so its "
            "ratio to the ideal is at least the NIC count's share"
        )
    if pinned is not None and any(len(ps) > 1 for ps in pinned.paths.values()):
        split = sum(1 for ps in pinned.paths.values() if len(ps) > 1)
        notes.append(
            f"pinned: {split} of {len(pinned.paths)} flows are split into one channel per "
            "plane (one TCP connection per plane's NICs, 1/P of the bytes each, on a path "
            "inside its plane)"
        )
    reached = spray is not None and spray.ratio_to_ideal <= 1 + 1e-6
    return EcmpAnalysis(
        topology=topo.name,
        pattern=pattern,
        hosts=tuple(hosts),
        flows=flows,
        bandwidth=bandwidth,
        link_names=names,
        ideal_pressure=ideal,
        ideal_reached_by_spray=reached,
        expected=expected,
        sample_seed=sample_seed,
        sample=sample,
        collisions=tuple(collisions),
        seed_ratios=tuple(ratios),
        seed_loads_min=lo,
        seed_loads_max=hi,
        pinned=pinned,
        spray=spray,
        notes=tuple(notes),
    )


# -- measured loads -----------------------------------------------------------------------


@dataclass(frozen=True)
class MeasuredComparison:
    mode: str
    loads: dict[Dir, float]
    """Measured flows-equivalent per link direction (bytes / bytes per flow)."""
    ratio_to_ideal: float
    """Measured max pressure / ideal pressure."""
    predicted_p50: float
    predicted_p90: float
    percentile: float
    """Share of the hash model's seeds with a max ratio at or below the measured one."""
    outside: tuple[tuple[Dir, float, float, float], ...]
    """Link directions whose measured load is outside the model's [min, max] over seeds:
    (direction, measured, min, max)."""


def measured_loads(
    link_bytes: Mapping[str, float], flows: Sequence[Flow], host_names: Iterable[str]
) -> dict[Dir, float]:
    """Turn counted bytes per link direction (``"a->b": bytes``) into flows-equivalent:
    bytes over the mean bytes per flow (the bytes the collective's hosts sent, divided by
    the number of flows)."""
    parsed = {_dir(k): float(v) for k, v in link_bytes.items()}
    senders = {f.src for f in flows}
    hosts = set(host_names)
    sent = sum(v for (a, _b), v in parsed.items() if a in senders and a in hosts)
    if sent <= 0:
        raise ValueError("the measured run counted no bytes sent by the collective's hosts")
    per_flow = sent / len(flows)
    return {d: v / per_flow for d, v in parsed.items() if v > 0}


def compare_measured(
    analysis: EcmpAnalysis, link_bytes: Mapping[str, float], mode: str = "ecmp"
) -> MeasuredComparison:
    """The measured loads of a run against the prediction (ECMP: the seed model's range)."""
    hosts = {f.src for f in analysis.flows} | {f.dst for f in analysis.flows}
    loads = measured_loads(link_bytes, analysis.flows, hosts)
    known = {d: v for d, v in loads.items() if d in analysis.bandwidth}
    top = max((v / analysis.bandwidth[d] for d, v in known.items()), default=0.0)
    ratio = top / analysis.ideal_pressure if analysis.ideal_pressure else 0.0
    r = sorted(analysis.seed_ratios)
    share = sum(1 for x in r if x <= ratio + 0.05) / len(r)
    outside = []
    if mode == "ecmp":
        for d in sorted(set(known) | set(analysis.seed_loads_max)):
            m = known.get(d, 0.0)
            a, b = analysis.seed_loads_min.get(d, 0.0), analysis.seed_loads_max.get(d, 0.0)
            if m < a - 0.25 or m > b + 0.25:
                outside.append((d, m, a, b))
    return MeasuredComparison(
        mode, known, ratio, _quantile(r, 0.5), _quantile(r, 0.9), share, tuple(outside)
    )


def _dir(text: str) -> Dir:
    a, sep, b = text.partition("->")
    if not sep or not a or not b:
        raise ValueError(f"link direction {text!r}: expected 'a->b'")
    return (a, b)


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    i = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[i]
