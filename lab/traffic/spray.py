"""MRC-style packet spraying from the hosts: every packet of a flow goes on one of K
disjoint SRv6 paths, chosen by the sending host; a path that loses a packet is retired at
once and probed before it carries data again.

How the host builds the SRv6 encapsulation: with the kernel, per path. In each host
namespace, path i of every destination is a route in routing table ``TABLE + i``:
``<dst NIC addr>/128 encap seg6 mode encap.red segs <uSID container> via <gw> dev <nic>``
(plus ``<container>/128 via <gw> dev <nic>`` for the encapsulated packet's own lookup), and
``ip rule fwmark MARK + i lookup TABLE + i``. The sender keeps one UDP socket per path
with ``SO_MARK = MARK + i`` and picks the path of a packet by the socket it sends it from.
So the kernel encapsulates (no per-packet header building or checksums in Python), the
routes can be checked with ``ip -n <host> -6 route show table all``, and every path's
container fits one uSID carrier: ``encap.red`` then adds no SRH, which the SR domain's
edge filter (SRH from a host port toward an internal SID: dropped) lets through. NACKs and
probe replies go back on the reverse of the path the packet came on (tables
``ACK_TABLE + i``), acks on the reverse of the newest arrival's path.

Transport, per flow: sequence numbers over the flow, per-path sequence numbers, a window
per flow spread over its healthy paths (a host NIC's ``host_window`` packets in flight
shared by the host's flows that have data to send, at least ``flow_window`` per flow and
``window`` per path: about one bandwidth-delay product per NIC, so the queues stay short),
and every host paces what it sends to its NIC's rate (a token bucket per NIC: the
windows and the pacing keep the htb queues far from their limit, so a loss means a
failure, not congestion). The receiver acks once per flow, cumulatively per path (every
``ack_every`` packets or ``ack_delay_ms``; every ack repeats every path's newest arrival,
so one lost with a path that died after it carried the data costs nothing), and sends a
NACK at once when a path's sequence numbers jump (paths are FIFO: the packets in between
were lost; the primary loss signal, as in MRC). Timers catch what no gap shows, RACK and
TLP style (see :meth:`SprayEngine.timers`), and a flow that hears no ack for two round
trips asks its receiver for one on every healthy path. A loss retires the path at once
(not a flow's last healthy one); its packets in flight are sent again on the others. The
host's other paths over the hops where the loss can have been (those no path of the host
has delivered over since) are retired with it (:meth:`SprayEngine._shared_fate`). A
retired path gets a probe every ``probe_interval`` (doubling up to ``probe_max_interval``
while unanswered); ``readmit_after`` answered probes in a row re-admit it (a probe
unanswered after ``probe_timeout`` starts the count again). Acks, NACKs and probes carry
DSCP CS6, the lab links' strict-priority lane.
The receiver tolerates any order (it counts unique packets) and keeps a histogram of the
reorder distance (how far behind the highest sequence number a packet arrives).

Which flow a host's NIC serves first (:func:`serving_order`): a rotation shifted by the
host's rank, as an all-to-all schedule shifts its steps: on turn ``t`` host ``s`` of
``n`` starts with destination ``s + 1 + (t mod (n - 1))`` (mod ``n``), so at any moment
the senders prefer different receivers. Before, a host's flows went in flow order
(lowest destination first) whenever the engine's rotation over all its flows started
outside that host's: every sender served the highest rank last and the flows into it
finished about 20 ms after the others
(gpu-pod-2plane all-to-all, medians of 8 runs: 1.102 -> 1.086; README, Collectives).
"""

from __future__ import annotations

import itertools
import selectors
import socket
import struct
import time
from collections import Counter, deque
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lab.nsenter import netns

MAGIC = 0x5350
HEADER = struct.Struct("!HBBHHIIq")
"""magic, type, path, flow, reserved, seq, path seq, send time (ns). An ACK carries the
number of entries in ``path`` and one :data:`ACK_ENTRY` per path that has delivered anything."""
ACK_ENTRY = struct.Struct("!BxxxIIq")
"""path, packets NACKed on it so far, highest path seq arrived, its send time (ns)."""
DATA, ACK, PROBE, PROBE_ACK, NACK, ACK_REQUEST = 1, 2, 3, 4, 5, 6
SEG6_HEADROOM = 40 + 8 + 16
"""What the kernel reserves on a host's ``encap seg6 mode encap.red`` route with one
segment: the outer IPv6 header and an SRH of one segment, although encap.red with one
segment writes no SRH (``seg6_lwt_headroom``). The route's MTU is the NIC's less this
(``ping -M do`` says so: 8936 on a 9000-byte NIC)."""
PACKET_ROOM = 8 + 40 + SEG6_HEADROOM
"""What a data packet's UDP payload leaves of the host MTU: UDP, the inner IPv6 header and
the encapsulation headroom. A larger datagram leaves the host as two packets: the
1,400-byte datagrams of the first 1500-byte runs did (one datagram: 2 packets on the
NIC and at the receiver, measured; 1,388 bytes: 1)."""
PACKET = 1500 - PACKET_ROOM
"""UDP payload bytes of a data packet on 1500-byte host links (1388)."""
PAYLOAD = PACKET - HEADER.size
TABLE = 5370
MARK = 0x5370
ACK_TABLE = 5470
ACK_MARK = 0x5470
RULE_PREF = 5370
DEFAULT_PORT = 47300
SO_MARK = 36
SO_RCVBUFFORCE = 33
CS6 = 0xC0
"""Traffic class (DSCP CS6) of acks, NACKs and probes: control traffic, which the lab's
links may queue ahead of data."""
_CONTROL = [(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, struct.pack("i", CS6))]
WIRE_EXTRA = 8 + 40 + 40 + 14
"""Bytes a datagram adds on a host link: UDP, inner IPv6, outer IPv6 (encap.red of one
uSID container: no SRH), Ethernet."""
DATA_WIRE = PACKET + WIRE_EXTRA
"""Wire bytes of a data packet on 1500-byte host links (:meth:`SprayConfig.data_wire`
for others)."""


def packet_for_mtu(mtu: int) -> int:
    """UDP payload bytes of the largest data packet that leaves a host with this MTU as
    one packet once encapsulated (8888 at 9000)."""
    packet = mtu - PACKET_ROOM
    if packet < HEADER.size + 1:
        raise ValueError(f"host MTU {mtu} leaves no room for a spray data packet")
    return packet


STALL_NS = 20_000_000
"""A gap this long between two turns of the sender's loop (1 ms apart when it runs) means
the process was not scheduled (a loaded machine): the timers skip that turn."""


@dataclass(frozen=True)
class SprayPath:
    """One path of a flow: the host NIC addresses at its ends and its uSID container, and
    the same for its reverse (acks)."""

    index: int
    nodes: tuple[str, ...]
    src_addr: str
    dst_addr: str
    sid: str
    reverse_sid: str


@dataclass(frozen=True)
class SprayFlow:
    flow_id: int
    src: int
    """Rank indexes."""
    dst: int
    paths: tuple[SprayPath, ...]


@dataclass(frozen=True)
class HostRoute:
    """A route of a host namespace that spraying needs (``ip -6 route`` words)."""

    table: int
    dst: str
    sid: str
    gateway: str
    dev: str

    def commands(self) -> list[str]:
        return [
            f"route replace {self.dst}/128 encap seg6 mode encap.red segs {self.sid} "
            f"via {self.gateway} dev {self.dev} table {self.table}",
            f"route replace {self.sid}/128 via {self.gateway} dev {self.dev} table {self.table}",
        ]


def rule_commands(paths: int, add: bool) -> list[str]:
    verb = "add" if add else "del"
    out = []
    for i in range(paths):
        out.append(f"rule {verb} fwmark {MARK + i} lookup {TABLE + i} pref {RULE_PREF + i}")
        out.append(
            f"rule {verb} fwmark {ACK_MARK + i} lookup {ACK_TABLE + i} pref {RULE_PREF + 50 + i}"
        )
    return out


# -- the transport -------------------------------------------------------------------------


@dataclass
class NicPacer:
    """A token bucket at a host NIC's rate, in wire bytes: data waits for tokens; acks,
    NACKs and probes are sent at once and take theirs (the balance may go below zero).
    Unpaced, the senders of an all-to-all put 7 flows x K paths x window packets into a
    receiving host's 100-packet queue: it overflowed, and each drop retired a good path."""

    rate: float
    """bytes per ns"""
    burst: float
    tokens: float = 0.0
    last_ns: int = 0

    @classmethod
    def at(
        cls,
        mbps: float,
        burst_packets: int = 8,
        headroom: float = 1.02,
        packet_wire: int = DATA_WIRE,
    ) -> NicPacer:
        """A little above the NIC's rate, with a burst of a few packets (of
        ``packet_wire`` bytes on the wire), so that the NIC's own queue (not this
        process's timing on a loaded machine) sets the pace while it stays short."""
        burst = float(burst_packets * packet_wire)
        return cls(mbps * headroom * 1e6 / 8 / 1e9, burst, burst)

    def refill(self, now: int) -> None:
        if self.last_ns:
            self.tokens = min(self.burst, self.tokens + (now - self.last_ns) * self.rate)
        self.last_ns = now


@dataclass
class PathState:
    index: int
    healthy: bool = True
    window: int = 8
    in_flight: int = 0
    next_pseq: int = 0
    srtt_ns: float = 0.0
    rttvar_ns: float = 0.0
    samples: int = 0
    retired_ns: int = 0
    probe_due_ns: int = 0
    probe_seq: int = 0
    probe_interval_ns: int = 0
    probes_ok: int = 0
    probe_pending: dict[int, int] = field(default_factory=dict)
    sent: int = 0
    lost: int = 0
    lost_reported: int = 0
    acked_pseq: int = -1
    """The highest path sequence number acked (acks repeat it)."""
    acked_sent_ns: int = 0
    """When the newest packet acked on this path was sent: every hop of the path
    delivered after then (:meth:`SprayEngine._shared_fate`)."""
    suspect: bool = False
    """A late packet of this path that nothing overtook went again on another path: no
    new data on it until it acks something (or the copy overtakes it: retired)."""


@dataclass
class Sender:
    flow: SprayFlow
    paths: list[PathState]
    socks: list[socket.socket]
    """Per path: the marked socket of the sending host for that path's NIC."""
    pacers: list[NicPacer | None] = field(default_factory=list)
    """Per path: the pacer of the sending host's NIC it leaves from."""
    limit: int = 0
    """Packets this flow may send in total so far (the collective raises it)."""
    next_seq: int = 0
    outstanding: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    """seq -> (path, path seq, send ns)."""
    by_path: list[deque[tuple[int, int, int]]] = field(default_factory=list)
    """Per path, in send order: (path seq, seq, send ns) of packets in flight."""
    resend: deque[int] = field(default_factory=deque)
    acked: bytearray = field(default_factory=bytearray)
    rr: int = 0
    retransmits: int = 0
    late_copies: int = 0
    """Copies sent of late packets that nothing overtook (:attr:`copies`)."""
    kept_last: int = 0
    """Losses on the flow's last healthy path, which was kept."""
    last_ack_send_ns: int = 0
    """The send time of the newest packet acked (any path)."""
    rack_rtt_ns: float = 0.0
    """The round trip of that packet (RACK's reference: what a packet sent before it
    should have taken at most, but for reordering)."""
    last_ack_ns: int = 0
    """When the flow's last ack came (news or not)."""
    ack_request_ns: int = 0
    """When the flow last asked its receiver for an ack."""
    ack_requests: int = 0
    copies: dict[int, int] = field(default_factory=dict)
    """seq -> the path of a late packet that nothing overtook; a copy went on another
    path, the original stays in flight on its path until acked or overtaken."""
    window: int = 0
    """Packets the flow may have in flight now, over all its paths (set on every turn)."""


@dataclass
class Receiver:
    flow: SprayFlow
    socks: list[socket.socket]
    """Per path: the receiving host's marked socket for acks on that path's reverse."""
    seen: bytearray = field(default_factory=bytearray)
    unique: int = 0
    duplicates: int = 0
    highest: int = -1
    reorder: dict[int, int] = field(default_factory=dict)
    """Reorder distance bucket (0, 1, 2, 4, 8, ...: at least that far behind) -> packets."""
    expected: list[int] = field(default_factory=list)
    """Per path: the next path sequence number due."""
    newest: list[tuple[int, int] | None] = field(default_factory=list)
    """Per path: (path seq, send ns) of the newest packet arrived (every ack carries all
    of them: an ack lost on a path that died after it carried the data is made good by
    the next one)."""
    unacked: int = 0
    """Packets arrived since the last ack (any path)."""
    first_unacked_ns: int = 0
    last_path: int = 0
    """The path of the newest arrival: the next ack goes back on its reverse."""
    nacked: list[int] = field(default_factory=list)
    """Per path: packets reported missing so far (every ACK carries it)."""


@dataclass
class SprayConfig:
    window: int = 1
    """Packets in flight per path, at least..."""
    flow_window: int = 2
    """...and per flow, at least..."""
    host_window: int = 8
    """...and a host's NICs' share: each NIC has this many packets in flight, shared by
    the host's flows that have data to send (a ring's one flow per host gets all 8, an
    all-to-all's 7 flows per host 2 each; as flows finish, the others get their share).
    8 packets are about a NIC's bandwidth-delay product on the lab's fat tree (6 hops of
    2.4 ms per packet). Fixed windows of 4 per path and 8 per flow kept 7 x 8 packets
    queued toward every all-to-all receiver: 115 ms round trips, links idle a quarter of
    the time, 1.39 x the ideal, against 1.08 with the shared budget (README)."""
    ack_every: int = 4
    """A flow's receiver acks after this many packets (any paths)... (every 2 cost the one
    Python process that runs every host's spray more CPU than gpu-pod-2plane's all-to-all
    left it: 130 turns stalled over 20 ms, 1.29-1.37 x the ideal, against 1.15-1.18 and no
    stall with 4; the other runs were no slower, README)"""
    ack_delay_ms: float = 5.0
    """...or when its oldest unacked packet has waited this long."""
    min_rto_ms: float = 10.0
    """The floor of the give-up timer (what no ack at all shows, below)."""
    reorder_ms: float = 10.0
    """RACK's reordering window, at least: a packet is lost once a packet sent after it
    was acked and it has waited that packet's round trip plus max(this, 4 rttvar, srtt /
    2 of its path). The flow's paths are of equal length, so what reorders them is
    queueing. (With max(2 ms, min RTT / 4, 2 rttvar) a gray core link's paths were
    retired no sooner, p50 54-76 ms after the fault against 63-72, but 19-23 good paths
    were too while the other paths carried the failed link's share, against 6; README.)"""
    probe_interval_ms: float = 5.0
    probe_max_interval_ms: float = 20.0
    """Unanswered probes back off (doubling) up to this interval. A link that comes back
    waits for the next probe before the 3 answered in a row: at 80 ms, dead paths were
    re-admitted up to 83-135 ms after the link was restored, at 20 ms 26-79 (README,
    "Spray: detection against an oracle"). Probes are small and in CS6: 50 a second per
    dead path."""
    probe_timeout_ms: float = 100.0
    readmit_after: int = 3
    packet: int = PACKET
    """UDP payload bytes of a data packet (:func:`packet_for_mtu`: what fits the hosts'
    MTU once encapsulated). The windows and timers above are in packets and
    milliseconds: a lab that scales its link rate with the packet size (same packets per
    second) keeps the same dynamics."""

    @property
    def payload(self) -> int:
        """Collective bytes a data packet carries (the packet less the spray header)."""
        return self.packet - HEADER.size

    @property
    def data_wire(self) -> int:
        """Wire bytes of a data packet on a host link."""
        return self.packet + WIRE_EXTRA


Event = dict[str, Any]


def serving_order(active: Sequence[Sender], turn: int, ranks: int) -> list[Sender]:
    """The order in which a turn offers the NICs' tokens to the flows with data to send:
    on turn ``turn`` host ``s`` starts with its flow to ``s + 1 + (turn mod (ranks -
    1))`` (mod ``ranks``) and goes on up, so the hosts do not all prefer the same
    receiver at once and each of a host's destinations comes first equally often. (A
    host's flows only compete with each other, for its NICs' tokens: the order between
    hosts does not matter.)"""
    others = max(1, ranks - 1)

    def key(s: Sender) -> int:
        return ((s.flow.dst - s.flow.src - 1) % ranks - turn) % others

    return sorted(active, key=key)


class SprayEngine:
    """Every flow of a run (or of some of its ranks: ``ranks``), in one thread: senders,
    receivers, acks, loss detection, retirement and probing. ``on_delivered(flow_id,
    unique)`` runs when a flow's receiver counts a new packet (the collective's step logic
    lives there)."""

    def __init__(
        self,
        flows: Sequence[SprayFlow],
        send_socks: dict[tuple[int, str, int], socket.socket],
        recv_socks: dict[int, socket.socket],
        *,
        config: SprayConfig,
        port: int = DEFAULT_PORT,
        nic_mbps: Mapping[tuple[int, str], float] | None = None,
        ranks: Collection[int] | None = None,
    ) -> None:
        """``nic_mbps``: (rank, NIC address) -> the NIC's rate; the senders pace to it
        (None: unpaced). ``ranks``: the hosts this engine runs (None: all), as one of
        several worker processes does (:mod:`lab.traffic.spray_partition`): the senders of
        the flows leaving them and the receivers of the flows entering them, so that all
        that arrives at their sockets (data and probes for the receivers, acks, NACKs and
        probe replies for the senders) is its own; ``send_socks`` and ``recv_socks`` need
        only theirs."""
        self.cfg = config
        self.port = port
        self.flows = {f.flow_id: f for f in flows}
        sending = [f for f in flows if ranks is None or f.src in ranks]
        receiving = [f for f in flows if ranks is None or f.dst in ranks]
        self.senders: dict[int, Sender] = {}
        self.receivers: dict[int, Receiver] = {}
        if config.packet < HEADER.size + 1:
            raise ValueError(f"spray packet of {config.packet} bytes: at least {HEADER.size + 1}")
        self._data_wire = config.data_wire
        self._fill = bytes(config.payload)
        self.pacers: dict[tuple[int, str], NicPacer] = {
            key: NicPacer.at(mbps, packet_wire=self._data_wire)
            for key, mbps in (nic_mbps or {}).items()
        }
        self._pacer_of: dict[socket.socket, NicPacer] = {
            sock: self.pacers[(rank, addr)]
            for (rank, addr, _mark), sock in send_socks.items()
            if (rank, addr) in self.pacers
        }
        nics: dict[int, set[str]] = {}
        for f in sending:
            nics.setdefault(f.src, set()).update(p.src_addr for p in f.paths)
        self._nics = {rank: max(1, len(addrs)) for rank, addrs in nics.items()}
        """Per sending host: how many NICs its flows leave from."""
        for f in sending:
            k = len(f.paths)
            self.senders[f.flow_id] = Sender(
                f,
                [PathState(i, window=config.window) for i in range(k)],
                [send_socks[(f.src, p.src_addr, MARK + p.index)] for p in f.paths],
                pacers=[self.pacers.get((f.src, p.src_addr)) for p in f.paths],
                by_path=[deque() for _ in range(k)],
            )
        self._hops = {
            f.flow_id: [frozenset(itertools.pairwise(p.nodes)) for p in f.paths] for f in sending
        }
        """Per flow and path: its hops (node pairs, in the direction the data goes)."""
        self._by_src: dict[int, list[Sender]] = {}
        for sender in self.senders.values():
            self._by_src.setdefault(sender.flow.src, []).append(sender)
        for f in receiving:
            k = len(f.paths)
            self.receivers[f.flow_id] = Receiver(
                f,
                [send_socks[(f.dst, p.dst_addr, ACK_MARK + p.index)] for p in f.paths],
                expected=[0] * k,
                newest=[None] * k,
                nacked=[0] * k,
            )
        self._ranks = 1 + max((r for f in flows for r in (f.src, f.dst)), default=0)
        self._turn = 0
        self._last_timers_ns = 0
        self.stalls = 0
        """Turns on which the timers did not judge: the process had stalled."""
        # The receivers' sockets send only acks, NACKs and probe replies: marked once.
        self._control_socks = {sock for r in self.receivers.values() for sock in r.socks}
        for sock in self._control_socks:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, CS6)
        self.recv_socks = recv_socks
        self.events: list[Event] = []
        self.on_delivered: Callable[[int, int], None] = lambda _f, _n: None
        self.sel = selectors.DefaultSelector()
        for sock in recv_socks.values():
            sock.setblocking(False)
            self.sel.register(sock, selectors.EVENT_READ)
        for sock in send_socks.values():
            sock.setblocking(False)
        self.send_errors = 0
        self.strays = 0
        """Packets for a flow end this engine does not run (another worker's ranks)."""
        self._buf = bytearray(2048)

    def close(self) -> None:
        self.sel.close()

    # sending --------------------------------------------------------------------------

    def _send(self, sock: socket.socket, data: bytes, addr: str, control: bool = False) -> bool:
        try:
            if control and sock not in self._control_socks:
                sock.sendmsg([data], _CONTROL, 0, (addr, self.port))
            else:
                sock.sendto(data, (addr, self.port))
        except (BlockingIOError, OSError):
            self.send_errors += 1
            return False
        pacer = self._pacer_of.get(sock)
        if pacer is not None:
            pacer.tokens -= len(data) + WIRE_EXTRA
        return True

    def pump(self, now: int) -> None:
        """Send what the windows and the NICs' pacers allow: one packet per flow in turn
        (so that a host's flows share its NIC evenly), each on the flow's next healthy
        path with room, round robin."""
        for pacer in self.pacers.values():
            pacer.refill(now)
        self._turn = (self._turn + 1) % max(1, self._ranks - 1)
        active = serving_order(
            [s for s in self.senders.values() if s.resend or s.next_seq < s.limit],
            self._turn,
            self._ranks,
        )
        sharing = Counter(s.flow.src for s in active)
        cfg = self.cfg
        for s in active:
            budget = cfg.host_window * self._nics[s.flow.src]
            s.window = max(cfg.flow_window, -(-budget // sharing[s.flow.src]))
        while active:
            active = [
                s for s in active if self._send_one(s, now) and (s.resend or s.next_seq < s.limit)
            ]

    def _send_one(self, s: Sender, now: int) -> bool:
        n = len(s.paths)
        healthy = sum(1 for p in s.paths if p.healthy)
        # The flow's window is spread over its healthy paths: a flow with one path (two
        # hosts behind one switch) or one that lost a path keeps its rate.
        window = max(self.cfg.window, -(-s.window // max(1, healthy)))
        # A late packet's copy may go beyond the window, as TCP's loss probe may: the
        # window may be full of packets whose acks died with the late path.
        copy_due = 1 if s.copies and s.resend else 0
        for j in range(n):
            i = (s.rr + j) % n
            st = s.paths[i]
            if not st.healthy or st.suspect or st.in_flight >= window + copy_due:
                continue
            pacer = s.pacers[i]
            if pacer is not None and pacer.tokens < self._data_wire:
                continue
            seq = -1
            while s.resend:
                candidate = s.resend.popleft()
                if candidate >= len(s.acked) or not s.acked[candidate]:
                    seq = candidate
                    break
            resent = seq >= 0
            if not resent:
                if s.next_seq >= s.limit:
                    return False
                seq = s.next_seq
                if seq >= len(s.acked):
                    s.acked.extend(bytes(max(1024, seq + 1 - len(s.acked))))
            pseq = st.next_pseq
            head = HEADER.pack(MAGIC, DATA, i, s.flow.flow_id, 0, seq, pseq, now)
            if not self._send(s.socks[i], head + self._fill, s.flow.paths[i].dst_addr):
                if resent:
                    s.resend.appendleft(seq)
                return False  # the socket is full: try again next turn
            if resent:
                s.retransmits += 1
            else:
                s.next_seq += 1
            s.outstanding[seq] = (i, pseq, now)
            s.by_path[i].append((pseq, seq, now))
            st.next_pseq += 1
            st.in_flight += 1
            st.sent += 1
            s.rr = (i + 1) % n
            return True
        return False

    # receiving ------------------------------------------------------------------------

    def poll(self, timeout: float) -> None:
        data_len = min(self.cfg.packet, len(self._buf))
        for key, _ in self.sel.select(timeout):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            now = time.monotonic_ns()
            for _ in range(256):
                try:
                    n = sock.recv_into(self._buf)
                except BlockingIOError:
                    break
                if n >= HEADER.size:
                    # data packets (truncated to the buffer) need their header only;
                    # acks and the rest are shorter and need their entries
                    self._packet(
                        bytes(self._buf[:n]) if n < data_len else self._buf[: HEADER.size], now
                    )

    def _packet(self, data: bytes | bytearray, now: int) -> None:
        magic, kind, path, flow_id, _r, seq, pseq, sent = HEADER.unpack_from(data)
        if magic != MAGIC or flow_id not in self.flows:
            return
        if flow_id not in (self.receivers if kind in (DATA, PROBE, ACK_REQUEST) else self.senders):
            self.strays += 1
            return
        if kind == DATA:
            self._data(flow_id, path, seq, pseq, sent, now=now)
        elif kind == ACK:
            self.senders[flow_id].last_ack_ns = now
            for k in range(path):
                entry = HEADER.size + k * ACK_ENTRY.size
                if entry + ACK_ENTRY.size > len(data):
                    break
                p, nacked, last, stamp = ACK_ENTRY.unpack_from(data, entry)
                self._ack(flow_id, p, nacked, last, stamp, now=now)
        elif kind == NACK:
            self._nack(flow_id, path, seq, pseq)
        elif kind == ACK_REQUEST:
            self._send_ack(self.receivers[flow_id], path)
        elif kind == PROBE:
            r = self.receivers[flow_id]
            p = r.flow.paths[path]
            reply = HEADER.pack(MAGIC, PROBE_ACK, path, flow_id, 0, seq, pseq, sent)
            self._send(r.socks[path], reply, p.src_addr, control=True)
        elif kind == PROBE_ACK:
            self._probe_ack(flow_id, path, seq)

    def _data(self, flow_id: int, path: int, seq: int, pseq: int, sent: int, *, now: int) -> None:
        r = self.receivers[flow_id]
        due = r.expected[path]
        if pseq > due:  # the path is FIFO: the packets in between were lost
            r.nacked[path] += pseq - due
            nack = HEADER.pack(MAGIC, NACK, path, flow_id, 0, due, pseq - 1, sent)
            self._send(r.socks[path], nack, r.flow.paths[path].src_addr, control=True)
        if pseq >= due:
            r.expected[path] = pseq + 1
            r.newest[path] = (pseq, sent)
            r.last_path = path
            if not r.unacked:
                r.first_unacked_ns = now
            r.unacked += 1
            if r.unacked >= self.cfg.ack_every:
                self._send_ack(r)
        if seq >= len(r.seen):
            r.seen.extend(bytes(max(1024, seq + 1 - len(r.seen))))
        if r.seen[seq]:
            r.duplicates += 1
            return
        r.seen[seq] = 1
        r.unique += 1
        if seq > r.highest:
            r.highest = seq
            bucket = 0
        else:
            dist = r.highest - seq
            bucket = 1 << (dist.bit_length() - 1)
        r.reorder[bucket] = r.reorder.get(bucket, 0) + 1
        self.on_delivered(flow_id, r.unique)

    def _send_ack(self, r: Receiver, path: int | None = None) -> None:
        """One ack for the flow, cumulative per path (every path that delivered anything),
        on the reverse of the newest arrival's path. That path may have died since the
        packet came (a gray link drops both ways): the next ack repeats what this one
        says. ``path``: on its reverse instead (an ack request came on it)."""
        entries = [
            ACK_ENTRY.pack(path, r.nacked[path], newest[0], newest[1])
            for path, newest in enumerate(r.newest)
            if newest is not None
        ]
        if not entries:
            return
        head = HEADER.pack(MAGIC, ACK, len(entries), r.flow.flow_id, 0, 0, 0, 0)
        path = r.last_path if path is None else path
        self._send(r.socks[path], head + b"".join(entries), r.flow.paths[path].src_addr, True)
        r.unacked = 0

    def flush_acks(self, now: int | None = None) -> None:
        """Ack what has waited ``ack_delay_ms`` (cumulative per path): call every turn."""
        now = time.monotonic_ns() if now is None else now
        delay = self.cfg.ack_delay_ms * 1e6
        for r in self.receivers.values():
            if r.unacked and now - r.first_unacked_ns >= delay:
                self._send_ack(r)

    def _ack(self, flow_id: int, path: int, nacked: int, pseq: int, sent: int, *, now: int) -> None:
        """Everything sent on ``path`` up to ``pseq`` arrived, but for the packets NACKed
        (``nacked`` counts them; if an earlier NACK went missing, the packets still open
        up to ``pseq`` are treated as lost)."""
        s = self.senders[flow_id]
        st = s.paths[path]
        if pseq <= st.acked_pseq and nacked <= st.lost_reported:
            return  # repeated: no news, and no round-trip sample
        st.acked_pseq = max(st.acked_pseq, pseq)
        q = s.by_path[path]
        missed_nack = nacked > st.lost_reported
        while q and q[0][0] <= pseq:
            _p, seq, _t = q.popleft()
            info = s.outstanding.get(seq)
            if s.copies.get(seq) == path:  # a late packet arrived after all
                del s.copies[seq]
                st.in_flight -= 1
                if not missed_nack and seq < len(s.acked):
                    s.acked[seq] = 1
                continue
            if info is None or info[0] != path:
                continue
            if missed_nack:
                self._lost(s, path, seq, "a NACK went missing")
                continue
            del s.outstanding[seq]
            st.in_flight -= 1
            if seq < len(s.acked):
                s.acked[seq] = 1
        st.lost_reported = max(st.lost_reported, nacked)
        st.acked_sent_ns = max(st.acked_sent_ns, sent)
        st.suspect = False
        rtt = now - sent
        st.samples += 1
        if st.srtt_ns == 0:
            st.srtt_ns, st.rttvar_ns = float(rtt), rtt / 2
        else:
            st.rttvar_ns = 0.75 * st.rttvar_ns + 0.25 * abs(st.srtt_ns - rtt)
            st.srtt_ns = 0.875 * st.srtt_ns + 0.125 * rtt
        if sent > s.last_ack_send_ns:
            s.last_ack_send_ns, s.rack_rtt_ns = sent, float(rtt)

    def _nack(self, flow_id: int, path: int, first: int, last: int) -> None:
        s = self.senders[flow_id]
        st = s.paths[path]
        st.lost_reported += last - first + 1
        q = s.by_path[path]
        while q and q[0][0] <= last:
            pseq, seq, _t = q.popleft()
            info = s.outstanding.get(seq)
            if pseq >= first and info is not None and info[0] == path:
                self._lost(s, path, seq, "the receiver saw a gap in the path's sequence")

    def _lost(self, s: Sender, path: int, seq: int, why: str) -> None:
        _path, _pseq, sent = s.outstanding.pop(seq)
        st = s.paths[path]
        st.in_flight -= 1
        s.resend.append(seq)
        self._verdict(s, st, why, sent)

    def _verdict(self, s: Sender, st: PathState, why: str, sent_ns: int) -> None:
        """A packet of ``st`` sent at ``sent_ns`` was lost: retire the path (not the
        flow's last healthy one), and the host's other paths that share its fate
        (:meth:`_shared_fate`)."""
        st.lost += 1
        if st.healthy and any(p.healthy and p is not st for p in s.paths):
            self._retire(s, st, why)
            self._shared_fate(s, st, sent_ns)
        elif st.healthy:
            # The flow's last healthy path: retiring it would stop the flow until a probe
            # came back. A loss on it is as likely congestion (the other paths' traffic
            # moved here) as a failure of everything; send again and keep it.
            s.kept_last += 1

    def _shared_fate(self, s: Sender, st: PathState, sent_ns: int) -> None:
        """The hops of a path that lost a packet sent at ``sent_ns``, less those of every
        path of the same host that has delivered a packet sent after it, are where the
        failure is (the suspects: a host knows every hop of its SRv6 paths). The host's
        other healthy paths that cross ``min(2, len(suspects))`` of them are retired too,
        without waiting for a loss of their own (probing re-admits one that was fine).
        Without this, a host's second path through a dead core link went on taking data
        until a packet of its own flow was overtaken: up to 150 ms after the fault where
        the first took 45 ms (README, "Spray: detection against an oracle"). Two
        suspects, not one: a single shared hop next to the failure (the destination's
        leaf, say) is as likely fine."""
        suspects = set(self._hops[s.flow.flow_id][st.index])
        peers = self._by_src.get(s.flow.src, ())
        for other in peers:
            for p in other.paths:
                if p.acked_sent_ns > sent_ns:
                    suspects -= self._hops[other.flow.flow_id][p.index]
        if not suspects:
            return
        need = min(2, len(suspects))
        shared = " ".join(f"{a}->{b}" for a, b in sorted(suspects))
        for other in peers:
            for p in other.paths:
                if (
                    p is st
                    or not p.healthy
                    or len(suspects & self._hops[other.flow.flow_id][p.index]) < need
                    or not any(q.healthy and q is not p for q in other.paths)
                ):
                    continue
                why = f"shares {shared} with flow {s.flow.flow_id}'s path {st.index} (a loss)"
                self._retire(other, p, why)

    def _retire(self, s: Sender, st: PathState, why: str) -> None:
        now = time.monotonic_ns()
        st.healthy = False
        st.retired_ns = now
        st.probe_due_ns = now
        st.probe_interval_ns = int(self.cfg.probe_interval_ms * 1e6)
        st.probes_ok = 0
        self.events.append(self._event(s, st, "retired", now, why))
        # Its packets in flight go again on the other paths now (a late packet's copy
        # already has).
        for _pseq, seq, _t in s.by_path[st.index]:
            if s.copies.get(seq) == st.index:
                del s.copies[seq]
            elif seq in s.outstanding and s.outstanding[seq][0] == st.index:
                del s.outstanding[seq]
                s.resend.append(seq)
        s.by_path[st.index].clear()
        st.in_flight = 0
        st.suspect = False

    def _event(self, s: Sender, st: PathState, what: str, now: int, why: str) -> Event:
        return {
            "monotonic_ns": now,
            "flow": s.flow.flow_id,
            "src": s.flow.src,
            "dst": s.flow.dst,
            "path": st.index,
            "nodes": list(s.flow.paths[st.index].nodes),
            "event": what,
            "reason": why,
        }

    def _probe_ack(self, flow_id: int, path: int, seq: int) -> None:
        s = self.senders[flow_id]
        st = s.paths[path]
        if st.healthy or st.probe_pending.pop(seq, None) is None:
            return
        st.probes_ok += 1
        # Answered: probe again at once, at the base interval (re-admission in a few RTTs).
        st.probe_interval_ns = int(self.cfg.probe_interval_ms * 1e6)
        st.probe_due_ns = 0
        if st.probes_ok >= self.cfg.readmit_after:
            now = time.monotonic_ns()
            st.healthy = True
            self.events.append(
                self._event(s, st, "readmitted", now, f"{st.probes_ok} probes answered in a row")
            )

    def link_news(self, a: str, b: str, up: bool) -> int:
        """Told that the link between nodes ``a`` and ``b`` went down (``up`` False) or
        came back: retire every healthy path that crosses it, either way (not a flow's
        last), or re-admit the retired ones. Only ``bench collectives --oracle`` calls
        this, to measure what detecting a failure costs against hosts that need none; the
        engine's own detection is the timers and the NACKs. Returns the paths changed."""
        now = time.monotonic_ns()
        why = f"told that {a}-{b} {'came back' if up else 'failed'} (oracle)"
        changed = 0
        for s in self.senders.values():
            for st in s.paths:
                hops = self._hops[s.flow.flow_id][st.index]
                if (a, b) not in hops and (b, a) not in hops:
                    continue
                if up and not st.healthy:
                    st.healthy = True
                    self.events.append(self._event(s, st, "readmitted", now, why))
                    changed += 1
                elif not up and st.healthy and any(p.healthy and p is not st for p in s.paths):
                    self._retire(s, st, why)
                    changed += 1
        return changed

    # timers ---------------------------------------------------------------------------

    def timers(self, now: int) -> None:
        """Loss by timer, for what no sequence gap can show (a path that delivers nothing
        more), as RACK does it: the oldest packet in flight on a path is lost when a
        packet sent after it (on any path) was acked and it has waited longer than
        :meth:`reorder_ns`; or, whatever the other paths do, when it is older than
        ``max(4 (2 srtt + 4 rttvar), 4 srtt of the slowest path, 200 ms)``. At a flow's
        tail nothing sent later can overtake a late packet: once an ack since has not had
        it, a copy goes on another path (TLP-style), beyond the window if need be, and the
        late path takes no new data meanwhile; the copy is the later packet that judges
        it (retired when the copy is acked first). A flow that hears no ack at all asks
        for one (:meth:`_request_ack`).
        Queueing that every path sees alike (both hosts' NICs) moves the round trips,
        not the verdict. Retired paths are probed, backing off while the probes go
        unanswered."""
        last, self._last_timers_ns = self._last_timers_ns, now
        if last and now - last > STALL_NS:
            # This process did not run for a while: the acks of that time wait unread in
            # the sockets, and judging now would retire every path at once. Next turn.
            self.stalls += 1
            return
        min_rto = self.cfg.min_rto_ms * 1e6
        max_interval = int(self.cfg.probe_max_interval_ms * 1e6)
        probe_timeout = self.cfg.probe_timeout_ms * 1e6
        for s in self.senders.values():
            slowest = max(p.srtt_ns for p in s.paths)
            if s.outstanding and s.last_ack_ns:
                self._request_ack(s, now, 2 * max(s.rack_rtt_ns, slowest))
            for st in s.paths:
                if st.healthy:
                    q = s.by_path[st.index]
                    while q:
                        _pseq, seq, sent = q[0]
                        info = s.outstanding.get(seq)
                        copied = s.copies.get(seq) == st.index
                        if copied or (info is not None and info[0] == st.index):
                            break
                        q.popleft()  # went again elsewhere (its path retired): not ours
                    if not q:
                        continue
                    srtt = st.srtt_ns or slowest
                    rto = max(min_rto, 2 * srtt + 4 * st.rttvar_ns)
                    late = now - sent
                    # Not before the path has a few round-trip samples of its own (the
                    # queues fill fast at the start).
                    overtaken = st.samples >= 4 and s.last_ack_send_ns > sent
                    reorder = self.reorder_ns(s, st)
                    if (
                        not overtaken
                        and not copied
                        and late > reorder
                        and s.next_seq >= s.limit
                        and not s.resend
                        and s.last_ack_ns > sent
                        and any(p.healthy and not p.suspect and p is not st for p in s.paths)
                    ):
                        # The flow's tail: nothing sent later can overtake it, and an ack
                        # that came since (all the receiver has, every path) did not have
                        # it. A copy goes on another path; this one takes no new data
                        # until it acks.
                        st.suspect = True
                        s.copies[seq] = st.index
                        s.resend.appendleft(seq)
                        s.late_copies += 1
                        continue
                    why = f"no ack after {late / 1e6:.1f} ms"
                    if overtaken and late > reorder:
                        why += ", " + (
                            "its copy on another path was"
                            if copied
                            else "later packets on other paths were"
                        )
                    elif late <= max(4 * rto, 4 * slowest, 200e6):
                        continue
                    q.popleft()
                    if copied:  # its copy is in flight or arrived: judge the path only
                        del s.copies[seq]
                        st.in_flight -= 1
                        self._verdict(s, st, why, sent)
                    else:
                        self._lost(s, st.index, seq, why)
                    continue
                if now >= st.probe_due_ns:
                    expired = [k for k, t in st.probe_pending.items() if now - t > probe_timeout]
                    if expired:
                        st.probes_ok = 0  # a probe went unanswered: start counting again
                        for k in expired:
                            del st.probe_pending[k]
                    if st.probe_pending:  # the last one is still unanswered: back off
                        st.probe_interval_ns = min(2 * st.probe_interval_ns, max_interval)
                    st.probe_seq += 1
                    st.probe_pending[st.probe_seq] = now
                    st.probe_due_ns = now + st.probe_interval_ns
                    p = s.flow.paths[st.index]
                    probe = HEADER.pack(MAGIC, PROBE, st.index, s.flow.flow_id, 0,
                                        st.probe_seq, 0, now)  # fmt: skip
                    self._send(s.socks[st.index], probe, p.dst_addr, control=True)

    def _request_ack(self, s: Sender, now: int, quiet: float) -> None:
        """No ack at all for the flow for ``quiet`` ns (two round trips, as TCP's loss
        probe waits) while it has packets in flight: ask the receiver for one on every
        healthy path. The flow's last acks may have died with a path that failed after
        it carried their data (an ack rides the reverse of the newest arrival's path),
        and with a full window nothing new would ever ask again; the answer says what
        arrived."""
        if now - max(s.last_ack_ns, s.ack_request_ns) <= quiet:
            return
        s.ack_request_ns = now
        s.ack_requests += 1
        for st in s.paths:
            if st.healthy:
                p = s.flow.paths[st.index]
                req = HEADER.pack(MAGIC, ACK_REQUEST, st.index, s.flow.flow_id, 0, 0, 0, now)
                self._send(s.socks[st.index], req, p.dst_addr, control=True)

    def reorder_ns(self, s: Sender, st: PathState) -> float:
        """How long a packet of path ``st`` may wait once a later one was acked: the round
        trip of the newest packet acked (RACK's reference; the path's own smoothed round
        trip if that is longer, so that a slower path is not judged by a faster one's)
        plus the reordering window, ``max(reorder_ms, 4 rttvar, srtt / 2)``. The same
        wait marks a packet that nothing overtook late."""
        reference = max(s.rack_rtt_ns, st.srtt_ns)
        window = max(self.cfg.reorder_ms * 1e6, 4 * st.rttvar_ns, st.srtt_ns / 2)
        return reference + window

    def stats(self) -> dict[str, Any]:
        hist: dict[int, int] = {}
        dup = 0
        for r in self.receivers.values():
            dup += r.duplicates
            for b, n in r.reorder.items():
                hist[b] = hist.get(b, 0) + n
        per_path = [
            {
                "flow": s.flow.flow_id,
                "path": st.index,
                "nodes": list(s.flow.paths[st.index].nodes),
                "sent": st.sent,
                "lost": st.lost,
                "srtt_ms": round(st.srtt_ns / 1e6, 2),
                "rttvar_ms": round(st.rttvar_ns / 1e6, 2),
                "healthy_at_end": st.healthy,
            }
            for s in self.senders.values()
            for st in s.paths
        ]
        return {
            "reorder_histogram": {str(k): hist[k] for k in sorted(hist)},
            "reorder_note": "bucket b: packets that arrived at least b (and under 2b) "
            "sequence numbers behind the highest one seen; 0: in order",
            "duplicates": dup,
            "retransmits": sum(s.retransmits for s in self.senders.values()),
            "late_copies": sum(s.late_copies for s in self.senders.values()),
            "ack_requests": sum(s.ack_requests for s in self.senders.values()),
            "kept_last_path": sum(s.kept_last for s in self.senders.values()),
            "send_errors": self.send_errors,
            "stray_packets": self.strays,
            "stalls": self.stalls,
            "path_events": self.events,
            "paths": per_path,
        }


def open_socket(ns: str, addr: str, mark: int | None, port: int = 0) -> socket.socket:
    """A UDP socket in namespace ``ns`` bound to ``addr`` (and ``port``), marked."""
    with netns(ns):
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    if mark is not None:
        sock.setsockopt(socket.SOL_SOCKET, SO_MARK, mark)
    if port:
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 * 1024 * 1024)
        except PermissionError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
    sock.bind((addr, port))
    return sock
