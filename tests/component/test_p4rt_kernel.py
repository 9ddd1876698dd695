"""switchd with the real kernel data plane (switchd.kernel.KernelDataplane) in a temporary
network namespace (root): P4Runtime writes become kernel state an engineer can check with
``ip -6 route`` and ``ip nexthop``, a kernel refusal is a per-update error that leaves nothing
behind, Read and direct counters answer from the store and the kernel, and a restarted
switchd serves what the kernel still holds."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from finsy import pbutil
from finsy.proto import p4i, p4r

from switchd.p4rt.pipeline import DEFAULT_P4INFO_PATH

PORTS = {1: "s1-eth1", 2: "s1-eth2"}
PROTOCOL = 222
OK, INVALID_ARGUMENT, ABORTED, INTERNAL = 0, 3, 10, 13

pytestmark = pytest.mark.skipif(
    not DEFAULT_P4INFO_PATH.exists(), reason="p4/build/srv6.p4info.txtpb not built"
)


def ip(netns: str, *args: str) -> None:
    subprocess.run(["ip", "-n", netns, *args], check=True, capture_output=True, text=True)


def ip_json(netns: str, *args: str) -> Any:
    out = subprocess.run(
        ["ip", "-n", netns, "-j", *args], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out) if out.strip() else []


def make_switch_namespace(netns: str) -> None:
    subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            netns,
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.forwarding=1",
            "net.ipv6.conf.all.accept_dad=0",
            "net.ipv6.conf.default.accept_dad=0",
        ],
        check=True,
        capture_output=True,
    )
    for port, name in PORTS.items():
        ip(netns, "link", "add", name, "type", "veth", "peer", "name", f"h{port}-eth0")
        ip(netns, "link", "set", name, "up")
        ip(netns, "link", "set", f"h{port}-eth0", "up")


@pytest.fixture
def kernel(netns: str) -> Any:
    from switchd.kernel import KernelDataplane

    make_switch_namespace(netns)
    made: list[Any] = []

    def new() -> Any:
        dp = KernelDataplane(netns, PORTS, PROTOCOL)
        made.append(dp)
        return dp

    yield new
    for dp in made:
        dp.stop()


def srv6_p4info() -> p4i.P4Info:
    return pbutil.from_text(DEFAULT_P4INFO_PATH.read_text(), p4i.P4Info)


class Srv6:
    """Entities of srv6.p4 by name (the ids come from the compiled P4Info)."""

    def __init__(self, p4rt: Any) -> None:
        self.build = p4rt.Builder(p4rt.Names(srv6_p4info()))


async def program(p4rt: Any, sw: Any) -> None:
    b = Srv6(p4rt).build
    await sw.write(
        [
            p4rt.insert(b.next_hop(1, 1, 0x0A0000000001)),
            p4rt.insert(b.next_hop(2, 2, 0x0A0000000002)),
            p4rt.insert(b.member(1, 1)),
            p4rt.insert(b.member(2, 2)),
            p4rt.insert(b.my_sid("fcbb:bb00:1::/48", "usid_un")),
        ]
    )
    await sw.write([p4rt.insert(b.group(1, [(1, 1, 1), (2, 1, 2)]))])
    await sw.write(
        [
            p4rt.insert(b.route("2001:db8:2::/64", group=1)),
            p4rt.insert(b.route("2001:db8:3::/64", member=2)),
        ]
    )


def routes(netns: str, table: str = "main") -> dict[str, dict[str, Any]]:
    return {
        r["dst"]: r
        for r in ip_json(netns, "-6", "route", "show", "table", table, "proto", str(PROTOCOL))
    }


def test_writes_become_kernel_state(p4rt: Any, netns: str, kernel: Any) -> None:
    async def scenario() -> None:
        async with p4rt.switchd(kernel(), p4info=DEFAULT_P4INFO_PATH, ports=PORTS) as sw:
            await sw.primary(10)
            await sw.set_pipeline(srv6_p4info())
            await program(p4rt, sw)

            main = routes(netns)
            assert {"2001:db8:2::/64", "2001:db8:3::/64"} <= set(main)
            group_id = main["2001:db8:2::/64"]["nhid"]
            nexthops = {n["id"]: n for n in ip_json(netns, "nexthop", "show")}
            assert [m["id"] for m in nexthops[group_id]["group"]] != []
            assert len(nexthops[group_id]["group"]) == 2
            assert "fcbb:bb00:1::/48" in routes(netns, "200")

            # Read answers from the store what was written.
            entries = await sw.read(p4r.Entity(table_entry=p4r.TableEntry()))
            assert len(entries) == 2 + 1 + 2
            # Direct counters come from the kernel's seg6local counters.
            b = Srv6(p4rt).build
            un = b.my_sid("fcbb:bb00:1::/48", "usid_un").table_entry
            (counter,) = await sw.read(
                p4r.Entity(
                    direct_counter_entry=p4r.DirectCounterEntry(
                        table_entry=p4r.TableEntry(table_id=un.table_id, match=un.match)
                    )
                )
            )
            assert counter.direct_counter_entry.data.packet_count == 0

            # Delete in order: everything leaves the kernel.
            await sw.write(
                [p4rt.delete(b.route("2001:db8:2::/64")), p4rt.delete(b.route("2001:db8:3::/64"))]
            )
            await sw.write([p4rt.delete(b.group(1, []))])
            assert routes(netns) == {}
            assert group_id not in {n["id"] for n in ip_json(netns, "nexthop", "show")}

    p4rt.run(scenario())


def test_a_kernel_refusal_is_a_per_update_error_and_leaves_nothing(
    p4rt: Any, netns: str, kernel: Any
) -> None:
    async def scenario() -> None:
        async with p4rt.switchd(kernel(), p4info=DEFAULT_P4INFO_PATH, ports=PORTS) as sw:
            await sw.primary(10)
            await sw.set_pipeline(srv6_p4info())
            b = Srv6(p4rt).build
            before = ip_json(netns, "nexthop", "show")
            # Port 7 is no port of this switch: a next hop's port is the data plane's to check
            # (the server checks watch ports only), so the kernel data plane refuses it.
            codes = await sw.write_codes(
                [p4rt.insert(b.next_hop(7, 7)), p4rt.insert(b.next_hop(1, 1))]
            )
            assert codes == [INVALID_ARGUMENT, OK]
            entries = await sw.read(p4r.Entity(table_entry=p4r.TableEntry()))
            assert len(entries) == 1
            after = ip_json(netns, "nexthop", "show")
            assert len(after) == len(before) + 1

    p4rt.run(scenario())


def test_rollback_on_error_undoes_the_kernel_changes(p4rt: Any, netns: str, kernel: Any) -> None:
    async def scenario() -> None:
        async with p4rt.switchd(kernel(), p4info=DEFAULT_P4INFO_PATH, ports=PORTS) as sw:
            await sw.primary(10)
            await sw.set_pipeline(srv6_p4info())
            b = Srv6(p4rt).build
            await sw.write([p4rt.insert(b.next_hop(1, 1))])
            nexthops = ip_json(netns, "nexthop", "show")
            codes = await sw.write_codes(
                [
                    p4rt.insert(b.next_hop(3, 2)),
                    p4rt.insert(b.my_sid("fcbb:bb00:1::/48", "end")),
                    p4rt.insert(b.next_hop(7, 7)),  # no port 7: the kernel data plane refuses
                ],
                atomicity=p4r.WriteRequest.ROLLBACK_ON_ERROR,
            )
            assert codes == [ABORTED, ABORTED, INVALID_ARGUMENT]
            assert ip_json(netns, "nexthop", "show") == nexthops
            assert routes(netns, "200") == {}
            assert len(await sw.read(p4r.Entity(table_entry=p4r.TableEntry()))) == 1

    p4rt.run(scenario())


def test_routes_modify_delete_and_roll_back_in_the_kernel(
    p4rt: Any, netns: str, kernel: Any
) -> None:
    """Routes take the data plane's fast path (read from the server's key and refs): a
    MODIFY moves the kernel route to its new nexthop, and a ROLLBACK_ON_ERROR write that
    inserted, modified and deleted routes leaves the kernel's routes as they were."""

    async def scenario() -> None:
        async with p4rt.switchd(kernel(), p4info=DEFAULT_P4INFO_PATH, ports=PORTS) as sw:
            await sw.primary(10)
            await sw.set_pipeline(srv6_p4info())
            await program(p4rt, sw)
            b = Srv6(p4rt).build
            group_nh = routes(netns)["2001:db8:2::/64"]["nhid"]
            member_nh = routes(netns)["2001:db8:3::/64"]["nhid"]
            await sw.write([p4rt.modify(b.route("2001:db8:3::/64", group=1))])
            assert routes(netns)["2001:db8:3::/64"]["nhid"] == group_nh
            await sw.write([p4rt.modify(b.route("2001:db8:3::/64", member=2))])
            kept = routes(netns)
            assert kept["2001:db8:3::/64"]["nhid"] == member_nh
            codes = await sw.write_codes(
                [
                    p4rt.insert(b.route("2001:db8:4::/64", member=1)),
                    p4rt.modify(b.route("2001:db8:3::/64", group=1)),
                    p4rt.delete(b.route("2001:db8:2::/64", group=1)),
                    p4rt.insert(b.next_hop(7, 7)),  # no port 7: the kernel data plane refuses
                ],
                atomicity=p4r.WriteRequest.ROLLBACK_ON_ERROR,
            )
            assert codes == [ABORTED, ABORTED, ABORTED, INVALID_ARGUMENT]
            assert routes(netns) == kept
            assert len(await sw.read(p4r.Entity(table_entry=p4r.TableEntry()))) == 5

    p4rt.run(scenario())


def test_a_restarted_switchd_serves_what_the_kernel_holds(
    p4rt: Any, netns: str, kernel: Any, tmp_path: Path
) -> None:
    state = tmp_path / "state"

    async def first() -> None:
        async with p4rt.switchd(
            kernel(), p4info=DEFAULT_P4INFO_PATH, ports=PORTS, state_dir=state
        ) as sw:
            await sw.primary(10)
            await sw.set_pipeline(srv6_p4info())
            await program(p4rt, sw)

    async def second() -> None:
        async with p4rt.switchd(
            kernel(), p4info=DEFAULT_P4INFO_PATH, ports=PORTS, state_dir=state
        ) as sw:
            entries = await sw.read(p4r.Entity(table_entry=p4r.TableEntry()))
            assert len(entries) == 5
            groups = await sw.read(p4r.Entity(action_profile_group=p4r.ActionProfileGroup()))
            assert len(groups) == 1

    p4rt.run(first())
    kept = routes(netns)
    assert {"2001:db8:2::/64", "2001:db8:3::/64"} <= set(kept)
    p4rt.run(second())
    assert routes(netns) == kept  # forwarding state never went away


@pytest.mark.parametrize("stream_slice", [64, 3])
def test_a_line_the_kernel_refuses_in_a_large_write_fails_alone(
    p4rt: Any, netns: str, kernel: Any, monkeypatch: pytest.MonkeyPatch, stream_slice: int
) -> None:
    """The kernel itself refuses one route of a write that spans several chunks (its
    nexthop was deleted behind switchd's back): that update alone fails, the others are in
    the kernel, and the long-lived ``ip -batch`` goes on serving later writes. Also when a
    chunk of routes goes to ``ip`` in slices (the refused one in a slice fed before the
    chunk's end)."""
    from switchd.kernel import dataplane
    from switchd.p4rt import server

    monkeypatch.setattr(dataplane, "STREAM_SLICE", stream_slice)
    monkeypatch.setattr(server, "PIPELINE_CHUNK", 8)
    PIPELINE_CHUNK = server.PIPELINE_CHUNK
    n = PIPELINE_CHUNK * 2 + 5

    async def scenario() -> None:
        async with p4rt.switchd(kernel(), p4info=DEFAULT_P4INFO_PATH, ports=PORTS) as sw:
            await sw.primary(10)
            await sw.set_pipeline(srv6_p4info())
            b = Srv6(p4rt).build
            await sw.write(
                [
                    p4rt.insert(b.next_hop(1, 1)),
                    p4rt.insert(b.member(1, 1)),
                    p4rt.insert(b.member(2, 1)),
                ]
            )
            ip(netns, "nexthop", "del", "id", str(0x1000_0002))  # member 2's kernel nexthop
            updates = [
                p4rt.insert(b.route(f"2001:db8:{i:x}::/64", member=1)) for i in range(1, n + 1)
            ]
            updates[PIPELINE_CHUNK + 1] = p4rt.insert(b.route("2001:db8:ffff::/64", member=2))
            codes = await sw.write_codes(updates)
            expected = [OK] * n
            expected[PIPELINE_CHUNK + 1] = INTERNAL
            assert codes == expected
            assert len(routes(netns)) == n - 1
            assert "2001:db8:ffff::/64" not in routes(netns)
            assert len(await sw.read(p4r.Entity(table_entry=p4r.TableEntry()))) == 1 + n - 1

            await sw.write([p4rt.delete(b.route("2001:db8:1::/64"))])
            assert "2001:db8:1::/64" not in routes(netns)

    p4rt.run(scenario())


def test_the_ip_batch_process_reports_failed_lines_and_survives_ip_exiting() -> None:
    from switchd.kernel.iproute import BatchProcess

    process = BatchProcess(["ip", "-force", "-batch", "-"])
    try:
        failures = process.run(["link show lo", "link show dev srv6lab-none0", "link show lo"])
        assert [f.line for f in failures] == [2]
        assert "srv6lab-none0" in failures[0].message
        assert process.run(["link show lo"]) == []
        # iproute2 exits on some malformed arguments, even with -force.
        failures = process.run(["link show lo", "route add 1:2:3:4:5:6:7:8:9::/64 dev lo"])
        assert failures and failures[-1].line == 0
        assert "ip exited" in failures[-1].message
        # The next batch gets a new ip.
        failures = process.run(["link show dev srv6lab-none0", "link show lo"])
        assert [f.line for f in failures] == [1]
        # A batch begun with feed(): its failures are numbered from the first line fed.
        process.feed(["link show lo", "link show dev srv6lab-none0"])
        process.feed(["link show lo"])
        failures = process.run(["link show dev srv6lab-none1"])
        assert [f.line for f in failures] == [2, 4]
        process.feed(["link show dev srv6lab-none0"])
        assert [f.line for f in process.run([])] == [1]
        assert process.run([]) == []
        # ip exits after lines were fed: the whole batch failed.
        process.feed(["route add 1:2:3:4:5:6:7:8:9::/64 dev lo"])
        failures = process.run(["link show lo"])
        assert failures and failures[-1].line == 0
        assert process.run(["link show lo"]) == []
    finally:
        process.close()
