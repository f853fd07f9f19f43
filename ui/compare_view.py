"""The comparison view: several cells trained alike, side by side, with the seeds' spread.

What a user sees, each cell in its fixed colour (ui.plots.style.CELL_COLORS):

- Loss: per cell the mean across seeds, with a band for the spread (min–max or
  ±1 std; pyqtgraph FillBetweenItem), for the training loss (smoothed) or either
  validation loss.
- Gradient per time step: per cell the mean across seeds of G_t at each seed's
  latest probe, encoder then decoder, overlaid on one log axis (faint: each seed).
- Hidden trajectories: one small PCA plot per cell (the first seed's latest probe),
  with trajectory_plot's PCA.
- A sortable table (numbers sort as numbers: 1e-5 below 0.1): parameters, wall
  time, sequences/s, best validation loss teacher-forced and free-running, token
  and exact-sequence accuracy (token data), the encoder's vanishing ratio G_1/G_T
  at the last probe and its recurrent spectral radius; mean ± std across seeds.
- Export: the table to CSV (workbench.exports), each plot to PNG or SVG.

The figures come from workbench.compare (comparison_rows, loss_bands,
gradient_profiles) over detached RunData: from a saved comparison's run folders
(`set_comparison`), or live from the events a CompareSession forwards
(`add_events`), redrawn at most twice a second. With a session, a progress strip
shows "run k of n: cell, seed" for the whole queue and Cancel stops it; closing the
window cancels the queue and waits for it to stop.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from ui.compare_dialog import color_swatch
from ui.plots import style
from ui.plots.trajectory_plot import fit_pca
from workbench import compare
from workbench.compare import Comparison, RunData
from workbench.events import EpochMetrics, ProbeEvent, RunFinished, RunStarted, StepMetrics

LIVE_REDRAW_MS = 500  # the figures are recomputed from every run: at most twice a second
DEFAULT_SMOOTHING = 0.6
CLOSE_WAIT_MS = 5000  # how long closing the window waits for a cancelled queue to stop

LOSS_CHOICES: tuple[tuple[str, str], ...] = (
    ("train", "training loss (smoothed)"),
    ("val", "validation loss, teacher-forced"),
    ("val_free_running", "validation loss, free-running"),
)
SPREAD_CHOICES: tuple[tuple[str, str], ...] = (("minmax", "min–max across seeds"),
                                               ("std", "±1 std across seeds"))
PLOTS = ("loss", "gradient", "trajectories")

# (key, header, tooltip); key is a workbench.compare.COLUMNS name, or cell/runs/parameters.
TABLE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("cell", "Cell", "The cell type; its colour is the same in every view"),
    ("runs", "Runs", "Runs (seeds) of this cell in the comparison"),
    ("parameters", "Parameters", "Trainable parameters of the encoder-decoder"),
    ("seconds", "Wall time\n(s)", "Training time of a run (mean ± std across seeds)"),
    ("sequences_per_second", "Sequences/s", "Training throughput: sequences per second"),
    ("best_val_loss", "Best val loss\n(teacher-forced)",
     "The lowest validation loss with the true previous target fed to the decoder"),
    ("val_loss_free_running", "Val loss\n(free-running)",
     "Validation loss of the decoder fed its own predictions, at the best epoch"),
    ("val_loss_free_running_data", "Val loss\n(free-running)",
     "The free-running validation loss at the best epoch in the data's own units² (shown "
     "where one scale converts it: a single target feature, or all on one scale)"),
    ("persistence", "Persistence", "Baseline: the loss of repeating the last input step, "
     "normalised (in data units² in brackets). A model that does not beat it is marked"),
    ("seasonal_persistence", "Seasonal\npersistence", "Baseline: the loss of repeating the "
     "value one period earlier (the file's period, or one detected in the training inputs)"),
    ("mean", "Training\nmean", "Baseline: the loss of predicting the training split's mean"),
    ("token_accuracy", "Token\naccuracy", "Token data: share of target tokens generated right (best epoch)"),
    ("sequence_accuracy", "Exact-sequence\naccuracy",
     "Token data: share of target sequences generated exactly (best epoch)"),
    ("chance", "Chance", "Baseline: uniform over the target vocabulary: cross-entropy ln V "
     "and its token accuracy 1/V"),
    ("majority", "Majority\ntoken", "Baseline: the training split's token frequencies: "
     "their cross-entropy, and the token accuracy of always emitting the most frequent token"),
    ("vanishing_ratio", "G₁/G_T\n(encoder)",
     "Gradient norm at the first input step over that at the last, encoder top layer, last "
     "probe: near 1 the gradient carries back through the input; far below 1 it vanishes"),
    ("spectral_radius", "Spectral radius\n(recurrent)",
     "Largest |eigenvalue| of the encoder's top-layer recurrent weights W_hh (gated cells: the "
     "largest over the gate blocks); above 1 a vanilla RNN's state can explode"),
)
TOKEN_COLUMNS = ("token_accuracy", "sequence_accuracy")
PERCENT_COLUMNS = TOKEN_COLUMNS
# shown only when some row has a value (token figures; data units; baselines)
OPTIONAL_COLUMNS = (*TOKEN_COLUMNS, "val_loss_free_running_data", "persistence",
                    "seasonal_persistence", "mean", "chance", "majority")
BASELINE_COLUMNS = ("persistence", "seasonal_persistence", "mean", "chance", "majority")
CONTINUOUS_ONLY = ("val_loss_free_running_data", "persistence", "seasonal_persistence", "mean")
NOT_BEATEN_COLOR = "#b00020"
SORT_ROLE = int(QtCore.Qt.ItemDataRole.UserRole) + 1


def format_number(value: float | None, percent: bool = False) -> str:
    """A figure as the table shows it: 4 significant digits, scientific when tiny or huge."""
    if value is None or not math.isfinite(value):
        return "–"
    if percent:
        return f"{value * 100:.1f}%"
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e6):
        return f"{value:.2e}"
    return f"{value:.4g}"


def format_stat(stat: compare.Stat, percent: bool = False) -> str:
    """mean ± std (the std only when there are two or more seeds)."""
    if stat.mean is None:
        return "–"
    text = format_number(stat.mean, percent)
    if stat.std is not None:
        text += f" ± {format_number(stat.std, percent)}"
    return text


def runs_item(row: compare.ComparisonRow) -> QtWidgets.QTableWidgetItem:
    """The Runs cell: how many runs the figures are of, and those still training marked
    "(running)": a mean ± std never averages in a run that has not ended."""
    done = len(row.run_ids) - row.running
    text = str(done) if not row.running else f"{done} + {row.running} (running)"
    item = NumericItem(text, float(len(row.run_ids)))
    if row.running:
        item.setToolTip(f"{row.running} run(s) of {row.cell} still training: the figures "
                        f"are of the {done} that have ended")
    return item


class NumericItem(QtWidgets.QTableWidgetItem):
    """A table item that sorts by a number (SORT_ROLE), not by its text, so "1.00e-05"
    sorts below "0.1"; an undefined value sorts after every number."""

    def __init__(self, text: str, value: float | None) -> None:
        super().__init__(text)
        key = float(value) if value is not None and math.isfinite(float(value)) else math.inf
        self.setData(SORT_ROLE, key)
        self.setTextAlignment(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter)
        self.setFlags(self.flags() & ~QtCore.Qt.ItemFlag.ItemIsEditable)

    def __lt__(self, other: QtWidgets.QTableWidgetItem) -> bool:
        mine, theirs = self.data(SORT_ROLE), other.data(SORT_ROLE)
        if isinstance(mine, float) and isinstance(theirs, float):
            return mine < theirs
        return super().__lt__(other)

    @property
    def value(self) -> float:
        return float(self.data(SORT_ROLE))


# --- the queue's progress -----------------------------------------------------------------


class QueueProgress(QtWidgets.QWidget):
    """One progress display for the whole queue: "run k of n: cell, seed s", a bar over
    every run, and Cancel for the whole queue."""

    cancel_clicked = QtCore.Signal()

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QtWidgets.QLabel("Waiting for the first run…")
        self.bar = QtWidgets.QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(True)
        self.bar.setFormat("%p%")
        self.bar.setMaximumWidth(320)
        self.cancel_button = QtWidgets.QPushButton("Cancel comparison")
        self.cancel_button.setToolTip("Stop the current run (it keeps a checkpoint) and skip the rest")
        self.cancel_button.clicked.connect(self._on_cancel_clicked)
        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.bar)
        layout.addWidget(self.cancel_button)
        self._current: compare.QueuedRunStarted | None = None
        self._planned = 0

    def add_event(self, event: object) -> None:
        """Follow the queue: its own events and the current run's steps."""
        if isinstance(event, compare.ComparisonStarted):
            self._planned = event.planned
            self._current = None
            self.bar.setValue(0)
            self.cancel_button.setEnabled(True)
            self.label.setText(f"Starting {event.planned} runs…")
        elif isinstance(event, compare.QueuedRunStarted):
            self._current = event
            self._planned = event.planned
            self._show_step(0)
        elif isinstance(event, StepMetrics) and self._current is not None:
            self._show_step(event.step)
        elif isinstance(event, compare.ComparisonFinished):
            self._current = None
            self.bar.setValue(1000 if event.status == "completed" else self.bar.value())
            self.cancel_button.setEnabled(False)
            self.label.setText(f"Comparison {event.status}: {event.completed} of "
                               f"{event.planned} runs trained to the end"
                               + (f" ({event.message})" if event.message else ""))

    def set_cancelling(self) -> None:
        self.cancel_button.setEnabled(False)
        self.label.setText(self.label.text() + " – cancelling…")

    def _show_step(self, step: int) -> None:
        run = self._current
        assert run is not None
        fraction = compare.queue_fraction(run.index, step, run.total_steps, run.planned)
        self.bar.setValue(round(fraction * 1000))
        self.label.setText(f"Run {run.index + 1} of {run.planned}: {run.cell}, seed {run.seed} "
                           f"– step {step:,} of {run.total_steps:,}")

    def _on_cancel_clicked(self) -> None:
        self.cancel_clicked.emit()


# --- the plots ----------------------------------------------------------------------------


def _legend_name(cell: str, seeds: int) -> str:
    return f"{cell} ({seeds} seed{'s' if seeds != 1 else ''})"


class _CellBand:
    """One cell's mean curve and its band (two invisible edge curves and the fill)."""

    def __init__(self, plot_item: pg.PlotItem, cell: str) -> None:
        color = style.cell_color(cell)
        self.mean = pg.PlotDataItem(pen=pg.mkPen(color, width=2.5), connect="finite")
        self.lower = pg.PlotDataItem(pen=pg.mkPen(style.with_alpha(color, 0.35), width=1),
                                     connect="finite")
        self.upper = pg.PlotDataItem(pen=pg.mkPen(style.with_alpha(color, 0.35), width=1),
                                     connect="finite")
        self.fill = pg.FillBetweenItem(self.lower, self.upper, brush=pg.mkBrush(style.with_alpha(color, 0.18)))
        plot_item.addItem(self.fill)
        for item in (self.lower, self.upper, self.mean):
            plot_item.addItem(item)
        self.mean.setZValue(5)

    def remove(self, plot_item: pg.PlotItem) -> None:
        for item in (self.fill, self.lower, self.upper, self.mean):
            plot_item.removeItem(item)


def live_loss_bands(runs: list[RunData], smoothing: float,
                    cells: Sequence[str]) -> dict[str, compare.LossBand]:
    """compare.loss_bands while runs train: a run still in its first epoch joins its
    cell's bands at the end of that epoch (unless no run of the cell has an epoch
    yet), so a new seed does not shrink its cell's curves to its first few steps.
    A cell without steps has no band yet."""
    out: dict[str, compare.LossBand] = {}
    for cell in cells:
        members = [r for r in runs if r.cell == cell and r.steps]
        members = [r for r in members if r.epochs] or members
        if members:
            band = compare.loss_bands(members, smoothing, cells=[cell])[cell]
            if band.train.x.size:
                out[cell] = band
    return out


class LossBandsPlot(QtWidgets.QWidget):
    """Per cell, the mean loss across seeds and a band for their spread."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._runs: list[RunData] = []
        self._cells: list[str] = []
        self.bands: dict[str, compare.LossBand] = {}
        self.curves: dict[str, _CellBand] = {}
        self.loss_combo = QtWidgets.QComboBox()
        for key, label in LOSS_CHOICES:
            self.loss_combo.addItem(label, key)
        self.spread_combo = QtWidgets.QComboBox()
        for key, label in SPREAD_CHOICES:
            self.spread_combo.addItem(label, key)
        self.spread_combo.setToolTip("What the shaded band around each cell's mean shows")
        self.log_y_checkbox = QtWidgets.QCheckBox("log y")
        self.log_y_checkbox.setToolTip("Logarithmic loss axis (for losses that differ by orders of magnitude)")
        for widget in (self.loss_combo, self.spread_combo):
            widget.currentIndexChanged.connect(self._on_choice_changed)
        self.log_y_checkbox.toggled.connect(self._on_log_y_toggled)
        bar = QtWidgets.QHBoxLayout()
        for widget in (self.loss_combo, QtWidgets.QLabel("band:"), self.spread_combo,
                       self.log_y_checkbox):
            bar.addWidget(widget)
        bar.addStretch(1)
        self.plot_widget = style.make_plot_widget(bottom=style.LABEL_TRAINING_STEP,
                                                  left="loss", title="Loss")
        self.plot_item: pg.PlotItem = self.plot_widget.getPlotItem()
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bar)
        layout.addWidget(self.plot_widget, 1)

    @property
    def loss(self) -> str:
        return str(self.loss_combo.currentData())

    @property
    def spread(self) -> str:
        return str(self.spread_combo.currentData())

    def set_loss(self, key: str) -> None:
        self.loss_combo.setCurrentIndex(self.loss_combo.findData(key))

    def set_spread(self, key: str) -> None:
        self.spread_combo.setCurrentIndex(self.spread_combo.findData(key))

    def set_runs(self, runs: list[RunData], cells: Sequence[str], loss_label: str) -> None:
        self._runs, self._cells = runs, list(cells)
        self.plot_item.setLabel("left", loss_label, color=style.FOREGROUND)
        self._redraw()

    def _on_choice_changed(self, _index: int) -> None:
        self._redraw()

    def _on_log_y_toggled(self, on: bool) -> None:
        self.plot_item.setLogMode(x=False, y=on)
        self.plot_item.enableAutoRange()

    def band_of(self, cell: str) -> compare.Band:
        """The band drawn for `cell` (training, validation or free-running)."""
        band = self.bands[cell]
        return {"train": band.train, "val": band.val,
                "val_free_running": band.val_free_running}[self.loss]

    def _redraw(self) -> None:
        smoothing = DEFAULT_SMOOTHING if self.loss == "train" else 0.0
        self.bands = live_loss_bands(self._runs, smoothing, self._cells)
        for cell in list(self.curves):
            if cell not in self.bands:
                self.curves.pop(cell).remove(self.plot_item)
        legend = self.plot_item.legend
        legend.clear()
        for cell, loss_band in self.bands.items():
            if cell not in self.curves:
                self.curves[cell] = _CellBand(self.plot_item, cell)
            curves = self.curves[cell]
            band = self.band_of(cell)
            x = band.x if self.loss == "train" else loss_band.val_steps[: len(band.x)]
            x = np.asarray(x, dtype=np.float64)
            seeds = band.per_seed.shape[0]
            if self.spread == "std":
                lower, upper = band.mean - band.std, band.mean + band.std
            else:
                lower, upper = band.minimum, band.maximum
            if seeds < 2:  # one seed: no spread to show
                lower = upper = np.full(len(x), np.nan)
            if self.plot_item.getAxis("left").logMode:
                # a log axis cannot show mean - std <= 0: clip the band at the smallest mean
                floor = np.nanmin(band.mean[band.mean > 0]) / 10 if np.any(band.mean > 0) else 1e-12
                lower = np.where(lower > 0, lower, floor)
            curves.mean.setData(x, band.mean)
            curves.lower.setData(x, lower)
            curves.upper.setData(x, upper)
            legend.addItem(curves.mean, _legend_name(cell, seeds))
        spread = dict(SPREAD_CHOICES)[self.spread]
        style.set_title(self.plot_item, f"{dict(LOSS_CHOICES)[self.loss].capitalize()}: mean per "
                                        f"cell, band {spread}")
        self.plot_item.setLabel("bottom", style.LABEL_TRAINING_STEP
                                + (" (end of each epoch)" if self.loss != "train" else ""),
                                color=style.FOREGROUND)

    def export(self, path: str | Path) -> None:
        style.export_item(self.plot_item, path)


class GradientProfilesPlot(QtWidgets.QWidget):
    """Per cell, G_t at the latest probe (mean across seeds) on one log axis."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.profiles: dict[str, compare.GradientProfile] = {}
        self.mean_curves: dict[str, pg.PlotDataItem] = {}
        self.seed_curves: dict[str, list[pg.PlotDataItem]] = {}
        self.plot_widget = style.make_plot_widget(
            bottom=style.LABEL_TIME_STEP, left=style.LABEL_GRAD_H,
            title="Gradient per time step, latest probe", legend_below=True)
        self.plot_item: pg.PlotItem = self.plot_widget.getPlotItem()
        self.plot_item.setLogMode(x=False, y=True)
        self.separator = pg.InfiniteLine(
            angle=90, movable=False, pen=pg.mkPen("#555555", width=1, style=QtCore.Qt.PenStyle.DashLine),
            label="encoder │ decoder",
            labelOpts={"position": 0.05, "color": style.FOREGROUND, "anchors": [(0.5, 1.0), (0.5, 1.0)],
                       "fill": pg.mkBrush(255, 255, 255, 200)})
        self.separator.setVisible(False)
        self.plot_item.addItem(self.separator, ignoreBounds=True)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot_widget, 1)

    def set_runs(self, runs: list[RunData], cells: Sequence[str]) -> None:
        """Draw each cell's profile; curves are made once per cell and then updated
        (a live comparison redraws twice a second)."""
        self.profiles = compare.gradient_profiles(runs, cells=cells) if runs else {}
        legend = self.plot_item.legend
        for cell in list(self.mean_curves):
            if cell not in self.profiles or self.profiles[cell].per_seed.size == 0:
                self.plot_item.removeItem(self.mean_curves.pop(cell))
                for curve in self.seed_curves.pop(cell, []):
                    self.plot_item.removeItem(curve)
        t_in = None
        for cell, profile in self.profiles.items():
            if profile.per_seed.size == 0:
                continue
            color = style.cell_color(cell)
            seeds = self.seed_curves.setdefault(cell, [])
            while len(seeds) < profile.per_seed.shape[0]:
                curve = pg.PlotDataItem(pen=pg.mkPen(style.with_alpha(color, 0.3), width=1),
                                        connect="finite")
                self.plot_item.addItem(curve)
                seeds.append(curve)
            for curve, row in zip(seeds, profile.per_seed):
                curve.setData(np.arange(1, row.size + 1, dtype=np.float64), row)
            if cell not in self.mean_curves:
                curve = pg.PlotDataItem(pen=pg.mkPen(color, width=2.5), symbol="o", symbolSize=5,
                                        symbolBrush=color, symbolPen=None, connect="finite")
                curve.setZValue(5)
                self.plot_item.addItem(curve)
                self.mean_curves[cell] = curve
            mean = profile.mean
            self.mean_curves[cell].setData(np.arange(1, mean.size + 1, dtype=np.float64), mean)
            t_in = t_in or profile.encoder_mean.size
        # The legend names each cell with its number of seeds, in the cells' order.
        names = [(self.mean_curves[c], _legend_name(c, len(self.profiles[c].run_ids)))
                 for c in self.profiles if c in self.mean_curves]
        if [label for _c, label in names] != style.legend_labels(self.plot_item):
            legend.clear()
            for curve, label in names:
                legend.addItem(curve, label)
        if t_in:
            self.separator.setPos(t_in + 0.5)
        self.separator.setVisible(bool(t_in))
        style.set_title(self.plot_item, "Gradient per time step at the latest probe: mean across "
                                        "seeds (faint: each seed)")

    def export(self, path: str | Path) -> None:
        style.export_item(self.plot_item, path)


class TrajectoryGrid(QtWidgets.QWidget):
    """Small multiples: one PCA trajectory plot per cell (first seed, latest probe)."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.plot_widget = pg.GraphicsLayoutWidget()
        self.plot_widget.setBackground(style.BACKGROUND)
        self.plot_widget.setMinimumHeight(200)
        self.items: dict[str, pg.PlotItem] = {}
        self.paths: dict[str, list[np.ndarray]] = {}  # cell -> per sample (T, 2) drawn points
        self._drawn: dict[str, tuple[str, int] | None] = {}  # cell -> (run id, probe step) shown
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot_widget, 1)

    def set_runs(self, runs: list[RunData], cells: Sequence[str]) -> None:
        """One plot per cell (the grid is rebuilt only when the cells change); a cell's
        plot is redrawn only when its probe changes."""
        if list(cells) != list(self.items):
            self._build(cells)
        for cell, item in self.items.items():
            run = next((r for r in runs if r.cell == cell and r.probe is not None), None)
            key = (run.run_id, run.probe.step) if run is not None else None
            if key == self._drawn.get(cell):
                continue
            self._drawn[cell] = key
            item.clear()
            color = style.cell_color(cell)
            if run is None:
                self.paths.pop(cell, None)
                style.set_title(item, f"{cell}: no probe yet")
                continue
            self.paths[cell] = self._draw(item, run.probe, color)
            style.set_title(item, f"<span style='color:{color}'><b>{cell}</b></span> "
                                  f"(seed {run.seed}, step {run.probe.step:,})")

    def _build(self, cells: Sequence[str]) -> None:
        grid: pg.GraphicsLayout = self.plot_widget.ci
        grid.clear()
        self.items, self.paths, self._drawn = {}, {}, {}
        title = grid.addLabel("Hidden-state trajectories, top layer: PCA of the first seed's "
                              "latest probe (solid: encoder, dashed: decoder, ★ start, "
                              "◆ handover)", color=style.FOREGROUND, size="10pt",
                              colspan=max(1, len(cells)))
        style.never_widen(title)  # a long title never widens the grid
        grid.nextRow()
        for cell in cells:
            item = grid.addPlot()
            style.style_plot_item(item, bottom="PC 1", left="PC 2")
            item.setAspectLocked(True)
            item.getAxis("left").setWidth(36)
            self.items[cell] = item

    @staticmethod
    def _draw(item: pg.PlotItem, probe: ProbeEvent, color: str) -> list[np.ndarray]:
        enc = np.asarray(probe.encoder_hidden, dtype=np.float64)
        dec = np.asarray(probe.decoder_hidden, dtype=np.float64)
        if enc.ndim == 2:
            enc, dec = enc[None], dec[None]
        states = np.concatenate([enc, dec], axis=1)
        projection = fit_pca(states)
        xy = projection.apply(states)
        t_in = enc.shape[1]
        paths, starts, handovers = [], [], []
        for path in xy:
            finite = np.isfinite(path).all(axis=1)
            valid = np.flatnonzero(finite[:t_in])
            last = int(valid[-1]) if valid.size else None
            item.plot(path[:t_in, 0], path[:t_in, 1], pen=pg.mkPen(color, width=1.5), connect="finite")
            dec_path = path[t_in:] if last is None else np.vstack([path[last:last + 1], path[t_in:]])
            item.plot(dec_path[:, 0], dec_path[:, 1], connect="finite",
                      pen=pg.mkPen(color, width=1.5, style=QtCore.Qt.PenStyle.DashLine))
            if valid.size:
                starts.append(path[valid[0]])
                handovers.append(path[last])
            paths.append(path)
        for points, symbol, size in ((starts, "star", 12), (handovers, "d", 10)):
            if points:
                scatter = pg.ScatterPlotItem(pos=np.array(points), symbol=symbol, size=size,
                                             brush=pg.mkBrush("#ffffff"), pen=pg.mkPen(color, width=1.5))
                scatter.setZValue(10)
                item.addItem(scatter)
        return paths

    def export(self, path: str | Path) -> None:
        style.export_item(self.plot_widget.ci, path)


def baseline_item(row: compare.ComparisonRow, key: str) -> NumericItem:
    """A baseline's cell: continuous "normalised (data units²)", tokens "cross-entropy ·
    accuracy"; sorted by the first. One value: every seed has the same data."""
    value = row.stats[key].mean
    if key in ("chance", "majority"):
        accuracy = row.stats[f"{key}_accuracy"].mean
        text = format_number(value) + (f" · {format_number(accuracy, True)}"
                                       if accuracy is not None else "")
    else:
        data = row.stats[f"{key}_data"].mean
        text = format_number(value) + (f" ({format_number(data)})" if data is not None else "")
    item = NumericItem(text if value is not None else "–", value)
    beaten = row.beats.get(key)
    if beaten is not None:
        item.setToolTip("beaten by this cell" if beaten else "NOT beaten by this cell")
    return item


class ComparisonTableWidget(QtWidgets.QTableWidget):
    """One row per cell, sortable by any column (numbers as numbers)."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(0, len(TABLE_COLUMNS), parent)
        self.keys = [key for key, _h, _t in TABLE_COLUMNS]
        for i, (_key, header, tip) in enumerate(TABLE_COLUMNS):
            item = QtWidgets.QTableWidgetItem(header)
            item.setToolTip(tip)
            self.setHorizontalHeaderItem(i, item)
        self.verticalHeader().setVisible(False)
        self.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.setAlternatingRowColors(True)
        self.horizontalHeader().setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        self.setSortingEnabled(True)
        self.table: compare.ComparisonTable | None = None

    def column(self, key: str) -> int:
        return self.keys.index(key)

    def headers(self) -> list[str]:
        return [self.horizontalHeaderItem(i).text() for i in range(self.columnCount())]

    def set_table(self, table: compare.ComparisonTable) -> None:
        """Fill the rows; a column no run has figures for (token figures, data units,
        baselines) is hidden. Loss headers say their unit; a cell that does not beat a
        baseline has its free-running loss in red, with the notes in its tooltip."""
        self.table = table
        self._set_units(table)
        sort_column = self.horizontalHeader().sortIndicatorSection()
        sort_order = self.horizontalHeader().sortIndicatorOrder()
        self.setSortingEnabled(False)  # filling a sorted table would reorder rows mid-way
        self.setRowCount(len(table.rows))
        for r, row in enumerate(table.rows):
            color = style.cell_color(row.cell)
            cell_item = QtWidgets.QTableWidgetItem(row.cell)
            cell_item.setIcon(color_swatch(color))
            cell_item.setForeground(QtGui.QBrush(QtGui.QColor(color)))
            font = cell_item.font()
            font.setBold(True)
            cell_item.setFont(font)
            cell_item.setToolTip(f"{row.cell}: runs {', '.join(row.run_ids) or '–'}\nstatus: "
                                 f"{', '.join(row.statuses) or '–'}")
            self.setItem(r, 0, cell_item)
            self.setItem(r, 1, runs_item(row))
            params = row.parameters
            self.setItem(r, 2, NumericItem(f"{params:,}" if params is not None else "–",
                                           float(params) if params is not None else None))
            for key in self.keys[3:]:
                stat = row.stats[key]
                if key in BASELINE_COLUMNS:
                    self.setItem(r, self.column(key), baseline_item(row, key))
                    continue
                item = NumericItem(format_stat(stat, key in PERCENT_COLUMNS), stat.mean)
                seeds = [f"seed {s}: {format_number(v, key in PERCENT_COLUMNS)}"
                         for s, v in zip(row.counted_seeds, stat.values)]
                if row.running:
                    seeds.append(f"{row.running} run(s) still training: not counted "
                                 f"until they end")
                item.setToolTip("\n".join(seeds))
                self.setItem(r, self.column(key), item)
            if row.notes:
                self._mark_not_beaten(r, row, cell_item)
        for key in OPTIONAL_COLUMNS:
            empty = all(row.stats[key].mean is None for row in table.rows)
            self.setColumnHidden(self.column(key), empty)
        self.setSortingEnabled(True)
        if sort_column >= 0:
            self.sortItems(sort_column, sort_order)
        self.resizeColumnsToContents()
        self.resizeRowsToContents()
        self._fit_height()

    def _set_units(self, table: compare.ComparisonTable) -> None:
        """Each loss column's header with its unit (cross-entropy or MSE on normalised
        data; the data-unit column in units²)."""
        for i, (key, header, tip) in enumerate(TABLE_COLUMNS):
            item = self.horizontalHeaderItem(i)
            if key in (CONTINUOUS_ONLY if table.kind == "tokens" else ("chance", "majority")):
                item.setText(header)  # not this data's figure: hidden, as declared
                item.setToolTip(tip)
                continue
            if key == "val_loss_free_running_data":
                unit = table.unit("val_loss_free_running_data")
            elif key in ("chance", "majority"):
                unit = f"{table.unit(key)}, accuracy"
            elif key in compare.LOSS_COLUMNS:
                unit = table.unit(key)
                if key in BASELINE_COLUMNS:
                    unit += "\n(data units²)"
            else:
                continue
            item.setText(f"{header}\n{unit}")
            item.setToolTip(f"{tip}. Unit: {unit.replace(chr(10), ' ')}")

    def _mark_not_beaten(self, r: int, row: compare.ComparisonRow, cell_item: Any) -> None:
        notes = "\n".join(row.notes)
        cell_item.setToolTip(f"{cell_item.toolTip()}\n{notes}")
        for key in ("val_loss_free_running", "best_val_loss", "token_accuracy"):
            item = self.item(r, self.column(key))
            if item is not None:
                item.setForeground(QtGui.QBrush(QtGui.QColor(NOT_BEATEN_COLOR)))
                item.setToolTip(f"{item.toolTip()}\n{notes}".strip())

    def _fit_height(self) -> None:
        """Tall enough for every row (five cells at most) without scrolling; room for a
        horizontal scroll bar only when the columns are wider than the table."""
        rows = sum(self.rowHeight(r) for r in range(self.rowCount()))
        columns = sum(self.columnWidth(c) for c in range(self.columnCount())
                      if not self.isColumnHidden(c))
        scrollbar = (self.horizontalScrollBar().sizeHint().height()
                     if columns > self.width() - 2 * self.frameWidth() else 0)
        height = self.horizontalHeader().sizeHint().height() + rows + 2 * self.frameWidth() + scrollbar
        self.setFixedHeight(min(max(height, 60), 320))

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        if event.size().width() != event.oldSize().width():
            self._fit_height()

    def column_values(self, key: str) -> list[Any]:
        """What a column holds, top to bottom as shown (numbers, or the cell names)."""
        c = self.column(key)
        out = []
        for r in range(self.rowCount()):
            item = self.item(r, c)
            out.append(item.value if isinstance(item, NumericItem) else item.text())
        return out


# --- the view -----------------------------------------------------------------------------


class CompareView(QtWidgets.QWidget):
    """A comparison of cells: loss bands, gradient profiles, trajectories and a table.

    Give it a saved `comparison` (workbench.compare.Comparison) to show, and/or a
    running `session` (ui.sessions.CompareSession) to follow live.
    """

    def __init__(self, comparison: Comparison | None = None, session: Any | None = None,
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Comparison")
        self.comparison: Comparison | None = None
        self.session = session
        self._cells: list[str] = []
        self._done: dict[str, RunData] = {}  # finished runs' figures, by run id
        self._live: dict[str, list] = {}  # running runs' events, by run id
        self._current_run: str | None = None
        self._comparison_id = ""
        self._status = ""
        self._loss_label = "loss"
        self.runs: list[RunData] = []
        self.throttle = style.RedrawThrottle(self._redraw, LIVE_REDRAW_MS, parent=self)

        self.header = QtWidgets.QLabel("No comparison yet.")
        self.header.setWordWrap(True)
        self.header.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.progress = QueueProgress()
        self.progress.setVisible(session is not None)
        self.progress.cancel_clicked.connect(self._on_cancel_clicked)
        self.export_button = QtWidgets.QToolButton()
        self.export_button.setText("Export")
        self.export_button.setPopupMode(QtWidgets.QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QtWidgets.QMenu(self.export_button)
        menu.addAction("Table as CSV…", self._on_export_table_chosen)
        menu.addSeparator()
        for name, label in (("loss", "Loss plot…"), ("gradient", "Gradient plot…"),
                            ("trajectories", "Trajectories…")):
            menu.addAction(label, lambda n=name: self._on_export_plot_chosen(n))
        self.export_button.setMenu(menu)

        self.loss_plot = LossBandsPlot()
        self.gradient_plot = GradientProfilesPlot()
        self.trajectories = TrajectoryGrid()
        self.table = ComparisonTableWidget()

        top = QtWidgets.QHBoxLayout()
        top.addWidget(self.header, 1)
        top.addWidget(self.export_button)
        plots = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        plots.addWidget(self.loss_plot)
        plots.addWidget(self.gradient_plot)
        self.splitter = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        self.splitter.addWidget(plots)
        self.splitter.addWidget(self.trajectories)
        self.splitter.setStretchFactor(0, 5)
        self.splitter.setStretchFactor(1, 3)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.progress)
        layout.addWidget(self.splitter, 1)
        layout.addWidget(self.table)  # as tall as its rows; the plots get the rest
        self.resize(1400, 900)

        if session is not None:
            session.events_ready.connect(self._on_session_event)
            session.finished.connect(self._on_session_finished)
            session.state_changed.connect(self._on_session_state_changed)
        if comparison is not None:
            self.set_comparison(comparison)

    # -- public API --------------------------------------------------------------

    def set_comparison(self, comparison: Comparison) -> None:
        """Show a saved comparison: its runs' figures, read from their folders."""
        self.comparison = comparison
        self._comparison_id = comparison.comparison_id
        self._status = comparison.status
        self._cells = list(comparison.cells)
        self._live, self._current_run = {}, None
        runs = comparison.run_data()
        self._done = {r.run_id: r for r in runs}
        self._loss_label = "loss"  # set from the runs' target kind when drawn
        self.throttle.dirty = True
        self.redraw_now()

    def set_runs(self, runs: Iterable[RunData], cells: Sequence[str] | None = None) -> None:
        """Show these runs' figures (grouped by cell, in `cells` order)."""
        runs = list(runs)
        self._done = {r.run_id: r for r in runs}
        self._live, self._current_run = {}, None
        self._cells = list(cells) if cells is not None else list(dict.fromkeys(r.cell for r in runs))
        self.throttle.dirty = True
        self.redraw_now()

    def add_event(self, event: object) -> None:
        """Take one event of a live comparison (queue events and the runs' own)."""
        if self._take(event):
            self.throttle.mark_dirty()

    def add_events(self, events: Iterable[object]) -> None:
        """Take a batch of events (as a CompareSession forwards them)."""
        changed = False
        for event in events:
            changed = self._take(event) or changed
        if changed:
            self.throttle.mark_dirty()

    def clear(self) -> None:
        self.comparison = None
        self._cells, self._done, self._live, self._current_run = [], {}, {}, None
        self._comparison_id = self._status = ""
        self.throttle.dirty = True
        self.redraw_now()

    def redraw_now(self) -> None:
        self.throttle.flush()

    def export(self, path: str | Path, plot: str = "loss") -> None:
        """Write one plot ("loss", "gradient" or "trajectories") to PNG or SVG."""
        self.redraw_now()
        panels = {"loss": self.loss_plot, "gradient": self.gradient_plot,
                  "trajectories": self.trajectories}
        if plot not in panels:
            raise ValueError(f"export: unknown plot {plot!r}; expected one of {', '.join(PLOTS)}")
        panels[plot].export(path)

    def export_table(self, path: str | Path) -> None:
        """Write the comparison table (mean and std per figure) to CSV."""
        from workbench.exports import write_table_csv

        self.redraw_now()
        write_table_csv(compare.comparison_rows(self.runs, cells=self._cells), path)

    @property
    def cells(self) -> list[str]:
        return list(self._cells)

    # -- live events -------------------------------------------------------------

    def _take(self, event: object) -> bool:
        self.progress.add_event(event)
        if isinstance(event, compare.ComparisonStarted):
            self.comparison = None
            self._comparison_id, self._status = event.comparison_id, "running"
            self._cells = list(event.cells)
            self._done, self._live, self._current_run = {}, {}, None
            return True
        if isinstance(event, compare.QueuedRunStarted):
            self._current_run = event.run_id
            self._live[event.run_id] = []
            return True
        if isinstance(event, compare.QueuedRunFinished):
            events = self._live.pop(event.run_id, None)
            if events:
                self._done[event.run_id] = RunData.from_events(events)
            self._current_run = None
            return True
        if isinstance(event, compare.ComparisonFinished):
            self._status = event.status
            return True
        if self._current_run is not None and isinstance(
                event, (RunStarted, StepMetrics, EpochMetrics, ProbeEvent, RunFinished)):
            self._live[self._current_run].append(event)
            if isinstance(event, RunStarted):
                self._loss_label = style.loss_label(event.dataset, event.config)
            return True
        return False

    def _on_session_event(self, batch: tuple) -> None:
        self.add_events(batch)

    def _on_session_finished(self, comparison: Comparison | None) -> None:
        """The queue ended: show the saved comparison (its records are complete) and let
        go of the session, so that the next comparison it runs is not drawn here."""
        self._detach_session()
        if comparison is not None:
            self.set_comparison(comparison)
        self.progress.cancel_button.setEnabled(False)

    def _detach_session(self) -> None:
        session, self.session = self.session, None
        if session is None:
            return
        for signal, slot in ((session.events_ready, self._on_session_event),
                             (session.finished, self._on_session_finished),
                             (session.state_changed, self._on_session_state_changed)):
            with contextlib.suppress(RuntimeError, TypeError):
                signal.disconnect(slot)

    def _on_session_state_changed(self, state: str) -> None:
        if state == "cancelling":
            self.progress.set_cancelling()

    def _on_cancel_clicked(self) -> None:
        if self.session is not None:
            self.session.cancel()

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 - Qt's name
        """Closing during a comparison cancels the queue and waits for it to stop."""
        if self.session is not None and self.session.is_running():
            self.session.shutdown(CLOSE_WAIT_MS)
        super().closeEvent(event)

    # -- export dialogs ----------------------------------------------------------

    def _on_export_table_chosen(self) -> None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(
            self, "Export the comparison table", f"{self._comparison_id or 'comparison'}.csv",
            "CSV files (*.csv)")
        if path:
            self.export_table(path if path.lower().endswith(".csv") else path + ".csv")

    def _on_export_plot_chosen(self, plot: str) -> None:
        path, chosen = QtWidgets.QFileDialog.getSaveFileName(
            self, f"Export the {plot} plot", f"{self._comparison_id or 'comparison'}-{plot}.png",
            "PNG image (*.png);;SVG image (*.svg)")
        if not path:
            return
        if Path(path).suffix.lower() not in (".png", ".svg"):
            path += ".svg" if "svg" in chosen.lower() else ".png"
        try:
            self.export(path, plot)
        except (OSError, ValueError) as exc:
            QtWidgets.QMessageBox.warning(self, "Export failed", f"{path}: {exc}")

    # -- drawing -----------------------------------------------------------------

    def _current_runs(self) -> list[RunData]:
        runs = list(self._done.values())
        for events in self._live.values():
            if events and isinstance(events[0], RunStarted):
                runs.append(RunData.from_events(events))
        return runs

    def _redraw(self) -> None:
        runs = self._current_runs()
        self.runs = runs
        cells = self._cells or list(dict.fromkeys(r.cell for r in runs))
        if runs and self._loss_label == "loss":
            kind = self._target_kind()
            if kind:
                self._loss_label = style.loss_label({"target_kind": kind})
        self.loss_plot.set_runs(runs, cells, self._loss_label)
        self.gradient_plot.set_runs(runs, cells)
        self.trajectories.set_runs(runs, cells)
        self.table.set_table(compare.comparison_rows(runs, cells=cells))
        self._update_header(runs, cells)

    def _target_kind(self) -> str | None:
        """"tokens" when any run has token accuracies, else "continuous"."""
        if any(e.token_accuracy is not None for r in self._done.values() for e in r.epochs):
            return "tokens"
        return "continuous" if self._done else None

    def _update_header(self, runs: list[RunData], cells: list[str]) -> None:
        if not cells:
            self.header.setText("No comparison yet.")
            return
        swatches = " vs ".join(f"<b style='color:{style.cell_color(c)}'>{c}</b>" for c in cells)
        parts = [f"<span style='font-size: 14px'>{swatches}</span>"]
        details = [f"{len(runs)} run{'s' if len(runs) != 1 else ''}"]
        if self.comparison is not None:
            c = self.comparison
            details.append(f"seeds {', '.join(str(s) for s in c.seeds)}")
            config = c.base_config
            data = Path(str(config.get("data", {}).get("data", ""))).name
            model = config.get("model", {})
            training = config.get("training", {})
            if data:
                details.append(f"data {data}")
            if model:
                details.append(f"hidden {model.get('hidden')} × {model.get('layers', 1)} layer(s)")
            budget = training.get("epochs")
            details.append(f"{budget} epochs" if budget else f"{training.get('steps', '?')} steps")
            details.append(f"created {c.created_iso[:16].replace('T', ' ')}")
        table = self.table.table
        if table is not None:
            by = sorted({r.best_by for r in table.rows if r.run_ids})
            if by:
                details.append(f"best epoch by {', '.join(by)}")
            behind = [r.cell for r in table.rows if r.notes]
            if behind:
                parts[0] += (f" <span style='color:{NOT_BEATEN_COLOR}'>{', '.join(behind)}: "
                             "not better than a baseline (see the table)</span>")
        if self._status:
            details.append(f"status: {self._status}")
        if self._comparison_id:
            details.append(self._comparison_id)
        self.header.setText(parts[0] + "<br>" + " · ".join(details))
        self.setWindowTitle(f"Comparison: {' vs '.join(cells)}")
