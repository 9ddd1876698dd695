"""Benchmark: time from starting the controller to every switch of a lab programmed, and
the number of entries it wrote; then the same for a restart with nothing changed (which
must write nothing).

Usage, as root, from the repository root::

    .venv/bin/python bench/controller_start.py [FILE] [--repeat N] [--json OUT]

FILE defaults to topologies/fat-tree-4.yaml. Each repetition brings a fresh lab of kernel
switches up (no controller), then

- fresh: starts ``srv6lab controller run`` on it (empty switches: the pipeline and the
  connectivity intent's every entry are written) and records (a) the wall time from
  spawning the process until the API reports every switch primary and at the desired
  version (``process``, includes starting Python), (b) the controller's own figure from
  its start to all switches programmed (``controller``, its log), (c) the updates written
  (its Prometheus counter);
- restart: stops it (SIGTERM), starts a second one on the same state, same figures: the
  updates written must be 0.

Issue 4's goal: fat-tree-4 fully programmed at most 3 s after the controller starts.
Uses a private namespace prefix and run directory, so a running lab is never touched.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TOPOLOGY = ROOT / "topologies" / "fat-tree-4.yaml"
GOAL_S = 3.0


@dataclass
class Start:
    repetition: int
    phase: str
    process_s: float
    controller_s: float
    updates: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def updates_written(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return int(
        sum(
            float(m)
            for m in re.findall(r"^srv6lab_write_updates_total\{[^}]*\} (\S+)$", text, re.M)
        )
    )


def start(topo_file: Path, run: Path, rep: int, phase: str) -> Start:
    from controller.client import ApiError, wait_programmed

    address = f"unix:{run}/bench-controller.sock"
    port = free_port()
    log = run / f"controller-{rep}-{phase}.log"
    spawned = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lab.cli", "controller", "run", "--topology", str(topo_file),
             "--switches", str(run / "switches.json"), "--state-dir", str(run / "controller"),
             "--listen", address, "--metrics", f"127.0.0.1:{port}"],
            stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
        )  # fmt: skip
    try:
        while True:
            try:
                wait_programmed(address, 60)
                break
            except ApiError:
                if proc.poll() is not None or time.monotonic() - spawned > 90:
                    raise RuntimeError(f"controller failed, see {log}") from None
        process_s = time.monotonic() - spawned
        deadline = time.monotonic() + 10
        found = None
        while found is None and time.monotonic() < deadline:
            found = re.search(r"programmed \(version \d+\) ([\d.]+) s after start", log.read_text())
            time.sleep(0.05)
        updates = updates_written(port)
    finally:
        proc.terminate()
        proc.wait(30)
    return Start(rep, phase, process_s, float(found.group(1)) if found else float("nan"), updates)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Time the controller from start to every switch programmed (fresh "
        "switches, then a restart with nothing changed).",
    )
    parser.add_argument("file", nargs="?", default=str(DEFAULT_TOPOLOGY), help="topology")
    parser.add_argument("--repeat", type=int, default=3, metavar="N", help="labs (default 3)")
    parser.add_argument("--json", metavar="OUT", help="also write the results as JSON here")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("error: the benchmark starts labs and needs root", file=sys.stderr)
        return 1
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("SRV6LAB_NETNS_PREFIX", f"srv6lab-bc{os.getpid()}-")
    tmp = Path(tempfile.mkdtemp(prefix="srv6lab-bench-controller-"))
    os.environ["SRV6LAB_RUN_DIR"] = str(tmp)

    from controller.topology import load
    from lab.session import running_lab

    topo_file = Path(args.file).resolve()
    topo = load(topo_file)
    print(f"{topo.name}: {len(topo.switches)} switches; load average {os.getloadavg()[0]:.1f}")
    results: list[Start] = []
    for rep in range(1, args.repeat + 1):
        print(f"run {rep}/{args.repeat}: lab up...", end=" ", flush=True)
        with running_lab(topo) as lab:
            print("controller:", end=" ", flush=True)
            for phase in ("fresh", "restart"):
                r = start(topo_file, lab.run.path, rep, phase)
                results.append(r)
                print(f"{phase} {r.controller_s:.2f} s ({r.process_s:.2f} s with process "
                      f"start), {r.updates} updates;", end=" ", flush=True)  # fmt: skip
            (lab.run.path / "controller" / "intents.json").unlink(missing_ok=True)
        print("", flush=True)

    for phase in ("fresh", "restart"):
        rows = [r for r in results if r.phase == phase]
        ctl = [r.controller_s for r in rows]
        proc = [r.process_s for r in rows]
        print(f"{phase:>8}: controller start -> programmed median {statistics.median(ctl):.2f} s "
              f"(range {min(ctl):.2f}-{max(ctl):.2f}); with process start "
              f"{statistics.median(proc):.2f} s; updates written "
              f"{', '.join(str(r.updates) for r in rows)}")  # fmt: skip
    fresh = [r.controller_s for r in results if r.phase == "fresh"]
    print(f"goal: at most {GOAL_S:g} s -> {'met' if max(fresh) <= GOAL_S else 'NOT met'}; "
          f"load average now {os.getloadavg()[0]:.1f}")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
