"""GPU-like collectives over TCP among GPU hosts, in bulk-synchronous iterations: ring
all-reduce and all-to-all, timed as nccl-tests times them.

``size`` is the bytes per rank of one iteration (nccl-tests' "size"):

- ring all-reduce: 2(n-1) steps; in each, every rank sends ``size/n`` bytes to the next
  rank of the ring. A rank sends a slice of step k once it has received that slice of
  step k-1 from the previous rank (the ring's data dependency, pipelined in
  ``RING_SLICES`` slices per step as NCCL does). algbw = size / time; busbw = algbw * 2(n-1)/n.
- all-to-all: every rank sends ``size/n`` bytes to every other rank, all at once.
  algbw = size / time; busbw = algbw * (n-1)/n.

A transfer may run over several channels (NCCL's channels: one connection per NIC of a
host with a NIC in each of several planes), each carrying its share of the bytes
(:func:`channel_bytes`); a ring pipelines each channel on its own (channel c of a rank
forwards what arrived on channel c from the previous rank).

An iteration ends when its slowest transfer has arrived; the next one starts then. TCP over
the lab's htb-capped links gives real congestion. One thread drives every socket with a
selector; sockets are opened in the ranks' namespaces by the caller.
"""

from __future__ import annotations

import selectors
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

K = TypeVar("K")
R = TypeVar("R")

PATTERNS = ("all-reduce", "all-to-all")
CHUNK = 256 * 1024
DEFAULT_PORT = 47100
RING_SLICES = 8

ConnKey = tuple[int, int, int]
"""A connection of a collective: (source rank, destination rank, channel)."""

REPACE_INTERVAL_NS = 20_000_000
"""At most one re-pacing per 20 ms (see :class:`Repacing`)."""


GAP_MIN_NS = 20_000_000
"""Delivery gaps shorter than 20 ms are not kept: a connection paced to its share of a
30 Mbit/s NIC shared by 7 gets a 9 KB segment every ~17 ms."""


def gap_key(src: int, dst: int, channel: int = 0) -> str:
    """A flow's name in :class:`DeliveryGaps`' JSON: ``src-dst-channel`` (ranks)."""
    return f"{src}-{dst}-{channel}"


@dataclass(slots=True)
class DeliveryGaps:
    """Per flow of a collective, the spans in which it was owed data and none arrived,
    ``min_ns`` or longer: its loss windows, as a probe flow's (a failure shows as the
    longest span across it). A flow is owed data from an iteration's start (:meth:`owed`)
    until it has all of it (:meth:`settled`); the wait for the iteration's slowest flow is
    not a gap. Fed timestamps by the traffic loop; pure."""

    min_ns: int = GAP_MIN_NS
    gaps: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    since: dict[str, int] = field(default_factory=dict)
    """Flow -> its last delivery (or its iteration's start), while it is owed data."""

    def owed(self, key: str, now_ns: int) -> None:
        self.since.setdefault(key, now_ns)

    def delivered(self, key: str, now_ns: int) -> None:
        since = self.since.get(key)
        if since is None:
            return
        if now_ns - since >= self.min_ns:
            self.gaps.setdefault(key, []).append((since, now_ns))
        self.since[key] = now_ns

    def settled(self, key: str) -> None:
        self.since.pop(key, None)

    def to_json(self) -> dict[str, list[list[int]]]:
        return {k: [[a, b] for a, b in v] for k, v in sorted(self.gaps.items())}


@dataclass(slots=True)
class Repacing:
    """When to re-pace after transfers finish: the first finish after ``interval_ns`` of
    quiet re-paces at once, and the finishes that come sooner are coalesced into one
    re-pacing ``interval_ns`` after the last.

    Why: the pacer (max-min over every connection still running, then a setsockopt per
    changed rate) runs on the one thread that also reads every socket, and an
    all-to-all's transfers finish in a burst at the end of each iteration. On
    gpu-pod-2plane (112 connections) re-pacing on every finish kept that thread busy
    while the last bytes waited to be read: 1.18-1.24x the ideal, and 1.06-1.07 without
    re-pacing after the start (README, Collectives). Transfers a few ms apart need not
    be paced one by one: a NIC's htb already shares what a finished one leaves among the
    others, up to their pacing headroom."""

    interval_ns: int = REPACE_INTERVAL_NS
    pending: bool = False
    last_ns: int | None = None

    def paced(self, now_ns: int) -> None:
        """The connections were paced at ``now_ns`` (an iteration's start)."""
        self.pending = False
        self.last_ns = now_ns

    def finished(self) -> None:
        """A transfer finished: the others' shares changed."""
        self.pending = True

    def due(self, now_ns: int) -> bool:
        """Whether to re-pace now; if so, counts it as done."""
        if not self.pending:
            return False
        if self.last_ns is not None and now_ns - self.last_ns < self.interval_ns:
            return False
        self.paced(now_ns)
        return True

    def wait_s(self, now_ns: int, longest_s: float) -> float:
        """How long the socket loop may block before a pending re-pacing is due."""
        if not self.pending or self.last_ns is None:
            return longest_s
        left = (self.last_ns + self.interval_ns - now_ns) / 1e9
        return min(longest_s, max(0.0, left))


def channel_bytes(total: int, channels: int) -> list[int]:
    """``total`` bytes split over ``channels`` as evenly as whole bytes allow (the first
    channels carry the remainder)."""
    if channels < 1:
        raise ValueError(f"a transfer needs at least 1 channel, got {channels}")
    base, extra = divmod(total, channels)
    return [base + (1 if c < extra else 0) for c in range(channels)]


def bus_factor(pattern: str, n: int) -> float:
    """nccl-tests' busbw / algbw ratio."""
    if pattern == "all-reduce":
        return 2 * (n - 1) / n
    if pattern == "all-to-all":
        return (n - 1) / n
    raise ValueError(f"unknown collective {pattern!r}; known: {', '.join(PATTERNS)}")


def transfers(pattern: str, n: int) -> list[tuple[int, int]]:
    """The (src rank, dst rank) connections a collective needs."""
    if pattern == "all-reduce":
        return [(r, (r + 1) % n) for r in range(n)]
    if pattern == "all-to-all":
        return [(r, s) for r in range(n) for s in range(n) if r != s]
    raise ValueError(f"unknown collective {pattern!r}; known: {', '.join(PATTERNS)}")


def ring_allowed(received: int, chunk: int, steps: int, slices: int = RING_SLICES) -> int:
    """Bytes a ring rank may have sent in an iteration once it has received ``received``
    from its predecessor: step 0 at once, and each slice of step k once the same slice of
    step k-1 has arrived (NCCL pipelines a ring step in slices; waiting for whole steps
    would add a path's latency and a chunk's store-and-forward to every one of the
    2(n-1) steps)."""
    ready = min(received, (steps - 1) * chunk)
    step, offset = divmod(ready, chunk)
    piece = max(1, -(-chunk // slices))
    return chunk + step * chunk + (offset // piece) * piece


def max_min_rates(uses: Mapping[K, Iterable[R]], caps: Mapping[R, float]) -> dict[K, float]:
    """Max-min fair rates (progressive filling): ``uses`` maps each flow to the resources
    it crosses, ``caps`` each resource to its capacity. The resource with the smallest
    fair share fixes the rate of its flows; repeat with what is left."""
    left = dict(caps)
    todo = {k: tuple(rs) for k, rs in uses.items()}
    rates: dict[K, float] = {}
    while todo:
        count: dict[R, int] = {}
        for rs in todo.values():
            for r in rs:
                count[r] = count.get(r, 0) + 1
        tight = min(count, key=lambda r: left[r] / count[r])
        share = max(0.0, left[tight] / count[tight])
        for k in [k for k, rs in todo.items() if tight in rs]:
            rates[k] = share
            for r in todo.pop(k):
                left[r] -= share
    return rates


@dataclass(frozen=True, slots=True)
class Iteration:
    index: int
    started_ns: int
    finished_ns: int
    size: int
    n: int
    pattern: str
    flow_finished_ns: tuple[int, ...] = ()
    """When each connection's last byte arrived (in (src, dst, channel) order): stragglers
    show here."""

    @property
    def seconds(self) -> float:
        return (self.finished_ns - self.started_ns) / 1e9

    @property
    def algbw_GBps(self) -> float:
        return self.size / self.seconds / 1e9

    @property
    def busbw_GBps(self) -> float:
        return self.algbw_GBps * bus_factor(self.pattern, self.n)


@dataclass
class _Conn:
    src: int
    dst: int
    channel: int
    chunk: int
    """This channel's bytes of one step."""
    tx: socket.socket
    rx: socket.socket
    allowed: int = 0
    sent: int = 0
    received: int = 0


@dataclass
class CollectiveRun:
    """Run ``pattern`` among n ranks on connected socket pairs until ``stop()`` or
    ``iterations`` are done. ``pairs``: (src, dst, channel) -> (sending socket, receiving
    socket); a transfer's channels are numbered from 0 and share its bytes
    (:func:`channel_bytes`); in a ring, every rank receives on as many channels as it
    sends."""

    pattern: str
    n: int
    size: int
    pairs: dict[ConnKey, tuple[socket.socket, socket.socket]]
    iterations: int | None = None
    pacer: Callable[[frozenset[ConnKey]], None] | None = None
    """Called with the connections still receiving: at each iteration's start and when
    one finishes (see lab.traffic.collective_run.TcpPacer)."""
    results: list[Iteration] = field(default_factory=list)
    error: BaseException | None = None
    gaps: DeliveryGaps = field(default_factory=DeliveryGaps)
    """Every connection's delivery gaps (keys: :func:`gap_key`)."""

    def __post_init__(self) -> None:
        bus_factor(self.pattern, self.n)
        count = Counter((s, d) for s, d, _ in self.pairs)
        for (s, d), k in sorted(count.items()):
            got = sorted(c for a, b, c in self.pairs if (a, b) == (s, d))
            if got != list(range(k)):
                raise ValueError(f"rank {s} -> {d}: channels must be 0..{k - 1}, got {got}")
            if self.size // self.n < k:
                raise ValueError(f"size {self.size}: too small for {k} channels per transfer")
            if self.pattern == "all-reduce":
                into = [k2 for (a, b), k2 in count.items() if b == s]
                if into and into != [k]:
                    raise ValueError(
                        f"ring: rank {s} receives on {into[0]} channels but sends on {k}; "
                        "each channel forwards what arrived on the same channel"
                    )
        self._channels = dict(count)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="collective", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop after the iteration in progress is abandoned (it is not reported)."""
        self._stop.set()
        self._thread.join()
        if self.error is not None:
            raise self.error

    def wait(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _loop(self) -> None:
        try:
            self._run()
        except BaseException as exc:
            self.error = exc

    def _run(self) -> None:
        chunk = max(1, self.size // self.n)
        steps = 2 * (self.n - 1) if self.pattern == "all-reduce" else 1
        conns = [
            _Conn(s, d, ch, channel_bytes(chunk, self._channels[(s, d)])[ch], tx, rx)
            for (s, d, ch), (tx, rx) in sorted(self.pairs.items())
        ]
        names = {id(c): gap_key(c.src, c.dst, c.channel) for c in conns}
        # ring: one outgoing transfer per rank, one connection per channel
        by_src = {(c.src, c.channel): c for c in conns}
        sel = selectors.DefaultSelector()
        for c in conns:
            c.tx.setblocking(False)
            c.rx.setblocking(False)
            sel.register(c.rx, selectors.EVENT_READ, (c, "rx"))
        zeros = memoryview(bytes(CHUNK))
        scratch = bytearray(CHUNK)
        index = 0
        try:
            while not self._stop.is_set() and (self.iterations is None or index < self.iterations):
                for c in conns:
                    c.sent = c.received = 0
                    c.allowed = c.chunk  # step 0 (all-to-all: its only step)
                    self._want_write(sel, c, True)
                started = time.monotonic_ns()
                for c in conns:
                    self.gaps.owed(names[id(c)], started)
                active = frozenset((c.src, c.dst, c.channel) for c in conns)
                finished: dict[ConnKey, int] = {}
                repacing = Repacing()
                if self.pacer is not None:
                    self.pacer(active)
                    repacing.paced(time.monotonic_ns())
                while any(c.received < steps * c.chunk for c in conns):
                    if self._stop.is_set():
                        return
                    wait = repacing.wait_s(time.monotonic_ns(), 0.05)
                    for key, _events in sel.select(timeout=wait):
                        c, side = key.data
                        if side == "tx":
                            room = c.allowed - c.sent
                            try:
                                n = c.tx.send(zeros[: min(room, CHUNK)])
                            except BlockingIOError:
                                continue
                            c.sent += n
                            if c.sent >= c.allowed:
                                self._want_write(sel, c, False)
                            continue
                        try:
                            n = c.rx.recv_into(scratch)
                        except BlockingIOError:
                            continue
                        if n == 0:
                            raise ConnectionError(f"rank {c.src} -> {c.dst}: connection closed")
                        c.received += n
                        now = time.monotonic_ns()
                        self.gaps.delivered(names[id(c)], now)
                        conn = (c.src, c.dst, c.channel)
                        if c.received >= steps * c.chunk and conn not in finished:
                            finished[conn] = now
                            self.gaps.settled(names[id(c)])
                            active = active - {conn}
                            repacing.finished()
                        if self.pattern == "all-reduce":
                            out = by_src[(c.dst, c.channel)]
                            allowed = ring_allowed(c.received, c.chunk, steps)
                            if allowed > out.allowed:
                                out.allowed = allowed
                                self._want_write(sel, out, True)
                    if active and self.pacer is not None and repacing.due(time.monotonic_ns()):
                        self.pacer(active)
                self.results.append(
                    Iteration(
                        index,
                        started,
                        time.monotonic_ns(),
                        self.size,
                        self.n,
                        self.pattern,
                        tuple(finished[(c.src, c.dst, c.channel)] for c in conns),
                    )
                )
                index += 1
        finally:
            sel.close()

    @staticmethod
    def _want_write(sel: selectors.BaseSelector, c: _Conn, on: bool) -> None:
        key = (c, "tx")
        try:
            sel.get_key(c.tx)
            registered = True
        except KeyError:
            registered = False
        if on and not registered and c.sent < c.allowed:
            sel.register(c.tx, selectors.EVENT_WRITE, key)
        elif not on and registered:
            sel.unregister(c.tx)
