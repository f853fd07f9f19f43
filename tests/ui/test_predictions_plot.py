"""The predictions panel: a known Prediction shown as a user sees it (continuous
curves on one time axis with the per-step error; token strings aligned with the
generated output's mismatches in red), the sample spin box, and export."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from ui.plots.predictions_plot import (  # noqa: E402
    MISMATCH_COLOR,
    MISSING_TOKEN,
    PredictionsPlot,
    split_tokens,
)
from workbench.events import RunStarted  # noqa: E402
from workbench.predictions import Prediction  # noqa: E402


def _continuous(index: int = 3, features: int = 1) -> Prediction:
    t_in, t_out = 6, 4
    x = np.arange(t_in * features, dtype=np.float64).reshape(t_in, features)
    y = np.linspace(1.0, 2.0, t_out * features).reshape(t_out, features)
    forced = y + 0.1
    free = y + np.arange(t_out)[:, None] * 0.5
    return Prediction("continuous", "val", index, "run-a", x, y, forced, free, 0.25,
                      teacher_forced_error=np.abs(forced - y).mean(-1),
                      free_running_error=np.abs(free - y).mean(-1))


def _tokens() -> Prediction:
    # vocabulary of one-character tokens: decode joins them without spaces
    target = np.array([5, 6, 7, 8, 2])  # "abcd$"
    forced = np.array([5, 6, 9, 8, 2])  # "abxd$": step 3 wrong
    free = np.array([5, 9, 7])  # "axc": step 2 wrong, stopped early (steps 4, 5 missing)
    return Prediction("tokens", "val", 7, "run-t", np.array([8, 7, 6, 5]), target, forced, free,
                      0.8, teacher_forced_mismatch=np.array([0, 0, 1, 0, 0], dtype=bool),
                      free_running_mismatch=np.array([0, 1, 0, 1, 1], dtype=bool),
                      input_text="dcba", target_text="abcd$", teacher_forced_text="abxd$",
                      free_running_text="axc")


def test_continuous_curves_hold_the_arrays_on_one_time_axis(qtbot):
    panel = PredictionsPlot()
    qtbot.addWidget(panel)
    p = _continuous()
    panel.show_prediction(p, "epoch 2")
    assert panel.stack.currentWidget() is panel.plot_widget
    x, y = panel.input_curve.getOriginalDataset()
    assert list(x) == [1, 2, 3, 4, 5, 6] and list(y) == list(p.input[:, 0])
    x, y = panel.target_curve.getOriginalDataset()
    assert list(x) == [7, 8, 9, 10]  # outputs follow the input on the same axis
    np.testing.assert_allclose(y, p.target[:, 0])
    _, y = panel.teacher_forced_curve.getOriginalDataset()
    np.testing.assert_allclose(y, p.teacher_forced[:, 0])
    _, y = panel.free_running_curve.getOriginalDataset()
    np.testing.assert_allclose(y, p.free_running[:, 0])
    _, err = panel.free_running_error_curve.getOriginalDataset()
    np.testing.assert_allclose(err, [0.0, 0.5, 1.0, 1.5])
    _, err = panel.teacher_forced_error_curve.getOriginalDataset()
    np.testing.assert_allclose(err, 0.1)
    assert panel.separators[0].value() == pytest.approx(6.5)
    info = panel.info_label.text()
    assert "validation sample 3" in info and "epoch 2" in info and "run-a" in info
    assert panel.sample_index == 3
    assert not panel.feature_combo.isVisible()


def test_a_multi_feature_target_has_a_feature_selector(qtbot):
    panel = PredictionsPlot()
    qtbot.addWidget(panel)
    panel.show()
    p = _continuous(features=2)
    panel.show_prediction(p)
    assert panel.feature_combo.isVisible() and panel.feature_combo.count() == 2
    panel.feature_combo.setCurrentIndex(1)
    _, y = panel.target_curve.getOriginalDataset()
    np.testing.assert_allclose(y, p.target[:, 1])


def test_tokens_are_aligned_with_the_mismatches_in_red(qtbot):
    panel = PredictionsPlot()
    qtbot.addWidget(panel)
    panel.show_prediction(_tokens())
    assert panel.stack.currentWidget() is panel.tokens_page
    text = panel.token_view.toPlainText()
    for row in ("Input", "Target", "Teacher-forced", "Generated (free-running)"):
        assert row in text
    # the generated output: "x" wrong at step 2, and two steps never reached
    assert panel.mismatched_tokens("free_running") == ["x"]
    assert panel.mismatched_tokens("teacher_forced") == ["x"]
    html = panel.token_view.toHtml()
    assert html.lower().count(MISMATCH_COLOR.lower()) >= 4  # x, x, and two missing steps
    assert text.count(MISSING_TOKEN) == 2
    summary = panel.token_summary.text()
    assert "Generated: 3 of 5 target tokens wrong (not exact)" in summary
    assert "Teacher-forced: 1 of 5 wrong" in summary


def test_split_tokens_handles_joined_and_spaced_text():
    assert split_tokens("abc", np.array([1, 2, 3])) == ["a", "b", "c"]
    assert split_tokens("12 + 7", np.array([4, 5, 6])) == ["12", "+", "7"]
    assert split_tokens(None, np.array([4, 5])) == ["4", "5"]


def test_sample_spin_box_asks_for_another_sample(qtbot):
    panel = PredictionsPlot()
    qtbot.addWidget(panel)
    panel.set_sample_count(50)
    assert panel.count_label.text() == "of 50"
    with qtbot.waitSignal(panel.sample_changed) as signal:
        panel.set_sample(12)
    assert signal.args == [12]
    # showing a prediction moves the spin box without asking again
    asked = []
    panel.sample_changed.connect(asked.append)
    panel.show_prediction(_continuous(index=4))
    assert panel.sample_index == 4 and asked == []
    # a new run clears the old run's prediction
    panel.add_event(RunStarted("run-b", {}, 1, {}))
    assert panel.prediction is None and panel.stack.currentWidget() is panel.empty


@pytest.mark.parametrize("make", [_continuous, _tokens])
def test_export_png_and_svg(qtbot, tmp_path, make):
    panel = PredictionsPlot()
    qtbot.addWidget(panel)
    panel.show()
    panel.show_prediction(make())
    panel.export(tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes().startswith(b"\x89PNG")
    panel.export(tmp_path / "p.svg")
    assert "<svg" in (tmp_path / "p.svg").read_text()


# -- where predictions come from -------------------------------------------------------------

from tests.workbench.train_helpers import open_dataset, tiny_config, write_waves  # noqa: E402
from ui.plots.predictions_plot import (  # noqa: E402
    CheckpointPredictor,
    LivePrediction,
    LivePredictor,
)
from workbench.events import EpochMetrics, RecordingListener, StepMetrics  # noqa: E402


def _train(config, with_predictor: bool):
    from workbench.training import Trainer

    recorder = RecordingListener()
    predictor = LivePredictor(index=2)
    dataset = open_dataset(config)
    try:
        listeners = [recorder, predictor] if with_predictor else [recorder]
        trainer = Trainer(config, dataset, listeners, run_id="live", checkpointer=None)
        predictor.bind(recorder, trainer)  # predictions go down the same event stream
        trainer.run()
    finally:
        dataset.close()
    return recorder.events


def test_live_predictions_arrive_each_epoch_and_leave_training_unchanged(tmp_path):
    config = tiny_config(write_waves(tmp_path / "waves.h5"), epochs=2, steps=None)
    plain = _train(config, with_predictor=False)
    watched = _train(config, with_predictor=True)
    losses = [e.loss for e in plain if isinstance(e, StepMetrics)]
    assert [e.loss for e in watched if isinstance(e, StepMetrics)] == losses  # bit for bit
    live = [e for e in watched if isinstance(e, LivePrediction)]
    epochs = [e for e in watched if isinstance(e, EpochMetrics)]
    assert len(live) == 1 + len(epochs)  # at the start, then after every epoch
    assert [p.epoch for p in live[1:]] == [e.epoch for e in epochs]
    assert all(p.prediction.index == 2 and p.prediction.kind == "continuous" for p in live)
    assert "epoch 2" in live[-1].note
    # the panel shows what arrives in the event stream
    assert live[0].prediction.target.shape == (6, 1)


def _recorded_run(tmp_path):
    """(runs_dir, run_dir) of a one-epoch run recorded with its checkpoints."""
    from tests.workbench.train_helpers import record_run

    config = tiny_config(write_waves(tmp_path / "waves.h5"), epochs=1, steps=None)
    runs_dir = tmp_path / "runs"
    return runs_dir, record_run(config, runs_dir)


def test_checkpoint_predictor_predicts_off_the_gui_thread(qtbot, tmp_path):
    runs_dir, run_dir = _recorded_run(tmp_path)
    predictor = CheckpointPredictor(runs_dir)
    panel = PredictionsPlot()
    qtbot.addWidget(panel)
    predictor.predicted.connect(panel.show_prediction)
    try:
        with qtbot.waitSignal(predictor.predicted, timeout=30_000):
            predictor.request(run_dir.name, 1)
    finally:
        predictor.close()
    assert panel.prediction.index == 1 and panel.prediction.run_id == run_dir.name
    assert "checkpoint" in panel.info_label.text()


def test_checkpoint_predictions_follow_a_checkpoint_written_after_the_first(qtbot, tmp_path):
    """Regression: the predictor kept the model it loaded first for as long as the run
    id was the same, so a run resumed and trained further was still predicted with
    its old checkpoint."""
    import os

    import torch

    from workbench.runs import open_run

    runs_dir, run_dir = _recorded_run(tmp_path)
    predictor = CheckpointPredictor(runs_dir)
    shown: list[LivePrediction] = []
    predictor.predicted.connect(shown.append)
    try:
        with qtbot.waitSignal(predictor.predicted, timeout=30_000):
            predictor.request(run_dir.name, 1)
        # The run goes on (as a resumed run does) and writes a later checkpoint.
        run = open_run(run_dir.name, runs_dir)
        path = run.checkpoint_path("best" if run.checkpoint_path("best").is_file() else "latest")
        state = torch.load(path, weights_only=True)
        state["position"]["step"] = int(state["position"]["step"]) + 1000
        state["model"] = {k: v * 1.5 if v.is_floating_point() else v
                          for k, v in state["model"].items()}
        before = path.stat().st_mtime_ns
        torch.save(state, path.with_suffix(".tmp"))
        os.replace(path.with_suffix(".tmp"), path)
        os.utime(path, ns=(before + 1_000_000_000, before + 1_000_000_000))  # written later
        with qtbot.waitSignal(predictor.predicted, timeout=30_000):
            predictor.request(run_dir.name, 1)
    finally:
        predictor.close()
    first, second = shown
    assert second.step == first.step + 1000
    assert f"step {second.step:,}" in second.note
    assert not np.allclose(second.prediction.free_running, first.prediction.free_running)


def test_the_window_shows_live_predictions_gates_and_checkpoint_predictions(qtbot, tmp_path,
                                                                            monkeypatch):
    from tests.workbench.train_helpers import write_reverse
    from ui import errors
    from ui.main_window import MainWindow
    from ui.settings import AppSettings, open_settings

    monkeypatch.setattr(errors, "show_message", lambda *a, **k: pytest.fail(f"dialog: {a[1:]}"))
    window = MainWindow(AppSettings(open_settings(tmp_path / "settings.ini")),
                        runs_dir=tmp_path / "runs", load_dataset=False)
    qtbot.addWidget(window)
    window.show()
    assert window.open_dataset(write_reverse(tmp_path / "reverse.h5"))
    window.model_panel.set_values({"hidden": 8, "batch_size": 16, "epochs": 2, "cell": "lstm"})
    window.docks.predictions.raise_()
    window.train()
    qtbot.waitUntil(lambda: not window.session.is_running(), timeout=60_000)
    shown = window.predictions_plot.prediction
    assert shown is not None and shown.kind == "tokens"
    assert "epoch 2" in window.predictions_plot.info_label.text()
    window.docks.gates.raise_()
    qtbot.waitUntil(lambda: window.gates_plot.probe_count >= 1, timeout=5000)
    assert window.gates_plot.gates == ["i", "f", "o"]
    # after the run, another sample comes from its best checkpoint (a background thread)
    window.docks.predictions.raise_()
    window.predictions_plot.set_sample(3)
    qtbot.waitUntil(lambda: window.predictions_plot.prediction.index == 3, timeout=30_000)
    assert "checkpoint" in window.predictions_plot.info_label.text()
    window.close()
