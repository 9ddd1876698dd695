"""How a spray run is split over worker processes, and how their halves are put back
together (pure: no sockets, no processes).

One Python process running every host's spray was CPU-bound on gpu-pod-2plane's
all-to-all (16 NICs, about 6,700 data packets/s plus acks: the process busy 92-98 % of a
core, 44 % of that in ``sendto``, while the other core idled 40 %; README, Collectives).
A worker owns a set of ranks (hosts): the senders of the flows leaving them and the
receivers of the flows entering them. Everything that arrives at a rank's socket (data
and probes for its receivers; acks, NACKs and probe replies for its senders) is then its
own worker's, and so is a ring's step logic (a rank's receiver raises the limit of the
same rank's sender). Only the iteration barrier crosses workers: :class:`IterationBarrier`
in the parent, :func:`merge_stats` for the result.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


def default_workers(ranks: int, cpus: int | None = None) -> int:
    """One worker per CPU core the process may use, at most one per rank, at least one.
    (Measured on 2 cores, gpu-pod-2plane all-to-all: see README, Collectives.)"""
    if cpus is None:
        cpus = len(os.sched_getaffinity(0))
    return max(1, min(ranks, cpus))


def partition_ranks(
    ranks: int, flows: Sequence[tuple[int, int]], workers: int
) -> tuple[tuple[int, ...], ...]:
    """Split ``ranks`` hosts over ``workers`` workers so that each gets about the same
    number of flow ends (a flow ``(src, dst)`` costs its source's worker the sending and
    its destination's the receiving): the largest rank first to the least loaded worker,
    ties to the lower index. Each worker's ranks come back sorted; no worker is empty."""
    if ranks < 1:
        raise ValueError(f"spray workers: no ranks to split ({ranks})")
    if not 1 <= workers <= ranks:
        raise ValueError(f"spray workers: {workers} for {ranks} ranks (1 to {ranks})")
    load = [0] * ranks
    for src, dst in flows:
        for rank in (src, dst):
            if not 0 <= rank < ranks:
                raise ValueError(f"spray workers: flow {(src, dst)} names rank {rank} of {ranks}")
            load[rank] += 1
    parts: list[list[int]] = [[] for _ in range(workers)]
    weight = [0] * workers
    for rank in sorted(range(ranks), key=lambda r: (-load[r], r)):
        w = min(range(workers), key=lambda i: (weight[i], len(parts[i]), i))
        parts[w].append(rank)
        weight[w] += load[rank]
    return tuple(tuple(sorted(p)) for p in parts)


@dataclass
class IterationBarrier:
    """The parent's side of the barrier: an iteration ends when every worker's receivers
    have all of it (at the latest of their stamps, all on the one monotonic clock), and
    the next starts then: the time the go message takes to reach the workers counts in
    the next iteration, as the single process's turn did."""

    workers: int
    reached: dict[int, dict[int, int]] = field(default_factory=dict)
    """iteration -> worker -> monotonic ns its receivers had everything."""
    flows: dict[int, dict[int, int]] = field(default_factory=dict)
    """iteration -> flow id -> monotonic ns its receiver had everything."""

    def report(
        self, worker: int, index: int, stamp_ns: int, flows_ns: Mapping[int, int] | None = None
    ) -> int | None:
        """Worker ``worker`` says its receivers finished iteration ``index`` at
        ``stamp_ns`` (``flows_ns``: each of its flows' finish): the iteration's finish
        (ns) once every worker has said so, else None. A second report of one worker for
        one iteration, or of one flow by two workers, is an error."""
        if not 0 <= worker < self.workers:
            raise ValueError(f"iteration barrier: no worker {worker} of {self.workers}")
        got = self.reached.setdefault(index, {})
        if worker in got:
            raise ValueError(f"iteration barrier: worker {worker} reported {index} twice")
        got[worker] = stamp_ns
        flows = self.flows.setdefault(index, {})
        for flow, ns in (flows_ns or {}).items():
            if flow in flows:
                raise ValueError(f"iteration barrier: flow {flow} of {index} reported twice")
            flows[flow] = ns
        if len(got) < self.workers:
            return None
        return max(got.values())

    def flow_finished(self, index: int) -> tuple[int, ...]:
        """When each flow of iteration ``index`` finished, in flow id order."""
        flows = self.flows.get(index, {})
        return tuple(flows[f] for f in sorted(flows))


def format_reached(index: int, stamp_ns: int, flows_ns: Mapping[int, int]) -> str:
    """A worker's ``REACHED`` line (:func:`parse_reached` reads it)."""
    flows = ",".join(f"{f}:{ns}" for f, ns in sorted(flows_ns.items()))
    return f"REACHED {index} {stamp_ns} {flows or '-'}"


def parse_reached(line: str) -> tuple[int, int, dict[int, int]]:
    """(iteration, stamp ns, flow id -> ns) of a ``REACHED`` line; ValueError naming the
    line if it is not one."""
    words = line.split()
    try:
        if len(words) != 4 or words[0] != "REACHED":
            raise ValueError
        flows = {}
        if words[3] != "-":
            for item in words[3].split(","):
                flow, _, ns = item.partition(":")
                flows[int(flow)] = int(ns)
        return int(words[1]), int(words[2]), flows
    except ValueError:
        raise ValueError(f"not a REACHED line: {line[:200]!r}") from None


def merge_stats(
    parts: Sequence[Mapping[str, Any]], ranks: Sequence[Sequence[int]] = ()
) -> dict[str, Any]:
    """One ``SprayEngine.stats()`` of the workers' (each ran its own senders and
    receivers, so nothing is counted twice): counters (every whole-number entry) and the
    reorder histogram summed, path events in time order, per-path entries by (flow,
    path), the delivery gaps of every worker's receivers; ``stalls_per_worker`` and
    ``workers`` (each one's ranks) added."""
    if not parts:
        raise ValueError("merge_stats: no worker stats")
    hist: dict[int, int] = {}
    for p in parts:
        for bucket, n in p["reorder_histogram"].items():
            hist[int(bucket)] = hist.get(int(bucket), 0) + int(n)
    out: dict[str, Any] = {
        "reorder_histogram": {str(k): hist[k] for k in sorted(hist)},
        "reorder_note": parts[0]["reorder_note"],
    }
    counters = {k for p in parts for k, v in p.items() if type(v) is int}
    for key in sorted(counters):
        out[key] = sum(int(p.get(key, 0)) for p in parts)
    out["path_events"] = sorted(
        (e for p in parts for e in p["path_events"]),
        key=lambda e: (e["monotonic_ns"], e["flow"], e["path"]),
    )
    out["paths"] = sorted(
        (e for p in parts for e in p["paths"]), key=lambda e: (e["flow"], e["path"])
    )
    out["stalls_per_worker"] = [int(p.get("stalls", 0)) for p in parts]
    out["delivery_gaps"] = {
        flow: gaps for p in parts for flow, gaps in sorted(p.get("delivery_gaps", {}).items())
    }
    if ranks:
        out["workers"] = [list(r) for r in ranks]
    return out


def barrier_delays_ms(
    finished_ns: Sequence[int], go_ns: Sequence[Mapping[int, int]]
) -> list[float]:
    """Per iteration after the first: from the end of the one before (the last receiver
    done) to the last worker reading its GO, in ms: the barrier's own cost, which the
    iteration's completion time includes. ``go_ns``: per worker, iteration -> when it
    read that GO."""
    out = []
    for index in range(1, len(finished_ns)):
        reads = [g[index] for g in go_ns if index in g]
        if len(reads) == len(go_ns):
            out.append(round((max(reads) - finished_ns[index - 1]) / 1e6, 3))
    return out
