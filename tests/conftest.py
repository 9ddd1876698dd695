"""Session-wide rules for every test tier.

- Tests marked ``root`` (everything under ``tests/integration/`` is) are skipped, with the
  reason, when not running as root.
- Nothing may be left behind: the session fails if, at its end, a network namespace, a
  root-namespace interface or a lab process (a Mininet node shell, a switchd, or any process
  inside a
  ``srv6lab-*`` namespace) exists that did not exist at its start.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

LEAK_GRACE_SECONDS = 10.0
"""Something another test session on the machine holds briefly is not our leak."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in Path(str(item.path)).parts:
            item.add_marker(pytest.mark.root)
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (network namespaces, Mininet)")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)


@dataclass(frozen=True)
class Snapshot:
    namespaces: frozenset[str]
    interfaces: frozenset[str]
    processes: frozenset[str]

    @classmethod
    def take(cls) -> Snapshot:
        return cls(_namespaces(), _root_interfaces(), _lab_processes())

    def new_since(self, before: Snapshot) -> list[str]:
        out = []
        for what, now, then in (
            ("network namespaces", self.namespaces, before.namespaces),
            ("root-namespace interfaces", self.interfaces, before.interfaces),
            ("lab processes", self.processes, before.processes),
        ):
            extra = sorted(now - then)
            if extra:
                out.append(f"{what}: {', '.join(extra)}")
        return out


def _namespaces() -> frozenset[str]:
    listing = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, check=True
    ).stdout
    return frozenset(line.split()[0] for line in listing.splitlines() if line.strip())


def _root_interfaces() -> frozenset[str]:
    listing = subprocess.run(
        ["ip", "-o", "link", "show"], capture_output=True, text=True, check=True
    ).stdout
    return frozenset(
        line.split(":", 2)[1].strip().split("@", 1)[0] for line in listing.splitlines()
    )


def _lab_processes() -> frozenset[str]:
    lab_netns = set()
    netns_dir = Path("/run/netns")
    if netns_dir.is_dir():
        for entry in netns_dir.iterdir():
            if entry.name.startswith("srv6lab-"):
                try:
                    lab_netns.add(entry.stat().st_ino)
                except OSError:
                    continue  # removed meanwhile
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
            netns = (entry / "ns" / "net").stat().st_ino if lab_netns else None
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue  # gone, or not ours to inspect
        lab_process = any(k in cmdline for k in ("mininet:", "switchd.cli", " controller run "))
        if lab_process or netns in lab_netns:
            found.add(f"pid {entry.name} ({cmdline[:60]})")
    return frozenset(found)


@pytest.fixture(scope="session", autouse=True)
def nothing_left_behind() -> Iterator[None]:
    """Fail the session if it leaves namespaces, interfaces or lab processes behind."""
    before = Snapshot.take()
    yield
    deadline = time.monotonic() + LEAK_GRACE_SECONDS
    delay = 0.01
    while True:
        leaks = Snapshot.take().new_since(before)
        if not leaks or time.monotonic() >= deadline:
            break
        time.sleep(delay)  # processes being reaped; wait for the condition, briefly
        delay = min(delay * 2, 0.5)
    if leaks:
        pytest.fail("the test session left behind:\n  " + "\n  ".join(leaks), pytrace=False)
