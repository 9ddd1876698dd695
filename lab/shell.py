"""Running a batch of shell commands inside a Mininet node, with errors that say which
command failed and what it printed.

Mininet's ``node.cmd()`` returns whatever the node's shell printed and nothing else, so a
failing ``ip`` or ``tc`` command is easy to miss. Every lab command goes through
:func:`run_commands`: one round trip per batch, stop at the first failure, raise
:class:`~lab.errors.LabError` with the failed command and its output.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator, Sequence
from typing import Any

from lab.errors import LabError

_RC = "__srv6lab_rc="
_FAILED = "__srv6lab_failed="
_RC_RE = re.compile(re.escape(_RC) + r"(\d+)")
# The node shell reads from a pty in canonical mode, which cuts lines at 4096 bytes.
MAX_LINE = 3000


def run_commands(node: Any, commands: Sequence[str], what: str) -> str:
    """Run ``commands`` in ``node``'s shell in order; stop at the first that fails.

    ``what`` says what the batch is for ("configuring s1:s1-eth2") and starts the error
    message. Returns everything the commands printed.
    """
    output: list[str] = []
    for chunk in _chunks(commands):
        script = (
            f"(trap 'echo {_FAILED}\"$BASH_COMMAND\"' ERR; set -e; "
            + "; ".join(chunk)
            + f"); echo {_RC}$?"
        )
        raw = node.cmd(script)
        if raw is None:
            raise LabError(f"{what}: the shell of node {node.name} has exited")
        text = raw.replace("\r\n", "\n")
        match = _RC_RE.search(text)
        if match is None:
            raise LabError(f"{what}: no exit status from node {node.name}; it printed {text!r}")
        rc = int(match.group(1))
        lines = [line for line in text[: match.start()].split("\n") if line.strip()]
        failed = [line[len(_FAILED) :] for line in lines if line.startswith(_FAILED)]
        printed = [line for line in lines if not line.startswith(_FAILED)]
        if rc != 0:
            command = failed[0] if failed else "; ".join(chunk)
            detail = "\n".join(printed) or "(no output)"
            raise LabError(
                f"{what}: command failed in node {node.name} (exit {rc}): {command}\n  {detail}"
            )
        output.extend(printed)
    return "\n".join(output)


def _chunks(commands: Sequence[str]) -> Iterator[list[str]]:
    chunk: list[str] = []
    size = 0
    for command in commands:
        if chunk and size + len(command) > MAX_LINE:
            yield chunk
            chunk, size = [], 0
        chunk.append(command)
        size += len(command) + 2
    if chunk:
        yield chunk


def stop_processes(procs: Sequence[subprocess.Popen[Any]], timeout: float = 5.0) -> None:
    """Terminate the processes still running, wait up to ``timeout`` s for all of them,
    kill those that did not end."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def close_pipes(proc: subprocess.Popen[Any]) -> None:
    """Close the pipes a finished process was started with."""
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None and not stream.closed:
            stream.close()
