"""The compiler's entities on real switches: the lab runs switchd in every switch of tri-3
(line-3 plus a direct s1-s3 link), the compiled entities are written over P4Runtime
(finsy), and pings show that plain routing works and that a uSID (and a full-SID) policy
steers h1 -> h2 through the waypoint s2, which the my_sid counters confirm."""

from __future__ import annotations

import ipaddress

import pytest

from controller.compiler import (
    DT6_FUNCTION,
    Encoding,
    PolicySpec,
    compile_fabric,
    compile_network,
    dt6_prefix,
    entities,
    host_prefix,
    pack_usids,
    segment_list,
)
from controller.topology import Topology
from lab.session import RunningLab
from tests.integration.switchd_support import P4RuntimeSwitch, UdpReceiver, ping, send_udp

pytestmark = pytest.mark.root

H2 = "2001:db8:2::1"


def sid_counts(sw: P4RuntimeSwitch) -> dict[ipaddress.IPv6Network, int]:
    """Packets per my_sid prefix."""
    out: dict[ipaddress.IPv6Network, int] = {}
    for counter in sw.counters():
        (value,) = counter.table_entry.match.values()
        out[ipaddress.IPv6Network(value)] = counter.data.packet_count
    return out


def install(topo: Topology, planes: dict[str, P4RuntimeSwitch], policies: list[PolicySpec]) -> None:
    for name, rules in compile_network(topo, [], policies).items():
        planes[name].insert(entities(rules))


def test_compiled_routing_makes_ping_work(
    tri3: tuple[RunningLab, Topology], planes: dict[str, P4RuntimeSwitch]
) -> None:
    _, topo = tri3
    assert not ping("h1", H2, count=1)
    for name, rules in compile_fabric(topo).items():
        planes[name].insert(entities(rules))
    assert ping("h1", H2)
    assert ping("h2", "2001:db8:1::1")
    # read back: the switch holds exactly what was written
    for name, rules in compile_fabric(topo).items():
        assert len(planes[name].read_all()) == len(entities(rules))


@pytest.mark.parametrize("encoding", list(Encoding))
def test_a_policy_steers_through_the_waypoint(
    tri3: tuple[RunningLab, Topology], planes: dict[str, P4RuntimeSwitch], encoding: Encoding
) -> None:
    """s1 reaches s3 directly; the policy forces h1 -> s1 -> s2 -> s3 -> h2."""
    _, topo = tri3
    path = ["h1", "s1", "s2", "s3", "h2"]
    segs = segment_list(topo, path, encoding=encoding)
    policy = PolicySpec("s1", host_prefix(topo, "h2", "s3"), ((segs, 1),))
    install(topo, planes, [policy])
    s2_before, s3_before = sid_counts(planes["s2"]), sid_counts(planes["s3"])
    assert ping("h1", H2, count=5)
    s2_after, s3_after = sid_counts(planes["s2"]), sid_counts(planes["s3"])
    s2_un, s3_un = topo.switch("s2").locator, topo.switch("s3").locator
    assert s2_after[s2_un] - s2_before[s2_un] >= 5  # the waypoint saw every request
    assert s3_after[s3_un] - s3_before[s3_un] >= 5
    assert s3_after[dt6_prefix(topo)] - s3_before[dt6_prefix(topo)] >= 5


def test_local_usids_after_an_adjacency_and_at_the_headend(
    tri3: tuple[RunningLab, Topology], planes: dict[str, P4RuntimeSwitch]
) -> None:
    """The uSID scheme's claims on the kernel: a uA is processed by the node that holds the
    packet, also at the headend (s1's own uA first), and the uSID after a uA is processed
    by the neighbour it reached (s3 decapsulates uDT6 right after s2's uA)."""
    _, topo = tri3
    block = topo.addressing.usid_block

    def ua(node: str, peer: str) -> int:
        return 0xE000 + topo.link(node, peer).interface_at(node).port

    # s1 --uA--> s2 --uA--> s3, uDT6 at s3: the long way, with no uN at all
    lists = (pack_usids(block, [ua("s1", "s2"), ua("s2", "s3"), DT6_FUNCTION]), 1)
    policy = PolicySpec("s1", host_prefix(topo, "h2", "s3"), (lists,))
    install(topo, planes, [policy])
    ua_s1 = ipaddress.IPv6Network((int(pack_usids(block, [ua("s1", "s2")])[0]), 48))
    ua_s2 = ipaddress.IPv6Network((int(pack_usids(block, [ua("s2", "s3")])[0]), 48))
    before = {name: sid_counts(planes[name]) for name in ("s1", "s2", "s3")}
    assert ping("h1", H2, count=5)
    after = {name: sid_counts(planes[name]) for name in ("s1", "s2", "s3")}
    assert after["s1"][ua_s1] - before["s1"][ua_s1] >= 5
    assert after["s2"][ua_s2] - before["s2"][ua_s2] >= 5
    dt6 = dt6_prefix(topo)
    assert after["s3"][dt6] - before["s3"][dt6] >= 5


def test_a_weighted_policy_spreads_flows_over_its_lists(
    tri3: tuple[RunningLab, Topology], planes: dict[str, P4RuntimeSwitch]
) -> None:
    """Two segment lists in a headend_selector group: through s2, and direct to s3."""
    _, topo = tri3
    via_s2 = segment_list(topo, ["h1", "s1", "s2", "s3", "h2"])
    direct = segment_list(topo, ["h1", "s1", "s3", "h2"])
    policy = PolicySpec("s1", host_prefix(topo, "h2", "s3"), ((via_s2, 1), (direct, 1)))
    install(topo, planes, [policy])
    assert ping("h1", H2, count=1)
    s2_un, dt6 = topo.switch("s2").locator, dt6_prefix(topo)
    before = sid_counts(planes["s2"])[s2_un], sid_counts(planes["s3"])[dt6]
    receiver = UdpReceiver("h2", 9, expect=32 * 3)
    try:
        send_udp("h1", H2, range(21000, 21032))
        delivered = receiver.result()
    finally:
        receiver.close()
    via, decapsulated = (
        sid_counts(planes["s2"])[s2_un] - before[0],
        sid_counts(planes["s3"])[dt6] - before[1],
    )
    assert delivered == 32 * 3
    assert decapsulated >= 32 * 3
    assert 3 <= via < decapsulated, (via, decapsulated)  # some flows each way
