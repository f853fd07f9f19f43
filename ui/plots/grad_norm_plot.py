"""The gradient-norm panel: the total gradient norm of every training step, and clipping.

What it shows:
- the total norm of all gradients at each step, before clipping (StepMetrics.grad_norm),
  on a log axis: exploding gradients are spikes of several decades;
- when the run clips (`clip` in its config), the threshold as a horizontal line, the
  steps that were clipped (StepMetrics.clipped) in their own colour, and the clip rate:
  the share of the last CLIP_WINDOW steps that were clipped, and of all steps;
- the values under the mouse cursor.

One run (the one the window follows, live or replayed); other runs are not overlaid.
Data arrives as workbench.events and is drawn by the panel's throttle.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from ui.plots import axes, common, figure, notes, style
from ui.plots import legend as legends
from ui.plots.loss_plot import GrowingArray
from workbench.events import RunStarted, StepMetrics

CLIP_WINDOW = 100  # steps over which the clip rate is given
CLIPPED_COLOR = "#d62728"
THRESHOLD_COLOR = "#d62728"
EMPTY_TEXT = ("The total gradient norm of every training step appears here once training "
              "starts\n(or pick a run in the Runs panel)")


def clip_rate(clipped: np.ndarray, window: int | None = CLIP_WINDOW) -> float | None:
    """The share of the last `window` steps (all of them when None) that were clipped;
    None without steps."""
    values = np.asarray(clipped, dtype=np.float64)
    if window is not None:
        values = values[-window:]
    return float(values.mean()) if values.size else None


@dataclass
class _RunData(common.RunHeader):
    steps: GrowingArray = field(default_factory=GrowingArray)
    norms: GrowingArray = field(default_factory=GrowingArray)
    clipped: GrowingArray = field(default_factory=GrowingArray)
    clip: float | None = None  # the run's threshold; None: no clipping

    def add(self, event: object) -> bool:
        if isinstance(event, StepMetrics):
            self.steps.append(event.step)
            self.norms.append(event.grad_norm)
            self.clipped.append(1.0 if getattr(event, "clipped", False) else 0.0)
            return True
        if isinstance(event, RunStarted):
            clip = (event.config or {}).get("training", {}).get("clip")
            self.clip = float(clip) if isinstance(clip, (int, float)) and clip > 0 else None
        return self.take_header(event)


class GradNormPlot(common.NoOverlays, QtWidgets.QWidget):
    """Total gradient norm per training step (log y), the clip threshold and clip rate."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._run = _RunData()
        self.throttle = style.RedrawThrottle(self._redraw, parent=self)
        self.rate_label = QtWidgets.QLabel("")
        self.rate_label.setObjectName("clipRate")
        self.rate_label.setToolTip(f"Share of the last {CLIP_WINDOW} training steps whose total "
                                   "gradient norm was over the clipping threshold (and of all "
                                   "steps so far)")
        self.cursor_label = style.readout_label()
        controls = common.control_bar(self.rate_label, readout=self.cursor_label)
        self.plot_widget = style.make_plot_widget(
            bottom=style.LABEL_TRAINING_STEP, left="total gradient norm (before clipping)",
            title="Gradient norm")
        self.plot_item: pg.PlotItem = self.plot_widget.getPlotItem()
        self.legend = legends.install(self.plot_item, "corner")
        axes.use_log_axis(self.plot_item)
        self.plot_item.setLogMode(x=False, y=True)
        self.norm_curve = style.long_curve(self.plot_item.plot(
            pen=pg.mkPen(style.DEFAULT_CELL_COLOR, width=1), name="total norm"))
        self.clipped_points = self.plot_item.plot(
            pen=None, symbol="o", symbolSize=4, symbolPen=None, symbolBrush=CLIPPED_COLOR,
            name="clipped")
        self.threshold_line = pg.InfiniteLine(
            angle=0, movable=False, label="clip", labelOpts={"position": 0.05},
            pen=pg.mkPen(THRESHOLD_COLOR, width=1.5, style=QtCore.Qt.PenStyle.DashLine))
        self.threshold_line.setVisible(False)
        self.plot_item.addItem(self.threshold_line, ignoreBounds=True)
        self._mouse_proxy = pg.SignalProxy(
            self.plot_widget.scene().sigMouseMoved, rateLimit=30, slot=self._on_mouse_moved)
        self.empty = notes.EmptyState(self.plot_item, EMPTY_TEXT)
        common.panel_layout(self, controls, self.plot_widget)

    # -- the panels' API -------------------------------------------------------------

    def add_event(self, event: object) -> None:
        self.add_events((event,))

    def add_events(self, events: Iterable[object]) -> None:
        """Take a batch of events, live or replayed (unused types are ignored)."""
        changed = False
        for event in events:
            changed = self._run.add(event) or changed
        if changed:
            self.throttle.mark_dirty()

    def clear(self) -> None:
        self._run = _RunData()
        self.cursor_label.setText("")
        self.throttle.dirty = True
        self.throttle.flush()

    def redraw_now(self) -> None:
        self.throttle.flush()

    def export(self, path: str | Path, *, scale: float | None = None,
               width: int | None = None) -> None:
        """Write the plot to PNG (at `width` px or `scale` × its size on screen, 2× by
        default) or SVG, by the file's extension."""
        self.redraw_now()
        figure.export_figure(self.plot_item, path, scale=scale, width=width)

    # -- what it shows -----------------------------------------------------------------

    @property
    def threshold(self) -> float | None:
        return self._run.clip

    def clip_rates(self) -> tuple[float | None, float | None]:
        """(last CLIP_WINDOW steps, all steps): shares clipped; None without clipping."""
        if self._run.clip is None:
            return None, None
        clipped = self._run.clipped.view
        return clip_rate(clipped), clip_rate(clipped, None)

    def curve_data(self) -> tuple[np.ndarray, np.ndarray]:
        """(steps, total norms) as drawn."""
        return self._run.steps.view.copy(), self._run.norms.view.copy()

    # -- drawing -------------------------------------------------------------------------

    def _redraw(self) -> None:
        run = self._run
        steps, norms = run.steps.view, run.norms.view
        positive = np.where(norms > 0, norms, np.nan)  # a log axis has no 0
        self.norm_curve.setData(steps, positive, connect="finite")
        self.norm_curve.setPen(pg.mkPen(style.cell_color(run.cell), width=1))
        mask = run.clipped.view > 0.5
        self.clipped_points.setData(steps[mask], positive[mask])
        if run.clip is not None:
            self.threshold_line.setPos(math.log10(run.clip))
            self.threshold_line.label.setFormat(f"clip {run.clip:g}")
            self.threshold_line.setVisible(True)
            recent, overall = self.clip_rates()
            self.rate_label.setText(
                "clip rate: –" if recent is None else
                f"clipped: {recent:.0%} of the last {min(CLIP_WINDOW, len(steps))} steps "
                f"({overall:.0%} of all)")
        else:
            self.threshold_line.setVisible(False)
            self.rate_label.setText("no clipping" if run.run_id else "")
        title = "Gradient norm"
        if run.run_id:
            title += f": {run.run_id}"
        if run.status:
            title += f" ({run.status})"
        style.set_title(self.plot_item, title)
        self.empty.update(bool(run.run_id))
        legends.choose_corner(self.plot_item, self.legend)

    def _on_mouse_moved(self, args: tuple) -> None:
        pos = args[0]
        vb = self.plot_item.getViewBox()
        steps = self._run.steps.view
        if not vb.sceneBoundingRect().contains(pos) or steps.size == 0:
            return
        x = vb.mapSceneToView(pos).x()
        i = int(np.clip(np.searchsorted(steps, x), 0, steps.size - 1))
        clipped = " (clipped)" if self._run.clipped.view[i] > 0.5 else ""
        self.cursor_label.setText(f"step {int(steps[i]):,}: total norm "
                                  f"{self._run.norms.view[i]:.4g}{clipped}")


if __name__ == "__main__":
    from ui.plots.demo import run_standalone

    raise SystemExit(run_standalone(GradNormPlot, "Gradient norm", overlay_cell=None))
