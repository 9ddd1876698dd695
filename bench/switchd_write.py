"""Benchmark switchd: P4Runtime write throughput with the kernel holding every entry, Read
of all entries, and switchd's memory.

Runs one switchd process in a fresh network namespace (two veth ports), pushes srv6.p4's
P4Info, writes N routing_v6 entries (each a kernel route through a nexthop object) in
batches, checks that the kernel holds every one (``ip -6 route show proto 222``), reads them
all back with a wildcard Read, and reads switchd's RSS from /proc. Needs root.

    .venv/bin/python bench/switchd_write.py [--entries 50000] [--batch 1000] [--json OUT]

Goals (issue 3): >= 20,000 entries/s written; <= 150 MB RSS with 50,000 entries.
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
P4INFO = ROOT / "p4" / "build" / "srv6.p4info.txtpb"
NETNS = f"srv6lab-bench{os.getpid()}"
PORTS = {1: "bs-eth1", 2: "bs-eth2"}


def sh(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def names(info: p4i.P4Info) -> dict[str, int]:
    out = {t.preamble.name: t.preamble.id for t in info.tables}
    out.update({a.preamble.name: a.preamble.id for a in info.actions})
    out.update({p.preamble.name: p.preamble.id for p in info.action_profiles})
    return out


def setup_namespace() -> None:
    sh("ip", "netns", "add", NETNS)
    sh("ip", "-n", NETNS, "link", "set", "lo", "up")
    for n, name in PORTS.items():
        sh("ip", "-n", NETNS, "link", "add", name, "type", "veth", "peer", "name", f"bp{n}")
        sh("ip", "-n", NETNS, "link", "set", name, "up")
        sh("ip", "-n", NETNS, "link", "set", f"bp{n}", "up")


def cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU time (user + system) of a process, and of its live children (switchd's ip
    -batch processes): on a shared machine, steadier figures than the wall clock."""
    tick = os.sysconf("SC_CLK_TCK")
    own = children = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(entry.name) == pid:
            own += (int(fields[11]) + int(fields[12])) / tick
        elif int(fields[1]) == pid:
            children += (int(fields[11]) + int(fields[12])) / tick
    return own, children


def thread_cpu_seconds(pid: int) -> dict[int, float]:
    """CPU time (user + system) of each thread of a process, by thread id."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        out[int(task.name)] = (int(fields[11]) + int(fields[12])) / tick
    return out


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def primary(
    stub: Any, info: p4i.P4Info, device_config: bytes = b""
) -> tuple[Any, p4r.Uint128]:
    """Open the StreamChannel as primary (election id 1) and push srv6.p4 (with
    ``device_config``: BMv2's JSON). Returns the stream (cancel it when done) and the id."""
    election = p4r.Uint128(high=0, low=1)
    requests: asyncio.Queue[p4r.StreamMessageRequest] = asyncio.Queue()
    await requests.put(
        p4r.StreamMessageRequest(
            arbitration=p4r.MasterArbitrationUpdate(device_id=1, election_id=election)
        )
    )

    async def outgoing() -> Any:
        while True:
            yield await requests.get()

    stream = stub.StreamChannel(outgoing())
    reply = await stream.read()
    assert reply.arbitration.status.code == 0, reply
    await stub.SetForwardingPipelineConfig(
        p4r.SetForwardingPipelineConfigRequest(
            device_id=1,
            election_id=election,
            action=p4r.SetForwardingPipelineConfigRequest.VERIFY_AND_COMMIT,
            config=p4r.ForwardingPipelineConfig(p4info=info, p4_device_config=device_config),
        )
    )
    return stream, election


def _insert(entity: p4r.Entity) -> p4r.Update:
    return p4r.Update(type=p4r.Update.INSERT, entity=entity)


def workload(
    ids: dict[str, int], election: p4r.Uint128, entries: int, batch: int
) -> tuple[p4r.WriteRequest, list[p4r.WriteRequest]]:
    """The benchmark's writes: a next hop and an ECMP member to point at (setup), then
    ``entries`` routing_v6 /64 routes in requests of ``batch`` updates."""
    next_hop = p4r.TableEntry(
        table_id=ids["IngressPipeImpl.next_hop"],
        match=[p4r.FieldMatch(field_id=1, exact=p4r.FieldMatch.Exact(value=b"\x01"))],
        action=p4r.TableAction(
            action=p4r.Action(
                action_id=ids["IngressPipeImpl.rewrite"],
                params=[
                    p4r.Action.Param(param_id=1, value=b"\x01"),
                    p4r.Action.Param(param_id=2, value=bytes.fromhex("025300010001")),
                    p4r.Action.Param(param_id=3, value=bytes.fromhex("025300020001")),
                ],
            )
        ),
    )
    member = p4r.ActionProfileMember(
        action_profile_id=ids["IngressPipeImpl.ecmp_selector"],
        member_id=1,
        action=p4r.Action(
            action_id=ids["IngressPipeImpl.set_next_hop"],
            params=[p4r.Action.Param(param_id=1, value=b"\x01")],
        ),
    )
    setup = p4r.WriteRequest(
        device_id=1,
        election_id=election,
        updates=[
            _insert(p4r.Entity(table_entry=next_hop)),
            _insert(p4r.Entity(action_profile_member=member)),
        ],
    )
    base = int(ipaddress.IPv6Address("2001:db8::"))
    table = ids["IngressPipeImpl.routing_v6"]
    batches = []
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
            updates.append(_insert(p4r.Entity(table_entry=entry)))
        batches.append(p4r.WriteRequest(device_id=1, election_id=election, updates=updates))
    return setup, batches


async def write_all(stub: Any, batches: list[p4r.WriteRequest], entries: int, batch: int) -> float:
    """Write every request in order, with progress; the seconds it took."""
    print(f"writing {entries} routing_v6 entries in batches of {batch} ...", flush=True)
    t0 = time.perf_counter()
    for i, request in enumerate(batches):
        await stub.Write(request)
        if (i + 1) % max(1, len(batches) // 5) == 0:
            done = min(entries, (i + 1) * batch)
            print(f"  {done} written, {time.perf_counter() - t0:.2f} s", flush=True)
    return time.perf_counter() - t0


async def read_all(stub: Any, table_id: int = 0) -> tuple[int, float]:
    """Read one table (or all: 0) back; (entities, seconds)."""
    t0 = time.perf_counter()
    read = 0
    async for response in stub.Read(
        p4r.ReadRequest(
            device_id=1, entities=[p4r.Entity(table_entry=p4r.TableEntry(table_id=table_id))]
        )
    ):
        read += len(response.entities)
    return read, time.perf_counter() - t0


async def run(entries: int, batch: int, address: str, pid: int) -> dict[str, Any]:
    info = pbutil.from_text(P4INFO.read_text(), p4i.P4Info)
    channel = grpc.aio.insecure_channel(address)
    stub = p4r_grpc.P4RuntimeStub(channel)
    stream, election = await primary(stub, info)
    setup, batches = workload(names(info), election, entries, batch)
    await stub.Write(setup)
    cpu0, threads0 = cpu_seconds(pid), thread_cpu_seconds(pid)
    client0 = time.process_time()
    write_s = await write_all(stub, batches, entries, batch)
    client_s = time.process_time() - client0
    cpu1, threads1 = cpu_seconds(pid), thread_cpu_seconds(pid)
    # The main thread (its id is the pid) runs gRPC and validation; the busiest other one
    # is the data plane's worker (decode, render, journal, feeding ip).
    spent = {t: threads1.get(t, 0.0) - threads0.get(t, 0.0) for t in threads1}
    main_s = spent.pop(pid, 0.0)
    worker_s = max(spent.values(), default=0.0)
    in_kernel = sum(
        1
        for line in sh("ip", "-n", NETNS, "-6", "route", "show", "proto", "222").splitlines()
        if line.startswith("2001:db8:")
    )
    read, read_s = await read_all(stub)
    rss = rss_mb(pid)
    stream.cancel()
    await channel.close()
    return {
        "entries": entries,
        "batch": batch,
        "write_seconds": round(write_s, 3),
        "write_entries_per_second": round(entries / write_s),
        "write_cpu_us_per_entry": round((cpu1[0] - cpu0[0]) / entries * 1e6, 1),
        "write_ip_cpu_us_per_entry": round((cpu1[1] - cpu0[1]) / entries * 1e6, 1),
        "write_main_thread_cpu_us_per_entry": round(main_s / entries * 1e6, 1),
        "write_dataplane_thread_cpu_us_per_entry": round(worker_s / entries * 1e6, 1),
        "write_client_cpu_us_per_entry": round(client_s / entries * 1e6, 1),
        "kernel_routes": in_kernel,
        "read_entries": read,
        "read_seconds": round(read_s, 3),
        "switchd_rss_mb": round(rss, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=50_000, help="entries to write")
    parser.add_argument("--batch", type=int, default=1000, help="updates per WriteRequest")
    parser.add_argument("--json", metavar="OUT", help="also write the figures as JSON")
    parser.add_argument(
        "--profile", metavar="OUT", help="run switchd under cProfile, stats written to OUT"
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (a network namespace)", file=sys.stderr)
        return 1
    setup_namespace()
    with tempfile.TemporaryDirectory(prefix="srv6lab-bench-") as tmp:
        sock = f"unix:{tmp}/switchd.sock"
        log = Path(tmp) / "switchd.log"
        ports = ",".join(f"{n}={name}" for n, name in PORTS.items())
        profile = ["-m", "cProfile", "-o", args.profile] if args.profile else []
        with log.open("w") as out:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", NETNS, sys.executable, *profile, "-m", "switchd.cli",
                 "--listen", sock, "--ports", ports, "--log-level", "warning"],
                stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
            )  # fmt: skip
        try:
            with grpc.insecure_channel(sock) as ch:
                try:
                    grpc.channel_ready_future(ch).result(timeout=30)
                except grpc.FutureTimeoutError:
                    print(
                        f"switchd (exit {proc.poll()}) did not listen in 30 s:\n{log.read_text()}"
                    )
                    raise
            rss_idle = rss_mb(proc.pid)
            figures = asyncio.run(run(args.entries, args.batch, sock, proc.pid))
            figures["switchd_rss_idle_mb"] = round(rss_idle, 1)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            subprocess.run(["ip", "netns", "del", NETNS], check=False)
    print()
    print(
        f"{'entries written (kernel holds)':<34}{figures['entries']} ({figures['kernel_routes']})"
    )
    print(f"{'write throughput':<34}{figures['write_entries_per_second']} entries/s "
          f"({figures['write_seconds']} s, batches of {figures['batch']})")  # fmt: skip
    print(f"{'CPU per entry written':<34}switchd {figures['write_cpu_us_per_entry']} us, "
          f"its ip -batch {figures['write_ip_cpu_us_per_entry']} us, "
          f"this client {figures['write_client_cpu_us_per_entry']} us")  # fmt: skip
    print(f"{'  switchd by thread':<34}main (gRPC, validation) "
          f"{figures['write_main_thread_cpu_us_per_entry']} us, data plane "
          f"{figures['write_dataplane_thread_cpu_us_per_entry']} us")  # fmt: skip
    print(f"{'read all entries':<34}{figures['read_entries']} in {figures['read_seconds']} s")
    print(f"{'switchd RSS idle / loaded':<34}"
          f"{figures['switchd_rss_idle_mb']} / {figures['switchd_rss_mb']} MB")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    ok = figures["kernel_routes"] == figures["entries"]
    if not ok:
        print(f"FAILED: the kernel holds {figures['kernel_routes']} of {figures['entries']} routes")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
