"""How much memory there is, and what counts as running out of it."""

from __future__ import annotations

import sys

import pytest

from workbench import memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/meminfo")
def test_available_memory_is_a_positive_byte_count_no_more_than_physical():
    available = memory.available_memory()
    assert isinstance(available, int) and available > 0
    physical = memory._physical_memory()
    assert physical is None or available <= physical


def test_unknown_memory_refuses_nothing(monkeypatch):
    monkeypatch.setattr(memory, "available_memory", lambda: None)
    assert memory.fits(10**15) == (True, None)
    assert memory.fits(10**9, available=10**8) == (False, 10**8)


def test_sizes_read_as_people_write_them():
    assert memory.format_bytes(115_212_000_000) == "115 GB"
    assert memory.format_bytes(16 * 10**9) == "16 GB"
    assert memory.format_bytes(512) == "512 bytes"


def test_allocation_failures_are_told_from_other_errors():
    assert memory.is_allocation_failure(MemoryError())
    assert memory.is_allocation_failure(RuntimeError(
        "DefaultCPUAllocator: can't allocate memory: you tried to allocate 68719476736 bytes"))
    assert memory.is_allocation_failure(RuntimeError("CUDA out of memory. Tried to allocate"))
    assert not memory.is_allocation_failure(RuntimeError("size mismatch"))
    assert not memory.is_allocation_failure(ValueError("can't allocate memory"))
