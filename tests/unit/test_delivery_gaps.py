"""A collective's loss windows: the gaps in each flow's deliveries while it is owed data
(lab.traffic.collective.DeliveryGaps), fed by a real TCP collective over socket pairs,
and the windows across a failure of the flows that crossed the link
(lab.collectives.recovery_windows), against hand-computed cases."""

from __future__ import annotations

import socket
import time

import pytest

from lab.collectives import recovery_windows
from lab.traffic.collective import GAP_MIN_NS, CollectiveRun, ConnKey, DeliveryGaps, gap_key
from lab.traffic.spray_partition import merge_stats
from tests.unit.socket_support import connect

MS = 1_000_000


def test_a_gap_is_kept_only_while_owed_and_only_from_its_minimum() -> None:
    g = DeliveryGaps(min_ns=20 * MS)
    g.delivered("0-1-0", 1 * MS)  # not owed yet: ignored
    g.owed("0-1-0", 0)
    g.delivered("0-1-0", 5 * MS)  # 5 ms: too short to keep
    g.delivered("0-1-0", 40 * MS)  # 35 ms after the last one
    g.owed("0-1-0", 41 * MS)  # already owed: the last delivery still counts
    g.delivered("0-1-0", 70 * MS)  # 30 ms
    g.settled("0-1-0")
    g.delivered("0-1-0", 100 * MS)  # settled: the wait for the iteration is no gap
    g.owed("0-1-0", 120 * MS)
    g.delivered("0-1-0", 200 * MS)
    assert g.to_json() == {"0-1-0": [[5 * MS, 40 * MS], [40 * MS, 70 * MS], [120 * MS, 200 * MS]]}
    assert gap_key(3, 1) == "3-1-0" and gap_key(3, 1, 2) == "3-1-2"


def test_a_tcp_collective_records_the_gap_of_a_stall_at_an_iteration_start(
    sockets: list[socket.socket],
) -> None:
    pairs = connect([(0, 1, 0), (1, 0, 0)], sockets)
    starts: list[int] = []

    def pacer(_active: frozenset[ConnKey]) -> None:
        # Called at each iteration's start, after every connection is owed its bytes:
        # 30 ms in which nothing is sent, as a path that drops everything would do.
        if len(starts) < 2:
            starts.append(time.monotonic_ns())
            time.sleep(0.03)

    run = CollectiveRun("all-to-all", 2, 200_000, pairs, 2, pacer=pacer)
    run.start()
    assert run.wait(30.0)
    run.stop()
    assert len(run.results) == 2
    assert run.gaps.since == {}  # every connection settled at its last byte
    got = run.gaps.to_json()
    assert sorted(got) == ["0-1-0", "1-0-0"]
    for spans in got.values():
        # one gap per iteration, from (about) its start, at least the stall long
        assert len(spans) == 2, spans
        for (a, b), start in zip(spans, starts, strict=True):
            assert a <= start and b - a >= 30 * MS


# fat-tree-like node names; the failed link is agg1-core1
ACROSS = ["h1", "edge1", "agg1", "core1", "agg3", "edge3", "h5"]
BACK = list(reversed(ACROSS))
AROUND = ["h1", "edge1", "agg2", "core3", "agg4", "edge3", "h5"]


def test_windows_are_the_longest_gap_across_the_failure_of_the_flows_over_the_link() -> None:
    start, end = 1000 * MS, 2000 * MS
    gaps = {
        # before the failure (ignored), then 130 ms and 60 ms inside it: 130
        "0-1-0": [[10 * MS, 50 * MS], [990 * MS, 1120 * MS], [1500 * MS, 1560 * MS]],
        # crosses the link only on its acks' path; its gap straddles the restore
        "1-0-0": [[1950 * MS, 2040 * MS]],
        # over the link, but never stalled: 0
        "0-2-0": [],
        # not over the link: not counted, whatever its gaps
        "0-3-0": [[1100 * MS, 1900 * MS]],
    }
    routes: dict[str, list[list[str]] | None] = {
        "0-1-0": [ACROSS, AROUND],
        "1-0-0": [AROUND, BACK],
        "0-2-0": [ACROSS],
        "0-3-0": [AROUND],
    }
    out = recovery_windows(gaps, routes, ("agg1", "core1"), start, end)
    assert out["by_flow"] == {"0-1-0": 130.0, "0-2-0": 0.0, "1-0-0": 90.0}
    assert out["spans"] == {
        "0-1-0": {"from_ms": -10.0, "to_ms": 120.0},
        "1-0-0": {"from_ms": 950.0, "to_ms": 1040.0},
    }
    assert out["flows"] == 3 and out["stalled"] == 2
    assert out["p50"] == pytest.approx(90.0)
    assert out["p99"] == pytest.approx(90 + 0.98 * 40)  # linear between the two largest
    assert out["max"] == pytest.approx(130.0)
    # before the failure: 40 ms for 0-1-0 (the one that ended by its start), 0 for the others
    assert out["before_failure"]["max"] == pytest.approx(40.0)
    assert out["before_failure"]["p50"] == 0.0
    # a flow whose paths are unknown (ECMP) always counts; none at all: no figures
    ecmp = recovery_windows(
        {"0-3-0": gaps["0-3-0"]}, {"0-3-0": None}, ("agg1", "core1"), start, end
    )
    assert ecmp["by_flow"] == {"0-3-0": 800.0}
    empty = recovery_windows({}, {"0-3-0": [AROUND]}, ("agg1", "core1"), start, end)
    assert empty["flows"] == 0 and empty["p99"] is None and empty["max"] is None
    assert f"{GAP_MIN_NS // MS} ms" in out["note"]


def test_merged_worker_stats_carry_every_workers_gaps() -> None:
    base = {"reorder_histogram": {}, "reorder_note": "", "path_events": [], "paths": []}
    a = {**base, "delivery_gaps": {"1-0-0": [[1, 2]]}}
    b = {**base, "delivery_gaps": {"0-1-0": [[3, 4]], "2-1-0": []}}
    out = merge_stats([a, b])
    assert out["delivery_gaps"] == {"1-0-0": [[1, 2]], "0-1-0": [[3, 4]], "2-1-0": []}
