"""The plot panels (ui/plots): what a user sees after events arrive.

Each panel is built on demo events (real workbench.events), drawn through its
throttled redraw, and checked for the data its curves hold, its toggles, overlays
and export. The standalone entry points (`python -m ui.plots.X`) run in a child
process with --smoke.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from ui.plots import GradientPlot, LossPlot, TrajectoryPlot, style  # noqa: E402
from ui.plots.demo import demo_events  # noqa: E402
from ui.plots.gates_plot import GatesPlot, demo_gates  # noqa: E402
from ui.plots.loss_plot import smooth  # noqa: E402
from ui.plots.predictions_plot import PredictionsPlot, _demo_prediction  # noqa: E402
from ui.plots.style import CELL_COLORS, legend_labels  # noqa: E402
from workbench.events import EpochMetrics, ProbeEvent, RunStarted, StepMetrics  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
T_IN, T_OUT = 8, 5


def _small_run(cell: str = "rnn-tanh", seed: int = 0) -> list:
    return demo_events(cell, steps=300, steps_per_epoch=100, probe_every=50, t_in=T_IN,
                       t_out=T_OUT, layers=2, hidden=6, samples=2, seed=seed)


def _steps(events: list) -> list[StepMetrics]:
    return [e for e in events if isinstance(e, StepMetrics)]


def _probe(step: int, enc: np.ndarray, dec: np.ndarray, **kwargs) -> ProbeEvent:
    hidden = np.random.default_rng(step).normal(size=(2, T_IN + T_OUT, 4))
    return ProbeEvent(step, 1, np.atleast_2d(enc), np.atleast_2d(dec),
                      hidden[:, :T_IN], hidden[:, T_IN:], **kwargs)


@pytest.fixture
def panel(qtbot, request):
    widget = request.param()
    qtbot.addWidget(widget)
    return widget


# -- loss ------------------------------------------------------------------------


def test_loss_curves_hold_every_step_and_smoothing_starts_at_the_first_loss(qtbot):
    plot = LossPlot()
    qtbot.addWidget(plot)
    events = _small_run()
    plot.add_events(events)
    plot.redraw_now()
    steps = _steps(events)
    x, y = plot.raw_curve.getOriginalDataset()
    assert len(x) == len(steps) == 300
    assert y[0] == steps[0].loss
    sx, sy = plot.smoothed_curve.getOriginalDataset()
    assert len(sx) == 300
    assert sy[0] == pytest.approx(steps[0].loss)  # bias-corrected: no pull towards 0
    assert np.std(np.diff(sy)) < np.std(np.diff(y))  # smoother than the raw loss
    epochs = [e for e in events if isinstance(e, EpochMetrics)]
    vx, vy = plot.val_teacher_forced_curve.getOriginalDataset()
    assert list(vx) == [e.step for e in epochs]
    assert list(vy) == [e.val_loss for e in epochs]
    _, fy = plot.val_free_running_curve.getOriginalDataset()
    assert list(fy) == [e.val_loss_free_running for e in epochs]
    # The run's cell colour is used for its training curve.
    assert plot.smoothed_curve.opts["pen"].color().name() == CELL_COLORS["rnn-tanh"].lower()


def test_smoothing_matches_tensorboard_and_strength_is_adjustable(qtbot):
    values = [1.0, 2.0, np.nan, 3.0]
    w = 0.6
    # TensorBoard (PR #639): last = last*w + (1-w)*v; smoothed = last / (1 - w**n); NaN passes.
    expected = [1.0, (0.4 * 1 * 0.6 + 0.4 * 2) / (1 - 0.36), np.nan]
    last = 0.4 * 1 * 0.6 + 0.4 * 2
    expected.append((last * 0.6 + 0.4 * 3) / (1 - 0.6**3))
    np.testing.assert_allclose(smooth(values, w), expected)

    plot = LossPlot()
    qtbot.addWidget(plot)
    plot.add_events(_small_run())
    plot.redraw_now()
    plot.set_smoothing(0.0)
    plot.redraw_now()
    _, raw = plot.raw_curve.getOriginalDataset()
    _, smoothed = plot.smoothed_curve.getOriginalDataset()
    np.testing.assert_allclose(smoothed, raw)


def test_loss_log_toggle_and_value_under_cursor(qtbot):
    plot = LossPlot()
    qtbot.addWidget(plot)
    plot.add_events(_small_run())
    plot.redraw_now()
    assert not plot.plot_item.getAxis("left").logMode
    plot.set_log_y(True)
    assert plot.plot_item.getAxis("left").logMode
    assert plot.plot_item.getAxis("left").labelText == "loss (MSE, normalised)"
    text = plot.describe_step(149.7)
    assert text.startswith("step 150: loss ")
    assert "validation (epoch 1)" in text
    plot.clear()
    plot.add_event(RunStarted("t", {"model": {"cell": "gru"}}, 1, {"target_kind": "tokens"}))
    plot.redraw_now()
    assert "cross-entropy" in plot.plot_item.getAxis("left").labelText


def test_live_events_are_drawn_by_the_timer_not_per_event(qtbot):
    plot = LossPlot()
    qtbot.addWidget(plot)
    redraws = []
    draw = plot.throttle._redraw
    plot.throttle._redraw = lambda: (redraws.append(1), draw())
    for event in _small_run():
        plot.add_event(event)
    assert redraws == []  # nothing drawn inside the burst of events
    qtbot.waitUntil(lambda: len(redraws) == 1, timeout=2000)
    assert len(plot.raw_curve.getOriginalDataset()[0]) == 300
    qtbot.wait(150)
    assert len(redraws) == 1  # no new data, no redraw


def test_loss_overlay_gets_a_legend_entry_and_loses_it(qtbot):
    plot = LossPlot()
    qtbot.addWidget(plot)
    plot.add_events(_small_run())
    plot.redraw_now()
    plot.set_overlay("run-b", "GRU, hidden 64", _small_run("gru", seed=1))
    labels = legend_labels(plot.plot_item)
    assert "GRU, hidden 64" in labels
    overlay = plot._overlays["run-b"]
    assert len(overlay.train_curve.getOriginalDataset()[0]) == 300
    plot.set_overlay("run-c", "LSTM", _small_run("lstm", seed=2), color="#123456")
    assert plot._overlays["run-c"].train_curve.opts["pen"].color().name() == "#123456"
    assert overlay.color != plot._overlays["run-c"].color
    plot.remove_overlay("run-b")
    assert "GRU, hidden 64" not in legend_labels(plot.plot_item)
    assert "LSTM" in legend_labels(plot.plot_item)
    plot.clear_overlays()
    assert plot.overlay_keys() == []
    plot.clear()
    x, _ = plot.raw_curve.getOriginalDataset()
    assert x is None or len(x) == 0


def test_loss_handles_100k_steps(qtbot):
    plot = LossPlot()
    qtbot.addWidget(plot)
    losses = np.exp(-np.arange(100_000) / 20_000.0)
    plot.add_events([StepMetrics(i + 1, 1, float(v), 1.0, 1e-3, 1.0, 1.0, 0.0)
                     for i, v in enumerate(losses)])
    plot.redraw_now()
    x, _ = plot.raw_curve.getOriginalDataset()
    assert len(x) == 100_000
    assert plot.raw_curve.opts["autoDownsample"] and plot.raw_curve.opts["clipToView"]
    assert plot.smoothed_curve.opts["downsampleMethod"] == "peak"


# -- gradient --------------------------------------------------------------------


def test_gradient_keeps_tiny_values_and_drops_padded_steps(qtbot):
    plot = GradientPlot()
    qtbot.addWidget(plot)
    enc = np.logspace(-28, -1, T_IN)
    dec = np.full(T_OUT, 0.5)
    dec[-1] = np.nan  # a padded step
    plot.add_events([RunStarted("r", {"model": {"cell": "rnn-relu"}}, 1, {}), _probe(10, enc, dec)])
    plot.redraw_now()
    x, y = plot.latest_curve.getOriginalDataset()
    assert len(x) == T_IN + T_OUT - 1
    assert y[0] == 1e-28 and y.dtype == np.float64
    assert not np.isnan(y).any()
    assert list(x[-2:]) == [T_IN + T_OUT - 2, T_IN + T_OUT - 1]  # step numbers stay true
    _, shown = plot.latest_curve.getData()  # log axis: log10 of the values
    assert shown[0] == pytest.approx(-28.0)
    assert plot.plot_item.getAxis("left").logMode
    assert plot.separator.value() == pytest.approx(T_IN + 0.5)
    assert plot.latest_curve.opts["pen"].color().name() == CELL_COLORS["rnn-relu"].lower()
    plot.set_heatmap(True)  # the same probe as log10 G_t: -28 kept, the padded step blank
    row = plot.heatmap_image.image[0]
    assert row[0] == pytest.approx(-28.0) and np.isnan(row[-1])
    assert plot.colorbar.levels()[0] == pytest.approx(-28.0)


def test_gradient_full_probe_has_t_in_plus_t_out_points_and_history_fades(qtbot):
    plot = GradientPlot()
    qtbot.addWidget(plot)
    events = demo_events("rnn-tanh", steps=1300, probe_every=50, t_in=T_IN, t_out=T_OUT,
                         layers=1, hidden=4, samples=1)
    plot.add_events(events)
    plot.redraw_now()
    assert plot.probe_count == 27
    x, _ = plot.latest_curve.getOriginalDataset()
    assert len(x) == T_IN + T_OUT
    visible = [c for c in plot.history_curves if c.isVisible()]
    assert len(visible) == 20  # capped
    alphas = [c.opts["pen"].color().alphaF() for c in visible]
    assert alphas == sorted(alphas)  # older (earlier in the list) are fainter
    assert plot.latest_curve.opts["pen"].widthF() > visible[-1].opts["pen"].widthF()
    plot.set_log_y(False)
    assert not plot.plot_item.getAxis("left").logMode


def test_gradient_heatmap_shows_every_probe_by_time_step(qtbot):
    plot = GradientPlot()
    qtbot.addWidget(plot)
    plot.add_events(_small_run())
    plot.redraw_now()
    plot.set_heatmap(True)
    assert plot.stack.currentWidget() is plot.heatmap_widget
    image = plot.heatmap_image.image
    assert image.shape == (plot.probe_count, T_IN + T_OUT) == (7, 13)
    latest = plot._run.probes[-1].values(1, "h")
    np.testing.assert_allclose(image[-1], np.log10(latest))
    lo, hi = plot.colorbar.levels()
    assert lo == pytest.approx(np.nanmin(image)) and hi == pytest.approx(np.nanmax(image))
    plot.set_heatmap(False)
    assert plot.stack.currentWidget() is plot.plot_widget


def test_gradient_layer_and_cell_state_selectors_switch_the_data(qtbot):
    plot = GradientPlot()
    qtbot.addWidget(plot)
    plot.add_events(_small_run("lstm"))
    plot.redraw_now()
    probe = plot._run.probes[-1]
    assert plot.layer_combo.count() == 2 and plot.layer_combo.currentIndex() == 1  # top
    _, top = plot.latest_curve.getOriginalDataset()
    np.testing.assert_allclose(top, np.concatenate([probe.enc[1], probe.dec[1]]))
    plot.set_layer(0)
    _, bottom = plot.latest_curve.getOriginalDataset()
    np.testing.assert_allclose(bottom, np.concatenate([probe.enc[0], probe.dec[0]]))
    assert plot.state_combo.isEnabled()
    plot.set_state("c")
    _, cell = plot.latest_curve.getOriginalDataset()
    np.testing.assert_allclose(cell, np.concatenate([probe.enc_c[0], probe.dec_c[0]]))
    assert "∂cₜ" in plot.plot_item.getAxis("left").labelText
    # A GRU has no cell state: the choice goes back to h and is disabled.
    plot.clear()
    plot.add_events(_small_run("gru"))
    plot.redraw_now()
    assert not plot.state_combo.isEnabled() and plot.state_combo.currentData() == "h"


def test_gradient_overlay_gets_a_legend_entry_and_loses_it(qtbot):
    plot = GradientPlot()
    qtbot.addWidget(plot)
    plot.add_events(_small_run())
    plot.redraw_now()
    lstm = _small_run("lstm", seed=3)
    plot.set_overlay("b", "LSTM run", lstm)
    assert "LSTM run" in legend_labels(plot.plot_item)
    last = [e for e in lstm if isinstance(e, ProbeEvent)][-1]
    _, y = plot._overlays["b"].curve.getOriginalDataset()
    np.testing.assert_allclose(y, np.concatenate([last.encoder_grad_norms[1],
                                                  last.decoder_grad_norms[1]]))
    plot.remove_overlay("b")
    assert "LSTM run" not in legend_labels(plot.plot_item)


# -- trajectory ------------------------------------------------------------------


def test_trajectory_slider_scrubs_to_an_earlier_probe(qtbot):
    plot = TrajectoryPlot()
    qtbot.addWidget(plot)
    plot.add_events(_small_run())
    plot.redraw_now()
    assert plot.probe_count == 7 and plot.current_index == 6  # follows the latest
    latest_points = plot.points.getData()[0].copy()
    assert len(latest_points) == 2 * (T_IN + T_OUT)
    assert len(plot.start_markers.getData()[0]) == 2
    plot.slider.setValue(1)
    assert plot.current_index == 1
    assert "probe 2 of 7" in plot.probe_label.text()
    assert not np.allclose(plot.points.getData()[0], latest_points)
    # A new probe does not pull the user away from the probe being looked at.
    plot.add_event([e for e in _small_run(seed=5) if isinstance(e, ProbeEvent)][-1])
    plot.redraw_now()
    plot.redraw_now()
    assert plot.current_index == 1 and plot.probe_count == 8


def test_trajectory_locked_projection_keeps_the_basis(qtbot):
    plot = TrajectoryPlot()
    qtbot.addWidget(plot)
    plot.add_events(_small_run())
    plot.redraw_now()
    plot.show_probe(3)
    free = plot.projection
    plot.set_locked(True)
    locked = plot.projection
    np.testing.assert_allclose(locked.components, free.components)
    plot.show_probe(0)
    assert plot.projection is locked
    plot.set_locked(False)
    assert not np.allclose(plot.projection.components, locked.components)
    # PCA: orthonormal axes, explained variance sorted.
    c = plot.projection.components
    np.testing.assert_allclose(c @ c.T, np.eye(2), atol=1e-9)
    assert plot.projection.explained[0] >= plot.projection.explained[1]
    assert plot.plot_item.getAxis("bottom").labelText.startswith("PC 1")


def test_trajectory_of_a_short_padded_sample_hands_over_at_its_last_real_step(qtbot):
    plot = TrajectoryPlot()
    qtbot.addWidget(plot)
    rng = np.random.default_rng(0)
    enc, dec = rng.normal(size=(2, T_IN, 5)), rng.normal(size=(2, T_OUT, 5))
    enc[1, 5:] = np.nan  # sample 2's input is 5 steps long
    plot.add_event(ProbeEvent(1, 1, np.ones((1, T_IN)), np.ones((1, T_OUT)), enc, dec))
    plot.redraw_now()
    plot.redraw_now()
    assert len(plot.points.getData()[0]) == 2 * (T_IN + T_OUT) - (T_IN - 5)
    handovers = plot.handover_markers.getData()
    path = plot.current_path(1)
    assert handovers[0][1] == pytest.approx(path[4, 0]) and handovers[1][1] == pytest.approx(path[4, 1])
    dx, _ = plot._dec_lines[1].getOriginalDataset()
    assert len(dx) == T_OUT + 1 and dx[0] == pytest.approx(path[4, 0])


# -- export and standalone entry points -----------------------------------------


@pytest.mark.parametrize("panel", [LossPlot, GradientPlot, TrajectoryPlot], indirect=True)
def test_export_writes_png_and_svg(panel, tmp_path):
    panel.add_events(_small_run("lstm"))
    panel.redraw_now()
    panel.set_overlay("o", "other run", _small_run("gru", seed=1))
    panel.export(tmp_path / "plot.png")
    png = (tmp_path / "plot.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    panel.export(tmp_path / "plot.svg")
    svg = (tmp_path / "plot.svg").read_text()
    assert "<svg" in svg and len(svg) > 2000
    with pytest.raises(ValueError, match="use .png or .svg"):
        panel.export(tmp_path / "plot.xyz")


def test_gradient_heatmap_exports_with_its_colour_bar(qtbot, tmp_path):
    plot = GradientPlot()
    qtbot.addWidget(plot)
    plot.add_events(_small_run())
    plot.redraw_now()
    plot.set_heatmap(True)
    plot.export(tmp_path / "heat.svg")
    assert "log₁₀" in (tmp_path / "heat.svg").read_text()


def test_each_panel_runs_alone():
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    modules = ["ui.plots.loss_plot", "ui.plots.gradient_plot", "ui.plots.trajectory_plot"]
    children = [subprocess.Popen([sys.executable, "-m", m, "--smoke"], cwd=ROOT, env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                for m in modules]
    for module, child in zip(modules, children):
        out, _ = child.communicate(timeout=60)
        assert child.returncode == 0, f"{module}: {out}"
        assert "Traceback" not in out, f"{module}: an exception in a slot: {out}"


# -- narrow panels -----------------------------------------------------------------------


def _plot_items(panel) -> list:
    if isinstance(panel, GatesPlot):
        return [panel.mean_item, panel.saturation_item]
    if isinstance(panel, PredictionsPlot):
        return [panel.values_item, panel.error_item]
    return [panel.plot_item]


def _fill(panel) -> None:
    if isinstance(panel, PredictionsPlot):
        panel.show_prediction(_demo_prediction("continuous"))
        return
    events = demo_events("lstm", steps=60, steps_per_epoch=20, probe_every=20, t_in=T_IN,
                         t_out=T_OUT, layers=2, hidden=6)
    panel.add_events([demo_gates(e, "lstm", 0.5) if isinstance(e, ProbeEvent) else e
                      for e in events])
    panel.redraw_now()


@pytest.mark.parametrize("panel_type", [LossPlot, GradientPlot, TrajectoryPlot, GatesPlot,
                                        PredictionsPlot])
def test_a_long_title_never_pushes_a_narrow_plot_out_of_view(qtbot, panel_type):
    """pyqtgraph makes a title's width the plot's minimum again at every resize; a
    300 px panel with a long title must stay 300 px, its right-hand edge in view."""
    panel = panel_type()
    qtbot.addWidget(panel)
    _fill(panel)
    panel.redraw_now()
    panel.resize(300, 360)
    panel.show()
    qtbot.waitExposed(panel)
    for item in _plot_items(panel):
        style.set_title(item, "a long title that names the run, its cell and its state " * 3)
    panel.resize(320, 360)  # resizes make pyqtgraph recompute the title's minimum
    qtbot.wait(20)
    panel.resize(300, 360)
    qtbot.wait(20)
    assert panel.width() <= 300
    view_width = panel.plot_widget.width()
    assert view_width <= 300
    for item in _plot_items(panel):
        assert item.sceneBoundingRect().right() <= view_width + 1
        assert item.getViewBox().sceneBoundingRect().right() <= view_width + 1
