"""Interop with a client nobody here wrote: p4runtime-shell (in its own virtual environment,
because it pins protobuf 3.20) connects to switchd, reads the entries another client (finsy)
wrote, and inserts one; the kernel holds it."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

import finsy as fy
import pytest

from switchd.p4rt.pipeline import DEFAULT_P4INFO_PATH
from tests.component.test_p4rt_kernel import PORTS, PROTOCOL, make_switch_namespace

ROOT = Path(__file__).resolve().parents[2]
SHELL_PYTHON = ROOT / ".venv-p4runtime-shell" / "bin" / "python"

SHELL_SCRIPT = """
import sys
import p4runtime_sh.shell as sh

sh.setup(device_id=1, grpc_addr=sys.argv[1], election_id=(0, 20), config=None)
try:
    table = sh.TableEntry("IngressPipeImpl.next_hop")
    seen = [e.match["local_metadata.nexthop_id"] for e in table.read()]
    print("READ", len(seen), flush=True)
    e = sh.TableEntry("IngressPipeImpl.next_hop")(action="IngressPipeImpl.rewrite")
    e.match["local_metadata.nexthop_id"] = "9"
    e.action["port"] = "2"
    e.action["src_mac"] = "02:53:00:01:00:02"
    e.action["dst_mac"] = "02:53:00:02:00:01"
    e.insert()
    print("INSERTED", flush=True)
finally:
    sh.teardown()
"""

pytestmark = [
    pytest.mark.skipif(
        not SHELL_PYTHON.exists(),
        reason="p4runtime-shell's venv is missing: bash scripts/bootstrap.sh setup makes it",
    ),
    pytest.mark.skipif(not DEFAULT_P4INFO_PATH.exists(), reason="p4/build not built"),
]


def test_p4runtime_shell_reads_what_finsy_wrote_and_inserts(
    p4rt: Any, netns: str, tmp_path: Path
) -> None:
    from switchd.kernel import KernelDataplane

    make_switch_namespace(netns)
    dp = KernelDataplane(netns, PORTS, PROTOCOL)
    address = f"unix:{tmp_path / 'sw.sock'}"

    async def scenario() -> tuple[str, list[Any]]:
        async with p4rt.switchd(dp, p4info=DEFAULT_P4INFO_PATH, ports=PORTS, listen=address):
            options = fy.SwitchOptions(p4info=DEFAULT_P4INFO_PATH, p4blob=b"", device_id=1)
            async with fy.Switch("finsy", address, options) as sw:
                await sw.write(
                    [
                        +fy.P4TableEntry(
                            "next_hop",
                            match=fy.P4TableMatch({"local_metadata.nexthop_id": n}),
                            action=fy.P4TableAction(
                                "rewrite",
                                port=n,
                                src_mac="02:53:00:01:00:01",
                                dst_mac=f"02:48:00:0{n}:00:00",
                            ),
                        )
                        for n in (1, 2)
                    ]
                )
            proc = await asyncio.create_subprocess_exec(
                str(SHELL_PYTHON),
                "-c",
                SHELL_SCRIPT,
                address,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            out, _ = await asyncio.wait_for(proc.communicate(), 60)
            text = out.decode(errors="replace")
            assert proc.returncode == 0, text
            # Read back with finsy (as a backup: p4runtime-shell left, finsy reconnects).
            async with fy.Switch("finsy", address, options) as sw:
                entries = [e async for e in sw.read(fy.P4TableEntry("next_hop"))]
            return text, entries

    text, entries = p4rt.run(scenario())
    assert "READ 2" in text, text
    assert "INSERTED" in text, text
    assert sorted(int(e.match["nexthop_id"]) for e in entries) == [1, 2, 9]
    shown = subprocess.run(
        ["ip", "-n", netns, "nexthop", "show", "id", "9"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "dev s1-eth2" in shown, shown
    dp.stop()
