"""HDF5 sequence files -> validated, lazily read, block-shuffled batches.

The file format is in docs/dataset-format.md. This module reads it (and files that
don't follow it, given explicit array paths) for the trainer and the GUI:

- Opening validates the structure at once, without reading the data arrays: a bad
  file fails when the user picks it, not an hour into training. Every failure is a
  DatasetError naming the file, the array path, what was expected and what was found.
- Values are checked as they are read (NaN/inf, token ids outside the vocabulary,
  token targets that do not end with the end id), block by block in bounded memory;
  the error names the sample.
- Batches are read lazily. A batch of random rows read through h5py costs ~100 times
  an in-memory batch, while contiguous reads run at GB/s, so an epoch visits the data
  in blocks of consecutive samples (~1 MiB, at least one chunk) in random order and
  shuffles the samples of a window of `BUFFER_BLOCKS` blocks together. Memory stays
  bounded by one window; a small file is cached in memory instead.
- Without split groups in the file, a validation split is drawn from a split seed
  that is separate from the training seed, so runs that differ in their training
  seed are scored on the same samples.

The structure checks (which arrays, what shape) are in workbench.dataset_layout,
which the safe-open child process runs without importing this reader. Only numpy
and h5py are imported here.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from workbench import safe_open
from workbench.dataset_layout import (
    CONTINUOUS,
    END_ID,
    FORMAT_ATTR,
    FORMAT_VERSION,
    PAD_ID,
    PROBE_FULL_READ_BYTES,
    RESERVED_TOKENS,
    SPLIT_NAMES,
    START_ID,
    STORED_ALL,
    TOKENS,
    ArrayInfo,
    Layout,
    StoredGroup,
    StoredSide,
    describe_dtype,
    h5_errors,
    probe_array,
    resolve_layout,
    walk_arrays,
)
from workbench.errors import ConfigError, DatasetError
from workbench.file_kinds import not_hdf5_message

__all__ = [
    "ArrayInfo",
    "Batch",
    "CONTINUOUS",
    "DataSplit",
    "DatasetSummary",
    "END_ID",
    "FORMAT_ATTR",
    "FORMAT_VERSION",
    "Normalization",
    "PAD_ID",
    "PROBE_FULL_READ_BYTES",
    "RESERVED_TOKENS",
    "SPLIT_NAMES",
    "START_ID",
    "SequenceDataset",
    "SideSpec",
    "TOKENS",
    "describe_dtype",
    "list_arrays",
    "probe_array",
    "resolve_layout",
    "walk_arrays",
]
# the format's constants and the structure checks (workbench.dataset_layout) stay importable here

DEFAULT_CACHE_BYTES = 256 * 2**20
BLOCK_BYTES = 2**20  # target size of one shuffle block (stored bytes, inputs + targets)
BUFFER_BLOCKS = 8  # blocks whose samples are shuffled together: memory ~ 8 MiB + batches
SUBSET_PIECES = 8  # runs of consecutive samples a validation subset is drawn in
GAP_BYTES = 256 * 2**10  # rows closer than this are read in one slice and sub-selected
PIECE_BYTES = 2**20  # a sparse run is read in slices of this size
_SHUFFLE_SALT = 0x5EED_B10C
_SAMPLE_SALT = 0x5A3E_0F0E
FINGERPRINT_BYTES = 64 * 2**10  # of each array's start and end, hashed into its fingerprint
FINGERPRINT_KEYS = ("bytes", "arrays", "hash")  # what a resume compares
NORMALIZATION_ROWS = 1_000_000  # training samples the statistics of a large file come from
SAMPLE_PIECES = 16  # runs of consecutive samples that sample is drawn in


# --- what the reader hands out ---------------------------------------------------------


@dataclass(frozen=True)
class SideSpec:
    """One side of the data (the inputs or the targets): what the model must fit."""

    kind: str  # CONTINUOUS | TOKENS
    steps: int  # T, the padded length
    features: int | None  # F for continuous data, else None
    vocab: tuple[str, ...] | None  # tokens: the vocabulary, index = id
    pad_id: int | None
    start_id: int | None
    end_id: int | None
    variable_length: bool  # some sequence is shorter than `steps`

    @property
    def vocab_size(self) -> int | None:
        return None if self.vocab is None else len(self.vocab)


@dataclass(frozen=True)
class DatasetSummary:
    """What a file holds, as the reader serves it; `to_json` gives `inspect --json`."""

    path: str
    task: str | None
    description: str
    inputs: SideSpec
    targets: SideSpec
    splits: dict[str, int]  # as served: "train", "val" (if any), "test" (if stored)
    file_splits: dict[str, int]  # as stored: {"all": N} without split groups
    format_version: int | None = None  # None: a file that doesn't declare the format
    split_seed: int = 0
    val_fraction: float = 0.1
    val_from_seed: bool = True  # the validation split was drawn with split_seed

    @property
    def variable_length(self) -> bool:
        return self.inputs.variable_length or self.targets.variable_length

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values; the keys of `python main.py inspect --json`."""
        tokens = self.targets if self.targets.kind == TOKENS else self.inputs
        has_tokens = tokens.kind == TOKENS
        return {
            "path": self.path,
            "task": self.task,
            "description": self.description,
            "format_version": self.format_version,
            "input_kind": self.inputs.kind,
            "target_kind": self.targets.kind,
            "splits": dict(self.file_splits),
            "reader_splits": dict(self.splits),
            "input_steps": self.inputs.steps,
            "target_steps": self.targets.steps,
            "input_features": self.inputs.features,
            "target_features": self.targets.features,
            "input_vocab_size": self.inputs.vocab_size,
            "target_vocab_size": self.targets.vocab_size,
            "variable_length": self.variable_length,
            "input_variable_length": self.inputs.variable_length,
            "target_variable_length": self.targets.variable_length,
            "pad_id": tokens.pad_id if has_tokens else None,
            "start_id": tokens.start_id if has_tokens else None,
            "end_id": tokens.end_id if has_tokens else None,
            "split_seed": self.split_seed if self.val_from_seed else None,
            "val_fraction": self.val_fraction if self.val_from_seed else None,
        }


@dataclass(frozen=True, eq=False)
class Batch:
    """Raw values in the data's own units. Steps past a sequence's length hold 0
    (continuous) or the pad id (tokens), whatever the file stores there."""

    x: np.ndarray  # (B, T_in, F_in) float32, or (B, T_in) int64 ids
    y: np.ndarray  # (B, T_out, F_out) float32, or (B, T_out) int64 ids
    x_lengths: np.ndarray  # (B,) int64, 1..T_in
    y_lengths: np.ndarray  # (B,) int64, 1..T_out
    indices: np.ndarray  # (B,) int64 sample index within the split

    def __len__(self) -> int:
        return len(self.indices)


@dataclass(frozen=True, eq=False)
class Normalization:
    """Per-feature mean and std of the training split (valid steps only).

    Training feeds the model normalised continuous values; predictions are shown in
    the data's own units with `denormalize_y`. A token side has None. A feature that
    is constant in the training data gets std 1, so it is shifted but never divided
    by zero. The run records `to_dict()`; nothing is written into the user's file.
    """

    x_mean: np.ndarray | None
    x_std: np.ndarray | None
    y_mean: np.ndarray | None
    y_std: np.ndarray | None
    rows: int | None = None  # training samples the statistics come from (a sample when large)
    train_rows: int | None = None  # samples in the training split

    def normalize_x(self, x: np.ndarray) -> np.ndarray:
        return _normalize(x, self.x_mean, self.x_std)

    def normalize_y(self, y: np.ndarray) -> np.ndarray:
        return _normalize(y, self.y_mean, self.y_std)

    def denormalize_x(self, x: np.ndarray) -> np.ndarray:
        return _denormalize(x, self.x_mean, self.x_std)

    def denormalize_y(self, y: np.ndarray) -> np.ndarray:
        return _denormalize(y, self.y_mean, self.y_std)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            name: None if value is None else [float(v) for v in value]
            for name, value in (
                ("x_mean", self.x_mean),
                ("x_std", self.x_std),
                ("y_mean", self.y_mean),
                ("y_std", self.y_std),
            )
        }
        if self.rows is not None:
            out["rows"] = int(self.rows)
            out["train_rows"] = int(self.train_rows if self.train_rows is not None else self.rows)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Normalization:
        def arr(name: str) -> np.ndarray | None:
            value = data.get(name)
            return None if value is None else np.asarray(value, dtype=np.float64)

        def count(name: str) -> int | None:
            value = data.get(name)
            return int(value) if isinstance(value, (int, float)) else None

        return cls(arr("x_mean"), arr("x_std"), arr("y_mean"), arr("y_std"),
                   count("rows"), count("train_rows"))


def _normalize(values: np.ndarray, mean: np.ndarray | None, std: np.ndarray | None) -> np.ndarray:
    if mean is None or std is None:
        return values
    dtype = values.dtype if values.dtype.kind == "f" else np.float32
    return ((values - mean.astype(dtype)) / std.astype(dtype)).astype(dtype, copy=False)


def _denormalize(
    values: np.ndarray, mean: np.ndarray | None, std: np.ndarray | None
) -> np.ndarray:
    if mean is None or std is None:
        return values
    dtype = values.dtype if values.dtype.kind == "f" else np.float32
    return (values * std.astype(dtype) + mean.astype(dtype)).astype(dtype, copy=False)


def _openh5_errors(path: Path, file: str) -> h5py.File:
    with h5_errors(file, None, "open it as an HDF5 file"):
        return h5py.File(path, "r", rdcc_nbytes=8 * 2**20, rdcc_nslots=10007)


def _check_path(path: Path, file: str) -> None:
    if not path.exists():
        raise DatasetError(f"{file}: no such file")
    if path.is_dir():
        raise DatasetError(f"{file}: is a folder, not an HDF5 file")
    try:
        not_hdf5 = not_hdf5_message(path, file)
    except OSError as exc:
        raise DatasetError(f"{file}: could not read the file: {exc.strerror or exc}") from None
    if not_hdf5:
        raise DatasetError(not_hdf5)


def list_arrays(path: str | Path, *, safe_check: bool = True) -> list[ArrayInfo]:
    """Every array in a file with its path, shape and dtype (for the GUI's browser).

    The first look at a user's file walks it in a child process (workbench.safe_open),
    so a file that crashes libhdf5 becomes a DatasetError. Raises DatasetError if the
    file can't be read.
    """
    path = Path(path)
    file = str(path)
    _check_path(path, file)
    if safe_check:
        safe_open.check_file(path, mode="list")
    with _openh5_errors(path, file) as f:
        return walk_arrays(f, file)


# --- values: checked as they are read ----------------------------------------------------


def _where(file: str, side: StoredSide, row: int) -> str:
    return f"{file}: {side.path}: sample {row}"


def _valid_mask(lengths: np.ndarray, steps: int) -> np.ndarray:
    return np.arange(steps)[None, :] < lengths[:, None]


def _lengths_of(side: StoredSide, rows: np.ndarray) -> np.ndarray:
    if side.lengths is None:
        return np.full(len(rows), side.steps, dtype=np.int64)
    return side.lengths[rows]


def _serve(raw: np.ndarray, side: StoredSide, rows: np.ndarray, *, file: str, is_target: bool,
           trusted: np.ndarray | None = None) -> np.ndarray:
    """Stored values of stored `rows` -> served values (float32 / int64, padding
    cleared), checked: DatasetError naming the sample at the first bad value.

    `trusted` (one flag per stored row) marks rows already checked whose padding
    already held the fill value: rows all trusted skip the checks (later epochs);
    rows that pass are marked.
    """
    continuous = side.kind == CONTINUOUS
    with np.errstate(over="ignore", invalid="ignore"):
        values = (raw.astype(np.float32, copy=raw.dtype != np.float32) if continuous
                  else raw.astype(np.int64))
    if trusted is not None and bool(trusted[rows].all()):
        return values
    lengths = _lengths_of(side, rows)
    assert continuous or (side.vocab is not None and side.ids is not None)
    fill = 0 if continuous else side.ids[0]  # type: ignore[index]
    clean = _clear_padding(values, lengths, side.steps, fill) if side.lengths is not None \
        else True
    if continuous:
        if values.size and not _all_finite(values):
            i, t, k = (int(v) for v in np.argwhere(~np.isfinite(values))[0])
            raise DatasetError(
                f"{_where(file, side, int(rows[i]))}, step {t}, feature {k}: expected "
                f"a finite value (no NaN or inf, within float32 range), found {raw[i, t, k]}"
            )
    else:
        _check_tokens(values, raw, lengths, side, rows, file, is_target)
    if trusted is not None and clean:
        trusted[rows] = True
    return values


def _clear_padding(values: np.ndarray, lengths: np.ndarray, steps: int, fill: int) -> bool:
    """Set the steps past each length to `fill`; True if they all held it already."""
    if not len(lengths) or int(lengths.min()) >= steps:
        return True
    pad = np.flatnonzero((np.arange(steps)[None, :] >= lengths[:, None]).ravel())
    flat = values.reshape(len(values) * steps, -1)
    tail = flat[pad]
    if not (tail != fill).any():
        return True
    flat[pad] = fill
    return False


def _all_finite(values: np.ndarray) -> bool:
    # The float32 sum is the fast path; it may overflow on legitimate large values,
    # so only a non-finite sum pays for the exact element-wise test.
    with np.errstate(over="ignore", invalid="ignore"):
        if math.isfinite(float(values.sum())):
            return True
    return bool(np.isfinite(values).all())


def _check_tokens(
    values: np.ndarray,
    raw: np.ndarray,
    lengths: np.ndarray,
    side: StoredSide,
    rows: np.ndarray,
    file: str,
    is_target: bool,
) -> None:
    assert side.vocab is not None and side.ids is not None
    size = len(side.vocab)
    if values.size and (int(values.min()) < 0 or int(values.max()) >= size):
        i, t = (int(v) for v in np.argwhere((values < 0) | (values >= size))[0])
        raise DatasetError(
            f"{_where(file, side, int(rows[i]))}, step {t}: expected a token id in "
            f"0..{size - 1} (the vocabulary {side.vocab_path} has {size} entries), "
            f"found {raw[i, t]}"
        )
    if is_target and len(values):
        end = side.ids[2]
        last = values[np.arange(len(values)), lengths - 1]
        bad = np.flatnonzero(last != end)
        if bad.size:
            i = int(bad[0])
            raise DatasetError(
                f"{_where(file, side, int(rows[i]))}, step {int(lengths[i]) - 1}: "
                f"expected the end id {end} at the last step its length {int(lengths[i])} "
                f"counts (token targets end with the end id), found id {int(last[i])}"
            )


# --- block shuffle --------------------------------------------------------------------


def _block_rows(group: StoredGroup) -> int:
    """Samples per shuffle block: ~BLOCK_BYTES of stored data, whole chunks of the inputs."""
    row_bytes = max(1, group.x.stored_row_bytes + group.y.stored_row_bytes)
    rows = max(1, BLOCK_BYTES // row_bytes)
    chunks = group.x.dataset.chunks
    if chunks:
        c = int(chunks[0])
        rows = max(c, -(-rows // c) * c)
    return rows


def epoch_order(
    n: int, block: int, *, seed: int, epoch: int, shuffle: bool = True,
    window_blocks: int = BUFFER_BLOCKS,
) -> tuple[np.ndarray, np.ndarray]:
    """The order in which an epoch visits indices 0..n-1, and the window boundaries.

    Blocks of `block` consecutive indices are visited in a random order; each window
    of `window_blocks` consecutive blocks (in that order) is shuffled as a whole.
    Deterministic for (seed, epoch). Returns (order, bounds): window w covers
    order[bounds[w]:bounds[w + 1]].
    """
    nblocks = -(-n // block)
    if not shuffle:
        bounds = np.arange(0, n, block * window_blocks, dtype=np.int64)
        return np.arange(n, dtype=np.int64), np.append(bounds, n)
    rng = np.random.default_rng([seed % 2**64, epoch % 2**64, _SHUFFLE_SALT])
    perm = rng.permutation(nblocks).astype(np.int64)
    starts = perm * block
    sizes = np.minimum(block, n - starts)
    cumulative = np.concatenate([[0], np.cumsum(sizes)])
    order = np.arange(n, dtype=np.int64) + np.repeat(starts - cumulative[:-1], sizes)
    bounds = cumulative[::window_blocks]
    if bounds[-1] != n:
        bounds = np.append(bounds, n)
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        rng.shuffle(order[lo:hi])
    return order, bounds


def epoch_windows(
    n: int, block: int, *, seed: int, epoch: int, shuffle: bool = True,
    window_blocks: int = BUFFER_BLOCKS,
) -> Iterator[np.ndarray]:
    """The windows of `epoch_order`, one at a time: the same orders (the blocks in the
    same random order, each window shuffled with the same stream, in turn), but only
    one window in memory and none drawn before it is needed. On 9 x 10^7 samples
    epoch_order took 5.5 s and 2 GB before the first batch; this takes a window's worth."""
    step = block * window_blocks
    if not shuffle:
        for lo in range(0, n, step):
            yield np.arange(lo, min(n, lo + step), dtype=np.int64)
        return
    nblocks = -(-n // block)
    rng = np.random.default_rng([seed % 2**64, epoch % 2**64, _SHUFFLE_SALT])
    perm = rng.permutation(nblocks).astype(np.int64)
    for w in range(0, nblocks, window_blocks):
        order = np.concatenate([np.arange(b * block, min(n, (b + 1) * block), dtype=np.int64)
                                for b in perm[w : w + window_blocks].tolist()])
        rng.shuffle(order)
        yield order


def validation_rows(n: int, count: int, split_seed: int) -> np.ndarray:
    """The `count` rows of 0..n-1 drawn for validation, sorted; depends only on
    (n, count, split_seed). A splitmix64 hash per row, so it does not change with
    numpy's random streams: the rows with the `count` smallest hashes.

    The hashes of 0..n-1 are distinct (the finaliser is a bijection of 64-bit words),
    so those rows are one definite set. A large file is hashed in chunks, keeping
    only the rows under a threshold a little above the expected `count`-th smallest
    hash (the hashes are uniform): the same rows, in bounded memory and about a
    second per 10^8 rows, where hashing and partitioning all at once took 7 s and
    2.4 GB.
    """
    if count >= n:
        return np.arange(n, dtype=np.int64)
    if n <= _HASH_CHUNK:
        z = _row_hashes(0, n, split_seed)
        chosen = np.argpartition(z, count - 1)[:count]
        return np.sort(chosen).astype(np.int64)
    share = (count + 8.0 * math.sqrt(count) + 64.0) / n
    while True:
        threshold = np.uint64(min(2**64 - 1, int(share * 2.0**64)))
        rows, hashes = [], []
        for lo in range(0, n, _HASH_CHUNK):
            z = _row_hashes(lo, min(n, lo + _HASH_CHUNK), split_seed)
            keep = np.flatnonzero(z <= threshold)
            hashes.append(z[keep])
            keep += lo
            rows.append(keep)
        candidates = np.concatenate(rows)  # sorted: chunk after chunk
        if len(candidates) >= count:
            break
        share *= 2.0  # fewer than expected under the threshold (never seen): look wider
    if len(candidates) > count:
        values = np.concatenate(hashes)
        last = np.partition(values, count - 1)[count - 1]  # the count-th smallest hash
        candidates = candidates[values <= last]
    return candidates.astype(np.int64, copy=False)


_HASH_CHUNK = 1 << 17  # rows hashed at once by validation_rows (fits in a cache)


def _row_hashes(start: int, stop: int, split_seed: int) -> np.ndarray:
    """splitmix64 of rows start..stop-1 under `split_seed` (validation_rows' hash)."""
    offset = np.uint64((split_seed * 0xD1B54A32D192ED03 + 0x632BE59BD9B4E019) % 2**64)
    z = np.arange(start, stop, dtype=np.uint64)
    shifted = np.empty_like(z)
    with np.errstate(over="ignore"):  # arithmetic modulo 2^64, in place
        z *= np.uint64(0x9E3779B97F4A7C15)
        z += offset
        for shift, factor in ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB)):
            np.right_shift(z, np.uint64(shift), out=shifted)
            z ^= shifted
            z *= np.uint64(factor)
        np.right_shift(z, np.uint64(31), out=shifted)
        z ^= shifted
    return z


# --- the dataset ---------------------------------------------------------------------


class SequenceDataset:
    """An open sequence file: its summary, its splits, its normalisation statistics.

    Use `SequenceDataset.open(...)`; a context manager, `close()` releases the file.
    """

    def __init__(
        self,
        path: Path,
        file: h5py.File,
        layout: Layout,
        *,
        split_seed: int,
        val_fraction: float,
        cache_bytes: int,
    ) -> None:
        self.path = path
        self._label = str(path)
        self._signature = _file_signature(path)
        self._file: h5py.File | None = file
        self._layout = layout
        self._cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._trusted: dict[str, np.ndarray] = {}
        served = sum(g.n * (g.x.served_row_bytes + g.y.served_row_bytes)
                     for g in layout.groups.values())
        self._cache_enabled = served <= cache_bytes
        self._normalization: Normalization | None = None
        plan = _plan_splits(layout, self._label, split_seed, val_fraction)
        self._splits = {
            name: DataSplit(self, name, layout.groups[group], rows)
            for name, (group, rows) in plan.items()
        }
        self.summary = _summarize(self._label, layout, self._splits, split_seed, val_fraction)

    @classmethod
    def open(
        cls,
        path: str | Path,
        inputs: str | None = None,
        targets: str | None = None,
        *,
        split_seed: int = 0,
        val_fraction: float = 0.1,
        safe_check: bool = True,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> SequenceDataset:
        """Open and validate a file's structure (no data array is read).

        `inputs`/`targets` name the arrays of a file that doesn't follow the format.
        Without split groups, validation is `val_fraction` of the samples drawn with
        `split_seed` (not the training seed). `safe_check` runs the first open of a
        file in a child process (workbench.safe_open). Files whose served data fit in
        `cache_bytes` are read into memory at the first batch.
        """
        path = Path(path)
        file = str(path)
        _check_options(split_seed, val_fraction, cache_bytes)
        if bool(inputs) != bool(targets):
            raise ConfigError(
                f"{file}: give both the inputs and the targets array path, or neither "
                f"(got inputs={inputs!r}, targets={targets!r})"
            )
        _check_path(path, file)
        if safe_check:
            safe_open.check_file(path, inputs=inputs, targets=targets)
        f = _openh5_errors(path, file)
        try:
            layout = resolve_layout(f, file, inputs, targets)
            return cls(path, f, layout, split_seed=int(split_seed),
                       val_fraction=float(val_fraction), cache_bytes=int(cache_bytes))
        except BaseException:
            f.close()
            raise

    # context manager and life cycle
    def __enter__(self) -> SequenceDataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._file is not None:
            with contextlib.suppress(Exception):
                self._file.close()
        self._file = None
        self._cache.clear()
        self._trusted.clear()

    def __repr__(self) -> str:
        splits = ", ".join(f"{k}={v}" for k, v in self.summary.splits.items())
        return f"SequenceDataset({self._label!r}, {splits})"

    # what the trainer uses
    def split(self, name: str) -> DataSplit:
        """The named split; DatasetError naming the split if the file has none such."""
        try:
            return self._splits[name]
        except KeyError:
            have = ", ".join(self._splits)
            raise DatasetError(f"{self._label}: no split {name!r}; the splits are: {have}") from None

    def normalization(self, between: Callable[[int, int], None] | None = None) -> Normalization:
        """Per-feature mean/std of the training split (of a seeded sample of at most
        NORMALIZATION_ROWS samples of a larger one, drawn with the split seed),
        computed streaming; cached. `between(done, total)` is called between blocks
        (see _compute_normalization); an exception it raises ends the pass uncached."""
        if self._normalization is None:
            self._normalization = _compute_normalization(
                self.split("train"), seed=self.summary.split_seed, between=between)
        return self._normalization

    def fingerprint(self) -> dict[str, Any]:
        """What identifies the data a run trains on, cheaply (see `fingerprint_differs`).

        Compared on resume: `bytes` (the file's size), `arrays` (path -> shape and dtype
        of every array the reader uses, lengths and vocabularies included) and `hash`
        (SHA-256, first 16 hex digits, of those shapes and of the first and last
        FINGERPRINT_BYTES of each array). Recorded and shown, not compared: `path` and
        `modified` (a moved or copied file with the same content is the same data).
        """
        digest = hashlib.sha256()
        arrays: dict[str, str] = {}
        for path, dataset in self._used_arrays():
            shape = tuple(int(v) for v in dataset.shape)
            arrays[path] = f"{'x'.join(map(str, shape)) or 'scalar'} {dataset.dtype.str}"
            digest.update(f"{path}\0{arrays[path]}\0".encode())
            for part in _edge_blocks(dataset, self._label, path):
                digest.update(_content_bytes(part))
        stat = os.stat(self.path)
        return {"bytes": int(stat.st_size), "arrays": arrays, "hash": digest.hexdigest()[:16],
                "path": str(Path(self.path).resolve()),
                "modified": _dt.datetime.fromtimestamp(stat.st_mtime).isoformat(timespec="seconds")}

    def _used_arrays(self) -> list[tuple[str, h5py.Dataset]]:
        if self._file is None:
            raise DatasetError(f"{self._label}: the dataset was closed")
        used: dict[str, h5py.Dataset] = {}
        for group in self._layout.groups.values():
            for side in (group.x, group.y):
                used[side.path] = side.dataset
                for extra in (side.lengths_path, side.vocab_path):
                    if extra and extra in self._file:
                        used[extra] = self._file[extra]
        return sorted(used.items())

    def changed(self) -> str | None:
        """How the file changed since it was opened (size or modification time), or None.

        Cheap (one stat): the Trainer asks every few seconds and between epochs, since a
        file rewritten under an open reader (HDF5_USE_FILE_LOCKING=FALSE) reads as fill
        values without an error."""
        try:
            now = _file_signature(self.path)
        except OSError as exc:
            return f"it can no longer be read ({exc.strerror or exc})"
        if now == self._signature:
            return None
        (size0, _), (size1, mtime1) = self._signature, now
        if size0 != size1:
            return f"its size went from {size0:,} to {size1:,} bytes"
        when = _dt.datetime.fromtimestamp(mtime1 / 1e9).isoformat(timespec="seconds")
        return f"it was modified at {when}"

    def check_values(self) -> int:
        """Read every stored sample once, block by block, checking its values;
        return how many samples were checked. DatasetError at the first bad one."""
        count = 0
        for group in self._layout.groups.values():
            for rows in _row_blocks(group.n, _block_rows(group) * BUFFER_BLOCKS):
                self._window(group, rows)
                count += len(rows)
        return count

    # reading (used by DataSplit)
    def _window(self, group: StoredGroup, rows: np.ndarray) -> _Window:
        """Served values of stored `rows` (any order, repeats allowed), checked."""
        if self._file is None:
            raise DatasetError(f"{self._label}: the dataset was closed")
        lengths = (_lengths_of(group.x, rows), _lengths_of(group.y, rows))
        cached = self._cached(group)
        if cached is not None:
            return _Window(cached[0], cached[1], rows, *lengths)
        if len(rows) < 2 or bool(np.all(np.diff(rows) > 0)):
            unique, inverse = rows, None
        else:
            unique, inverse = np.unique(rows, return_inverse=True)
        x, y, where = self._read_buffer(group, unique)
        return _Window(x, y, where if inverse is None else where[inverse], *lengths)

    def _read_buffer(
        self, group: StoredGroup, rows: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Read sorted unique stored rows with few, large, contiguous reads.

        Rows closer than GAP_BYTES form one run. A dense run (at least half of its span
        wanted) is read whole, straight into the buffer, unwanted rows included; a
        sparse one is read piece by piece and only its wanted rows kept. Returns the
        served buffers and the buffer position of each row.
        """
        row_bytes = max(1, group.x.stored_row_bytes + group.y.stored_row_bytes)
        gap = max(1, GAP_BYTES // row_bytes, int((group.x.dataset.chunks or (1,))[0]))
        if len(rows) == 0:
            rows = np.empty(0, dtype=np.int64)
        cuts = np.flatnonzero(np.diff(rows) > gap) + 1 if len(rows) else np.empty(0, np.int64)
        runs = []
        where = np.empty(len(rows), dtype=np.int64)
        held = []  # the stored row of each buffer row
        offset = 0
        starts = np.concatenate([[0], cuts]).tolist() if len(rows) else []
        for s, e in zip(starts, np.concatenate([cuts, [len(rows)]]).tolist()):
            want = rows[s:e]
            a, b = int(want[0]), int(want[-1]) + 1
            dense = b - a <= 2 * len(want)
            runs.append((a, b, want, dense, offset))
            if dense:
                where[s:e] = offset + want - a
                held.append(np.arange(a, b, dtype=np.int64))
            else:
                where[s:e] = offset + np.arange(len(want))
                held.append(want)
            offset += len(held[-1])
        stored = np.concatenate(held) if held else np.empty(0, dtype=np.int64)
        x = _serve(self._read_runs(group.x, runs, offset, row_bytes), group.x, stored,
                   file=self._label, is_target=False, trusted=self._trusted_rows(group.x))
        y = _serve(self._read_runs(group.y, runs, offset, row_bytes), group.y, stored,
                   file=self._label, is_target=True, trusted=self._trusted_rows(group.y))
        return x, y, where

    def _trusted_rows(self, side: StoredSide) -> np.ndarray:
        """Per stored row of `side`: checked already, padding already clean."""
        if side.path not in self._trusted:
            self._trusted[side.path] = np.zeros(side.dataset.shape[0], dtype=bool)
        return self._trusted[side.path]

    def _read_runs(self, side: StoredSide, runs: list[tuple], total: int, row_bytes: int) -> np.ndarray:
        ds = side.dataset
        out = np.empty((total, *ds.shape[1:]), dtype=ds.dtype)
        piece = max(1, PIECE_BYTES // row_bytes)
        for a, b, want, dense, offset in runs:
            with h5_errors(self._label, side.path, f"read samples {a}..{b - 1}"):
                if dense:
                    _read_into(ds, a, b, out[offset : offset + b - a])
                    continue
                for lo in range(a, b, piece):
                    sel = want[(want >= lo) & (want < lo + piece)]
                    if len(sel):
                        slab = ds[lo : int(sel[-1]) + 1]
                        out[offset : offset + len(sel)] = slab[sel - lo]
                        offset += len(sel)
        return out

    def _cached(self, group: StoredGroup) -> tuple[np.ndarray, np.ndarray] | None:
        """The whole group in memory (served form, values checked) if the file is small."""
        if not self._cache_enabled:
            return None
        if group.name not in self._cache:
            parts = [self._read_buffer(group, rows)[:2]
                     for rows in _row_blocks(group.n, _block_rows(group) * BUFFER_BLOCKS)]
            self._cache[group.name] = (np.concatenate([p[0] for p in parts]),
                                       np.concatenate([p[1] for p in parts]))
        return self._cache[group.name]


@dataclass(frozen=True, eq=False)
class _Window:
    """Served buffers and, for each requested sample in order, its buffer position."""

    x: np.ndarray
    y: np.ndarray
    where: np.ndarray
    x_lengths: np.ndarray
    y_lengths: np.ndarray

    def take(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        at = self.where[lo:hi]
        return self.x[at], self.y[at], self.x_lengths[lo:hi], self.y_lengths[lo:hi]


def _file_signature(path: Path) -> tuple[int, int]:
    """(size in bytes, modification time in ns) of a file."""
    stat = os.stat(path)
    return int(stat.st_size), int(stat.st_mtime_ns)


def _edge_blocks(dataset: h5py.Dataset, file: str, path: str) -> list[np.ndarray]:
    """The first and the last FINGERPRINT_BYTES of an array (whole rows, at least one)."""
    if dataset.shape == ():
        with h5_errors(file, path, "read it"):
            return [np.asarray(dataset[()])]
    n = int(dataset.shape[0])
    row_bytes = max(1, int(np.prod(dataset.shape[1:])) * dataset.dtype.itemsize)
    rows = min(n, max(1, FINGERPRINT_BYTES // row_bytes))
    with h5_errors(file, path, "read its first and last rows"):
        return [np.asarray(dataset[:rows]), np.asarray(dataset[n - rows:])]


def _content_bytes(part: np.ndarray) -> bytes:
    """The bytes of an array's values: for an object array (HDF5 variable-length
    strings, a vocabulary) its values encoded, not its memory (which holds pointers, new
    at every read)."""
    if part.dtype.kind != "O":
        return part.tobytes()
    return b"\0".join(v if isinstance(v, bytes) else str(v).encode() for v in part.ravel())


def fingerprint_differs(recorded: dict[str, Any], now: dict[str, Any]) -> bool:
    """Whether two fingerprints (SequenceDataset.fingerprint) are of different data:
    size, arrays or hash differ (path and modification time do not count)."""
    return any(recorded.get(key) != now.get(key) for key in FINGERPRINT_KEYS)


def describe_fingerprint(fingerprint: dict[str, Any]) -> str:
    """One line: 'waves.h5 (7,536 bytes, modified 2026-11-25T14:30:12; /inputs 96x12x1
    <f4, /targets 96x6x1 <f4; hash 1a2b3c4d5e6f7a8b)'."""
    arrays = ", ".join(f"{k} {v}" for k, v in (fingerprint.get("arrays") or {}).items())
    size = fingerprint.get("bytes")
    size_text = f"{size:,} bytes" if isinstance(size, int) else "size unknown"
    return (f"{fingerprint.get('path', '?')} ({size_text}, modified "
            f"{fingerprint.get('modified', '?')}; {arrays}; hash {fingerprint.get('hash', '?')})")


def _read_into(ds: h5py.Dataset, a: int, b: int, out: np.ndarray) -> None:
    """Rows a..b-1 of `ds` straight into the C-contiguous `out`, no temporary array."""
    file_space = ds.id.get_space()
    file_space.select_hyperslab((a,) + (0,) * (ds.ndim - 1), (b - a, *ds.shape[1:]))
    ds.id.read(h5py.h5s.create_simple(out.shape), file_space, out)


def _row_blocks(n: int, step: int) -> Iterator[np.ndarray]:
    for lo in range(0, n, step):
        yield np.arange(lo, min(n, lo + step), dtype=np.int64)


def _check_options(split_seed: Any, val_fraction: Any, cache_bytes: Any) -> None:
    if isinstance(split_seed, bool) or not isinstance(split_seed, (int, np.integer)):
        raise ConfigError(f"split_seed: expected an integer, found {split_seed!r}")
    try:
        fraction = float(val_fraction)
    except (TypeError, ValueError):
        fraction = math.nan
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(f"val_fraction: expected a number in [0, 1), found {val_fraction!r}")
    if int(cache_bytes) < 0:
        raise ConfigError(f"cache_bytes: expected 0 or more, found {cache_bytes!r}")


def _plan_splits(
    layout: Layout, file: str, split_seed: int, val_fraction: float
) -> dict[str, tuple[str, np.ndarray | None]]:
    """Served split -> (stored group, its rows in that group, or None for all rows)."""
    groups = layout.groups
    plan: dict[str, tuple[str, np.ndarray | None]] = {}
    if "val" in groups:
        plan["train"] = ("train", None)
        plan["val"] = ("val", None)
    else:
        base = STORED_ALL if STORED_ALL in groups else "train"
        n = groups[base].n
        if val_fraction > 0:
            count = max(1, round(n * val_fraction))
            if n - count < 1:
                raise DatasetError(
                    f"{file}: {groups[base].x.path}: expected at least 2 samples to split into "
                    f"training and validation data (val_fraction {val_fraction}), found {n}"
                )
            val = validation_rows(n, count, split_seed)
            plan["train"] = (base, _Complement(n, val))  # type: ignore[assignment]
            plan["val"] = (base, val)
        else:
            plan["train"] = (base, None)
    if "test" in groups:
        plan["test"] = ("test", None)
    return plan


class _Complement:
    """The rows 0..n-1 not in `excluded` (sorted, unique), in order, never listed: the
    training rows of a file whose validation rows were drawn. Row i of it is i plus the
    excluded rows before it, found by binary search; listing 9 x 10^7 rows took 2-4 s
    and 720 MB when a file opened.
    """

    def __init__(self, n: int, excluded: np.ndarray) -> None:
        self._n = n - len(excluded)
        # before excluded[j] come excluded[j] - j kept rows: non-decreasing
        self._before = excluded.astype(np.int64) - np.arange(len(excluded), dtype=np.int64)

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, indices: np.ndarray) -> np.ndarray:
        local = np.asarray(indices, dtype=np.int64)
        return local + np.searchsorted(self._before, local, side="right")

    def copy(self) -> np.ndarray:
        return self[np.arange(self._n, dtype=np.int64)]


def _side_spec(sides: list[StoredSide]) -> SideSpec:
    first = sides[0]
    ids = first.ids or (None, None, None)
    return SideSpec(
        kind=first.kind,
        steps=first.steps,
        features=first.features,
        vocab=first.vocab,
        pad_id=ids[0],
        start_id=ids[1],
        end_id=ids[2],
        variable_length=any(s.variable for s in sides),
    )


def _summarize(
    file: str, layout: Layout, splits: dict[str, DataSplit], split_seed: int,
    val_fraction: float,
) -> DatasetSummary:
    groups = list(layout.groups.values())
    return DatasetSummary(
        path=file,
        task=layout.task,
        description=layout.description,
        inputs=_side_spec([g.x for g in groups]),
        targets=_side_spec([g.y for g in groups]),
        splits={name: len(split) for name, split in splits.items()},
        file_splits={g.name: g.n for g in groups},
        format_version=layout.version,
        split_seed=split_seed,
        val_fraction=val_fraction,
        val_from_seed="val" not in layout.groups and "val" in splits,
    )


class DataSplit:
    """One split as the trainer sees it: samples 0..len-1, read in batches."""

    def __init__(
        self, dataset: SequenceDataset, name: str, group: StoredGroup, rows: np.ndarray | None
    ) -> None:
        self.name = name
        self._dataset = dataset
        self._group = group
        self._rows = rows
        self._n = len(rows) if rows is not None else group.n
        self._block = _block_rows(group)

    def __len__(self) -> int:
        return self._n

    def __repr__(self) -> str:
        return f"DataSplit({self.name!r}, {self._n} samples of {self._group.x.path})"

    @property
    def stored_rows(self) -> np.ndarray:
        """The row of each sample in the stored arrays (`stored_group`), sorted."""
        return self._rows.copy() if self._rows is not None else np.arange(self._n, dtype=np.int64)

    @property
    def stored_group(self) -> str:
        """Where the samples are stored: "all" (root arrays) or a split group's name."""
        return self._group.name

    def _file_rows(self, indices: np.ndarray) -> np.ndarray:
        return self._rows[indices] if self._rows is not None else indices

    def read(self, indices: Sequence[int] | np.ndarray) -> Batch:
        """The samples at `indices` (any order, repeats allowed), read in sorted
        contiguous runs. Values are checked as they are read."""
        local = np.asarray(indices, dtype=np.int64).reshape(-1)
        if local.size and (int(local.min()) < 0 or int(local.max()) >= self._n):
            raise IndexError(f"split {self.name!r} has {self._n} samples; asked for "
                             f"{int(local.min())}..{int(local.max())}")
        window = self._dataset._window(self._group, self._file_rows(local))
        return Batch(*window.take(0, len(local)), local)

    def num_batches(self, batch_size: int, drop_last: bool = False) -> int:
        _check_batch_size(batch_size)
        return self._n // batch_size if drop_last else -(-self._n // batch_size)

    def iter_batches(
        self,
        batch_size: int,
        *,
        seed: int,
        epoch: int,
        shuffle: bool = True,
        start_batch: int = 0,
        drop_last: bool = False,
    ) -> Iterator[Batch]:
        """The batches of one epoch, deterministic for (seed, epoch), block-shuffled.

        `start_batch` skips that many batches without reading them (resume mid-epoch):
        the batches that follow are the ones an uninterrupted epoch would give.
        """
        total = self.num_batches(batch_size, drop_last)
        if start_batch < 0:
            raise ConfigError(f"start_batch: expected 0 or more, found {start_batch}")
        windows = epoch_windows(self._n, self._block, seed=int(seed), epoch=int(epoch),
                                shuffle=shuffle)
        return self._batches(windows, batch_size, start_batch, total)

    def _batches(self, windows: Iterator[np.ndarray], batch_size: int, start: int,
                 stop: int) -> Iterator[Batch]:
        """Batches start..stop-1 of the epoch whose windows `windows` yields in order.

        A window's samples are read when a batch first needs them, and the previous
        window is released first; windows wholly before `start` are drawn (the random
        stream must advance) but never read.
        """
        base, order, window = 0, None, None  # the current window: first position, order, data
        for b in range(start, stop):
            lo, hi = b * batch_size, min(self._n, (b + 1) * batch_size)
            pieces, ids = [], []
            pos = lo
            while pos < hi:
                while order is None or pos >= base + len(order):
                    if order is not None:
                        base += len(order)
                    order, window = next(windows), None  # release the previous window first
                if window is None:
                    window = self._dataset._window(self._group, self._file_rows(order))
                end = min(hi, base + len(order))
                pieces.append(window.take(pos - base, end - base))
                ids.append(order[pos - base : end - base])
                pos = end
            if len(pieces) == 1:
                x, y, xl, yl = pieces[0]
            else:
                x, y, xl, yl = (np.concatenate(p) for p in zip(*pieces))
            yield Batch(x, y, xl, yl, np.concatenate(ids) if len(ids) > 1 else ids[0].copy())

    def subset(self, count: int) -> DataSplit:
        """A fixed subset of at most `count` samples, spread over the split in
        SUBSET_PIECES runs of consecutive samples (each read in few large reads): the
        validation a run scores after each epoch on a large file. The split itself
        when it holds no more."""
        if count >= self._n:
            return self
        pieces = min(SUBSET_PIECES, count)
        size = -(-count // pieces)
        starts = np.linspace(0, self._n - size, pieces).round().astype(np.int64)
        local = np.unique(np.concatenate([np.arange(a, a + size) for a in starts]))[:count]
        return DataSplit(self._dataset, self.name, self._group, self._file_rows(local))


def _check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise ConfigError(f"batch_size: expected a positive integer, found {batch_size!r}")


# --- normalisation -------------------------------------------------------------------


class _Moments:
    """Streaming per-feature count, mean and M2 (Chan et al.'s parallel update)."""

    def __init__(self, features: int) -> None:
        self.count = 0
        self.mean = np.zeros(features)
        self.m2 = np.zeros(features)

    def add(self, values: np.ndarray, lengths: np.ndarray) -> None:
        steps = values.shape[1]
        if int(lengths.min()) == steps:
            flat = values.reshape(-1, values.shape[-1])
        else:
            flat = values[_valid_mask(lengths, steps)]
        n = flat.shape[0]
        if n == 0:
            return
        mean = flat.mean(axis=0, dtype=np.float64)
        m2 = ((flat - mean) ** 2).sum(axis=0)
        total = self.count + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + m2 + delta**2 * (self.count * n / total)
        self.count = total

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        std = np.sqrt(self.m2 / max(1, self.count))
        constant = std <= 1e-10 * np.maximum(1.0, np.abs(self.mean))
        return self.mean.copy(), np.where(constant, 1.0, std)


def _compute_normalization(train: DataSplit, *, seed: int = 0,
                           limit: int = NORMALIZATION_ROWS,
                           between: Callable[[int, int], None] | None = None) -> Normalization:
    """Per-feature statistics from the training split, or a seeded sample of it.

    Up to `limit` samples: all of them, block by block (the figures of every earlier
    version). Beyond: `normalization_sample` spreads `limit` samples over the split.
    `between(done, total)` is called before each block is read (the Trainer shows
    progress there and honours a stop request by raising).
    """
    spec_x = train._group.x
    spec_y = train._group.y
    mx = _Moments(spec_x.features) if spec_x.kind == CONTINUOUS and spec_x.features else None
    my = _Moments(spec_y.features) if spec_y.kind == CONTINUOUS and spec_y.features else None
    blocks = normalization_sample(train, seed=seed, limit=limit)
    total = sum(len(rows) for rows in blocks)
    done = 0
    if mx is not None or my is not None:
        for rows in blocks:
            if between is not None:
                between(done, total)
            batch = train.read(rows)
            if mx is not None:
                mx.add(batch.x, batch.x_lengths)
            if my is not None:
                my.add(batch.y, batch.y_lengths)
            done += len(rows)
    x_mean, x_std = mx.result() if mx is not None else (None, None)
    y_mean, y_std = my.result() if my is not None else (None, None)
    return Normalization(x_mean, x_std, y_mean, y_std, rows=total, train_rows=len(train))


def normalization_sample(train: DataSplit, *, seed: int = 0,
                         limit: int = NORMALIZATION_ROWS) -> list[np.ndarray]:
    """The training samples the statistics come from, as sorted blocks of indices.

    A split of up to `limit` samples: all, in blocks of BUFFER_BLOCKS shuffle blocks.
    A larger one: `limit` samples in SAMPLE_PIECES pieces of consecutive samples, one
    at a seeded random place in each of SAMPLE_PIECES equal stretches of the split, so
    the sample covers the whole file (a file sorted by time or by class included) and
    is the same for every run with the same split seed. A piece starts on a chunk
    boundary of the stored inputs where it can: a chunk is read whole anyway.
    """
    n = len(train)
    if n <= limit:
        return list(_row_blocks(n, train._block * BUFFER_BLOCKS))
    pieces = min(SAMPLE_PIECES, limit)
    size = limit // pieces
    stretch = n // pieces
    chunk = int((train._group.x.dataset.chunks or (1,))[0]) if train._rows is None else 1
    rng = np.random.default_rng([seed % 2**64, _SAMPLE_SALT])
    blocks = []
    for k in range(pieces):
        lo = k * stretch
        room = max(stretch - size, 0)
        start = lo + int(rng.integers(0, room + 1))
        if chunk > 1 and size <= chunk:
            aligned = (start // chunk) * chunk
            start = aligned if aligned >= lo else start
        start = min(start, n - size)
        blocks.append(np.arange(start, start + size, dtype=np.int64))
    return blocks
