"""`srv6lab lab up --switch bmv2` fails at once, naming what is missing, where BMv2 is not
installed (it is in no registry); nothing starts."""

from __future__ import annotations

import os
import shutil
from typing import Any

import pytest

pytestmark = pytest.mark.root


def test_bmv2_kind_without_bmv2_fails_at_once(
    cli: Any, leftovers: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which("simple_switch_grpc") or os.environ.get("SRV6LAB_BMV2_PREFIX"):
        monkeypatch.setenv("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        monkeypatch.delenv("SRV6LAB_BMV2_PREFIX", raising=False)
    proc = cli("lab", "up", "topologies/line-3.yaml", "--switch", "bmv2", "--detach")
    assert proc.returncode == 1
    assert "switch kind bmv2 needs simple_switch_grpc, which is not on PATH" in proc.stderr
    leftovers.assert_none(timeout=0)
