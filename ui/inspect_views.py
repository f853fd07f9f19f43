"""The Inspect window's views of one explanation (workbench.explain.Explanation).

`ExplanationView` shows, at once, for one run on one input:

- the sequences: input, generated output, teacher-forced output and target (tokens as
  text; continuous values as curves on one time axis), and the notes;
- the hidden state as a heatmap, units x time (encoder steps, then decoder steps, split
  by a dashed line), h_t or, for an LSTM, c_t, any layer; units in their own order or
  sorted by variance over time, by mean activation, or by correlation with the selected
  unit. Clicking a row selects that unit, whose trace is drawn under the heatmap;
- "Select View" (as LSTMVis has it): dragging the shaded span under the heatmap picks
  time steps, and the units whose value stays above a threshold over the whole span are
  marked beside their rows and listed;
- the gates per step (LSTM, GRU): the mean over units of each sigmoid gate, and the
  selected unit's own (dashed);
- the connectivity matrix, output steps x input steps, on a log colour scale.

Two views side by side (the panel's "compare with") share the time axes and the
connectivity's colour scale, so the same input through two runs lines up.

Everything here runs in the GUI thread on arrays already computed: sorting, selecting
and painting are numpy and pyqtgraph calls on at most a few hundred units. An edit must
not block that thread for long (the issue's rule: 50 ms), so a repaint redraws as little
as it can: no plot auto-ranges (a range is set when it changes, and a new range makes
every linked axis generate its ticks anew), the axes are drawn from pixmap caches, the
colour levels sit on nice bounds (the colour bars rarely change), word-wrapped labels
never shrink (a new line count re-lays the window out), and the gates are painted one
event-loop turn after the states, so that Qt draws the two in separate blocks.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from ui.plots import common, style
from ui.plots import legend as legends
from ui.plots.gates_plot import gate_color, gate_label

SORTS = ("as stored", "variance", "mean activation", "correlation with selected unit",
         "on over the span first")
HIDDEN_CMAP = "CET-D1"  # diverging: blue (negative), white (0), red (positive)
CONNECTIVITY_CMAP = style.SEQUENTIAL_CMAP
SPAN_BRUSH = (0, 114, 178, 40)
MARK_COLOR = "#D55E00"
SELECTED_COLOR = "#222222"
DEFAULT_THRESHOLD = 0.3


# -- numpy helpers (tests use them directly) -----------------------------------------------


def unit_order(values: np.ndarray, sort: str, selected: int | None = None,
               on: Sequence[int] = ()) -> np.ndarray:
    """The display order of the units (rows of `values`, H x T): index of the unit shown
    in each row, from the top."""
    units = values.shape[0]
    if sort == "variance":
        key = -np.nanvar(values, axis=1)
    elif sort == "mean activation":
        key = -np.nanmean(values, axis=1)
    elif sort == "correlation with selected unit":
        key = -correlation_with(values, selected if selected is not None else 0)
    elif sort == "on over the span first":
        key = np.where(np.isin(np.arange(units), list(on)), 0.0, 1.0)
    else:
        return np.arange(units)
    return np.argsort(np.nan_to_num(key, nan=np.inf), kind="stable")


def correlation_with(values: np.ndarray, unit: int) -> np.ndarray:
    """Pearson correlation over time of every unit with `unit` (H,); 0 for a constant unit
    (the unit itself: 1)."""
    centred = values - values.mean(axis=1, keepdims=True)
    norms = np.sqrt((centred**2).sum(axis=1))
    ref = centred[unit]
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = centred @ ref / (norms * norms[unit])
    corr = np.where(np.isfinite(corr), corr, 0.0)
    corr[unit] = 1.0
    return corr


def units_on(values: np.ndarray, start: int, stop: int, threshold: float) -> np.ndarray:
    """The units whose value exceeds `threshold` at every step start..stop (0-based,
    inclusive): LSTMVis's Select View."""
    start, stop = max(0, int(start)), min(values.shape[1] - 1, int(stop))
    if stop < start:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero((values[:, start:stop + 1] > threshold).all(axis=1))


def log_levels(matrices: Sequence[np.ndarray | None]) -> tuple[float, float]:
    """Shared log10 colour levels of connectivity matrices (a few decades at least)."""
    finite = [np.log10(m[np.isfinite(m) & (m > 0)]) for m in matrices if m is not None]
    finite = [f for f in finite if f.size]
    if not finite:
        return -6.0, 0.0
    values = np.concatenate(finite)
    hi = float(values.max())
    lo = max(float(values.min()), hi - 12.0)  # twelve decades: below is "gone"
    return (lo, hi) if hi - lo > 1e-9 else (lo - 0.5, hi + 0.5)


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 5 times a power of ten that is >= `value` (> 0)."""
    value = max(float(value), 1e-12)
    power = 10.0 ** np.floor(np.log10(value))
    for step in (1.0, 2.0, 5.0, 10.0):
        if step * power >= value * (1 - 1e-12):
            return float(step * power)
    return float(10 * power)


def shown_levels(levels: tuple[float, float]) -> tuple[float, float]:
    """log10 colour levels widened to whole half-decades: a new matrix whose range moves
    a little keeps the colour bar (and its ticks) as they are."""
    lo, hi = levels
    return float(np.floor(lo * 2) / 2), float(np.ceil(hi * 2) / 2)


def padded_range(lo: float, hi: float, current: tuple[float, float] | None
                 ) -> tuple[float, float]:
    """A y range for values in [lo, hi]: `current` while it holds them and is not over
    four times their spread, else one rounded outwards to a step of a nice size."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return current or (-1.0, 1.0)
    spread = max(hi - lo, 1e-9, 1e-6 * max(abs(lo), abs(hi)))
    if current is not None and current[0] <= lo and hi <= current[1] and (
            current[1] - current[0]) <= 4 * spread:
        return current
    step = nice_ceiling(spread / 4)
    return float(np.floor(lo / step - 0.5) * step), float(np.ceil(hi / step + 0.5) * step)


def log_image(matrix: np.ndarray) -> np.ndarray:
    """log10 of a connectivity matrix, NaN where it is 0 or not finite."""
    with np.errstate(divide="ignore", invalid="ignore"):
        image = np.log10(matrix)
    image[~np.isfinite(image)] = np.nan
    return image


# -- the view ----------------------------------------------------------------------------


STATES_MIN_HEIGHT = 420  # px: heatmap 140 + trace 80 + gates 110, with titles and axes
CONNECTIVITY_MIN_HEIGHT = 220  # px


class ExplanationView(QtWidgets.QWidget):
    """One explanation, every view at once (see the module docstring).

    `show_explanation(e, title)` paints; `set_options(state=, layer=, sort=, threshold=)`
    repaints from what is shown; `set_span(start, stop)` moves the Select View span;
    `select_unit(u)` as a click does. `unit_selected(int)` and `span_changed(int, int)`
    tell the panel (it mirrors the span to the other view).
    """

    unit_selected = QtCore.Signal(int)
    span_changed = QtCore.Signal(int, int)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.explanation: Any | None = None
        self.state = "h"
        self.layer = -1
        self.sort = SORTS[0]
        self.threshold = DEFAULT_THRESHOLD
        self.selected_unit = 0
        self.span = (0, 0)  # 0-based time steps, inclusive
        self.order = np.zeros(0, dtype=np.int64)
        self.on_units = np.zeros(0, dtype=np.int64)
        self.connectivity_levels: tuple[float, float] | None = None
        self._values_range: tuple[float, float] | None = None  # the values plot's y range
        self._generation = 0  # show_explanation calls: a deferred part of an older one is dropped
        self._gates_pending: int | None = None  # the call whose gates are still to paint
        self._values = np.zeros((0, 0))
        self._span_guard = False
        self._texts: dict[tuple[int, str], Any] = {}  # what was last set (unchanged: not again)
        self.title = QtWidgets.QLabel("")
        self.title.setWordWrap(True)
        self.sequences = QtWidgets.QLabel("")
        self.sequences.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.sequences.setWordWrap(True)
        self.sequences.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.selection_label = QtWidgets.QLabel("")
        self.selection_label.setWordWrap(True)
        self._build_plots()
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.title)
        layout.addWidget(self.sequences)
        layout.addWidget(self.splitter, 1)
        layout.addWidget(self.selection_label)

    # -- building ----------------------------------------------------------------------

    def _build_plots(self) -> None:
        self.states_widget = pg.GraphicsLayoutWidget()
        self.states_widget.setBackground(style.BACKGROUND)
        self.states_widget.setMinimumSize(*style.PLOT_MIN_SIZE)
        self.values_plot = self.states_widget.addPlot(row=0, col=0)
        style.style_plot_item(self.values_plot, bottom="", left="value")
        self.values_plot.addLegend(offset=(-10, 5)).setLabelTextColor(style.FOREGROUND)
        self.input_curve = self.values_plot.plot(pen=pg.mkPen("#444444", width=1.5),
                                                 name="input")
        self.generated_curve = self.values_plot.plot(pen=pg.mkPen(style.RUN_COLORS[3], width=2),
                                                     name="generated")
        self.teacher_curve = self.values_plot.plot(
            pen=pg.mkPen(style.RUN_COLORS[1], width=1.5, style=QtCore.Qt.PenStyle.DashLine),
            name="teacher-forced")
        self.target_curve = self.values_plot.plot(pen=pg.mkPen("#999999", width=1.5),
                                                  name="target")
        self.heatmap = self.states_widget.addPlot(row=1, col=0)
        style.style_plot_item(self.heatmap, bottom="", left="unit", title="Hidden state h_t")
        self.heatmap.showGrid(x=False, y=False)
        self.heatmap.invertY(True)
        self.heatmap.setMenuEnabled(False)
        self.heatmap_image = pg.ImageItem(axisOrder="row-major")
        self.heatmap.addItem(self.heatmap_image)
        self.heatmap_bar = pg.ColorBarItem(values=(-1, 1), colorMap=HIDDEN_CMAP,
                                           interactive=False, pen=style.FOREGROUND, width=12)
        self.heatmap_bar.setImageItem(self.heatmap_image, insert_in=self.heatmap)
        self.selected_box = pg.PlotCurveItem(pen=pg.mkPen(SELECTED_COLOR, width=1.5))
        self.heatmap.addItem(self.selected_box, ignoreBounds=True)
        self.on_marks = pg.ScatterPlotItem(symbol="t2", size=9, pen=None,
                                           brush=pg.mkBrush(MARK_COLOR))
        self.heatmap.addItem(self.on_marks, ignoreBounds=True)
        self.heatmap_line = common.boundary_line(0.97)
        self.heatmap.addItem(self.heatmap_line, ignoreBounds=True)
        self.heatmap.scene().sigMouseClicked.connect(self._on_clicked)

        self.trace_plot = self.states_widget.addPlot(row=2, col=0)
        style.style_plot_item(self.trace_plot, bottom="", left="unit")
        self.trace_curve = self.trace_plot.plot(pen=pg.mkPen(SELECTED_COLOR, width=1.5))
        self.trace_c_curve = self.trace_plot.plot(
            pen=pg.mkPen(SELECTED_COLOR, width=1, style=QtCore.Qt.PenStyle.DotLine))
        self.threshold_line = pg.InfiniteLine(angle=0, pen=pg.mkPen(MARK_COLOR, width=1,
                                              style=QtCore.Qt.PenStyle.DashLine))
        self.trace_plot.addItem(self.threshold_line, ignoreBounds=True)
        self.span_region = pg.LinearRegionItem(values=(0.5, 1.5), brush=pg.mkBrush(*SPAN_BRUSH))
        self.span_region.setZValue(-10)
        self.trace_plot.addItem(self.span_region, ignoreBounds=True)
        self.span_region.sigRegionChangeFinished.connect(self._on_span_dragged)
        self.trace_line = common.boundary_line(0.05, None)
        self.trace_plot.addItem(self.trace_line, ignoreBounds=True)

        self.gates_plot = self.states_widget.addPlot(row=3, col=0)
        style.style_plot_item(self.gates_plot, bottom="time step (encoder, then decoder)",
                              left="gate")
        self.gates_plot.setYRange(0, 1, padding=0.05)
        self.gates_legend = legends.install(self.gates_plot, "below", max_rows=2)
        self.gates_line = common.boundary_line(0.05, None)
        self.gates_plot.addItem(self.gates_line, ignoreBounds=True)
        self.gate_curves: dict[str, tuple[pg.PlotDataItem, pg.PlotDataItem]] = {}
        for plot in (self.trace_plot, self.gates_plot):
            plot.setXLink(self.heatmap)
        self.trace_plot.setMaximumHeight(100)
        self.trace_plot.setMinimumHeight(80)
        self.gates_plot.setMaximumHeight(150)
        self.gates_plot.setMinimumHeight(110)
        expanding = QtWidgets.QSizePolicy.Policy.Expanding
        self.heatmap.setSizePolicy(expanding, expanding)
        self.heatmap.setMinimumHeight(140)
        layout = self.states_widget.ci.layout
        for row, factor in ((0, 0), (1, 6), (2, 2), (3, 2)):
            layout.setRowStretchFactor(row, factor)
        self._show_values_plot(False)
        # The widget keeps its plots' minimums (a graphics layout does not pass them on):
        # a short window scrolls the inspector rather than squash the trace and gates.
        self.states_widget.setMinimumHeight(STATES_MIN_HEIGHT)

        self.connectivity_widget = pg.GraphicsLayoutWidget()
        self.connectivity_widget.setMinimumHeight(CONNECTIVITY_MIN_HEIGHT)
        self.connectivity_widget.setBackground(style.BACKGROUND)
        self.connectivity_widget.setMinimumSize(*style.PLOT_MIN_SIZE)
        self.connectivity = self.connectivity_widget.addPlot(row=0, col=0)
        style.style_plot_item(self.connectivity, bottom="input step", left="output step",
                              title="Connectivity")
        self.connectivity.showGrid(x=False, y=False)
        self.connectivity.invertY(True)
        self.connectivity_image = pg.ImageItem(axisOrder="row-major")
        self.connectivity.addItem(self.connectivity_image)
        self.connectivity_bar = pg.ColorBarItem(values=(-6, 0), colorMap=CONNECTIVITY_CMAP,
                                                interactive=False, pen=style.FOREGROUND,
                                                width=12)
        self.connectivity_bar.setImageItem(self.connectivity_image, insert_in=self.connectivity)
        self.connectivity_bar.getAxis("right").setLabel("log₁₀ ‖∂y/∂x‖", color=style.FOREGROUND)
        self.connectivity_note = pg.TextItem("", color=style.FOREGROUND, anchor=(0, 0))
        self.connectivity.addItem(self.connectivity_note, ignoreBounds=True)

        _cache_axes(self.values_plot, self.heatmap, self.trace_plot, self.gates_plot,
                    self.connectivity, self.heatmap_bar, self.connectivity_bar)
        # no auto range: a range is set only when it changes (a new range, even an equal
        # one, makes the axes generate their ticks anew and the plots lay out again)
        for plot in (self.values_plot, self.heatmap, self.trace_plot, self.gates_plot,
                     self.connectivity):
            plot.disableAutoRange()

        self.splitter = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.states_widget)
        self.splitter.addWidget(self.connectivity_widget)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)

    def _once(self, item: Any, what: str, value: Any, setter: Any) -> None:
        """Call `setter()` only when `value` differs from the last one set for (item, what):
        a title, label or tick change makes pyqtgraph lay the plot out and paint it again."""
        key = (id(item), what)
        if self._texts.get(key) != value:
            self._texts[key] = value
            setter()

    def set_tall(self, tall: bool) -> None:
        """Connectivity under the states (two views side by side) or beside them (one)."""
        self.splitter.setOrientation(QtCore.Qt.Orientation.Vertical if tall
                                     else QtCore.Qt.Orientation.Horizontal)
        self.splitter.setSizes([6_000, 4_000] if tall else [6_000, 4_000])

    # -- the API ---------------------------------------------------------------------------

    def show_message(self, text: str, title: str = "") -> None:
        """No explanation (an error, nothing chosen yet): the message instead of the data."""
        self._texts.pop((id(self.title), "text"), None)  # shown by show_explanation again
        self._texts.pop((id(self.sequences), "text"), None)
        if title:
            self.title.setText(title)
        self.sequences.setText(f"<span style='color:#b00020'>{html.escape(text, quote=False)}</span>")

    def show_explanation(self, explanation: Any, title: str = "") -> None:
        """Paint `explanation` in every view: the sequences, states and connectivity now,
        the gates at the event loop's next turn (Qt draws the first part in between, so
        that no single GUI block draws everything; a newer call drops a pending part)."""
        self.explanation = explanation
        self._generation += 1
        heading = title or f"{explanation.run_id} ({explanation.cell})"
        self._once(self.title, "text", heading, lambda: self.title.setText(heading))
        text = sequences_html(explanation)
        self._once(self.sequences, "text", text, lambda: _set_text_never_shrinking(
            self.sequences, text))
        self.selected_unit = min(self.selected_unit, explanation.hidden_size - 1)
        t_in, t_out = explanation.encoder.steps, explanation.decoder.steps
        for line in (self.heatmap_line, self.trace_line, self.gates_line):
            line.setPos(t_in + 0.5)
        label = common.time_step_axis(t_in, t_out)
        self._once(self.gates_plot, "bottom", label, lambda: self.gates_plot.setLabel(
            "bottom", label, color=style.FOREGROUND))
        self._paint_values(explanation)
        self._paint_states()
        self._paint_connectivity()
        if explanation.connectivity is not None:  # all at once: nothing comes after it
            self._paint_gates()
            return
        self._gates_pending = generation = self._generation
        QtCore.QTimer.singleShot(0, self, lambda: self._paint_pending_gates(generation))

    def _paint_pending_gates(self, generation: int | None = None) -> None:
        """The gates of show_explanation's call `generation` (None: whichever is pending),
        unless painted already or superseded."""
        pending = self._gates_pending
        if pending is not None and (generation is None or generation == pending):
            self._paint_gates()

    def set_options(self, *, state: str | None = None, layer: int | None = None,
                    sort: str | None = None, threshold: float | None = None) -> None:
        """Change what the heatmap, trace and selection show, and repaint them."""
        if state is not None:
            self.state = state
        if layer is not None:
            self.layer = layer
        if sort is not None:
            self.sort = sort
        if threshold is not None:
            self.threshold = float(threshold)
        if self.explanation is not None:
            self._paint_states()
            self._paint_gates()

    def show_connectivity(self, explanation: Any) -> None:
        """The same explanation, now with its connectivity: only that view is repainted
        (and the gates, if their turn has not come yet)."""
        self.explanation = explanation
        self._paint_pending_gates()
        self._paint_connectivity()

    def set_connectivity_levels(self, levels: tuple[float, float] | None) -> None:
        """Colour levels (log10) shared with another view; None: this view's own."""
        self.connectivity_levels = levels

    def select_unit(self, unit: int) -> None:
        if self.explanation is None:
            return
        self.selected_unit = int(np.clip(unit, 0, self.explanation.hidden_size - 1))
        self._paint_states()
        self._paint_gates()
        self.unit_selected.emit(self.selected_unit)

    def set_span(self, start: int, stop: int) -> None:
        """The Select View span, 0-based steps (encoder then decoder), inclusive."""
        self._span_guard = True
        try:
            self.span_region.setRegion((start + 0.5, stop + 1.5))
        finally:
            self._span_guard = False
        self.span = (int(start), int(stop))
        if self.explanation is not None:
            self._paint_states()

    # -- painting ------------------------------------------------------------------------

    def state_values(self) -> np.ndarray:
        """(H, T_in + T_out) of the chosen state and layer: encoder steps, then decoder."""
        e = self.explanation
        if e is None:
            return np.zeros((0, 0))
        layer = self.layer if -e.layers <= self.layer < e.layers else -1
        if self.state == "c" and e.encoder.cell is not None and e.decoder.cell is not None:
            parts = (e.encoder.cell[layer], e.decoder.cell[layer])
        else:
            parts = (e.encoder.hidden[layer], e.decoder.hidden[layer])
        return np.concatenate(parts, axis=0).T

    def _paint_states(self) -> None:
        values = self.state_values()
        self._values = values
        units, steps = values.shape
        start, stop = self.span
        self.on_units = units_on(values, start, stop, self.threshold)
        self.order = unit_order(values, self.sort, self.selected_unit, self.on_units)
        image = values[self.order]
        self.heatmap_image.setImage(image, autoLevels=False)
        self.heatmap_image.setRect(QtCore.QRectF(0.5, -0.5, steps, units))
        # ranges set only when they change: a new range makes every axis draw its ticks anew
        self._once(self.heatmap, "range", (steps, units), lambda: (
            self.heatmap.setXRange(0.5, steps + 0.5, padding=0.01),
            self.heatmap.setYRange(-0.5, units - 0.5, padding=0.01)))
        limit = float(np.nanmax(np.abs(values))) if values.size else 1.0
        limit = nice_ceiling(max(limit, 1e-6))  # 1, 2, 5 x 10^k: the bar rarely changes
        self._once(self.heatmap_bar, "levels", limit,
                   lambda: self.heatmap_bar.setLevels((-limit, limit)))
        bound = 1.0 if limit <= 1.0 else float(np.ceil(limit * 2) / 2)  # h in (-1, 1); c wider
        self._once(self.trace_plot, "yrange", bound,
                   lambda: self.trace_plot.setYRange(-bound, bound, padding=0.05))
        name = "c_t (cell state)" if self._showing_cell() else "h_t"
        title = f"Hidden state {name}, units sorted: {self.sort}"
        self._once(self.heatmap, "title", title, lambda: self.heatmap.setTitle(
            title, color=style.FOREGROUND, size="9pt"))
        left = f"unit ({units})"
        self._once(self.heatmap, "left", left, lambda: self.heatmap.setLabel(
            "left", left, color=style.FOREGROUND))
        self._set_unit_ticks()
        row = int(np.flatnonzero(self.order == self.selected_unit)[0]) if units else 0
        x0, x1 = 0.5, steps + 0.5
        self.selected_box.setData([x0, x1, x1, x0, x0],
                                  [row - 0.5, row - 0.5, row + 0.5, row + 0.5, row - 0.5])
        rows = np.flatnonzero(np.isin(self.order, self.on_units))
        self.on_marks.setData(np.full(rows.size, 0.9), rows.astype(float))
        t = np.arange(1, steps + 1)
        self.trace_curve.setData(t, values[self.selected_unit] if units else [])
        e = self.explanation
        if e is not None and e.encoder.cell is not None and not self._showing_cell() and units:
            layer = self.layer if -e.layers <= self.layer < e.layers else -1
            cells = np.concatenate([e.encoder.cell[layer], e.decoder.cell[layer]], axis=0)
            self.trace_c_curve.setData(t, cells[:, self.selected_unit])  # dotted: its c_t
        else:
            self.trace_c_curve.setData([], [])
        self.threshold_line.setPos(self.threshold)
        trace_label = f"unit {self.selected_unit}"
        self._once(self.trace_plot, "left", trace_label, lambda: self.trace_plot.setLabel(
            "left", trace_label, color=style.FOREGROUND))
        self._set_selection_text()

    def _showing_cell(self) -> bool:
        e = self.explanation
        return bool(self.state == "c" and e is not None and e.encoder.cell is not None)

    def _set_unit_ticks(self) -> None:
        units = self.order.size
        every = max(1, int(np.ceil(units / 12)))
        ticks = [(row, str(int(self.order[row]))) for row in range(0, units, every)]
        self._once(self.heatmap, "ticks", ticks,
                   lambda: self.heatmap.getAxis("left").setTicks([ticks, []]))

    def _set_selection_text(self) -> None:
        start, stop = self.span
        listed = ", ".join(str(int(u)) for u in self.on_units[:24])
        more = f" … ({self.on_units.size} in all)" if self.on_units.size > 24 else ""
        what = "c" if self._showing_cell() else "h"
        _set_text_never_shrinking(
            self.selection_label,
            f"Selected unit {self.selected_unit}. Steps {start + 1}–{stop + 1}: "
            f"{self.on_units.size} unit{'s' if self.on_units.size != 1 else ''} with "
            f"{what} > {self.threshold:g} throughout"
            + (f": {listed}{more}" if self.on_units.size else ""))

    def _paint_gates(self) -> None:
        self._gates_pending = None
        e = self.explanation
        if e is None:
            return
        layer = self.layer if -e.layers <= self.layer < e.layers else -1
        names = [n for n in ("i", "f", "o", "r", "z") if n in e.encoder.gates]
        for name in list(self.gate_curves):
            if name not in names:
                for curve in self.gate_curves.pop(name):
                    self.gates_plot.removeItem(curve)
                    self.gates_legend.removeItem(curve)
        for name in names:
            if name not in self.gate_curves:
                color = gate_color(name)
                mean = self.gates_plot.plot(pen=pg.mkPen(color, width=2),
                                            name=f"{gate_label(name)} (mean)")
                own = self.gates_plot.plot(pen=pg.mkPen(color, width=1,
                                                        style=QtCore.Qt.PenStyle.DashLine))
                self.gate_curves[name] = (mean, own)
            values = np.concatenate([e.encoder.gates[name][layer],
                                     e.decoder.gates[name][layer]], axis=0)  # (T, H)
            t = np.arange(1, values.shape[0] + 1)
            mean, own = self.gate_curves[name]
            mean.setData(t, values.mean(axis=1))
            own.setData(t, values[:, self.selected_unit])
        gates_title = ("Gates per step: mean over units; dashed: the selected unit"
                       if names else f"No gates: {e.cell} has none")
        self._once(self.gates_plot, "title", gates_title, lambda: self.gates_plot.setTitle(
            gates_title, color=style.FOREGROUND, size="9pt"))

    def _paint_values(self, e: Any) -> None:
        """Continuous sides as curves (input, then outputs after it); hidden for tokens."""
        continuous = e.input_kind == "continuous" or e.target_kind == "continuous"
        self._show_values_plot(continuous)
        if not continuous:
            return
        t_in = e.encoder.steps

        def curve(item: pg.PlotDataItem, values: np.ndarray | None, offset: int,
                  kind: str) -> None:
            if values is None or kind != "continuous":
                item.setData([], [])
                return
            v = np.asarray(values, dtype=float).reshape(len(values), -1)[:, 0]
            item.setData(np.arange(offset + 1, offset + 1 + v.size), v)

        curve(self.input_curve, e.input, 0, e.input_kind)
        for item, values in ((self.generated_curve, e.outputs),
                             (self.teacher_curve, e.teacher_forced),
                             (self.target_curve, e.target)):
            curve(item, values, t_in, e.target_kind)
        shown = [np.asarray(v, dtype=float).reshape(len(v), -1)[:, 0]
                 for v, kind in ((e.input, e.input_kind), (e.outputs, e.target_kind),
                                 (e.teacher_forced, e.target_kind), (e.target, e.target_kind))
                 if v is not None and kind == "continuous" and len(v)]
        every = np.concatenate(shown) if shown else np.zeros(1)
        every = every[np.isfinite(every)]
        lo, hi = (float(every.min()), float(every.max())) if every.size else (-1.0, 1.0)
        y_range = padded_range(lo, hi, self._values_range)
        if y_range != self._values_range:
            self._values_range = y_range
            self.values_plot.setYRange(*y_range, padding=0)
        self._once(self.values_plot, "xlink", True, lambda: self.values_plot.setXLink(self.heatmap))

    def _show_values_plot(self, shown: bool) -> None:
        """The values plot takes room only where a side is continuous (a hidden item
        keeps its room in a pyqtgraph layout: its height goes to 0 instead)."""
        self.values_plot.setVisible(shown)
        self.values_plot.setMaximumHeight(10_000 if shown else 0)
        self.values_plot.setMinimumHeight(60 if shown else 0)
        self.states_widget.ci.layout.setRowStretchFactor(0, 2 if shown else 0)

    def _paint_connectivity(self) -> None:
        e = self.explanation
        if e is None:
            return
        matrix = e.connectivity
        shape = (e.decoder.steps, e.encoder.steps)
        if matrix is None:
            # the last matrix stays, faded, while this one is computed, unless its shape
            # differs (clearing it would move the axes twice per edit)
            shown = self.connectivity_image.image
            if shown is None or shown.shape != shape:
                self.connectivity_image.clear()
            self.connectivity_image.setOpacity(0.35)
            self._once(self.connectivity_note, "text", "computing…",
                       lambda: self.connectivity_note.setText("computing…"))
            return
        self._once(self.connectivity_note, "text", "",
                   lambda: self.connectivity_note.setText(""))
        image = log_image(matrix)
        self.connectivity_image.setOpacity(1.0)
        levels = shown_levels(self.connectivity_levels or log_levels([matrix]))
        self._once(self.connectivity_bar, "levels", levels,
                   lambda: self.connectivity_bar.setLevels(levels))
        self.connectivity_image.setImage(image, autoLevels=False, levels=levels)
        t_out, t_in = matrix.shape
        self._once(self.connectivity_image, "rect", (t_in, t_out), lambda: (
            self.connectivity_image.setRect(QtCore.QRectF(0.5, 0.5, t_in, t_out)),
            self.connectivity.setXRange(0.5, t_in + 0.5, padding=0.01),
            self.connectivity.setYRange(0.5, t_out + 0.5, padding=0.01)))
        out_what = "logit[chosen]" if e.target_kind == "tokens" else "y"
        in_what = "e" if e.input_kind == "tokens" else "x"
        bar_label = f"log₁₀ ‖∂{out_what}/∂{in_what}‖"
        self._once(self.connectivity_bar, "label", bar_label,
                   lambda: self.connectivity_bar.getAxis("right").setLabel(
                       bar_label, color=style.FOREGROUND))
        title = f"Connectivity ‖∂{out_what}ₜ′/∂{in_what}ₜ‖ (float64)"
        self._once(self.connectivity, "title", title, lambda: self.connectivity.setTitle(
            title, color=style.FOREGROUND, size="9pt"))
        for side, tokens, steps in (("bottom", e.input_tokens, t_in),
                                    ("left", e.output_tokens, t_out)):
            axis = self.connectivity.getAxis(side)
            ticks = ([[(i + 1, f"{tok}") for i, tok in enumerate(tokens)], []]
                     if tokens is not None and steps <= 40 else None)
            self._once(self.connectivity, side, ticks, lambda a=axis, t=ticks: a.setTicks(t))

    # -- the user's clicks ----------------------------------------------------------------

    def _on_clicked(self, event: Any) -> None:
        if self.explanation is None or event.button() != QtCore.Qt.MouseButton.LeftButton:
            return
        vb = self.heatmap.getViewBox()
        if not vb.sceneBoundingRect().contains(event.scenePos()):
            return
        point = vb.mapSceneToView(event.scenePos())
        self.click_row(int(round(point.y())))

    def click_row(self, row: int) -> None:
        """Select the unit shown in heatmap row `row` (0 = top), as a click on it does."""
        if 0 <= row < self.order.size:
            self.select_unit(int(self.order[row]))

    def _on_span_dragged(self) -> None:
        if self._span_guard:
            return
        lo, hi = self.span_region.getRegion()
        steps = max(1, self._values.shape[1])
        # step i (0-based) is drawn at x = i + 1: the span holds the steps it covers the middle of
        start = int(np.clip(np.ceil(lo - 1), 0, steps - 1))
        stop = int(np.clip(np.floor(hi - 1), start, steps - 1))
        self.span = (start, stop)
        if self.explanation is not None:
            self._paint_states()
        self.span_changed.emit(start, stop)


def _set_text_never_shrinking(label: QtWidgets.QLabel, text: str) -> None:
    """Set a word-wrapped label's text, its height never shrinking: a label whose line
    count changes re-lays the window out, and every plot then generates its axes anew."""
    label.setText(text)
    if not label.isVisible():
        return
    width = label.width()
    needed = label.heightForWidth(max(1, width))
    if label.property("wrapWidth") != width:  # a new width: the height may shrink too
        label.setProperty("wrapWidth", width)
        label.setMinimumHeight(max(0, needed))
    elif needed > label.minimumHeight():
        label.setMinimumHeight(needed)


def _cache_axes(*items: Any) -> None:
    """Draw each axis of `items` (PlotItems, ColorBarItems) from a pixmap cache.

    An axis whose grid is shown spans its whole plot, so any change inside the plot
    (a new image, a curve) repainted every such axis: its tick labels and grid replayed
    from a QPicture, about 1 ms each, 14 axes per repaint. Cached, an unchanged axis is
    one pixmap copy; a changed one (new ticks, a new range) is redrawn as before.
    """
    cache = QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache
    for item in items:
        for name in ("left", "bottom", "right", "top"):
            item.getAxis(name).setCacheMode(cache)


def sequences_html(e: Any) -> str:
    """The sequences as a small table of rich text, then the notes."""
    rows = [("Input", "input", e.input, e.input_kind),
            ("Generated" + (f" (beam {e.beam})" if e.beam > 1 else " (greedy)"), "outputs",
             e.outputs, e.target_kind),
            ("Teacher-forced", "teacher_forced", e.teacher_forced, e.target_kind),
            ("Target", "target", e.target, e.target_kind)]
    lines = []
    for name, which, values, kind in rows:
        if values is None:
            continue
        if kind == "tokens":
            text = e.text(which) or "(nothing)"
            shown = html.escape(text if len(text) <= 400 else text[:400] + "…")
            lines.append(f"<b>{name}:</b> <code>{shown}</code>")
        else:
            v = np.asarray(values).reshape(len(values), -1)
            lines.append(f"<b>{name}:</b> {v.shape[0]} steps × {v.shape[1]} feature"
                         f"{'s' if v.shape[1] != 1 else ''} (drawn above)")
    for note in e.notes:
        lines.append(f"<span style='color:#8a5a00'>Note: {html.escape(note)}</span>")
    return "<br>".join(lines)
