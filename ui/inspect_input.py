"""The Inspect window's input editor: pick a sample, or make an input of your own.

Four tabs, enabled by what the run reads:

- Sample: a split and an index of the run's dataset ("Edit a copy" puts the sample shown
  into the Text or Values tab, to change it);
- Text (token inputs): the input typed in the run's vocabulary, and an optional target;
- Values (continuous inputs): a table, steps x features, and a small plot whose points can
  be dragged up and down (the first feature, or the one chosen); the number of steps can
  be changed, and values pasted as text ("0.1,2;0.3,1");
- Formula (continuous inputs): a formula of t per feature (workbench.formula), and its
  number of steps.

`changed` is emitted on every edit (the panel asks for a new explanation each time;
stale requests are dropped there). `source()` builds the workbench.explain input, or
returns the message saying why the editor's content is not one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from ui.plots import style
from workbench.errors import WorkbenchError
from workbench.explain import FormulaInput, SampleInput, TextInput, ValuesInput, parse_values

TABS = ("sample", "text", "values", "formula")
DEFAULT_FORMULA = "sin(t/3)"
MAX_TABLE_STEPS = 2000


class DragPoints(pg.ScatterPlotItem):
    """Points that the user drags up and down; `moved(index, y, finished)` is called for
    each move (in the GUI thread, by pyqtgraph's mouse handling)."""

    def __init__(self, moved: Any) -> None:
        super().__init__(size=9, pen=pg.mkPen(style.FOREGROUND), brush=pg.mkBrush("#56B4E9"))
        self._moved = moved
        self._dragging: int | None = None

    def drag_point(self, index: int, y: float, finished: bool = True) -> None:
        """Move point `index` to `y`, as a drag does (tests, keyboard-free use)."""
        self._moved(index, float(y), finished)

    def mouseDragEvent(self, ev: Any) -> None:  # noqa: N802 - pyqtgraph's name
        if ev.button() != QtCore.Qt.MouseButton.LeftButton:
            ev.ignore()
            return
        if ev.isStart():
            points = self.pointsAt(ev.buttonDownPos())
            if len(points) == 0:
                ev.ignore()
                return
            self._dragging = int(points[0].index())
        elif self._dragging is None:
            ev.ignore()
            return
        ev.accept()
        self._moved(self._dragging, float(ev.pos().y()), bool(ev.isFinish()))
        if ev.isFinish():
            self._dragging = None


class InputEditor(QtWidgets.QWidget):
    """Sample, text, values or formula (see the module docstring)."""

    changed = QtCore.Signal()
    copy_requested = QtCore.Signal()  # "Edit a copy" of the sample shown

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.kind = "tokens"
        self.features = 1
        self.train_steps = 20
        self._values = np.zeros((0, 1))
        self._quiet = False
        self.tabs = QtWidgets.QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self._sample_tab(), "Sample")
        self.tabs.addTab(self._text_tab(), "Text")
        self.tabs.addTab(self._values_tab(), "Values")
        self.tabs.addTab(self._formula_tab(), "Formula")
        self.tabs.currentChanged.connect(self._on_tab_changed)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tabs)
        self.tabs.setMaximumHeight(90)

    # -- tabs ----------------------------------------------------------------------------

    def _sample_tab(self) -> QtWidgets.QWidget:
        page = QtWidgets.QWidget()
        self.split_combo = QtWidgets.QComboBox()
        self.split_combo.addItems(["val", "train"])
        self.index_spin = QtWidgets.QSpinBox()
        self.index_spin.setRange(0, 0)
        self.index_spin.setKeyboardTracking(True)
        self.count_label = QtWidgets.QLabel("")
        self.copy_button = QtWidgets.QPushButton("Edit a Copy")
        self.copy_button.setToolTip("Put this sample's input in the Text or Values tab to "
                                    "change it")
        self.copy_button.clicked.connect(self.copy_requested)
        self.split_combo.currentIndexChanged.connect(self._on_split_changed)
        self.index_spin.valueChanged.connect(lambda _v: self._emit())
        row = QtWidgets.QHBoxLayout(page)
        for widget in (QtWidgets.QLabel("Split:"), self.split_combo, QtWidgets.QLabel("Sample:"),
                       self.index_spin, self.count_label):
            row.addWidget(widget)
        row.addStretch(1)
        row.addWidget(self.copy_button)
        self._split_sizes: dict[str, int] = {}
        return page

    def _text_tab(self) -> QtWidgets.QWidget:
        page = QtWidgets.QWidget()
        self.text_edit = QtWidgets.QLineEdit()
        self.text_edit.setPlaceholderText("type the input in the run's vocabulary")
        self.target_edit = QtWidgets.QLineEdit()
        self.target_edit.setPlaceholderText("optional: a target, for the teacher-forced output")
        self.text_edit.textChanged.connect(lambda _t: self._emit())
        self.target_edit.textChanged.connect(lambda _t: self._emit())
        form = QtWidgets.QFormLayout(page)
        form.addRow("Input:", self.text_edit)
        form.addRow("Target:", self.target_edit)
        return page

    def _values_tab(self) -> QtWidgets.QWidget:
        page = QtWidgets.QWidget()
        self.table = QtWidgets.QTableWidget(0, 1)
        self.table.setMinimumWidth(150)
        self.table.itemChanged.connect(self._on_table_edited)
        self.steps_spin = QtWidgets.QSpinBox()
        self.steps_spin.setRange(1, MAX_TABLE_STEPS)
        self.steps_spin.setKeyboardTracking(False)
        self.steps_spin.valueChanged.connect(self._on_steps_changed)
        self.feature_combo = QtWidgets.QComboBox()
        self.feature_combo.currentIndexChanged.connect(lambda _i: self._paint_points())
        self.paste_edit = QtWidgets.QLineEdit()
        self.paste_edit.setPlaceholderText("or type values: 0.1,2;0.3,1 (steps by ';', "
                                           "features by ',')")
        self.paste_edit.editingFinished.connect(self._on_pasted)
        self.drag_plot = pg.PlotWidget(background=style.BACKGROUND)
        self.drag_plot.setMinimumSize(200, 110)
        style.style_plot_item(self.drag_plot.getPlotItem(), bottom="step", left="value")
        self.drag_plot.getPlotItem().setMenuEnabled(False)
        self.drag_plot.getPlotItem().getViewBox().setMouseEnabled(x=False, y=False)
        self.drag_line = self.drag_plot.plot(pen=pg.mkPen("#999999"))
        self.points = DragPoints(self._on_point_moved)
        self.drag_plot.addItem(self.points)
        self.values_message = QtWidgets.QLabel("")
        controls = QtWidgets.QHBoxLayout()
        for widget in (QtWidgets.QLabel("Steps:"), self.steps_spin,
                       QtWidgets.QLabel("Drag feature:"), self.feature_combo):
            controls.addWidget(widget)
        controls.addWidget(self.paste_edit, 1)
        grid = QtWidgets.QGridLayout(page)
        grid.addLayout(controls, 0, 0, 1, 2)
        grid.addWidget(self.table, 1, 0)
        grid.addWidget(self.drag_plot, 1, 1)
        grid.addWidget(self.values_message, 2, 0, 1, 2)
        grid.setColumnStretch(1, 3)
        return page

    def _formula_tab(self) -> QtWidgets.QWidget:
        page = QtWidgets.QWidget()
        self.formula_edit = QtWidgets.QLineEdit(DEFAULT_FORMULA)
        self.formula_edit.setToolTip("numbers, t, + - * / **, parentheses and sin cos tan exp "
                                     "log sqrt abs tanh minimum maximum clip; one formula per "
                                     "feature, separated by ';'")
        self.formula_steps = QtWidgets.QSpinBox()
        self.formula_steps.setRange(1, 5000)
        self.formula_steps.setValue(20)
        self.formula_edit.textChanged.connect(lambda _t: self._emit())
        self.formula_steps.valueChanged.connect(lambda _v: self._emit())
        row = QtWidgets.QHBoxLayout(page)
        row.addWidget(QtWidgets.QLabel("f(t) ="))
        row.addWidget(self.formula_edit, 1)
        row.addWidget(QtWidgets.QLabel("for t = 0 …"))
        row.addWidget(self.formula_steps)
        row.addWidget(QtWidgets.QLabel("steps"))
        return page

    def _on_tab_changed(self, index: int) -> None:
        # the Values tab is taller (its table and plot); the others keep the panel compact
        self.tabs.setMaximumHeight(190 if TABS[index] == "values" else 90)
        self._emit()

    # -- configuring -----------------------------------------------------------------------

    def configure(self, kind: str, features: int | None, splits: dict[str, int],
                  train_steps: int | None) -> None:
        """Offer the tabs that fit a run reading `kind` ("tokens" or "continuous") inputs."""
        self._quiet = True
        try:
            self.kind = kind
            self.features = int(features or 1)
            self.train_steps = int(train_steps or 20)
            tokens = kind == "tokens"
            self.tabs.setTabEnabled(1, tokens)
            self.tabs.setTabEnabled(2, not tokens)
            self.tabs.setTabEnabled(3, not tokens)
            current = TABS[self.tabs.currentIndex()]
            if (tokens and current in ("values", "formula")) or (not tokens and current == "text"):
                self.tabs.setCurrentIndex(0)
            self._split_sizes = dict(splits)
            chosen = self.split_combo.currentText()
            self.split_combo.clear()
            self.split_combo.addItems(list(splits) or ["val"])
            if chosen in splits:
                self.split_combo.setCurrentText(chosen)
            elif "val" in splits:
                self.split_combo.setCurrentText("val")
            self._on_split_changed()
            self.feature_combo.clear()
            self.feature_combo.addItems([f"{i + 1}" for i in range(self.features)])
            self.table.setColumnCount(self.features)
            if self._values.shape[1] != self.features or not self._values.size:
                self.set_values(np.zeros((self.train_steps, self.features)), emit=False)
            if self.formula_steps.value() == 20:
                self.formula_steps.setValue(self.train_steps)
        finally:
            self._quiet = False

    def _on_split_changed(self) -> None:
        size = self._split_sizes.get(self.split_combo.currentText(), 0)
        self.index_spin.setRange(0, max(0, size - 1))
        self.count_label.setText(f"of {size}" if size else "")
        self._emit()

    # -- the values table and plot ----------------------------------------------------------

    @property
    def values(self) -> np.ndarray:
        return self._values.copy()

    def set_values(self, values: np.ndarray, *, emit: bool = True) -> None:
        """Show `values` (T, F) in the table and the plot."""
        values = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
        self._values = values[:MAX_TABLE_STEPS].copy()
        quiet, self._quiet = self._quiet, True
        try:
            self.table.blockSignals(True)
            self.table.setRowCount(self._values.shape[0])
            self.table.setColumnCount(self._values.shape[1])
            for i, row in enumerate(self._values):
                for j, value in enumerate(row):
                    self.table.setItem(i, j, QtWidgets.QTableWidgetItem(f"{value:.6g}"))
            self.table.blockSignals(False)
            self.steps_spin.blockSignals(True)
            self.steps_spin.setValue(max(1, self._values.shape[0]))
            self.steps_spin.blockSignals(False)
        finally:
            self._quiet = quiet
        self._paint_points()
        if emit:
            self._emit()

    def _paint_points(self) -> None:
        feature = max(0, self.feature_combo.currentIndex())
        if not self._values.size or feature >= self._values.shape[1]:
            self.points.setData([], [])
            self.drag_line.setData([], [])
            return
        t = np.arange(1, self._values.shape[0] + 1)
        y = self._values[:, feature]
        self.points.setData(t, y)
        self.drag_line.setData(t, y)
        lo, hi = float(y.min()), float(y.max())
        pad = max(1.0, (hi - lo) * 0.5)
        self.drag_plot.getPlotItem().setYRange(lo - pad, hi + pad, padding=0)
        self.drag_plot.getPlotItem().setXRange(0.5, t[-1] + 0.5, padding=0)

    def _on_point_moved(self, index: int, y: float, finished: bool) -> None:
        feature = max(0, self.feature_combo.currentIndex())
        if not 0 <= index < self._values.shape[0]:
            return
        self._values[index, feature] = y
        self.table.blockSignals(True)
        self.table.setItem(index, feature, QtWidgets.QTableWidgetItem(f"{y:.6g}"))
        self.table.blockSignals(False)
        t = np.arange(1, self._values.shape[0] + 1)
        self.points.setData(t, self._values[:, feature])
        self.drag_line.setData(t, self._values[:, feature])
        if finished:
            self._paint_points()  # the axis fits the new values once the drag ends
        self._emit()

    def _on_table_edited(self, item: QtWidgets.QTableWidgetItem) -> None:
        try:
            value = float(item.text())
        except ValueError:
            self.values_message.setText(f"Step {item.row() + 1}, feature {item.column() + 1}: "
                                        f"{item.text()!r} is not a number")
            return
        self.values_message.setText("")
        if item.row() < self._values.shape[0] and item.column() < self._values.shape[1]:
            self._values[item.row(), item.column()] = value
            self._paint_points()
            self._emit()

    def _on_steps_changed(self, steps: int) -> None:
        old = self._values
        if steps == old.shape[0]:
            return
        if steps < old.shape[0]:
            new = old[:steps]
        else:
            fill = old[-1:] if old.size else np.zeros((1, self.features))
            new = np.concatenate([old, np.repeat(fill, steps - old.shape[0], axis=0)])
        self.set_values(new)

    def _on_pasted(self) -> None:
        text = self.paste_edit.text().strip()
        if not text:
            return
        try:
            values = parse_values(text, self.features)
        except WorkbenchError as exc:
            self.values_message.setText(str(exc))
            return
        self.values_message.setText("")
        self.set_values(values)

    # -- what the editor holds ---------------------------------------------------------------

    @property
    def mode(self) -> str:
        return TABS[self.tabs.currentIndex()]

    def set_mode(self, mode: str) -> None:
        self.tabs.setCurrentIndex(TABS.index(mode))

    def set_text(self, text: str, target: str = "") -> None:
        quiet, self._quiet = self._quiet, True
        try:
            self.text_edit.setText(text)
            self.target_edit.setText(target)
        finally:
            self._quiet = quiet
        self._emit()

    def set_sample(self, index: int, split: str | None = None) -> None:
        if split is not None:
            self.split_combo.setCurrentText(split)
        self.index_spin.setValue(index)

    def source(self) -> Any:
        """The explain input the editor holds (workbench.explain), or a message (str)."""
        mode = self.mode
        if mode == "sample":
            return SampleInput(self.index_spin.value(), self.split_combo.currentText() or "val")
        if mode == "text":
            target = self.target_edit.text()
            return TextInput(self.text_edit.text(), target if target.strip() else None)
        if mode == "values":
            if self.values_message.text():
                return self.values_message.text()
            return ValuesInput(self._values.copy())
        return FormulaInput(self.formula_edit.text(), self.formula_steps.value())

    def _emit(self) -> None:
        if not self._quiet:
            self.changed.emit()
