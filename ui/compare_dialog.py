""""Compare cells...": which cells to train side by side, and with how many seeds.

A comparison trains the same encoder-decoder on the same data with several cell
types, each with a few seeds (the spread across seeds says how much of a difference
is luck). Everything but the cell and the seed is shared and comes from the model
panel's current settings: the dialog takes that RunConfig and shows it, read-only,
so the user sees what is held fixed. It returns the chosen cells and seeds; the
window then runs the queue (ui.sessions.CompareSession) and shows the result
(ui.compare_view).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

from ui.plots import style
from workbench.config import RunConfig

COMPARE_CELLS: tuple[str, ...] = ("rnn-tanh", "rnn-relu", "rnn-sigmoid", "gru", "lstm")
DEFAULT_CELLS: tuple[str, ...] = ("rnn-tanh", "lstm")  # the classic contrast: vanishing vs memory
DEFAULT_SEEDS = 3
MAX_SEEDS = 20

CELL_SUMMARIES: dict[str, str] = {
    "rnn-tanh": "vanilla RNN, tanh: the classic; gradients vanish over long spans",
    "rnn-relu": "vanilla RNN, relu: unbounded, gradients may explode",
    "rnn-sigmoid": "vanilla RNN, sigmoid: vanishes fastest (slope at most 1/4)",
    "gru": "GRU: update and reset gates, one state vector",
    "lstm": "LSTM: input, forget and output gates and a cell state",
}


@dataclass(frozen=True)
class CompareChoice:
    """What the user picked: cells in the dialog's order, and the seeds of each cell."""

    cells: tuple[str, ...]
    seeds: tuple[int, ...]

    @property
    def runs(self) -> int:
        return len(self.cells) * len(self.seeds)


def color_swatch(color: str, size: int = 12) -> QtGui.QIcon:
    """A small filled square in `color`: the cell's colour in every view."""
    pixmap = QtGui.QPixmap(size, size)
    pixmap.fill(QtGui.QColor(color))
    return QtGui.QIcon(pixmap)


def shared_settings(config: RunConfig) -> list[tuple[str, str]]:
    """(label, value) of the settings every run of the comparison shares."""
    budget = (f"{config.epochs} epochs" if config.epochs is not None
              else f"{config.steps:,} steps" if config.steps is not None else "–")
    teacher = (f"{config.teacher_forcing:g}" if config.teacher_forcing_end is None
               else f"{config.teacher_forcing:g} → {config.teacher_forcing_end:g} (linear)")
    rows = [
        ("Data", Path(config.data).name if config.data else "(no file chosen)"),
        ("Hidden units", f"{config.hidden} × {config.layers} layer{'s' if config.layers > 1 else ''}"),
        ("Dropout", f"{config.dropout:g}"),
        ("Optimizer", f"{config.optimizer}, learning rate {config.lr:g}"),
        ("Batch size", str(config.batch_size)),
        ("Budget", budget),
        ("Teacher forcing", teacher),
        ("Gradient clipping", "off" if config.clip is None else f"{config.clip:g}"),
        ("Early stopping", "off" if config.patience is None else f"patience {config.patience}"),
        ("Probes", "automatic" if config.probe_every is None else f"every {config.probe_every} steps"),
        ("Device", config.device),
    ]
    return rows


class CompareDialog(QtWidgets.QDialog):
    """Pick cell types and a number of seeds; shows the shared settings it inherits."""

    def __init__(self, config: RunConfig, parent: QtWidgets.QWidget | None = None, *,
                 cells: tuple[str, ...] | None = None, seeds: int = DEFAULT_SEEDS) -> None:
        super().__init__(parent)
        self.setWindowTitle("Compare cells")
        self.config = config
        layout = QtWidgets.QVBoxLayout(self)
        intro = QtWidgets.QLabel(
            "Train the same model on the same data with several cell types, each with a "
            "few seeds, one run after another. The comparison shows each cell's mean loss "
            "with the spread across seeds, its gradient per time step and a table.")
        intro.setWordWrap(True)
        layout.addWidget(intro)

        cells_box = QtWidgets.QGroupBox("Cells")
        cells_layout = QtWidgets.QVBoxLayout(cells_box)
        self.cell_checkboxes: dict[str, QtWidgets.QCheckBox] = {}
        chosen = set(cells if cells is not None else (*DEFAULT_CELLS, config.cell))
        for cell in COMPARE_CELLS:
            box = QtWidgets.QCheckBox(f"{cell}  –  {CELL_SUMMARIES[cell]}")
            box.setIcon(color_swatch(style.cell_color(cell)))
            box.setToolTip(f"{cell}: drawn in this colour in every view of the comparison")
            box.setChecked(cell in chosen)
            box.toggled.connect(self._on_choice_changed)
            cells_layout.addWidget(box)
            self.cell_checkboxes[cell] = box
        layout.addWidget(cells_box)

        seeds_row = QtWidgets.QHBoxLayout()
        self.seeds_spin = QtWidgets.QSpinBox()
        self.seeds_spin.setRange(1, MAX_SEEDS)
        self.seeds_spin.setValue(max(1, min(MAX_SEEDS, seeds)))
        self.seeds_spin.setToolTip(
            f"Runs per cell, with seeds {config.seed}, {config.seed + 1}, ... (weights, "
            "data order and teacher-forcing draws differ; the data split does not)")
        self.seeds_spin.valueChanged.connect(self._on_choice_changed)
        seeds_row.addWidget(QtWidgets.QLabel("Seeds per cell"))
        seeds_row.addWidget(self.seeds_spin)
        seeds_row.addStretch(1)
        layout.addLayout(seeds_row)

        shared_box = QtWidgets.QGroupBox("Shared settings (from the model panel)")
        form = QtWidgets.QFormLayout(shared_box)
        self.shared_labels: dict[str, QtWidgets.QLabel] = {}
        for label, value in shared_settings(config):
            field = QtWidgets.QLabel(value)
            field.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
            form.addRow(label, field)
            self.shared_labels[label] = field
        if config.data:
            self.shared_labels["Data"].setToolTip(str(config.data))
        layout.addWidget(shared_box)

        self.summary = QtWidgets.QLabel()
        self.summary.setWordWrap(True)
        layout.addWidget(self.summary)
        self.buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Cancel)
        self.start_button = self.buttons.addButton(
            "Start comparison", QtWidgets.QDialogButtonBox.ButtonRole.AcceptRole)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self._on_choice_changed()
        self.setMinimumWidth(560)
        # Word-wrapped labels under-report their height: size the dialog for its content.
        self.resize(560, self.sizeHint().height() + 60)

    # -- values ------------------------------------------------------------------

    def cells(self) -> tuple[str, ...]:
        """The ticked cells, in the dialog's order."""
        return tuple(c for c, box in self.cell_checkboxes.items() if box.isChecked())

    def seeds(self) -> tuple[int, ...]:
        """The seeds every cell runs with: the config's seed and the next ones."""
        return tuple(range(self.config.seed, self.config.seed + self.seeds_spin.value()))

    def choice(self) -> CompareChoice:
        return CompareChoice(self.cells(), self.seeds())

    def set_cells(self, cells: tuple[str, ...] | list[str]) -> None:
        for cell, box in self.cell_checkboxes.items():
            box.setChecked(cell in cells)

    def set_seed_count(self, count: int) -> None:
        self.seeds_spin.setValue(count)

    # -- handlers ----------------------------------------------------------------

    def _on_choice_changed(self, *_args: object) -> None:
        choice = self.choice()
        ok = bool(choice.cells) and bool(self.config.data)
        self.start_button.setEnabled(ok)
        if not self.config.data:
            text = "Open a dataset first: the comparison trains on the model panel's data."
        elif not choice.cells:
            text = "Tick at least one cell."
        else:
            text = (f"{choice.runs} run{'s' if choice.runs != 1 else ''} in total "
                    f"({len(choice.cells)} cell{'s' if len(choice.cells) != 1 else ''} × "
                    f"{len(choice.seeds)} seed{'s' if len(choice.seeds) != 1 else ''}), "
                    "one after another; Cancel stops the whole queue.")
            if len(choice.cells) == 1:
                text += " One cell: its seeds are compared with each other."
        self.summary.setText(text)


def choose_comparison(parent: QtWidgets.QWidget | None, config: RunConfig) -> CompareChoice | None:
    """Show the dialog; the choice, or None when cancelled. Tests patch it."""
    dialog = CompareDialog(config, parent)
    if dialog.exec() != QtWidgets.QDialog.DialogCode.Accepted:
        return None
    return dialog.choice()
