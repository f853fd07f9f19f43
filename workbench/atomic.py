"""Atomic file writes: a reader (or a crash) sees the old file or the new one, never half.

The recipe: write a temporary file in the same folder (so the rename stays on one
file system), flush and fsync it, rename it over the target (atomic on POSIX and
on Windows via os.replace), then fsync the folder so the rename itself survives a
power cut. A write that fails midway removes its temporary file and leaves the
previous file untouched.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

TMP_SUFFIX = ".tmp"


@contextlib.contextmanager
def atomic_path(target: Path, *, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to `target`; on success it replaces `target`.

    For writers that want a file name (h5py, torch.save). On an exception the
    temporary file is removed and `target` is unchanged.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TMP_SUFFIX, dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if fsync:
            _fsync_file(tmp)
        os.replace(tmp, target)
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
