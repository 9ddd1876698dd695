"""Control traffic in a strict-priority lane: the lab's htb tree and nftables rule
(lab/links.py), the DSCP the controller's path probes carry and how they are judged
(controller/probing.py). Pure: no namespaces."""

from __future__ import annotations

import ipaddress
import struct
from pathlib import Path
from types import SimpleNamespace

from controller.probing import (
    TCLASS,
    PathProber,
    Target,
    build_probe,
    echoes_judged,
    parse_probe,
)
from lab.links import priority_commands

MS = 1_000_000


def test_links_queue_cs6_ahead_of_data() -> None:
    commands = priority_commands("agg1-eth3", 100.0)
    assert commands[0] == "tc qdisc add dev agg1-eth3 root handle 5:0 htb default 1"
    data = next(c for c in commands if "classid 5:1 " in c)
    control = next(c for c in commands if "classid 5:2 " in c)
    assert "parent 5:10" in data and data.endswith("prio 1")
    assert "parent 5:10" in control and control.endswith("prio 0")
    assert "ceil 100.000000Mbit" in control  # may borrow the whole link
    (nft,) = [c for c in commands if c.startswith("nft ")]
    assert 'hook egress device "agg1-eth3"' in nft
    assert "ip6 dscp cs6 meta priority set 5:2" in nft


def target() -> Target:
    return Target(
        7,
        "edge1",
        "edge5",
        "edge5-eth3",
        ipaddress.IPv6Address("fcbb:bb00:301::"),
        ipaddress.IPv6Address("2001:db8:9::5ead"),
        (ipaddress.IPv6Address("fcbb:bb00:101::"), ipaddress.IPv6Address("fcbb:bb00:305::")),
        frozenset(),
    )


def test_probes_carry_cs6_outside_and_inside() -> None:
    packet = build_probe(target(), 3, 42)
    outer_tc = struct.unpack_from("!I", packet, 0)[0] >> 20 & 0xFF
    assert outer_tc == TCLASS == 0xC0
    inner = 40 + 8 + 16 * 2  # outer header, SRH with two SIDs
    assert struct.unpack_from("!I", packet, inner)[0] >> 20 & 0xFF == TCLASS
    frame = b"\0" * 14 + packet[inner:]  # as the egress sees it, decapsulated
    assert parse_probe(frame) == (7, 3, 42)


def prober() -> PathProber:
    service = SimpleNamespace(solution=None, topo=None, down=set())
    return PathProber(service, Path("/nonexistent/switches.json"), interval=0.01)


def test_a_probe_is_lost_only_once_it_is_overdue() -> None:
    p = prober()
    t = target()
    t.seq, t.last_rx = 5, 3
    t.sent = {4: 100 * MS, 5: 110 * MS}
    assert p.lost(t, 103 * MS) == 0  # within the grace
    assert p.lost(t, 105 * MS) == 1  # probe 4 overdue, 5 not yet
    assert p.lost(t, 115 * MS) == 2


def test_a_long_silence_is_counted_from_the_remembered_probes() -> None:
    p = prober()
    t = target()
    t.last_rx, t.seq = 10, 600
    t.sent = {s: s * MS for s in range(345, 601)}  # the last 256
    assert p.lost(t, 700 * MS) == 256


def test_healthy_paths_vouch_only_for_probes_sent_after_the_loss_began() -> None:
    p = prober()
    a, b = frozenset({"edge1", "agg1"}), frozenset({"agg1", "core1"})
    other = target()
    other.id, other.links, other.last_rx_sent = 8, frozenset({a, b}), 50 * MS
    p.targets = {other.key: other}
    assert p.vouched_links(60 * MS) == set()  # its last answer predates the loss
    other.last_rx_sent = 70 * MS
    assert p.vouched_links(60 * MS) == {a, b}


def test_suspect_links_get_half_a_grace_to_answer_echo() -> None:
    grace = 4 * MS
    assert not echoes_judged(1 * MS, 0, grace, [True, False], 1 * MS)
    assert echoes_judged(1 * MS, 0, grace, [True, True], 1 * MS)  # all answered: at once
    # half a grace: the one that answered lives, the other is dead
    assert echoes_judged(2 * MS, 0, grace, [True, False], 1 * MS)
    assert echoes_judged(2 * MS, 0, grace, [False], None)  # one suspect: dead


def test_a_late_machine_is_not_taken_for_several_dead_links() -> None:
    grace = 4 * MS
    # several suspects and no answer at all after half a grace: the machine is late (a
    # gray link was blamed on two more links so under load); wait for a first answer...
    assert not echoes_judged(3 * MS, 0, grace, [False, False, False], None)
    assert not echoes_judged(15 * MS, 0, grace, [False, False, False], None)
    # ...then give the others half a grace after it
    assert not echoes_judged(7 * MS, 0, grace, [True, False, False], 6 * MS)
    assert echoes_judged(8 * MS, 0, grace, [True, True, False], 6 * MS)
    # no answer in 4 graces: every one of them is dead
    assert echoes_judged(16 * MS, 0, grace, [False, False], None)
