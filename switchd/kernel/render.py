"""Records of srv6.p4 to kernel objects, written as ``ip -6 -batch`` lines.

Pure. Each record becomes at most one kernel object; an object is absent when something it
needs is absent (a next hop on a port that is down, a member whose next hop is gone, a group
with no present member), which is exactly P4's behaviour for a dangling reference or a dead
watch port: the packet is dropped, or the group uses its remaining members.

The mapping (see p4/README.md), in iproute2 terms:

| record | kernel object |
|---|---|
| next_hop n | permanent neighbour ``fe80::5d:<n>`` (dst MAC); ``nexthop id n via`` it |
| ecmp member m -> n | ``nexthop id 0x10000000+m`` (a copy of next hop n) |
| ecmp group g | ``nexthop id 0x20000000+g group m1,w1/m2,w2`` |
| headend member m | ``nexthop id 0x30000000+m encap seg6 mode encap[.red] segs ... dev srv6sid0`` |
| headend group g | ``nexthop id 0x40000000+g group ...`` (weighted segment lists) |
| routing_v6 prefix | ``route <prefix> nhid ... table main`` |
| srv6_headend prefix | ``route <prefix> nhid ... table 201`` |
| my_sid prefix | ``route <prefix> encap seg6local action ... count dev srv6sid0 table 200`` |

``srv6sid0`` is explained at SID_DEV. Rules ``pref 1000 lookup 200`` and ``pref 1001 lookup
201`` put my_sid before the headend before routing, as the P4 program applies its tables;
a miss falls through to the next table.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass
from typing import Any, NamedTuple

from switchd.kernel.state import (
    EcmpMember,
    Group,
    HostPort,
    MySid,
    NextHop,
    Prefix,
    Record,
    Route,
    SegmentList,
    SidBlock,
)

MEMBER_BASE = 0x1000_0000
ECMP_GROUP_BASE = 0x2000_0000
HEADEND_MEMBER_BASE = 0x3000_0000
HEADEND_GROUP_BASE = 0x4000_0000
TABLE_MY_SID = 200
TABLE_HEADEND = 201
TABLE_MAIN = 254
RULES = ((1000, TABLE_MY_SID), (1001, TABLE_HEADEND))
SID_DEV = "srv6sid0"
"""The device SID routes and encap nexthops hang off: one end of a veth pair that switchd
creates. Not lo: the kernel turns a forwarding route on lo into a reject route, so a
seg6local route on lo never sees transit packets. Not a real port: its routes would go
when the port goes down. (No dummy device: that kernel module is not loadable here.)"""
SID_DEV_PEER = "srv6sid1"
SID_DEV_MTU = 9216
"""The MTU of :data:`SID_DEV`. A packet routed to an encap nexthop on it must pass the
forwarding MTU check against this MTU less the encapsulation (40 bytes, plus an SRH): at
9216 (a fabric switch's usual jumbo MTU, as the lab's fabric links) a 9000-byte host
packet still fits with an SRH of up to 10 SIDs."""
USID_FLAVOR = "flavors next-csid lblen 32 nflen 16"  # F3216: 32-bit block, 16-bit uSIDs

RKey = tuple[Any, ...]
KKey = tuple[Any, ...]


class KObj(NamedTuple):
    """One kernel object: the batch lines that create or replace it, and that delete it.
    (A NamedTuple: one is made for every entry written, and it is cheaper to make than a
    frozen dataclass.)"""

    key: KKey
    level: int  # creation order: lower first; deletion in reverse
    add: tuple[str, ...]
    delete: tuple[str, ...]
    nft: bool = False  # an nftables set element rather than an ip(8) object
    family6: bool = True  # run with ip -6 (nexthop groups must not: family unspec)


@dataclass(frozen=True, slots=True)
class Ports:
    """What the renderer knows of the switch's ports."""

    names: dict[int, str]
    up: frozenset[int]


def synthetic_neighbour(nexthop_id: int) -> ipaddress.IPv6Address:
    """The link-local address switchd gives next hop n, so n can be read back from it."""
    return ipaddress.IPv6Address(f"fe80::5d:{nexthop_id >> 16:x}:{nexthop_id & 0xFFFF:x}")


def nexthop_of_neighbour(address: str) -> int | None:
    parts = ipaddress.IPv6Address(address).exploded.split(":")
    if parts[:5] != ["fe80", "0000", "0000", "0000", "0000"] or parts[5] != "005d":
        return None
    return (int(parts[6], 16) << 16) | int(parts[7], 16)


_ROUTE_TABLE = {"routing_v6": TABLE_MAIN, "srv6_headend": TABLE_HEADEND, "my_sid": TABLE_MY_SID}
_ID_BASE = {
    ("member", "ecmp_selector"): MEMBER_BASE,
    ("member", "headend_selector"): HEADEND_MEMBER_BASE,
    ("group", "ecmp_selector"): ECMP_GROUP_BASE,
    ("group", "headend_selector"): HEADEND_GROUP_BASE,
}


def kernel_key(rkey: RKey) -> KKey:
    # An if chain, most frequent first: this runs for every change written.
    kind = rkey[0]
    if kind == "route" and len(rkey) == 3 and rkey[1] in _ROUTE_TABLE:
        return ("route", _ROUTE_TABLE[rkey[1]], rkey[2])
    if kind in ("member", "group") and len(rkey) == 3 and (kind, rkey[1]) in _ID_BASE:
        return ("nh", _ID_BASE[(kind, rkey[1])] + rkey[2])
    if len(rkey) == 2:
        if kind == "next_hop":
            return ("nh", rkey[1])
        if kind == "host_port":
            return ("nft-port", rkey[1])
        if kind == "sid_block":
            return ("nft-sid", rkey[1])
    raise KeyError(rkey)


_PREFIX_LENGTH = tuple(f"/{n}" for n in range(129))


def route_prefix(prefix: Prefix) -> str:
    """A prefix as a route line gives it to ip(8): every group written out in full
    (``2001:0db8:0001:0000:0000:0000:0000:0000/64``), one call where inet_ntop's compressed
    form costs three times as much; ``ip -6 route`` shows the kernel's own form anyway."""
    return prefix.value.to_bytes(16, "big").hex(":", 2) + _PREFIX_LENGTH[prefix.length]


@functools.lru_cache(maxsize=4096)
def _route_target(target: int, table: int, proto: int) -> str:
    """The end of a route line, the same for every route through one nexthop object."""
    return f" nhid {target} table {table} proto {proto}"


@functools.lru_cache(maxsize=16)
def _route_table(table: int, proto: int) -> str:
    return f" table {table} proto {proto}"


def route_dependency(route: Route) -> RKey:
    """The member or group a route's kernel object needs."""
    profile = "ecmp_selector" if route.table == "routing_v6" else "headend_selector"
    if route.member_id is not None:
        return ("member", profile, route.member_id)
    return ("group", profile, route.group_id)


def dependencies(record: Record) -> tuple[RKey, ...]:
    """The records this one's kernel object needs."""
    match record:
        case Route():
            return (route_dependency(record),)
        case EcmpMember():
            return (("next_hop", record.nexthop_id),)
        case Group():
            return tuple(("member", record.profile, m.member_id) for m in record.members)
        case MySid() if record.nexthop_id is not None:
            return (("next_hop", record.nexthop_id),)
    return ()


def render(
    record: Record, objects: dict[KKey, KObj], records: dict[RKey, Record], ports: Ports, proto: int
) -> KObj | None:
    """The kernel object of a record, given the objects already rendered for its
    dependencies; None when it cannot exist now."""
    match record:
        case Route():  # first: by far the most frequent
            if record.table == "routing_v6":
                table, base, ident = TABLE_MAIN, ECMP_GROUP_BASE, record.group_id
                if record.member_id is not None:
                    base, ident = MEMBER_BASE, record.member_id
            else:
                table, base, ident = TABLE_HEADEND, HEADEND_GROUP_BASE, record.group_id
                if record.member_id is not None:
                    base, ident = HEADEND_MEMBER_BASE, record.member_id
            target = base + (ident or 0)
            if ("nh", target) not in objects:
                return None
            prefix = route_prefix(record.prefix)
            return KObj(
                ("route", table, record.prefix),
                3,
                ("route replace " + prefix + _route_target(target, table, proto),),
                ("route del " + prefix + _route_table(table, proto),),
            )
        case NextHop():
            if record.port not in ports.up or record.port not in ports.names:
                return None
            dev = ports.names[record.port]
            nb = synthetic_neighbour(record.nexthop_id)
            mac = ":".join(f"{b:02x}" for b in record.dst_mac)
            n = record.nexthop_id
            return KObj(
                ("nh", n),
                0,
                (
                    f"neigh replace {nb} lladdr {mac} dev {dev} nud permanent",
                    f"nexthop replace id {n} via {nb} dev {dev} proto {proto}",
                ),
                (f"nexthop del id {n}", f"neigh del {nb} dev {dev}"),
            )
        case EcmpMember():
            nh = records.get(("next_hop", record.nexthop_id))
            if not isinstance(nh, NextHop) or ("nh", nh.nexthop_id) not in objects:
                return None
            kid = MEMBER_BASE + record.member_id
            dev = ports.names[nh.port]
            nb = synthetic_neighbour(nh.nexthop_id)
            return KObj(
                ("nh", kid),
                1,
                (f"nexthop replace id {kid} via {nb} dev {dev} proto {proto}",),
                (f"nexthop del id {kid}",),
            )
        case SegmentList():
            kid = HEADEND_MEMBER_BASE + record.member_id
            mode = "encap.red" if record.reduced else "encap"
            segs = ",".join(str(s) for s in record.segments)
            return KObj(
                ("nh", kid),
                0,
                (
                    f"nexthop replace id {kid} encap seg6 mode {mode} segs {segs} dev {SID_DEV} "
                    f"proto {proto}",
                ),
                (f"nexthop del id {kid}",),
            )
        case Group():
            base = ECMP_GROUP_BASE if record.profile == "ecmp_selector" else HEADEND_GROUP_BASE
            member_base = MEMBER_BASE if record.profile == "ecmp_selector" else HEADEND_MEMBER_BASE
            weights: dict[int, int] = {}
            for m in record.members:
                kid = member_base + m.member_id
                if ("nh", kid) in objects:
                    weights[kid] = weights.get(kid, 0) + m.weight
            if not weights:
                return None
            kid = base + record.group_id
            spec = "/".join(f"{k},{w}" if w != 1 else str(k) for k, w in sorted(weights.items()))
            return KObj(
                ("nh", kid),
                2,
                (f"nexthop replace id {kid} group {spec} proto {proto}",),
                (f"nexthop del id {kid}",),
                family6=False,
            )
        case MySid():
            action = _seg6local(record, objects, records, ports)
            if action is None:
                return None
            return KObj(
                ("route", TABLE_MY_SID, record.prefix),
                3,
                (
                    f"route replace {record.prefix} encap seg6local {action} count dev {SID_DEV} "
                    f"table {TABLE_MY_SID} proto {proto}",
                ),
                (f"route del {record.prefix} table {TABLE_MY_SID} proto {proto}",),
            )
        case HostPort():
            port_name = ports.names.get(record.port)
            if port_name is None:
                return None
            return KObj(
                ("nft-port", record.port),
                0,
                (f'add element inet srv6lab host_ports {{ "{port_name}" }}',),
                (f'delete element inet srv6lab host_ports {{ "{port_name}" }}',),
                nft=True,
            )
        case SidBlock():
            return KObj(
                ("nft-sid", record.prefix),
                0,
                (f"add element inet srv6lab internal_sids {{ {record.prefix} }}",),
                (f"delete element inet srv6lab internal_sids {{ {record.prefix} }}",),
                nft=True,
            )
    raise TypeError(record)


def _seg6local(
    record: MySid, objects: dict[KKey, KObj], records: dict[RKey, Record], ports: Ports
) -> str | None:
    if record.behaviour == "end":
        return "action End"
    if record.behaviour == "usid_un":
        return f"action End {USID_FLAVOR}"
    if record.behaviour == "end_dt6":
        return f"action End.DT6 table {TABLE_MAIN}"
    nh = records.get(("next_hop", record.nexthop_id))
    if not isinstance(nh, NextHop) or ("nh", nh.nexthop_id) not in objects:
        return None
    nb = synthetic_neighbour(nh.nexthop_id)
    dev = ports.names[nh.port]
    flavor = f" {USID_FLAVOR}" if record.behaviour == "usid_ua" else ""
    return f"action End.X nh6 {nb} oif {dev}{flavor}"


NFT_SETUP = """\
table inet srv6lab {
  set host_ports { type ifname; }
  set internal_sids { type ipv6_addr; flags interval; }
  chain sr_domain_edge {
    type filter hook prerouting priority raw; policy accept;
    iifname @host_ports ip6 daddr @internal_sids rt type 4 counter drop
  }
}
"""
"""RFC 8754 section 5.1: a packet from outside the SR domain (a host port) that carries an
SRH (routing header type 4) toward an internal SID is dropped."""
