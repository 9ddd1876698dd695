"""The folders mininet/ and p4/ must never shadow the real ``mininet`` and ``p4`` packages.

The check runs in a fresh interpreter whose first sys.path entry is the repository root,
the worst case (``python -m pytest`` from the checkout does exactly that).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import importlib.util, json, sys
sys.path.insert(0, {root!r})
out = {{}}
for name in ("mininet", "p4"):
    spec = importlib.util.find_spec(name)
    if spec is None:
        out[name] = None
    else:
        out[name] = {{"origin": spec.origin,
                      "locations": list(spec.submodule_search_locations or [])}}
print(json.dumps(out))
"""


SHELL_PYTHON = ROOT / ".venv-p4runtime-shell" / "bin" / "python"


def _resolve(python: str = sys.executable) -> dict[str, dict[str, object] | None]:
    proc = subprocess.run(
        [python, "-c", PROBE.format(root=str(ROOT))],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    result: dict[str, dict[str, object] | None] = json.loads(proc.stdout)
    return result


def test_no_init_in_mininet_and_p4() -> None:
    assert not (ROOT / "mininet" / "__init__.py").exists()
    assert not (ROOT / "p4" / "__init__.py").exists()


def test_mininet_resolves_outside_the_repository() -> None:
    found = _resolve()["mininet"]
    assert found is not None, "the mininet package is not installed"
    origin = Path(str(found["origin"])).resolve()
    assert origin.name == "__init__.py"
    assert not origin.is_relative_to(ROOT / "mininet"), origin


def test_p4_resolves_outside_the_repository() -> None:
    """The p4runtime wheel (package ``p4``) lives in p4runtime-shell's environment, which
    the bootstrap makes; our own .venv has no ``p4`` (finsy provides the bindings)."""
    if not SHELL_PYTHON.exists():
        pytest.skip("no environment with the p4 package: bash scripts/bootstrap.sh setup")
    found = _resolve(str(SHELL_PYTHON))["p4"]
    assert found is not None and found["origin"] is not None, found
    origin = Path(str(found["origin"])).resolve()
    assert origin.name == "__init__.py"
    assert not origin.is_relative_to(ROOT / "p4"), origin
