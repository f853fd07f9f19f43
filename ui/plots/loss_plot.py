"""The loss panel: training loss per step and validation losses per epoch.

What it shows:
- the training loss of every step, raw (faint) and smoothed with a bias-corrected
  exponential moving average (as TensorBoard since its PR #639: the first smoothed
  value equals the first raw value instead of starting near zero);
- validation loss per epoch, teacher-forced and free-running (the decoder fed its
  own predictions), at the training step where the epoch ended;
- the value under the mouse cursor, a log-y toggle and the smoothing strength;
- other runs overlaid (smoothed training loss and teacher-forced validation), each
  in its own colour with a legend entry;
- the run's baselines (workbench.baselines: persistence, seasonal persistence and the
  training mean; tokens: chance and the majority token's frequencies) as labelled
  dashed horizontal lines in the same units as the loss (MSE on normalised data, or
  cross-entropy), and a note in the title when the best free-running validation loss
  does not beat one of them. The axis label says the unit; the readout under the
  cursor gives the data-unit value too where one scale converts it.

Data arrives as workbench.events; it is appended to numpy buffers and drawn by a
throttled timer (see style.RedrawThrottle), so 100k steps stay cheap.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from ui.plots import axes, common, figure, notes, style
from ui.plots import legend as legends
from workbench import baselines, units
from workbench.events import EpochMetrics, RunStarted, StepMetrics
from workbench.smoothing import DebiasedEma, smooth  # noqa: F401 - smooth: re-exported

DEFAULT_SMOOTHING = 0.9
MAX_SMOOTHING = 0.999
EMPTY_TEXT = ("The loss appears here once training starts\n"
              "(or pick a run in the Runs panel to see its loss)")
BASELINE_COLORS = {"persistence": "#6b6b6b", "seasonal_persistence": "#8c564b",
                   "mean": "#a6a61c", "chance": "#6b6b6b", "majority": "#a6a61c"}


class GrowingArray:
    """An append-only float64 buffer with amortised O(1) appends; `.view` is the data."""

    def __init__(self, capacity: int = 1024) -> None:
        self._data = np.empty(capacity, dtype=np.float64)
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def view(self) -> np.ndarray:
        return self._data[: self._size]

    def append(self, value: float) -> None:
        if self._size == self._data.size:
            bigger = np.empty(self._data.size * 2, dtype=np.float64)
            bigger[: self._size] = self._data[: self._size]
            self._data = bigger
        self._data[self._size] = value
        self._size += 1

    def extend(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64)
        need = self._size + values.size
        if need > self._data.size:
            bigger = np.empty(max(need, self._data.size * 2), dtype=np.float64)
            bigger[: self._size] = self._data[: self._size]
            self._data = bigger
        self._data[self._size:need] = values
        self._size = need

    def clear(self) -> None:
        self._size = 0


class SmoothedLoss:
    """A run's smoothed training loss, kept in step with its raw buffer: only the
    values not yet smoothed are smoothed at each redraw."""

    def __init__(self, weight: float = DEFAULT_SMOOTHING) -> None:
        self._ema = DebiasedEma(weight)
        self.smoothed = GrowingArray()

    @property
    def weight(self) -> float:
        return self._ema.weight

    def reset(self, weight: float | None = None) -> None:
        self._ema.reset(weight)
        self.smoothed.clear()

    def catch_up(self, raw: np.ndarray) -> np.ndarray:
        """Smooth the values of `raw` not yet smoothed; return all smoothed values."""
        start = len(self.smoothed)
        if start < raw.size:
            self.smoothed.extend(self._ema.update(raw[start:]))
        return self.smoothed.view


@dataclass
class _RunData(common.RunHeader):
    """One run's loss history, as buffers."""

    steps: GrowingArray = field(default_factory=GrowingArray)
    losses: GrowingArray = field(default_factory=GrowingArray)
    ema: SmoothedLoss = field(default_factory=SmoothedLoss)
    val_steps: GrowingArray = field(default_factory=lambda: GrowingArray(64))
    val_tf: GrowingArray = field(default_factory=lambda: GrowingArray(64))
    val_fr: GrowingArray = field(default_factory=lambda: GrowingArray(64))
    val_epochs: list[int] = field(default_factory=list)
    loss_label: str | None = None
    baselines: dict | None = None  # the run's record (workbench.baselines)
    data_factor: float | None = None  # normalised MSE -> data units²
    best_token_accuracy: float | None = None

    def add(self, event: object) -> bool:
        """Take what this panel uses from `event`; True when anything changed."""
        if isinstance(event, StepMetrics):
            self.steps.append(event.step)
            self.losses.append(event.loss)
            return True
        if isinstance(event, EpochMetrics):
            self.val_steps.append(event.step)
            self.val_tf.append(event.val_loss)
            self.val_fr.append(event.val_loss_free_running)
            self.val_epochs.append(event.epoch)
            if event.token_accuracy is not None:
                self.best_token_accuracy = max(event.token_accuracy,
                                               self.best_token_accuracy or 0.0)
            return True
        if isinstance(event, RunStarted):
            self.loss_label = style.loss_label(event.dataset, event.config)
            self.baselines = baselines.recorded({"dataset": event.dataset})
            self.data_factor = (units.data_unit_factor(event.normalization)
                                if units.target_kind(event.dataset) == "continuous" else None)
        return self.take_header(event)

    def verdict(self) -> baselines.Verdict:
        """Whether the best validation losses so far beat the run's baselines."""
        def lowest(values: np.ndarray) -> float | None:
            finite = values[np.isfinite(values)]
            return float(finite.min()) if finite.size else None

        return baselines.judge(self.baselines, loss_free_running=lowest(self.val_fr.view),
                               loss=lowest(self.val_tf.view),
                               token_accuracy=self.best_token_accuracy)


@dataclass
class _Overlay:
    label: str
    color: str
    data: _RunData
    train_curve: pg.PlotDataItem
    val_curve: pg.PlotDataItem


class LossPlot(common.Overlays, QtWidgets.QWidget):
    """Training and validation loss of a run, live or replayed, with overlaid runs."""

    smoothing_changed = QtCore.Signal(float)  # the new EMA weight
    log_y_changed = QtCore.Signal(bool)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._run = _RunData()
        self._overlays: dict[str, _Overlay] = {}
        self.baseline_curves: dict[str, pg.PlotDataItem] = {}  # name -> dashed line
        self.baseline_values: dict[str, float] = {}  # name -> its loss
        self._smoothing_dirty = False
        self._open_kind = "continuous"  # the open dataset's targets (set_dataset)
        self.throttle = style.RedrawThrottle(self._redraw, parent=self)
        self._build_controls()
        self._build_plot()

    # -- construction ------------------------------------------------------------

    def _build_controls(self) -> None:
        self.smoothing_slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.smoothing_slider.setRange(0, int(MAX_SMOOTHING * 1000))
        self.smoothing_slider.setValue(int(DEFAULT_SMOOTHING * 1000))
        self.smoothing_slider.setMinimumWidth(60)
        self.smoothing_slider.setMaximumWidth(160)
        self.smoothing_slider.setToolTip(
            "Strength of the exponential moving average of the training loss "
            "(0 = no smoothing). Bias-corrected: the curve starts at the first loss.")
        self.smoothing_value = QtWidgets.QLabel(f"{DEFAULT_SMOOTHING:.3f}")
        self.smoothing_slider.valueChanged.connect(self._on_smoothing_slider_moved)

        self.log_y_checkbox = QtWidgets.QCheckBox("log y")
        self.log_y_checkbox.setToolTip("Logarithmic loss axis")
        self.log_y_checkbox.toggled.connect(self._on_log_y_toggled)

        self.cursor_label = style.readout_label()
        self._controls = common.control_bar(
            "Smoothing", self.smoothing_slider, self.smoothing_value, common.READOUT_SPACING,
            self.log_y_checkbox, readout=self.cursor_label)

    def _build_plot(self) -> None:
        self.plot_widget = style.make_plot_widget(
            bottom=style.LABEL_TRAINING_STEP, left=common.loss_axis_label(self._open_kind),
            title="Loss")
        self.plot_item: pg.PlotItem = self.plot_widget.getPlotItem()
        self.legend = legends.install(self.plot_item, "corner")
        axes.use_log_axis(self.plot_item)
        color = style.DEFAULT_CELL_COLOR
        self.raw_curve = style.long_curve(self.plot_item.plot(
            pen=pg.mkPen(style.with_alpha(color, 0.25), width=1), name="training (raw)"))
        self.smoothed_curve = style.long_curve(self.plot_item.plot(
            pen=pg.mkPen(color, width=2), name="training (smoothed)"))
        self.val_teacher_forced_curve = self.plot_item.plot(
            pen=pg.mkPen(style.VAL_TEACHER_FORCED_COLOR, width=2),
            symbol="o", symbolSize=7, symbolBrush=style.VAL_TEACHER_FORCED_COLOR,
            symbolPen=pg.mkPen("w"), name="validation, teacher-forced")
        self.val_free_running_curve = self.plot_item.plot(
            pen=pg.mkPen(style.VAL_FREE_RUNNING_COLOR, width=2, style=QtCore.Qt.PenStyle.DashLine),
            symbol="t", symbolSize=8, symbolBrush=style.VAL_FREE_RUNNING_COLOR,
            symbolPen=pg.mkPen("w"), name="validation, free-running")
        for curve in (self.val_teacher_forced_curve, self.val_free_running_curve):
            curve.setZValue(5)

        self.cursor_line = pg.InfiniteLine(
            angle=90, movable=False, pen=pg.mkPen("#999999", style=QtCore.Qt.PenStyle.DotLine))
        self.cursor_line.setVisible(False)
        self.plot_item.addItem(self.cursor_line, ignoreBounds=True)
        self._mouse_proxy = pg.SignalProxy(
            self.plot_widget.scene().sigMouseMoved, rateLimit=30, slot=self._on_mouse_moved)
        self._init_overlay_guard(self.plot_item.getViewBox())
        self.empty = notes.EmptyState(self.plot_item, EMPTY_TEXT)
        common.panel_layout(self, self._controls, self.plot_widget)

    # -- public API --------------------------------------------------------------

    def add_event(self, event: object) -> None:
        """Take one event (see `add_events`)."""
        self.add_events((event,))

    def add_events(self, events: Iterable[object]) -> None:
        """Take a batch of events, live or replayed (unused types are ignored). The
        redraw follows at the throttle's next tick (`redraw_now` draws at once)."""
        started = changed = False
        for event in events:
            if self._run.add(event):
                changed = True
                started = started or isinstance(event, RunStarted)
        if started:
            self._on_run_started()
        if changed:
            self.throttle.mark_dirty()

    def clear(self) -> None:
        """Forget the current run (a new run starts); overlays stay."""
        weight = self._run.ema.weight
        self._run = _RunData()
        self._run.ema.reset(weight)
        self._on_run_started()
        self.cursor_label.setText("")
        self.throttle.dirty = True
        self.throttle.flush()

    def set_dataset(self, kind: str, name: str | None = None) -> None:
        """The open dataset's target kind ("tokens" or "continuous") and file name: the
        loss axis says its units while no run is shown, and overlays are checked
        against it."""
        self._open_kind = "tokens" if kind == "tokens" else "continuous"
        self.set_open_dataset(common.DataFacts(name or "the open dataset", self._open_kind))

    def _units_changed(self, facts: common.DataFacts | None) -> None:
        if not self._run.run_id:  # the own run's label is its own (RunStarted)
            kind = facts.kind if facts is not None else self._open_kind
            self.plot_item.setLabel("left", common.loss_axis_label(kind), color=style.FOREGROUND)

    @property
    def loss_axis_label(self) -> str:
        """The loss axis's label as shown (with its unit)."""
        return self.plot_item.getAxis("left").labelText

    def _add_overlay(self, key: str, label: str, events: list, color: str | None = None) -> None:
        color = self._claim_overlay(key, color, self._run.cell)
        data = _RunData()
        data.ema.reset(self._run.ema.weight)
        for event in events:
            data.add(event)
        train = style.long_curve(self.plot_item.plot(pen=pg.mkPen(color, width=2), name=label))
        val = self.plot_item.plot(
            pen=pg.mkPen(color, width=1.5, style=QtCore.Qt.PenStyle.DashLine),
            symbol="o", symbolSize=6, symbolBrush=color, symbolPen=pg.mkPen("w"),
            name=f"{label}: validation")
        for item in (train, val):
            item.setZValue(2)
        self._overlays[key] = _Overlay(label, color, data, train, val)
        self._draw_overlay(self._overlays[key])
        self.throttle.mark_dirty()  # the empty state and the legend's corner

    def _drop_overlay(self, key: str) -> None:
        overlay = self._overlays.pop(key, None)
        if overlay is None:
            return
        for item in (overlay.train_curve, overlay.val_curve):
            self.plot_item.removeItem(item)  # also removes its legend entry

    def export(self, path: str | Path, *, scale: float | None = None,
               width: int | None = None) -> None:
        """Write the plot to PNG (at `width` px, or `scale` × its size on screen, 2× by
        default) or SVG, by the file's extension, without the cursor line."""
        self.redraw_now()
        figure.export_figure(self.plot_item, path, scale=scale, width=width,
                             hover=[self.cursor_line])

    # -- settings ----------------------------------------------------------------

    @property
    def smoothing(self) -> float:
        return self._run.ema.weight

    def set_smoothing(self, weight: float) -> None:
        """EMA weight in [0, 0.999]; 0 draws the raw loss."""
        self.smoothing_slider.setValue(round(min(max(weight, 0.0), MAX_SMOOTHING) * 1000))

    def set_log_y(self, on: bool) -> None:
        self.log_y_checkbox.setChecked(on)

    def redraw_now(self) -> None:
        """Draw pending data at once instead of at the next timer tick."""
        self.throttle.flush()

    # -- handlers ----------------------------------------------------------------

    def _on_run_started(self) -> None:
        color = style.cell_color(self._run.cell)
        self.raw_curve.setPen(pg.mkPen(style.with_alpha(color, 0.25), width=1))
        self.smoothed_curve.setPen(pg.mkPen(color, width=2))
        self.plot_item.setLabel("left", self._run.loss_label
                                or common.loss_axis_label(self._open_kind),
                                color=style.FOREGROUND)
        self._show_baselines()
        self._recheck_overlays()

    def _show_baselines(self) -> None:
        """One dashed, labelled line per baseline of the run (in the loss's units)."""
        for curve in self.baseline_curves.values():
            self.plot_item.removeItem(curve)  # also its legend entry
        self.baseline_curves, self.baseline_values = {}, {}
        for name, value in baselines.losses(self._run.baselines, "normalized").items():
            if value is None:
                continue
            curve = self.plot_item.plot(
                pen=pg.mkPen(BASELINE_COLORS.get(name, "#6b6b6b"), width=1.5,
                             style=QtCore.Qt.PenStyle.DashLine),
                name=f"baseline: {baselines.TITLES[name]} ({value:.3g})")
            curve.setZValue(1)
            self.baseline_curves[name], self.baseline_values[name] = curve, value

    def _on_smoothing_slider_moved(self, value: int) -> None:
        weight = value / 1000.0
        self.smoothing_value.setText(f"{weight:.3f}")
        self._run.ema.reset(weight)
        for overlay in self._overlays.values():
            overlay.data.ema.reset(weight)
        self._smoothing_dirty = True
        self.throttle.mark_dirty()
        self.smoothing_changed.emit(weight)

    def _on_log_y_toggled(self, on: bool) -> None:
        self.plot_item.setLogMode(x=False, y=on)
        self.plot_item.enableAutoRange()
        self.log_y_changed.emit(on)

    def _on_mouse_moved(self, args: tuple) -> None:
        pos = args[0]
        vb = self.plot_item.getViewBox()
        if not vb.sceneBoundingRect().contains(pos):
            self.cursor_line.setVisible(False)
            return
        x = vb.mapSceneToView(pos).x()
        self.cursor_label.setText(self.describe_step(x))
        self.cursor_line.setPos(x)
        self.cursor_line.setVisible(True)

    def describe_step(self, x: float) -> str:
        """The values at the training step nearest to `x`, as shown under the cursor."""
        run = self._run
        steps = run.steps.view
        if steps.size == 0:
            return ""
        i = int(np.clip(np.searchsorted(steps, x), 0, steps.size - 1))
        if i > 0 and abs(steps[i - 1] - x) < abs(steps[i] - x):
            i -= 1
        smoothed = run.ema.catch_up(run.losses.view)
        text = (f"step {int(steps[i]):,}: loss {run.losses.view[i]:.4g}, "
                f"smoothed {smoothed[i]:.4g}")
        if run.data_factor is not None:
            text += f" ({smoothed[i] * run.data_factor:.4g} data units²)"
        vs = run.val_steps.view
        j = int(np.searchsorted(vs, steps[i], side="right")) - 1
        if j >= 0:
            text += (f"  |  validation (epoch {run.val_epochs[j]}): "
                     f"teacher-forced {run.val_tf.view[j]:.4g}, "
                     f"free-running {run.val_fr.view[j]:.4g}")
        return text

    # -- drawing -----------------------------------------------------------------

    def _redraw(self) -> None:
        run = self._run
        steps, losses = run.steps.view, run.losses.view
        self.raw_curve.setData(steps, losses)
        self.smoothed_curve.setData(steps, run.ema.catch_up(losses))
        self.val_teacher_forced_curve.setData(run.val_steps.view, run.val_tf.view)
        self.val_free_running_curve.setData(run.val_steps.view, run.val_fr.view)
        self._draw_baselines()
        if self._smoothing_dirty:
            for overlay in self._overlays.values():
                self._draw_overlay(overlay)
            self._smoothing_dirty = False
        title = "Loss"
        if run.run_id:
            title += f": {run.run_id}"
        if run.status:
            title += f" ({run.status})"
        behind = [name for name, beats in run.verdict().beats.items() if beats is False]
        if behind:
            title += " – does not beat " + ", ".join(baselines.NOTE_NAMES[n] for n in behind)
        style.set_title(self.plot_item, title)
        self.empty.update(bool(run.run_id) or bool(self._overlays))
        legends.choose_corner(self.plot_item, self.legend)

    def _draw_baselines(self) -> None:
        """Each baseline line spans the steps drawn so far (at least step 0 to 1)."""
        run = self._run
        last = max([1.0, *run.steps.view[-1:], *run.val_steps.view[-1:]])
        first = float(run.steps.view[0]) if len(run.steps) else 0.0
        for name, curve in self.baseline_curves.items():
            curve.setData([first, last], [self.baseline_values[name]] * 2)

    def _draw_overlay(self, overlay: _Overlay) -> None:
        data = overlay.data
        overlay.train_curve.setData(data.steps.view, data.ema.catch_up(data.losses.view))
        overlay.val_curve.setData(data.val_steps.view, data.val_tf.view)


if __name__ == "__main__":
    from ui.plots.demo import run_standalone

    raise SystemExit(run_standalone(LossPlot, "Loss"))
