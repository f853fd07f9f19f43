"""The time split an `import-series` recorded in its file, read back for `inspect`.

Each split group of such a file carries, per series, the span [start, end) of the
split in the series' own steps, its windows, and with a time column the times of
the span's first and last step; the root carries the window, horizon and stride
(docs/your-data.md). `read_time_split` returns them, or None for any other file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from workbench.importers.splits import SPLITS

__all__ = ["SeriesSplit", "TimeSplit", "read_time_split"]


@dataclass(frozen=True)
class SeriesSplit:
    """One split of one series: its steps [start, end), windows and times."""

    start: int
    end: int
    windows: int
    first_time: str | None = None
    last_time: str | None = None


@dataclass(frozen=True)
class TimeSplit:
    """How a file's windows were split by time."""

    window: int
    horizon: int
    stride: int
    series: tuple[str, ...]
    steps: tuple[int, ...]  # of each series
    splits: dict[str, tuple[SeriesSplit, ...]]  # split -> per series

    def to_json(self) -> dict[str, Any]:
        return {
            "window": self.window, "horizon": self.horizon, "stride": self.stride,
            "series": [
                {"series": name, "steps": steps,
                 **{split: vars(spans[i]) for split, spans in self.splits.items()}}
                for i, (name, steps) in enumerate(zip(self.series, self.steps))
            ],
        }

    def lines(self, max_series: int = 5) -> list[str]:
        """What `inspect` prints: the rule, then each split's span per series."""
        out = [f"  split:    by time (import-series): windows of {self.window} + "
               f"{self.horizon} steps, every {self.stride}; each lies wholly inside one split"]
        for i, name in enumerate(self.series[:max_series]):
            who = "series" if not name else f"series {name!r}"
            out.append(f"    {who} ({self.steps[i]:,} steps):")
            for split, spans in self.splits.items():
                s = spans[i]
                times = f" ({s.first_time} .. {s.last_time})" if s.first_time else ""
                steps = f"steps {s.start:,}-{s.end - 1:,}" if s.end > s.start else "no steps"
                out.append(f"      {split:<5} {steps}{times}, {s.windows:,} windows")
        if len(self.series) > max_series:
            out.append(f"    ... and {len(self.series) - max_series:,} more series")
        return out


def _text(values: Any) -> list[str]:
    return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
            for v in np.asarray(values).reshape(-1)]


def read_time_split(path: str | Path) -> TimeSplit | None:
    """The recorded time split of an imported series file; None for any other file
    (or one whose records are unreadable: they describe, they never decide)."""
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("split_by") != "time":
                return None
            splits: dict[str, tuple[SeriesSplit, ...]] = {}
            series: list[str] = []
            steps: list[int] = []
            for name in SPLITS:
                if name not in f:
                    continue
                a = f[name].attrs
                series = _text(a["series_ids"])
                steps = [int(v) for v in np.asarray(a["series_steps"]).reshape(-1)]
                starts, ends = np.asarray(a["start_steps"]), np.asarray(a["end_steps"])
                windows = np.asarray(a["windows"])
                firsts = _text(a["first_times"]) if "first_times" in a else None
                lasts = _text(a["last_times"]) if "last_times" in a else None
                splits[name] = tuple(
                    SeriesSplit(int(starts[i]), int(ends[i]), int(windows[i]),
                                firsts[i] if firsts else None, lasts[i] if lasts else None)
                    for i in range(len(series)))
            return TimeSplit(int(f.attrs["window"]), int(f.attrs["horizon"]),
                             int(f.attrs["stride"]), tuple(series), tuple(steps), splits)
    except (OSError, KeyError, ValueError, TypeError, IndexError):
        return None
