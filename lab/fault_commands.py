"""``srv6lab lab fail``, ``lab restore`` and ``lab scenario``: fault injection on the running
lab (lab/faults.py), from any process; the active faults live in the run directory."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lab.faults import Fault

_KINDS_HELP = """\
failure kinds:
  admin    both ends set administratively down (Mininet's `link X Y down`)
  carrier  Y's end set down; X sees carrier loss
  gray     the link stays up and silently drops everything (nftables netdev ingress,
           both ends): invisible to netlink
  switch   the switch dies: every port of X set down, its neighbours see carrier loss
           (switchd keeps running and re-installs its state when the ports return)

On BMv2 labs, BMv2's own interfaces are never set down (behavioral-model #1215): BMv2 reads
a patch veth bridged to each lab port; a failure downs the lab port and the patch veth's far
end, so BMv2 sees carrier loss.
"""

_SCENARIO_HELP = """\
a scenario file is a YAML list of steps, times in seconds from the start:
  - {at: 1.0, fail: [agg1, core1], kind: admin}
  - {at: 1.5, fail: [core2], kind: switch}
  - {at: 3.0, restore: [agg1, core1]}
  - {at: 4.0, restore: all}
"""


def register(lsub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    fail = lsub.add_parser(
        "fail",
        help="fail a link (X Y) or a switch (X --kind switch) of the running lab",
        description="Fail the link between X and Y, or the switch X with --kind switch, in "
        "the running lab, and record it in the run directory so that `srv6lab lab restore` "
        "undoes it from any shell. Prints when it happened (CLOCK_MONOTONIC and wall time).",
        epilog=_KINDS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fail.add_argument("nodes", nargs="+", metavar="NODE", help="X Y (a link) or X (a switch)")
    fail.add_argument(
        "--kind",
        default="admin",
        choices=("admin", "carrier", "gray", "switch"),
        help="failure kind (default: admin)",
    )
    fail.set_defaults(func=_fail)

    restore = lsub.add_parser(
        "restore",
        help="undo a failure (X Y, or X for a switch), or every active failure",
        description="Undo what `srv6lab lab fail` did: ports up with their plan link-local "
        "addresses (and a host's routes) put back, nftables drops removed, a frozen BMv2 "
        "resumed; waits until the ports are up. Without NODE, restores every active failure.",
    )
    restore.add_argument("nodes", nargs="*", metavar="NODE", help="X Y, X, or nothing for all")
    restore.set_defaults(func=_restore)

    scenario = lsub.add_parser(
        "scenario",
        help="run a fault scenario file (at time t, fail or restore something)",
        description="Validate FILE against the running lab's topology (every problem is "
        "reported as file:line: field: message and nothing runs), then run its steps at "
        "their times, printing each as it happens. Whatever is still failed at the end "
        "stays failed (see `srv6lab lab restore`).",
        epilog=_SCENARIO_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    scenario.add_argument("file", metavar="FILE", help="scenario YAML file")
    scenario.add_argument(
        "--check", action="store_true", help="only validate FILE against the running lab"
    )
    scenario.set_defaults(func=_scenario)


def _error(text: str) -> None:
    print(f"error: {text}", file=sys.stderr)


def _stamp_text(fault: Fault, restored: bool = False) -> str:
    stamp = fault.restored if restored else fault.injected
    done = fault.restore_done if restored else fault.applied
    if stamp is None or done is None:
        return ""
    wall = time.strftime("%H:%M:%S", time.localtime(stamp.wall_ns / 1e9))
    frac = f"{stamp.wall_ns % 1_000_000_000 / 1e9:.6f}"[1:]
    took = (done.monotonic_ns - stamp.monotonic_ns) / 1e6
    return f"at {wall}{frac} (monotonic {stamp.monotonic_ns} ns), took {took:.1f} ms"


def _fail(args: argparse.Namespace) -> int:
    from lab.errors import LabError
    from lab.faults import fail, lab_view
    from lab.runtime import RunDir

    run = RunDir.from_env()
    try:
        fault = fail(run, lab_view(run), args.kind, args.nodes)
    except LabError as exc:
        _error(str(exc))
        return 1
    print(f"{fault.kind} failure of {fault.place}: {fault.models}")
    print(f"  {_stamp_text(fault)}")
    print(f"  undo with: srv6lab lab restore {' '.join(fault.target)}")
    return 0


def _restore(args: argparse.Namespace) -> int:
    from lab.errors import LabError
    from lab.faults import lab_view, restore
    from lab.runtime import RunDir

    if len(args.nodes) > 2:
        _error("restore takes X Y (a link), X (a switch) or nothing (everything)")
        return 2
    run = RunDir.from_env()
    try:
        done = restore(run, lab_view(run), args.nodes or None)
    except LabError as exc:
        _error(str(exc))
        return 1
    if not done:
        print("no active failures")
    for fault in done:
        print(f"restored {fault.kind} failure of {fault.place} {_stamp_text(fault, True)}")
    return 0


def _scenario(args: argparse.Namespace) -> int:
    from lab.errors import LabError
    from lab.faults import fail, lab_view, restore
    from lab.runtime import RunDir
    from lab.scenario import ScenarioError, Step, load_scenario, run_scenario

    run = RunDir.from_env()
    try:
        view = lab_view(run)
        steps = load_scenario(args.file, view.topology)
    except (LabError, ScenarioError) as exc:
        _error(str(exc))
        return 1
    span = steps[-1].at if steps else 0.0
    print(f"scenario {args.file}: {len(steps)} steps over {span:g} s")
    if args.check:
        return 0

    def show(elapsed: float, step: Step, faults: list[Fault]) -> None:
        detail = "; ".join(f.models for f in faults) if step.action == "fail" else (
            ", ".join(f.place for f in faults) or "nothing was failed"
        )  # fmt: skip
        print(f"  [{elapsed:6.3f} s] {step.describe()}: {detail}", flush=True)

    try:
        run_scenario(
            steps,
            lambda kind, target: fail(run, view, kind, target),
            lambda target: restore(run, view, target),
            on_step=show,
        )
    except LabError as exc:
        _error(str(exc))
        return 1
    return 0
