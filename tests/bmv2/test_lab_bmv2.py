"""The lab with BMv2 switches, driven like switchd: `simple_switch_grpc --no-p4` in every
switch namespace, the controller side pushes srv6.p4 (P4Info + BMv2 JSON) and the compiled
fabric over P4Runtime from the lab's switches.json, and every host reaches every host."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.topology import load
from tests.bmv2.bmv2_support import bmv2_lab_or_skip

ROOT = Path(__file__).resolve().parents[2]
PREFIX = f"srv6lab-bm{os.getpid()}-"


@pytest.fixture(autouse=True)
def bmv2_or_skip() -> None:
    bmv2_lab_or_skip()


@pytest.fixture
def run_dir(tmp_path: Path) -> Iterator[Path]:
    from lab.runtime import environment

    with environment(SRV6LAB_RUN_DIR=str(tmp_path / "run"), SRV6LAB_NETNS_PREFIX=PREFIX):
        yield tmp_path / "run"


def test_leaf_spine_on_bmv2_routes_after_install(run_dir: Path) -> None:
    from lab.fabric import ping_all, program_fabric
    from lab.session import running_lab

    topo = load(ROOT / "topologies" / "leaf-spine-2x4.yaml")
    with running_lab(topo, "bmv2") as lab:
        assert all(e.kind == "bmv2" for e in lab.network.endpoints)
        netns = {name: info.netns for name, info in lab.state.nodes.items()}
        entries, _ = program_fabric(topo, run_dir / "switches.json")
        assert entries > 0
        pairs = ping_all(topo, netns)
    failed = [(a, b) for a, b, ok in pairs if not ok]
    assert not failed, failed
