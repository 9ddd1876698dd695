"""Probe flows: UDP at a fixed packet rate, every packet stamped with flow id, sequence
number and send time (CLOCK_MONOTONIC ns: one clock for every namespace of the machine).

One sender thread paces every flow on one schedule (tick k at ``start + k / rate``, one
packet per flow per tick). A tick late by a few periods is caught up at once; after a longer
stall the schedule restarts from now rather than bursting the backlog into the network, and
what was not sent counts against "kept up" (the stalls are reported). One receiver thread
waits on every receiving socket and records each
packet's flow, sequence number, send time and arrival time. Sockets are opened in the hosts'
namespaces by the caller (:mod:`lab.nsenter`), so both threads serve every host.
"""

from __future__ import annotations

import os
import selectors
import socket
import struct
import threading
import time
from array import array
from dataclasses import dataclass, field

HEADER = struct.Struct("!IIQ")
"""flow id, sequence number, send time (CLOCK_MONOTONIC ns)."""
PACKET_BYTES = 64
"""UDP payload per probe packet."""
DEFAULT_PORT = 47000
MAX_CATCH_UP = 20
"""A tick later than this many periods is not caught up: the schedule restarts."""
MAX_STALLS_KEPT = 200
KEPT_UP_TOLERANCE = 0.02
"""A generator kept up when it sent at least 98 % of what its schedule asked for."""


@dataclass(frozen=True, slots=True)
class ProbeFlow:
    flow_id: int
    src: str
    src_netns: str
    src_addr: str
    sport: int
    dst: str
    dst_netns: str
    dst_addr: str
    dport: int = DEFAULT_PORT

    @property
    def name(self) -> str:
        return f"{self.src}->{self.dst}:{self.sport}"


@dataclass
class FlowRecord:
    """What one flow sent and what of it arrived."""

    sent: int = 0
    send_errors: int = 0
    seq: array[int] = field(default_factory=lambda: array("q"))
    send_ns: array[int] = field(default_factory=lambda: array("q"))
    recv_ns: array[int] = field(default_factory=lambda: array("q"))


@dataclass
class SenderStats:
    rate_pps: float
    started_ns: int = 0
    stopped_ns: int = 0
    ticks: int = 0
    late_ticks: int = 0
    """Ticks sent more than one period after their time."""
    max_lateness_ns: int = 0
    realtime: str = ""
    """The scheduling class the threads got ("SCHED_FIFO 10", or why not)."""
    stalls: list[tuple[int, int]] = field(default_factory=list)
    """(when due, how late) of ticks the sender could not catch up with (monotonic ns)."""

    @property
    def offered_per_flow(self) -> float:
        """Packets per flow the schedule asked for while the sender ran."""
        return (self.stopped_ns - self.started_ns) * self.rate_pps / 1e9

    def kept_up(self, sent_per_flow: float) -> bool:
        offered = self.offered_per_flow
        return offered > 0 and sent_per_flow >= offered * (1 - KEPT_UP_TOLERANCE)


REALTIME_PRIORITY = 10
"""SCHED_FIFO priority of the receiver with ``realtime`` (the sender gets 10 more)."""


def _realtime(priority: int | None) -> str:
    """Put the calling thread in SCHED_FIFO ``priority`` (None: leave it as it is).

    By default the generator runs at normal priority, below the lab's control processes
    (controller and switchd at nice -10): its sends carry the emulated data plane with
    them (a packet crosses every veth hop in the sender's own softirq), and at SCHED_FIFO
    that data plane took up to 1.6 of the 2 cores ahead of the control plane: a 2-update
    switchd write took 150-390 ms, the kernel's link-watch worker and RCU waited too, and
    the pacing kept up no better (20-36 ms stalls either way; the measurements are in
    README's "Failures, traffic and convergence"). In a real switch the control CPU is not
    the forwarding ASIC. ``realtime`` keeps the old behaviour for comparison."""
    if priority is None:
        return f"normal (nice {os.getpriority(os.PRIO_PROCESS, 0)})"
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except OSError as exc:
        return f"normal (SCHED_FIFO refused: {exc.strerror})"
    return f"SCHED_FIFO {priority}"


class ProbeRun:
    """Send ``flows`` at ``rate_pps`` each from already opened sockets until ``stop()``.

    ``send_socks``: flow id -> unconnected UDP socket in the flow's source namespace (bound
    to its source port). ``recv_socks``: UDP sockets in the destination namespaces."""

    def __init__(
        self,
        flows: list[ProbeFlow],
        rate_pps: float,
        send_socks: dict[int, socket.socket],
        recv_socks: list[socket.socket],
        *,
        realtime: bool = False,
    ) -> None:
        self.flows = flows
        self.realtime = realtime
        self.records = {f.flow_id: FlowRecord() for f in flows}
        self.stats = SenderStats(rate_pps)
        self._send_socks = send_socks
        self._recv_socks = recv_socks
        self._stop = threading.Event()
        self._recv_stop = threading.Event()
        self._sender = threading.Thread(target=self._send_loop, name="probe-send", daemon=True)
        self._receiver = threading.Thread(target=self._recv_loop, name="probe-recv", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        self._receiver.start()
        self._sender.start()

    def stop(self, drain_s: float = 0.2) -> None:
        """Stop sending, let packets in flight arrive for ``drain_s``, stop receiving."""
        self._stop.set()
        self._sender.join()
        deadline = time.monotonic() + drain_s
        self._stop.wait(0)  # (already set) keep the receiver running until the deadline
        while time.monotonic() < deadline and self._receiver.is_alive():
            self._receiver.join(timeout=max(0.0, deadline - time.monotonic()))
        self._recv_stop.set()
        self._receiver.join()
        if self.error is not None:
            raise self.error

    def _send_loop(self) -> None:
        try:
            self.stats.realtime = _realtime(REALTIME_PRIORITY + 10 if self.realtime else None)
            self._send()
        except BaseException as exc:
            self.error = exc
            self._stop.set()

    def _send(self) -> None:
        period = 1e9 / self.stats.rate_pps
        targets = [
            (f.flow_id, self._send_socks[f.flow_id], (f.dst_addr, f.dport), self.records[f.flow_id])
            for f in self.flows
        ]
        buf = bytearray(PACKET_BYTES)
        pack = HEADER.pack_into
        now = time.monotonic_ns
        start = now()
        self.stats.started_ns = start
        anchor, tick, seq = start, 0, 0
        stats = self.stats
        stop = self._stop
        while not stop.is_set():
            due = anchor + int(tick * period)
            t = now()
            if t < due:
                time.sleep((due - t) / 1e9)
                continue
            late = t - due
            if late > period:
                stats.late_ticks += 1
            stats.max_lateness_ns = max(stats.max_lateness_ns, late)
            if late > MAX_CATCH_UP * period:
                # Stalled (CPU): never burst the backlog into the network; start the
                # schedule again from now. What was not sent counts against keeping up.
                if len(stats.stalls) < MAX_STALLS_KEPT:
                    stats.stalls.append((due, late))
                anchor, tick = t, 0
            for flow_id, sock, dest, record in targets:
                pack(buf, 0, flow_id, seq, now())
                try:
                    sock.sendto(buf, dest)
                except OSError:
                    record.send_errors += 1  # no route on the host itself: lost, counted
                record.sent += 1
            tick += 1
            seq += 1
        stats.ticks = seq
        stats.stopped_ns = now()

    def _recv_loop(self) -> None:
        try:
            _realtime(REALTIME_PRIORITY if self.realtime else None)
            self._recv()
        except BaseException as exc:
            self.error = exc

    def _recv(self) -> None:
        sel = selectors.DefaultSelector()
        for sock in self._recv_socks:
            sock.setblocking(False)
            sel.register(sock, selectors.EVENT_READ, sock)
        buf = bytearray(2048)
        unpack = HEADER.unpack_from
        now = time.monotonic_ns
        records = self.records
        size = HEADER.size
        try:
            while not self._recv_stop.is_set():
                for key, _ in sel.select(timeout=0.05):
                    sock = key.data
                    while True:
                        try:
                            n = sock.recv_into(buf)
                        except BlockingIOError:
                            break
                        arrived = now()
                        if n < size:
                            continue
                        flow_id, seq, sent = unpack(buf)
                        record = records.get(flow_id)
                        if record is None:
                            continue  # a stray packet (from an earlier run's flow)
                        record.seq.append(seq)
                        record.send_ns.append(sent)
                        record.recv_ns.append(arrived)
        finally:
            sel.close()
