"""The run directory of the lab and its lock.

The run directory (``/run/srv6lab``, or ``$SRV6LAB_RUN_DIR``) holds the lock, the state file
(:mod:`lab.state`) and the log of a detached lab. The lock (``flock`` on ``lock``, which
also names the holder's pid) is held by the process that owns the running lab for as long
as the lab exists, so only one lab runs at a time and a lab whose process died is known to
be dead: the kernel drops the lock with the process.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from lab.errors import LabBusy, LabError
from lab.state import LabState, read_state

ENV_RUN_DIR = "SRV6LAB_RUN_DIR"
DEFAULT_RUN_DIR = Path("/run/srv6lab")


@dataclass(frozen=True, slots=True)
class RunDir:
    path: Path

    @classmethod
    def from_env(cls) -> RunDir:
        return cls(Path(os.environ.get(ENV_RUN_DIR) or DEFAULT_RUN_DIR))

    @property
    def lock_path(self) -> Path:
        return self.path / "lock"

    @property
    def state_path(self) -> Path:
        return self.path / "state.json"

    @property
    def log_path(self) -> Path:
        return self.path / "lab.log"

    def ensure(self) -> None:
        try:
            self.path.mkdir(mode=0o755, parents=True, exist_ok=True)
        except OSError as exc:
            raise LabError(f"cannot create the run directory {self.path}: {exc.strerror}") from None

    def state(self) -> LabState | None:
        return read_state(self.state_path)


class LabLock:
    """The one-lab-at-a-time lock. ``acquire()`` raises :class:`LabBusy` naming the running
    lab; ``holder()`` says which pid holds it without taking it."""

    def __init__(self, run: RunDir) -> None:
        self.run = run
        self._fd: int | None = None

    def acquire(self) -> None:
        self.run.ensure()
        fd = os.open(self.run.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise busy_error(self.run, _read_pid(self.run.lock_path)) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        os.ftruncate(fd, 0)
        os.close(fd)  # closing drops the flock

    @property
    def held(self) -> bool:
        return self._fd is not None

    def holder(self) -> int | None:
        """The pid of the process holding the lock (another one), or None if free."""
        try:
            fd = os.open(self.run.lock_path, os.O_RDWR)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_pid(self.run.lock_path) or -1
        finally:
            os.close(fd)
        return None

    def __enter__(self) -> LabLock:
        self.acquire()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.release()


def busy_error(run: RunDir, pid: int | None) -> LabBusy:
    """The message for a second ``lab up``: which lab runs, which pid, how to stop it."""
    try:
        state = run.state()
    except LabError:
        state = None
    who = f"pid {pid}" if pid else "another process"
    if state is None:
        what = f"a lab is starting or running ({who})"
    else:
        phase = "running" if state.ready else "starting"
        what = f"lab {state.topology} ({state.topology_path}) is {phase}, held by {who}"
    where = "" if run.path == DEFAULT_RUN_DIR else f" with {ENV_RUN_DIR}={run.path}"
    return LabBusy(f"{what}; only one lab runs at a time. Stop it with `srv6lab lab down`{where}.")


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


@contextmanager
def environment(**values: str) -> Iterator[None]:
    """These environment variables set for the block (a private run directory and
    namespace prefix, say), the previous values back afterwards."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
