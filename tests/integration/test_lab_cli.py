"""``srv6lab lab ...`` as a user runs it: up --detach, status, exec, a second up refused,
down; and the answers when there is no lab or the file is bad."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("private_netns")]

LINE3 = "topologies/line-3.yaml"


@pytest.fixture(scope="module")
def detached(private_netns: str, cli: Any, leftovers: Any) -> Iterator[str]:
    """line-3 started with --detach; stopped with `lab down` at the end, checked."""
    up = cli("lab", "up", LINE3, "--detach")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield up.stdout
    finally:
        down = cli("lab", "down")
        assert down.returncode == 0, down.stdout + down.stderr
        assert "stopped lab line-3" in down.stdout
        assert "crashed" not in down.stdout, down.stdout
        leftovers.assert_none()


def test_up_shows_progress_and_one_ready_line(detached: str) -> None:
    lines = detached.splitlines()
    assert lines[0].startswith("lab line-3: 3 switches, 2 hosts, 4 links")
    for phase in ("starting 3 switches and 2 hosts", "creating 4 links", "waiting for 8"):
        assert any(phase in line for line in lines), detached
    ready = [line for line in lines if " ready in " in line]
    assert len(ready) == 1 and ready[0].startswith("lab line-3 ready in "), detached
    assert ready[0].endswith("s (3 switches, 2 hosts, 4 links)")


def test_status_lists_nodes_links_state_and_addresses(detached: str, cli: Any) -> None:
    status = cli("lab", "status")
    assert status.returncode == 0, status.stderr
    out = status.stdout
    assert out.startswith("lab line-3 (")
    assert "s1-eth2" in out and "fe80::53:1:2/64" in out and "02:53:00:01:00:02" in out
    assert "2001:db8:1::1/64" in out
    assert "s1-s2" in out and "UP" in out and "100 Mbit/s" in out


def test_status_json(detached: str, cli: Any) -> None:
    status = cli("lab", "status", "--json")
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert data["topology"] == "line-3"
    assert {n["name"] for n in data["nodes"]} == {"h1", "h2", "s1", "s2", "s3"}
    assert all(link["a_state"] == link["b_state"] == "UP" for link in data["links"])


def test_exec_runs_inside_the_node(detached: str, cli: Any) -> None:
    proc = cli("lab", "exec", "h1", "--", "ip", "-6", "route", "show", "default")
    assert proc.returncode == 0, proc.stderr
    assert "default via fe80::53:1:1 dev h1-eth0" in proc.stdout


def test_exec_passes_the_exit_status_through(detached: str, cli: Any) -> None:
    assert cli("lab", "exec", "s2", "--", "sh", "-c", "exit 7").returncode == 7
    ping = cli("lab", "exec", "s1", "--", "ping", "-6", "-c1", "-W2", "fe80::53:2:1%s1-eth2")
    assert ping.returncode == 0, ping.stdout + ping.stderr


def test_exec_unknown_node_lists_the_nodes(detached: str, cli: Any) -> None:
    proc = cli("lab", "exec", "s9", "--", "true")
    assert proc.returncode == 1
    assert "no node 's9' in lab line-3" in proc.stderr
    assert "s1, s2, s3, h1, h2" in proc.stderr or "h1, h2, s1, s2, s3" in proc.stderr


def test_exec_without_a_command(detached: str, cli: Any) -> None:
    proc = cli("lab", "exec", "s1")
    assert proc.returncode == 2
    assert "no command given" in proc.stderr


@pytest.mark.parametrize("mode", [["--detach"], []])
def test_a_second_up_is_refused(detached: str, cli: Any, mode: list[str]) -> None:
    proc = cli("lab", "up", "topologies/leaf-spine-2x4.yaml", *mode)
    assert proc.returncode == 1
    assert "lab line-3" in proc.stderr and "is running" in proc.stderr, proc.stderr
    assert "srv6lab lab down" in proc.stderr
    assert "leaf-spine" not in proc.stdout


def test_help_texts(cli: Any) -> None:
    for command in (["lab"], ["lab", "up"], ["lab", "status"], ["lab", "exec"], ["lab", "down"]):
        proc = cli(*command, "--help")
        assert proc.returncode == 0, command
        assert "usage: srv6lab lab" in proc.stdout
