"""Helpers for switchd's integration tests: srv6.p4 entries by name (finsy), the entries
that route a topology hop by hop, and packet captures read back with scapy."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import finsy as fy
import networkx as nx

from controller.topology import Topology

ROOT = Path(__file__).resolve().parents[2]
P4INFO = ROOT / "p4" / "build" / "srv6.p4info.txtpb"


TRI3 = """\
name: tri-3
description: line-3 with a direct s1-s3 link
defaults: {bandwidth: 100}
switches: [{name: s1, id: 1}, {name: s2, id: 2}, {name: s3, id: 3}]
hosts:
  - {name: h1, id: 1, nics: [s1]}
  - {name: h2, id: 2, nics: [s3]}
links:
  - {ends: [s1, s2]}
  - {ends: [s2, s3]}
  - {ends: [s1, s3]}
"""
"""line-3 plus a direct s1-s3 link: s1 has two ways to s3 (ECMP and steering tests)."""


class P4RuntimeSwitch:
    """One lab switch seen by a P4Runtime client (finsy): each call connects, becomes
    primary, pushes srv6.p4's pipeline if the switch lacks it, does its work, leaves."""

    def __init__(self, name: str, address: str, device_id: int) -> None:
        self.name = name
        self.options = fy.SwitchOptions(p4info=P4INFO, p4blob=b"", device_id=device_id)
        self.address = address

    def _run(self, work: Any) -> Any:
        async def session() -> Any:
            async with fy.Switch(self.name, self.address, self.options) as sw:
                return await work(sw)

        return asyncio.run(asyncio.wait_for(session(), 60))

    def insert(self, entities: list[Any]) -> None:
        self._run(lambda sw: sw.insert(entities))

    def write(self, updates: list[Any]) -> None:
        self._run(lambda sw: sw.write(updates))

    def clear(self) -> None:
        self._run(lambda sw: sw.delete_all())

    def read_all(self) -> list[Any]:
        async def read(sw: Any) -> list[Any]:
            entries = [e async for e in sw.read(fy.P4TableEntry())]
            members = [m async for m in sw.read(fy.P4ActionProfileMember())]
            groups = [g async for g in sw.read(fy.P4ActionProfileGroup())]
            return entries + members + groups

        result: list[Any] = self._run(read)
        return result

    def counters(self) -> list[Any]:
        async def read(sw: Any) -> list[Any]:
            return [c async for c in sw.read(fy.P4DirectCounterEntry("my_sid_counter"))]

        result: list[Any] = self._run(read)
        return result


def netns(node: str) -> str:
    """The named namespace of a lab node (tests use a private prefix, see conftest)."""
    return os.environ.get("SRV6LAB_NETNS_PREFIX", "srv6lab-") + node


def schema() -> fy.P4Schema:
    return fy.P4Schema(P4INFO)


def ports_of(topo: Topology, switch: str) -> dict[int, str]:
    return {i.port: i.name for i in topo.interfaces_of(switch)}


def next_hop_entries(topo: Topology, switch: str) -> tuple[list[Any], dict[str, int]]:
    """A next_hop entry per neighbour (id = port number), and neighbour -> next hop id."""
    entries: list[Any] = []
    by_neighbour: dict[str, int] = {}
    for link in topo.links_of(switch):
        mine, peer = link.interface_at(switch), link.peer_of(switch)
        entries.append(
            fy.P4TableEntry(
                "next_hop",
                match=fy.P4TableMatch({"local_metadata.nexthop_id": mine.port}),
                action=fy.P4TableAction(
                    "rewrite", port=mine.port, src_mac=mine.mac, dst_mac=peer.mac
                ),
            )
        )
        by_neighbour[peer.node] = mine.port
    return entries, by_neighbour


def route_entries(
    topo: Topology, switch: str, by_neighbour: dict[str, int], prefixes: dict[str, str]
) -> list[Any]:
    """Shortest-path routes toward every destination node's prefix; several equal-cost
    next hops become an ECMP group with watch ports. Member id = next hop id; group id =
    the destination's index + 1."""
    entries: list[Any] = []
    members: set[int] = set()
    g = topo.graph
    for index, (dst, prefix) in enumerate(sorted(prefixes.items())):
        if dst == switch:
            continue
        dist = nx.single_source_shortest_path_length(g, dst)
        hops = sorted(n for n in g.neighbors(switch) if dist.get(n, 1 << 30) == dist[switch] - 1)
        for hop in hops:
            nh = by_neighbour[hop]
            if nh not in members:
                members.add(nh)
                entries.append(
                    fy.P4ActionProfileMember(
                        "ecmp_selector",
                        member_id=nh,
                        action=fy.P4TableAction("set_next_hop", nexthop_id=nh),
                    )
                )
        match = fy.P4TableMatch({"hdr.ipv6.dst_addr": prefix})
        if len(hops) == 1:
            action = fy.P4IndirectAction(member_id=by_neighbour[hops[0]])
        else:
            group = index + 1
            entries.append(
                fy.P4ActionProfileGroup(
                    "ecmp_selector",
                    group_id=group,
                    members=[
                        fy.P4Member(by_neighbour[h], weight=(1, by_neighbour[h])) for h in hops
                    ],
                )
            )
            action = fy.P4IndirectAction(group_id=group)
        entries.append(fy.P4TableEntry("routing_v6", match=match, action=action))
    return entries


def host_and_locator_prefixes(topo: Topology) -> dict[str, str]:
    """Destination node -> prefix: hosts' /64s and switches' uN /48s."""
    out = {h.name: str(h.nics[0].prefix) for h in topo.hosts}
    out.update({s.name: str(s.locator) for s in topo.switches})
    return out


def routing_entries(topo: Topology, switch: str) -> list[Any]:
    nh_entries, by_neighbour = next_hop_entries(topo, switch)
    return nh_entries + route_entries(topo, switch, by_neighbour, host_and_locator_prefixes(topo))


def sid(text: str) -> int:
    return int(ipaddress.IPv6Address(text))


class Capture:
    """tcpdump on one interface of a lab node; ``packets()`` stops it and parses the file
    with scapy."""

    def __init__(self, node: str, ifname: str, bpf: str = "ip6") -> None:
        self.dir = tempfile.TemporaryDirectory(prefix="srv6lab-cap-")
        self.path = Path(self.dir.name) / "cap.pcap"
        self.proc = subprocess.Popen(
            [
                "ip", "netns", "exec", netns(node),
                "tcpdump", "-i", ifname, "--immediate-mode", "-U", "-n", "-w", str(self.path), bpf,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()  # "listening on ..." once the capture runs
        if "listening" not in line:
            self.proc.kill()
            raise RuntimeError(f"tcpdump did not start: {line}")

    def packets(self) -> list[Any]:
        from scapy.all import rdpcap

        self._wait_until_quiet()
        self.proc.terminate()
        self.proc.wait(timeout=5)
        try:
            return list(rdpcap(str(self.path)))
        finally:
            self.dir.cleanup()

    def _wait_until_quiet(self, step: float = 0.1, timeout: float = 3.0) -> None:
        """Wait until tcpdump's file stops growing (immediate mode, written at once: -U)."""
        deadline = time.monotonic() + timeout
        last, stable = -1, 0
        while stable < 3 and time.monotonic() < deadline:
            size = self.path.stat().st_size if self.path.exists() else 0
            stable = stable + 1 if size == last else 0
            last = size
            time.sleep(step)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.dir.cleanup()


@contextmanager
def capture(node: str, ifname: str, bpf: str = "ip6") -> Iterator[Capture]:
    cap = Capture(node, ifname, bpf)
    try:
        yield cap
    finally:
        cap.close()


def send_udp(node: str, dst: str, ports: range, count: int = 3) -> None:
    """UDP datagrams from a lab host, one small burst per source port."""
    code = (
        "import socket,sys\n"
        "s=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM)\n"
        f"for p in range({ports.start},{ports.stop}):\n"
        "  u=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM)\n"
        "  u.bind(('::',p))\n"
        f"  [u.sendto(b'srv6lab',('{dst}',9)) for _ in range({count})]\n"
        "  u.close()\n"
    )
    subprocess.run(
        ["ip", "netns", "exec", netns(node), "python3", "-c", code],
        check=True,
        timeout=30,
    )


def ping(node: str, dst: str, count: int = 3) -> bool:
    proc = subprocess.run(
        ["ip", "netns", "exec", netns(node), "ping", "-6", "-n", "-q", "-i", "0.05",
         "-c", str(count), "-W", "2", dst],
        capture_output=True, text=True, check=False, timeout=30,
    )  # fmt: skip
    return proc.returncode == 0


RECEIVER = """
import socket, sys, time
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)  # a busy machine: never drop here
s.bind(("::", int(sys.argv[1])))
s.settimeout(float(sys.argv[2]))
seen = set()
print("listening", flush=True)
try:
    while True:
        data, _ = s.recvfrom(64)
        seen.add(int.from_bytes(data[:8], "big"))
except socket.timeout:
    pass
print(len(seen), max(seen) + 1 if seen else 0, flush=True)
"""

SENDER = """
import socket, sys, time
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
dst, port, rate, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
count = int(rate * seconds)
start = time.perf_counter()
for seq in range(count):
    delay = start + seq / rate - time.perf_counter()
    if delay > 0:
        time.sleep(delay)
    s.sendto(seq.to_bytes(8, "big"), (dst, port))
print(count, flush=True)
"""


class Flow:
    """A UDP probe flow between two lab hosts: every datagram carries a sequence number; the
    receiver counts distinct ones and stops after ``idle`` seconds without traffic."""

    def __init__(
        self, src: str, dst: str, dst_addr: str, *, rate: int, seconds: float, idle: float = 2.0
    ) -> None:
        self.receiver = subprocess.Popen(
            ["ip", "netns", "exec", netns(dst), "python3", "-c", RECEIVER, "7000", str(idle)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.receiver.stdout is not None
        assert self.receiver.stdout.readline().strip() == "listening"
        self.sender = subprocess.Popen(
            ["ip", "netns", "exec", netns(src), "python3", "-c", SENDER, dst_addr, "7000",
             str(rate), str(seconds)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip

    def result(self, timeout: float = 60) -> tuple[int, int]:
        """(sent, received distinct)."""
        sent_out, _ = self.sender.communicate(timeout=timeout)
        received_out, _ = self.receiver.communicate(timeout=timeout)
        return int(sent_out.split()[0]), int(received_out.split()[0])

    def close(self) -> None:
        for proc in (self.sender, self.receiver):
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def tx_packets(node: str, ifname: str) -> int:
    import json

    out = subprocess.run(
        ["ip", "-n", netns(node), "-s", "-j", "link", "show", ifname],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return int(json.loads(out)[0]["stats64"]["tx"]["packets"])


COUNTER = """
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.bind(("::", int(sys.argv[1])))
s.settimeout(float(sys.argv[2]))
count, expect = 0, int(sys.argv[3])
print("listening", flush=True)
try:
    while count < expect:
        s.recvfrom(2048)
        count += 1
except socket.timeout:
    pass
print(count, flush=True)
"""


class UdpReceiver:
    """Counts the UDP datagrams a lab host receives on a port, until ``expect`` arrived or
    none came for ``idle`` seconds."""

    def __init__(self, node: str, port: int, expect: int, idle: float = 2.0) -> None:
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", netns(node), "python3", "-c", COUNTER,
             str(port), str(idle), str(expect)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "listening"

    def result(self) -> int:
        out, _ = self.proc.communicate(timeout=60)
        return int(out.split()[-1])

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
