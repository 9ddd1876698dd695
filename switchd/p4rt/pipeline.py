"""The forwarding pipeline: which P4Info switchd accepts, and keeping the committed one.

switchd implements one program, ``p4/srv6.p4``, so SetForwardingPipelineConfig accepts only
that program's P4Info (``p4/build/srv6.p4info.txtpb``, compiled by p4c) and answers any other
with the differences, named: ``table IngressPipeImpl.routing_v6: missing``, ``action X param
Y: bitwidth 16, expected 9``. Documentation, annotations and source locations do not count.

The committed pipeline is kept in the state directory, so a restarted switchd serves it again
and recovers its entries from the kernel (forwarding never stops).
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any, cast

from finsy import pbutil
from finsy.proto import p4i, p4r

import switchd

log = logging.getLogger("switchd.pipeline")

DEFAULT_P4INFO_PATH = (
    Path(switchd.__file__).resolve().parents[1] / "p4" / "build" / ("srv6.p4info.txtpb")
)
"""srv6.p4's P4Info in this checkout: the only P4Info switchd accepts by default."""

_IGNORED_FIELDS = frozenset(
    {"doc", "annotations", "annotation_locations", "structured_annotations", "source_location"}
)

# Top-level P4Info lists whose elements have a preamble: (field, how a difference names one).
_ENTITY_LISTS = (
    ("tables", "table"),
    ("actions", "action"),
    ("action_profiles", "action profile"),
    ("counters", "counter"),
    ("direct_counters", "direct counter"),
    ("meters", "meter"),
    ("direct_meters", "direct meter"),
    ("controller_packet_metadata", "controller packet metadata"),
    ("value_sets", "value set"),
    ("registers", "register"),
    ("digests", "digest"),
)

# How a difference names an element of a nested list.
_ELEMENT_LABELS = {
    "match_fields": "match field",
    "action_refs": "action ref",
    "params": "param",
    "metadata": "metadata",
    "instances": "instance",
}

# Lists whose order carries no meaning.
_UNORDERED = frozenset({"table_ids", "direct_resource_ids"})


def load_p4info(path: Path) -> p4i.P4Info:
    """Read a P4Info file: text format (.txtpb, .txt, .pbtxt), JSON (.json) or binary."""
    if path.suffix in (".txtpb", ".txt", ".pbtxt", ".json"):
        return pbutil.from_text(path.read_text(), p4i.P4Info)
    return cast(p4i.P4Info, p4i.P4Info.FromString(path.read_bytes()))


def p4info_differences(expected: p4i.P4Info, given: p4i.P4Info) -> list[str]:
    """What differs between the P4Info switchd implements and a given one (empty: same).

    Objects are matched by name; a reference to another object (a table's actions and
    implementation, a counter's table ...) is compared by the name it resolves to, so that one
    changed id is reported once, on the object that has it."""
    diff = _Diff(_names(expected), _names(given))
    if expected.pkg_info.arch != given.pkg_info.arch:
        diff.out.append(
            f"pkg_info: arch {given.pkg_info.arch!r}, expected {expected.pkg_info.arch!r}"
        )
    for field, label in _ENTITY_LISTS:
        diff.keyed(
            label,
            {e.preamble.name: e for e in getattr(expected, field)},
            {e.preamble.name: e for e in getattr(given, field)},
        )
    diff.keyed(
        "extern",
        {e.extern_type_name: e for e in expected.externs},
        {e.extern_type_name: e for e in given.externs},
    )
    if _normalised(expected.type_info) != _normalised(given.type_info):
        diff.out.append("type_info: differs (user-defined types, enums or errors)")
    # Whole objects missing or unexpected first: they explain most of the rest.
    return sorted(diff.out, key=lambda line: not line.endswith(_WHOLE))


def same_p4info(a: p4i.P4Info, b: p4i.P4Info) -> bool:
    return not p4info_differences(a, b)


_WHOLE = (": missing", ": not in the expected P4Info")

# Fields that hold ids of other P4Info objects: compared by the names they resolve to.
_REFERENCES = frozenset(
    {
        "implementation_id",
        "const_default_action_id",
        "direct_table_id",
        "table_ids",
        "direct_resource_ids",
    }
)


def _names(p4info: p4i.P4Info) -> dict[int, str]:
    return {
        e.preamble.id: e.preamble.name for field, _ in _ENTITY_LISTS for e in getattr(p4info, field)
    }


class _Diff:
    def __init__(self, expected_names: dict[int, str], given_names: dict[int, str]) -> None:
        self.expected_names = expected_names
        self.given_names = given_names
        self.out: list[str] = []

    def keyed(self, label: str, expected: dict[Any, Any], given: dict[Any, Any]) -> None:
        for key, exp in expected.items():
            got = given.get(key)
            if got is None:
                self.out.append(f"{label} {key}: missing")
            else:
                self.message(f"{label} {key}", exp, got)
        for key in given:
            if key not in expected:
                self.out.append(f"{label} {key}: not in the expected P4Info")

    def message(self, where: str, exp: Any, got: Any, skip: frozenset[str] = frozenset()) -> None:
        for fd in exp.DESCRIPTOR.fields:
            name = fd.name
            if name in _IGNORED_FIELDS or name in skip:
                continue
            ev, gv = getattr(exp, name), getattr(got, name)
            if fd.message_type is not None and _is_repeated(fd):
                self.elements(where, _ELEMENT_LABELS.get(name, name), list(ev), list(gv))
            elif _is_repeated(fd):
                el, gl = list(ev), list(gv)
                if name in _REFERENCES:
                    el = sorted(self.expected_names.get(i, str(i)) for i in el)
                    gl = sorted(self.given_names.get(i, str(i)) for i in gl)
                if el != gl:
                    self.out.append(f"{where}: {name} {gl}, expected {el}")
            elif fd.message_type is not None:
                if exp.HasField(name) != got.HasField(name):
                    state = "set" if got.HasField(name) else "unset"
                    self.out.append(f"{where}: {name} is {state}, expected the opposite")
                elif exp.HasField(name):
                    self.message(where if name == "preamble" else f"{where} {name}", ev, gv)
            elif name in _REFERENCES:
                en = self.expected_names.get(ev, str(ev)) if ev else "none"
                gn = self.given_names.get(gv, str(gv)) if gv else "none"
                if en != gn:
                    self.out.append(f"{where}: {name} {gn}, expected {en}")
            elif ev != gv:
                self.out.append(f"{where}: {name} {_value(fd, gv)}, expected {_value(fd, ev)}")

    def elements(self, where: str, label: str, ev: list[Any], gv: list[Any]) -> None:
        skip: frozenset[str] = frozenset()
        if label == "action ref":
            # keyed by the action they name, each in its own P4Info's ids (a changed action
            # id is reported on the action)
            expected = {self.expected_names.get(r.id, str(r.id)): r for r in ev}
            given = {self.given_names.get(r.id, str(r.id)): r for r in gv}
            skip = frozenset({"id"})
        else:
            expected, given = _keyed(ev), _keyed(gv)
        for key, exp in expected.items():
            got = given.get(key)
            if got is None:
                self.out.append(f"{where} {label} {key}: missing")
            else:
                self.message(f"{where} {label} {key}", exp, got, skip)
        for key in given:
            if key not in expected:
                self.out.append(f"{where} {label} {key}: not expected")


def _keyed(items: list[Any]) -> dict[Any, Any]:
    """Elements of a repeated message field by their natural key (name, else id, else
    position)."""
    if not items:
        return {}
    fields = {fd.name for fd in items[0].DESCRIPTOR.fields}
    if "preamble" in fields:
        return {i.preamble.name: i for i in items}
    if "name" in fields:
        return {i.name: i for i in items}
    if "id" in fields:
        return {i.id: i for i in items}
    return dict(enumerate(items))


def _is_repeated(fd: Any) -> bool:
    repeated = getattr(fd, "is_repeated", None)
    if isinstance(repeated, bool):
        return repeated
    return bool(fd.label == fd.LABEL_REPEATED)


def _value(fd: Any, value: Any) -> str:
    if fd.enum_type is not None:
        enum_value = fd.enum_type.values_by_number.get(value)
        if enum_value is not None:
            return str(enum_value.name)
    return repr(value) if isinstance(value, str) else str(value)


def _normalised(msg: Any) -> bytes:
    copy = type(msg)()
    copy.CopyFrom(msg)
    _strip(copy)
    data: bytes = copy.SerializeToString(deterministic=True)
    return data


def _strip(msg: Any) -> None:
    for fd, value in msg.ListFields():
        if fd.name in _IGNORED_FIELDS:
            msg.ClearField(fd.name)
        elif fd.message_type is not None:
            if _is_repeated(fd):
                if fd.message_type.GetOptions().map_entry:
                    if fd.message_type.fields_by_name["value"].message_type is not None:
                        for item in value.values():
                            _strip(item)
                else:
                    for item in value:
                        _strip(item)
            else:
                _strip(value)


class PipelineState:
    """The committed pipeline in the state directory (``pipeline.binpb``: a serialized
    p4.v1.ForwardingPipelineConfig). Without a directory nothing is kept."""

    FILENAME = "pipeline.binpb"

    def __init__(self, state_dir: Path | None) -> None:
        self.state_dir = state_dir

    @property
    def path(self) -> Path | None:
        return None if self.state_dir is None else self.state_dir / self.FILENAME

    def load(self) -> p4r.ForwardingPipelineConfig | None:
        path = self.path
        if path is None or not path.exists():
            return None
        try:
            data = path.read_bytes()
            return cast(p4r.ForwardingPipelineConfig, p4r.ForwardingPipelineConfig.FromString(data))
        except Exception as exc:  # a torn or foreign file: start without a pipeline
            log.error("cannot read the saved pipeline %s: %s; starting without one", path, exc)
            return None

    def save(self, config: p4r.ForwardingPipelineConfig) -> None:
        path = self.path
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".pipeline.", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(config.SerializeToString())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def clear(self) -> None:
        path = self.path
        if path is not None:
            path.unlink(missing_ok=True)
