"""Summarize the gray-failure spray runs in this folder, one line per set of repeats
(``<topology>-<pattern>-<variant>-<N>.json``): progress lost beyond the failed link's
capacity (``lab.collectives.progress_lost``, recomputed from each run's iterations), when
the paths over the failed link were retired after the fault, how many other paths were
retired during the failure, and the 1-minute load. Run from the repository root:

    .venv/bin/python bench/collectives/gray-detection/summarize.py
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from lab.collectives import crosses, progress_lost


def run(path: Path) -> dict[str, Any]:
    mode = json.loads(path.read_text(encoding="utf-8"))["modes"]["spray"]
    fault = mode["fault"]
    start, end = fault["applied_ns"], fault["restored_ns"]
    lost = progress_lost(mode["iterations"], fault["injected_ns"], fault["restore_done_ns"])
    a, b = fault["place"].split("-")
    dead: dict[tuple[int, int], float] = {}
    others = 0
    for ev in mode["spray"]["path_events"]:
        if ev["event"] != "retired" or not start <= ev["monotonic_ns"] <= end:
            continue
        if crosses(ev["nodes"], (a, b)):
            dead.setdefault((ev["flow"], ev["path"]), (ev["monotonic_ns"] - start) / 1e6)
        else:
            others += 1
    return {
        "beyond": lost["progress_lost_beyond_capacity_ms"],
        "dead_p50": statistics.median(dead.values()) if dead else float("nan"),
        "dead_max": max(dead.values(), default=float("nan")),
        "others": others,
        "load": mode["load_average"]["before"][0],
    }


def main() -> int:
    sets: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for path in sorted(Path(__file__).parent.glob("*.json")):
        match = re.fullmatch(r"(.+)-(\d+)\.json", path.name)
        if match:
            sets[match.group(1)].append(run(path))
    for name, runs in sets.items():
        beyond = sorted(r["beyond"] for r in runs)
        print(
            f"{name}: {len(runs)} runs; beyond capacity median {statistics.median(beyond):.1f} ms "
            f"({', '.join(f'{v:.1f}' for v in beyond)}); dead paths retired p50 "
            f"{min(r['dead_p50'] for r in runs):.0f}-{max(r['dead_p50'] for r in runs):.0f} ms, "
            f"last {min(r['dead_max'] for r in runs):.0f}-{max(r['dead_max'] for r in runs):.0f}"
            f" ms after the fault; other paths retired {min(r['others'] for r in runs)}-"
            f"{max(r['others'] for r in runs)}; load {min(r['load'] for r in runs):.1f}-"
            f"{max(r['load'] for r in runs):.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
