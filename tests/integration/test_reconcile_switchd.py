"""The reconciler against real switches: what the compiler installs into switchd and
switchd reads back normalises to exactly what was desired (the plan is empty); after a
link goes down, the plan turns the installed state into the new one make-before-break,
applied batch by batch over P4Runtime, and a second diff is empty."""

from __future__ import annotations

from typing import Any

import finsy as fy
import pytest

from controller.compiler import compile_network, entities
from controller.reconcile import diff
from controller.topology import Topology
from lab.session import RunningLab
from tests.integration.switchd_support import P4INFO, P4RuntimeSwitch, ping

pytestmark = pytest.mark.root


def apply(sw: P4RuntimeSwitch, plan: Any) -> None:
    for batch in plan.updates():  # one WriteRequest per batch (a switch may reorder within)
        sw.write(batch)


def test_installed_state_reads_back_as_desired_and_a_failure_reconciles(
    tri3: tuple[RunningLab, Topology], planes: dict[str, P4RuntimeSwitch]
) -> None:
    _, topo = tri3
    schema = fy.P4Schema(P4INFO)
    desired = {name: entities(rules) for name, rules in compile_network(topo).items()}
    for name, sw in planes.items():
        sw.insert(desired[name])
    assert ping("h1", "2001:db8:2::1")
    for name, sw in planes.items():
        plan = diff(desired[name], sw.read_all(), schema)
        assert not plan, f"{name}: read-back differs from what was written:\n{plan.describe()}"

    # s1-s3 fails: the new fabric routes s1 <-> s3 over s2.
    after = {name: entities(rules) for name, rules in compile_network(topo, down=["s1-s3"]).items()}
    changed = 0
    for name, sw in planes.items():
        plan = diff(after[name], sw.read_all(), schema)
        changed += len(plan)
        apply(sw, plan)
        assert not diff(after[name], sw.read_all(), schema), name
    assert changed > 0
    assert ping("h1", "2001:db8:2::1")
