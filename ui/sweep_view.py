"""The sweep view: what a sweep found, point by point, with the seeds' spread.

For any sweep (workbench.sweeps), in its own window:

- a figure of the table (best validation loss, sequence accuracy, G_1/G_T, the largest
  gradient norm, ...) against a swept parameter, log-x where the values span a factor of
  10 or more, one line per value of the other swept fields (e.g. per cell, in the cell's
  colour), the mean across seeds with a band (±1 std or min–max);
- G_1/G_T against the same parameter on a log axis (at the first probe, the init's, or
  the last), the figure that says whether the gradient reaches the first input step;
- the table: one row per point, sortable (numbers as numbers), exported as CSV;
- a lesson's title and what to look for; while it runs, "run k of n" (or how many run
  at once) with the step of the latest run, and Cancel. Runs that train elsewhere (in
  worker processes, or as Ray tasks on any node) report their step through the sweep's
  SweepRunProgress events, which the sweep's thread reads from their run folders'
  status.json: nothing here touches Ray.

Clicking a point (or double-clicking its row) opens its runs in the comparison view
(ui.compare_view): their loss bands, gradient profiles and trajectories.

The table is read from the run folders off the GUI thread (ui.jobs, newest request
only), with a cache of the runs that have ended, and redrawn at most once a second
while the sweep runs.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from ui.compare_view import NumericItem, format_stat
from ui.jobs import JobSession, Latest
from ui.plots import style
from workbench import sweeps
from workbench.sweep_spec import format_value, numeric_values, spans_decade

LIVE_REDRAW_MS = 1000  # while a sweep runs, its table is reread at most once a second
CLOSE_WAIT_MS = 5000
POINT_ROLE = int(QtCore.Qt.ItemDataRole.UserRole) + 2
PERCENT = ("token_accuracy", "sequence_accuracy", "clip_rate")
RATIO_CHOICES = (("initial_vanishing_ratio", "at the first probe (the init)"),
                 ("vanishing_ratio", "at the last probe (trained)"))
SPREAD_CHOICES = (("std", "±1 std across seeds"), ("minmax", "min–max across seeds"))
LOG_METRICS = ("vanishing_ratio", "initial_vanishing_ratio", "grad_norm_max")
SERIES_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                 "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


def series_color(fixed: dict[str, Any], index: int) -> str:
    """A line's colour: its cell's (ui.plots.style) when the line is one cell, else the
    index-th of a palette."""
    if set(fixed) == {"cell"}:
        return style.cell_color(str(fixed["cell"]))
    return SERIES_COLORS[index % len(SERIES_COLORS)]


class _SweepProgress(QtWidgets.QWidget):
    """"Run k of n: params, seed s – step x of y", a bar over the sweep, and Cancel."""

    cancel_clicked = QtCore.Signal()

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QtWidgets.QLabel("Waiting for the first run…")
        self.bar = QtWidgets.QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setMaximumWidth(320)
        self.cancel_button = QtWidgets.QPushButton("Cancel sweep")
        self.cancel_button.setToolTip("Stop the runs in progress (they keep a checkpoint: "
                                      "`sweep --resume` goes on) and skip the rest")
        self.cancel_button.clicked.connect(self.cancel_clicked)
        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.bar)
        layout.addWidget(self.cancel_button)
        self._planned = 0
        self._ended = 0
        self._current: sweeps.SweepRunStarted | None = None
        # the runs in progress: index -> (its start, its step). Several at once with
        # workers or on Ray, whose steps come from their run folders (SweepRunProgress)
        self._running: dict[int, tuple[sweeps.SweepRunStarted, int]] = {}

    def add_event(self, event: object) -> None:
        from workbench.events import StepMetrics

        if isinstance(event, sweeps.SweepStarted):
            self._planned, self._ended = event.pending, 0
            self._running = {}
            self.label.setText(f"Starting {event.pending} runs…")
            self.cancel_button.setEnabled(True)
        elif isinstance(event, sweeps.SweepRunStarted):
            self._current = event
            self._running[event.index] = (event, 0)
            self._show()
        elif isinstance(event, StepMetrics) and self._current is not None:
            self._running[self._current.index] = (self._current, event.step)
            self._show()
        elif isinstance(event, sweeps.SweepRunProgress) and event.index in self._running:
            started, _step = self._running[event.index]
            self._running[event.index] = (started, event.step)
            self._show()
        elif isinstance(event, sweeps.SweepRunFinished):
            self._ended += 1
            self._running.pop(event.index, None)
            self._show_bar()
        elif isinstance(event, sweeps.SweepFinished):
            self._current = None
            self._running = {}
            self.cancel_button.setEnabled(False)
            self.label.setText(f"Sweep {event.status}: {event.completed} of {event.planned} runs "
                               f"trained to the end, {event.failed} failed or diverged"
                               + (f" ({event.message})" if event.message else ""))

    def _show_bar(self) -> None:
        within = sum(min(step / run.total_steps, 1.0) if run.total_steps else 0.0
                     for run, step in self._running.values())
        self.bar.setValue(round(1000 * min((self._ended + within) / max(1, self._planned), 1)))

    def _show(self) -> None:
        self._show_bar()
        if not self._running:
            return
        current = self._current
        if current is None or current.index not in self._running:
            current = max((run for run, _ in self._running.values()), key=lambda r: r.index)
        run, step = self._running[current.index]
        params = ", ".join(f"{k}={format_value(v)}" for k, v in run.params.items())
        steps = f" – step {step:,} of {run.total_steps:,}" if run.total_steps else ""
        if len(self._running) == 1:
            self.label.setText(f"Run {self._ended + 1} of {self._planned}: {params}, seed "
                               f"{run.seed}{steps}")
        else:
            self.label.setText(f"{len(self._running)} runs at once, {self._ended} of "
                               f"{self._planned} done – latest: {params}, seed {run.seed}"
                               f"{steps}")


class SweepView(QtWidgets.QWidget):
    """A sweep's figures and table. Give it a saved `sweep` and/or a running `session`
    (ui.sweep_session.SweepSession) to follow; `runs_dir` is where its record is."""

    table_ready = QtCore.Signal()  # a (re)read table has been drawn

    def __init__(self, sweep: sweeps.Sweep | None = None, session: Any | None = None, *,
                 runs_dir: str | Path | None = None,
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Sweep")
        self.sweep: sweeps.Sweep | None = None
        self.table_data: sweeps.SweepTable | None = None
        self.session = session
        self.runs_dir = Path(runs_dir) if runs_dir is not None else None
        self.compare_views: list[QtWidgets.QWidget] = []
        self._sweep_id = ""
        self._cache: dict[str, dict[str, float | None]] = {}  # the loader thread's own
        self._loader = JobSession(self)
        self._latest = Latest(self._loader)
        self._loader.finished.connect(self._on_loaded)
        self._loader.failed.connect(self._on_load_failed)
        self._reload_timer = QtCore.QTimer(self)
        self._reload_timer.setSingleShot(True)
        self._reload_timer.setInterval(LIVE_REDRAW_MS)
        self._reload_timer.timeout.connect(self.reload)
        self._build()
        if session is not None:
            session.events_ready.connect(self._on_session_events)
            session.finished.connect(self._on_session_finished)
            session.state_changed.connect(self._on_session_state)
        if sweep is not None:
            self.set_sweep(sweep)

    # -- construction --------------------------------------------------------------

    def _build(self) -> None:
        self.header = QtWidgets.QLabel("No sweep yet.")
        self.header.setWordWrap(True)
        self.header.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.header.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.about = QtWidgets.QLabel("")
        self.about.setWordWrap(True)
        self.about.setObjectName("lessonAbout")
        self.about.setVisible(False)
        self.progress = _SweepProgress()
        self.progress.setVisible(self.session is not None)
        self.progress.cancel_clicked.connect(self._on_cancel_clicked)

        self.metric_combo = QtWidgets.QComboBox()
        for name in sweeps.METRICS:
            self.metric_combo.addItem(sweeps.METRIC_TITLES.get(name, name), name)
        self.x_combo = QtWidgets.QComboBox()
        self.x_combo.setToolTip("The swept parameter on the x axis; the other swept "
                                "parameters make one line per value")
        self.spread_combo = QtWidgets.QComboBox()
        for key, label in SPREAD_CHOICES:
            self.spread_combo.addItem(label, key)
        self.ratio_combo = QtWidgets.QComboBox()
        for key, label in RATIO_CHOICES:
            self.ratio_combo.addItem(label, key)
        self.log_y = QtWidgets.QCheckBox("log y")
        self.export_button = QtWidgets.QToolButton()
        self.export_button.setText("Export")
        self.export_button.setPopupMode(QtWidgets.QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QtWidgets.QMenu(self.export_button)
        menu.addAction("Table as CSV…", self._on_export_table_chosen)
        menu.addAction("Figure plot…", lambda: self._on_export_plot_chosen("metric"))
        menu.addAction("G₁/G_T plot…", lambda: self._on_export_plot_chosen("ratio"))
        self.export_button.setMenu(menu)
        for combo in (self.metric_combo, self.x_combo, self.spread_combo, self.ratio_combo):
            combo.currentIndexChanged.connect(self._on_choice_changed)
        self.log_y.toggled.connect(self._on_choice_changed)
        controls = QtWidgets.QHBoxLayout()
        for item in ("Figure", self.metric_combo, "against", self.x_combo, self.spread_combo,
                     self.log_y, 12, "G₁/G_T", self.ratio_combo):
            if isinstance(item, str):
                controls.addWidget(QtWidgets.QLabel(item))
            elif isinstance(item, int):
                controls.addSpacing(item)
            else:
                controls.addWidget(item)
        controls.addStretch(1)
        controls.addWidget(self.export_button)

        self.metric_widget = style.make_plot_widget(bottom="", left="", title="")
        self.metric_plot: pg.PlotItem = self.metric_widget.getPlotItem()
        self.ratio_widget = style.make_plot_widget(bottom="", left="G₁ / G_T (encoder)",
                                                   title="Does the gradient reach step 1?")
        self.ratio_plot: pg.PlotItem = self.ratio_widget.getPlotItem()
        self.ratio_plot.setLogMode(x=False, y=True)
        one = pg.InfiniteLine(pos=0.0, angle=0, movable=False,  # log10(1): no vanishing
                              pen=pg.mkPen("#999999", style=QtCore.Qt.PenStyle.DotLine))
        self.ratio_plot.addItem(one, ignoreBounds=True)
        self.table = QtWidgets.QTableWidget()
        self.table.setSortingEnabled(True)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().setVisible(False)
        self.table.cellDoubleClicked.connect(self._on_row_double_clicked)
        self.table.setToolTip("Double-click a point to open its runs in the comparison view")

        plots = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        plots.addWidget(self.metric_widget)
        plots.addWidget(self.ratio_widget)
        splitter = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        splitter.addWidget(plots)
        splitter.addWidget(self.table)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(self.header)
        layout.addWidget(self.about)
        layout.addWidget(self.progress)
        layout.addLayout(controls)
        layout.addWidget(splitter, 1)
        self._items: list[tuple[pg.PlotItem, Any]] = []
        self.resize(1300, 860)

    # -- public API --------------------------------------------------------------------

    def set_sweep(self, sweep: sweeps.Sweep) -> None:
        """Show a saved sweep; its table is read in the background (`table_ready`)."""
        self._take_sweep(sweep)
        self.reload()

    def reload(self) -> None:
        """Reread the record and the table off the GUI thread (newest request only)."""
        sweep_id, runs_dir, cache = self._sweep_id, self.runs_dir, self._cache
        if not sweep_id:
            return
        path = self.sweep.path if self.sweep is not None else None

        def load(_sink: Any) -> tuple[sweeps.Sweep, sweeps.SweepTable]:
            saved = sweeps.open_sweep(path if path is not None else sweep_id, runs_dir)
            return saved, saved.table(cache)

        self._latest.submit(load)

    def wait_loaded(self, timeout_ms: int = 30_000) -> bool:
        """Block until the table asked for last is drawn (scripts, tests)."""
        deadline = QtCore.QDeadlineTimer(timeout_ms)
        while self._loader.is_running() or self._latest.waiting:
            if not self._loader.wait(max(0, deadline.remainingTime())):
                return False
            QtWidgets.QApplication.processEvents()
            if deadline.hasExpired():
                return False
        return self.table_data is not None

    @property
    def metric(self) -> str:
        return str(self.metric_combo.currentData())

    def set_metric(self, name: str) -> None:
        _select(self.metric_combo, name)

    @property
    def x_field(self) -> str | None:
        data = self.x_combo.currentData()
        return str(data) if data else None

    def set_x(self, name: str) -> None:
        _select(self.x_combo, name)

    def drawn_points(self, plot: str = "metric") -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per line label, the (x, y) drawn in the figure ("metric") or G₁/G_T ("ratio")
        plot, NaN where a point has no value (tests, scripts)."""
        item = self.metric_plot if plot == "metric" else self.ratio_plot
        out = {}
        for owner, curve in self._items:
            if owner is item and getattr(curve, "sweep_label", None):
                x, y = curve.sweep_xy
                out[curve.sweep_label] = (x.copy(), y.copy())
        return out

    def open_point(self, point: int) -> QtWidgets.QWidget | None:
        """Open the point's runs in the comparison view (its own window); None when it
        has none."""
        from ui.compare_view import CompareView
        from workbench.compare import RunData

        if self.sweep is None:
            return None
        runs = self.sweep.open_runs(point)
        if not runs:
            return None
        data = [RunData.from_run(run) for run in runs]
        view = CompareView()
        view.set_runs(data, cells=list(dict.fromkeys(r.cell for r in data)))
        label = self.sweep.points[point].label()
        view.setWindowTitle(f"Sweep point: {label}")
        view.header.setText(f"<b>{label}</b><br>{len(data)} run(s) of sweep {self._sweep_id}")
        view.setParent(self, QtCore.Qt.WindowType.Window)
        view.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        view.destroyed.connect(lambda _obj=None, v=view: self._forget(v))
        self.compare_views.append(view)
        view.show()
        return view

    def export_table(self, path: str | Path) -> None:
        """Write the table (mean and std per figure and point) to CSV."""
        if self.table_data is None:
            raise ValueError("no sweep table to export yet")
        sweeps.write_sweep_csv(self.table_data, path)

    def export(self, path: str | Path, plot: str = "metric") -> None:
        """Write the figure ("metric") or the G₁/G_T ("ratio") plot to PNG or SVG."""
        style.export_item(self.metric_plot if plot == "metric" else self.ratio_plot, path)

    # -- live ------------------------------------------------------------------------------

    def _on_session_events(self, batch: tuple) -> None:
        changed = False
        for event in batch:
            self.progress.add_event(event)
            if isinstance(event, sweeps.SweepStarted):
                self._sweep_id = event.sweep_id
                self.sweep = None
                changed = True
            elif isinstance(event, sweeps.SweepRunFinished):
                changed = True
        if changed and not self._reload_timer.isActive():
            self._reload_timer.start()

    def _on_session_finished(self, result: Any) -> None:
        self._detach_session()
        self.progress.cancel_button.setEnabled(False)
        if isinstance(result, sweeps.Sweep):
            self.set_sweep(result)
        elif self._sweep_id:
            self.reload()

    def _on_session_state(self, state: str) -> None:
        if state == "cancelling":
            self.progress.cancel_button.setEnabled(False)
            self.progress.label.setText(self.progress.label.text() + " – cancelling…")

    def _on_cancel_clicked(self) -> None:
        if self.session is not None:
            self.session.cancel()

    def _detach_session(self) -> None:
        session, self.session = self.session, None
        if session is None:
            return
        for signal, slot in ((session.events_ready, self._on_session_events),
                             (session.finished, self._on_session_finished),
                             (session.state_changed, self._on_session_state)):
            with contextlib.suppress(RuntimeError, TypeError):
                signal.disconnect(slot)

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 - Qt's name
        """Closing while the sweep runs cancels it (the finished runs stay) and waits."""
        if self.session is not None and self.session.is_running():
            self.session.shutdown(CLOSE_WAIT_MS)
        self._loader.shutdown(CLOSE_WAIT_MS)
        for view in list(self.compare_views):
            view.close()
        super().closeEvent(event)

    # -- loading -----------------------------------------------------------------------

    def _take_sweep(self, sweep: sweeps.Sweep) -> None:
        new = sweep.sweep_id != self._sweep_id or self.sweep is None
        self.sweep = sweep
        self._sweep_id = sweep.sweep_id
        if self.runs_dir is None:
            self.runs_dir = sweep.runs_dir
        if new:
            self._fill_choices(sweep)
        self._update_header()

    def _on_loaded(self, result: Any) -> None:
        if not isinstance(result, tuple) or self._latest.waiting:
            return  # a newer request follows
        sweep, table = result
        if sweep.sweep_id != self._sweep_id:
            return
        self._take_sweep(sweep)
        self.table_data = table
        self._redraw()
        self._fill_table()
        self.table_ready.emit()

    def _on_load_failed(self, failure: Any) -> None:
        self.header.setText(f"Cannot read sweep {self._sweep_id}: {failure.message}")

    def _fill_choices(self, sweep: sweeps.Sweep) -> None:
        view = dict(sweep.spec.view)
        fields = list(sweep.fields)
        varying = [f for f in fields if len(sweep.spec.values(f)) > 1] or fields
        building = [self.x_combo.blockSignals(True), self.metric_combo.blockSignals(True),
                    self.ratio_combo.blockSignals(True)]
        try:
            self.x_combo.clear()
            for name in varying:
                self.x_combo.addItem(name, name)
            x = view.get("x") if view.get("x") in varying else _default_x(varying)
            _select(self.x_combo, x)
            _select(self.metric_combo, view.get("metric", "best_val_loss"))
            _select(self.ratio_combo, {"first": "initial_vanishing_ratio",
                                       "last": "vanishing_ratio"}.get(
                                           view.get("gradient", "last"), "vanishing_ratio"))
            self.log_y.setChecked(self.metric in LOG_METRICS)
        finally:
            for combo, was in zip((self.x_combo, self.metric_combo, self.ratio_combo), building):
                combo.blockSignals(was)

    def _update_header(self) -> None:
        sweep = self.sweep
        if sweep is None:
            return
        spec = sweep.spec
        title = spec.title or sweep.name
        points, seeds = len(sweep.points), len(spec.seeds)
        details = [f"{points} point{'s' if points != 1 else ''} × {seeds} seed"
                   f"{'s' if seeds != 1 else ''}",
                   "over " + ", ".join(f"{f} ({', '.join(format_value(v) for v in spec.values(f))})"
                                       for f in sweep.fields),
                   f"status: {sweep.status}", sweep.sweep_id]
        self.header.setText(f"<span style='font-size: 14px'><b>{title}</b></span><br>"
                            + " · ".join(details))
        self.about.setText(" ".join(spec.about.split()))
        self.about.setVisible(bool(spec.about))
        self.setWindowTitle(f"Sweep: {title}")

    # -- drawing -----------------------------------------------------------------------

    def _on_choice_changed(self, *_args: Any) -> None:
        self._redraw()

    def _redraw(self) -> None:
        for plot, item in self._items:
            plot.removeItem(item)
        self._items = []
        table, x = self.table_data, self.x_field
        if table is None or x is None or x not in table.fields:
            return
        metric = self.metric
        values = [row.params[x] for row in table.rows]
        log_x = spans_decade(values)
        categorical = numeric_values(values) is None
        labels = list(dict.fromkeys(format_value(v) for v in values)) if categorical else None
        for plot, name, log_y in ((self.metric_plot, metric, self.log_y.isChecked()),
                                  (self.ratio_plot, str(self.ratio_combo.currentData()), True)):
            plot.setLogMode(x=log_x, y=log_y)
            axis = plot.getAxis("bottom")
            axis.setTicks([list(enumerate(labels))] if labels else None)
            plot.setLabel("bottom", x, color=style.FOREGROUND)
            for index, line in enumerate(sweeps.series(table, x, name)):
                self._draw_series(plot, line, index, log_y, labels)
            plot.enableAutoRange()
        title = sweeps.METRIC_TITLES.get(metric, metric)
        self.metric_plot.setLabel("left", title, color=style.FOREGROUND)
        style.set_title(self.metric_plot, f"{title} against {x}")

    def _draw_series(self, plot: pg.PlotItem, line: sweeps.Series, index: int, log_y: bool,
                     labels: list[str] | None) -> None:
        color = series_color(line.fixed, index)
        if labels is not None:
            x = np.asarray([labels.index(format_value(v)) for v in line.x], dtype=np.float64)
        else:
            x = np.asarray(numeric_values(line.x), dtype=np.float64)
        y = line.mean.copy()
        if log_y:
            y[~(y > 0)] = np.nan
        spread = self.spread_combo.currentData()
        low, high = ((line.mean - line.std, line.mean + line.std) if spread == "std"
                     else (line.minimum, line.maximum))
        if log_y and spread == "std":  # a log axis has no room below 0: not below the least
            low = np.where(low > 0, low, line.minimum)
        finite = np.isfinite(low) & np.isfinite(high) & np.isfinite(y)
        if log_y:
            finite &= (low > 0) & (high > 0)
        if finite.sum() >= 2:
            # the band's edges in the axes' own coordinates (log10 on a log axis): a
            # FillBetweenItem takes its curves' data as drawn, untransformed
            bx = np.log10(x[finite]) if plot.ctrl.logXCheck.isChecked() else x[finite]
            lo, hi = ((np.log10(low[finite]), np.log10(high[finite])) if log_y
                      else (low[finite], high[finite]))
            lower = pg.PlotCurveItem(bx, lo, pen=pg.mkPen(None))
            upper = pg.PlotCurveItem(bx, hi, pen=pg.mkPen(None))
            band = pg.FillBetweenItem(lower, upper, brush=style.with_alpha(color, 0.2))
            for item in (lower, upper, band):
                plot.addItem(item)
                self._items.append((plot, item))
        if not np.isfinite(y).any():
            return  # nothing to draw (a figure this point's runs do not have)
        curve = pg.PlotDataItem(x, y, pen=pg.mkPen(color, width=2), symbol="o", symbolSize=9,
                                symbolBrush=color, symbolPen=pg.mkPen("w"), name=line.label,
                                connect="finite", data=list(line.points))
        curve.sweep_label = line.label
        curve.sweep_xy = (x, y)
        curve.sigPointsClicked.connect(self._on_points_clicked)
        plot.addItem(curve)
        self._items.append((plot, curve))

    def _on_points_clicked(self, _item: Any, points: Any, *_args: Any) -> None:
        for point in points[:1]:
            with contextlib.suppress(TypeError, ValueError):
                self.open_point(int(point.data()))

    def _fill_table(self) -> None:
        table = self.table_data
        assert table is not None
        metrics = [m for m in table.metrics
                   if any(r.stats[m].mean is not None for r in table.rows)]
        headers = [*table.fields, "runs", *(sweeps.METRIC_TITLES.get(m, m) for m in metrics)]
        self.table.setSortingEnabled(False)
        self.table.clear()
        self.table.setColumnCount(len(headers))
        self.table.setRowCount(len(table.rows))
        self.table.setHorizontalHeaderLabels(headers)
        for r, row in enumerate(table.rows):
            cells: list[QtWidgets.QTableWidgetItem] = []
            for field in table.fields:
                value = row.params[field]
                numbers = numeric_values([value])
                cells.append(NumericItem(format_value(value), numbers[0]) if numbers
                             else QtWidgets.QTableWidgetItem(format_value(value)))
            status = sweeps.status_words(row.statuses)
            runs = QtWidgets.QTableWidgetItem(status)
            problems = [m for m in row.messages if m]
            if any(s in ("failed", "diverged") for s in row.statuses) and problems:
                runs.setToolTip("\n".join(problems))
            cells.append(runs)
            for name in metrics:
                stat = row.stats[name]
                cells.append(NumericItem(format_stat(stat, name in PERCENT), stat.mean))
            for c, item in enumerate(cells):
                item.setData(POINT_ROLE, row.point)
                self.table.setItem(r, c, item)
        self.table.setSortingEnabled(True)
        self.table.resizeColumnsToContents()

    def _on_row_double_clicked(self, row: int, _column: int) -> None:
        item = self.table.item(row, 0)
        if item is not None and item.data(POINT_ROLE) is not None:
            self.open_point(int(item.data(POINT_ROLE)))

    def _forget(self, view: QtWidgets.QWidget) -> None:
        with contextlib.suppress(ValueError):
            self.compare_views.remove(view)

    # -- export dialogs ------------------------------------------------------------------

    def _on_export_table_chosen(self) -> None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(
            self, "Export the sweep table", f"{self._sweep_id or 'sweep'}.csv",
            "CSV files (*.csv)")
        if path:
            self.export_table(path if path.lower().endswith(".csv") else path + ".csv")

    def _on_export_plot_chosen(self, plot: str) -> None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(
            self, "Export the plot", f"{self._sweep_id or 'sweep'}-{plot}.png",
            "PNG image (*.png);;SVG image (*.svg)")
        if path:
            try:
                self.export(path, plot)
            except (OSError, ValueError) as exc:
                QtWidgets.QMessageBox.warning(self, "Export failed", f"{path}: {exc}")


def _default_x(fields: list[str]) -> str:
    """The x axis when the sweep does not say: the first numeric-looking field that is not
    the cell, else the first."""
    for name in fields:
        if name != "cell":
            return name
    return fields[0]


def _select(combo: QtWidgets.QComboBox, data: Any) -> bool:
    index = combo.findData(data)
    if index >= 0:
        combo.setCurrentIndex(index)
    return index >= 0

