"""Fixtures of the integration tier: a private run directory for the whole session,
private namespace names per module (``private_netns``), the topology files, and ``probe``,
which looks at the lab from outside Mininet, through the named namespaces
(``srv6lab-<node>``) an engineer would use."""

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
PRIVATE_PREFIX = f"srv6lab-it{os.getpid()}-"


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


@pytest.fixture(scope="module")
def private_netns() -> Iterator[str]:
    """Name this module's lab namespaces ``srv6lab-it<pid>-<node>`` instead of
    ``srv6lab-<node>``, so that test sessions running side by side on the machine (and an
    engineer's own lab) never compete for the same names. Yields the prefix."""
    saved = os.environ.get("SRV6LAB_NETNS_PREFIX")
    os.environ["SRV6LAB_NETNS_PREFIX"] = PRIVATE_PREFIX
    yield PRIVATE_PREFIX
    if saved is None:
        del os.environ["SRV6LAB_NETNS_PREFIX"]
    else:
        os.environ["SRV6LAB_NETNS_PREFIX"] = saved


def netns_of(node: str) -> str:
    """The namespace name of a lab node, with the prefix in force."""
    return (os.environ.get("SRV6LAB_NETNS_PREFIX") or "srv6lab-") + node


@pytest.fixture(scope="session")
def topology() -> Callable[[str], Topology]:
    """``topology("line-3")`` loads ``topologies/line-3.yaml``."""
    return lambda name: load(TOPOLOGIES / f"{name}.yaml")


class Probe:
    """Looks at lab nodes with iproute2 through their named namespaces."""

    def run(self, node: str, *command: str, check: bool = True) -> str:
        proc = subprocess.run(
            ["ip", "netns", "exec", netns_of(node), *command],
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
                netns_of(node),
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


def _node_names() -> frozenset[str]:
    names = set()
    for path in TOPOLOGIES.glob("*.yaml"):
        topo = load(path)
        names |= {s.name for s in topo.switches} | {h.name for h in topo.hosts}
    return frozenset(names)


LAB_NODE_NAMES = _node_names()


def lab_namespaces() -> list[str]:
    """Namespaces named for a node of a shipped topology with the prefix in force
    (``srv6lab-s1``): other tools' namespaces that merely start with ``srv6lab-`` are not
    the lab's."""
    netns = Path("/run/netns")
    if not netns.is_dir():
        return []
    names = {netns_of(node) for node in LAB_NODE_NAMES}
    return sorted(p.name for p in netns.iterdir() if p.name in names)


def mininet_shells(run: Path) -> list[int]:
    """Node shells of this session's labs: children of this process (labs run through the
    API) or of a process whose environment names this session's run directory (labs run
    through the CLI). Other sessions' labs on the machine are not ours to judge."""
    mine = f"SRV6LAB_RUN_DIR={run}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            if b"mininet:" not in cmdline or b"bash" not in cmdline:
                continue
            stat = (entry / "stat").read_text()
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            parent_env = Path(f"/proc/{ppid}/environ").read_bytes().split(b"\0")
        except (FileNotFoundError, ProcessLookupError):
            continue  # gone meanwhile
        if ppid == os.getpid() or mine in parent_env:
            found.append(int(entry.name))
    return found


class Leftovers:
    """What a lab may leave behind, for "nothing is left" assertions."""

    def __init__(self, run: Path) -> None:
        self.run = run

    def now(self) -> dict[str, object]:
        return {
            "namespaces": lab_namespaces(),
            "node shells": mininet_shells(self.run),
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
        self.run = run

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SRV6LAB_RUN_DIR": str(self.run)}

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

    def ok(self, *args: str, timeout: float = 120) -> str:
        """Run it, insist that it succeeds (the message shows what it printed), return
        its standard output."""
        proc = self(*args, timeout=timeout)
        assert proc.returncode == 0, f"srv6lab {' '.join(args)}: {proc.stdout}{proc.stderr}"
        return proc.stdout

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


@pytest.fixture(scope="module")
def tri3(
    tmp_path_factory: pytest.TempPathFactory, private_netns: str
) -> Iterator[tuple[Any, Topology]]:
    """A lab of tri-3 (switchd on every switch), one per test module."""
    from lab.session import running_lab
    from tests.integration.switchd_support import TRI3

    path = Path(tmp_path_factory.mktemp("topo")) / "tri-3.yaml"
    path.write_text(TRI3)
    topo = load(path)
    with running_lab(topo) as lab:
        yield lab, topo


@pytest.fixture
def planes(tri3: tuple[Any, Topology]) -> Iterator[dict[str, Any]]:
    """Every switchd of the tri-3 lab as a P4Runtime client, emptied before each test."""
    from tests.integration.switchd_support import P4RuntimeSwitch

    lab, _ = tri3
    out = {e.name: P4RuntimeSwitch(e.name, e.p4runtime, e.device_id) for e in lab.network.endpoints}
    for sw in out.values():
        sw.clear()
    return out
