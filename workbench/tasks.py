"""Built-in tasks: generators that write valid dataset files (docs/dataset-format.md).

Each task is a classic probe of what a recurrent cell can learn (long memory, long
range credit assignment, algorithmic transduction, real-looking text), deterministic
for a seed, with its size and difficulty as options. The registry `TASKS` lists each
task's generator, description and option specs so the CLI (`make-dataset`) and the
GUI can offer them; `generate(name, out, n=..., seed=..., **options)` writes a file.

`write_dataset` is the one writer of the format: atomic (a temporary file in the same
folder, then a rename), and by default it re-reads what it wrote with the reader and
checks every value before the file appears, so a task can never publish a file the
reader rejects.

numpy and h5py only: no torch.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from workbench.atomic import atomic_path
from workbench.datasets import (
    CONTINUOUS,
    END_ID,
    FORMAT_ATTR,
    FORMAT_VERSION,
    PAD_ID,
    RESERVED_TOKENS,
    SPLIT_NAMES,
    START_ID,
    TOKENS,
    SequenceDataset,
)
from workbench.errors import ConfigError, DatasetError, OutputError
from workbench.memory import fits, format_bytes
from workbench.outputs import protected_reason

__all__ = [
    "DEFAULT_N",
    "OptionSpec",
    "SplitArrays",
    "TASKS",
    "TaskInfo",
    "generate",
    "get_task",
    "make_vocab",
    "write_dataset",
]

DEFAULT_N = 10_000
MAX_N = 10**9  # sequences per file; memory usually refuses far fewer (see generate)
CHUNK_BYTES = 2**20


# --- writing files --------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SplitArrays:
    """The arrays of one split group (or of the whole file)."""

    inputs: np.ndarray
    targets: np.ndarray
    input_lengths: np.ndarray | None = None
    target_lengths: np.ndarray | None = None


def make_vocab(symbols: Sequence[str]) -> tuple[str, ...]:
    """A vocabulary of the format: the reserved pad, start and end tokens, then `symbols`
    (so symbol i has id i + 3)."""
    return RESERVED_TOKENS + tuple(symbols)


def write_dataset(
    path: str | Path,
    inputs: np.ndarray | None = None,
    targets: np.ndarray | None = None,
    *,
    input_lengths: np.ndarray | None = None,
    target_lengths: np.ndarray | None = None,
    splits: Mapping[str, SplitArrays] | None = None,
    input_vocab: Sequence[str] | None = None,
    target_vocab: Sequence[str] | None = None,
    task: str | None = None,
    description: str = "",
    attrs: Mapping[str, Any] | None = None,
    compression: str | None = None,
    chunk_rows: int | None = None,
    validate: bool = True,
) -> Path:
    """Write a dataset file atomically and return its path.

    Give `inputs`/`targets` (and optional lengths) for a file without split groups,
    or `splits` ({"train": SplitArrays(...), "val": ..., "test": ...}). Arrays are
    written with the dtype they have. Token sides need a vocabulary (see make_vocab);
    equal vocabularies are stored once as /vocab. `compression` ("gzip", "lzf") or
    `chunk_rows` store the arrays chunked by rows. With `validate` (the default) the
    file is read back and every value checked before it replaces `path`; pass False
    only to write deliberately broken files (tests).
    """
    path = Path(path)
    groups = _groups(inputs, targets, input_lengths, target_lengths, splits)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs[FORMAT_ATTR] = FORMAT_VERSION
            if task:
                f.attrs["task"] = task
            f.attrs["description"] = description
            for key, value in (attrs or {}).items():
                f.attrs[key] = value
            _write_vocabs(f, input_vocab, target_vocab)
            for name, arrays in groups.items():
                group = f if name is None else f.create_group(name)
                _write_group(group, arrays, compression, chunk_rows)
        if validate:
            _validate(tmp, path)
    return path


def _groups(
    inputs: np.ndarray | None,
    targets: np.ndarray | None,
    input_lengths: np.ndarray | None,
    target_lengths: np.ndarray | None,
    splits: Mapping[str, SplitArrays] | None,
) -> dict[str | None, SplitArrays]:
    if splits is None:
        if inputs is None or targets is None:
            raise ValueError("write_dataset needs inputs and targets, or splits")
        return {None: SplitArrays(inputs, targets, input_lengths, target_lengths)}
    if inputs is not None or targets is not None:
        raise ValueError("write_dataset takes inputs/targets or splits, not both")
    unknown = sorted(set(splits) - set(SPLIT_NAMES))
    if unknown or not splits:
        raise ValueError(f"split names must be among {SPLIT_NAMES}, got {sorted(splits)}")
    return dict(splits)  # type: ignore[arg-type]


def _write_vocabs(
    f: h5py.File, input_vocab: Sequence[str] | None, target_vocab: Sequence[str] | None
) -> None:
    if input_vocab is not None and target_vocab is not None and \
            tuple(input_vocab) == tuple(target_vocab):
        _write_vocab(f, "vocab", input_vocab)
        return
    if input_vocab is not None:
        _write_vocab(f, "input_vocab", input_vocab)
    if target_vocab is not None:
        _write_vocab(f, "target_vocab", target_vocab)


def _write_vocab(f: h5py.File, name: str, vocab: Sequence[str]) -> None:
    ds = f.create_dataset(name, data=np.array(list(vocab), dtype=object),
                          dtype=h5py.string_dtype("utf-8"))
    ds.attrs["pad_id"] = PAD_ID
    ds.attrs["start_id"] = START_ID
    ds.attrs["end_id"] = END_ID


def _write_group(
    group: h5py.Group, arrays: SplitArrays, compression: str | None, chunk_rows: int | None
) -> None:
    _write_array(group, "inputs", np.asarray(arrays.inputs), compression, chunk_rows)
    _write_array(group, "targets", np.asarray(arrays.targets), compression, chunk_rows)
    for name, lengths in (("input_lengths", arrays.input_lengths),
                          ("target_lengths", arrays.target_lengths)):
        if lengths is not None:
            group.create_dataset(name, data=np.asarray(lengths))


def _write_array(
    group: h5py.Group, name: str, data: np.ndarray, compression: str | None,
    chunk_rows: int | None,
) -> None:
    options: dict[str, Any] = {}
    if (compression or chunk_rows) and data.size:
        row_bytes = max(1, data[0].nbytes)
        rows = chunk_rows or max(1, min(len(data), CHUNK_BYTES // row_bytes))
        options["chunks"] = (min(rows, len(data)), *data.shape[1:])
        if compression:
            options["compression"] = compression
    group.create_dataset(name, data=data, **options)


def _validate(tmp: Path, final: Path) -> None:
    try:
        with SequenceDataset.open(tmp, safe_check=False, val_fraction=0.0) as ds:
            ds.check_values()
    except DatasetError as exc:
        raise DatasetError(str(exc).replace(str(tmp), str(final))) from None


# --- the registry ---------------------------------------------------------------------


@dataclass(frozen=True)
class OptionSpec:
    """One option of a task: its keyword name, type, default and allowed range."""

    name: str  # keyword for generate(), e.g. "input_steps"
    type: type  # int or float
    default: int | float
    help: str
    minimum: int | float | None = None
    maximum: int | float | None = None

    @property
    def flag(self) -> str:
        """The command-line flag, e.g. --input-steps."""
        return "--" + self.name.replace("_", "-")

    def check(self, task: str, value: Any) -> int | float:
        """The value as this option's type; ConfigError naming the task and flag if not."""
        ok_types = (int, np.integer) if self.type is int else (int, float, np.integer, np.floating)
        if isinstance(value, bool) or not isinstance(value, ok_types):
            raise ConfigError(f"task {task!r}: {self.flag} expects {self.type.__name__}, "
                              f"got {value!r}")
        value = self.type(value)
        if self.type is float and not math.isfinite(value):
            raise ConfigError(f"task {task!r}: {self.flag} must be a finite number, got {value}")
        if self.minimum is not None and value < self.minimum:
            raise ConfigError(f"task {task!r}: {self.flag} must be at least {self.minimum}, "
                              f"got {value}")
        if self.maximum is not None and value > self.maximum:
            raise ConfigError(f"task {task!r}: {self.flag} must be at most {self.maximum}, "
                              f"got {value}")
        return value


@dataclass(frozen=True, eq=False)
class _TaskData:
    inputs: np.ndarray
    targets: np.ndarray
    description: str
    input_lengths: np.ndarray | None = None
    target_lengths: np.ndarray | None = None
    input_vocab: tuple[str, ...] | None = None
    target_vocab: tuple[str, ...] | None = None


@dataclass(frozen=True)
class TaskInfo:
    """A built-in task: what it is, what it writes, its options."""

    name: str
    description: str
    input_kind: str
    target_kind: str
    options: tuple[OptionSpec, ...]
    generator: Callable[..., _TaskData] = field(repr=False)
    # about the bytes generating n samples holds at its peak: peak_bytes(n, **options)
    # (within ~1.1-1.8x above what tracemalloc measures at the defaults)
    peak_bytes: Callable[..., int] | None = field(default=None, repr=False)

    def defaults(self) -> dict[str, int | float]:
        return {o.name: o.default for o in self.options}

    def resolve(self, options: Mapping[str, Any]) -> dict[str, int | float]:
        """Defaults overridden by `options`, each checked; ConfigError on an unknown
        or bad option."""
        known = {o.name: o for o in self.options}
        unknown = sorted(set(options) - set(known))
        if unknown:
            have = ", ".join(o.flag for o in self.options)
            raise ConfigError(f"task {self.name!r} has no option {unknown[0]!r}; its options "
                              f"are {have}")
        return {name: spec.check(self.name, options.get(name, spec.default))
                for name, spec in known.items()}


TASKS: dict[str, TaskInfo] = {}


def _register(name: str, description: str, kinds: tuple[str, str],
              options: tuple[OptionSpec, ...], peak: Callable[..., int] | None = None,
              ) -> Callable[[Callable[..., _TaskData]], Callable[..., _TaskData]]:
    def add(generator: Callable[..., _TaskData]) -> Callable[..., _TaskData]:
        TASKS[name] = TaskInfo(name, description, kinds[0], kinds[1], options, generator, peak)
        return generator

    return add


def get_task(name: str) -> TaskInfo:
    try:
        return TASKS[name]
    except KeyError:
        raise ConfigError(f"unknown task {name!r}; the tasks are: {', '.join(TASKS)}") from None


def generate(name: str, out: str | Path, *, n: int = DEFAULT_N, seed: int = 0,
             **options: Any) -> Path:
    """Write `n` samples of task `name` to `out` (atomically) and return the path.

    Deterministic for (name, n, seed, options). OutputError for a folder or a file inside
    a run folder (workbench.outputs; replacing an existing file is the caller's question).
    ConfigError on an unknown task, an
    unknown option or a value out of range, and on a request that needs more memory
    than there is: a task builds its arrays whole, so `n` times the bytes a sample
    needs (with the generator's float64 intermediates) is checked first, and a
    MemoryError on the way becomes a ConfigError too.
    """
    info = get_task(name)
    reason = protected_reason(out)
    if reason is not None:  # a folder, or a run's file (the GUI's task dialog comes here too)
        raise OutputError(f"cannot write {out}: {reason}")
    values = info.resolve(options)
    n = OptionSpec("n", int, DEFAULT_N, "", minimum=2, maximum=MAX_N).check(name, n)
    seed = OptionSpec("seed", int, 0, "", minimum=0).check(name, seed)
    _check_memory(info, int(n), values)
    failure = None
    try:
        data = info.generator(np.random.default_rng(seed), int(n), **values)
        return write_dataset(
            out,
            data.inputs,
            data.targets,
            input_lengths=data.input_lengths,
            target_lengths=data.target_lengths,
            input_vocab=data.input_vocab,
            target_vocab=data.target_vocab,
            task=name,
            description=data.description,
            attrs={"task_options": json.dumps(values), "task_seed": seed, "task_n": n},
        )
    except MemoryError as exc:
        failure = " ".join(str(exc).split()) or "MemoryError"
    # raised outside `except`, so the arrays built so far are freed first
    raise ConfigError(f"task {name!r}: out of memory generating --n {n:,} sequences "
                      f"({failure}); ask for fewer or shorter sequences")


def _check_memory(info: TaskInfo, n: int, values: Mapping[str, Any]) -> None:
    if info.peak_bytes is None:
        return
    needed = info.peak_bytes(n, **values)
    ok, available = fits(needed)
    if not ok:
        raise ConfigError(
            f"task {info.name!r}: --n {n:,} sequences need about {format_bytes(needed)} of "
            f"memory to generate, more than the {format_bytes(available)} available; ask "
            "for fewer or shorter sequences")


def _id_bytes(vocab_size: int) -> int:
    return int(np.dtype(_id_dtype(vocab_size)).itemsize)


def _id_dtype(vocab_size: int) -> type:
    if vocab_size <= 2**8:
        return np.uint8
    return np.uint16 if vocab_size <= 2**16 else np.int32


def _symbols(count: int) -> list[str]:
    base = list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    return base[:count] + [f"t{i}" for i in range(len(base), count)]


def _with_end(ids: np.ndarray) -> np.ndarray:
    end = np.full((len(ids), 1), END_ID, dtype=ids.dtype)
    return np.concatenate([ids, end], axis=1)


# --- the tasks ----------------------------------------------------------------------


@_register(
    "sine",
    "Forecast the next steps of a noisy sum of sinusoids from the steps before "
    "(continuous regression).",
    (CONTINUOUS, CONTINUOUS),
    (
        OptionSpec("input_steps", int, 50, "steps the model sees", 1, 100_000),
        OptionSpec("target_steps", int, 10, "steps to forecast", 1, 100_000),
        OptionSpec("features", int, 1, "independent series per sample", 1, 1024),
        OptionSpec("components", int, 3, "sinusoids summed per series", 1, 64),
        OptionSpec("noise", float, 0.1, "std of the noise added to the inputs", 0.0, 10.0),
    ),
    # float64 series plus two float64 temporaries of its size, the float32 results
    peak=lambda n, *, input_steps, target_steps, features, **_: (
        28 * n * (input_steps + target_steps) * features),
)
def _sine(rng: np.random.Generator, n: int, *, input_steps: int, target_steps: int,
          features: int, components: int, noise: float) -> _TaskData:
    steps = input_steps + target_steps
    t = np.arange(steps, dtype=np.float64)[None, :, None]
    series = np.zeros((n, steps, features))
    for _ in range(components):
        freq = rng.uniform(0.01, 0.15, (n, 1, features))
        phase = rng.uniform(0.0, 2 * np.pi, (n, 1, features))
        amp = rng.uniform(0.5, 1.5, (n, 1, features)) / components
        series += amp * np.sin(2 * np.pi * freq * t + phase)
    x = series[:, :input_steps] + noise * rng.standard_normal((n, input_steps, features))
    return _TaskData(
        x.astype(np.float32),
        series[:, input_steps:].astype(np.float32),
        f"Sum of {components} sinusoids per series ({features} series per sample): from "
        f"{input_steps} noisy steps (noise std {noise:g}) forecast the next {target_steps} "
        "noise-free steps.",
    )


@_register(
    "copy",
    "Read a random token string, wait through blank steps, then emit the string: the "
    "long-memory task where vanilla RNNs fail.",
    (TOKENS, TOKENS),
    (
        OptionSpec("length", int, 10, "symbols to remember", 1, 10_000),
        OptionSpec("delay", int, 20, "blank steps between the string and the recall", 0, 100_000),
        OptionSpec("vocab", int, 8, "distinct symbols", 1, 60_000),
    ),
    # int64 draws, then ids, blanks, their concatenation and the targets in the id dtype
    peak=lambda n, *, length, delay, vocab, **_: n * (
        8 * length + _id_bytes(vocab + 4) * (2 * (length + delay) + 2 * (length + 1))),
)
def _copy(rng: np.random.Generator, n: int, *, length: int, delay: int,
          vocab: int) -> _TaskData:
    words = make_vocab([*_symbols(vocab), "_"])
    dtype = _id_dtype(len(words))
    ids = rng.integers(3, 3 + vocab, (n, length)).astype(dtype)
    blank = np.full((n, delay), len(words) - 1, dtype=dtype)
    return _TaskData(
        np.concatenate([ids, blank], axis=1),
        _with_end(ids),
        f"Copy {length} symbols (of {vocab}) after {delay} blank steps ('_'): the input is "
        f"the string then the blanks; the target is the string then the end token.",
        input_vocab=words,
        target_vocab=words,
    )


@_register(
    "reverse",
    "Emit the input tokens in reverse order.",
    (TOKENS, TOKENS),
    (
        OptionSpec("length", int, 10, "symbols per sequence", 1, 10_000),
        OptionSpec("vocab", int, 8, "distinct symbols", 1, 60_000),
    ),
    peak=lambda n, *, length, vocab, **_: n * (
        8 * length + _id_bytes(vocab + 3) * (length + 2 * (length + 1))),
)
def _reverse(rng: np.random.Generator, n: int, *, length: int, vocab: int) -> _TaskData:
    words = make_vocab(_symbols(vocab))
    ids = rng.integers(3, 3 + vocab, (n, length)).astype(_id_dtype(len(words)))
    return _TaskData(
        ids,
        _with_end(ids[:, ::-1]),
        f"Reverse a string of {length} symbols (of {vocab}); the target ends with the end token.",
        input_vocab=words,
        target_vocab=words,
    )


@_register(
    "adding",
    "The adding problem (Hochreiter & Schmidhuber 1997): a sequence of (value, marker) "
    "pairs; the target is the sum of the two marked values (continuous, long range).",
    (CONTINUOUS, CONTINUOUS),
    (OptionSpec("length", int, 50, "steps per sequence", 2, 100_000),),
    # float64 values and markers, their float64 stack, the float32 inputs
    peak=lambda n, *, length, **_: n * (40 * length + 64),
)
def _adding(rng: np.random.Generator, n: int, *, length: int) -> _TaskData:
    values = rng.uniform(0.0, 1.0, (n, length))
    first = rng.integers(0, length // 2, n)
    second = rng.integers(length // 2, length, n)
    markers = np.zeros((n, length))
    rows = np.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    total = values[rows, first] + values[rows, second]
    return _TaskData(
        np.stack([values, markers], axis=-1).astype(np.float32),
        total.reshape(n, 1, 1).astype(np.float32),
        f"Adding problem over {length} steps: feature 0 is a value in [0, 1), feature 1 "
        "marks two steps (one in each half); the target is the sum of the two marked values.",
    )


@_register(
    "sort",
    "Emit the input numbers sorted in ascending order (tokens).",
    (TOKENS, TOKENS),
    (
        OptionSpec("length", int, 10, "numbers per sequence", 1, 10_000),
        OptionSpec("max_value", int, 9, "largest number (numbers are 0..max-value)", 1, 60_000),
    ),
    peak=lambda n, *, length, max_value, **_: n * (
        8 * length + _id_bytes(max_value + 4) * (2 * length + 2 * (length + 1))),
)
def _sort(rng: np.random.Generator, n: int, *, length: int, max_value: int) -> _TaskData:
    words = make_vocab([str(v) for v in range(max_value + 1)])
    ids = rng.integers(3, 3 + max_value + 1, (n, length)).astype(_id_dtype(len(words)))
    return _TaskData(
        ids,
        _with_end(np.sort(ids, axis=1)),
        f"Sort {length} numbers in 0..{max_value} (token i+3 is the number i); the target "
        "ends with the end token.",
        input_vocab=words,
        target_vocab=words,
    )


_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_DATE_FORMATS: tuple[Callable[[_dt.date], str], ...] = (
    lambda d: f"{d.day} {_MONTHS[d.month - 1][:3]} {d.year}",  # 25 Nov 2026
    lambda d: f"{_MONTHS[d.month - 1]} {d.day}, {d.year}",  # November 25, 2026
    lambda d: f"{d.month:02d}/{d.day:02d}/{d.year % 100:02d}",  # 11/25/26
    lambda d: f"{d.day:02d}.{d.month:02d}.{d.year}",  # 25.11.2026
    lambda d: f"{_DAYS[d.weekday()][:3]} {d.day} {_MONTHS[d.month - 1][:3]} {d.year}",
    lambda d: f"{d.day} {_MONTHS[d.month - 1].lower()} {d.year}",  # 25 november 2026
    lambda d: f"{_MONTHS[d.month - 1][:3].upper()} {d.day}, {d.year}",  # NOV 25, 2026
    lambda d: f"{_DAYS[d.weekday()]}, {_MONTHS[d.month - 1]} {d.day}, {d.year}",
)
_FIRST_DATE = _dt.date(1950, 1, 1)
_LAST_DATE = _dt.date(2049, 12, 31)  # two-digit years 50..99 -> 19xx, 00..49 -> 20xx


def _date_vocab() -> tuple[str, ...]:
    chars = set("0123456789-")
    week = [_FIRST_DATE + _dt.timedelta(days=k) for k in range(366)]
    for fmt in _DATE_FORMATS:
        for day in week:
            chars.update(fmt(day))
    return make_vocab(sorted(chars))


@_register(
    "dates",
    "Character-level translation of human-written dates in several formats "
    "('25 Nov 2026', 'November 25, 2026', '11/25/26', ...) to ISO 8601 (tokens, "
    "variable-length input).",
    (TOKENS, TOKENS),
    (OptionSpec("formats", int, len(_DATE_FORMATS),
                f"how many of the {len(_DATE_FORMATS)} date formats to mix (1: only "
                "'25 Nov 2026')", 1, len(_DATE_FORMATS)),),
    # Python strings and lists per sample (the texts, the ISO dates, their ids), arrays
    peak=lambda n, **_: 512 * n,
)
def _dates(rng: np.random.Generator, n: int, *, formats: int) -> _TaskData:
    words = _date_vocab()
    index = {c: i for i, c in enumerate(words)}
    span = (_LAST_DATE - _FIRST_DATE).days
    offsets = rng.integers(0, span + 1, n)
    styles = rng.integers(0, formats, n)
    texts, isos = [], []
    for offset, style in zip(offsets.tolist(), styles.tolist()):
        day = _FIRST_DATE + _dt.timedelta(days=offset)
        texts.append(_DATE_FORMATS[style](day))
        isos.append(day.isoformat())
    steps = max(len(t) for t in texts)
    dtype = _id_dtype(len(words))
    x = np.zeros((n, steps), dtype=dtype)
    for i, text in enumerate(texts):
        x[i, : len(text)] = [index[c] for c in text]
    y = np.array([[index[c] for c in iso] for iso in isos], dtype=dtype)
    return _TaskData(
        x,
        _with_end(y),
        f"Translate dates between {_FIRST_DATE} and {_LAST_DATE} written in {formats} "
        "format(s) into ISO 8601 (YYYY-MM-DD), character by character; two-digit years "
        "50-99 are 19xx, 00-49 are 20xx.",
        input_lengths=np.array([len(t) for t in texts], dtype=np.int32),
        input_vocab=words,
        target_vocab=words,
    )
