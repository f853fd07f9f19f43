"""The Data panel: the open dataset's arrays, summary and one sample.

`DatasetDocument` is the object shown: the current file opened through
workbench.datasets (structure checked, no data array read), replaced only when
a new file opens without error, so a bad file never unloads a good one.
`DataPanel` shows it: a tree of the file's groups and arrays (shape, dtype, and
which arrays are the inputs and targets), a summary, and a preview of one
sample picked by split and index: continuous sequences as lines on one time
axis (input, then target), token sequences as text.

For a file that is not in the project's format the inputs and targets are
chosen by hand: at open (`choose_arrays`, a dialog tests can replace) and at
any time with the panel's two array selectors.

Opening never blocks the GUI thread: the file's safety check (a child process,
workbench.safe_open) and the structural validation run as a background job
(ui.jobs); the panel says it is checking, and the window stays responsive. A
newer open supersedes one still in progress; a bad file ends in one clear message
and leaves the open document as it was. After a failed open, "Check again" forgets
the safety check's remembered verdict on that file and opens it once more.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QStackedWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ui import errors
from ui.jobs import JobFailure, JobSession, Latest
from ui.plots import style
from ui.widgets import fit_width_to_content, scrolling_body
from workbench import safe_open
from workbench.dataset_layout import names_default_arrays
from workbench.datasets import ArrayInfo, Batch, DatasetSummary, SequenceDataset, list_arrays
from workbench.errors import WorkbenchError

FILE_FILTER = "HDF5 sequence files (*.h5 *.hdf5 *.hdf);;All files (*)"
PREVIEW_MAX_FEATURES = 4
INPUT_COLORS = ("#0072B2", "#56B4E9", "#009E73", "#7B3294")
TARGET_COLORS = ("#D55E00", "#E69F00", "#CC79A7", "#8C564B")
AUTOMATIC = ""  # combo data of the "(as the file says)" entry


def is_project_layout(arrays: list[ArrayInfo]) -> bool:
    """True when the file has the project's /inputs and /targets (at the root or in
    split groups), so the reader finds them without being told."""
    return names_default_arrays(a.path for a in arrays)


# words in an array's name that say its role (whole words; the longer ones also as a
# prefix: "inputs", "targets_scaled")
INPUT_WORDS = ("past", "history", "input", "x", "src", "source", "features", "encoder",
               "context", "observed")
TARGET_WORDS = ("future", "target", "y", "tgt", "output", "label", "forecast", "horizon",
                "decoder")


def _name_words(path: str) -> list[str]:
    """The words of an array's name: 'pastWindow_2' -> ['past', 'window', '2']."""
    name = path.rsplit("/", 1)[-1]
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return [w for w in re.split(r"[^a-z0-9]+", spaced.lower()) if w]


def _says(words: list[str], role_words: tuple[str, ...]) -> bool:
    return any(w == r or (len(r) >= 3 and w.startswith(r)) for w in words for r in role_words)


def array_role(path: str) -> str | None:
    """"inputs" or "targets" when an array's name says its role, else None."""
    words = _name_words(path)
    inputs, targets = _says(words, INPUT_WORDS), _says(words, TARGET_WORDS)
    if inputs != targets:
        return "inputs" if inputs else "targets"
    return None


def guess_arrays(arrays: list[ArrayInfo]) -> tuple[str | None, str | None]:
    """A first guess at (inputs, targets) of a foreign file: never one array for both.

    Names that say their role decide first (past/history/input/x/source for the
    inputs; future/target/y/output for the targets); then an array with as many
    samples as the other side; then the longer array (more time steps) is the input.
    Two names of one array (a link) count as one array. None where nothing fits.
    """
    candidates = [a for a in arrays if len(a.shape) >= 2]

    def steps(a: ArrayInfo) -> int:
        return int(a.shape[1])

    def pick(pool: list[ArrayInfo], partner: ArrayInfo | None, *,
             longest: bool) -> ArrayInfo | None:
        pool = [a for a in pool if partner is None or a.array != partner.array]
        if not pool:
            return None
        order = sorted(range(len(pool)), key=lambda i: (
            partner is not None and pool[i].shape[0] != partner.shape[0],  # same N first
            -steps(pool[i]) if longest else 0, i))
        return pool[order[0]]

    named_in = [a for a in candidates if array_role(a.path) == "inputs"]
    named_out = [a for a in candidates if array_role(a.path) == "targets"]
    inputs = pick(named_in, None, longest=True)
    targets = pick(named_out, inputs, longest=False)
    if inputs is None and targets is None:
        by_n: dict[int, list[ArrayInfo]] = {}
        for a in candidates:
            by_n.setdefault(int(a.shape[0]), []).append(a)
        pair = next((group for group in by_n.values()
                     if len({a.array for a in group}) >= 2), candidates)
        inputs = pick(pair, None, longest=True)
        targets = pick(pair, inputs, longest=False)
    elif inputs is None:
        inputs = pick(candidates, targets, longest=True)
    elif targets is None:
        targets = pick(candidates, inputs, longest=False)
    return (inputs.path if inputs else None), (targets.path if targets else None)


class DatasetDocument(QObject):
    """The dataset the window works on; `changed` after a successful load."""

    changed = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.path: str | None = None
        self.arrays: list[ArrayInfo] = []
        self.dataset: SequenceDataset | None = None
        self.inputs: str | None = None  # None: as the file says (the project's format)
        self.targets: str | None = None
        self.notes: tuple[str, ...] = ()

    @property
    def summary(self) -> DatasetSummary | None:
        return self.dataset.summary if self.dataset is not None else None

    def load(self, path: str | os.PathLike[str], inputs: str | None = None,
             targets: str | None = None, *, arrays: list[ArrayInfo] | None = None) -> None:
        """Open `path` in this thread; on any error (DatasetError, ConfigError) nothing
        changes. (The Data panel opens in the background: `open_checked`, `install`.)"""
        opened = open_checked(path, inputs, targets, arrays=arrays)
        if opened.dataset is None:
            raise WorkbenchError(f"{opened.path}: name the inputs and targets arrays")
        self.install(opened)

    def install(self, opened: Opened) -> None:
        """Make an opened file the document (GUI thread); the old one is closed."""
        dataset, path, arrays = opened.dataset, opened.path, opened.arrays
        inputs, targets = opened.inputs, opened.targets
        self.notes = opened.notes
        old, self.dataset = self.dataset, dataset
        if old is not None:
            old.close()
        self.path, self.arrays = path, list(arrays)
        self.inputs, self.targets = inputs or None, targets or None
        self.changed.emit()

    def sample(self, split: str, index: int) -> Batch:
        """One sample (raw values) of `split`; reads only that sample."""
        if self.dataset is None:
            raise WorkbenchError("no dataset is open")
        return self.dataset.split(split).read(np.array([index], dtype=np.int64))

    def used_arrays(self) -> dict[str, str]:
        """Array path -> "inputs"/"targets" for the arrays the reader uses."""
        if self.inputs and self.targets:
            return {self.inputs: "inputs", self.targets: "targets"}
        used = {}
        for a in self.arrays:
            name = a.path.rsplit("/", 1)[-1]
            parent = a.path.rsplit("/", 1)[0]
            if name in ("inputs", "targets") and parent in ("", "/train", "/val", "/test"):
                used[a.path] = name
        return used

    def close(self) -> None:
        if self.dataset is not None:
            self.dataset.close()
            self.dataset = None


@dataclass(frozen=True, eq=False)
class Opened:
    """A file checked and opened off the GUI thread: its arrays, and the dataset (None
    when the file is not in the project's format and its arrays must be chosen)."""

    path: str
    arrays: list[ArrayInfo]
    dataset: SequenceDataset | None = None
    inputs: str | None = None
    targets: str | None = None
    notes: tuple[str, ...] = ()  # what the format cannot know: overlapping windows, a time split


def open_checked(path: str | os.PathLike[str], inputs: str | None = None,
                 targets: str | None = None, *,
                 arrays: list[ArrayInfo] | None = None) -> Opened:
    """List a file's arrays (safety-checked in a child process) and open it as a dataset
    when its layout says which arrays to use (any thread; WorkbenchError if bad)."""
    path = str(Path(path).resolve())
    if arrays is None:
        safe_open.check_file(path, mode="both")  # one child checks what the two calls read
        arrays = list_arrays(path)
    inputs, targets = inputs or None, targets or None
    if not (inputs and targets) and not is_project_layout(arrays):
        return Opened(path, list(arrays))
    dataset = SequenceDataset.open(path, inputs, targets)
    return Opened(path, list(arrays), dataset, inputs, targets, _notes(path, dataset))


def _notes(path: str, dataset: SequenceDataset) -> tuple[str, ...]:
    """The overlap warning and a recorded time split, as `inspect` prints them."""
    from workbench.importers import looks_like_overlapping_windows, read_time_split

    notes = []
    warning = looks_like_overlapping_windows(dataset)
    if warning:
        notes.append(warning)
    split = read_time_split(path)
    if split is not None:
        notes.append("\n".join(line.strip() for line in split.lines()))
    return tuple(notes)


class ArrayChoiceDialog(QDialog):
    """Pick the inputs and targets arrays of a file not in the project's format."""

    def __init__(self, path: str, arrays: list[ArrayInfo], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Choose the inputs and targets")
        layout = QVBoxLayout(self)
        text = QLabel(
            f"<b>{Path(path).name}</b> is not in Sequence Workbench's format (no /inputs and "
            "/targets arrays). Choose which arrays hold the input sequences and the "
            "target sequences: (N, T, F) floats for continuous data, (N, T) integer ids "
            "for tokens.", self)
        text.setWordWrap(True)
        layout.addWidget(text)
        form = QFormLayout()
        self.inputs = QComboBox(self)
        self.targets = QComboBox(self)
        for a in arrays:
            label = f"{a.path}   {tuple(a.shape)} {a.dtype}"
            self.inputs.addItem(label, a.path)
            self.targets.addItem(label, a.path)
        guess_in, guess_out = guess_arrays(arrays)
        for combo, guess in ((self.inputs, guess_in), (self.targets, guess_out)):
            # no guess: nothing chosen (never the first array, which may be the other side's)
            combo.setPlaceholderText("choose an array")
            combo.setCurrentIndex(combo.findData(guess) if guess is not None else -1)
        form.addRow("Inputs", self.inputs)
        form.addRow("Targets", self.targets)
        layout.addLayout(form)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Open
                                   | QDialogButtonBox.StandardButton.Cancel, self)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.open_button = buttons.button(QDialogButtonBox.StandardButton.Open)
        for combo in (self.inputs, self.targets):
            combo.currentIndexChanged.connect(self._update_open)
        self._update_open()
        layout.addWidget(buttons)
        self.resize(560, self.sizeHint().height())

    def _update_open(self, *_args: Any) -> None:
        self.open_button.setEnabled(self.inputs.currentIndex() >= 0
                                    and self.targets.currentIndex() >= 0)

    def choice(self) -> tuple[str, str]:
        return self.inputs.currentData(), self.targets.currentData()


def choose_arrays(parent: QWidget | None, path: str,
                  arrays: list[ArrayInfo]) -> tuple[str, str] | None:
    """Ask which arrays are the inputs and targets; None when cancelled. Tests patch it."""
    dialog = ArrayChoiceDialog(path, arrays, parent)
    if dialog.exec() != QDialog.DialogCode.Accepted:
        return None
    return dialog.choice()


def ask_open_path(parent: QWidget | None, directory: str = "") -> str | None:
    """The file dialog of Open...; None when cancelled."""
    path, _ = QFileDialog.getOpenFileName(parent, "Open a dataset", directory, FILE_FILTER)
    return path or None


class DataPanel(QWidget):
    """Shows a `DatasetDocument` and opens files into it."""

    file_opened = Signal(str)  # a file was opened (for the recent-files list)
    new_from_task_requested = Signal()

    def __init__(self, document: DatasetDocument, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.job = JobSession(self)
        self.job.thread_name = "open-dataset"
        self.job.finished.connect(self._on_opened)
        self.job.failed.connect(self._on_open_failed)
        self._latest = Latest(self.job)
        # the preview's sample is read in the background too: a first read of a large
        # file's block takes ~100 ms
        self.preview_job = JobSession(self)
        self.preview_job.thread_name = "preview"
        self.preview_job.finished.connect(self._on_sample_read)
        self._preview = Latest(self.preview_job)
        self._request = 0  # the newest open asked for; older results are dropped
        self._last_ok = False
        self._asked: tuple[str, str | None, str | None] | None = None  # the newest open
        self.failed_open: tuple[str, str | None, str | None] | None = None  # for Check again
        self._build()
        document.changed.connect(self._on_document_changed)
        self._on_document_changed()

    # --- construction -----------------------------------------------------------------
    def _build(self) -> None:
        # In a scroll area: a short dock shrinks the panel, whose content then scrolls.
        scroll, _body, layout = scrolling_body(self, 6)
        top = QHBoxLayout()
        self.file_label = QLabel("No dataset open", self)
        self.file_label.setObjectName("fileLabel")
        self.file_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.file_label.setMinimumWidth(40)  # a long name is cut (its tooltip has the path)
        top.addWidget(self.file_label, 1)
        self.recheck_button = QPushButton("Check again", self)
        self.recheck_button.setToolTip(
            "Forget what the safety check remembered about this file and check it again "
            "(after a check was interrupted, or once the file has been repaired)")
        self.recheck_button.clicked.connect(self.check_again)
        self.recheck_button.hide()  # shown after an open failed
        top.addWidget(self.recheck_button)
        self.open_button = QPushButton("Open…", self)
        self.open_button.setToolTip("Open an HDF5 file of sequences (Ctrl+O); you can also "
                                    "drop a file onto the window")
        self.open_button.clicked.connect(self.open_dialog)
        self.task_button = QPushButton("New from task…", self)
        self.task_button.setToolTip("Generate a dataset from one of the built-in tasks")
        self.task_button.clicked.connect(self.new_from_task_requested)
        top.addWidget(self.open_button)
        top.addWidget(self.task_button)
        layout.addLayout(top)

        self.description = QLabel("", self)
        self.description.setObjectName("hint")
        self.description.setWordWrap(True)
        self.description.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.description)

        # summary
        summary_box = QGroupBox("Summary", self)
        form = QFormLayout(summary_box)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignLeft)
        self.summary_labels: dict[str, QLabel] = {}
        for key, label in (("task", "Task"), ("kind", "Kind"), ("samples", "Samples"),
                           ("steps", "Time steps"), ("values", "Features")):
            value = QLabel("–", summary_box)
            value.setWordWrap(True)
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            form.addRow(label, value)
            self.summary_labels[key] = value
        self._values_label = form.labelForField(self.summary_labels["values"])
        layout.addWidget(summary_box)

        splitter = QSplitter(Qt.Orientation.Vertical, self)
        splitter.setChildrenCollapsible(False)
        self.splitter = splitter
        layout.addWidget(splitter, 1)

        # arrays of the file
        arrays_box = QGroupBox("Arrays in the file", splitter)
        box = QVBoxLayout(arrays_box)
        self.tree = QTreeWidget(arrays_box)
        self.tree.setHeaderLabels(["Name", "Shape", "Type", "Used as"])
        self.tree.setRootIsDecorated(True)
        self.tree.setUniformRowHeights(True)
        self.tree.setMinimumHeight(60)
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for c in (1, 2, 3):
            header.setSectionResizeMode(c, QHeaderView.ResizeMode.ResizeToContents)
        box.addWidget(self.tree, 1)
        choose = QGridLayout()
        self.inputs_combo = QComboBox(arrays_box)
        self.targets_combo = QComboBox(arrays_box)
        for combo, what in ((self.inputs_combo, "inputs"), (self.targets_combo, "targets")):
            combo.setToolTip(f"The array that holds the {what}")
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(10)
        self.apply_arrays = QPushButton("Use", arrays_box)
        self.apply_arrays.setToolTip("Reopen the file with these inputs and targets")
        self.apply_arrays.clicked.connect(self._on_apply_arrays)
        choose.addWidget(QLabel("Inputs", arrays_box), 0, 0)
        choose.addWidget(self.inputs_combo, 0, 1)
        choose.addWidget(QLabel("Targets", arrays_box), 1, 0)
        choose.addWidget(self.targets_combo, 1, 1)
        choose.addWidget(self.apply_arrays, 1, 2)
        choose.setColumnStretch(1, 1)
        box.addLayout(choose)

        # preview
        preview_box = QGroupBox("Preview of one sample", splitter)
        pbox = QVBoxLayout(preview_box)
        row = QHBoxLayout()
        self.split_combo = QComboBox(preview_box)
        self.split_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.index_spin = QSpinBox(preview_box)
        self.index_spin.setToolTip("Index of the sample within the split")
        self.index_spin.setKeyboardTracking(False)
        row.addWidget(QLabel("Split", preview_box))
        row.addWidget(self.split_combo)
        row.addWidget(QLabel("Sample", preview_box))
        row.addWidget(self.index_spin)
        self.index_of = QLabel("", preview_box)
        row.addWidget(self.index_of)
        row.addStretch(1)
        pbox.addLayout(row)
        self.preview_stack = QStackedWidget(preview_box)
        self.preview_plot = pg.PlotWidget(background="#ffffff")
        self.preview_plot.setMinimumHeight(110)
        item = self.preview_plot.getPlotItem()
        item.setLabel("bottom", "time step (input, then target)")
        item.setLabel("left", "value")
        item.showGrid(x=True, y=True, alpha=0.15)
        item.setMenuEnabled(False)
        # A legend would cover the curves: the title names them in their colours.
        style.set_title(item, f'<span style="color:{INPUT_COLORS[0]}">━ input</span>&nbsp;&nbsp;'
                              f'<span style="color:{TARGET_COLORS[0]}">╍ target</span>', size="9pt")
        self.preview_text = QPlainTextEdit(preview_box)
        self.preview_text.setReadOnly(True)
        self.preview_text.setFont(QFont("monospace"))
        self.preview_stack.addWidget(self.preview_plot)
        self.preview_stack.addWidget(self.preview_text)
        pbox.addWidget(self.preview_stack, 1)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 3)
        splitter.setSizes([170, 400])  # the tree shows a few arrays without scrolling
        fit_width_to_content(self, scroll)  # as wide as the fields need

        self.split_combo.currentIndexChanged.connect(self._on_split_changed)
        self.index_spin.valueChanged.connect(self._on_index_changed)

    # --- opening files -----------------------------------------------------------------
    def open_dialog(self) -> None:
        start = str(Path(self.document.path).parent) if self.document.path else ""
        path = ask_open_path(self, start)
        if path:
            self.open_file(path)

    def open_file(self, path: str | os.PathLike[str], inputs: str | None = None,
                  targets: str | None = None) -> None:
        """Open `path` into the document, in the background; `file_opened` follows, or a
        message saying what is wrong (the open document stays). `wait_opened` waits."""
        self._start_open(str(path), inputs, targets, recheck=False)

    def check_again(self) -> None:
        """Forget the safety check's verdict on the file whose open failed and open it
        again, in the background (the "Check again" button)."""
        if self.failed_open is not None:
            self._start_open(*self.failed_open, recheck=True)

    def _start_open(self, path: str, inputs: str | None, targets: str | None, *,
                    recheck: bool) -> None:
        self._request += 1
        request, self._last_ok = self._request, False
        self._asked = (path, inputs, targets)
        self.file_label.setText(f"Checking <b>{Path(path).name}</b>…")
        self.file_label.setToolTip(path)
        self.open_button.setEnabled(False)
        self.recheck_button.hide()

        def job(_sink: Any) -> tuple[int, Opened]:
            if recheck:  # the verdict cache is a file: forgotten off the GUI thread
                safe_open.forget(path)
            return request, open_checked(path, inputs, targets)

        self._latest.submit(job)

    def wait_opened(self, timeout_ms: int = 60_000) -> bool:
        """Wait for the opens in progress and the preview of the opened file (scripts,
        tests); True when the last open opened its file."""
        while self.job.is_running():
            if not self.job.wait(timeout_ms):
                return False
        return self.wait_preview(timeout_ms) and self._last_ok

    @property
    def opening(self) -> bool:
        return self.job.is_running()

    def _on_opened(self, result: tuple[int, Opened] | None) -> None:
        if result is None:  # failed: _on_open_failed has said why
            return
        request, opened = result
        if request != self._request:  # a newer open was asked for meanwhile
            if opened.dataset is not None:
                opened.dataset.close()
            return
        self._idle()
        self.failed_open = None
        if opened.dataset is None:
            self._choose_and_open(opened)
            return
        self.document.install(opened)
        self._last_ok = True
        self.file_opened.emit(opened.path)

    def _choose_and_open(self, opened: Opened) -> None:
        if not opened.arrays:
            errors.show_message(self, "Cannot open the dataset",
                                f"{opened.path}: the file holds no arrays.", level="warning")
            return
        choice = choose_arrays(self, opened.path, opened.arrays)
        if choice is None:
            return
        path, arrays = opened.path, opened.arrays
        self._request += 1
        request = self._request
        self._asked = (path, *choice)
        self.file_label.setText(f"Checking <b>{Path(path).name}</b>…")
        self.open_button.setEnabled(False)
        self._latest.submit(
            lambda _sink: (request, open_checked(path, *choice, arrays=arrays)))

    def _on_open_failed(self, failure: JobFailure) -> None:
        if self._latest.waiting:  # a newer open is queued: it decides
            return
        self._idle()
        self.failed_open = self._asked
        self.recheck_button.setVisible(self.failed_open is not None)
        errors.show_failure(self, failure, title="Cannot open the dataset")

    def _idle(self) -> None:
        self.open_button.setEnabled(True)
        path = self.document.path
        self.file_label.setText(f"<b>{Path(path).name}</b>" if path else "No dataset open")
        self.file_label.setToolTip(path or "")

    def _on_apply_arrays(self) -> None:
        if not self.document.path:
            return
        inputs = self.inputs_combo.currentData() or None
        targets = self.targets_combo.currentData() or None
        if bool(inputs) != bool(targets):
            errors.show_message(self, "Choose both arrays",
                                "Choose both the inputs and the targets array, or "
                                "“as the file says” for both.", level="warning")
            return
        self.open_file(self.document.path, inputs, targets)

    # --- showing the document ----------------------------------------------------------
    def _on_document_changed(self) -> None:
        doc = self.document
        if doc.path is None:
            self.file_label.setText("No dataset open")
            return
        self.file_label.setText(f"<b>{Path(doc.path).name}</b>")
        self.file_label.setToolTip(doc.path)
        self._fill_tree()
        self._fill_choosers()
        self._fill_summary()
        self.split_combo.blockSignals(True)
        self.split_combo.clear()
        summary = doc.summary
        if summary is not None:
            for split in summary.splits:
                self.split_combo.addItem(split, split)
        self.split_combo.blockSignals(False)
        self._on_split_changed()

    def _fill_tree(self) -> None:
        self.tree.clear()
        used = self.document.used_arrays()
        groups: dict[str, QTreeWidgetItem] = {}
        bold = QFont()
        bold.setBold(True)

        def group_item(path: str) -> QTreeWidgetItem | None:
            if path in ("", "/"):
                return None
            if path not in groups:
                parent_path, name = path.rsplit("/", 1)
                parent = group_item(parent_path)
                item = QTreeWidgetItem([name + "/", "", "group", ""])
                if parent is None:
                    self.tree.addTopLevelItem(item)
                else:
                    parent.addChild(item)
                item.setExpanded(True)
                groups[path] = item
            return groups[path]

        for a in self.document.arrays:
            parent_path, name = a.path.rsplit("/", 1)
            parent = group_item(parent_path)
            shape = " × ".join(str(s) for s in a.shape) if a.shape else "scalar"
            item = QTreeWidgetItem([name, shape, a.dtype, used.get(a.path, "")])
            item.setToolTip(0, a.path)
            item.setData(0, Qt.ItemDataRole.UserRole, a.path)
            if a.path in used:
                for c in range(4):
                    item.setFont(c, bold)
            if parent is None:
                self.tree.addTopLevelItem(item)
            else:
                parent.addChild(item)
        self.tree.expandAll()

    def _fill_choosers(self) -> None:
        doc = self.document
        project = is_project_layout(doc.arrays)
        for combo, chosen in ((self.inputs_combo, doc.inputs), (self.targets_combo, doc.targets)):
            combo.blockSignals(True)
            combo.clear()
            if project:
                combo.addItem("as the file says", AUTOMATIC)
            for a in doc.arrays:
                if len(a.shape) >= 2:
                    combo.addItem(a.path, a.path)
            index = combo.findData(chosen) if chosen else 0
            combo.setCurrentIndex(max(0, index))
            combo.blockSignals(False)

    def _fill_summary(self) -> None:
        summary = self.document.summary
        labels = self.summary_labels
        if summary is None:
            for label in labels.values():
                label.setText("–")
            return
        labels["task"].setText(summary.task or "(not from a built-in task)")
        text = "\n\n".join(t for t in (summary.description, *self.document.notes) if t)
        self.description.setText(text)
        self.description.setVisible(bool(text))
        x, y = summary.inputs, summary.targets
        kinds = x.kind if x.kind == y.kind else f"{x.kind} → {y.kind}"
        variable = " (variable length)" if summary.variable_length else ""
        labels["kind"].setText(f"{kinds}{variable}")
        labels["samples"].setText(" · ".join(f"{name} {n:,}" for name, n in summary.splits.items()))
        labels["steps"].setText(f"T_in = {x.steps}, T_out = {y.steps}")
        parts = []
        for side, name in ((x, "in"), (y, "out")):
            if side.kind == "tokens":
                vocab = [v for v in (side.vocab or ())][3:]
                shown = " ".join(vocab[:12]) + (" …" if len(vocab) > 12 else "")
                parts.append(f"{name}: vocabulary of {side.vocab_size} ({shown})")
            else:
                parts.append(f"{name}: {side.features} feature{'s' if side.features != 1 else ''}")
        tokens = "tokens" in (x.kind, y.kind)
        self._values_label.setText("Vocabulary" if tokens and x.kind == y.kind else "Features")
        labels["values"].setText("; ".join(parts))

    def _on_split_changed(self, *_args: Any) -> None:
        summary = self.document.summary
        split = self.split_combo.currentData()
        n = summary.splits.get(split, 0) if summary is not None and split else 0
        self.index_spin.blockSignals(True)
        self.index_spin.setRange(0, max(0, n - 1))
        self.index_spin.blockSignals(False)
        self.index_spin.setEnabled(n > 0)
        self.index_of.setText(f"(0 – {n - 1:,})" if n else "(empty)")
        self._show_sample()

    def _on_index_changed(self, _value: int) -> None:
        self._show_sample()

    def _show_sample(self) -> None:
        """Read the chosen sample in the background; `_on_sample_read` shows it."""
        summary = self.document.summary
        split = self.split_combo.currentData()
        dataset = self.document.dataset
        if summary is None or dataset is None or not split or summary.splits.get(split, 0) == 0:
            self.preview_plot.clear()
            self.preview_text.clear()
            return
        index = self.index_spin.value()

        def read(_sink: Any) -> tuple[Any, Batch | str]:
            try:
                return dataset, dataset.split(split).read(np.array([index], dtype=np.int64))
            except Exception as exc:  # noqa: BLE001 - shown in the preview, never a crash
                return dataset, f"This sample cannot be shown:\n{exc}"

        self._preview.submit(read)

    def _on_sample_read(self, result: tuple[Any, Batch | str] | None) -> None:
        summary = self.document.summary
        if result is None or summary is None or result[0] is not self.document.dataset:
            return  # another file is open now (or a newer sample is on its way)
        if self._preview.waiting:
            return
        batch = result[1]
        self.preview_plot.clear()
        self.preview_text.clear()
        if isinstance(batch, str):
            self.preview_stack.setCurrentWidget(self.preview_text)
            self.preview_text.setPlainText(batch)
            return
        x, y = summary.inputs, summary.targets
        if x.kind == "continuous" or y.kind == "continuous":
            self.preview_stack.setCurrentWidget(self.preview_plot)
            self._plot_sample(batch, summary)
        else:
            self.preview_stack.setCurrentWidget(self.preview_text)
        if "tokens" in (x.kind, y.kind):
            self.preview_text.setPlainText(self._sample_text(batch, summary))
            if x.kind != y.kind:  # mixed: the lines on top, the tokens in the tooltip
                self.preview_plot.setToolTip(self.preview_text.toPlainText())

    def wait_preview(self, timeout_ms: int = 30_000) -> bool:
        """Wait until the preview shows the chosen sample (scripts, tests)."""
        while self.preview_job.is_running():
            if not self.preview_job.wait(timeout_ms):
                return False
        return True

    def _plot_sample(self, batch: Batch, summary: DatasetSummary) -> None:
        plot = self.preview_plot
        notes = []
        t_in = int(batch.x_lengths[0])
        t_out = int(batch.y_lengths[0])
        offset = summary.inputs.steps
        for side, values, length, start, colors, name in (
            (summary.inputs, batch.x[0], t_in, 0, INPUT_COLORS, "input"),
            (summary.targets, batch.y[0], t_out, offset, TARGET_COLORS, "target"),
        ):
            if side.kind != "continuous":
                continue
            values = np.asarray(values, dtype=np.float64)[:length]
            features = values.shape[1] if values.ndim == 2 else 1
            values = values.reshape(length, features)
            shown = min(features, PREVIEW_MAX_FEATURES)
            t = np.arange(start, start + length)
            for f in range(shown):
                label = name if features == 1 else f"{name} {f}"
                pen = pg.mkPen(colors[f % len(colors)], width=2,
                               style=Qt.PenStyle.SolidLine if name == "input"
                               else Qt.PenStyle.DashLine)
                plot.plot(t, values[:, f], pen=pen, name=label)
            if features > shown:
                notes.append(f"{shown} of {features} {name} features shown")
        boundary = pg.InfiniteLine(pos=offset - 0.5, angle=90,
                                   pen=pg.mkPen("#999999", style=Qt.PenStyle.DotLine))
        plot.addItem(boundary)
        plot.setToolTip("; ".join(notes) if notes else "Input (solid) then target (dashed) "
                        "of one sample; features in different colours")

    def _sample_text(self, batch: Batch, summary: DatasetSummary) -> str:
        lines = []
        for side, values, length, name in (
            (summary.inputs, batch.x[0], int(batch.x_lengths[0]), "Input "),
            (summary.targets, batch.y[0], int(batch.y_lengths[0]), "Target"),
        ):
            if side.kind == "tokens":
                ids = np.asarray(values[:length]).astype(np.int64).tolist()
                vocab = side.vocab or ()
                words = [vocab[i] if 0 <= i < len(vocab) else f"#{i}" for i in ids]
                lines.append(f"{name}: {' '.join(words)}")
            else:
                lines.append(f"{name}: {length} steps of {side.features} feature(s)")
        return "\n".join(lines)

    def save_state(self) -> bytes:
        return bytes(self.splitter.saveState().data())

    def restore_state(self, state: Any) -> None:
        if state is not None:
            self.splitter.restoreState(state)
