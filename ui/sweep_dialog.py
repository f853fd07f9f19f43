""""Sweep the Model panel's settings…": which settings to sweep, over which values, how
many seeds, and confirming a large grid.

Everything not swept comes from the Model panel's current settings on the open dataset
(the base RunConfig, shown read-only). The user picks up to two settings and types
their values ("0.5, 1, 1.5"; "rnn-tanh, lstm"; teacher forcing "1, 0.5, 0, 1:0"); the
dialog checks the grid as it is typed, with workbench.sweep_spec's messages at the
fields, and shows how many runs it makes. A grid of more than 500 runs is confirmed
before it starts (`confirm_runs`).

Where the runs train: "This machine" (in turn, or several at once in child processes)
or "Ray" (workbench.ray_engine): a private Ray instance on this machine when the
address is empty, else the cluster at HOST:PORT, with the CPUs each run holds and the
most runs at once. Ray is offered only when it is installed (the tooltip says how to
install it otherwise); the address is checked as it is typed.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from PySide6 import QtCore, QtWidgets

from ui import errors
from ui.sweep_session import gui_workers
from workbench.config import FIELDS, RunConfig
from workbench.errors import ConfigError
from workbench.ray_engine import RAY_MISSING, RayOptions, parse_address
from workbench.sweep_spec import NOT_SWEPT, SweepSpec
from workbench.sweeps import CONFIRM_RUNS

# settings offered in the dialog: every RunConfig field but the data's and the seed
SWEEPABLE: tuple[str, ...] = tuple(name for name in FIELDS if name not in NOT_SWEPT
                                   and name not in ("data", "inputs", "targets"))
DEFAULT_ROWS = (("recurrent_radius", "0.5, 1, 1.5"), ("cell", "rnn-tanh, lstm"))
MAX_ROWS = 3
NONE = ""


@dataclass(frozen=True)
class SweepChoice:
    """What the user asked for: the sweep, how many runs at once, and `ray` (None: on
    this machine)."""

    spec: SweepSpec
    workers: int
    ray: RayOptions | None = None


ENGINE_LOCAL, ENGINE_RAY = "local", "ray"


def ray_installed() -> bool:
    """Whether the Ray extra is installed (found, not imported)."""
    return importlib.util.find_spec("ray") is not None


def confirm_runs(parent: QtWidgets.QWidget | None, runs: int) -> bool:
    """True when a sweep of `runs` runs may start: at once up to CONFIRM_RUNS, else when
    the user says yes."""
    if runs <= CONFIRM_RUNS:
        return True
    return errors.ask(parent, "A large sweep",
                      f"This sweep trains {runs:,} runs, more than {CONFIRM_RUNS}. Each is a "
                      "full training run; it may take a long time. Start it?")


class SweepDialog(QtWidgets.QDialog):
    """The grid over the base config's settings (module docstring)."""

    def __init__(self, base: RunConfig, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Sweep settings")
        self.base = base
        self._spec: SweepSpec | None = None
        intro = QtWidgets.QLabel(
            "Train every combination of the values below with each seed; every other "
            "setting is the Model panel's. Values are comma-separated, e.g. 0.5, 1, 1.5 "
            "or rnn-tanh, gru, lstm.")
        intro.setWordWrap(True)
        form = QtWidgets.QGridLayout()
        self.fields: list[QtWidgets.QComboBox] = []
        self.values: list[QtWidgets.QLineEdit] = []
        for row in range(MAX_ROWS):
            combo = QtWidgets.QComboBox()
            combo.addItem("(none)", NONE)
            for name in SWEEPABLE:
                combo.addItem(name, name)
                combo.setItemData(combo.count() - 1, FIELDS[name].help,
                                  QtCore.Qt.ItemDataRole.ToolTipRole)
            edit = QtWidgets.QLineEdit()
            if row < len(DEFAULT_ROWS):
                name, text = DEFAULT_ROWS[row]
                combo.setCurrentIndex(combo.findData(name))
                edit.setText(text)
            combo.currentIndexChanged.connect(self._on_edited)
            edit.textChanged.connect(self._on_edited)
            form.addWidget(QtWidgets.QLabel(f"Setting {row + 1}"), row, 0)
            form.addWidget(combo, row, 1)
            form.addWidget(edit, row, 2)
            self.fields.append(combo)
            self.values.append(edit)
        form.setColumnStretch(2, 1)
        self.seeds = QtWidgets.QSpinBox()
        self.seeds.setRange(1, 100)
        self.seeds.setValue(2)
        self.seeds.setToolTip("Training seeds per point: the spread across seeds says how "
                              "much of a difference is luck")
        self.workers = QtWidgets.QSpinBox()
        self.workers.setRange(1, gui_workers())
        self.workers.setToolTip("Runs at once, each in its own process (one core is always "
                                "left to the window)")
        self.name = QtWidgets.QLineEdit()
        self.name.setPlaceholderText("(optional)")
        self.engine = QtWidgets.QComboBox()
        self.engine.addItem("This machine", ENGINE_LOCAL)
        self.engine.addItem("Ray (this machine or a cluster)", ENGINE_RAY)
        if not ray_installed():
            item = self.engine.model().item(1)  # type: ignore[attr-defined]
            item.setEnabled(False)
            item.setToolTip(RAY_MISSING)
        self.engine.setToolTip("Where the runs train: here, or as Ray tasks on a private Ray "
                               "instance or a cluster (docs/scaling.md)")
        self.ray_address = QtWidgets.QLineEdit()
        self.ray_address.setPlaceholderText("empty: a private Ray instance on this machine")
        self.ray_address.setToolTip("HOST:PORT of a running cluster (`ray start --head` prints "
                                    "it); its nodes must share the runs folder")
        self.cpus_per_run = QtWidgets.QSpinBox()
        self.cpus_per_run.setRange(1, 256)
        self.cpus_per_run.setToolTip("CPUs each run holds on Ray, and its torch threads")
        self.max_concurrent = QtWidgets.QSpinBox()
        self.max_concurrent.setRange(0, 100000)
        self.max_concurrent.setSpecialValueText("as many as the CPUs hold")
        self.max_concurrent.setToolTip("The most runs at once on Ray")
        more = QtWidgets.QFormLayout()
        more.addRow("Seeds", self.seeds)
        more.addRow("Train on", self.engine)
        more.addRow("Runs at once", self.workers)
        more.addRow("Ray address", self.ray_address)
        more.addRow("CPUs per run", self.cpus_per_run)
        more.addRow("Most runs at once", self.max_concurrent)
        more.addRow("Name", self.name)
        self._ray_rows = (self.ray_address, self.cpus_per_run, self.max_concurrent)
        self.summary = QtWidgets.QLabel("")
        self.summary.setObjectName("sweepSummary")
        self.error = QtWidgets.QLabel("")
        self.error.setObjectName("fieldError")
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #b00020;")
        self.seeds.valueChanged.connect(self._on_edited)
        self.name.textChanged.connect(self._on_edited)
        self.engine.currentIndexChanged.connect(self._on_edited)
        self.ray_address.textChanged.connect(self._on_edited)
        self.buttons = QtWidgets.QDialogButtonBox(
            QtWidgets.QDialogButtonBox.StandardButton.Ok
            | QtWidgets.QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QtWidgets.QDialogButtonBox.StandardButton.Ok).setText("Start sweep")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addLayout(more)
        layout.addWidget(self.summary)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)
        self.resize(620, 440)
        self._on_edited()

    def grid(self) -> dict[str, list[str]]:
        """The grid as typed: setting -> its values."""
        out: dict[str, list[str]] = {}
        for combo, edit in zip(self.fields, self.values):
            name = combo.currentData()
            if name:
                out[name] = [v.strip() for v in edit.text().split(",") if v.strip()]
        return out

    def spec(self) -> SweepSpec | None:
        """The sweep the fields describe, or None while they are not valid."""
        return self._spec

    def on_ray(self) -> bool:
        return self.engine.currentData() == ENGINE_RAY

    def ray_options(self) -> RayOptions | None:
        """The Ray settings as typed (None: this machine); ConfigError for a bad address."""
        if not self.on_ray():
            return None
        address = self.ray_address.text().strip() or None
        if address is not None:
            parse_address(address)
        return RayOptions(address=address, cpus_per_run=self.cpus_per_run.value(),
                          max_concurrent=self.max_concurrent.value() or None)

    def choice(self) -> SweepChoice | None:
        if not self._spec:
            return None
        ray = self.ray_options()
        return SweepChoice(self._spec, 1 if ray else self.workers.value(), ray)

    def _on_edited(self, *_args: object) -> None:
        ok = self.buttons.button(QtWidgets.QDialogButtonBox.StandardButton.Ok)
        self.workers.setEnabled(not self.on_ray())
        for widget in self._ray_rows:
            widget.setEnabled(self.on_ray())
        try:
            self._spec = SweepSpec.build(self.base, self.grid(), seeds=self.seeds.value(),
                                         name=self.name.text().strip())
            self.ray_options()
        except ConfigError as exc:
            self._spec = None
            self.error.setText(str(exc))
            self.summary.setText("")
            ok.setEnabled(False)
            return
        points = len(self._spec.points())
        self.error.setText("")
        self.summary.setText(f"{points} point{'s' if points != 1 else ''} × "
                             f"{len(self._spec.seeds)} seed(s) = {self._spec.run_count} runs")
        ok.setEnabled(True)


def choose_sweep(parent: QtWidgets.QWidget | None, base: RunConfig) -> SweepChoice | None:
    """Ask for a sweep over `base` (modal); None when cancelled or not confirmed."""
    dialog = SweepDialog(base, parent)
    if dialog.exec() != QtWidgets.QDialog.DialogCode.Accepted:
        return None
    choice = dialog.choice()
    if choice is None or not confirm_runs(parent, choice.spec.run_count):
        return None
    return choice
