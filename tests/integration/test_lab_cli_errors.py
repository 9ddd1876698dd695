"""``srv6lab lab ...`` when no lab runs: a bad file or switch kind starts nothing, and
status, exec and down say that no lab is running."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("private_netns")]

LINE3 = "topologies/line-3.yaml"


def test_bad_file_names_file_line_and_field_and_starts_nothing(
    cli: Any, leftovers: Any, tmp_path: Any
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: bad\nswitches:\n  - {name: s1, id: 1}\nlinks:\n  - {ends: [s1, s7]}\n",
        encoding="utf-8",
    )
    proc = cli("lab", "up", str(bad), "--detach")
    assert proc.returncode == 1
    assert f"{bad}:5" in proc.stderr and "links[0].ends[1]" in proc.stderr, proc.stderr
    assert "s7" in proc.stderr
    assert proc.stdout == ""
    leftovers.assert_none(timeout=0)


def test_unknown_switch_kind(cli: Any) -> None:
    proc = cli("lab", "up", LINE3, "--switch", "tofino")
    assert proc.returncode == 1
    assert "unknown switch kind 'tofino'; known kinds: bmv2, kernel" in proc.stderr


def test_no_lab_status_exec_and_down(cli: Any) -> None:
    status = cli("lab", "status")
    assert status.returncode == 1 and "no lab is running" in status.stderr
    exec_ = cli("lab", "exec", "s1", "--", "true")
    assert exec_.returncode == 1 and "no lab is running" in exec_.stderr
    down = cli("lab", "down")
    assert down.returncode == 0
    assert "no lab is running and nothing was left behind" in down.stdout
