"""Files for the baseline tests: a weekly series with a strong yearly cycle, cut in windows."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np


def write_weekly(path: Path, *, years: int = 16, window: int = 104, horizon: int = 26,
                 stride: int = 4, period_attr: bool = False, seed: int = 0) -> Path:
    """A weekly series (a yearly cycle of amplitude 4, a slow trend, noise 0.8) cut into
    windows of two years -> the next half year, split by time (train, then val), one
    column named 'sales' on both sides, as import-series records it."""
    rng = np.random.default_rng(seed)
    t = np.arange(years * 52)
    series = 10 + 4 * np.sin(2 * np.pi * t / 52) + 0.01 * t + rng.normal(0, 0.8, t.size)
    starts = np.arange(0, t.size - window - horizon + 1, stride)
    x = np.stack([series[s:s + window] for s in starts])[..., None].astype(np.float32)
    y = np.stack([series[s + window:s + window + horizon]
                  for s in starts])[..., None].astype(np.float32)
    cut = int(len(starts) * 0.8)
    with h5py.File(path, "w") as f:
        f.attrs["sequence_workbench_format"] = 1
        f.attrs["input_columns"] = json.dumps(["sales"])
        f.attrs["target_columns"] = json.dumps(["sales"])
        if period_attr:
            f.attrs["period"] = 52
        for name, rows in (("train", slice(0, cut)), ("val", slice(cut, None))):
            f[f"{name}/inputs"] = x[rows]
            f[f"{name}/targets"] = y[rows]
    return path
