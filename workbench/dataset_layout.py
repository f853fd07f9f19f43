"""The structure of a sequence file: which arrays the dataset uses, what shape and type.

`resolve_layout` finds and checks every array of a file as the format says
(docs/dataset-format.md), or as explicit array paths say, and reads no data array,
only lengths and vocabularies; `walk_arrays` lists every array; `probe_array` touches
an array's first and last samples. Every failure is a DatasetError naming the file,
the array path, what was expected and what was found.

Its own module, importing only numpy and h5py, because two callers need it in one
direction each: workbench.datasets (the reader, in the app) and workbench.safe_open
(the child process that checks a file first, which must start fast and must not
import the reader that calls it).
"""

from __future__ import annotations

import contextlib
import os
import posixpath
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import h5py
import numpy as np

from workbench.errors import ConfigError, DatasetError

FORMAT_ATTR = "sequence_workbench_format"  # root attribute: the format version (int)
FORMAT_VERSION = 1
CONTINUOUS = "continuous"
TOKENS = "tokens"
PAD_ID, START_ID, END_ID = 0, 1, 2
RESERVED_TOKENS = ("<pad>", "<s>", "</s>")
SPLIT_NAMES = ("train", "val", "test")
STORED_ALL = "all"  # the name of the stored data when the file has no split groups
PROBE_FULL_READ_BYTES = 16 * 2**20  # the child reads arrays this small in full
_LENGTH_READ_ROWS = 2**20


@dataclass(frozen=True)
class ArrayInfo:
    """One array of a file, for the GUI's file browser and `inspect --arrays`.

    A file can name one array twice (a soft or hard link, e.g. /inputs -> /data/x):
    each name is listed, and `same_as` of every other name is the array's first name
    (its first hard link by path), so that nothing proposes one array for both sides.
    """

    path: str
    shape: tuple[int, ...]
    dtype: str
    same_as: str = field(default="", compare=False)

    @property
    def array(self) -> str:
        """The array this name leads to (its first name in the file)."""
        return self.same_as or self.path


# --- errors -----------------------------------------------------------------------------


def _fail(file: str, path: str | None, expected: str, found: str) -> DatasetError:
    where = f"{file}: {path}" if path else file
    return DatasetError(f"{where}: expected {expected}, found {found}")


@contextlib.contextmanager
def h5_errors(file: str, path: str | None, action: str) -> Iterator[None]:
    """Turn what h5py raises on a damaged file into a DatasetError naming the place."""
    try:
        yield
    except DatasetError:
        raise
    except (OSError, RuntimeError, ValueError, KeyError, TypeError, IndexError) as exc:
        where = f"{file}: {path}" if path else file
        detail = str(exc).strip() or type(exc).__name__
        raise DatasetError(f"{where}: could not {action}: {detail}") from exc


def describe_dtype(dtype: np.dtype) -> str:
    """A short name for a stored dtype, as a user would say it."""
    if h5py.check_string_dtype(dtype) is not None or dtype.kind in "SU":
        return "strings"
    if dtype.names:
        return "a compound type (" + ", ".join(dtype.names) + ")"
    if dtype.kind == "c":
        return f"complex numbers ({dtype})"
    if h5py.check_vlen_dtype(dtype) is not None:
        return f"variable-length arrays of {h5py.check_vlen_dtype(dtype)}"
    if h5py.check_enum_dtype(dtype) is not None:
        return f"an enum type ({dtype})"
    if dtype.kind == "O":
        return "objects (references or variable-length data)"
    if dtype.kind == "V":
        return f"opaque data ({dtype})"
    if dtype.kind == "b":
        return "booleans"
    return str(dtype)


# --- structure: which arrays, what shape ------------------------------------------------


@dataclass
class StoredSide:
    """One side of one stored group: the array, its lengths (read and checked)."""

    path: str
    dataset: h5py.Dataset
    kind: str
    steps: int
    features: int | None
    lengths: np.ndarray | None  # int64 (N,), 1..steps; None: every sequence is full length
    lengths_path: str | None
    vocab: tuple[str, ...] | None = None
    vocab_path: str | None = None
    ids: tuple[int, int, int] | None = None  # pad, start, end

    @property
    def variable(self) -> bool:
        return self.lengths is not None and int(self.lengths.min()) < self.steps

    @property
    def stored_row_bytes(self) -> int:
        return int(np.prod(self.dataset.shape[1:])) * self.dataset.dtype.itemsize

    @property
    def served_row_bytes(self) -> int:
        itemsize = 4 if self.kind == CONTINUOUS else 8
        return int(np.prod(self.dataset.shape[1:])) * itemsize


@dataclass
class StoredGroup:
    """The inputs and targets stored together: a split group, or the whole file."""

    name: str  # "all" | "train" | "val" | "test"
    n: int
    x: StoredSide
    y: StoredSide


@dataclass
class Layout:
    groups: dict[str, StoredGroup]
    version: int | None
    task: str | None
    description: str


def _attr_str(obj: Any, name: str) -> str | None:
    value = obj.attrs.get(name)
    if value is None:
        return None
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(()).item()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _format_version(f: h5py.File, file: str) -> int | None:
    with h5_errors(file, "/", f"read the attribute {FORMAT_ATTR!r}"):
        raw = f.attrs.get(FORMAT_ATTR)
    if raw is None:
        return None
    try:
        version = int(np.asarray(raw).reshape(()).item())
    except (TypeError, ValueError) as exc:
        raise _fail(file, "/", f"an integer attribute {FORMAT_ATTR!r}", f"{raw!r}") from exc
    if not 1 <= version <= FORMAT_VERSION:
        raise DatasetError(
            f"{file}: /: the file declares format version {version} ({FORMAT_ATTR!r}); this "
            f"version of Sequence Workbench reads versions 1 to {FORMAT_VERSION}"
        )
    return version


def _absolute(path: str) -> str:
    return "/" + path.strip("/")


def _stored_groups(
    f: h5py.File, file: str, inputs: str | None, targets: str | None, declared: bool
) -> dict[str, tuple[str, str]]:
    """Name of each stored group -> (inputs path, targets path)."""
    if inputs or targets:
        if not (inputs and targets):
            raise ConfigError(
                f"{file}: give both the inputs and the targets array path, or neither "
                f"(got inputs={inputs!r}, targets={targets!r})"
            )
        return {STORED_ALL: (_absolute(inputs), _absolute(targets))}
    with h5_errors(file, "/", "list the root group"):
        names = [s for s in SPLIT_NAMES if isinstance(f.get(s), h5py.Group)]
        has_root = "inputs" in f or "targets" in f
    if names:
        if "train" not in names:
            present = ", ".join("/" + s for s in names)
            raise _fail(file, "/train", f"a /train group beside {present}", "none")
        return {s: (f"/{s}/inputs", f"/{s}/targets") for s in names}
    if has_root or declared:
        return {STORED_ALL: ("/inputs", "/targets")}
    listing = ", ".join(f"{a.path} {a.shape} {a.dtype}" for a in walk_arrays(f, file)[:8])
    raise DatasetError(
        f"{file}: not a Sequence Workbench dataset (no /inputs and /targets arrays, no "
        f"train/val/test groups); give the paths of the input and target arrays "
        f"explicitly (--inputs PATH --targets PATH). Arrays in the file: {listing or 'none'}"
    )


def names_default_arrays(paths: Iterable[str]) -> bool:
    """Whether array paths (walk_arrays) include the format's /inputs and /targets, at
    the root or in a split group: the reader then finds them without being told."""
    found = set(paths)
    return any(f"{p}/inputs" in found and f"{p}/targets" in found
               for p in ("", *(f"/{s}" for s in SPLIT_NAMES)))


def _dangling_link(f: h5py.File, path: str) -> str | None:
    """What a link at `path` that leads nowhere points at ("an external link to
    FILE:/x, and FILE does not exist"), or None when there is no such link."""
    try:
        link = f.get(path, getlink=True)
    except (KeyError, OSError, RuntimeError, ValueError, TypeError):
        return None
    if isinstance(link, h5py.ExternalLink):
        beside = os.path.join(os.path.dirname(f.filename), link.filename)
        if not os.path.exists(beside) and not os.path.exists(link.filename):
            return (f"an external link to {link.filename}:{link.path}, and the file "
                    f"{link.filename} does not exist")
        return (f"an external link to {link.filename}:{link.path} that leads nowhere (nothing "
                f"at {link.path} in {link.filename}, or that file cannot be opened)")
    if isinstance(link, h5py.SoftLink):
        return f"a link to {link.path}, where there is nothing"
    return None


def _get_dataset(f: h5py.File, file: str, path: str, what: str) -> h5py.Dataset:
    with h5_errors(file, path, f"open the {what} array"):
        obj = f.get(path)
    if obj is None:
        dangling = _dangling_link(f, path)
        raise _fail(file, path, f"the {what} array", dangling or "nothing at that path")
    if not isinstance(obj, h5py.Dataset):
        raise _fail(file, path, f"the {what} array", "a group, not an array")
    return obj


def _side_kind(file: str, path: str, dtype: np.dtype, shape: tuple[int, ...] | None) -> str:
    """continuous (floats (N, T, F), or integers (N, T, F)) or tokens (integers (N, T))."""
    if dtype.kind not in "fiu" or dtype.names or h5py.check_enum_dtype(dtype) is not None:
        raise _fail(
            file,
            path,
            "floats (continuous values) or integers (token ids)",
            describe_dtype(dtype),
        )
    if shape is None:
        raise _fail(file, path, "an array of samples", "an empty dataspace")
    rank = len(shape)
    if dtype.kind == "f":
        if rank != 3:
            hint = " (one feature needs shape (N, T, 1))" if rank == 2 else ""
            raise _fail(
                file,
                path,
                "3 dimensions (N, T, F) of continuous values" + hint,
                f"{rank} dimension(s), shape {shape}",
            )
        return CONTINUOUS
    if rank == 2:
        return TOKENS
    if rank == 3:
        return CONTINUOUS
    raise _fail(
        file,
        path,
        "2 dimensions (N, T) of token ids or 3 dimensions (N, T, F) of values",
        f"{rank} dimension(s), shape {shape}",
    )


def _resolve_side(f: h5py.File, file: str, path: str, what: str) -> StoredSide:
    ds = _get_dataset(f, file, path, what)
    with h5_errors(file, path, "read the array's type and shape"):
        dtype, shape = ds.dtype, ds.shape
    kind = _side_kind(file, path, dtype, shape)
    if 0 in shape:
        raise _fail(
            file, path, "at least one sample, one step and one feature", f"shape {shape}"
        )
    n, steps = int(shape[0]), int(shape[1])
    features = int(shape[2]) if kind == CONTINUOUS else None
    lengths_path = _lengths_path(f, file, ds, path, what)
    lengths = _read_lengths(f, file, lengths_path, n, steps) if lengths_path else None
    side = StoredSide(path, ds, kind, steps, features, lengths, lengths_path)
    if kind == TOKENS:
        side.vocab, side.vocab_path, side.ids = _resolve_vocab(f, file, ds, path, what)
    return side


def _sibling(path: str, name: str) -> str:
    return posixpath.normpath(posixpath.join(posixpath.dirname(path), name))


def _lengths_path(f: h5py.File, file: str, ds: h5py.Dataset, path: str, what: str) -> str | None:
    """The lengths array of `path`: its `lengths` attribute, else the conventional sibling."""
    with h5_errors(file, path, "read the array's attributes"):
        named = _attr_str(ds, "lengths")
    if named:
        target = _sibling(path, named)
        with h5_errors(file, target, "open the lengths array"):
            present = target in f
        if not present:
            raise _fail(
                file, target, f"the lengths array named by the 'lengths' attribute of {path}",
                "nothing at that path",
            )
        return target
    base = posixpath.basename(path)
    name = {"inputs": "input_lengths", "targets": "target_lengths"}.get(base, base + "_lengths")
    candidate = _sibling(path, name)
    with h5_errors(file, candidate, "open the lengths array"):
        return candidate if candidate in f else None


def _read_lengths(f: h5py.File, file: str, path: str, n: int, steps: int) -> np.ndarray:
    ds = _get_dataset(f, file, path, "lengths")
    with h5_errors(file, path, "read the array's type and shape"):
        dtype, shape = ds.dtype, ds.shape
    if dtype.kind not in "iu" or dtype.names:
        raise _fail(file, path, "integer lengths", describe_dtype(dtype))
    if shape != (n,):
        raise _fail(file, path, f"shape ({n},), one length per sample", f"shape {shape}")
    out = np.empty(n, dtype=np.int64)
    for lo in range(0, n, _LENGTH_READ_ROWS):
        hi = min(n, lo + _LENGTH_READ_ROWS)
        with h5_errors(file, path, f"read lengths {lo}..{hi - 1}"):
            chunk = ds[lo:hi]
        bad = np.flatnonzero((chunk < 1) | (chunk > steps))
        if bad.size:
            i = int(bad[0])
            raise _fail(
                file,
                path,
                f"lengths between 1 and {steps} (the padded length T)",
                f"{chunk[i]} for sample {lo + i}",
            )
        out[lo:hi] = chunk
    return out


def _resolve_vocab(
    f: h5py.File, file: str, ds: h5py.Dataset, path: str, what: str
) -> tuple[tuple[str, ...], str, tuple[int, int, int]]:
    with h5_errors(file, path, "read the array's attributes"):
        named = _attr_str(ds, "vocab")
    side_default = "/input_vocab" if what == "inputs" else "/target_vocab"
    candidates = [_sibling(path, named)] if named else [side_default, "/vocab"]
    found = None
    for candidate in candidates:
        with h5_errors(file, candidate, "open the vocabulary"):
            if candidate in f:
                found = candidate
                break
    if found is None:
        raise _fail(
            file,
            path,
            "a vocabulary for these integer token ids, an array of strings at "
            + " or ".join(candidates),
            "none",
        )
    vds = _get_dataset(f, file, found, "vocabulary")
    with h5_errors(file, found, "read the vocabulary"):
        dtype, shape = vds.dtype, vds.shape
        if describe_dtype(dtype) != "strings" or shape is None or len(shape) != 1:
            raise _fail(file, found, "a 1-d array of strings (the vocabulary)",
                        f"{describe_dtype(dtype)} of shape {shape}")
        raw = vds[()]
        attrs = [vds.attrs.get(name, default) for name, default in
                 (("pad_id", PAD_ID), ("start_id", START_ID), ("end_id", END_ID))]
    vocab = tuple(v.decode("utf-8", errors="replace") if isinstance(v, bytes) else str(v)
                  for v in raw.tolist())
    if len(vocab) < 3:
        raise _fail(file, found, "a vocabulary of at least 3 entries (pad, start, end)",
                    f"{len(vocab)} entries")
    try:
        ids = tuple(int(np.asarray(a).reshape(()).item()) for a in attrs)
    except (TypeError, ValueError) as exc:
        raise _fail(file, found, "integer pad_id, start_id and end_id attributes",
                    repr(attrs)) from exc
    if len(set(ids)) != 3 or not all(0 <= i < len(vocab) for i in ids):
        raise _fail(file, found, f"distinct pad, start and end ids below {len(vocab)}",
                    f"pad_id={ids[0]}, start_id={ids[1]}, end_id={ids[2]}")
    return vocab, found, (ids[0], ids[1], ids[2])


def _check_same(file: str, first: StoredSide, other: StoredSide) -> None:
    """Every stored group must hold the same kind and shape of data, apart from N."""
    mine = (other.kind, other.steps, other.features)
    theirs = (first.kind, first.steps, first.features)
    if mine != theirs:
        raise _fail(
            file,
            other.path,
            f"the same kind and shape as {first.path} ({first.kind}, "
            f"shape {first.dataset.shape[1:]} per sample)",
            f"{other.kind}, shape {other.dataset.shape[1:]} per sample",
        )
    if other.vocab != first.vocab or other.ids != first.ids:
        raise _fail(file, other.path, f"the vocabulary of {first.path} ({first.vocab_path})",
                    f"a different one ({other.vocab_path})")


def resolve_layout(
    f: h5py.File, file: str, inputs: str | None = None, targets: str | None = None
) -> Layout:
    """Find and check every array the dataset uses; read no data array, only lengths
    and vocabularies. Raises DatasetError naming the file, path, expected and found."""
    version = _format_version(f, file)
    stored = _stored_groups(f, file, inputs, targets, declared=version is not None)
    groups: dict[str, StoredGroup] = {}
    for name, (x_path, y_path) in stored.items():
        x = _resolve_side(f, file, x_path, "inputs")
        y = _resolve_side(f, file, y_path, "targets")
        nx, ny = x.dataset.shape[0], y.dataset.shape[0]
        if nx != ny:
            raise _fail(file, y_path, f"{nx} samples, as many as {x_path}", f"{ny} samples")
        groups[name] = StoredGroup(name, int(nx), x, y)
    first = next(iter(groups.values()))
    for group in groups.values():
        _check_same(file, first.x, group.x)
        _check_same(file, first.y, group.y)
    with h5_errors(file, "/", "read the root attributes"):
        task = _attr_str(f, "task")
        description = _attr_str(f, "description") or ""
    return Layout(groups, version, task, description)


def _resolves_inside(f: h5py.File, path: str, depth: int = 0) -> bool:
    """Whether `path` leads to an object of this file without crossing an external
    link (which would open another file, unchecked, in this process)."""
    if depth > 16:
        return False
    parts = [p for p in path.split("/") if p]
    for i in range(1, len(parts) + 1):
        prefix = "/" + "/".join(parts[:i])
        try:
            link = f.get(prefix, getlink=True)
        except (KeyError, OSError, RuntimeError, ValueError, TypeError):
            return False
        if link is None or isinstance(link, h5py.ExternalLink):
            return False
        if isinstance(link, h5py.SoftLink):
            target = link.path if link.path.startswith("/") else posixpath.join(
                posixpath.dirname(prefix), link.path)
            rest = "/".join(parts[i:])
            return _resolves_inside(f, posixpath.join(target, rest) if rest else target,
                                    depth + 1)
    return True


def walk_arrays(f: h5py.File, file: str) -> list[ArrayInfo]:
    """Every dataset in an open file with its path, shape and dtype, sorted by path.

    Names that links give an array are listed too (`ArrayInfo.same_as` names the array
    they lead to), so that a layout made of links (/inputs -> /data/x) reads as it is;
    an external link (into another file) is not followed.
    """
    found: list[tuple[ArrayInfo, int, bool]] = []  # info, object address, via a soft link

    def visit(name: str, link: Any) -> None:
        if isinstance(link, h5py.ExternalLink):
            return
        if isinstance(link, h5py.SoftLink) and not _resolves_inside(f, "/" + name):
            return
        obj = f.get(name)  # follows a soft link; None when it leads nowhere
        if isinstance(obj, h5py.Dataset):
            shape = tuple(int(s) for s in obj.shape) if obj.shape is not None else ()
            dtype = obj.dtype
            text = "string" if describe_dtype(dtype) == "strings" else (
                str(dtype) if dtype.kind in "fiub" and not dtype.names else describe_dtype(dtype)
            )
            found.append((ArrayInfo("/" + name, shape, text), h5py.h5o.get_info(obj.id).addr,
                          isinstance(link, h5py.SoftLink)))

    with h5_errors(file, "/", "list the arrays in the file"):
        if hasattr(f, "visititems_links"):  # h5py >= 3.11
            f.visititems_links(visit)
        else:  # each array once, under one of its names (no soft links)
            f.visititems(lambda name, obj: visit(name, h5py.HardLink()))
    first: dict[int, str] = {}  # object address -> its first name: a hard link's, by path
    for info, address, _soft in sorted(found, key=lambda item: (item[2], item[0].path)):
        first.setdefault(address, info.path)
    out = [info if first[address] == info.path else replace(info, same_as=first[address])
           for info, address, _soft in found]
    return sorted(out, key=lambda a: a.path)


def probe_array(ds: h5py.Dataset, full_read_bytes: int = PROBE_FULL_READ_BYTES) -> None:
    """Read the first and the last sample of an array (all of it when it is small), in
    the safe-open child process: the chunks and chunk index a hostile file may have
    broken are touched there once, not first in the app."""
    n = ds.shape[0] if ds.shape else 0
    if not n:
        return
    row_bytes = max(1, ds.dtype.itemsize * int(np.prod(ds.shape[1:])))
    if n * row_bytes <= full_read_bytes:  # the size in memory, not the (compressed) storage
        step = max(1, full_read_bytes // 8 // row_bytes)
        for lo in range(0, n, step):
            ds[lo : lo + step]
        return
    ds[0:1]
    ds[n - 1 : n]
