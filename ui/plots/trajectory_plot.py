"""The hidden-state trajectory panel: where the hidden state goes, step by step.

Each probe records the top layer's hidden states h_t of a few fixed samples, for
the encoder then the decoder. They are projected to 2D by PCA (numpy SVD) and drawn
as one path per sample: points coloured by time step (colour bar), the encoder part
solid and the decoder part dashed, the start and the encoder-to-decoder handover
marked. A slider scrubs through the run's probes, so the change over training can
be watched; "lock PCA" keeps the PCA basis (and the view) of the probe shown
when it was ticked, so that frames are comparable.

Overlays are not drawn here: the overlay methods exist for the common panel API and
do nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from ui.plots import common, figure, notes, style
from ui.plots import legend as legends
from workbench.events import ProbeEvent

EMPTY_TEXT = ("The hidden state of a few samples, step by step, appears here at the run's "
              "first probe\n(or pick a run in the Runs panel)")


@dataclass(frozen=True)
class Projection:
    """A 2D PCA basis: x -> (x - mean) @ components.T."""

    mean: np.ndarray  # (hidden,)
    components: np.ndarray  # (2, hidden), orthonormal rows
    explained: np.ndarray  # (2,) fraction of the fitted data's variance per component

    def apply(self, states: np.ndarray) -> np.ndarray:
        """(..., hidden) -> (..., 2); NaN rows stay NaN."""
        return (states - self.mean) @ self.components.T


def fit_pca(states: np.ndarray) -> Projection:
    """The top two principal components of the rows of `states` (N, hidden), ignoring
    rows with non-finite values. Each component's sign is fixed (its largest loading
    positive) so that refitting similar data does not mirror the picture."""
    states = np.asarray(states, dtype=np.float64)
    hidden = states.shape[-1]
    rows = states.reshape(-1, hidden)
    rows = rows[np.isfinite(rows).all(axis=1)]
    if rows.shape[0] == 0:
        return Projection(np.zeros(hidden), np.eye(2, hidden), np.zeros(2))
    mean = rows.mean(axis=0)
    centred = rows - mean
    _u, singular, vt = np.linalg.svd(centred, full_matrices=False)
    components = np.zeros((2, hidden))
    explained = np.zeros(2)
    k = min(2, vt.shape[0])
    components[:k] = vt[:k]
    total = float(np.sum(singular**2))
    if total > 0:
        explained[:k] = singular[:k] ** 2 / total
    for i in range(k):
        if components[i, np.argmax(np.abs(components[i]))] < 0:
            components[i] = -components[i]
    if k < 2 and hidden > 1:  # fewer than two directions of variance: any orthogonal one
        spare = np.eye(hidden)[np.argmin(np.abs(components[0]))]
        spare -= spare @ components[0] * components[0]
        components[1] = spare / np.linalg.norm(spare)
    return Projection(mean, components, explained)


@dataclass(frozen=True)
class _Frame:
    step: int
    epoch: int
    states: np.ndarray  # (samples, T_in + T_out, hidden), float32: encoder then decoder
    t_in: int

    @classmethod
    def of(cls, event: ProbeEvent) -> _Frame:
        enc = np.asarray(event.encoder_hidden, dtype=np.float32)
        dec = np.asarray(event.decoder_hidden, dtype=np.float32)
        if enc.ndim == 2:  # one sample
            enc, dec = enc[None], dec[None]
        return cls(event.step, event.epoch, np.concatenate([enc, dec], axis=1), enc.shape[1])

    @property
    def samples(self) -> int:
        return self.states.shape[0]

    @property
    def steps(self) -> int:
        return self.states.shape[1]


class TrajectoryPlot(common.ProbeFrames, common.NoOverlays, QtWidgets.QWidget):
    """PCA trajectories of the probe samples' hidden states, scrubbed over the probes.

    Trajectories of several runs are not overlaid (their PCA bases differ): the
    overlay methods do nothing."""

    probe_shown = QtCore.Signal(int)  # index of the probe now drawn

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._frames: list[_Frame] = []
        self._run = common.RunHeader()
        self._locked: Projection | None = None
        self._locked_step = 0  # the probe whose PCA is locked
        self.projection: Projection | None = None  # the basis of the frame drawn last
        self._enc_lines: list[pg.PlotDataItem] = []
        self._dec_lines: list[pg.PlotDataItem] = []
        self._brush_cache: dict[int, list] = {}
        self.throttle = style.RedrawThrottle(self._redraw, parent=self)
        self._build_controls()
        self._build_plot()
        common.panel_layout(self, self._controls, self.plot_widget)

    # -- construction ------------------------------------------------------------

    def _build_controls(self) -> None:
        self._build_probe_slider()
        self.sample_combo = common.compact_combo(QtWidgets.QComboBox(), 5)
        self.sample_combo.addItem("all samples", -1)
        self.sample_combo.currentIndexChanged.connect(self._on_sample_chosen)
        self.lock_checkbox = QtWidgets.QCheckBox("lock PCA")
        self.lock_checkbox.setToolTip(
            "Keep the PCA axes (and the view) of the probe shown now for every probe, "
            "so that frames can be compared; unticked, each probe gets its own PCA.")
        self.lock_checkbox.toggled.connect(self._on_lock_toggled)
        self._controls = common.control_bar("Probe", (self.slider, 1), self.probe_label,
                                            self.sample_combo, self.lock_checkbox)

    def _build_plot(self) -> None:
        self.plot_widget = style.make_plot_widget(
            bottom="PC 1", left="PC 2", title="Hidden-state trajectory")
        self.plot_item: pg.PlotItem = self.plot_widget.getPlotItem()
        self.legend = legends.install(self.plot_item, "below")
        self.plot_item.setAspectLocked(True)  # PCA distances are comparable in both axes
        self.cmap = pg.colormap.get(style.SEQUENTIAL_CMAP)
        self.points = pg.ScatterPlotItem(size=6, pen=None)
        self.points.setZValue(5)
        self.start_markers = pg.ScatterPlotItem(
            symbol="star", size=16, brush=pg.mkBrush("#ffffff"), pen=pg.mkPen(style.FOREGROUND, width=1.5))
        self.handover_markers = pg.ScatterPlotItem(
            symbol="d", size=13, brush=pg.mkBrush("#ffffff"), pen=pg.mkPen("#C0392B", width=2))
        for item in (self.start_markers, self.handover_markers):
            item.setZValue(10)
            self.plot_item.addItem(item)
        self.plot_item.addItem(self.points)
        self._ensure_lines(1)
        legend = self.plot_item.legend
        legend.addItem(self._enc_lines[0], "encoder path")
        legend.addItem(self._dec_lines[0], "decoder path")
        legend.addItem(self.start_markers, "start (encoder step 1)")
        legend.addItem(self.handover_markers, "handover (last encoder step)")
        self.colorbar = pg.ColorBarItem(values=(1, 2), colorMap=self.cmap, interactive=False,
                                        pen=style.FOREGROUND)
        axis = self.colorbar.getAxis("right")
        axis.setPen(pg.mkPen(style.FOREGROUND))
        axis.setTextPen(pg.mkPen(style.FOREGROUND))
        axis.setLabel("time step", color=style.FOREGROUND)
        self.plot_item.layout.addItem(self.colorbar, 2, 5)  # right of the data, as insert_in does
        self.plot_item.layout.setColumnFixedWidth(4, 5)
        self.empty = notes.EmptyState(self.plot_item, EMPTY_TEXT)

    def _ensure_lines(self, count: int) -> None:
        """Enough path items for `count` samples (created once, reused)."""
        while len(self._enc_lines) < count:
            enc = pg.PlotDataItem(pen=pg.mkPen("#666666", width=1.5), connect="finite")
            dec = pg.PlotDataItem(pen=pg.mkPen("#666666", width=1.5, style=QtCore.Qt.PenStyle.DashLine),
                                  connect="finite")
            for item in (enc, dec):
                self.plot_item.addItem(item)
            self._enc_lines.append(enc)
            self._dec_lines.append(dec)

    # -- public API (add_event, add_events, redraw_now: common.ProbeFrames) --------

    def clear(self) -> None:
        """Forget the run's probes (a new run starts); the lock is released."""
        self._frames = []
        self._run = common.RunHeader()
        self.lock_checkbox.setChecked(False)
        self._after_events()
        self.redraw_now()

    def export(self, path: str | Path, *, scale: float | None = None,
               width: int | None = None) -> None:
        """Write the plot (with its legend and colour bar) to PNG (at `width` px or
        `scale` × its size on screen, 2× by default) or SVG."""
        self.redraw_now()
        figure.export_figure(self.plot_item, path, scale=scale, width=width)

    # -- settings ----------------------------------------------------------------

    def set_locked(self, on: bool) -> None:
        self.lock_checkbox.setChecked(on)

    def current_path(self, sample: int = 0) -> np.ndarray:
        """The drawn 2D points of `sample` (encoder then decoder steps), (T, 2)."""
        if not self._frames:
            return np.empty((0, 2))
        frame = self._frames[self.current_index]
        return self._projection_for(frame).apply(frame.states[sample].astype(np.float64))

    # -- handlers ----------------------------------------------------------------

    def _take(self, event: object) -> bool:
        if isinstance(event, ProbeEvent):
            self._frames.append(_Frame.of(event))
            return True
        return self._run.take_header(event)

    def _after_events(self) -> None:
        self._follow_probes()
        samples = self._frames[-1].samples if self._frames else 0
        if self.sample_combo.count() != samples + 1:
            self.sample_combo.blockSignals(True)
            chosen = self.sample_combo.currentData()
            self.sample_combo.clear()
            self.sample_combo.addItem("all samples", -1)
            for i in range(samples):
                self.sample_combo.addItem(f"sample {i + 1}", i)
            self.sample_combo.setCurrentIndex(max(0, self.sample_combo.findData(chosen)))
            self.sample_combo.blockSignals(False)
        if self._locked is not None:
            self._fit_locked_view()
        self.throttle.mark_dirty()

    def _on_sample_chosen(self, _index: int) -> None:
        self.throttle.dirty = True
        self.redraw_now()

    def _on_lock_toggled(self, on: bool) -> None:
        if on and self._frames:
            frame = self._frames[self.current_index]
            self._locked, self._locked_step = fit_pca(frame.states), frame.step
            self._fit_locked_view()
        else:
            self._locked = None
            self.plot_item.enableAutoRange()
        self.throttle.dirty = True
        self.redraw_now()

    def _fit_locked_view(self) -> None:
        """With a locked basis, one view that holds every probe, so frames line up."""
        assert self._locked is not None
        lo = np.array([np.inf, np.inf])
        hi = -lo
        for frame in self._frames:
            points = self._locked.apply(frame.states.reshape(-1, frame.states.shape[-1]))
            points = points[np.isfinite(points).all(axis=1)]
            if points.size:
                lo, hi = np.minimum(lo, points.min(axis=0)), np.maximum(hi, points.max(axis=0))
        if np.all(np.isfinite(lo)):
            self.plot_item.disableAutoRange()
            self.plot_item.setRange(xRange=(lo[0], hi[0]), yRange=(lo[1], hi[1]), padding=0.05)

    # -- drawing -----------------------------------------------------------------

    def _projection_for(self, frame: _Frame) -> Projection:
        return self._locked if self._locked is not None else fit_pca(frame.states)

    def _brushes(self, steps: int) -> list:
        """One brush per time step, along the colour map (cached per length)."""
        if steps not in self._brush_cache:
            colors = self.cmap.map(np.linspace(0.0, 1.0, steps), mode="qcolor")
            self._brush_cache[steps] = [pg.mkBrush(c) for c in colors]
        return self._brush_cache[steps]

    def _redraw(self) -> None:
        if not self._frames:
            for item in (self.points, self.start_markers, self.handover_markers):
                item.setData([], [])
            for line in self._enc_lines + self._dec_lines:
                line.setData([], [])
            self.probe_label.setText("no probe yet")
            # no old run's title over an empty plot
            title = f"Hidden-state trajectory: {self._run.run_id}" if self._run.run_id else \
                "Hidden-state trajectory"
            style.set_title(self.plot_item, title + (" (no probe)" if self._run.run_id else ""))
            self.colorbar.setVisible(False)
            self.empty.update(False)
            return
        self.colorbar.setVisible(True)
        self.empty.update(True)
        index = self.current_index
        frame = self._frames[index]
        projection = self._projection_for(frame)
        self.projection = projection
        xy = projection.apply(frame.states.astype(np.float64))  # (samples, T, 2)
        chosen = self.sample_combo.currentData()
        samples = range(frame.samples) if chosen is None or chosen < 0 else [min(chosen, frame.samples - 1)]
        self._ensure_lines(frame.samples)
        t_in = frame.t_in
        brushes = self._brushes(frame.steps)
        xs, ys, point_brushes, starts, handovers = [], [], [], [], []
        for s in range(len(self._enc_lines)):
            visible = s in samples
            self._enc_lines[s].setVisible(visible)
            self._dec_lines[s].setVisible(visible)
            if not visible:
                continue
            path = xy[s]
            finite = np.isfinite(path).all(axis=1)
            valid_enc = np.flatnonzero(finite[:t_in])
            # A shorter input is padded (NaN) at the end: its handover is the last real step.
            last = int(valid_enc[-1]) if valid_enc.size else None
            self._enc_lines[s].setData(path[:t_in, 0], path[:t_in, 1])
            # The decoder line starts at the handover point so the path is unbroken.
            dec = path[t_in:] if last is None else np.vstack([path[last:last + 1], path[t_in:]])
            self._dec_lines[s].setData(dec[:, 0], dec[:, 1])
            xs.append(path[finite, 0])
            ys.append(path[finite, 1])
            point_brushes.extend(b for b, keep in zip(brushes, finite) if keep)
            if valid_enc.size:
                starts.append(path[valid_enc[0]])
                handovers.append(path[last])
        self.points.setData(np.concatenate(xs), np.concatenate(ys), brush=point_brushes)
        self.start_markers.setData(pos=np.array(starts).reshape(-1, 2))
        self.handover_markers.setData(pos=np.array(handovers).reshape(-1, 2))
        self.colorbar.setLevels((1, max(frame.steps, 2)))
        ex = projection.explained
        self.plot_item.setLabel("bottom", f"PC 1 ({ex[0]:.0%} of variance)", color=style.FOREGROUND)
        self.plot_item.setLabel("left", f"PC 2 ({ex[1]:.0%} of variance)", color=style.FOREGROUND)
        basis = (f"PCA locked at step {self._locked_step:,}" if self._locked is not None
                 else "PCA of this probe")
        title = f"Hidden states, top layer ({basis}): step {frame.step:,}"
        if self._run.status:
            title += f" ({self._run.status})"
        style.set_title(self.plot_item, title)
        self.probe_label.setText(self._probe_text(index, frame.step, frame.epoch))


if __name__ == "__main__":
    from ui.plots.demo import run_standalone

    raise SystemExit(run_standalone(TrajectoryPlot, "Hidden-state trajectory", overlay_cell=None))
