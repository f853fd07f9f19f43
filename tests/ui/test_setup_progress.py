"""A large file's set-up in the window: the training controls show the normalisation's
progress, and Stop there ends the set-up with nothing recorded and the controls ready."""

from __future__ import annotations

import threading

import h5py

from ui.controls import TrainingControls
from ui.sessions import TrainingSession
from workbench import training
from workbench.config import RunConfig
from workbench.events import PhaseProgress
from workbench.run_service import RunService


class HoldAtPhase:
    """Holds the training thread at the first normalisation progress until released (so
    the test's Stop arrives during the set-up, whatever the machine's speed)."""

    def __init__(self) -> None:
        self.reached, self.release = threading.Event(), threading.Event()

    def on_event(self, event) -> None:
        if isinstance(event, PhaseProgress) and not self.reached.is_set():
            self.reached.set()
            self.release.wait(20)


def test_stop_during_the_set_up_shows_progress_and_leaves_nothing(qtbot, tmp_path, monkeypatch):
    monkeypatch.setattr(training, "PHASE_QUIET_SECONDS", 0.0)
    data = tmp_path / "large.h5"
    with h5py.File(data, "w") as f:  # 3,000,000 sequences, never written: instant
        f.create_dataset("x", shape=(3_000_000, 20, 1), dtype="f4", chunks=True)
        f.create_dataset("y", shape=(3_000_000, 5, 1), dtype="f4", chunks=True)
    config = RunConfig(data=str(data), inputs="/x", targets="/y", cell="gru", hidden=8,
                       epochs=None, steps=100_000, threads=1).validate()
    runs, hold = tmp_path / "runs", HoldAtPhase()
    session = TrainingSession()
    controls = TrainingControls(session)
    qtbot.addWidget(controls)
    session.start(lambda sink: RunService(runs).start(config, [sink, hold], thread_policy="gui"))
    assert hold.reached.wait(60)
    qtbot.waitUntil(lambda: "normalisation statistics" in controls.progress.format(),
                    timeout=10_000)
    assert controls.progress.maximum() == 1_000_000  # the sample's rows
    session.stop()
    hold.release.set()
    qtbot.waitUntil(lambda: session.state == "idle", timeout=20_000)
    assert controls.progress.format() == "Ready to train" and controls.train_action.isEnabled()
    assert list(runs.iterdir()) == []
