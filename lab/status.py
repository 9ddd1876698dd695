"""What the running lab looks like now: each node's interfaces with their operational state,
MAC and addresses as the kernel reports them (``ip -j addr show`` in each namespace), and
each link with the state of its two ends. Rendered as text for people or JSON for scripts.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import asdict, dataclass
from typing import Any

from lab.errors import LabError
from lab.state import LabState


@dataclass(frozen=True, slots=True)
class LiveInterface:
    name: str
    state: str
    mac: str
    addresses: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LiveNode:
    name: str
    kind: str
    pid: int
    netns: str
    interfaces: tuple[LiveInterface, ...]


@dataclass(frozen=True, slots=True)
class LiveLink:
    name: str
    a: str
    a_state: str
    b: str
    b_state: str
    bandwidth_mbps: float


def collect(state: LabState) -> tuple[list[LiveNode], list[LiveLink]]:
    names = sorted(state.nodes, key=lambda n: (state.nodes[n].kind != "switch", natural_key(n)))
    nodes = [_live_node(state, name) for name in names]
    by_end = {f"{n.name}:{i.name}": i.state for n in nodes for i in n.interfaces}
    links = [
        LiveLink(
            link.name,
            link.a,
            by_end.get(link.a, "MISSING"),
            link.b,
            by_end.get(link.b, "MISSING"),
            link.bandwidth_mbps,
        )
        for link in state.links
    ]
    return nodes, links


def _live_node(state: LabState, name: str) -> LiveNode:
    info = state.nodes[name]
    proc = subprocess.run(
        ["ip", "-n", info.netns, "-j", "addr", "show"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise LabError(f"reading the interfaces of {name} ({info.netns}): {proc.stderr.strip()}")
    raw: list[dict[str, Any]] = json.loads(proc.stdout or "[]")
    interfaces = tuple(
        LiveInterface(
            name=entry["ifname"],
            state=entry.get("operstate", "UNKNOWN"),
            mac=entry.get("address", ""),
            addresses=tuple(
                f"{a['local']}/{a['prefixlen']}" for a in entry.get("addr_info", []) if "local" in a
            ),
        )
        for entry in raw
        if entry.get("ifname") != "lo"
    )
    kind = info.kind if info.switch_kind is None else f"{info.kind} ({info.switch_kind})"
    return LiveNode(name, kind, info.pid, info.netns, interfaces)


def render_text(state: LabState, nodes: list[LiveNode], links: list[LiveLink]) -> str:
    lines = [
        f"lab {state.topology} ({state.topology_path}): {state.summary()}, "
        f"switch kind {state.switch_kind}, pid {state.pid}, ready in {state.ready_seconds} s",
        "",
        "nodes:",
    ]
    for node in nodes:
        lines.append(f"  {node.name:<10} {node.kind:<17} pid {node.pid:<8} netns {node.netns}")
        for intf in node.interfaces:
            addrs = " ".join(intf.addresses) or "-"
            lines.append(f"    {intf.name:<14} {intf.state:<6} {intf.mac:<18} {addrs}")
    lines += ["", "links:"]
    width = max((len(link.a) for link in links), default=0)
    for link in links:
        lines.append(
            f"  {link.name:<16} {link.a:<{width}} {link.a_state:<6} <-> "
            f"{link.b:<{width}} {link.b_state:<6} {link.bandwidth_mbps:g} Mbit/s"
        )
    return "\n".join(lines)


def render_json(state: LabState, nodes: list[LiveNode], links: list[LiveLink]) -> str:
    return json.dumps(
        {
            "topology": state.topology,
            "topology_path": state.topology_path,
            "switch_kind": state.switch_kind,
            "pid": state.pid,
            "ready_seconds": state.ready_seconds,
            "nodes": [asdict(n) for n in nodes],
            "links": [asdict(link) for link in links],
        },
        indent=2,
    )


def natural_key(name: str) -> tuple[Any, ...]:
    """Sort s2 before s10."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))
