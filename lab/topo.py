"""A topology file as a Mininet ``Topo``: which node class each node gets and with which
parameters (addresses, routes), and each link's interface names, MACs, link-local
addresses, interface indexes and bandwidth, all from the addressing plan.

The lab (:mod:`lab.network`) and plain Mininet (``mininet/srv6lab.py``) both build from
:class:`LabTopo`, so ``srv6lab lab up`` and ``mn --custom`` make the same network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mininet.topo import Topo

from controller.topology import Host, Topology, load
from lab.links import LabLink
from lab.nodes import HostRoute, LabHost, switch_class

FIRST_IFINDEX = 100
"""Lab interfaces get indexes from here on, two per link, unique in the whole lab."""


class LabTopo(Topo):  # type: ignore[misc]
    """``LabTopo(topology_or_file, switch=None)``.

    With ``switch`` (a switch kind such as ``kernel``) every switch gets that node class;
    without it Mininet's ``switch`` default applies (``mn --switch kernel``).
    """

    def build(self, topology: Topology | str | Path, switch: str | None = None) -> None:
        topo = topology if isinstance(topology, Topology) else load(topology)
        self.topology = topo
        switch_cls = switch_class(switch) if switch is not None else None
        for sw in topo.switches:
            opts: dict[str, Any] = {"dpid": f"{sw.node_id:x}", "node_id": sw.node_id}
            if switch_cls is not None:
                opts["cls"] = switch_cls
            self.addSwitch(sw.name, **opts)
        for host in topo.hosts:
            self.addHost(
                host.name,
                cls=LabHost,
                addresses={
                    nic.interface.name: [f"{nic.address}/{nic.prefix.prefixlen}"]
                    for nic in host.nics
                },
                routes=host_routes(topo, host),
            )
        for number, link in enumerate(topo.links):
            self.addLink(
                link.a.node,
                link.b.node,
                port1=link.a.port,
                port2=link.b.port,
                cls=LabLink,
                intfName1=link.a.name,
                intfName2=link.b.name,
                addr1=link.a.mac,
                addr2=link.b.mac,
                ifindex1=FIRST_IFINDEX + 2 * number,
                ifindex2=FIRST_IFINDEX + 2 * number + 1,
                params1=_params(link.a.link_local, link),
                params2=_params(link.b.link_local, link),
                bw=link.bandwidth_mbps,
                link_name=link.name,
            )


FABRIC_MTU = 9000
"""Switch-to-switch links are jumbo, host links 1500: a host's full-size packet still fits
once a headend adds its SRv6 encapsulation (40 bytes, plus an SRH), as in production SRv6
fabrics; otherwise TCP over a steered path black-holes."""


def _params(link_local: Any, link: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"link_local": str(link_local)}
    if link.kind == "fabric":
        params["mtu"] = FABRIC_MTU
    return params


def host_routes(topology: Topology, host: Host) -> tuple[HostRoute, ...]:
    """A host's routes: the default via its first NIC's switch port; and when its NICs sit
    in different planes (gpu-pod-2plane), each other host's NIC prefixes in a plane via the
    NIC in that plane, so traffic to a plane's address stays in that plane."""
    first = host.nics[0]
    routes = [HostRoute("default", first.gateway, first.interface.name)]
    planes = [nic.plane for nic in host.nics]
    if len(host.nics) < 2 or None in planes or len(set(planes)) != len(planes):
        return tuple(routes)
    for nic in host.nics:
        for other in topology.hosts:
            if other.name == host.name:
                continue
            for other_nic in other.nics:
                if other_nic.plane == nic.plane:
                    routes.append(HostRoute(str(other_nic.prefix), nic.gateway, nic.interface.name))
    return tuple(routes)
