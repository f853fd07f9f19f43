"""Small files for the dataset, task and data-CLI tests (fast on 2 cores)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np

from workbench.tasks import make_vocab, write_dataset

VOCAB = make_vocab(["a", "b", "c", "d"])  # ids 3..6


def write_raw(
    path: Path,
    arrays: dict[str, Any],
    attrs: dict[str, Any] | None = None,
    array_attrs: dict[str, dict[str, Any]] | None = None,
) -> Path:
    """Any HDF5 layout, broken ones included: {path in file: array} plus attributes."""
    with h5py.File(path, "w") as f:
        for name, value in arrays.items():
            value = np.asarray(value)
            if value.dtype.kind in "OU":  # text: variable-length UTF-8 strings
                f.create_dataset(name, data=value.astype(object), dtype=h5py.string_dtype())
            else:
                f.create_dataset(name, data=value)
        for key, value in (attrs or {}).items():
            f.attrs[key] = value
        for name, extra in (array_attrs or {}).items():
            for key, value in extra.items():
                f[name].attrs[key] = value
    return path


def continuous_arrays(
    n: int = 40, t_in: int = 6, f_in: int = 2, t_out: int = 3, f_out: int = 1, seed: int = 0,
    variable: bool = True,
) -> dict[str, np.ndarray]:
    """Random continuous data with (optionally) variable lengths on both sides."""
    rng = np.random.default_rng(seed)
    out = {
        "inputs": (rng.standard_normal((n, t_in, f_in)) * 3 + 5).astype(np.float32),
        "targets": rng.standard_normal((n, t_out, f_out)).astype(np.float32),
    }
    if variable:
        out["input_lengths"] = rng.integers(1, t_in + 1, n).astype(np.int32)
        out["target_lengths"] = rng.integers(1, t_out + 1, n).astype(np.int32)
    return out


def write_continuous(path: Path, **kwargs: Any) -> Path:
    arrays = continuous_arrays(**kwargs)
    return write_dataset(
        path, arrays["inputs"], arrays["targets"],
        input_lengths=arrays.get("input_lengths"), target_lengths=arrays.get("target_lengths"),
        task="test", description="random continuous data",
    )


def token_arrays(n: int = 30, t_in: int = 5, seed: int = 0) -> dict[str, np.ndarray]:
    """Reverse-like token data: targets end with the end id at their length."""
    rng = np.random.default_rng(seed)
    x = rng.integers(3, len(VOCAB), (n, t_in)).astype(np.int16)
    lengths = rng.integers(1, t_in + 1, n)
    y = np.zeros((n, t_in + 1), dtype=np.int16)
    for i, k in enumerate(lengths):
        x[i, k:] = 0
        y[i, :k] = x[i, :k][::-1]
        y[i, k] = 2
    return {"inputs": x, "targets": y, "input_lengths": lengths, "target_lengths": lengths + 1}


def write_tokens(path: Path, **kwargs: Any) -> Path:
    a = token_arrays(**kwargs)
    return write_dataset(path, a["inputs"], a["targets"], input_lengths=a["input_lengths"],
                         target_lengths=a["target_lengths"], input_vocab=VOCAB,
                         target_vocab=VOCAB, task="test-tokens")


def read_all(split: Any) -> Any:
    """Every sample of a split in index order."""
    return split.read(np.arange(len(split)))
