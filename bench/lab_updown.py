"""Benchmark: how long ``srv6lab lab up`` takes until the lab is ready, how long
``srv6lab lab down`` takes, and whether anything is left behind afterwards.

Usage, as root, from the repository root::

    .venv/bin/python bench/lab_updown.py [FILE] [--repeat N] [--json OUT] [--check]

FILE defaults to topologies/fat-tree-4.yaml. Each run calls the commands a user calls
(``lab up FILE --detach``, then ``lab down``) and records:

- up: wall time of ``lab up --detach`` until it returned, the lab ready (includes starting
  Python and the background process);
- ready: the lab's own figure, from the start of ``lab up`` in the lab process to ready;
- down: wall time of ``lab down``;
- left behind: namespaces ``srv6lab-*``, root-namespace interfaces with the lab's names,
  Mininet node shells, that exist after ``lab down``.

Issue 2's goals (fat-tree-4, this 2-core machine): ready in at most 20 s, down in at most
10 s, nothing left. ``--check`` exits 1 if a run misses one. The load average is printed
because other jobs on the machine change the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TOPOLOGY = ROOT / "topologies" / "fat-tree-4.yaml"
UP_GOAL_S = 20.0
DOWN_GOAL_S = 10.0


@dataclass
class Run:
    run: int
    up_s: float
    ready_s: float
    down_s: float
    left_behind: list[str]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Time `srv6lab lab up` to ready and `srv6lab lab down`, and check that "
        "nothing is left behind.",
    )
    parser.add_argument(
        "file", nargs="?", default=str(DEFAULT_TOPOLOGY), help="topology (fat-tree-4)"
    )
    parser.add_argument("--repeat", type=int, default=3, metavar="N", help="runs (default 3)")
    parser.add_argument("--json", metavar="OUT", help="also write the results as JSON here")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if a run misses the issue's goals"
    )
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("error: the benchmark starts labs and needs root", file=sys.stderr)
        return 1

    sys.path.insert(0, str(ROOT))
    from controller.topology import TopologyError, load

    try:
        topo = load(args.file)
    except TopologyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    lab_interfaces = {i.name for link in topo.links for i in (link.a, link.b)}
    prefix = os.environ.get("SRV6LAB_NETNS_PREFIX") or "srv6lab-"
    lab_netns = {prefix + n.name for n in (*topo.switches, *topo.hosts)}
    load_before = os.getloadavg()
    print(
        f"lab up/down: {topo.name} ({len(topo.switches)} switches, {len(topo.hosts)} hosts, "
        f"{len(topo.links)} links), switch kind kernel, {args.repeat} runs, "
        f"{os.cpu_count()} CPUs, load average {load_before[0]:.2f}"
    )
    print(f"{'run':>3}  {'up (s)':>7}  {'ready (s)':>9}  {'down (s)':>8}  left behind")
    runs: list[Run] = []
    for number in range(1, args.repeat + 1):
        result = _one_run(number, args.file, lab_interfaces, lab_netns)
        if result is None:
            return 1
        runs.append(result)
        left = ", ".join(result.left_behind) or "nothing"
        print(
            f"{number:>3}  {result.up_s:>7.2f}  {result.ready_s:>9.2f}  {result.down_s:>8.2f}  "
            f"{left}",
            flush=True,
        )
    for label, pick in (("median", statistics.median), ("max", max)):
        print(
            f"{label:>6} {pick(r.up_s for r in runs):>5.2f}  "
            f"{pick(r.ready_s for r in runs):>9.2f}  {pick(r.down_s for r in runs):>8.2f}"
        )
    worst_up = max(r.up_s for r in runs)
    worst_down = max(r.down_s for r in runs)
    clean = all(not r.left_behind for r in runs)
    goals = {
        f"up <= {UP_GOAL_S:g} s": worst_up <= UP_GOAL_S,
        f"down <= {DOWN_GOAL_S:g} s": worst_down <= DOWN_GOAL_S,
        "nothing left behind": clean,
    }
    print("goals: " + "; ".join(f"{k}: {'ok' if v else 'MISSED'}" for k, v in goals.items()))
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "topology": topo.name,
                    "switch_kind": "kernel",
                    "cpus": os.cpu_count(),
                    "load_average_before": load_before,
                    "runs": [asdict(r) for r in runs],
                    "goals": goals,
                },
                indent=2,
            ),
            encoding="utf-8",
        )
    return 1 if args.check and not all(goals.values()) else 0


def _srv6lab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lab.cli", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=300,
    )


def _one_run(number: int, file: str, lab_interfaces: set[str], lab_netns: set[str]) -> Run | None:
    started = time.monotonic()
    up = _srv6lab("lab", "up", file, "--detach")
    up_s = time.monotonic() - started
    if up.returncode != 0:
        print(f"run {number}: lab up failed:\n{up.stdout}{up.stderr}", file=sys.stderr)
        _srv6lab("lab", "down")
        return None
    ready_s = _ready_seconds(up.stdout)
    started = time.monotonic()
    down = _srv6lab("lab", "down")
    down_s = time.monotonic() - started
    if down.returncode != 0:
        print(f"run {number}: lab down failed:\n{down.stdout}{down.stderr}", file=sys.stderr)
        return None
    return Run(number, up_s, ready_s, down_s, _left_behind(lab_interfaces, lab_netns))


def _ready_seconds(up_output: str) -> float:
    for line in up_output.splitlines():
        if " ready in " in line:
            return float(line.split(" ready in ", 1)[1].split()[0])
    raise SystemExit(f"no 'ready in' line in the output of lab up:\n{up_output}")


def _left_behind(lab_interfaces: set[str], lab_netns: set[str]) -> list[str]:
    """The lab's namespaces, interfaces with its names in the root namespace, and Mininet
    node shells (any: run the benchmark when no other lab runs)."""
    found = []
    netns = Path("/run/netns")
    if netns.is_dir():
        found += sorted(p.name for p in netns.iterdir() if p.name in lab_netns)
    links = subprocess.run(
        ["ip", "-o", "link", "show"], capture_output=True, text=True, check=True
    ).stdout
    for line in links.splitlines():
        name = line.split(":", 2)[1].strip().split("@", 1)[0]
        if name in lab_interfaces:
            found.append(f"interface {name}")
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except (FileNotFoundError, ProcessLookupError):
                continue  # ended meanwhile
            if b"mininet:" in cmdline and b"bash" in cmdline:
                found.append(f"node shell pid {entry.name}")
    return found


if __name__ == "__main__":
    sys.exit(main())
