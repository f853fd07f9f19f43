"""Log axes that label every decade the same way: 10⁻⁶, 10⁻⁴, 10⁻², 1, 10, 10².

pyqtgraph's own log axis mixes styles ("0.01", "0.0001", "1e-06" or 10⁻⁶ by the
size of the number) and labels 2…9 × 10ⁿ between decades on a short axis. `LogAxis`
puts its labelled ticks on whole decades only (every k-th decade when there are many,
so that labels never crowd), with unlabelled minor ticks at 2…9 × 10ⁿ; an axis
spanning less than a decade labels 2, 5 × 10ⁿ the same way ("2×10⁻³"). On a linear
scale it is an ordinary axis.

`use_log_axis(plot_item)` gives a plot's left axis LogAxis's tick methods; every
log-scale panel calls it. `DecadeAxis` labels a linear axis
whose values are log10 of something (a colour bar of log10 G_t) the same way.
"""

from __future__ import annotations

import math
import types
from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg

SUPERSCRIPTS = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
MIN_LABEL_SPACING_PX = 28  # between two labelled decades on a vertical axis


def decade_text(exponent: int) -> str:
    """10ⁿ as shown on a log axis: "1" and "10" for n = 0 and 1, else 10 with a superscript."""
    if exponent == 0:
        return "1"
    if exponent == 1:
        return "10"
    return "10" + str(int(exponent)).translate(SUPERSCRIPTS)


def log_tick_text(log_value: float) -> str:
    """The label of a tick at log10 value `log_value`: a decade ("10⁻³") or m×10ⁿ
    ("2×10⁻³"; "20" and "0.5" near 1 are still written as m×10ⁿ for n ∉ {0, 1})."""
    exponent = math.floor(log_value + 1e-9)
    mantissa = 10 ** (log_value - exponent)
    m = int(round(mantissa))
    if m in (1, 10):
        return decade_text(exponent + (1 if m == 10 else 0))
    if exponent == 0:
        return f"{m}"
    if exponent == 1:
        return f"{m * 10}"
    return f"{m}×{decade_text(exponent)}"


def log_ticks(lo: float, hi: float, size_px: float) -> list[tuple[float, list[float]]]:
    """pyqtgraph tick levels for a log axis over log10 values [lo, hi] that is
    `size_px` long: labelled decades (every k-th one, at least MIN_LABEL_SPACING_PX
    apart), then minor ticks. Fewer than two decades in view: 2 and 5 × 10ⁿ are
    labelled too (and 2…9 × 10ⁿ if that is still fewer than two labels)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return []
    first, last = math.ceil(lo - 1e-9), math.floor(hi + 1e-9)
    decades = max(0, last - first + 1)
    room = max(1, int(size_px // MIN_LABEL_SPACING_PX))
    every = max(1, math.ceil(decades / room))
    major = [float(n) for n in range(first, last + 1) if n % every == 0]
    lower, upper = math.floor(lo), math.ceil(hi)
    for mantissas in ((2, 5), range(2, 10)):  # less than two decades in view
        if len(major) >= 2:
            break
        between = [n + math.log10(m) for n in range(lower, upper) for m in mantissas]
        major = sorted({*major, *(v for v in between if lo <= v <= hi)})
    minor: list[float] = []
    if every == 1 and decades <= room:
        minor = [n + math.log10(m) for n in range(lower, upper) for m in range(2, 10)]
        minor = [v for v in minor if lo <= v <= hi and not any(abs(v - x) < 1e-9 for x in major)]
    elif every > 1:
        minor = [float(n) for n in range(first, last + 1) if n % every != 0]
    return [(1.0, major), (None, minor)]  # type: ignore[list-item]


class LogAxis(pg.AxisItem):
    """An axis whose log mode labels decades as 10ⁿ (see the module docstring)."""

    def tickValues(self, minVal: float, maxVal: float, size: float):  # noqa: N802, N803
        if not self.logMode:
            return pg.AxisItem.tickValues(self, minVal, maxVal, size)
        return log_ticks(min(minVal, maxVal), max(minVal, maxVal), size)

    def tickStrings(self, values: Sequence[float], scale: float, spacing: float):  # noqa: N802
        if not self.logMode:
            return pg.AxisItem.tickStrings(self, values, scale, spacing)
        return [log_tick_text(v) if spacing is not None else "" for v in values]


class DecadeAxis(pg.AxisItem):
    """A linear axis of log10 values (a colour bar of log10 G_t) labelled as the
    values themselves: -6 is written 10⁻⁶, like LogAxis."""

    def tickValues(self, minVal: float, maxVal: float, size: float):  # noqa: N802, N803
        return log_ticks(min(minVal, maxVal), max(minVal, maxVal), size)

    def tickStrings(self, values: Sequence[float], scale: float, spacing: float):  # noqa: N802
        return [log_tick_text(v) if spacing is not None else "" for v in values]


def use_log_axis(plot_item: pg.PlotItem, side: str = "left") -> pg.AxisItem:
    """Make `plot_item`'s axis on `side` label its log mode as LogAxis does; returns
    it. The axis is kept and given LogAxis's tick methods (swapping a PlotItem's axis
    for a new one leaves a deleted axis behind, and with it a crash in a later paint).
    Idempotent."""
    axis = plot_item.getAxis(side)
    if isinstance(axis, LogAxis) or getattr(axis, "_decade_ticks", False):
        return axis
    axis.tickValues = types.MethodType(LogAxis.tickValues, axis)
    axis.tickStrings = types.MethodType(LogAxis.tickStrings, axis)
    axis._decade_ticks = True
    axis.picture = None  # drawn again with the new ticks
    axis.update()
    return axis


def is_log_axis(axis: pg.AxisItem) -> bool:
    """Whether `axis` labels decades as LogAxis does."""
    return isinstance(axis, LogAxis) or getattr(axis, "_decade_ticks", False)


def shown_tick_labels(axis: pg.AxisItem) -> list[str]:
    """The labels `axis` draws now, in order (for tests and read-outs)."""
    lo, hi = axis.range
    size = axis.geometry().height() if axis.orientation in ("left", "right") else \
        axis.geometry().width()
    levels = axis.tickValues(lo, hi, max(size, 1.0))
    labels: list[str] = []
    for spacing, values in levels:
        if spacing is None or not len(values):
            continue
        labels.extend(axis.tickStrings(list(np.asarray(values, dtype=float)), 1.0, spacing))
    return labels


def number_text(value: float | None, digits: int = 2) -> str:
    """A read-out number: "0.93", "412", or "3.2×10⁻⁵" when it is very small or large
    (the same ×10ⁿ as the log axes); "–" for None or a non-finite value."""
    if value is None or not math.isfinite(value):
        return "–"
    if value == 0:
        return "0"
    exponent = math.floor(math.log10(abs(value)))
    if -3 <= exponent <= 3:
        return f"{value:.{digits + 1}g}"
    mantissa = value / 10 ** exponent
    if round(mantissa, digits - 1) >= 10:
        mantissa, exponent = mantissa / 10, exponent + 1
    return f"{mantissa:.{max(digits - 1, 0)}f}×{decade_text(exponent)}"
