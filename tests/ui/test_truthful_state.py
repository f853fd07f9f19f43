"""The window never shows another run's facts: a new run's line in the Runs list, the
progress bar at a new run, a failed start, the comparison table while a seed still
trains, one figure of sequences/s, and run names that tell runs apart.

Real window offscreen, real runs on a tiny sine file (a second or two each)."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from tests.ui.test_main_window import T_IN, T_OUT, make_window, wait_idle
from ui.compare_view import ComparisonTableWidget
from ui.runs_panel import COLUMNS
from workbench import compare
from workbench.events import EpochMetrics, RunFinished, RunStarted, StepMetrics
from workbench.runs import list_runs
from workbench.tasks import generate


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.h5"
    generate("sine", path, n=64, seed=1, input_steps=T_IN, target_steps=T_OUT)
    return path


@pytest.fixture
def window(qtbot, tmp_path, tiny, dialogs):
    w = make_window(qtbot, tmp_path)
    assert w.open_dataset(tiny)
    w.model_panel.set_values({"hidden": 8, "batch_size": 16, "epochs": 30, "cell": "lstm"})
    yield w
    w.shutdown(30_000)
    qtbot.waitUntil(lambda: not w.session.is_running(), timeout=30_000)


def row_of(w, run_id: str) -> dict[str, str]:
    table = w.runs_panel.table
    for r in range(table.rowCount()):
        if table.item(r, 1).data(Qt.ItemDataRole.UserRole) == run_id:
            return {name: table.item(r, c).text() for c, name in enumerate(COLUMNS)}
    raise KeyError(run_id)


def test_a_new_runs_line_shows_only_its_own_figures_from_its_first_event(qtbot, window):
    window.train()
    wait_idle(qtbot, window)
    (first,) = list_runs(window.runs_dir)
    a = row_of(window, first.run_id)
    assert a["Steps"] == "120" and a["Best val. loss"] != "–"

    window.model_panel.set_values({"hidden": 8, "batch_size": 16, "epochs": 5000,
                                   "cell": "gru"})
    seen: list[tuple[dict[str, str], int, list[float]]] = []
    own_steps: list[int] = []
    own_losses: list[float] = []

    def on_batch(batch):  # connected after the window's own handlers: the row is updated
        own_steps.extend(e.step for e in batch if isinstance(e, StepMetrics))
        own_losses.extend(e.val_loss for e in batch if isinstance(e, EpochMetrics))
        live = window.runs.live_run_id
        if live and live != first.run_id:
            seen.append((row_of(window, live), max(own_steps, default=0), list(own_losses)))

    window.session.events_ready.connect(on_batch)
    window.train()
    qtbot.waitUntil(lambda: len(seen) >= 3, timeout=30_000)
    window.controls.stop_action.trigger()
    wait_idle(qtbot, window)

    b, steps_then, losses_then = seen[0]  # the batch that held its RunStarted
    assert b["Name"] != a["Name"] and b["Cell"] == "gru"
    assert int(b["Steps"].replace(",", "")) <= steps_then < 120
    assert b["Best val. loss"] == ("–" if not losses_then else f"{min(losses_then):.4g}")
    assert b["Best val. loss"] != a["Best val. loss"]
    for b, steps_then, _losses in seen:  # never A's figures while B trains
        assert int(b["Steps"].replace(",", "")) <= steps_then
        assert b["Best val. loss"] != a["Best val. loss"] or b["Best val. loss"] == "–"


def test_the_progress_bar_starts_from_zero_at_a_new_run(qtbot, window):
    window.model_panel.set_values({"hidden": 8, "batch_size": 16, "epochs": 3})
    window.train()
    wait_idle(qtbot, window)
    progress = window.controls.progress
    assert progress.format().startswith("Completed")
    window.train()
    assert window.session.state == "running"
    assert progress.format() == "Starting…"  # not "Epoch 3 of 3" of the last run
    assert progress.value() <= 0
    assert window.controls.speed_label.text() == "" and window.controls.eta_label.text() == ""
    wait_idle(qtbot, window)


def test_a_failed_start_returns_every_control_to_idle_with_the_reason(qtbot, window, tiny,
                                                                        dialogs):
    tiny.write_bytes(b"not a dataset any more\n")  # RunService.start opens it: refused
    window.train()
    assert window.session.state == "running"
    wait_idle(qtbot, window)
    controls = window.controls
    assert controls.train_action.isEnabled()
    assert not controls.stop_action.isEnabled() and not controls.pause_action.isEnabled()
    assert "Starting" not in controls.progress.format()
    assert controls.progress.format().startswith("Could not start: ")
    assert "tiny.h5" in controls.progress.format()
    assert "Starting" not in window.runs.run_label.text()
    assert "tiny.h5" in window.statusBar().currentMessage()
    assert any("tiny.h5" in text for _title, text in dialogs)
    assert list_runs(window.runs_dir) == []


def test_one_figure_of_sequences_per_second_in_the_status_bar_and_the_runs_list(qtbot, window):
    window.model_panel.set_values({"hidden": 8, "batch_size": 16, "epochs": 3})
    window.train()
    wait_idle(qtbot, window)
    (run,) = list_runs(window.runs_dir)
    speed = row_of(window, run.run_id)["Sequences/s"]
    assert speed != "–"
    assert window.controls.speed_label.text() == f"{speed} sequences/s"


def test_default_names_tell_runs_apart_and_the_list_names_the_dataset(qtbot, window):
    window.model_panel.set_values({"hidden": 8, "batch_size": 16, "epochs": 1, "seed": 3})
    window.train()
    wait_idle(qtbot, window)
    window.train()  # the very same settings again
    wait_idle(qtbot, window)
    rows = [row_of(window, r.run_id) for r in list_runs(window.runs_dir)]
    assert rows[0]["Name"] == "lstm h8 · tiny · s3"
    assert rows[1]["Name"] == "lstm h8 · tiny · s3 (2)"
    assert [r["Dataset"] for r in rows] == ["tiny", "tiny"]


def _events(seed: int, seconds: float, *, finished: bool, loss: float) -> list:
    config = {"model": {"cell": "gru", "layers": 1}, "training": {"seed": seed}}
    out = [RunStarted(run_id=f"run-{seed}", config=config, parameters=100, dataset={}),
           StepMetrics(step=10, epoch=1, loss=loss, grad_norm=1.0, learning_rate=1e-3,
                       teacher_forcing=1.0, sequences_per_second=1.0, seconds=seconds,
                       sequences=100),
           EpochMetrics(epoch=1, step=10, val_loss=loss, val_loss_free_running=loss)]
    if finished:
        out.append(RunFinished(status="completed", message="", step=10, epoch=1,
                               seconds=seconds))
    return out


def test_the_comparison_table_leaves_out_and_marks_a_run_still_training(qtbot):
    runs = [compare.RunData.from_events(_events(0, 10.0, finished=True, loss=0.2)),
            compare.RunData.from_events(_events(1, 12.0, finished=True, loss=0.4)),
            compare.RunData.from_events(_events(2, 1.0, finished=False, loss=5.0))]
    table = compare.comparison_rows(runs)
    (row,) = table.rows
    assert row.running == 1 and row.counted_seeds == (0, 1)
    assert row.stats["seconds"].mean == pytest.approx(11.0)  # not (10 + 12 + 1) / 3
    assert row.stats["best_val_loss"].mean == pytest.approx(0.3)
    widget = ComparisonTableWidget()
    qtbot.addWidget(widget)
    widget.set_table(table)
    assert widget.item(0, widget.column("runs")).text() == "2 + 1 (running)"
    wall = widget.item(0, widget.column("seconds"))
    assert wall.text() == "11 ± 1.414"
    assert "still training" in wall.toolTip()
