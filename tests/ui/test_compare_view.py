"""The comparison: the "Compare cells..." dialog, the queue worker, and the view
(loss bands across seeds, gradient profiles, trajectories, a numerically sorted
table, one colour per cell), built from real tiny runs."""

from __future__ import annotations

import pytest

pytest.importorskip("pytestqt")

from PySide6 import QtCore  # noqa: E402

from ui.compare_dialog import CompareDialog  # noqa: E402
from ui.plots import style  # noqa: E402
from workbench.config import RunConfig  # noqa: E402

# -- the dialog ----------------------------------------------------------------------


def test_dialog_returns_the_picked_cells_and_seeds(qtbot):
    config = RunConfig(data="/data/copy.h5", cell="gru", hidden=24, seed=5, epochs=4)
    dialog = CompareDialog(config)
    qtbot.addWidget(dialog)
    # defaults: the classic contrast plus the model panel's own cell, 3 seeds
    assert dialog.cells() == ("rnn-tanh", "gru", "lstm")
    assert dialog.seeds() == (5, 6, 7)
    assert list(dialog.cell_checkboxes) == ["rnn-tanh", "rnn-relu", "rnn-sigmoid", "gru", "lstm"]
    dialog.set_cells(["rnn-relu", "lstm"])
    dialog.set_seed_count(2)
    choice = dialog.choice()
    assert choice.cells == ("rnn-relu", "lstm") and choice.seeds == (5, 6) and choice.runs == 4
    assert "4 runs in total" in dialog.summary.text()
    # what every run shares is shown, read-only
    assert dialog.shared_labels["Data"].text() == "copy.h5"
    assert dialog.shared_labels["Hidden units"].text() == "24 × 1 layer"
    assert dialog.shared_labels["Budget"].text() == "4 epochs"
    # each cell's swatch is its colour in every view
    icon = dialog.cell_checkboxes["lstm"].icon().pixmap(12, 12).toImage()
    assert icon.pixelColor(6, 6).name() == style.cell_color("lstm").lower()
    dialog.set_cells([])
    assert not dialog.start_button.isEnabled()
    assert "at least one cell" in dialog.summary.text()


def test_dialog_without_data_cannot_start(qtbot):
    dialog = CompareDialog(RunConfig())
    qtbot.addWidget(dialog)
    assert not dialog.start_button.isEnabled()
    assert "Open a dataset first" in dialog.summary.text()


# -- the view, on real tiny runs ----------------------------------------------------------

import numpy as np  # noqa: E402

from tests.workbench.train_helpers import tiny_config, write_reverse  # noqa: E402
from ui.compare_view import CompareView, NumericItem  # noqa: E402
from ui.sessions import CompareSession, runner_factory  # noqa: E402
from workbench import compare  # noqa: E402
from workbench.events import EpochMetrics, RecordingListener  # noqa: E402

CELLS = ("rnn-tanh", "lstm")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Two cells x two seeds of a tiny token task, run headless, and the events they sent."""
    folder = tmp_path_factory.mktemp("compare")
    data = write_reverse(folder / "reverse.h5")
    config = tiny_config(data, epochs=3, steps=None, probe_every=3)
    recorder = RecordingListener()
    runner = compare.ComparisonRunner(config, CELLS, 2, listeners=[recorder],
                                      runs_dir=folder / "runs")
    comparison = runner.run()
    assert comparison.status == "completed" and len(comparison.run_ids) == 4
    return comparison, recorder.events, config, folder


@pytest.fixture
def view(qtbot, saved):
    widget = CompareView(saved[0])
    qtbot.addWidget(widget)
    return widget


def test_table_has_the_expected_columns_and_one_row_per_cell(view):
    table = view.table
    headers = [h.replace("\n", " ") for h in table.headers()]
    ce = "cross-entropy, nats/token"  # token data: every loss header says its unit
    assert headers == ["Cell", "Runs", "Parameters", "Wall time (s)", "Sequences/s",
                       f"Best val loss (teacher-forced) {ce}", f"Val loss (free-running) {ce}",
                       "Val loss (free-running)", "Persistence", "Seasonal persistence",
                       "Training mean",
                       "Token accuracy", "Exact-sequence accuracy",
                       f"Chance {ce}, accuracy", f"Majority token {ce}, accuracy",
                       "G₁/G_T (encoder)", "Spectral radius (recurrent)"]
    # token data: the continuous baselines and data units are hidden, chance and majority shown
    for key in ("val_loss_free_running_data", "persistence", "seasonal_persistence", "mean"):
        assert table.isColumnHidden(table.column(key)), key
    for key in ("chance", "majority"):
        assert not table.isColumnHidden(table.column(key)), key
    assert table.item(0, table.column("chance")).text().endswith("· 12.5%")  # 1/8 ids
    assert table.column_values("cell") == list(CELLS)
    assert table.column_values("runs") == [2.0, 2.0]
    # token data: the accuracy columns are shown
    assert not table.isColumnHidden(table.column("token_accuracy"))
    lstm = view.table.table.row("lstm")
    assert table.column_values("parameters")[1] == lstm.parameters > table.column_values("parameters")[0]
    text = table.item(1, table.column("best_val_loss")).text()
    assert "±" in text  # mean ± std across the two seeds
    assert table.item(1, table.column("best_val_loss")).value == pytest.approx(
        lstm.stats["best_val_loss"].mean)


def test_table_sorts_numbers_as_numbers(qtbot, view):
    table = view.table
    column = table.column("vanishing_ratio")
    table.sortItems(column, QtCore.Qt.SortOrder.AscendingOrder)
    values = table.column_values("vanishing_ratio")
    assert values == sorted(values)
    table.sortItems(column, QtCore.Qt.SortOrder.DescendingOrder)
    assert table.column_values("vanishing_ratio") == sorted(values, reverse=True)
    # text would sort "1.00e-05" above "0.1"; numbers do not; undefined sorts last
    items = [NumericItem("0.1", 0.1), NumericItem("1.00e-05", 1e-5), NumericItem("–", None)]
    assert sorted(items)[0].text() == "1.00e-05" and sorted(items)[-1].text() == "–"
    assert not NumericItem("2", 2.0) < NumericItem("10", 1e-5)


def test_loss_bands_hold_the_min_and_max_across_seeds(view, saved):
    comparison = saved[0]
    plot = view.loss_plot
    plot.set_loss("val")
    runs = {r.run_id: r for r in comparison.run_data()}
    for cell in CELLS:
        seeds = [runs[e.run_id] for e in comparison.entries if e.cell == cell]
        per_seed = np.array([[e.val_loss for e in r.epochs] for r in seeds])
        curves = plot.curves[cell]
        x, lower = curves.lower.getOriginalDataset()
        _, upper = curves.upper.getOriginalDataset()
        _, mean = curves.mean.getOriginalDataset()
        np.testing.assert_allclose(lower, per_seed.min(axis=0))
        np.testing.assert_allclose(upper, per_seed.max(axis=0))
        np.testing.assert_allclose(mean, per_seed.mean(axis=0))
        assert list(x) == [e.step for e in seeds[0].epochs]  # at the end of each epoch
        assert curves.fill.curves == [curves.lower, curves.upper]
    plot.set_spread("std")
    _, lower = plot.curves["lstm"].lower.getOriginalDataset()
    band = plot.band_of("lstm")
    np.testing.assert_allclose(lower, band.mean - band.std)
    assert "±1 std" in plot.plot_item.titleLabel.text


def test_every_view_draws_a_cell_in_its_own_colour(view):
    for cell in CELLS:
        color = style.cell_color(cell).lower()
        assert view.loss_plot.curves[cell].mean.opts["pen"].color().name() == color
        fill = view.loss_plot.curves[cell].fill.brush().color()
        assert fill.name() == color and fill.alpha() < 255
        assert view.gradient_plot.mean_curves[cell].opts["pen"].color().name() == color
        row = view.table.column_values("cell").index(cell)
        assert view.table.item(row, 0).foreground().color().name() == color
        assert color in view.trajectories.items[cell].titleLabel.text.lower()


def test_gradient_profiles_are_the_mean_of_each_seeds_latest_probe(view, saved):
    comparison = saved[0]
    runs = comparison.open_runs()
    for cell in CELLS:
        probes = [r.last_probe() for r in runs if r.cell == cell]
        per_seed = np.array([np.concatenate([p.encoder_grad_norms[-1], p.decoder_grad_norms[-1]])
                             for p in probes])
        x, y = view.gradient_plot.mean_curves[cell].getOriginalDataset()
        assert len(x) == per_seed.shape[1]
        np.testing.assert_allclose(y, per_seed.mean(axis=0))
    assert view.gradient_plot.plot_item.getAxis("left").logMode
    # one small trajectory plot per cell, each with its probe samples' paths
    assert list(view.trajectories.items) == list(CELLS)
    assert all(len(paths) == 2 for paths in view.trajectories.paths.values())


def test_live_events_give_the_same_table_as_the_saved_comparison(qtbot, saved, view):
    _comparison, events, _config, _folder = saved
    live = CompareView()
    qtbot.addWidget(live)
    # mid-run, before the first epoch ends: the training band is drawn already
    first_epoch = next(i for i, e in enumerate(events) if isinstance(e, EpochMetrics))
    live.add_events(events[:first_epoch])
    live.redraw_now()
    x, _ = live.loss_plot.curves["rnn-tanh"].mean.getOriginalDataset()
    assert len(x) > 0 and "step" in live.progress.label.text()
    live.clear()
    for start in range(0, len(events), 25):  # batches, as the session forwards them
        live.add_events(events[start:start + 25])
    live.redraw_now()
    assert live.cells == list(CELLS)
    for key in ("parameters", "best_val_loss", "vanishing_ratio", "token_accuracy"):
        np.testing.assert_allclose(live.table.column_values(key), view.table.column_values(key))
    assert "4 of 4 runs trained to the end" in live.progress.label.text()


def test_exports_the_table_to_csv_and_each_plot(view, tmp_path):
    view.export_table(tmp_path / "table.csv")
    lines = (tmp_path / "table.csv").read_text().splitlines()
    assert lines[0].startswith("cell,runs,") and "vanishing_ratio_mean" in lines[0]
    assert [line.split(",")[0] for line in lines[1:]] == list(CELLS)
    for plot in ("loss", "gradient", "trajectories"):
        view.export(tmp_path / f"{plot}.png", plot)
        assert (tmp_path / f"{plot}.png").read_bytes().startswith(b"\x89PNG")
        view.export(tmp_path / f"{plot}.svg", plot)
        assert "<svg" in (tmp_path / f"{plot}.svg").read_text()


# -- the worker ----------------------------------------------------------------------------


@pytest.fixture
def session(qtbot):
    s = CompareSession()
    s.received, s.started_runs, s.results, s.failures = [], [], [], []
    s.events_ready.connect(s.received.extend)
    s.run_started.connect(s.started_runs.append)
    s.finished.connect(s.results.append)
    s.failed.connect(s.failures.append)
    yield s
    s.shutdown(10_000)


def _finished_event(session):
    return [e for e in session.received if isinstance(e, compare.ComparisonFinished)]


def test_worker_runs_a_two_cell_queue_to_the_end(qtbot, session, saved):
    config, folder = saved[2], saved[3]
    session.start(runner_factory(config.replace(epochs=1), ["rnn-tanh", "gru"], 1,
                                 runs_dir=folder / "worker-runs"))
    qtbot.waitUntil(lambda: not session.is_running(), timeout=60_000)
    assert session.failures == []
    assert [e.cell for e in session.started_runs] == ["rnn-tanh", "gru"]
    (done,) = _finished_event(session)
    assert done.status == "completed" and done.completed == 2
    (comparison,) = session.results
    assert comparison.status == "completed" and len(comparison.run_ids) == 2
    assert any(isinstance(e, EpochMetrics) for e in session.received)
    assert session.state == "idle"


def test_cancel_stops_the_whole_queue(qtbot, session, saved):
    config, folder = saved[2], saved[3]
    view = CompareView(session=session)
    qtbot.addWidget(view)
    long = config.replace(epochs=None, steps=100_000)
    session.start(runner_factory(long, ["rnn-tanh", "gru"], 1, runs_dir=folder / "cancel-runs"))
    qtbot.waitUntil(lambda: "step" in view.progress.label.text(), timeout=30_000)
    assert view.progress.label.text().startswith("Run 1 of 2: rnn-tanh, seed 0")
    qtbot.mouseClick(view.progress.cancel_button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not session.is_running(), timeout=30_000)
    (done,) = _finished_event(session)
    assert done.status == "cancelled" and done.completed == 0
    (comparison,) = session.results
    assert [e.status for e in comparison.entries] == ["stopped", "skipped"]
    assert len(session.started_runs) == 1  # the second run never started
    assert "cancelled" in view.progress.label.text()


def test_closing_the_view_during_a_comparison_stops_it(qtbot, session, saved):
    config, folder = saved[2], saved[3]
    view = CompareView(session=session)
    qtbot.addWidget(view)
    view.show()
    session.start(runner_factory(config.replace(epochs=None, steps=100_000), ["lstm"], 2,
                                 runs_dir=folder / "close-runs"))
    qtbot.waitUntil(lambda: "step" in view.progress.label.text(), timeout=30_000)
    view.close()
    assert not session.is_running() or session.wait(5000)
    qtbot.waitUntil(lambda: bool(session.results), timeout=10_000)
    assert session.results[0].status == "cancelled"


# -- in the main window --------------------------------------------------------------------


def _window(qtbot, tmp_path, data, monkeypatch):
    from ui import errors
    from ui.main_window import MainWindow
    from ui.settings import AppSettings, open_settings

    monkeypatch.setattr(errors, "show_message", lambda *a, **k: pytest.fail(f"dialog: {a[1:]}"))
    window = MainWindow(AppSettings(open_settings(tmp_path / "settings.ini")),
                        runs_dir=tmp_path / "runs", load_dataset=False)
    qtbot.addWidget(window)
    assert window.open_dataset(data)
    window.model_panel.set_values({"hidden": 8, "batch_size": 16, "epochs": 1, "cell": "gru"})
    return window


def test_compare_cells_from_the_window_and_reopen_it_from_the_runs_panel(qtbot, tmp_path, saved,
                                                                         monkeypatch):
    import ui.comparisons as comparisons_module
    from ui.compare_dialog import CompareChoice

    window = _window(qtbot, tmp_path, saved[3] / "reverse.h5", monkeypatch)
    asked = []

    def choose(parent, config):
        asked.append(config)
        return CompareChoice(("rnn-tanh", "lstm"), (config.seed,))

    monkeypatch.setattr(comparisons_module, "choose_comparison", choose)
    assert window.compare_action.isEnabled()
    window.compare_action.trigger()
    assert asked[0].hidden == 8  # the dialog inherits the Model panel's settings
    assert not window.controls.train_action.isEnabled()  # one thing trains at a time
    (view,) = window.compare_views
    qtbot.waitUntil(lambda: not window.compare_session.is_running(), timeout=60_000)
    qtbot.waitUntil(lambda: view.comparison is not None, timeout=5000)
    assert view.table.column_values("cell") == ["rnn-tanh", "lstm"]
    assert window.controls.train_action.isEnabled()
    assert len(window.runs_index.rows) == 2  # the comparison's runs are in the Runs panel
    entries = window.runs_panel.comparison_entries()
    assert len(entries) == 1 and "rnn-tanh vs lstm" in entries[0][1]
    window.runs_panel.comparison_requested.emit(entries[0][0])
    assert len(window.compare_views) == 2
    reopened = window.compare_views[-1]
    assert reopened.comparison.comparison_id == view.comparison.comparison_id
    assert not reopened.progress.isVisible()
    # exports: the ticked runs' metrics to one CSV, a run's config to TOML
    run_ids = [row.run_id for row in window.runs_index.rows]
    assert window.export_metrics(run_ids, tmp_path / "metrics.csv") > 0
    assert {line.split(",")[1] for line in (tmp_path / "metrics.csv").read_text().splitlines()[1:]} \
        == {"rnn-tanh", "lstm"}
    written = window.export_config(run_ids[0], tmp_path / "run.toml")
    assert "[model]" in written.read_text()
    window.shutdown(10_000)


def test_a_new_seed_joins_its_cells_band_after_its_first_epoch():
    """While a comparison trains, a seed that has just started must not shrink its
    cell's curves to its first few steps: it joins at the end of its first epoch."""
    from ui.compare_view import live_loss_bands
    from workbench.events import RunStarted, StepMetrics

    def run(run_id, steps, epochs):
        events = [RunStarted(run_id, {"model": {"cell": "lstm"}, "training": {"seed": 0}}, 1, {})]
        events += [StepMetrics(s, 1, 1.0 / s, 1.0, 1e-3, 1.0, 10.0, 0.1 * s)
                   for s in range(1, steps + 1)]
        events += [EpochMetrics(e, 10 * e, 0.5, 0.6) for e in range(1, epochs + 1)]
        return compare.RunData.from_events(events)

    finished, starting = run("seed0", 40, 4), run("seed1", 3, 0)
    band = live_loss_bands([finished, starting], 0.0, ["lstm", "gru"])
    assert set(band) == {"lstm"}  # no gru run has a step yet: no band
    assert band["lstm"].run_ids == ("seed0",)
    assert band["lstm"].train.x.size == 40 and band["lstm"].val.x.size == 4

    alone = live_loss_bands([starting], 0.0, ["lstm"])["lstm"]  # nothing validated yet
    assert alone.train.x.size == 3 and alone.val.x.size == 0
