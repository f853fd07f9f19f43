"""A delimited text file (CSV, TSV) read record by record, in bounded memory.

Both importers read their file through `RecordReader`, which turns every way a
text file can be broken into one message naming the file and the line:

- bytes that are not valid in the encoding (UTF-8 by default, with or without a
  byte-order mark; a UTF-16 mark is recognised) name the line and the byte's offset
  in the file, and suggest --encoding;
- a line longer than `max_line_bytes` (a binary file, a file with no newlines) is
  refused without being held in memory;
- quoted fields are read as the csv module reads them (strict mode), so a quote
  left open names the line where it opened, and a field past csv's size limit is
  refused;
- NUL characters (a binary file) are refused.

With `skip_bad_lines` such lines are counted and skipped instead; the first
message is kept so the user sees why. A record spanning several lines that turns
out to be broken skips only its first line and reads the rest again, so one stray
quote never swallows the rest of the file.

Memory is one read block (1 MiB) plus the record being parsed, whatever the
file's size. Speed: a block without quotes (or with quoting off) and without NUL is
parsed by csv.reader in one call, a record per line; only blocks that need it go
line by line through the machinery above. `blocks()` hands out the records a block
at a time, for callers that work on blocks.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

import numpy as np

from workbench.errors import ConfigError, DatasetError

__all__ = ["MAX_LINE_BYTES", "Record", "RecordReader", "default_delimiter", "parse_delimiter"]

READ_BYTES = 2**20
MAX_LINE_BYTES = 2**20  # a longer line is refused (never read into memory whole)
UTF8_BOM = codecs.BOM_UTF8
UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
DELIMITER_NAMES = {"tab": "\t", "comma": ",", "semicolon": ";", "pipe": "|", "space": " "}


class Record(NamedTuple):
    """One parsed row: the line it starts on (1-based) and its fields."""

    line: int
    fields: list[str]


class Block:
    """Records in file order without an object per row: `rows[i]` holds the fields of
    the record starting on line `lines[i]`. What the importers work on."""

    __slots__ = ("lines", "rows")

    def __init__(self, lines: Sequence[int], rows: list[list[str]]) -> None:
        self.lines, self.rows = lines, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: slice) -> Block:
        return Block(self.lines[index], self.rows[index])

    def records(self) -> Iterator[Record]:
        return map(Record, self.lines, self.rows)

    def line_array(self) -> np.ndarray:
        """The line numbers as an int64 array."""
        lines = self.lines
        if isinstance(lines, range):
            return np.arange(lines.start, lines.stop, lines.step, dtype=np.int64)
        return np.asarray(lines, dtype=np.int64)


# (line number, its text with its newline, None) or (line number, None, what is wrong)
_Line = tuple[int, "str | None", "str | None"]
SLOW_CHUNK_LINES = 4096


@dataclass
class _Chunk:
    """A run of lines as read: either `clean` (texts without their newline, that csv
    parses a record per line) or `lines` (each with its number, for the slow path)."""

    line: int  # the number of its first line
    clean: list[str] | None
    lines: list[_Line] | None
    size: int  # bytes it covers

    @property
    def count(self) -> int:
        return len(self.clean if self.clean is not None else self.lines or ())

    def slow_lines(self) -> list[_Line]:
        if self.lines is not None:
            return self.lines
        return [(self.line + i, text + "\n", None) for i, text in enumerate(self.clean or ())]


class _BadLine(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def parse_delimiter(value: str | None) -> str | None:
    """A --delimiter value: a name (tab, comma, semicolon, pipe, space) or one character;
    None or "auto" means: decide from the file name (see default_delimiter)."""
    if value is None or value == "auto":
        return None
    if value in DELIMITER_NAMES:
        return DELIMITER_NAMES[value]
    if value == "\\t":
        return "\t"
    if len(value) != 1 or value in "\"\r\n":
        names = ", ".join(DELIMITER_NAMES)
        raise ConfigError(f"--delimiter must be one character or one of {names}, got {value!r}")
    return value


def default_delimiter(path: str | Path) -> str:
    """Comma for a .csv file, tab for anything else (.tsv, .txt, ...)."""
    return "," if Path(path).suffix.lower() == ".csv" else "\t"


def _ascii_compatible(encoding: str) -> bool:
    """True when the encoding writes newline, tab, comma and quote as single ASCII
    bytes, so a file can be split into lines before it is decoded."""
    try:
        return "\n\t,;\"|".encode(encoding) == b"\n\t,;\"|"
    except (UnicodeError, LookupError):
        return False


def check_encoding(encoding: str | None) -> str | None:
    """The codec's name, or ConfigError for an unknown --encoding."""
    if encoding is None:
        return None
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise ConfigError(f"--encoding {encoding!r}: unknown encoding (try utf-8, latin-1, "
                          "cp1252 or utf-16)") from None


class RecordReader:
    """Iterate over the records of a delimited text file; see the module docstring.

    Iterating again starts again from the top (the importers read a file twice).
    `bad_lines` counts the lines skipped in the last pass, `first_bad` says why the
    first was; `bytes_read` / `size` is the progress of the current pass.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        delimiter: str,
        encoding: str | None = None,
        quoting: bool = True,
        skip_bad_lines: bool = False,
        max_line_bytes: int = MAX_LINE_BYTES,
    ) -> None:
        self.path = Path(path)
        self.label = str(path)
        self.delimiter = delimiter
        self.encoding = check_encoding(encoding)
        self.quoting = quoting
        self.skip_bad_lines = skip_bad_lines
        self.max_line_bytes = max_line_bytes
        self.bad_lines = 0
        self.first_bad: str | None = None
        self.bytes_read = 0
        self._lines_seen = 0
        self._bytes_seen = 0
        try:
            self.size = self.path.stat().st_size
        except OSError as exc:
            raise DatasetError(f"{self.label}: cannot read: {exc.strerror or exc}") from None

    # --- errors ---------------------------------------------------------------------------
    def fail(self, line: int, message: str, where: str = "") -> DatasetError:
        """The error for `line`; `where` adds to the place, e.g. " (data row 4), column 'b'"."""
        return DatasetError(f"{self.label}: line {line}{where}: {message}")

    def reject(self, line: int, message: str) -> None:
        """A bad line: raise a DatasetError naming it, or count and skip it
        (`skip_bad_lines`)."""
        if not self.skip_bad_lines:
            raise self.fail(line, message)
        self.bad_lines += 1
        if self.first_bad is None:
            self.first_bad = f"line {line}: {message}"

    @property
    def fraction(self) -> float:
        """How far the current pass has read (by blocks read from the disk)."""
        return min(1.0, self.bytes_read / self.size) if self.size else 1.0

    @property
    def estimated_lines(self) -> int:
        """The file's lines, estimated from the bytes per line of the blocks parsed so
        far (to say "about N rows" after a scan of the first ones)."""
        if not self._bytes_seen:
            return 0
        return int(self.size * self._lines_seen / self._bytes_seen)

    def _seen(self, chunk: _Chunk) -> None:
        self._lines_seen += chunk.count
        self._bytes_seen += chunk.size

    # --- records --------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Record]:
        for block in self.blocks():
            yield from block.records()

    def blocks(self) -> Iterator[Block]:
        """The records in blocks of up to a few thousand, in file order."""
        self.bad_lines = 0
        self.first_bad = None
        self.bytes_read = self._lines_seen = self._bytes_seen = 0
        try:
            handle = open(self.path, "rb")  # noqa: SIM115 (closed in finally, across yields)
        except OSError as exc:
            raise DatasetError(f"{self.label}: cannot read: {exc.strerror or exc}") from None
        try:
            yield from self._blocks(self._chunks(handle))
        finally:
            handle.close()

    def _csv_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"delimiter": self.delimiter, "strict": True}
        if not self.quoting:
            options["quoting"] = csv.QUOTE_NONE
        return options

    def _blocks(self, chunks: Iterator[_Chunk]) -> Iterator[Block]:
        options = self._csv_options()
        feed = _Feed(chunks, self._seen)
        reader = csv.reader(feed, **options)
        while True:
            if not feed.pending:
                chunk = next(chunks, None)
                if chunk is None:
                    return
                self._seen(chunk)
                if chunk.clean is not None:
                    records = _fast_records(chunk, options)
                    if records is not None:
                        if records:
                            yield records
                        continue
                feed.add(chunk)
            records = self._slow_records(feed, reader)
            if records:
                yield records

    def _slow_records(self, feed: _Feed, reader: Any) -> Block:
        """Records parsed line by line until the feed is used up at a record's end."""
        out = Block([], [])
        while feed.pending:
            feed.begin()
            try:
                fields = next(reader)
            except StopIteration:
                break
            except _BadLine as bad:
                self.reject(bad.line, bad.message)
                feed.retry_after_first(include_first=True)
                continue
            except csv.Error as exc:
                self.reject(feed.first_line, self._csv_message(exc, feed))
                feed.retry_after_first()
                continue
            if not fields or fields == [""]:
                continue  # a blank line
            if any("\x00" in f for f in fields):
                self.reject(feed.first_line, "contains a NUL character (is this a binary file?)")
                continue
            out.lines.append(feed.first_line)  # type: ignore[attr-defined]
            out.rows.append(fields)
        return out

    def _csv_message(self, exc: csv.Error, feed: _Feed) -> str:
        text = str(exc)
        lines = feed.last_line - feed.first_line + 1
        if "unexpected end of data" in text:
            return ("a quoted field opens here and is never closed (a quote left open?); "
                    "pass --quoting none if quotes are ordinary characters in this file")
        if "field larger than field limit" in text:
            limit = csv.field_size_limit()
            if lines > 1:
                return (f"a quoted field runs over {lines} lines and past {limit:,} characters "
                        "(a quote left open?)")
            return f"a field is longer than {limit:,} characters"
        if "expected after" in text:
            text = text.replace("\t", "tab").replace("'", "")
            return (f"malformed quoting ({text}); a field that starts with a quote must end "
                    "with one; pass --quoting none if quotes are ordinary characters here")
        return f"cannot parse: {text}"

    # --- lines ----------------------------------------------------------------------------
    def _chunks(self, handle: BinaryIO) -> Iterator[_Chunk]:
        head = handle.read(4)
        handle.seek(0)
        encoding = self.encoding
        if encoding is None and head[:2] in UTF16_BOMS:
            encoding = "utf-16"
        if encoding is None or _ascii_compatible(encoding):
            return self._byte_chunks(handle, encoding or "utf-8")
        return self._text_chunks(handle, encoding)

    def _byte_chunks(self, handle: BinaryIO, encoding: str) -> Iterator[_Chunk]:
        """Split bytes into lines, then decode block by block; exact offsets on errors."""
        line = 1  # number of the first line in `pending`
        offset = 0  # file offset of pending[0]
        pending = b""
        skipping_long = False  # inside an over-long line: discard up to its newline
        first = True
        while True:
            chunk = handle.read(READ_BYTES)
            self.bytes_read += len(chunk)
            if first:
                first = False
                if encoding in ("utf-8", "utf_8") and chunk.startswith(UTF8_BOM):
                    chunk = chunk[len(UTF8_BOM):]
                    offset = len(UTF8_BOM)
            if not chunk:
                break
            if skipping_long:
                end = chunk.find(b"\n")
                if end < 0:
                    offset += len(chunk)
                    continue
                skipping_long = False
                offset += end + 1
                line += 1
                chunk = chunk[end + 1:]
            pending += chunk
            last = pending.rfind(b"\n")
            if last < 0:
                if len(pending) > self.max_line_bytes:
                    yield from self._too_long(line)
                    offset += len(pending)
                    pending = b""
                    skipping_long = True
                continue
            block, pending = pending[: last + 1], pending[last + 1:]
            first_end = block.find(b"\n")
            if first_end + 1 > self.max_line_bytes:  # the carried-over line grew too long
                yield from self._too_long(line)
                offset += first_end + 1
                line += 1
                block = block[first_end + 1:]
            yield from self._decode_block(block, line, offset, encoding)
            line += block.count(b"\n")
            offset += len(block)
        if pending:
            if len(pending) > self.max_line_bytes:
                yield from self._too_long(line)
            else:
                yield from self._decode_block(pending, line, offset, encoding)

    def _too_long(self, line: int) -> Iterator[_Chunk]:
        problem = (f"longer than {self.max_line_bytes:,} bytes without a line break (is this "
                   "a text file?)")
        yield _Chunk(line, None, [(line, None, problem)], 0)

    def _decode_block(self, block: bytes, line: int, offset: int,
                      encoding: str) -> Iterator[_Chunk]:
        try:
            text = block.decode(encoding)
        except UnicodeDecodeError:
            yield _Chunk(line, None, list(self._decode_lines(block, line, offset, encoding)),
                         len(block))
            return
        parts = text.split("\n")
        if not parts[-1]:
            parts.pop()
        if "\x00" not in text and not (self.quoting and '"' in text):
            yield _Chunk(line, parts, None, len(block))
        else:
            yield _Chunk(line, None, [(line + i, part + "\n", None)
                                      for i, part in enumerate(parts)], len(block))

    def _decode_lines(self, block: bytes, line: int, offset: int,
                      encoding: str) -> Iterator[_Line]:
        """The slow path of a block holding a bad byte: line by line, naming it."""
        start = 0
        while start < len(block):
            end = block.find(b"\n", start)
            end = len(block) if end < 0 else end + 1
            raw = block[start:end]
            try:
                text = raw.decode(encoding)
            except UnicodeDecodeError as exc:
                yield from self._bad_bytes(exc, raw, line, offset + start, encoding)
            else:
                yield line, text, None
            line += 1
            start = end

    def _bad_bytes(self, exc: UnicodeDecodeError, raw: bytes, line: int, offset: int,
                   encoding: str) -> Iterator[_Line]:
        byte = raw[exc.start]
        hint = ("; if the file is Latin-1 or Windows-1252, pass --encoding latin-1 "
                "(or cp1252)" if encoding.replace("_", "-") == "utf-8" else "")
        yield line, None, (f"byte 0x{byte:02x} at offset {offset + exc.start:,} is not "
                           f"valid {encoding}{hint}")

    def _text_chunks(self, handle: BinaryIO, encoding: str) -> Iterator[_Chunk]:
        """Encodings where a newline is not one byte (UTF-16, UTF-32): decoded as a
        stream, line by line; errors name the line (the byte offset is not known
        exactly)."""
        lines = self._text_lines(handle, encoding)
        while True:
            start = self.bytes_read
            batch = [item for _, item in zip(range(SLOW_CHUNK_LINES), lines)]
            if not batch:
                return
            yield _Chunk(batch[0][0], None, batch, self.bytes_read - start)

    def _text_lines(self, handle: BinaryIO, encoding: str) -> Iterator[_Line]:
        text = io.TextIOWrapper(handle, encoding=encoding, errors="strict", newline="")
        line = 0
        while True:
            line += 1
            try:
                part = text.readline(self.max_line_bytes + 1)
            except UnicodeError as exc:  # UTF-16 without a byte-order mark is a UnicodeError
                reason = getattr(exc, "reason", None) or str(exc)
                raise DatasetError(f"{self.label}: near line {line}: the file is not valid "
                                   f"{encoding} ({reason})") from None
            self.bytes_read = min(self.size, handle.tell())
            if not part:
                return
            if len(part) > self.max_line_bytes and not part.endswith("\n"):
                while part and not part.endswith("\n"):  # skip the rest of the line
                    part = text.readline(self.max_line_bytes)
                yield line, None, (f"longer than {self.max_line_bytes:,} characters without "
                                   "a line break (is this a text file?)")
                continue
            yield line, part, None


def _fast_records(chunk: _Chunk, options: dict[str, Any]) -> Block | None:
    """A clean chunk's records in one csv.reader call; None when it needs the slow path
    (csv found something to object to: a stray carriage return, a huge field)."""
    lines = chunk.clean or []
    try:
        rows = list(csv.reader(lines, **options))
    except csv.Error:
        return None
    if len(rows) != len(lines):
        return None
    numbers = range(chunk.line, chunk.line + len(rows))
    if [] in rows or [""] in rows:  # blank lines: no record
        keep = [i for i, fields in enumerate(rows) if len(fields) > 1 or (fields and fields[0])]
        return Block([numbers[i] for i in keep], [rows[i] for i in keep])
    return Block(numbers, rows)


class _Feed:
    """The lines csv.reader parses on the slow path, remembering those of the current
    record so a broken record can be re-read from its second line. When its lines run
    out inside a record, it takes the next chunk itself."""

    def __init__(self, chunks: Iterator[_Chunk], seen: Callable[[_Chunk], None]) -> None:
        self._chunks = chunks
        self._seen = seen
        self._again: deque[_Line] = deque()
        self._record: list[tuple[int, str]] = []
        self._next_line = 1
        self.last_line = 0

    @property
    def pending(self) -> bool:
        return bool(self._again)

    def add(self, chunk: _Chunk) -> None:
        self._again.extend(chunk.slow_lines())

    def begin(self) -> None:
        self._record = []

    @property
    def first_line(self) -> int:
        return self._record[0][0] if self._record else self._next_line

    def __iter__(self) -> _Feed:
        return self

    def __next__(self) -> str:
        while not self._again:
            chunk = next(self._chunks)  # StopIteration at the end of the file
            self._seen(chunk)
            self.add(chunk)
        line, text, problem = self._again.popleft()
        if text is None:
            self._next_line = line + 1
            raise _BadLine(line, problem or "unreadable")
        self._record.append((line, text))
        self.last_line = line
        self._next_line = line + 1
        return text

    def retry_after_first(self, include_first: bool = False) -> None:
        """Read the lines of the broken record again, but its first (or all of them when
        the break was a bad line after them)."""
        again = self._record if include_first else self._record[1:]
        self._again.extendleft(reversed([(n, t, None) for n, t in again]))
        self._record = []


def preview_records(reader: RecordReader, rows: int) -> list[Record]:
    """The first `rows` records of a file as parsed (for the import dialog's table);
    reads only the first block or two. DatasetError naming the line of a bad one
    (unless the reader skips bad lines)."""
    out: list[Record] = []
    blocks = reader.blocks()
    try:
        for block in blocks:
            out.extend(block[: rows - len(out)].records())
            if len(out) >= rows:
                break
    finally:
        blocks.close()  # type: ignore[attr-defined]  (a generator: closes the file)
    return out
