"""The gradient panel: G_t, the norm of dL/dh_t at every time step, per probe.

G_t = mean over the probe samples of ||dL_b/dh_{b,t}||, for encoder steps
1..T_in then decoder steps 1..T_out (drawn as T_in+1..T_in+T_out, with a marker at
the handover). On a log axis a vanilla RNN's gradient falls by orders of magnitude
towards the early encoder steps: that is the vanishing gradient, made visible.

- Curves: the latest probe bold, the previous probes (at most `HISTORY`) fading
  with age, so a user sees gradients vanish, explode or recover during training.
- Heatmap: every probe of the run (probe by time step) as log10 G_t, with a colour
  bar; one row per probe.
- Layer and h/c (LSTM cell state) selectors; overlaid runs show their latest probe.

Values are float64 and are never clipped: 1e-28 shows as 1e-28. NaN entries are
padded steps and are left out; zeros cannot be drawn on a log axis and leave a gap.
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
from workbench.compare import encoder_spectral_radius, vanishing_ratio
from workbench.events import ProbeEvent, RunStarted

HISTORY = 20  # earlier probes drawn as fading curves behind the latest one
EMPTY_TEXT = ("The gradient at every time step appears here at the run's first probe\n"
              "(or pick a run in the Runs panel)")
RATIO_TIP = ("G₁/G_T: the gradient reaching the first input step over the gradient at the "
             "last one (encoder, top layer, latest probe). About 1: it carries through; "
             "far below 1: it vanishes; far above: it explodes.")
RADIUS_TIP = ("ρ(W_hh): the spectral radius (largest |eigenvalue|) of the encoder's top-layer "
              "recurrent weights at the latest probe; for an LSTM or GRU the largest over its "
              "gate blocks. Above 1 a vanilla RNN tends to explode, well below 1 to vanish.")


@dataclass(frozen=True)
class _Probe:
    step: int
    epoch: int
    enc: np.ndarray  # (layers, T_in) G_t of h
    dec: np.ndarray  # (layers, T_out)
    enc_c: np.ndarray | None  # LSTM c_t, else None
    dec_c: np.ndarray | None

    @classmethod
    def of(cls, event: ProbeEvent) -> _Probe:
        def arr(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else np.atleast_2d(np.asarray(a, dtype=np.float64))

        return cls(event.step, event.epoch, arr(event.encoder_grad_norms),
                   arr(event.decoder_grad_norms), arr(event.encoder_cell_grad_norms),
                   arr(event.decoder_cell_grad_norms))

    @property
    def layers(self) -> int:
        return self.enc.shape[0]

    @property
    def t_in(self) -> int:
        return self.enc.shape[1]

    @property
    def t_out(self) -> int:
        return self.dec.shape[1]

    def values(self, layer: int, state: str) -> np.ndarray | None:
        """G_t over encoder then decoder steps (NaN kept), or None if not recorded.
        `layer` counts from the bottom; one past the top is clamped to the top."""
        enc, dec = (self.enc_c, self.dec_c) if state == "c" else (self.enc, self.dec)
        if enc is None or dec is None:
            return None
        layer = min(layer, enc.shape[0] - 1)
        return np.concatenate([enc[layer], dec[layer]])

    def curve(self, layer: int, state: str) -> tuple[np.ndarray, np.ndarray]:
        """(time steps 1..T_in+T_out, G_t) with the NaN (padded) steps dropped."""
        values = self.values(layer, state)
        if values is None:
            return np.empty(0), np.empty(0)
        steps = np.arange(1, values.size + 1, dtype=np.float64)
        keep = ~np.isnan(values)
        return steps[keep], values[keep]


@dataclass
class _Run(common.RunHeader):
    probes: list[_Probe] = field(default_factory=list)
    latest: ProbeEvent | None = None  # the read-outs' source

    def add(self, event: object) -> bool:
        if isinstance(event, ProbeEvent):
            self.probes.append(_Probe.of(event))
            self.latest = event
            return True
        return self.take_header(event)


@dataclass
class _Overlay:
    label: str
    color: str
    run: _Run
    curve: pg.PlotDataItem


class GradientPlot(common.Overlays, QtWidgets.QWidget):
    """G_t against time step for the probes of a run, as fading curves or a heatmap."""

    view_changed = QtCore.Signal(str)  # "curves" or "heatmap"

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._run = _Run()
        self._overlays: dict[str, _Overlay] = {}
        self._layer = -1  # -1: the top layer, whatever the model's depth
        self._state = "h"
        self._heatmap_rows: list[np.ndarray] = []  # log10 G_t per probe, for the selection
        self.throttle = style.RedrawThrottle(self._redraw, parent=self)
        self._build_controls()
        self._build_curves_view()
        self._build_heatmap_view()
        self.stack = QtWidgets.QStackedWidget()
        self.stack.addWidget(self.plot_widget)
        self.stack.addWidget(self.heatmap_widget)
        common.panel_layout(self, self._controls, self.stack)

    # -- construction ------------------------------------------------------------

    def _build_controls(self) -> None:
        self.layer_combo = common.LayerCombo(
            "Which layer's hidden state the gradient is taken with respect to")
        self.layer_combo.currentIndexChanged.connect(self._on_layer_chosen)
        self.state_combo = common.compact_combo(QtWidgets.QComboBox(), 3)
        self.state_combo.addItem("h (hidden state)", "h")
        self.state_combo.addItem("c (cell state, LSTM)", "c")
        self.state_combo.setToolTip("LSTM only: the gradient with respect to the cell state c_t")
        self.state_combo.setEnabled(False)
        self.state_combo.currentIndexChanged.connect(self._on_state_chosen)
        self.log_y_checkbox = QtWidgets.QCheckBox("log y")
        self.log_y_checkbox.setChecked(True)
        self.log_y_checkbox.toggled.connect(self._on_log_y_toggled)
        self.heatmap_checkbox = QtWidgets.QCheckBox("heatmap")
        self.heatmap_checkbox.setToolTip("All probes of the run as an image: probe by time step, log10 G_t")
        self.heatmap_checkbox.toggled.connect(self._on_heatmap_toggled)
        self.cursor_label = style.readout_label()
        # The latest probe's G₁/G_T and spectral radius, on two short lines in a smaller
        # font: they fit beside the controls of a laptop-width panel (a panel narrower
        # than its controls cuts them rather than widening).
        self.readout = common.ShrinkingLabel("")
        font = self.readout.font()
        font.setPointSizeF(font.pointSizeF() * 0.85)
        self.readout.setFont(font)
        self.readout.setObjectName("gradientReadouts")
        self.readout.setToolTip(f"{RATIO_TIP}\n\n{RADIUS_TIP}")
        self._controls = common.control_bar(
            self.layer_combo, self.state_combo, self.log_y_checkbox,
            self.heatmap_checkbox, self.readout, readout=self.cursor_label)

    def _build_curves_view(self) -> None:
        self.plot_widget = style.make_plot_widget(
            bottom=style.LABEL_TIME_STEP, left=style.LABEL_GRAD_H, title="Gradient per time step")
        self.plot_item: pg.PlotItem = self.plot_widget.getPlotItem()
        self.legend = legends.install(self.plot_item, "below")  # curves may fill every corner
        axes.use_log_axis(self.plot_item)
        self.plot_item.setLogMode(x=False, y=True)
        color = style.DEFAULT_CELL_COLOR
        self.history_curves: list[pg.PlotDataItem] = []
        for _ in range(HISTORY):
            curve = pg.PlotDataItem(pen=pg.mkPen(style.with_alpha(color, 0.2), width=1))
            self.plot_item.addItem(curve)
            self.history_curves.append(curve)
        self.latest_curve = pg.PlotDataItem(
            pen=pg.mkPen(color, width=3), symbol="o", symbolSize=5, symbolBrush=color,
            symbolPen=None)
        self.latest_curve.setZValue(10)
        self.plot_item.addItem(self.latest_curve)
        # A legend sample for the faded curves (not itself drawn).
        self._history_sample = pg.PlotDataItem(pen=pg.mkPen(style.with_alpha(color, 0.35), width=1))
        legend = self.plot_item.legend
        legend.addItem(self.latest_curve, "latest probe")
        legend.addItem(self._history_sample, "earlier probes (fainter = older)")
        self.separator = common.boundary_line(0.04)  # low: a vanishing gradient leaves it free
        self.separator.setVisible(False)
        self.plot_item.addItem(self.separator, ignoreBounds=True)
        self._mouse_proxy = pg.SignalProxy(
            self.plot_widget.scene().sigMouseMoved, rateLimit=30, slot=self._on_mouse_moved)
        self._init_overlay_guard(self.plot_item.getViewBox())
        self.empty = notes.EmptyState(self.plot_item, EMPTY_TEXT)

    def _build_heatmap_view(self) -> None:
        self.heatmap_widget = pg.PlotWidget(background=style.BACKGROUND)
        self.heatmap_widget.setMinimumSize(*style.PLOT_MIN_SIZE)
        self.heatmap_item: pg.PlotItem = self.heatmap_widget.getPlotItem()
        style.style_plot_item(self.heatmap_item, bottom=style.LABEL_TIME_STEP,
                              left=style.LABEL_PROBE, title="Gradient per time step, all probes")
        self.heatmap_item.showGrid(x=False, y=False)  # no grid lines across the image
        self.heatmap_image = pg.ImageItem(axisOrder="row-major")
        self.heatmap_item.addItem(self.heatmap_image)
        self.colorbar = pg.ColorBarItem(
            values=(-10, 0), colorMap=style.SEQUENTIAL_CMAP, interactive=False, pen=style.FOREGROUND)
        self.colorbar.setImageItem(self.heatmap_image, insert_in=self.heatmap_item)
        self.colorbar.getAxis("right").setTextPen(pg.mkPen(style.FOREGROUND))
        self.colorbar.getAxis("right").setPen(pg.mkPen(style.FOREGROUND))
        self.colorbar.getAxis("right").setLabel(style.LABEL_LOG_GRAD, color=style.FOREGROUND)
        self.heatmap_separator = common.boundary_line(0.97)
        self.heatmap_separator.setVisible(False)
        self.heatmap_item.addItem(self.heatmap_separator, ignoreBounds=True)
        self._heatmap_mouse_proxy = pg.SignalProxy(
            self.heatmap_widget.scene().sigMouseMoved, rateLimit=30, slot=self._on_heatmap_mouse_moved)
        self.heatmap_empty = notes.EmptyState(self.heatmap_item, EMPTY_TEXT)

    # -- public API --------------------------------------------------------------

    def add_event(self, event: object) -> None:
        """Take one event (see `add_events`)."""
        self.add_events((event,))

    def add_events(self, events: Iterable[object]) -> None:
        """Take a batch of events, live or replayed: probes are drawn, RunStarted sets the
        run's colour. The redraw follows at the throttle's next tick (`redraw_now` draws
        at once)."""
        started = probed = changed = False
        for event in events:
            if self._run.add(event):
                changed = True
                started = started or isinstance(event, RunStarted)
                probed = probed or isinstance(event, ProbeEvent)
        if changed:
            self._after_events(started, probed)

    def clear(self) -> None:
        """Forget the current run (a new run starts); overlays stay."""
        self._run = _Run()
        self._heatmap_rows = []
        self._after_events(True, False)
        self.throttle.dirty = True
        self.redraw_now()

    def _add_overlay(self, key: str, label: str, events: list, color: str | None = None) -> None:
        """Overlay the latest probe of another run (see common.Overlays.set_overlay)."""
        color = self._claim_overlay(key, color, self._run.cell)
        run = _Run()
        for event in events:
            run.add(event)
        curve = self.plot_item.plot(pen=pg.mkPen(color, width=2.5), symbol="s", symbolSize=4,
                                    symbolBrush=color, symbolPen=None, name=label)
        curve.setZValue(8)
        self._overlays[key] = _Overlay(label, color, run, curve)
        self._draw_overlay(self._overlays[key])
        self.throttle.mark_dirty()

    def _drop_overlay(self, key: str) -> None:
        overlay = self._overlays.pop(key, None)
        if overlay is not None:
            self.plot_item.removeItem(overlay.curve)

    def export(self, path: str | Path, *, scale: float | None = None,
               width: int | None = None) -> None:
        """Write the visible view (curves, or heatmap with its colour bar) to PNG (at
        `width` px or `scale` × its size on screen, 2× by default) or SVG."""
        self.redraw_now()
        figure.export_figure(self.heatmap_item if self.heatmap_shown else self.plot_item, path,
                             scale=scale, width=width)

    def set_dataset(self, kind: str, name: str | None = None) -> None:
        """The open dataset (its target kind and file name): what the panel is about
        while it shows no run and no overlay."""
        self.set_open_dataset(common.DataFacts(name or "the open dataset",
                                               "tokens" if kind == "tokens" else "continuous"))

    @property
    def readouts(self) -> tuple[str, str]:
        """The G₁/G_T and spectral radius read-outs as shown ("" before a probe)."""
        text = self.readout.text()
        if not text:
            return "", ""
        ratio, radius = text.split("\n")
        return ratio, radius

    # -- settings ----------------------------------------------------------------

    @property
    def heatmap_shown(self) -> bool:
        return self.heatmap_checkbox.isChecked()

    def set_heatmap(self, on: bool) -> None:
        self.heatmap_checkbox.setChecked(on)

    def set_log_y(self, on: bool) -> None:
        self.log_y_checkbox.setChecked(on)

    def set_layer(self, layer: int) -> None:
        """Show layer `layer` (0 = bottom; -1 = top)."""
        self.layer_combo.choose(layer)

    def set_state(self, state: str) -> None:
        """"h" (hidden state) or "c" (LSTM cell state)."""
        self.state_combo.setCurrentIndex(0 if state == "h" else 1)

    @property
    def probe_count(self) -> int:
        return len(self._run.probes)

    def redraw_now(self) -> None:
        """Draw pending data at once instead of at the next timer tick."""
        self.throttle.flush()

    # -- handlers ----------------------------------------------------------------

    def _after_events(self, started: bool, probed: bool) -> None:
        if started:
            self._recheck_overlays()
            color = style.cell_color(self._run.cell)
            self.latest_curve.setPen(pg.mkPen(color, width=3))
            self.latest_curve.setSymbolBrush(color)
            self._history_sample.setPen(pg.mkPen(style.with_alpha(color, 0.35), width=1))
        if probed:
            self._sync_selectors()
        self.throttle.mark_dirty()

    def _sync_selectors(self) -> None:
        """Offer one entry per layer and the c choice when the run has them."""
        probes = self._run.probes
        if not probes:
            return
        self.layer_combo.sync(probes[-1].layers, self._layer)
        has_c = probes[-1].enc_c is not None
        self.state_combo.setEnabled(has_c)
        if not has_c and self._state == "c":
            self.set_state("h")

    @property
    def _selected_layer(self) -> int:
        return self.layer_combo.layer

    def _on_layer_chosen(self, _index: int) -> None:
        self._layer = self._selected_layer
        self._selection_changed()

    def _on_state_chosen(self, _index: int) -> None:
        self._state = self.state_combo.currentData() or "h"
        label = style.LABEL_GRAD_C if self._state == "c" else style.LABEL_GRAD_H
        self.plot_item.setLabel("left", label, color=style.FOREGROUND)
        self.colorbar.getAxis("right").setLabel(
            style.LABEL_LOG_GRAD_C if self._state == "c" else style.LABEL_LOG_GRAD,
            color=style.FOREGROUND)
        self._selection_changed()

    def _selection_changed(self) -> None:
        self._heatmap_rows = []  # rebuilt for the new layer or state
        for overlay in self._overlays.values():
            self._draw_overlay(overlay)
        self.throttle.dirty = True
        self.redraw_now()

    def _on_log_y_toggled(self, on: bool) -> None:
        self.plot_item.setLogMode(x=False, y=on)
        self.plot_item.enableAutoRange()

    def _on_heatmap_toggled(self, on: bool) -> None:
        self.stack.setCurrentWidget(self.heatmap_widget if on else self.plot_widget)
        self.log_y_checkbox.setEnabled(not on)
        self.throttle.dirty = True
        self.redraw_now()
        self.view_changed.emit("heatmap" if on else "curves")

    def _describe(self, probe: _Probe, x: float) -> str:
        values = probe.values(self._selected_layer, self._state)
        if values is None:
            return ""
        t = int(round(x))
        if not 1 <= t <= values.size:
            return ""
        where = f"encoder step {t}" if t <= probe.t_in else f"decoder step {t - probe.t_in}"
        value = values[t - 1]
        text = "padded" if np.isnan(value) else f"{value:.3g}"
        return f"probe at step {probe.step:,}, {where}: G = {text}"

    def _on_mouse_moved(self, args: tuple) -> None:
        vb = self.plot_item.getViewBox()
        if self._run.probes and vb.sceneBoundingRect().contains(args[0]):
            self.cursor_label.setText(
                self._describe(self._run.probes[-1], vb.mapSceneToView(args[0]).x()))

    def _on_heatmap_mouse_moved(self, args: tuple) -> None:
        vb = self.heatmap_item.getViewBox()
        if not (self._run.probes and vb.sceneBoundingRect().contains(args[0])):
            return
        point = vb.mapSceneToView(args[0])
        row = int(round(point.y()))
        if 0 <= row < len(self._run.probes):
            self.cursor_label.setText(self._describe(self._run.probes[row], point.x()))

    # -- drawing -----------------------------------------------------------------

    def _redraw(self) -> None:
        probes = self._run.probes
        layer, state = self._selected_layer, self._state
        if probes:
            latest = probes[-1]
            self.separator.setPos(latest.t_in + 0.5)
            self.heatmap_separator.setPos(latest.t_in + 0.5)
            axis = common.time_step_axis(latest.t_in, latest.t_out)
            self.plot_item.setLabel("bottom", axis, color=style.FOREGROUND)
            self.heatmap_item.setLabel("bottom", axis, color=style.FOREGROUND)
        self.separator.setVisible(bool(probes))
        self.heatmap_separator.setVisible(bool(probes))
        if self.heatmap_shown:
            self._draw_heatmap()
        else:
            self._draw_curves()
        title = "Gradient per time step"
        if probes:
            latest = probes[-1]
            layers = latest.layers
            where = f", layer {layer + 1}/{layers}" if layers > 1 else ""
            title += f" ({state}{where}): step {latest.step:,}"
        if self._run.status:
            title += f" ({self._run.status})"
        style.set_title(self.plot_item, title)
        style.set_title(self.heatmap_item, title.replace("Gradient per time step", "Gradient, all probes"))
        self.empty.update(bool(probes) or any(o.run.probes for o in self._overlays.values()))
        self.heatmap_empty.update(bool(probes))
        self._update_readouts()

    def _update_readouts(self) -> None:
        probe = self._run.latest
        ratio = vanishing_ratio(probe)
        radius = encoder_spectral_radius(probe)
        if probe is None:
            self.readout.setText("")
            return
        self.readout.setText(f"G₁/G_T {axes.number_text(ratio)}\n"
                             f"ρ(W_hh) {axes.number_text(radius, 3)}")

    def _draw_curves(self) -> None:
        probes = self._run.probes
        layer, state = self._selected_layer, self._state
        color = style.cell_color(self._run.cell)
        earlier = probes[-HISTORY - 1:-1] if probes else []
        n = len(earlier)
        for i, curve in enumerate(self.history_curves):
            if i < n:
                age = n - i  # 1 = the probe just before the latest
                alpha = 0.55 * (1.0 - (age - 1) / HISTORY) + 0.05
                curve.setPen(pg.mkPen(style.with_alpha(color, alpha), width=1))
                curve.setData(*earlier[i].curve(layer, state))
                curve.setVisible(True)
            else:
                curve.setVisible(False)
        if probes:
            self.latest_curve.setData(*probes[-1].curve(layer, state))
            label = self.plot_item.legend.getLabel(self.latest_curve)
            if label is not None:
                label.setText(f"latest probe (step {probes[-1].step:,})")
        else:
            self.latest_curve.setData([], [])

    def _draw_heatmap(self) -> None:
        probes = self._run.probes
        if not probes:
            self.heatmap_image.clear()
            return
        layer, state = self._selected_layer, self._state
        for probe in probes[len(self._heatmap_rows):]:
            values = probe.values(layer, state)
            if values is None:
                values = np.full(probe.t_in + probe.t_out, np.nan)
            with np.errstate(divide="ignore", invalid="ignore"):
                row = np.log10(values)
            row[~np.isfinite(row)] = np.nan  # padded steps and zeros: no colour
            self._heatmap_rows.append(row)
        width = max(r.size for r in self._heatmap_rows)
        image = np.full((len(self._heatmap_rows), width), np.nan)
        for i, row in enumerate(self._heatmap_rows):
            image[i, : row.size] = row
        finite = image[np.isfinite(image)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (-1.0, 0.0)
        if hi - lo < 1e-9:
            lo, hi = lo - 0.5, hi + 0.5
        self.heatmap_image.setImage(image, autoLevels=False)
        self.colorbar.setLevels((lo, hi))
        self.heatmap_image.setRect(QtCore.QRectF(0.5, -0.5, width, image.shape[0]))
        self._set_probe_ticks([p.step for p in probes])

    def _set_probe_ticks(self, steps: list[int]) -> None:
        """Label the heatmap's rows with their training steps (a handful of them)."""
        count = len(steps)
        every = max(1, int(np.ceil(count / 8)))
        major = [(i, f"{steps[i]:,}") for i in range(0, count, every)]
        self.heatmap_item.getAxis("left").setTicks([major, []])

    def _draw_overlay(self, overlay: _Overlay) -> None:
        probes = overlay.run.probes
        if probes:
            overlay.curve.setData(*probes[-1].curve(self._selected_layer, self._state))
        else:
            overlay.curve.setData([], [])


if __name__ == "__main__":
    from ui.plots.demo import run_standalone

    raise SystemExit(run_standalone(GradientPlot, "Gradient per time step"))
