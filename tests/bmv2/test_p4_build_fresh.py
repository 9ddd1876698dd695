"""p4/build/ is what p4c makes of p4/srv6.p4 today: where p4c-bm2-ss exists (PATH or
$SRV6LAB_BMV2_PREFIX/bin), compile the program again and compare with the committed files.
Content, not timestamps: a fresh clone's mtimes say nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _p4c() -> str | None:
    prefix = os.environ.get("SRV6LAB_BMV2_PREFIX")
    if prefix:
        candidate = Path(prefix) / "bin" / "p4c-bm2-ss"
        return str(candidate) if candidate.exists() else None
    return shutil.which("p4c-bm2-ss")


def test_committed_build_matches_the_program(tmp_path: Path) -> None:
    p4c = _p4c()
    if p4c is None:
        pytest.skip("p4c-bm2-ss not found (PATH or SRV6LAB_BMV2_PREFIX): p4/build/ not checked")
    proc = subprocess.run(
        [p4c, "--arch", "v1model", "--std", "p4-16", "-o", str(tmp_path / "srv6.json"),
         "--p4runtime-files", str(tmp_path / "srv6.p4info.txtpb"), "p4/srv6.p4"],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    fresh_info = (tmp_path / "srv6.p4info.txtpb").read_text()
    committed_info = (ROOT / "p4/build/srv6.p4info.txtpb").read_text()
    assert fresh_info == committed_info, "p4/build/srv6.p4info.txtpb is stale: run `make p4`"
    fresh = json.loads((tmp_path / "srv6.json").read_text())
    committed = json.loads((ROOT / "p4/build/srv6.json").read_text())
    assert fresh == committed, "p4/build/srv6.json is stale: run `make p4`"
