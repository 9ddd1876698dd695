"""Benchmark BMv2 simple_switch_grpc: P4Runtime write throughput and Read of all entries,
the same workload as bench/switchd_write.py (N routing_v6 entries, each pointing at one
ECMP selector member, in batches), so the two switch kinds compare side by side.

Runs one ``simple_switch_grpc --no-p4`` in a fresh network namespace (two veth ports,
Unix-socket gRPC), pushes srv6.p4 (P4Info + BMv2 JSON), writes, reads back, and reports
BMv2's RSS. Needs root and BMv2 (PATH or $SRV6LAB_BMV2_PREFIX/bin).

    .venv/bin/python bench/bmv2_write.py [--entries 20000] [--batch 1000] [--json OUT]

Anchor (issue 6): BMv2 manages about 2,000-3,000 entries/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import grpc
from finsy import pbutil
from finsy.proto import p4i, p4r_grpc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

# the same workload, arbitration and measurements as switchd's benchmark
from switchd_write import (  # noqa: E402
    P4INFO,
    names,
    primary,
    read_all,
    rss_mb,
    sh,
    workload,
    write_all,
)

BMV2_JSON = ROOT / "p4" / "build" / "srv6.json"
NETNS = f"srv6lab-bmbench{os.getpid()}"


async def run(entries: int, batch: int, address: str, pid: int) -> dict[str, Any]:
    info = pbutil.from_text(P4INFO.read_text(), p4i.P4Info)
    ids = names(info)
    async with grpc.aio.insecure_channel(address) as channel:
        stub = p4r_grpc.P4RuntimeStub(channel)
        stream, election = await primary(stub, info, BMV2_JSON.read_bytes())
        setup, batches = workload(ids, election, entries, batch)
        await stub.Write(setup)
        write_s = await write_all(stub, batches, entries, batch)
        read, read_s = await read_all(stub, ids["IngressPipeImpl.routing_v6"])
        rss = rss_mb(pid)  # ip netns exec execs BMv2: same pid
        stream.cancel()
    return {
        "switch": "bmv2",
        "entries": entries,
        "batch": batch,
        "write_seconds": round(write_s, 3),
        "write_entries_per_second": round(entries / write_s),
        "read_entries": read,
        "read_seconds": round(read_s, 3),
        "bmv2_rss_mb": round(rss, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=20_000, help="entries to write")
    parser.add_argument("--batch", type=int, default=1000, help="updates per WriteRequest")
    parser.add_argument("--json", metavar="OUT", help="also write the figures as JSON")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (a network namespace)", file=sys.stderr)
        return 2
    from lab.errors import LabError
    from lab.nodes import bmv2_binary

    try:
        binary = bmv2_binary()
    except LabError as exc:
        print(exc, file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="bmv2-bench-"))
    sock = workdir / "bmv2.sock"
    log = workdir / "bmv2.log"
    sh("ip", "netns", "add", NETNS)
    proc = None
    try:
        sh("ip", "-n", NETNS, "link", "set", "lo", "up")
        for n in (1, 2):
            sh("ip", "-n", NETNS, "link", "add", f"p{n}", "type", "veth", "peer", "name", f"q{n}")
            sh("ip", "-n", NETNS, "link", "set", f"p{n}", "up")
            sh("ip", "-n", NETNS, "link", "set", f"q{n}", "up")
        cmd = [
            "ip", "netns", "exec", NETNS, binary, "--no-p4", "--device-id", "1",
            "-i", "1@p1", "-i", "2@p2", "--", "--grpc-server-addr", f"unix:{sock}",
        ]  # fmt: skip
        with log.open("wb") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        with grpc.insecure_channel(f"unix:{sock}") as channel:
            grpc.channel_ready_future(channel).result(timeout=30)
        figures = asyncio.run(run(args.entries, args.batch, f"unix:{sock}", proc.pid))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)
        sh("ip", "netns", "del", NETNS)
    print(json.dumps(figures, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
