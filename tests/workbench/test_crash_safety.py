"""Crash safety, measured: SIGKILL at seeded random moments, failed writes, hostile files."""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.workbench.train_helpers import write_waves
from workbench.errors import CheckpointError, OutputError
from workbench.events import RecordingListener, RunFinished, StepMetrics
from workbench.runs import (
    RunRecorder,
    create_run_dir,
    list_runs,
    load_checkpoint,
    open_run,
    read_jsonl,
)

REPO = Path(__file__).resolve().parents[2]


def _child(data: Path, runs_dir: Path, resume: str | None, budget: int | None = None):
    args = [sys.executable, "-m", "tests.workbench.train_helpers", "crash-child", str(data),
            str(runs_dir), resume or "-"] + ([str(budget)] if budget else [])
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def _wait_until_training(proc, runs_dir: Path, timeout: float = 90.0) -> Path:
    """The run folder once this child has written its status and taken a few steps."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"child ended early: {proc.stderr.read().decode()[-2000:]}")
        for run_dir in runs_dir.glob("*"):
            try:
                status = json.loads((run_dir / "status.json").read_text())
            except (OSError, ValueError):
                continue
            if status.get("pid") == proc.pid:
                return run_dir
        time.sleep(0.05)
    raise AssertionError("the child never started training")


def _check_reopens(run_dir: Path) -> int:
    """A killed run reopens: contiguous metrics, a loadable checkpoint, status crashed; and
    the kill lost at most checkpoint_seconds plus the longest step of training, measured
    from the records (the last step's `seconds` against the checkpoint's)."""
    run = open_run(run_dir)
    assert run.status == "crashed"
    assert open_run(run_dir, stale_after=1e9).status == "crashed"  # its process is gone
    records = run.step_metrics()
    steps = [s.step for s in records]
    assert steps == list(range(1, len(steps) + 1))  # every step up to the last flush, once
    state = run.load_checkpoint("latest")
    times = [0.0] + [s.seconds for s in records]
    longest = max(b - a for a, b in zip(times, times[1:]))
    interval = run.config().checkpoint_seconds
    assert interval == 0.3
    lost = records[-1].seconds - state["trainer"]["seconds"]
    assert lost <= interval + longest, (lost, interval, longest)
    model, _, _ = run.load_model("latest")
    assert all(torch.isfinite(p).all() for p in model.parameters())
    # metrics are flushed before each checkpoint is written: none missing before it
    assert state["position"]["step"] <= len(steps)
    for record in read_jsonl(run_dir / "metrics.jsonl"):
        if record["type"] == "probe":
            assert (run_dir / record["file"]).is_file()
    replayed = RecordingListener()
    run.replay(replayed)
    assert replayed.of_type(RunFinished)[-1].status == "crashed"
    return int(state["position"]["step"])


@pytest.mark.slow
def test_sigkill_at_random_moments_leaves_a_run_that_reopens_and_resumes(tmp_path):
    data = write_waves(tmp_path / "waves.h5", n=200)
    runs_dir = tmp_path / "runs"
    rng = random.Random(20261125)  # the kill moments are drawn, and repeatable
    run_id = None
    checkpoint_steps = []
    for _ in range(3):
        proc = _child(data, runs_dir, run_id)
        try:
            run_dir = _wait_until_training(proc, runs_dir)
            time.sleep(rng.uniform(0.1, 1.5))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        run_id = run_dir.name
        checkpoint_steps.append(_check_reopens(run_dir))
    assert [info.status for info in list_runs(runs_dir)] == ["crashed"]
    # the crashed run resumes as the same run and finishes with no step twice
    budget = checkpoint_steps[-1] + 15
    proc = _child(data, runs_dir, run_id, budget=budget)
    assert proc.wait(timeout=120) == 0, proc.stderr.read().decode()[-2000:]
    run = open_run(runs_dir / run_id)
    assert run.status == "completed"
    assert [s.step for s in run.step_metrics()] == list(range(1, budget + 1))


def test_metrics_are_flushed_at_least_every_50_steps(tmp_path):
    run_dir = create_run_dir("gru", tmp_path)
    recorder = RunRecorder(run_dir, flush_seconds=1e9)
    from tests.workbench.test_runs import _started

    recorder.on_event(_started(run_dir.name))
    for step in range(1, 101):
        recorder.on_event(StepMetrics(step, 1, 1.0, 1.0, 0.1, 1.0, 1.0, 0.1, step))
        on_disk = len(read_jsonl(run_dir / "metrics.jsonl"))
        assert step - on_disk < 50
    recorder.close()


def test_a_write_that_fails_midway_leaves_the_previous_checkpoint_loadable(tmp_path, monkeypatch):
    run_dir = create_run_dir("gru", tmp_path)
    recorder = RunRecorder(run_dir)
    recorder.save_checkpoint("latest", {"model": {"w": torch.ones(3)}, "step": 1})

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OutputError, match="latest.pt: No space left on device .the disk is full"):
        recorder.save_checkpoint("latest", {"model": {"w": torch.zeros(3)}, "step": 2})
    monkeypatch.undo()
    state = load_checkpoint(run_dir / "checkpoints" / "latest.pt")
    assert state["step"] == 1 and torch.equal(state["model"]["w"], torch.ones(3))
    assert os.listdir(run_dir / "checkpoints") == ["latest.pt"]  # no temporary left


class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_crafted_checkpoint_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "payload": _Evil(str(marker))}, path)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path)
    assert not marker.exists()
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "junk.pt")
