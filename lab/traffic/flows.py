"""Choosing probe flows that cross a given link, and seeing which flows do.

The fabric spreads flows by ECMP with L4 hashing (DESIGN.md), and the kernel's hash seed is
its own, so which UDP source port takes which path can only be seen, not computed. So:
take host pairs whose shortest paths can use the link X->Y (preferring pairs for which X
has another next hop toward the destination, so the data plane can route around a dead
link), send a few packets for many source ports, and watch X's port toward Y with a packet
socket: the (pair, port) tuples seen there are the flows that cross it.
"""

from __future__ import annotations

import select
import socket
import struct
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import networkx as nx

from controller.topology import Topology
from lab.errors import LabError
from lab.nsenter import netns
from lab.traffic.probe import DEFAULT_PORT, HEADER, ProbeFlow

ETH_P_ALL = 0x0003
ETH_P_IPV6 = 0x86DD
PACKET_OUTGOING = 4
FIRST_SPORT = 40000
SPORTS_PER_ROUND = 24


@dataclass(frozen=True, slots=True)
class Crossing:
    src_addr: str
    dst_addr: str
    sport: int
    flow_id: int | None
    """From the probe header, when the packet is a probe packet."""


@contextmanager
def watch(ns: str, ifname: str) -> Iterator[socket.socket]:
    """A packet socket on ``ifname`` in namespace ``ns`` (every frame, both ways)."""
    with netns(ns):
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    try:
        sock.bind((ifname, 0))
        sock.setblocking(False)
        yield sock
    finally:
        sock.close()


def read_crossings(sock: socket.socket, seconds: float, outgoing: bool = True) -> set[Crossing]:
    """UDP/IPv6 packets the socket sees for ``seconds`` (only those the interface sends,
    with ``outgoing``)."""
    seen: set[Crossing] = set()
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([sock], [], [], left)
        if not ready:
            continue
        while True:
            try:
                frame, addr = sock.recvfrom(256)
            except BlockingIOError:
                break
            if outgoing and addr[2] != PACKET_OUTGOING:
                continue
            crossing = parse(frame)
            if crossing is not None:
                seen.add(crossing)
    return seen


IPV6_EXTENSIONS = (0, 43, 60)
"""Hop-by-hop, routing (the SRH), destination options: headers walked past."""


def parse(frame: bytes) -> Crossing | None:
    """The UDP flow of an Ethernet frame: plain IPv6, or IPv6 in IPv6 (an SRv6 headend's
    encapsulation, with or without an SRH), addresses from the innermost header."""
    if len(frame) < 62 or struct.unpack_from("!H", frame, 12)[0] != ETH_P_IPV6:
        return None
    ip, nh = 14, frame[20]
    at = ip + 40
    for _ in range(4):
        while nh in IPV6_EXTENSIONS and len(frame) >= at + 8:
            nh, at = frame[at], at + (frame[at + 1] + 1) * 8
        if nh != socket.IPPROTO_IPV6 or len(frame) < at + 40:
            break
        ip, nh, at = at, frame[at + 6], at + 40
    if nh != socket.IPPROTO_UDP or len(frame) < at + 8:
        return None
    src = socket.inet_ntop(socket.AF_INET6, frame[ip + 8 : ip + 24])
    dst = socket.inet_ntop(socket.AF_INET6, frame[ip + 24 : ip + 40])
    sport = struct.unpack_from("!H", frame, at)[0]
    payload = at + 8
    flow_id = HEADER.unpack_from(frame, payload)[0] if len(frame) >= payload + HEADER.size else None
    return Crossing(src, dst, sport, flow_id)


def candidate_pairs(topo: Topology, x: str, y: str) -> list[tuple[str, str, bool]]:
    """(src host, dst host, X has an alternative) for every pair whose shortest paths
    may cross X->Y, alternatives first."""
    g = topo.graph
    dist = dict(nx.all_pairs_shortest_path_length(g))
    out = []
    for src in topo.hosts:
        for dst in topo.hosts:
            if src is dst:
                continue
            s, d = src.name, dst.name
            if dist[s][x] + 1 + dist[y][d] != dist[s][d]:
                continue
            nexts = [n for n in g.neighbors(x) if dist[n][d] == dist[x][d] - 1]
            out.append((s, d, len(nexts) > 1))
    out.sort(key=lambda c: not c[2])
    return out


def choose_flows(
    topo: Topology,
    netns_of: dict[str, str],
    x: str,
    y: str,
    count: int,
    *,
    dport: int = DEFAULT_PORT,
    rounds: int = 8,
) -> list[ProbeFlow]:
    """``count`` probe flows whose packets leave X toward Y (seen on X's port), spread
    over as many host pairs as the link carries."""
    link = topo.link(x, y)
    port = link.interface_at(x).name
    pairs = candidate_pairs(topo, x, y)
    if not pairs:
        raise LabError(f"no host pair's shortest path crosses {x}->{y}")
    if any(alt for *_, alt in pairs):
        pairs = [p for p in pairs if p[2]]
    addr = {h.name: str(h.address) for h in topo.hosts}
    by_addr = {v: k for k, v in addr.items()}
    chosen: list[ProbeFlow] = []
    used: set[tuple[str, int]] = set()
    per_pair: dict[tuple[str, str], int] = {}
    sport = FIRST_SPORT
    for _ in range(rounds):
        tried = [(s, d, p) for s, d, _alt in pairs for p in range(sport, sport + SPORTS_PER_ROUND)]
        sport += SPORTS_PER_ROUND
        socks: dict[tuple[str, int], socket.socket] = {}
        try:
            with watch(netns_of[x], port) as sniffer:
                for s, _d, p in tried:
                    if (s, p) not in socks:
                        with netns(netns_of[s]):
                            sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
                        sock.bind(("::", p))
                        socks[(s, p)] = sock
                for _repeat in range(2):
                    for s, d, p in tried:
                        socks[(s, p)].sendto(b"srv6lab flow choice", (addr[d], dport))
                seen = read_crossings(sniffer, 0.3)
        finally:
            for sock in socks.values():
                sock.close()
        hits = [
            (by_addr[c.src_addr], by_addr[c.dst_addr], c.sport)
            for c in seen
            if c.src_addr in by_addr and c.dst_addr in by_addr
        ]
        # Spread: one flow per host pair in turn, so that many pairs are represented.
        queues: dict[tuple[str, str], list[int]] = {}
        for s, d, p in sorted(hits):
            if (s, p) not in used:
                queues.setdefault((s, d), []).append(p)
        while len(chosen) < count and any(queues.values()):
            for (s, d), ports in sorted(queues.items(), key=lambda q: per_pair.get(q[0], 0)):
                while ports and (s, ports[0]) in used:
                    ports.pop(0)
                if not ports or len(chosen) >= count:
                    continue
                p = ports.pop(0)
                used.add((s, p))
                per_pair[(s, d)] = per_pair.get((s, d), 0) + 1
                chosen.append(
                    ProbeFlow(
                        flow_id=len(chosen) + 1,
                        src=s,
                        src_netns=netns_of[s],
                        src_addr=addr[s],
                        sport=p,
                        dst=d,
                        dst_netns=netns_of[d],
                        dst_addr=addr[d],
                        dport=dport,
                    )
                )
        if len(chosen) >= count:
            return chosen
    raise LabError(
        f"found only {len(chosen)} of {count} flows crossing {x}->{y} after trying "
        f"{rounds * SPORTS_PER_ROUND} source ports per host pair; is the fabric installed?"
    )
