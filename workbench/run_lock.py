"""The lock a run holds while it is trained: one trainer per run folder, never two.

Two processes (or two resumes in one process) training the same run would interleave
their metrics, checkpoints and config. So while a run trains, its process holds an
OS file lock (`fcntl.flock`, exclusive, non-blocking) on `<run>/.lock`, and writes
its PID and host there. The OS releases the lock when the process ends, however it
ends, so a crash or a SIGKILL never leaves a stale lock: a lock file whose lock is
free means nothing. A second start or resume is refused with RunError naming the
PID that holds it.

flock locks belong to an open file, so a second resume inside the same process is
refused too. On a system without fcntl (Windows) there is no lock (nothing refused).
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from pathlib import Path

from workbench.disk import disk_error_text
from workbench.errors import OutputError, RunError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".lock"
HOLDER_WAIT_SECONDS = 0.5  # how long to wait for a new holder to write its PID


class RunLock:
    """The held lock of one run folder: `RunLock.acquire(run_dir)`, then `release()`."""

    def __init__(self, run_dir: Path, fd: int | None) -> None:
        self.run_dir = run_dir
        self._fd = fd

    @property
    def path(self) -> Path:
        return self.run_dir / LOCK_FILE

    @classmethod
    def acquire(cls, run_dir: str | Path) -> RunLock:
        """Take the run's lock, or RunError naming the process that holds it (OutputError
        when the lock file cannot be made: the folder is not writable)."""
        run_dir = Path(run_dir)
        if fcntl is None:  # pragma: no cover - Windows
            return cls(run_dir, None)
        path = run_dir / LOCK_FILE
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OutputError(f"cannot lock run {run_dir.name}: "
                              f"{disk_error_text(exc, path)}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _holder_text(fd)
            os.close(fd)
            raise RunError(
                f"run {run_dir.name} is being trained by {holder}, which holds its lock "
                f"({path}); wait for that run to end or stop it, then try again") from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        except OSError as exc:
            os.close(fd)
            raise OutputError(f"cannot lock run {run_dir.name}: "
                              f"{disk_error_text(exc, path)}") from None
        return cls(run_dir, fd)

    def release(self) -> None:
        """Let go of the lock (idempotent); the lock file stays, empty."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def check_unlocked(run_dir: str | Path) -> None:
    """RunError naming the holder when another trainer holds the run's lock (the lock
    is taken and let go at once; a folder without a lock file is unlocked)."""
    run_dir = Path(run_dir)
    if fcntl is None or not (run_dir / LOCK_FILE).exists():
        return
    with contextlib.suppress(OutputError):  # a read-only folder: nobody trains it here
        RunLock.acquire(run_dir).release()


def _holder_text(fd: int) -> str:
    """'process 4242 on box' from the lock file, waiting briefly for a new holder to
    write it; 'another process' when it never does."""
    deadline = time.monotonic() + HOLDER_WAIT_SECONDS
    while True:
        try:
            words = os.pread(fd, 200, 0).decode("utf-8", "replace").split()
        except OSError:
            words = []
        if words and words[0].isdigit():
            host = f" on {words[1]}" if len(words) > 1 and words[1] != socket.gethostname() else ""
            return f"process {words[0]}{host}"
        if time.monotonic() >= deadline:
            return "another process"
        time.sleep(0.02)
