"""The lab's pure parts, without root: what each node and link gets from the plan, the
state file round trip, sweep reports, and how node shell commands report failures."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from controller.topology import load
from lab.errors import LabError
from lab.links import LabIntf
from lab.shell import run_commands
from lab.state import InterfaceInfo, LabState, LinkInfo, NodeInfo, read_state, write_state
from lab.sweep import SweepReport
from lab.topo import FABRIC_MTU, FIRST_IFINDEX, MAX_HOST_MTU, LabTopo, host_routes

TOPOLOGIES = Path(__file__).resolve().parents[2] / "topologies"


def test_single_nic_hosts_get_only_a_default_route() -> None:
    topo = load(TOPOLOGIES / "line-3.yaml")
    routes = host_routes(topo, topo.host("h1"))
    assert [r.command() for r in routes] == [
        "ip -6 route replace default via fe80::53:1:1 dev h1-eth0"
    ]


def test_two_plane_hosts_route_each_plane_through_its_nic() -> None:
    topo = load(TOPOLOGIES / "gpu-pod-2plane.yaml")
    routes = host_routes(topo, topo.host("gpu1"))
    assert routes[0].destination == "default" and routes[0].dev == "gpu1-eth0"
    by_prefix = {r.destination: r for r in routes[1:]}
    assert len(by_prefix) == 14  # 7 other hosts x 2 planes
    assert by_prefix["2001:db8:2::/64"].dev == "gpu1-eth0"
    assert by_prefix["2001:db8:2:1::/64"].dev == "gpu1-eth1"
    assert str(by_prefix["2001:db8:2:1::/64"].gateway) == "fe80::53:2201:1"


def test_topo_gives_links_plan_names_macs_and_distinct_ifindexes() -> None:
    topo = load(TOPOLOGIES / "fat-tree-4.yaml")
    mn_topo = LabTopo(topo, switch="kernel")
    infos = [info for _a, _b, info in mn_topo.links(withInfo=True)]
    assert len(infos) == 48
    indexes = [i for info in infos for i in (info["ifindex1"], info["ifindex2"])]
    assert len(set(indexes)) == 96 and min(indexes) == FIRST_IFINDEX
    first = next(info for info in infos if info["link_name"] == topo.links[0].name)
    link = topo.links[0]
    assert (first["intfName1"], first["addr1"]) == (link.a.name, link.a.mac)
    assert first["params2"] == {"link_local": str(link.b.link_local)}
    assert first["bw"] == link.bandwidth_mbps
    assert mn_topo.nodeInfo("core1")["dpid"] == "101"


def test_unknown_switch_kind_names_the_known_ones() -> None:
    topo = load(TOPOLOGIES / "line-3.yaml")
    with pytest.raises(LabError, match="unknown switch kind 'p4'; known kinds: bmv2, kernel"):
        LabTopo(topo, switch="p4")


def test_netem_parameters_are_refused() -> None:
    fake = SimpleNamespace(name="s1-eth1", node=SimpleNamespace(name="s1"))
    with pytest.raises(LabError, match=r"s1:s1-eth1: delay, loss would need the netem qdisc"):
        LabIntf.config(fake, bw=10, delay="1ms", loss=1)


def test_state_round_trip(tmp_path: Path) -> None:
    state = LabState(
        topology="line-3",
        topology_path="/x/line-3.yaml",
        switch_kind="kernel",
        pid=42,
        started_at=time.time(),
        counts={"switches": 3, "hosts": 2, "links": 4},
        node_names=["s1", "s2", "s3", "h1", "h2"],
        netns_prefix="srv6lab-",
        interface_names=["s1-eth1"],
        links=[LinkInfo("s1-s2", "s1:s1-eth2", "s2:s2-eth1", 100.0)],
    )
    state.add_step("starting 3 switches and 2 hosts")
    intf = InterfaceInfo("s1-eth1", "02:53:00:01:00:01", "fe80::53:1:1/64", (), "h1:h1-eth0")
    state.mark_ready([NodeInfo("s1", "switch", "kernel", 43, "srv6lab-s1", 7, (intf,))])
    path = tmp_path / "state.json"
    write_state(path, state)
    assert read_state(path) == state
    assert read_state(tmp_path / "none.json") is None
    path.write_text('{"version": 99}')
    with pytest.raises(LabError, match="not a valid lab state: version 99"):
        read_state(path)


def test_sweep_report_lines() -> None:
    report = SweepReport(processes=["pid 7 (sleep 600)"], namespaces=["srv6lab-a", "srv6lab-b"])
    assert report.lines() == ["1 process: pid 7 (sleep 600)", "2 namespaces: srv6lab-a, srv6lab-b"]
    assert SweepReport().empty


class LocalShell:
    """Stands in for a Mininet node: runs the command in a local bash."""

    name = "n1"

    def cmd(self, script: str) -> Any:
        return subprocess.run(
            ["bash", "-c", script], capture_output=True, text=True, check=False
        ).stdout


def test_run_commands_returns_output() -> None:
    assert run_commands(LocalShell(), ["echo a", "echo b"], "testing") == "a\nb"


def test_run_commands_names_the_failed_command_and_stops() -> None:
    with pytest.raises(LabError) as err:
        run_commands(
            LocalShell(), ["echo one", "ls /nonexistent-dir 2>&1", "echo never"], "doing x"
        )
    message = str(err.value)
    assert message.startswith("doing x: command failed in node n1 (exit 2): ls /nonexistent-dir")
    assert "No such file or directory" in message and "never" not in message


def test_namespace_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    from lab import namespaces

    monkeypatch.delenv("SRV6LAB_NETNS_PREFIX", raising=False)
    assert namespaces.netns_name("s1") == "srv6lab-s1"
    monkeypatch.setenv("SRV6LAB_NETNS_PREFIX", "t42-")
    assert namespaces.netns_name("s1") == "t42-s1"
    monkeypatch.setenv("SRV6LAB_NETNS_PREFIX", "a/b")
    with pytest.raises(LabError, match="SRV6LAB_NETNS_PREFIX='a/b' is not a usable"):
        namespaces.netns_name("s1")


def test_host_links_take_the_host_mtu_and_fabric_links_stay_above_it() -> None:
    topo = load(TOPOLOGIES / "fat-tree-4.yaml")
    for host_mtu, expected in ((1500, None), (9000, 9000)):
        mn_topo = LabTopo(topo, switch="kernel", host_mtu=host_mtu)
        for _a, _b, info in mn_topo.links(withInfo=True):
            link = topo.link(info["intfName1"].split("-")[0], info["intfName2"].split("-")[0])
            for end in ("params1", "params2"):
                if link.kind == "fabric":
                    assert info[end]["mtu"] == FABRIC_MTU
                else:
                    assert info[end].get("mtu") == expected  # 1500: untouched (veth default)
    assert MAX_HOST_MTU == FABRIC_MTU - 144 >= 9000


@pytest.mark.parametrize("mtu", [1279, 9073, 0, True])
def test_host_mtus_the_fabric_cannot_carry_are_refused(mtu: int) -> None:
    topo = load(TOPOLOGIES / "line-3.yaml")
    with pytest.raises(LabError, match=r"must be from 1280 \(IPv6's minimum\) to 9072"):
        LabTopo(topo, switch="kernel", host_mtu=mtu)
