"""Every validation error names file, line and field, and a bad file is rejected whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.topology import TopologyError, load, loads

GOOD = """\
name: t
switches:
  - {name: s1, id: 1}
  - {name: s2, id: 2}
hosts:
  - {name: h1, nics: [s1]}
links:
  - {ends: [s1, s2], bandwidth: 100}
"""


def errors_of(text: str) -> list[str]:
    with pytest.raises(TopologyError) as info:
        loads(text, "t.yaml")
    return [str(p) for p in info.value.problems]


def test_good_file_loads() -> None:
    assert loads(GOOD, "t.yaml").name == "t"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD.replace("name: t", "name: t\ncolour: red"), "t.yaml:2: colour: unknown key 'colour'"),
        (
            GOOD.replace("{name: s2, id: 2}", "{name: s2, id: 2, plnae: 1}"),
            "t.yaml:4: switches[1].plnae: unknown key 'plnae' (did you mean 'plane'?)",
        ),
        (
            GOOD.replace("{name: s2, id: 2}", "{name: s1, id: 2}"),
            "t.yaml:4: switches[1].name: duplicate switch name 's1' (first at line 3)",
        ),
        (
            GOOD.replace("{name: s2, id: 2}", "{name: s2, id: 1}"),
            "t.yaml:4: switches[1].id: duplicate node id 1 (first at line 3)",
        ),
        (
            GOOD.replace("{name: s2, id: 2}", "{name: s2, id: 0xE001}"),
            "t.yaml:4: switches[1].id: node id 57345 is out of range 1..57343",
        ),
        (
            GOOD.replace("{name: s2, id: 2}", "{name: s2, id: two}"),
            "t.yaml:4: switches[1].id: node id must be an integer, got a string 'two'",
        ),
        (
            GOOD.replace("ends: [s1, s2]", "ends: [s1, s9]"),
            "t.yaml:8: links[0].ends[1]: link end 's9' is not a switch",
        ),
        (
            GOOD.replace("ends: [s1, s2]", "ends: [s1, s1]"),
            "t.yaml:8: links[0].ends: self-loop: both ends are 's1'",
        ),
        (
            GOOD.replace("bandwidth: 100", "bandwidth: -5"),
            "t.yaml:8: links[0].bandwidth: bandwidth -5 Mbit/s must be above 0",
        ),
        (
            GOOD.replace("bandwidth: 100", "bandwidth: fast"),
            "t.yaml:8: links[0].bandwidth: bandwidth must be a number of Mbit/s, got a string",
        ),
        (
            GOOD.replace("{name: h1, nics: [s1]}", "{name: h1, nics: []}"),
            "t.yaml:6: hosts[0].nics: a host needs at least one NIC",
        ),
        (
            GOOD.replace("{name: h1, nics: [s1]}", "{name: h1}"),
            "t.yaml:6: hosts[0]: missing required key 'nics'",
        ),
        (
            GOOD.replace("{name: h1, nics: [s1]}", "{name: h1, nics: [s7]}"),
            "t.yaml:6: hosts[0].nics[0]: NIC attaches to unknown switch 's7'",
        ),
        (
            GOOD.replace("{name: h1, nics: [s1]}", "{name: s2, nics: [s1]}"),
            "'s2' is both a switch and a host",
        ),
        (
            GOOD + "  - {ends: [s2, s1]}\n",
            "t.yaml:9: links[1]: a second link between s2 and s1 (first at line 8)",
        ),
        (GOOD.replace("name: t\n", "name: t\nname: u\n"), "t.yaml:2: name: duplicate key"),
        (GOOD.replace("s1, id: 1", "s1-x, id: 1"), "switches[0].name: name 's1-x' must start"),
        (
            GOOD.replace("name: t", "name: t\naddressing: {usid_block: 'fcbb::/16'}"),
            "t.yaml:2: addressing.usid_block: must be a /32, got /16",
        ),
        ("name: t\nswitches: [\n", "t.yaml:3: (top level): YAML syntax error"),
        ("", "t.yaml: (top level): the file is empty"),
        ("- a\n- b\n", "t.yaml:1: (top level): must be a mapping, got a list"),
    ],
)
def test_error_names_file_line_and_field(text: str, expected: str) -> None:
    errors = errors_of(text)
    assert any(expected in e for e in errors), errors


def test_every_problem_is_reported_at_once() -> None:
    text = GOOD.replace("ends: [s1, s2]", "ends: [s1, s9]").replace("id: 2", "id: 1")
    errors = errors_of(text)
    assert len(errors) == 2, errors


def test_long_interface_name_is_rejected() -> None:
    text = GOOD.replace("s2", "averyverylongname")
    errors = errors_of(text)
    assert any("longer than 15 characters" in e for e in errors), errors


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(TopologyError) as info:
        load(tmp_path / "nope.yaml")
    assert "nope.yaml: (top level): cannot read" in str(info.value)


def test_cli_check_reports_errors_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lab.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("ends: [s1, s2]", "ends: [s1, s9]"))
    assert main(["topology", "check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:8: links[0].ends[1]" in err
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    assert main(["topology", "check", str(good)]) == 0
    assert "ok: t: 2 switches, 1 hosts" in capsys.readouterr().out


@pytest.mark.parametrize("fmt", ["text", "json", "dot"])
def test_cli_show_formats(fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from lab.cli import main

    root = Path(__file__).resolve().parents[2]
    assert main(["topology", "show", str(root / "topologies/line-3.yaml"), "--format", fmt]) == 0
    out = capsys.readouterr().out
    if fmt == "json":
        assert json.loads(out)["switches"][0]["locator"] == "fcbb:bb00:1::/48"
    elif fmt == "dot":
        assert out.startswith('graph "line-3"')
    else:
        assert "fcbb:bb00:2::/48" in out


def test_two_nics_with_one_prefix_are_rejected() -> None:
    text = GOOD.replace(
        "  - {name: h1, nics: [s1]}",
        "  - {name: h1, nics: [{switch: s1, prefix: '2001:db8:9::/64'}]}\n"
        "  - {name: h2, nics: [{switch: s2, prefix: '2001:db8:9::/64'}]}",
    )
    errors = errors_of(text)
    assert any("prefix 2001:db8:9::/64 of h2 NIC 0 overlaps" in e and "of h1 NIC 0" in e
               for e in errors), errors  # fmt: skip
