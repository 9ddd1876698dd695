"""The state file of a running lab (JSON, in the run directory): which topology, which
switch kind, which process holds the lab, each node's pid, namespace and interfaces, the
steps of starting and whether the lab is ready.

``lab status``, ``lab exec`` and ``lab down`` read it; a detached ``lab up`` watches it to
know when the lab is ready; a sweep after a crash reads it to know what was left behind.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lab.errors import LabError

VERSION = 1


@dataclass(frozen=True, slots=True)
class InterfaceInfo:
    name: str
    mac: str
    link_local: str
    addresses: tuple[str, ...]
    peer: str
    """``node:interface`` at the other end of the link."""


@dataclass(frozen=True, slots=True)
class NodeInfo:
    name: str
    kind: str
    """``switch`` or ``host``."""
    switch_kind: str | None
    pid: int
    netns: str
    netns_inode: int
    interfaces: tuple[InterfaceInfo, ...]


@dataclass(frozen=True, slots=True)
class LinkInfo:
    name: str
    a: str
    b: str
    bandwidth_mbps: float


@dataclass(frozen=True, slots=True)
class Step:
    text: str
    at: float
    """Seconds since the start of ``lab up``."""


@dataclass
class LabState:
    topology: str
    topology_path: str
    switch_kind: str
    pid: int
    started_at: float
    counts: dict[str, int]
    node_names: list[str]
    netns_prefix: str
    """Every node's namespace is named ``<netns_prefix><node>`` (``srv6lab-s1``)."""
    interface_names: list[str]
    links: list[LinkInfo]
    log: str | None = None
    swept: list[str] = field(default_factory=list)
    """What ``lab up`` removed that a crashed run had left behind."""
    steps: list[Step] = field(default_factory=list)
    nodes: dict[str, NodeInfo] = field(default_factory=dict)
    ready: bool = False
    ready_at: float | None = None
    ready_seconds: float | None = None
    version: int = VERSION

    def add_step(self, text: str) -> Step:
        step = Step(text, round(time.time() - self.started_at, 3))
        self.steps.append(step)
        return step

    def mark_ready(self, nodes: list[NodeInfo]) -> None:
        self.nodes = {node.name: node for node in nodes}
        self.ready = True
        self.ready_at = time.time()
        self.ready_seconds = round(self.ready_at - self.started_at, 3)

    def summary(self) -> str:
        c = self.counts
        return f"{c['switches']} switches, {c['hosts']} hosts, {c['links']} links"

    # -- JSON ------------------------------------------------------------------------------

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, source: str) -> LabState:
        try:
            raw = json.loads(text)
            if raw.get("version") != VERSION:
                raise ValueError(f"version {raw.get('version')!r}, expected {VERSION}")
            return cls(
                topology=raw["topology"],
                topology_path=raw["topology_path"],
                switch_kind=raw["switch_kind"],
                pid=int(raw["pid"]),
                started_at=float(raw["started_at"]),
                counts=dict(raw["counts"]),
                node_names=list(raw["node_names"]),
                netns_prefix=str(raw["netns_prefix"]),
                interface_names=list(raw["interface_names"]),
                links=[LinkInfo(**link) for link in raw["links"]],
                log=raw.get("log"),
                swept=list(raw.get("swept", [])),
                steps=[Step(**step) for step in raw.get("steps", [])],
                nodes={name: _node(value) for name, value in raw.get("nodes", {}).items()},
                ready=bool(raw.get("ready", False)),
                ready_at=raw.get("ready_at"),
                ready_seconds=raw.get("ready_seconds"),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise LabError(f"state file {source} is not a valid lab state: {exc}") from None


def _node(raw: dict[str, Any]) -> NodeInfo:
    interfaces = tuple(
        InterfaceInfo(**{**i, "addresses": tuple(i["addresses"])}) for i in raw["interfaces"]
    )
    return NodeInfo(**{**raw, "interfaces": interfaces})


def read_state(path: Path) -> LabState | None:
    """The state in ``path``, or None if there is none. A damaged file is a LabError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return LabState.from_json(text, str(path))


def write_state(path: Path, state: LabState) -> None:
    """Replace the state file atomically, so readers never see half of it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(state.to_json(), encoding="utf-8")
    os.replace(tmp, path)


def remove_state(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True
