"""Splitting a spray run over worker processes, without a network: which ranks each
worker runs, the barrier that ends an iteration when every worker's receivers have it,
the REACHED and GO lines, the merged statistics, and an engine that runs only some ranks
(real unbound sockets; what would go on the wire is captured)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from lab.errors import LabError
from lab.traffic.spray import (
    ACK,
    ACK_ENTRY,
    ACK_MARK,
    ACK_REQUEST,
    DATA,
    HEADER,
    MAGIC,
    MARK,
    SprayEngine,
    SprayFlow,
    SprayPath,
)
from lab.traffic.spray_partition import (
    IterationBarrier,
    barrier_delays_ms,
    default_workers,
    format_reached,
    merge_stats,
    parse_reached,
    partition_ranks,
)
from lab.traffic.spray_worker import PipeBarrier, parse_go
from tests.unit.spray_support import offline_engine


def _all_to_all(n: int) -> list[tuple[int, int]]:
    return [(s, d) for s in range(n) for d in range(n) if s != d]


def _ring(n: int) -> list[tuple[int, int]]:
    return [(r, (r + 1) % n) for r in range(n)]


# -- partition ------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2, 3, 4, 8])
@pytest.mark.parametrize("flows", [_all_to_all(8), _ring(8)], ids=["all-to-all", "ring"])
def test_every_rank_goes_to_exactly_one_worker_and_the_flow_ends_are_balanced(
    workers: int, flows: list[tuple[int, int]]
) -> None:
    parts = partition_ranks(8, flows, workers)
    assert len(parts) == workers
    assert sorted(r for p in parts for r in p) == list(range(8))
    assert all(p and list(p) == sorted(p) for p in parts)
    ends = [sum((s in p) + (d in p) for s, d in flows) for p in parts]
    per_rank = 2 * len(flows) // 8  # every rank has as many flow ends here
    assert max(ends) - min(ends) <= per_rank


def test_uneven_ranks_are_spread_by_their_flow_ends() -> None:
    # rank 0 is the hub of 6 flows; the others have one end each
    flows = [(0, r) for r in range(1, 7)]
    assert partition_ranks(7, flows, 2) == ((0,), (1, 2, 3, 4, 5, 6))


def test_a_partition_that_cannot_be_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="0 for 8 ranks"):
        partition_ranks(8, _ring(8), 0)
    with pytest.raises(ValueError, match="9 for 8 ranks"):
        partition_ranks(8, _ring(8), 9)
    with pytest.raises(ValueError, match="names rank 8 of 8"):
        partition_ranks(8, [(0, 8)], 2)


def test_the_default_is_one_worker_per_core_and_at_most_one_per_rank() -> None:
    assert default_workers(8, cpus=2) == 2
    assert default_workers(2, cpus=16) == 2
    assert default_workers(8, cpus=1) == 1
    assert 1 <= default_workers(8) <= len(os.sched_getaffinity(0))


# -- barrier --------------------------------------------------------------------------------


def test_an_iteration_ends_when_the_last_worker_reports_at_its_stamp() -> None:
    barrier = IterationBarrier(3)
    assert barrier.report(1, 0, 500, {3: 450, 4: 500}) is None
    assert barrier.report(0, 0, 700, {0: 700}) is None
    assert barrier.report(2, 0, 600, {1: 600, 2: 550}) == 700
    assert barrier.flow_finished(0) == (700, 600, 550, 450, 500)
    # the next iteration is counted afresh
    assert barrier.report(0, 1, 900) is None


def test_a_worker_reporting_twice_or_one_unknown_is_an_error() -> None:
    barrier = IterationBarrier(2)
    barrier.report(0, 0, 1, {0: 1})
    with pytest.raises(ValueError, match="worker 0 reported 0 twice"):
        barrier.report(0, 0, 2)
    with pytest.raises(ValueError, match="flow 0 of 0 reported twice"):
        barrier.report(1, 0, 2, {0: 2})
    with pytest.raises(ValueError, match="no worker 2 of 2"):
        barrier.report(2, 0, 2)


def test_reached_lines_round_trip_and_a_bad_one_is_named() -> None:
    line = format_reached(4, 123456789, {7: 100, 2: 99})
    assert line == "REACHED 4 123456789 2:99,7:100"
    assert parse_reached(line) == (4, 123456789, {2: 99, 7: 100})
    assert parse_reached(format_reached(0, 5, {})) == (0, 5, {})
    for bad in ("REACHED 1 2", "ITER 1 2 -", "REACHED x 2 -", "REACHED 1 2 3"):
        with pytest.raises(ValueError, match="not a REACHED line"):
            parse_reached(bad)


def test_the_barrier_delay_is_from_the_last_receiver_to_the_last_go_read() -> None:
    finished = [1_000_000, 5_000_000, 9_000_000]
    go = [{1: 1_500_000, 2: 5_200_000}, {1: 2_000_000, 2: 6_000_000}]
    assert barrier_delays_ms(finished, go) == [1.0, 1.0]
    # a worker that never read a GO (stopped): that iteration has no figure
    assert barrier_delays_ms(finished, [{1: 1_500_000}, {}]) == []


def test_a_worker_reads_go_lines_without_blocking_and_stops_at_end_of_file() -> None:
    r, w = os.pipe()
    try:
        barrier = PipeBarrier(r)
        assert barrier.go() == -1
        os.write(w, b"GO 0\nGO 1\nGO")
        assert barrier.go() == 1
        assert set(barrier.go_ns) == {0, 1}
        os.write(w, b" 2\n")
        assert barrier.go() == 2
        os.close(w)
        w = -1
        assert barrier.go() is None
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    with pytest.raises(LabError, match="expected 'GO <index>'"):
        parse_go("STOP")


# -- merged statistics ----------------------------------------------------------------------


def _stats(
    events: list[dict[str, int]], paths: list[dict[str, int]], **counts: int
) -> dict[str, Any]:
    base: dict[str, Any] = {
        "reorder_histogram": {"0": 10, "1": 2},
        "reorder_note": "note",
        "duplicates": 1,
        "retransmits": 2,
        "late_copies": 0,
        "ack_requests": 3,
        "kept_last_path": 0,
        "send_errors": 0,
        "stray_packets": 0,
        "stalls": 1,
        "path_events": events,
        "paths": paths,
    }
    return {**base, **counts}


def test_merged_stats_sum_the_counters_and_order_events_and_paths() -> None:
    a = _stats(
        [{"monotonic_ns": 30, "flow": 1, "path": 0}],
        [{"flow": 1, "path": 1}, {"flow": 1, "path": 0}],
        stalls=3,
    )
    b = _stats(
        [{"monotonic_ns": 10, "flow": 0, "path": 2}, {"monotonic_ns": 40, "flow": 0, "path": 2}],
        [{"flow": 0, "path": 0}],
    )
    b["reorder_histogram"] = {"2": 5, "0": 1}
    out = merge_stats([a, b], ((0, 2), (1, 3)))
    assert out["reorder_histogram"] == {"0": 11, "1": 2, "2": 5}
    assert list(out["reorder_histogram"]) == ["0", "1", "2"]
    assert out["duplicates"] == 2 and out["retransmits"] == 4 and out["stalls"] == 4
    assert out["ack_requests"] == 6 and out["late_copies"] == 0
    assert out["stalls_per_worker"] == [3, 1]
    assert [e["monotonic_ns"] for e in out["path_events"]] == [10, 30, 40]
    assert [(p["flow"], p["path"]) for p in out["paths"]] == [(0, 0), (1, 0), (1, 1)]
    assert out["workers"] == [[0, 2], [1, 3]]
    assert out["reorder_note"] == "note"
    with pytest.raises(ValueError, match="no worker stats"):
        merge_stats([])


# -- an engine with some of the ranks -------------------------------------------------------


def _paths(src: int, dst: int) -> tuple[SprayPath, ...]:
    a, b = f"2001:db8:{src}::1", f"2001:db8:{dst}::1"
    return tuple(
        SprayPath(i, (f"h{src}", f"s{i}", f"h{dst}"), a, b, "fc::1", "fc::2") for i in range(2)
    )


@pytest.fixture
def half_engine() -> Iterator[tuple[SprayEngine, list[bytes]]]:
    """Flows 0: rank 0 -> 1, 1: rank 1 -> 0, 2: rank 1 -> 2; the engine runs rank 1."""
    flows = [SprayFlow(0, 0, 1, _paths(0, 1)), SprayFlow(1, 1, 0, _paths(1, 0)),
             SprayFlow(2, 1, 2, _paths(1, 2))]  # fmt: skip
    keys: list[tuple[int, str, int]] = []
    for f in flows:
        for p in f.paths:
            if f.src == 1:
                keys.append((1, p.src_addr, MARK + p.index))
            if f.dst == 1:
                keys.append((1, p.dst_addr, ACK_MARK + p.index))
    with offline_engine(flows, keys, (1,), ranks={1}) as out:
        yield out


def test_an_engine_runs_the_senders_leaving_its_ranks_and_the_receivers_entering_them(
    half_engine: tuple[SprayEngine, list[bytes]],
) -> None:
    eng, sent = half_engine
    assert sorted(eng.senders) == [1, 2]
    assert sorted(eng.receivers) == [0]
    eng.senders[1].limit = 2
    eng.pump(1_000_000)
    assert sorted(HEADER.unpack_from(d)[3] for d in sent if d[2] == DATA) == [1, 1]


def test_packets_for_another_workers_flow_ends_are_counted_not_handled(
    half_engine: tuple[SprayEngine, list[bytes]],
) -> None:
    eng, sent = half_engine
    # data of flow 1 (rank 1 -> 0) arriving here: its receiver is rank 0's worker's
    eng._packet(HEADER.pack(MAGIC, DATA, 0, 1, 0, 0, 0, 1), 2)
    # an ack for flow 0 (rank 0 -> 1): its sender is rank 0's worker's
    ack = HEADER.pack(MAGIC, ACK, 1, 0, 0, 0, 0, 0) + ACK_ENTRY.pack(0, 0, 0, 1)
    eng._packet(ack, 2)
    assert eng.strays == 2 and not sent
    assert eng.stats()["stray_packets"] == 2
    # data of flow 0 (rank 0 -> 1) is this engine's
    eng._packet(HEADER.pack(MAGIC, DATA, 0, 0, 0, 0, 0, 1), 2)
    assert eng.receivers[0].unique == 1 and eng.strays == 2


def test_an_ack_request_is_the_receivers_and_an_ack_the_senders(
    half_engine: tuple[SprayEngine, list[bytes]],
) -> None:
    eng, sent = half_engine
    eng._packet(HEADER.pack(MAGIC, DATA, 1, 0, 0, 0, 0, 1), 2)  # flow 0 arrives here
    sent.clear()
    # its sender (rank 0's worker) asks for an ack on path 0: this engine answers
    eng._packet(HEADER.pack(MAGIC, ACK_REQUEST, 0, 0, 0, 0, 0, 3), 4)
    assert eng.strays == 0 and [HEADER.unpack_from(d)[1] for d in sent] == [ACK]
    # a request for flow 1 (rank 1 -> 0): its receiver is rank 0's worker's
    eng._packet(HEADER.pack(MAGIC, ACK_REQUEST, 0, 1, 0, 0, 0, 3), 4)
    assert eng.strays == 1
