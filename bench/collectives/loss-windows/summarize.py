"""Summarize the runs in this folder (``<set>-<N>.json``, from ``srv6lab bench collectives
... --fail L --kind gray --failed-for 3``), one line per set and mode: the loss windows of
the flows over the failed link (``recovery_window_ms``: p50 and p99 over the runs'
ranges, the largest max), the same flows' longest gap before the failure, progress lost
beyond the link's capacity, when the controller saw the failure and its switches
acknowledged the reroute, TCP timeouts, and the 1-minute load. Run from the repository
root:

    .venv/bin/python bench/collectives/loss-windows/summarize.py
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any


def _range(values: list[float], fmt: str = ".0f") -> str:
    lo, hi = min(values), max(values)
    return f"{lo:{fmt}}" if f"{lo:{fmt}}" == f"{hi:{fmt}}" else f"{lo:{fmt}}-{hi:{fmt}}"


def main() -> int:
    sets: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for path in sorted(Path(__file__).parent.glob("*.json")):
        match = re.fullmatch(r"(.+)-(\d+)\.json", path.name)
        if not match:
            continue
        for mode, m in json.loads(path.read_text(encoding="utf-8"))["modes"].items():
            sets[(match.group(1), mode)].append(m)
    for (name, mode), runs in sets.items():
        w = [m["recovery_window_ms"] for m in runs]
        beyond = [m["progress_lost_beyond_capacity_ms"] for m in runs]
        timeline = [m["controller_timeline"] for m in runs if m.get("controller_timeline")]
        line = (
            f"{name} {mode}: {len(runs)} runs, {w[0]['flows']} flows over the link; loss "
            f"window p50 {_range([x['p50'] for x in w])}, p99 {_range([x['p99'] for x in w])}"
            f", max {max(x['max'] for x in w):.0f} ms (before the failure p99 "
            f"{_range([x['before_failure']['p99'] for x in w])} ms); beyond capacity "
            f"{', '.join('-' if b is None else f'{b:.1f}' for b in beyond)} ms"
        )
        if timeline and mode != "spray":
            seen = _range([t["event_seen_after_fault_ms"] for t in timeline])
            acked = _range([t["last_switch_acked_after_fault_ms"] for t in timeline])
            line += f"; controller saw it after {seen}, switches acked {acked} ms"
        timeouts = [m["tcp_counters"].get("TcpExt:TCPTimeouts", 0) for m in runs]
        if mode != "spray":
            line += f"; TCP timeouts {', '.join(map(str, timeouts))}"
        loads = [m["load_average"]["before"][0] for m in runs]
        print(f"{line}; load {_range(loads, '.1f')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
