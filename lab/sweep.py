"""Find and remove what a lab run left behind: processes in the lab's namespaces, the named
namespaces ``srv6lab-<node>``, root-namespace interfaces with the lab's interface names, the
state file. Never guesses by name pattern or process name alone and never runs ``mn -c``.

Only what the run directory's state file claims is touched: the namespaces of its nodes and
its interface names. Other namespaces that merely start with ``srv6lab-`` (a lab of another
run directory, another tool's test namespaces) are reported, never removed. A claimed
namespace whose node shell still has a live parent belongs to a running lab and is left
alone too.
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
    """Claimed namespaces that a running lab still uses, left alone."""
    unclaimed: list[str] = field(default_factory=list)
    """Namespaces named ``srv6lab-*`` that no state of this run directory claims."""

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


def claimed_namespaces(state: LabState | None) -> list[str]:
    """The namespace names a lab state claims (whether or not they exist)."""
    if state is None:
        return []
    return [namespaces.netns_name(node, state.netns_prefix) for node in state.node_names]


def sweep(run: RunDir, state: LabState | None) -> SweepReport:
    """Remove the leftovers of the lab run that ``state`` describes. Call it holding the
    run directory's lock, when no lab of this run directory runs."""
    report = SweepReport()
    existing = set(namespaces.lab_netns_names())
    if state is not None:
        existing |= set(namespaces.lab_netns_names(state.netns_prefix))
    claimed = [name for name in claimed_namespaces(state) if name in existing]
    report.unclaimed = sorted(existing - set(claimed))
    names = []
    for name in claimed:
        owner = live_owner(name)
        if owner is None:
            names.append(name)
        else:
            report.skipped.append(f"{name} (node shell pid {owner.pid}, lab pid {owner.ppid})")
    inodes = {inode for inode in map(namespaces.netns_inode, names) if inode is not None}
    if state is not None:
        inodes |= _recorded_inodes(state)
    procs = namespaces.processes_in(inodes)
    namespaces.terminate([p.pid for p in procs])
    report.processes = [str(p) for p in procs]
    report.namespaces = namespaces.delete(sorted(names))
    if state is not None:
        report.interfaces = _delete_root_interfaces(state.interface_names)
    if remove_state(run.state_path):
        report.state_file = str(run.state_path)
    return report


def live_owner(name: str) -> namespaces.Process | None:
    """The node shell in namespace ``name`` whose parent (the lab process) still runs."""
    inode = namespaces.netns_inode(name)
    if inode is None:
        return None
    for proc in namespaces.processes_in([inode]):
        if proc.node_shell is not None and proc.ppid > 1 and namespaces.is_alive(proc.ppid):
            return proc
    return None


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
