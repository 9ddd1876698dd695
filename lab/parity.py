"""Parity of the two switch kinds: the same topology brought up with kernel switches
(switchd) and with BMv2, one after the other, the controller with the same intents on each;
then the same checks on both and a list of every difference.

1. Entries: everything each switch holds, read back over P4Runtime (as a backup client:
   the controller stays primary) and normalised (controller.reconcile.normalize: BMv2
   answers values in their shortest byte form), must be identical switch by switch.
2. Paths: the same UDP traffic on both (bursts from many source ports between the
   intents' endpoints); the per-SID counters (``my_sid_counter``) tell which SIDs packets
   crossed. The set of SIDs hit must be the same. Counts are shown, not compared: which
   member of an ECMP or weighted headend group a flow takes is a hash, and the kernel and
   BMv2 hash differently (and, measured on leaf-spine-2x4, switchd's counters report
   several times the packets sent where BMv2 counts each one once: a switchd question).
3. Failure: the same ``admin`` failure on both; once each controller has seen it and
   holds its switches in sync, the entries again (identical) and the traffic again (the
   same SIDs, none behind the failed link).

``srv6lab lab parity FILE [--intent SPEC]... [--fail X Y]`` prints the differences and
exits 1 if there is any.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.topology import Topology
from lab.errors import LabError

KINDS = ("kernel", "bmv2")
ROOT = Path(__file__).resolve().parents[1]
P4INFO = ROOT / "p4" / "build" / "srv6.p4info.txtpb"
SYNC_TIMEOUT = 60.0
TRAFFIC_PORTS = range(20000, 20016)
TRAFFIC_COUNT = 2

Entries = dict[str, frozenset[str]]
"""switch -> its entries, normalised, as text."""
Counters = dict[tuple[str, str], int]
"""(switch, my_sid entry) -> packets."""


@dataclass
class KindResult:
    kind: str
    entries: Entries = field(default_factory=dict)
    counters: Counters = field(default_factory=dict)
    failed_entries: Entries = field(default_factory=dict)
    failed_counters: Counters = field(default_factory=dict)


@dataclass
class Difference:
    stage: str
    """entries | paths | failure entries | failure paths"""
    text: str

    def __str__(self) -> str:
        return f"{self.stage}: {self.text}"


# -- reading the switches -------------------------------------------------------------------


def read_switches(switches_file: Path) -> tuple[Entries, Counters]:
    """Every switch's entries (normalised) and its my_sid counters, read as a backup
    client (election id 1)."""
    import finsy as fy

    from controller.reconcile.normalize import normalize, normalize_all
    from controller.southbound import load_inventory
    from controller.southbound.session import read_all_requests

    schema = fy.P4Schema(P4INFO)

    async def one(address: Any) -> tuple[str, frozenset[str], Counters]:
        options = fy.SwitchOptions(
            p4info=P4INFO, p4blob=b"", device_id=address.device_id, initial_election_id=1
        )
        async with fy.Switch(address.name, address.p4runtime, options) as sw:
            reader: Any = sw.read  # finsy's overloads hide that it is an async iterator
            entities: list[Any] = []
            for request in read_all_requests():
                entities.extend([e async for e in reader(request)])
            entries = frozenset(str(n) for n in normalize_all(entities, schema))
            counters: Counters = {}
            async for c in reader(fy.P4DirectCounterEntry("my_sid_counter")):
                if c.data is None or c.table_entry is None:
                    continue
                key = str(normalize(c.table_entry, schema).key)
                counters[(address.name, key)] = c.data.packet_count
            return address.name, entries, counters

    async def every() -> tuple[Entries, Counters]:
        found = await asyncio.gather(*(one(a) for a in load_inventory(switches_file)))
        entries = {name: e for name, e, _ in found}
        counters = {k: v for _, _, c in found for k, v in c.items()}
        return entries, counters

    return asyncio.run(asyncio.wait_for(every(), 60))


# -- driving one lab --------------------------------------------------------------------------


def cli(run_dir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``srv6lab ARGS`` against the lab (and controller) of ``run_dir``."""
    env = {**os.environ, "SRV6LAB_RUN_DIR": str(run_dir)}
    proc = subprocess.run(
        [sys.executable, "-m", "lab.cli", *args],
        capture_output=True, text=True, check=False, timeout=120, env=env, cwd=ROOT,
    )  # fmt: skip
    if check and proc.returncode != 0:
        raise LabError(f"srv6lab {' '.join(args)}: {(proc.stderr or proc.stdout).strip()}")
    return proc


def wait_in_sync(run_dir: Path, down: str | None = None, timeout: float = SYNC_TIMEOUT) -> None:
    """Wait until the controller holds every switch in sync (``intent diff`` writes
    nothing) and, with ``down`` ("X-Y"), reports that link down."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        status = cli(run_dir, "controller", "status", check=False).stdout
        seen = down is None or any(
            down in line or "-".join(reversed(down.split("-"))) in line
            for line in status.splitlines()
            if " down " in line or "down (" in line
        )
        if seen and cli(run_dir, "intent", "diff", check=False).returncode == 0:
            return
        if time.monotonic() > deadline:
            diff = cli(run_dir, "intent", "diff", check=False).stdout
            raise LabError(f"controller not in sync after {timeout:g} s:\n{status}\n{diff}")
        time.sleep(delay)  # polling the controller's own view
        delay = min(delay * 2, 0.5)


def send_bursts(topo: Topology, netns_prefix: str, pairs: Sequence[tuple[str, str]]) -> None:
    """UDP bursts between host pairs, one per source port (so hashes see many flows)."""
    code = (
        "import socket,sys\n"
        "dst=sys.argv[1]\n"
        f"for p in range({TRAFFIC_PORTS.start},{TRAFFIC_PORTS.stop}):\n"
        "  u=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM)\n"
        "  u.bind(('::',p))\n"
        f"  [u.sendto(b'parity',(dst,9)) for _ in range({TRAFFIC_COUNT})]\n"
        "  u.close()\n"
    )
    for src, dst in pairs:
        address = str(topo.host(dst).address)
        subprocess.run(
            ["ip", "netns", "exec", netns_prefix + src, sys.executable, "-c", code, address],
            check=True,
            timeout=60,
        )


def traffic_delta(
    switches_file: Path, send: Callable[[], None], settle: Callable[[], None]
) -> Counters:
    """Per-SID packets counted while ``send`` runs (``settle`` waits for the last ones)."""
    _, before = read_switches(switches_file)
    send()
    settle()
    _, after = read_switches(switches_file)
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


def run_kind(  # noqa: PLR0917 (one call site, every argument named there)
    topo: Topology,
    kind: str,
    base: Path,
    netns_prefix: str,
    intents: Sequence[str],
    pairs: Sequence[tuple[str, str]],
    failure: tuple[str, str],
    say: Callable[[str], None],
) -> KindResult:
    """Bring the lab up with ``kind`` switches and the controller, apply the intents, and
    collect entries and counters before and after the failure. The lab is down after."""
    from lab import faults
    from lab.controller_proc import ControllerOptions
    from lab.runtime import RunDir, environment
    from lab.session import running_lab

    run_dir = base / kind
    prefix = f"{netns_prefix}{kind[0]}-"
    result = KindResult(kind)
    with environment(SRV6LAB_RUN_DIR=str(run_dir), SRV6LAB_NETNS_PREFIX=prefix):
        run = RunDir(run_dir)
        started = time.monotonic()
        with running_lab(topo, kind, run=run, controller=ControllerOptions()):
            switches = run_dir / "switches.json"
            say(f"{kind}: lab and controller up in {time.monotonic() - started:.1f} s")
            for spec in intents:
                cli(run_dir, "intent", "add", *spec.split())
            wait_in_sync(run_dir)

            def send() -> None:
                send_bursts(topo, prefix, pairs)

            def settle() -> None:
                time.sleep(0.5)  # the receivers are gone; give the last hop time to count

            result.entries, _ = read_switches(switches)
            result.counters = traffic_delta(switches, send, settle)
            say(
                f"{kind}: {sum(len(e) for e in result.entries.values())} entries, "
                f"{sum(result.counters.values())} SID hits"
            )
            view = faults.lab_view(run)
            faults.fail(run, view, "admin", failure)
            try:
                wait_in_sync(run_dir, down="-".join(failure))
                result.failed_entries, _ = read_switches(switches)
                result.failed_counters = traffic_delta(switches, send, settle)
            finally:
                faults.restore(run, view)
            say(
                f"{kind}: after {'-'.join(failure)} failed: "
                f"{sum(len(e) for e in result.failed_entries.values())} entries, "
                f"{sum(result.failed_counters.values())} SID hits"
            )
    return result


# -- comparing ------------------------------------------------------------------------------


def compare_entries(
    stage: str, a: KindResult, b: KindResult, ea: Entries, eb: Entries
) -> list[Difference]:
    out = []
    for switch in sorted(set(ea) | set(eb)):
        left, right = ea.get(switch, frozenset()), eb.get(switch, frozenset())
        for text in sorted(left - right):
            out.append(Difference(stage, f"{switch}: only on {a.kind}: {text}"))
        for text in sorted(right - left):
            out.append(Difference(stage, f"{switch}: only on {b.kind}: {text}"))
    return out


def compare_paths(
    stage: str, a: KindResult, b: KindResult, ca: Counters, cb: Counters
) -> list[Difference]:
    out = []
    for key in sorted(set(ca) ^ set(cb)):
        side = a.kind if key in ca else b.kind
        count = ca.get(key, 0) or cb.get(key, 0)
        out.append(Difference(stage, f"{key[0]}: {key[1]}: hit only on {side} ({count} packets)"))
    return out


def compare(a: KindResult, b: KindResult) -> list[Difference]:
    return [
        *compare_entries("entries", a, b, a.entries, b.entries),
        *compare_paths("paths", a, b, a.counters, b.counters),
        *compare_entries("failure entries", a, b, a.failed_entries, b.failed_entries),
        *compare_paths("failure paths", a, b, a.failed_counters, b.failed_counters),
    ]


def counter_table(a: KindResult, b: KindResult, ca: Counters, cb: Counters) -> list[str]:
    lines = []
    for key in sorted(set(ca) | set(cb)):
        lines.append(f"  {key[0]:<8} {ca.get(key, 0):>6} {cb.get(key, 0):>6}  {key[1]}")
    return [f"  {'switch':<8} {a.kind:>6} {b.kind:>6}  my_sid entry", *lines]


# -- the command ------------------------------------------------------------------------------


def default_failure(topo: Topology) -> tuple[str, str]:
    """The first link between two switches."""
    for link in topo.links:
        x, y = link.a.node, link.b.node
        if topo.is_switch(x) and topo.is_switch(y):
            return x, y
    raise LabError(f"topology {topo.name} has no link between two switches to fail")


def traffic_pairs(topo: Topology, intents: Sequence[str]) -> list[tuple[str, str]]:
    """Both directions between the hosts the intents name; without intents, the first
    host to every other one."""
    hosts = {h.name for h in topo.hosts}
    named = sorted({w for spec in intents for w in spec.split() if w in hosts})
    if len(named) >= 2:
        return [(x, y) for x, y in itertools.permutations(named, 2)]
    first, *others = [h.name for h in topo.hosts]
    return [(first, other) for other in others]


def parity(
    topo: Topology,
    intents: Sequence[str],
    *,
    failure: tuple[str, str] | None = None,
    base: Path | None = None,
    netns_prefix: str = "srv6lab-par-",
    say: Callable[[str], None] = print,
) -> tuple[list[Difference], KindResult, KindResult]:
    """Run both kinds one after the other and compare them."""
    from lab.nodes import bmv2_binary
    from lab.runtime import RunDir

    bmv2_binary()  # at once: no kernel run to throw away when BMv2 is missing
    base = base or RunDir.from_env().path / "parity"
    failure = failure or default_failure(topo)
    try:
        topo.link(*failure)
    except KeyError:
        raise LabError(f"no link between {failure[0]} and {failure[1]} in {topo.name}") from None
    pairs = traffic_pairs(topo, intents)
    results = [
        run_kind(
            topo=topo,
            kind=kind,
            base=base,
            netns_prefix=netns_prefix,
            intents=intents,
            pairs=pairs,
            failure=failure,
            say=say,
        )
        for kind in KINDS
    ]
    a, b = results
    return compare(a, b), a, b


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "parity",
        help="the same topology and intents on kernel and BMv2 switches: compare entries, "
        "paths (per-SID counters) and the state after a failure",
        description=(__doc__ or "").split("\n\n")[0],
    )
    p.add_argument("topology", type=Path, help="topology file")
    p.add_argument(
        "--intent",
        action="append",
        default=[],
        metavar="SPEC",
        help="an intent as `srv6lab intent add` takes it, e.g. 'disjoint h1 h7 -k 2' "
        "(repeatable; the connectivity intent is always there)",
    )
    p.add_argument(
        "--fail",
        nargs=2,
        metavar=("X", "Y"),
        help="the link to fail (admin); default: the first link between two switches",
    )
    p.add_argument("--json", type=Path, help="write the differences and counters here")
    p.set_defaults(func=_parity_command)


def _parity_command(args: argparse.Namespace) -> int:
    from controller.topology import TopologyError, load

    try:
        topo = load(args.topology)
        failure = (args.fail[0], args.fail[1]) if args.fail else None
        diffs, a, b = parity(topo, args.intent, failure=failure)
    except (LabError, TopologyError) as exc:
        print(f"srv6lab lab parity: {exc}", file=sys.stderr)
        return 2
    print("per-SID packets, same traffic:")
    print("\n".join(counter_table(a, b, a.counters, b.counters)))
    print("per-SID packets after the failure:")
    print("\n".join(counter_table(a, b, a.failed_counters, b.failed_counters)))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "topology": topo.name,
                    "differences": [{"stage": d.stage, "text": d.text} for d in diffs],
                    "counters": {
                        r.kind: {
                            "before": {" ".join(k): v for k, v in r.counters.items()},
                            "after_failure": {" ".join(k): v for k, v in r.failed_counters.items()},
                        }
                        for r in (a, b)
                    },
                },
                indent=1,
            )
        )
    if diffs:
        print(f"{len(diffs)} difference(s) between kernel and bmv2:")
        for d in diffs:
            print(f"  {d}")
        return 1
    entries = sum(len(e) for e in a.entries.values())
    print(
        f"parity: kernel and bmv2 agree ({entries} entries on {len(a.entries)} switches, "
        f"the same SIDs hit, the same state after the failure)"
    )
    return 0
