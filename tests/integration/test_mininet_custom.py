"""mininet/srv6lab.py as ``mn --custom`` loads it: executed without ``__file__``, it exposes
the ``srv6lab`` topology and the ``kernel`` switch kind, and Mininet builds the lab with
them (no controller, no Open vSwitch)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mininet.net import Mininet

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("private_netns")]

ROOT = Path(__file__).resolve().parents[2]
CUSTOM = ROOT / "mininet" / "srv6lab.py"


@pytest.fixture(scope="module")
def customs() -> dict[str, Any]:
    # What mn's --custom does: exec the file in a fresh dict (it has no __file__ there).
    namespace: dict[str, Any] = {}
    exec(compile(CUSTOM.read_text(), str(CUSTOM), "exec"), namespace, namespace)
    return namespace


def test_exposes_topologies_switch_kinds_and_hosts(customs: dict[str, Any]) -> None:
    assert set(customs["topos"]) == {"srv6lab"}
    assert set(customs["switches"]) == {"kernel", "bmv2"}
    assert set(customs["hosts"]) == {"srv6lab"}
    assert not (ROOT / "mininet" / "__init__.py").exists()


@pytest.fixture
def plain_mininet(customs: dict[str, Any]) -> Iterator[Any]:
    # As `mn --topo srv6lab,topologies/line-3.yaml --switch kernel --controller none` does.
    topo = customs["topos"]["srv6lab"](str(ROOT / "topologies" / "line-3.yaml"))
    net = Mininet(topo=topo, switch=customs["switches"]["kernel"], controller=None, build=False)
    try:
        net.build()
        net.start()
        yield net
    finally:
        net.stop()


def test_plain_mininet_builds_the_lab(plain_mininet: Any) -> None:
    s1, h1 = plain_mininet["s1"], plain_mininet["h1"]
    assert "rc=0" in s1.cmd("ping -6 -n -q -c1 -W2 fe80::53:2:1%s1-eth2; echo rc=$?")
    assert "rc=0" in h1.cmd("ping -6 -n -q -c1 -W2 fe80::53:1:1%h1-eth0; echo rc=$?")
    assert "default via fe80::53:1:1 dev h1-eth0" in h1.cmd("ip -6 route")
    assert h1.IP() == "2001:db8:1::1"  # so that Mininet's CLI can say: h1 ping -6 h2
    assert "inet " not in h1.cmd("ip -4 addr show dev h1-eth0")
