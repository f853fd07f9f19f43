"""The main window as a user drives it: the built-in dataset, Train, Pause/Resume,
Stop, closing during a run, a bad file, settings that persist, fields that refuse
bad values. Tiny data (sine, 64 samples) and a tiny model keep each run to a
second or two."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtGui import QDropEvent

import ui.main_window as main_window_module
from ui import errors
from ui.main_window import MainWindow
from ui.settings import SETTINGS_VERSION, AppSettings, open_settings
from workbench.events import StepMetrics
from workbench.runs import list_runs
from workbench.tasks import generate

T_IN, T_OUT = 12, 4


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "tiny.h5"
    generate("sine", path, n=64, seed=1, input_steps=T_IN, target_steps=T_OUT)
    return path


def make_window(qtbot, tmp_path, *, load_dataset=False, path=None):
    settings = AppSettings(open_settings(tmp_path / "settings.ini"))
    window = MainWindow(settings, runs_dir=tmp_path / "runs", load_dataset=load_dataset,
                        initial_path=str(path) if path else None)
    qtbot.addWidget(window)
    return window


@pytest.fixture
def window(qtbot, tmp_path, tiny_data, dialogs):
    w = make_window(qtbot, tmp_path)
    assert w.open_dataset(tiny_data)
    w.model_panel.set_values({"hidden": 8, "batch_size": 16, "epochs": 3, "cell": "gru"})
    w.seen = []  # every StepMetrics the window received
    w.session.events_ready.connect(
        lambda batch: w.seen.extend(e for e in batch if isinstance(e, StepMetrics)))
    yield w
    w.shutdown(30_000)
    qtbot.waitUntil(lambda: not w.session.is_running(), timeout=30_000)


def wait_idle(qtbot, w, timeout=60_000):
    qtbot.waitUntil(lambda: not w.session.is_running(), timeout=timeout)


def last_step(w) -> int:
    return w.seen[-1].step if w.seen else 0


def test_opens_with_the_builtin_dataset(qtbot, tmp_path, dialogs):
    w = make_window(qtbot, tmp_path, load_dataset=True)
    w.show()
    qtbot.waitUntil(lambda: w.document.summary is not None, timeout=30_000)
    assert w.document.summary.task == "sine"
    assert "builtin" in w.document.path
    assert w.controls.train_action.isEnabled()
    assert dialogs == []


def test_a_run_started_with_the_controls_fills_all_three_panels(qtbot, window, dialogs):
    window.show()
    window.controls.train_action.trigger()
    assert window.session.state == "running"
    wait_idle(qtbot, window)
    assert dialogs == []
    (run,) = list_runs(window.runs_dir)
    assert run.status == "completed"
    for plot in window.plots:
        plot.redraw_now()
    assert len(window.loss_plot.raw_curve.getData()[0]) == run.steps
    assert window.gradient_plot.probe_count >= 1
    x, _y = window.gradient_plot.latest_curve.getData()
    assert len(x) == T_IN + T_OUT
    # the trajectory's tab is behind the gradient's: it gets its events when shown
    assert window.trajectory_plot.probe_count == 0
    window.docks.trajectory.raise_()
    qtbot.waitUntil(lambda: window.trajectory_plot.probe_count >= 1, timeout=5000)
    assert window.trajectory_plot.current_path().shape == (T_IN + T_OUT, 2)
    assert "Completed" in window.controls.progress.format()
    assert window.runs_index.rows[0].status == "completed"


def test_stop_mid_run_ends_stopped_and_the_run_resumes(qtbot, window, dialogs):
    window.model_panel.set_values({"hidden": 8, "batch_size": 16, "epochs": 5000})
    window.train()
    qtbot.waitUntil(lambda: len(window.seen) > 0, timeout=30_000)
    window.controls.stop_action.trigger()
    wait_idle(qtbot, window)
    (run,) = list_runs(window.runs_dir)
    assert run.status == "stopped"
    assert (run.path / "checkpoints" / "latest.pt").is_file()
    stopped_at = run.steps

    # Resume from the runs panel: it goes on from the checkpoint, under the same id.
    window.runs_panel.select_run(run.run_id)
    assert window.runs_panel.resume_button.isEnabled()
    window.runs_panel.resume_button.click()
    qtbot.waitUntil(lambda: window.session.state == "running", timeout=5000)
    qtbot.waitUntil(lambda: last_step(window) > stopped_at + 2, timeout=30_000)
    window.loss_plot.redraw_now()
    assert window.loss_plot.raw_curve.getData()[0][0] == 1  # the history, then the rest
    window.session.stop()
    wait_idle(qtbot, window)
    (again,) = list_runs(window.runs_dir)
    assert again.run_id == run.run_id and again.status == "stopped"
    assert again.steps > stopped_at
    assert dialogs == []


def test_pause_holds_the_run_and_resume_continues(qtbot, window, dialogs):
    window.model_panel.set_values({"hidden": 8, "batch_size": 16, "epochs": 5000})
    window.train()
    qtbot.waitUntil(lambda: len(window.seen) > 2, timeout=30_000)
    window.controls.pause_action.trigger()
    assert window.controls.pause_action.text() == "Resume"
    qtbot.waitUntil(lambda: "Paused" in window.controls.progress.format(), timeout=10_000)
    qtbot.wait(200)
    held = len(window.seen)
    qtbot.wait(300)
    assert len(window.seen) == held
    window.controls.pause_action.trigger()  # Resume
    assert window.controls.pause_action.text() == "Pause"
    qtbot.waitUntil(lambda: len(window.seen) > held + 2, timeout=10_000)
    window.controls.stop_action.trigger()
    wait_idle(qtbot, window)
    assert list_runs(window.runs_dir)[0].status == "stopped"


def test_closing_during_a_run_asks_and_cancel_keeps_it_running(qtbot, window):
    window.model_panel.set_values({"hidden": 8, "batch_size": 16, "epochs": 5000})
    window.show()
    window.train()
    qtbot.waitUntil(lambda: len(window.seen) > 0, timeout=30_000)
    asked = []
    window.confirm_close = lambda: asked.append(True) or False  # "Cancel"
    assert not window.close()
    assert asked == [True]
    assert window.isVisible() and window.session.is_running()
    steps = last_step(window)
    qtbot.waitUntil(lambda: last_step(window) > steps + 2, timeout=30_000)  # it goes on
    assert window.controls.stop_action.isEnabled()
    window.session.stop()
    wait_idle(qtbot, window)
    asked.clear()
    window.close()  # nothing running: no question
    assert asked == [] and not window.isVisible()


def test_the_close_question_has_stop_and_save_and_cancel(qtbot, window):
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QMessageBox

    seen = []

    def answer(button_text):
        boxes = [b for b in window.findChildren(QMessageBox) if b.isVisible()]
        if not boxes:
            QTimer.singleShot(20, lambda: answer(button_text))
            return
        box = boxes[-1]
        seen.append((box.parent() is window, [b.text() for b in box.buttons()]))
        (button,) = [b for b in box.buttons() if button_text in b.text().replace("&", "")]
        button.click()

    QTimer.singleShot(20, lambda: answer("Cancel"))
    assert main_window_module.ask_stop_and_save(window) is False
    QTimer.singleShot(20, lambda: answer("Stop and Save"))
    assert main_window_module.ask_stop_and_save(window) is True
    owned, buttons = seen[0]
    assert owned and len(buttons) == 2


def test_closing_during_a_run_stop_and_save_stops_it_and_leaves_no_thread(qtbot, window):
    window.model_panel.set_values({"hidden": 8, "batch_size": 16, "epochs": 5000})
    window.show()
    window.train()
    qtbot.waitUntil(lambda: len(window.seen) > 0, timeout=30_000)
    thread = window.session._runner.thread
    asked = []
    window.confirm_close = lambda: asked.append(True) or True  # "Stop and Save"
    window.close()
    assert asked == [True]
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=30_000)
    assert not thread.is_alive()
    (run,) = list_runs(window.runs_dir)
    assert run.status == "stopped"
    assert (run.path / "checkpoints" / "latest.pt").is_file()


def test_a_slow_stop_says_so_and_closes_when_the_thread_ends(qtbot, window, monkeypatch):
    monkeypatch.setattr(main_window_module, "CLOSE_WAIT_MS", 0)  # every stop is "slow"
    window.model_panel.set_values({"hidden": 8, "batch_size": 16, "epochs": 5000})
    window.show()
    window.train()
    qtbot.waitUntil(lambda: len(window.seen) > 0, timeout=30_000)
    window.close_without_asking()  # as Ctrl-C does
    if window.isVisible():  # the stop had not finished at once
        assert "Finishing the current step" in window.controls.progress.format()
        assert not window.controls.train_action.isEnabled()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=30_000)
    assert not window.session.is_running()
    assert list_runs(window.runs_dir)[0].status == "stopped"


def test_a_corrupt_file_shows_the_error_and_keeps_the_dataset(qtbot, window, dialogs,
                                                              tmp_path, tiny_data):
    bad = tmp_path / "corrupt.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"not really hdf5" * 50)
    assert not window.open_dataset(bad)
    assert len(dialogs) == 1
    title, text = dialogs[0]
    assert "corrupt.h5" in text
    assert "Traceback" not in text
    assert window.document.path == str(tiny_data.resolve())
    assert window.document.summary is not None
    assert window.controls.train_action.isEnabled()


def test_dropping_a_file_opens_it(qtbot, window, tmp_path):
    other = tmp_path / "dropped.h5"
    generate("sine", other, n=32, seed=2, input_steps=6, target_steps=3)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(other))])
    event = QDropEvent(QPoint(10, 10), Qt.DropAction.CopyAction, mime,
                       Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)
    qtbot.waitUntil(lambda: window.document.path == str(other.resolve()), timeout=10_000)
    assert str(other.resolve()) in window.settings.recent_files()


def test_a_relaunch_reopens_the_last_dataset(qtbot, tmp_path, dialogs):
    other = tmp_path / "lesson.h5"
    generate("sine", other, n=32, seed=3, input_steps=6, target_steps=3)
    first = make_window(qtbot, tmp_path)
    assert first.open_dataset(other)
    first.close()

    second = make_window(qtbot, tmp_path, load_dataset=True)  # as the app starts
    second.show()
    qtbot.waitUntil(lambda: second.document.summary is not None, timeout=30_000)
    assert second.document.path == str(other.resolve())
    assert "builtin" not in second.document.path
    second.close()

    other.unlink()  # gone since: the built-in data, and a line saying so
    third = make_window(qtbot, tmp_path, load_dataset=True)
    third.show()
    qtbot.waitUntil(lambda: third.document.summary is not None, timeout=30_000)
    assert "builtin" in third.document.path
    assert "lesson.h5" in third.statusBar().currentMessage()
    assert "no longer there" in third.statusBar().currentMessage()
    assert dialogs == []


def test_settings_persist_across_two_windows(qtbot, tmp_path, tiny_data, dialogs):
    first = make_window(qtbot, tmp_path)
    first.show()
    assert first.open_dataset(tiny_data)
    first.model_panel.set_values({"cell": "rnn-relu", "hidden": 24, "lr": 0.003,
                                  "clip": 2.5, "teacher_forcing": 0.6})
    first.resize(1250, 850)
    first.docks.runs.hide()
    geometry = first.saveGeometry()
    first.close()

    second = make_window(qtbot, tmp_path)
    second.show()
    values = second.model_panel.values()
    assert (values["cell"], values["hidden"], values["lr"], values["clip"]) == \
        ("rnn-relu", 24, 0.003, 2.5)
    assert values["teacher_forcing"] == pytest.approx(0.6)
    assert second.settings.recent_files()[0] == str(tiny_data.resolve())
    assert second.recent_menu.actions()[0].text() == tiny_data.name
    # (the offscreen screen is smaller than the window, so Qt fits the restored
    # geometry to it: compare what was stored)
    assert second.settings.window_state()[0] == geometry
    assert not second.docks.runs.isVisible()
    assert second.settings.store.value("settings_version") in (SETTINGS_VERSION,
                                                               str(SETTINGS_VERSION))


def test_invalid_values_are_refused_at_the_field(qtbot, window):
    panel = window.model_panel
    panel.lr.setText("-0.1")
    assert "lr" in panel.errors()
    assert panel.lr_error.isVisibleTo(panel)
    assert not window.controls.train_action.isEnabled()
    assert "learning rate" in window.controls.train_action.toolTip().lower() or \
        "lr" in window.controls.train_action.toolTip()
    assert panel.values()["lr"] == pytest.approx(1e-3)  # the last valid value is kept
    panel.lr.setText("3e-4")
    assert panel.is_valid() and window.controls.train_action.isEnabled()
    assert panel.values()["lr"] == pytest.approx(3e-4)
    panel.hidden.setValue(0)  # below the field's range: clamped, never 0
    assert panel.values()["hidden"] == 1
    panel.dropout.setValue(5.0)
    assert panel.values()["dropout"] <= 0.99


def test_the_parameter_count_follows_the_settings(qtbot, window):
    panel = window.model_panel
    panel.set_values({"cell": "rnn-tanh", "hidden": 8})
    small = int(panel.parameters.text().replace(",", ""))
    panel.hidden.setValue(16)
    assert int(panel.parameters.text().replace(",", "")) > small
    panel.cell.setCurrentIndex(panel.cell.findData("lstm"))
    assert "Long Short-Term Memory" in panel.description.text()
    assert not panel.embedding.isEnabled()  # continuous data: no embedding


def test_a_finished_run_replays_into_the_panels(qtbot, window):
    window.train()
    wait_idle(qtbot, window)
    for plot in window.plots:
        plot.clear()
    (run,) = list_runs(window.runs_dir)
    window.runs_panel.select_run(run.run_id)
    window.loss_plot.redraw_now()
    window.gradient_plot.redraw_now()
    assert len(window.loss_plot.raw_curve.getData()[0]) == run.steps
    assert window.gradient_plot.probe_count >= 1
    assert "Showing" in window.run_label.text()


def test_an_unexpected_error_is_logged_and_shown(qtbot, dialogs, monkeypatch, tmp_path):
    monkeypatch.setenv("SEQUENCE_WORKBENCH_HOME", str(tmp_path))
    try:
        raise ValueError("a bug")
    except ValueError as exc:
        errors.excepthook(type(exc), exc, exc.__traceback__)
    (title, text), = dialogs
    assert "a bug" in text and str(errors.log_path()) in text
    assert "Traceback" in errors.log_path().read_text()


def test_a_users_mistake_shows_only_its_message(qtbot, dialogs):
    from workbench.errors import ConfigError

    try:
        raise ConfigError("hidden = 0 is not allowed")
    except ConfigError as exc:
        errors.excepthook(type(exc), exc, exc.__traceback__)
    assert dialogs == [("Error", "hidden = 0 is not allowed")]


def test_settings_of_an_older_version_are_migrated(tmp_path):
    store = open_settings(tmp_path / "old.ini")
    store.setValue("model/settings", '{"hidden": 12}')
    store.setValue("junk/key", 1)  # an unversioned store: unknown groups are dropped
    store.sync()
    settings = AppSettings(open_settings(tmp_path / "old.ini"))
    assert settings.found_version == 0
    assert settings.model_settings() == {"hidden": 12}
    assert settings.store.value("junk/key") is None
    assert int(settings.store.value("settings_version")) == SETTINGS_VERSION


def test_recent_files_keep_the_ten_latest(tmp_path):
    settings = AppSettings(open_settings(tmp_path / "s.ini"))
    for i in range(15):
        settings.add_recent_file(tmp_path / f"f{i}.h5")
    files = settings.recent_files()
    assert len(files) == 10 and files[0].endswith("f14.h5")


def test_the_window_fits_a_1280_by_720_screen(qtbot, window):
    """Every panel shown (the default layout): the window's minimum fits a small
    laptop screen, and at that size every plot is still on screen."""
    window.show()
    qtbot.waitExposed(window)
    least = window.minimumSizeHint().expandedTo(window.minimumSize())
    assert least.width() <= 1280 and least.height() <= 720
    window.resize(1280, 720)
    qtbot.waitUntil(lambda: window.width() <= 1280 and window.height() <= 720, timeout=2000)
    window.reset_layout()  # the default for this size: Data and Runs are tabs beside Model
    qtbot.wait(100)
    for dock in (window.docks.loss, window.docks.gradient, window.docks.runs, window.docks.data,
                 window.docks.model):
        dock.raise_()
        qtbot.wait(10)
        assert dock.isVisible() and not dock.visibleRegion().isEmpty()
        assert dock.geometry().bottom() <= window.height()
        assert dock.geometry().right() <= window.width()
