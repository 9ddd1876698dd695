"""Carrier failures make the far end act at once (lab/faults.py): the plan names the ports
that see carrier loss, and the record of a fault keeps them. Pure."""

from __future__ import annotations

from pathlib import Path

from controller.topology import load
from lab.faults import Fault, LabView, plan

ROOT = Path(__file__).resolve().parents[2]


def view() -> LabView:
    return LabView(load(ROOT / "topologies" / "fat-tree-4.yaml"), "kernel", "t-")


def test_carrier_senses_the_far_end_only() -> None:
    fault = plan(view(), "carrier", ["agg1", "core1"])
    assert [a.describe() for a in fault.actions] == ["core1:core1-eth1 set down"]
    assert [(a.action, a.node, a.ifname) for a in fault.senses] == [("sense", "agg1", "agg1-eth3")]
    assert Fault.from_dict(fault.to_dict()) == fault


def test_switch_failure_senses_every_neighbour_and_admin_none() -> None:
    fault = plan(view(), "switch", ["core1"])
    assert sorted(a.node for a in fault.senses) == ["agg1", "agg3", "agg5", "agg7"]
    assert plan(view(), "admin", ["agg1", "core1"]).senses == ()
    old = {k: v for k, v in fault.to_dict().items() if k != "senses"}
    assert Fault.from_dict(old).senses == ()  # a record written before senses existed
