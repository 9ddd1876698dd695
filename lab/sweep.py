"""Find and remove what a lab run left behind: processes in the lab's namespaces, named
namespaces ``srv6lab-*``, root-namespace interfaces with the lab's interface names, the
state file. Never guesses by process name alone and never runs ``mn -c``.

A namespace named ``srv6lab-*`` whose node shell still has a live parent belongs to a lab
that runs (from another run directory, say); it is left alone and reported as skipped.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field

from lab import namespaces
from lab.errors import LabError
from lab.runtime import RunDir
from lab.state import LabState, remove_state


@dataclass
class SweepReport:
    processes: list[str] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)
    interfaces: list[str] = field(default_factory=list)
    state_file: str | None = None
    skipped: list[str] = field(default_factory=list)
    """Namespaces of a lab that is still running, left alone."""

    @property
    def empty(self) -> bool:
        return not (self.processes or self.namespaces or self.interfaces or self.state_file)

    def lines(self) -> list[str]:
        out = []
        for what, items in (
            ("process", self.processes),
            ("namespace", self.namespaces),
            ("interface", self.interfaces),
        ):
            if items:
                plural = "es" if what == "process" else "s"
                count = f"{len(items)} {what}{'' if len(items) == 1 else plural}"
                out.append(f"{count}: " + ", ".join(items))
        if self.state_file:
            out.append(f"the state file {self.state_file}")
        return out


def live_owners() -> dict[str, namespaces.Process]:
    """Named lab namespaces that belong to a running lab: name -> its live node shell."""
    owned = {}
    for name in namespaces.lab_netns_names():
        inode = namespaces.netns_inode(name)
        if inode is None:
            continue
        for proc in namespaces.processes_in([inode]):
            if proc.node_shell is not None and _has_live_parent(proc):
                owned[name] = proc
                break
    return owned


def _has_live_parent(proc: namespaces.Process) -> bool:
    return proc.ppid > 1 and namespaces.is_alive(proc.ppid)


def sweep(run: RunDir, state: LabState | None) -> SweepReport:
    """Remove the leftovers of a lab run. Call it holding the run directory's lock, when
    no lab of this run directory runs."""
    report = SweepReport()
    owners = live_owners()
    report.skipped = [
        f"{name} (node shell pid {proc.pid}, lab pid {proc.ppid})"
        for name, proc in sorted(owners.items())
    ]
    names = [name for name in namespaces.lab_netns_names() if name not in owners]
    inodes = {inode for inode in map(namespaces.netns_inode, names) if inode is not None}
    if state is not None:
        inodes |= _recorded_inodes(state)
    procs = namespaces.processes_in(inodes)
    namespaces.terminate([p.pid for p in procs])
    report.processes = [str(p) for p in procs]
    report.namespaces = namespaces.delete(names)
    if state is not None:
        report.interfaces = _delete_root_interfaces(state.interface_names)
    if remove_state(run.state_path):
        report.state_file = str(run.state_path)
    return report


def _recorded_inodes(state: LabState) -> set[int]:
    """Namespaces of the state's nodes that provably still are theirs: the recorded pid
    still runs that node's shell in that namespace (namespace inodes get reused)."""
    inodes = set()
    for node in state.nodes.values():
        proc = namespaces.process_info(node.pid)
        if proc is not None and proc.netns == node.netns_inode and proc.node_shell == node.name:
            inodes.add(node.netns_inode)
    return inodes


def _delete_root_interfaces(names: list[str]) -> list[str]:
    """Interfaces with the lab's names in the root namespace (a crash between creating a
    veth pair and moving it)."""
    wanted = set(names)
    if not wanted:
        return []
    listing = subprocess.run(
        ["ip", "-o", "link", "show"], capture_output=True, text=True, check=True
    ).stdout
    present = []
    for line in listing.splitlines():
        ifname = line.split(":", 2)[1].strip().split("@", 1)[0]
        if ifname in wanted:
            present.append(ifname)
    for ifname in present:
        proc = subprocess.run(
            ["ip", "link", "del", "dev", ifname], capture_output=True, text=True, check=False
        )
        if proc.returncode != 0 and "Cannot find device" not in proc.stderr:
            raise LabError(f"removing interface {ifname}: {proc.stderr.strip()}")
    return sorted(present)
