"""A real P4Runtime client nobody here wrote, finsy, drives switchd: arbitration, the pipeline
push (srv6.p4's P4Info, the one switchd accepts by default), writes and reads by name,
per-update errors, direct counters, and port status through gNMI (PORT_DOWN / PORT_UP from
the kernel, in a network namespace: root)."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

import finsy as fy
import pytest
from finsy.switch import SwitchEvent

from switchd.gnmi import GnmiServer, PortMonitor
from switchd.p4rt.pipeline import DEFAULT_P4INFO_PATH

PORTS = {1: "s1-eth1", 2: "s1-eth2"}
MAC = "02:53:00:00:00:01"

pytestmark = pytest.mark.skipif(
    not DEFAULT_P4INFO_PATH.exists(), reason="p4/build/srv6.p4info.txtpb not built"
)


def ip(netns: str, *args: str) -> None:
    subprocess.run(["ip", "-n", netns, *args], check=True, capture_output=True, text=True)


async def eventually(condition: Any, timeout: float = 10.0) -> None:
    """Wait until ``condition()`` holds, polling with back-off."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    delay = 0.005
    while not condition():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.2)


def test_finsy_switch_end_to_end(p4rt: Any, netns: str) -> None:
    for port, name in PORTS.items():
        ip(netns, "link", "add", name, "type", "veth", "peer", "name", f"h{port}-eth0")
        ip(netns, "link", "set", name, "up")
        ip(netns, "link", "set", f"h{port}-eth0", "up")

    async def scenario() -> None:
        gnmi = GnmiServer(PortMonitor(PORTS, netns))
        async with p4rt.switchd(p4info=DEFAULT_P4INFO_PATH, ports=PORTS, gnmi=gnmi) as sw:
            options = fy.SwitchOptions(
                p4info=Path(DEFAULT_P4INFO_PATH),
                p4blob=b"",
                device_id=1,
                initial_election_id=20,
            )
            async with fy.Switch("s1", sw.address, options) as switch:
                assert switch.is_primary
                assert str(switch.p4runtime_version).startswith("1.5")
                # finsy pushed the pipeline: srv6.p4's P4Info is accepted.
                assert sw.server.pipeline is not None
                assert sw.dataplane.pipelines == 1

                await switch.insert(
                    [
                        fy.P4TableEntry(
                            "next_hop",
                            match=fy.P4TableMatch(nexthop_id=port),
                            action=fy.P4TableAction("rewrite", port=port, src_mac=MAC, dst_mac=MAC),
                        )
                        for port in PORTS
                    ]
                    + [
                        fy.P4ActionProfileMember(
                            "ecmp_selector",
                            member_id=port,
                            action=fy.P4TableAction("set_next_hop", nexthop_id=port),
                        )
                        for port in PORTS
                    ]
                )
                await switch.insert(
                    [
                        fy.P4ActionProfileGroup(
                            "ecmp_selector",
                            group_id=1,
                            members=[fy.P4Member(p, weight=(1, p)) for p in PORTS],
                        )
                    ]
                )
                await switch.insert(
                    [
                        fy.P4TableEntry(
                            "routing_v6",
                            match=fy.P4TableMatch(dst_addr="2001:db8:1::/64"),
                            action=fy.P4IndirectAction(group_id=1),
                        ),
                        fy.P4TableEntry(
                            "my_sid",
                            match=fy.P4TableMatch(dst_addr="fcbb:bb00:1::/48"),
                            action=fy.P4TableAction("usid_un"),
                        ),
                    ]
                )

                entries = [e async for e in switch.read(fy.P4TableEntry())]
                assert len(entries) == 4
                (route,) = [e async for e in switch.read(fy.P4TableEntry("routing_v6"))]
                assert (
                    route.match_str(switch.p4info)
                    == "dst_addr=0x20010db8000100000000000000000000/64"
                )
                (group,) = [g async for g in switch.read(fy.P4ActionProfileGroup())]
                assert [(m.member_id, m.weight) for m in group.members or []] == [
                    (1, (1, 1)),
                    (2, (1, 2)),
                ]

                # A duplicate insert: finsy sees the per-update error.
                try:
                    await switch.insert(
                        [
                            fy.P4TableEntry(
                                "my_sid",
                                match=fy.P4TableMatch(dst_addr="fcbb:bb00:1::/48"),
                                action=fy.P4TableAction("usid_un"),
                            )
                        ]
                    )
                except fy.P4ClientError as exc:
                    assert exc.code.name == "UNKNOWN"
                    assert exc.details[0].canonical_code.name == "ALREADY_EXISTS"
                else:
                    raise AssertionError("a duplicate entry was accepted")

                # Direct counters by name.
                counters = [c async for c in switch.read(fy.P4DirectCounterEntry("my_sid_counter"))]
                assert len(counters) == 1

                # Ports come from gNMI, with their P4 port numbers.
                assert {p.name: p.id for p in switch.ports} == {"s1-eth1": 1, "s1-eth2": 2}
                assert all(p.up for p in switch.ports)
                # finsy 0.30 keeps switch.ports current from the subscription but does not
                # emit PORT_DOWN / PORT_UP (its listener is started without the switch).
                for state, up in (("down", False), ("up", True)):
                    ip(netns, "link", "set", "h2-eth0", state)
                    await eventually(lambda up=up: switch.ports["s1-eth2"].up is up)
                    assert switch.ports["s1-eth1"].up

                await switch.delete_all()
                assert [e async for e in switch.read(fy.P4TableEntry())] == []
                assert [m async for m in switch.read(fy.P4ActionProfileMember())] == []

    p4rt.run(scenario())


def test_finsy_backup_takes_over_when_the_primary_leaves(p4rt: Any) -> None:
    async def scenario() -> None:
        async with p4rt.switchd(p4info=DEFAULT_P4INFO_PATH) as sw:
            primary_opts = fy.SwitchOptions(
                p4info=Path(DEFAULT_P4INFO_PATH), p4blob=b"", initial_election_id=30
            )
            backup_opts = fy.SwitchOptions(p4info=Path(DEFAULT_P4INFO_PATH), initial_election_id=20)
            async with fy.Switch("backup", sw.address, backup_opts) as backup:
                assert not backup.is_primary or backup.primary_id == 20
                became_primary = backup.ee.event_future(SwitchEvent.BECOME_PRIMARY)
                async with fy.Switch("primary", sw.address, primary_opts) as primary:
                    assert primary.is_primary
                    assert not backup.is_primary
                    became_primary = backup.ee.event_future(SwitchEvent.BECOME_PRIMARY)
                await asyncio.wait_for(became_primary, 10)
                assert backup.is_primary
                await backup.insert(
                    [
                        fy.P4TableEntry(
                            "my_sid",
                            match=fy.P4TableMatch(dst_addr="fcbb:bb00:9::/48"),
                            action=fy.P4TableAction("end"),
                        )
                    ]
                )

    p4rt.run(scenario())
