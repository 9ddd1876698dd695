"""Which switches a controller programs, and how to reach them.

The lab writes ``<run dir>/switches.json`` (see lab/switchd_nodes.py); anyone can write the
same format by hand for switches outside a lab::

    {"switches": [{"name": "s1", "device_id": 1, "p4runtime": "127.0.0.1:9559"}, ...]}

Other keys per switch (``gnmi``, ``ports``, ``netns``, ``log``, ``kind``) are allowed and
kept. A bad file is rejected whole with an error naming the file and the field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_KNOWN = {"name", "device_id", "p4runtime", "gnmi", "ports", "netns", "log", "kind"}


class InventoryError(ValueError):
    """The switch inventory file is unreadable or invalid."""


@dataclass(frozen=True, slots=True)
class SwitchAddress:
    name: str
    device_id: int
    p4runtime: str
    gnmi: str | None = None
    kind: str = "kernel"
    """kernel (switchd) or bmv2: BMv2 also needs the program's JSON with the pipeline."""


def load_inventory(path: str | Path) -> list[SwitchAddress]:
    p = Path(path)
    try:
        data: Any = json.loads(p.read_text())
    except OSError as exc:
        raise InventoryError(f"{p}: cannot read: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise InventoryError(f"{p}:{exc.lineno}: not JSON: {exc.msg}") from None
    if not isinstance(data, dict) or not isinstance(data.get("switches"), list):
        raise InventoryError(f"{p}: expected an object with a list 'switches'")
    out: list[SwitchAddress] = []
    problems: list[str] = []
    seen: set[str] = set()
    for i, item in enumerate(data["switches"]):
        where = f"{p}: switches[{i}]"
        if not isinstance(item, dict):
            problems.append(f"{where}: must be an object")
            continue
        for key in sorted(set(item) - _KNOWN):
            problems.append(f"{where}.{key}: unknown key")
        name, device_id, address = item.get("name"), item.get("device_id"), item.get("p4runtime")
        if not isinstance(name, str) or not name:
            problems.append(f"{where}.name: must be a non-empty string")
            continue
        if name in seen:
            problems.append(f"{where}.name: duplicate switch {name!r}")
        seen.add(name)
        if isinstance(device_id, bool) or not isinstance(device_id, int) or device_id < 0:
            problems.append(f"{where}.device_id: must be a non-negative integer")
            continue
        if not isinstance(address, str) or not address:
            problems.append(f"{where}.p4runtime: must be an address (HOST:PORT or unix:/PATH)")
            continue
        gnmi = item.get("gnmi")
        kind = item.get("kind", "kernel")
        if kind not in ("kernel", "bmv2"):
            problems.append(f"{where}.kind: must be kernel or bmv2, not {kind!r}")
            continue
        out.append(
            SwitchAddress(name, device_id, address, gnmi if isinstance(gnmi, str) else None, kind)
        )
    if problems:
        raise InventoryError("\n".join(problems))
    return out
