"""The generator process of ``srv6lab bench collectives``: one collective, in one of two
transports, with per-flow addresses (a flow placed on a host's second plane uses that
plane's NIC addresses).

- ``tcp`` (modes ``ecmp`` and ``pinned``): one TCP connection per flow, driven by
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
from lab.traffic.collective import CollectiveRun, Iteration, bus_factor
from lab.traffic.spray import (
    ACK_MARK,
    DEFAULT_PORT,
    MARK,
    PAYLOAD,
    SprayConfig,
    SprayEngine,
    SprayFlow,
    SprayPath,
    open_socket,
)

TCP_PORT = 47200
TCP_MSS = 1380


@dataclass(frozen=True)
class FlowSpec:
    src: int
    dst: int
    src_addr: str
    dst_addr: str
    paths: tuple[SprayPath, ...] = ()


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
    }


def run_tcp(spec: RunSpec, stop: threading.Event) -> dict[str, Any]:
    n = len(spec.hosts)
    listeners: dict[tuple[int, str], socket.socket] = {}
    pairs: dict[tuple[int, int], tuple[socket.socket, socket.socket]] = {}
    try:
        for f in spec.flows:
            key = (f.dst, f.dst_addr)
            if key not in listeners:
                with netns(spec.netns[f.dst]):
                    ls = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
                ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                ls.bind((f.dst_addr, TCP_PORT))
                ls.listen(64)
                ls.settimeout(5.0)
                listeners[key] = ls
        for f in spec.flows:
            with netns(spec.netns[f.src]):
                tx = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            tx.bind((f.src_addr, 0))
            # Full-size segments plus a headend's 40-byte SRv6 encapsulation fit the lab's
            # jumbo fabric links (lab/topo.py FABRIC_MTU) but not a 1500-byte fabric: the
            # clamp keeps the figures comparable with runs made before the jumbo fabric.
            tx.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, TCP_MSS)
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
            pairs[(f.src, f.dst)] = (tx, rx)
        run = CollectiveRun(spec.pattern, n, spec.size, pairs, spec.iterations)
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
        engine = SprayEngine(flows, send, recv, config=spec.spray)
        chunk_pkts = max(1, math.ceil(spec.size / n / PAYLOAD))
        steps = 2 * (n - 1) if spec.pattern == "all-reduce" else 1
        per_iter = steps * chunk_pkts
        by_src = {f.src: f.flow_id for f in flows}
        senders = engine.senders

        if spec.pattern == "all-reduce":

            def delivered(flow_id: int, unique: int) -> None:
                # Step k received by a rank lets it send step k+1 (within the iteration).
                f = engine.flows[flow_id] if engine else None
                assert f is not None
                it, got = divmod(unique, per_iter)
                if got % chunk_pkts == 0 and got // chunk_pkts < steps and got:
                    nxt = senders[by_src[f.dst]]
                    nxt.limit = max(nxt.limit, it * per_iter + got + chunk_pkts)

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
            "packet_payload_bytes": PAYLOAD,
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
