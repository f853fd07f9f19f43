"""The gates panel: what the sigmoid gates of an LSTM or a GRU do at each time step.

Each probe records, per layer and per gate, the mean activation over the probe
batch (all units, valid samples) at every time step, encoder steps 1..T_in then
decoder steps (drawn as T_in+1..T_in+T_out), and the fraction of activations that
are saturated (below 0.05 or above 0.95, where a sigmoid's slope, and so the
gradient through the gate, is almost zero).

Two plots share the time axis: the mean activation (top) and the saturated
fraction (bottom), one curve per gate in a fixed colour per gate ("keep" gates,
the LSTM's forget gate f and the GRU's update gate z, in the same orange). On a
copy task with a delay a trained LSTM's forget gate stays near 1 through the delay:
the memory is carried, and the plot shows it.

A slider scrubs through the run's probes (at the right end it follows new ones), a
selector picks the layer. A vanilla RNN has no gates: the panel says so instead of
showing empty axes.

Overlays are not drawn: the overlay methods exist for the common panel API and do
nothing (gates of different cells are not comparable curve for curve).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from ui.plots import common, figure, notes, style
from ui.plots import legend as legends
from workbench.events import ProbeEvent, RunStarted

# The thresholds models.probes uses (not imported: that would load torch here).
SATURATION_LOW = 0.05
SATURATION_HIGH = 0.95

GATE_NAMES: dict[str, str] = {
    "i": "input gate i",
    "f": "forget gate f",
    "o": "output gate o",
    "r": "reset gate r",
    "z": "update gate z",
}
# One colour per gate role, distinct from the cell colours: f and z both decide how
# much of the old state to keep; i and r how much new (or old) content to let in.
GATE_COLORS: dict[str, str] = {
    "f": "#E69F00",  # orange: keep (LSTM forget)
    "z": "#E69F00",  # orange: keep (GRU update)
    "i": "#56B4E9",  # sky blue: write (LSTM input)
    "r": "#56B4E9",  # sky blue: reset (GRU)
    "o": "#222222",  # near black: output (LSTM)
}
GATE_SYMBOLS: dict[str, str] = {"f": "o", "z": "o", "i": "t", "r": "t", "o": "s"}
VANILLA_CELLS = ("rnn-tanh", "rnn-relu", "rnn-sigmoid")

LABEL_GATE_MEAN = "mean activation"
LABEL_GATE_SATURATION = "saturated fraction"
TITLE_GATE_MEAN = "Mean activation (0 = closed, 1 = open)"
# Saturated: where a sigmoid is flat, so almost no gradient passes through the gate.
TITLE_GATE_SATURATION = f"Saturated fraction (below {SATURATION_LOW:g} or above {SATURATION_HIGH:g})"
NO_GATES_NOTICE = (
    "Vanilla RNNs have no gates.\n\n"
    "The {cell} cell overwrites its whole hidden state at every step, "
    "h_t = act(W_ih x_t + W_hh h_(t-1) + b): nothing decides what to keep. "
    "LSTM and GRU cells add sigmoid gates that do; train one to see them here.")


EMPTY_TEXT = ("How open each gate of an LSTM or GRU is at every time step appears here "
              "at the run's first probe\n(or pick a run in the Runs panel)")


def gate_label(name: str) -> str:
    """The readable name of a gate ("forget gate f"); the raw name when unknown."""
    return GATE_NAMES.get(name, f"gate {name}")


def gate_color(name: str) -> str:
    """The fixed colour of a gate; grey when unknown."""
    return GATE_COLORS.get(name, style.DEFAULT_CELL_COLOR)


@dataclass(frozen=True)
class _GateFrame:
    """One probe's gate statistics: gate -> (layers, T_in + T_out) float64."""

    step: int
    epoch: int
    t_in: int
    t_out: int
    means: dict[str, np.ndarray]
    saturation: dict[str, np.ndarray]

    @classmethod
    def of(cls, event: ProbeEvent) -> _GateFrame:
        def arrays(d: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            return {k: np.atleast_2d(np.asarray(v, dtype=np.float64)) for k, v in d.items()}

        t_in = int(np.atleast_2d(event.encoder_grad_norms).shape[1])
        t_out = int(np.atleast_2d(event.decoder_grad_norms).shape[1])
        return cls(event.step, event.epoch, t_in, t_out, arrays(event.gate_means),
                   arrays(event.gate_saturation))

    @property
    def gates(self) -> list[str]:
        return list(self.means)

    @property
    def layers(self) -> int:
        return next(iter(self.means.values())).shape[0] if self.means else 0

    def curve(self, kind: str, gate: str, layer: int) -> tuple[np.ndarray, np.ndarray]:
        """(time steps 1..T_in+T_out, values) of `kind` ("mean" or "saturation"); NaN
        (a step no sample reaches) kept, so the line breaks there. `layer` is clamped."""
        source = self.means if kind == "mean" else self.saturation
        values = source.get(gate)
        if values is None:
            return np.empty(0), np.empty(0)
        row = values[min(max(layer, 0), values.shape[0] - 1)]
        return np.arange(1, row.size + 1, dtype=np.float64), row


class GatesPlot(common.ProbeFrames, common.NoOverlays, QtWidgets.QWidget):
    """Mean activation and saturated fraction of each gate per time step, per probe.

    Overlays are not drawn (gates of different cells are not comparable curve for
    curve): the overlay methods do nothing."""

    probe_shown = QtCore.Signal(int)  # index of the probe now drawn

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._frames: list[_GateFrame] = []
        self._run = common.RunHeader()
        self._layer = -1  # -1: the top layer, whatever the model's depth
        self.mean_curves: dict[str, pg.PlotDataItem] = {}
        self.saturation_curves: dict[str, pg.PlotDataItem] = {}
        self.throttle = style.RedrawThrottle(self._redraw, parent=self)
        self._build_controls()
        self._build_plots()
        self.notice = QtWidgets.QLabel()
        self.notice.setWordWrap(True)
        self.notice.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.notice.setMargin(40)
        self.notice.setStyleSheet(f"background: {style.BACKGROUND}; color: {style.FOREGROUND};"
                                  " font-size: 14px;")
        self.stack = QtWidgets.QStackedWidget()
        self.stack.addWidget(self.plot_widget)
        self.stack.addWidget(self.notice)
        common.panel_layout(self, self._controls, self.stack)

    # -- construction ------------------------------------------------------------

    def _build_controls(self) -> None:
        self._build_probe_slider()
        self.layer_combo = common.LayerCombo(
            "Which layer's gates are shown (encoder and decoder layer alike)")
        self.layer_combo.currentIndexChanged.connect(self._on_layer_chosen)
        self.cursor_label = style.readout_label()
        self._controls = common.control_bar(
            "Probe", (self.slider, 1), self.probe_label, "Layer", self.layer_combo,
            readout=self.cursor_label)

    def _build_plots(self) -> None:
        self.plot_widget = pg.GraphicsLayoutWidget()
        self.plot_widget.setBackground(style.BACKGROUND)
        self.plot_widget.setMinimumSize(*style.PLOT_MIN_SIZE)
        self.side_by_side = False  # the two plots stacked (False) or side by side (True)
        layout: pg.GraphicsLayout = self.plot_widget.ci
        self.title_label = layout.addLabel("Gates", color=style.FOREGROUND, size="11pt")
        style.never_widen(self.title_label)  # a long title never widens the plots
        layout.nextRow()
        self.mean_item: pg.PlotItem = layout.addPlot()
        layout.nextRow()
        self.saturation_item: pg.PlotItem = layout.addPlot()
        style.style_plot_item(self.mean_item, bottom="", left=LABEL_GATE_MEAN)
        style.style_plot_item(self.saturation_item, bottom=style.LABEL_TIME_STEP,
                              left=LABEL_GATE_SATURATION)
        style.set_title(self.mean_item, TITLE_GATE_MEAN, size="9pt")
        style.set_title(self.saturation_item, TITLE_GATE_SATURATION, size="9pt")
        self.mean_item.hideAxis("bottom")  # the shared time axis is labelled once, below
        self.saturation_item.setXLink(self.mean_item)
        for item in (self.mean_item, self.saturation_item):
            # Room above 1 and below 0 for those ticks' labels (a grid axis drops a
            # label that sticks out of the data area).
            item.setYRange(-0.08, 1.08, padding=0)
            item.getViewBox().setLimits(yMin=-0.1, yMax=1.1)
            item.enableAutoRange(axis="y", enable=False)
            item.getAxis("left").setWidth(62)  # both data areas start at the same x
            # Label 0 and 1 too: the default text limits drop them on a short axis.
            item.getAxis("left").setStyle(textFillLimits=[(0, 0.9)])
            item.getAxis("left").setTicks([[(v, f"{v:g}") for v in (0, 0.25, 0.5, 0.75, 1)]])
        # A faint reference at 0.5 (a gate half open) on the activation plot.
        self.half_line = pg.InfiniteLine(
            0.5, angle=0, movable=False,
            pen=pg.mkPen("#bbbbbb", width=1, style=QtCore.Qt.PenStyle.DotLine))
        self.mean_item.addItem(self.half_line, ignoreBounds=True)
        # One legend for both plots, in its own row under them (either arrangement).
        self.legend = legends.in_row(layout, 3, 0)
        self.separator = common.boundary_line(0.06)
        self.saturation_separator = common.boundary_line(label=None)
        for item, sep in ((self.mean_item, self.separator),
                          (self.saturation_item, self.saturation_separator)):
            sep.setVisible(False)
            item.addItem(sep, ignoreBounds=True)
        self._mouse_proxy = pg.SignalProxy(
            self.plot_widget.scene().sigMouseMoved, rateLimit=30, slot=self._on_mouse_moved)
        self.empty = notes.EmptyState([self.mean_item, self.saturation_item], EMPTY_TEXT)

    def _ensure_curves(self, gates: list[str]) -> None:
        """One curve per gate in each plot, created once per set of gates."""
        if list(self.mean_curves) == gates:
            return
        for curve in self.mean_curves.values():
            self.mean_item.removeItem(curve)
        for curve in self.saturation_curves.values():
            self.saturation_item.removeItem(curve)
        self.legend.clear()
        self.mean_curves, self.saturation_curves = {}, {}
        for gate in gates:
            color = gate_color(gate)
            symbol = GATE_SYMBOLS.get(gate, "o")
            dashed = gate in ("o",)
            pen = pg.mkPen(color, width=2.5,
                           style=QtCore.Qt.PenStyle.DashLine if dashed else QtCore.Qt.PenStyle.SolidLine)
            for item, store in ((self.mean_item, self.mean_curves),
                                (self.saturation_item, self.saturation_curves)):
                curve = pg.PlotDataItem(pen=pen, symbol=symbol, symbolSize=6, symbolBrush=color,
                                        symbolPen=None, connect="finite")
                item.addItem(curve)
                store[gate] = curve
            self.legend.addItem(self.mean_curves[gate], gate_label(gate))

    def _arrange(self, side_by_side: bool) -> None:
        """Stack the two plots (sharing one time axis) in a tall panel; put them side by
        side in a wide, short one (a dock under the loss plot), where stacked they
        would be too flat to read."""
        if side_by_side == self.side_by_side:
            return
        self.side_by_side = side_by_side
        layout: pg.GraphicsLayout = self.plot_widget.ci
        for item in (self.title_label, self.mean_item, self.saturation_item, self.legend):
            layout.removeItem(item)
        if side_by_side:
            layout.addItem(self.title_label, 0, 0, 1, 2)
            layout.addItem(self.mean_item, 1, 0)
            layout.addItem(self.saturation_item, 1, 1)
            layout.addItem(self.legend, 2, 0, 1, 2)
            self.mean_item.showAxis("bottom")
        else:
            layout.addItem(self.title_label, 0, 0)
            layout.addItem(self.mean_item, 1, 0)
            layout.addItem(self.saturation_item, 2, 0)
            layout.addItem(self.legend, 3, 0)
            self.mean_item.hideAxis("bottom")

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        QtCore.QTimer.singleShot(0, self._on_resized)

    def _on_resized(self) -> None:
        size = self.plot_widget.size()
        self._arrange(size.width() > 2.2 * size.height())

    # -- public API (add_event, add_events, redraw_now: common.ProbeFrames) --------

    def clear(self) -> None:
        """Forget the run's probes (a new run starts)."""
        self._frames = []
        self._run = common.RunHeader()
        self._after_events()
        self.throttle.dirty = True
        self.redraw_now()

    def export(self, path: str | Path, *, scale: float | None = None,
               width: int | None = None) -> None:
        """Write both plots (title, legend) to PNG (at `width` px or `scale` × its size
        on screen, 2× by default) or SVG; for a vanilla RNN the picture carries the
        "no gates" note as its title."""
        self.redraw_now()
        figure.export_figure(self.plot_widget.ci, path, scale=scale, width=width)

    # -- settings and state --------------------------------------------------------

    @property
    def has_gates(self) -> bool:
        """False when the run is a vanilla RNN (the note is shown instead of plots)."""
        if self._run.cell in VANILLA_CELLS:
            return False
        return not self._frames or bool(self._frames[-1].means)

    @property
    def gates(self) -> list[str]:
        """The gates drawn (e.g. ["i", "f", "o"]); empty before a probe or without gates."""
        return list(self.mean_curves) if self.has_gates and self._frames else []

    def set_layer(self, layer: int) -> None:
        """Show layer `layer` (0 = bottom; -1 = top)."""
        self.layer_combo.choose(layer)

    # -- handlers ----------------------------------------------------------------

    def _take(self, event: object) -> bool:
        if isinstance(event, ProbeEvent):
            self._frames.append(_GateFrame.of(event))
            return True
        return self._run.take_header(event)

    def _after_events(self) -> None:
        self._follow_probes(enabled=self.has_gates)
        self.layer_combo.sync(self._frames[-1].layers if self._frames else 0, self._layer)
        self.stack.setCurrentWidget(self.plot_widget if self.has_gates else self.notice)
        if not self.has_gates:
            self.notice.setText(NO_GATES_NOTICE.format(cell=self._run.cell or "vanilla RNN"))
        self.throttle.mark_dirty()

    @property
    def _selected_layer(self) -> int:
        return self.layer_combo.layer

    def _on_layer_chosen(self, _index: int) -> None:
        self._layer = self._selected_layer
        self.throttle.dirty = True
        self.redraw_now()

    def describe_step(self, x: float) -> str:
        """The gate values at the time step nearest `x` of the probe shown (the readout)."""
        if not self._frames or not self.has_gates:
            return ""
        frame = self._frames[self.current_index]
        t = int(round(x))
        if not 1 <= t <= frame.t_in + frame.t_out:
            return ""
        where = f"encoder step {t}" if t <= frame.t_in else f"decoder step {t - frame.t_in}"
        parts = []
        for gate in frame.gates:
            _, mean = frame.curve("mean", gate, self._selected_layer)
            _, sat = frame.curve("saturation", gate, self._selected_layer)
            if t <= mean.size and np.isfinite(mean[t - 1]):
                parts.append(f"{gate} {mean[t - 1]:.2f} ({sat[t - 1]:.0%} saturated)")
        return f"{where}: " + ", ".join(parts) if parts else f"{where}: padded"

    def _on_mouse_moved(self, args: tuple) -> None:
        for item in (self.mean_item, self.saturation_item):
            vb = item.getViewBox()
            if vb.sceneBoundingRect().contains(args[0]):
                self.cursor_label.setText(self.describe_step(vb.mapSceneToView(args[0]).x()))
                return

    # -- drawing -----------------------------------------------------------------

    def _set_title(self, text: str) -> None:
        self.title_label.setText(text, color=style.FOREGROUND, size="11pt")

    def _redraw(self) -> None:
        if not self.has_gates:
            self._ensure_curves([])
            self.separator.setVisible(False)
            self.saturation_separator.setVisible(False)
            self._set_title(f"{self._run.cell or 'vanilla RNN'}: vanilla RNNs have no gates")
            self.probe_label.setText(f"{len(self._frames)} probes, no gates")
            return
        if not self._frames:
            self._ensure_curves([])
            self.separator.setVisible(False)
            self.saturation_separator.setVisible(False)
            self._set_title("Gates: no probe yet")
            self.probe_label.setText("no probe yet")
            self.half_line.setVisible(False)
            self.empty.update(False)
            return
        self.half_line.setVisible(True)
        self.empty.update(True)
        index = self.current_index
        frame = self._frames[index]
        layer = self._selected_layer
        self._ensure_curves(frame.gates)
        for gate in frame.gates:
            self.mean_curves[gate].setData(*frame.curve("mean", gate, layer))
            self.saturation_curves[gate].setData(*frame.curve("saturation", gate, layer))
        for sep in (self.separator, self.saturation_separator):
            sep.setPos(frame.t_in + 0.5)
            sep.setVisible(True)
        total = frame.t_in + frame.t_out
        self.mean_item.setXRange(0.5, total + 0.5, padding=0.01)
        axis = common.time_step_axis(frame.t_in, frame.t_out)
        for item in (self.mean_item, self.saturation_item):
            item.setLabel("bottom", axis, color=style.FOREGROUND)
        layers = frame.layers
        where = f"layer {layer + 1} of {layers}" if layers > 1 else "one layer"
        cell = self._run.cell
        cell = cell.upper() if cell in ("lstm", "gru") else (cell or "gated cell")
        title = f"Gates of the {cell} ({where}): probe at step {frame.step:,}"
        if self._run.status:
            title += f" ({self._run.status})"
        self._set_title(title)
        self.probe_label.setText(self._probe_text(index, frame.step, frame.epoch))


# -- standalone ------------------------------------------------------------------


def demo_gates(event: ProbeEvent, cell: str, progress: float) -> ProbeEvent:
    """`event` with plausible gate statistics for `cell` at training `progress` in
    [0, 1] (the demo events of ui.plots.demo carry none): the forget / update gate
    opens through the encoder as training goes on, the others hover near 0.5."""
    gates = {"lstm": ("i", "f", "o"), "gru": ("r", "z")}.get(cell, ())
    if not gates:
        return event
    layers, t_in = np.atleast_2d(event.encoder_grad_norms).shape
    t_out = np.atleast_2d(event.decoder_grad_norms).shape[1]
    t = np.arange(t_in + t_out)
    rng = np.random.default_rng(event.step)
    means, saturation = {}, {}
    for gate in gates:
        if gate in ("f", "z"):
            peak = 0.55 + 0.4 * progress
            base = np.where(t < t_in, peak, 0.6 + 0.2 * progress)
        elif gate == "i":
            base = np.where(t < t_in, 0.5 - 0.25 * progress * (t / t_in), 0.55)
        else:
            base = np.full(t.size, 0.5)
        m = np.clip(base[None] + rng.normal(0, 0.02, (layers, t.size)), 0, 1)
        means[gate] = m
        saturation[gate] = np.clip(np.abs(m - 0.5) * 1.6 + rng.normal(0, 0.02, m.shape), 0, 1)
    return replace(event, gate_means=means, gate_saturation=saturation)


class _DemoGatesPlot(GatesPlot):
    """The panel on demo.py's events, which carry no gates: adds plausible ones."""

    _cell_name = "lstm"
    _last_step = 3000

    def _take(self, event: object) -> bool:
        if isinstance(event, RunStarted):
            self._cell_name = style.cell_of(event.config) or "lstm"
        if isinstance(event, ProbeEvent):
            event = demo_gates(event, self._cell_name, event.step / self._last_step)
        return super()._take(event)


if __name__ == "__main__":
    import sys

    from ui.plots.demo import run_standalone

    argv = sys.argv[1:]
    if "--cell" not in argv:
        argv = ["--cell", "lstm", *argv]  # a gated cell by default
    raise SystemExit(run_standalone(_DemoGatesPlot, "Gates", argv, overlay_cell=None))
