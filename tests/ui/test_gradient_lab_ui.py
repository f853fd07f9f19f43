"""The gradient lab in the window: the gradient-norm panel, the init settings and their
read-out, the sweep dialog and view, the Experiments menu running a lesson, the welcome
panel on the first start; built from real tiny runs."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from PySide6 import QtCore  # noqa: E402

from tests.workbench.train_helpers import open_dataset, tiny_config, write_reverse  # noqa: E402
from ui import errors  # noqa: E402
from ui.main_window import MainWindow  # noqa: E402
from ui.model_panel import ModelPanel  # noqa: E402
from ui.plots.grad_norm_plot import GradNormPlot  # noqa: E402
from ui.settings import AppSettings, open_settings  # noqa: E402
from ui.sweep_dialog import SweepDialog, confirm_runs  # noqa: E402
from ui.sweep_view import SweepView  # noqa: E402
from workbench import sweeps  # noqa: E402
from workbench.events import RunFinished, RunStarted, StepMetrics  # noqa: E402
from workbench.sweep_spec import SweepSpec  # noqa: E402

TINY_LESSON = {"steps": 3, "hidden": 8, "batch_size": 16, "probe_batch": 8}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_reverse(tmp_path_factory.mktemp("data") / "reverse.h5")


def _steps(norms, clip):
    return [StepMetrics(step=i + 1, epoch=1, loss=1.0, grad_norm=n, learning_rate=1e-3,
                        teacher_forcing=1.0, sequences_per_second=1.0, seconds=float(i),
                        clipped=clip is not None and n > clip) for i, n in enumerate(norms)]


def test_the_gradient_norm_panel_plots_every_step_the_threshold_and_the_clip_rate(qtbot):
    plot = GradNormPlot()
    qtbot.addWidget(plot)
    norms = [0.5, 3.0, 1e4, 0.8] * 50  # 200 steps, half of them over 1
    config = {"model": {"cell": "rnn-relu"}, "training": {"clip": 1.0}}
    plot.add_events([RunStarted("r1", config, 10, {}), *_steps(norms, 1.0)])
    plot.redraw_now()
    steps, drawn = plot.curve_data()
    np.testing.assert_array_equal(steps, np.arange(1, 201))
    np.testing.assert_array_equal(drawn, norms)
    assert plot.plot_item.ctrl.logYCheck.isChecked()  # log y
    assert plot.threshold_line.isVisible() and plot.threshold_line.value() == pytest.approx(0.0)
    assert plot.clip_rates() == (0.5, 0.5)
    assert "50% of the last 100 steps" in plot.rate_label.text()
    x, _ = plot.clipped_points.getData()
    assert len(x) == 100
    plot.add_events([*_steps([0.5] * 100, 1.0)][:100])  # the last window: nothing clipped
    plot.redraw_now()
    assert plot.clip_rates()[0] == 0.0

    plot.clear()
    plot.add_events([RunStarted("r2", {"training": {}}, 10, {}), *_steps([0.5, 2.0], None),
                     RunFinished("completed", "", 2, 1, 1.0)])
    plot.redraw_now()
    assert not plot.threshold_line.isVisible() and plot.clip_rates() == (None, None)
    assert "no clipping" in plot.rate_label.text()


def test_the_gradient_norm_panel_runs_alone_and_exports(tmp_path):
    out = tmp_path / "grad-norm.png"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    child = subprocess.run([sys.executable, "-m", "ui.plots.grad_norm_plot", "--export",
                            str(out)], cwd=Path(__file__).parents[2], env=env,
                           capture_output=True, text=True, timeout=120)
    assert child.returncode == 0 and "Traceback" not in child.stdout + child.stderr
    assert out.stat().st_size > 1000


class _Document(QtCore.QObject):
    """What the Model panel reads of the open file: `changed` and a real `summary`."""

    changed = QtCore.Signal()

    def __init__(self, summary=None) -> None:
        super().__init__()
        self.summary = summary


def test_the_model_panel_shows_the_runs_initial_radius_and_rho_to_the_t_in(qtbot, data):
    from models.init import seq2seq_spectral_radii
    from workbench.training import Trainer

    config = tiny_config(data, cell="rnn-tanh", hidden=16, seed=3)
    with open_dataset(config) as dataset:
        summary = dataset.summary
        trainer = Trainer(config, dataset, [], run_id="x", checkpointer=None)
    expected = seq2seq_spectral_radii(trainer.model)["encoder.layer0"]
    panel = ModelPanel(_Document(summary), {"cell": "rnn-tanh", "hidden": 16, "seed": 3})
    qtbot.addWidget(panel)
    qtbot.waitUntil(lambda: not panel.preview_pending(), timeout=20_000)
    assert float(panel.initial_radius.text()) == pytest.approx(expected, rel=1e-3)
    t_in = summary.inputs.steps
    assert f"^{t_in - 1} = {expected ** (t_in - 1):.2e}" in panel.gradient_reach.text()

    panel.radius_on.setChecked(True)
    panel.radius.setValue(10.0)  # a radius the settings fix: shown without a model
    assert panel.initial_radius.text() == "10"
    assert "10^4 = 1.00e+04: the gradient explodes" in panel.gradient_reach.text()
    assert panel.values()["recurrent_radius"] == 10.0

    panel.forget_on.setChecked(True)  # an RNN has no forget gate
    assert not panel.is_valid() and "forget_bias" in panel.errors()["forget_bias"]
    panel.cell.setCurrentIndex(panel.cell.findData("lstm"))
    assert panel.is_valid()
    built = panel.run_config(str(data))
    assert (built.cell, built.forget_bias, built.recurrent_radius) == ("lstm", 1.0, 10.0)
    panel.recurrent_init.setCurrentIndex(panel.recurrent_init.findData("identity"))
    again = ModelPanel(_Document(summary), panel.values())  # the settings round-trip
    qtbot.addWidget(again)
    assert again.values() == panel.values()


def test_the_sweep_dialog_checks_the_grid_as_typed_and_large_grids_are_confirmed(
        qtbot, data, monkeypatch):
    dialog = SweepDialog(tiny_config(data))
    qtbot.addWidget(dialog)
    assert dialog.spec() is not None and dialog.spec().run_count == 3 * 2 * 2
    assert "12 runs" in dialog.summary.text()
    dialog.values[0].setText("0.5, -1")
    assert dialog.spec() is None and "recurrent_radius = '-1'" in dialog.error.text()
    assert not dialog.buttons.button(dialog.buttons.StandardButton.Ok).isEnabled()
    dialog.values[0].setText("0.5")
    dialog.fields[1].setCurrentIndex(0)  # (none)
    assert dialog.spec().fields == ("recurrent_radius",)
    asked = []
    monkeypatch.setattr(errors, "ask", lambda parent, title, text: asked.append(text) or False)
    assert confirm_runs(None, 500) and not asked
    assert not confirm_runs(None, 501) and "501 runs" in asked[0]


@pytest.fixture(scope="module")
def swept(data, tmp_path_factory):
    """Two cells x two radii (a factor of 10 apart) x two seeds, run headless."""
    runs_dir = tmp_path_factory.mktemp("sweep-runs")
    spec = SweepSpec.build(tiny_config(data, steps=3), {"cell": ["rnn-tanh", "gru"],
                                                       "recurrent_radius": [0.5, 5.0]},
                           seeds=2, view={"x": "recurrent_radius"})
    return sweeps.SweepRunner(spec, runs_dir=runs_dir).run()


def test_the_sweep_view_draws_a_line_per_cell_with_its_points_and_opens_them(
        qtbot, swept, tmp_path):
    view = SweepView(swept)
    qtbot.addWidget(view)
    assert view.wait_loaded()
    assert view.x_field == "recurrent_radius"
    table = swept.table()
    lines = view.drawn_points("metric")
    assert list(lines) == ["rnn-tanh", "gru"]
    for cell, (x, y) in lines.items():
        np.testing.assert_array_equal(x, [0.5, 5.0])
        rows = [r for r in table.rows if r.params["cell"] == cell]
        np.testing.assert_allclose(y, [r.stats["best_val_loss"].mean for r in rows])
    assert view.metric_plot.ctrl.logXCheck.isChecked()  # 0.5 to 5: a factor of 10
    ratios = view.drawn_points("ratio")
    assert set(ratios) == {"rnn-tanh", "gru"} and view.ratio_plot.ctrl.logYCheck.isChecked()
    assert view.table.rowCount() == 4
    column = [view.table.horizontalHeaderItem(c).text()
              for c in range(view.table.columnCount())].index("recurrent_radius")
    view.table.sortItems(column, QtCore.Qt.SortOrder.DescendingOrder)
    assert view.table.item(0, column).text() == "5"

    curve = next(c for owner, c in view._items if getattr(c, "sweep_label", None) == "gru")
    point = curve.scatter.points()[1]  # gru at radius 5
    curve.sigPointsClicked.emit(curve, [point], None)
    assert len(view.compare_views) == 1
    compare = view.compare_views[0]
    qtbot.addWidget(compare)
    assert sorted(r.run_id for r in compare.runs) == sorted(
        next(r for r in table.rows if r.params == {"cell": "gru", "recurrent_radius": 5.0}).run_ids)
    view.set_metric("initial_spectral_radius")
    _, y = view.drawn_points("metric")["gru"]
    # the init's radius, as asked, at the first probe: after step 1 (lr 0.01 moved it a little)
    np.testing.assert_allclose(y, [0.5, 5.0], rtol=0.05)
    out = tmp_path / "sweep.csv"
    view.export_table(out)
    assert len(list(csv.DictReader(out.open()))) == 4


def _window(qtbot, tmp_path, **kw) -> MainWindow:
    settings = AppSettings(open_settings(tmp_path / "settings.ini"))
    window = MainWindow(settings, runs_dir=tmp_path / "runs", **kw)
    qtbot.addWidget(window)
    return window


def test_the_experiments_menu_runs_a_lesson_and_shows_its_sweep(qtbot, tmp_path, dialogs):
    window = _window(qtbot, tmp_path, load_dataset=False)
    menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "E&xperiments")
    titles = [a.text() for a in menu.actions() if a.text()]
    from workbench.lessons import list_lessons

    lessons = list_lessons()
    assert [x.name for x in lessons][:4] == ["vanishing-exploding", "memory-length",
                                            "clipping", "teacher-forcing"]
    assert all(x.title in titles for x in lessons)
    view = window.experiments.run_lesson("clipping", changes=TINY_LESSON, seeds=1, task_n=200)
    assert view is not None and dialogs == []
    qtbot.waitUntil(lambda: not window.experiments.session.is_running(), timeout=90_000)
    assert view.wait_loaded()
    assert view.sweep.status == "completed" and len(view.sweep.run_ids) == 2
    lines = view.drawn_points("metric")
    assert len(lines) == 1  # one swept field (clip): one line, its two points
    (x, y), = lines.values()
    assert list(x) == [0, 1] and np.isfinite(y).all()
    assert "clip" in view.about.text()
    row = window.runs_index.row(view.sweep.run_ids[0])
    assert row is not None  # the lesson's runs are in the Runs panel
    window.close()  # closes the sweep's view with it
    qtbot.waitUntil(lambda: not window.experiments.views, timeout=10_000)


def test_the_first_start_offers_the_lessons_and_open_a_file(qtbot, tmp_path, dialogs):
    window = _window(qtbot, tmp_path)
    window.show()
    qtbot.waitUntil(lambda: window.experiments.welcome is not None, timeout=10_000)
    panel = window.experiments.welcome
    assert panel.isVisible() and not panel.isModal()
    assert {"vanishing-exploding", "memory-length", "clipping",
            "teacher-forcing"} <= set(panel.lesson_buttons)
    assert panel.open_button.text() == "Open a file…"
    qtbot.waitUntil(lambda: window.document.summary is not None, timeout=60_000)  # behind it
    panel.close()
    window.shutdown(10_000)
    window.close()
    again = _window(qtbot, tmp_path)  # the same settings: not the first start any more
    again.show()
    qtbot.wait(50)
    assert again.experiments.welcome is None
    again.close()


def test_the_main_window_stays_under_400_lines():
    source = Path(__file__).parents[2] / "ui" / "main_window.py"
    assert len(source.read_text(encoding="utf-8").splitlines()) <= 400
