"""Mininet node classes of the lab: ``KernelSwitch`` (an IPv6 SRv6 router made of a network
namespace and the Linux kernel) and ``LabHost`` (an IPv6-only host with the plan's addresses
and routes), plus the registry of switch kinds.

Both are plain Mininet nodes, so ``mn --custom mininet/srv6lab.py`` can use them too. Neither
needs Open vSwitch. Interfaces (names, MACs, link-local addresses, bandwidth) belong to
:mod:`lab.links`; which node gets which parameters comes from :mod:`lab.topo`.
"""

from __future__ import annotations

import ipaddress
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mininet.node import Host, Switch

from lab.errors import LabError
from lab.shell import run_commands

# Set before any interface exists, so every port inherits them from "default": no duplicate
# address detection (it stalls the first seconds of traffic), no kernel-made link-local
# (the plan gives each port its own), addresses kept when a port goes down.
_IPV6_COMMON = {
    "net.ipv6.conf.all.accept_dad": 0,
    "net.ipv6.conf.default.accept_dad": 0,
    "net.ipv6.conf.all.dad_transmits": 0,
    "net.ipv6.conf.default.dad_transmits": 0,
    "net.ipv6.conf.default.addr_gen_mode": 1,
    "net.ipv6.conf.all.keep_addr_on_down": 1,
    "net.ipv6.conf.default.keep_addr_on_down": 1,
}

MULTIPATH_HASH_FIELDS = 0x0DF7
"""What a switch's ECMP hashes (``fib_multipath_hash_policy`` 3, custom fields): source
and destination address, next header, source and destination port, and the same of an
encapsulated packet's inner header (0x0001 | 0x0002 | 0x0004 | 0x0010 | 0x0020 | 0x0040 |
0x0080 | 0x0100 | 0x0400 | 0x0800; no flow labels). Not policy 1 (L4): for a packet whose
sender already hashed it (TCP and UDP sockets do, ``skb->hash``), policy 1 reuses that
hash, and a veth carries it from namespace to namespace, so every switch of the lab made
the same choice with it: on fat-tree-4 edge1 sent half of its flows to agg1, and agg1 sent
every one of those to core1 (the half of the hash range edge1 had picked, again), agg2
every one of its half to core4; core2 and core3 carried nothing in an ECMP all-to-all
(measured with the switches' counters). A real switch hashes the headers itself, with its
own seed."""

ROUTER_SYSCTLS: Mapping[str, int] = {
    **_IPV6_COMMON,
    "net.ipv6.conf.all.forwarding": 1,
    "net.ipv6.conf.default.forwarding": 1,
    "net.ipv6.conf.all.seg6_enabled": 1,
    "net.ipv6.conf.default.seg6_enabled": 1,
    # ECMP hashes the 5-tuple (and an SRv6-encapsulated packet's inner 5-tuple), with a
    # seed of the switch's own (switch_hash_seed): see MULTIPATH_HASH_FIELDS
    "net.ipv6.fib_multipath_hash_policy": 3,
    "net.ipv6.fib_multipath_hash_fields": MULTIPATH_HASH_FIELDS,
}


SEED_SYSCTL = "net/ipv4/fib_multipath_hash_seed"


def switch_hash_seed(name: str) -> int:
    """The switch's ECMP hash seed (``net.ipv4.fib_multipath_hash_seed``, which IPv6 uses
    too): derived from its name, so that two switches hash the same flow differently (as
    fabric switches do, against polarization) and a lab's choices are the same from run to
    run. Never 0 (0 is the kernel's one boot-time seed, shared by every namespace)."""
    return zlib.crc32(name.encode()) % 0xFFFFFFFF + 1


HOST_SYSCTLS: Mapping[str, int] = {
    **_IPV6_COMMON,
    "net.ipv6.conf.all.forwarding": 0,
}


def sysctl_command(settings: Mapping[str, int | str]) -> str:
    """One ``sysctl`` call for many settings. Keys may use ``/`` so that interface names
    with dots stay intact (``net/ipv6/conf/s1-eth1/seg6_enabled``)."""
    return "sysctl -q -w " + " ".join(f"{key}={value}" for key, value in settings.items())


def host_nic_commands(ifname: str) -> list[str]:
    """Make a host NIC hand its qdisc one MTU-sized frame per packet, as a real NIC's
    queue holds frames.

    - ``tso off gso off``: with TSO/GSO on a veth, TCP's 64 KB super-packets crossed
      every emulated switch whole (105 ms of store-and-forward per hop at 5 Mbit/s), and
      the links' 100-packet queues held megabytes (0.6 s round trips, 2 s retransmission
      timeouts measured in a collective).
    - ``gso_max_segs 1``: ``gso off`` no longer stops TCP from building GSO packets
      (this kernel gives every TCP socket software GSO, segmented after the qdisc), and
      TCP sizes them up to the device's 64 KB when the minimum RTT is small
      (``net.ipv4.tcp_tso_rtt_log``: a handshake's 0.1 ms on an idle lab). At 9000 bytes
      that was 7 segments (62 KB) per packet: the host's htb held 300-600 KB in 12-14
      "packets" (160 ms at 30 Mbit/s), each connection's acks came 7 segments at a time
      after 140-220 ms, and a NIC's connections shared it by their super-packets' sizes,
      not evenly: the 56 transfers of a fat-tree-4 all-to-all finished between 0.91x and
      1.16x of the ideal. One segment per packet: 9 KB per packet in the htb, 46-50 ms
      round trips, transfers finished within 0.99x-1.06x, pinned all-to-all 1.15 -> 1.05
      (README, Collectives). The switches are untouched: they forward what they receive.
    """
    return [
        f"ethtool -K {ifname} tso off gso off >/dev/null",
        f"ip link set dev {ifname} gso_max_segs 1",
    ]


@dataclass(frozen=True, slots=True)
class HostRoute:
    """An IPv6 route of a host: ``destination`` ("default" or a prefix) via a link-local
    gateway out of one of the host's NICs."""

    destination: str
    gateway: ipaddress.IPv6Address
    dev: str

    def command(self) -> str:
        return f"ip -6 route replace {self.destination} via {self.gateway} dev {self.dev}"


class KernelSwitch(Switch):  # type: ignore[misc]
    """A switch of kind ``kernel``: its own network namespace configured as an IPv6 SRv6
    router (forwarding, seg6 on every port, no DAD, L4 multipath hashing). IPv4 is not used.

    Until a controller programs it, it forwards nothing beyond its links' link-local
    addresses. It never runs Open vSwitch and is always in a namespace, whatever Mininet's
    ``inNamespace`` default for switches is.
    """

    kind = "kernel"

    def __init__(self, name: str, node_id: int | None = None, **params: Any) -> None:
        params["inNamespace"] = True
        if not params.get("dpid") and node_id is not None:
            params["dpid"] = f"{node_id:x}"
        self.node_id = node_id
        self.controlIntf = None  # Mininet's Switch only sets it outside a namespace
        super().__init__(name, **params)
        run_commands(
            self,
            [
                sysctl_command(ROUTER_SYSCTLS),
                # per-namespace seeds since Linux 6.11; before, every switch shares one
                f"if [ -e /proc/sys/{SEED_SYSCTL} ]; then "
                f"sysctl -q -w {SEED_SYSCTL.replace('/', '.')}={switch_hash_seed(name)}; fi",
                "ip link set dev lo up",
            ],
            f"configuring switch {name} as an SRv6 router",
        )

    def start(self, controllers: Sequence[Any]) -> None:
        """Enable SRv6 on every port and make sure every port is up. ``controllers`` are
        OpenFlow controllers, which a kernel switch does not use."""
        ports = [intf.name for intf in self.intfList() if intf.name != "lo"]
        if not ports:
            return
        settings = {f"net/ipv6/conf/{port}/seg6_enabled": 1 for port in ports}
        settings.update({f"net/ipv6/conf/{port}/forwarding": 1 for port in ports})
        commands = [sysctl_command(settings)]
        commands += [f"ip link set dev {port} up" for port in ports]
        run_commands(self, commands, f"starting switch {self.name}")

    def stop(self, deleteIntfs: bool = True) -> None:
        """Nothing runs in a kernel switch but its shell; remove its ports if asked."""
        super().stop(deleteIntfs)


class LabHost(Host):  # type: ignore[misc]
    """An IPv6-only host: the plan's address on each NIC, a default route via the switch
    port of its first NIC, and per-plane routes for hosts with NICs in several planes.

    Mininet hands every host an IPv4 ``ip`` (10.0.0.x) and sometimes a ``mac``; both are
    ignored: the lab is IPv6 only and each interface already has the plan's MAC.
    """

    def __init__(self, name: str, **params: Any) -> None:
        super().__init__(name, **params)
        run_commands(
            self,
            [sysctl_command(HOST_SYSCTLS), "ip link set dev lo up"],
            f"configuring host {name}",
        )

    def config(
        self,
        addresses: Mapping[str, Sequence[str]] | None = None,
        routes: Sequence[HostRoute] = (),
        **_params: Any,
    ) -> dict[str, Any]:
        """addresses: interface name -> IPv6 addresses with prefix length
        routes: the host's routes, added after the addresses"""
        addresses = addresses or {}
        commands = [
            f"ip -6 addr replace {address} dev {ifname} nodad"
            for ifname, values in addresses.items()
            for address in values
        ]
        commands += [c for ifname in addresses for c in host_nic_commands(ifname)]
        commands += [route.command() for route in routes]
        if commands:
            run_commands(self, commands, f"configuring addresses and routes of host {self.name}")
        for ifname, values in addresses.items():
            intf = self.nameToIntf.get(ifname)
            if intf is None:
                raise LabError(f"host {self.name} has no interface {ifname} to address")
            if values:
                # So that Mininet's CLI turns a host name into its address: h1 ping -6 h2.
                intf.ip, intf.prefixLen = values[0].split("/")
        return {"addresses": dict(addresses), "routes": list(routes)}


BMV2_PREFIX_VARIABLE = "SRV6LAB_BMV2_PREFIX"
BMV2_LOG_LEVEL_VARIABLE = "SRV6LAB_BMV2_LOG_LEVEL"
BMV2_LOG_LEVELS = ("trace", "debug", "info", "warn", "error", "off")
BMV2_DEFAULT_LOG_LEVEL = "warn"
BMV2_BINARY = "simple_switch_grpc"


def bmv2_binary() -> str:
    """simple_switch_grpc from ``$SRV6LAB_BMV2_PREFIX/bin`` or PATH; a LabError that says
    so at once when it is missing (BMv2 is in no registry: see p4/README.md)."""
    import os
    import shutil

    prefix = os.environ.get(BMV2_PREFIX_VARIABLE)
    if prefix:
        found = shutil.which(BMV2_BINARY, path=os.path.join(prefix, "bin"))
        where = f"{prefix}/bin (${BMV2_PREFIX_VARIABLE})"
    else:
        found = shutil.which(BMV2_BINARY)
        where = "PATH"
    if found is None:
        raise LabError(
            f"switch kind bmv2 needs {BMV2_BINARY}, which is not on {where}; BMv2 is built "
            f"from p4lang/behavioral-model outside the repository (see p4/README.md), or use "
            f"--switch kernel"
        )
    return found


def bmv2_log_level() -> str:
    """BMv2's log level in a lab: ``$SRV6LAB_BMV2_LOG_LEVEL`` or ``warn``. Not BMv2's own
    default (``trace``): tracing every packet through every table, flushed line by line,
    costs BMv2 most of its packet rate (a fat-tree-4 lab then drops most of 2,000 pkt/s and
    measures its own logging, not convergence). ``trace`` or ``debug`` to follow packets."""
    import os

    level = os.environ.get(BMV2_LOG_LEVEL_VARIABLE, BMV2_DEFAULT_LOG_LEVEL).strip().lower()
    if level not in BMV2_LOG_LEVELS:
        raise LabError(
            f"${BMV2_LOG_LEVEL_VARIABLE}={level!r}: BMv2's log level is one of "
            f"{', '.join(BMV2_LOG_LEVELS)}"
        )
    return level


class Bmv2Switch(Switch):  # type: ignore[misc]
    """A switch of kind ``bmv2``: a namespace whose ports BMv2 ``simple_switch_grpc``
    drives (started by the lab, see lab/switchd_nodes.py). The namespace's kernel does not
    forward (forwarding off); it only answers neighbour discovery for the ports' addresses,
    which the P4 program does not."""

    kind = "bmv2"

    def __init__(self, name: str, node_id: int | None = None, **params: Any) -> None:
        params["inNamespace"] = True
        if not params.get("dpid") and node_id is not None:
            params["dpid"] = f"{node_id:x}"
        self.node_id = node_id
        self.controlIntf = None
        super().__init__(name, **params)
        settings = {**_IPV6_COMMON, "net.ipv6.conf.all.forwarding": 0}
        run_commands(
            self,
            [sysctl_command(settings), "ip link set dev lo up"],
            f"configuring BMv2 switch {name}",
        )

    def start(self, controllers: Sequence[Any]) -> None:
        """Put a patch between every lab port and BMv2 (see
        lab.switchd_nodes.Bmv2PortPatch): BMv2's veth takes the port's plan MAC and
        link-local (the namespace's kernel answers neighbour discovery there, BMv2 sees the
        same frames), the lab port gets a MAC of its own (a bridge delivers frames for its
        ports' MACs locally instead of forwarding them) and joins a bridge with BMv2's peer
        veth."""
        commands = []
        for intf in self.intfList():
            if intf.name == "lo":
                continue
            commands += bmv2_patch_commands(
                intf.name, self.ports[intf], intf.mac, getattr(intf, "link_local", None)
            )
        if commands:
            run_commands(self, commands, f"starting {self.name}")

    def stop(self, deleteIntfs: bool = True) -> None:
        super().stop(deleteIntfs)


def bmv2_patch_commands(port: str, number: int, mac: str, link_local: str | None) -> list[str]:
    """The ip commands that patch lab port ``port`` (BMv2 port ``number``) to BMv2."""
    from lab.switchd_nodes import bmv2_port_patch

    patch = bmv2_port_patch(number)
    octets = mac.split(":")
    # The same plan MAC with another locally administered first octet (02 -> 06).
    own_mac = ":".join([f"{int(octets[0], 16) ^ 0x04:02x}", *octets[1:]])
    commands = [
        f"ip link add {patch.bridge} type bridge stp_state 0 forward_delay 0 mcast_snooping 0",
        f"ip link add {patch.bmv2} address {mac} type veth peer name {patch.peer}",
        f"ip link set dev {patch.bmv2} addrgenmode none",
        f"ip link set dev {patch.peer} addrgenmode none",
        f"ip link set dev {patch.bridge} addrgenmode none",
        f"ip link set dev {port} address {own_mac}",
        f"ip link set dev {port} master {patch.bridge}",
        f"ip link set dev {patch.peer} master {patch.bridge}",
    ]
    if link_local:
        commands.append(f"ip -6 addr replace {link_local}/64 dev {patch.bmv2} nodad")
    commands += [
        f"ip link set dev {name} up" for name in (patch.bridge, patch.peer, patch.bmv2, port)
    ]
    return commands


SWITCH_KINDS: dict[str, type[Any]] = {"kernel": KernelSwitch, "bmv2": Bmv2Switch}
"""Switch kind -> Mininet node class."""


def switch_class(kind: str) -> type[Any]:
    """The node class of a switch kind; for bmv2 also checks that BMv2 is installed and
    its log level is one it knows."""
    try:
        cls = SWITCH_KINDS[kind]
    except KeyError:
        known = ", ".join(sorted(SWITCH_KINDS))
        raise LabError(f"unknown switch kind {kind!r}; known kinds: {known}") from None
    if kind == "bmv2":
        bmv2_binary()
        bmv2_log_level()
    return cls
