"""The Runs panel on recorded runs: the table, rename (id and folder unchanged),
delete with confirmation, overlays in distinct colours, replay. Runs are written
by the real RunRecorder from demo events, so no training is needed."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from ui import errors
from ui.plots.demo import demo_events
from ui.plots.gradient_plot import GradientPlot
from ui.plots.loss_plot import LossPlot
from ui.runs_panel import RunsIndex, RunsPanel
from workbench.events import RecordingListener
from workbench.runs import RunRecorder, list_runs


def record(runs_dir, run_id: str, cell: str, *, stop_at: int | None = None) -> None:
    recorder = RunRecorder(runs_dir / run_id)
    for event in demo_events(cell, steps=120, steps_per_epoch=40, probe_every=40,
                             t_in=6, t_out=3, layers=1, hidden=8, run_id=run_id):
        recorder.on_event(event)
    recorder.close()


@pytest.fixture
def runs_dir(tmp_path):
    record(tmp_path, "20260101-000000-000-gru-aaaa", "gru")
    record(tmp_path, "20260101-000001-000-lstm-bbbb", "lstm")
    return tmp_path


@pytest.fixture
def answers(monkeypatch):
    """Questions answered from a list; messages recorded."""
    state = {"yes": True, "messages": [], "asked": []}

    def ask(parent, title, text):
        state["asked"].append(text)
        return state["yes"]

    monkeypatch.setattr(errors, "ask", ask)
    monkeypatch.setattr(errors, "show_message",
                        lambda parent, title, text, **kw: state["messages"].append(text))
    return state


@pytest.fixture
def panel(qtbot, runs_dir):
    index = RunsIndex(runs_dir)
    index.refresh()
    widget = RunsPanel(index)
    qtbot.addWidget(widget)
    return widget


def cell_text(panel, run_id: str, column: int) -> str:
    for r in range(panel.table.rowCount()):
        if panel.table.item(r, 1).data(Qt.ItemDataRole.UserRole) == run_id:
            return panel.table.item(r, column).text()
    raise KeyError(run_id)


def test_the_table_lists_every_run_with_its_figures(panel):
    assert panel.table.rowCount() == 2
    run_id = "20260101-000001-000-lstm-bbbb"
    assert panel.table.item(0, 1).data(Qt.ItemDataRole.UserRole) == run_id  # newest first
    assert cell_text(panel, run_id, 2) == "lstm"
    assert cell_text(panel, run_id, 4) == "completed"
    assert cell_text(panel, run_id, 5) == "120"
    assert cell_text(panel, run_id, 6) != "–"  # best validation loss
    assert cell_text(panel, run_id, 3) != "–"  # parameters


def test_rename_changes_the_name_only(panel, runs_dir, answers):
    run_id = "20260101-000000-000-gru-aaaa"
    panel.table.item(1, 1).setText("my GRU")  # as an in-place edit does
    assert cell_text(panel, run_id, 1) == "my GRU"
    (info,) = [r for r in list_runs(runs_dir) if r.run_id == run_id]
    assert info.name == "my GRU" and info.path == runs_dir / run_id
    assert panel.rename_run(run_id, "   ") is False  # refused, with its message
    assert answers["messages"] and "empty" in answers["messages"][0]
    assert cell_text(panel, run_id, 1) == "my GRU"


def test_delete_asks_first(panel, runs_dir, answers):
    run_id = "20260101-000000-000-gru-aaaa"
    answers["yes"] = False
    assert panel.delete_run(run_id) is False
    assert (runs_dir / run_id).is_dir()
    answers["yes"] = True
    panel.select_run(run_id)
    panel.delete_button.click()
    assert not (runs_dir / run_id).exists()
    assert panel.table.rowCount() == 1
    assert "cannot be undone" in answers["asked"][-1]


def test_ticked_runs_overlay_in_their_own_colours(qtbot, panel):
    loss, gradient = LossPlot(), GradientPlot()
    qtbot.addWidget(loss)
    qtbot.addWidget(gradient)
    received = []
    panel.overlays_changed.connect(received.append)
    for run_id in ("20260101-000000-000-gru-aaaa", "20260101-000001-000-lstm-bbbb"):
        panel.set_overlay(run_id, True)
    colors = received[-1]
    assert len(colors) == 2 and len(set(colors.values())) == 2
    for run_id, color in colors.items():
        recorder = RecordingListener()
        panel.index.open(run_id).replay(recorder)
        loss.set_overlay(run_id, run_id, recorder.events, color)
        gradient.set_overlay(run_id, run_id, recorder.events, color)
    assert sorted(loss.overlay_keys()) == sorted(colors)
    assert sorted(gradient.overlay_keys()) == sorted(colors)
    panel.set_overlay("20260101-000000-000-gru-aaaa", False)
    assert list(received[-1]) == ["20260101-000001-000-lstm-bbbb"]


def test_selecting_a_run_asks_for_its_replay(panel):
    asked = []
    panel.replay_requested.connect(asked.append)
    panel.select_run("20260101-000000-000-gru-aaaa")
    assert asked == ["20260101-000000-000-gru-aaaa"]
    assert not panel.resume_button.isEnabled()  # a completed run cannot be resumed
    assert panel.rename_button.isEnabled() and panel.delete_button.isEnabled()


def test_the_window_overlays_ticked_runs(qtbot, tmp_path, runs_dir, answers):
    from ui.main_window import MainWindow
    from ui.settings import AppSettings, open_settings

    window = MainWindow(AppSettings(open_settings(tmp_path / "s.ini")), runs_dir=runs_dir,
                        load_dataset=False)
    qtbot.addWidget(window)
    window.runs_panel.set_overlay("20260101-000000-000-gru-aaaa", True)
    window.runs_panel.set_overlay("20260101-000001-000-lstm-bbbb", True)
    assert len(window.loss_plot.overlay_keys()) == 2
    assert len(window.gradient_plot.overlay_keys()) == 2
    window.runs_panel.select_run("20260101-000000-000-gru-aaaa")
    assert window.gradient_plot.probe_count >= 3
    window.runs_panel.set_overlay("20260101-000001-000-lstm-bbbb", False)
    assert window.loss_plot.overlay_keys() == ["20260101-000000-000-gru-aaaa"]


def test_ticking_a_run_keeps_the_other_overlays_curves(qtbot, tmp_path, runs_dir, answers):
    from ui.main_window import MainWindow
    from ui.settings import AppSettings, open_settings

    window = MainWindow(AppSettings(open_settings(tmp_path / "s.ini")), runs_dir=runs_dir,
                        load_dataset=False)
    qtbot.addWidget(window)
    gru, lstm = "20260101-000000-000-gru-aaaa", "20260101-000001-000-lstm-bbbb"
    window.runs_panel.set_overlay(gru, True)
    curve = window.loss_plot._overlays[gru].train_curve
    window.runs_panel.set_overlay(lstm, True)
    assert window.loss_plot._overlays[gru].train_curve is curve  # not drawn again
    window.runs_panel.rename_run(gru, "renamed")
    window.runs_panel.set_overlay(lstm, False)
    assert window.loss_plot.overlay_keys() == [gru]
    assert window.loss_plot._overlays[gru].label == "renamed"  # a new name is drawn


def test_the_live_run_line_follows_its_progress(panel):
    run_id = "20260101-000001-000-lstm-bbbb"
    panel.index.update_live(run_id, steps=999, seconds=75.0, sequences_per_second=1234.0,
                            best_val_loss=1e-9)
    assert cell_text(panel, run_id, 5) == "999"
    assert cell_text(panel, run_id, 7) == "1 min 15 s"
    assert cell_text(panel, run_id, 8) == "1,234"
    assert cell_text(panel, run_id, 6) == "1e-09"


def test_a_new_run_is_added_at_the_top_without_refilling_the_others(qtbot, panel, runs_dir):
    """With many runs listed, a refresh after a run starts fills only the new row (the
    table once rebuilt every row at each run's start and end); ticks stay."""
    for i in range(8):
        record(runs_dir, f"20260101-00001{i}-000-gru-c{i:03d}", "gru")
    panel.index.refresh()
    panel.set_overlay("20260101-000000-000-gru-aaaa", True)
    filled = []
    real_fill = panel._fill_row
    panel._fill_row = lambda r, row: (filled.append(row.run_id), real_fill(r, row))
    record(runs_dir, "20260101-000100-000-lstm-newr", "lstm")
    panel.index.refresh()
    assert filled == ["20260101-000100-000-lstm-newr"]
    assert panel.table.rowCount() == 11
    assert panel.table.item(0, 1).data(Qt.ItemDataRole.UserRole).endswith("newr")
    assert list(panel.overlays()) == ["20260101-000000-000-gru-aaaa"]
    assert cell_text(panel, "20260101-000001-000-lstm-bbbb", 2) == "lstm"
