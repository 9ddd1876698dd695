"""One worker process of a spray run (started by
:class:`lab.traffic.collective_run.SprayWorkers`): the senders and receivers of a part of
the ranks, in this process's own thread, so that a run's packets use more than one core.

Protocol, on stdin: the run's spec (JSON, one line), then ``{"worker": i, "ranks": [...],
"parent": pid}``, then ``GO <index>`` lines (the last iteration it may start). On stdout:
``READY`` once its sockets are open; ``REACHED <index> <monotonic ns> <flow>:<ns>,...``
when its receivers have every packet of an iteration (and when each had its flow's);
``RESULT <stats JSON>`` once stdin is closed (then it exits); ``ERROR <message>`` if it
cannot start. It stops without a result on SIGTERM and when its parent dies (stdin
closes; a parent-death signal as well). No threads: the control pipe is read without
blocking between the engine's turns.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import threading
import time
from typing import Any

from lab.errors import LabError
from lab.traffic.collective import DeliveryGaps
from lab.traffic.collective_run import RunSpec, open_spray, spray_rounds
from lab.traffic.spray_partition import format_reached

PR_SET_PDEATHSIG = 1


class PipeBarrier:
    """The barrier seen from a worker: ``GO`` lines from the parent on ``fd``
    (non-blocking), ``REACHED`` lines to stdout."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        os.set_blocking(fd, False)
        self.buf = b""
        self.allowed = -1
        self.closed = False
        self.go_ns: dict[int, int] = {}
        """iteration -> monotonic ns its GO was read."""

    def go(self) -> int | None:
        if not self.closed:
            try:
                data = os.read(self.fd, 4096)
            except BlockingIOError:
                data = None
            if data == b"":
                self.closed = True
            elif data:
                self.buf += data
                *lines, self.buf = self.buf.split(b"\n")
                now = time.monotonic_ns()
                for line in lines:
                    index = parse_go(line.decode())
                    self.go_ns[index] = now
                    self.allowed = max(self.allowed, index)
        return None if self.closed else self.allowed

    def reached(self, index: int, stamp_ns: int, flows_ns: dict[int, int]) -> None:
        print(format_reached(index, stamp_ns, flows_ns), flush=True)


def parse_go(line: str) -> int:
    word, _, rest = line.strip().partition(" ")
    if word != "GO" or not rest.strip().isdigit():
        raise LabError(f"spray worker: expected 'GO <index>' from the parent, got {line!r}")
    return int(rest)


def _die_with_parent(parent: int) -> None:
    """SIGTERM when the parent exits (and exit now if it already has)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
    if os.getppid() != parent:
        sys.exit(1)


def _read_line() -> str:
    """One line from stdin without Python's buffering (the GO lines that follow must stay
    in the pipe for :class:`PipeBarrier`)."""
    out = bytearray()
    while (ch := os.read(0, 1)) not in (b"", b"\n"):
        out += ch
    return out.decode()


def main() -> int:
    spec = RunSpec.from_json(_read_line())
    head: dict[str, Any] = json.loads(_read_line())
    worker, ranks, parent = int(head["worker"]), list(head["ranks"]), int(head["parent"])
    _die_with_parent(parent)
    stop = threading.Event()  # set from the signal handler; no thread is started
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        engine, socks = open_spray(spec, ranks)
    except (LabError, OSError) as exc:
        print(f"ERROR worker {worker}: {exc}", flush=True)
        return 1
    try:
        print("READY", flush=True)
        barrier = PipeBarrier(0)
        gaps = DeliveryGaps()
        profile = os.environ.get("SRV6LAB_COLLECTIVE_PROFILE")
        if profile:  # a cProfile dump per worker: FILE.w<index>
            import cProfile

            prof = cProfile.Profile()
            turns = prof.runcall(spray_rounds, spec, engine, barrier, stop, gaps)
            prof.dump_stats(f"{profile}.w{worker}")
        else:
            turns = spray_rounds(spec, engine, barrier, stop, gaps)
        if stop.is_set():
            return 1
        result = {
            **engine.stats(),
            "turns": turns,
            "go_ns": barrier.go_ns,
            "delivery_gaps": gaps.to_json(),
        }
        print(f"RESULT {json.dumps(result)}", flush=True)
        return 0
    finally:
        engine.close()
        for sock in socks:
            sock.close()


if __name__ == "__main__":
    sys.exit(main())
