"""What both importers share: progress reports, cancellation, option checks.

An import is long (a 1 GB file is read twice), so it reports progress through a
plain callable and checks a cancel flag between blocks of rows. Neither knows
anything of Qt: the GUI passes a function that puts events on a queue, the CLI
passes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workbench.errors import ConfigError, OutputError

# progress(fraction done in 0..1, what is happening) -- called from the importing thread
Progress = Callable[[float, str], None]
# cancelled() -> True once the user asked to stop; checked between blocks of rows
Cancelled = Callable[[], bool]


class ImportCancelled(Exception):
    """The user cancelled an import; nothing was written."""


def no_progress(_fraction: float, _message: str) -> None:
    """The default progress callback: report nothing."""


def never_cancelled() -> bool:
    return False


def check_fraction(name: str, value: Any) -> float:
    """A split fraction in [0, 1); ConfigError naming the flag otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name} must be a number between 0 and 1, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or not 0.0 <= value < 1.0:
        raise ConfigError(f"{name} must be at least 0 and below 1, got {value:g}")
    return value


def check_fractions(val_fraction: Any, test_fraction: Any) -> tuple[float, float]:
    val = check_fraction("--val-fraction", val_fraction)
    test = check_fraction("--test-fraction", test_fraction)
    if val + test >= 1.0:
        raise ConfigError(f"--val-fraction {val:g} and --test-fraction {test:g} leave nothing "
                          "for training; their sum must be below 1")
    return val, test


MAX_COUNT = 10**9  # a window, horizon or stride beyond this is a mistake (and beyond h5py)


def check_int(name: str, value: Any, minimum: int) -> int:
    """An integer of at least `minimum`; ConfigError naming the flag otherwise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be a whole number, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    if value > MAX_COUNT:
        raise ConfigError(f"{name} must be at most {MAX_COUNT:,}, got {value}")
    return int(value)


def check_paths(source: str | Path, out: str | Path) -> tuple[Path, Path]:
    """The input must be a readable file and the output a different file.

    The output is never the input (that would destroy the user's data), whatever
    the spelling of the two paths; a folder as output is refused too.
    """
    source, out = Path(source), Path(out)
    if not source.exists():
        raise ConfigError(f"{source}: no such file")
    if source.is_dir():
        raise ConfigError(f"{source}: is a folder; give the file to import")
    if out.is_dir():
        raise OutputError(f"cannot write {out}: it is a folder; give a file name")
    same = out.resolve() == source.resolve()
    if not same and out.exists():
        try:
            same = out.samefile(source)
        except OSError:
            same = False
    if same:
        raise ConfigError(f"{out}: the output would replace the file being imported; "
                          "give another --out")
    return source, out


def round_half_up(value: float) -> int:
    """round() without banker's rounding, so 2.5 steps -> 3 everywhere."""
    return int(math.floor(value + 0.5))
