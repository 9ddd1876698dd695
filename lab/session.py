"""A lab's whole life in one place: take the lock, remove leftovers of a crashed run, start
the network while recording progress in the state file, hold it, stop it, release the lock
(:func:`running_lab`); and stop the lab that runs, from any process (:func:`stop_lab`).

The ``srv6lab lab`` commands and the integration tests both use these.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.topology import Topology
from lab import namespaces
from lab.controller_proc import (
    ControllerOptions,
    ControllerProcess,
    start_controller,
    stop_leftover,
)
from lab.errors import LabBusy, LabError
from lab.network import LabNetwork, StepCallback
from lab.nodes import switch_class
from lab.runtime import LabLock, RunDir
from lab.state import LabState, LinkInfo, remove_state, write_state
from lab.sweep import SweepReport, live_owner, sweep
from lab.topo import HOST_MTU, check_host_mtu

STOP_TIMEOUT = 20.0


@dataclass(frozen=True)
class RunningLab:
    network: LabNetwork
    state: LabState
    run: RunDir
    controller: ControllerProcess | None = None

    def node(self, name: str) -> Any:
        """The Mininet node called ``name``."""
        return self.network.node(name)


def new_state(topology: Topology, switch_kind: str, log: Path | None) -> LabState:
    return LabState(
        topology=topology.name,
        topology_path=str(Path(topology.source).resolve()),
        switch_kind=switch_kind,
        pid=os.getpid(),
        started_at=time.time(),
        counts={
            "switches": len(topology.switches),
            "hosts": len(topology.hosts),
            "links": len(topology.links),
        },
        node_names=[s.name for s in topology.switches] + [h.name for h in topology.hosts],
        netns_prefix=namespaces.prefix(),
        interface_names=sorted(i.name for link in topology.links for i in (link.a, link.b)),
        links=[
            LinkInfo(link.name, link.a.endpoint, link.b.endpoint, link.bandwidth_mbps)
            for link in topology.links
        ],
        log=str(log) if log else None,
    )


@contextmanager
def running_lab(
    topology: Topology,
    switch_kind: str = "kernel",
    *,
    run: RunDir | None = None,
    on_step: StepCallback | None = None,
    on_sweep: Callable[[SweepReport], None] | None = None,
    log: Path | None = None,
    controller: ControllerOptions | None = None,
    host_mtu: int = HOST_MTU,
) -> Iterator[RunningLab]:
    """Bring ``topology`` up as the one lab of the run directory; stop it on exit, also
    when the body raises. Raises :class:`LabBusy` if a lab runs already. With
    ``controller``, the controller runs too (started last, stopped first) and the lab is
    ready when it has programmed every switch. ``host_mtu``: the host links' MTU
    (lab/topo.py; the fabric's is above it)."""
    run = run or RunDir.from_env()
    switch_class(switch_kind)
    check_host_mtu(host_mtu)
    lock = LabLock(run)
    lock.acquire()
    try:
        stop_leftover(run.path)
        leftovers = sweep(run, lenient_state(run))
        _check_names_are_free(topology, run)
        if not leftovers.empty and on_sweep is not None:
            on_sweep(leftovers)
        state = new_state(topology, switch_kind, log)
        state.swept = leftovers.lines()
        write_state(run.state_path, state)
        network = LabNetwork(topology, switch_kind, run_dir=run.path, host_mtu=host_mtu)

        def step(text: str) -> None:
            state.add_step(text)
            write_state(run.state_path, state)
            if on_step is not None:
                on_step(text)

        ctl: ControllerProcess | None = None
        try:
            network.start(on_step=step)
            if controller is not None:
                step("starting the controller and programming the switches")
                # a new lab starts with no intents (a restart within this lab keeps them)
                shutil.rmtree(run.path / "controller", ignore_errors=True)
                ctl = start_controller(Path(topology.source).resolve(), run.path, controller)
            state.mark_ready(network.describe())
            write_state(run.state_path, state)
            yield RunningLab(network, state, run, ctl)
        finally:
            if ctl is not None:
                ctl.stop()
            network.stop()
    finally:
        remove_state(run.state_path)
        lock.release()


def _check_names_are_free(topology: Topology, run: RunDir) -> None:
    existing = set(namespaces.lab_netns_names())
    nodes = [s.name for s in topology.switches] + [h.name for h in topology.hosts]
    wanted = [namespaces.netns_name(node) for node in nodes]
    taken = [name for name in wanted if name in existing]
    if not taken:
        return
    shown = ", ".join(taken[:5]) + (f" and {len(taken) - 5} more" if len(taken) > 5 else "")
    owner = live_owner(taken[0])
    if owner is not None:
        raise LabBusy(
            f"namespaces {shown} belong to a lab that runs (pid {owner.ppid}) from another "
            "run directory; stop it with `srv6lab lab down` and that SRV6LAB_RUN_DIR"
        )
    raise LabBusy(
        f"namespaces {shown} exist, but no lab state in {run.path} claims them (a lab of "
        "another run directory, or a crashed run whose state file is gone); if nothing uses "
        "them, remove them with `ip netns delete NAME`"
    )


def lenient_state(run: RunDir) -> LabState | None:
    """The state file, or None if it is missing or damaged (a sweep then works from the
    named namespaces alone)."""
    try:
        return run.state()
    except LabError:
        return None


@dataclass
class DownResult:
    state: LabState | None
    """The last state of the lab: the one stopped, or the one that had crashed."""
    pid: int | None
    """The process that held the running lab and was stopped; None if none ran."""
    seconds: float
    killed: bool = False
    """The lab process did not stop on SIGTERM within the timeout and was killed."""
    sweep: SweepReport = field(default_factory=SweepReport)


def stop_lab(run: RunDir | None = None, timeout: float = STOP_TIMEOUT) -> DownResult:
    """Stop the lab of the run directory (SIGTERM to the process holding it, SIGKILL if it
    does not stop in time), then remove whatever a crashed run left behind."""
    run = run or RunDir.from_env()
    started = time.monotonic()
    lock = LabLock(run)
    state = lenient_state(run)
    holder = lock.holder() if run.lock_path.exists() else None
    pid = holder if holder and holder > 0 else (state.pid if state and holder else None)
    killed = False
    if pid is not None and pid != os.getpid():
        with contextlib.suppress(ProcessLookupError):  # it ended on its own meanwhile
            os.kill(pid, signal.SIGTERM)
        if not namespaces.wait_gone([pid], timeout):
            killed = True
            os.kill(pid, signal.SIGKILL)
            if not namespaces.wait_gone([pid], 5.0):
                raise LabError(f"lab process {pid} survived SIGKILL")
    lock.acquire()
    try:
        report = sweep(run, state)
    finally:
        lock.release()
    return DownResult(
        state=state,
        pid=pid,
        seconds=time.monotonic() - started,
        killed=killed,
        sweep=report,
    )
