"""The ECMP collision predictor against cases computed by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.analysis import (
    analyze_ecmp,
    compare_measured,
    expected_ecmp_loads,
    hashed_paths,
    ideal_pressure,
    measured_loads,
)
from controller.analysis.render import text_report, write_png
from controller.paths import Flow, LiveGraph, collective_flows
from controller.topology import Topology, load

ROOT = Path(__file__).resolve().parents[2]

# Two leaves, two spines, two hosts per leaf; leaf uplinks at 100 Mbit/s, host links at 100.
SMALL = """\
name: ls-2x2
defaults: {bandwidth: 100}
switches:
  - {name: s1, id: 0x101}
  - {name: s2, id: 0x102}
  - {name: l1, id: 0x201}
  - {name: l2, id: 0x202}
hosts:
  - {name: a1, id: 1, gpu: true, nics: [l1]}
  - {name: a2, id: 2, gpu: true, nics: [l1]}
  - {name: b1, id: 3, gpu: true, nics: [l2]}
  - {name: b2, id: 4, gpu: true, nics: [l2]}
links:
  - {ends: [l1, s1]}
  - {ends: [l1, s2]}
  - {ends: [l2, s1]}
  - {ends: [l2, s2]}
"""


@pytest.fixture
def small(tmp_path: Path) -> Topology:
    f = tmp_path / "ls.yaml"
    f.write_text(SMALL, encoding="utf-8")
    return load(str(f))


def test_expected_loads_split_evenly_at_each_hop(small: Topology) -> None:
    live = LiveGraph(small.graph)
    loads = expected_ecmp_loads(live, [Flow("a1", "b1"), Flow("a2", "b2")])
    # Each flow picks s1 or s2 with probability 1/2: one flow expected per uplink.
    assert loads[("l1", "s1")] == pytest.approx(1.0)
    assert loads[("l1", "s2")] == pytest.approx(1.0)
    assert loads[("s1", "l2")] == pytest.approx(1.0)
    assert loads[("a1", "l1")] == pytest.approx(1.0)
    assert loads[("l2", "b2")] == pytest.approx(1.0)
    assert ("l2", "s1") not in loads  # nothing goes back up


def test_expected_loads_on_the_fat_tree_by_hand() -> None:
    topo = load(str(ROOT / "topologies" / "fat-tree-4.yaml"))
    live = LiveGraph(topo.graph)
    # h1 (edge1, pod 1) to h16 (edge8, pod 4): 2 uplinks at edge1, then 2 cores per agg.
    loads = expected_ecmp_loads(live, [Flow("h1", "h16")])
    assert loads[("edge1", "agg1")] == pytest.approx(0.5)
    assert loads[("agg1", "core1")] == pytest.approx(0.25)
    assert loads[("core4", "agg8")] == pytest.approx(0.25)
    assert loads[("agg7", "edge8")] == pytest.approx(0.5)
    assert sum(v for (a, _), v in loads.items() if a.startswith("core")) == pytest.approx(1.0)


def test_ideal_is_the_host_cut(small: Topology) -> None:
    flows = collective_flows(["a1", "a2", "b1", "b2"], "all-to-all")
    # Every host sends 3 flows and receives 3 over one 100 Mbit/s NIC.
    assert ideal_pressure(small, flows) == pytest.approx(3 / 100)


def test_two_flows_collide_in_half_the_draws(small: Topology) -> None:
    # a1->b1 and a2->b2 both cross l1's uplinks; b1->a2 and b2->a1 both cross l2's. Each
    # pair collides (both on one uplink) when its hashes agree: probability 1/2 each,
    # independently; a collision puts 2 flows where the ideal is 1 (each host sends one
    # flow): ratio 2. No collision at all: 1/2 * 1/2, so 3/4 of the draws collide.
    a = analyze_ecmp(small, ["a1", "b1", "a2", "b2"], "ring", seeds=400)
    ring = {str(f) for f in a.flows}
    assert ring == {"a1->b1", "b1->a2", "a2->b2", "b2->a1"}
    assert a.expected.ratio_to_ideal == pytest.approx(1.0)  # 2 flows, 2 uplinks on average
    st = a.ratio_stats()
    assert set(a.seed_ratios) <= {1.0, 2.0}
    assert st["max"] == 2.0 and st["min"] == 1.0
    assert 0.65 < st["share_above_ideal"] < 0.85
    assert a.pinned is not None and a.pinned.ratio_to_ideal == pytest.approx(1.0)
    assert a.spray is not None and a.spray.ratio_to_ideal == pytest.approx(1.0)
    assert a.spray.loads[("l1", "s1")] == pytest.approx(1.0)  # 2 flows x 1/2


def test_collisions_name_the_flows_that_share_a_link(small: Topology) -> None:
    hosts = ["a1", "b1", "a2", "b2"]
    for seed in range(50):
        a = analyze_ecmp(small, hosts, "ring", seeds=1, sample_seed=seed)
        paths = hashed_paths(LiveGraph(small.graph), a.flows, seed)
        up = {f: p.nodes[2] for f, p in paths.items() if p.nodes[1] == "l1"}
        if len(set(up.values())) == 1:  # both flows from l1 picked one spine
            spine = next(iter(up.values()))
            hit = [c for c in a.collisions if (c.src, c.dst) == ("l1", spine)]
            assert hit and {str(f) for f in hit[0].flows} == {"a1->b1", "a2->b2"}
            assert hit[0].pressure_ratio == pytest.approx(2.0)
            return
    pytest.fail("no seed in 50 made both flows pick one spine")


def test_multi_nic_hosts_ecmp_uses_the_first_nic_only() -> None:
    topo = load(str(ROOT / "topologies" / "gpu-pod-2plane.yaml"))
    a = analyze_ecmp(topo, ["gpu1", "gpu3"], "ring", seeds=5)
    assert all(not a or not b.startswith("p1") for (a, b) in a.expected.loads)
    # One flow each way, 2 NICs of 100 Mbit/s per host: ideal 0.5 flows per 100 Mbit/s;
    # ecmp puts a whole flow on one NIC, spray half on each plane.
    assert a.expected.ratio_to_ideal == pytest.approx(2.0)
    assert a.spray is not None and a.spray.ratio_to_ideal == pytest.approx(1.0)


def test_measured_bytes_become_flows(small: Topology) -> None:
    flows = [Flow("a1", "b1"), Flow("a2", "b2")]
    counted = {"a1->l1": 1000.0, "a2->l1": 1000.0, "l1->s1": 2000.0, "s1->l2": 2000.0}
    loads = measured_loads(counted, flows, ["a1", "a2", "b1", "b2"])
    assert loads[("l1", "s1")] == pytest.approx(2.0)
    assert loads[("a1", "l1")] == pytest.approx(1.0)
    a = analyze_ecmp(small, ["a1", "b1", "a2", "b2"], "ring", seeds=50)
    m = compare_measured(a, {**counted, "b1->l2": 1000.0, "b2->l2": 1000.0})
    assert m.ratio_to_ideal == pytest.approx(2.0)


def test_bad_input_is_named(small: Topology) -> None:
    with pytest.raises(ValueError, match="'zz' is not a host"):
        analyze_ecmp(small, ["a1", "zz"], "ring")
    with pytest.raises(ValueError, match="'a-b'"):
        measured_loads({"a-b": 1.0}, [Flow("a1", "b1")], ["a1"])


def test_report_and_heat_map(small: Topology, tmp_path: Path) -> None:
    a = analyze_ecmp(small, ["a1", "b1", "a2", "b2"], "all-to-all", seeds=20)
    text = text_report(a)
    assert "ideal" in text and "a1->l1" in text and "a seed of its own" in text
    out = tmp_path / "heat.png"
    write_png(a, out)
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_spray_uses_every_core_of_the_fat_tree() -> None:
    """The spray prediction salts GetPaths' search with the destination's index, as the
    benchmark does: the 8 hosts of two pods load the 4 cores' 16 link directions evenly
    (4 flows' halves each); unsalted, cores 1 and 3 carried everything (ratio 8/7)."""
    topo = load(str(ROOT / "topologies" / "fat-tree-4.yaml"))
    hosts = [f"h{i}" for i in range(1, 9)]
    a = analyze_ecmp(topo, hosts, "all-to-all", seeds=1)
    assert a.spray is not None and a.spray.ratio_to_ideal == pytest.approx(1.0)
    core = {d: v for d, v in a.spray.loads.items() if "core" in d[0] or "core" in d[1]}
    assert len(core) == 16 and sorted(core.values()) == pytest.approx([4.0] * 16)
