"""Honest numbers in the GUI, on a real tiny run of the weekly series: the loss plot's
dashed baselines and its note, the Runs panel's units tooltip, and the comparison
table's baseline columns, from live events and from the run folder alike."""

from __future__ import annotations

import pytest

pytest.importorskip("pytestqt")

from PySide6 import QtCore  # noqa: E402

from tests.workbench.baseline_helpers import write_weekly  # noqa: E402
from tests.workbench.train_helpers import record_run, tiny_config  # noqa: E402
from ui.compare_view import NOT_BEATEN_COLOR, CompareView  # noqa: E402
from ui.plots.loss_plot import LossPlot  # noqa: E402
from ui.plots.style import legend_labels  # noqa: E402
from ui.runs_panel import RunsIndex, RunsPanel  # noqa: E402
from workbench.compare import RunData  # noqa: E402
from workbench.events import RecordingListener  # noqa: E402
from workbench.runs import open_run  # noqa: E402


@pytest.fixture(scope="module")
def weekly_run(tmp_path_factory):
    """(run folder, the events it sent live) of a 6-step GRU on the weekly series."""
    folder = tmp_path_factory.mktemp("weekly-ui")
    data = write_weekly(folder / "weekly.h5", period_attr=True)
    live = RecordingListener()
    run_dir = record_run(tiny_config(data, steps=6, batch_size=32), folder / "runs", [live])
    return run_dir, live.events


def test_the_loss_plot_draws_each_baseline_dashed_and_says_what_is_not_beaten(qtbot, weekly_run):
    run_dir, live_events = weekly_run
    record = open_run(run_dir).summary()["baselines"]
    for events in (live_events, list(open_run(run_dir).events())):  # live and replayed
        plot = LossPlot()
        qtbot.addWidget(plot)
        plot.add_events(events)
        plot.redraw_now()
        assert set(plot.baseline_curves) == {"persistence", "seasonal_persistence", "mean"}
        for name, curve in plot.baseline_curves.items():
            x, y = curve.getOriginalDataset()
            assert list(y) == [record["scores"][name]["normalized"]] * 2  # the loss's units
            assert x[-1] == 6  # spans the run's steps
            assert curve.opts["pen"].style() == QtCore.Qt.PenStyle.DashLine
        labels = legend_labels(plot.plot_item)
        assert any(label.startswith("baseline: seasonal persistence (") for label in labels)
        title = plot.plot_item.titleLabel.text
        assert "does not beat" in title and "seasonal persistence" in title
        assert plot.plot_item.getAxis("left").labelText == "loss (MSE, normalised)"
        assert "data units²" in plot.describe_step(3)
        plot.clear()  # a new run: its own baselines, none yet
        assert plot.baseline_curves == {}


def test_the_runs_panel_says_the_unit_data_units_and_baselines(qtbot, weekly_run):
    run_dir, _ = weekly_run
    index = RunsIndex(run_dir.parent)
    index.refresh()
    panel = RunsPanel(index)
    qtbot.addWidget(panel)
    tip = panel.table.item(0, 6).toolTip()
    assert "teacher-forced" in tip and "normalised" in tip
    assert "In data units:" in tip and "MSE, data units²" in tip
    assert "seasonal persistence:" in tip
    assert "normalised data" in panel.table.horizontalHeaderItem(6).toolTip()


def test_the_comparison_table_shows_the_baselines_and_marks_what_is_not_beaten(qtbot, weekly_run):
    run_dir, _ = weekly_run
    view = CompareView()
    qtbot.addWidget(view)
    view.set_runs([RunData.from_run(open_run(run_dir))])
    table = view.table
    row = table.table.row("gru")
    for key in ("persistence", "seasonal_persistence", "mean", "val_loss_free_running_data"):
        assert not table.isColumnHidden(table.column(key)), key
    for key in ("chance", "majority", "token_accuracy"):
        assert table.isColumnHidden(table.column(key)), key
    persistence = table.item(0, table.column("persistence"))
    data = row.stats["persistence_data"].mean
    assert persistence.value == pytest.approx(row.stats["persistence"].mean)
    assert f"({data:.4g})" in persistence.text()  # normalised, then data units²
    header = table.horizontalHeaderItem(table.column("val_loss_free_running")).text()
    assert "MSE, normalised" in header
    assert "MSE, data units²" in table.horizontalHeaderItem(
        table.column("val_loss_free_running_data")).text()
    assert row.beats["seasonal_persistence"] is False
    free = table.item(0, table.column("val_loss_free_running"))
    assert free.foreground().color().name() == NOT_BEATEN_COLOR
    assert "does not beat seasonal persistence" in free.toolTip()
    assert "not better than a baseline" in view.header.text()
    assert "best epoch by val_free_running" in view.header.text()
