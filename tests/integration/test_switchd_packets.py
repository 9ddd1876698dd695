"""switchd with real packets: the lab starts switchd in every switch; srv6.p4 entries, built
by name with finsy, are written over P4Runtime (finsy's client, over the lab's Unix sockets)
and packets are captured and checked with scapy. Topology: line-3 plus a direct s1-s3 link,
so s1 has two paths to s3."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import finsy as fy
import pytest

from controller.topology import Topology
from lab.session import RunningLab
from tests.integration.switchd_support import (
    Flow,
    P4RuntimeSwitch,
    UdpReceiver,
    capture,
    netns,
    ping,
    routing_entries,
    send_udp,
    sid,
    tx_packets,
)

pytestmark = pytest.mark.root

S1_BOTH_WAYS = fy.P4ActionProfileGroup(
    "ecmp_selector",
    group_id=100,
    members=[fy.P4Member(2, weight=(1, 2)), fy.P4Member(3, weight=(1, 3))],
)
"""s1's two ways toward s3: over s2 (next hop and member 2), direct (3); each member
watches its own port."""


def write(sw: P4RuntimeSwitch, entities: list[Any]) -> None:
    sw.insert(entities)


def route_everything(topo: Topology, planes: dict[str, P4RuntimeSwitch]) -> None:
    for name, sw in planes.items():
        write(sw, routing_entries(topo, name))


def test_plain_routing_makes_ping_work(
    tri3: tuple[RunningLab, Topology], planes: dict[str, P4RuntimeSwitch]
) -> None:
    _, topo = tri3
    assert not ping("h1", "2001:db8:2::1", count=1)
    route_everything(topo, planes)
    assert ping("h1", "2001:db8:2::1")


def test_ecmp_spreads_flows_over_both_members(
    tri3: tuple[RunningLab, Topology], planes: dict[str, P4RuntimeSwitch]
) -> None:
    """s1 reaches h2 directly (1 hop) or over s2: an explicit two-member group for h2's
    prefix spreads flows over both."""
    _, topo = tri3
    route_everything(topo, planes)
    s1 = planes["s1"]
    group = S1_BOTH_WAYS
    route = fy.P4TableEntry(
        "routing_v6",
        match=fy.P4TableMatch({"hdr.ipv6.dst_addr": "2001:db8:2::/64"}),
        action=fy.P4IndirectAction(group_id=100),
    )
    s1.write([+group, ~route])
    assert ping("h1", "2001:db8:2::1", count=1)  # h1 knows its gateway's MAC: nothing queued
    before = {port: tx_packets("s1", port) for port in ("s1-eth2", "s1-eth3")}
    flow = UdpReceiver("h2", 9, expect=32 * 3)
    try:
        send_udp("h1", "2001:db8:2::1", range(20000, 20032))
        delivered = flow.result()
    finally:
        flow.close()
    n2, n3 = (tx_packets("s1", port) - before[port] for port in ("s1-eth2", "s1-eth3"))
    assert delivered == 32 * 3
    # Each flow is pinned to one member; both members carry flows (a few more packets may
    # be neighbour discovery).
    assert n2 >= 3 and n3 >= 3 and n2 + n3 >= 32 * 3, (n2, n3)


def test_h_encaps_with_three_sids_and_end_dt6(
    tri3: tuple[RunningLab, Topology], planes: dict[str, P4RuntimeSwitch]
) -> None:
    """s1 encapsulates h1->h2 traffic with SRH [End s2, End s3, End.DT6 s3]; s2 and s3
    run End; s3 decapsulates."""
    from scapy.layers.inet6 import IPv6, IPv6ExtHdrSegmentRouting

    _, topo = tri3
    route_everything(topo, planes)
    segs = ["fcbb:bb00:2::", "fcbb:bb00:3::", "fcbb:bb00:3:fe00::"]
    write(planes["s2"], [my_sid("fcbb:bb00:2::/48", "end")])
    write(
        planes["s3"],
        [my_sid("fcbb:bb00:3::/48", "end"), my_sid("fcbb:bb00:3:fe00::/64", "end_dt6")],
    )
    write(planes["s1"], headend("2001:db8:2::/64", segs, reduced=False))
    with capture("s2", "s2-eth1") as into_s2, capture("h2", "h2-eth0") as at_h2:
        assert ping("h1", "2001:db8:2::1")
        entering = into_s2.packets()
        delivered = at_h2.packets()
    encapsulated = [p for p in entering if p.haslayer(IPv6ExtHdrSegmentRouting)]
    assert encapsulated, f"no SRv6 packet entered s2: {[p.summary() for p in entering]}"
    outer = encapsulated[0][IPv6]
    srh = encapsulated[0][IPv6ExtHdrSegmentRouting]
    assert outer.src == "fcbb:bb00:1::1"
    assert outer.dst == "fcbb:bb00:2::"
    # The SRH lists segments in reverse order: Segment List[0] is the last.
    assert [str(a) for a in srh.addresses] == list(reversed(segs))
    assert srh.segleft == 2
    inner = srh.payload
    assert isinstance(inner, IPv6) and inner.dst == "2001:db8:2::1"
    # h2 receives the original packet, decapsulated.
    plain = [p for p in delivered if p.haslayer(IPv6) and p[IPv6].src == "2001:db8:1::1"]
    assert plain and not plain[0].haslayer(IPv6ExtHdrSegmentRouting)
    assert plain[0][IPv6].nh == 58  # ICMPv6 echo request, untouched


def test_usid_shift_and_decapsulation(
    tri3: tuple[RunningLab, Topology], planes: dict[str, P4RuntimeSwitch]
) -> None:
    """One uSID container fcbb:bb00:2:3:fe00:: with H.Encaps.Red (no SRH): s2 shifts (uN),
    s3 shifts (uN) and decapsulates at its local uDT6 uSID fe00."""
    from scapy.layers.inet6 import IPv6, IPv6ExtHdrSegmentRouting

    _, topo = tri3
    route_everything(topo, planes)
    write(planes["s2"], [my_sid("fcbb:bb00:2::/48", "usid_un")])
    write(
        planes["s3"],
        [my_sid("fcbb:bb00:3::/48", "usid_un"), my_sid("fcbb:bb00:fe00::/48", "end_dt6")],
    )
    write(planes["s1"], headend("2001:db8:2::/64", ["fcbb:bb00:2:3:fe00::"], reduced=True))
    with capture("s2", "s2-eth1") as into_s2, capture("s3", "s3-eth2") as into_s3:
        assert ping("h1", "2001:db8:2::1")
        first = [p for p in into_s2.packets() if p[IPv6].nh == 41]
        second = [p for p in into_s3.packets() if p[IPv6].nh == 41]
    assert first and second
    assert first[0][IPv6].dst == "fcbb:bb00:2:3:fe00::"
    assert not first[0].haslayer(IPv6ExtHdrSegmentRouting)  # .Red with one SID: no SRH
    assert second[0][IPv6].dst == "fcbb:bb00:3:fe00::"  # s2 shifted its uSID out
    counters = planes["s3"].counters()
    assert sum(c.data.packet_count for c in counters) >= 6  # uN and uDT6 on s3 counted


def test_a_dead_watch_port_leaves_its_group_and_comes_back(
    tri3: tuple[RunningLab, Topology], planes: dict[str, P4RuntimeSwitch]
) -> None:
    import subprocess

    lab, topo = tri3
    route_everything(topo, planes)
    s1 = planes["s1"]
    log = Path(next(e.log for e in lab.network.endpoints if e.name == "s1"))
    logged = log.stat().st_size
    group = S1_BOTH_WAYS
    write(s1, [group])

    def members() -> str:
        return subprocess.run(
            ["ip", "-n", netns("s1"), "nexthop", "show", "id", str(0x2000_0000 + 100)],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip

    assert f"group {0x1000_0002}/{0x1000_0003}" in members()
    # The far end goes down: s1-eth3 loses carrier; the kernel drops member 3 at once.
    subprocess.run(["ip", "-n", netns("s3"), "link", "set", "s3-eth3", "down"], check=True)
    assert f"group {0x1000_0002} " in members() + " "
    subprocess.run(["ip", "-n", netns("s3"), "link", "set", "s3-eth3", "up"], check=True)
    wait_for(lambda: f"group {0x1000_0002}/{0x1000_0003}" in members())
    # The same with s1's own port set down: the kernel also flushes its (permanent)
    # neighbours then, which switchd once deleted again, and ip exits at that ENOENT.
    subprocess.run(["ip", "-n", netns("s1"), "link", "set", "s1-eth3", "down"], check=True)
    wait_for(lambda: f"group {0x1000_0002} " in members() + " ")
    subprocess.run(["ip", "-n", netns("s1"), "link", "set", "s1-eth3", "up"], check=True)
    wait_for(lambda: f"group {0x1000_0002}/{0x1000_0003}" in members())
    with log.open() as text:
        text.seek(logged)
        news = text.read()
    assert news.count("port s1-eth3 (3) down") == 2, news
    assert "ERROR" not in news, news


def wait_for(condition: Any, timeout: float = 5.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def my_sid(prefix: str, behaviour: str, **params: int) -> Any:
    return fy.P4TableEntry(
        "my_sid",
        match=fy.P4TableMatch({"hdr.ipv6.dst_addr": prefix}),
        action=fy.P4TableAction(behaviour, **params),
    )


def headend(prefix: str, segments: list[str], reduced: bool) -> list[Any]:
    params = {"src_addr": sid("fcbb:bb00:1::1"), "num_segments": len(segments)}
    for i in range(6):
        params[f"s{i + 1}"] = sid(segments[i]) if i < len(segments) else 0
    action = "h_encaps_red" if reduced else "h_encaps"
    return [
        fy.P4ActionProfileMember(
            "headend_selector", member_id=1, action=fy.P4TableAction(action, **params)
        ),
        fy.P4TableEntry(
            "srv6_headend",
            match=fy.P4TableMatch({"hdr.ipv6.dst_addr": prefix}),
            action=fy.P4IndirectAction(member_id=1),
        ),
    ]


def test_a_switchd_restart_under_traffic_loses_no_packet(
    tri3: tuple[RunningLab, Topology], planes: dict[str, P4RuntimeSwitch]
) -> None:
    """switchd stops (SIGTERM) and starts again on the ingress switch while 1,000 packets/s
    flow h1 -> h2: the kernel keeps forwarding, the new switchd reads its entries back from
    the kernel and serves them, and not one packet is lost."""
    lab, topo = tri3
    route_everything(topo, planes)
    written = routing_entries(topo, "s1")
    flow = Flow("h1", "h2", "2001:db8:2::1", rate=1000, seconds=3.0)
    try:
        lab.network.restart_switchd("s1")
        lab.network.restart_switchd("s3")
        sent, received = flow.result()
    finally:
        flow.close()
    assert sent == 3000
    assert received == sent, f"lost {sent - received} of {sent} packets"
    # The restarted switchd serves what the kernel held, unchanged.
    read = planes["s1"].read_all()
    assert len(read) == len(written)
