"""The collective generators' pacing and pipelining, by hand: max-min fair shares of the
hosts' NICs, ring slices, the kernel counters a bench reads, spray's NIC token bucket."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.topology import load
from lab.collectives import TCP_COUNTERS, link_bound_ratio, parse_proc_counters, scaled_topology
from lab.traffic.collective import max_min_rates, ring_allowed
from lab.traffic.collective_run import WIRE_OVERHEAD, pacing_rate, tcp_mss
from lab.traffic.spray import (
    DATA_WIRE,
    HEADER,
    WIRE_EXTRA,
    NicPacer,
    SprayConfig,
    packet_for_mtu,
)


def test_all_to_all_shares_each_nic_evenly() -> None:
    # 3 ranks, each sends to the 2 others: every NIC carries 2 flows out and 2 in.
    uses = {(s, d): (("out", s), ("in", d)) for s in range(3) for d in range(3) if s != d}
    caps = {r: 6.0 for rs in uses.values() for r in rs}
    rates = max_min_rates(uses, caps)
    assert rates == pytest.approx(dict.fromkeys(uses, 3.0))


def test_a_flow_held_back_elsewhere_leaves_its_share_to_the_others() -> None:
    # a and b leave NIC x (10); b also enters NIC y (2), shared with c: b and c get 1 each,
    # and a takes what b leaves of x (9), not half of it.
    uses = {"a": ("x",), "b": ("x", "y"), "c": ("y",)}
    rates = max_min_rates(uses, {"x": 10.0, "y": 2.0})
    assert rates == pytest.approx({"a": 9.0, "b": 1.0, "c": 1.0})


def test_when_flows_finish_the_rest_speed_up() -> None:
    uses = {"a": ("x",), "b": ("x",)}
    assert max_min_rates(uses, {"x": 4.0}) == pytest.approx({"a": 2.0, "b": 2.0})
    assert max_min_rates({"a": ("x",)}, {"x": 4.0}) == pytest.approx({"a": 4.0})
    assert max_min_rates({}, {"x": 4.0}) == {}


def test_ring_sends_step_zero_at_once_then_slice_by_slice() -> None:
    chunk, steps = 800, 4  # 8 slices of 100 bytes
    assert ring_allowed(0, chunk, steps) == 800
    assert ring_allowed(99, chunk, steps) == 800  # no whole slice of step 0 yet
    assert ring_allowed(100, chunk, steps) == 900
    assert ring_allowed(850, chunk, steps) == 800 + 800  # step 1's first slice not whole
    assert ring_allowed(900, chunk, steps) == 800 + 900
    # the last step is never released beyond the iteration's total
    assert ring_allowed(10_000, chunk, steps) == steps * chunk


def test_ring_slices_round_up_when_the_chunk_does_not_divide() -> None:
    assert ring_allowed(7, 10, 3, slices=4) == 10 + 6  # slices of 3
    assert ring_allowed(10, 10, 3, slices=4) == 20  # a step boundary is a slice boundary


def test_pacing_rate_counts_payload_so_the_wire_carries_the_share() -> None:
    mss = 1368
    rate = pacing_rate(5.0, mss)
    wire_bps = rate * (mss + WIRE_OVERHEAD) / mss * 8
    assert wire_bps == pytest.approx(5e6, rel=1e-3)


def test_proc_counters_are_read_by_group_and_name() -> None:
    text = (
        "Ip: Forwarding DefaultTTL\n"
        "Ip: 1 64\n"
        "Tcp: RtoAlgorithm OutSegs RetransSegs\n"
        "Tcp: 1 1200 7\n"
        "TcpExt: SyncookiesSent TCPTimeouts TCPLossProbes\n"
        "TcpExt: 0 3 5\n"
    )
    counters = parse_proc_counters(text)
    assert counters["Tcp:OutSegs"] == 1200 and counters["Tcp:RetransSegs"] == 7
    assert counters["TcpExt:TCPTimeouts"] == 3 and counters["TcpExt:TCPLossProbes"] == 5
    assert "Tcp:RetransSegs" in TCP_COUNTERS and "TcpExt:TCPTimeouts" in TCP_COUNTERS


def test_nic_pacer_refills_at_the_rate_up_to_its_burst() -> None:
    pacer = NicPacer.at(8.0, burst_packets=2, headroom=1.0)  # 1 byte per microsecond
    assert pacer.tokens == pacer.burst == 2 * DATA_WIRE
    pacer.refill(1_000)
    pacer.tokens -= 2 * DATA_WIRE  # two packets sent
    pacer.refill(1_000 + 1_000_000)  # 1 ms later: 1,000 bytes back
    assert pacer.tokens == pytest.approx(1_000.0)
    pacer.refill(1_000 + 1_000_000_000)
    assert pacer.tokens == pacer.burst


def test_link_bound_ratio_is_the_busiest_links_bytes_over_its_rate(tmp_path: Path) -> None:
    source = Path(__file__).resolve().parents[2] / "topologies" / "fat-tree-4.yaml"
    topo = load(str(scaled_topology(source, 5.0, tmp_path / "fat-tree-4.yaml")))
    per_iteration = 5e6 / 8 * 0.734  # what a 5 Mbit/s link carries in 734 ms
    link_bytes = {"h1->edge1": int(2 * 1.1 * per_iteration), "edge1->h2": 1000}
    assert link_bound_ratio(topo, link_bytes, 734.0, 2) == pytest.approx(1.1, rel=1e-6)
    assert link_bound_ratio(topo, {}, 734.0, 2) is None


@pytest.mark.parametrize(
    ("mtu", "mss", "data", "packet"),
    [(1500, 1380, 1368, 1388), (9000, 8880, 8868, 8888), (1280, 1160, 1148, 1168)],
)
def test_tcp_segments_and_spray_packets_follow_the_host_mtu(
    mtu: int, mss: int, data: int, packet: int
) -> None:
    assert tcp_mss(mtu) == mss
    # a full segment (data + timestamps + TCP + IPv6) leaves 60 bytes of the MTU for a
    # headend's encapsulation
    assert data + 12 + 20 + 40 == mtu - 60
    cfg = SprayConfig(packet=packet_for_mtu(mtu))
    assert cfg.packet == packet
    # UDP + inner IPv6 + the kernel's headroom for the host's own encap.red (outer IPv6
    # and an SRH of one segment, though it writes none) fill the NIC's MTU exactly
    assert cfg.packet + 8 + 40 + 40 + 8 + 16 == mtu
    assert cfg.payload == packet - HEADER.size
    assert cfg.data_wire == packet + WIRE_EXTRA


def test_jumbo_runs_keep_the_packet_rate_of_the_1500_byte_runs() -> None:
    """9000-byte hosts at 30 Mbit/s send full-size packets as often as 1500-byte hosts at
    5 Mbit/s (2.4 ms per packet per hop), so the spray windows and timers (packets and
    milliseconds) need no change; the NIC pacer's burst is in packets of the run's size."""
    small, jumbo = SprayConfig(), SprayConfig(packet=packet_for_mtu(9000))
    assert small.data_wire == DATA_WIRE
    per_packet_ms = [cfg.data_wire * 8 / (mbps * 1e3) for cfg, mbps in ((small, 5), (jumbo, 30))]
    assert per_packet_ms == pytest.approx([2.4, 2.4], abs=0.05)
    pacer = NicPacer.at(30.0, packet_wire=jumbo.data_wire)
    assert pacer.burst == 8 * jumbo.data_wire
    tcp = [(tcp_mss(m) - 12 + WIRE_OVERHEAD) * 8 / (r * 1e3) for m, r in ((1500, 5), (9000, 30))]
    assert tcp == pytest.approx([2.33, 2.39], abs=0.01)
    # the ideal leaves out fewer header bytes: 6.3 % -> 1.0 % for TCP, 9.2 % -> 1.5 % spray
    assert (tcp_mss(1500) - 12 + WIRE_OVERHEAD) / (tcp_mss(1500) - 12) == pytest.approx(
        1.063, abs=1e-3
    )
    assert (tcp_mss(9000) - 12 + WIRE_OVERHEAD) / (tcp_mss(9000) - 12) == pytest.approx(
        1.0097, abs=1e-3
    )
    assert small.data_wire / small.payload == pytest.approx(1.0916, abs=1e-3)
    assert jumbo.data_wire / jumbo.payload == pytest.approx(1.0142, abs=1e-3)


def test_a_host_mtu_too_small_for_a_spray_packet_is_refused() -> None:
    with pytest.raises(ValueError, match="no room for a spray data packet"):
        packet_for_mtu(100)
