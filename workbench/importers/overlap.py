"""A cheap warning: does a file without split groups hold overlapping windows of one series?

When one long series is cut into overlapping windows, neighbouring samples are
shifted copies of each other. A random validation split (what the reader draws for a
file without a val group) then puts a near-copy of every validation sample in the
training data, and the validation loss looks far better than any real forecast.
The format cannot know how a file was made, so `looks_like_overlapping_windows`
looks: it reads a few runs of neighbouring samples (at the start, middle and end of
the stored order) and checks whether each is the one before it shifted by some
steps. Reading a dozen samples costs milliseconds whatever the file's size.
"""

from __future__ import annotations

import math

import numpy as np

from workbench.datasets import CONTINUOUS, Batch, SequenceDataset
from workbench.errors import WorkbenchError

__all__ = ["looks_like_overlapping_windows"]

RUN = 4  # samples per place looked at: 3 neighbouring pairs
PLACES = 3  # start, middle, end
MAX_CANDIDATES = 32  # shifts tried per pair


def looks_like_overlapping_windows(dataset: SequenceDataset) -> str | None:
    """A one-paragraph warning when the samples look like overlapping windows of one
    series and the validation split is drawn at random; None otherwise (and always
    for a file whose split groups decide the validation data)."""
    summary = dataset.summary
    if not summary.val_from_seed:
        return None
    try:
        pairs = _neighbour_pairs(dataset)
    except WorkbenchError:  # a bad value in a sample: `inspect --check` names it, not this
        return None
    if len(pairs) < 2:
        return None
    tested = hits = 0
    example: tuple[int, int] | None = None
    continuous = summary.inputs.kind == CONTINUOUS and summary.targets.kind == CONTINUOUS \
        and summary.inputs.features == summary.targets.features
    for row, (a, b) in pairs:
        outcome = _shift(a[0], b[0], _min_overlap(len(a[0]), summary.inputs.kind))
        if outcome is None and continuous:
            whole_a, whole_b = np.concatenate([a[0], a[1]]), np.concatenate([b[0], b[1]])
            outcome = _shift(whole_a, whole_b, 3, first=len(a[0]))
        if outcome is False:
            continue  # constant samples: nothing to tell
        tested += 1
        if outcome:
            hits += 1
            example = example or (row, int(outcome))
    if tested < 2 or hits < max(2, math.ceil(0.6 * tested)) or example is None:
        return None
    row, steps = example
    return (f"{summary.path}: its samples look like overlapping windows of one series "
            f"(stored sample {row + 1} is sample {row} shifted by {steps} step(s); {hits} of "
            f"{tested} neighbouring pairs checked are such copies). The validation split is "
            "drawn at random, so near-copies of the validation samples are in the training "
            "data and the validation loss will look better than any real forecast. Import "
            "the series with `python main.py import-series` (it splits by time), or store "
            "train and val split groups.")


def _min_overlap(steps: int, kind: str) -> int:
    return max(3, math.ceil(steps / 2)) if kind == CONTINUOUS else max(4, math.ceil(steps / 2))


Sample = tuple[np.ndarray, np.ndarray]  # the valid steps of its inputs and targets


def _neighbour_pairs(dataset: SequenceDataset) -> list[tuple[int, tuple[Sample, Sample]]]:
    """(stored row, (that sample, the next)) for a few runs of neighbouring rows of the
    stored group the reader split at random."""
    splits = [dataset.split(name) for name in ("train", "val") if name in dataset.summary.splits]
    stored = [s.stored_rows for s in splits]
    n = sum(len(r) for r in stored)
    if n < 2:
        return []
    starts = sorted({0, max(0, n // 2 - RUN // 2), max(0, n - RUN)})[:PLACES]
    wanted = sorted({r for s in starts for r in range(s, min(n, s + RUN))})
    samples: dict[int, Sample] = {}
    for split, rows in zip(splits, stored):
        local = np.flatnonzero(np.isin(rows, wanted))
        if local.size:
            batch = split.read(local)
            for i, row in enumerate(rows[local]):
                samples[int(row)] = _valid(batch, i)
    return [(r, (samples[r], samples[r + 1])) for r in wanted
            if r + 1 in samples and r in samples]


def _valid(batch: Batch, i: int) -> Sample:
    return batch.x[i][: int(batch.x_lengths[i])], batch.y[i][: int(batch.y_lengths[i])]


def _shift(a: np.ndarray, b: np.ndarray, min_overlap: int, first: int = 1) -> int | bool | None:
    """The smallest shift s >= `first` with a[s:] == b[:len(a) - s] over at least
    `min_overlap` steps; False when a or b is constant (no shift can be told apart),
    None when there is none."""
    if len(a) < 2 or len(b) < 2 or _constant(a) or _constant(b):
        return False
    same_as_start = _rows_equal(a[first:], b[0])
    for s in (np.flatnonzero(same_as_start)[:MAX_CANDIDATES] + first).tolist():
        k = min(len(a) - s, len(b))
        if k < min_overlap:
            break
        if np.array_equal(a[s:s + k], b[:k]):
            return s
    return None


def _constant(x: np.ndarray) -> bool:
    return bool(np.all(x == x[0]))


def _rows_equal(rows: np.ndarray, row: np.ndarray) -> np.ndarray:
    equal = rows == row
    return equal.reshape(len(rows), -1).all(axis=1) if equal.ndim > 1 else equal
