"""`import-series`: a CSV of time series -> a continuous dataset file of windows.

The CSV has a header, numeric columns, optionally a time column and a series id
column (`series_col`: several series in one file, their rows in time order, in
blocks or interleaved). Each sample is a window: `window` steps of the input
columns, then the next `horizon` steps of the target columns; windows start every
`stride` steps and are made within one series, never across two.

The split is by time, per series (workbench.importers.splits): the last
`test_fraction` of a series' steps is its test span, the `val_fraction` before it
its validation span, the rest training; a window belongs to a split only if all of
its steps (inputs and targets) lie in that split's span, so no validation or test
window shares a step with a training window. The spans of every series are
recorded as attributes of the split groups (`read_time_split`, `inspect`).

Missing values (an empty cell, NaN, NA, N/A, null) are refused by default, naming
the line, the row and the column; `interpolate` fills them linearly between the
values before and after (a gap at the very start or end of a series cannot be
filled and is refused); `drop-windows` drops every window holding one. Either way
the count is reported. Other text, or inf, in a numeric column is refused.

The file is read twice in blocks of rows, in memory bounded by one block plus
`window + horizon` rows per series: once to count each series' steps (so the
boundaries are known), once to cut and write the windows.
"""

from __future__ import annotations

import datetime as _dt
import json
import shutil
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from workbench.errors import ConfigError, DatasetError, OutputError
from workbench.importers.common import (
    Cancelled,
    ImportCancelled,
    Progress,
    check_fractions,
    check_int,
    check_paths,
    never_cancelled,
    no_progress,
)
from workbench.importers.records import Block, Record, RecordReader, parse_delimiter
from workbench.importers.splits import (
    SPLITS,
    needed_length,
    time_spans,
    window_count,
    window_starts,
)
from workbench.importers.writer import CountingSink, SplitWriter, new_dataset_file
from workbench.memory import format_bytes

__all__ = [
    "MISSING_POLICIES",
    "SeriesImportSummary",
    "SeriesOptions",
    "import_series",
    "scan_series",
]

MISSING_POLICIES = ("refuse", "interpolate", "drop-windows")
MISSING_TEXTS = frozenset({"", "nan", "na", "n/a", "null"})
BLOCK_ROWS = 8192  # rows parsed together (and between progress reports, cancel checks)
WINDOW_BATCH_BYTES = 8 * 2**20
FLOAT32_MAX = float(np.finfo(np.float32).max)
QUICK_SCAN_ROWS = 50_000
SINGLE_SERIES = ""  # the id of the one series of a file without a series column


@dataclass(frozen=True)
class SeriesOptions:
    """Everything `import-series` can be told; the CLI flags and the dialog's fields."""

    input_cols: tuple[str, ...] | str  # names, or "a,b"
    target_cols: tuple[str, ...] | str
    window: int
    horizon: int
    stride: int = 1
    time_col: str | None = None
    series_col: str | None = None
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    missing: str = "refuse"
    encoding: str | None = None
    delimiter: str | None = None  # None: comma

    def checked(self) -> SeriesOptions:
        """These options with every value checked (ConfigError naming the flag)."""
        inputs, targets = _names("--input-cols", self.input_cols), \
            _names("--target-cols", self.target_cols)
        check_int("--window", self.window, 1)
        check_int("--horizon", self.horizon, 1)
        check_int("--stride", self.stride, 1)
        check_fractions(self.val_fraction, self.test_fraction)
        if self.missing not in MISSING_POLICIES:
            raise ConfigError(f"--missing must be one of {', '.join(MISSING_POLICIES)}, "
                              f"got {self.missing!r}")
        for flag, col in (("--time-col", self.time_col), ("--series-col", self.series_col)):
            if col is not None and col in inputs + targets:
                raise ConfigError(f"{flag} {col!r} is also an input or target column")
        if self.time_col is not None and self.time_col == self.series_col:
            raise ConfigError(f"--time-col and --series-col are the same column ({self.time_col!r})")
        return replace(self, input_cols=inputs, target_cols=targets,
                       delimiter=parse_delimiter(self.delimiter) or ",")

    @property
    def used_cols(self) -> tuple[str, ...]:
        """The numeric columns read: inputs, then targets not among them (of checked
        options)."""
        return tuple(dict.fromkeys((*self.input_cols, *self.target_cols)))


def _names(flag: str, value: str | Sequence[str]) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    names = tuple(str(v).strip() for v in items if str(v).strip())
    if not names:
        raise ConfigError(f"{flag} needs at least one column name (a,b,...)")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"{flag} names {twice[0]!r} twice")
    return names


@dataclass(frozen=True)
class SeriesImportSummary:
    """What an import wrote (or a quick scan would write)."""

    source: str
    path: str | None  # the written file; None for a scan
    complete: bool  # False: a scan of the first rows only
    rows: int  # data rows read
    estimated_rows: int  # the file's rows, estimated from its size when not complete
    series: int
    splits: dict[str, int]  # windows per split
    input_shape: tuple[int, int]  # (window, input features)
    target_shape: tuple[int, int]  # (horizon, target features)
    missing: str
    missing_cells: int
    filled_cells: int  # interpolate
    dropped_windows: int  # drop-windows: windows that held a missing value
    straddling_windows: int  # windows dropped because they would cross a split boundary
    boundaries: list[dict[str, Any]] = field(default_factory=list)  # per series (first 50)
    options: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"kind": "series", **asdict(self)}

    def text(self) -> str:
        """One line for the CLI."""
        splits = ", ".join(f"{k} {v:,}" for k, v in self.splits.items())
        head = f"wrote {self.path}" if self.path else f"{self.source} would give"
        (w, fi), (h, fo) = self.input_shape, self.target_shape
        line = (f"{head}: {sum(self.splits.values()):,} windows ({splits}) from "
                f"{self.rows:,} rows of {self.series} series, split by time; inputs {w} x {fi}, "
                f"targets {h} x {fo}; {self.straddling_windows:,} windows crossing a split "
                "boundary left out")
        return line + "; " + missing_text(self)


def missing_text(s: SeriesImportSummary) -> str:
    if s.missing_cells == 0:
        return "no missing values"
    if s.missing == "interpolate":
        return f"{s.missing_cells:,} missing values, {s.filled_cells:,} filled by interpolation"
    return (f"{s.missing_cells:,} missing values; {s.dropped_windows:,} windows holding one "
            "dropped")


# --- reading the columns -----------------------------------------------------------------


@dataclass
class _Columns:
    names: list[str]  # the header
    used: list[int]  # index in the row of each used numeric column
    used_names: list[str]
    inputs: list[int]  # index into `used` of each input column
    targets: list[int]
    time: int | None
    series: int | None
    line: int  # the header's line


def _columns(reader: RecordReader, header: Record | None, o: SeriesOptions) -> _Columns:
    if header is None:
        raise DatasetError(f"{reader.label}: the file is empty")
    names = [n.strip() for n in header.fields]
    if names and names[0].startswith("\ufeff"):
        names[0] = names[0][1:]

    def find(flag: str, name: str) -> int:
        hits = [i for i, n in enumerate(names) if n == name]
        if not hits:
            shown = ", ".join(repr(n) for n in names[:20])
            more = f" (and {len(names) - 20} more)" if len(names) > 20 else ""
            hint = (" (is the delimiter right? the header was read as one column)"
                    if len(names) == 1 else "")
            raise ConfigError(f"{reader.label}: {flag} {name!r}: no such column in the header "
                              f"(line {header.line}); the columns are {shown}{more}{hint}")
        if len(hits) > 1:
            raise ConfigError(f"{reader.label}: {flag} {name!r}: the header names it "
                              f"{len(hits)} times (columns {', '.join(str(h + 1) for h in hits)})")
        return hits[0]

    flags = {name: "--input-cols" for name in o.input_cols}
    flags.update({name: "--target-cols" for name in o.target_cols if name not in flags})
    used_names = list(o.used_cols)
    used = [find(flags[n], n) for n in used_names]
    return _Columns(
        names=names, used=used, used_names=used_names,
        inputs=[used_names.index(n) for n in o.input_cols],
        targets=[used_names.index(n) for n in o.target_cols],
        time=find("--time-col", o.time_col) if o.time_col else None,
        series=find("--series-col", o.series_col) if o.series_col else None,
        line=header.line,
    )


def _check_width(reader: RecordReader, cols: _Columns, record: Record) -> None:
    if len(record.fields) != len(cols.names):
        raise reader.fail(record.line, f"{len(record.fields)} fields, expected "
                                       f"{len(cols.names)} as in the header (line {cols.line})")


class _TimeOrder:
    """Checks that times (numbers or ISO dates) do not go back within a series."""

    def __init__(self, reader: RecordReader, column: str, several: bool) -> None:
        self.reader, self.column, self.several = reader, column, several
        self.kind: str | None = None  # "number" | "date" | "text" (not checked)
        self.last: dict[str, tuple[Any, str, int]] = {}

    def check_block(self, keys: list[str] | None, texts: list[str], lines: np.ndarray) -> None:
        """Check a block of rows at once (numbers and ISO dates parse in numpy), else
        row by row (which names the first row at fault)."""
        if self.kind is None and texts:
            self.check(keys[0] if keys else SINGLE_SERIES, texts[0], int(lines[0]))
        values = self._parse_all(texts) if self.kind in ("number", "date") else None
        if values is None:
            if self.kind != "text":
                for i, text in enumerate(texts):
                    self.check(keys[i] if keys else SINGLE_SERIES, text, int(lines[i]))
            return
        if keys is None:
            groups = {SINGLE_SERIES: np.arange(len(texts))}
        else:
            index: dict[str, list[int]] = {}
            for i, key in enumerate(keys):
                index.setdefault(key, []).append(i)
            groups = {key: np.asarray(rows) for key, rows in index.items()}
        for key, rows in groups.items():
            series = values[rows]
            last = self.last.get(key)
            back = np.flatnonzero(series[1:] < series[:-1])
            if (last is not None and self._comparable(last[0]) and series[0] < last[0]) or \
                    back.size:
                for i in rows:  # the slow path names the row
                    self.check(key, texts[i], int(lines[i]))
            i = int(rows[-1])
            self.last[key] = (series[-1], texts[i].strip(), int(lines[i]))

    def _parse_all(self, texts: list[str]) -> np.ndarray | None:
        try:
            if self.kind == "number":
                return np.array(texts, dtype=np.float64)
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                return np.array([t.strip() for t in texts], dtype="datetime64[us]")
        except (ValueError, TypeError, Warning):
            return None

    def _comparable(self, value: Any) -> bool:
        return isinstance(value, (np.floating, np.datetime64, float))

    def check(self, key: str, text: str, line: int) -> None:
        text = text.strip()
        if self.kind is None:
            self.kind = "number" if _number(text) is not None else \
                "date" if _date(text) is not None else "text"
        if self.kind == "text":
            return
        value = _number(text) if self.kind == "number" else _date(text)
        if value is None:
            raise self.reader.fail(line, f"{text!r} is not a {self.kind} like the times "
                                         "before it", f", column {self.column!r}")
        last = self.last.get(key)
        if last is not None:
            try:
                back = value < _plain(last[0], value)
            except TypeError:  # a date with a time zone after one without
                raise self.reader.fail(line, f"{text!r} cannot be compared with "
                                             f"{last[1]!r} (line {last[2]}): mixed time zones",
                                       f", column {self.column!r}") from None
            if back:
                where = " within each series" if self.several else ""
                raise self.reader.fail(
                    line, f"{text} comes before {last[1]} (line {last[2]}); the rows must be "
                          f"in time order{where}", f", column {self.column!r}")
        self.last[key] = (value, text, line)


def _plain(last: Any, value: Any) -> Any:
    """A time kept from a block (numpy) as the type of a value parsed alone."""
    if isinstance(last, np.datetime64) and isinstance(value, _dt.datetime):
        return last.astype("datetime64[us]").astype(_dt.datetime)
    if isinstance(last, np.floating):
        return float(last)
    return last


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _date(text: str) -> _dt.datetime | None:
    try:
        return _dt.datetime.fromisoformat(text)
    except ValueError:
        return None


def _where(row: int, column: str) -> str:
    """The place of a cell after its line: " (data row 41), column 'b'" (row from 1)."""
    return f" (data row {row + 1}), column {column!r}"


def _parse_column(reader: RecordReader, strings: list[str], lines: np.ndarray, row0: int,
                  name: str) -> np.ndarray:
    """float64 values of one column of a block; NaN where missing; DatasetError naming
    line, row and column for text or a value outside float32."""
    try:
        values = np.array(strings, dtype=np.float64)
    except ValueError:
        values = np.empty(len(strings), dtype=np.float64)
        for i, text in enumerate(strings):
            cell = text.strip()
            if cell.lower() in MISSING_TEXTS:
                values[i] = np.nan
                continue
            try:
                values[i] = float(cell)
            except ValueError:
                raise reader.fail(int(lines[i]), f"{cell[:40]!r} is not a number",
                                  _where(row0 + i, name)) from None
    finite = np.isfinite(values) | np.isnan(values)
    big = np.abs(np.where(np.isnan(values), 0.0, values)) > FLOAT32_MAX
    bad = ~finite | big
    if bad.any():
        i = int(np.argmax(bad))
        raise reader.fail(int(lines[i]), f"{strings[i].strip()[:40]!r} is not a finite "
                                         "number that fits a 32-bit float", _where(row0 + i, name))
    return values


# --- the windows of one series --------------------------------------------------------------


class _Series:
    """The state of one series while its windows are cut: the last rows (for windows
    still open), rows waiting for a value to interpolate to, what was counted."""

    def __init__(self, key: str, length: int, o: SeriesOptions, cols: _Columns) -> None:
        self.key, self.length = key, length
        self.window, self.horizon, self.stride = o.window, o.horizon, o.stride
        self.span = o.window + o.horizon
        self.policy = o.missing
        self.spans = time_spans(length, o.val_fraction, o.test_fraction)
        self.cols = cols
        width = len(cols.used)
        self.received = 0  # rows given
        self.pos = 0  # rows finished (complete values), i.e. the step of the next
        self.tail = np.zeros((0, width))
        self.pending = np.zeros((0, width))  # interpolate: rows after an open gap
        self.pending_nan = np.zeros((0, width), dtype=bool)
        self.pending_lines = np.zeros(0, dtype=np.int64)
        self.last_pos = np.full(width, -1, dtype=np.int64)
        self.last_val = np.zeros(width)
        self.filled = 0
        self.dropped = 0
        self.windows = dict.fromkeys(self.spans, 0)
        marks = set()
        for s, e in self.spans.values():
            if e > s:
                marks.update((s, e - 1))
        self.marks = marks
        self.times: dict[int, str] = {}

    def feed(self, values: np.ndarray, lines: np.ndarray, times: list[str] | None,
             sink: Any, reader: RecordReader) -> None:
        start = self.received
        self.received += len(values)
        if self.received > self.length:
            raise DatasetError(f"{reader.label}: the file changed while it was imported")
        if times is not None:
            for p in self.marks:
                if start <= p < self.received:
                    self.times[p] = times[p - start].strip()
        if self.policy == "interpolate":
            values = self._interpolate(values, lines, reader)
        self._emit(values, sink)

    def _interpolate(self, values: np.ndarray, lines: np.ndarray,
                     reader: RecordReader) -> np.ndarray:
        nan = np.isnan(values)
        if not len(self.pending) and not nan.any():
            self.last_pos[:] = self.pos + len(values) - 1
            self.last_val[:] = values[-1]
            return values
        block = np.concatenate([self.pending, values])
        block_nan = np.concatenate([self.pending_nan, nan])
        block_lines = np.concatenate([self.pending_lines, lines])
        base = self.pos
        cut = len(block)
        for c in range(block.shape[1]):
            missing = np.isnan(block[:, c])
            if not missing.any():
                continue
            valid = np.flatnonzero(~missing)
            gaps = np.flatnonzero(missing)
            if self.last_pos[c] < 0 and (not valid.size or gaps[0] < valid[0]):
                raise reader.fail(int(block_lines[gaps[0]]), (
                    f"a missing value at the start of {self._name()}, with no value before it "
                    "to interpolate from; pass --missing drop-windows to drop the windows that "
                    "hold it"), f", column {self.cols.used_names[c]!r}")
            last_valid = int(valid[-1]) if valid.size else -1
            fill = gaps[gaps < last_valid]
            if fill.size:
                xp, fp = base + valid, block[valid, c]
                if self.last_pos[c] >= 0:
                    xp = np.concatenate([[self.last_pos[c]], xp])
                    fp = np.concatenate([[self.last_val[c]], fp])
                block[fill, c] = np.interp(base + fill, xp, fp)
            open_gaps = gaps[gaps > last_valid]
            if open_gaps.size:
                cut = min(cut, int(open_gaps[0]))
        self.pending, self.pending_nan = block[cut:], block_nan[cut:]
        self.pending_lines = block_lines[cut:]
        self.filled += int(block_nan[:cut].sum())
        if cut:
            self.last_pos[:] = base + cut - 1
            self.last_val[:] = block[cut - 1]
        return block[:cut]

    def _name(self) -> str:
        return "the series" if self.key == SINGLE_SERIES else f"series {self.key!r}"

    def _emit(self, rows: np.ndarray, sink: Any) -> None:
        if not len(rows):
            return
        buf = np.concatenate([self.tail, rows]) if len(self.tail) else rows
        buf_start = self.pos - len(self.tail)
        ends_after, self.pos = self.pos, self.pos + len(rows)
        inputs, targets = self.cols.inputs, self.cols.targets
        per_batch = max(1, WINDOW_BATCH_BYTES // (self.span * buf.shape[1] * 8))
        steps = np.arange(self.span)
        for split, span in self.spans.items():
            starts = window_starts(span, self.span, self.stride, ends_after, self.pos)
            for a in range(0, len(starts), per_batch):
                win = buf[(starts[a:a + per_batch] - buf_start)[:, None] + steps]
                x = win[:, : self.window][:, :, inputs]
                y = win[:, self.window:][:, :, targets]
                if self.policy == "drop-windows":
                    bad = np.isnan(x).any(axis=(1, 2)) | np.isnan(y).any(axis=(1, 2))
                    if bad.any():
                        self.dropped += int(bad.sum())
                        x, y = x[~bad], y[~bad]
                sink.append(split, x.astype(np.float32), y.astype(np.float32))
                self.windows[split] += len(x)
        keep = self.span - 1
        self.tail = buf[len(buf) - keep:] if 0 < keep < len(buf) else (buf if keep else buf[:0])

    def finish(self, reader: RecordReader) -> None:
        if self.received != self.length:
            raise DatasetError(f"{reader.label}: the file changed while it was imported")
        if len(self.pending):
            row, c = np.argwhere(self.pending_nan)[0]
            raise reader.fail(int(self.pending_lines[row]), (
                f"a missing value at the end of {self._name()}, with no value after it to "
                "interpolate to; pass --missing drop-windows to drop the windows that hold it"),
                f", column {self.cols.used_names[c]!r}")

    def boundaries(self, time_col: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"series": self.key, "steps": self.length}
        for split, (s, e) in self.spans.items():
            entry: dict[str, Any] = {"start": s, "end": e, "windows": self.windows[split]}
            if time_col and e > s:
                entry["first_time"] = self.times.get(s, "")
                entry["last_time"] = self.times.get(e - 1, "")
            out[split] = entry
        return out


# --- the two passes -------------------------------------------------------------------------


@dataclass
class _Count:
    cols: _Columns
    lengths: dict[str, int]  # series id -> steps, in order of first appearance
    rows: int
    complete: bool
    last_line: int = 0


class _Limited:
    """The header, then blocks of at most `limit` rows in all; `cut` once a row was
    left out, `last_line` the line of the last row handed out."""

    def __init__(self, reader: RecordReader, limit: int | None) -> None:
        self.reader, self.limit, self.cut = reader, limit, False
        self.header: Record | None = None
        self.last_line = 0

    def __iter__(self) -> Iterator[Block]:
        left = self.limit
        for block in self.reader.blocks():
            if self.header is None:
                self.header = Record(block.lines[0], block.rows[0])
                block = block[1:]
            if left is not None:
                if len(block) > left:
                    self.cut = True
                block = block[:left]
                left -= len(block)
            for a in range(0, len(block), BLOCK_ROWS):
                piece = block[a:a + BLOCK_ROWS]
                self.last_line = piece.lines[-1]
                yield piece
            if self.cut:
                return


def _check_widths(reader: RecordReader, cols: _Columns, block: Block) -> None:
    width = len(cols.names)
    if set(map(len, block.rows)) - {width}:
        for record in block.records():
            _check_width(reader, cols, record)


def _first_pass(reader: RecordReader, o: SeriesOptions, limit: int | None,
                progress: Progress, cancelled: Cancelled) -> _Count:
    limited = _Limited(reader, limit)
    order = _TimeOrder(reader, o.time_col, o.series_col is not None) if o.time_col else None
    lengths: dict[str, int] = {}
    rows = 0
    cols: _Columns | None = None
    for block in limited:
        if cols is None:
            cols = _columns(reader, limited.header, o)
        _check_widths(reader, cols, block)
        keys = None
        if cols.series is not None:
            keys = [fields[cols.series].strip() for fields in block.rows]
            for key, n in Counter(keys).items():
                lengths[key] = lengths.get(key, 0) + n
        else:
            lengths[SINGLE_SERIES] = lengths.get(SINGLE_SERIES, 0) + len(block)
        if order is not None:
            order.check_block(keys, [fields[cols.time] for fields in block.rows],
                              block.line_array())
        rows += len(block)
        _tick(progress, cancelled, 0.4 * reader.fraction, "counting the rows")
    if cols is None:
        cols = _columns(reader, limited.header, o)
    if rows == 0:
        raise DatasetError(f"{reader.label}: the file has a header (line {cols.line}) but no rows")
    count = _Count(cols, lengths, rows, not limited.cut)
    count.last_line = limited.last_line
    return count


def _tick(progress: Progress, cancelled: Cancelled, fraction: float, message: str) -> None:
    if cancelled():
        raise ImportCancelled("the import was cancelled")
    progress(fraction, message)


def _check_splits(label: str, o: SeriesOptions, count: _Count) -> dict[str, int]:
    """Windows each split would get (before drop-windows); DatasetError for a split
    left without any, naming the series length it would need."""
    span = o.window + o.horizon
    totals = dict.fromkeys(time_spans(1, o.val_fraction, o.test_fraction), 0)
    for length in count.lengths.values():
        for split, s in time_spans(length, o.val_fraction, o.test_fraction).items():
            totals[split] += window_count(s, span, o.stride)
    fractions = {"train": 1.0 - o.val_fraction - o.test_fraction, "val": o.val_fraction,
                 "test": o.test_fraction}
    for split, total in totals.items():
        if total or not count.complete:  # a scan of the first rows reports, never refuses
            continue
        need = needed_length(span, o.val_fraction, o.test_fraction)
        key, longest = max(count.lengths.items(), key=lambda kv: kv[1])
        which = "the series has" if len(count.lengths) == 1 else \
            f"the longest series ({key!r}) has"
        raise DatasetError(
            f"{label}: the {split} split would hold no window: a window of --window "
            f"{o.window} + --horizon {o.horizon} = {span} steps must lie inside one split, "
            f"and {split} is {fractions[split]:g} of a series' steps; a series needs at least "
            f"{need:,} steps, {which} {longest:,} (use a shorter window or horizon, or other "
            "fractions)")
    return totals


def _second_pass(reader: RecordReader, o: SeriesOptions, count: _Count, sink: Any,
                 limit: int | None, progress: Progress, cancelled: Cancelled
                 ) -> tuple[dict[str, _Series], int]:
    cols = count.cols
    states = {key: _Series(key, length, o, cols) for key, length in count.lengths.items()}
    missing = 0
    row0 = 0
    for block in _Limited(reader, limit):
        _check_widths(reader, cols, block)
        missing += _block(reader, o, cols, states, block, row0, sink)
        row0 += len(block)
        _tick(progress, cancelled, 0.4 + 0.5 * reader.fraction, "cutting the windows")
    for state in states.values():
        state.finish(reader)
    return states, missing


def _block(reader: RecordReader, o: SeriesOptions, cols: _Columns, states: dict[str, _Series],
           block: Block, row0: int, sink: Any) -> int:
    lines = block.line_array()
    rows = block.rows
    values = np.empty((len(block), len(cols.used)))
    for j, (index, name) in enumerate(zip(cols.used, cols.used_names)):
        values[:, j] = _parse_column(reader, [fields[index] for fields in rows], lines, row0,
                                     name)
    nan = np.isnan(values)
    missing = int(nan.sum())
    if missing and o.missing == "refuse":
        i, j = np.argwhere(nan)[0]
        cell = rows[i][cols.used[j]].strip()
        what = "an empty cell" if not cell else repr(cell)
        raise reader.fail(int(lines[i]), (
            f"a missing value ({what}); pass --missing interpolate to fill it linearly, or "
            "--missing drop-windows to drop the windows that hold it"),
            _where(row0 + int(i), cols.used_names[j]))
    times = [fields[cols.time] for fields in rows] if cols.time is not None else None
    if cols.series is None:
        states[SINGLE_SERIES].feed(values, lines, times, sink, reader)
        return missing
    groups: dict[str, list[int]] = {}
    for i, fields in enumerate(rows):
        groups.setdefault(fields[cols.series].strip(), []).append(i)
    for key, rows in groups.items():
        idx = np.asarray(rows)
        states[key].feed(values[idx], lines[idx],
                         [times[i] for i in rows] if times is not None else None, sink, reader)
    return missing


# --- the import ------------------------------------------------------------------------------


def _run(source: Path, out: Path | None, options: SeriesOptions, *, limit: int | None,
         progress: Progress, cancelled: Cancelled) -> SeriesImportSummary:
    o = options.checked()
    reader = RecordReader(source, delimiter=o.delimiter or ",", encoding=o.encoding)
    count = _first_pass(reader, o, limit, progress, cancelled)
    estimated = count.rows if count.complete else \
        int(count.rows * reader.estimated_lines / max(1, count.last_line))
    expected = _check_splits(str(source), o, count)
    shapes = ((o.window, len(o.input_cols)), (o.horizon, len(o.target_cols)))
    if out is None:
        sink = CountingSink()
        states, missing = _second_pass(reader, o, count, sink, limit, no_progress, cancelled)
        return _summary(source, None, o, count, estimated, states, missing, sink.counts(), shapes)
    _check_disk(out, sum(expected.values()), shapes)
    attrs = {
        "task": source.stem,
        "importer": "import-series",
        "source_file": source.name,
        "split_by": "time",
        "window": o.window,
        "horizon": o.horizon,
        "stride": o.stride,
        "val_fraction": o.val_fraction,
        "test_fraction": o.test_fraction,
        "input_columns": json.dumps(list(o.input_cols)),
        "target_columns": json.dumps(list(o.target_cols)),
        "time_column": o.time_col or "",
        "series_column": o.series_col or "",
        "missing": o.missing,
    }
    with new_dataset_file(out, attrs) as f:
        writer = SplitWriter(f, input_shape=shapes[0], input_dtype=np.float32,
                             target_shape=shapes[1], target_dtype=np.float32, lengths=False)
        states, missing = _second_pass(reader, o, count, writer, limit, progress, cancelled)
        counts = writer.finish()
        summary = _summary(source, out, o, count, estimated, states, missing, counts, shapes)
        _check_dropped(str(source), o, expected, counts)
        _write_boundaries(f, states, o)
        f.attrs["description"] = _description(source, summary, o)
        f.attrs["import_counts"] = json.dumps({
            "rows": summary.rows, "missing_cells": summary.missing_cells,
            "filled_cells": summary.filled_cells, "dropped_windows": summary.dropped_windows,
            "straddling_windows": summary.straddling_windows})
        progress(0.95, "checking the written file")
    progress(1.0, "done")
    return summary


def _check_disk(out: Path, windows: int, shapes: tuple[tuple[int, int], ...]) -> None:
    needed = windows * sum(t * f for t, f in shapes) * 4
    folder = out.parent if str(out.parent) else Path(".")
    try:
        free = shutil.disk_usage(folder if folder.exists() else Path.cwd()).free
    except OSError:
        return
    if needed > free:
        raise OutputError(f"cannot write {out}: the windows need about {format_bytes(needed)}, "
                          f"and only {format_bytes(free)} is free there; use a larger --stride")


def _check_dropped(label: str, o: SeriesOptions, expected: dict[str, int],
                   counts: dict[str, int]) -> None:
    for split, total in expected.items():
        if total and not counts.get(split):
            raise DatasetError(f"{label}: the {split} split is left with no window: every one "
                               f"of its {total:,} windows holds a missing value "
                               "(--missing drop-windows); try --missing interpolate")


def _write_boundaries(f: h5py.File, states: dict[str, _Series], o: SeriesOptions) -> None:
    """Per split group: the span [start, end) of each series in its own steps, its
    windows, and (with a time column) the times of the span's first and last step."""
    keys = list(states)
    text = h5py.string_dtype("utf-8")
    for split in SPLITS:
        if split not in f:
            continue
        g = f[split]
        spans = [states[k].spans.get(split, (0, 0)) for k in keys]
        g.attrs.create("series_ids", np.array(keys, dtype=object), dtype=text)
        g.attrs["start_steps"] = np.array([s for s, _ in spans], dtype=np.int64)
        g.attrs["end_steps"] = np.array([e for _, e in spans], dtype=np.int64)
        g.attrs["series_steps"] = np.array([states[k].length for k in keys], dtype=np.int64)
        g.attrs["windows"] = np.array([states[k].windows.get(split, 0) for k in keys],
                                      dtype=np.int64)
        if o.time_col:
            first = [states[k].times.get(s, "") if e > s else "" for k, (s, e) in zip(keys, spans)]
            last = [states[k].times.get(e - 1, "") if e > s else ""
                    for k, (s, e) in zip(keys, spans)]
            g.attrs.create("first_times", np.array(first, dtype=object), dtype=text)
            g.attrs.create("last_times", np.array(last, dtype=object), dtype=text)


def _summary(source: Path, out: Path | None, o: SeriesOptions, count: _Count, estimated: int,
             states: dict[str, _Series], missing: int, counts: dict[str, int],
             shapes: tuple[tuple[int, int], ...]) -> SeriesImportSummary:
    span = o.window + o.horizon
    whole = sum(window_count((0, n), span, o.stride) for n in count.lengths.values())
    split_total = sum(window_count(s, span, o.stride) for st in states.values()
                      for s in st.spans.values())
    return SeriesImportSummary(
        source=str(source), path=None if out is None else str(out), complete=count.complete,
        rows=count.rows, estimated_rows=estimated, series=len(states),
        splits={k: counts.get(k, 0) for k in SPLITS if k in counts},
        input_shape=shapes[0], target_shape=shapes[1], missing=o.missing,
        missing_cells=missing, filled_cells=sum(s.filled for s in states.values()),
        dropped_windows=sum(s.dropped for s in states.values()),
        straddling_windows=max(0, whole - split_total),
        boundaries=[s.boundaries(o.time_col is not None) for s in list(states.values())[:50]],
        options=asdict(o),
    )


def _description(source: Path, s: SeriesImportSummary, o: SeriesOptions) -> str:
    series = "one series" if s.series == 1 else f"{s.series} series"
    return (f"Windows of {o.window} steps of {', '.join(o.input_cols)} -> the next {o.horizon} "
            f"steps of {', '.join(o.target_cols)}, every {o.stride} step(s), from {source.name} "
            f"({s.rows:,} rows, {series}); split by time: the last {o.test_fraction:g} of each "
            f"series is test, the {o.val_fraction:g} before it validation; every window lies "
            "wholly inside one split")


def import_series(source: str | Path, out: str | Path, options: SeriesOptions, *,
                  progress: Progress = no_progress,
                  cancelled: Cancelled = never_cancelled) -> SeriesImportSummary:
    """Import a CSV of time series into a new dataset file at `out` (atomically).

    DatasetError names the line, row and column of what is wrong in the file;
    ConfigError a bad option or column; ImportCancelled when `cancelled()` turns
    true. On any of them no file is left at `out` (an existing one is untouched).
    """
    source, out = check_paths(source, out)
    return _run(source, out, options, limit=None, progress=progress, cancelled=cancelled)


def scan_series(source: str | Path, options: SeriesOptions, *,
                max_rows: int | None = QUICK_SCAN_ROWS,
                cancelled: Cancelled = never_cancelled) -> SeriesImportSummary:
    """What importing the first `max_rows` rows would give (all with None), without
    writing: windows per split, shapes, missing counts. `complete` says whether the
    whole file was read; `estimated_rows` guesses the file's rows from its size."""
    source = Path(source)
    if not source.is_file():
        raise ConfigError(f"{source}: no such file")
    return _run(source, None, options, limit=max_rows, progress=no_progress,
                cancelled=cancelled)


def read_header(source: str | Path, *, encoding: str | None = None,
                delimiter: str | None = None) -> list[str]:
    """The column names of a CSV's first row (for the dialog's column pickers)."""
    reader = RecordReader(source, delimiter=parse_delimiter(delimiter) or ",", encoding=encoding)
    first = next(iter(reader), None)
    if first is None:
        raise DatasetError(f"{source}: the file is empty")
    return [n.strip().lstrip("\ufeff") for n in first.fields]
