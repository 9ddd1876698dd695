"""Loss-window maths of probe flows (lab/traffic/loss.py)."""

from __future__ import annotations

import pytest

from lab.traffic.loss import attribute, loss_runs, percentile

MS = 1_000_000


def flow(sent: int, lost: set[int], period_ns: int = MS, delay_ns: int = 50_000) -> tuple:
    seqs = [s for s in range(sent) if s not in lost]
    send = [s * period_ns for s in seqs]
    recv = [t + delay_ns for t in send]
    return seqs, send, recv


def test_no_loss_no_runs() -> None:
    assert loss_runs(100, *flow(100, set())) == []


def test_one_run_window_is_last_before_to_first_after() -> None:
    runs = loss_runs(100, *flow(100, {10, 11, 12}))
    assert len(runs) == 1
    run = runs[0]
    assert (run.first_missing, run.count) == (10, 3)
    assert run.window_ns == 4 * MS  # seq 9 (9 ms) to seq 13 (13 ms)
    assert run.arrival_window_ns == 4 * MS
    assert run.recovered


def test_two_runs_and_reordering_and_duplicates() -> None:
    seqs, send, recv = flow(50, {5, 20, 21})
    # seq 30 arrives twice and late, after 31: neither loss nor double counting.
    i = seqs.index(30)
    seqs.append(seqs.pop(i))
    send.append(send.pop(i))
    recv.append(recv.pop(i))
    seqs.append(30)
    send.append(30 * MS)
    recv.append(40 * MS)
    runs = loss_runs(50, seqs, send, recv)
    assert [(r.first_missing, r.count) for r in runs] == [(5, 1), (20, 2)]


def test_tail_loss_never_recovered_and_head_loss() -> None:
    runs = loss_runs(20, *flow(20, {0, 1, 17, 18, 19}))
    assert [(r.first_missing, r.count) for r in runs] == [(0, 2), (17, 3)]
    assert runs[0].before_send_ns is None and runs[0].window_ns is None
    assert not runs[1].recovered and runs[1].window_ns is None


def test_nothing_arrived_is_one_run() -> None:
    runs = loss_runs(5, [], [], [])
    assert [(r.first_missing, r.count, r.recovered) for r in runs] == [(0, 5, False)]


def test_attribution_to_failure_and_restore() -> None:
    lost = {100, 101, 102} | {300}
    runs = loss_runs(400, *flow(400, lost))
    events, other = attribute(
        runs, [("failure", 100 * MS, 100 * MS), ("restore", 300 * MS, 300 * MS)], 400 * MS
    )
    assert events["failure"].packets_lost == 3
    assert events["failure"].window_ns == 4 * MS
    assert events["failure"].recovered_at_ns == 103 * MS
    assert events["restore"].packets_lost == 1
    assert other == []


def test_attribution_margin_catches_packets_in_flight() -> None:
    # Packets sent 2 ms before the failure were still on the link when it died.
    runs = loss_runs(400, *flow(400, {98, 99, 100}))
    events, _ = attribute(runs, [("failure", 100 * MS + 500_000, 100 * MS + 500_000)], 400 * MS)
    assert events["failure"].packets_lost == 3


def test_background_loss_is_apart_and_unaffected_event_is_zero() -> None:
    runs = loss_runs(400, *flow(400, {10}))
    events, other = attribute(runs, [("failure", 200 * MS, 200 * MS)], 400 * MS)
    assert events["failure"].packets_lost == 0 and events["failure"].window_ns == 0
    assert len(other) == 1


def test_unrepaired_failure_spans_until_first_packet_after() -> None:
    lost = set(range(100, 200))  # a gray failure 100..200 ms, nothing repairs it
    runs = loss_runs(300, *flow(300, lost))
    events, _ = attribute(
        runs, [("failure", 100 * MS, 100 * MS), ("restore", 199 * MS, 199 * MS)], 300 * MS
    )
    assert events["failure"].packets_lost == 100
    assert events["failure"].window_ns == 101 * MS
    assert events["restore"].packets_lost == 0


def test_percentile_matches_linear_interpolation() -> None:
    assert percentile([1.0], 99) == 1.0
    assert percentile([0.0, 10.0], 50) == 5.0
    assert percentile(list(map(float, range(101))), 99) == pytest.approx(99.0)
    with pytest.raises(ValueError):
        percentile([], 50)


def test_slow_injection_still_owns_its_loss() -> None:
    # nft took 40 ms to apply: packets flowed until 140 ms, then were lost until restore.
    runs = loss_runs(400, *flow(400, set(range(140, 300))))
    events, other = attribute(
        runs, [("failure", 100 * MS, 140 * MS), ("restore", 300 * MS, 305 * MS)], 400 * MS
    )
    assert events["failure"].packets_lost == 160 and events["restore"].packets_lost == 0
    assert other == []
