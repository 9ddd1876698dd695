"""`srv6lab paths`: disjoint paths with the segment lists that force them; errors name what
is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.cli import main

FAT_TREE = str(Path(__file__).resolve().parents[2] / "topologies" / "fat-tree-4.yaml")


def test_two_disjoint_paths_with_usid_containers(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["paths", "h1", "h16", "--topology", FAT_TREE, "-k", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("2 edge-disjoint paths h1 -> h16 on fat-tree-4, total cost 12")
    lines = [line.strip() for line in out.splitlines()]
    assert lines[1].startswith("1. cost 6: h1 -> edge1 -> ")
    # Each path ends at h16's edge switch (0x308) and its uDT6 function (0xFE00).
    segments = [line for line in lines if line.startswith("segments:")]
    assert len(segments) == 2 and all(s.endswith(":308:fe00::") for s in segments)


def test_too_few_paths_say_how_many_exist(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["paths", "h1", "h9", "--topology", FAT_TREE, "-k", "2", "--down", "edge1-agg1"]
    assert main(args) == 1
    assert "only 1 edge-disjoint path exists from h1 to h9 (asked for 2)" in (
        capsys.readouterr().err
    )


def test_unknown_node_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["paths", "h1", "hx", "--topology", FAT_TREE]) == 2
    assert "DST 'hx' is not a node of fat-tree-4" in capsys.readouterr().err
