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
from lab.errors import LabError
from lab.links import LabLink
from lab.nodes import HostRoute, LabHost, switch_class

FIRST_IFINDEX = 100
"""Lab interfaces get indexes from here on, two per link, unique in the whole lab."""


FABRIC_MTU = 9216
"""Switch-to-switch links are jumbo (9216, a fabric switch's usual maximum), above the
host links: a host's full-size packet still fits once a headend adds its SRv6
encapsulation (40 bytes, plus an SRH), as in production SRv6 fabrics; otherwise TCP over a
steered path black-holes. switchd's SID device has the same MTU
(``switchd.kernel.render.SID_DEV_MTU``: the encap nexthops' MTU check)."""
HOST_MTU = 1500
"""Host links' MTU unless a lab asks for more (``bench collectives --mtu``: jumbo frames,
as AI fabrics run)."""
MIN_HOST_MTU = 1280
"""IPv6's minimum link MTU (RFC 8200)."""
ENCAP_ROOM = 40 + 8 + 6 * 16
"""What a headend may add to a host's packet: the outer IPv6 header and an SRH of up to
6 SIDs (DESIGN.md's longest segment list)."""
MAX_HOST_MTU = FABRIC_MTU - ENCAP_ROOM
"""The largest host MTU whose packets the fabric still carries encapsulated (9072)."""


def check_host_mtu(mtu: int) -> None:
    """A LabError naming the range unless ``mtu`` is one the lab's fabric carries."""
    valid = isinstance(mtu, int) and not isinstance(mtu, bool)
    if not valid or not MIN_HOST_MTU <= mtu <= MAX_HOST_MTU:
        raise LabError(
            f"host MTU {mtu!r}: must be from {MIN_HOST_MTU} (IPv6's minimum) to "
            f"{MAX_HOST_MTU} (the {FABRIC_MTU}-byte fabric links less {ENCAP_ROOM} bytes of "
            "SRv6 encapsulation a headend may add)"
        )


class LabTopo(Topo):  # type: ignore[misc]
    """``LabTopo(topology_or_file, switch=None, host_mtu=HOST_MTU)``.

    With ``switch`` (a switch kind such as ``kernel``) every switch gets that node class;
    without it Mininet's ``switch`` default applies (``mn --switch kernel``). ``host_mtu``:
    the MTU of both ends of every host link (fabric links: :data:`FABRIC_MTU`).
    """

    def build(
        self,
        topology: Topology | str | Path,
        switch: str | None = None,
        host_mtu: int = HOST_MTU,
    ) -> None:
        topo = topology if isinstance(topology, Topology) else load(topology)
        check_host_mtu(host_mtu)
        self.topology = topo
        self.host_mtu = host_mtu
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
                params1=_params(link.a.link_local, link, host_mtu),
                params2=_params(link.b.link_local, link, host_mtu),
                bw=link.bandwidth_mbps,
                link_name=link.name,
            )


def _params(link_local: Any, link: Any, host_mtu: int = HOST_MTU) -> dict[str, Any]:
    params: dict[str, Any] = {"link_local": str(link_local)}
    if link.kind == "fabric":
        params["mtu"] = FABRIC_MTU
    elif host_mtu != HOST_MTU:
        params["mtu"] = host_mtu  # both ends of a host link: the switch port too
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
