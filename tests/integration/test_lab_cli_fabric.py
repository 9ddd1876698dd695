"""`srv6lab lab install` and `srv6lab lab pingall` on a running lab, as an engineer types
them: before the install no host reaches another; after it, all do."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.root


def test_install_then_pingall(cli: Any, private_netns: str) -> None:
    up = cli("lab", "up", "topologies/line-3.yaml", "--detach")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        before = cli("lab", "pingall")
        assert before.returncode == 1
        assert "pingall: 0/2 host pairs reachable" in before.stdout, before.stdout
        install = cli("lab", "install")
        assert install.returncode == 0, install.stderr
        assert "installed" in install.stdout and "into 3 switches" in install.stdout
        after = cli("lab", "pingall")
        assert after.returncode == 0, after.stdout
        assert "pingall: 2/2 host pairs reachable" in after.stdout
    finally:
        down = cli("lab", "down")
    assert down.returncode == 0, down.stderr
