"""line-3 brought up through the lab API: every node and interface as the plan says, IPv6
only, SRv6 router settings on switches, bandwidth by tc, and every link passes packets."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from controller.topology import Topology
from lab.errors import LabBusy
from lab.nodes import MULTIPATH_HASH_FIELDS, switch_hash_seed
from lab.session import RunningLab, running_lab

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("private_netns")]


@pytest.fixture(scope="module")
def line3(private_netns: str, topology: Callable[[str], Topology]) -> Iterator[RunningLab]:
    with running_lab(topology("line-3")) as lab:
        yield lab


def test_state_file_describes_the_ready_lab(line3: RunningLab, private_netns: str) -> None:
    state = line3.run.state()
    assert state is not None and state.ready
    assert state.topology == "line-3"
    assert state.switch_kind == "kernel"
    assert sorted(state.nodes) == ["h1", "h2", "s1", "s2", "s3"]
    assert state.nodes["s1"].netns == f"{private_netns}s1"
    assert state.nodes["s1"].switch_kind == "kernel"
    phases = [s.text.split()[0] for s in state.steps]
    assert phases == ["starting", "creating", "configuring", "waiting", "starting"]
    assert state.steps[-1].text == "starting switchd on 3 switches"


def test_every_node_has_a_named_namespace(line3: RunningLab, probe: Any) -> None:
    for name in ("h1", "h2", "s1", "s2", "s3"):
        assert probe.run(name, "true") == ""


def test_interfaces_carry_the_plan(line3: RunningLab, probe: Any) -> None:
    topo = line3.network.topology
    for node in ("h1", "h2", "s1", "s2", "s3"):
        links = probe.links(node)
        addresses = probe.addresses(node)
        planned = topo.interfaces_of(node)
        assert sorted(links) == sorted(i.name for i in planned), node
        for intf in planned:
            link = links[intf.name]
            assert link["address"] == intf.mac, intf.name
            assert link["operstate"] == "UP", intf.name
            assert link["linkinfo"]["info_kind"] == "veth"
            assert link.get("inet6_addr_gen_mode") == "none", intf.name
            link_locals = [a for a in addresses[intf.name] if a.startswith("fe80:")]
            assert link_locals == [f"{intf.link_local}/64"], intf.name


def test_hosts_have_their_addresses_and_default_route(line3: RunningLab, probe: Any) -> None:
    topo = line3.network.topology
    for host in topo.hosts:
        nic = host.nics[0]
        assert f"{nic.address}/64" in probe.addresses(host.name)[nic.interface.name]
        routes = probe.run(host.name, "ip", "-6", "route", "show", "default")
        assert f"default via {nic.gateway} dev {nic.interface.name}" in routes


def test_ipv4_is_absent(line3: RunningLab, probe: Any) -> None:
    for node in ("h1", "h2", "s1", "s2", "s3"):
        v4 = probe.addresses(node, "-4")
        assert {k: v for k, v in v4.items() if k != "lo"} == {}, node
        assert v4.get("lo", ["127.0.0.1/8"]) == ["127.0.0.1/8"]
        assert probe.run(node, "ip", "-4", "route", "show").strip() == "", node


def test_switches_are_srv6_routers(line3: RunningLab, probe: Any) -> None:
    for switch in ("s1", "s2", "s3"):
        assert probe.sysctl(switch, "net.ipv6.conf.all.forwarding") == "1"
        assert probe.sysctl(switch, "net.ipv6.conf.all.seg6_enabled") == "1"
        assert probe.sysctl(switch, "net.ipv6.conf.default.seg6_enabled") == "1"
        assert probe.sysctl(switch, "net.ipv6.conf.all.accept_dad") == "0"
        assert probe.sysctl(switch, "net.ipv6.conf.default.accept_dad") == "0"
        assert probe.sysctl(switch, "net.ipv6.fib_multipath_hash_policy") == "3"
        assert probe.sysctl(switch, "net.ipv6.fib_multipath_hash_fields") == str(
            MULTIPATH_HASH_FIELDS
        )
        if os.path.exists("/proc/sys/net/ipv4/fib_multipath_hash_seed"):
            seed = probe.sysctl(switch, "net.ipv4.fib_multipath_hash_seed")
            assert seed == str(switch_hash_seed(switch)) != "0"
        for intf in line3.network.topology.interfaces_of(switch):
            conf = f"net.ipv6.conf.{intf.name}"
            assert probe.sysctl(switch, f"{conf}.seg6_enabled") == "1", intf.name
            assert probe.sysctl(switch, f"{conf}.accept_dad") == "0", intf.name


def test_hosts_do_not_forward_and_skip_dad(line3: RunningLab, probe: Any) -> None:
    for host in ("h1", "h2"):
        assert probe.sysctl(host, "net.ipv6.conf.all.forwarding") == "0"
        assert probe.sysctl(host, "net.ipv6.conf.all.accept_dad") == "0"


def test_bandwidth_is_capped_by_tc_without_netem(line3: RunningLab, probe: Any) -> None:
    for link in line3.network.topology.links:
        for end in (link.a, link.b):
            qdiscs = probe.run(end.node, "tc", "qdisc", "show", "dev", end.name)
            classes = probe.run(end.node, "tc", "class", "show", "dev", end.name)
            assert "qdisc htb 5: root" in qdiscs, qdiscs
            assert "netem" not in qdiscs
            assert f"rate {link.bandwidth_mbps:g}Mbit" in classes, classes


def test_the_two_ends_of_each_link_have_different_ifindexes(line3: RunningLab, probe: Any) -> None:
    # Equal indexes would make the kernel batch carrier events for up to a second.
    for link in line3.network.topology.links:
        a = probe.links(link.a.node)[link.a.name]
        b = probe.links(link.b.node)[link.b.name]
        assert a["ifindex"] != b["ifindex"], link.name
        assert a["link_index"] == b["ifindex"] and b["link_index"] == a["ifindex"]


def test_every_link_passes_packets_both_ways(line3: RunningLab, probe: Any) -> None:
    failed = []
    for link in line3.network.topology.links:
        for here, there in ((link.a, link.b), (link.b, link.a)):
            if not probe.ping(here.node, str(there.link_local), here.name):
                failed.append(f"{here.endpoint} -> {there.endpoint}")
    assert not failed, f"no reply across: {failed}"


def test_a_second_lab_is_refused(line3: RunningLab, topology: Callable[[str], Topology]) -> None:
    with pytest.raises(LabBusy) as err, running_lab(topology("leaf-spine-2x4")):
        pytest.fail("a second lab started")
    message = str(err.value)
    assert "lab line-3" in message
    assert f"pid {line3.state.pid}" in message
    assert "srv6lab lab down" in message
