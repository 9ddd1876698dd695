"""The traffic generator process: one per run, whatever the number of hosts. It opens every
socket inside its host's namespace (:mod:`lab.nsenter`), runs the probe flows and the
collective on threads, and writes what it saw as JSON.

Protocol (``python -m lab.traffic.generator``): the spec (JSON, :class:`TrafficSpec`) on
stdin, then stdin stays open; it prints ``READY <monotonic ns>`` once traffic flows, and
stops when ``duration_s`` has passed, stdin is closed, it gets SIGTERM, or (with no probe
flows) the collective has done its iterations; it writes the
result file and prints ``DONE``. :class:`TrafficGenerator` drives it from the lab.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from lab.errors import LabError
from lab.nsenter import netns
from lab.shell import close_pipes, stop_processes
from lab.traffic.collective import DEFAULT_PORT as COLLECTIVE_PORT
from lab.traffic.collective import CollectiveRun, ConnKey, transfers
from lab.traffic.probe import ProbeFlow, ProbeRun

READY_TIMEOUT = 30.0
RCVBUF = 8 * 1024 * 1024
SO_RCVBUFFORCE = 33


@dataclass(frozen=True, slots=True)
class Rank:
    host: str
    netns: str
    addr: str


@dataclass(frozen=True)
class CollectiveSpec:
    pattern: str
    ranks: tuple[Rank, ...]
    size: int
    """Bytes per rank per iteration (nccl-tests' size)."""
    iterations: int | None = None
    port: int = COLLECTIVE_PORT


@dataclass(frozen=True)
class TrafficSpec:
    duration_s: float
    rate_pps: float = 1000.0
    flows: tuple[ProbeFlow, ...] = ()
    collective: CollectiveSpec | None = None
    realtime: bool = False
    """Probe sender and receiver at SCHED_FIFO (lab.traffic.probe._realtime says why not
    by default)."""

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> TrafficSpec:
        raw = json.loads(text)
        coll = raw.get("collective")
        return cls(
            duration_s=float(raw["duration_s"]),
            rate_pps=float(raw["rate_pps"]),
            flows=tuple(ProbeFlow(**f) for f in raw["flows"]),
            collective=None
            if coll is None
            else CollectiveSpec(
                pattern=coll["pattern"],
                ranks=tuple(Rank(**r) for r in coll["ranks"]),
                size=int(coll["size"]),
                iterations=coll.get("iterations"),
                port=int(coll.get("port", COLLECTIVE_PORT)),
            ),
            realtime=bool(raw.get("realtime", False)),
        )


@dataclass
class TrafficResult:
    """What a generator run saw. Times are CLOCK_MONOTONIC ns."""

    rate_pps: float
    started_ns: int
    stopped_ns: int
    flows: list[dict[str, Any]] = field(default_factory=list)
    """Per flow: the ProbeFlow fields, sent, send_errors, seq, send_ns, recv_ns."""
    sender: dict[str, Any] = field(default_factory=dict)
    collective: dict[str, Any] | None = None

    @classmethod
    def load(cls, path: Path) -> TrafficResult:
        return cls(**json.loads(path.read_text(encoding="utf-8")))


# -- inside the generator process ---------------------------------------------------------


def _udp(ns: str, port: int, receive: bool) -> socket.socket:
    with netns(ns):
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if receive:
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)
        except PermissionError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    sock.bind(("::", port))
    return sock


def _open_probe(spec: TrafficSpec) -> tuple[dict[int, socket.socket], list[socket.socket]]:
    send = {f.flow_id: _udp(f.src_netns, f.sport, receive=False) for f in spec.flows}
    receivers = sorted({(f.dst_netns, f.dport) for f in spec.flows})
    return send, [_udp(ns, port, receive=True) for ns, port in receivers]


def _open_collective(
    spec: CollectiveSpec,
) -> tuple[dict[ConnKey, tuple[socket.socket, socket.socket]], list[socket.socket]]:
    listeners = []
    for rank in spec.ranks:
        with netns(rank.netns):
            lsock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind((rank.addr, spec.port))
        lsock.listen(64)
        listeners.append(lsock)
    pairs: dict[ConnKey, tuple[socket.socket, socket.socket]] = {}
    for src, dst in transfers(spec.pattern, len(spec.ranks)):
        with netns(spec.ranks[src].netns):
            tx = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        tx.bind((spec.ranks[src].addr, 0))
        tx.settimeout(5.0)
        try:
            tx.connect((spec.ranks[dst].addr, spec.port))
        except OSError as exc:
            raise LabError(
                f"collective: {spec.ranks[src].host} cannot connect to "
                f"{spec.ranks[dst].host} ({spec.ranks[dst].addr}): {exc}"
            ) from None
        listeners[dst].settimeout(5.0)
        rx, peer = listeners[dst].accept()
        if peer[0] != spec.ranks[src].addr:
            raise LabError(f"collective: unexpected connection from {peer[0]}")
        tx.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pairs[(src, dst, 0)] = (tx, rx)  # one channel per transfer
    return pairs, listeners


def run(spec: TrafficSpec, out: Path, stop: threading.Event) -> TrafficResult:
    sys.setswitchinterval(0.0005)  # the pacing thread must not wait 5 ms for the GIL
    send, recv = _open_probe(spec)
    pairs: dict[ConnKey, tuple[socket.socket, socket.socket]] = {}
    listeners: list[socket.socket] = []
    coll_run = None
    try:
        if spec.collective is not None:
            pairs, listeners = _open_collective(spec.collective)
            coll_run = CollectiveRun(
                spec.collective.pattern,
                len(spec.collective.ranks),
                spec.collective.size,
                pairs,
                spec.collective.iterations,
            )
        probe = (
            ProbeRun(list(spec.flows), spec.rate_pps, send, recv, realtime=spec.realtime)
            if spec.flows
            else None
        )
        started = time.monotonic_ns()
        if probe is not None:
            probe.start()
        if coll_run is not None:
            coll_run.start()
        print(f"READY {started}", flush=True)
        deadline = time.monotonic() + spec.duration_s
        while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
            if probe is None and coll_run is not None and coll_run.wait(0):
                break  # a collective alone, done with its iterations
            stop.wait(min(left, 0.05))
        if coll_run is not None:
            coll_run.stop()
        if probe is not None:
            probe.stop()
        stopped = time.monotonic_ns()
        result = TrafficResult(spec.rate_pps, started, stopped)
        if probe is not None:
            result.sender = asdict(probe.stats)
            for f in spec.flows:
                rec = probe.records[f.flow_id]
                result.flows.append(
                    {
                        **asdict(f),
                        "sent": rec.sent,
                        "send_errors": rec.send_errors,
                        "seq": rec.seq.tolist(),
                        "send_ns": rec.send_ns.tolist(),
                        "recv_ns": rec.recv_ns.tolist(),
                    }
                )
        if coll_run is not None and spec.collective is not None:
            result.collective = {
                "pattern": spec.collective.pattern,
                "hosts": [r.host for r in spec.collective.ranks],
                "size_bytes": spec.collective.size,
                "iterations": [
                    {
                        "index": it.index,
                        "started_ns": it.started_ns,
                        "finished_ns": it.finished_ns,
                        "seconds": it.seconds,
                        "algbw_GBps": it.algbw_GBps,
                        "busbw_GBps": it.busbw_GBps,
                    }
                    for it in coll_run.results
                ],
            }
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text(json.dumps(asdict(result)), encoding="utf-8")
        os.replace(tmp, out)
        return result
    finally:
        for sock in [*send.values(), *recv, *listeners]:
            sock.close()
        for tx, rx in pairs.values():
            tx.close()
            rx.close()


def main() -> int:
    out = Path(sys.argv[1])
    spec = TrafficSpec.from_json(sys.stdin.readline())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def watch_stdin() -> None:
        sys.stdin.read()  # returns when the parent closes stdin (or dies)
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    try:
        run(spec, out, stop)
    except LabError as exc:
        print(f"ERROR {exc}", flush=True)
        return 1
    print("DONE", flush=True)
    return 0


# -- in the lab ----------------------------------------------------------------------------


class TrafficGenerator:
    """Start the generator process for ``spec``; ``ready`` is when traffic started
    (monotonic ns); ``finish()`` waits for the end and returns the result. Leaving the
    ``with`` block stops it, also on errors."""

    def __init__(self, spec: TrafficSpec, out: Path) -> None:
        self.spec = spec
        self.out = out
        self.proc: subprocess.Popen[str] | None = None
        self.ready_ns = 0

    def __enter__(self) -> TrafficGenerator:
        self.out.unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lab.traffic.generator", str(self.out)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(self.spec.to_json() + "\n")
        self.proc.stdin.flush()
        line = self._line(READY_TIMEOUT)
        if not line.startswith("READY "):
            self._kill()
            raise LabError(f"traffic generator did not start: {line or self._stderr()}")
        self.ready_ns = int(line.split()[1])
        return self

    def _line(self, timeout: float) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            return ""
        return self.proc.stdout.readline().strip()

    def _stderr(self) -> str:
        assert self.proc is not None
        if self.proc.poll() is None or self.proc.stderr is None:
            return "(no output)"
        return self.proc.stderr.read().strip()[-2000:] or f"exit status {self.proc.returncode}"

    def finish(self, timeout: float | None = None) -> TrafficResult:
        """Wait until the run ends (``duration_s``) and return what it saw."""
        assert self.proc is not None
        limit = timeout if timeout is not None else self.spec.duration_s + 30
        line = self._line(limit)
        if line != "DONE":
            detail = line or self._stderr()
            self._kill()
            raise LabError(f"traffic generator failed: {detail}")
        self.proc.wait(timeout=10)
        return TrafficResult.load(self.out)

    def stop(self) -> TrafficResult:
        """End the run now (it still writes its result)."""
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.close()
        return self.finish()

    def _kill(self) -> None:
        if self.proc is not None:
            stop_processes([self.proc])

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self._kill()
        if self.proc is not None:
            close_pipes(self.proc)


if __name__ == "__main__":
    sys.exit(main())
