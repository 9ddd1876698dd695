"""The generator process of ``srv6lab bench collectives``: one collective, in one of two
transports, with per-flow addresses (a flow placed on a host's second plane uses that
plane's NIC addresses).

- ``tcp`` (modes ``ecmp`` and ``pinned``): one TCP connection per flow and channel (a
  pinned flow between hosts with a NIC in each of several planes has one channel per
  plane, each between the hosts' NICs in that plane), driven by
  :class:`lab.traffic.collective.CollectiveRun` (ring all-reduce or all-to-all in
  bulk-synchronous iterations).
- ``spray``: the same iterations over :class:`lab.traffic.spray.SprayEngine`.

Protocol (``python -m lab.traffic.collective_run OUT``): the spec (JSON) on stdin; it
prints ``READY <monotonic ns>``, ``ITER <index> <finished ns>`` after each iteration, and
``DONE`` once the result is written to OUT. It stops after ``iterations``, or when stdin
is closed or it gets SIGTERM.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from lab.errors import LabError
from lab.nsenter import netns
from lab.traffic.collective import (
    CollectiveRun,
    ConnKey,
    Iteration,
    bus_factor,
    max_min_rates,
    ring_allowed,
)
from lab.traffic.spray import (
    ACK_MARK,
    CS6,
    DEFAULT_PORT,
    MARK,
    SprayConfig,
    SprayEngine,
    SprayFlow,
    SprayPath,
    open_socket,
)

TCP_PORT = 47200
MSS_ROOM = 40 + 20 + 60
"""What the MSS clamp leaves of the host MTU: IPv6 and TCP headers, and 60 bytes for a
headend's SRv6 encapsulation (the 1500-byte runs' clamp of 1380; with the lab's 9216-byte
fabric the encapsulation fits anyway, and the room only costs a few more segments, not
header bytes per payload byte). The MSS excludes options: a segment carries MSS - 12
bytes of data with timestamps (1368 at 1500, 8868 at 9000)."""


def tcp_mss(mtu: int) -> int:
    """The ``TCP_MAXSEG`` clamp for hosts with this MTU."""
    return mtu - MSS_ROOM


SO_MAX_PACING_RATE = 47
PACE_HEADROOM = 1.25
"""Connections are paced this much above their fair share: the NIC (the host link's htb)
stays the limit and a connection that fell behind (a late timer on a loaded machine, a
retransmission) can catch up; at exactly the share, every lost millisecond stayed lost
(flows finished between 0.9x and 1.4x of the ideal, measured)."""
WIRE_OVERHEAD = 14 + 40 + 20 + 12
"""Bytes a TCP segment adds on a host link: Ethernet, IPv6, TCP, timestamps."""


def pacing_rate(pace_mbps: float, mss: int) -> int:
    """``SO_MAX_PACING_RATE`` (payload bytes/s: the kernel paces what it sends, headers not
    counted) that puts ``pace_mbps`` on the wire."""
    return int(pace_mbps * 1e6 / 8 * mss / (mss + WIRE_OVERHEAD))


@dataclass(frozen=True)
class FlowSpec:
    src: int
    dst: int
    src_addr: str
    dst_addr: str
    paths: tuple[SprayPath, ...] = ()
    channel: int = 0
    """TCP: which channel of the transfer from ``src`` to ``dst`` this connection is (its
    channels share the transfer's bytes)."""


@dataclass(frozen=True)
class RunSpec:
    transport: str
    """tcp or spray"""
    pattern: str
    """all-reduce or all-to-all"""
    hosts: tuple[str, ...]
    netns: tuple[str, ...]
    flows: tuple[FlowSpec, ...]
    size: int
    iterations: int
    spray: SprayConfig = field(default_factory=SprayConfig)
    nic_mbps: tuple[tuple[int, str, float], ...] = ()
    """(rank, NIC address, Mbit/s) of the hosts' NICs: the senders pace to them (none:
    unpaced)."""
    pace_headroom: float = PACE_HEADROOM
    """TCP: connections are paced this much above their fair share (see PACE_HEADROOM)."""
    ack_tclass: int = CS6
    """TCP: traffic class of the receiving side (it sends only acks; 0: unmarked)."""
    mtu: int = 1500
    """The hosts' MTU: TCP's MSS clamp follows it (:func:`tcp_mss`); spray's packet size
    is in ``spray``."""

    def nic_rates(self) -> dict[tuple[int, str], float]:
        return {(rank, addr): mbps for rank, addr, mbps in self.nic_mbps}

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> RunSpec:
        raw = json.loads(text)
        flows = tuple(
            FlowSpec(
                f["src"],
                f["dst"],
                f["src_addr"],
                f["dst_addr"],
                tuple(
                    SprayPath(
                        p["index"],
                        tuple(p["nodes"]),
                        p["src_addr"],
                        p["dst_addr"],
                        p["sid"],
                        p["reverse_sid"],
                    )
                    for p in f["paths"]
                ),
                int(f.get("channel", 0)),
            )
            for f in raw["flows"]
        )
        return cls(
            raw["transport"],
            raw["pattern"],
            tuple(raw["hosts"]),
            tuple(raw["netns"]),
            flows,
            int(raw["size"]),
            int(raw["iterations"]),
            SprayConfig(**raw["spray"]),
            tuple((int(r), str(a), float(m)) for r, a, m in raw.get("nic_mbps", ())),
            float(raw.get("pace_headroom", PACE_HEADROOM)),
            int(raw.get("ack_tclass", CS6)),
            int(raw.get("mtu", 1500)),
        )


def _say(text: str) -> None:
    print(text, flush=True)


def _iteration_json(it: Iteration) -> dict[str, Any]:
    return {
        "index": it.index,
        "started_ns": it.started_ns,
        "finished_ns": it.finished_ns,
        "cct_ms": (it.finished_ns - it.started_ns) / 1e6,
        "algbw_GBps": it.algbw_GBps,
        "busbw_GBps": it.busbw_GBps,
        "flow_finished_ms": sorted(
            round((t - it.started_ns) / 1e6, 1) for t in it.flow_finished_ns
        ),
    }


def run_tcp(spec: RunSpec, stop: threading.Event) -> dict[str, Any]:
    n = len(spec.hosts)
    listeners: dict[tuple[int, str], socket.socket] = {}
    pairs: dict[ConnKey, tuple[socket.socket, socket.socket]] = {}
    try:
        for f in spec.flows:
            key = (f.dst, f.dst_addr)
            if key not in listeners:
                with netns(spec.netns[f.dst]):
                    ls = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
                ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if spec.ack_tclass:
                    # Each connection carries data one way: its receiver sends only acks.
                    # Marked as control (DSCP CS6: the lab links' strict-priority lane),
                    # they do not wait behind the data a host sends on its own NIC; they
                    # did (100-200 ms, a standing queue of 30-50 packets), and BBR, its
                    # window sized from a 0.1 ms minimum RTT, was held to its floor of
                    # 12-16 packets per round trip: the connections ran at their share
                    # or under it.
                    ls.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, spec.ack_tclass)
                ls.bind((f.dst_addr, TCP_PORT))
                ls.listen(64)
                ls.settimeout(5.0)
                listeners[key] = ls
        for f in spec.flows:
            with netns(spec.netns[f.src]):
                tx = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            tx.bind((f.src_addr, 0))
            # Full-size segments plus a headend's 40-byte SRv6 encapsulation fit the lab's
            # jumbo fabric links (lab/topo.py FABRIC_MTU) but not a fabric at the hosts'
            # MTU: the clamp (see MSS_ROOM) keeps the 1500-byte figures comparable with
            # runs made before the jumbo fabric.
            tx.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, tcp_mss(spec.mtu))
            tx.settimeout(5.0)
            try:
                tx.connect((f.dst_addr, TCP_PORT))
            except OSError as exc:
                tx.close()
                raise LabError(
                    f"{spec.hosts[f.src]} ({f.src_addr}) cannot connect to "
                    f"{spec.hosts[f.dst]} ({f.dst_addr}): {exc}"
                ) from None
            rx, _peer = listeners[(f.dst, f.dst_addr)].accept()
            tx.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = (f.src, f.dst, f.channel)
            if conn in pairs:
                raise LabError(f"connection {conn} (src, dst, channel) is twice in the spec")
            pairs[conn] = (tx, rx)
        pacer = TcpPacer(spec, pairs) if spec.nic_mbps else None
        try:
            run = CollectiveRun(spec.pattern, n, spec.size, pairs, spec.iterations, pacer=pacer)
        except ValueError as exc:
            raise LabError(f"collective: {exc}") from None
        started = time.monotonic_ns()
        _say(f"READY {started}")
        run.start()
        reported = 0
        while not run.wait(0.02):
            reported = _report_new(run.results, reported)
            if stop.is_set():
                break
        run.stop()
        _report_new(run.results, reported)
        return {"started_ns": started, "iterations": [_iteration_json(i) for i in run.results]}
    finally:
        for ls in listeners.values():
            ls.close()
        for tx, rx in pairs.values():
            tx.close()
            rx.close()


class TcpPacer:
    """Paces every connection at its max-min fair share of the NICs it leaves and enters, among the
    connections still sending, re-computed after transfers finish (so the rest speed up:
    work-conserving; at most every 20 ms, :class:`lab.traffic.collective.Repacing`). A
    collective library over RDMA gets this from the NIC's per queue-pair rate limits and
    congestion control; unpaced, each connection bursts its window into the hosts'
    100-packet queues, they overflow, and losses and queueing delays of 0.5-1 s
    (retransmission timeouts of 1-2 s) set the completion time instead of the links."""

    def __init__(
        self, spec: RunSpec, pairs: dict[ConnKey, tuple[socket.socket, socket.socket]]
    ) -> None:
        caps = spec.nic_rates()
        self.headroom = spec.pace_headroom
        self.caps: dict[tuple[str, int, str], float] = {}
        self.uses: dict[ConnKey, tuple[tuple[str, int, str], ...]] = {}
        self.socks: dict[ConnKey, tuple[socket.socket, int]] = {}
        self.rates: dict[ConnKey, float] = {}
        for f in spec.flows:
            out_nic, in_nic = ("out", f.src, f.src_addr), ("in", f.dst, f.dst_addr)
            self.caps[out_nic] = caps[(f.src, f.src_addr)]
            self.caps[in_nic] = caps[(f.dst, f.dst_addr)]
            key = (f.src, f.dst, f.channel)
            self.uses[key] = (out_nic, in_nic)
            tx = pairs[key][0]
            self.socks[key] = (tx, tx.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG))

    def __call__(self, active: frozenset[ConnKey]) -> None:
        rates = max_min_rates({k: self.uses[k] for k in active}, self.caps)
        for key, mbps in rates.items():
            if abs(self.rates.get(key, 0.0) - mbps) > 1e-9:
                tx, mss = self.socks[key]
                rate = pacing_rate(mbps * self.headroom, mss)
                tx.setsockopt(socket.SOL_SOCKET, SO_MAX_PACING_RATE, rate)
                self.rates[key] = mbps


def _report_new(results: list[Iteration], reported: int) -> int:
    for it in results[reported:]:
        _say(f"ITER {it.index} {it.finished_ns}")
    return len(results)


def run_spray(spec: RunSpec, stop: threading.Event) -> dict[str, Any]:
    n = len(spec.hosts)
    send: dict[tuple[int, str, int], socket.socket] = {}
    recv: dict[int, socket.socket] = {}
    engine: SprayEngine | None = None
    try:
        flows = []
        for i, f in enumerate(spec.flows):
            for p in f.paths:
                for rank, addr, mark in (
                    (f.src, p.src_addr, MARK + p.index),
                    (f.dst, p.dst_addr, ACK_MARK + p.index),
                ):
                    if (rank, addr, mark) not in send:
                        send[(rank, addr, mark)] = open_socket(spec.netns[rank], addr, mark)
            flows.append(SprayFlow(i, f.src, f.dst, f.paths))
        for rank in range(n):
            recv[rank] = open_socket(spec.netns[rank], "::", None, DEFAULT_PORT)
        engine = SprayEngine(flows, send, recv, config=spec.spray, nic_mbps=spec.nic_rates())
        chunk_pkts = max(1, math.ceil(spec.size / n / spec.spray.payload))
        steps = 2 * (n - 1) if spec.pattern == "all-reduce" else 1
        per_iter = steps * chunk_pkts
        by_src = {f.src: f.flow_id for f in flows}
        senders = engine.senders

        if spec.pattern == "all-reduce":

            def delivered(flow_id: int, unique: int) -> None:
                # What a rank received of step k lets it send the same slice of step k+1
                # (within the iteration; the receiver counts packets in any order).
                f = engine.flows[flow_id] if engine else None
                assert f is not None
                it, got = divmod(unique, per_iter)
                if got:
                    nxt = senders[by_src[f.dst]]
                    allowed = it * per_iter + ring_allowed(got, chunk_pkts, steps)
                    nxt.limit = max(nxt.limit, allowed)

            engine.on_delivered = delivered
        results: list[Iteration] = []
        started = time.monotonic_ns()
        _say(f"READY {started}")
        index = 0
        while index < spec.iterations and not stop.is_set():
            base = index * per_iter
            for s in senders.values():
                s.limit = base + (chunk_pkts if steps > 1 else per_iter)
            t0 = time.monotonic_ns()
            goal = base + per_iter
            while not stop.is_set():
                now = time.monotonic_ns()
                engine.timers(now)
                engine.pump(now)
                if all(r.unique >= goal for r in engine.receivers.values()):
                    break
                engine.poll(0.001)
                engine.flush_acks()
            if stop.is_set():
                break
            it = Iteration(index, t0, time.monotonic_ns(), spec.size, n, spec.pattern)
            results.append(it)
            _say(f"ITER {index} {it.finished_ns}")
            index += 1
        return {
            "started_ns": started,
            "iterations": [_iteration_json(i) for i in results],
            "spray": engine.stats(),
            "packet_payload_bytes": spec.spray.payload,
            "packets_per_flow_step": chunk_pkts,
        }
    finally:
        if engine is not None:
            engine.close()
        for sock in [*send.values(), *recv.values()]:
            sock.close()


def main() -> int:
    out = sys.argv[1]
    spec = RunSpec.from_json(sys.stdin.readline())
    bus_factor(spec.pattern, len(spec.hosts))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def watch_stdin() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    sys.setswitchinterval(0.0005)
    runner = run_spray if spec.transport == "spray" else run_tcp
    try:
        profile = os.environ.get("SRV6LAB_COLLECTIVE_PROFILE")
        if profile:  # a cProfile dump of the run, for finding where the CPU goes
            import cProfile

            prof = cProfile.Profile()
            result = prof.runcall(runner, spec, stop)
            prof.dump_stats(profile)
        else:
            result = runner(spec, stop)
    except LabError as exc:
        _say(f"ERROR {exc}")
        return 1
    tmp = f"{out}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(result, fh)
    os.replace(tmp, out)
    _say("DONE")
    return 0


if __name__ == "__main__":
    sys.exit(main())
