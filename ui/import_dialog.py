"""File ▸ Import…: text pairs or a CSV of time series into a dataset file, seen first.

One dialog for both importers of workbench.importers, a tab each. Picking a file
shows its first rows as the importer parses them (a table, so a wrong delimiter
or encoding is seen at once), fills the column pickers from them, and runs a quick
scan of the first rows with the options as set: the shapes, split sizes,
vocabulary sizes and what would be dropped. **Import** then runs the real import
with a progress bar; the dialog closes with the written file in `written_path`
(and its summary in `summary`). An error names its line and column: a scan's in
the dialog itself, an import's in a message box (ui.errors.show_message).

Background work goes through ui.jobs (plain threads, events drained by a GUI-thread
timer): the scan and the import are cancellable jobs; cancel is a flag the importer
checks between blocks of rows; a cancelled or failed import leaves no file.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ui import errors
from ui.jobs import JobFailure, JobSession, Sink
from ui.task_dialog import datasets_dir
from workbench.errors import WorkbenchError
from workbench.importers import (
    ImportCancelled,
    SeriesImportSummary,
    SeriesOptions,
    TextImportSummary,
    TextOptions,
    import_series,
    import_text,
    scan_series,
    scan_text,
)
from workbench.importers.records import (
    RecordReader,
    default_delimiter,
    parse_delimiter,
    preview_records,
)
from workbench.importers.series import MISSING_POLICIES
from workbench.importers.text import SINGLE_MODES

__all__ = ["ImportDialog", "import_dataset"]

PREVIEW_ROWS = 20
SCAN_DELAY_MS = 300  # options settle this long before a scan starts
PROGRESS_EVERY_S = 0.05
TEXT_FILTER = "Text pairs (*.tsv *.csv *.txt *.tab);;All files (*)"
SERIES_FILTER = "CSV files (*.csv *.txt);;All files (*)"
NO_COLUMN = "(none)"
MISSING_LABELS = {"refuse": "refuse them", "interpolate": "fill them linearly",
                  "drop-windows": "drop the windows holding one"}
DELIMITERS = (("as the file name says (comma for .csv, tab otherwise)", None), ("tab", "tab"),
              ("comma", "comma"), ("semicolon", "semicolon"), ("pipe", "pipe"))
ENCODINGS = (("UTF-8 (with or without a BOM)", None), ("Latin-1", "latin-1"),
             ("Windows-1252", "cp1252"), ("UTF-16", "utf-16"))


# --- background work ----------------------------------------------------------------------

CANCELLED = "cancelled"  # what an import or scan job returns when it was stopped


def _throttled(sink: Sink) -> Callable[[float, str], None]:
    """A progress callback for the importers that sends at most a few events a second."""
    last = [0.0]

    def report(fraction: float, message: str) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY_S or fraction >= 1.0:
            last[0] = now
            sink.on_event((float(fraction), str(message)))

    return report


# --- the pages ------------------------------------------------------------------------------


def _combo(parent: QWidget, items: tuple[tuple[str, Any], ...]) -> QComboBox:
    box = QComboBox(parent)
    for label, data in items:
        box.addItem(label, data)
    return box


def _fraction_box(parent: QWidget, value: float) -> QDoubleSpinBox:
    box = QDoubleSpinBox(parent)
    box.setRange(0.0, 0.9)
    box.setDecimals(2)
    box.setSingleStep(0.05)
    box.setValue(value)
    return box


def _spin(parent: QWidget, low: int, high: int, value: int, special: str | None = None
          ) -> QSpinBox:
    box = QSpinBox(parent)
    box.setRange(low, high)
    box.setValue(value)
    if special:
        box.setSpecialValueText(special)
    return box


class _Page(QWidget):
    """What both tabs share: the file, how to read it, the preview table."""

    kind = ""
    file_filter = ""

    def __init__(self, changed: Callable[[], None], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._changed = changed
        self.header: list[str] = []
        self.rows: list[list[str]] = []
        self.preview_error: str | None = None
        layout = QVBoxLayout(self)
        file_row = QHBoxLayout()
        self.path_edit = QLineEdit(self)
        self.path_edit.setPlaceholderText("the file to import")
        self.path_edit.editingFinished.connect(self.reload)
        browse = QPushButton("Browse…", self)
        browse.clicked.connect(self._on_browse)
        file_row.addWidget(QLabel("File", self))
        file_row.addWidget(self.path_edit, 1)
        file_row.addWidget(browse)
        layout.addLayout(file_row)
        reading = QHBoxLayout()
        self.delimiter = _combo(self, DELIMITERS)
        self.encoding = _combo(self, ENCODINGS)
        reading.addWidget(QLabel("Delimiter", self))
        reading.addWidget(self.delimiter)
        reading.addWidget(QLabel("Encoding", self))
        reading.addWidget(self.encoding)
        self._reading_row = reading
        layout.addLayout(reading)
        self.table = QTableWidget(self)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setMinimumHeight(150)
        layout.addWidget(QLabel(f"The first {PREVIEW_ROWS} rows, as they will be read:", self))
        layout.addWidget(self.table, 1)
        self.columns_box = QGroupBox("Columns and options", self)
        self.form = QFormLayout(self.columns_box)
        layout.addWidget(self.columns_box)
        for box in (self.delimiter, self.encoding):
            box.currentIndexChanged.connect(self.reload)

    # the file
    def source(self) -> Path | None:
        text = self.path_edit.text().strip()
        return Path(text).expanduser() if text else None

    def set_file(self, path: str | Path) -> None:
        self.path_edit.setText(str(path))
        self.reload()

    def _on_browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import which file?", self.path_edit.text(),
                                              self.file_filter)
        if path:
            self.set_file(path)

    def reader(self) -> RecordReader:
        source = self.source()
        assert source is not None
        delimiter = parse_delimiter(self.delimiter.currentData()) or self.default_delimiter(source)
        return RecordReader(source, delimiter=delimiter, encoding=self.encoding.currentData(),
                            quoting=self.quoting())

    def default_delimiter(self, source: Path) -> str:
        return default_delimiter(source)

    def quoting(self) -> bool:
        return True

    def reload(self, *_args: Any) -> None:
        """Read the first rows again (the file or how to read it changed)."""
        self.header, self.rows, self.preview_error = [], [], None
        source = self.source()
        if source is not None:
            try:
                if not source.is_file():
                    raise WorkbenchError(f"{source}: no such file")
                records = preview_records(self.reader(), PREVIEW_ROWS + 1)
                self.header, self.rows = self.split_header([r.fields for r in records])
            except WorkbenchError as exc:
                self.preview_error = str(exc)
        self._fill_table()
        self.fill_columns()
        self._changed()

    def split_header(self, rows: list[list[str]]) -> tuple[list[str], list[list[str]]]:
        width = max((len(r) for r in rows), default=0)
        return [str(i) for i in range(width)], rows[:PREVIEW_ROWS]

    def _fill_table(self) -> None:
        self.table.clear()
        self.table.setColumnCount(len(self.header))
        self.table.setRowCount(len(self.rows))
        self.table.setHorizontalHeaderLabels(self.header)
        for i, row in enumerate(self.rows):
            for j, cell in enumerate(row):
                item = QTableWidgetItem(cell if len(cell) <= 80 else cell[:79] + "…")
                item.setToolTip(cell[:2000])
                self.table.setItem(i, j, item)
        self.table.resizeColumnsToContents()

    def changed(self, *_args: Any) -> None:
        self._changed()

    # per kind
    def fill_columns(self) -> None:
        raise NotImplementedError

    def options(self) -> Any:
        raise NotImplementedError


class TextPage(_Page):
    """import-text: the source and target columns, tokens, lengths, splits."""

    kind = "text"
    file_filter = TEXT_FILTER

    def __init__(self, changed: Callable[[], None], parent: QWidget | None = None) -> None:
        super().__init__(changed, parent)
        self.quotes = QCheckBox("Quoted fields (as in CSV)", self)
        self.quotes.setChecked(True)
        self.has_header = QCheckBox("First row names the columns", self)
        self.skip_bad = QCheckBox("Skip malformed lines", self)
        for box in (self.quotes, self.has_header):
            self._reading_row.addWidget(box)
            box.toggled.connect(self.reload)
        self._reading_row.addWidget(self.skip_bad)
        self.skip_bad.toggled.connect(self.changed)
        self.source_col = QComboBox(self)
        self.target_col = QComboBox(self)
        self.single = _combo(self, tuple((m, m) for m in SINGLE_MODES))
        self.level = _combo(self, (("words", "word"), ("characters", "char")))
        self.lowercase = QCheckBox("lower-case all text", self)
        self.max_length = _spin(self, 0, 100_000, 0, "no limit")
        self.min_count = _spin(self, 1, 1_000_000, 1)
        self.val_fraction = _fraction_box(self, 0.1)
        self.test_fraction = _fraction_box(self, 0.1)
        self.seed = _spin(self, 0, 2**31 - 1, 0)
        self.form.addRow("Source column", self.source_col)
        self.form.addRow("Target column", self.target_col)
        self.form.addRow("One column: target is", self.single)
        self.form.addRow("A token per", self.level)
        self.form.addRow("", self.lowercase)
        self.form.addRow("Longest text (tokens)", self.max_length)
        self.form.addRow("Rarest training token", self.min_count)
        self.form.addRow("Validation fraction", self.val_fraction)
        self.form.addRow("Test fraction", self.test_fraction)
        self.form.addRow("Split seed", self.seed)
        for box in (self.source_col, self.target_col, self.single, self.level):
            box.currentIndexChanged.connect(self.changed)
        self.lowercase.toggled.connect(self.changed)
        for spin in (self.max_length, self.min_count, self.val_fraction, self.test_fraction,
                     self.seed):
            spin.valueChanged.connect(self.changed)
        self.fill_columns()

    def quoting(self) -> bool:
        return self.quotes.isChecked()

    def split_header(self, rows: list[list[str]]) -> tuple[list[str], list[list[str]]]:
        if self.has_header.isChecked() and rows:
            return [c.strip() for c in rows[0]], rows[1:PREVIEW_ROWS + 1]
        return super().split_header(rows)

    def fill_columns(self) -> None:
        named = self.has_header.isChecked()
        for box, default, extra in ((self.source_col, 0, False), (self.target_col, 1, True)):
            box.blockSignals(True)
            box.clear()
            if extra:
                box.addItem("(none: one text column)", None)
            for i, name in enumerate(self.header):
                box.addItem(name if named else f"column {i}", name if named else i)
            index = box.findData(default if not named else
                                 (self.header[default] if len(self.header) > default else None))
            box.setCurrentIndex(max(0, index))
            box.blockSignals(False)
        self.single.setEnabled(self.target_col.currentData() is None)

    def changed(self, *_args: Any) -> None:
        self.single.setEnabled(self.target_col.currentData() is None)
        super().changed()

    def options(self) -> TextOptions:
        target = self.target_col.currentData()
        source = self.source_col.currentData()
        return TextOptions(
            level=self.level.currentData(), source_col=0 if source is None else source,
            target_col=target, single=None if target is not None else self.single.currentData(),
            lowercase=self.lowercase.isChecked(),
            max_length=self.max_length.value() or None, min_count=self.min_count.value(),
            val_fraction=round(self.val_fraction.value(), 4),
            test_fraction=round(self.test_fraction.value(), 4), seed=self.seed.value(),
            encoding=self.encoding.currentData(), delimiter=self.delimiter.currentData(),
            quoting=self.quotes.isChecked(), header=self.has_header.isChecked(),
            skip_bad_lines=self.skip_bad.isChecked())


class SeriesPage(_Page):
    """import-series: the input, target, time and series columns, the windows."""

    kind = "series"
    file_filter = SERIES_FILTER

    def __init__(self, changed: Callable[[], None], parent: QWidget | None = None) -> None:
        super().__init__(changed, parent)
        self.delimiter.blockSignals(True)  # a CSV: comma unless told otherwise
        self.delimiter.removeItem(0)
        self.delimiter.setCurrentIndex(self.delimiter.findData("comma"))
        self.delimiter.blockSignals(False)
        self.inputs = QListWidget(self)
        self.targets = QListWidget(self)
        for box in (self.inputs, self.targets):
            box.setMaximumHeight(90)
            box.itemChanged.connect(self.changed)
        self.time_col = QComboBox(self)
        self.series_col = QComboBox(self)
        self.window = _spin(self, 1, 1_000_000, 24)
        self.horizon = _spin(self, 1, 1_000_000, 6)
        self.stride = _spin(self, 1, 1_000_000, 1)
        self.val_fraction = _fraction_box(self, 0.15)
        self.test_fraction = _fraction_box(self, 0.15)
        self.missing = _combo(self, tuple((MISSING_LABELS[m], m) for m in MISSING_POLICIES))
        columns = QHBoxLayout()
        for label, box in (("Inputs", self.inputs), ("Targets", self.targets)):
            column = QVBoxLayout()
            column.addWidget(QLabel(label, self))
            column.addWidget(box)
            columns.addLayout(column)
        self.form.addRow(columns)
        self.form.addRow("Time column", self.time_col)
        self.form.addRow("Series id column", self.series_col)
        self.form.addRow("Window (input steps)", self.window)
        self.form.addRow("Horizon (target steps)", self.horizon)
        self.form.addRow("Stride", self.stride)
        self.form.addRow("Validation fraction (before test)", self.val_fraction)
        self.form.addRow("Test fraction (the end)", self.test_fraction)
        self.form.addRow("Missing values", self.missing)
        for box in (self.time_col, self.series_col, self.missing):
            box.currentIndexChanged.connect(self.changed)
        for spin in (self.window, self.horizon, self.stride, self.val_fraction,
                     self.test_fraction):
            spin.valueChanged.connect(self.changed)
        self.fill_columns()

    def default_delimiter(self, source: Path) -> str:
        return ","

    def split_header(self, rows: list[list[str]]) -> tuple[list[str], list[list[str]]]:
        if not rows:
            return [], []
        names = [c.strip().lstrip("\ufeff") for c in rows[0]]
        return names, rows[1:PREVIEW_ROWS + 1]

    def _numeric(self) -> list[str]:
        def number(text: str) -> bool:
            try:
                float(text)
            except ValueError:
                return text.strip().lower() in ("", "nan", "na", "n/a", "null")
            return True

        return [name for j, name in enumerate(self.header)
                if self.rows and all(j < len(r) and number(r[j]) for r in self.rows)]

    def fill_columns(self) -> None:
        numeric = self._numeric()
        others = [n for n in self.header if n not in numeric]
        time_guess = next((n for n in self.header if n.lower() in
                           ("date", "time", "day", "timestamp", "datetime", "t", "month",
                            "year", "week")), others[0] if others else None)
        values = [n for n in numeric if n != time_guess]
        for box, checked in ((self.inputs, set(values)), (self.targets, set(values[:1]))):
            box.blockSignals(True)
            box.clear()
            for name in values:
                item = QListWidgetItem(name, box)
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(Qt.CheckState.Checked if name in checked
                                   else Qt.CheckState.Unchecked)
            box.blockSignals(False)
        for box, guess in ((self.time_col, time_guess), (self.series_col, None)):
            box.blockSignals(True)
            box.clear()
            box.addItem(NO_COLUMN, None)
            for name in self.header:
                box.addItem(name, name)
            box.setCurrentIndex(max(0, box.findData(guess)) if guess else 0)
            box.blockSignals(False)

    @staticmethod
    def _checked(box: QListWidget) -> tuple[str, ...]:
        return tuple(box.item(i).text() for i in range(box.count())
                     if box.item(i).checkState() == Qt.CheckState.Checked)

    def set_checked(self, box: QListWidget, names: list[str]) -> None:
        """Tick exactly `names` in an input or target list."""
        for i in range(box.count()):
            item = box.item(i)
            item.setCheckState(Qt.CheckState.Checked if item.text() in names
                               else Qt.CheckState.Unchecked)

    def options(self) -> SeriesOptions:
        return SeriesOptions(
            input_cols=self._checked(self.inputs), target_cols=self._checked(self.targets),
            window=self.window.value(), horizon=self.horizon.value(), stride=self.stride.value(),
            time_col=self.time_col.currentData(), series_col=self.series_col.currentData(),
            val_fraction=round(self.val_fraction.value(), 4),
            test_fraction=round(self.test_fraction.value(), 4),
            missing=self.missing.currentData(), encoding=self.encoding.currentData(),
            delimiter=self.delimiter.currentData())


# --- what a scan says ------------------------------------------------------------------------


def _rows_text(summary: TextImportSummary | SeriesImportSummary) -> str:
    if summary.complete:
        return f"All {summary.rows:,} rows"
    return f"The first {summary.rows:,} rows (of about {summary.estimated_rows:,})"


def _splits_text(splits: dict[str, int]) -> str:
    return " · ".join(f"{name} {n:,}" for name, n in splits.items()) or "none"


def scan_text_summary(s: TextImportSummary | SeriesImportSummary) -> str:
    """The quick scan's result as the dialog shows it."""
    if isinstance(s, TextImportSummary):
        bad = s.dropped.get("bad_lines", 0)
        return (f"{_rows_text(s)} give {s.pairs:,} pairs: {_splits_text(s.splits)}.\n"
                f"Inputs: {s.input_steps} steps, vocabulary of {s.input_vocab_size:,}; targets: "
                f"{s.target_steps} steps (with the end token), vocabulary of "
                f"{s.target_vocab_size:,} (from the training split).\n"
                f"Dropped: {s.dropped.get('over_max_length', 0):,} over the longest, "
                f"{s.dropped.get('empty', 0):,} with an empty field, {bad:,} malformed lines; "
                f"<unk> for {s.unknown_tokens['input']:,} input and "
                f"{s.unknown_tokens['target']:,} target tokens.")
    (w, fi), (h, fo) = s.input_shape, s.target_shape
    missing = ("no missing values" if not s.missing_cells else
               f"{s.missing_cells:,} missing values" + (
                   f", {s.filled_cells:,} filled" if s.missing == "interpolate" else
                   f", {s.dropped_windows:,} windows holding one dropped"))
    series = "1 series" if s.series == 1 else f"{s.series:,} series"
    return (f"{_rows_text(s)}, {series}, give {sum(s.splits.values()):,} windows split by "
            f"time: {_splits_text(s.splits)}.\nInputs {w} steps × {fi} feature(s), targets "
            f"{h} steps × {fo}; {s.straddling_windows:,} windows crossing a split boundary "
            f"left out; {missing}.")


# --- the dialog ------------------------------------------------------------------------------


class ImportDialog(QDialog):
    """Preview, scan and import a file; accepted with `written_path` set."""

    def __init__(self, parent: QWidget | None = None, *, path: str | Path | None = None,
                 kind: str | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Import a file as a dataset")
        self.written_path: str | None = None
        self.summary: TextImportSummary | SeriesImportSummary | None = None
        self.scan_result: TextImportSummary | SeriesImportSummary | None = None
        self.scan_error: str | None = None
        self.scan_job = JobSession(self)
        self.scan_job.thread_name = "import-scan"
        self.scan_job.finished.connect(self._on_scanned)
        self.scan_job.failed.connect(self._on_scan_failed)
        self.import_job = JobSession(self)
        self.import_job.thread_name = "import"
        self.import_job.events_ready.connect(self._on_progress)
        self.import_job.finished.connect(self._on_imported)
        self.import_job.failed.connect(self._on_import_failed)
        self._scan_again = False
        self._out_edited = False

        layout = QVBoxLayout(self)
        self.tabs = QTabWidget(self)
        self.text_page = TextPage(self._schedule_scan, self)
        self.series_page = SeriesPage(self._schedule_scan, self)
        self.tabs.addTab(self.text_page, "Text pairs")
        self.tabs.addTab(self.series_page, "Time series")
        self.tabs.currentChanged.connect(self._schedule_scan)
        layout.addWidget(self.tabs, 1)
        self.scan_label = QLabel("Choose a file to import.", self)
        self.scan_label.setWordWrap(True)
        self.scan_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.scan_label)
        out_row = QHBoxLayout()
        self.out_edit = QLineEdit(self)
        self.out_edit.textEdited.connect(self._on_out_edited)
        browse = QPushButton("Browse…", self)
        browse.clicked.connect(self._on_browse_out)
        out_row.addWidget(QLabel("Save as", self))
        out_row.addWidget(self.out_edit, 1)
        out_row.addWidget(browse)
        layout.addLayout(out_row)
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 1000)
        self.progress.setVisible(False)
        layout.addWidget(self.progress)
        self.status = QLabel("", self)
        self.status.setObjectName("hint")
        layout.addWidget(self.status)
        self.buttons = QDialogButtonBox(self)
        self.import_button = self.buttons.addButton("Import and open",
                                                    QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.import_button.clicked.connect(self.start_import)
        self.cancel_button.clicked.connect(self._on_cancel)
        layout.addWidget(self.buttons)

        self._scan_timer = QTimer(self)
        self._scan_timer.setSingleShot(True)
        self._scan_timer.setInterval(SCAN_DELAY_MS)
        self._scan_timer.timeout.connect(self._start_scan)
        self.resize(820, 760)
        if kind == "series":
            self.tabs.setCurrentWidget(self.series_page)
        if path is not None:
            self.page().set_file(path)

    # --- what is chosen ------------------------------------------------------------------
    def page(self) -> TextPage | SeriesPage:
        return self.tabs.currentWidget()  # type: ignore[return-value]

    def set_file(self, path: str | Path, kind: str | None = None) -> None:
        """Pick the file (and the tab: "text" or "series"), as Browse… would."""
        if kind is not None:
            self.tabs.setCurrentWidget(self.series_page if kind == "series" else self.text_page)
        self.page().set_file(path)

    def output_path(self) -> Path | None:
        text = self.out_edit.text().strip()
        if not text:
            return None
        out = Path(text).expanduser()
        return out if out.suffix else out.with_suffix(".h5")

    def importing(self) -> bool:
        return self.import_job.is_running()

    def scanning(self) -> bool:
        return self.scan_job.is_running() or self._scan_timer.isActive()

    # --- the quick scan ------------------------------------------------------------------
    def _schedule_scan(self, *_args: Any) -> None:
        source = self.page().source()
        if source is not None and not self._out_edited:
            self.out_edit.setText(str(datasets_dir() / f"{source.stem}.h5"))
        self.scan_result, self.scan_error = None, None
        if self.page().preview_error:
            self._show_scan_error(self.page().preview_error)
            return
        if source is None:
            self.scan_label.setText("Choose a file to import.")
            return
        self.scan_label.setText("Scanning the first rows…")
        self._scan_timer.start()

    def _start_scan(self) -> None:
        if self.scan_job.is_running():  # one at a time: stop it, then scan again
            self._scan_again = True
            self.scan_job.cancel()
            return
        page = self.page()
        source = page.source()
        if source is None or page.preview_error:
            return
        try:
            options = page.options()
            options.checked()
        except WorkbenchError as exc:
            self._show_scan_error(str(exc))
            return
        scan = scan_text if page.kind == "text" else scan_series

        def work(_sink: Sink, cancelled: Callable[[], bool]) -> Any:
            try:
                return scan(source, options, cancelled=cancelled)
            except ImportCancelled:
                return CANCELLED

        self.scan_job.start_cancellable(work)

    def _scan_stale(self) -> bool:
        """True when the finished scan is stale and another starts instead."""
        if self._scan_again:
            self._scan_again = False
            self._start_scan()
            return True
        return False

    def _on_scanned(self, summary: Any) -> None:
        if summary is None or self._scan_stale() or summary == CANCELLED:
            return
        self.scan_result = summary
        self.scan_label.setText(scan_text_summary(summary))

    def _on_scan_failed(self, failure: JobFailure) -> None:
        if self._scan_again:
            return  # _on_scanned starts the next scan
        if not failure.user_error:
            errors.show_failure(self, failure, title="Could not scan the file")
            return
        self._show_scan_error(failure.message)

    def _show_scan_error(self, text: str) -> None:
        self.scan_error = text
        self.scan_label.setText(f"Cannot import this as it is set: {text}")

    # --- the import ----------------------------------------------------------------------
    def start_import(self) -> None:
        """Import with the options shown (what the Import button does)."""
        if self.import_job.is_running():
            return
        page = self.page()
        source, out = page.source(), self.output_path()
        if source is None:
            errors.show_message(self, "Which file?", "Choose a file to import.", level="warning")
            return
        if out is None:
            errors.show_message(self, "Where to save?", "Choose a file to save the dataset in.",
                                level="warning")
            return
        try:
            options = page.options()
            options.checked()
        except WorkbenchError as exc:
            errors.show_message(self, "Cannot import", str(exc), level="warning")
            return
        if out.exists() and not errors.ask(self, "Replace the file?",
                                           f"{out} exists. Replace it with the import?"):
            return
        run = import_text if page.kind == "text" else import_series

        def work(sink: Sink, cancelled: Callable[[], bool]) -> Any:
            out.parent.mkdir(parents=True, exist_ok=True)
            try:
                return run(source, out, options, progress=_throttled(sink), cancelled=cancelled)
            except ImportCancelled:
                return CANCELLED

        self._set_busy(True)
        self.import_job.start_cancellable(work)

    def _on_progress(self, events: tuple) -> None:
        fraction, message = events[-1]  # the latest of the batch
        self.progress.setValue(int(1000 * max(0.0, min(1.0, fraction))))
        self.status.setText(f"Importing: {message}… (the file appears only once it is complete)")

    def _on_imported(self, summary: Any) -> None:
        if summary is None:  # failed: _on_import_failed has said why
            return
        self._set_busy(False)
        if summary == CANCELLED:
            self.status.setText("Import cancelled; nothing was written.")
            return
        self.summary = summary
        self.written_path = summary.path
        self.accept()

    def _on_import_failed(self, failure: JobFailure) -> None:
        self._set_busy(False)
        self.status.setText("The import failed; nothing was written.")
        errors.show_failure(self, failure, title="Could not import the file")

    def _set_busy(self, busy: bool) -> None:
        self.tabs.setEnabled(not busy)
        self.out_edit.setEnabled(not busy)
        self.import_button.setEnabled(not busy)
        self.progress.setVisible(busy)
        self.progress.setValue(0)
        self.cancel_button.setText("Stop the import" if busy else "Cancel")
        if busy:
            self.status.setText("Importing…")

    # --- closing -------------------------------------------------------------------------
    def _on_cancel(self) -> None:
        if self.import_job.is_running():
            self.import_job.cancel()
            self.status.setText("Stopping the import…")
            return
        self.reject()

    def reject(self) -> None:
        """Close; a running import is stopped first (it leaves no file)."""
        self._scan_timer.stop()
        for job in (self.import_job, self.scan_job):
            job.cancel()
            job.wait(10_000)
        if self.written_path is None:  # (an import that finished meanwhile accepted)
            super().reject()

    def _on_out_edited(self, _text: str) -> None:
        self._out_edited = True

    def _on_browse_out(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the dataset as", self.out_edit.text(),
                                              "HDF5 files (*.h5)")
        if path:
            self.out_edit.setText(path)
            self._out_edited = True


def import_dataset(parent: QWidget | None) -> str | None:
    """Show the import dialog; the written file's path, or None when cancelled."""
    dialog = ImportDialog(parent)
    if dialog.exec() != QDialog.DialogCode.Accepted:
        return None
    return dialog.written_path
