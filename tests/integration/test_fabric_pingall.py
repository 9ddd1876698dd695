"""fat-tree-4 end to end: the lab starts switchd on every switch, the SRv6 compiler's fabric
is installed over P4Runtime from the lab's switches.json, and every host reaches every other
host over IPv6 (240 pairs)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from controller.topology import Topology
from lab.fabric import ping_all, program_fabric
from lab.session import running_lab

pytestmark = pytest.mark.root


def test_fat_tree_4_pingall_after_install(
    topology: Callable[[str], Topology], private_netns: str
) -> None:
    topo = topology("fat-tree-4")
    with running_lab(topo) as lab:
        netns = {name: info.netns for name, info in lab.state.nodes.items()}
        entries, _ = program_fabric(topo, lab.run.path / "switches.json")
        assert entries > 0
        pairs = ping_all(topo, netns)
    failed = [(a, b) for a, b, ok in pairs if not ok]
    assert len(pairs) == 16 * 15
    assert not failed, f"unreachable: {failed[:10]}"
