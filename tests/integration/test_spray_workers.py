"""A spray run over worker processes with real packets: two namespaces joined by a veth
(no SRv6 routes: the path's marks find no rule and take the main table), the generator
(``python -m lab.traffic.collective_run``) with two workers, one per rank. It runs every
iteration with the same protocol and result as one process, and no worker outlives it:
not when it ends, not on SIGTERM, not when it is killed. No timing asserts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.traffic.collective_run import FlowSpec, RunSpec
from lab.traffic.spray import SprayConfig, SprayPath

pytestmark = pytest.mark.root
ROOT = Path(__file__).resolve().parents[2]
ADDR = ("fd00:5e:7::1", "fd00:5e:7::2")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@pytest.fixture
def two_hosts() -> Iterator[tuple[str, str]]:
    names = (f"sprw{os.getpid()}a", f"sprw{os.getpid()}b")
    try:
        for ns in names:
            _ip("netns", "add", ns)
            for key in ("all", "default"):
                _ip("-n", ns, "link", "set", "lo", "up")
                subprocess.run(
                    ["ip", "netns", "exec", ns, "sysctl", "-qw",
                     f"net.ipv6.conf.{key}.accept_dad=0"],
                    check=True,
                )  # fmt: skip
        _ip("link", "add", "sprwa", "netns", names[0], "type", "veth",
            "peer", "name", "sprwb", "netns", names[1])  # fmt: skip
        for ns, dev, addr in zip(names, ("sprwa", "sprwb"), ADDR, strict=True):
            _ip("-n", ns, "addr", "add", f"{addr}/64", "dev", dev, "nodad")
            _ip("-n", ns, "link", "set", dev, "up")
        yield names
    finally:
        for ns in names:
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


def _spec(netns: tuple[str, str], iterations: int, workers: int) -> RunSpec:
    def flow(src: int, dst: int) -> FlowSpec:
        path = SprayPath(0, (f"h{src}", f"h{dst}"), ADDR[src], ADDR[dst], "fc::1", "fc::2")
        return FlowSpec(src, dst, ADDR[src], ADDR[dst], (path,))

    cfg = SprayConfig()
    return RunSpec("spray", "all-to-all", ("h0", "h1"), netns, (flow(0, 1), flow(1, 0)),
                   size=2 * 40 * cfg.payload, iterations=iterations, spray=cfg,
                   spray_workers=workers)  # fmt: skip


def _start(spec: RunSpec, out: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "lab.traffic.collective_run", str(out)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=ROOT,
    )  # fmt: skip
    assert proc.stdin is not None
    proc.stdin.write(spec.to_json() + "\n")
    proc.stdin.flush()
    return proc


def _line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line:
        proc.wait(timeout=10)
        assert proc.stderr is not None
        pytest.fail(f"generator exited ({proc.returncode}): {proc.stderr.read()[-2000:]}")
    return line


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def _wait_gone(pids: list[int], timeout: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout
    delay = 0.01
    while (left := [p for p in pids if _running(p)]) and time.monotonic() < deadline:
        time.sleep(delay)  # waiting on a condition: the workers exiting
        delay = min(2 * delay, 0.2)
    return left


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def test_two_workers_run_every_iteration_and_merge_their_results(
    two_hosts: tuple[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "run.json"
    proc = _start(_spec(two_hosts, 3, 2), out)
    try:
        assert _line(proc).startswith("READY ")
        workers = _children(proc.pid)
        assert len(workers) == 2
        lines = [_line(proc) for _ in range(4)]
        assert [w.split()[:2] for w in lines[:3]] == [["ITER", str(i)] for i in range(3)]
        assert lines[3] == "DONE"
        assert proc.wait(timeout=30) == 0
    finally:
        _stop(proc)
    assert not _wait_gone(workers)
    result = json.loads(out.read_text(encoding="utf-8"))
    assert len(result["iterations"]) == 3
    for it in result["iterations"]:
        assert len(it["flow_finished_ms"]) == 2
        assert it["cct_ms"] + 0.05 >= max(it["flow_finished_ms"]) > 0  # rounded to 0.1
    spray = result["spray"]
    assert spray["workers"] == [[0], [1]]
    assert spray["stray_packets"] == 0
    assert sum(spray["reorder_histogram"].values()) >= 2 * 3 * 40
    assert [(p["flow"], p["path"]) for p in spray["paths"]] == [(0, 0), (1, 0)]
    assert len(spray["barrier_ms"]) == 2


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_no_worker_outlives_the_generator(
    two_hosts: tuple[str, str], tmp_path: Path, how: signal.Signals
) -> None:
    proc = _start(_spec(two_hosts, 100_000, 2), tmp_path / "run.json")
    try:
        assert _line(proc).startswith("READY ")
        workers = _children(proc.pid)
        assert len(workers) == 2
        assert _line(proc).startswith("ITER 0 ")
        proc.send_signal(how)
        proc.wait(timeout=30)
        assert not _wait_gone(workers), "spray workers outlived the generator"
    finally:
        _stop(proc)
