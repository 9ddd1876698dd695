"""Run iproute2 and nft in a network namespace: batched writes, JSON reads.

Writes are ``ip -batch`` lines (about 60,000 route replaces per second here, against ~1,000
for one netlink call per route from Python), in the terms an engineer checks with
``ip -6 route``. They go to a long-lived ``ip [-6] -force -batch -`` process fed through a
pipe (see :class:`BatchProcess`): starting one ``ip`` per transaction costs ~3 ms here.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import subprocess
import threading
import weakref
from dataclasses import dataclass
from typing import IO, Any

log = logging.getLogger("switchd.kernel")

_FAILED = re.compile(r"Command failed -:(\d+)")
IGNORABLE_ON_DELETE = (
    "No such file or directory",
    "No such process",
    "Nexthop id does not exist",
    "Cannot find device",
    "No such device",
    "does not exist",
)


@dataclass(frozen=True, slots=True)
class BatchFailure:
    line: int  # 1-based line of the batch
    message: str


SYNC = "srv6lab-sync"
"""Written after each batch: ``ip`` answers it, on stderr, with ``Command failed -:N``
(an unknown object; nothing is done), which says that every line before it is done."""

BATCH_TIMEOUT = 300.0
"""Seconds to wait for ``ip`` to get through one batch before it is killed."""


class BatchProcess:
    """One long-lived ``ip [-n NETNS] [-6] -force -batch -``, fed through a pipe.

    :meth:`run` writes a batch's lines and then :data:`SYNC`, and waits until ``ip``
    reports on the SYNC line. ``ip`` reports every failed line on stderr (unbuffered) as
    error text followed by ``Command failed -:N``, N counting lines since it started; a
    thread reads stderr all the time, so ``ip`` never blocks on it. When ``ip`` exits
    (iproute2 exits on some malformed arguments even with -force) the batch reports it, and
    the next batch starts a new process. ``ip`` caches interface indexes by name: call
    :meth:`restart` when an interface the lines name may have been re-created.
    """

    def __init__(self, cmd: list[str]) -> None:
        self.cmd = cmd
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None
        self._events: queue.Queue[tuple[int, str]] = queue.Queue()
        self._line = 0
        self._fed = 0
        self._finalizer: weakref.finalize[Any, Any] | None = None

    def feed(self, lines: list[str]) -> None:
        """Start ``ip`` on the first lines of a batch whose end :meth:`run` gives: it
        applies them while the caller makes the rest. Their failures come with run()'s,
        numbered from the first line fed."""
        if not lines:
            return
        with self._lock:
            proc = self._proc
            if proc is None or proc.poll() is not None:
                if self._fed:
                    return  # ip died with lines fed: run() reports the whole batch failed
                proc = self._start()
            assert proc.stdin is not None
            self._fed += len(lines)
            try:
                proc.stdin.write("\n".join(lines) + "\n")
                proc.stdin.flush()
            except OSError:
                pass  # ip has exited: run() says so

    def run(self, lines: list[str]) -> list[BatchFailure]:
        with self._lock:
            fed, self._fed = self._fed, 0
            if not lines and not fed:
                return []
            proc = self._proc
            if proc is None or proc.poll() is not None:
                if fed:
                    # ip exited after it was fed part of this batch: which lines it applied
                    # is unknown, so the batch failed (the caller undoes it).
                    self._stop()
                    return [BatchFailure(0, "ip exited during the batch")]
                proc = self._start()
            assert proc.stdin is not None
            start = self._line
            sync = start + fed + len(lines) + 1
            try:
                proc.stdin.write(("\n".join(lines) + "\n" if lines else "") + f"{SYNC}\n")
                proc.stdin.flush()
            except OSError:
                pass  # ip has exited: its end of stderr says so
            failures: list[BatchFailure] = []
            while True:
                try:
                    line, message = self._events.get(timeout=BATCH_TIMEOUT)
                except queue.Empty:
                    line, message = -1, f"ip did not finish a batch in {BATCH_TIMEOUT:.0f} s"
                if line == sync:
                    self._line = sync
                    return failures
                if line < 0:
                    self._stop()
                    failures.append(BatchFailure(0, f"ip exited: {message}".strip()))
                    return failures
                failures.append(BatchFailure(line - start, message))

    def restart(self) -> None:
        """End the process; the next batch starts a new one."""
        with self._lock:
            self._stop()

    def close(self) -> None:
        self.restart()

    def _start(self) -> subprocess.Popen[str]:
        self._stop()
        proc = subprocess.Popen(
            self.cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stderr is not None
        self._proc = proc
        self._events = queue.Queue()
        self._line = 0
        threading.Thread(
            target=_read_failures,
            args=(proc.stderr, self._events),
            name="switchd-ip-stderr",
            daemon=True,
        ).start()
        # A data plane that is dropped without stop() must not leave ip behind.
        self._finalizer = weakref.finalize(self, _end, proc)
        return proc

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if proc is not None:
            _end(proc)


def _read_failures(stderr: IO[str], events: queue.Queue[tuple[int, str]]) -> None:
    """Turn ip's stderr into (line, message) events; (-1, last text) when it ends."""
    message: list[str] = []
    for text in stderr:
        m = _FAILED.search(text)
        if m:
            events.put((int(m.group(1)), " ".join(message).strip()))
            message = []
        else:
            message.append(text.strip())
    events.put((-1, " ".join(message).strip()))


def _end(proc: subprocess.Popen[str]) -> None:
    """End an ip batch process: EOF on its stdin ends it; kill it if it does not."""
    try:
        if proc.stdin is not None:
            proc.stdin.close()
    except OSError:
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        log.warning("ip -batch did not end at EOF; killing it")
        proc.kill()
        proc.wait()
    if proc.stderr is not None:
        proc.stderr.close()


class IpRoute:
    """iproute2 and nft, inside ``netns`` (a named namespace) or the current one."""

    def __init__(self, netns: str | None) -> None:
        self.netns = netns
        base = ["ip", *(["-n", netns] if netns else [])]
        self._processes = {
            family6: BatchProcess([*base, *(["-6"] if family6 else []), "-force", "-batch", "-"])
            for family6 in (True, False)
        }

    def restart(self) -> None:
        """Start new ip processes for the next batches (an interface was re-created)."""
        for process in self._processes.values():
            process.restart()

    def close(self) -> None:
        for process in self._processes.values():
            process.close()

    def _prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.netns] if self.netns else []

    def feed(self, lines: list[str], family6: bool = True) -> None:
        """The first lines of the next ``batch(..., force=True)`` of the same family, for
        ``ip`` to apply while the rest is made (see :meth:`BatchProcess.feed`)."""
        self._processes[family6].feed(lines)

    def batch(
        self, lines: list[str], force: bool = True, family6: bool = True
    ) -> list[BatchFailure]:
        """Run lines through ``ip [-6] -batch -``; returns the lines that failed (all of them
        with ``force``, through the long-lived process; without, the first, in a process of
        its own). Nexthop groups need the unspecified family (``family6=False``);
        device-only nexthops and rules need -6."""
        if force:  # (also the end of a batch begun with feed())
            return self._processes[family6].run(lines)
        if not lines:
            return []
        cmd = ["ip", *(["-n", self.netns] if self.netns else []), *(["-6"] if family6 else [])]
        cmd += ["-batch", "-"]
        proc = subprocess.run(
            cmd, input="\n".join(lines) + "\n", capture_output=True, text=True, check=False
        )
        if proc.returncode == 0:
            return []
        return _failures(proc.stderr) or [BatchFailure(0, proc.stderr.strip() or "ip failed")]

    def nft(self, script: str) -> str | None:
        """Run an nft script; returns the error text or None."""
        proc = subprocess.run(
            [*self._prefix(), "nft", "-f", "-"],
            input=script,
            capture_output=True,
            text=True,
            check=False,
        )
        return proc.stderr.strip() or "nft failed" if proc.returncode else None

    def json(self, *args: str) -> Any:
        cmd = ["ip", "-j", *args]
        if self.netns:
            cmd[1:1] = ["-n", self.netns]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        return json.loads(proc.stdout or "[]")

    def nft_json(self, *args: str) -> Any:
        proc = subprocess.run(
            [*self._prefix(), "nft", "-j", *args], capture_output=True, text=True, check=False
        )
        if proc.returncode:
            return None
        return json.loads(proc.stdout)


def _failures(stderr: str) -> list[BatchFailure]:
    out: list[BatchFailure] = []
    message: list[str] = []
    for text in stderr.splitlines():
        m = _FAILED.search(text)
        if m:
            out.append(BatchFailure(int(m.group(1)), " ".join(message).strip()))
            message = []
        else:
            message.append(text.strip())
    return out
