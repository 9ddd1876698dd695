"""The convergence benchmark's link sniffer (lab/traffic/flows.py) sees probe flows plain
and SRv6-encapsulated (steered flows). Pure."""

from __future__ import annotations

import ipaddress
import struct

from lab.traffic.flows import Crossing, parse
from lab.traffic.probe import HEADER

ETH = b"\0" * 12 + struct.pack("!H", 0x86DD)


def ip6(nh: int, payload: bytes, src: str, dst: str) -> bytes:
    return (
        struct.pack("!IHBB", 0x60000000, len(payload), nh, 64)
        + ipaddress.IPv6Address(src).packed
        + ipaddress.IPv6Address(dst).packed
        + payload
    )


UDP = struct.pack("!HHHH", 40001, 47000, 8 + HEADER.size, 0) + HEADER.pack(7, 1, 2)
INNER = ip6(17, UDP, "2001:db8:1::2", "2001:db8:9::2")
SEEN = Crossing("2001:db8:1::2", "2001:db8:9::2", 40001, 7)


def test_plain_udp() -> None:
    assert parse(ETH + INNER) == SEEN


def test_encapsulated_without_and_with_srh() -> None:
    assert parse(ETH + ip6(41, INNER, "fcbb:bb00:301::", "fcbb:bb00:101::")) == SEEN
    sids = b"".join(ipaddress.IPv6Address(s).packed for s in ("fcbb:bb00:305::", "fcbb::1"))
    srh = struct.pack("!BBBBBBH", 41, 4, 4, 1, 1, 0, 0) + sids
    assert parse(ETH + ip6(43, srh + INNER, "fcbb:bb00:301::", "fcbb::1")) == SEEN


def test_not_udp() -> None:
    icmp = ip6(58, b"\x80\0\0\0\0\0\0\0", "fe80::1", "fe80::2")
    assert parse(ETH + icmp + b"\0" * 16) is None
