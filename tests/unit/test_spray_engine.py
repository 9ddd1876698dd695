"""Spray's sender and receiver logic without a network: acks per flow with per-path
entries, retirement (never of a flow's last healthy path), the RACK-style timer, the tail
resent elsewhere, and no verdicts right after the process stalled. What would go on the
wire is captured instead of sent."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.errors import LabError
from lab.traffic.collective_run import LinkOracle
from lab.traffic.spray import (
    ACK,
    ACK_MARK,
    ACK_REQUEST,
    DATA,
    HEADER,
    MARK,
    STALL_NS,
    Sender,
    SprayConfig,
    SprayEngine,
    SprayFlow,
    SprayPath,
    serving_order,
)
from tests.unit.spray_support import offline_engine

MS = 1_000_000


def _paths(k: int) -> tuple[SprayPath, ...]:
    return tuple(
        SprayPath(i, ("a", f"s{i}", "b"), "2001:db8:1::1", "2001:db8:2::1", "fc::1", "fc::2")
        for i in range(k)
    )


@pytest.fixture
def engine() -> Iterator[tuple[SprayEngine, list[bytes]]]:
    keys = [
        (rank, addr, mark + i)
        for i in range(2)
        for rank, addr, mark in ((0, "2001:db8:1::1", MARK), (1, "2001:db8:2::1", ACK_MARK))
    ]
    with offline_engine([SprayFlow(0, 0, 1, _paths(2))], keys, (0, 1)) as out:
        yield out


def _data_sent(eng: SprayEngine, sent: list[bytes], limit: int) -> list[bytes]:
    """Let flow 0 send ``limit`` packets at 1 ms: its data packets (``sent`` is cleared)."""
    eng.senders[0].limit = limit
    eng.pump(1 * MS)
    data = [d for d in sent if d[2] == DATA]
    sent.clear()
    return data


def test_the_receiver_acks_once_per_flow_with_an_entry_per_path(
    engine: tuple[SprayEngine, list[bytes]],
) -> None:
    eng, sent = engine
    s = eng.senders[0]
    data = _data_sent(eng, sent, limit=4)
    assert len(data) == 4  # round robin over the two paths
    assert sorted(HEADER.unpack_from(d)[2] for d in data) == [0, 0, 1, 1]
    for d in data:
        eng._packet(d, 5 * MS)
    assert eng.receivers[0].unique == 4
    assert eng.cfg.ack_every == 4
    (ack,) = sent  # one ack for the 4 packets, with an entry for both paths
    assert HEADER.unpack_from(ack)[2] == 2
    eng._packet(ack, 9 * MS)
    assert not s.outstanding and all(p.in_flight == 0 for p in s.paths)
    assert all(p.srtt_ns > 0 for p in s.paths)


def test_a_hosts_flows_share_its_in_flight_budget(
    engine: tuple[SprayEngine, list[bytes]],
) -> None:
    eng, sent = engine
    s = eng.senders[0]
    s.limit = 100
    eng.pump(1 * MS)
    # the host's one flow with data gets its NIC's whole budget, spread over 2 paths
    assert s.window == eng.cfg.host_window == 8
    assert len([d for d in sent if d[2] == DATA]) == 8
    assert [p.in_flight for p in s.paths] == [4, 4]


def test_a_gap_retires_the_path_but_never_the_flows_last(
    engine: tuple[SprayEngine, list[bytes]],
) -> None:
    eng, _sent = engine
    s = eng.senders[0]
    s.limit = 6
    eng.pump(1 * MS)
    eng._nack(0, 0, 0, 0)  # the receiver saw path 0 skip its first packet
    assert not s.paths[0].healthy and s.paths[1].healthy
    assert [e["event"] for e in eng.events] == ["retired"]
    eng._nack(0, 1, 0, 0)
    assert s.paths[1].healthy and s.kept_last == 1  # sent again, the path kept
    assert s.resend  # every packet of the retired path goes again


def _measured_sender(eng: SprayEngine, limit: int) -> Sender:
    """The first sender, its paths with 4 RTT samples of 20 +- 1 ms, window ``limit``."""
    s = eng.senders[0]
    for p in s.paths:
        p.srtt_ns, p.rttvar_ns, p.samples = 20.0 * MS, 1.0 * MS, 4
    s.limit = limit
    return s


def test_timer_loss_needs_a_later_packet_acked_elsewhere_and_no_stall(
    engine: tuple[SprayEngine, list[bytes]],
) -> None:
    eng, _sent = engine
    s = _measured_sender(eng, limit=10)
    eng.pump(100 * MS)  # path 0 and 1 get packets at t = 100 ms
    s.last_ack_send_ns = 101 * MS  # a packet sent later, on path 1, was acked
    eng.timers(110 * MS)
    assert s.paths[0].healthy  # 10 ms late: inside srtt + max(10 ms, 4 rttvar, srtt/2)
    eng.timers(110 * MS + STALL_NS + 1)  # the loop did not run for > 20 ms
    assert s.paths[0].healthy and eng.stalls == 1
    eng.timers(132 * MS)
    assert not s.paths[0].healthy
    assert "later packets on other paths" in eng.events[0]["reason"]


def _ack_for(eng: SprayEngine, path: int, pseq: int, sent_ns: int, now: int) -> None:
    """An ack of flow 0 saying ``path`` delivered up to ``pseq`` (sent at ``sent_ns``)."""
    eng.senders[0].last_ack_ns = now
    eng._ack(0, path, 0, pseq, sent_ns, now=now)


def test_a_flows_tail_gets_a_copy_elsewhere_that_judges_the_late_path(
    engine: tuple[SprayEngine, list[bytes]],
) -> None:
    eng, sent = engine
    s = _measured_sender(eng, limit=2)
    eng.pump(100 * MS)  # the flow's last two packets, one per path
    (seq0,) = [q for q, info in s.outstanding.items() if info[0] == 0]
    (seq1,) = [q for q, info in s.outstanding.items() if info[0] == 1]
    _ack_for(eng, 1, 0, 100 * MS, now=120 * MS)  # path 1's packet arrived, path 0's not
    eng.timers(121 * MS)
    assert s.paths[0].healthy and not eng.events  # within the reordering window
    eng.timers(140 * MS)  # 40 ms late, after an ack that did not have it
    assert s.paths[0].suspect and s.late_copies == 1 and list(s.resend) == [seq0]
    assert s.paths[0].in_flight == 1  # the original stays in flight on its path
    sent.clear()
    eng.pump(141 * MS)  # the copy goes on path 1, the only one not suspect
    assert s.outstanding[seq0][0] == 1 and HEADER.unpack_from(sent[-1])[2] == 1
    _ack_for(eng, 1, 1, 141 * MS, now=155 * MS)  # the copy was acked first
    eng.timers(156 * MS)
    assert not s.paths[0].healthy
    assert "its copy on another path was" in eng.events[0]["reason"]
    assert not s.resend and s.acked[seq0] and s.acked[seq1]


def test_a_late_original_that_arrives_clears_its_path(
    engine: tuple[SprayEngine, list[bytes]],
) -> None:
    eng, _sent = engine
    s = _measured_sender(eng, limit=2)
    eng.pump(100 * MS)
    _ack_for(eng, 1, 0, 100 * MS, now=120 * MS)
    eng.timers(121 * MS)
    eng.timers(140 * MS)
    assert s.paths[0].suspect
    eng.pump(141 * MS)
    _ack_for(eng, 0, 0, 100 * MS, now=145 * MS)  # the original made it after all
    assert not s.paths[0].suspect and s.paths[0].in_flight == 0 and not s.copies
    eng.timers(146 * MS)
    assert s.paths[0].healthy and not eng.events


HOST = "2001:db8:1::1"


def _fabric_flows() -> tuple[list[SprayFlow], list[tuple[int, str, int]]]:
    """Host 0's flows to hosts 1-3 over a fat tree's pods, 2 paths each (as GetPaths
    salts them), and the sockets they need."""
    routes = {
        1: (("e1", "a1", "c1", "a3", "e3"), ("e1", "a2", "c3", "a4", "e3")),
        2: (("e1", "a1", "c1", "a3", "e4"), ("e1", "a2", "c4", "a4", "e4")),
        3: (("e1", "a1", "c2", "a3", "e3"), ("e1", "a2", "c4", "a4", "e3")),
    }
    flows = []
    for fid, (dst, hops) in enumerate(routes.items()):
        addr = f"2001:db8:{dst + 1}::1"
        paths = tuple(
            SprayPath(i, ("h0", *h, f"h{dst}"), HOST, addr, "fc::1", "fc::2")
            for i, h in enumerate(hops)
        )
        flows.append(SprayFlow(fid, 0, dst, paths))
    keys = [(0, HOST, MARK + i) for i in range(2)] + [
        (f.dst, f.paths[0].dst_addr, ACK_MARK + i) for f in flows for i in range(2)
    ]
    return flows, keys


def test_a_loss_retires_the_hosts_other_paths_through_the_failed_hops() -> None:
    flows, keys = _fabric_flows()
    with offline_engine(flows, keys, (0, 1, 2, 3)) as (eng, _sent):
        for s in eng.senders.values():
            s.limit = 4
        eng.pump(100 * MS)
        # acks since for packets sent after 100 ms: every path but flow 0's and flow 1's
        # first (both through a1 -> c1 -> a3) delivered
        for s in eng.senders.values():
            for p in s.paths:
                if p.index or s.flow.flow_id == 2:
                    p.acked_sent_ns = 120 * MS
        eng._nack(0, 0, 0, 0)  # flow 0's first path lost its packet of 100 ms
        retired = [(e["flow"], e["path"]) for e in eng.events]
        assert retired == [(0, 0), (1, 0)]
        # a3 -> e3 is not a suspect (flow 2 delivered over it), a1 -> c1 -> a3 is
        assert "a1->c1 c1->a3 with flow 0's path 0" in eng.events[1]["reason"]
        assert eng.senders[2].paths[0].healthy  # shares e1 -> a1 and a3 -> e3 only


def test_a_loss_with_every_hop_proven_since_retires_only_its_path() -> None:
    flows, keys = _fabric_flows()
    with offline_engine(flows, keys, (0, 1, 2, 3)) as (eng, _sent):
        eng.senders[0].limit = 2
        eng.pump(100 * MS)
        for s in eng.senders.values():
            for p in s.paths:
                p.acked_sent_ns = 120 * MS  # all delivered after: not a failed hop
        eng._nack(0, 0, 0, 0)
        assert [(e["flow"], e["path"]) for e in eng.events] == [(0, 0)]


def test_the_oracle_retires_the_paths_over_a_link_and_readmits_them(tmp_path: Path) -> None:
    flows, keys = _fabric_flows()
    with offline_engine(flows, keys, (0, 1, 2, 3)) as (eng, _sent):
        oracle = LinkOracle(str(tmp_path / "oracle"))
        oracle.poll(eng)  # no file yet: nothing
        (tmp_path / "oracle").write_text("down c1 a1\n", encoding="utf-8")  # either way
        oracle.poll(eng)
        assert [(e["flow"], e["path"], e["event"]) for e in eng.events] == [
            (0, 0, "retired"),
            (1, 0, "retired"),
        ]
        assert "(oracle)" in eng.events[0]["reason"]
        # e1 -> a2 is on every flow's second path: flow 2's goes, flows 0 and 1 keep
        # theirs (their last)
        assert eng.link_news("e1", "a2", up=False) == 1
        assert not eng.senders[2].paths[1].healthy
        assert eng.senders[0].paths[1].healthy and eng.senders[1].paths[1].healthy
        (tmp_path / "oracle").write_text("down c1 a1\nup c1 a1\n", encoding="utf-8")
        os.utime(tmp_path / "oracle", ns=(1, 1))  # a new stamp, whatever the clock
        oracle.poll(eng)
        assert all(st.healthy for st in eng.senders[0].paths + eng.senders[1].paths)
        assert not eng.senders[2].paths[1].healthy  # only what crosses c1 - a1 came back
        (tmp_path / "oracle").write_text("down c1 a1\nup c1 a1\nsideways a b\n")
        os.utime(tmp_path / "oracle", ns=(2, 2))
        with pytest.raises(LabError, match="line 3: 'sideways a b': expected 'down A B'"):
            oracle.poll(eng)


def test_acks_repeat_every_path_and_repeats_are_no_news(
    engine: tuple[SprayEngine, list[bytes]],
) -> None:
    eng, sent = engine
    s = eng.senders[0]
    data = _data_sent(eng, sent, limit=8)
    for d in data[:4]:
        eng._packet(d, 5 * MS)
    (lost_ack,) = sent  # this ack dies with the path it rode back on
    for d in data[4:]:
        eng._packet(d, 6 * MS)
    (ack,) = sent[1:]
    eng._packet(ack, 9 * MS)  # says everything the lost one said
    assert not s.outstanding
    samples = [p.samples for p in s.paths]
    eng._packet(lost_ack, 30 * MS)  # a late duplicate: no news, no round-trip sample
    assert [p.samples for p in s.paths] == samples
    assert all(p.srtt_ns < 10 * MS for p in s.paths)


def test_a_quiet_flow_asks_for_an_ack_on_every_healthy_path(
    engine: tuple[SprayEngine, list[bytes]],
) -> None:
    eng, _sent = engine
    s = _measured_sender(eng, limit=2)
    calls: list[tuple[socket.socket, bytes]] = []

    def capture(sock: socket.socket, data: bytes, _addr: str, control: bool = False) -> bool:
        calls.append((sock, data))
        return True

    eng._send = capture  # type: ignore[method-assign,assignment]
    eng.pump(100 * MS)
    data = [d for _sock, d in calls if d[2] == DATA]
    eng._packet(data[0], 110 * MS)  # one arrives; the receiver has not acked yet
    _ack_for(eng, 1, -1, 0, now=101 * MS)  # the flow's last ack (nothing new in it)
    calls.clear()
    eng.timers(130 * MS)  # 29 ms quiet: under two round trips (2 x 20 ms)
    assert not calls
    eng.timers(142 * MS)
    requests = [(sock, d) for sock, d in calls if d[2] == ACK_REQUEST]
    assert sorted(HEADER.unpack_from(d)[2] for _s, d in requests) == [0, 1]
    assert s.ack_requests == 1
    calls.clear()
    _sock, req = requests[1]  # the receiver answers on the reverse of the request's path
    eng._packet(req, 150 * MS)
    ((ack_sock, ack),) = calls
    assert ack[2] == ACK and ack_sock is eng.receivers[0].socks[HEADER.unpack_from(req)[2]]


def _sender(src: int, dst: int) -> Sender:
    return Sender(SprayFlow(src * 8 + dst, src, dst, _paths(1)), [], [])


def test_each_host_serves_its_destinations_in_a_rotation_shifted_by_its_rank() -> None:
    flows = [_sender(src, dst) for src in range(4) for dst in range(4) if dst != src]
    firsts = []
    for turn in range(4):
        order = serving_order(flows, turn, 4)
        assert sorted(id(s) for s in order) == sorted(id(s) for s in flows)
        first = {}
        for s in order:  # the first flow of each host in the order
            first.setdefault(s.flow.src, s.flow.dst)
        firsts.append(first)
        # on any turn the hosts prefer different receivers (no synchronized incast)...
        assert len(set(first.values())) == len(first)
        # ...host s starts at s + 1 + turn (over its 3 others) and goes on up
        for src in range(4):
            mine = [s.flow.dst for s in order if s.flow.src == src]
            assert mine == [(src + 1 + (turn + k) % 3) % 4 for k in range(3)]
    # ...and over 3 turns every destination of a host comes first once
    for src in range(4):
        assert sorted(f[src] for f in firsts[:3]) == [d for d in range(4) if d != src]


def test_a_hosts_nic_tokens_go_to_its_flows_in_turn() -> None:
    # hosts 0 and 1 send to the two others through one paced NIC each, which has one
    # packet's tokens per turn: each host's packet goes to its receivers in turn. (With
    # the engine's rotation over all four flows, host 0's flow to 1 came first whenever
    # the rotation started outside host 0's flows: 3 turns of 4.)
    addr = ["2001:db8:1::1", "2001:db8:2::1", "2001:db8:3::1"]
    ends = [(src, dst) for src in (0, 1) for dst in range(3) if dst != src]
    flows = [
        SprayFlow(i, src, dst, (SprayPath(0, ("a", "b"), addr[src], addr[dst], "fc::1", "fc::2"),))
        for i, (src, dst) in enumerate(ends)
    ]
    keys = [(h, addr[h], mark) for h in (0, 1) for mark in (MARK, ACK_MARK)]
    rates = {(src, addr[src]): 30.0 for src in (0, 1)}
    cfg = SprayConfig(host_window=100)
    with offline_engine(flows, keys, (0, 1), config=cfg, nic_mbps=rates, ranks=[0, 1]) as (
        eng,
        sent,
    ):
        for s in eng.senders.values():
            s.limit = 100
        for turn in range(1, 9):
            for pacer in eng.pacers.values():
                pacer.tokens, pacer.last_ns = float(eng.cfg.data_wire), turn * MS
            eng.pump(turn * MS)
        served = [eng.flows[HEADER.unpack_from(d)[3]] for d in sent if d[2] == DATA]
        assert len(served) == 16  # one packet per host and turn
        for src in (0, 1):
            dsts = [f.dst for f in served if f.src == src]
            assert sorted(set(dsts)) == [d for d in range(3) if d != src]
            assert dsts.count(dsts[0]) == 4
