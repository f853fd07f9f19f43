"""The attention panel: where each output step of the decoder looks in the input.

With attention, every decoder step t forms weights a_ti over the encoder's steps
(each row sums to 1 over the sample's valid input steps) and reads their weighted
sum. Each probe records these weights for its first few samples (teacher-forced,
as in training); the panel draws one sample's alignment matrix, output steps down
the side and input steps along the top, as the PyTorch tutorial's `showAttention`
and Seq2Seq-Vis do, with the samples' tokens as tick labels for token data.

A slider scrubs through the run's probes (at its right end it follows new ones), so
the alignment can be watched forming during training: on a reverse task a trained
model's weights lie near the anti-diagonal. A chooser picks the probe sample. Only
a sample's valid steps are drawn (padding is cropped).

A run without attention (attention = "none", and every run recorded before attention
existed) has no weights: the panel says so instead of showing empty axes. Overlays
are not drawn (one run's alignment at a time): the overlay methods do nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from ui.plots import common, figure, notes, style
from workbench.events import ProbeEvent, RunStarted

ATTENTION_NAMES = {
    "bahdanau": "Bahdanau, additive",
    "luong-dot": "Luong, dot",
    "luong-general": "Luong, general",
}
LABEL_INPUT = "input step (encoder)"
LABEL_OUTPUT = "output step (decoder)"
LABEL_WEIGHT = "attention weight"
MAX_TICK_LABELS = 40  # more steps than this: label every k-th
NO_ATTENTION_NOTICE = (
    "This run has no attention.\n\n"
    "Its decoder sees the input only through the encoder's final state, so there is no "
    "alignment to show. Train with attention (Model panel: Attention, or train "
    "--attention bahdanau, luong-dot or luong-general) to see where each output step looks.")
NO_PROBE_NOTICE = ("No probe yet.\n\nFor a run with attention, each probe records where every "
                   "output step looks in the input; the alignment appears here.")


EMPTY_TEXT = ("Where each output step looks in the input appears here at the first probe "
              "of a run with attention")
NO_ATTENTION_TEXT = ("This run has no attention: its decoder reads only the encoder's final "
                     "state, so there is no alignment to show")


def attention_of(event: RunStarted) -> str:
    """The attention kind a run trains with ("none" for a run recorded before it existed)."""
    value = (event.model_config or {}).get("attention")
    if value is None:
        model = (event.config or {}).get("model") if isinstance(event.config, dict) else None
        value = model.get("attention") if isinstance(model, dict) else None
    return str(value) if value else "none"


@dataclass(frozen=True, eq=False)
class _AttentionFrame:
    """One probe: the samples' weights (samples, T_out, T_in) (None without attention),
    their lengths and tokens (None when the probe did not record them)."""

    step: int
    epoch: int
    weights: np.ndarray | None
    source_lengths: np.ndarray | None
    target_lengths: np.ndarray | None
    source_tokens: np.ndarray | None
    target_tokens: np.ndarray | None

    @classmethod
    def of(cls, event: ProbeEvent) -> _AttentionFrame:
        weights = event.attention_weights
        if weights is not None:
            weights = np.asarray(weights, dtype=np.float64)
            if weights.ndim != 3:
                weights = None
        return cls(event.step, event.epoch, weights, event.sample_source_lengths,
                   event.sample_target_lengths, event.sample_source_tokens,
                   event.sample_target_tokens)

    @property
    def samples(self) -> int:
        return 0 if self.weights is None else int(self.weights.shape[0])

    def matrix(self, sample: int) -> np.ndarray:
        """(valid output steps, valid input steps) of `sample` (clamped)."""
        if self.weights is None:
            return np.empty((0, 0))
        s = min(max(sample, 0), self.samples - 1)
        w = self.weights[s]
        rows, cols = w.shape
        if self.target_lengths is not None and s < len(self.target_lengths):
            rows = min(rows, int(self.target_lengths[s]))
        else:  # padded target steps are NaN rows
            finite = np.flatnonzero(np.isfinite(w).all(axis=1))
            rows = int(finite[-1]) + 1 if finite.size else 0
        if self.source_lengths is not None and s < len(self.source_lengths):
            cols = min(cols, int(self.source_lengths[s]))
        return w[:rows, :cols]

    def tokens(self, side: str, sample: int, count: int) -> list[str]:
        """The labels of `count` steps of `side` ("source" or "target"): its tokens, or
        the step numbers 1..count for continuous data."""
        array = self.source_tokens if side == "source" else self.target_tokens
        s = min(max(sample, 0), max(self.samples - 1, 0))
        if array is None or s >= len(array):
            return [str(t + 1) for t in range(count)]
        row = [str(x) for x in np.asarray(array[s]).tolist()[:count]]
        return row + [str(t + 1) for t in range(len(row), count)]

    def sample_text(self, sample: int) -> str:
        """The sample's input as text (tokens joined), '' for continuous inputs."""
        if self.source_tokens is None or sample >= len(self.source_tokens):
            return ""
        words = [w for w in np.asarray(self.source_tokens[sample]).tolist() if w]
        return ("" if all(len(w) == 1 for w in words) else " ").join(words)


class AttentionPlot(common.ProbeFrames, common.NoOverlays, QtWidgets.QWidget):
    """The alignment matrix of one probe sample (output steps x input steps), per probe.

    Overlays are not drawn (one run's alignment at a time): the overlay methods do
    nothing."""

    probe_shown = QtCore.Signal(int)  # index of the probe now drawn

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._frames: list[_AttentionFrame] = []
        self._run = common.RunHeader()
        self._attention = ""  # the run's kind from RunStarted ("" before one)
        self._sample = 0
        self._shown = np.empty((0, 0))
        self.throttle = style.RedrawThrottle(self._redraw, parent=self)
        self._build_controls()
        self._build_plot()
        self.notice = QtWidgets.QLabel(NO_PROBE_NOTICE)
        self.notice.setWordWrap(True)
        self.notice.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.notice.setMargin(40)
        self.notice.setStyleSheet(f"background: {style.BACKGROUND}; color: {style.FOREGROUND};"
                                  " font-size: 14px;")
        self.stack = QtWidgets.QStackedWidget()
        self.stack.addWidget(self.plot_widget)
        self.stack.addWidget(self.notice)
        self.stack.setCurrentWidget(self.notice)
        common.panel_layout(self, self._controls, self.stack)

    # -- construction ------------------------------------------------------------

    def _build_controls(self) -> None:
        self._build_probe_slider()
        self.sample_combo = common.compact_combo(QtWidgets.QComboBox(), 8)
        self.sample_combo.setToolTip("Which probe sample's alignment is drawn")
        self.sample_combo.addItem("sample 1", 0)
        self.sample_combo.setEnabled(False)
        self.sample_combo.currentIndexChanged.connect(self._on_sample_chosen)
        self.cursor_label = style.readout_label()
        self._controls = common.control_bar(
            "Probe", (self.slider, 1), self.probe_label, "Sample", self.sample_combo,
            readout=self.cursor_label)

    def _build_plot(self) -> None:
        self.plot_widget = pg.PlotWidget(background=style.BACKGROUND)
        self.plot_widget.setMinimumSize(*style.PLOT_MIN_SIZE)
        self.plot_item: pg.PlotItem = self.plot_widget.getPlotItem()
        style.style_plot_item(self.plot_item, bottom=LABEL_INPUT, left=LABEL_OUTPUT,
                              title="Attention: no probe yet")
        self.plot_item.showGrid(x=False, y=False)
        self.plot_item.getViewBox().invertY(True)  # output step 1 at the top, as read
        self.plot_item.setMenuEnabled(False)
        self.plot_item.showAxis("top")  # the input's tokens, as read (hidden for continuous)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.plot_item.addItem(self.image)
        self.colorbar = pg.ColorBarItem(values=(0.0, 1.0), colorMap=style.SEQUENTIAL_CMAP,
                                        interactive=False, pen=style.FOREGROUND)
        self.colorbar.setImageItem(self.image, insert_in=self.plot_item)
        axis = self.colorbar.getAxis("right")
        axis.setTextPen(pg.mkPen(style.FOREGROUND))
        axis.setPen(pg.mkPen(style.FOREGROUND))
        axis.setLabel(LABEL_WEIGHT, color=style.FOREGROUND)
        self._mouse_proxy = pg.SignalProxy(
            self.plot_widget.scene().sigMouseMoved, rateLimit=30, slot=self._on_mouse_moved)
        self.empty = notes.EmptyState(self.plot_item, EMPTY_TEXT, axes=("left", "bottom", "top"))

    # -- public API (add_event, add_events, redraw_now: common.ProbeFrames) --------

    def clear(self) -> None:
        """Forget the run's probes (a new run starts)."""
        self._frames = []
        self._run = common.RunHeader()
        self._attention = ""
        self._after_events()
        self.throttle.dirty = True
        self.redraw_now()

    def export(self, path: str | Path, *, scale: float | None = None,
               width: int | None = None) -> None:
        """Write the matrix (axes, colour bar) to PNG (at `width` px or `scale` × its
        size on screen, 2× by default) or SVG; for a run without attention the picture
        carries the note as its title."""
        self.redraw_now()
        figure.export_figure(self.plot_item, path, scale=scale, width=width)

    @property
    def has_attention(self) -> bool:
        """False for a run without attention (the note is shown instead of the matrix)."""
        if self._frames and self._frames[-1].weights is not None:
            return True
        if self._attention:  # the run says
            return self._attention != "none"
        return not self._frames  # nothing known yet; probes without weights: none

    @property
    def sample(self) -> int:
        """The probe sample drawn (0 = the first)."""
        return self._sample

    def set_sample(self, sample: int) -> None:
        """Draw probe sample `sample` as a user would pick it."""
        index = self.sample_combo.findData(int(sample))
        if index >= 0:
            self.sample_combo.setCurrentIndex(index)

    def matrix(self) -> np.ndarray:
        """The weights drawn: (output steps, input steps) of the sample and probe shown."""
        return self._shown.copy()

    def tick_labels(self) -> tuple[list[str], list[str]]:
        """(input step labels, output step labels) as drawn on the axes."""
        def labels(axis: str) -> list[str]:
            ticks = self.plot_item.getAxis(axis)._tickLevels  # noqa: SLF001 - set by setTicks
            return [text for _, text in ticks[0]] if ticks else []

        return labels("top"), labels("left")

    # -- handlers ----------------------------------------------------------------

    def _take(self, event: object) -> bool:
        if isinstance(event, ProbeEvent):
            self._frames.append(_AttentionFrame.of(event))
            return True
        if isinstance(event, RunStarted):
            self._attention = attention_of(event)
        return self._run.take_header(event)

    def _after_events(self) -> None:
        attention = self.has_attention
        self._follow_probes(enabled=attention)
        self._sync_samples()
        show_plot = attention and bool(self._frames)
        self.stack.setCurrentWidget(self.plot_widget if show_plot else self.notice)
        self.notice.setText(NO_PROBE_NOTICE if attention else NO_ATTENTION_NOTICE)
        self.throttle.mark_dirty()

    def _sync_samples(self) -> None:
        frame = self._frames[-1] if self._frames else None
        count = frame.samples if frame is not None else 0
        texts = [frame.sample_text(s) if frame is not None else "" for s in range(max(count, 1))]
        wanted = [f"sample {s + 1}" + (f": {t}" if t else "") for s, t in enumerate(texts)]
        current = [self.sample_combo.itemText(i) for i in range(self.sample_combo.count())]
        if wanted != current:
            self.sample_combo.blockSignals(True)
            self.sample_combo.clear()
            for s, text in enumerate(wanted):
                self.sample_combo.addItem(text, s)
            self._sample = min(self._sample, len(wanted) - 1)
            self.sample_combo.setCurrentIndex(self._sample)
            self.sample_combo.blockSignals(False)
        self.sample_combo.setEnabled(count > 1)

    def _on_sample_chosen(self, _index: int) -> None:
        data = self.sample_combo.currentData()
        self._sample = int(data) if data is not None else 0
        self.throttle.dirty = True
        self.redraw_now()

    def describe_cell(self, x: float, y: float) -> str:
        """What the readout says at view position (x, y): the weight of output step
        round(y) on input step round(x), with the tokens."""
        if not self._frames or self._shown.size == 0:
            return ""
        col, row = int(round(x)), int(round(y))
        rows, cols = self._shown.shape
        if not (1 <= col <= cols and 1 <= row <= rows):
            return ""
        frame = self._frames[self.current_index]
        source = frame.tokens("source", self._sample, cols)[col - 1]
        target = frame.tokens("target", self._sample, rows)[row - 1]
        tokens = frame.source_tokens is not None or frame.target_tokens is not None
        what = (f"output {row} ({target!r}) → input {col} ({source!r})" if tokens
                else f"output step {row} → input step {col}")
        return f"{what}: weight {self._shown[row - 1, col - 1]:.3f}"

    def _on_mouse_moved(self, args: tuple) -> None:
        vb = self.plot_item.getViewBox()
        if vb.sceneBoundingRect().contains(args[0]):
            point = vb.mapSceneToView(args[0])
            self.cursor_label.setText(self.describe_cell(point.x(), point.y()))

    # -- drawing -----------------------------------------------------------------

    def _redraw(self) -> None:
        if not self.has_attention:
            self._show_nothing(f"{self._kind_name()}: no attention, no alignment to show")
            self.probe_label.setText(f"{len(self._frames)} probes, no attention")
            self.empty.set_text(NO_ATTENTION_TEXT)
            self.empty.update(False)
            return
        if not self._frames:
            self._show_nothing("Attention: no probe yet")
            self.probe_label.setText("no probe yet")
            self.empty.set_text(EMPTY_TEXT)
            self.empty.update(False)
            return
        self.empty.update(True)
        index = self.current_index
        frame = self._frames[index]
        self._shown = frame.matrix(self._sample)
        rows, cols = self._shown.shape
        if rows and cols:
            self.image.setImage(np.nan_to_num(self._shown, nan=0.0), autoLevels=False)
            self.image.setLevels((0.0, 1.0))
            self.image.setRect(QtCore.QRectF(0.5, 0.5, cols, rows))
            self.plot_item.setXRange(0.5, cols + 0.5, padding=0)
            self.plot_item.setYRange(0.5, rows + 0.5, padding=0)
        else:
            self.image.clear()
        self._set_ticks(frame, rows, cols)
        title = (f"Attention of sample {self._sample + 1} ({self._kind_name()}): probe at "
                 f"step {frame.step:,}")
        if self._run.status:
            title += f" ({self._run.status})"
        style.set_title(self.plot_item, title)
        self.probe_label.setText(self._probe_text(index, frame.step, frame.epoch))

    def _kind_name(self) -> str:
        return ATTENTION_NAMES.get(self._attention, self._attention or "attention")

    def _show_nothing(self, title: str) -> None:
        self._shown = np.empty((0, 0))
        self.image.clear()
        for axis in ("top", "left"):
            self.plot_item.getAxis(axis).setTicks(None)
        style.set_title(self.plot_item, title)

    def _set_ticks(self, frame: _AttentionFrame, rows: int, cols: int) -> None:
        """Tokens (or step numbers) as tick labels: input steps along the top, output
        steps down the side; every k-th of a long sequence."""
        top = self.plot_item.getAxis("top")
        top.setVisible(frame.source_tokens is not None)
        for axis, side, count in (("top", "source", cols), ("left", "target", rows)):
            labels = frame.tokens(side, self._sample, count)
            every = max(1, -(-count // MAX_TICK_LABELS))
            ticks = [(t + 1, labels[t]) for t in range(0, count, every)]
            self.plot_item.getAxis(axis).setTicks([ticks, []])
        bottom = self.plot_item.getAxis("bottom")
        numbers = [(t + 1, str(t + 1)) for t in range(0, cols, max(1, -(-cols // 10)))]
        bottom.setTicks([numbers, []])


# -- standalone ------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """`python -m ui.plots.attention_plot [--cell KIND] [--smoke] [--export PATH]`: the
    panel on a demo reverse run whose alignment forms as it trains (--cell picks the
    attention kind; "none" shows the no-attention note)."""
    import sys

    from ui.plots.demo import demo_attention_events, run_standalone

    argv = list(sys.argv[1:] if argv is None else argv)
    if "--cell" not in argv:
        argv = ["--cell", "bahdanau", *argv]
    return run_standalone(AttentionPlot, "Attention", argv, overlay_cell=None,
                          make_events=demo_attention_events)


if __name__ == "__main__":
    raise SystemExit(main())
