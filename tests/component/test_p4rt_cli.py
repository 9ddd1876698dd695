"""``srv6lab switchd``: its options, port discovery, and a real switchd process in a network
namespace (root) that serves P4Runtime and gNMI on a Unix socket and stops cleanly on
SIGTERM, leaving the kernel forwarding."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from finsy import pbutil
from finsy.proto import gnmi, gnmi_grpc, p4i, p4r, p4r_grpc

from switchd.cli import parse_ports, ports_from_names, register
from switchd.gnmi import interface_path
from switchd.p4rt.pipeline import DEFAULT_P4INFO_PATH

REPO = Path(__file__).resolve().parents[2]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="srv6lab")
    register(p.add_subparsers(dest="command", required=True))
    return p


def test_help_names_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["switchd", "--help"])
    text = capsys.readouterr().out
    for option in (
        "--listen",
        "--device-id",
        "--gnmi-listen",
        "--state-dir",
        "--ports",
        "--protocol",
        "--netns",
        "--p4info",
        "--log-level",
    ):
        assert option in text
    args = parser().parse_args(["switchd"])
    assert args.listen == "127.0.0.1:9559" and args.device_id == 1
    for bad in (["--device-id", "0"], ["--protocol", "300"], ["--device-id", "x"]):
        with pytest.raises(SystemExit):
            parser().parse_args(["switchd", *bad])


def test_ports() -> None:
    assert parse_ports("1=s1-eth1, 2=s1-eth2") == {1: "s1-eth1", 2: "s1-eth2"}
    for bad in ("", "1", "x=s1", "1=a,1=b", "1=a,2=a", "1="):
        with pytest.raises(ValueError):
            parse_ports(bad)
    names = ["lo", "s1-eth2", "s1-eth10", "eth0", "s1-eth1", "veth-x"]
    assert ports_from_names(names) == {1: "s1-eth1", 2: "s1-eth2", 10: "s1-eth10"}
    with pytest.raises(ValueError, match="both look like port 1"):
        ports_from_names(["s1-eth1", "s2-eth1"])


@pytest.mark.skipif(not DEFAULT_P4INFO_PATH.exists(), reason="srv6.p4 P4Info not built")
def test_switchd_process_in_a_namespace(netns: str, tmp_path: Path) -> None:
    for port in (1, 2):
        subprocess.run(
            [
                "ip",
                "-n",
                netns,
                "link",
                "add",
                f"s1-eth{port}",
                "type",
                "veth",
                "peer",
                "name",
                f"h{port}-x",
            ],
            check=True,
        )
        for name in (f"s1-eth{port}", f"h{port}-x"):
            subprocess.run(["ip", "-n", netns, "link", "set", name, "up"], check=True)
    sock = tmp_path / "run" / "s1.sock"
    log = tmp_path / "switchd.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                netns,
                sys.executable,
                "-m",
                "switchd.cli",
                "--listen",
                f"unix:{sock}",
                "--device-id",
                "7",
                "--state-dir",
                str(tmp_path / "state"),
            ],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
    try:

        async def scenario() -> None:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            delay = 0.01
            while not sock.exists():  # the condition: switchd listens
                assert proc.poll() is None, log.read_text()
                assert loop.time() < deadline, log.read_text()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.2)
            async with grpc.aio.insecure_channel(f"unix:{sock}") as channel:
                await channel.channel_ready()
                stub = p4r_grpc.P4RuntimeStub(channel)
                reply = await stub.Capabilities(p4r.CapabilitiesRequest())
                assert reply.p4runtime_api_version
                ports = await gnmi_grpc.gNMIStub(channel).Get(
                    gnmi.GetRequest(path=[interface_path("*", "ifindex")])
                )
                found = {
                    u.path.elem[1].key["name"]: u.val.uint_val for u in ports.notification[0].update
                }
                assert found == {"s1-eth1": 1, "s1-eth2": 2}  # discovered from the names
                stream = stub.StreamChannel()
                await stream.write(
                    p4r.StreamMessageRequest(
                        arbitration=p4r.MasterArbitrationUpdate(
                            device_id=7, election_id=p4r.Uint128(low=1)
                        )
                    )
                )
                msg = await stream.read()
                assert msg.arbitration.status.code == 0
                p4info = pbutil.from_text(DEFAULT_P4INFO_PATH.read_text(), p4i.P4Info)
                await stub.SetForwardingPipelineConfig(
                    p4r.SetForwardingPipelineConfigRequest(
                        device_id=7,
                        election_id=p4r.Uint128(low=1),
                        action=p4r.SetForwardingPipelineConfigRequest.VERIFY_AND_COMMIT,
                        config=p4r.ForwardingPipelineConfig(p4info=p4info),
                    )
                )
                stream.cancel()

        asyncio.run(asyncio.wait_for(scenario(), 60))
        assert (tmp_path / "state" / "pipeline.binpb").exists()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()
        assert "stopping" in log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    rules = subprocess.run(
        ["ip", "-n", netns, "-j", "-6", "rule", "show"], check=True, capture_output=True, text=True
    ).stdout
    # What switchd installed for the pipeline stays after it stops.
    assert any(rule.get("priority") == 1000 for rule in json.loads(rules)), rules
