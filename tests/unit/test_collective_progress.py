"""Progress lost to a failure, from a run's iterations (``lab.collectives.progress_lost``),
against hand-computed cases; and the oracle that tells spraying hosts of a failure
(measurement only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lab.cli import main
from lab.collectives import _tell, progress_lost

MS = 1_000_000


def _iterations(ccts: list[float]) -> list[dict[str, Any]]:
    out, t = [], 0
    for i, cct in enumerate(ccts):
        out.append({"index": i, "started_ns": t, "finished_ns": t + int(cct * MS), "cct_ms": cct})
        t += int(cct * MS)
    return out


def test_progress_lost_is_the_extra_time_over_the_clean_median() -> None:
    its = _iterations([100, 100, 130, 100, 100])
    got = progress_lost(its, start=230 * MS, end=260 * MS)  # inside iteration 2
    assert got["failure_iterations"] == [2] and got["clean_iterations"] == [0, 1, 3, 4]
    assert got["cct_ms_median"] == 100 and got["progress_lost_ms"] == pytest.approx(30)
    assert got["degraded_iterations"] == [] and got["progress_lost_beyond_capacity_ms"] is None


def test_a_failure_longer_than_an_iteration_separates_capacity_from_reaction() -> None:
    # iterations 0-1 clean (100 ms); the failure starts halfway into iteration 2 and holds
    # through iterations 3 and 4, which run at 120 ms (the fabric without the link); it
    # ends halfway into iteration 5.
    its = _iterations([100, 100, 130, 120, 120, 110, 100, 100])
    start = 250 * MS  # iteration 2 runs 200-330 ms: 80 of its 130 ms inside
    end = its[5]["started_ns"] + 55 * MS  # iteration 5: 55 of its 110 ms inside
    got = progress_lost(its, start=start, end=end)
    assert got["failure_iterations"] == [2, 3, 4, 5]
    assert got["degraded_iterations"] == [3, 4] and got["degraded_cct_ms"] == 120
    assert got["progress_lost_ms"] == pytest.approx(30 + 20 + 20 + 10)
    # iteration 2: 130 - (50/130 x 100 + 80/130 x 120); iteration 5: 110 - (100 + 120) / 2
    expected_2 = 130 - (50 / 130 * 100 + 80 / 130 * 120)
    assert got["progress_lost_beyond_capacity_ms"] == pytest.approx(expected_2 + 0 + 0 + 0)


def test_the_noise_of_the_degraded_iterations_cancels() -> None:
    # as above, but the iterations inside the failure vary around their median (118,
    # 120, 122): their ups and downs are the degraded pace's own noise, not progress lost
    its = _iterations([100, 100, 130, 118, 120, 122, 110, 100, 100])
    start = 250 * MS
    end = its[6]["started_ns"] + 55 * MS
    got = progress_lost(its, start=start, end=end)
    assert got["degraded_iterations"] == [3, 4, 5] and got["degraded_cct_ms"] == 120
    expected_2 = 130 - (50 / 130 * 100 + 80 / 130 * 120)
    assert got["progress_lost_beyond_capacity_ms"] == pytest.approx(expected_2 - 2 + 0 + 2 + 0)


def test_a_failure_that_cost_nothing_beyond_capacity_is_zero_not_negative() -> None:
    its = _iterations([100, 100, 105, 120, 120, 100, 100])
    start = 250 * MS  # iteration 2 (200-305 ms): faster than its mix of 100 and 120
    end = its[5]["started_ns"]
    got = progress_lost(its, start=start, end=end)
    assert got["progress_lost_beyond_capacity_ms"] == 0


def test_the_oracle_file_gets_one_line_per_news(tmp_path: Path) -> None:
    oracle = tmp_path / "oracle-spray"
    _tell(oracle, "down", ("agg1", "core1"))
    _tell(oracle, "up", ("agg1", "core1"))
    assert oracle.read_text(encoding="utf-8") == "down agg1 core1\nup agg1 core1\n"
    assert [p.name for p in tmp_path.iterdir()] == ["oracle-spray"]  # no temp file left


def test_the_oracle_needs_a_failure(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "collectives", "--topology", "fat-tree-4", "--oracle"]) == 1
    assert "--oracle: only with --fail" in capsys.readouterr().err
