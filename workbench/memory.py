"""How much memory there is, and whether a request fits: refuse before allocating.

A model or a dataset too big for the machine should be a one-line message naming
the size, not a MemoryError (or torch's "can't allocate memory") traceback, nor a
machine that swaps to a halt. The callers estimate what a request needs (a model's
weights, gradients and optimizer state, without its activations; a task's arrays
and the generator's intermediates), refuse it when that exceeds what is available,
and also turn a MemoryError that happens anyway into the project's errors.

Standard library only (psutil is not a dependency): /proc/meminfo's MemAvailable
and a cgroup v2 limit where there are (Linux), else the physical memory from
os.sysconf, else unknown (no check).
"""

from __future__ import annotations

import os
from pathlib import Path

# torch's CPU allocator and CUDA say these when an allocation fails
ALLOCATION_FAILURES = ("can't allocate memory", "out of memory", "not enough memory",
                       "cannot allocate memory")


def available_memory() -> int | None:
    """Bytes a new allocation can count on, or None when the system does not say."""
    figures = [value for value in (_meminfo_available(), _cgroup_headroom()) if value]
    if figures:
        return min(figures)
    return _physical_memory()


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_headroom() -> int | None:
    """A container's memory limit less what it uses (cgroup v2), if it has one."""
    root = Path("/sys/fs/cgroup")
    try:
        limit = (root / "memory.max").read_text().strip()
        if limit == "max":
            return None
        used = int((root / "memory.current").read_text().strip())
        return max(int(limit) - used, 0) or None
    except (OSError, ValueError):
        return None


def _physical_memory() -> int | None:
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):  # Windows has no sysconf
        return None
    return pages * size if pages > 0 and size > 0 else None


def format_bytes(count: float) -> str:
    """'68.7 GB', '512 MB', '3.2 kB' (decimal units, as disk and memory are sold)."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:.3g} {unit}"
    return f"{int(count)} bytes"


def fits(needed: int, available: int | None = None) -> tuple[bool, int | None]:
    """(needed fits in what is available, the figure compared with); unknown fits."""
    available = available_memory() if available is None else available
    return (available is None or needed <= available), available


def is_allocation_failure(exc: BaseException) -> bool:
    """A MemoryError, or a RuntimeError in which torch says an allocation failed."""
    if isinstance(exc, MemoryError):
        return True
    return isinstance(exc, RuntimeError) and any(
        words in str(exc).lower() for words in ALLOCATION_FAILURES)
