"""Figures for slides: File ▸ Export Plots writes every panel as it is for the run
shown, even panels hidden or behind a tab; PNGs 2× their size on screen (or a chosen
scale or width, at most 4000 px); SVGs without the cursor line; the open comparison
views too; and the folder is remembered. Two tiny recorded runs (a GRU and an LSTM,
a second each) are replayed, as a user picks them in the Runs panel."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtGui import QImage

from tests.workbench.train_helpers import record_run, tiny_config, write_reverse, write_waves
from ui.export_dialog import EXPORT_FOLDER_KEY, LastFolder
from ui.main_window import MainWindow
from ui.plots import style
from ui.plots.demo import demo_events
from ui.plots.loss_plot import LossPlot
from ui.plots.trajectory_plot import TrajectoryPlot
from ui.settings import AppSettings, open_settings
from workbench.events import ProbeEvent
from workbench.run_service import RunService


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(runs_dir, data, run A (gru), run B (lstm)): recorded once for the module."""
    root = tmp_path_factory.mktemp("exports")
    data = write_waves(root / "waves.h5")
    a = record_run(tiny_config(data, cell="gru", steps=12, probe_every=4), root / "runs")
    b = record_run(tiny_config(data, cell="lstm", steps=16, probe_every=4), root / "runs")
    return root / "runs", data, a.name, b.name


@pytest.fixture
def window(qtbot, tmp_path, runs, dialogs):
    runs_dir = runs[0]
    w = MainWindow(AppSettings(open_settings(tmp_path / "settings.ini")), runs_dir=runs_dir,
                   load_dataset=False)
    qtbot.addWidget(w)
    w.resize(1366, 768)
    w.show()
    qtbot.waitExposed(w)
    w.runs_index.refresh()
    yield w
    w.shutdown(30_000)
    w.predictions.close()


def screen_width(item) -> float:
    return item.sceneBoundingRect().width()


def test_export_after_switching_runs_reflects_the_shown_run(qtbot, window, runs, tmp_path):
    w, (runs_dir, _data, run_a, run_b) = window, runs
    assert w.replay_run(run_a)
    qtbot.wait(50)
    for dock in (w.docks.gates, w.docks.trajectory, w.docks.predictions):
        dock.hide()
    assert w.replay_run(run_b)  # shown while three panels are hidden
    out = tmp_path / "slides"
    out.mkdir()
    written = w.export_plots(out)
    names = {p.name for p in written}
    assert {"loss.png", "gradient.png", "trajectory.png", "gates.png", "predictions.png",
            "attention.png", "grad_norm.png"} <= names

    # what each hidden panel holds is run B's, as a panel fed only B's events shows it
    b_events = RunService(runs_dir).replay(run_b)
    b_probes = [e for e in b_events if isinstance(e, ProbeEvent)]
    alone = TrajectoryPlot()
    qtbot.addWidget(alone)
    alone.add_events(b_events)
    alone.redraw_now()
    assert w.trajectory_plot.probe_count == len(b_probes)
    np.testing.assert_allclose(w.trajectory_plot.current_path(0), alone.current_path(0))
    assert f"step {b_probes[-1].step:,}" in w.trajectory_plot.plot_item.titleLabel.text
    assert w.gates_plot.probe_count == len(b_probes)
    assert "LSTM" in w.gates_plot.title_label.text
    prediction = w.predictions_plot.prediction
    assert prediction is not None and prediction.run_id == run_b  # not "No prediction yet"
    assert run_b in w.loss_plot.plot_item.titleLabel.text
    x, _y = w.gradient_plot.latest_curve.getData()
    assert len(x) == b_probes[-1].encoder_grad_norms.shape[-1] + \
        b_probes[-1].decoder_grad_norms.shape[-1]

    # a panel on screen is written at twice its size there
    for name, item in (("loss", w.loss_plot.plot_item), ("gradient", w.gradient_plot.plot_item)):
        image = QImage(str(out / f"{name}.png"))
        assert image.width() == round(2 * screen_width(item)), name
    # a hidden or never-shown one is laid out at a readable size first
    for name in ("trajectory", "gates", "predictions", "grad_norm"):
        assert QImage(str(out / f"{name}.png")).width() >= 1200, name


def shown_loss_plot(qtbot) -> LossPlot:
    """A 640 x 400 Loss panel on screen, drawn with a short demo run."""
    plot = LossPlot()
    qtbot.addWidget(plot)
    plot.resize(640, 400)
    plot.show()
    qtbot.waitExposed(plot)
    plot.add_events(demo_events("gru", steps=60, steps_per_epoch=20, probe_every=20))
    plot.redraw_now()
    return plot


def test_png_width_follows_the_chosen_scale_or_width_and_is_capped(qtbot, tmp_path):
    plot = shown_loss_plot(qtbot)
    on_screen = screen_width(plot.plot_item)
    for options, expected in (({}, round(2 * on_screen)), ({"scale": 1}, round(on_screen)),
                              ({"scale": 3}, round(3 * on_screen)), ({"width": 1920}, 1920),
                              ({"width": 9000}, 4000), ({"scale": 20}, 4000)):
        path = tmp_path / "loss.png"
        plot.export(path, **options)
        assert QImage(str(path)).width() == expected, options


def test_svg_leaves_out_the_cursor_line_and_keeps_it_on_screen(qtbot, tmp_path):
    plot = shown_loss_plot(qtbot)
    vb = plot.plot_item.getViewBox()
    plot._on_mouse_moved((vb.sceneBoundingRect().center(),))  # the mouse over the data
    assert plot.cursor_line.isVisible()
    with_line = tmp_path / "with.svg"
    style.export_item(plot.plot_item, with_line)  # pyqtgraph's export: the line is in it
    ours = tmp_path / "loss.svg"
    plot.export(ours)
    cursor = "#999999"
    assert cursor in with_line.read_text(encoding="utf-8").lower()
    assert cursor not in ours.read_text(encoding="utf-8").lower()
    assert plot.cursor_line.isVisible()  # back as it was


def test_one_export_writes_the_open_comparison_view_and_remembers_the_folder(
        qtbot, window, tmp_path):
    from ui.compare_view import CompareView

    w = window
    view = CompareView()
    qtbot.addWidget(view)
    view.show()
    w.comparisons.views.append(view)
    out = tmp_path / "figures"
    out.mkdir()
    written = [p.name for p in w.export_plots(out, ".svg")]
    assert "loss.svg" in written
    assert {f"comparison-1-{plot}.svg" for plot in ("loss", "gradient", "trajectories")} <= \
        set(written)
    assert w.settings.store.value(EXPORT_FOLDER_KEY) == str(out)
    assert LastFolder.of(w).get() == str(out)  # every export dialog starts here now
    assert LastFolder.of(w).path_for("metrics.csv") == str(out / "metrics.csv")


def test_opening_a_token_dataset_relabels_the_loss_and_drops_the_old_prediction(
        qtbot, window, runs, tmp_path):
    w, (_runs_dir, data, _a, run_b) = window, runs
    assert w.open_dataset(data)
    assert w.replay_run(run_b)
    w.predictions.settle(30_000)
    assert w.predictions_plot.prediction is not None
    tokens = write_reverse(tmp_path / "reverse.h5")
    assert w.open_dataset(tokens)
    assert "MSE" not in w.loss_plot.loss_axis_label
    assert "cross-entropy" in w.loss_plot.loss_axis_label
    assert w.predictions_plot.prediction is None  # the sine run's plot is gone
    assert w.predictions_plot.stack.currentWidget() is w.predictions_plot.empty
    w.predictions_plot.set_sample(1)  # a new sample asks no run's checkpoint
    assert not w.predictions.checkpoint_predictor.job.is_running()


def test_the_export_dialog_starts_in_the_remembered_folder_and_offers_the_sizes(
        qtbot, window, tmp_path):
    from ui.export_dialog import SIZES, ExportPlotsDialog

    LastFolder.of(window).set(tmp_path)
    dialog = ExportPlotsDialog(window, LastFolder.of(window).get())
    qtbot.addWidget(dialog)
    assert dialog.folder_edit.text() == str(tmp_path)
    choice = dialog.choice()
    assert (choice.suffix, choice.scale, choice.width) == (".png", 2.0, None)  # the default
    dialog.size_combo.setCurrentIndex(len(SIZES) - 1)
    dialog.format_combo.setCurrentIndex(1)
    choice = dialog.choice()
    assert (choice.suffix, choice.width) == (".svg", 4000)
    assert not dialog.size_combo.isEnabled()  # an SVG has no pixel width
