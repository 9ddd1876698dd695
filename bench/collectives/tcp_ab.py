"""A/B of the lab hosts' TCP settings for ``bench collectives``' TCP modes, in one lab (so
that the variants alternate under the same machine load): per variant, the hosts' routes
get ``rto_min``/``quickack`` options, the congestion control (``congctl``) and the generator's
pacing headroom are set, and one mode runs. Prints CCT median / ideal, TCP counters and
the load average per run.

    sudo .venv/bin/python bench/collectives/tcp_ab.py --rounds 2 --pattern all-to-all
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from controller.paths import collective_flows
from controller.topology import load
from lab.collectives import BenchConfig, gpu_hosts, ideal_cct_ms, run_mode, scaled_topology
from lab.controller_proc import ControllerOptions
from lab.faults import LabView
from lab.session import running_lab

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Variant:
    name: str
    route_options: str
    headroom: float
    pace: bool = True
    ack_tclass: int = 0xC0


VARIANTS = (
    Variant("default x1.25", "", 1.25),
    Variant("quickack x1.25", "quickack 1", 1.25),
    Variant("rto_min 20ms x1.25", "rto_min 20ms", 1.25),
    Variant("cubic x1.25", "congctl cubic", 1.25),
    Variant("default x1.0", "", 1.0),
    Variant("default unpaced", "", 1.25, pace=False),
    Variant("default x1.25 acks unmarked", "", 1.25, ack_tclass=0),
    Variant("default x1.0 acks unmarked", "", 1.0, ack_tclass=0),
    Variant("rto_min 20ms quickack x1.25", "rto_min 20ms quickack 1", 1.25),
)


def set_hosts(view: LabView, hosts: tuple[str, ...], v: Variant) -> None:
    for host in hosts:
        ns = view.netns(host)
        routes = subprocess.run(
            ["ip", "-n", ns, "-6", "route", "show", "proto", "boot"],
            capture_output=True, text=True, check=True,
        ).stdout.splitlines()  # fmt: skip
        lines = []
        for r in routes:
            w = r.split()
            via, dev = w[w.index("via") + 1], w[w.index("dev") + 1]
            lines.append(f"route replace {w[0]} via {via} dev {dev} {v.route_options}")
        subprocess.run(
            ["ip", "-6", "-n", ns, "-batch", "-"], input="\n".join(lines) + "\n",
            text=True, check=True,
        )  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--topology", default="fat-tree-4")
    ap.add_argument("--pattern", default="all-to-all")
    ap.add_argument("--mode", default="pinned")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--variants", nargs="*", type=int, help="indexes into VARIANTS")
    ap.add_argument("--fail", metavar="X-Y", help="a gray failure of this link in each run")
    args = ap.parse_args()
    variants = [VARIANTS[i] for i in args.variants] if args.variants else list(VARIANTS)
    fail = None
    if args.fail:
        a, _, b = args.fail.partition("-")
        fail = (a, b)
    with tempfile.TemporaryDirectory() as tmp:
        src = ROOT / "topologies" / f"{args.topology}.yaml"
        topo = load(str(scaled_topology(src, 5.0, Path(tmp) / src.name)))
        hosts = gpu_hosts(topo, 8)
        flows = collective_flows(list(hosts), args.pattern)
        ideal = ideal_cct_ms(topo, flows, args.pattern, 524288, len(hosts))
        with running_lab(topo, "kernel", controller=ControllerOptions()) as lab:
            view = LabView(
                topo, "kernel", lab.state.netns_prefix, (lab.state.pid, lab.state.started_at)
            )
            for rnd in range(args.rounds):
                for v in variants:
                    set_hosts(view, hosts, v)
                    cfg = BenchConfig(
                        pattern=args.pattern, modes=(args.mode,), hosts=hosts, size=524288,
                        iterations=args.iterations, pace=v.pace, pace_headroom=v.headroom,
                        ack_tclass=v.ack_tclass,
                        fail=fail,
                        kind="gray",
                    )  # fmt: skip
                    m = run_mode(topo, lab, view=view, cfg=cfg, mode=args.mode,
                                 workdir=Path(tmp), say=lambda _t: None)  # fmt: skip
                    med = m["cct_ms_median"] or statistics.median(m["cct_ms"])
                    tcp = m["tcp_counters"]
                    print(
                        f"round {rnd} {v.name:<24} {args.mode} {args.pattern}: "
                        f"CCT {med:.0f} ms ratio {med / ideal:.2f} "
                        f"iters {[round(x) for x in m['cct_ms']]} "
                        f"retrans {tcp['Tcp:RetransSegs']} rto {tcp['TcpExt:TCPTimeouts']} "
                        f"load {m['load_average']['after'][0]:.1f}"
                        + (f" progress lost {m['progress_lost_ms']:.0f} ms" if args.fail else ""),
                        flush=True,
                    )
    print(f"ideal {ideal:.0f} ms; load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
