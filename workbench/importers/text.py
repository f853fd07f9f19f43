"""`import-text`: a TSV or CSV of (source, target) text pairs -> a token dataset file.

One row is one sample: the source text becomes the input tokens, the target text
the target tokens (followed by the end id, as the format wants). With `single`,
one column is enough: the target is the text itself (`autoencode`) or its tokens
reversed (`reverse`).

Text is normalised before it is cut into tokens: Unicode NFC, surrounding spaces
stripped, lower case with `lowercase`; at the word level words are split on white
space (so runs of spaces count as one). Decoding the stored ids and joining the
tokens (nothing between characters, one space between words) gives back exactly
that normalised text.

The split is random (pairs are independent samples), exact in size and seeded.
The vocabularies are built from the training split only: a token seen only in
validation or test data becomes `<unk>` (id 3, always reserved), as it would for
a truly new sentence; so does a training token seen fewer than `min_count` times.

The file is read twice and never held in memory: the first pass counts the pairs,
the padded lengths and the distinct tokens; the second assigns each pair its split,
writes provisional ids and counts the training tokens; then the ids are mapped, in
place, to the final vocabularies.
"""

from __future__ import annotations

import itertools
import json
import unicodedata
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from workbench.datasets import END_ID, RESERVED_TOKENS
from workbench.errors import ConfigError, DatasetError
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
from workbench.importers.records import RecordReader, default_delimiter, parse_delimiter
from workbench.importers.splits import random_assignment, random_split_sizes
from workbench.importers.writer import CountingSink, SplitWriter, new_dataset_file, write_vocab

__all__ = [
    "LEVELS",
    "SINGLE_MODES",
    "UNK",
    "UNK_ID",
    "TextImportSummary",
    "TextOptions",
    "decode",
    "import_text",
    "normalise",
    "scan_text",
    "tokenize",
]

LEVELS = ("char", "word")
SINGLE_MODES = ("autoencode", "reverse")
UNK = "<unk>"
UNK_ID = len(RESERVED_TOKENS)  # 3: right after pad, start and end
FIRST_TOKEN_ID = UNK_ID + 1
BLOCK_ROWS = 4096  # rows between progress reports, cancel checks and array writes
QUICK_SCAN_ROWS = 20_000


@dataclass(frozen=True)
class TextOptions:
    """Everything `import-text` can be told; the CLI flags and the dialog's fields."""

    level: str = "word"  # "char" | "word"
    source_col: int | str = 0  # an index, or a name when `header`
    target_col: int | str | None = 1
    single: str | None = None  # None | "autoencode" | "reverse": the target from the source
    lowercase: bool = False
    max_length: int | None = None  # drop pairs with more tokens on either side
    min_count: int = 1  # training tokens seen fewer times become <unk>
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 0
    encoding: str | None = None  # None: UTF-8 (with or without a BOM; UTF-16 by its BOM)
    delimiter: str | None = None  # None: comma for .csv, tab otherwise
    quoting: bool = True  # quoted fields as the csv module reads them
    header: bool = False  # the first row names the columns (and is not a pair)
    skip_bad_lines: bool = False

    def checked(self) -> TextOptions:
        """These options with every value checked (ConfigError naming the flag)."""
        if self.level not in LEVELS:
            raise ConfigError(f"--level must be one of {', '.join(LEVELS)}, got {self.level!r}")
        if self.single is not None and self.single not in SINGLE_MODES:
            raise ConfigError(f"--single must be one of {', '.join(SINGLE_MODES)}, "
                              f"got {self.single!r}")
        if self.single is None and self.target_col is None:
            raise ConfigError("give --target-col, or --single autoencode|reverse for a file "
                              "of one text column")
        if self.max_length is not None:
            check_int("--max-length", self.max_length, 1)
        check_int("--min-count", self.min_count, 1)
        check_int("--seed", self.seed, 0)
        check_fractions(self.val_fraction, self.test_fraction)
        source, target = _column(self.source_col, self.header), None
        if self.single is None:
            target = _column(self.target_col, self.header)
            if target == source:
                raise ConfigError(f"--source-col and --target-col are the same column "
                                  f"({source!r}); for one column use --single")
        return replace(self, source_col=source, target_col=target,
                       delimiter=parse_delimiter(self.delimiter))


def _column(value: Any, header: bool) -> int | str:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ConfigError(f"a column index counts from 0, got {value}")
        return value
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    if not header:
        raise ConfigError(f"column {text!r}: without --header, columns are numbered from 0")
    return text


@dataclass(frozen=True)
class TextImportSummary:
    """What an import wrote (or a quick scan would write)."""

    source: str
    path: str | None  # the written file; None for a scan
    complete: bool  # False: a scan of the first rows only
    rows: int  # data rows read (not counting a header or skipped lines)
    estimated_rows: int  # the file's rows, estimated from its size when not complete
    pairs: int  # pairs kept
    splits: dict[str, int]
    input_steps: int
    target_steps: int  # counts the end token
    input_vocab_size: int
    target_vocab_size: int
    dropped: dict[str, int]  # over_max_length, empty, bad_lines
    unknown_tokens: dict[str, int]  # tokens stored as <unk>, per side
    first_bad_line: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"kind": "text", **asdict(self)}

    def text(self) -> str:
        """One line for the CLI: what was written, the splits, vocabularies, drops."""
        splits = ", ".join(f"{k} {v:,}" for k, v in self.splits.items())
        head = f"wrote {self.path}" if self.path else f"{self.source} would give"
        line = (f"{head}: {self.pairs:,} pairs ({splits}); input {self.input_steps} steps, "
                f"target {self.target_steps} steps; vocabulary: input {self.input_vocab_size:,},"
                f" target {self.target_vocab_size:,} tokens (from the training split)")
        return line + "; " + drop_text(self.dropped, self.unknown_tokens, self.first_bad_line)


def drop_text(dropped: dict[str, int], unknown: dict[str, int], first_bad: str | None) -> str:
    parts = [f"{dropped.get('over_max_length', 0):,} over --max-length",
             f"{dropped.get('empty', 0):,} with an empty field"]
    if dropped.get("bad_lines"):
        parts.append(f"{dropped['bad_lines']:,} bad lines skipped (first: {first_bad})")
    unk = f"; <unk> stored for {unknown.get('input', 0):,} input and " \
          f"{unknown.get('target', 0):,} target tokens"
    return "dropped " + ", ".join(parts) + unk


# --- text to tokens ---------------------------------------------------------------------


def normalise(text: str, *, lowercase: bool = False, level: str = "word") -> str:
    """The text as it is stored: NFC, stripped, lowered with `lowercase`; word level
    also collapses white space to single spaces."""
    text = unicodedata.normalize("NFC", text).strip()
    if lowercase:
        text = text.lower()
    if level == "word":
        text = " ".join(text.split())
    return text


def tokenize(text: str, level: str) -> list[str]:
    """Characters, or words split on white space, of already normalised text."""
    return list(text) if level == "char" else text.split()


def _tokens(text: str, lowercase: bool, char: bool) -> list[str]:
    """tokenize(normalise(text)) in one go (the importer's inner loop)."""
    if not text.isascii():
        text = unicodedata.normalize("NFC", text)
    text = text.strip()
    if lowercase:
        text = text.lower()
    return list(text) if char else text.split()


def decode(ids: np.ndarray | list[int], vocab: tuple[str, ...] | list[str], level: str) -> str:
    """Token ids back to text, stopping at the end or pad id (the inverse of the import
    for tokens seen in training)."""
    tokens = []
    for i in ids:
        if int(i) in (END_ID, 0):
            break
        tokens.append(vocab[int(i)])
    return ("" if level == "char" else " ").join(tokens)


# --- reading pairs ------------------------------------------------------------------------


class _Pairs:
    """The kept pairs of a file as token lists, with what was dropped and why."""

    def __init__(self, reader: RecordReader, options: TextOptions, limit: int | None) -> None:
        self.reader = reader
        self.options = options
        self.limit = limit
        self.rows = 0
        self.empty = 0
        self.too_long = 0
        self.complete = True
        self.last_line = 0

    def __iter__(self) -> Iterator[tuple[list[str], list[str]]]:
        o = self.options
        self.rows = self.empty = self.too_long = 0
        self.complete = True
        records = self._records()
        expected: int | None = None
        expected_line = 0
        source_i = target_i = -1
        resolved = False
        if o.header:
            header = next(records, None)
            if header is None:
                raise DatasetError(f"{self.reader.label}: the file is empty")
            names = [n.strip() for n in header[1]]
            expected, expected_line = len(names), header[0]
            source_i, target_i = self._indexes(names)
            resolved = True
        for line, fields in records:
            if expected is None:
                expected, expected_line = len(fields), line
            if len(fields) != expected:
                self.reader.reject(line, f"{len(fields)} fields, expected {expected} "
                                         f"(as on line {expected_line})")
                continue
            if not resolved:
                source_i, target_i = self._indexes(None, len(fields), line)
                resolved = True
            if self.limit is not None and self.rows >= self.limit:
                self.complete = False
                return
            self.rows += 1
            self.last_line = line
            pair = self._pair(fields[source_i], fields[target_i] if target_i >= 0 else None)
            if pair is not None:
                yield pair
        if self.rows == 0:
            what = ("has a header but no rows" if o.header and expected is not None else
                    "is empty" if self.reader.bad_lines == 0 else
                    f"has no readable rows ({self.reader.bad_lines} bad lines skipped; first: "
                    f"{self.reader.first_bad})")
            raise DatasetError(f"{self.reader.label}: the file {what}")

    def _records(self) -> Iterator[tuple[int, list[str]]]:
        for block in self.reader.blocks():
            yield from zip(block.lines, block.rows)

    def _indexes(self, names: list[str] | None, count: int | None = None,
                 line: int = 1) -> tuple[int, int]:
        o = self.options
        cols = [o.source_col] + ([o.target_col] if o.single is None else [])
        found = []
        for flag, col in zip(("--source-col", "--target-col"), cols):
            if isinstance(col, str):
                assert names is not None
                if col not in names:
                    raise ConfigError(f"{self.reader.label}: {flag} {col!r}: no such column; "
                                      f"the columns are {', '.join(map(repr, names))}")
                found.append(names.index(col))
                continue
            have = len(names) if names is not None else count
            if col >= (have or 0):
                raise ConfigError(f"{self.reader.label}: {flag} {col}: line {line} has only "
                                  f"{have} column(s), numbered from 0 (is --delimiter right?)")
            found.append(col)
        return found[0], found[1] if len(found) > 1 else -1

    def _pair(self, source: str, target: str | None) -> tuple[list[str], list[str]] | None:
        o = self.options
        char = o.level == "char"
        src = _tokens(source, o.lowercase, char)
        if target is None:
            tgt = src[::-1] if o.single == "reverse" else src
        else:
            tgt = _tokens(target, o.lowercase, char)
        if not src or not tgt:
            self.empty += 1
            return None
        if o.max_length is not None and (len(src) > o.max_length or len(tgt) > o.max_length):
            self.too_long += 1
            return None
        return src, tgt


# --- the import ------------------------------------------------------------------------------


@dataclass
class _FirstPass:
    pairs: int
    input_steps: int
    target_steps: int
    ids: dict[str, int]  # every distinct token -> provisional id


def _first_pass(pairs: _Pairs, progress: Progress, cancelled: Cancelled) -> _FirstPass:
    seen: set[str] = set()
    n = t_in = t_out = 0
    for n, (src, tgt) in enumerate(pairs, start=1):
        if len(src) > t_in:
            t_in = len(src)
        if len(tgt) > t_out:
            t_out = len(tgt)
        seen.update(src)
        seen.update(tgt)
        if n % BLOCK_ROWS == 0:
            _tick(progress, cancelled, 0.45 * pairs.reader.fraction, "reading the file")
    # provisional ids in any order: the final vocabularies are sorted by count and token
    ids = {token: FIRST_TOKEN_ID + i for i, token in enumerate(seen)}
    return _FirstPass(n, t_in, t_out + 1, ids)


def _tick(progress: Progress, cancelled: Cancelled, fraction: float, message: str) -> None:
    if cancelled():
        raise ImportCancelled("the import was cancelled")
    progress(fraction, message)


def _id_dtype(count: int) -> np.dtype:
    for dtype in (np.uint8, np.uint16, np.int32):
        if count <= np.iinfo(dtype).max + 1:
            return np.dtype(dtype)
    raise DatasetError(f"{count:,} distinct tokens: more than a vocabulary can hold")


class _Batches:
    """Per split: rows of provisional ids collected and written as padded arrays."""

    def __init__(self, sink: SplitWriter | CountingSink, first: _FirstPass,
                 dtype: np.dtype) -> None:
        self.sink, self.first, self.dtype = sink, first, dtype
        self.rows: dict[str, list[tuple[list[int], list[int]]]] = {}
        size = FIRST_TOKEN_ID + len(first.ids)
        self.train_counts = [np.zeros(size, np.int64), np.zeros(size, np.int64)]
        self.all_counts = [np.zeros(size, np.int64), np.zeros(size, np.int64)]

    def add(self, split: str, src: list[int], tgt: list[int]) -> None:
        rows = self.rows.setdefault(split, [])
        rows.append((src, tgt))
        if len(rows) >= BLOCK_ROWS:
            self.flush(split)

    def flush(self, split: str) -> None:
        rows = self.rows.pop(split, [])
        if not rows:
            return
        size = len(self.train_counts[0])
        arrays = []
        for side, steps in ((0, self.first.input_steps), (1, self.first.target_steps)):
            seqs = [r[side] for r in rows]
            lengths = np.fromiter((len(s) for s in seqs), dtype=np.int32, count=len(seqs))
            flat = np.fromiter(itertools.chain.from_iterable(seqs), dtype=np.int64,
                               count=int(lengths.sum()))
            counts = np.bincount(flat, minlength=size)
            self.all_counts[side] += counts
            if split == "train":
                self.train_counts[side] += counts
            padded = np.zeros((len(seqs), steps), dtype=self.dtype)
            mask = np.arange(steps)[None, :] < lengths[:, None]
            padded[mask] = flat
            arrays.append((padded, lengths))
        (x, x_len), (y, y_len) = arrays
        self.sink.append(split, x, y, x_len, y_len)

    def finish(self) -> None:
        for split in list(self.rows):
            self.flush(split)
        self.sink.finish()


def _vocab(counts: np.ndarray, tokens: list[str], min_count: int) -> tuple[tuple[str, ...],
                                                                           np.ndarray]:
    """The final vocabulary of one side and the map provisional id -> final id."""
    token_counts = counts[FIRST_TOKEN_ID:]
    kept = np.nonzero(token_counts >= min_count)[0]
    order = sorted(kept.tolist(), key=lambda i: (-int(token_counts[i]), tokens[i]))
    lut = np.full(len(counts), UNK_ID, dtype=np.int64)
    lut[:FIRST_TOKEN_ID] = np.arange(FIRST_TOKEN_ID)
    lut[[FIRST_TOKEN_ID + i for i in order]] = np.arange(FIRST_TOKEN_ID,
                                                         FIRST_TOKEN_ID + len(order))
    vocab = (*RESERVED_TOKENS, UNK, *(tokens[i] for i in order))
    return vocab, lut


def _remap(datasets: dict[str, h5py.Dataset], luts: tuple[np.ndarray, np.ndarray]) -> None:
    for name, lut in (("inputs", luts[0]), ("targets", luts[1])):
        ds = datasets.get(name)
        if ds is None:
            continue
        step = max(1, 2**22 // max(1, ds.shape[1]))
        for a in range(0, ds.shape[0], step):
            block = ds[a:a + step]
            ds[a:a + step] = lut[block].astype(ds.dtype)


def _run(source: Path, out: Path | None, options: TextOptions, *, limit: int | None,
         progress: Progress, cancelled: Cancelled) -> TextImportSummary:
    o = options.checked()
    o = replace(o, delimiter=o.delimiter or default_delimiter(source))
    reader = RecordReader(source, delimiter=o.delimiter,
                          encoding=o.encoding, quoting=o.quoting,
                          skip_bad_lines=o.skip_bad_lines)
    pairs = _Pairs(reader, o, limit)
    first = _first_pass(pairs, progress, cancelled)
    dropped = {"over_max_length": pairs.too_long, "empty": pairs.empty,
               "bad_lines": reader.bad_lines}
    if first.pairs == 0:
        raise DatasetError(f"{source}: no pairs left to import ({pairs.rows:,} rows read; "
                           + drop_text(dropped, {}, reader.first_bad).split(";")[0] + ")")
    sizes = random_split_sizes(first.pairs, o.val_fraction, o.test_fraction)
    if sizes["train"] < 1:
        raise DatasetError(f"{source}: {first.pairs} pair(s) are too few to split into "
                           f"training, validation ({o.val_fraction:g}) and test "
                           f"({o.test_fraction:g}) data")
    dtype = _id_dtype(FIRST_TOKEN_ID + len(first.ids))
    tokens = list(first.ids)
    estimated = pairs.rows if pairs.complete else \
        int(pairs.rows * reader.estimated_lines / max(1, pairs.last_line))
    meta = {"source": str(source), "rows": pairs.rows, "pairs": first.pairs,
            "complete": pairs.complete, "estimated_rows": estimated}
    if out is None:
        batches = _second_pass(pairs, o, first, sizes, CountingSink(), dtype, progress, cancelled)
        return _summary(meta, None, o, first, batches, tokens, dropped, reader)
    attrs = {
        "task": source.stem,
        "importer": "import-text",
        "source_file": source.name,
        "split_by": "random",
        "split_seed": o.seed,
        "import_options": json.dumps(_options_json(o)),
    }
    with new_dataset_file(out, attrs) as f:
        writer = SplitWriter(f, input_shape=(first.input_steps,), input_dtype=dtype,
                             target_shape=(first.target_steps,), target_dtype=dtype,
                             lengths=True)
        batches = _second_pass(pairs, o, first, sizes, writer, dtype, progress, cancelled)
        summary = _summary(meta, out, o, first, batches, tokens, dropped, reader)
        progress(0.9, "mapping the tokens to the vocabularies")
        (vx, lx), (vy, ly) = (_vocab(batches.train_counts[s], tokens, o.min_count) for s in (0, 1))
        for split in sizes:
            _remap(writer.datasets(split), (lx, ly))
        if vx == vy:
            write_vocab(f, "vocab", vx)
        else:
            write_vocab(f, "input_vocab", vx)
            write_vocab(f, "target_vocab", vy)
        f.attrs["description"] = _description(source, summary, o)
        f.attrs["import_counts"] = json.dumps({"rows": summary.rows, "dropped": summary.dropped,
                                               "unknown_tokens": summary.unknown_tokens})
        progress(0.95, "checking the written file")
    progress(1.0, "done")
    return summary


def _second_pass(pairs: _Pairs, o: TextOptions, first: _FirstPass, sizes: dict[str, int],
                 sink: SplitWriter | CountingSink, dtype: np.dtype, progress: Progress,
                 cancelled: Cancelled) -> _Batches:
    names = ("train", "val", "test")
    labels = itertools.chain.from_iterable(random_assignment(sizes, o.seed))
    batches = _Batches(sink, first, dtype)
    get = first.ids.__getitem__
    n = 0
    for n, ((src, tgt), label) in enumerate(zip(pairs, labels), start=1):
        batches.add(names[label], list(map(get, src)), [*map(get, tgt), END_ID])
        if n % BLOCK_ROWS == 0:
            _tick(progress, cancelled, 0.45 + 0.45 * pairs.reader.fraction, "writing the pairs")
    if n != first.pairs:
        raise DatasetError(f"{pairs.reader.label}: the file changed while it was imported "
                           f"({first.pairs:,} pairs, then {n:,})")
    batches.finish()
    return batches


def _summary(meta: dict[str, Any], out: Path | None, o: TextOptions, first: _FirstPass,
             batches: _Batches, tokens: list[str], dropped: dict[str, int],
             reader: RecordReader) -> TextImportSummary:
    sizes = batches.sink.counts()
    vocab_sizes, unknown = [], []
    for side in (0, 1):
        vocab, lut = _vocab(batches.train_counts[side], tokens, o.min_count)
        vocab_sizes.append(len(vocab))
        is_unk = lut == UNK_ID
        is_unk[:FIRST_TOKEN_ID] = False
        unknown.append(int(batches.all_counts[side][is_unk].sum()))
    return TextImportSummary(
        source=meta["source"], path=None if out is None else str(out),
        complete=meta["complete"], rows=meta["rows"], estimated_rows=meta["estimated_rows"],
        pairs=first.pairs,
        splits={k: sizes.get(k, 0) for k in ("train", "val", "test") if sizes.get(k)},
        input_steps=first.input_steps, target_steps=first.target_steps,
        input_vocab_size=vocab_sizes[0], target_vocab_size=vocab_sizes[1],
        dropped=dropped, unknown_tokens={"input": unknown[0], "target": unknown[1]},
        first_bad_line=reader.first_bad, options=_options_json(o))


def _options_json(o: TextOptions) -> dict[str, Any]:
    return asdict(o)


def _description(source: Path, s: TextImportSummary, o: TextOptions) -> str:
    what = (f"its {o.single} target" if o.single else "source -> target pairs")
    lowered = ", lower-cased" if o.lowercase else ""
    return (f"{s.pairs:,} texts of {source.name} as {what}, {o.level} level{lowered}; "
            f"split at random (seed {o.seed}); vocabularies from the training split "
            f"(<unk> for the rest)")


def import_text(source: str | Path, out: str | Path, options: TextOptions | None = None, *,
                progress: Progress = no_progress,
                cancelled: Cancelled = never_cancelled) -> TextImportSummary:
    """Import a file of text pairs into a new dataset file at `out` (atomically).

    DatasetError names the line of a malformed row or bad byte; ConfigError a bad
    option or column; ImportCancelled when `cancelled()` turns true. On any of them
    no file is left at `out` (an existing one is untouched). `out` must not be
    `source`. Refusing an existing `out` is the caller's choice (the CLI's --force).
    """
    source, out = check_paths(source, out)
    return _run(source, out, options or TextOptions(), limit=None, progress=progress,
                cancelled=cancelled)


def scan_text(source: str | Path, options: TextOptions | None = None, *,
              max_rows: int | None = QUICK_SCAN_ROWS,
              cancelled: Cancelled = never_cancelled) -> TextImportSummary:
    """What importing the first `max_rows` rows would give (all of them with None),
    without writing anything: splits, steps, vocabulary sizes, drops. `complete`
    says whether the whole file was read."""
    source = Path(source)
    if not source.is_file():
        raise ConfigError(f"{source}: no such file")
    return _run(source, None, options or TextOptions(), limit=max_rows, progress=no_progress,
                cancelled=cancelled)
