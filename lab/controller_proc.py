"""The lab's controller: ``srv6lab controller run`` as a child process of the lab, pointed
at the lab's switches.json, its API address written to ``<run dir>/controller.addr`` (the
CLI client finds it there), its log at ``<run dir>/controller.log``, its intents kept in
``<run dir>/controller/``. The lab starts it once the switches are up, waits until every
switch holds the desired state, and stops it (SIGTERM) before the switches go.

The lab's control processes (this controller, every switchd) run at nice
:data:`CONTROL_NICE`: ahead of ordinary processes, the traffic generator included
(lab/traffic/probe.py says why it is not SCHED_FIFO). On the lab's 2 loaded cores a fast
reroute otherwise waits for the scheduler behind other work (a switch's control plane has
a CPU of its own in a real fabric). Not SCHED_FIFO: measured on fat-tree-4, real-time
control processes reroute a gray link no faster (loss window p50/p99 69/142 ms against
68/114 at nice -10) and hold off the kernel's own link-watch worker, an ordinary thread,
when a carrier is lost (they react to the event first): carrier loss windows grew to
13/18 ms against 3/4 ms."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from lab.errors import LabError

ADDR_FILE = "controller.addr"
PID_FILE = "controller.pid"
LOG_FILE = "controller.log"
READY_TIMEOUT = 60.0
CONTROL_NICE = -10


def control_priority(command: list[str], niceness: int = CONTROL_NICE) -> list[str]:
    """``command`` started at ``niceness`` (every thread of it: nice is per thread on
    Linux), or as it is where that is not allowed."""
    nice = shutil.which("nice")
    if nice is None or (niceness < 0 and os.geteuid() != 0):
        return command
    return [nice, "-n", str(niceness), *command]


@dataclass(frozen=True, slots=True)
class ControllerOptions:
    listen: str | None = None
    """API address; default ``unix:<run dir>/controller.sock``."""
    metrics: str = "off"
    extra: tuple[str, ...] = ()
    """More ``controller run`` arguments (``--hold-down 1``...)."""


@dataclass
class ControllerProcess:
    proc: subprocess.Popen[bytes]
    address: str
    log: Path
    run_dir: Path
    ready_seconds: float = 0.0

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for name in (ADDR_FILE, PID_FILE):
            with contextlib.suppress(FileNotFoundError):
                (self.run_dir / name).unlink()


def start_controller(
    topology_file: Path, run_dir: Path, options: ControllerOptions
) -> ControllerProcess:
    """Start the controller and wait until every switch is programmed; raises LabError
    (with the log's tail) if it dies or is not ready in time."""
    from controller.client import ApiError, wait_programmed

    address = options.listen or f"unix:{run_dir / 'controller.sock'}"
    log = run_dir / LOG_FILE
    command = control_priority([
        sys.executable, "-m", "lab.cli", "controller", "run",
        "--topology", str(topology_file),
        "--switches", str(run_dir / "switches.json"),
        "--state-dir", str(run_dir / "controller"),
        "--listen", address,
        "--metrics", options.metrics,
        *options.extra,
    ])  # fmt: skip
    started = time.monotonic()
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
    (run_dir / PID_FILE).write_text(f"{proc.pid}\n")
    (run_dir / ADDR_FILE).write_text(address + "\n")
    ctl = ControllerProcess(proc, address, log, run_dir)
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        if proc.poll() is not None:
            ctl.stop()
            raise LabError(f"the controller exited with status {proc.returncode}:\n{_tail(log)}")
        try:
            wait_programmed(address, 0.5)
            break
        except ApiError as exc:
            if time.monotonic() > deadline:
                ctl.stop()
                raise LabError(
                    f"the controller did not program the switches in {READY_TIMEOUT:g} s: "
                    f"{exc}\n{_tail(log)}"
                ) from None
    ctl.ready_seconds = time.monotonic() - started
    return ctl


def stop_leftover(run_dir: Path) -> bool:
    """Stop a controller a crashed lab left behind (its pid file); True if there was one."""
    pid_file = run_dir / PID_FILE
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return False
    stopped = False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        if b"controller run" in cmdline:
            os.kill(pid, signal.SIGTERM)
            stopped = True
    except (OSError, ProcessLookupError):
        pass
    for name in (ADDR_FILE, PID_FILE):
        with contextlib.suppress(FileNotFoundError):
            (run_dir / name).unlink()
    return stopped


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
