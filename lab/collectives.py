"""``srv6lab bench collectives``: one collective, three ways through the same fabric, with
the same failure.

- ``ecmp``: TCP between the hosts' primary addresses, routed by the controller's
  connectivity intent (ECMP groups; the kernel hashes flows with L4 hashing).
- ``pinned``: the controller's collective intent places every flow on its own SRv6 path
  (headend policies at the ingress switches); a flow placed on a host's second plane uses
  that plane's NIC addresses, so that the traffic takes the placed path. Between hosts
  with a NIC in each of several planes, every flow is one channel per plane
  (:func:`controller.paths.collective_channels`): one TCP connection from the source's NIC
  in that plane to the destination's, with 1/P of the bytes, on the channel's placed path
  (the headend policies are per destination prefix, so the plane's addresses select it).
- ``spray``: :mod:`lab.traffic.spray`, with each flow's disjoint paths from the
  controller's GetPaths API.

The lab runs the controller (it programs connectivity, answers GetPaths and holds the
pinned intent). The bench reads every switch port's byte counters before and after a run:
the loads the switches really carried. With ``--fail``, the link fails a third of the way
into the third iteration and is restored ``failed_s`` later; the progress lost is the extra
completion time of the iterations that overlapped the failure, over the median of those
that did not (and, when some ran entirely inside it, what it cost beyond the capacity the
link took with it: :func:`progress_lost`).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import select
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from controller.analysis import analyze_ecmp, ideal_pressure
from controller.paths import Flow, Pattern, collective_channels, collective_flows
from controller.topology import Topology
from lab.convergence import controller_timeline_of
from lab.errors import LabError
from lab.faults import Fault, LabView, fail, restore
from lab.session import RunningLab
from lab.shell import close_pipes, stop_processes
from lab.traffic.collective import GAP_MIN_NS, gap_key
from lab.traffic.collective_run import PACE_HEADROOM, FlowSpec, RunSpec, tcp_mss
from lab.traffic.loss import percentile
from lab.traffic.spray import (
    ACK_TABLE,
    CS6,
    TABLE,
    HostRoute,
    SprayConfig,
    SprayPath,
    rule_commands,
)
from lab.traffic.spray_partition import default_workers

MODES = ("ecmp", "pinned", "spray")
Progress = Callable[[str], None]
TRAFFIC_PATTERN = {"all-to-all": "all-to-all", "ring": "all-reduce"}


@dataclass(frozen=True)
class BenchConfig:
    pattern: Pattern = "all-to-all"
    modes: tuple[str, ...] = MODES
    hosts: tuple[str, ...] = ()
    size: int = 1024 * 1024
    iterations: int = 8
    fail: tuple[str, str] | None = None
    kind: str = "gray"
    failed_s: float = 1.0
    spray_k: int = 4
    spray: SprayConfig = field(default_factory=SprayConfig)
    pace_headroom: float = PACE_HEADROOM
    ack_tclass: int = CS6
    """TCP modes: traffic class of the receivers' acks (CS6: the links' priority lane)."""
    pace: bool = True
    """Pace the senders to their NICs (lab.traffic.collective_run.TcpPacer for TCP, the
    spray engine's NIC token buckets)."""
    mtu: int = 1500
    """The hosts' MTU (the lab's host links; TCP's MSS clamp follows it; spray's packet
    size is ``spray.packet``, which the caller sizes from it)."""
    spray_workers: int = 0
    """Spray: worker processes, each running the spray of a part of the hosts (0: one
    per CPU core, at most one per host)."""
    oracle: bool = False
    """Spray with ``fail``, measurement only: tell the spraying hosts the moment the link
    fails and comes back (``RunSpec.oracle_file``), so that a run shows what the failure
    costs hosts that need no detection; the difference to a run without is what
    detection costs."""


def scaled_topology(source: Path, mbps: float, out: Path) -> Path:
    """A copy of the topology file with every link capped at ``mbps`` (same names, same
    addressing): the rate the CPU can keep up with."""
    raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    raw.setdefault("defaults", {})["bandwidth"] = mbps
    for link in raw.get("links", []):
        if isinstance(link, dict):
            link.pop("bandwidth", None)
    out.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return out


# -- counters ------------------------------------------------------------------------------


def port_bytes(topo: Topology, view: LabView) -> dict[str, int]:
    """Bytes per link direction ``"a->b"`` as the switches count them: a switch's tx on
    its port; toward a switch from a host: the switch's rx on its port."""
    out: dict[str, int] = {}
    for sw in topo.switches:
        proc = subprocess.run(
            ["ip", "-n", view.netns(sw.name), "-s", "-j", "link"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            raise LabError(f"cannot read the counters of {sw.name}: {proc.stderr.strip()}")
        stats = {i["ifname"]: i.get("stats64", {}) for i in json.loads(proc.stdout)}
        for link in topo.links_of(sw.name):
            mine = link.interface_at(sw.name)
            peer = link.peer_of(sw.name).node
            st = stats.get(mine.name)
            if st is None:
                continue
            out[f"{sw.name}->{peer}"] = int(st["tx"]["bytes"])
            if not topo.is_switch(peer):
                out[f"{peer}->{sw.name}"] = int(st["rx"]["bytes"])
    return out


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items()}


TCP_COUNTERS = (
    "Tcp:OutSegs",
    "Tcp:RetransSegs",
    "TcpExt:TCPTimeouts",
    "TcpExt:TCPLossProbes",
    "TcpExt:TCPLossProbeRecovery",
    "TcpExt:TCPSackRecovery",
    "TcpExt:TCPFastRetrans",
    "TcpExt:TCPSpuriousRTOs",
    "TcpExt:TCPDSACKRecv",
    "TcpExt:TCPSlowStartRetrans",
    "TcpExt:TCPLostRetransmit",
)
"""The kernel's TCP counters a bench reads from the hosts: segments sent, retransmitted, and
how the losses were recovered (a retransmission timeout costs at least ``rto_min``)."""


def parse_proc_counters(text: str) -> dict[str, int]:
    """``/proc/net/snmp`` and ``/proc/net/netstat`` (header line, value line per group)
    as ``"Group:Name" -> value``."""
    out: dict[str, int] = {}
    lines = text.splitlines()
    for head, values in itertools.pairwise(lines):
        group, _, names = head.partition(":")
        vgroup, _, nums = values.partition(":")
        if group != vgroup or not names.strip() or not nums.strip()[:1].lstrip("-").isdigit():
            continue
        for name, num in zip(names.split(), nums.split(), strict=False):
            try:
                out[f"{group}:{name}"] = int(num)
            except ValueError:
                continue
    return out


def tcp_counters(view: LabView, hosts: tuple[str, ...]) -> dict[str, int]:
    """The sum over ``hosts`` of :data:`TCP_COUNTERS` (each host is its own namespace)."""
    total = dict.fromkeys(TCP_COUNTERS, 0)
    for host in hosts:
        proc = subprocess.run(
            ["ip", "netns", "exec", view.netns(host), "cat", "/proc/net/snmp",
             "/proc/net/netstat"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            raise LabError(f"cannot read the TCP counters of {host}: {proc.stderr.strip()}")
        counters = parse_proc_counters(proc.stdout)
        for key in TCP_COUNTERS:
            total[key] += counters.get(key, 0)
    return total


# -- per mode ------------------------------------------------------------------------------


def _nic_addr(topo: Topology, host: str, switch: str) -> str:
    for nic in topo.host(host).nics:
        if nic.switch == switch:
            return str(nic.address)
    raise LabError(f"{host} has no NIC on {switch}")


def _plane_addr(topo: Topology, host: str, plane: int) -> str:
    for nic in topo.host(host).nics:
        if nic.plane == plane:
            return str(nic.address)
    raise LabError(f"{host} has no NIC in plane {plane}")


def tcp_flows(
    topo: Topology, hosts: tuple[str, ...], flows: list[Flow], paths: dict[Flow, list[str]]
) -> tuple[FlowSpec, ...]:
    """Per flow or channel: the addresses that make its traffic take ``paths[flow]`` (the
    NICs on the path's first and last switch); for a channel (``plane`` set) without a
    path (both hosts on one switch: plain routing), its plane's NICs; else the hosts'
    primary addresses. A flow's channels are numbered in order."""
    rank = {h: i for i, h in enumerate(hosts)}
    channel: dict[Flow, int] = {}
    out = []
    for f in flows:
        nodes = paths.get(f)
        if nodes:
            src_addr, dst_addr = _nic_addr(topo, f.src, nodes[1]), _nic_addr(topo, f.dst, nodes[-2])
        elif f.plane is not None:
            src_addr, dst_addr = (
                _plane_addr(topo, f.src, f.plane),
                _plane_addr(topo, f.dst, f.plane),
            )
        else:
            src_addr, dst_addr = str(topo.host(f.src).address), str(topo.host(f.dst).address)
        index = channel[f.parent] = channel.get(f.parent, -1) + 1
        out.append(FlowSpec(rank[f.src], rank[f.dst], src_addr, dst_addr, channel=index))
    return tuple(out)


def placed_channels(
    topo: Topology, channels: list[Flow], paths: list[list[str]]
) -> dict[Flow, list[str]]:
    """The intent's paths by the channel they carry: a path from a host's NIC in plane p
    carries the flow's channel in plane p when the flow has channels, else the flow.
    Raises :class:`LabError` for a path that is neither (the controller placed something
    else than the lab expects)."""
    known = set(channels)
    out: dict[Flow, list[str]] = {}
    for nodes in paths:
        whole = Flow(nodes[0], nodes[-1])
        plane = topo.switch(nodes[1]).plane if topo.is_switch(nodes[1]) else None
        key = Flow(whole.src, whole.dst, plane) if plane is not None else whole
        if key not in known:
            key = whole
        if key not in known:
            raise LabError(
                f"pinned: the intent's path {' -> '.join(nodes)} is not one of the "
                "collective's flows or channels"
            )
        out[key] = nodes
    return out


def nic_rates(topo: Topology, hosts: tuple[str, ...]) -> tuple[tuple[int, str, float], ...]:
    """(rank, address, Mbit/s) of every NIC of the collective's hosts: what the senders
    pace to."""
    return tuple(
        (rank, str(nic.address), topo.link(host, nic.switch).bandwidth_mbps)
        for rank, host in enumerate(hosts)
        for nic in topo.host(host).nics
    )


def pinned_intent(address: str, hosts: tuple[str, ...], pattern: str) -> tuple[str, Any]:
    from controller.client import ApiError, call, stub
    from controller.northbound import srv6lab_pb2 as pb

    api = stub(address)
    spec = pb.IntentSpec(collective=pb.Collective(hosts=list(hosts), pattern=pattern))
    try:
        intent = call(api.CreateIntent, pb.CreateIntentRequest(spec=spec), address)
    except ApiError as exc:
        raise LabError(f"pinned: the controller refused the collective intent: {exc}") from None
    return str(intent.id), intent


def delete_intent(address: str, intent_id: str) -> None:
    from controller.client import call, stub
    from controller.northbound import srv6lab_pb2 as pb

    call(stub(address).DeleteIntent, pb.DeleteIntentRequest(id=intent_id), address)


def get_paths(
    address: str, src: str, dst: str, k: int, spread: int = 0
) -> list[tuple[list[str], str]]:
    """Up to ``k`` edge-disjoint paths from the controller (GetPaths, with ``spread`` as
    its salt among equal-cost sets): (nodes, first SID)."""
    from controller.client import ApiError, call, stub
    from controller.northbound import srv6lab_pb2 as pb

    api = stub(address)
    try:
        resp = call(api.GetPaths, pb.GetPathsRequest(src=src, dst=dst, k=k, spread=spread), address)
    except ApiError as exc:
        available = _available(str(exc))
        if available is None or available < 1:
            raise
        resp = call(
            api.GetPaths,
            pb.GetPathsRequest(src=src, dst=dst, k=available, spread=spread),
            address,
        )
    out = []
    for p in resp.paths:
        if len(p.sids) != 1:
            raise LabError(
                f"GetPaths {src}->{dst}: path {' -> '.join(p.nodes)} needs {len(p.sids)} "
                "SIDs; host-side spraying sends one uSID container (no SRH: the SR "
                "domain's edge drops SRHs from hosts)"
            )
        out.append((list(p.nodes), str(p.sids[0])))
    return out


def _available(message: str) -> int | None:
    import re

    m = re.search(r"only (\d+) ", message)
    return int(m.group(1)) if m else None


def spray_flows(
    topo: Topology, address: str, hosts: tuple[str, ...], flows: list[Flow], k: int
) -> tuple[tuple[FlowSpec, ...], dict[str, list[HostRoute]]]:
    """Each flow's paths from GetPaths, their reverses (GetPaths the other way, matched by
    nodes; compiled here when the controller's reverse set differs), and the host routes
    spraying needs, per host.

    Every GetPaths asks with the destination's index among the hosts as its salt
    (:func:`controller.paths.spread_salt`, D-mod-k), the reverse queries too: without it
    every pair's disjoint paths crossed the same equal-cost links (on fat-tree-4 cores 1
    and 3, while 2 and 4 idled). ``analyze ecmp`` predicts spray with the same salt."""
    from controller.compiler import segment_list
    from controller.paths import spread_salt

    rank = {h: i for i, h in enumerate(hosts)}
    cache: dict[tuple[str, str], list[tuple[list[str], str]]] = {}

    def paths(a: str, b: str) -> list[tuple[list[str], str]]:
        if (a, b) not in cache:
            cache[(a, b)] = get_paths(address, a, b, k, spread_salt(hosts, b))
        return cache[(a, b)]

    routes: dict[str, list[HostRoute]] = {h: [] for h in hosts}
    out = []
    for f in flows:
        fwd = paths(f.src, f.dst)
        back = {tuple(n): sid for n, sid in paths(f.dst, f.src)}
        sp = []
        for i, (nodes, sid) in enumerate(fwd):
            rev_nodes = tuple(reversed(nodes))
            rsid = back.get(rev_nodes) or str(segment_list(topo, rev_nodes).sids[0])
            src_nic = next(n for n in topo.host(f.src).nics if n.switch == nodes[1])
            dst_nic = next(n for n in topo.host(f.dst).nics if n.switch == nodes[-2])
            p = SprayPath(i, tuple(nodes), str(src_nic.address), str(dst_nic.address), sid, rsid)
            sp.append(p)
            fwd_gw, back_gw = str(src_nic.gateway), str(dst_nic.gateway)
            routes[f.src].append(
                HostRoute(TABLE + i, p.dst_addr, sid, fwd_gw, src_nic.interface.name)
            )
            routes[f.dst].append(
                HostRoute(ACK_TABLE + i, p.src_addr, rsid, back_gw, dst_nic.interface.name)
            )
        out.append(FlowSpec(rank[f.src], rank[f.dst], sp[0].src_addr, sp[0].dst_addr, tuple(sp)))
    return tuple(out), routes


def _ip_batch(ns: str, lines: list[str], check: bool = True) -> None:
    proc = subprocess.run(
        ["ip", "-6", "-n", ns, "-force", "-batch", "-"],
        input="\n".join(lines) + "\n", capture_output=True, text=True, check=False,
    )  # fmt: skip
    if check and proc.returncode != 0:
        raise LabError(f"spray routes in {ns}: {proc.stderr.strip()[-500:]}")


def install_spray_routes(view: LabView, routes: dict[str, list[HostRoute]], k: int) -> None:
    for host, rs in routes.items():
        lines = rule_commands(k, add=True)
        for r in rs:
            lines += r.commands()
        _ip_batch(view.netns(host), lines)


def remove_spray_routes(view: LabView, hosts: tuple[str, ...], k: int) -> None:
    for host in hosts:
        lines = rule_commands(k, add=False)
        for i in range(k):
            lines += [f"route flush table {TABLE + i}", f"route flush table {ACK_TABLE + i}"]
        _ip_batch(view.netns(host), lines, check=False)


# -- running ------------------------------------------------------------------------------


class Generator:
    """The generator process (lab.traffic.collective_run); killed on exit, also on error."""

    def __init__(self, spec: RunSpec, out: Path) -> None:
        self.spec = spec
        self.out = out
        self.proc: subprocess.Popen[str] | None = None
        self.ready_ns = 0
        self.iterations: list[tuple[int, int]] = []

    def __enter__(self) -> Generator:
        self.out.unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lab.traffic.collective_run", str(self.out)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.proc.stdin is not None
        self.proc.stdin.write(self.spec.to_json() + "\n")
        self.proc.stdin.flush()
        line = self.line(60.0)
        if not line.startswith("READY "):
            raise LabError(f"collective generator did not start: {line or self._stderr()}")
        self.ready_ns = int(line.split()[1])
        return self

    def line(self, timeout: float) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], max(0.0, timeout))
        if not ready:
            return ""
        text = self.proc.stdout.readline().strip()
        if not text and self.proc.poll() is not None:
            return f"EXIT {self._stderr()}"
        if text.startswith("ITER "):
            _, idx, ns = text.split()
            self.iterations.append((int(idx), int(ns)))
        return text

    def _stderr(self) -> str:
        assert self.proc is not None
        if self.proc.poll() is None or self.proc.stderr is None:
            return "(no output)"
        return self.proc.stderr.read().strip()[-2000:] or f"exit status {self.proc.returncode}"

    def wait_done(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LabError(f"collective generator: not done after {timeout:.0f} s")
            line = self.line(left)
            if line == "DONE":
                break
            if line.startswith(("ERROR", "EXIT")):
                raise LabError(f"collective generator failed: {line}")
        assert self.proc is not None
        self.proc.wait(timeout=10)
        result: dict[str, Any] = json.loads(self.out.read_text(encoding="utf-8"))
        return result

    def __exit__(self, *_exc: object) -> None:
        if self.proc is None:
            return
        stop_processes([self.proc])
        close_pipes(self.proc)


def ideal_cct_ms(topo: Topology, flows: list[Flow], pattern: str, size: int, n: int) -> float:
    """The host-cut bound: payload bytes of the busiest host over all its NICs."""
    steps = 2 * (n - 1) if pattern == "ring" else 1
    flow_bytes = steps * size / n
    return ideal_pressure(topo, flows) * flow_bytes * 8 / 1e6 * 1e3


def run_mode(
    topo: Topology,
    lab: RunningLab,
    *,
    view: LabView,
    cfg: BenchConfig,
    mode: str,
    workdir: Path,
    say: Progress,
) -> dict[str, Any]:
    assert lab.controller is not None
    address = lab.controller.address
    hosts = cfg.hosts
    flows = collective_flows(list(hosts), cfg.pattern)
    netns = tuple(view.netns(h) for h in hosts)
    info: dict[str, Any] = {}
    routes_of: dict[str, list[list[str]] | None]
    """Per flow (``gap_key``): the paths of its packets and acks; None: unknown."""
    intent_id = None
    spray_routes = False
    try:
        if mode == "ecmp":
            specs = tcp_flows(topo, hosts, flows, {})
            transport = "tcp"
            routes_of = {gap_key(s.src, s.dst, s.channel): None for s in specs}
        elif mode == "pinned":
            intent_id, intent = pinned_intent(address, hosts, cfg.pattern)
            channels, _demand = collective_channels(topo.graph, list(hosts), cfg.pattern)
            placed = placed_channels(topo, channels, [list(p.nodes) for p in intent.paths])
            info["intent"] = intent_id
            info["paths"] = {str(f): placed.get(f) for f in channels}
            info["channels_per_flow"] = sorted(
                {sum(1 for c in channels if c.parent == f) for f in flows}
            )
            specs = tcp_flows(topo, hosts, channels, placed)
            transport = "tcp"
            # A connection's acks take the reverse connection's path (a ring has none).
            routes_of = {
                gap_key(s.src, s.dst, s.channel): [
                    nodes
                    for nodes in (placed.get(c), placed.get(Flow(c.dst, c.src, c.plane)))
                    if nodes
                ]
                for c, s in zip(channels, specs, strict=True)
            }
            say(
                f"pinned: intent {intent_id} holds {len(intent.paths)} paths; "
                f"{len(channels)} connections for {len(flows)} flows"
            )
        elif mode == "spray":
            specs, routes = spray_flows(topo, address, hosts, flows, cfg.spray_k)
            install_spray_routes(view, routes, cfg.spray_k)
            spray_routes = True
            routes_of = {gap_key(s.src, s.dst): [list(p.nodes) for p in s.paths] for s in specs}
            ks = sorted({len(s.paths) for s in specs})
            info["paths_per_flow"] = ks
            info["paths"] = {
                str(f): [list(p.nodes) for p in s.paths] for f, s in zip(flows, specs, strict=True)
            }
            say(f"spray: {'/'.join(map(str, ks))} disjoint paths per flow from GetPaths")
            transport = "spray"
        else:
            raise LabError(f"--mode {mode!r}: not one of {', '.join(MODES)}")
        oracle = (
            workdir / f"oracle-{mode}"
            if cfg.oracle and transport == "spray" and cfg.fail is not None
            else None
        )
        if oracle is not None:
            info["oracle"] = True
        spec = RunSpec(transport, TRAFFIC_PATTERN[cfg.pattern], hosts, netns, specs, cfg.size,
                       cfg.iterations, cfg.spray,
                       nic_rates(topo, hosts) if cfg.pace else (),
                       cfg.pace_headroom, cfg.ack_tclass, cfg.mtu,
                       spray_workers=cfg.spray_workers,
                       oracle_file=str(oracle) if oracle else "")  # fmt: skip
        before = port_bytes(topo, view)
        tcp_before = tcp_counters(view, hosts)
        load_before = os.getloadavg()
        fault: Fault | None = None
        with Generator(spec, workdir / f"collective-{mode}.json") as gen:
            t0 = time.monotonic()
            say(f"{mode}: running {cfg.iterations} iterations")
            if cfg.fail is not None:
                fault = _fail_mid_run(lab, view, cfg, gen, say, oracle=oracle)
            result = gen.wait_done(600.0)
            elapsed = time.monotonic() - t0
        after = port_bytes(topo, view)
        tcp_after = tcp_counters(view, hosts)
        load_after = os.getloadavg()
    finally:
        if intent_id is not None:
            delete_intent(address, intent_id)
        if spray_routes:
            remove_spray_routes(view, hosts, cfg.spray_k)
    bytes_ = delta(after, before)
    util = {
        k: v * 8 / (elapsed * 1e6 * _bw(topo, k)) for k, v in bytes_.items() if v > 0
    }  # fmt: skip
    hottest = max(util, key=lambda k: util[k]) if util else None
    cct = [it["cct_ms"] for it in result["iterations"]]
    out: dict[str, Any] = {
        "cct_ms": cct,
        "iterations": result["iterations"],
        "max_link_utilization": util[hottest] if hottest else 0.0,
        "hottest_link": hottest,
        "link_bytes": bytes_,
        "link_utilization": util,
        "seconds": elapsed,
        "load_average": {"before": list(load_before), "after": list(load_after)},
        "tcp_counters": delta(tcp_after, tcp_before),
        **info,
    }
    gaps = result.get("delivery_gaps") or result.get("spray", {}).pop("delivery_gaps", {})
    if "spray" in result:
        out["spray"] = result["spray"]
    if fault is not None:
        out["fault"] = _fault_json(fault)
        out.update(_progress_lost(result["iterations"], fault))
        assert cfg.fail is not None and fault.applied is not None and fault.restored is not None
        windows = recovery_windows(
            gaps, routes_of, cfg.fail, fault.applied.monotonic_ns, fault.restored.monotonic_ns
        )
        for part in ("by_flow", "spans"):
            windows[part] = {_flow_name(k, hosts): v for k, v in windows[part].items()}
        out["recovery_window_ms"] = windows
        out["controller_timeline"] = controller_timeline_of(lab)(fault)
    else:
        out["clean_iterations"] = list(range(len(cct)))
        out["cct_ms_median"] = statistics.median(cct) if cct else None
    return out


def _bw(topo: Topology, direction: str) -> float:
    a, _, b = direction.partition("->")
    return topo.link(a, b).bandwidth_mbps


def _fail_mid_run(
    lab: RunningLab,
    view: LabView,
    cfg: BenchConfig,
    gen: Generator,
    say: Progress,
    *,
    oracle: Path | None = None,
) -> Fault:
    """Fail the link a third of the way into the third iteration (after two have set the
    pace); restore it ``failed_s`` later. ``oracle``: the file that tells the spraying
    hosts (``down A B`` once the failure is in place, ``up A B`` once it is undone)."""
    assert cfg.fail is not None
    while len(gen.iterations) < 2:
        line = gen.line(120.0)
        if not line or line.startswith(("ERROR", "EXIT", "DONE")):
            raise LabError(f"collective generator stopped before the failure: {line}")
    second = gen.iterations[1][1]
    per = (second - gen.ready_ns) / 2 / 1e9
    due = second / 1e9 + per / 3
    _drain_until(gen, due)
    fault = fail(lab.run, view, cfg.kind, list(cfg.fail))
    if oracle is not None:
        _tell(oracle, "down", cfg.fail)
    say(f"{cfg.kind} failure of {'-'.join(cfg.fail)} injected ({fault.models})")
    assert fault.injected is not None
    _drain_until(gen, fault.injected.monotonic_ns / 1e9 + cfg.failed_s)
    (fault,) = restore(lab.run, view, list(cfg.fail))
    if oracle is not None:
        _tell(oracle, "up", cfg.fail)
    say(f"{'-'.join(cfg.fail)} restored" + ("; the spraying hosts were told" if oracle else ""))
    return fault


def _tell(oracle: Path, word: str, link: tuple[str, str]) -> None:
    """Append a line to the oracle file, atomically (the engines read it whole)."""
    lines = oracle.read_text(encoding="utf-8") if oracle.exists() else ""
    tmp = oracle.with_suffix(".tmp")
    tmp.write_text(f"{lines}{word} {link[0]} {link[1]}\n", encoding="utf-8")
    os.replace(tmp, oracle)


def _drain_until(gen: Generator, deadline_s: float) -> None:
    while (left := deadline_s - time.monotonic()) > 0:
        line = gen.line(left)
        if line.startswith(("ERROR", "EXIT")):
            raise LabError(f"collective generator failed: {line}")
        if line == "DONE":
            raise LabError("collective generator finished before the failure was over")


def _fault_json(fault: Fault) -> dict[str, Any]:
    def ns(stamp: Any) -> int | None:
        return None if stamp is None else int(stamp.monotonic_ns)

    return {
        "kind": fault.kind,
        "place": "-".join(fault.target),
        "models": fault.models,
        "injected_ns": ns(fault.injected),
        "applied_ns": ns(fault.applied),
        "restored_ns": ns(fault.restored),
        "restore_done_ns": ns(fault.restore_done),
    }


def _progress_lost(iterations: list[dict[str, Any]], fault: Fault) -> dict[str, Any]:
    assert fault.injected is not None and fault.restore_done is not None
    return progress_lost(iterations, fault.injected.monotonic_ns, fault.restore_done.monotonic_ns)


def progress_lost(iterations: list[dict[str, Any]], start: int, end: int) -> dict[str, Any]:
    """What a failure from ``start`` to ``end`` (monotonic ns) cost the collective: the
    extra completion time of the iterations that overlapped it over the median of the
    others (``progress_lost_ms``). When some iterations ran entirely inside the failure
    (``--failed-for`` longer than an iteration), their median is the fabric's pace without
    the link (``degraded_cct_ms``), and ``progress_lost_beyond_capacity_ms`` is what the
    failure cost beyond that: the failure's iterations over the mix of the two paces that
    each one's time before and inside the failure calls for, summed (an iteration faster
    than its mix makes up for a slower one); the part that the reaction (detection,
    retirement, resending), not the missing link's capacity, costs. Pure."""
    hit = [it for it in iterations if it["finished_ns"] >= start and it["started_ns"] <= end]
    clean = [it for it in iterations if it not in hit]
    inside = [it for it in hit if it["started_ns"] >= start and it["finished_ns"] <= end]
    base = statistics.median(it["cct_ms"] for it in clean) if clean else None
    lost = None if base is None else sum(max(0.0, it["cct_ms"] - base) for it in hit)
    degraded = statistics.median(it["cct_ms"] for it in inside) if inside else None
    beyond = None
    if base is not None and degraded is not None:
        # Summed with their signs, then floored at 0: the iterations inside the failure
        # are the degraded pace's own sample, and their ups and downs around its median
        # cancel. Flooring each one first counted that noise as lost (5-10 ms a run in
        # the fat-tree-4 all-to-all, whose iterations vary by +-5 ms).
        beyond = 0.0
        for it in hit:
            span = max(1, it["finished_ns"] - it["started_ns"])
            overlap = min(it["finished_ns"], end) - max(it["started_ns"], start)
            share = min(1.0, max(0.0, overlap / span))
            beyond += it["cct_ms"] - ((1 - share) * base + share * degraded)
        beyond = max(0.0, beyond)
    return {
        "failure_iterations": [it["index"] for it in hit],
        "clean_iterations": [it["index"] for it in clean],
        "cct_ms_median": base,
        "progress_lost_ms": lost,
        "degraded_iterations": [it["index"] for it in inside],
        "degraded_cct_ms": degraded,
        "progress_lost_beyond_capacity_ms": beyond,
    }


def _flow_name(key: str, hosts: Sequence[str]) -> str:
    """``src-dst-channel`` (ranks) as ``h1->h5/0`` (hosts, channel)."""
    src, dst, channel = (int(x) for x in key.split("-"))
    return f"{hosts[src]}->{hosts[dst]}/{channel}"


def crosses(nodes: Sequence[str], link: tuple[str, str]) -> bool:
    """Whether the path ``nodes`` crosses ``link``, either way."""
    hops = set(itertools.pairwise(nodes))
    return link in hops or (link[1], link[0]) in hops


def recovery_windows(
    gaps: Mapping[str, Sequence[Sequence[int]]],
    routes: Mapping[str, list[list[str]] | None],
    link: tuple[str, str],
    start: int,
    end: int,
) -> dict[str, Any]:
    """The collective's loss windows, as a probe flow's: per flow that crossed the failed
    ``link``, the longest span in which it was owed data and received none
    (``lab.traffic.collective.DeliveryGaps``) that overlaps the failure, from ``start``
    (in effect) to ``end`` (restored), monotonic ns; 0 for a flow without a gap of
    ``GAP_MIN_NS`` or more there. ``gaps`` and ``routes`` are keyed by ``src-dst-channel``
    (ranks); ``routes``: the paths of the flow's packets and acks (node lists), None when
    unknown (ECMP: every flow counts). A flow counts when one of them crosses the link.
    ``before_failure``: the same flows' longest gaps that ended before ``start``, the gaps
    their pace makes anyway. ``spans``: when each flow's window began and ended, in ms
    after ``start``. Pure."""
    windows: dict[str, float] = {}
    spans_of: dict[str, dict[str, float]] = {}
    before: dict[str, float] = {}
    for key, paths in sorted(routes.items()):
        if paths is not None and not any(crosses(nodes, link) for nodes in paths):
            continue
        spans = gaps.get(key, ())
        across = [(b - a, a, b) for a, b in spans if b > start and a < end]
        longest, a, b = max(across, default=(0, start, start))
        windows[key] = longest / 1e6
        if longest:
            spans_of[key] = {"from_ms": (a - start) / 1e6, "to_ms": (b - start) / 1e6}
        before[key] = max((b - a for a, b in spans if b <= start), default=0) / 1e6
    values, usual = list(windows.values()), list(before.values())
    return {
        "flows": len(values),
        "stalled": sum(1 for v in values if v > 0),
        "p50": percentile(values, 50) if values else None,
        "p99": percentile(values, 99) if values else None,
        "max": max(values, default=None),
        "before_failure": {
            "p50": percentile(usual, 50) if usual else None,
            "p99": percentile(usual, 99) if usual else None,
            "max": max(usual, default=None),
        },
        "by_flow": {k: round(v, 3) for k, v in windows.items()},
        "spans": {k: {w: round(v, 3) for w, v in d.items()} for k, d in spans_of.items()},
        "note": "per flow crossing the failed link (or every flow, when its paths are "
        "unknown): the longest gap in its deliveries across the failure, while it was owed "
        f"data; 0 when none lasted {GAP_MIN_NS // 1_000_000} ms or more. before_failure: "
        "the same flows' longest gap before it (their pace's own gaps)",
    }


def link_bound_ratio(
    topo: Topology, link_bytes: dict[str, int], ideal_ms: float, iterations: int
) -> float | None:
    """The CCT / ideal ratio that the busiest link's counted bytes force by themselves:
    its bytes over its rate, per iteration, over the ideal. Near ``cct_ratio_to_ideal``:
    that link was busy all the time (what is left is its bytes: headers, collisions);
    below it: the difference is time that link sat idle."""
    if not link_bytes or not iterations or ideal_ms <= 0:
        return None
    busiest = max(v * 8 / (_bw(topo, k) * 1e6) for k, v in link_bytes.items())
    return busiest * 1e3 / iterations / ideal_ms


def run_bench(
    topo: Topology, lab: RunningLab, cfg: BenchConfig, workdir: Path, say: Progress
) -> dict[str, Any]:
    view = LabView(
        topo, lab.state.switch_kind, lab.state.netns_prefix, (lab.state.pid, lab.state.started_at)
    )
    n = len(cfg.hosts)
    flows = collective_flows(list(cfg.hosts), cfg.pattern)
    ideal = ideal_cct_ms(topo, flows, cfg.pattern, cfg.size, n)
    analysis = analyze_ecmp(topo, cfg.hosts, cfg.pattern, seeds=200)
    modes: dict[str, Any] = {}
    for mode in cfg.modes:
        m = run_mode(topo, lab, view=view, cfg=cfg, mode=mode, workdir=workdir, say=say)
        base = m.get("cct_ms_median")
        m["cct_ratio_to_ideal"] = base / ideal if base else None
        m["link_bound_ratio"] = link_bound_ratio(topo, m["link_bytes"], ideal, len(m["cct_ms"]))
        modes[mode] = m
        lost = m.get("progress_lost_ms")
        timeline = m.get("controller_timeline")
        if timeline:
            say(
                f"{mode}: the controller saw the failure after "
                f"{timeline['event_seen_after_fault_ms']:.0f} ms, its switches acknowledged "
                f"the reroute after {timeline['last_switch_acked_after_fault_ms']:.0f} ms"
            )
        say(
            f"{mode}: CCT median {base or float('nan'):.0f} ms (ideal {ideal:.0f} ms, "
            f"ratio {m['cct_ratio_to_ideal'] or float('nan'):.2f}; the busiest link's bytes "
            f"alone: {m['link_bound_ratio'] or float('nan'):.2f}), max link utilization "
            f"{m['max_link_utilization'] * 100:.0f} % on {m['hottest_link']}"
            + (f", progress lost {lost:.1f} ms" if lost is not None else "")
            + (
                f" ({m['progress_lost_beyond_capacity_ms']:.1f} ms beyond the capacity the "
                f"link took with it: {m['degraded_cct_ms']:.0f} ms per iteration without it)"
                if m.get("progress_lost_beyond_capacity_ms") is not None
                else ""
            )
        )
        windows = m.get("recovery_window_ms")
        if windows and windows["flows"]:
            say(
                f"{mode}: loss windows of the {windows['flows']} flows across the link "
                f"(longest gap in their deliveries): p50 {windows['p50']:.0f} ms, p99 "
                f"{windows['p99']:.0f} ms, max {windows['max']:.0f} ms (before the failure: "
                f"p99 {windows['before_failure']['p99']:.0f} ms)"
            )
        tcp = m["tcp_counters"]
        if tcp["Tcp:OutSegs"]:
            say(
                f"{mode}: TCP {tcp['Tcp:OutSegs']} segments, {tcp['Tcp:RetransSegs']} "
                f"retransmitted, {tcp['TcpExt:TCPTimeouts']} timeouts, "
                f"{tcp['TcpExt:TCPLossProbes']} loss probes, "
                f"{tcp['TcpExt:TCPSackRecovery']} SACK recoveries"
            )
    st = analysis.ratio_stats()
    return {
        "topology": topo.name,
        "pattern": cfg.pattern,
        "hosts": list(cfg.hosts),
        "link_mbps": sorted({link.bandwidth_mbps for link in topo.links}),
        "size_bytes": cfg.size,
        "iterations": cfg.iterations,
        "ideal_cct_ms": ideal,
        "ideal": "host cut: the payload bytes the busiest host sends (or receives) over the "
        "sum of its NICs' rates; headers count against the modes (wire bytes per payload "
        "byte on a host link in `header_overhead`)",
        "host_mtu": cfg.mtu,
        "header_overhead": header_overhead(cfg),
        "cct_ms": {k: v["cct_ms"] for k, v in modes.items()},
        "cct_ratio_to_ideal": {k: v["cct_ratio_to_ideal"] for k, v in modes.items()},
        "max_link_utilization": {k: v["max_link_utilization"] for k, v in modes.items()},
        "link_bound_ratio": {k: v["link_bound_ratio"] for k, v in modes.items()},
        "progress_lost_ms": (
            {k: v.get("progress_lost_ms") for k, v in modes.items()} if cfg.fail else None
        ),
        "progress_lost_beyond_capacity_ms": (
            {k: v.get("progress_lost_beyond_capacity_ms") for k, v in modes.items()}
            if cfg.fail
            else None
        ),
        "recovery_window_ms": (
            {
                k: {
                    f: w
                    for f, w in v["recovery_window_ms"].items()
                    if f not in ("by_flow", "spans")
                }
                for k, v in modes.items()
            }
            if cfg.fail
            else None
        ),
        "failure": (
            {"place": "-".join(cfg.fail), "kind": cfg.kind, "held_s": cfg.failed_s}
            if cfg.fail
            else None
        ),
        "prediction": {
            "ecmp_expected_ratio": analysis.expected.ratio_to_ideal,
            "ecmp_hash_model_ratio": st,
            "pinned_ratio": analysis.pinned.ratio_to_ideal if analysis.pinned else None,
            "spray_ratio": analysis.spray.ratio_to_ideal if analysis.spray else None,
        },
        "paced": cfg.pace,
        "pace_headroom": cfg.pace_headroom,
        "tcp_ack_tclass": cfg.ack_tclass,
        "spray_config": {
            "k": cfg.spray_k,
            "window": cfg.spray.window,
            "flow_window": cfg.spray.flow_window,
            "host_window": cfg.spray.host_window,
            "min_rto_ms": cfg.spray.min_rto_ms,
            "reorder_ms": cfg.spray.reorder_ms,
            "ack_every": cfg.spray.ack_every,
            "ack_delay_ms": cfg.spray.ack_delay_ms,
            "probe_interval_ms": cfg.spray.probe_interval_ms,
            "readmit_after": cfg.spray.readmit_after,
            "workers": cfg.spray_workers or default_workers(len(cfg.hosts)),
            "packet_bytes": cfg.spray.packet,
            "payload_bytes": cfg.spray.payload,
        },
        "cpu": {"cores": os.cpu_count(), "load_average_end": list(os.getloadavg())},
        "modes": modes,
    }


def write_png(report: dict[str, Any], out: Path) -> None:
    """The modes side by side: CCT per iteration (the failure's iterations marked), the
    ratio to the ideal and the hottest link's utilization, spray's reorder histogram."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = list(report["modes"])
    colors = {"ecmp": "tab:red", "pinned": "tab:blue", "spray": "tab:green"}
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    ax = axes[0]
    width = 0.8 / max(1, len(modes))
    for j, mode in enumerate(modes):
        m = report["modes"][mode]
        xs = [i + (j - (len(modes) - 1) / 2) * width for i in range(len(m["cct_ms"]))]
        bad = set(m.get("failure_iterations", []))
        ax.bar(xs, m["cct_ms"], width, color=colors.get(mode, "grey"), label=mode,
               edgecolor=["black" if i in bad else "none" for i in range(len(xs))])  # fmt: skip
    ax.axhline(report["ideal_cct_ms"], color="black", ls="--", lw=1, label="ideal")
    ax.set_xlabel("iteration (outlined: overlapped the failure)")
    ax.set_ylabel("collective completion time (ms)")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax = axes[1]
    ratios = [report["modes"][m]["cct_ratio_to_ideal"] or 0 for m in modes]
    utils = [report["modes"][m]["max_link_utilization"] for m in modes]
    pos = list(range(len(modes)))
    ax.bar([x - 0.2 for x in pos], ratios, 0.4, color=[colors.get(m, "grey") for m in modes])
    ax.bar([x + 0.2 for x in pos], utils, 0.4, color="lightgrey", label="max link utilization")
    for x, r in zip(pos, ratios, strict=True):
        ax.text(x - 0.2, r, f"{r:.2f}", ha="center", va="bottom", fontsize=8)
    for x, u in zip(pos, utils, strict=True):
        ax.text(x + 0.2, u, f"{u * 100:.0f}%", ha="center", va="bottom", fontsize=8)
    ax.axhline(1.0, color="black", ls="--", lw=1)
    ax.axhline(1.1, color="grey", ls=":", lw=1)
    ax.set_xticks(pos, modes)
    ax.set_title("median CCT / ideal (colour); hottest link utilization (grey)", fontsize=9)
    ax.legend(fontsize=8)
    ax = axes[2]
    spray = report["modes"].get("spray", {}).get("spray")
    lost = report.get("progress_lost_ms")
    if spray:
        hist = spray["reorder_histogram"]
        ax.bar(range(len(hist)), [max(v, 0.5) for v in hist.values()], color="tab:green")
        ax.set_xticks(range(len(hist)), list(hist), fontsize=8)
        ax.set_yscale("log")
        ax.set_xlabel("reorder distance (packets behind the highest, bucket >= b)")
        ax.set_ylabel("packets")
        events = spray["path_events"]
        ret = sum(1 for e in events if e["event"] == "retired")
        adm = sum(1 for e in events if e["event"] == "readmitted")
        ax.set_title(f"spray: reordering; {ret} path retirements, {adm} re-admissions",
                     fontsize=9)  # fmt: skip
    else:
        ax.axis("off")
    title = (
        f"{report['pattern']} among {len(report['hosts'])} hosts of {report['topology']}, "
        f"{report['size_bytes'] // 1024} KiB per rank, links {report['link_mbps']} Mbit/s"
    )
    if report.get("failure"):
        f = report["failure"]
        title += f"; {f['kind']} failure of {f['place']} for {f['held_s']:g} s"
        if lost:
            title += (
                " (progress lost: "
                + ", ".join(f"{k} {v:.0f} ms" for k, v in lost.items() if v is not None)
                + ")"
            )
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def summary_rows(report: dict[str, Any]) -> list[str]:
    lines = [
        f"  {'mode':<8}{'CCT median':>12}{'ratio':>8}{'max util':>10}  {'progress lost':>14}"
        f"  {'loss window p99':>15}  hottest link"
    ]
    for mode, m in report["modes"].items():
        med = m.get("cct_ms_median")
        ratio = m.get("cct_ratio_to_ideal")
        lost = m.get("progress_lost_ms")
        window = (m.get("recovery_window_ms") or {}).get("p99")
        lines.append(
            f"  {mode:<8}{'n/a' if med is None else f'{med:.0f} ms':>12}"
            f"{'n/a' if ratio is None else f'{ratio:.2f}':>8}"
            f"{m['max_link_utilization'] * 100:>9.0f}%  "
            f"{'-' if lost is None else f'{lost:.1f} ms':>14}  "
            f"{'-' if window is None else f'{window:.1f} ms':>15}  {m['hottest_link']}"
        )
    lines.append(f"  ideal CCT {report['ideal_cct_ms']:.0f} ms (host cut)")
    return lines


def gpu_hosts(topo: Topology, count: int) -> tuple[str, ...]:
    from controller.analysis import default_hosts

    hosts = default_hosts(topo, count)
    if len(hosts) < 2:
        raise LabError(f"{topo.name} has fewer than 2 hosts for a collective")
    return hosts


def header_overhead(cfg: BenchConfig) -> dict[str, float]:
    """Wire bytes per payload byte of a full-size data packet on a host link: what the
    payload-only ideal leaves out (acks and, for pinned, the headend's encapsulation on
    the fabric links come on top)."""
    from lab.traffic.collective_run import WIRE_OVERHEAD
    from lab.traffic.spray import HEADER

    tcp_data = tcp_mss(cfg.mtu) - 12  # timestamps
    return {
        "tcp": round((tcp_data + WIRE_OVERHEAD) / tcp_data, 4),
        "spray": round(cfg.spray.data_wire / cfg.spray.payload, 4),
        "spray_header_bytes": HEADER.size,
    }


def check_size(size: int, n: int, payload: int) -> None:
    """``payload``: spray's data bytes per packet (every rank's share needs one)."""
    if size < n * payload:
        raise LabError(f"--size {size}: at least {n * payload} bytes ({n} ranks x {payload})")
    if not math.isfinite(size):
        raise LabError("--size must be finite")
