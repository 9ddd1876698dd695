"""The switch inventory (switches.json): what the lab writes loads, bad files name the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controller.southbound import InventoryError, SwitchAddress, load_inventory


def test_lab_format_loads(tmp_path: Path) -> None:
    path = tmp_path / "switches.json"
    path.write_text(
        json.dumps(
            {
                "topology": "line-3",
                "switches": [
                    {
                        "name": "s1",
                        "kind": "kernel",
                        "device_id": 1,
                        "p4runtime": "unix:/run/srv6lab/switchd/s1.sock",
                        "gnmi": "unix:/run/srv6lab/switchd/s1.sock",
                        "ports": {"1": "s1-eth1"},
                        "netns": "srv6lab-s1",
                        "log": "/run/srv6lab/switchd/s1.log",
                    }
                ],
            }
        )
    )
    assert load_inventory(path) == [
        SwitchAddress(
            "s1", 1, "unix:/run/srv6lab/switchd/s1.sock", "unix:/run/srv6lab/switchd/s1.sock"
        )
    ]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{", "not JSON"),
        ('{"switches": {}}', "expected an object with a list 'switches'"),
        ('{"switches": [{"name": "s1", "device_id": -1, "p4runtime": "x"}]}', "device_id"),
        ('{"switches": [{"name": "s1", "device_id": 1}]}', "switches[0].p4runtime"),
        ('{"switches": [{"name": "s1", "device_id": 1, "p4runtime": "x", "colour": 1}]}',
         "switches[0].colour: unknown key"),
        ('{"switches": [{"name": "s1", "device_id": 1, "p4runtime": "x"},'
         ' {"name": "s1", "device_id": 2, "p4runtime": "y"}]}', "duplicate switch 's1'"),
    ],
)  # fmt: skip
def test_bad_inventory_names_file_and_field(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "switches.json"
    path.write_text(content)
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    assert str(path) in str(info.value) and expected in str(info.value)
