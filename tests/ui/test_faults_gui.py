"""Issue 10 in the GUI: the array guess (failure 12), "Check again" after a remembered
verdict (1), damaged runs in the Runs panel and a window that still starts (2), and
exports that ask before replacing a file and never write into a run folder (6)."""

from __future__ import annotations

import hashlib
import json
import sys

import h5py
import numpy as np
import pytest
from PySide6.QtCore import Qt

from ui import errors
from ui.data_panel import ArrayChoiceDialog, DataPanel, DatasetDocument, guess_arrays
from ui.main_window import MainWindow
from ui.plots.demo import demo_events
from ui.runs_panel import RunsIndex, RunsPanel
from ui.settings import AppSettings, open_settings
from workbench import safe_open
from workbench.datasets import ArrayInfo, list_arrays
from workbench.errors import DatasetError
from workbench.runs import RunRecorder


def arrays(*specs: tuple[str, tuple[int, ...]]) -> list[ArrayInfo]:
    return [ArrayInfo(path, shape, "float32") for path, shape in specs]


@pytest.mark.parametrize(("specs", "expected"), [
    # names that say their role win, in either order in the file
    ((("/future", (90, 12, 1)), ("/past", (90, 48, 1))), ("/past", "/future")),
    ((("/past_window", (90, 48, 1)), ("/future_window", (90, 12, 1))),
     ("/past_window", "/future_window")),
    ((("/target", (9, 4, 1)), ("/history", (9, 20, 1))), ("/history", "/target")),
    ((("/output", (9, 4, 1)), ("/source", (9, 20, 1))), ("/source", "/output")),
    ((("/y_train", (9, 4, 1)), ("/x_train", (9, 20, 1))), ("/x_train", "/y_train")),
    ((("/data/Y", (9, 4, 1)), ("/data/X", (9, 20, 1))), ("/data/X", "/data/Y")),
    # nothing in the names: the longer array is the input
    ((("/a", (90, 12, 1)), ("/b", (90, 48, 1))), ("/b", "/a")),
    ((("/a", (90, 48, 1)), ("/b", (90, 12, 1))), ("/a", "/b")),
    # one side named: the other is an array with as many samples, the longer as input
    ((("/a", (7, 30, 1)), ("/b", (90, 30, 1)), ("/labels", (90, 2))), ("/b", "/labels")),
    # one array only: never proposed for both sides
    ((("/targets", (9, 4, 1)),), (None, "/targets")),
    ((("/series", (9, 4, 1)),), ("/series", None)),
])
def test_guess_arrays_prefers_role_names_then_the_longer_input(specs, expected):
    assert guess_arrays(arrays(*specs)) == expected


def test_two_names_of_one_array_are_never_proposed_for_both_sides(tmp_path):
    path = tmp_path / "aliases.h5"
    with h5py.File(path, "w") as f:
        f["data/series"] = np.zeros((6, 5, 1), np.float32)
        f["x"] = h5py.SoftLink("/data/series")
        f["y"] = h5py.SoftLink("/data/series")
    listed = list_arrays(path)
    assert {a.path: a.same_as for a in listed} == {"/data/series": "", "/x": "/data/series",
                                                   "/y": "/data/series"}
    inputs, targets = guess_arrays(listed)
    assert inputs == "/x" and targets is None


def test_the_choice_dialog_leaves_a_side_unchosen_rather_than_repeat_an_array(qtbot):
    dialog = ArrayChoiceDialog("one.h5", arrays(("/targets", (9, 4, 1))))
    qtbot.addWidget(dialog)
    assert dialog.targets.currentData() == "/targets"
    assert dialog.inputs.currentIndex() == -1 and not dialog.open_button.isEnabled()
    dialog.inputs.setCurrentIndex(0)  # the user may still choose it for both, deliberately
    assert dialog.open_button.isEnabled()


def test_a_linked_layout_opens_as_the_format_says(qtbot, tmp_path):
    path = tmp_path / "linked.h5"
    with h5py.File(path, "w") as f:
        f["store/past"] = np.zeros((20, 6, 1), np.float32)
        f["store/future"] = np.ones((20, 2, 1), np.float32)
        f["inputs"] = h5py.SoftLink("/store/past")
        f["targets"] = h5py.SoftLink("/store/future")
    document = DatasetDocument()
    panel = DataPanel(document)
    qtbot.addWidget(panel)
    panel.open_file(path)  # no array dialog: /inputs and /targets are there, as links
    assert panel.wait_opened()
    assert document.summary.inputs.steps == 6 and document.summary.targets.steps == 2
    document.close()


def test_check_again_forgets_a_remembered_crash_and_opens_the_file(qtbot, tmp_path,
                                                                   monkeypatch):
    path = tmp_path / "valid.h5"
    with h5py.File(path, "w") as f:
        f["inputs"] = np.zeros((20, 6, 1), np.float32)
        f["targets"] = np.ones((20, 2, 1), np.float32)
    real = safe_open._child_command
    code = "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"
    monkeypatch.setattr(safe_open, "_child_command", lambda *a: [sys.executable, "-c", code])
    with pytest.raises(DatasetError):  # a crash verdict, remembered for this file
        safe_open.check_file(path, mode="list")
    monkeypatch.setattr(safe_open, "_child_command", real)
    shown: list[str] = []
    monkeypatch.setattr(errors, "show_message", lambda parent, title, text, **kw:
                        shown.append(text))
    document = DatasetDocument()
    panel = DataPanel(document)
    qtbot.addWidget(panel)
    assert panel.recheck_button.isHidden()
    panel.open_file(path)
    assert not panel.wait_opened()
    assert len(shown) == 1 and "SIGSEGV" in shown[0]
    assert not panel.recheck_button.isHidden()
    panel.check_again()
    assert panel.wait_opened()
    assert document.path == str(path.resolve()) and panel.recheck_button.isHidden()
    assert len(shown) == 1
    document.close()


# --- the Runs panel and the window with a damaged run ------------------------------------


def record(runs_dir, run_id: str) -> None:
    recorder = RunRecorder(runs_dir / run_id)
    for event in demo_events("gru", steps=40, steps_per_epoch=20, probe_every=20, t_in=6,
                             t_out=3, layers=1, hidden=8, run_id=run_id):
        recorder.on_event(event)
    recorder.close()


GOOD, MANY, JUNK = ("20260101-000000-000-gru-good", "20260101-000001-000-gru-many",
                    "20260101-000002-000-gru-junk")


@pytest.fixture
def damaged_runs(tmp_path):
    runs_dir = tmp_path / "runs"
    for run_id in (GOOD, MANY, JUNK):
        record(runs_dir, run_id)
    status = json.loads((runs_dir / MANY / "status.json").read_text())
    status["step"] = "many"
    (runs_dir / MANY / "status.json").write_text(json.dumps(status))
    (runs_dir / JUNK / "run.json").write_text("{{{ garbage")
    return runs_dir


def row_of(panel: RunsPanel, run_id: str) -> int:
    for r in range(panel.table.rowCount()):
        if panel.table.item(r, 1).data(Qt.ItemDataRole.UserRole) == run_id:
            return r
    raise KeyError(run_id)


def test_the_runs_panel_shows_damaged_runs_as_unreadable(qtbot, damaged_runs, monkeypatch):
    index = RunsIndex(damaged_runs)
    index.refresh()
    panel = RunsPanel(index)
    qtbot.addWidget(panel)
    assert panel.table.rowCount() == 3
    assert panel.table.item(row_of(panel, GOOD), 4).text() == "completed"
    many = row_of(panel, MANY)
    assert panel.table.item(many, 4).text() == "unreadable"
    assert "'step' is \"many\", not a number" in panel.table.item(many, 4).toolTip()
    assert "run.json: not valid JSON" in panel.table.item(row_of(panel, JUNK), 4).toolTip()
    replays: list[str] = []
    panel.replay_requested.connect(replays.append)
    panel.table.selectRow(many)
    assert replays == [] and not panel.resume_button.isEnabled()
    assert not panel.rename_button.isEnabled() and panel.delete_button.isEnabled()
    assert not panel.table.item(many, 0).flags() & Qt.ItemFlag.ItemIsUserCheckable
    monkeypatch.setattr(errors, "ask", lambda parent, title, text: True)
    assert panel.delete_run(JUNK)
    assert not (damaged_runs / JUNK).exists() and panel.table.rowCount() == 2


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_window_starts_with_a_damaged_run_and_exports_never_replace_silently(
        qtbot, tmp_path, damaged_runs, monkeypatch):
    answers = {"yes": False, "asked": [], "shown": []}
    monkeypatch.setattr(errors, "ask", lambda parent, title, text:
                        answers["asked"].append(text) or answers["yes"])
    monkeypatch.setattr(errors, "show_message", lambda parent, title, text, **kw:
                        answers["shown"].append(text))
    window = MainWindow(AppSettings(open_settings(tmp_path / "settings.ini")),
                        runs_dir=damaged_runs, load_dataset=False)
    qtbot.addWidget(window)
    statuses = {row.run_id: row.status for row in window.runs_index.rows}
    assert statuses == {GOOD: "completed", MANY: "unreadable", JUNK: "unreadable"}

    existing = tmp_path / "metrics.csv"
    existing.write_text("mine\n")
    assert window.export_metrics([GOOD], existing) == 0  # asked, and the answer was no
    assert existing.read_text() == "mine\n" and len(answers["asked"]) == 1
    answers["yes"] = True
    assert window.export_metrics([GOOD], existing) > 0
    assert existing.read_text().startswith("run,cell,seed")

    metrics = damaged_runs / GOOD / "metrics.jsonl"
    before = digest(metrics)
    assert window.export_metrics([GOOD], metrics) == 0  # refused, whatever the answer
    assert window.export_config(GOOD, damaged_runs / GOOD / "config.toml") is None
    assert digest(metrics) == before
    assert len(answers["shown"]) == 2 and "inside the run folder" in answers["shown"][0]
    window.shutdown(10_000)
