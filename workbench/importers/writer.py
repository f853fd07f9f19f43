"""Writing an imported dataset file in pieces: split groups whose arrays grow.

An import does not know how many samples each split gets before it has read the
file to the end (windows touching a missing value are dropped on the way), and it
must not hold them all in memory. `SplitWriter` appends samples to the split
groups of an open HDF5 file (docs/dataset-format.md), buffering about a MiB per
split and growing chunked arrays; a group is created with its first sample, so a
split that stays empty is never written as an empty array (which the reader
refuses).

`new_dataset_file` is the whole life of the file: the format's root attributes,
a temporary file next to the target (workbench.atomic), and, once the importer is
done, a read-back by the reader that checks every value before the rename. An
exception anywhere (a bad line, a cancel, a full disk) leaves no file behind.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from workbench.atomic import atomic_path
from workbench.datasets import (
    END_ID,
    FORMAT_ATTR,
    FORMAT_VERSION,
    PAD_ID,
    START_ID,
    SequenceDataset,
)
from workbench.errors import DatasetError, OutputError

__all__ = ["SplitWriter", "new_dataset_file", "write_vocab"]

CHUNK_BYTES = 256 * 2**10
FLUSH_BYTES = 2**20
# HDF5 1.8 and later: attributes of any size (the per-series boundaries of a file
# with thousands of series do not fit the 64 KiB of the oldest format).
LIBVER = ("v108", "latest")


@contextlib.contextmanager
def new_dataset_file(out: Path, attrs: Mapping[str, Any]) -> Iterator[h5py.File]:
    """An open, empty dataset file with the format's root attributes; on a clean exit
    it is checked by the reader and renamed to `out`, on an exception removed."""
    with atomic_path(out) as tmp:
        try:
            f = h5py.File(tmp, "w", libver=LIBVER)
        except OSError as exc:
            raise OutputError(f"cannot write {out}: {exc}") from None
        try:
            f.attrs[FORMAT_ATTR] = FORMAT_VERSION
            for key, value in attrs.items():
                f.attrs[key] = value
            yield f
        finally:
            f.close()
        _validate(tmp, out)


def _validate(tmp: Path, final: Path) -> None:
    try:
        # cache_bytes=0: checked block by block, never read whole into memory
        with SequenceDataset.open(tmp, safe_check=False, val_fraction=0.0, cache_bytes=0) as ds:
            ds.check_values()
    except DatasetError as exc:
        raise DatasetError(str(exc).replace(str(tmp), str(final))) from None


def write_vocab(f: h5py.File, name: str, vocab: Sequence[str]) -> None:
    """A vocabulary array with the reserved ids as attributes, as the tasks write it."""
    ds = f.create_dataset(name, data=np.array(list(vocab), dtype=object),
                          dtype=h5py.string_dtype("utf-8"))
    ds.attrs["pad_id"] = PAD_ID
    ds.attrs["start_id"] = START_ID
    ds.attrs["end_id"] = END_ID


class _Array:
    """One growing array of one split: buffered appends, chunked storage."""

    def __init__(self, group: h5py.Group, name: str, row_shape: tuple[int, ...],
                 dtype: np.dtype) -> None:
        self.group, self.name = group, name
        self.row_shape, self.dtype = row_shape, np.dtype(dtype)
        row_bytes = max(1, int(np.prod(row_shape, dtype=np.int64)) * self.dtype.itemsize)
        self.chunk_rows = max(1, CHUNK_BYTES // row_bytes)
        self.flush_rows = max(1, FLUSH_BYTES // row_bytes)
        self.dataset: h5py.Dataset | None = None
        self.pending: list[np.ndarray] = []
        self.pending_rows = 0
        self.rows = 0

    def append(self, values: np.ndarray) -> None:
        self.pending.append(np.ascontiguousarray(values, dtype=self.dtype))
        self.pending_rows += len(values)
        if self.pending_rows >= self.flush_rows:
            self.flush()

    def flush(self) -> None:
        if not self.pending_rows:
            return
        block = np.concatenate(self.pending) if len(self.pending) > 1 else self.pending[0]
        self.pending, self.pending_rows = [], 0
        if self.dataset is None:
            self.dataset = self.group.create_dataset(
                self.name, shape=(0, *self.row_shape), maxshape=(None, *self.row_shape),
                dtype=self.dtype, chunks=(self.chunk_rows, *self.row_shape))
        n = self.rows
        self.dataset.resize(n + len(block), axis=0)
        self.dataset[n:] = block
        self.rows = n + len(block)


class SplitWriter:
    """Appends samples to the split groups (train, val, test) of an open file.

    `inputs`/`targets` give each side's row shape and dtype: (T, F) float32 for a
    continuous side, (T,) integer ids for tokens. With `lengths`, each append also
    takes the two lengths arrays and the groups get input_lengths/target_lengths.
    """

    def __init__(self, f: h5py.File, *, input_shape: tuple[int, ...], input_dtype: Any,
                 target_shape: tuple[int, ...], target_dtype: Any, lengths: bool) -> None:
        self._file = f
        self._shapes = {"inputs": (tuple(input_shape), np.dtype(input_dtype)),
                        "targets": (tuple(target_shape), np.dtype(target_dtype))}
        if lengths:
            self._shapes["input_lengths"] = ((), np.dtype(np.int32))
            self._shapes["target_lengths"] = ((), np.dtype(np.int32))
        self._arrays: dict[str, dict[str, _Array]] = {}

    def append(self, split: str, inputs: np.ndarray, targets: np.ndarray,
               input_lengths: np.ndarray | None = None,
               target_lengths: np.ndarray | None = None) -> None:
        if not len(inputs):
            return
        arrays = self._arrays.get(split)
        if arrays is None:
            group = self._file.require_group(split)
            arrays = {name: _Array(group, name, shape, dtype)
                      for name, (shape, dtype) in self._shapes.items()}
            self._arrays[split] = arrays
        arrays["inputs"].append(inputs)
        arrays["targets"].append(targets)
        if "input_lengths" in arrays:
            arrays["input_lengths"].append(input_lengths)
            arrays["target_lengths"].append(target_lengths)

    def finish(self) -> dict[str, int]:
        """Write what is buffered; the number of samples of each split written."""
        for arrays in self._arrays.values():
            for array in arrays.values():
                array.flush()
        return self.counts()

    def counts(self) -> dict[str, int]:
        return {split: arrays["inputs"].rows + arrays["inputs"].pending_rows
                for split, arrays in self._arrays.items()}

    def datasets(self, split: str) -> dict[str, h5py.Dataset]:
        """The arrays of a split written so far (after finish)."""
        return {name: a.dataset for name, a in self._arrays.get(split, {}).items()
                if a.dataset is not None}


class CountingSink:
    """What SplitWriter counts, without a file: for the quick scans of the GUI."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def append(self, split: str, inputs: np.ndarray, targets: np.ndarray,
               input_lengths: np.ndarray | None = None,
               target_lengths: np.ndarray | None = None) -> None:
        if len(inputs):
            self._counts[split] = self._counts.get(split, 0) + len(inputs)

    def finish(self) -> dict[str, int]:
        return dict(self._counts)

    def counts(self) -> dict[str, int]:
        return dict(self._counts)
