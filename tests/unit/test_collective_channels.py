"""Channels of a collective in the lab: the bytes a transfer's channels share, a ring that
pipelines every channel on its own, and the connections the pinned mode opens on a pod
whose hosts have a NIC in each of two planes (pure: socket pairs, no namespaces)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from controller.paths import collective_channels, collective_flows, place_collective
from controller.topology import Topology, load
from lab.collectives import placed_channels, tcp_flows
from lab.errors import LabError
from lab.traffic.collective import CollectiveRun, ConnKey, channel_bytes
from tests.unit.socket_support import connect

ROOT = Path(__file__).resolve().parents[2]
GPUS = tuple(f"gpu{i}" for i in range(1, 9))


@pytest.fixture(scope="module")
def pod() -> Topology:
    return load(ROOT / "topologies" / "gpu-pod-2plane.yaml")


def test_channel_bytes_share_a_transfer_evenly() -> None:
    assert channel_bytes(10, 2) == [5, 5]
    assert channel_bytes(11, 3) == [4, 4, 3]
    assert sum(channel_bytes(3 * 2**20 // 8, 2)) == 3 * 2**20 // 8
    with pytest.raises(ValueError, match="at least 1 channel"):
        channel_bytes(10, 0)


@pytest.mark.parametrize("pattern", ["all-reduce", "all-to-all"])
def test_a_collective_over_two_channels_per_transfer_completes(
    pattern: str, sockets: list[socket.socket]
) -> None:
    n = 3
    flows = [(0, 1), (1, 2), (2, 0)] if pattern == "all-reduce" else [
        (a, b) for a in range(n) for b in range(n) if a != b
    ]  # fmt: skip
    keys = [(a, b, ch) for a, b in flows for ch in (0, 1)]
    paced: list[frozenset[ConnKey]] = []
    run = CollectiveRun(pattern, n, 300_001, connect(keys, sockets), 2, pacer=paced.append)
    run.start()
    assert run.wait(30.0)
    run.stop()
    assert [it.index for it in run.results] == [0, 1]
    assert all(len(it.flow_finished_ns) == len(keys) for it in run.results)
    assert paced[0] == frozenset(keys)  # the pacer sees every channel


def test_channels_must_be_numbered_and_a_ring_keeps_its_count(
    sockets: list[socket.socket],
) -> None:
    with pytest.raises(ValueError, match=r"rank 0 -> 1: channels must be 0..1, got \[0, 2\]"):
        CollectiveRun("all-to-all", 2, 1000, connect([(0, 1, 0), (0, 1, 2), (1, 0, 0)], sockets))
    mixed = [(0, 1, 0), (0, 1, 1), (1, 2, 0), (2, 0, 0), (2, 0, 1)]
    with pytest.raises(ValueError, match="rank 1 receives on 2 channels but sends on 1"):
        CollectiveRun("all-reduce", 3, 1000, connect(mixed, sockets))


def test_pinned_opens_one_connection_per_plane_between_that_planes_nics(pod: Topology) -> None:
    channels, _ = collective_channels(pod.graph, GPUS, "ring")
    placement = place_collective(pod.graph, GPUS, "ring")
    # what the intent returns: the paths that need a policy (not those inside one leaf)
    intent_paths = [list(p.nodes) for p in placement.paths.values() if len(p.nodes) > 3]
    placed = placed_channels(pod, channels, intent_paths)
    assert len(placed) == 8 and all(len(nodes) == 5 for nodes in placed.values())
    specs = tcp_flows(pod, GPUS, channels, placed)
    assert len(specs) == 16
    by_key = {(s.src, s.dst, s.channel): s for s in specs}
    for c in channels:
        spec = by_key[(GPUS.index(c.src), GPUS.index(c.dst), c.plane)]
        src_nic = next(n for n in pod.host(c.src).nics if str(n.address) == spec.src_addr)
        dst_nic = next(n for n in pod.host(c.dst).nics if str(n.address) == spec.dst_addr)
        assert src_nic.plane == dst_nic.plane == c.plane


def test_single_plane_flows_stay_one_connection_each() -> None:
    ft = load(ROOT / "topologies" / "fat-tree-4.yaml")
    hosts = tuple(f"h{i}" for i in range(1, 9))
    channels, _ = collective_channels(ft.graph, hosts, "all-to-all")
    assert channels == collective_flows(hosts, "all-to-all")
    specs = tcp_flows(ft, hosts, channels, {})
    assert len(specs) == 56 and {s.channel for s in specs} == {0}


def test_a_path_the_lab_does_not_expect_is_refused(pod: Topology) -> None:
    channels, _ = collective_channels(pod.graph, GPUS[:2], "ring")
    with pytest.raises(LabError, match="gpu1 -> p0leaf1 -> p0spine1 -> p0leaf2 -> gpu3"):
        placed_channels(pod, channels, [["gpu1", "p0leaf1", "p0spine1", "p0leaf2", "gpu3"]])


def test_the_generator_spec_carries_each_connections_channel() -> None:
    from lab.traffic.collective_run import FlowSpec, RunSpec

    flows = (FlowSpec(0, 1, "2001:db8:1::2", "2001:db8:2::2", channel=1),)
    spec = RunSpec("tcp", "all-reduce", ("a", "b"), ("na", "nb"), flows, 1000, 1)
    assert RunSpec.from_json(spec.to_json()).flows == flows
