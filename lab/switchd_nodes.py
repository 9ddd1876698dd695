"""switchd in the lab's kernel switches: start one per switch inside its namespace, wait
until each listens, and publish how a controller reaches them.

Each switchd listens on a Unix socket in the run directory (namespaces share the file
system, so a controller in the root namespace connects without any data-plane address), with
device id = the switch's node id. ``<run dir>/switches.json`` lists them for controllers
(DESIGN.md: the controller never imports the lab, it reads this file)::

    {"topology": "fat-tree-4", "switches": [
        {"name": "core1", "kind": "kernel", "device_id": 257,
         "p4runtime": "unix:/run/srv6lab/switchd/core1.sock",
         "gnmi": "unix:/run/srv6lab/switchd/core1.sock",
         "ports": {"1": "core1-eth1", ...}, "netns": "srv6lab-core1",
         "log": "/run/srv6lab/switchd/core1.log"}, ...]}
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from controller.topology import Topology
from lab.errors import LabError
from lab.shell import stop_processes

READY_TIMEOUT = 60.0
BMV2_NICE = -15
"""BMv2 forwards packets in user space: on a kernel switch that is softirq work, ahead of
every process, so BMv2 runs ahead of the lab's controller and switchds (nice -10). At the
same nice as the controller, each recompute (about 300 ms of CPU on fat-tree-4) starved
20 BMv2 processes on 2 cores, and they dropped about 15 % of the probe flows' packets."""
SWITCHES_FILE = "switches.json"


@dataclass(frozen=True, slots=True)
class Bmv2PortPatch:
    """The interfaces that stand between BMv2 and one lab port inside a BMv2 switch's
    namespace. BMv2 (pcap) reads ``bmv2``, a veth whose peer ``peer`` is bridged (``bridge``)
    with the lab port. So a failure sets the lab port down (what the controller's netlink
    sees, as on a kernel switch) and ``peer`` down (BMv2's port loses carrier: its watch
    ports react), and BMv2's own interface is never set down: that freezes BMv2's packet
    thread until a packet arrives on it (behavioral-model #1215, reproduced here)."""

    bmv2: str
    peer: str
    bridge: str


def bmv2_port_patch(port: int | str) -> Bmv2PortPatch:
    """The patch interfaces of BMv2 port ``port`` (names are unique per namespace)."""
    return Bmv2PortPatch(f"bm{port}", f"bx{port}", f"br{port}")


@dataclass(frozen=True, slots=True)
class SwitchEndpoint:
    name: str
    kind: str
    device_id: int
    p4runtime: str
    gnmi: str | None
    """switchd serves gNMI on its P4Runtime socket; BMv2 has no gNMI (None)."""
    ports: dict[str, str]
    netns: str
    log: str


def start_all(
    nodes: dict[str, Any],
    topo: Topology,
    directory: Path,
    netns: dict[str, str],
    *,
    kind: str = "kernel",
) -> tuple[list[SwitchEndpoint], list[subprocess.Popen[bytes]]]:
    """Start the P4Runtime agent of every switch node (switchd for kind kernel, BMv2
    simple_switch_grpc for kind bmv2); returns the endpoints and processes once every one
    of them answers on its socket."""
    directory.mkdir(parents=True, exist_ok=True)
    endpoints: list[SwitchEndpoint] = []
    procs: list[subprocess.Popen[bytes]] = []
    for sw in topo.switches:
        sock = directory / f"{sw.name}.sock"
        sock.unlink(missing_ok=True)
        # A new lab has new switches: no pipeline saved by an earlier lab's switchd.
        shutil.rmtree(directory / sw.name, ignore_errors=True)
        endpoint = SwitchEndpoint(
            name=sw.name,
            kind=kind,
            device_id=sw.node_id,
            p4runtime=f"unix:{sock}",
            gnmi=f"unix:{sock}" if kind == "kernel" else None,
            ports={str(i.port): i.name for i in topo.interfaces_of(sw.name)},
            netns=netns[sw.name],
            log=str(directory / f"{sw.name}.log"),
        )
        endpoints.append(endpoint)
        if kind == "bmv2":
            procs.append(start_bmv2(endpoint))
        else:
            procs.append(start_switchd(nodes[sw.name], endpoint))
    try:
        wait_ready(endpoints, procs)
    except BaseException:
        stop_processes(procs)
        raise
    return endpoints, procs


def start_switchd(node: Any, endpoint: SwitchEndpoint) -> subprocess.Popen[bytes]:
    """Start one switchd inside ``node``'s namespace (log appended to endpoint.log), at
    the lab's control priority (lab.controller_proc.CONTROL_NICE)."""
    from lab.controller_proc import control_priority

    log = Path(endpoint.log)
    directory = log.parent
    cmd = control_priority([
        sys.executable, "-m", "switchd.cli",
        "--listen", endpoint.p4runtime,
        "--device-id", str(endpoint.device_id),
        "--state-dir", str(directory / endpoint.name),
        "--ports", ",".join(f"{p}={n}" for p, n in endpoint.ports.items()),
    ])  # fmt: skip
    with log.open("ab") as out:
        proc: subprocess.Popen[bytes] = node.popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    return proc


def start_bmv2(endpoint: SwitchEndpoint) -> subprocess.Popen[bytes]:
    """Start simple_switch_grpc with no program (the controller pushes srv6.json) in the
    switch's namespace, on each port's patch interface (:class:`Bmv2PortPatch`). Through
    ``ip netns exec``, which mounts the namespace's own sysfs: BMv2 reads its ports' state
    there and forwards nothing when it sees the host's. BMv2 is the switch's data plane,
    so it runs ahead of the lab's control processes (:data:`BMV2_NICE`)."""
    from lab.controller_proc import control_priority
    from lab.nodes import bmv2_binary, bmv2_log_level

    log = Path(endpoint.log)
    base = log.with_suffix("")
    cmd = control_priority([
        "ip", "netns", "exec", endpoint.netns, bmv2_binary(), "--no-p4",
        "--device-id", str(endpoint.device_id),
        "--thrift-port", "9090",  # its own namespace: no clash with other switches
        "--log-file", str(base), "--log-flush", "--log-level", bmv2_log_level(),
        "--notifications-addr", f"ipc://{base}.notifications.ipc",
        *(arg for p in endpoint.ports for arg in ("-i", f"{p}@{bmv2_port_patch(p).bmv2}")),
        "--", "--grpc-server-addr", endpoint.p4runtime,
    ], BMV2_NICE)  # fmt: skip
    with log.open("ab") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)


def wait_ready(
    endpoints: list[SwitchEndpoint],
    procs: list[subprocess.Popen[bytes]],
    timeout: float = READY_TIMEOUT,
) -> None:
    """Wait until every switchd answers gRPC on its socket (or say which one died)."""
    import grpc

    deadline = time.monotonic() + timeout
    for endpoint, proc in zip(endpoints, procs, strict=True):
        with grpc.insecure_channel(endpoint.p4runtime) as channel:
            ready = grpc.channel_ready_future(channel)
            while True:
                try:
                    ready.result(timeout=0.1)
                    break
                except grpc.FutureTimeoutError:
                    pass
                if proc.poll() is not None:
                    raise LabError(
                        f"switchd of {endpoint.name} exited ({proc.returncode}) before it "
                        f"listened; its log:\n{_tail(Path(endpoint.log))}"
                    )
                if time.monotonic() > deadline:
                    raise LabError(
                        f"switchd of {endpoint.name} did not listen on {endpoint.p4runtime} "
                        f"within {timeout:g} s; its log:\n{_tail(Path(endpoint.log))}"
                    )


def write_switches_file(run_dir: Path, topology: str, endpoints: list[SwitchEndpoint]) -> Path:
    path = run_dir / SWITCHES_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(
        json.dumps({"topology": topology, "switches": [asdict(e) for e in endpoints]}, indent=2)
    )
    tmp.replace(path)
    return path


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
