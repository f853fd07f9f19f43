"""Bring your own data: text pairs and CSV time series -> dataset files of the format.

    import_text(source, out, TextOptions(...))      -> TextImportSummary
    import_series(source, out, SeriesOptions(...))  -> SeriesImportSummary
    scan_text / scan_series                          the same numbers from a quick scan
    looks_like_overlapping_windows(dataset)          the warning `inspect` gives
    read_time_split(path)                            the boundaries an import recorded

Both importers stream (memory does not grow with the file), write atomically (a
failed import leaves no file) and name the line and column of what is wrong.
"""

from workbench.importers.boundaries import TimeSplit, read_time_split
from workbench.importers.common import ImportCancelled
from workbench.importers.overlap import looks_like_overlapping_windows
from workbench.importers.series import (
    SeriesImportSummary,
    SeriesOptions,
    import_series,
    scan_series,
)
from workbench.importers.text import TextImportSummary, TextOptions, import_text, scan_text

__all__ = [
    "ImportCancelled",
    "SeriesImportSummary",
    "SeriesOptions",
    "TextImportSummary",
    "TextOptions",
    "TimeSplit",
    "import_series",
    "import_text",
    "looks_like_overlapping_windows",
    "read_time_split",
    "scan_series",
    "scan_text",
]
