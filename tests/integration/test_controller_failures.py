"""Link failures with the controller on leaf-spine-2x4 (kernel switches): an admin failure
reaches it from netlink/gNMI, a gray failure (nftables drop, the port stays up) only from
its path probes; either way the steered intents move off the link and traffic flows, and
the restored link is taken back."""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.topology import Topology
from lab.controller_proc import ControllerOptions
from lab.session import RunningLab, running_lab
from tests.integration.conftest import Cli
from tests.integration.switchd_support import ping

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def lab(topology: Callable[[str], Topology], private_netns: str) -> Iterator[RunningLab]:
    with running_lab(topology("leaf-spine-2x4"), controller=ControllerOptions()) as running:
        yield running


def srv6lab(*args: str) -> str:
    """``srv6lab ARGS`` with the session's run directory; must succeed; its output."""
    return Cli(Path(os.environ["SRV6LAB_RUN_DIR"])).ok(*args)


def status() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(srv6lab("controller", "status", "--json"))
    return data


def down_links() -> set[str]:
    return {link["name"] for link in status().get("links", []) if not link.get("up", False)}


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def intent(intent_id: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(srv6lab("intent", "show", intent_id, "--json"))
    return data


def crosses(data: dict[str, Any], a: str, b: str) -> bool:
    for path in data.get("paths", []):
        nodes = path["nodes"]
        if any({x, y} == {a, b} for x, y in itertools.pairwise(nodes)):
            return True
    return False


def test_a_gray_failure_is_found_by_path_probes_and_routed_around(lab: RunningLab) -> None:
    srv6lab("intent", "add", "explicit", "h1", "h5", "--via", "spine1", "--id", "probe-me")
    assert crosses(intent("probe-me"), "leaf1", "spine1")
    assert ping("h1", "2001:db8:5::1")
    try:
        out = srv6lab("lab", "fail", "leaf1", "spine1", "--kind", "gray")
        assert "gray" in out
        wait_for(lambda: "leaf1-spine1" in down_links(), "the probes to find the gray link")
        data = intent("probe-me")
        assert not crosses(data, "leaf1", "spine1"), data
        assert ping("h1", "2001:db8:5::1"), "no traffic around the gray link"
    finally:
        srv6lab("lab", "restore")
    wait_for(lambda: not down_links(), "the repaired link to be taken back")
    wait_for(lambda: crosses(intent("probe-me"), "leaf1", "spine1"), "the preferred path")
    srv6lab("intent", "delete", "probe-me")


def test_an_admin_failure_degrades_a_disjoint_intent_and_restore_heals_it(lab: RunningLab) -> None:
    srv6lab("intent", "add", "disjoint", "h3", "h7", "-k", "2", "--id", "pair")
    assert intent("pair")["status"] == "installed"
    try:
        srv6lab("lab", "fail", "leaf2", "spine1", "--kind", "admin")
        wait_for(lambda: "leaf2-spine1" in down_links(), "the controller to see the link down")
        wait_for(lambda: intent("pair")["status"] == "degraded", "the intent to degrade")
        assert "1 of 2" in intent("pair")["reason"]
        assert ping("h3", "2001:db8:7::1")
    finally:
        srv6lab("lab", "restore")
    wait_for(lambda: intent("pair")["status"] == "installed", "the intent to heal")
    diff = Cli(Path(os.environ["SRV6LAB_RUN_DIR"]))("intent", "diff", timeout=60)
    assert diff.returncode == 0, diff.stdout
    srv6lab("intent", "delete", "pair")
