"""Nothing is left behind: when a test fails midway with a lab up, when starting fails
halfway, when the lab process is stopped by Ctrl-C, SIGTERM or `lab down`, and when it
crashes (SIGKILL), after which `lab down` or the next `lab up` removes what it left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.topology import Topology
from lab import links
from lab.errors import LabError
from lab.runtime import LabLock, RunDir
from lab.session import running_lab, stop_lab
from lab.sweep import SweepReport

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("private_netns")]

LINE3 = "topologies/line-3.yaml"


class Boom(Exception):
    pass


def test_a_test_that_fails_midway_leaves_nothing(
    topology: Callable[[str], Topology], leftovers: Any, probe: Any
) -> None:
    with pytest.raises(Boom), running_lab(topology("line-3")) as lab:
        assert probe.run("s1", "true") == ""
        assert lab.state.ready
        raise Boom("the test failed here, with the lab up")
    leftovers.assert_none(timeout=0)
    assert LabLock(RunDir.from_env()).holder() is None


def test_a_start_that_fails_halfway_leaves_nothing(
    topology: Callable[[str], Topology], leftovers: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = links.LabIntf.config
    calls = []

    def fail_on_the_fifth(self: Any, **params: Any) -> dict[str, Any]:
        calls.append(self.name)
        if len(calls) == 5:
            raise LabError(f"injected failure configuring {self.name}")
        result: dict[str, Any] = original(self, **params)
        return result

    monkeypatch.setattr(links.LabIntf, "config", fail_on_the_fifth)
    with pytest.raises(LabError, match="injected failure"), running_lab(topology("fat-tree-4")):
        pytest.fail("the lab started")
    leftovers.assert_none(timeout=0)


def _wait_for_ready(run: Path, proc: subprocess.Popen[str], timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    delay = 0.01
    while time.monotonic() < deadline:
        try:
            state: dict[str, Any] = json.loads((run / "state.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            state = {}
        if state.get("ready") and state.get("pid") == proc.pid:
            return state
        assert proc.poll() is None, (
            f"lab up exited early: {proc.stdout.read() if proc.stdout else ''}"
        )
        time.sleep(delay)  # waiting on a condition: the state file says ready
        delay = min(delay * 2, 0.2)
    raise AssertionError("the lab was not ready in time")


@pytest.fixture
def foreground(cli: Any, run_dir: Path) -> Iterator[subprocess.Popen[str]]:
    """`srv6lab lab up line-3` holding the lab in the foreground, ready."""
    proc = cli.popen("lab", "up", LINE3)
    try:
        _wait_for_ready(run_dir, proc)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        if proc.stdout:
            proc.stdout.close()
        stop_lab()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_stops_a_foreground_lab(
    foreground: subprocess.Popen[str], leftovers: Any, sig: signal.Signals
) -> None:
    foreground.send_signal(sig)
    out, _ = foreground.communicate(timeout=30)
    assert foreground.returncode == 0, out
    assert "stopping lab line-3..." in out and "lab line-3 stopped in" in out, out
    leftovers.assert_none(timeout=0)


def test_lab_down_stops_a_foreground_lab(
    foreground: subprocess.Popen[str], cli: Any, leftovers: Any
) -> None:
    down = cli("lab", "down")
    assert down.returncode == 0, down.stderr
    assert f"stopped lab line-3 (pid {foreground.pid})" in down.stdout
    out, _ = foreground.communicate(timeout=30)
    assert foreground.returncode == 0, out
    assert "SIGTERM received" in out
    leftovers.assert_none(timeout=0)


@pytest.fixture
def crashed(
    cli: Any, run_dir: Path, leftovers: Any, private_netns: str
) -> Iterator[subprocess.Popen[bytes]]:
    """A detached line-3 whose lab process was killed with SIGKILL, with a process
    started inside h1 still running. Yields that process."""
    up = cli("lab", "up", LINE3, "--detach")
    assert up.returncode == 0, up.stdout + up.stderr
    state = json.loads((run_dir / "state.json").read_text())
    stray = subprocess.Popen(
        ["ip", "netns", "exec", f"{private_netns}h1", "sleep", "600"], start_new_session=True
    )
    try:
        os.kill(state["pid"], signal.SIGKILL)
        _wait_gone(state["pid"])
        assert leftovers.now()["namespaces"], "a crash leaves the named namespaces"
        assert stray.poll() is None
        yield stray
    finally:
        if stray.poll() is None:
            stray.kill()
        stray.wait(timeout=30)
        stop_lab()


def _wait_gone(pid: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists():
        assert time.monotonic() < deadline, f"pid {pid} still there"
        time.sleep(0.01)  # waiting on a condition: the killed process is reaped by init


def test_lab_down_removes_what_a_crash_left(
    crashed: subprocess.Popen[bytes], cli: Any, leftovers: Any, private_netns: str
) -> None:
    down = cli("lab", "down")
    assert down.returncode == 0, down.stderr
    out = down.stdout
    assert "lab line-3 (pid" in out and "had ended without cleaning up" in out, out
    assert "removed what a crashed run left behind:" in out
    # The crash left the stray sleep and the three switches' switchd processes.
    assert "4 processes: " in out and f"pid {crashed.pid} (sleep 600)" in out, out
    assert out.count("-m switchd.cli") == 3, out
    names = ", ".join(f"{private_netns}{n}" for n in ("h1", "h2", "s1", "s2", "s3"))
    assert f"5 namespaces: {names}" in out, out
    assert crashed.wait(timeout=10) != 0
    leftovers.assert_none(timeout=0)


def test_the_next_lab_up_removes_what_a_crash_left(
    crashed: subprocess.Popen[bytes], topology: Callable[[str], Topology], leftovers: Any
) -> None:
    reports: list[SweepReport] = []
    with running_lab(topology("line-3"), on_sweep=reports.append) as lab:
        assert lab.state.ready
    assert len(reports) == 1
    assert len(reports[0].namespaces) == 5
    assert any("sleep 600" in p for p in reports[0].processes)
    assert crashed.wait(timeout=10) != 0
    leftovers.assert_none(timeout=0)


@pytest.fixture
def foreign_namespace(private_netns: str) -> Iterator[str]:
    """A namespace with a lab node's name that no lab state claims (another tool's, or
    a lab's whose state file is gone)."""
    name = f"{private_netns}h1"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


def test_unclaimed_namespaces_are_never_removed(
    foreign_namespace: str, topology: Callable[[str], Topology], cli: Any
) -> None:
    with pytest.raises(LabError) as err, running_lab(topology("line-3")):
        pytest.fail("the lab started over a namespace it does not own")
    assert f"namespaces {foreign_namespace} exist, but no lab state" in str(err.value)
    assert "ip netns delete" in str(err.value)
    down = cli("lab", "down")
    assert down.returncode == 0
    assert "no lab state here claims them" in down.stdout and foreign_namespace in down.stdout
    assert Path("/run/netns", foreign_namespace).exists()
