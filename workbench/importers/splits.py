"""How imported samples are split: at random for text pairs, by time for series.

Text pairs are independent samples, so a seeded random split is honest; its sizes
are exact (`random_split_sizes`) and it is drawn in blocks (`random_assignment`),
so a file of any length is split in bounded memory and the same (N, fractions,
seed) always gives the same split.

Windows cut from one series are not independent: neighbouring windows share
almost all their steps. So a series is split by time (`time_spans`): the last part
is the test split, the part before it validation, the rest training, and a window
(inputs and targets) belongs to a split only if it lies wholly inside that split's
span (`window_starts`). Windows straddling a boundary are dropped.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from workbench.importers.common import round_half_up

__all__ = [
    "SPLITS",
    "needed_length",
    "random_assignment",
    "random_split_sizes",
    "time_spans",
    "window_count",
    "window_starts",
]

SPLITS = ("train", "val", "test")
ASSIGN_BLOCK = 65_536  # rows assigned per draw (fixed: the split depends on it)


def random_split_sizes(n: int, val_fraction: float, test_fraction: float) -> dict[str, int]:
    """Exact split sizes for n samples: round(n * fraction) each (at least one where
    the fraction is not 0), training the rest (may be 0 or negative: the caller checks)."""
    val = max(1, round_half_up(n * val_fraction)) if val_fraction > 0 else 0
    test = max(1, round_half_up(n * test_fraction)) if test_fraction > 0 else 0
    return {"train": n - val - test, "val": val, "test": test}


def random_assignment(sizes: dict[str, int], seed: int) -> Iterator[np.ndarray]:
    """The split of each sample in file order, in blocks of ASSIGN_BLOCK: an int8
    array of 0 (train), 1 (val), 2 (test). Every assignment with these sizes is
    equally likely; deterministic for (sizes, seed)."""
    rng = np.random.default_rng(seed)
    left = np.array([sizes["train"], sizes["val"], sizes["test"]], dtype=np.int64)
    while left.sum() > 0:
        m = int(min(ASSIGN_BLOCK, left.sum()))
        drawn = rng.multivariate_hypergeometric(left, m)
        labels = np.repeat(np.arange(3, dtype=np.int8), drawn)
        rng.shuffle(labels)
        left -= drawn
        yield labels


def time_spans(length: int, val_fraction: float,
               test_fraction: float) -> dict[str, tuple[int, int]]:
    """The [start, end) steps of each split of a series of `length` steps: test is the
    last round(length * test_fraction) steps, val the round(length * val_fraction)
    before them, train the rest. A split with fraction 0 is absent."""
    test = round_half_up(length * test_fraction)
    val = round_half_up(length * val_fraction)
    test_start = length - test
    val_start = max(0, test_start - val)
    spans = {"train": (0, val_start)}
    if val_fraction > 0:
        spans["val"] = (val_start, test_start)
    if test_fraction > 0:
        spans["test"] = (test_start, length)
    return spans


def window_count(span: tuple[int, int], window_steps: int, stride: int) -> int:
    """How many windows of `window_steps` (inputs + targets) fit wholly in `span`,
    starting at its first step and every `stride` steps after."""
    room = span[1] - span[0] - window_steps
    return 0 if room < 0 else room // stride + 1


def window_starts(span: tuple[int, int], window_steps: int, stride: int,
                  ends_after: int, ends_by: int) -> np.ndarray:
    """The starts of the windows of `span` (see window_count) whose last step + 1 lies
    in (ends_after, ends_by]: the windows that the rows up to `ends_by` complete."""
    start, end = span
    last = min(end, ends_by) - window_steps  # latest start that is complete and inside
    first = max(start, ends_after - window_steps + 1)
    if last < first:
        return np.zeros(0, dtype=np.int64)
    j0 = -(-(first - start) // stride)
    j1 = (last - start) // stride
    if j1 < j0:
        return np.zeros(0, dtype=np.int64)
    return start + stride * np.arange(j0, j1 + 1, dtype=np.int64)


def needed_length(window_steps: int, val_fraction: float, test_fraction: float) -> int:
    """The shortest series whose every split holds at least one window."""
    shortest = min(f for f in (1.0 - val_fraction - test_fraction, val_fraction, test_fraction)
                   if f > 0)
    length = max(window_steps, int(window_steps / shortest) - 2)
    while True:
        spans = time_spans(length, val_fraction, test_fraction)
        if all(e - s >= window_steps for s, e in spans.values()):
            return length
        length += 1
