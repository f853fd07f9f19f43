"""What a file that is not HDF5 seems to be, from its first bytes: one friendly line.

Opening a CSV, a PNG or an empty file as a dataset used to say h5py's "Unable to
synchronously open file (file signature not found)". `not_hdf5_message` looks at the
HDF5 signature (at offset 0, or after a user block at 512, 1024, 2048, … bytes) and,
when it is missing, names the file and what it looks like: an empty file, a PNG or
JPEG image, a ZIP archive, a PDF, a gzip file, a NumPy array, JSON, CSV or other text.
Standard library only; it reads at most a few kilobytes.
"""

from __future__ import annotations

import json
from pathlib import Path

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
SNIFF_BYTES = 4096
IMPORT_HINT = ("Use File ▸ Import… (or `python main.py import-series` / `import-text`) to make "
               "a dataset from it.")

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"PK\x03\x04", "a ZIP archive (or a file built on one: .npz, .xlsx, .docx)"),
    (b"PK\x05\x06", "an empty ZIP archive"),
    (b"%PDF", "a PDF document"),
    (b"\x1f\x8b", "a gzip-compressed file"),
    (b"\x93NUMPY", "a NumPy array file (.npy)"),
    (b"CDF\x01", "a netCDF-3 file"),
    (b"CDF\x02", "a netCDF-3 file"),
    (b"\x80\x02", "a Python pickle"),
    (b"\x80\x04", "a Python pickle"),
    (b"\x80\x05", "a Python pickle"),
)


def has_hdf5_signature(path: str | Path) -> bool:
    """Whether the file holds the HDF5 signature where the format puts it."""
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        offset = 0
        while offset + len(HDF5_SIGNATURE) <= size:
            handle.seek(offset)
            if handle.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
                return True
            offset = 512 if offset == 0 else offset * 2
    return False


def describe(head: bytes) -> str:
    """What a file beginning with `head` looks like, as "a PNG image", "CSV text", …"""
    for magic, words in _MAGIC:
        if head.startswith(magic):
            return words
    text = _as_text(head)
    if text is None:
        return "binary data of an unknown kind"
    stripped = text.lstrip("\ufeff \t\r\n")
    if stripped[:1] in ("{", "["):
        try:
            json.loads(stripped)
            return "JSON text"
        except ValueError:
            if stripped[:1] == "{" or '"' in stripped[:200]:
                return "JSON text"
    lines = [line for line in stripped.splitlines()[:20] if line.strip()]
    if lines and any(sep in lines[0] for sep in (",", ";", "\t")) and len(lines) >= 1:
        return "CSV text"
    if stripped.startswith(("<?xml", "<html", "<!DOCTYPE", "<HTML")):
        return "XML or HTML text"
    return "plain text"


def _as_text(head: bytes) -> str | None:
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return head.decode("utf-16")
        except UnicodeDecodeError:
            return None
    if b"\x00" in head:
        return None
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 4:  # a character cut by the sniff's end
            return head[:exc.start].decode("utf-8")
        try:
            text = head.decode("latin-1")
        except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes everything
            return None
        printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
        return text if printable >= 0.95 * len(text) else None


def not_hdf5_message(path: str | Path, file: str | None = None) -> str | None:
    """None for a file with the HDF5 signature; else one line naming the file (`file`,
    as the user gave it, default the path) and what it seems to be. OSError as opening
    the file raises it."""
    path = Path(path)
    name = file if file is not None else str(path)
    size = path.stat().st_size
    if size == 0:
        return f"{name} is empty (0 bytes): it is not an HDF5 file"
    if has_hdf5_signature(path):
        return None
    with open(path, "rb") as handle:
        head = handle.read(SNIFF_BYTES)
    kind = describe(head)
    message = f"{name} is not an HDF5 file: it looks like {kind}."
    if kind in ("CSV text", "plain text"):
        message += f" {IMPORT_HINT}"
    elif kind == "binary data of an unknown kind":
        message = (f"{name} is not an HDF5 file: its first bytes are not the HDF5 signature "
                   f"(the file is another kind, or damaged).")
    return message
