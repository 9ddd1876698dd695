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

    def report(self, worker: int, index: int, stamp_ns: int) -> int | None:
        """Worker ``worker`` says its receivers finished iteration ``index`` at
        ``stamp_ns``: the iteration's finish (ns) once every worker has said so, else
        None. A second report of one worker for one iteration is an error."""
        if not 0 <= worker < self.workers:
            raise ValueError(f"iteration barrier: no worker {worker} of {self.workers}")
        got = self.reached.setdefault(index, {})
        if worker in got:
            raise ValueError(f"iteration barrier: worker {worker} reported {index} twice")
        got[worker] = stamp_ns
        if len(got) < self.workers:
            return None
        return max(got.values())


_SUMMED = ("duplicates", "retransmits", "tail_resends", "kept_last_path", "send_errors",
           "stray_packets", "stalls")  # fmt: skip


def merge_stats(
    parts: Sequence[Mapping[str, Any]], ranks: Sequence[Sequence[int]] = ()
) -> dict[str, Any]:
    """One ``SprayEngine.stats()`` of the workers' (each ran its own senders and
    receivers, so nothing is counted twice): counters and the reorder histogram summed,
    path events in time order, per-path entries by (flow, path); ``stalls_per_worker``
    and ``workers`` (each one's ranks) added."""
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
    for key in _SUMMED:
        out[key] = sum(int(p.get(key, 0)) for p in parts)
    out["path_events"] = sorted(
        (e for p in parts for e in p["path_events"]),
        key=lambda e: (e["monotonic_ns"], e["flow"], e["path"]),
    )
    out["paths"] = sorted(
        (e for p in parts for e in p["paths"]), key=lambda e: (e["flow"], e["path"])
    )
    out["stalls_per_worker"] = [int(p.get("stalls", 0)) for p in parts]
    if ranks:
        out["workers"] = [list(r) for r in ranks]
    return out
