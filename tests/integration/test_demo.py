"""The README's main job: ``srv6lab demo`` runs end to end (fat-tree-4, the controller, an
all-to-all collective pinned to SRv6 paths, probe flows, a core link failed and restored)
and writes a complete report. Timing goals live in the benchmark, not here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.root
ROOT = Path(__file__).resolve().parents[2]


def test_demo_runs_and_writes_a_complete_report(tmp_path: Path, private_netns: str) -> None:
    out_json, out_png = tmp_path / "demo.json", tmp_path / "demo.png"
    proc = subprocess.run(
        [sys.executable, "-m", "lab.cli", "demo", "--json", str(out_json), "--png", str(out_png)],
        capture_output=True, text=True, check=False, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "240/240" in proc.stdout
    report = json.loads(out_json.read_text())
    for key in ("loss_window_ms", "packets_lost", "generator_kept_up", "controller", "collective"):
        assert key in report, key
    assert set(report["loss_window_ms"]) >= {"p50", "p99", "max"}
    assert report["controller"] is not None, "the controller's timeline is missing"
    assert report["demo"]["collective"]["status"] == "installed"
    assert report["collective"] and report["collective"][0]["iterations"], "no collective ran"
    assert out_png.stat().st_size > 10_000
