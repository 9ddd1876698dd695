"""Fault scenario files: at time t (seconds from the start), fail or restore something.

::

    # topologies don't change; faults do
    - {at: 1.0, fail: [agg1, core1], kind: admin}
    - {at: 1.5, fail: [core2], kind: switch}
    - {at: 3.0, restore: [agg1, core1]}
    - {at: 4.0, restore: all}

Validation is strict and whole, like topology files: unknown keys, wrong types, steps out
of time order, unknown nodes or links, a restore of something not failed at that point,
a second failure of what is already failed; every problem is reported with
``file:line: field: message`` and nothing runs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller.topology import Topology
from controller.topology.yamlsrc import Document, Problem, parse
from lab.faults import KINDS, Fault

ALL = "all"
STEP_KEYS = ("at", "fail", "kind", "restore")


class ScenarioError(ValueError):
    """A scenario file is invalid. ``problems`` lists every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        head = f"{len(problems)} problems in scenario" if len(problems) > 1 else "bad scenario"
        super().__init__(head + ":\n" + "\n".join(f"  {p}" for p in problems))


@dataclass(frozen=True, slots=True)
class Step:
    at: float
    action: str
    """``fail`` or ``restore``."""
    target: tuple[str, ...]
    """Nodes; empty for ``restore: all``."""
    kind: str | None = None
    index: int = 0
    """Its position in the file (for error messages)."""

    def describe(self) -> str:
        what = "-".join(self.target) if self.target else ALL
        kind = f" ({self.kind})" if self.kind else ""
        return f"{self.action} {what}{kind}"


def load_scenario(path: str | Path, topology: Topology | None = None) -> list[Step]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError([Problem(str(p), None, (), f"cannot read: {exc.strerror}")]) from None
    except UnicodeDecodeError:
        raise ScenarioError([Problem(str(p), None, (), "not a UTF-8 text file")]) from None
    return loads_scenario(text, str(p), topology)


def loads_scenario(
    text: str, source: str = "<string>", topology: Topology | None = None
) -> list[Step]:
    """Parse and validate; with ``topology`` also check nodes, links and what is failed
    when. Raises :class:`ScenarioError` with every problem."""
    doc = parse(text, source)
    if doc.problems:
        raise ScenarioError(doc.problems)
    steps = _steps(doc)
    if not doc.problems and topology is not None:
        _check_against(doc, steps, topology)
    if doc.problems:
        raise ScenarioError(doc.problems)
    return steps


def _steps(doc: Document) -> list[Step]:
    if not isinstance(doc.data, list):
        doc.problem((), "a scenario is a list of steps ({at: SECONDS, fail: [X, Y], kind: K})")
        return []
    if not doc.data:
        doc.problem((), "the scenario has no steps")
    steps: list[Step] = []
    previous = 0.0
    for i, raw in enumerate(doc.data):
        where = (i,)
        if not isinstance(raw, dict):
            doc.problem(where, f"a step is a mapping with keys {', '.join(STEP_KEYS)}")
            continue
        for key in raw:
            if key not in STEP_KEYS:
                doc.problem((i, key), f"unknown key; allowed: {', '.join(STEP_KEYS)}")
        at = raw.get("at")
        if "at" not in raw:
            doc.problem(where, "missing 'at' (seconds from the start)")
            continue
        if isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at):
            doc.problem((i, "at"), f"must be a number of seconds, not {at!r}")
            continue
        if at < 0:
            doc.problem((i, "at"), f"must be 0 or more, not {at}")
            continue
        if at < previous:
            doc.problem((i, "at"), f"{at} is before the previous step's {previous}: keep order")
        previous = max(previous, float(at))
        has_fail, has_restore = "fail" in raw, "restore" in raw
        if has_fail == has_restore:
            doc.problem(where, "a step has exactly one of 'fail' or 'restore'")
            continue
        if has_fail:
            kind = raw.get("kind")
            if kind is None:
                doc.problem(where, f"'fail' needs 'kind': one of {', '.join(KINDS)}")
                continue
            if kind not in KINDS:
                doc.problem((i, "kind"), f"unknown kind {kind!r}; kinds: {', '.join(KINDS)}")
                continue
            target = _nodes(doc, (i, "fail"), raw["fail"])
            if target is None:
                continue
            want = 1 if kind == "switch" else 2
            if len(target) != want:
                what = "one switch" if want == 1 else "the two ends of a link"
                doc.problem((i, "fail"), f"kind {kind} fails {what}, got {len(target)} names")
                continue
            steps.append(Step(float(at), "fail", target, kind, i))
        else:
            if "kind" in raw:
                doc.problem((i, "kind"), "'kind' belongs to 'fail' steps only")
                continue
            value = raw["restore"]
            if value == ALL:
                steps.append(Step(float(at), "restore", (), None, i))
                continue
            target = _nodes(doc, (i, "restore"), value)
            if target is None:
                continue
            if len(target) not in (1, 2):
                doc.problem((i, "restore"), "names a link [X, Y], a switch [X] or 'all'")
                continue
            steps.append(Step(float(at), "restore", target, None, i))
    return steps


def _nodes(doc: Document, path: tuple[str | int, ...], value: Any) -> tuple[str, ...] | None:
    if not isinstance(value, list) or not value:
        doc.problem(path, f"must be a list of node names such as [agg1, core1], not {value!r}")
        return None
    bad = [v for v in value if not isinstance(v, str)]
    if bad:
        doc.problem(path, f"node names are strings, not {bad[0]!r}")
        return None
    if len(set(value)) != len(value):
        doc.problem(path, "names a node twice")
        return None
    return tuple(value)


def _check_against(doc: Document, steps: list[Step], topo: Topology) -> None:
    known = {s.name for s in topo.switches} | {h.name for h in topo.hosts}
    active: dict[frozenset[str], Step] = {}
    for step in steps:
        path: tuple[str | int, ...] = (step.index, step.action)
        unknown = [n for n in step.target if n not in known]
        if unknown:
            doc.problem(path, f"no node {unknown[0]!r} in topology {topo.name}")
            continue
        key = frozenset(step.target)
        if step.action == "fail":
            if step.kind == "switch" and not topo.is_switch(step.target[0]):
                doc.problem(path, f"{step.target[0]} is a host; kind switch fails a switch")
                continue
            if step.kind != "switch":
                try:
                    topo.link(*step.target)
                except KeyError:
                    doc.problem(path, f"no link {'-'.join(step.target)} in topology {topo.name}")
                    continue
            if key in active:
                doc.problem(path, f"{'-'.join(step.target)} is already failed at {step.at:g} s")
                continue
            active[key] = step
        elif not step.target:
            active.clear()
        elif key not in active:
            doc.problem(path, f"{'-'.join(step.target)} is not failed at {step.at:g} s")
        else:
            del active[key]


# -- running one ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepResult:
    step: Step
    faults: list[Fault]
    """The fault failed, or the faults restored."""


def run_scenario(
    steps: list[Step],
    do_fail: Callable[[str, tuple[str, ...]], Fault],
    do_restore: Callable[[tuple[str, ...] | None], list[Fault]],
    on_step: Callable[[float, Step, list[Fault]], None] | None = None,
    start: float | None = None,
) -> list[StepResult]:
    """Run each step at its time (seconds after ``start``, a ``time.monotonic()``; now if
    None) through ``do_fail(kind, target)`` and ``do_restore(target or None)``."""
    t0 = time.monotonic() if start is None else start
    results = []
    for step in steps:
        delay = t0 + step.at - time.monotonic()
        if delay > 0:
            time.sleep(delay)  # the step's time is the condition waited for
        if step.action == "fail":
            assert step.kind is not None
            faults = [do_fail(step.kind, step.target)]
        else:
            faults = do_restore(step.target or None)
        results.append(StepResult(step, faults))
        if on_step is not None:
            on_step(time.monotonic() - t0, step, faults)
    return results
