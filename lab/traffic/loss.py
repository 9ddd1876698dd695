"""Loss windows of probe flows (DESIGN.md, "Measuring convergence"). Pure.

A flow's packets carry sequence numbers 0, 1, ... and their send time (CLOCK_MONOTONIC
ns). A *loss run* is a run of sequence numbers that never arrived. Its window is the gap
between the last packet sent before it and the first packet sent after it, on the sender's
clock (the stamps), so that the receiver's scheduling does not stretch it; the same gap on
the receiver's clock (arrival times) is kept too. Packets that arrive late or out of order
are not lost. A run at the end of the flow that nothing follows never recovered.

Runs are attributed to events (a failure, a restore; each from when it began to when it
was done): to the earliest event that overlaps the span from the last packet before the run
(less a margin: packets in flight when a link dies are lost with it) to the first packet
after it.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

ATTRIBUTION_MARGIN_NS = 20_000_000
"""Packets sent up to 20 ms before an event may still be lost to it (queued on the link)."""


@dataclass(frozen=True, slots=True)
class LossRun:
    first_missing: int
    count: int
    before_send_ns: int | None
    """Send time of the last packet before the run (None: the flow started with it)."""
    after_send_ns: int | None
    """Send time of the first packet after it (None: it never recovered)."""
    before_recv_ns: int | None
    after_recv_ns: int | None

    @property
    def recovered(self) -> bool:
        return self.after_send_ns is not None

    @property
    def window_ns(self) -> int | None:
        if self.before_send_ns is None or self.after_send_ns is None:
            return None
        return self.after_send_ns - self.before_send_ns

    @property
    def arrival_window_ns(self) -> int | None:
        if self.before_recv_ns is None or self.after_recv_ns is None:
            return None
        return self.after_recv_ns - self.before_recv_ns


def loss_runs(
    sent: int, seqs: Sequence[int], send_ns: Sequence[int], recv_ns: Sequence[int]
) -> list[LossRun]:
    """The loss runs of one flow: ``sent`` packets (sequence numbers 0..sent-1) were sent;
    ``seqs``/``send_ns``/``recv_ns`` are what arrived, in arrival order (duplicates and
    reordering allowed)."""
    first: dict[int, tuple[int, int]] = {}
    for seq, s, r in zip(seqs, send_ns, recv_ns, strict=True):
        if 0 <= seq < sent and seq not in first:
            first[seq] = (s, r)
    order = sorted(first)
    runs: list[LossRun] = []
    if not order:
        if sent:
            runs.append(LossRun(0, sent, None, None, None, None))
        return runs
    if order[0] > 0:
        s, r = first[order[0]]
        runs.append(LossRun(0, order[0], None, s, None, r))
    for a, b in itertools.pairwise(order):
        if b - a > 1:
            (sa, ra), (sb, rb) = first[a], first[b]
            runs.append(LossRun(a + 1, b - a - 1, sa, sb, ra, rb))
    last = order[-1]
    if last < sent - 1:
        s, r = first[last]
        runs.append(LossRun(last + 1, sent - 1 - last, s, None, r, None))
    return runs


@dataclass(frozen=True, slots=True)
class EventLoss:
    """What one flow lost to one event: the span from the last packet before its first
    run to the first packet after its last run (0 when it lost nothing)."""

    event: str
    packets_lost: int
    window_ns: int | None
    """None: the flow had not recovered when it stopped."""
    arrival_window_ns: int | None
    runs: int
    recovered: bool
    recovered_at_ns: int | None = None
    """Send time of the first packet after the last run (None: nothing lost, or never)."""


def attribute(
    runs: Sequence[LossRun],
    events: Sequence[tuple[str, int, int]],
    end_ns: int,
    margin_ns: int = ATTRIBUTION_MARGIN_NS,
) -> tuple[dict[str, EventLoss], list[LossRun]]:
    """Split runs by event (``events``: (name, first ns, last ns): when the event began and
    when it was done, monotonic; any order). Every event gets
    an entry, also with nothing lost. Runs no event explains are returned apart.
    ``end_ns``: when the flow stopped sending (the end of a run that never recovered)."""
    ordered = sorted(events, key=lambda e: e[1])
    mine: dict[str, list[LossRun]] = {name: [] for name, *_ in ordered}
    other: list[LossRun] = []
    for run in runs:
        lo = (run.before_send_ns if run.before_send_ns is not None else 0) - margin_ns
        hi = run.after_send_ns if run.after_send_ns is not None else end_ns
        owner = next((name for name, a, b in ordered if a <= hi and lo <= b), None)
        if owner is None:
            other.append(run)
        else:
            mine[owner].append(run)
    out = {}
    for name, *_ in ordered:
        got = mine[name]
        if not got:
            out[name] = EventLoss(name, 0, 0, 0, 0, True)
            continue
        recovered = all(r.recovered for r in got)
        befores = [r.before_send_ns for r in got if r.before_send_ns is not None]
        afters = [r.after_send_ns for r in got if r.after_send_ns is not None]
        rbefore = [r.before_recv_ns for r in got if r.before_recv_ns is not None]
        rafter = [r.after_recv_ns for r in got if r.after_recv_ns is not None]
        start = min(befores) if befores else None
        if start is None:
            window = None
        elif recovered:
            window = max(afters) - start
        else:
            window = None
        arrival = max(rafter) - min(rbefore) if recovered and rbefore and rafter else None
        out[name] = EventLoss(
            name,
            sum(r.count for r in got),
            window,
            arrival,
            len(got),
            recovered,
            max(afters) if recovered and afters else None,
        )
    return out, other


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear between closest ranks (numpy's default)."""
    if not values:
        raise ValueError("no values")
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)
