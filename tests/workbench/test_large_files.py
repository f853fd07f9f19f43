"""A file of millions of sequences: a bounded, seeded normalisation sample (its size
recorded), validation on a fixed subset, progress for the long phases, and Stop (or a
Ctrl-C) honoured within one block or batch, before the first step too."""

from __future__ import annotations

import os
import signal

import h5py
import pytest

from workbench import training
from workbench.cli import main
from workbench.cli.train import ConsoleProgress
from workbench.config import RunConfig
from workbench.datasets import NORMALIZATION_ROWS, SequenceDataset
from workbench.events import PhaseProgress, RecordingListener, RunFinished, RunStarted
from workbench.run_service import RunService
from workbench.runs import list_runs, open_run


@pytest.fixture(scope="module")
def large(tmp_path_factory):
    """3,000,000 sequences, chunked and never written (HDF5 serves fill values): an
    instant file of 300 MB declared."""
    path = tmp_path_factory.mktemp("large") / "large.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", shape=(3_000_000, 20, 1), dtype="f4", chunks=True)
        f.create_dataset("y", shape=(3_000_000, 5, 1), dtype="f4", chunks=True)
    return path


def _config(path, **changes) -> RunConfig:
    base = dict(data=str(path), inputs="/x", targets="/y", cell="gru", hidden=8, batch_size=16,
                epochs=None, steps=2, probe_batch=8, probe_samples=2, threads=1,
                val_subset=300)
    base.update(changes)
    return RunConfig(**base).validate()


def _start(config, runs, listeners=()):
    dataset = SequenceDataset.open(config.data, config.inputs, config.targets, safe_check=False)
    return dataset, RunService(runs).start(config, listeners, dataset=dataset)


class StopAtPhase:
    """Asks the run to stop at the first progress of `phase`."""

    def __init__(self, phase: str) -> None:
        self.phase, self.active, self.seen = phase, None, []

    def on_event(self, event) -> None:
        if isinstance(event, PhaseProgress):
            self.seen.append(event)
            if event.phase == self.phase:
                self.active.request_stop()


def test_a_large_file_normalises_from_a_bounded_sample_and_validates_a_fixed_subset(
        large, tmp_path):
    config = _config(large)
    dataset, active = _start(config, tmp_path)
    with dataset:
        assert len(active.trainer.val_scored) == 300 and len(active.trainer.val_split) == 300_000
        assert active.run().status == "completed"
        default = RunService(tmp_path / "default").start(config.replace(val_subset=20000),
                                                         dataset=dataset)
        assert len(default.trainer.val_scored) == 20000 == RunConfig().val_subset
        default.close()
    run = open_run(active.run_dir)
    norm = run.meta["normalization"]
    assert norm["rows"] == NORMALIZATION_ROWS == 1_000_000 and norm["train_rows"] == 2_700_000
    assert [e.step for e in run.epoch_metrics()] == [2]
    assert run.config().val_subset == 300


def test_stop_during_normalisation_ends_the_set_up_and_leaves_no_folder(large, tmp_path,
                                                                        monkeypatch):
    monkeypatch.setattr(training, "PHASE_QUIET_SECONDS", 0.0)  # progress from the first block
    stopper = StopAtPhase("normalisation")
    dataset, active = _start(_config(large), tmp_path, [stopper])
    stopper.active = active
    with dataset:
        finished = active.run()
    assert finished.status == "stopped" and "set-up" in finished.message
    assert [(e.done, e.total) for e in stopper.seen] == [(0, NORMALIZATION_ROWS)]  # one block
    assert list(tmp_path.iterdir()) == []


def test_stop_during_validation_takes_effect_at_the_next_batch(large, tmp_path, monkeypatch):
    monkeypatch.setattr(training, "PHASE_QUIET_SECONDS", 0.0)
    stopper, recording = StopAtPhase("validation"), RecordingListener()
    dataset, active = _start(_config(large, val_subset=3000), tmp_path, [stopper, recording])
    stopper.active = active
    with dataset:
        finished = active.run()
    assert finished.status == "stopped" and finished.step == 2
    validation = [e for e in stopper.seen if e.phase == "validation"]
    assert [(e.done, e.total, e.unit) for e in validation] == [(0, 188, "batches")]
    assert isinstance(recording.events[0], PhaseProgress)  # the set-up showed its progress
    assert any(isinstance(e, RunStarted) for e in recording.events)
    assert isinstance(recording.events[-1], RunFinished)
    run = open_run(active.run_dir)
    assert run.epoch_metrics() == [] and run.status == "stopped"
    assert run.load_checkpoint()["position"] == {"step": 2, "epoch": 1, "batch": 2,
                                                 "validated": False}


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_during_set_up_leaves_no_orphan_folder(large, tmp_path, monkeypatch, capsys,
                                                      presses):
    """A Ctrl-C (SIGINT, through the CLI's own handler) when the normalisation's progress
    shows: one stops the set-up (nothing recorded, exit 0); a second interrupts at once
    (exit 130). Either way no run folder is left."""
    monkeypatch.setattr(training, "PHASE_QUIET_SECONDS", 0.0)
    shown, sent = ConsoleProgress.on_event, [0]

    def press_ctrl_c(self, event) -> None:
        if sent[0] == 0 and isinstance(event, PhaseProgress) and event.phase == "normalisation":
            shown(self, event)
            for _ in range(presses):
                sent[0] += 1
                os.kill(os.getpid(), signal.SIGINT)
                for _ in range(1000):  # the handler runs before the next press
                    pass
            return
        shown(self, event)

    monkeypatch.setattr(ConsoleProgress, "on_event", press_ctrl_c)
    runs = tmp_path / "runs"
    code = main(["train", "--data", str(large), "--inputs", "/x", "--targets", "/y", "--cell",
                 "gru", "--hidden", "8", "--steps", "1000000", "--threads", "1",
                 "--runs-dir", str(runs)])
    captured = capsys.readouterr()
    assert sent[0] == presses and "Traceback" not in captured.err
    if presses == 1:
        assert code == 0
        assert "stopped during set-up" in captured.out and "nothing was recorded" in captured.out
    else:
        assert code == 130 and captured.err.strip().splitlines()[-1] == "interrupted"
    assert list(runs.iterdir()) == [] and list_runs(runs) == []
