""""New dataset from task...": pick a built-in task, set its options, write the file.

The dialog shows workbench.tasks.TASKS: each task's description and options
(with their ranges, so a value out of range cannot be typed), plus the number of
samples, the seed and where to write. Generating runs in the background (a
ui.jobs session) so a large dataset never freezes the window; the dialog closes
with the written path in `written_path`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
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
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ui import errors
from ui.jobs import JobFailure, JobSession
from ui.settings import data_home
from workbench.tasks import DEFAULT_N, TASKS, OptionSpec, generate

INT32_MAX = 2**31 - 1


def datasets_dir() -> Path:
    """Where generated datasets go by default: <data folder>/datasets."""
    return data_home() / "datasets"


# short names of the options in a default file name: copy-T20-d20-v10-n2000.h5
OPTION_TAGS = {"input_steps": "in", "target_steps": "out", "features": "f",
               "components": "c", "noise": "noise", "length": "T", "delay": "d",
               "vocab": "v", "max_value": "max", "formats": "fmt"}


def default_name(task: str, n: int, seed: int, options: dict[str, Any] | None = None) -> str:
    """The default file name of a generated dataset: its task, every option, the number
    of samples and the seed (when not 0), e.g. "copy-T20-d20-v10-n2000.h5", so that two
    datasets of other options never get the same name."""
    parts = [task]
    for name, value in (options or {}).items():
        tag = OPTION_TAGS.get(name, name.replace("_", "-"))
        text = f"{value:g}" if isinstance(value, float) else str(value)
        parts.append(f"{tag}{text}")
    parts.append(f"n{n}")
    if seed:
        parts.append(f"s{seed}")
    return "-".join(parts) + ".h5"


def default_output(task: str, n: int, seed: int, options: dict[str, Any] | None = None) -> Path:
    return datasets_dir() / default_name(task, n, seed, options)


class TaskDialog(QDialog):
    """Choose a task and its options; Generate writes the file and accepts."""

    def __init__(self, parent: QWidget | None = None, *, task: str | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("New dataset from a built-in task")
        self.written_path: Path | None = None
        self._option_widgets: dict[str, QSpinBox | QDoubleSpinBox] = {}
        self._path_edited = False
        self._confirmed: Path | None = None  # a path the save dialog already confirmed
        self.job = JobSession(self)
        self.job.thread_name = "generate"
        self.job.failed.connect(self._on_failed)
        self.job.finished.connect(self._on_finished)

        layout = QHBoxLayout(self)
        self.task_list = QListWidget(self)
        self.task_list.setMaximumWidth(160)
        for name, info in TASKS.items():
            item = QListWidgetItem(name)
            item.setData(Qt.ItemDataRole.UserRole, name)
            item.setToolTip(info.description)
            self.task_list.addItem(item)
        layout.addWidget(self.task_list)

        right = QVBoxLayout()
        self.description = QLabel(self)
        self.description.setWordWrap(True)
        self.description.setMinimumWidth(380)
        right.addWidget(self.description)
        self.kinds = QLabel(self)
        self.kinds.setObjectName("hint")
        right.addWidget(self.kinds)
        options_box = QGroupBox("Options of the task", self)
        self.form = QFormLayout(options_box)
        right.addWidget(options_box)
        file_box = QGroupBox("Samples and file", self)
        common = QFormLayout(file_box)
        self.n = QSpinBox(self)
        self.n.setRange(2, INT32_MAX)
        self.n.setValue(DEFAULT_N)
        self.n.setToolTip("Samples in the file (split into train, validation and test)")
        self.n.setGroupSeparatorShown(True)
        self.seed = QSpinBox(self)
        self.seed.setRange(0, INT32_MAX)
        self.seed.setToolTip("The same task, options and seed always give the same file")
        common.addRow("Samples", self.n)
        common.addRow("Seed", self.seed)
        path_row = QHBoxLayout()
        self.path = QLineEdit(self)
        self.path.textEdited.connect(self._on_path_edited)
        browse = QPushButton("Browse…", self)
        browse.clicked.connect(self._on_browse)
        path_row.addWidget(self.path, 1)
        path_row.addWidget(browse)
        common.addRow("Save as", path_row)
        right.addWidget(file_box)
        right.addStretch(1)
        self.status = QLabel("", self)
        self.status.setWordWrap(True)
        right.addWidget(self.status)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel, self)
        self.generate_button = self.buttons.addButton("Generate and open",
                                                      QDialogButtonBox.ButtonRole.AcceptRole)
        self.buttons.accepted.connect(self._on_generate)
        self.buttons.rejected.connect(self.reject)
        right.addWidget(self.buttons)
        layout.addLayout(right, 1)

        self.task_list.currentRowChanged.connect(self._on_task_changed)
        self.n.valueChanged.connect(self._update_path)
        self.seed.valueChanged.connect(self._update_path)
        names = list(TASKS)
        self.task_list.setCurrentRow(names.index(task) if task in names else 0)
        self.resize(700, 500)

    # --- values -----------------------------------------------------------------------
    def task_name(self) -> str:
        item = self.task_list.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item else next(iter(TASKS))

    def options(self) -> dict[str, Any]:
        return {name: w.value() for name, w in self._option_widgets.items()}

    def set_option(self, name: str, value: Any) -> None:
        self._option_widgets[name].setValue(value)

    def output_path(self) -> Path:
        return Path(self.path.text()).expanduser()

    # --- slots ------------------------------------------------------------------------
    def _on_task_changed(self, _row: int) -> None:
        info = TASKS[self.task_name()]
        self.description.setText(info.description)
        self.kinds.setText(f"Inputs: {info.input_kind} · targets: {info.target_kind}")
        while self.form.rowCount():
            self.form.removeRow(0)
        self._option_widgets = {}
        for spec in info.options:
            widget = _option_widget(spec, self)
            self.form.addRow(spec.name.replace("_", " ").capitalize(), widget)
            self._option_widgets[spec.name] = widget
            widget.valueChanged.connect(self._update_path)
        self._update_path()

    def _on_path_edited(self, _text: str) -> None:
        self._path_edited = True

    def _update_path(self, *_args: Any) -> None:
        if not self._path_edited:
            self.path.setText(str(default_output(self.task_name(), self.n.value(),
                                                 self.seed.value(), self.options())))

    def _on_browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the dataset as", self.path.text(),
                                              "HDF5 files (*.h5)")
        if path:
            self.path.setText(path)
            self._path_edited = True
            self._confirmed = Path(path)  # the file dialog asked about replacing it

    def _on_generate(self) -> None:
        out = self.output_path()
        if not self.path.text().strip():
            errors.show_message(self, "Where to save?", "Choose a file to save the dataset in.",
                                level="warning")
            return
        if out.suffix == "":
            out = out.with_suffix(".h5")
        if out.exists() and out != self._confirmed and not self.confirm_replace(out):
            return
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            errors.show_message(self, "Cannot save there", f"{out.parent}: {exc.strerror}",
                                level="warning")
            return
        self._set_busy(True)
        task, n, seed, options = self.task_name(), self.n.value(), self.seed.value(), self.options()
        self.job.start_function(lambda _sink: generate(task, out, n=n, seed=seed, **options))

    def confirm_replace(self, out: Path) -> bool:
        """Ask before writing over an existing file (tests replace errors.ask)."""
        return errors.ask(self, "Replace the file?",
                          f"{out} already exists.\n\nReplace it with the new dataset?")

    def _on_failed(self, failure: JobFailure) -> None:
        self._set_busy(False)
        errors.show_failure(self, failure, title="Could not generate the dataset")

    def _on_finished(self, result: Any) -> None:
        self._set_busy(False)
        if result is not None:
            self.written_path = Path(result)
            self.accept()

    def _set_busy(self, busy: bool) -> None:
        self.generate_button.setEnabled(not busy)
        self.task_list.setEnabled(not busy)
        self.status.setText("Generating… (the file appears only once it is complete)"
                            if busy else "")

    def reject(self) -> None:
        if self.job.is_running():
            return  # generation in progress: wait for it (it writes atomically)
        super().reject()

    def generating(self) -> bool:
        return self.job.is_running()


def _option_widget(spec: OptionSpec, parent: QWidget) -> QSpinBox | QDoubleSpinBox:
    if spec.type is int:
        widget: QSpinBox | QDoubleSpinBox = QSpinBox(parent)
        widget.setRange(int(spec.minimum if spec.minimum is not None else 0),
                        int(min(spec.maximum if spec.maximum is not None else INT32_MAX,
                                INT32_MAX)))
    else:
        widget = QDoubleSpinBox(parent)
        widget.setDecimals(3)
        widget.setSingleStep(0.05)
        widget.setRange(float(spec.minimum if spec.minimum is not None else -1e9),
                        float(spec.maximum if spec.maximum is not None else 1e9))
    widget.setValue(spec.default)
    allowed = []
    if spec.minimum is not None:
        allowed.append(f"at least {spec.minimum:g}")
    if spec.maximum is not None:
        allowed.append(f"at most {spec.maximum:g}")
    widget.setToolTip(f"{spec.help[:1].upper()}{spec.help[1:]}"
                      + (f" ({', '.join(allowed)})" if allowed else ""))
    return widget


def new_dataset_from_task(parent: QWidget | None) -> Path | None:
    """Show the dialog; the written file, or None when cancelled. Tests patch it."""
    dialog = TaskDialog(parent)
    if dialog.exec() != QDialog.DialogCode.Accepted:
        return None
    return dialog.written_path


# The dataset opened when the app starts without a file: a task that a small LSTM
# learns visibly within a minute on a laptop CPU (the loss falls within seconds).
BUILTIN_TASK = "sine"
BUILTIN_OPTIONS: dict[str, Any] = {"input_steps": 40, "target_steps": 10}
BUILTIN_N = 4000
BUILTIN_SEED = 0
BUILTIN_NAME = "builtin-sine.h5"


def builtin_dataset_path() -> Path:
    return datasets_dir() / BUILTIN_NAME


def ensure_builtin_dataset() -> Path:
    """The built-in dataset, generated into the data folder on first use."""
    path = builtin_dataset_path()
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        generate(BUILTIN_TASK, path, n=BUILTIN_N, seed=BUILTIN_SEED, **BUILTIN_OPTIONS)
    return path
