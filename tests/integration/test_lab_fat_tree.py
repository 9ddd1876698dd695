"""fat-tree-4 (20 switches, 16 hosts, 48 links) through the lab API: every interface as
planned and up, every link passes packets both ways, every link capped by tc."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from controller.topology import Topology
from lab.session import RunningLab, running_lab

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("private_netns")]


@pytest.fixture(scope="module")
def fat_tree(private_netns: str, topology: Callable[[str], Topology]) -> Iterator[RunningLab]:
    with running_lab(topology("fat-tree-4")) as lab:
        yield lab


def test_every_node_runs(fat_tree: RunningLab) -> None:
    state = fat_tree.state
    assert state.counts == {"switches": 20, "hosts": 16, "links": 48}
    assert len(state.nodes) == 36
    kinds = sorted(n.kind for n in state.nodes.values())
    assert kinds.count("switch") == 20 and kinds.count("host") == 16


def test_every_interface_is_up_with_the_plan_mac_and_link_local(
    fat_tree: RunningLab, probe: Any
) -> None:
    topo = fat_tree.network.topology
    wrong = []
    for node in [s.name for s in topo.switches] + [h.name for h in topo.hosts]:
        links = probe.links(node)
        addresses = probe.addresses(node)
        for intf in topo.interfaces_of(node):
            got = links.get(intf.name)
            lls = [a for a in addresses.get(intf.name, []) if a.startswith("fe80:")]
            if (
                got is None
                or got["operstate"] != "UP"
                or got["address"] != intf.mac
                or lls != [f"{intf.link_local}/64"]
            ):
                wrong.append(intf.endpoint)
    assert not wrong, f"not as planned: {wrong}"


def test_every_link_passes_packets_both_ways(fat_tree: RunningLab) -> None:
    # Through the Mininet nodes' own shells: 96 pings, a few ms each.
    failed = []
    for link in fat_tree.network.topology.links:
        for here, there in ((link.a, link.b), (link.b, link.a)):
            node = fat_tree.node(here.node)
            out = node.cmd(f"ping -6 -n -q -c1 -W2 {there.link_local}%{here.name}; echo rc=$?")
            if "rc=0" not in out:
                failed.append(f"{here.endpoint} -> {there.endpoint}")
    assert not failed, f"no reply across: {failed}"


def test_every_link_is_capped(fat_tree: RunningLab) -> None:
    missing = []
    for link in fat_tree.network.topology.links:
        for end in (link.a, link.b):
            out = fat_tree.node(end.node).cmd(f"tc class show dev {end.name}")
            if f"rate {link.bandwidth_mbps:g}Mbit" not in out:
                missing.append(end.endpoint)
    assert not missing, f"no htb rate on: {missing}"
