"""The lab's ``srv6lab`` subcommands: ``lab up``, ``lab status``, ``lab exec``, ``lab down``.

Heavy imports (Mininet, the lab itself) happen inside the handlers, so ``srv6lab --help``
and the controller's commands never load Mininet.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from controller.topology import Topology
    from lab.runtime import RunDir
    from lab.sweep import SweepReport

DETACH_TIMEOUT = 180.0
LOG_TAIL_LINES = 30

_EXAMPLES = """\
examples:
  srv6lab lab up topologies/line-3.yaml            hold the lab until Ctrl-C
  srv6lab lab up topologies/fat-tree-4.yaml --cli  open Mininet's CLI on it
  srv6lab lab up topologies/fat-tree-4.yaml --detach
  srv6lab lab status
  srv6lab lab exec s1 -- ip -6 route
  ip netns exec srv6lab-s1 ping -6 -c1 fe80::53:2:1%s1-eth2
  srv6lab lab down

The run directory (lock, state file, log of a detached lab) is /run/srv6lab, or
$SRV6LAB_RUN_DIR. Every node's namespace is also named srv6lab-<node> for ip netns.
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    lab = sub.add_parser(
        "lab",
        help="bring a topology up as a Mininet lab of SRv6 switches, inspect it, stop it",
        description="A Mininet lab built from a topology file: switches are IPv6 SRv6 "
        "routers (kind kernel: the Linux data plane in a network namespace), hosts are "
        "IPv6 only, links have their bandwidth capped by tc. One lab runs at a time.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    lsub = lab.add_subparsers(dest="lab_command", required=True, metavar="COMMAND")

    up = lsub.add_parser(
        "up",
        help="bring a topology up (until Ctrl-C, or in the background with --detach)",
        description="Validate FILE, start its switches, hosts and links, and say when the lab "
        "is ready. Without --detach the lab lives until Ctrl-C, SIGTERM or `srv6lab lab "
        "down`; with --cli, until you leave Mininet's CLI. With --detach a background "
        "process holds the lab and the command returns once it is ready. A bad file is "
        "rejected with its errors and nothing starts. Needs root.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    up.add_argument("file", metavar="FILE", help="topology YAML file (see topologies/)")
    up.add_argument(
        "--switch",
        default="kernel",
        metavar="KIND",
        help="switch kind: kernel (switchd on the Linux SRv6 data plane, the default) or "
        "bmv2 (BMv2 simple_switch_grpc from PATH or $SRV6LAB_BMV2_PREFIX/bin)",
    )
    mode = up.add_mutually_exclusive_group()
    mode.add_argument(
        "--cli", action="store_true", help="open Mininet's CLI; leaving it stops the lab"
    )
    mode.add_argument(
        "--detach",
        action="store_true",
        help="keep the lab in a background process (log in the run directory) and return "
        "once it is ready",
    )
    up.add_argument(
        "--controller",
        action="store_true",
        help="also run the controller (srv6lab controller run) on the lab's switches; the "
        "lab is ready when connectivity is installed everywhere. Its API listens on "
        "--controller-listen (default unix:RUN_DIR/controller.sock, which `srv6lab intent` "
        "finds by itself), its log is RUN_DIR/controller.log",
    )
    up.add_argument("--controller-listen", metavar="ADDR", help="controller API address")
    up.add_argument(
        "--controller-metrics", default="off", metavar="HOST:PORT",
        help="controller Prometheus endpoint (default off)",
    )  # fmt: skip
    up.add_argument("--detached-child", action="store_true", help=argparse.SUPPRESS)
    up.set_defaults(func=_up)

    status = lsub.add_parser(
        "status",
        help="show the running lab: nodes, links, their state and addresses",
        description="Show the running lab as the kernel sees it now: every node with its "
        "interfaces (operational state, MAC, addresses) and every link with the state of "
        "both ends. Exits 1 if no lab is running or it is still starting.",
    )
    status.add_argument("--json", action="store_true", help="print JSON for scripts")
    status.set_defaults(func=_status)

    exec_ = lsub.add_parser(
        "exec",
        help="run a command inside a node of the running lab",
        description="Run CMD in the network namespace of NODE (like `ip netns exec "
        "srv6lab-NODE CMD`) and exit with its exit status.",
        usage="srv6lab lab exec [-h] NODE -- CMD [ARG ...]",
        epilog="example: srv6lab lab exec h1 -- ping -6 -c1 fe80::53:1:1%h1-eth0",
    )
    exec_.add_argument("node", metavar="NODE", help="a switch or host name")
    exec_.add_argument(
        "command", nargs=argparse.REMAINDER, metavar="CMD", help="the command, after --"
    )
    exec_.set_defaults(func=_exec)

    down = lsub.add_parser(
        "down",
        help="stop the running lab and remove what a crashed run left behind",
        description="Stop the running lab (SIGTERM to the process that holds it, SIGKILL "
        "if it has not stopped after --timeout seconds), then remove whatever a crashed "
        "run left behind: processes in the lab's namespaces, namespaces srv6lab-*, lab "
        "interfaces in the root namespace, the state file. Says what it removed. With no "
        "lab running and nothing left behind it says so and exits 0.",
    )
    down.add_argument(
        "--timeout",
        type=float,
        default=20.0,
        metavar="SECONDS",
        help="how long the lab may take to stop before it is killed (default: 20)",
    )
    down.set_defaults(func=_down)

    install = lsub.add_parser(
        "install",
        help="compile the fabric's SRv6 routing and install it into the running lab",
        description="Compile the running lab's topology into srv6.p4 entries (routes to every "
        "switch locator and host prefix with ECMP groups and watch ports, uN/uA/uDT6 SIDs, "
        "the SR-domain edge filter) and insert them into every switchd over P4Runtime, "
        "using the lab's switches.json. One shot, for empty switches: the controller daemon "
        "(to come) keeps them in sync instead.",
    )
    install.set_defaults(func=_install)

    pingall = lsub.add_parser(
        "pingall",
        help="ping every host from every host over IPv6 and print a summary",
        description="Ping every host's address from every other host of the running lab "
        "(one echo each, 2 s timeout) and print a summary. Exit 1 if any pair fails.",
    )
    pingall.set_defaults(func=_pingall)


# -- lab up ------------------------------------------------------------------------------------


def _up(args: argparse.Namespace) -> int:
    from controller.topology import TopologyError, load

    try:
        topo = load(args.file)
    except TopologyError as exc:
        _error(str(exc))
        return 1
    if not _is_root("srv6lab lab up"):
        return 1
    from lab.errors import LabError
    from lab.nodes import switch_class

    try:
        switch_class(args.switch)
    except LabError as exc:
        _error(str(exc))
        return 1
    if args.detach:
        return _up_detached(args, topo)
    return _up_here(args, topo)


def _controller_options(args: argparse.Namespace) -> Any:
    if not args.controller:
        return None
    from lab.controller_proc import ControllerOptions

    return ControllerOptions(listen=args.controller_listen, metrics=args.controller_metrics)


def _up_here(args: argparse.Namespace, topo: Topology) -> int:
    """Run the lab in this process until Ctrl-C, SIGTERM, SIGHUP or the end of the CLI."""
    from lab.errors import LabError
    from lab.runtime import RunDir
    from lab.session import running_lab

    run = RunDir.from_env()
    printer = StepPrinter(sys.stdout)
    first_step = True

    def step(text: str) -> None:
        nonlocal first_step
        if first_step:
            print(f"lab {topo.name}: {_counts(topo)}, switch kind {args.switch}", flush=True)
            first_step = False
        printer.step(text)

    signals = _StopSignals(catch_sigint=not args.cli)
    stopping_since: float | None = None
    try:
        with (
            signals,
            running_lab(
                topo,
                args.switch,
                run=run,
                on_step=step,
                on_sweep=_print_sweep,
                log=run.log_path if args.detached_child else None,
                controller=_controller_options(args),
            ) as lab,
        ):
            printer.finish()
            print(
                f"lab {topo.name} ready in {lab.state.ready_seconds:.1f} s ({_counts(topo)})",
                flush=True,
            )
            if lab.controller is not None:
                print(
                    f"controller programmed every switch in {lab.controller.ready_seconds:.1f} s;"
                    f" API {lab.controller.address}, log {lab.controller.log}",
                    flush=True,
                )
            try:
                if args.cli:
                    from mininet.cli import CLI

                    CLI(lab.network.net)
                else:
                    if not args.detached_child:
                        print("the lab runs until Ctrl-C or `srv6lab lab down`", flush=True)
                    _wait_for_stop()
            except (KeyboardInterrupt, StopRequested) as stop:
                print(f"\n{_why(stop)}", flush=True)
            signals.shield()
            stopping_since = time.monotonic()
            print(f"stopping lab {topo.name}...", flush=True)
    except (KeyboardInterrupt, StopRequested) as stop:
        printer.abort()
        _error(f"{_why(stop)} while starting; the lab was removed")
        return 130 if isinstance(stop, KeyboardInterrupt) else 1
    except LabError as exc:
        printer.abort()
        _error(str(exc))
        return 1
    if stopping_since is not None:
        print(f"lab {topo.name} stopped in {time.monotonic() - stopping_since:.1f} s", flush=True)
    return 0


def _up_detached(args: argparse.Namespace, topo: Topology) -> int:
    """Start ``lab up`` in a background process and wait until its state says ready."""
    from lab.runtime import LabLock, RunDir, busy_error
    from lab.session import lenient_state

    run = RunDir.from_env()
    run.ensure()
    holder = LabLock(run).holder()
    if holder is not None:
        _error(str(busy_error(run, holder)))
        return 1
    command = [
        sys.executable,
        "-m",
        "lab.cli",
        "lab",
        "up",
        str(Path(args.file).resolve()),
        "--switch",
        args.switch,
        "--detached-child",
    ]
    if args.controller:
        command += ["--controller", "--controller-metrics", args.controller_metrics]
        if args.controller_listen:
            command += ["--controller-listen", args.controller_listen]
    with open(run.log_path, "wb") as log:
        child = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    print(
        f"lab {topo.name}: {_counts(topo)}, switch kind {args.switch}, "
        f"in the background (pid {child.pid})",
        flush=True,
    )
    printer = StepPrinter(sys.stdout)
    shown = 0
    swept_shown = False
    deadline = time.monotonic() + DETACH_TIMEOUT
    while True:
        state = lenient_state(run)
        if state is not None and state.pid == child.pid:
            if state.swept and not swept_shown:
                _print_sweep(state.swept)
            swept_shown = True
            for step in state.steps[shown:]:
                printer.step(step.text, at=step.at)
            shown = len(state.steps)
            if state.ready and state.ready_seconds is not None:
                printer.finish(at=state.ready_seconds)
                print(f"lab {topo.name} ready in {state.ready_seconds:.1f} s ({_counts(topo)})")
                addr = run.path / "controller.addr"
                if args.controller and addr.exists():
                    print(f"controller API {addr.read_text().strip()} (`srv6lab intent` finds it), "
                          f"log {run.path / 'controller.log'}")  # fmt: skip
                print(
                    f"it runs in the background (pid {child.pid}, log {run.log_path}); "
                    "see `srv6lab lab status`, stop it with `srv6lab lab down`"
                )
                return 0
        try:
            rc = child.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            if time.monotonic() < deadline:
                continue
            printer.abort()
            child.terminate()
            child.wait(timeout=30)
            _error(f"the lab was not ready after {DETACH_TIMEOUT:g} s; stopped it")
            _print_log_tail(run.log_path)
            return 1
        printer.abort()
        _error(
            f"the lab process (pid {child.pid}) exited with status {rc} before the lab was ready"
        )
        _print_log_tail(run.log_path)
        return 1


class StepPrinter:
    """Prints the phases of starting as they happen: ``  creating 48 links... 1.2 s``."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.t0 = time.monotonic()
        self.current: float | None = None

    def _now(self, at: float | None) -> float:
        return at if at is not None else time.monotonic() - self.t0

    def step(self, text: str, at: float | None = None) -> None:
        now = self._now(at)
        self.finish(at=now)
        print(f"  {text}... ", end="", file=self.out, flush=True)
        self.current = now

    def finish(self, at: float | None = None) -> None:
        if self.current is not None:
            print(f"{self._now(at) - self.current:.1f} s", file=self.out, flush=True)
            self.current = None

    def abort(self) -> None:
        if self.current is not None:
            print("failed", file=self.out, flush=True)
            self.current = None


class StopRequested(Exception):
    """SIGTERM or SIGHUP: stop the lab like Ctrl-C does."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


class _StopSignals:
    """SIGTERM and SIGHUP (and SIGINT, unless Mininet's CLI wants it for itself) stop the
    lab. The first one raises; after that, and once the lab is stopping, stop signals are
    only acknowledged, so that cleaning up cannot be cut short."""

    def __init__(self, catch_sigint: bool) -> None:
        self.signals = [signal.SIGTERM, signal.SIGHUP]
        if catch_sigint:
            self.signals.append(signal.SIGINT)
        self.saved: dict[int, Any] = {}

    def __enter__(self) -> _StopSignals:
        for sig in self.signals:
            self.saved[sig] = signal.signal(sig, self._raise)
        self.saved.setdefault(signal.SIGINT, signal.getsignal(signal.SIGINT))
        return self

    def shield(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(sig, self._acknowledge)

    def __exit__(self, *_exc: object) -> None:
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)

    def _raise(self, signum: int, _frame: FrameType | None) -> None:
        self.shield()
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise StopRequested(signum)

    @staticmethod
    def _acknowledge(signum: int, _frame: FrameType | None) -> None:
        print(
            f"({signal.Signals(signum).name}: already stopping the lab, please wait)",
            file=sys.stderr,
            flush=True,
        )


def _wait_for_stop() -> None:
    while True:
        signal.pause()


def _why(stop: BaseException) -> str:
    if isinstance(stop, StopRequested):
        return f"{stop} received"
    return "interrupted"


def _print_sweep(report: SweepReport | list[str]) -> None:
    lines = report if isinstance(report, list) else report.lines()
    print("removed what a crashed run left behind:", flush=True)
    for line in lines:
        print(f"  {line}", flush=True)


def _print_log_tail(path: Path) -> None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            tail = deque(f, maxlen=LOG_TAIL_LINES)
    except FileNotFoundError:
        print(f"(no log at {path})", file=sys.stderr)
        return
    print(f"last lines of {path}:", file=sys.stderr)
    for line in tail:
        print(f"  | {line.rstrip()}", file=sys.stderr)


def _counts(topo: Topology) -> str:
    return f"{len(topo.switches)} switches, {len(topo.hosts)} hosts, {len(topo.links)} links"


# -- lab status, exec, down --------------------------------------------------------------------


def _running_state(run: RunDir) -> Any:
    """The state of the lab that runs and is ready, or None after saying why not."""
    from lab.errors import LabError
    from lab.runtime import LabLock

    try:
        state = run.state()
    except LabError as exc:
        _error(str(exc))
        return None
    holder = LabLock(run).holder() if run.lock_path.exists() else None
    if holder is None:
        if state is not None:
            _error(
                "no lab is running, but a run that ended without cleaning up left its "
                "state behind; `srv6lab lab down` removes what it left"
            )
        else:
            _error("no lab is running; start one with `srv6lab lab up FILE --detach`")
        return None
    if state is None or not state.ready:
        name = f"lab {state.topology}" if state else "a lab"
        _error(f"{name} is still starting (pid {holder}); try again when it is ready")
        return None
    return state


def _status(args: argparse.Namespace) -> int:
    if not _is_root("srv6lab lab status"):
        return 1
    from lab.errors import LabError
    from lab.runtime import RunDir
    from lab.status import collect, render_json, render_text

    state = _running_state(RunDir.from_env())
    if state is None:
        return 1
    try:
        nodes, links = collect(state)
    except LabError as exc:
        _error(str(exc))
        return 1
    text = render_json(state, nodes, links) if args.json else render_text(state, nodes, links)
    try:
        print(text, flush=True)
    except BrokenPipeError:
        # The reader (| head) has gone; say nothing more, not even at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _running_topology(command: str) -> tuple[RunDir, Any, Topology] | None:
    """The run directory, state and topology of the lab that runs, or None after saying
    why not (for commands that work on a running lab's topology)."""
    if not _is_root(command):
        return None
    from controller.topology import TopologyError, load
    from lab.runtime import RunDir

    run = RunDir.from_env()
    state = _running_state(run)
    if state is None:
        return None
    try:
        return run, state, load(state.topology_path)
    except TopologyError as exc:
        _error(str(exc))
        return None


def _install(args: argparse.Namespace) -> int:
    from controller.southbound import InventoryError
    from controller.southbound.install import InstallError
    from lab.fabric import program_fabric

    running = _running_topology("srv6lab lab install")
    if running is None:
        return 1
    run, _state, topo = running
    try:
        entries, seconds = program_fabric(topo, run.path / "switches.json")
    except (InventoryError, InstallError) as exc:
        _error(str(exc))
        return 1
    print(f"installed {entries} entries into {len(topo.switches)} switches in {seconds:.1f} s")
    return 0


def _pingall(args: argparse.Namespace) -> int:
    from lab.fabric import ping_all

    running = _running_topology("srv6lab lab pingall")
    if running is None:
        return 1
    _run, state, topo = running
    netns = {name: info.netns for name, info in state.nodes.items()}
    pairs = ping_all(topo, netns)
    failed = [(a, b) for a, b, ok in pairs if not ok]
    for a, b in failed:
        print(f"  {a} -> {b}: no reply")
    print(f"pingall: {len(pairs) - len(failed)}/{len(pairs)} host pairs reachable")
    return 1 if failed else 0


def _exec(args: argparse.Namespace) -> int:
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        _error("no command given; usage: srv6lab lab exec NODE -- CMD [ARG ...]")
        return 2
    if not _is_root("srv6lab lab exec"):
        return 1
    from lab.runtime import RunDir
    from lab.status import natural_key

    state = _running_state(RunDir.from_env())
    if state is None:
        return 1
    node = state.nodes.get(args.node)
    if node is None:
        known = ", ".join(sorted(state.nodes, key=natural_key))
        _error(f"no node {args.node!r} in lab {state.topology}; its nodes are: {known}")
        return 1
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp("ip", ["ip", "netns", "exec", node.netns, *command])


def _down(args: argparse.Namespace) -> int:
    if not _is_root("srv6lab lab down"):
        return 1
    from lab.errors import LabError
    from lab.runtime import RunDir
    from lab.session import stop_lab

    try:
        result = stop_lab(RunDir.from_env(), timeout=args.timeout)
    except LabError as exc:
        _error(str(exc))
        return 1
    if result.pid is None and result.state is not None:
        print(f"lab {result.state.topology} (pid {result.state.pid}) had ended without cleaning up")
    if result.pid is not None:
        name = f"lab {result.state.topology}" if result.state else "the lab"
        how = f" (killed: it did not stop within {args.timeout:g} s)" if result.killed else ""
        print(f"stopped {name} (pid {result.pid}) in {result.seconds:.1f} s{how}")
    if not result.sweep.empty:
        print("removed what a crashed run left behind:")
        for line in result.sweep.lines():
            print(f"  {line}")
    if result.sweep.skipped:
        print("left alone, a running lab still uses them: " + ", ".join(result.sweep.skipped))
    if result.sweep.unclaimed:
        print(
            "left alone, no lab state here claims them (remove them with `ip netns delete "
            "NAME` if they are a lab's): " + ", ".join(result.sweep.unclaimed)
        )
    if result.pid is None and result.sweep.empty:
        print("no lab is running and nothing was left behind")
    return 0


# -- helpers -----------------------------------------------------------------------------------


def _is_root(what: str) -> bool:
    if os.geteuid() == 0:
        return True
    _error(f"{what} needs root (network namespaces, Mininet); run it with sudo")
    return False


def _error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)
