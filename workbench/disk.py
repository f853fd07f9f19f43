"""Failed writes, told apart and said in one line: a full disk is not a bug.

ENOSPC (no space left), EDQUOT (over the disk quota) and EFBIG (a file over the
size limit, e.g. RLIMIT_FSIZE with SIGXFSZ ignored) are the same event for a run:
nothing more can be recorded, so it stops at once, keeps the last good checkpoint
and says so. EROFS and EACCES (a read-only or foreign folder) are the other writes
a user's set-up can refuse. The run recorder and the Trainer use these, so that
every write of a run folder fails the same way.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path
from typing import Any

DISK_FULL_ERRNOS = frozenset(
    code for code in (getattr(errno, name, None) for name in ("ENOSPC", "EDQUOT", "EFBIG"))
    if code is not None)
NO_WRITE_ERRNOS = frozenset(
    code for code in (getattr(errno, name, None) for name in ("EROFS", "EACCES", "EPERM"))
    if code is not None)

_WHY = {
    getattr(errno, "ENOSPC", -1): "the disk is full",
    getattr(errno, "EDQUOT", -2): "the disk quota is used up",
    getattr(errno, "EFBIG", -3): "a file reached the size this process may write",
    getattr(errno, "EROFS", -4): "the file system is read-only",
}


def error_number(exc: BaseException) -> int | None:
    """The errno of an OSError; HDF5's own errors (h5py raises OSError without one)
    carry it in their text ("errno = 28")."""
    if not isinstance(exc, OSError):
        return None
    if exc.errno is not None:
        return exc.errno
    found = re.search(r"errno\s*=\s*(\d+)", str(exc))
    return int(found.group(1)) if found else None


def is_disk_full(exc: BaseException) -> bool:
    """An OSError that means nothing more can be written here (ENOSPC, EDQUOT, EFBIG)."""
    return error_number(exc) in DISK_FULL_ERRNOS


def disk_error_text(exc: OSError, path: Any = None) -> str:
    """'cannot write RUN/metrics.jsonl: No space left on device (the disk is full)'."""
    where = path if path is not None else exc.filename
    code = error_number(exc)
    reason = exc.strerror or (os.strerror(code) if code is not None and exc.errno is None
                              else None) or " ".join(str(exc).split()) or type(exc).__name__
    why = _WHY.get(code) if code is not None else None
    text = f"cannot write {Path(where)}" if where is not None else "cannot write"
    return f"{text}: {reason}" + (f" ({why})" if why else "")
