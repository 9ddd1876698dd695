"""Fixtures of the integration tier: a private run directory for the whole session, the
topology files, and ``probe``, which looks at the lab from outside Mininet, through the
named namespaces ``srv6lab-<node>`` an engineer would use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.topology import Topology, load

ROOT = Path(__file__).resolve().parents[2]
TOPOLOGIES = ROOT / "topologies"


@pytest.fixture(scope="session", autouse=True)
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every lab of the session (in-process or through the CLI) uses its own run
    directory, so a lab an engineer runs in /run/srv6lab is never touched."""
    path = tmp_path_factory.mktemp("srv6lab-run")
    saved = os.environ.get("SRV6LAB_RUN_DIR")
    os.environ["SRV6LAB_RUN_DIR"] = str(path)
    yield path
    if saved is None:
        del os.environ["SRV6LAB_RUN_DIR"]
    else:
        os.environ["SRV6LAB_RUN_DIR"] = saved


@pytest.fixture(scope="session")
def topology() -> Callable[[str], Topology]:
    """``topology("line-3")`` loads ``topologies/line-3.yaml``."""
    return lambda name: load(TOPOLOGIES / f"{name}.yaml")


class Probe:
    """Looks at lab nodes with iproute2 through their named namespaces."""

    def run(self, node: str, *command: str, check: bool = True) -> str:
        proc = subprocess.run(
            ["ip", "netns", "exec", f"srv6lab-{node}", *command],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{node}: {' '.join(command)} exited {proc.returncode}: {proc.stderr}"
            )
        return proc.stdout

    def links(self, node: str) -> dict[str, dict[str, Any]]:
        """``ip -j -d link`` of a node by interface name (lo excluded)."""
        raw = json.loads(self.run(node, "ip", "-j", "-d", "link", "show"))
        return {e["ifname"]: e for e in raw if e["ifname"] != "lo"}

    def addresses(self, node: str, family: str = "-6") -> dict[str, list[str]]:
        """Addresses (with prefix length) of a node by interface name, lo included."""
        raw = json.loads(self.run(node, "ip", "-j", family, "addr", "show"))
        return {
            e["ifname"]: [f"{a['local']}/{a['prefixlen']}" for a in e.get("addr_info", [])]
            for e in raw
        }

    def ping(self, node: str, address: str, ifname: str) -> bool:
        """One ping across a link, to a link-local address, waiting at most 2 s."""
        proc = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                f"srv6lab-{node}",
                "ping",
                "-6",
                "-n",
                "-q",
                "-c1",
                "-W2",
                f"{address}%{ifname}",
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        return proc.returncode == 0

    def sysctl(self, node: str, key: str) -> str:
        return self.run(node, "sysctl", "-n", key).strip()


@pytest.fixture(scope="session")
def probe() -> Probe:
    return Probe()


def lab_namespaces() -> list[str]:
    netns = Path("/run/netns")
    if not netns.is_dir():
        return []
    return sorted(p.name for p in netns.iterdir() if p.name.startswith("srv6lab-"))


def mininet_shells() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except (FileNotFoundError, ProcessLookupError):
            continue  # gone meanwhile
        if b"mininet:" in cmdline and b"bash" in cmdline:
            found.append(int(entry.name))
    return found


class Leftovers:
    """What a lab may leave behind, for "nothing is left" assertions."""

    def __init__(self, run: Path) -> None:
        self.run = run

    def now(self) -> dict[str, object]:
        return {
            "namespaces": lab_namespaces(),
            "node shells": mininet_shells(),
            "state file": (self.run / "state.json").exists(),
        }

    def assert_none(self, timeout: float = 5.0) -> None:
        """Nothing of a lab exists (waits briefly while killed shells are reaped)."""
        deadline = time.monotonic() + timeout
        delay = 0.01
        while True:
            found = {k: v for k, v in self.now().items() if v}
            if not found or time.monotonic() >= deadline:
                break
            time.sleep(delay)  # waiting on a condition: processes being reaped
            delay = min(delay * 2, 0.2)
        assert not found, f"left behind: {found}"


@pytest.fixture(scope="session")
def leftovers(run_dir: Path) -> Leftovers:
    return Leftovers(run_dir)


class Cli:
    """Runs ``srv6lab`` as a user would, with the session's run directory."""

    def __init__(self, run: Path) -> None:
        self.env = {**os.environ, "SRV6LAB_RUN_DIR": str(run)}

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "lab.cli", *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
            env=self.env,
            cwd=ROOT,
        )

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "lab.cli", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.env,
            cwd=ROOT,
        )


@pytest.fixture(scope="session")
def cli(run_dir: Path) -> Cli:
    return Cli(run_dir)
