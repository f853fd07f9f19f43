"""The predictions panel: what the model makes of one validation sample.

A loss says how wrong a model is on average; one sample shows how. For the
sample picked in the spin box the panel shows the input, the target, the
teacher-forced output (each decoder step fed the true previous target, as in
training) and the free-running output (fed its own previous prediction, as in use):

- Continuous data: one time axis, the input at steps 1..T_in and the target and
  both outputs at T_in+1..T_in+T_out (the data's own units), and under it the
  absolute error per step of both outputs. A feature selector for multi-feature
  targets.
- Tokens: the four strings aligned token by token in a table, the outputs' tokens
  that differ from the target in red (a generated sequence that stops early shows
  its missing steps as red gaps), and whether the generated sequence is exact.
  Under it, the top k hypotheses of a beam search of width k (the Beam box) with
  their scores, log P / L^α; "Tree…" opens the search tree (ui.beam_tree), where a
  click on a token decodes again from that prefix.

The panel never runs a model: it shows a workbench.predictions.Prediction that is
computed elsewhere and handed over with `show_prediction`. Picking another sample
emits `sample_changed(index)`. Where predictions come from, never touching a
training model from the GUI thread:

- `LivePredictor`, a Trainer listener: during a run it predicts the chosen sample
  in the training thread, between steps (at the run's start, after every epoch,
  and at the next step after the user picks another sample), with the live model
  in eval mode and no gradients (workbench.predictions.predict_sample restores the
  mode and draws no random numbers), and sends the result down the same event stream as the
  Trainer's events, as a `LivePrediction`. Training is unchanged by it (a test
  compares the losses of runs with and without it).
- `CheckpointPredictor`, for a finished or replayed run: loads the run's best
  (else latest) checkpoint into a model of its own in a background thread and
  predicts there; the result arrives by a queued signal.
"""

from __future__ import annotations

import html
import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from ui.jobs import JobSession, Latest
from ui.plots import common, figure, style
from ui.plots import legend as legends
from workbench.events import EpochMetrics, ListenerError, RunStarted, StepMetrics
from workbench.predictions import DEFAULT_LENGTH_PENALTY

DEFAULT_BEAM = 3  # the beam width predictions are searched with until the user picks one
MAX_PANEL_BEAM = 16

log = logging.getLogger(__name__)

INPUT_COLOR = "#999999"  # grey: what the model reads
TARGET_COLOR = "#222222"  # near black: what it should produce
TEACHER_FORCED_COLOR = "#56B4E9"  # sky blue, dashed
FREE_RUNNING_COLOR = "#E69F00"  # orange, solid: what it produces on its own
MISMATCH_COLOR = "#C0392B"  # red: a wrong token
MISMATCH_BACKGROUND = "#FADBD8"
MISSING_TOKEN = "∅"  # a step the generated sequence never reached
NO_PREDICTION = ("No prediction yet.\n\nDuring training the chosen validation sample is "
                 "predicted at the start and after every epoch; for a finished run, with its "
                 "best checkpoint.")

ROWS = (("input", "Input"), ("target", "Target"), ("teacher_forced", "Teacher-forced"),
        ("free_running", "Generated (free-running)"))


def _split_name(split: str) -> str:
    return {"val": "validation"}.get(split, split)


def split_tokens(text: str | None, ids: np.ndarray) -> list[str]:
    """The per-token strings of a decoded sequence (workbench.predictions.decode joins
    one-character tokens without a separator, longer ones with spaces); the ids as
    text when the split does not give one string per id."""
    n = len(ids)
    if text is not None:
        if len(text) == n:
            return list(text)
        words = text.split(" ")
        if len(words) == n:
            return words
    return [str(int(i)) for i in np.asarray(ids).tolist()]


def token_table_html(prediction: Any) -> str:
    """An HTML table of the four sequences of a token Prediction, one column per step;
    output tokens that differ from the target in red on pink, missing steps as ∅."""
    target_len = len(prediction.target)
    rows: dict[str, list[tuple[str, bool]]] = {}
    rows["input"] = [(t, False) for t in split_tokens(prediction.input_text, prediction.input)]
    rows["target"] = [(t, False) for t in split_tokens(prediction.target_text, prediction.target)]
    for key in ("teacher_forced", "free_running"):
        ids = getattr(prediction, key)
        tokens = split_tokens(getattr(prediction, f"{key}_text"), ids)
        mismatch = getattr(prediction, f"{key}_mismatch")
        mismatch = (np.zeros(target_len, dtype=bool) if mismatch is None
                    else np.asarray(mismatch, dtype=bool))
        cells = []
        for t in range(max(len(tokens), target_len)):
            if t >= len(tokens):
                cells.append((MISSING_TOKEN, True))  # stopped early: a step it never made
            else:
                wrong = bool(mismatch[t]) if t < mismatch.size else True  # past the target
                cells.append((tokens[t], wrong))
        rows[key] = cells
    width = max(len(cells) for cells in rows.values())
    out = ['<table cellspacing="0" cellpadding="3" style="font-family: monospace; font-size: 15px;">']
    out.append("<tr><td></td>" + "".join(
        f'<td align="center" style="color:#888888; font-size: 10px;">{t + 1}</td>'
        for t in range(width)) + "</tr>")
    for key, title in ROWS:
        out.append(f'<tr><td style="padding-right: 10px;"><b>{html.escape(title)}</b></td>')
        for text, wrong in rows[key]:
            token = html.escape(text) if text.strip() else "&nbsp;"
            if wrong:
                out.append(f'<td align="center" style="color:{MISMATCH_COLOR}; '
                           f'background-color:{MISMATCH_BACKGROUND};"><b>{token}</b></td>')
            else:
                out.append(f'<td align="center">{token}</td>')
        out.append("</tr>")
    out.append("</table>")
    return "".join(out)


def token_summary(prediction: Any) -> str:
    """"Generated: 3 of 10 tokens wrong, not exact" and the teacher-forced count."""
    n = len(prediction.target)

    def wrong(mask: Any) -> int:
        return int(np.count_nonzero(mask)) if mask is not None else 0

    free = wrong(prediction.free_running_mismatch)
    forced = wrong(prediction.teacher_forced_mismatch)
    exact = "exact" if prediction.exact else "not exact"
    return (f"Generated: {free} of {n} target tokens wrong ({exact}). "
            f"Teacher-forced: {forced} of {n} wrong.")


class PredictionsPlot(common.NoOverlays, QtWidgets.QWidget):
    """One validation sample: input, target, teacher-forced and generated output (of
    one run: the overlay methods do nothing)."""

    sample_changed = QtCore.Signal(int)  # the user picked validation sample `index`
    beam_changed = QtCore.Signal(int)  # the user picked beam width `k` (token targets)
    cleared = QtCore.Signal()  # the prediction shown was dropped (a new run, another dataset)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.prediction: Any | None = None
        # set by whoever computes predictions (ui.predictions_router): waits up to
        # `timeout_ms` for a prediction still being computed (before an export)
        self.settle_hook: Any | None = None
        self.runs_dir: str | Path | None = None  # where the beam tree's decodes find runs
        self.beam_tree: Any | None = None  # ui.beam_tree.BeamTreeWindow, once opened
        self._run_id = ""
        self._note = ""
        self._build_controls()
        self._build_continuous()
        self._build_tokens()
        self.empty = QtWidgets.QLabel(NO_PREDICTION)
        self.empty.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.empty.setWordWrap(True)
        self.empty.setStyleSheet(f"background: {style.BACKGROUND}; color: #666666;")
        self.stack = QtWidgets.QStackedWidget()
        for page in (self.empty, self.plot_widget, self.tokens_page):
            self.stack.addWidget(page)
        common.panel_layout(self, self._controls, self.stack)

    # -- construction ------------------------------------------------------------

    def _build_controls(self) -> None:
        self.sample_spin = QtWidgets.QSpinBox()
        self.sample_spin.setRange(0, 0)
        self.sample_spin.setToolTip("Which sequence of the validation split to show (0 = the first)")
        self.sample_spin.setKeyboardTracking(False)  # typing "123" asks once, not three times
        self.sample_spin.valueChanged.connect(self._on_sample_spin_changed)
        self.count_label = QtWidgets.QLabel("")
        self.feature_combo = common.compact_combo(QtWidgets.QComboBox(), 6)
        self.feature_combo.setToolTip("Which feature of a multi-feature target to draw")
        self.feature_combo.setVisible(False)
        self.feature_combo.currentIndexChanged.connect(self._on_feature_chosen)
        self.info_label = style.readout_label()
        self.beam_spin = QtWidgets.QSpinBox()
        self.beam_spin.setRange(1, MAX_PANEL_BEAM)
        self.beam_spin.setValue(DEFAULT_BEAM)
        self.beam_spin.setPrefix("beam ")
        self.beam_spin.setToolTip("Beam width k: the top k hypotheses of a beam search are "
                                  "listed under the table (token targets; 1 = greedy)")
        self.beam_spin.setKeyboardTracking(False)
        self.beam_spin.valueChanged.connect(self._on_beam_spin_changed)
        self.tree_button = QtWidgets.QPushButton("Tree…")
        self.tree_button.setToolTip("The beam search tree: what was kept, what was pruned; "
                                    "click a token to decode again from it")
        self.tree_button.clicked.connect(self.open_beam_tree)
        for widget in (self.beam_spin, self.tree_button):
            widget.setVisible(False)
        self._controls = common.control_bar("Validation sample", self.sample_spin,
                                            self.count_label, self.feature_combo,
                                            self.beam_spin, self.tree_button,
                                            readout=self.info_label)

    def _build_continuous(self) -> None:
        self.plot_widget = pg.GraphicsLayoutWidget()
        self.plot_widget.setBackground(style.BACKGROUND)
        self.plot_widget.setMinimumSize(style.PLOT_MIN_SIZE[0], 170)  # two plots
        layout: pg.GraphicsLayout = self.plot_widget.ci
        self.values_item: pg.PlotItem = layout.addPlot(row=0, col=0)
        self.error_item: pg.PlotItem = layout.addPlot(row=1, col=0)
        layout.layout.setRowStretchFactor(0, 1)  # the error row carries the axis and legend
        layout.layout.setRowStretchFactor(1, 1)
        style.style_plot_item(self.values_item, bottom="", left="value (data units)",
                              title="Input, target and the model's outputs")
        style.style_plot_item(self.error_item, bottom="time step (input, then output)",
                              left="|output − target|", title="Error per output step")
        self.values_item.hideAxis("bottom")
        self.error_item.setXLink(self.values_item)
        for item in (self.values_item, self.error_item):
            item.getAxis("left").setWidth(62)
        # One legend for both plots (the same colours and line styles), below the
        # time axis: the outputs sit at the right-hand end, where a corner legend would be.
        self.legend = legends.install(self.error_item, "below", container=layout)
        dash = QtCore.Qt.PenStyle.DashLine
        self.input_curve = self.values_item.plot(
            pen=pg.mkPen(INPUT_COLOR, width=2), symbol="o", symbolSize=4, symbolBrush=INPUT_COLOR,
            symbolPen=None)
        self.target_curve = self.values_item.plot(
            pen=pg.mkPen(TARGET_COLOR, width=2.5), symbol="o", symbolSize=5,
            symbolBrush=TARGET_COLOR, symbolPen=None)
        self.teacher_forced_curve = self.values_item.plot(
            pen=pg.mkPen(TEACHER_FORCED_COLOR, width=2, style=dash))
        self.free_running_curve = self.values_item.plot(
            pen=pg.mkPen(FREE_RUNNING_COLOR, width=2.5), symbol="t", symbolSize=6,
            symbolBrush=FREE_RUNNING_COLOR, symbolPen=None)
        self.teacher_forced_error_curve = self.error_item.plot(
            pen=pg.mkPen(TEACHER_FORCED_COLOR, width=2, style=dash))
        self.free_running_error_curve = self.error_item.plot(
            pen=pg.mkPen(FREE_RUNNING_COLOR, width=2.5), symbol="t", symbolSize=6,
            symbolBrush=FREE_RUNNING_COLOR, symbolPen=None)
        for curve, label in ((self.input_curve, "input"), (self.target_curve, "target"),
                             (self.teacher_forced_curve, "teacher-forced output"),
                             (self.free_running_curve, "generated (free-running)")):
            self.legend.addItem(curve, label)
        self.separators = []
        for item, label in ((self.values_item, "input │ output"), (self.error_item, None)):
            sep = common.boundary_line(0.05, label)
            item.addItem(sep, ignoreBounds=True)
            self.separators.append(sep)

    def _build_tokens(self) -> None:
        self.tokens_page = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(self.tokens_page)
        layout.setContentsMargins(0, 0, 0, 0)
        self.token_summary = QtWidgets.QLabel("")
        self.token_summary.setWordWrap(True)
        self.token_view = QtWidgets.QTextEdit()
        self.token_view.setReadOnly(True)
        self.token_view.setLineWrapMode(QtWidgets.QTextEdit.LineWrapMode.NoWrap)
        legend = QtWidgets.QLabel(
            f'<span style="color:{MISMATCH_COLOR}; background-color:{MISMATCH_BACKGROUND};">'
            "<b>red</b></span>: an output token that differs from the target; "
            f"{MISSING_TOKEN}: a step the generated sequence never reached (it stopped early).")
        legend.setWordWrap(True)
        self.hypotheses_table = QtWidgets.QTableWidget(0, 4)
        self.hypotheses_table.setHorizontalHeaderLabels(["Hypothesis", "Score", "log P", ""])
        self.hypotheses_table.setToolTip(
            "The beam's finished hypotheses, best first: score = log P / length^α")
        self.hypotheses_table.verticalHeader().setVisible(True)
        self.hypotheses_table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.hypotheses_table.horizontalHeader().setSectionResizeMode(
            0, QtWidgets.QHeaderView.ResizeMode.Stretch)
        self.hypotheses_table.setMinimumHeight(40)
        self.token_view.setMinimumHeight(40)  # the panel still fits a 720 px screen
        self.hypotheses_title = QtWidgets.QLabel("")
        layout.addWidget(self.token_summary)
        layout.addWidget(self.token_view, 1)
        layout.addWidget(legend)
        layout.addWidget(self.hypotheses_title)
        layout.addWidget(self.hypotheses_table, 1)

    # -- public API --------------------------------------------------------------

    def show_prediction(self, prediction: Any, note: str = "") -> None:
        """Show a workbench.predictions.Prediction, or a LivePrediction (its note: when
        and from which model); `note` (e.g. "epoch 3") is shown beside the sample number.
        The spin box follows the prediction's index without asking again."""
        if isinstance(prediction, LivePrediction):
            note = note or prediction.note
            prediction = prediction.prediction
        self.prediction = prediction
        self._note = note
        if prediction.index > self.sample_spin.maximum():
            self.sample_spin.setMaximum(prediction.index)
        self.sample_spin.blockSignals(True)
        self.sample_spin.setValue(int(prediction.index))
        self.sample_spin.blockSignals(False)
        tokens = prediction.kind == "tokens"
        self.beam_spin.setVisible(tokens)
        self.tree_button.setVisible(tokens)
        self.tree_button.setEnabled(getattr(prediction, "search", None) is not None)
        if tokens:
            self.feature_combo.setVisible(False)
            self._draw_tokens(prediction)
            self.stack.setCurrentWidget(self.tokens_page)
            if self.beam_tree is not None and self.beam_tree.isVisible():
                self.beam_tree.follow(prediction)
        else:
            self._sync_features(prediction)
            self._draw_continuous(prediction)
            self.stack.setCurrentWidget(self.plot_widget)
        self._update_info()

    def set_sample_count(self, count: int) -> None:
        """How many validation samples there are to pick from (0..count-1)."""
        self.sample_spin.blockSignals(True)
        self.sample_spin.setMaximum(max(0, int(count) - 1))
        self.sample_spin.blockSignals(False)
        self.count_label.setText(f"of {int(count):,}" if count else "")

    @property
    def sample_index(self) -> int:
        return self.sample_spin.value()

    @property
    def beam_width(self) -> int:
        """The beam width the user picked (predictors search with it; token targets)."""
        return self.beam_spin.value()

    def set_beam_width(self, k: int) -> None:
        """Pick beam width `k` as the user would (emits beam_changed)."""
        self.beam_spin.setValue(int(k))

    def hypothesis_rows(self) -> list[tuple[str, float, float]]:
        """(text, score, log P) of each hypothesis listed, best first (tests, tooltips)."""
        p = self.prediction
        if p is None or not getattr(p, "hypotheses", ()):
            return []
        return [(h.text if h.text is not None else " ".join(map(str, h.ids.tolist())),
                 h.score, h.log_prob) for h in p.hypotheses]

    def open_beam_tree(self) -> Any:
        """Open (or raise) the beam tree window on the prediction shown."""
        from ui.beam_tree import BeamTreeWindow

        if self.prediction is None or getattr(self.prediction, "search", None) is None:
            return None
        if self.beam_tree is None:
            self.beam_tree = BeamTreeWindow(self.runs_dir, self)
        self.beam_tree.show_prediction(self.prediction)
        self.beam_tree.show()
        self.beam_tree.raise_()
        return self.beam_tree

    def close_beam_tree(self) -> None:
        """Close the tree window and end its decode job (window close, tests)."""
        if self.beam_tree is not None:
            self.beam_tree.close()
            self.beam_tree.close_decoder()

    def set_sample(self, index: int) -> None:
        """Pick sample `index` as the user would (emits sample_changed)."""
        self.sample_spin.setValue(index)

    def add_event(self, event: object) -> None:
        """Panels share one API: a LivePrediction is shown; a new run (RunStarted)
        clears the old run's prediction."""
        if isinstance(event, LivePrediction):
            self.show_prediction(event)
        elif isinstance(event, RunStarted) and event.run_id != self._run_id:
            shown = getattr(self.prediction, "run_id", None)
            if shown != event.run_id:  # a hidden panel's held events may come after its
                self.clear(emit=False)  # run's checkpoint prediction: that one stays
            self._run_id = event.run_id

    def add_events(self, events: Iterable[object]) -> None:
        for event in events:
            self.add_event(event)

    def clear(self, *, emit: bool = True) -> None:
        """Forget the prediction shown (the sample number stays); `cleared` follows
        (not when a new run's start clears it: its predictions come next)."""
        self.prediction = None
        self._run_id = self._note = ""
        for curve in self._curves():
            curve.setData([], [])
        self.token_view.clear()
        self.token_summary.setText("")
        self.hypotheses_table.setRowCount(0)
        self.hypotheses_title.setText("")
        self.tree_button.setEnabled(False)
        self.info_label.setText("")
        self.empty.setText(NO_PREDICTION)
        self.stack.setCurrentWidget(self.empty)
        if emit:
            self.cleared.emit()

    def redraw_now(self) -> None:
        """Panels share one API: this panel draws at once, nothing is pending."""

    def settle(self, timeout_ms: int) -> None:
        """Wait up to `timeout_ms` for a prediction still being computed to arrive
        (before an export), so that the file shows it and not "No prediction yet"."""
        if self.settle_hook is not None:
            self.settle_hook(timeout_ms)

    def show_message(self, text: str) -> None:
        """Show `text` instead of a prediction (e.g. why none can be made)."""
        self.prediction = None
        self.empty.setText(text)
        self.stack.setCurrentWidget(self.empty)

    def export(self, path: str | Path, *, scale: float | None = None,
               width: int | None = None) -> None:
        """Write what is shown to PNG (at `width` px or `scale` × its size on screen, 2×
        by default) or SVG: the plots for continuous data, the token table (with its
        summary) for tokens."""
        path = Path(path)
        suffix = path.suffix.lower()
        if self.stack.currentWidget() is self.plot_widget:
            figure.export_figure(self.plot_widget.ci, path, scale=scale, width=width)
            return
        if suffix not in (".png", ".svg"):
            raise ValueError(f"export: unsupported file type {suffix!r} in {path}; use .png or .svg")
        page = self.stack.currentWidget()
        if not page.isVisible() and page.width() < figure.MIN_SCREEN_WIDTH:
            page.resize(*style.DEFAULT_PANEL_SIZE)  # never laid out: a readable size
        if suffix == ".png":
            factor = figure.png_width(page.width(), scale=scale, width=width) / max(page.width(), 1)
            image = QtGui.QImage(page.size() * factor, QtGui.QImage.Format.Format_ARGB32)
            image.setDevicePixelRatio(factor)
            image.fill(QtGui.QColor(style.BACKGROUND))
            page.render(image)
            image.save(str(path))
            return
        from PySide6 import QtSvg

        generator = QtSvg.QSvgGenerator()
        generator.setFileName(str(path))
        generator.setSize(page.size())
        generator.setViewBox(QtCore.QRect(QtCore.QPoint(0, 0), page.size()))
        generator.setTitle("Predictions")
        painter = QtGui.QPainter(generator)
        try:
            page.render(painter, QtCore.QPoint(0, 0))
        finally:
            painter.end()

    # -- handlers ----------------------------------------------------------------

    def _on_sample_spin_changed(self, value: int) -> None:
        self.sample_changed.emit(int(value))

    def _on_beam_spin_changed(self, value: int) -> None:
        self.beam_changed.emit(int(value))

    def _on_feature_chosen(self, _index: int) -> None:
        if self.prediction is not None and self.prediction.kind != "tokens":
            self._draw_continuous(self.prediction)

    def _sync_features(self, prediction: Any) -> None:
        features = np.atleast_2d(np.asarray(prediction.target).reshape(len(prediction.target), -1)).shape[1]
        if self.feature_combo.count() != features:
            self.feature_combo.blockSignals(True)
            self.feature_combo.clear()
            for f in range(features):
                self.feature_combo.addItem(f"feature {f + 1}", f)
            self.feature_combo.blockSignals(False)
        self.feature_combo.setVisible(features > 1)

    def _update_info(self) -> None:
        p = self.prediction
        if p is None:
            self.info_label.setText("")
            return
        parts = [f"{_split_name(p.split)} sample {p.index}"]
        if p.run_id:
            parts.append(f"run {p.run_id}")
        if self._note:
            parts.append(self._note)
        parts.append(f"teacher-forced loss {p.loss_teacher_forced:.4g}")
        if p.kind != "tokens" and p.free_running_error is not None and len(p.free_running_error):
            parts.append(f"generated: mean |error| {float(np.mean(p.free_running_error)):.4g}")
        self.info_label.setText(" · ".join(parts))

    # -- drawing -----------------------------------------------------------------

    def _curves(self) -> list[pg.PlotDataItem]:
        return [self.input_curve, self.target_curve, self.teacher_forced_curve,
                self.free_running_curve, self.teacher_forced_error_curve,
                self.free_running_error_curve]

    @staticmethod
    def _feature(values: np.ndarray, feature: int) -> np.ndarray:
        array = np.asarray(values, dtype=np.float64)
        if array.ndim == 1:
            return array
        return array[:, min(feature, array.shape[1] - 1)]

    def _draw_continuous(self, p: Any) -> None:
        feature = int(self.feature_combo.currentData() or 0)
        t_in, t_out = len(p.input), len(p.target)
        x_in = np.arange(1, t_in + 1, dtype=np.float64)
        x_out = np.arange(t_in + 1, t_in + t_out + 1, dtype=np.float64)
        if np.issubdtype(np.asarray(p.input).dtype, np.floating):
            self.input_curve.setData(x_in, self._feature(p.input, feature))
        else:
            self.input_curve.setData([], [])  # token input, continuous target: nothing to draw
        self.target_curve.setData(x_out, self._feature(p.target, feature))
        self.teacher_forced_curve.setData(x_out, self._feature(p.teacher_forced, feature)[:t_out])
        self.free_running_curve.setData(x_out, self._feature(p.free_running, feature)[:t_out])
        for curve, error in ((self.teacher_forced_error_curve, p.teacher_forced_error),
                             (self.free_running_error_curve, p.free_running_error)):
            if error is None:
                curve.setData([], [])
            else:
                curve.setData(x_out[: len(error)], np.asarray(error, dtype=np.float64))
        for sep in self.separators:
            sep.setPos(t_in + 0.5)
        self.values_item.setXRange(0.5, t_in + t_out + 0.5, padding=0.01)
        self.error_item.setLabel("bottom", f"time step (input 1–{t_in}, output {t_in + 1}–{t_in + t_out})",
                                 color=style.FOREGROUND)
        which = f", feature {feature + 1}" if self.feature_combo.count() > 1 else ""
        style.set_title(self.values_item, f"{_split_name(p.split).capitalize()} sample {p.index}{which}: "
                                          "input, target and the model's outputs")
        self.error_item.setLabel("left", "|output − target| (mean over features)"
                                 if self.feature_combo.count() > 1 else "|output − target|",
                                 color=style.FOREGROUND)

    def _draw_tokens(self, p: Any) -> None:
        self.token_view.setHtml(token_table_html(p))
        self.token_summary.setText(token_summary(p))
        self._draw_hypotheses(p)

    def _draw_hypotheses(self, p: Any) -> None:
        hypotheses = getattr(p, "hypotheses", ())
        table = self.hypotheses_table
        table.setRowCount(len(hypotheses))
        table.setVisible(bool(hypotheses))
        if p.beam is None:
            self.hypotheses_title.setText("No beam search for this prediction.")
        else:
            self.hypotheses_title.setText(
                f"Beam search, width {p.beam} (length penalty α = {p.length_penalty:g}): "
                f"the top {len(hypotheses)} hypotheses, score = log P / length^α")
        for row, h in enumerate(hypotheses):
            tokens = split_tokens(h.text, h.ids)
            cells = []
            for t, token in enumerate(tokens):
                wrong = t >= len(h.mismatch) or bool(h.mismatch[t])
                token = html.escape(token) if token.strip() else "&nbsp;"
                cells.append(f'<span style="color:{MISMATCH_COLOR};"><b>{token}</b></span>'
                             if wrong else token)
            sep = "" if all(len(t) == 1 for t in tokens) else " "
            label = QtWidgets.QLabel(sep.join(cells))
            label.setTextFormat(QtCore.Qt.TextFormat.RichText)
            label.setStyleSheet("font-family: monospace; padding-left: 4px;")
            table.setCellWidget(row, 0, label)
            mark = "✓ exact" if h.exact else ("cut off" if not h.ended else "")
            for col, text in ((1, f"{h.score:.3f}"), (2, f"{h.log_prob:.3f}"), (3, mark)):
                item = QtWidgets.QTableWidgetItem(text)
                item.setTextAlignment(QtCore.Qt.AlignmentFlag.AlignRight
                                      | QtCore.Qt.AlignmentFlag.AlignVCenter)
                table.setItem(row, col, item)
        table.resizeColumnsToContents()
        table.horizontalHeader().setSectionResizeMode(0, QtWidgets.QHeaderView.ResizeMode.Stretch)

    def mismatched_tokens(self, key: str = "free_running") -> list[str]:
        """The output tokens shown in red (for tests and tooltips)."""
        p = self.prediction
        if p is None or p.kind != "tokens":
            return []
        tokens = split_tokens(getattr(p, f"{key}_text"), getattr(p, key))
        mask = getattr(p, f"{key}_mismatch")
        return [t for i, t in enumerate(tokens) if i >= len(mask) or mask[i]]


# --- where predictions come from ---------------------------------------------------------


@dataclass(frozen=True, eq=False)
class LivePrediction:
    """A Prediction and when it was made: plain data, sent like the Trainer's events."""

    prediction: Any  # workbench.predictions.Prediction
    step: int
    epoch: int
    source: str = "live model"  # or "best checkpoint", "latest checkpoint"

    @property
    def note(self) -> str:
        """What the panel shows beside the sample: e.g. "epoch 3, step 1,200 (live model)"."""
        if self.source == "live model":
            return f"epoch {self.epoch}, step {self.step:,} (live model)"
        return f"{self.source}, step {self.step:,}"


class LivePredictor:
    """A Trainer listener that predicts one validation sample in the training thread.

    `bind(sink, trainer)` in the training thread (the factory that builds the
    Trainer): `sink` is the listener that forwards to the GUI (the training
    job's ui.jobs.Sink), `trainer` the Trainer whose model, dataset and normalization are
    used. `request(index, beam)` (any thread) picks the sample (and the beam width;
    None keeps it); the prediction follows at the next step. For token targets each
    prediction holds the top `beam` hypotheses of a beam search and its tree. A
    failure is reported once (as a ListenerError) and predictions stop; the run goes
    on.
    """

    def __init__(self, index: int = 0, beam: int = DEFAULT_BEAM,
                 length_penalty: float = DEFAULT_LENGTH_PENALTY) -> None:
        self._lock = threading.Lock()
        self._index = max(0, int(index))
        self._beam = max(1, int(beam))
        self.length_penalty = float(length_penalty)
        self._pending = True  # predict once as soon as the run has a model
        self._sink: Any | None = None
        self._trainer: Any | None = None
        self._broken = False
        self._epoch = 0
        self.predictions = 0  # how many were made (tests)

    def bind(self, sink: Any, trainer: Any) -> None:
        self._sink, self._trainer = sink, trainer

    def request(self, index: int, beam: int | None = None) -> None:
        """Predict sample `index` next, with beam width `beam` (None: as before)
        (thread-safe)."""
        with self._lock:
            self._index = max(0, int(index))
            if beam is not None:
                self._beam = max(1, int(beam))
            self._pending = True

    @property
    def index(self) -> int:
        with self._lock:
            return self._index

    def on_event(self, event: object) -> None:
        """Training thread, between steps: predict after each epoch, or when asked."""
        if self._broken or self._trainer is None or self._sink is None:
            return
        if isinstance(event, EpochMetrics):
            self._epoch = event.epoch
            self._predict(event.step, event.epoch)
        elif isinstance(event, (StepMetrics, RunStarted)):
            with self._lock:
                pending = self._pending
            if pending:
                step = event.step if isinstance(event, StepMetrics) else 0
                epoch = event.epoch if isinstance(event, StepMetrics) else self._epoch
                self._predict(step, epoch)

    def _predict(self, step: int, epoch: int) -> None:
        from workbench.predictions import predict_sample

        trainer = self._trainer
        with self._lock:
            index, beam, self._pending = self._index, self._beam, False
        try:
            count = len(trainer.dataset.split("val"))
            prediction = predict_sample(trainer.model, trainer.dataset, "val",
                                        min(index, max(count - 1, 0)), trainer.normalization,
                                        run_id=trainer.run_id,
                                        beam=beam_for(trainer.model, beam),
                                        length_penalty=self.length_penalty)
        except Exception as exc:  # noqa: BLE001 - a listener must never stop the run
            self._broken = True
            log.warning("live prediction failed", exc_info=True)
            self._sink.on_event(ListenerError("predictions", f"{type(exc).__name__}: {exc}"))
            return
        self.predictions += 1
        self._sink.on_event(LivePrediction(prediction, step, epoch))


def beam_for(model: Any, beam: int | None) -> int | None:
    """The beam width to predict with: `beam` for token targets, None (no beam search)
    for continuous ones."""
    return beam if model.config.target.kind == "tokens" else None


class CheckpointPredictor(QtCore.QObject):
    """Predicts a sample with a recorded run's checkpoint, in the background.

    `request(run_id, index, beam)` from the GUI thread (beam None: the width of the
    last request); `predicted(LivePrediction)` or `failed(str)` follow, emitted in the
    GUI thread (a ui.jobs session). Requests made while one is being computed are
    coalesced: only the latest is computed next. The model and the open dataset of
    the last run are kept (workbench.predictions.RunModelCache, touched by one job at
    a time) so that stepping through samples is quick, for as long as the checkpoint
    file is the same (path, modification time and size): a run resumed and trained
    further writes a new one, which the next request loads. `close()` releases them.
    """

    predicted = QtCore.Signal(object)  # LivePrediction
    failed = QtCore.Signal(str)

    def __init__(self, runs_dir: str | Path | None = None,
                 parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.runs_dir = runs_dir
        self.job = JobSession(self)
        self.job.thread_name = "predict"
        self.job.finished.connect(self._on_finished)
        self._latest = Latest(self.job)
        from workbench.predictions import RunModelCache

        self._cache = RunModelCache(runs_dir)  # touched by one prediction job at a time
        self.beam = DEFAULT_BEAM
        self.length_penalty = DEFAULT_LENGTH_PENALTY

    def request(self, run_id: str, index: int, beam: int | None = None) -> None:
        if beam is not None:
            self.beam = max(1, int(beam))
        beam, alpha = self.beam, self.length_penalty
        self._latest.submit(lambda _sink: self._attempt(run_id, index, beam, alpha))

    def _attempt(self, run_id: str, index: int, beam: int = DEFAULT_BEAM,
                 length_penalty: float = DEFAULT_LENGTH_PENALTY) -> LivePrediction | str:
        """The job: a prediction, or the message saying why there is none."""
        try:
            return self._predict(run_id, index, beam, length_penalty)
        except Exception as exc:  # noqa: BLE001 - reported to the GUI
            return f"{run_id}: {exc}"

    def _on_finished(self, result: LivePrediction | str | None) -> None:
        if isinstance(result, LivePrediction):
            self.predicted.emit(result)
        elif isinstance(result, str):
            self.failed.emit(result)

    def _predict(self, run_id: str, index: int, beam: int = DEFAULT_BEAM,
                 length_penalty: float = DEFAULT_LENGTH_PENALTY) -> LivePrediction:
        from workbench.predictions import predict_sample

        c = self._cache.load(run_id)
        count = len(c.dataset.split("val"))
        prediction = predict_sample(c.model, c.dataset, "val", min(index, max(count - 1, 0)),
                                    c.normalization, run_id=run_id,
                                    beam=beam_for(c.model, beam), length_penalty=length_penalty)
        return LivePrediction(prediction, c.step, c.epoch, f"{c.which} checkpoint")

    def _release(self) -> None:
        self._cache.close()

    def close(self) -> None:
        """Finish the prediction in progress and release the model and the data."""
        self._latest.drop_waiting()
        self.job.wait(60_000)
        self._release()


def _demo_prediction(kind: str, index: int = 0) -> Any:
    """A Prediction of made-up values (the standalone demo; no model needed)."""
    from workbench.predictions import Prediction, mismatch_mask

    rng = np.random.default_rng(index)
    if kind == "tokens":
        vocab = ("<pad>", "<s>", "</s>", *"abcdefgh")
        source = rng.integers(3, len(vocab), 8)
        target = np.append(source[::-1], 2)
        forced = target.copy()
        forced[2] = 3 if forced[2] != 3 else 4
        free = target.copy()[:-3]
        free[4] = 5 if free[4] != 5 else 6

        def text(ids: Sequence[int]) -> str:
            words = [vocab[i] for i in ids]
            return ("" if all(len(w) == 1 for w in words) else " ").join(words)

        return Prediction("tokens", "val", index, "demo", source, target, forced, free, 0.42,
                          teacher_forced_mismatch=mismatch_mask(forced, target),
                          free_running_mismatch=mismatch_mask(free, target), input_text=text(source),
                          target_text=text(target), teacher_forced_text=text(forced),
                          free_running_text=text(free))
    t = np.linspace(0, 4 * np.pi, 50)
    phase = rng.uniform(0, np.pi)
    x = np.sin(t[:40] + phase)[:, None]
    y = np.sin(t[40:] + phase)[:, None]
    forced = y + rng.normal(0, 0.05, y.shape)
    free = y + np.linspace(0, 0.4, len(y))[:, None] * rng.normal(1, 0.2, y.shape)
    return Prediction("continuous", "val", index, "demo", x, y, forced, free, 0.013,
                      teacher_forced_error=np.abs(forced - y).mean(-1),
                      free_running_error=np.abs(free - y).mean(-1))


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m ui.plots.predictions_plot [--tokens] [--smoke] [--export PATH]`."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description="Predictions panel on a made-up prediction")
    parser.add_argument("--tokens", action="store_true", help="a token sequence (else continuous)")
    parser.add_argument("--smoke", action="store_true", help="quit after about one second")
    parser.add_argument("--export", metavar="PATH", help="write the panel to PATH and quit")
    args = parser.parse_args(argv)
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    panel = PredictionsPlot()
    kind = "tokens" if args.tokens else "continuous"
    panel.set_sample_count(100)
    panel.sample_changed.connect(lambda i: panel.show_prediction(_demo_prediction(kind, i), "demo"))
    panel.show_prediction(_demo_prediction(kind), "demo")
    panel.setWindowTitle("Predictions (demo)")
    panel.show()
    if args.export:
        app.processEvents()
        panel.export(args.export)
        print(f"wrote {args.export}")
        return 0
    if args.smoke:
        QtCore.QTimer.singleShot(1000, app.quit)
    return app.exec()


if __name__ == "__main__":
    raise SystemExit(main())
