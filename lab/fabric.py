"""The lab's fabric as a controller sees it, for the demo and ``srv6lab lab install`` /
``lab pingall``: compile every switch's SRv6 rules and install them over P4Runtime from the
lab's switches.json, and check that every link passes packets both ways and every host
reaches every other host."""

from __future__ import annotations

import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from controller.topology import Interface, Topology


def program_fabric(topo: Topology, inventory: Path) -> tuple[int, float]:
    """Compile every switch's rules and install them; (entries written, seconds)."""
    import asyncio

    from controller.compiler import compile_network, entities
    from controller.southbound import load_inventory
    from controller.southbound.install import install_all

    started = time.monotonic()
    compiled = {name: entities(rules) for name, rules in compile_network(topo).items()}
    installed = asyncio.run(install_all(load_inventory(inventory), compiled))
    return sum(i.entries for i in installed), time.monotonic() - started


def ping_all(topo: Topology, netns: dict[str, str]) -> list[tuple[str, str, bool]]:
    pairs = [(a, b) for a in topo.hosts for b in topo.hosts if a is not b]

    def ping(pair: tuple[Any, Any]) -> tuple[str, str, bool]:
        src, dst = pair
        proc = subprocess.run(
            ["ip", "netns", "exec", netns[src.name], "ping", "-6", "-n", "-q", "-c1", "-W2",
             str(dst.address)],
            capture_output=True, text=True, check=False, timeout=30,
        )  # fmt: skip
        return src.name, dst.name, proc.returncode == 0

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(ping, pairs))


def check_links(topo: Topology, netns: dict[str, str]) -> list[tuple[Interface, Interface, bool]]:
    pairs = [(link.a, link.b) for link in topo.links] + [(link.b, link.a) for link in topo.links]

    def ping(pair: tuple[Interface, Interface]) -> tuple[Interface, Interface, bool]:
        here, there = pair
        proc = subprocess.run(
            ["ip", "netns", "exec", netns[here.node], "ping", "-6", "-n", "-q", "-c1", "-W2",
             f"{there.link_local}%{here.name}"],
            capture_output=True, text=True, check=False, timeout=30,
        )  # fmt: skip
        return here, there, proc.returncode == 0

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(ping, pairs))
