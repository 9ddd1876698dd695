"""Path probes: gray failures (a link that stays up and silently drops) are invisible to
gNMI and netlink, so the controller sends its own probes through every SRv6 path it
steers traffic on, and treats a path that stops answering like a down link.

Every ``interval`` a probe goes through each headend policy's segment lists: built here
as the headend would build it (outer IPv6 from the ingress's tunnel source to the first
SID, an SRH when the list has several SIDs, inner IPv6 toward an unused address of the
destination's prefix, UDP port 6635, stamped with target id, sequence number and send
time), sent from a raw socket inside the ingress switch's namespace, so the switch's own
forwarding carries it. It is seen leaving the egress switch's port toward the
destination host, decapsulated (a packet socket with a BPF filter inside the egress
switch's namespace); the host drops it.

Probes and echoes carry DSCP CS6 (outer and inner header; the echo socket's traffic
class, which the reply reflects). Lab links give CS6 a strict-priority htb class
(lab/links.py), as fabrics do for control traffic: a probe never waits behind a data
queue, so it is late only by the machine's CPU jitter (``grace``), and a lost probe means
a lost link, not congestion. The targets' probes are spread over the interval (phases),
and every phase judges every target, so a failure is seen within a fraction of an
interval of the probe that proves it.

A path that has ``miss`` probes in a row unanswered ``grace`` after they were sent, after
answering on the current state (all switches written; a path is judged again only after
it answered once since the last change, so the loss of a reconfiguration is never taken
for a failure), is suspect. Its fabric links that no path vouches for (a probe that
crossed them was sent after the suspect's first lost one, and arrived) are each sent
``confirm`` ICMPv6 echoes at once; those that answer none within ``grace / 2`` are reported
down (reason ``probe``). The controller's fast reroute and recompute follow, as for a port
going down. Sockets are read before every judgement, so a loop that runs late reads what
arrived meanwhile instead of taking it for lost.

A failed segment list cannot say which link failed, nor when it is back: after the
reroute the same SIDs may be forwarded around the link. Hence the echo, between the
link-local addresses of a link's two ends (a raw socket in one end's namespace, scoped to
the port: routing plays no part, and a gray link drops the request or the reply). A link
taken down this way is reported up again after ``recover`` echoes in a row.

Needs the switch's data plane in its namespace: kernel switches (switchd). A BMv2
switch's namespace is not its pipeline, so BMv2 labs are not probed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import json
import logging
import math
import os
import socket
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.compiler import tunnel_source
from controller.intents.engine import LinkKey
from controller.netns import socket_in

LOG = logging.getLogger("srv6lab.probing")
PORT = 6635
MAGIC = b"S6PR"
ETH_P_IPV6 = 0x86DD
ETH_P_ALL = 0x0003
SO_ATTACH_FILTER = 26
_STAMP = struct.Struct("!4sIIQ")
TCLASS = 0xC0
"""DSCP CS6 (network control) in the IPv6 traffic class: the links' priority class."""
IPV6_TCLASS = 67
PHASES = 4
"""Probe phases per interval: the loop runs every interval / PHASES."""
GRACE_S = 0.004
"""How late a probe or echo reply may be (priority queues: CPU jitter only)."""

# classic BPF: IPv6, next header UDP, destination port 6635 (Ethernet + fixed IPv6 header)
_BPF = [
    (0x28, 0, 0, 12),  # ldh [12]          ethertype
    (0x15, 0, 5, ETH_P_IPV6),  # jeq #0x86dd
    (0x30, 0, 0, 20),  # ldb [20]          IPv6 next header
    (0x15, 0, 3, 17),  # jeq #17 (UDP)
    (0x28, 0, 0, 56),  # ldh [56]          UDP destination port
    (0x15, 0, 1, PORT),  # jeq #6635
    (0x06, 0, 0, 0xFFFF),  # ret: accept
    (0x06, 0, 0, 0),  # ret: drop
]


@dataclass
class Target:
    """One segment list of one policy, probed."""

    id: int
    ingress: str
    egress: str
    port: str
    """The egress switch's port toward the destination host."""
    src: ipaddress.IPv6Address
    dst: ipaddress.IPv6Address
    """An unused address of the destination's prefix (the inner destination)."""
    sids: tuple[ipaddress.IPv6Address, ...]
    links: frozenset[LinkKey]
    """Fabric links of the path (not the hosts' access links)."""
    every: int = 1
    """Probe every this many intervals (keeps the probes to ~1 % of the slowest link)."""
    phase: int = 0
    """The phase (tick modulo every * PHASES) at which it sends."""
    seq: int = 0
    last_rx: int = -1
    last_rx_sent: int = 0
    """Send time of the newest probe that arrived."""
    sent: dict[int, int] = field(default_factory=dict)
    """Send time of the recent probes, by sequence number."""
    answered: bool = False
    failed: bool = False
    streak: int = 0
    active: bool = True
    """Still in the solution (a failed target is kept, inactive, until it recovers)."""
    rtt_ns: list[int] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str, tuple[ipaddress.IPv6Address, ...]]:
        return (self.ingress, str(self.dst), self.sids)

    def __str__(self) -> str:
        return f"{self.ingress}->{self.egress} via {' '.join(map(str, self.sids))}"


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def build_probe(target: Target, seq: int, now_ns: int) -> bytes:
    """Outer IPv6 (+ SRH) + inner IPv6 + UDP + stamp, as H.Encaps would build it."""
    payload = _STAMP.pack(MAGIC, target.id, seq, now_ns)
    udp_len = 8 + len(payload)
    pseudo = (
        target.src.packed + target.dst.packed + struct.pack("!IxxxB", udp_len, 17)
    )  # RFC 8200 section 8.1
    udp = struct.pack("!HHHH", PORT, PORT, udp_len, 0) + payload
    csum = _checksum(pseudo + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", csum) + udp[8:]
    first_word = 0x60000000 | TCLASS << 20 | (target.id & 0xFFFFF)
    inner = (
        struct.pack("!IHBB", first_word, len(udp), 17, 64)
        + target.src.packed
        + target.dst.packed
        + udp
    )
    sids = target.sids
    if len(sids) > 1:
        n = len(sids)
        srh = struct.pack("!BBBBBBH", 41, 2 * n, 4, n - 1, n - 1, 0, 0) + b"".join(
            s.packed for s in reversed(sids)
        )
        body, nh = srh + inner, 43
    else:
        body, nh = inner, 41
    outer = struct.pack("!IHBB", first_word, len(body), nh, 64)
    return outer + target.src.packed + sids[0].packed + body


def parse_probe(frame: bytes) -> tuple[int, int, int] | None:
    """(target id, seq, send ns) of a decapsulated probe frame (Ethernet + IPv6 + UDP)."""
    start = 14 + 40 + 8
    if len(frame) < start + _STAMP.size:
        return None
    magic, target, seq, sent = _STAMP.unpack_from(frame, start)
    return (target, seq, sent) if magic == MAGIC else None


class PathProber:
    def __init__(
        self,
        service: Any,
        inventory: Path,
        *,
        interval: float = 0.01,
        miss: int = 1,
        recover: int = 5,
        confirm: int = 2,
        grace: float = GRACE_S,
    ) -> None:
        self.service = service
        self.interval = interval
        self.grace_ns = int(grace * 1e9)
        self.miss = miss
        self.confirm = confirm
        self.recover = recover
        try:
            raw = json.loads(inventory.read_text()).get("switches", [])
        except (OSError, ValueError):
            raw = []
        self.netns: dict[str, str] = {
            s["name"]: s["netns"]
            for s in raw
            if isinstance(s, dict) and s.get("netns") and s.get("kind", "kernel") == "kernel"
        }
        self.targets: dict[tuple[Any, ...], Target] = {}
        self.by_id: dict[int, Target] = {}
        self._next_id = 1
        self._senders: dict[str, socket.socket] = {}
        self._receivers: dict[tuple[str, str], socket.socket] = {}
        self._task: asyncio.Task[None] | None = None
        self._solution: Any = None
        self._pending: set[asyncio.Task[None]] = set()
        self.checks: dict[LinkKey, LinkCheck] = {}
        self._tick = 0
        self._icmp: dict[str, socket.socket] = {}
        self._ifindexes: dict[tuple[str, str], int] = {}
        """(switch, port) -> the port's ifindex, looked up once (inside the namespace)."""
        self._said_unjudged = 0

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if not self.netns:
            LOG.info("path probes off: no kernel switch namespaces in the inventory")
            return
        self._task = asyncio.create_task(self._run(), name="path-prober")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        for task in list(self._pending):
            task.cancel()
        loop = asyncio.get_running_loop()
        for sock in self._receivers.values():
            loop.remove_reader(sock.fileno())
            sock.close()
        for sock in self._icmp.values():
            loop.remove_reader(sock.fileno())
            sock.close()
        for sock in self._senders.values():
            sock.close()
        self._receivers.clear()
        self._senders.clear()

    # -- targets -----------------------------------------------------------------------------

    def _refresh(self) -> None:
        solution = self.service.solution
        if solution is self._solution:
            return
        self._solution = solution
        # every path may have moved (new SIDs, or the fabric between them): a target is
        # judged again only once it has answered on the new state
        for target in self.targets.values():
            target.answered = False
        topo = self.service.topo
        wanted: set[tuple[Any, ...]] = set()
        for policy in solution.policies:
            ingress = policy.key[0]
            if ingress not in self.netns:
                continue
            for steered in policy.lists:
                egress, host = steered.path.nodes[-2], steered.path.nodes[-1]
                if egress not in self.netns:
                    continue
                dst = policy.key[1].network_address + 0x5EAD
                sids = tuple(steered.segments.sids)
                key = (ingress, str(dst), sids)
                wanted.add(key)
                if key in self.targets:
                    self.targets[key].active = True
                    continue
                access = {frozenset(steered.path.nodes[:2]), frozenset(steered.path.nodes[-2:])}
                target = Target(
                    self._next_id,
                    ingress,
                    egress,
                    topo.link(egress, host).interface_at(egress).name,
                    tunnel_source(topo, ingress),
                    dst,
                    sids,
                    frozenset(steered.links - access),
                )
                self._next_id += 1
                self.targets[key] = target
                self.by_id[target.id] = target
        for key, target in list(self.targets.items()):
            if key not in wanted:
                if target.failed:
                    target.active = False  # keep probing until it recovers
                else:
                    del self.targets[key]
                    del self.by_id[target.id]
        self._pace()
        for link in {link for t in self.targets.values() for link in t.links}:
            self._prepare_echo(link)

    def _prepare_echo(self, link: LinkKey) -> None:
        """Open what an echo across ``link`` needs before a failure asks for one: the
        echoing switch's ICMPv6 socket and the port's ifindex (each a thread that enters
        the switch's namespace). Made at the first echo, they were on the failure's
        critical path: the echoes of a gray failure took 7-16 ms instead of 2."""
        end = self._echo_end(link)
        if end is None:
            return
        switch, port, _peer = end
        try:
            self._icmp_socket(switch)
            self._ifindex_of(switch, port)
        except OSError as exc:
            LOG.debug("echo across %s not prepared: %s", _name(link), exc)

    def _pace(self) -> None:
        """Probes must not load the links they judge: each target probes at most at ~1 %
        of its slowest link shared with the others that cross it; the targets' phases are
        spread over the interval."""
        topo = self.service.topo
        crossing: dict[LinkKey, int] = {}
        for t in self.targets.values():
            for link in t.links:
                crossing[link] = crossing.get(link, 0) + 1
        for t in self.targets.values():
            slowest = min((_mbps(topo, link) for link in t.links), default=100_000.0)
            sharing = max((crossing[link] for link in t.links), default=1)
            bits_per_s = slowest * 1e6 * PROBE_SHARE
            min_interval = sharing * PROBE_BITS / bits_per_s
            t.every = max(1, math.ceil(min_interval / self.interval))
        for n, t in enumerate(sorted(self.targets.values(), key=lambda t: t.id)):
            t.phase = n % (t.every * PHASES)

    def _sender(self, switch: str) -> socket.socket:
        sock = self._senders.get(switch)
        if sock is None:
            sock = socket_in(
                self.netns[switch], socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW
            )
            sock.setblocking(False)
            self._senders[switch] = sock
        return sock

    def _receiver(self, switch: str, port: str) -> None:
        if (switch, port) in self._receivers:
            return

        def setup(sock: socket.socket) -> None:
            program = b"".join(struct.pack("HBBI", *insn) for insn in _BPF)
            buf = ctypes_buffer(program)
            fprog = struct.pack("HL", len(_BPF), buf[1])
            sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            sock.bind((port, ETH_P_ALL))

        # ETH_P_ALL: only "all protocols" packet sockets see outgoing frames
        sock = socket_in(
            self.netns[switch], socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL), setup
        )
        sock.setblocking(False)
        asyncio.get_running_loop().add_reader(sock.fileno(), self._readable, sock)
        self._receivers[(switch, port)] = sock

    def _readable(self, sock: socket.socket) -> None:
        while True:
            try:
                frame = sock.recv(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                LOG.warning("probe receiver: %s", exc)
                return
            parsed = parse_probe(frame)
            if parsed is None:
                continue
            target = self.by_id.get(parsed[0])
            if target is None or parsed[1] <= target.last_rx:
                continue
            target.last_rx = parsed[1]
            target.last_rx_sent = parsed[2]
            target.answered = True
            target.streak += 1
            target.rtt_ns.append(time.monotonic_ns() - parsed[2])
            del target.rtt_ns[:-50]
            if target.failed and target.streak >= self.recover:
                target.failed = False
                self._spawn(self._recovered(target))

    # -- the loop ----------------------------------------------------------------------------

    async def _run(self) -> None:
        step = self.interval / PHASES
        next_at = time.monotonic()
        while True:
            try:
                self._refresh()
                self._tick += 1
                self._read_all()
                now = time.monotonic_ns()
                settled = not self.service.busy()
                for target in list(self.targets.values()):
                    self._judge(target, now, settled)
                    if (self._tick - target.phase) % (target.every * PHASES) == 0:
                        self._probe(target, now)
                if self._tick % PHASES == 0:
                    self._echo_all()
            except asyncio.CancelledError:
                raise
            except Exception:
                LOG.exception("path probes")
            next_at += step
            delay = next_at - time.monotonic()
            if delay < 0:
                next_at = time.monotonic()
                delay = 0
            await asyncio.sleep(delay)

    def _read_all(self) -> None:
        """Read what arrived (the loop may run late: a probe waiting in a socket is not
        lost)."""
        for sock in self._receivers.values():
            self._readable(sock)
        for sock in self._icmp.values():
            self._echo_reply(sock)

    def lost(self, target: Target, now: int) -> int:
        """Probes in a row since the last answered one that are overdue (sent more than
        ``grace`` ago)."""
        n = 0
        # send times are kept for the last 256 probes: a longer silence counts from there
        for seq in range(max(target.last_rx + 1, target.seq - 255), target.seq + 1):
            sent = target.sent.get(seq)
            if sent is None or now - sent <= self.grace_ns:
                break
            n += 1
        return n

    def _judge(self, target: Target, now: int, settled: bool) -> None:
        if not settled:
            target.answered = False  # switches are being written: loss here proves nothing
            self._unjudged(target, now, "switches are being written")
            return
        if not target.answered and not target.failed:
            self._unjudged(target, now, "it has not answered on the current state")
        lost = self.lost(target, now) if target.answered and not target.failed else 0
        if lost >= self.miss:
            target.failed = True
            target.streak = 0
            self._spawn(self._failed(target))

    def _unjudged(self, target: Target, now: int, why: str) -> None:
        """Say (once a second at most) that a silent path is not judged, and why."""
        first = target.sent.get(target.last_rx + 1)
        if first is None or now - first < UNJUDGED_NS or now - self._said_unjudged < 1e9:
            return
        self._said_unjudged = now
        LOG.info("path %s: no answer for %.0f ms, not judged: %s", target, (now - first) / 1e6, why)

    def _probe(self, target: Target, now: int) -> None:
        if target.seq > target.last_rx:
            target.streak = 0 if target.seq - target.last_rx > 1 else target.streak
        try:
            self._receiver(target.egress, target.port)
            target.seq += 1
            target.sent[target.seq] = now
            target.sent.pop(target.seq - 256, None)
            self._sender(target.ingress).sendto(
                build_probe(target, target.seq, now), (str(target.sids[0]), 0)
            )
        except OSError as exc:
            LOG.debug("probe %s: %s", target, exc)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def vouched_links(self, since_ns: int) -> set[LinkKey]:
        """Links that carried a probe sent after ``since_ns`` (it arrived)."""
        out: set[LinkKey] = set()
        for t in self.targets.values():
            if t.active and not t.failed and t.last_rx_sent > since_ns:
                out |= t.links
        return out

    async def _failed(self, target: Target) -> None:
        if target.links & self.service.down:
            LOG.info("path %s stopped answering; it crosses a link already down", target)
            return
        judged = time.monotonic_ns()
        first_lost = target.sent.get(target.last_rx + 1, 0)
        suspects = frozenset(target.links - self.vouched_links(first_lost)) or target.links
        missed = target.seq - target.last_rx
        for link in suspects:
            self._check(link, fresh=True)
        checks = [self.checks[link] for link in suspects if link in self.checks]
        # confirm: ``confirm`` echoes across each suspect link at once; they and their
        # replies travel in the priority class, which congestion does not fill
        for _ in range(self.confirm):
            for check in checks:
                try:
                    self._echo(check)
                except OSError as exc:
                    LOG.debug("echo %s: %s", _name(check.link), exc)
        # an echo and its reply cross one link each way, a probe the whole fabric once
        sent = time.monotonic_ns()
        first: int | None = None
        while True:
            await asyncio.sleep(ECHO_GAP_S)
            self._read_all()
            now = time.monotonic_ns()
            answered = [c.answered > 0 for c in checks]
            if first is None and any(answered):
                first = now
            if echoes_judged(now, sent, self.grace_ns, answered, first):
                break
        dead = frozenset(c.link for c in checks if c.answered == 0 and c.sent >= self.confirm)
        if not dead:
            LOG.info(
                "path %s lost %d probes in a row, but every link of it answers echo",
                target, missed,
            )  # fmt: skip
            target.failed = False
            target.answered = False
            return
        LOG.warning(
            "path %s stopped answering (%d probes lost, the first sent %.1f ms ago); no "
            "echo across %s (%.1f ms of echoes)",
            target, missed, (time.monotonic_ns() - first_lost) / 1e6,
            ", ".join(sorted(map(_name, dead))), (time.monotonic_ns() - judged) / 1e6,
        )  # fmt: skip
        await self.service.links_changed(
            dead, False, f"probe {target.ingress}->{target.egress}", reason="probe"
        )

    async def _recovered(self, target: Target) -> None:
        LOG.debug("path %s answers again", target)
        if not target.active:
            self.targets.pop(target.key, None)
            self.by_id.pop(target.id, None)

    # -- suspect links: ICMPv6 echo across the link ------------------------------------------

    def _check(self, link: LinkKey, fresh: bool = False) -> None:
        if link in self.checks:
            check = self.checks[link]
            check.streak = 0
            if fresh:
                check.sent = check.answered = check.replied = 0
                check.outstanding.clear()
            return
        end = self._echo_end(link)
        if end is not None:
            self.checks[link] = LinkCheck(link, *end)

    def _echo_end(self, link: LinkKey) -> tuple[str, str, ipaddress.IPv6Address] | None:
        """Which end of ``link`` echoes (a switch whose namespace we have): (switch, its
        port, the far end's link-local address); None when neither end is ours."""
        a, b = sorted(link)
        joined = self.service.topo.link(a, b)
        here, there = joined.interface_at(a), joined.peer_of(a)
        if a not in self.netns:
            here, there = there, here
        if here.node not in self.netns:
            return None
        return here.node, here.name, there.link_local

    def _icmp_socket(self, switch: str) -> socket.socket:
        sock = self._icmp.get(switch)
        if sock is None:
            sock = socket_in(
                self.netns[switch],
                socket.AF_INET6,
                socket.SOCK_RAW,
                socket.IPPROTO_ICMPV6,
                lambda s: s.setsockopt(socket.IPPROTO_IPV6, IPV6_TCLASS, TCLASS),
            )
            sock.setblocking(False)
            asyncio.get_running_loop().add_reader(sock.fileno(), self._echo_reply, sock)
            self._icmp[switch] = sock
        return sock

    def _ifindex_of(self, switch: str, port: str) -> int:
        index = self._ifindexes.get((switch, port))
        if index is None:
            index = self._ifindexes[(switch, port)] = _ifindex(self.netns[switch], port)
        return index

    def _echo(self, check: LinkCheck) -> None:
        sock = self._icmp_socket(check.switch)
        if check.ifindex == 0:
            check.ifindex = self._ifindex_of(check.switch, check.port)
        check.seq = (check.seq + 1) & 0xFFFF
        check.sent += 1
        check.outstanding[check.seq] = check.sent
        if len(check.outstanding) > 64:
            del check.outstanding[next(iter(check.outstanding))]
        payload = struct.pack("!4sQ", MAGIC, check.id)
        packet = struct.pack("!BBHHH", 128, 0, 0, ECHO_ID, check.seq) + payload
        sock.sendto(packet, (str(check.peer), 0, 0, check.ifindex))

    def _echo_reply(self, sock: socket.socket) -> None:
        while True:
            try:
                data = sock.recv(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if len(data) < 20 or data[0] != 129:
                continue
            ident, seq = struct.unpack_from("!HH", data, 4)
            magic, check_id = struct.unpack_from("!4sQ", data, 8)
            if ident != ECHO_ID or magic != MAGIC:
                continue
            check = next((c for c in self.checks.values() if c.id == check_id), None)
            if check is None or seq not in check.outstanding:
                continue
            check.answered += 1
            check.replied = max(check.replied, check.outstanding.pop(seq))
            check.streak += 1
            if check.streak >= self.recover:
                del self.checks[check.link]
                self._spawn(self._link_back(check))

    def _echo_all(self) -> None:
        for check in list(self.checks.values()):
            if check.replied < check.sent:
                check.streak = 0  # the previous echo got no reply
            try:
                self._echo(check)
            except OSError as exc:
                LOG.debug("echo %s: %s", _name(check.link), exc)

    async def _link_back(self, check: LinkCheck) -> None:
        LOG.info("link %s answers echo again", _name(check.link))
        for target in self.targets.values():
            if target.failed and check.link in target.links:
                # judged again: if it still fails, the link to blame is another one
                target.failed = False
                target.answered = False
        await self.service.links_changed(
            [check.link], True, f"probe echo {check.switch}:{check.port}", reason="probe"
        )


_ids = itertools.count(1)


@dataclass
class LinkCheck:
    link: LinkKey
    switch: str
    port: str
    peer: ipaddress.IPv6Address
    id: int = field(default_factory=lambda: next(_ids))
    ifindex: int = 0
    seq: int = 0
    sent: int = 0
    answered: int = 0
    """Echo replies received (since the check was last made fresh)."""
    replied: int = 0
    """The ``sent`` count of the newest echo answered."""
    streak: int = 0
    outstanding: dict[int, int] = field(default_factory=dict)
    """Echoes not answered yet: sequence number -> their ``sent`` count."""


ECHO_ID = os.getpid() & 0xFFFF


def _ifindex(netns: str, ifname: str) -> int:
    holder: list[int] = []

    def look(sock: socket.socket) -> None:
        holder.append(socket.if_nametoindex(ifname))

    socket_in(netns, socket.AF_INET6, socket.SOCK_DGRAM, 0, look).close()
    return holder[0]


ECHO_GAP_S = 0.001
LATE_ECHO_GRACES = 4
"""How many ``grace`` a set of suspect links' echoes may wait for a first answer when
none came in ``grace / 2`` (:func:`echoes_judged`)."""


def echoes_judged(now: int, sent: int, grace: int, answered: list[bool], first: int | None) -> bool:
    """Whether the echoes sent at ``sent`` across the suspect links (``answered``: which
    have replied; ``first``: when the first reply was read) have had long enough: every
    link answered; or ``grace / 2`` passed, unless several links are suspect and none has
    answered yet (then up to ``LATE_ECHO_GRACES x grace``: links do not all fail at once,
    a late machine delays every echo alike), and unless the first answer came late (then
    the others get ``grace / 2`` after it). Under a loaded lab a gray agg1-core1 was
    blamed on agg1-edge1 and agg3-edge3 as well, none of the three answering within 3.6
    ms (README, "The controller", path probes). Pure."""
    if all(answered):
        return True
    half = grace // 2
    if now < sent + half:
        return False
    if first is None:
        return len(answered) < 2 or now >= sent + LATE_ECHO_GRACES * grace
    return first <= sent + half or now >= first + half


UNJUDGED_NS = 100_000_000
PROBE_BITS = 150 * 8
PROBE_SHARE = 0.01


def _mbps(topo: Any, link: LinkKey) -> float:
    a, b = sorted(link)
    return float(topo.link(a, b).bandwidth_mbps) or 100_000.0


def _name(link: LinkKey) -> str:
    return "-".join(sorted(link))


_keep: list[Any] = []


def ctypes_buffer(data: bytes) -> tuple[Any, int]:
    """A buffer that lives as long as the process (the kernel copies the filter at
    setsockopt, but keep it anyway) and its address."""
    import ctypes

    buf = ctypes.create_string_buffer(data, len(data))
    _keep.append(buf)
    return buf, ctypes.addressof(buf)
