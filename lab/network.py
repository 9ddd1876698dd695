"""Build, start and stop the Mininet network of a topology: switches of one kind, IPv6
hosts, links with capped bandwidth, no controller, no IPv4. Each node's namespace is also
named ``srv6lab-<node>`` for the engineer's own tools.

"Up" (until switches are programmed by later issues) means: every node and interface
exists with its plan addresses and every interface is operationally up.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mininet.net import Mininet
from mininet.node import Node

from controller.topology import Topology
from lab import namespaces
from lab.errors import LabError
from lab.nodes import LabHost, switch_class
from lab.shell import run_commands, stop_processes
from lab.state import InterfaceInfo, NodeInfo
from lab.topo import HOST_MTU, LabTopo

StepCallback = Callable[[str], None]
"""Called with a short text as each phase of starting begins ("creating 48 links")."""

UP_TIMEOUT = 15.0
SHELL_EXIT_TIMEOUT = 3.0


class LabNetwork:
    """``LabNetwork(topology, switch_kind="kernel")``; ``start()``, then ``stop()``.

    Also a context manager. ``stop()`` removes everything ``start()`` made, also after a
    failed or interrupted start, and can be called more than once.
    """

    def __init__(
        self,
        topology: Topology,
        switch_kind: str = "kernel",
        run_dir: Path | None = None,
        host_mtu: int = HOST_MTU,
    ) -> None:
        """``run_dir``: where switchd's sockets, logs and state go, and ``switches.json``
        (see lab/switchd_nodes.py); None starts no switchd (the switches stay bare kernel
        routers). ``host_mtu``: the MTU of the host links (lab/topo.py)."""
        self.topology = topology
        self.run_dir = run_dir
        self.switchd: list[subprocess.Popen[bytes]] = []
        self.endpoints: list[Any] = []
        self.switch_kind = switch_kind
        self.switch_cls = switch_class(switch_kind)
        self.mn_topo = LabTopo(topology, switch=switch_kind, host_mtu=host_mtu)
        self.netns_prefix = namespaces.prefix()
        self.net: Any = None
        self._named: list[str] = []
        self._started = False

    # -- life cycle ------------------------------------------------------------------------

    def start(self, on_step: StepCallback | None = None) -> None:
        step = on_step or (lambda _text: None)
        if os.geteuid() != 0:
            raise LabError("the lab needs root (network namespaces, Mininet)")
        if self.net is not None:
            raise LabError(f"lab {self.topology.name} is already started")
        topo = self.topology
        self.net = Mininet(
            topo=None,
            switch=self.switch_cls,
            host=LabHost,
            controller=None,
            build=False,
            autoSetMacs=False,
        )
        try:
            step(f"starting {len(topo.switches)} switches and {len(topo.hosts)} hosts")
            for name in self.mn_topo.switches(sort=False):
                self._add_node(self.net.addSwitch, name)
            for name in self.mn_topo.hosts(sort=False):
                self._add_node(self.net.addHost, name)
            step(f"creating {len(topo.links)} links")
            for _a, _b, info in self.mn_topo.links(sort=False, withInfo=True):
                self.net.addLink(**info)
            step("configuring switch ports, host addresses and routes")
            for switch in self.net.switches:
                switch.start([])
            for host in self.net.hosts:
                host.configDefault()
            if self.switch_kind == "bmv2":
                self._software_checksums()
            count = 2 * len(topo.links)
            step(f"waiting for {count} interfaces to come up")
            self._wait_interfaces_up(UP_TIMEOUT)
            if self.run_dir is not None:
                self._start_switchd(step)
        except BaseException:
            self.stop()
            raise
        self._started = True

    def _software_checksums(self) -> None:
        """Hosts send with checksum offload: a veth leaves the UDP/TCP checksum for the
        'hardware' to fill in, which the kernel does when it forwards, but BMv2 reads the
        frame raw (pcap) and sends it on unfinished, so every host's UDP and TCP arrived
        with a bad checksum and was dropped (ICMPv6, checksummed in software, passed).
        On BMv2 labs the hosts compute their checksums themselves."""
        from lab.shell import run_commands

        for host in self.topology.hosts:
            node = self.node(host.name)
            commands = [f"ethtool -K {nic.interface.name} tx off >/dev/null" for nic in host.nics]
            run_commands(node, commands, f"turning checksum offload off on {host.name}")

    def _start_switchd(self, step: StepCallback) -> None:
        from lab import switchd_nodes

        assert self.run_dir is not None
        agent = "switchd" if self.switch_kind == "kernel" else "simple_switch_grpc"
        step(f"starting {agent} on {len(self.topology.switches)} switches")
        nodes = {s.name: self.node(s.name) for s in self.topology.switches}
        netns = {
            s.name: namespaces.netns_name(s.name, self.netns_prefix) for s in self.topology.switches
        }
        self.endpoints, self.switchd = switchd_nodes.start_all(
            nodes, self.topology, self.run_dir / "switchd", netns, kind=self.switch_kind
        )
        switchd_nodes.write_switches_file(self.run_dir, self.topology.name, self.endpoints)

    def restart_switchd(self, name: str) -> None:
        """Stop the switchd of switch ``name`` (SIGTERM: the kernel keeps forwarding) and
        start it again with the same options; returns once it listens. The new switchd
        reads its state back from the kernel."""
        from lab import switchd_nodes

        for i, endpoint in enumerate(self.endpoints):
            if endpoint.name == name:
                stop_processes([self.switchd[i]])
                if endpoint.kind != "kernel":
                    raise LabError(f"{name} runs {endpoint.kind}, not switchd")
                self.switchd[i] = switchd_nodes.start_switchd(self.node(name), endpoint)
                switchd_nodes.wait_ready([endpoint], [self.switchd[i]])
                return
        raise LabError(f"no switchd runs on {name!r}")

    def _add_node(self, add: Callable[..., Any], name: str) -> None:
        node = add(name, **self.mn_topo.nodeInfo(name))
        netns = namespaces.netns_name(name, self.netns_prefix)
        namespaces.attach(netns, node.pid)
        self._named.append(netns)

    def stop(self) -> None:
        """Remove the lab: the named namespaces, every process inside the lab's namespaces,
        the node shells (and with them the namespaces and their interfaces)."""
        net, self.net = self.net, None
        self._started = False
        if net is None:
            return
        errors: list[str] = []
        if self.switchd:
            stop_processes(self.switchd)
            self.switchd = []
        if self.run_dir is not None:
            (self.run_dir / "switches.json").unlink(missing_ok=True)
        nodes = [*net.switches, *net.hosts]
        inodes = {i for i in (namespaces.pid_netns_inode(n.pid) for n in nodes if n.pid) if i}
        try:
            namespaces.delete(self._named)
        except LabError as exc:
            errors.append(str(exc))
        self._named = []
        shells = {node.shell.pid for node in nodes if node.shell is not None}
        strays = [p.pid for p in namespaces.processes_in(inodes) if p.pid not in shells]
        names = [n.name for n in self.topology.switches] + [h.name for h in self.topology.hosts]
        strays += [p.pid for p in namespaces.child_node_shells(names) if p.pid not in shells]
        try:
            namespaces.terminate(strays)
        except LabError as exc:
            errors.append(str(exc))
        for switch in net.switches:
            try:
                switch.stop(deleteIntfs=False)
            except LabError as exc:
                errors.append(str(exc))
        for node in nodes:
            if node.shell is not None and node.shell.poll() is None:
                with contextlib.suppress(ProcessLookupError):  # gone already: fine
                    os.killpg(node.shell.pid, signal.SIGHUP)
        for node in nodes:
            if node.shell is None:
                continue
            try:
                node.shell.wait(timeout=SHELL_EXIT_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(node.shell.pid, signal.SIGKILL)
                node.shell.wait(timeout=SHELL_EXIT_TIMEOUT)
            _forget(node)
            node.cleanup()
        if errors:
            raise LabError(f"stopping lab {self.topology.name}: " + "; ".join(errors))

    def __enter__(self) -> LabNetwork:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- what runs -------------------------------------------------------------------------

    @property
    def started(self) -> bool:
        return self._started

    def node(self, name: str) -> Any:
        """The Mininet node called ``name`` (``lab.node("s1").cmd("ip -6 route")``)."""
        if self.net is None or name not in self.net.nameToNode:
            known = ", ".join(sorted(n.name for n in self._all_nodes()))
            raise LabError(f"no node {name!r} in lab {self.topology.name}; nodes: {known}")
        return self.net.nameToNode[name]

    def _all_nodes(self) -> list[Any]:
        if self.net is None:
            return []
        return [*self.net.switches, *self.net.hosts]

    def describe(self) -> list[NodeInfo]:
        """What runs, for the state file and ``lab status``: each node's pid, namespace and
        interfaces with the plan's addresses."""
        topo = self.topology
        peers: dict[tuple[str, str], str] = {}
        for link in topo.links:
            peers[(link.a.node, link.a.name)] = link.b.endpoint
            peers[(link.b.node, link.b.name)] = link.a.endpoint
        host_addresses: dict[str, tuple[str, ...]] = {}
        for host in topo.hosts:
            for nic in host.nics:
                host_addresses[nic.interface.name] = (f"{nic.address}/{nic.prefix.prefixlen}",)
        out = []
        for node in self._all_nodes():
            is_switch = topo.is_switch(node.name)
            interfaces = tuple(
                InterfaceInfo(
                    name=intf.name,
                    mac=intf.mac,
                    link_local=f"{intf.link_local}/64",
                    addresses=host_addresses.get(intf.name, ()),
                    peer=peers[(node.name, intf.name)],
                )
                for intf in topo.interfaces_of(node.name)
            )
            inode = namespaces.pid_netns_inode(node.pid)
            if inode is None:
                raise LabError(f"node {node.name} (pid {node.pid}) is gone")
            out.append(
                NodeInfo(
                    name=node.name,
                    kind="switch" if is_switch else "host",
                    switch_kind=self.switch_kind if is_switch else None,
                    pid=node.pid,
                    netns=namespaces.netns_name(node.name, self.netns_prefix),
                    netns_inode=inode,
                    interfaces=interfaces,
                )
            )
        return out

    def _wait_interfaces_up(self, timeout: float) -> None:
        """Wait until every lab interface is operationally up (carrier on both ends)."""
        pending = {
            node.name: {i.name for i in self.topology.interfaces_of(node.name)}
            for node in self._all_nodes()
        }
        deadline = time.monotonic() + timeout
        delay = 0.005
        while True:
            for name in list(pending):
                output = run_commands(self.node(name), ["ip -o link show up"], "listing links")
                for line in output.splitlines():
                    ifname = line.split(":", 2)[1].strip().split("@", 1)[0]
                    if "state UP" in line:
                        pending[name].discard(ifname)
                if not pending[name]:
                    del pending[name]
            if not pending:
                return
            if time.monotonic() >= deadline:
                down = ", ".join(
                    f"{n}:{i}" for n, ifs in sorted(pending.items()) for i in sorted(ifs)
                )
                raise LabError(f"interfaces still not up after {timeout:g} s: {down}")
            time.sleep(delay)  # polling the kernel's operstate; links come up within ms
            delay = min(delay * 2, 0.1)


def _forget(node: Any) -> None:
    """Drop Mininet's class-wide fd -> node maps for a node whose shell is gone, so that
    nodes of earlier labs are not kept alive (and their fds not confused with new ones)."""
    if node.stdout is None or node.stdout.closed:
        return
    fd = node.stdout.fileno()
    Node.outToNode.pop(fd, None)
    Node.inToNode.pop(fd, None)
