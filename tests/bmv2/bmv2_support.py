"""BMv2 for the tests: find the tools, and run ``simple_switch`` on pcap files.

BMv2 is in no package registry; it is built outside the repository (p4/README.md). The tools
are looked up under ``$SRV6LAB_BMV2_PREFIX/bin`` when that variable is set, else on PATH.

``PcapSwitch`` runs ``simple_switch --use-files`` in a directory of its own: port N reads
``pN_in.pcap`` and writes ``pN_out.pcap``, so no root, namespace or interface is needed.
BMv2 opens the input files at start-up and only waits a fixed number of seconds (the
argument of ``--use-files``) before it reads them, which would race with loading the
entries. Here the input files are FIFOs instead: BMv2 reads the pcap file header at start-up
and then blocks on the first packet record, so packets flow only once ``send`` writes them,
after the entries are in. ``wait_until_processed`` then waits on the switch's own log until
every packet it read has left the pipeline (sent, dropped or recirculated), and until the
output files hold every packet the log says was sent.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

PREFIX_VARIABLE = "SRV6LAB_BMV2_PREFIX"
STARTUP_TIMEOUT = 30.0
PROCESS_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0

_PCAP_HEADER = struct.pack("=IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)  # Ethernet
_PCAP_RECORD = struct.Struct("=IIII")  # seconds, microseconds, captured length, length
_PCAP_HEADER_SIZE = len(_PCAP_HEADER)


class Bmv2Missing(Exception):
    """BMv2 is not installed where the tests look: the tier is skipped."""


class Bmv2Error(Exception):
    """BMv2 is there but does not work as the tests need: the tier fails."""


@dataclass(frozen=True)
class Bmv2Tools:
    simple_switch: Path
    simple_switch_grpc: Path | None
    cli_command: tuple[str, ...]
    """The interpreter and the ``simple_switch_CLI`` script."""
    cli_env: Mapping[str, str]


def find_tools(environ: Mapping[str, str] | None = None) -> Bmv2Tools:
    """The BMv2 tools, from ``$SRV6LAB_BMV2_PREFIX/bin`` or PATH.

    Raises ``Bmv2Missing`` when ``simple_switch`` is not on PATH (nothing to test here), and
    ``Bmv2Error`` when the prefix named by the variable lacks it or ``simple_switch_CLI``
    cannot be run (a broken installation should not pass as a skip).
    """
    env = dict(os.environ if environ is None else environ)
    prefix_setting = env.get(PREFIX_VARIABLE)
    if prefix_setting:
        search_path = str(Path(prefix_setting) / "bin")
        switch = shutil.which("simple_switch", path=search_path)
        if switch is None:
            raise Bmv2Error(
                f"{PREFIX_VARIABLE}={prefix_setting}, but {search_path} has no simple_switch"
            )
    else:
        search_path = env.get("PATH", os.defpath)
        switch = shutil.which("simple_switch", path=search_path)
        if switch is None:
            raise Bmv2Missing(
                "BMv2 not found: no simple_switch on PATH and SRV6LAB_BMV2_PREFIX is not set "
                "(BMv2 is built outside the repository, see p4/README.md)"
            )
    switch_path = Path(switch)
    prefix = switch_path.resolve().parent.parent
    grpc = shutil.which("simple_switch_grpc", path=search_path)
    cli = shutil.which("simple_switch_CLI", path=search_path)
    if cli is None:
        raise Bmv2Error(f"{switch_path} has no simple_switch_CLI next to it")
    command, cli_env = _cli_runner(Path(cli), prefix, env)
    return Bmv2Tools(switch_path, Path(grpc) if grpc else None, command, cli_env)


def _cli_runner(
    cli: Path, prefix: Path, env: Mapping[str, str]
) -> tuple[tuple[str, ...], dict[str, str]]:
    """An interpreter that can import the CLI's Thrift bindings: the script's own (shebang),
    else Debian's /usr/bin/python3 (python3-thrift), each with BMv2's site-packages."""
    site_packages = sorted(str(p) for p in prefix.glob("lib/python3*/site-packages"))
    python_path = os.pathsep.join([*site_packages, *filter(None, [env.get("PYTHONPATH")])])
    run_env = {**env, "PYTHONPATH": python_path} if python_path else dict(env)
    tried = []
    for python in _interpreters(cli, env):
        command = (python, str(cli))
        probe = subprocess.run(
            [*command, "--help"],
            check=False,
            env=run_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if probe.returncode == 0:
            return command, run_env
        last_line = (probe.stderr.strip().splitlines() or ["no output"])[-1]
        tried.append(f"{python}: {last_line}")
    raise Bmv2Error(
        f"no Python can run {cli} (it needs the thrift module and BMv2's bindings under "
        f"{prefix}/lib/python3*/site-packages); tried: " + "; ".join(tried)
    )


def _interpreters(script: Path, env: Mapping[str, str]) -> list[str]:
    found: list[str] = []
    with script.open("rb") as file:
        first_line = file.readline().decode(errors="replace").strip()
    if first_line.startswith("#!"):
        words = first_line[2:].split()
        resolved: str | None = None
        if words and Path(words[0]).name == "env" and len(words) > 1:
            resolved = shutil.which(words[1], path=env.get("PATH", os.defpath))
        elif words:
            resolved = words[0]
        if resolved:
            found.append(resolved)
    if Path("/usr/bin/python3").exists():
        found.append("/usr/bin/python3")
    return list(dict.fromkeys(found))


def _free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("", 0))
        port: int = probe.getsockname()[1]
        return port


def _dying_with_parent(command: list[str]) -> list[str]:
    """``command`` run so that the kernel kills it when pytest dies without tearing down
    (setpriv sets the parent-death signal, then execs it under the same pid)."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--", *command] if setpriv else command


@dataclass(frozen=True)
class Progress:
    """What the switch's log says about the packets so far."""

    received: int
    """Packets that entered the ingress pipeline, recirculated passes included."""
    sent: Mapping[int, int]
    """Packets handed to each egress port."""
    dropped: int
    recirculated: int

    @property
    def finished(self) -> int:
        return sum(self.sent.values()) + self.dropped + self.recirculated


_RECEIVED = "Processing packet received on port "
_SENT = re.compile(r"Transmitting packet of size \d+ out of port (\d+)")
_DROPPED = ("Dropping packet at the end of ingress", "Dropping packet at the end of egress")
_AGAIN = ("Recirculating packet", "Resubmitting packet")


class PcapSwitch:
    """One ``simple_switch --use-files`` process in ``workdir``. Use as a context manager
    (or call ``stop``): the process never outlives it."""

    def __init__(self, tools: Bmv2Tools, program: Path, workdir: Path, ports: Iterable[int]):
        self.tools = tools
        self.program = program
        self.workdir = workdir
        self.ports = sorted(set(ports))
        self.thrift_port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._inputs: dict[int, int] = {}
        self._packets_sent = 0

    @property
    def log_path(self) -> Path:
        return self.workdir / "switch.txt"  # spdlog adds .txt to --log-file

    def input_path(self, port: int) -> Path:
        return self.workdir / f"p{port}_in.pcap"

    def output_path(self, port: int) -> Path:
        return self.workdir / f"p{port}_out.pcap"

    def __enter__(self) -> PcapSwitch:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start the switch and return once its Thrift server answers ``show_tables``."""
        for attempt in range(3):
            self._open_inputs()
            self.thrift_port = _free_tcp_port()
            self._spawn()
            try:
                self._wait_ready()
                return
            except Bmv2Error:
                output = self._switch_output()
                self.stop()
                if "bind" not in output.lower() or attempt == 2:
                    raise
                # another process took the free port meanwhile: try another one

    def _open_inputs(self) -> None:
        for port in self.ports:
            path = self.input_path(port)
            path.unlink(missing_ok=True)
            os.mkfifo(path)
            # Read-write: the open does not wait for a reader, and BMv2's open does not
            # wait for a writer. The file header goes in now, the packets in ``send``.
            fd = os.open(path, os.O_RDWR)
            os.write(fd, _PCAP_HEADER)
            self._inputs[port] = fd

    def _spawn(self) -> None:
        command = [
            str(self.tools.simple_switch),
            "--use-files",
            "0",
            "--thrift-port",
            str(self.thrift_port),
            "--notifications-addr",
            f"ipc://{self.workdir / 'notifications.ipc'}",
            "--log-file",
            "switch",
            "--log-flush",
            "--log-level",
            "debug",
        ]
        for port in self.ports:
            command += ["-i", f"{port}@p{port}"]
        command.append(str(self.program.resolve()))
        with (self.workdir / "switch.out").open("wb") as output:
            self.process = subprocess.Popen(
                _dying_with_parent(command),
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
            )

    def _switch_output(self) -> str:
        path = self.workdir / "switch.out"
        return path.read_text(errors="replace") if path.exists() else ""

    def _check_alive(self, doing: str) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise Bmv2Error(
                f"simple_switch exited with {self.process.returncode} while {doing}:\n"
                + self._switch_output()[-2000:]
            )

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        delay = 0.01
        while True:
            self._check_alive("starting")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.thrift_port), timeout=1),
            ):
                break
            if time.monotonic() > deadline:
                raise Bmv2Error(f"simple_switch's Thrift port {self.thrift_port} did not open")
            time.sleep(delay)  # polling a condition, with a deadline
            delay = min(delay * 2, 0.2)
        self.cli(["show_tables"])
        # Still ours: had another process taken the port, this one would have exited by now.
        self._check_alive("starting")

    def cli(self, commands: Sequence[str]) -> list[str]:
        """Run ``simple_switch_CLI`` commands; their outputs, one per command. A command that
        the CLI rejects raises ``Bmv2Error`` naming it (the CLI itself always exits 0)."""
        commands = [c.strip() for c in commands if c.strip() and not c.strip().startswith("#")]
        result = subprocess.run(
            [*self.tools.cli_command, "--thrift-port", str(self.thrift_port)],
            check=False,
            input="\n".join(commands) + "\n",
            env=dict(self.tools.cli_env),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            raise Bmv2Error(f"simple_switch_CLI failed:\n{result.stdout}{result.stderr}")
        # The CLI prints its prompt before reading each command, and once more at the end.
        chunks = result.stdout.split("RuntimeCmd: ")[1:]
        if len(chunks) != len(commands) + 1:
            raise Bmv2Error(f"unexpected simple_switch_CLI output:\n{result.stdout}")
        outputs = chunks[:-1]
        errors = [
            f"{command!r}: {output.strip()}"
            for command, output in zip(commands, outputs, strict=True)
            if re.search(r"^(Error|Invalid|\*\*\*)", output, re.MULTILINE)
        ]
        if errors:
            raise Bmv2Error("simple_switch_CLI rejected:\n  " + "\n  ".join(errors))
        return outputs

    def send(self, packets: Sequence[tuple[int, bytes]]) -> None:
        """Feed (port, Ethernet frame) pairs to the switch, in this order, and close the
        inputs: BMv2 reads the files by increasing timestamp. Once per switch."""
        records: dict[int, bytearray] = {port: bytearray() for port in self._inputs}
        for number, (port, frame) in enumerate(packets, start=1):
            if port not in records:
                raise ValueError(f"port {port} is not an open input of this switch")
            seconds, microseconds = divmod(number, 1_000_000)
            records[port] += _PCAP_RECORD.pack(seconds, microseconds, len(frame), len(frame))
            records[port] += frame
        for port, data in records.items():
            fd = self._inputs.pop(port)
            try:
                self._fit_pipe(fd, len(data))
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
        self._packets_sent += len(packets)

    @staticmethod
    def _fit_pipe(fd: int, size: int) -> None:
        """The whole input must fit into the FIFO: BMv2 reads the files in turn, so a writer
        blocked on a full one could wait on a reader blocked on another."""
        needed = size + _PCAP_HEADER_SIZE
        if needed > fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ):
            limit = int(Path("/proc/sys/fs/pipe-max-size").read_text())
            if needed > limit:
                raise ValueError(f"{size} bytes of packets for one port; at most {limit} fit")
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, needed)

    def progress(self) -> Progress:
        received = dropped = again = 0
        sent: dict[int, int] = {}
        logs = sorted(self.workdir.glob("switch*.txt"))  # rotated ones too
        for log in logs:
            text = log.read_text(errors="replace")
            for line in text[: text.rfind("\n") + 1].splitlines():
                if _RECEIVED in line:
                    received += 1
                elif any(d in line for d in _DROPPED):
                    dropped += 1
                elif any(a in line for a in _AGAIN):
                    again += 1
                elif match := _SENT.search(line):
                    port = int(match.group(1))
                    sent[port] = sent.get(port, 0) + 1
        return Progress(received, sent, dropped, again)

    def wait_until_processed(self, timeout: float = PROCESS_TIMEOUT) -> Progress:
        """Wait until every packet given to ``send`` has left the pipeline, and the output
        files hold every packet sent to this switch's ports."""
        deadline = time.monotonic() + timeout
        delay = 0.01
        while True:
            self._check_alive("processing packets")
            progress = self.progress()
            if (
                progress.received == self._packets_sent + progress.recirculated
                and progress.finished == progress.received
                and all(
                    count_packets(self.output_path(port)) == progress.sent.get(port, 0)
                    for port in self.ports
                )
            ):
                return progress
            if time.monotonic() > deadline:
                raise Bmv2Error(
                    f"after {timeout} s, {self._packets_sent} packets sent, the log shows "
                    f"{progress}; see {self.log_path}"
                )
            time.sleep(delay)  # polling a condition, with a deadline
            delay = min(delay * 2, 0.2)

    def outputs(self) -> dict[int, list[bytes]]:
        """The frames each port sent, in order."""
        return {port: read_frames(self.output_path(port)) for port in self.ports}

    def stop(self) -> None:
        """Stop the switch (SIGTERM, then SIGKILL) and close the inputs. Idempotent."""
        for fd in self._inputs.values():
            os.close(fd)
        self._inputs.clear()
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def count_packets(path: Path) -> int:
    """Complete packet records in a pcap file that may still be being written."""
    return len(read_frames(path))


def read_frames(path: Path) -> list[bytes]:
    """The frames of a pcap file written in this host's byte order (BMv2's output),
    leaving out a record that is not complete yet."""
    if not path.exists():
        return []
    data = path.read_bytes()
    frames = []
    offset = _PCAP_HEADER_SIZE
    while offset + _PCAP_RECORD.size <= len(data):
        _, _, captured, _ = _PCAP_RECORD.unpack_from(data, offset)
        start = offset + _PCAP_RECORD.size
        if start + captured > len(data):
            break
        frames.append(data[start : start + captured])
        offset = start + captured
    return frames


def bmv2_lab_or_skip() -> None:
    """Skip a lab test (Mininet, simple_switch_grpc) where it cannot run: not root, or no
    BMv2 (the lab's own check, with its message)."""
    import pytest

    from lab.errors import LabError
    from lab.nodes import bmv2_binary

    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces, Mininet)")
    try:
        bmv2_binary()
    except LabError as exc:
        pytest.skip(str(exc))
