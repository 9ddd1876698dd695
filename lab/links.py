"""Lab links: veth pairs with the plan's interface names, MACs, link-local addresses and
interface indexes, and their bandwidth capped by tc (htb, or tbf on request).

Three things differ from Mininet's ``TCLink``:

- No netem. This kernel has no netem qdisc, so delay, jitter, loss and queue limits are
  refused with an error instead of being passed to a ``tc`` command that fails (Mininet
  would only log it). Only bandwidth is emulated: htb, or Mininet's tbf on request.
- A strict-priority lane for control traffic, as a fabric switch has: htb's tree is
  ``5:0`` (default class 1) over ``5:10`` at the link rate, with the data class ``5:1``
  (prio 1) and the control class ``5:2`` (prio 0) under it. Packets marked DSCP CS6 (the
  controller's path probes and link echoes, :mod:`controller.probing`) are put in ``5:2``
  by an nftables egress chain on the port (``meta priority set 5:2``: htb classifies a
  packet whose ``skb->priority`` is a leaf's id straight into that leaf; this kernel has
  no u32 or matchall filters). They never wait behind the data queue, so a lost probe
  means a lost link, not a full queue.
- Each end of a veth pair gets its own interface index. When the two ends of a pair share an
  index, the kernel treats their carrier changes as non-urgent and batches them for up to a
  second (DESIGN.md, "Lab host facts"); with distinct indexes a link is usable as soon as
  both ends are up, and a failure of the far end is announced at once.
"""

from __future__ import annotations

from typing import Any

from mininet.link import Link, TCIntf

from lab.errors import LabError
from lab.shell import run_commands

NETEM_PARAMS = ("delay", "jitter", "loss", "max_queue_size")
MAX_BANDWIDTH_MBPS = 100_000.0
QUEUE_PACKETS = 100
CONTROL_CLASS = "5:2"
"""htb leaf of DSCP CS6 packets (strict priority over the data class 5:1)."""
CONTROL_DSCP = "cs6"
CONTROL_SHARE = 0.05
"""The control class's assured rate, of the link's (it may borrow up to the link rate)."""
PRIO_TABLE = "srv6lab_prio"


class LabIntf(TCIntf):  # type: ignore[misc]
    """One end of a lab link: the plan's MAC and link-local address, IPv6 only, no SLAAC
    (``addrgenmode none``: the kernel adds no link-local of its own), bandwidth by tc."""

    bwParamMax = MAX_BANDWIDTH_MBPS

    def config(  # noqa: PLR0917 - Mininet calls it with keywords
        self,
        mac: str | None = None,
        link_local: str | None = None,
        bw: float | None = None,
        use_tbf: bool = False,
        up: bool = True,
        mtu: int | None = None,
        **params: Any,
    ) -> dict[str, Any]:
        """Configure this interface in one round trip to its node's shell.

        mac: MAC address (a lab link already creates the veth with it)
        link_local: the plan's fe80:: address, added with ``nodad`` as the only one
        bw: bandwidth cap in Mbit/s (htb, Mininet's default; tbf with ``use_tbf``)
        up: bring the interface up (after addrgenmode, address and qdisc are set)
        mtu: the link's MTU (fabric links carry SRv6-encapsulated host packets: jumbo)
        """
        netem = sorted(key for key in NETEM_PARAMS if params.get(key) is not None)
        if netem:
            raise LabError(
                f"link end {self.node.name}:{self.name}: {', '.join(netem)} would need the "
                "netem qdisc, which this kernel does not have; only bandwidth (bw) is emulated"
            )
        commands = [f"ip link set dev {self.name} addrgenmode none"]
        if mac is not None:
            commands.append(f"ip link set dev {self.name} address {mac}")
            self.mac = mac
        if mtu is not None:
            commands.append(f"ip link set dev {self.name} mtu {mtu}")
        # shallow buffers, as a fabric switch has: htb's leaf queue takes its limit from
        # txqueuelen (1,000 packets would be 120 ms of queue at 100 Mbit/s, and every probe
        # and loss window would measure bufferbloat)
        commands.append(f"ip link set dev {self.name} txqueuelen {QUEUE_PACKETS}")
        if link_local is not None:
            commands.append(f"ip -6 addr replace {link_local}/64 dev {self.name} nodad")
        if bw is not None:
            if not 0 < bw <= self.bwParamMax:
                raise LabError(
                    f"link end {self.node.name}:{self.name}: bandwidth {bw} Mbit/s is outside "
                    f"0..{self.bwParamMax:g}"
                )
            if use_tbf:
                tc_commands, _parent = self.bwCmds(bw=bw, use_tbf=True)
                commands += [command % ("tc", self.name) for command in tc_commands]
            else:
                commands += priority_commands(self.name, bw)
        if up:
            commands.append(f"ip link set dev {self.name} up")
        run_commands(self.node, commands, f"configuring {self.node.name}:{self.name}")
        self.link_local = link_local
        self.bw = bw
        return {"mac": mac, "link_local": link_local, "bw": bw, "up": up}


class LabLink(Link):  # type: ignore[misc]
    """A veth pair between two nodes, created in one step with both ends already in their
    namespaces, with the plan's names and MACs and (when given) interface indexes."""

    def __init__(
        self,
        node1: Any,
        node2: Any,
        ifindex1: int | None = None,
        ifindex2: int | None = None,
        link_name: str | None = None,
        **params: Any,
    ) -> None:
        self.ifindexes = (ifindex1, ifindex2)
        self.link_name = link_name
        params.setdefault("cls1", LabIntf)
        params.setdefault("cls2", LabIntf)
        super().__init__(node1, node2, **params)

    def makeIntfPair(  # noqa: PLR0917 (Mininet's signature)
        self,
        intfname1: str,
        intfname2: str,
        addr1: str | None = None,
        addr2: str | None = None,
        node1: Any = None,
        node2: Any = None,
        deleteIntfs: bool = True,
    ) -> None:
        if node1 is None or node2 is None:
            # Not in namespaces (Link(fast=False)): Mininet's root-namespace way.
            Link.makeIntfPair(intfname1, intfname2, addr1, addr2, node1, node2, deleteIntfs)
            return
        end1 = _veth_end(intfname1, addr1, self.ifindexes[0])
        end2 = _veth_end(intfname2, addr2, self.ifindexes[1])
        run_commands(
            node1,
            [f"ip link add {end1} type veth peer {end2} netns {node2.pid}"],
            f"creating link {node1.name}:{intfname1} -- {node2.name}:{intfname2}",
        )


def priority_commands(ifname: str, bw: float) -> list[str]:
    """htb with a strict-priority control class and the nftables egress chain that puts
    DSCP CS6 packets in it (see the module's docstring)."""
    control = max(bw * CONTROL_SHARE, 0.1)
    chain = "egress_" + ifname.replace("-", "_").replace(".", "_")
    rule = f"ip6 dscp {CONTROL_DSCP} meta priority set {CONTROL_CLASS}"
    return [
        f"tc qdisc add dev {ifname} root handle 5:0 htb default 1",
        f"tc class add dev {ifname} parent 5:0 classid 5:10 htb rate {bw:f}Mbit burst 15k",
        f"tc class add dev {ifname} parent 5:10 classid 5:1 htb rate {bw - control:f}Mbit "
        f"ceil {bw:f}Mbit burst 15k prio 1",
        f"tc class add dev {ifname} parent 5:10 classid {CONTROL_CLASS} htb rate "
        f"{control:f}Mbit ceil {bw:f}Mbit burst 15k prio 0",
        f"nft 'add table netdev {PRIO_TABLE}; add chain netdev {PRIO_TABLE} {chain} "
        f'{{ type filter hook egress device "{ifname}" priority 0; policy accept; }}; '
        f"add rule netdev {PRIO_TABLE} {chain} {rule}'",
    ]


def _veth_end(name: str, mac: str | None, ifindex: int | None) -> str:
    words = ["name", name]
    if ifindex is not None:
        words += ["index", str(ifindex)]
    if mac is not None:
        words += ["address", mac]
    return " ".join(words)
