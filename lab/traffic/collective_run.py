"""The generator process of ``srv6lab bench collectives``: one collective, in one of two
transports, with per-flow addresses (a flow placed on a host's second plane uses that
plane's NIC addresses).

- ``tcp`` (modes ``ecmp`` and ``pinned``): one TCP connection per flow and channel (a
  pinned flow between hosts with a NIC in each of several planes has one channel per
  plane, each between the hosts' NICs in that plane), driven by
  :class:`lab.traffic.collective.CollectiveRun` (ring all-reduce or all-to-all in
  bulk-synchronous iterations).
- ``spray``: the same iterations over :class:`lab.traffic.spray.SprayEngine`, in this
  process or split over worker processes by rank (``spray_workers``; default one per CPU
  core: :class:`SprayWorkers`, :mod:`lab.traffic.spray_partition`), with the barrier
  between iterations through this process.

Protocol (``python -m lab.traffic.collective_run OUT``): the spec (JSON) on stdin; it
prints ``READY <monotonic ns>``, ``ITER <index> <finished ns>`` after each iteration, and
``DONE`` once the result is written to OUT. It stops after ``iterations``, or when stdin
is closed or it gets SIGTERM.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from lab.errors import LabError
from lab.nsenter import netns
from lab.shell import close_pipes, stop_processes
from lab.traffic.collective import (
    CollectiveRun,
    ConnKey,
    DeliveryGaps,
    Iteration,
    bus_factor,
    gap_key,
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
from lab.traffic.spray_partition import (
    IterationBarrier,
    barrier_delays_ms,
    default_workers,
    merge_stats,
    parse_reached,
    partition_ranks,
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
    spray_workers: int = 0
    """Spray: processes that run the hosts' spray, each a part of the ranks (0: one per
    CPU core, at most one per host: :func:`lab.traffic.spray_partition.default_workers`)."""
    oracle_file: str = ""
    """Spray, measurement only: a file the bench writes ``down A B`` / ``up A B`` lines to
    when it fails and restores a link; the engines act on it at once
    (:class:`LinkOracle`). Empty: none (the hosts detect failures themselves)."""

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
            int(raw.get("spray_workers", 0)),
            str(raw.get("oracle_file", "")),
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
        # the same in flow order (spray: the order of the report's paths), which says
        # whose flows were late; the sorted list above does not
        "flow_finished_ms_by_flow": [
            round((t - it.started_ns) / 1e6, 1) for t in it.flow_finished_ns
        ],
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
        return {
            "started_ns": started,
            "iterations": [_iteration_json(i) for i in run.results],
            "delivery_gaps": run.gaps.to_json(),
        }
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


@dataclass(frozen=True)
class SprayShape:
    """How many packets each flow sends per iteration, and when: a ring's flows send
    ``steps`` chunks, released as the previous step's slices arrive; an all-to-all's one
    chunk at once."""

    chunk_pkts: int
    steps: int

    @classmethod
    def of(cls, spec: RunSpec) -> SprayShape:
        n = len(spec.hosts)
        chunk = max(1, math.ceil(spec.size / n / spec.spray.payload))
        return cls(chunk, 2 * (n - 1) if spec.pattern == "all-reduce" else 1)

    @property
    def per_iter(self) -> int:
        return self.steps * self.chunk_pkts

    def first_limit(self, index: int) -> int:
        """Packets a flow may have sent once iteration ``index`` starts."""
        return index * self.per_iter + (self.chunk_pkts if self.steps > 1 else self.per_iter)


class Coordinator(Protocol):
    """The iteration barrier as one set of ranks sees it."""

    def go(self) -> int | None:
        """The last iteration this set of ranks may start (-1: none yet), or None: stop
        (all done, or told to). Never blocks."""
        ...

    def reached(self, index: int, stamp_ns: int, flows_ns: dict[int, int]) -> None:
        """This set's receivers have every packet of iteration ``index`` (at ``stamp_ns``;
        ``flows_ns``: flow id -> when its receiver had all of it)."""
        ...


class LocalBarrier:
    """The barrier of a run in one process: the next iteration starts when this one ends;
    prints ``ITER`` lines."""

    def __init__(self, spec: RunSpec) -> None:
        self.spec = spec
        self.results: list[Iteration] = []
        self._started = [time.monotonic_ns()]
        """When each iteration started (the next one's entry is added when one ends)."""

    @property
    def started_ns(self) -> int:
        """When the run started (its first iteration)."""
        return self._started[0]

    def go(self) -> int | None:
        return len(self._started) - 1 if len(self._started) <= self.spec.iterations else None

    def reached(self, index: int, stamp_ns: int, flows_ns: dict[int, int]) -> None:
        spec = self.spec
        it = Iteration(index, self._started[index], stamp_ns, spec.size, len(spec.hosts),
                       spec.pattern, tuple(flows_ns[f] for f in sorted(flows_ns)))  # fmt: skip
        self.results.append(it)
        _say(f"ITER {index} {stamp_ns}")
        self._started.append(stamp_ns)


def open_spray(
    spec: RunSpec, ranks: Collection[int] | None = None
) -> tuple[SprayEngine, list[socket.socket]]:
    """The engine of ``ranks`` (None: all) with their sockets (the caller closes the
    engine and the sockets, also on error)."""
    send: dict[tuple[int, str, int], socket.socket] = {}
    recv: dict[int, socket.socket] = {}
    owned = set(range(len(spec.hosts))) if ranks is None else set(ranks)
    try:
        flows = []
        for i, f in enumerate(spec.flows):
            for p in f.paths:
                for rank, addr, mark in (
                    (f.src, p.src_addr, MARK + p.index),
                    (f.dst, p.dst_addr, ACK_MARK + p.index),
                ):
                    if rank in owned and (rank, addr, mark) not in send:
                        send[(rank, addr, mark)] = open_socket(spec.netns[rank], addr, mark)
            flows.append(SprayFlow(i, f.src, f.dst, f.paths))
        for rank in sorted(owned):
            recv[rank] = open_socket(spec.netns[rank], "::", None, DEFAULT_PORT)
        engine = SprayEngine(flows, send, recv, config=spec.spray, nic_mbps=spec.nic_rates(),
                             ranks=None if ranks is None else owned)  # fmt: skip
    except BaseException:
        for sock in [*send.values(), *recv.values()]:
            sock.close()
        raise
    return engine, [*send.values(), *recv.values()]


TIMER_TICK = 1_000_000
"""The engine's timers run at most once per ms (ns): a turn that read a burst of
packets came back at once, and judging every path of every flow again each time cost a
CPU-bound spray process 14 % of its time (py-spy); the timers work in steps of 5 ms and
more."""


class LinkOracle:
    """Reads :attr:`RunSpec.oracle_file` (when it changed) and tells the engine of each
    new line (:meth:`SprayEngine.link_news`)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.stamp = 0
        self.applied = 0

    def poll(self, engine: SprayEngine) -> None:
        try:
            stamp = os.stat(self.path).st_mtime_ns
        except FileNotFoundError:
            return
        if stamp == self.stamp:
            return
        self.stamp = stamp
        with open(self.path, encoding="utf-8") as f:
            lines = f.read().splitlines()
        for number, line in enumerate(lines[self.applied :], self.applied + 1):
            words = line.split()
            if len(words) != 3 or words[0] not in ("down", "up"):
                raise LabError(
                    f"{self.path}, line {number}: {line!r}: expected 'down A B' or 'up A B'"
                )
            engine.link_news(words[1], words[2], up=words[0] == "up")
        self.applied = len(lines)


def spray_rounds(
    spec: RunSpec,
    engine: SprayEngine,
    barrier: Coordinator,
    stop: threading.Event,
    gaps: DeliveryGaps | None = None,
) -> int:
    """Run the engine's ranks through the iterations the barrier allows: send, receive,
    ack; report each iteration once this engine's receivers have all of it, and keep
    receiving and acking (the other ranks' senders need it) until told to stop.
    ``gaps``: where this engine's receivers' delivery gaps go."""
    shape = SprayShape.of(spec)
    senders = engine.senders
    by_src = {s.flow.src: s for s in senders.values()}
    names = {i: gap_key(f.src, f.dst) for i, f in engine.flows.items()}
    started = reported = -1

    def delivered(flow_id: int, unique: int) -> None:
        if gaps is not None:
            gaps.delivered(names[flow_id], time.monotonic_ns())
            if unique >= (started + 1) * shape.per_iter:
                gaps.settled(names[flow_id])
        if spec.pattern != "all-reduce":
            return
        # What a rank received of step k lets it send the same slice of step k+1
        # (within the iteration; the receiver counts packets in any order). The
        # receiving rank's sender runs in this engine (its ranks are whole).
        it, got = divmod(unique, shape.per_iter)
        if got:
            nxt = by_src[engine.flows[flow_id].dst]
            allowed = it * shape.per_iter + ring_allowed(got, shape.chunk_pkts, shape.steps)
            nxt.limit = max(nxt.limit, allowed)

    if gaps is not None or spec.pattern == "all-reduce":
        engine.on_delivered = delivered
    receivers = list(engine.receivers.values())
    oracle = LinkOracle(spec.oracle_file) if spec.oracle_file else None
    timed = turns = 0
    done: dict[int, int] = {}
    """Flow id -> when its receiver had all of the iteration being watched."""
    while not stop.is_set():
        allowed = barrier.go()
        if allowed is None:
            break
        while started < allowed:
            started += 1
            for s in senders.values():
                # max: a ring's receiver may have let its sender into this iteration
                # before the go arrived (another worker's ranks started it first)
                s.limit = max(s.limit, shape.first_limit(started))
            if gaps is not None:
                go_ns = time.monotonic_ns()
                for r in receivers:
                    if r.unique < (started + 1) * shape.per_iter:
                        gaps.owed(names[r.flow.flow_id], go_ns)
        now = time.monotonic_ns()
        turns += 1
        if now - timed >= TIMER_TICK:
            if oracle is not None:
                oracle.poll(engine)
            engine.timers(now)
            timed = now
        engine.pump(now)
        if reported < started:
            goal = (reported + 2) * shape.per_iter
            for r in receivers:
                if r.unique >= goal and r.flow.flow_id not in done:
                    done[r.flow.flow_id] = now
            if len(done) == len(receivers):
                reported += 1
                barrier.reached(reported, time.monotonic_ns(), done)
                done = {}
                continue
        engine.poll(0.001)
        engine.flush_acks()
    return turns


def _spray_result(
    spec: RunSpec, started: int, results: list[Iteration], stats: dict[str, Any]
) -> dict[str, Any]:
    return {
        "started_ns": started,
        "iterations": [_iteration_json(i) for i in results],
        "spray": stats,
        "packet_payload_bytes": spec.spray.payload,
        "packets_per_flow_step": SprayShape.of(spec).chunk_pkts,
    }


def run_spray(spec: RunSpec, stop: threading.Event) -> dict[str, Any]:
    """Spray in this process (one worker), or over worker processes
    (:mod:`lab.traffic.spray_worker`), each running a part of the ranks."""
    n = len(spec.hosts)
    workers = spec.spray_workers or default_workers(n)
    if workers > 1:
        parts = partition_ranks(n, [(f.src, f.dst) for f in spec.flows], min(workers, n))
        with SprayWorkers(spec, parts) as pool:
            return pool.run(stop)
    engine, socks = open_spray(spec)
    try:
        barrier = LocalBarrier(spec)
        started = barrier.started_ns
        _say(f"READY {started}")
        gaps = DeliveryGaps()
        turns = spray_rounds(spec, engine, barrier, stop, gaps)
        stats = {
            **engine.stats(),
            "turns": turns,
            "workers": [list(range(n))],
            "delivery_gaps": gaps.to_json(),
        }
        return _spray_result(spec, started, barrier.results, stats)
    finally:
        engine.close()
        for sock in socks:
            sock.close()


class SprayWorkers:
    """The worker processes of a spray run (``python -m lab.traffic.spray_worker``), one
    per part of the ranks, and the iteration barrier between them over their pipes: a
    worker prints ``REACHED <index> <ns> <flow>:<ns>,...`` when its receivers have an
    iteration; once all have, this process prints ``ITER`` and sends every worker ``GO
    <next>``; closing a worker's stdin stops it, and it prints ``RESULT <its stats as
    JSON>``. The workers are terminated on exit (also on error); each also stops when this
    process dies (its stdin closes, and a parent-death signal)."""

    def __init__(self, spec: RunSpec, parts: tuple[tuple[int, ...], ...]) -> None:
        self.spec = spec
        self.parts = parts
        self.procs: list[subprocess.Popen[bytes]] = []
        self.lines: list[LineReader] = []
        self.errs: list[Any] = []

    def __enter__(self) -> SprayWorkers:
        try:
            for i, ranks in enumerate(self.parts):
                err = tempfile.TemporaryFile()
                self.errs.append(err)
                proc = subprocess.Popen(
                    [sys.executable, "-m", "lab.traffic.spray_worker"],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, bufsize=0,
                )  # fmt: skip
                self.procs.append(proc)
                assert proc.stdin is not None and proc.stdout is not None
                self.lines.append(LineReader(proc.stdout.fileno()))
                head = {"worker": i, "ranks": list(ranks), "parent": os.getpid()}
                proc.stdin.write(f"{self.spec.to_json()}\n{json.dumps(head)}\n".encode())
            for i in range(len(self.procs)):
                self._expect(i, "READY", 60.0)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        for proc in self.procs:
            if proc.stdin is not None and not proc.stdin.closed:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
        stop_processes(self.procs)
        for proc in self.procs:
            close_pipes(proc)
        for err in self.errs:
            err.close()

    def _fail(self, i: int, what: str) -> LabError:
        proc = self.procs[i]
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=2.0)
        self.errs[i].seek(0)
        tail = self.errs[i].read().decode(errors="replace").strip()[-2000:]
        status = "running" if proc.poll() is None else f"exit status {proc.returncode}"
        return LabError(
            f"spray worker {i} (ranks {', '.join(map(str, self.parts[i]))}): {what} "
            f"({status}){': ' + tail if tail else ''}"
        )

    def _expect(self, i: int, word: str, timeout: float) -> str:
        """The next line of worker ``i``, which must start with ``word``: its rest."""
        line = self.lines[i].line(timeout)
        if line is None:
            raise self._fail(i, f"no {word} in {timeout:.0f} s")
        if line == "" or not line.startswith(word):
            raise self._fail(i, f"said {line[:500]!r}, not {word}" if line else "exited")
        return line[len(word) :].strip()

    def _go(self, index: int) -> None:
        for i, proc in enumerate(self.procs):
            assert proc.stdin is not None
            try:
                proc.stdin.write(f"GO {index}\n".encode())
            except OSError as exc:
                raise self._fail(i, f"cannot take GO {index}: {exc}") from None

    def run(self, stop: threading.Event) -> dict[str, Any]:
        spec = self.spec
        barrier = IterationBarrier(len(self.procs))
        results: list[Iteration] = []
        started = time.monotonic_ns()
        _say(f"READY {started}")
        start_of = {0: time.monotonic_ns()}
        self._go(0)
        fds = {reader.fd: i for i, reader in enumerate(self.lines)}
        while len(results) < spec.iterations and not stop.is_set():
            ready = [fds[fd] for fd in select.select(list(fds), [], [], 0.05)[0]]
            for i in ready:
                for line in self.lines[i].available():
                    try:
                        index, stamp, flows_ns = parse_reached(line)
                    except ValueError as exc:
                        raise self._fail(i, str(exc)) from None
                    finished = barrier.report(i, index, stamp, flows_ns)
                    if finished is None:
                        continue
                    it = Iteration(index, start_of[index], finished, spec.size,
                                   len(spec.hosts), spec.pattern,
                                   barrier.flow_finished(index))  # fmt: skip
                    results.append(it)
                    _say(f"ITER {index} {finished}")
                    if index + 1 < spec.iterations:
                        start_of[index + 1] = finished
                        self._go(index + 1)
                if self.lines[i].eof:
                    raise self._fail(i, "exited during the run")
        stats = []
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.close()
        for i in range(len(self.procs)):
            while True:  # REACHED lines may still come after a stop
                line = self._expect(i, "", 30.0)
                if line.startswith("RESULT "):
                    stats.append(json.loads(line[len("RESULT ") :]))
                    break
                if not line.startswith("REACHED "):
                    raise self._fail(i, f"said {line[:500]!r}, not RESULT")
        merged = merge_stats(stats, self.parts)
        go_ns = [{int(k): int(v) for k, v in s.get("go_ns", {}).items()} for s in stats]
        merged["barrier_ms"] = barrier_delays_ms([it.finished_ns for it in results], go_ns)
        return _spray_result(spec, started, results, merged)


class LineReader:
    """Lines from a pipe without blocking past a timeout (a worker's stdout)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = b""
        self.eof = False
        self.pending: list[str] = []

    def _read(self) -> None:
        data = os.read(self.fd, 1 << 20)
        if not data:
            self.eof = True
        self.buf += data
        *done, self.buf = self.buf.split(b"\n")
        self.pending.extend(d.decode() for d in done)

    def available(self) -> list[str]:
        """The complete lines there are now (after one read: call when readable)."""
        if not self.eof:
            self._read()
        out, self.pending = self.pending, []
        return out

    def line(self, timeout: float) -> str | None:
        """The next line; "" at end of file; None after ``timeout`` s without one."""
        deadline = time.monotonic() + timeout
        while not self.pending:
            if self.eof:
                return ""
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                return None
            self._read()
        return self.pending.pop(0)


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
