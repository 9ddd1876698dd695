"""Fault injection in a running lab: fail a link or a switch, restore it, and remember what
was done in the run directory so that ``srv6lab lab restore`` works from any process.

Failure kinds (issue #5; what each one models is part of every report):

``admin``
    Both ends of the link are set administratively down, as Mininet's ``link X Y down``.
    Each switch learns it from its own interface at once.
``carrier``
    The end at Y is set down; X sees carrier loss (veth announces it in about 0.5 ms,
    because lab links give the two ends distinct interface indexes, see lab/links.py).
``gray``
    The link stays up and silently drops everything: an nftables netdev ingress chain with
    policy drop on both ends, in the nodes' namespaces. Nothing on netlink says so.
``switch``
    The switch dies: every one of its ports is set down inside its namespace, so all its
    neighbours see carrier loss at once. Its switchd (or BMv2) keeps running (a dead data
    plane, not a dead agent: the P4Runtime state stays the truth and switchd re-installs it
    into the kernel when the ports return).

BMv2 (behavioral-model #1215) freezes when its own interface goes down: its one packet
thread waits on that interface until a packet arrives there. BMv2 labs therefore patch every
lab port to BMv2 through a bridge and a veth pair (lab.switchd_nodes.Bmv2PortPatch); failing
a BMv2 end sets the lab port down (the controller sees it, as on a kernel switch) and the
patch veth's far end down (BMv2's port loses carrier, its watch ports react), never BMv2's
own interface. Gray drops at the lab port, before the bridge and so before BMv2's pcap.

Restoring undoes exactly what was done, re-adds the plan's link-local address of every
port that was set down (a port with ``addrgenmode none`` loses it on down/up, and the
fabric's neighbours are link-local) and a host's routes, and waits until both ends are up.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from controller.topology import Interface, Topology
from lab.errors import LabError
from lab.nsenter import netns
from lab.runtime import RunDir

KINDS = ("admin", "carrier", "gray", "switch")
FaultKind = Literal["admin", "carrier", "gray", "switch"]
FAULTS_FILE = "faults.json"
UP_TIMEOUT = 10.0
IFA_F_NODAD = 0x02
FAULT_PRIORITY = 30
"""SCHED_FIFO priority of the process while it sets ports down: above everything of the
lab's (the traffic generator's sender is at 20 when it runs real-time, lab/traffic/probe.py).
A port's close runs under the RTNL lock; between the moment it stops sending (its queue
swapped for noop) and its NETDEV_DOWN (the kernel takes its nexthops out of their groups)
every packet routed to it is dropped, and an injector that the scheduler preempts there
stretches that gap from tenths of a millisecond to several."""
GRAY_PRIORITY = -500
"""Before switchd's own netdev chains: a gray link drops before anything else sees it."""

ActionKind = Literal["down", "gray", "freeze", "sense"]


@dataclass(frozen=True, slots=True)
class Stamp:
    """A moment on both clocks: CLOCK_MONOTONIC (shared by every namespace on the machine,
    and what the traffic generators stamp packets with) and wall time, in nanoseconds."""

    monotonic_ns: int
    wall_ns: int

    @classmethod
    def now(cls) -> Stamp:
        return cls(time.monotonic_ns(), time.time_ns())


@dataclass(frozen=True, slots=True)
class PortAction:
    """One thing done to one node: set a port down, drop everything it receives (gray),
    or freeze a BMv2 process."""

    action: ActionKind
    node: str
    netns: str
    ifname: str = ""
    link_local: str = ""
    host_routes: tuple[str, ...] = ()
    """``ip -6 route replace`` arguments to put back on a host NIC brought back up."""
    pid: int = 0
    """The frozen process (action ``freeze``)."""

    def describe(self) -> str:
        if self.action == "freeze":
            return f"{self.node}: BMv2 pid {self.pid} frozen (SIGSTOP)"
        if self.action == "gray":
            return f"{self.node}:{self.ifname} drops everything it receives (nftables)"
        if self.action == "sense":
            return f"{self.node}:{self.ifname} sees carrier loss (read at once)"
        return f"{self.node}:{self.ifname} set down"


@dataclass
class Fault:
    kind: FaultKind
    target: tuple[str, ...]
    """(X, Y) for a link, (X,) for a switch."""
    actions: tuple[PortAction, ...]
    models: str
    """What the failure looks like to the nodes, in words (for reports)."""
    injected: Stamp | None = None
    """Just before the first action."""
    applied: Stamp | None = None
    """Once every action has been done."""
    restored: Stamp | None = None
    restore_done: Stamp | None = None
    """Once every port touched is up again."""
    senses: tuple[PortAction, ...] = ()
    """Far ends that see carrier loss: the injector reads their carrier at once
    (:func:`sense_carrier`), so that the kernel acts on the loss now, not when a worker
    thread of the ordinary scheduling class gets to it."""

    @property
    def place(self) -> str:
        return "-".join(self.target)

    def matches(self, target: Sequence[str]) -> bool:
        return sorted(self.target) == sorted(target)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Fault:
        def stamp(value: Any) -> Stamp | None:
            return None if value is None else Stamp(**value)

        return cls(
            kind=raw["kind"],
            target=tuple(raw["target"]),
            actions=tuple(
                PortAction(**{**a, "host_routes": tuple(a.get("host_routes", ()))})
                for a in raw["actions"]
            ),
            models=raw["models"],
            injected=stamp(raw.get("injected")),
            applied=stamp(raw.get("applied")),
            restored=stamp(raw.get("restored")),
            restore_done=stamp(raw.get("restore_done")),
            senses=tuple(PortAction(**a) for a in raw.get("senses", ())),
        )


# -- planning (pure) ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LabView:
    """What fault injection needs to know of a running lab."""

    topology: Topology
    switch_kind: str
    netns_prefix: str
    identity: tuple[int, float] = (0, 0.0)
    """(pid, started_at) of the lab: faults recorded for another lab are stale."""

    def netns(self, node: str) -> str:
        return self.netns_prefix + node

    def is_bmv2_switch(self, node: str) -> bool:
        return self.switch_kind == "bmv2" and self.topology.is_switch(node)


def plan(view: LabView, kind: str, target: Sequence[str]) -> Fault:
    """The actions of a fault, checked against the topology (LabError naming the bad
    input). Does nothing to the lab."""
    topo = view.topology
    if kind not in KINDS:
        raise LabError(f"unknown failure kind {kind!r}; kinds: {', '.join(KINDS)}")
    known = {s.name for s in topo.switches} | {h.name for h in topo.hosts}
    for name in target:
        if name not in known:
            raise LabError(f"no node {name!r} in topology {topo.name}")
    if kind == "switch":
        if len(target) != 1:
            raise LabError(f"--kind switch takes one switch, got {' '.join(target)}")
        return _plan_switch(view, target[0])
    if len(target) != 2:
        raise LabError(f"--kind {kind} takes the two ends of a link, got {' '.join(target)}")
    x, y = target
    try:
        link = topo.link(x, y)
    except KeyError:
        raise LabError(f"no link between {x} and {y} in topology {topo.name}") from None
    ends = (link.interface_at(x), link.interface_at(y))
    if kind == "gray":
        actions = tuple(_action(view, "gray", end) for end in ends)
        return Fault("gray", (x, y), actions, f"{x}-{y} stays up and drops every packet")
    if kind == "admin":
        actions = tuple(a for end in ends for a in _down_actions(view, end))
        models = f"both ends of {x}-{y} administratively down"
        if any(view.is_bmv2_switch(end.node) for end in ends):
            models += " (BMv2 ports lose carrier behind their patch, #1215)"
        return Fault("admin", (x, y), actions, models)
    # carrier: Y's end goes down, X sees carrier loss.
    down, sees = ends[1], ends[0]
    return Fault(
        "carrier",
        (x, y),
        _down_actions(view, down),
        f"{down.endpoint} set down; {sees.endpoint} sees carrier loss",
        senses=(_sense(view, sees),),
    )


def _plan_switch(view: LabView, name: str) -> Fault:
    topo = view.topology
    if not topo.is_switch(name):
        raise LabError(f"--kind switch needs a switch; {name} is a host")
    ports = topo.interfaces_of(name)
    actions = tuple(a for i in ports for a in _down_actions(view, i))
    peers = [link.peer_of(name) for link in topo.links_of(name)]
    return Fault(
        "switch",
        (name,),
        actions,
        f"every port of {name} down; its {len(actions)} neighbours see carrier loss",
        senses=tuple(_sense(view, peer) for peer in peers),
    )


def _sense(view: LabView, end: Interface) -> PortAction:
    return PortAction("sense", end.node, view.netns(end.node), end.name)


def _down_actions(view: LabView, end: Interface) -> tuple[PortAction, ...]:
    """Set a link end down; on a BMv2 switch also the far end of BMv2's patch veth."""
    port = _action(view, "down", end)
    if not view.is_bmv2_switch(end.node):
        return (port,)
    from lab.switchd_nodes import bmv2_port_patch

    peer = PortAction("down", end.node, view.netns(end.node), bmv2_port_patch(end.port).peer)
    return (port, peer)


def _action(view: LabView, action: ActionKind, end: Interface) -> PortAction:
    routes: tuple[str, ...] = ()
    if action == "down" and not view.topology.is_switch(end.node):
        from lab.topo import host_routes

        host = view.topology.host(end.node)
        routes = tuple(
            f"{r.destination} via {r.gateway} dev {r.dev}"
            for r in host_routes(view.topology, host)
            if r.dev == end.name
        )
    return PortAction(
        action=action,
        node=end.node,
        netns=view.netns(end.node),
        ifname=end.name,
        link_local=str(end.link_local),
        host_routes=routes,
    )


def gray_table(ifname: str) -> str:
    return "srv6lab_gray_" + ifname.replace("-", "_").replace(".", "_")


def gray_ruleset(ifname: str) -> str:
    table = gray_table(ifname)
    return (
        f"table netdev {table} {{\n"
        f"  chain drop_all {{\n"
        f'    type filter hook ingress device "{ifname}" priority {GRAY_PRIORITY}; policy drop;\n'
        f"  }}\n"
        f"}}\n"
    )


# -- doing it ------------------------------------------------------------------------------------


def apply(fault: Fault) -> Fault:
    """Do the fault's actions (as close together as one process can) and stamp it."""
    links = [a for a in fault.actions if a.action == "down"]
    grays = [a for a in fault.actions if a.action == "gray"]
    freezes = [a for a in fault.actions if a.action == "freeze"]
    frozen: list[PortAction] = []
    with _netlink({a.netns for a in links}) as nl:
        indexes = [(nl[a.netns], _ifindex(nl[a.netns], a)) for a in links]
        pids = [_bmv2_pid(a) for a in freezes]
        # nft started first, waiting for its ruleset: the stamp is when the drop begins,
        # not when two processes have been started on a loaded machine
        nfts = _start_parallel(
            [(a.netns, ["nft", "-f", "-"], gray_ruleset(a.ifname)) for a in grays]
        )
        for *_, proc in nfts:  # both ends of a gray link begin to drop together
            with contextlib.suppress(OSError):
                os.sched_setscheduler(proc.pid, os.SCHED_FIFO, os.sched_param(FAULT_PRIORITY))
        senses = [(a, _socket_in(a.netns)) for a in fault.senses]
        with _realtime(FAULT_PRIORITY):
            fault.injected = Stamp.now()
            for ipr, index in indexes:
                ipr.link("set", index=index, state="down")
            for action, sock in senses:
                sense_carrier(sock, action.ifname)
                sock.close()
            for action, pid in zip(freezes, pids, strict=True):
                os.kill(pid, signal.SIGSTOP)
                frozen.append(PortAction("freeze", action.node, action.netns, pid=pid))
            _finish_parallel(nfts)
        fault.applied = Stamp.now()
    if frozen:
        fault.actions = tuple(a for a in fault.actions if a.action != "freeze") + tuple(frozen)
    return fault


def undo(fault: Fault, wait: bool = True) -> Fault:
    """Undo exactly what :func:`apply` did; with ``wait``, return once every port that was
    set down is operationally up again on both ends."""
    links = [a for a in fault.actions if a.action == "down"]
    grays = [a for a in fault.actions if a.action == "gray"]
    freezes = [a for a in fault.actions if a.action == "freeze"]
    with _netlink({a.netns for a in links}) as nl:
        indexes = [(a, nl[a.netns], _ifindex(nl[a.netns], a)) for a in links]
        fault.restored = Stamp.now()
        # In the reverse order of apply: on a BMv2 switch BMv2's patch veth comes up before
        # the lab port that the controller watches, so a link is up (both lab ports) only
        # once every hop of it carries packets again.
        for _, ipr, index in reversed(indexes):
            ipr.link("set", index=index, state="up")
        for action in freezes:
            if action.pid <= 0:
                continue  # never frozen (apply failed before): nothing to thaw
            try:
                os.kill(action.pid, signal.SIGCONT)
            except ProcessLookupError:
                raise LabError(f"BMv2 of {action.node} (pid {action.pid}) is gone") from None
        # Adding the table first makes the delete succeed also when it is gone already.
        _run_parallel(
            [
                (
                    a.netns,
                    ["nft", "-f", "-"],
                    f"table netdev {gray_table(a.ifname)}\n"
                    f"delete table netdev {gray_table(a.ifname)}\n",
                )
                for a in grays
            ]
        )
        for action, ipr, index in indexes:
            if not action.link_local:
                continue  # a BMv2 patch veth: it never had an address
            ipr.addr(
                "replace",
                index=index,
                address=action.link_local,
                prefixlen=64,
                flags=IFA_F_NODAD,
            )
        for action in links:
            for route in action.host_routes:
                _ip(action.netns, ["-6", "route", "replace", *route.split()])
        if wait:
            _wait_up(nl, [(a, idx) for a, _ipr, idx in indexes])
        fault.restore_done = Stamp.now()
    return fault


SIOCETHTOOL = 0x8946
ETHTOOL_GLINK = 0x0000000A


def sense_carrier(sock: socket.socket, ifname: str) -> bool:
    """Ask the kernel for ``ifname``'s link state (ETHTOOL_GLINK, ``ethtool X``'s "Link
    detected"). Its answer first runs the port's pending link-watch event in the calling
    thread (linkwatch_sync_dev): a carrier loss is acted on at once (the port's next hops
    leave their groups) instead of when the kernel's link-watch worker, an ordinary
    process, gets a CPU (5-10 ms on this loaded machine). True if the link is up."""
    value = ctypes.create_string_buffer(struct.pack("II", ETHTOOL_GLINK, 0), 8)
    request = struct.pack("16sP", ifname.encode(), ctypes.addressof(value))
    try:
        fcntl.ioctl(sock.fileno(), SIOCETHTOOL, request)
    except OSError:
        return False
    return bool(struct.unpack("II", value.raw)[1])


def _socket_in(name: str) -> socket.socket:
    with netns(name):
        return socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)


@contextmanager
def _realtime(priority: int) -> Iterator[None]:
    """The calling thread at SCHED_FIFO ``priority`` for the block (as it is, if refused)."""
    try:
        before = os.sched_getscheduler(0), os.sched_getparam(0)
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except OSError:
        yield
        return
    try:
        yield
    finally:
        os.sched_setscheduler(0, before[0], before[1])


@contextmanager
def _netlink(names: set[str]) -> Iterator[dict[str, Any]]:
    """A pyroute2 IPRoute socket opened inside each named namespace."""
    from pyroute2 import IPRoute

    sockets: dict[str, Any] = {}
    try:
        for name in sorted(names):
            with netns(name):
                sockets[name] = IPRoute()
        yield sockets
    finally:
        for ipr in sockets.values():
            ipr.close()


def _ifindex(ipr: Any, action: PortAction) -> int:
    found = ipr.link_lookup(ifname=action.ifname)
    if not found:
        raise LabError(f"{action.node} has no interface {action.ifname} ({action.netns})")
    return int(found[0])


def _bmv2_pid(action: PortAction) -> int:
    from lab import namespaces

    inode = namespaces.netns_inode(action.netns)
    if inode is None:
        raise LabError(f"namespace {action.netns} of {action.node} does not exist")
    for proc in namespaces.processes_in([inode]):
        if "simple_switch" in proc.cmdline:
            return proc.pid
    raise LabError(f"no BMv2 process runs in {action.netns} ({action.node})")


def _run_parallel(commands: list[tuple[str, list[str], str]]) -> None:
    """Start each command inside its namespace at once, then wait for all of them."""
    _finish_parallel(_start_parallel(commands))


Started = list[tuple[str, list[str], str, "subprocess.Popen[str]"]]


def _start_parallel(commands: list[tuple[str, list[str], str]]) -> Started:
    """Start each command inside its namespace; they wait for their input."""
    procs: Started = []
    for name, argv, stdin in commands:
        with netns(name):
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        procs.append((name, argv, stdin, proc))
    return procs


def _finish_parallel(procs: Started) -> None:
    """Give every started command its input at once, then wait for all of them."""
    for _name, _argv, stdin, proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(stdin)
        proc.stdin.close()
    errors = []
    for name, argv, _stdin, proc in procs:
        assert proc.stdout is not None and proc.stderr is not None
        err = proc.stderr.read()  # nft says little: neither pipe fills while the other waits
        out = proc.stdout.read()
        proc.stdout.close()
        proc.stderr.close()
        proc.wait(timeout=30)
        if proc.returncode != 0:
            errors.append(f"{' '.join(argv)} in {name}: {(err or out).strip()}")
    if errors:
        raise LabError("; ".join(errors))


def _ip(name: str, args: list[str]) -> None:
    proc = subprocess.run(
        ["ip", "-n", name, *args], capture_output=True, text=True, check=False, timeout=30
    )
    if proc.returncode != 0:
        raise LabError(f"ip -n {name} {' '.join(args)}: {proc.stderr.strip()}")


def _wait_up(nl: dict[str, Any], ports: list[tuple[PortAction, int]]) -> None:
    """Wait until every port (and so its peer's carrier) is operationally up."""
    deadline = time.monotonic() + UP_TIMEOUT
    pending = list(ports)
    delay = 0.001
    while pending:
        still = []
        for action, index in pending:
            links = nl[action.netns].get_links(index)
            state = links[0].get_attr("IFLA_OPERSTATE") if links else None
            if state != "UP":
                still.append((action, index))
        pending = still
        if not pending:
            return
        if time.monotonic() > deadline:
            names = ", ".join(f"{a.node}:{a.ifname}" for a, _ in pending)
            raise LabError(f"ports not up {UP_TIMEOUT:g} s after restore: {names}")
        time.sleep(delay)  # polling the kernel's operstate
        delay = min(delay * 2, 0.05)


# -- the run directory's record of active faults ----------------------------------------------


@dataclass
class FaultBook:
    """The active faults of the lab in a run directory (``<run>/faults.json``)."""

    identity: tuple[int, float]
    faults: list[Fault] = field(default_factory=list)

    def find(self, target: Sequence[str]) -> Fault | None:
        return next((f for f in self.faults if f.matches(target)), None)


def _book_path(run: RunDir) -> Path:
    return run.path / FAULTS_FILE


@contextmanager
def fault_book(run: RunDir, identity: tuple[int, float]) -> Iterator[FaultBook]:
    """The record of active faults, locked for a read-modify-write; a record left by an
    earlier lab (another pid or start time) is dropped. Saved when the block ends."""
    run.ensure()
    path = _book_path(run)
    with open(run.path / "faults.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        book = FaultBook(identity)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            if tuple(raw["lab"]) == identity:
                book.faults = [Fault.from_dict(f) for f in raw["faults"]]
        except FileNotFoundError:
            pass
        except (ValueError, KeyError, TypeError) as exc:
            raise LabError(f"{path} is damaged ({exc}); remove it if no fault is active") from None
        yield book
        if book.faults:
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            data = {"lab": list(identity), "faults": [f.to_dict() for f in book.faults]}
            tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
            os.replace(tmp, path)
        else:
            path.unlink(missing_ok=True)


def lab_view(run: RunDir) -> LabView:
    """The running lab of a run directory, for fault injection from any process."""
    from controller.topology import TopologyError, load

    state = run.state()
    if state is None:
        raise LabError(f"no lab is running (no state in {run.path}); start one with `lab up`")
    if not state.ready:
        raise LabError(f"lab {state.topology} is still starting")
    try:
        topo = load(state.topology_path)
    except TopologyError as exc:
        raise LabError(f"the running lab's topology file changed or is gone: {exc}") from None
    return LabView(topo, state.switch_kind, state.netns_prefix, (state.pid, state.started_at))


def fail(run: RunDir, view: LabView, kind: str, target: Sequence[str]) -> Fault:
    """Inject a fault into the running lab and record it."""
    fault = plan(view, kind, target)
    with fault_book(run, view.identity) as book:
        active = book.find(target)
        if active is not None:
            raise LabError(
                f"{active.place} already has an active {active.kind} failure; "
                f"`srv6lab lab restore {' '.join(active.target)}` first"
            )
        try:
            apply(fault)
        except BaseException:
            undo(fault, wait=False)  # put back whatever part of it was done
            raise
        book.faults.append(fault)
    return fault


def restore(run: RunDir, view: LabView, target: Sequence[str] | None = None) -> list[Fault]:
    """Undo the recorded fault of ``target`` (all of them when None), newest first."""
    with fault_book(run, view.identity) as book:
        if target is None:
            chosen = list(book.faults)
        else:
            found = book.find(target)
            if found is None:
                active = ", ".join(f.place for f in book.faults) or "none"
                raise LabError(f"no active failure of {'-'.join(target)}; active: {active}")
            chosen = [found]
        done = []
        for fault in reversed(chosen):
            undo(fault)
            book.faults.remove(fault)
            done.append(fault)
    return done


def active(run: RunDir, view: LabView) -> list[Fault]:
    with fault_book(run, view.identity) as book:
        return list(book.faults)
