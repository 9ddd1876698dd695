"""Scenario files (lab/scenario.py): strict validation naming file:line: field, and the
fault plans of lab/faults.py (pure: nothing is done to a lab)."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.topology import Topology, load
from lab.errors import LabError
from lab.faults import LabView, gray_ruleset, plan
from lab.scenario import ScenarioError, load_scenario, loads_scenario, run_scenario

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fat_tree() -> Topology:
    return load(ROOT / "topologies" / "fat-tree-4.yaml")


GOOD = """\
- {at: 0.5, fail: [agg1, core1], kind: admin}
- {at: 1, fail: [core2], kind: switch}
- {at: 2.0, restore: [agg1, core1]}
- {at: 3, restore: all}
"""


def test_good_scenario(fat_tree: Topology) -> None:
    steps = loads_scenario(GOOD, "s.yaml", fat_tree)
    assert [(s.at, s.action, s.target, s.kind) for s in steps] == [
        (0.5, "fail", ("agg1", "core1"), "admin"),
        (1.0, "fail", ("core2",), "switch"),
        (2.0, "restore", ("agg1", "core1"), None),
        (3.0, "restore", (), None),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- {at: 1, fail: [agg1, core1], kind: flaky}\n", "s.yaml:1: [0].kind: unknown kind"),
        ("- {at: 1, fail: [agg1, core1]}\n", "s.yaml:1: [0]: 'fail' needs 'kind'"),
        ("- {at: -1, restore: all}\n", "s.yaml:1: [0].at: must be 0 or more"),
        ("- {at: soon, restore: all}\n", "s.yaml:1: [0].at: must be a number"),
        ("- {at: 1, restore: all, colour: red}\n", "s.yaml:1: [0].colour: unknown key"),
        (
            "- {at: 2, restore: all}\n- {at: 1, restore: all}\n",
            "s.yaml:2: [1].at: 1 is before the previous step's 2.0",
        ),
        ("- {at: 1, fail: [core1], kind: admin}\n", "s.yaml:1: [0].fail: kind admin fails the"),
        ("- {at: 1, fail: [a, b], restore: all, kind: admin}\n", "exactly one of 'fail'"),
        ("- {at: 1, restore: [agg1, core1], kind: admin}\n", "[0].kind: 'kind' belongs to"),
        ("{at: 1}\n", "s.yaml:1: (top level): a scenario is a list"),
        ("- {at: 1, fail: [agg1, agg1], kind: gray}\n", "names a node twice"),
    ],
)
def test_bad_scenarios_name_file_line_and_field(text: str, expected: str) -> None:
    with pytest.raises(ScenarioError) as info:
        loads_scenario(text, "s.yaml")
    assert expected in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- {at: 1, fail: [agg1, core9], kind: admin}\n", "s.yaml:1: [0].fail: no node 'core9'"),
        ("- {at: 1, fail: [agg1, core3], kind: admin}\n", "no link agg1-core3"),
        ("- {at: 1, fail: [h1], kind: switch}\n", "h1 is a host"),
        ("- {at: 1, restore: [agg1, core1]}\n", "agg1-core1 is not failed at 1 s"),
        (
            "- {at: 1, fail: [agg1, core1], kind: admin}\n"
            "- {at: 2, fail: [core1, agg1], kind: gray}\n",
            "s.yaml:2: [1].fail: core1-agg1 is already failed at 2 s",
        ),
    ],
)
def test_scenario_checked_against_topology(fat_tree: Topology, text: str, expected: str) -> None:
    with pytest.raises(ScenarioError) as info:
        loads_scenario(text, "s.yaml", fat_tree)
    assert expected in str(info.value)


def test_every_problem_is_reported_at_once() -> None:
    text = "- {at: 1, fail: [a, b], kind: nope}\n- {at: x, restore: all}\n"
    with pytest.raises(ScenarioError) as info:
        loads_scenario(text, "s.yaml")
    assert len(info.value.problems) == 2


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "missing.yaml")


def test_run_scenario_calls_in_order() -> None:
    steps = loads_scenario(GOOD, "s.yaml")
    calls: list[tuple[str, object]] = []
    run_scenario(
        steps,
        lambda kind, target: calls.append(("fail", (kind, target))),  # type: ignore[func-returns-value,arg-type]
        lambda target: calls.append(("restore", target)) or [],  # type: ignore[func-returns-value]
        start=0.0,  # long past: no waiting
    )
    assert calls == [
        ("fail", ("admin", ("agg1", "core1"))),
        ("fail", ("switch", ("core2",))),
        ("restore", ("agg1", "core1")),
        ("restore", None),
    ]


# -- fault plans ---------------------------------------------------------------------------------


def view(topo: Topology, kind: str = "kernel") -> LabView:
    return LabView(topo, kind, "p-")


def test_admin_downs_both_ends(fat_tree: Topology) -> None:
    fault = plan(view(fat_tree), "admin", ["agg1", "core1"])
    assert [(a.action, a.node, a.netns) for a in fault.actions] == [
        ("down", "agg1", "p-agg1"),
        ("down", "core1", "p-core1"),
    ]
    assert all(a.link_local.startswith("fe80::53:") for a in fault.actions)


def test_carrier_downs_y_and_x_sees_it(fat_tree: Topology) -> None:
    fault = plan(view(fat_tree), "carrier", ["agg1", "core1"])
    assert [(a.action, a.node) for a in fault.actions] == [("down", "core1")]
    assert "agg1" in fault.models and "carrier loss" in fault.models


def test_gray_drops_on_both_ends(fat_tree: Topology) -> None:
    fault = plan(view(fat_tree), "gray", ["agg1", "core1"])
    assert [(a.action, a.node) for a in fault.actions] == [("gray", "agg1"), ("gray", "core1")]
    ruleset = gray_ruleset(fault.actions[0].ifname)
    assert "hook ingress" in ruleset and "policy drop" in ruleset


def test_switch_downs_every_port(fat_tree: Topology) -> None:
    fault = plan(view(fat_tree), "switch", ["core1"])
    assert {a.node for a in fault.actions} == {"core1"}
    assert len(fault.actions) == 4


def test_host_end_keeps_its_routes_to_restore(fat_tree: Topology) -> None:
    fault = plan(view(fat_tree), "admin", ["h1", "edge1"])
    host = next(a for a in fault.actions if a.node == "h1")
    assert host.host_routes and host.host_routes[0].startswith("default via fe80::")


def test_bmv2_never_downs_its_own_port(fat_tree: Topology) -> None:
    """BMv2 reads bmN (#1215: never set down); a failure downs the lab port and bxN, the
    far end of BMv2's patch veth, so BMv2 sees carrier loss."""
    fault = plan(view(fat_tree, "bmv2"), "admin", ["agg1", "core1"])
    downs = sorted((a.node, a.ifname) for a in fault.actions)
    assert all(a.action == "down" for a in fault.actions)
    assert not any(ifname.startswith("bm") for _, ifname in downs)
    assert sum(ifname.startswith("bx") for _, ifname in downs) == 2
    assert {a.ifname for a in fault.actions if a.ifname.startswith("bx")} == {
        f"bx{fat_tree.link('agg1', 'core1').interface_at(n).port}" for n in ("agg1", "core1")
    }
    fault = plan(view(fat_tree, "bmv2"), "admin", ["h1", "edge1"])
    assert sorted(a.node for a in fault.actions) == ["edge1", "edge1", "h1"]
    fault = plan(view(fat_tree, "bmv2"), "carrier", ["h1", "edge1"])
    assert [a.node for a in fault.actions] == ["edge1", "edge1"]
    gray = plan(view(fat_tree, "bmv2"), "gray", ["agg1", "core1"])
    assert {a.ifname for a in gray.actions} == {
        "agg1-eth" + str(fat_tree.link("agg1", "core1").interface_at("agg1").port),
        "core1-eth" + str(fat_tree.link("agg1", "core1").interface_at("core1").port),
    }
    switch = plan(view(fat_tree, "bmv2"), "switch", ["core1"])
    assert len(switch.actions) == 8 and all(a.action == "down" for a in switch.actions)


@pytest.mark.parametrize(
    ("kind", "target", "message"),
    [
        ("flaky", ["agg1", "core1"], "unknown failure kind"),
        ("admin", ["agg1", "core3"], "no link between agg1 and core3"),
        ("admin", ["agg1"], "takes the two ends of a link"),
        ("switch", ["h1"], "h1 is a host"),
        ("gray", ["agg1", "nowhere"], "no node 'nowhere'"),
    ],
)
def test_bad_fault_requests(fat_tree: Topology, kind: str, target: list[str], message: str) -> None:
    with pytest.raises(LabError, match=message):
        plan(view(fat_tree), kind, target)
