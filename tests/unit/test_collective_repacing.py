"""When a collective re-paces its connections after transfers finish (lab.traffic.collective
Repacing): finishes close together are coalesced."""

from lab.traffic.collective import REPACE_INTERVAL_NS, Repacing

MS = 1_000_000


def test_nothing_to_do_until_a_transfer_finishes() -> None:
    r = Repacing()
    r.paced(0)
    assert not r.due(10 * REPACE_INTERVAL_NS)
    assert r.wait_s(10 * REPACE_INTERVAL_NS, 0.05) == 0.05


def test_a_finish_after_a_quiet_interval_repaces_at_once() -> None:
    r = Repacing(interval_ns=20 * MS)
    r.paced(0)
    r.finished()
    assert r.due(25 * MS)
    assert not r.due(26 * MS)  # counted as done


def test_finishes_within_the_interval_become_one_repacing() -> None:
    r = Repacing(interval_ns=20 * MS)
    r.paced(0)
    r.finished()
    assert r.due(30 * MS)
    r.finished()
    r.finished()
    assert not r.due(35 * MS)
    assert r.wait_s(35 * MS, 0.05) == 0.015  # due at 50 ms
    assert not r.due(49 * MS)
    assert r.due(50 * MS)
    assert not r.due(80 * MS)


def test_the_loop_blocks_no_longer_than_it_asks_nor_past_zero() -> None:
    r = Repacing(interval_ns=20 * MS)
    r.paced(0)
    r.finished()
    assert r.wait_s(1 * MS, 0.005) == 0.005
    assert r.wait_s(100 * MS, 0.05) == 0.0


def test_without_a_first_pacing_a_finish_repaces_at_once() -> None:
    r = Repacing()
    r.finished()
    assert r.wait_s(0, 0.05) == 0.05
    assert r.due(0)
