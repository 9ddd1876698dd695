"""The traffic generator's spec crosses a process boundary as JSON (lab/traffic/generator.py),
and its probe sender's scheduling class (lab/traffic/probe.py)."""

from __future__ import annotations

import os

from lab.traffic.generator import CollectiveSpec, Rank, TrafficSpec
from lab.traffic.probe import ProbeFlow, _realtime


def test_spec_round_trips_with_its_scheduling() -> None:
    flow = ProbeFlow(1, "h1", "ns-h1", "2001:db8:1::2", 40001, "h5", "ns-h5", "2001:db8:5::2")
    ranks = (Rank("h1", "ns-h1", "2001:db8:1::2"), Rank("h5", "ns-h5", "2001:db8:5::2"))
    for realtime in (False, True):
        spec = TrafficSpec(
            3.5, 1000.0, (flow,), CollectiveSpec("all-to-all", ranks, 4096), realtime=realtime
        )
        assert TrafficSpec.from_json(spec.to_json()) == spec
    # a spec written before the field existed runs at normal priority
    old = TrafficSpec(1.0, 10.0, (flow,)).to_json().replace(', "realtime": false', "")
    assert "realtime" not in old
    assert TrafficSpec.from_json(old).realtime is False


def test_normal_priority_leaves_the_thread_alone() -> None:
    before = os.sched_getscheduler(0)
    assert _realtime(None) == f"normal (nice {os.getpriority(os.PRIO_PROCESS, 0)})"
    assert os.sched_getscheduler(0) == before
