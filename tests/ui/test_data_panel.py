"""Each panel built on its own with demo data: the Data panel (project files,
token files, foreign files with hand-picked arrays), the Model panel, the task
dialog, the training controls and the three plots."""

from __future__ import annotations

import threading

import h5py
import numpy as np
import pytest

import ui.data_panel as data_panel_module
from ui import errors
from ui.controls import TrainingControls, format_duration, planned_steps
from ui.data_panel import DataPanel, DatasetDocument, guess_arrays, is_project_layout
from ui.model_panel import ModelPanel
from ui.plots.demo import demo_events
from ui.plots.gradient_plot import GradientPlot
from ui.plots.loss_plot import LossPlot
from ui.plots.trajectory_plot import TrajectoryPlot
from ui.sessions import TrainingSession
from ui.task_dialog import TaskDialog
from workbench.datasets import ArrayInfo
from workbench.tasks import generate


@pytest.fixture
def messages(monkeypatch):
    shown: list[str] = []
    monkeypatch.setattr(errors, "show_message",
                        lambda parent, title, text, **kw: shown.append(text))
    return shown


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("files")
    sine = generate("sine", folder / "sine.h5", n=40, seed=0, input_steps=8, target_steps=3,
                    features=2)
    reverse = generate("reverse", folder / "reverse.h5", n=40, seed=0, length=5)
    foreign = folder / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = np.random.default_rng(0).normal(size=(30, 7, 1)).astype(np.float32)
        f["y"] = np.random.default_rng(1).normal(size=(30, 2, 1)).astype(np.float32)
        f["meta/notes"] = np.arange(3)
    return {"sine": sine, "reverse": reverse, "foreign": foreign}


@pytest.fixture
def panel(qtbot):
    document = DatasetDocument()
    widget = DataPanel(document)
    qtbot.addWidget(widget)
    yield widget
    document.close()


def tree_rows(panel) -> dict[str, tuple[str, ...]]:
    rows = {}

    def walk(item):
        path = item.data(0, 0x0100)  # Qt.UserRole
        if path:
            rows[path] = tuple(item.text(c) for c in range(4))
        for i in range(item.childCount()):
            walk(item.child(i))

    for i in range(panel.tree.topLevelItemCount()):
        walk(panel.tree.topLevelItem(i))
    return rows


def test_a_project_file_shows_arrays_summary_and_a_sample(panel, files, messages):
    panel.open_file(files["sine"])
    assert panel.wait_opened()
    rows = tree_rows(panel)
    used = {path: row[3] for path, row in rows.items() if row[3]}
    assert sorted(used.values()) == ["inputs", "inputs", "inputs", "targets", "targets",
                                     "targets"] or sorted(set(used.values())) == ["inputs",
                                                                                 "targets"]
    assert any(row[1] == "36 × 8 × 2" or "× 8 × 2" in row[1] for row in rows.values())
    text = {k: v.text() for k, v in panel.summary_labels.items()}
    assert text["task"] == "sine" and text["kind"] == "continuous"
    assert "T_in = 8" in text["steps"] and "T_out = 3" in text["steps"]
    assert "train" in text["samples"] and "2 features" in text["values"]
    # the preview: input and target of every feature, on one time axis
    curves = panel.preview_plot.getPlotItem().listDataItems()
    assert len(curves) == 4
    xs = np.concatenate([c.getData()[0] for c in curves])
    assert xs.min() == 0 and xs.max() == 8 + 3 - 1
    first = curves[0].getData()[1].copy()
    panel.index_spin.setValue(3)  # read in the background, shown when read
    assert panel.wait_preview()
    curves = panel.preview_plot.getPlotItem().listDataItems()
    assert len(curves) == 4 and not np.array_equal(curves[0].getData()[1], first)
    assert messages == []


def test_a_token_file_previews_as_text(panel, files):
    panel.open_file(files["reverse"])
    assert panel.wait_opened()
    assert panel.preview_stack.currentWidget() is panel.preview_text
    text = panel.preview_text.toPlainText()
    assert text.startswith("Input :") and "Target:" in text and "</s>" in text
    assert "vocabulary" in panel.summary_labels["values"].text()


def test_a_foreign_file_opens_with_hand_picked_arrays(panel, files, monkeypatch, messages):
    asked = []

    def choose(parent, path, arrays):
        asked.append([a.path for a in arrays])
        return "/x", "/y"

    monkeypatch.setattr(data_panel_module, "choose_arrays", choose)
    panel.open_file(files["foreign"])
    assert panel.wait_opened()
    assert "/x" in asked[0] and "/y" in asked[0]
    assert panel.document.inputs == "/x" and panel.document.targets == "/y"
    assert tree_rows(panel)["/x"][3] == "inputs"
    assert "T_in = 7" in panel.summary_labels["steps"].text()
    assert panel.inputs_combo.currentData() == "/x"
    assert messages == []


def test_cancelling_the_array_choice_keeps_the_dataset(panel, files, monkeypatch):
    panel.open_file(files["sine"])
    assert panel.wait_opened()
    monkeypatch.setattr(data_panel_module, "choose_arrays", lambda *a: None)
    panel.open_file(files["foreign"])
    assert not panel.wait_opened()
    assert panel.document.path == str(files["sine"].resolve())


def test_a_bad_array_choice_shows_the_error_and_keeps_the_dataset(panel, files, monkeypatch,
                                                                  messages):
    panel.open_file(files["sine"])
    assert panel.wait_opened()
    monkeypatch.setattr(data_panel_module, "choose_arrays", lambda *a: ("/x", "/meta/notes"))
    panel.open_file(files["foreign"])
    assert not panel.wait_opened()
    assert len(messages) == 1 and "/meta/notes" in messages[0]
    assert panel.document.path == str(files["sine"].resolve())


def test_array_guesses():
    arrays = [ArrayInfo("/a/src", (5, 3), "int64"), ArrayInfo("/a/labels", (5, 2), "int64"),
              ArrayInfo("/n", (5,), "int64")]
    assert guess_arrays(arrays) == ("/a/src", "/a/labels")
    assert not is_project_layout(arrays)
    assert is_project_layout([ArrayInfo("/train/inputs", (5, 3), "f4"),
                              ArrayInfo("/train/targets", (5, 3), "f4")])


def test_the_model_panel_alone_follows_the_data(qtbot, files):
    document = DatasetDocument()
    panel = ModelPanel(document, {"cell": "gru", "hidden": 10})
    qtbot.addWidget(panel)
    assert panel.parameters.text() == "–"  # no data yet
    document.load(files["reverse"])
    assert panel.embedding.isEnabled()  # token data
    before = panel.parameters.text()
    panel.embedding.setValue(64)
    assert panel.parameters.text() != before
    document.load(files["sine"])
    assert not panel.embedding.isEnabled()
    assert panel.values()["cell"] == "gru" and panel.values()["hidden"] == 10
    panel.optimizer.setCurrentIndex(panel.optimizer.findData("sgd"))
    assert panel.momentum.isEnabled()
    panel.tf_schedule.setChecked(True)
    panel.tf_end.setValue(20)
    assert panel.values()["teacher_forcing_end"] == pytest.approx(0.2)
    config = panel.run_config(str(files["sine"]))
    assert config.cell == "gru" and config.optimizer == "sgd"
    document.close()


def test_the_task_dialog_writes_a_file(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("SEQUENCE_WORKBENCH_HOME", str(tmp_path))
    dialog = TaskDialog(task="copy")
    qtbot.addWidget(dialog)
    assert dialog.task_name() == "copy"
    assert set(dialog.options()) == {"length", "delay", "vocab"}
    dialog.n.setValue(50)
    dialog.set_option("delay", 3)
    assert dialog.output_path() == tmp_path / "datasets" / "copy-T10-d3-v8-n50.h5"  # its options
    dialog.generate_button.click()
    qtbot.waitUntil(lambda: dialog.written_path is not None, timeout=20_000)
    assert dialog.written_path.is_file()
    with h5py.File(dialog.written_path) as f:
        assert f.attrs["task"] == "copy"


def test_the_controls_alone_follow_a_session(qtbot):
    session = TrainingSession()
    controls = TrainingControls(session)
    qtbot.addWidget(controls)
    assert controls.train_action.isEnabled() and not controls.stop_action.isEnabled()
    events = demo_events("gru", steps=100, steps_per_epoch=25, probe_every=50, t_in=4, t_out=2,
                         layers=1, hidden=4)
    events[0] = type(events[0])(**{**events[0].__dict__,
                                   "config": {"training": {"batch_size": 4, "epochs": 4}},
                                   "dataset": {"splits": {"all": 120},
                                               "reader_splits": {"train": 100, "val": 20}}})
    controls._on_state_changed("running")
    controls._on_events(tuple(events[:40]))
    # the read-outs change at most every DISPLAY_MS, whatever the step rate
    qtbot.waitUntil(lambda: "Epoch" in controls.progress.format(), timeout=2000)
    assert "of 100" in controls.progress.format()
    assert controls.speed_label.text().endswith("sequences/s")
    assert controls.eta_label.text().startswith("ETA")
    controls._on_events(tuple(events[40:]))
    assert controls.progress.format().startswith("Completed")
    assert planned_steps({"training": {"batch_size": 32, "steps": 7}}, 1000) == (7, 32)
    assert format_duration(125) == "2 min 05 s"


def _drawn_loss(plot: LossPlot) -> None:
    x, _ = plot.raw_curve.getOriginalDataset()
    assert len(x) == 60  # every step
    vx, _ = plot.val_teacher_forced_curve.getOriginalDataset()
    assert list(vx) == [20, 40, 60]  # one validation point per epoch, where it ended
    assert plot.plot_item.titleLabel.text.startswith("Loss: ")


def _drawn_gradient(plot: GradientPlot) -> None:
    assert plot.probe_count == 4  # at steps 0, 20, 40 and 60
    x, y = plot.latest_curve.getOriginalDataset()
    assert list(x) == [1, 2, 3, 4, 5, 6, 7, 8]  # the latest probe: T_in + T_out steps
    assert np.all(np.asarray(y) > 0)
    assert sum(c.isVisible() for c in plot.history_curves) == 3  # the earlier probes, faded


def _drawn_trajectory(plot: TrajectoryPlot) -> None:
    assert plot.probe_count == 4 and plot.current_index == 3  # follows the newest
    assert plot.current_path(0).shape == (8, 2)  # one 2-D point per time step
    assert len(plot.points.data) == 3 * 8  # every sample's every step
    assert len(plot.start_markers.data) == len(plot.handover_markers.data) == 3


@pytest.mark.parametrize("plot_type, drawn", [(LossPlot, _drawn_loss),
                                              (GradientPlot, _drawn_gradient),
                                              (TrajectoryPlot, _drawn_trajectory)])
def test_each_plot_alone_takes_a_demo_run(qtbot, plot_type, drawn):
    plot = plot_type()
    qtbot.addWidget(plot)
    plot.add_events(demo_events("lstm", steps=60, steps_per_epoch=20, probe_every=20, t_in=5,
                                t_out=3, layers=1, hidden=6))
    plot.redraw_now()
    drawn(plot)


def test_opening_runs_in_the_background_and_says_it_is_checking(qtbot, panel, tmp_path,
                                                                monkeypatch):
    """open_file returns before the file's child-process check has run: the panel says
    it is checking, the event loop keeps turning, and the file opens afterwards."""
    from workbench import safe_open

    # a fresh file, so that no cached verdict makes the check instant
    fresh = generate("sine", tmp_path / "fresh.h5", n=40, seed=3, input_steps=8,
                     target_steps=3)
    checked_in = []
    real_check = safe_open.check_file

    def recording_check(*args, **kwargs):  # the real check, noting where it ran
        checked_in.append(threading.current_thread().name)
        return real_check(*args, **kwargs)

    monkeypatch.setattr(safe_open, "check_file", recording_check)
    panel.open_file(fresh)
    assert panel.opening
    assert "Checking" in panel.file_label.text()
    assert not panel.open_button.isEnabled()
    qtbot.waitUntil(lambda: not panel.opening, timeout=30_000)
    assert panel.document.path == str(fresh.resolve())
    assert "Checking" not in panel.file_label.text() and panel.open_button.isEnabled()
    assert checked_in and "MainThread" not in checked_in


def test_a_newer_open_supersedes_one_in_progress(qtbot, panel, files):
    panel.open_file(files["reverse"])
    panel.open_file(files["sine"])
    assert panel.wait_opened()
    assert panel.document.path == str(files["sine"].resolve())


def test_a_first_open_runs_the_safety_check_once(qtbot, panel, tmp_path, monkeypatch):
    """Listing the arrays and opening the dataset share one child-process check (they
    ran one each, ~150 ms apiece on a first open); the second open of the file needs
    none."""
    from workbench import safe_open

    fresh = generate("sine", tmp_path / "once.h5", n=40, seed=4, input_steps=8, target_steps=3)
    children = []
    real_child = safe_open._run_child

    def counting_child(path, mode, *args):
        children.append(mode)
        return real_child(path, mode, *args)

    monkeypatch.setattr(safe_open, "_run_child", counting_child)
    panel.open_file(fresh)
    assert panel.wait_opened()
    assert children == ["both"]
    panel.open_file(fresh)
    assert panel.wait_opened()
    assert children == ["both"]
