"""p4/build/srv6.json on BMv2 ``simple_switch``: the pipeline contract (p4/README.md), packet
by packet.

One switch with three ports plays node 1 of the uSID block ``fcbb:bb00::/32``: port 1 faces a
host, ports 2 and 3 face nodes 2 and 3. It gets the entries below through simple_switch_CLI,
then all cases at once through pcap files; each test checks one case: the port it leaves by
(or that it is dropped) and its headers. Every packet carries its case number in its payload.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet import UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.inet6 import IPv6ExtHdrSegmentRouting as SRH
from scapy.layers.inet6 import IPv6ExtHdrSegmentRoutingTLVPadN as PadN
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw

from tests.bmv2.bmv2_support import PcapSwitch

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = ROOT / "p4" / "build" / "srv6.json"
PORTS = (1, 2, 3)
HOST_PORT = 1

HOST_MAC = "00:00:00:00:00:aa"
SWITCH_MAC = "00:00:00:00:01:00"
HEADEND_SOURCE = "2001:db8:ff::ff"
SEGMENTS = ["fcbb:bb00:2::", "fcbb:bb00:3::", "fcbb:bb00:3:e100::"]


def port_mac(port: int) -> str:
    """The switch's MAC on ``port`` (next_hop's src_mac)."""
    return f"00:00:00:00:0{port}:00"


def neighbour_mac(port: int) -> str:
    """The MAC of the neighbour behind ``port`` (next_hop's dst_mac)."""
    return f"00:00:00:00:0{port}:01"


ENTRIES = f"""
table_add IngressPipeImpl.host_port IngressPipeImpl.mark_host_port {HOST_PORT} =>
table_add IngressPipeImpl.sid_block IngressPipeImpl.mark_internal_sid fcbb:bb00::/32 =>
table_add IngressPipeImpl.next_hop IngressPipeImpl.rewrite 1 => 1 {port_mac(1)} {neighbour_mac(1)}
table_add IngressPipeImpl.next_hop IngressPipeImpl.rewrite 2 => 2 {port_mac(2)} {neighbour_mac(2)}
table_add IngressPipeImpl.next_hop IngressPipeImpl.rewrite 3 => 3 {port_mac(3)} {neighbour_mac(3)}
# routing_v6 members 0, 1, 2: next hops 1, 2, 3
act_prof_create_member IngressPipeImpl.ecmp_selector IngressPipeImpl.set_next_hop 1
act_prof_create_member IngressPipeImpl.ecmp_selector IngressPipeImpl.set_next_hop 2
act_prof_create_member IngressPipeImpl.ecmp_selector IngressPipeImpl.set_next_hop 3
table_indirect_add IngressPipeImpl.routing_v6 2001:db8:1::/64 => 0
table_indirect_add IngressPipeImpl.routing_v6 fcbb:bb00:2::/48 => 1
table_indirect_add IngressPipeImpl.routing_v6 fcbb:bb00:3::/48 => 2
# ECMP group 0: ports 2 and 3
act_prof_create_group IngressPipeImpl.ecmp_selector
act_prof_add_member_to_group IngressPipeImpl.ecmp_selector 1 0
act_prof_add_member_to_group IngressPipeImpl.ecmp_selector 2 0
table_indirect_add_with_group IngressPipeImpl.routing_v6 2001:db8:7::/64 => 0
# own SIDs: uN 1, uA e003 (port 3), End.DT6 e100, End, End.X (port 3)
table_add IngressPipeImpl.my_sid IngressPipeImpl.usid_un fcbb:bb00:1::/48 =>
table_add IngressPipeImpl.my_sid IngressPipeImpl.usid_ua fcbb:bb00:e003::/48 => 3
table_add IngressPipeImpl.my_sid IngressPipeImpl.end_dt6 fcbb:bb00:e100::/48 =>
table_add IngressPipeImpl.my_sid IngressPipeImpl.end 2001:db8:ff::1/128 =>
table_add IngressPipeImpl.my_sid IngressPipeImpl.end_x 2001:db8:ff::2/128 => 3
# headend members 0..3, one policy each
act_prof_create_member IngressPipeImpl.headend_selector IngressPipeImpl.h_encaps \
{HEADEND_SOURCE} 3 {" ".join(SEGMENTS)} 0 0 0
act_prof_create_member IngressPipeImpl.headend_selector IngressPipeImpl.h_encaps_red \
{HEADEND_SOURCE} 1 fcbb:bb00:2:3:e100:: 0 0 0 0 0
act_prof_create_member IngressPipeImpl.headend_selector IngressPipeImpl.h_encaps_red \
{HEADEND_SOURCE} 3 {" ".join(SEGMENTS)} 0 0 0
act_prof_create_member IngressPipeImpl.headend_selector IngressPipeImpl.h_encaps_red \
{HEADEND_SOURCE} 1 fcbb:bb00:e003:2:: 0 0 0 0 0
table_indirect_add IngressPipeImpl.srv6_headend 2001:db8:3::/64 => 0
table_indirect_add IngressPipeImpl.srv6_headend 2001:db8:4::/64 => 1
table_indirect_add IngressPipeImpl.srv6_headend 2001:db8:5::/64 => 2
table_indirect_add IngressPipeImpl.srv6_headend 2001:db8:6::/64 => 3
"""


def cli_commands(text: str) -> list[str]:
    return [line for line in text.replace("\\\n", "").splitlines() if line.strip()]


# --- the cases ---------------------------------------------------------------------------

ECMP_PORTS = (2, 3)


@dataclass(frozen=True)
class Case:
    name: str
    in_port: int
    packet: Packet
    out_port: int | tuple[int, ...] | None
    """The port it must leave by, one of several (ECMP), or None: dropped."""
    expected: dict[str, Any] = field(default_factory=dict)
    """Header fields of the packet that leaves (see ``headers``)."""
    number: int = 0

    def __repr__(self) -> str:
        return f"<case {self.number} {self.name}>"


def tag(number: int) -> bytes:
    return b"case%02d" % number + b"x" * 20


def from_host() -> Ether:
    return Ether(src=HOST_MAC, dst=SWITCH_MAC)


def from_switch() -> Ether:
    return Ether(src=neighbour_mac(2), dst=port_mac(2))


def host_packet(dst: str, sport: int = 1000) -> Packet:
    """An inner (or plain) packet: IPv6/UDP from host 1."""
    packet: Packet = IPv6(src="2001:db8:1::1", dst=dst, hlim=64) / UDP(sport=sport, dport=2000)
    return packet


def outer(dst: str, hlim: int = 10) -> IPv6:
    return IPv6(src=HEADEND_SOURCE, dst=dst, hlim=hlim)


def forwarded_to(port: int) -> dict[str, Any]:
    return {"eth.src": port_mac(port), "eth.dst": neighbour_mac(port)}


INNER_LENGTH = 40 + 8 + len(tag(0))
"""An inner IPv6/UDP packet of ``host_packet`` with its tag: header + UDP + payload."""

_CASES = [
    Case(
        "routing",
        2,
        from_switch() / host_packet("2001:db8:1::1"),
        1,
        {**forwarded_to(1), "ipv6.dst": "2001:db8:1::1", "ipv6.hlim": 63, "srh": False},
    ),
    Case(
        "h_encaps_3_sids",
        HOST_PORT,
        from_host() / host_packet("2001:db8:3::1"),
        2,
        {
            **forwarded_to(2),
            "ipv6.src": HEADEND_SOURCE,
            "ipv6.dst": SEGMENTS[0],
            "ipv6.nh": 43,
            "ipv6.hlim": 63,
            "ipv6.plen": 8 + 3 * 16 + INNER_LENGTH,
            "srh.nh": 41,
            "srh.len": 6,
            "srh.segleft": 2,
            "srh.lastentry": 2,
            "srh.segments": SEGMENTS[::-1],
            "inner.dst": "2001:db8:3::1",
            "inner.hlim": 64,
        },
    ),
    Case(
        "h_encaps_red_1_sid",
        HOST_PORT,
        from_host() / host_packet("2001:db8:4::1"),
        2,
        {
            **forwarded_to(2),
            "ipv6.dst": "fcbb:bb00:2:3:e100::",
            "ipv6.nh": 41,
            "ipv6.plen": INNER_LENGTH,
            "srh": False,
            "inner.dst": "2001:db8:4::1",
        },
    ),
    Case(
        "h_encaps_red_3_sids",
        HOST_PORT,
        from_host() / host_packet("2001:db8:5::1"),
        2,
        {
            **forwarded_to(2),
            "ipv6.dst": SEGMENTS[0],
            "ipv6.plen": 8 + 2 * 16 + INNER_LENGTH,
            "srh.segleft": 2,
            "srh.lastentry": 1,
            "srh.segments": SEGMENTS[:0:-1],
            "inner.dst": "2001:db8:5::1",
        },
    ),
    Case(
        "un_shift",
        2,
        from_switch() / outer("fcbb:bb00:1:2:e100::") / host_packet("2001:db8:1::1"),
        2,
        {**forwarded_to(2), "ipv6.dst": "fcbb:bb00:2:e100::", "ipv6.hlim": 9},
    ),
    Case(
        "un_then_own_ua_recirculated",
        2,
        from_switch() / outer("fcbb:bb00:1:e003:2::") / host_packet("2001:db8:1::1"),
        3,
        {**forwarded_to(3), "ipv6.dst": "fcbb:bb00:2::", "ipv6.hlim": 9},
    ),
    Case(
        "un_empty_argument_end_on_srh",
        2,
        from_switch()
        / outer("fcbb:bb00:1::")
        / SRH(addresses=["fcbb:bb00:3:e100::", "fcbb:bb00:1::"], segleft=1, lastentry=1)
        / host_packet("2001:db8:1::1"),
        3,
        {**forwarded_to(3), "ipv6.dst": "fcbb:bb00:3:e100::", "srh.segleft": 0},
    ),
    Case(
        "end_dt6",
        2,
        from_switch() / outer("fcbb:bb00:e100::") / host_packet("2001:db8:1::1"),
        1,
        {
            **forwarded_to(1),
            "ipv6.src": "2001:db8:1::1",
            "ipv6.dst": "2001:db8:1::1",
            "ipv6.hlim": 63,
            "srh": False,
            "inner": False,
            "udp.dport": 2000,
        },
    ),
    Case(
        "un_then_own_end_dt6_recirculated",
        2,
        from_switch()
        / outer("fcbb:bb00:1:e100::")
        / SRH(addresses=["fcbb:bb00:1:e100::"], segleft=0, lastentry=0)
        / host_packet("2001:db8:1::1"),
        1,
        {
            **forwarded_to(1),
            "ipv6.dst": "2001:db8:1::1",
            "ipv6.hlim": 63,
            "srh": False,
            "inner": False,
        },
    ),
    Case(
        "drop_edge_filter_srh_from_host_to_sid",
        HOST_PORT,
        from_host()
        / IPv6(src="2001:db8:1::1", dst="fcbb:bb00:2::", hlim=10)
        / SRH(addresses=["fcbb:bb00:2::"], segleft=0, lastentry=0)
        / UDP(),
        None,
    ),
    Case(
        "host_to_sid_block_without_srh_forwarded",
        HOST_PORT,
        from_host() / IPv6(src="2001:db8:1::1", dst="fcbb:bb00:2::", hlim=10) / UDP(),
        2,
        {**forwarded_to(2), "ipv6.dst": "fcbb:bb00:2::", "ipv6.hlim": 9},
    ),
    Case(
        "drop_hop_limit_1",
        2,
        from_switch() / IPv6(src=HEADEND_SOURCE, dst="2001:db8:1::1", hlim=1) / UDP(),
        None,
    ),
    Case(
        "end",
        2,
        from_switch()
        / outer("2001:db8:ff::1")
        / SRH(addresses=["fcbb:bb00:3::", "2001:db8:ff::1"], segleft=1, lastentry=1)
        / host_packet("2001:db8:1::1"),
        3,
        {**forwarded_to(3), "ipv6.dst": "fcbb:bb00:3::", "ipv6.hlim": 9, "srh.segleft": 0},
    ),
    Case(
        "end_x",
        2,
        from_switch()
        / outer("2001:db8:ff::2")
        / SRH(addresses=["fcbb:bb00:2::", "2001:db8:ff::2"], segleft=1, lastentry=1)
        / host_packet("2001:db8:1::1"),
        3,  # End.X's next hop, although routing_v6 says port 2 for fcbb:bb00:2::/48
        {**forwarded_to(3), "ipv6.dst": "fcbb:bb00:2::", "srh.segleft": 0},
    ),
    Case(
        "h_encaps_red_to_own_ua_recirculated",
        HOST_PORT,
        from_host() / host_packet("2001:db8:6::1"),
        3,
        {
            **forwarded_to(3),
            "ipv6.dst": "fcbb:bb00:2::",
            "ipv6.nh": 41,
            "ipv6.hlim": 63,
            "inner.dst": "2001:db8:6::1",
        },
    ),
    Case(
        "drop_end_segments_left_0",
        2,
        from_switch()
        / outer("2001:db8:ff::1")
        / SRH(addresses=["2001:db8:ff::1"], segleft=0, lastentry=0)
        / host_packet("2001:db8:1::1"),
        None,
    ),
    Case(
        "drop_srh_7_segments",
        2,
        from_switch()
        / outer("fcbb:bb00:2::")
        / SRH(addresses=["fcbb:bb00:2::"] * 7, segleft=6, lastentry=6)
        / host_packet("2001:db8:1::1"),
        None,
    ),
    Case(
        "srh_tlv_transit_un_shift",
        2,
        from_switch()
        / outer("fcbb:bb00:1:2::")
        / SRH(
            addresses=["fcbb:bb00:2::"],
            segleft=0,
            lastentry=0,
            tlv_objects=[PadN(len=6, padding=b"\0" * 6)],
        )
        / host_packet("2001:db8:1::1"),
        2,
        {
            **forwarded_to(2),
            "ipv6.dst": "fcbb:bb00:2::",
            "srh.len": 3,
            "srh.segments": ["fcbb:bb00:2::"],
            "inner.dst": "2001:db8:1::1",
            "udp.dport": 2000,
        },
    ),
    Case(
        "ua",
        2,
        from_switch() / outer("fcbb:bb00:e003:2::") / host_packet("2001:db8:1::1"),
        3,
        {**forwarded_to(3), "ipv6.dst": "fcbb:bb00:2::", "ipv6.hlim": 9},
    ),
    *(
        Case(
            f"ecmp_flow_{k}",
            2,
            from_switch()
            / IPv6(src="2001:db8:1::1", dst="2001:db8:7::1", hlim=10)
            / UDP(sport=1000 + 17 * k, dport=2000),
            ECMP_PORTS,
            {"ipv6.dst": "2001:db8:7::1", "ipv6.hlim": 9},
        )
        for k in range(8)
    ),
]
CASES = [
    Case(c.name, c.in_port, c.packet / Raw(tag(n)), c.out_port, c.expected, n)
    for n, c in enumerate(_CASES, start=1)
]


# --- what a packet looks like ------------------------------------------------------------


def headers(packet: Packet) -> dict[str, Any]:
    """The fields the cases check, by name; ``srh`` and ``inner`` say whether the packet has
    an SRH and an inner IPv6 header."""
    ipv6 = packet[IPv6]
    found: dict[str, Any] = {
        "eth.src": packet[Ether].src,
        "eth.dst": packet[Ether].dst,
        "ipv6.src": ipv6.src,
        "ipv6.dst": ipv6.dst,
        "ipv6.nh": ipv6.nh,
        "ipv6.hlim": ipv6.hlim,
        "ipv6.plen": ipv6.plen,
        "srh": packet.haslayer(SRH),
        "inner": ipv6.payload.haslayer(IPv6),
        "udp.dport": packet[UDP].dport if packet.haslayer(UDP) else None,
    }
    if found["srh"]:
        srh = packet[SRH]
        found |= {
            "srh.nh": srh.nh,
            "srh.len": srh.len,
            "srh.segleft": srh.segleft,
            "srh.lastentry": srh.lastentry,
            "srh.segments": list(srh.addresses),
        }
    if found["inner"]:
        inner = ipv6.payload[IPv6]
        found |= {"inner.src": inner.src, "inner.dst": inner.dst, "inner.hlim": inner.hlim}
    return found


def case_number(frame: bytes) -> int | None:
    at = frame.find(b"case")
    return int(frame[at + 4 : at + 6]) if at >= 0 else None


# --- the run -----------------------------------------------------------------------------


@dataclass(repr=False)
class Run:
    """What left the switch: per case number, (port, packet) for every copy."""

    by_case: dict[int | None, list[tuple[int, Packet]]]
    sent_elsewhere: dict[int, int]
    """Packets the log says were sent to ports with no output file: lost."""

    def __repr__(self) -> str:
        return f"<run: {sum(map(len, self.by_case.values()))} packets out>"


@pytest.fixture(scope="module")
def run(start_pcap_switch: Callable[[Path, tuple[int, ...]], PcapSwitch]) -> Run:
    switch = start_pcap_switch(PROGRAM, PORTS)
    switch.cli(cli_commands(ENTRIES))
    switch.send([(case.in_port, bytes(case.packet)) for case in CASES])
    progress = switch.wait_until_processed()
    switch.stop()
    by_case: dict[int | None, list[tuple[int, Packet]]] = {}
    for port, frames in switch.outputs().items():
        for frame in frames:
            by_case.setdefault(case_number(frame), []).append((port, Ether(frame)))
    elsewhere = {port: n for port, n in progress.sent.items() if port not in PORTS}
    return Run(by_case, elsewhere)


@pytest.mark.parametrize("case", CASES, ids=[f"{c.number:02d}-{c.name}" for c in CASES])
def test_case(run: Run, case: Case) -> None:
    copies = run.by_case.get(case.number, [])
    ports = [port for port, _ in copies]
    if case.out_port is None:
        assert not copies, f"case {case.number} ({case.name}) must be dropped; left by {ports}"
        return
    allowed = case.out_port if isinstance(case.out_port, tuple) else (case.out_port,)
    assert len(copies) == 1 and ports[0] in allowed, (
        f"case {case.number} ({case.name}) must leave once by port "
        f"{' or '.join(map(str, allowed))}; left by {ports or 'none (dropped)'}"
    )
    found = headers(copies[0][1])
    assert {key: found.get(key) for key in case.expected} == case.expected, (
        f"case {case.number} ({case.name}): headers differ from the expected ones "
        f"(left: found, right: expected):\n{copies[0][1].show2(dump=True)}"
    )


def test_ecmp_uses_both_members(run: Run) -> None:
    ecmp = [c for c in CASES if c.out_port == ECMP_PORTS]
    used = {port for c in ecmp for port, _ in run.by_case.get(c.number, [])}
    assert used == set(ECMP_PORTS), f"{len(ecmp)} flows over the ECMP group used ports {used}"


def test_nothing_else_leaves(run: Run) -> None:
    strays = [(port, p.summary()) for port, p in run.by_case.get(None, [])]
    assert not strays, f"packets that belong to no case left the switch: {strays}"
    assert not run.sent_elsewhere, f"packets sent to other ports: {run.sent_elsewhere}"
