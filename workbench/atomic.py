"""Atomic file writes: a reader (or a crash) sees the old file or the new one, never half.

The recipe: write a temporary file in the same folder (so the rename stays on one
file system), flush and fsync it, rename it over the target (atomic on POSIX and
on Windows via os.replace), then fsync the folder so the rename itself survives a
power cut. A write that fails midway removes its temporary file and leaves the
previous file untouched.

The new file gets the permissions an ordinary `open(path, "w")` would give it: the
mode of the file it replaces, else 0o666 less the process's umask (mkstemp alone
would leave every file readable by its owner only). A target that is a folder is
refused with OutputError before anything is written.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from workbench.errors import OutputError

TMP_SUFFIX = ".tmp"
_UMASK_LOCK = threading.Lock()


@contextlib.contextmanager
def atomic_path(target: Path, *, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to `target`; on success it replaces `target`.

    For writers that want a file name (h5py, torch.save). On an exception the
    temporary file is removed and `target` is unchanged.
    """
    target = Path(target)
    if target.is_dir():
        raise OutputError(f"cannot write {target}: it is a folder; give a file name")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TMP_SUFFIX,
                                    dir=target.parent)
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from None
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if fsync:
            _fsync_file(tmp)
        # the mode last, so a writer can fill the file even when the mode is read-only
        with contextlib.suppress(OSError):
            os.chmod(tmp, _new_file_mode(target))
        try:
            os.replace(tmp, target)
        except OSError as exc:
            raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if fsync:
        fsync_dir(target.parent)


def atomic_write(target: Path, write: Callable[[IO[bytes]], Any], *, fsync: bool = True) -> None:
    """Replace `target` with what `write(file)` writes to a binary file object."""
    with atomic_path(target, fsync=fsync) as tmp, open(tmp, "wb") as handle:
        write(handle)
        handle.flush()


def atomic_write_bytes(target: Path, data: bytes, *, fsync: bool = True) -> None:
    atomic_write(target, lambda handle: handle.write(data), fsync=fsync)


def atomic_write_text(target: Path, text: str, *, fsync: bool = True) -> None:
    atomic_write_bytes(target, text.encode("utf-8"), fsync=fsync)


def atomic_write_json(target: Path, value: Any, *, fsync: bool = True) -> None:
    """Strict JSON (no NaN): the caller passes values already made JSON-safe."""
    atomic_write_text(target, json.dumps(value, indent=1, allow_nan=False) + "\n", fsync=fsync)


def _new_file_mode(target: Path) -> int:
    """The mode of the file being replaced, else what a new file gets (0o666 & ~umask)."""
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        return 0o666 & ~current_umask()


def current_umask() -> int:
    """The process's umask, read without changing it where the system allows."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:  # os.umask can only be read by setting it: set it straight back
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable; a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_stale_temporaries(folder: Path) -> int:
    """Delete temporary files an interrupted writer left behind; return how many."""
    count = 0
    for path in Path(folder).glob(f".*{TMP_SUFFIX}"):
        with contextlib.suppress(OSError):
            path.unlink()
            count += 1
    return count
