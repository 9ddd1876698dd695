"""gpu-pod-2plane: hosts with one NIC in each of two planes get an address per NIC, a
default route via NIC 0 and, per plane, routes to the other hosts' NICs in that plane."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from controller.topology import Topology
from lab.session import RunningLab, running_lab

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("private_netns")]


@pytest.fixture(scope="module")
def pod(private_netns: str, topology: Callable[[str], Topology]) -> Iterator[RunningLab]:
    with running_lab(topology("gpu-pod-2plane")) as lab:
        yield lab


def test_each_nic_has_its_address(pod: RunningLab, probe: Any) -> None:
    for host in pod.network.topology.hosts:
        addresses = probe.addresses(host.name)
        for nic in host.nics:
            assert f"{nic.address}/64" in addresses[nic.interface.name]


def test_routes_stay_in_their_plane(pod: RunningLab, probe: Any) -> None:
    topo = pod.network.topology
    gpu1 = topo.host("gpu1")
    routes = probe.run("gpu1", "ip", "-6", "route", "show")
    nic0, nic1 = gpu1.nics
    assert f"default via {nic0.gateway} dev {nic0.interface.name}" in routes
    for other in topo.hosts:
        if other.name == "gpu1":
            continue
        for mine, theirs in zip(gpu1.nics, other.nics, strict=True):
            assert mine.plane == theirs.plane
            line = f"{theirs.prefix} via {mine.gateway} dev {mine.interface.name}"
            assert line in routes, line
    assert nic1.plane == 1


def test_every_link_passes_packets(pod: RunningLab, probe: Any) -> None:
    failed = [
        link.name
        for link in pod.network.topology.links
        if not probe.ping(link.a.node, str(link.b.link_local), link.a.name)
    ]
    assert not failed, f"no reply across: {failed}"
