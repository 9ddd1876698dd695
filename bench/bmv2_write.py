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
import ipaddress
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
from finsy import pbutil
from finsy.proto import p4i, p4r, p4r_grpc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

P4INFO = ROOT / "p4" / "build" / "srv6.p4info.txtpb"
BMV2_JSON = ROOT / "p4" / "build" / "srv6.json"
NETNS = f"srv6lab-bmbench{os.getpid()}"


def sh(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def ids_by_name(info: p4i.P4Info) -> dict[str, int]:
    out = {t.preamble.name: t.preamble.id for t in info.tables}
    out.update({a.preamble.name: a.preamble.id for a in info.actions})
    out.update({p.preamble.name: p.preamble.id for p in info.action_profiles})
    return out


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _update(entity: p4r.Entity) -> p4r.Update:
    return p4r.Update(type=p4r.Update.INSERT, entity=entity)


def _param(pid: int, value: bytes) -> p4r.Action.Param:
    return p4r.Action.Param(param_id=pid, value=value)


async def run(entries: int, batch: int, address: str, pid: int) -> dict[str, Any]:
    info = pbutil.from_text(P4INFO.read_text(), p4i.P4Info)
    ids = ids_by_name(info)
    async with grpc.aio.insecure_channel(address) as channel:
        stub = p4r_grpc.P4RuntimeStub(channel)
        election = p4r.Uint128(high=0, low=1)
        queue: asyncio.Queue[p4r.StreamMessageRequest] = asyncio.Queue()
        await queue.put(
            p4r.StreamMessageRequest(
                arbitration=p4r.MasterArbitrationUpdate(device_id=1, election_id=election)
            )
        )

        async def outgoing() -> Any:
            while True:
                yield await queue.get()

        stream = stub.StreamChannel(outgoing())
        reply = await stream.read()
        assert reply.arbitration.status.code == 0, reply
        await stub.SetForwardingPipelineConfig(
            p4r.SetForwardingPipelineConfigRequest(
                device_id=1,
                election_id=election,
                action=p4r.SetForwardingPipelineConfigRequest.VERIFY_AND_COMMIT,
                config=p4r.ForwardingPipelineConfig(
                    p4info=info, p4_device_config=BMV2_JSON.read_bytes()
                ),
            )
        )
        next_hop = p4r.TableEntry(
            table_id=ids["IngressPipeImpl.next_hop"],
            match=[p4r.FieldMatch(field_id=1, exact=p4r.FieldMatch.Exact(value=b"\x01"))],
            action=p4r.TableAction(
                action=p4r.Action(
                    action_id=ids["IngressPipeImpl.rewrite"],
                    params=[
                        _param(1, b"\x01"),
                        _param(2, bytes.fromhex("025300010001")),
                        _param(3, bytes.fromhex("025300020001")),
                    ],
                )
            ),
        )
        member = p4r.ActionProfileMember(
            action_profile_id=ids["IngressPipeImpl.ecmp_selector"],
            member_id=1,
            action=p4r.Action(
                action_id=ids["IngressPipeImpl.set_next_hop"], params=[_param(1, b"\x01")]
            ),
        )
        await stub.Write(
            p4r.WriteRequest(
                device_id=1,
                election_id=election,
                updates=[
                    _update(p4r.Entity(table_entry=next_hop)),
                    _update(p4r.Entity(action_profile_member=member)),
                ],
            )
        )
        base = int(ipaddress.IPv6Address("2001:db8::"))
        table = ids["IngressPipeImpl.routing_v6"]
        requests = []
        for start in range(0, entries, batch):
            updates = []
            for i in range(start, min(entries, start + batch)):
                prefix = (base + ((i + 0x10000) << 64)).to_bytes(16, "big")
                lpm = p4r.FieldMatch.LPM(value=prefix, prefix_len=64)
                entry = p4r.TableEntry(
                    table_id=table,
                    match=[p4r.FieldMatch(field_id=1, lpm=lpm)],
                    action=p4r.TableAction(action_profile_member_id=1),
                )
                updates.append(_update(p4r.Entity(table_entry=entry)))
            requests.append(p4r.WriteRequest(device_id=1, election_id=election, updates=updates))
        print(f"writing {entries} routing_v6 entries in batches of {batch} ...", flush=True)
        t0 = time.perf_counter()
        for i, request in enumerate(requests):
            await stub.Write(request)
            if (i + 1) % max(1, len(requests) // 5) == 0:
                done = min(entries, (i + 1) * batch)
                print(f"  {done} written, {time.perf_counter() - t0:.2f} s", flush=True)
        write_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        read = 0
        async for response in stub.Read(
            p4r.ReadRequest(
                device_id=1, entities=[p4r.Entity(table_entry=p4r.TableEntry(table_id=table))]
            )
        ):
            read += len(response.entities)
        read_s = time.perf_counter() - t0
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
