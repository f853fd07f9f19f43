"""Tiny datasets and configs for the training, run and CLI tests (fast on 2 cores)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import torch

from workbench.config import RunConfig
from workbench.datasets import SequenceDataset
from workbench.events import StepMetrics

VOCAB = ("<pad>", "<s>", "</s>", "a", "b", "c", "d", "e")


def write_waves(path: Path, n: int = 96, t_in: int = 12, t_out: int = 6, seed: int = 0) -> Path:
    """Continuous data: continue a noisy sine wave (inputs (n, t_in, 1), targets (n, t_out, 1))."""
    rng = np.random.default_rng(seed)
    t = np.arange(t_in + t_out) * 0.4
    phase = rng.uniform(0, 2 * np.pi, (n, 1))
    freq = rng.uniform(0.6, 1.4, (n, 1))
    wave = (np.sin(freq * t[None, :] + phase) * 3.0 + 10.0).astype(np.float32)[..., None]
    with h5py.File(path, "w") as f:
        f["inputs"] = wave[:, :t_in]
        f["targets"] = wave[:, t_in:]
    return path


def write_reverse(path: Path, n: int = 96, length: int = 5, seed: int = 0) -> Path:
    """Token data: targets are the inputs reversed, then the end id."""
    rng = np.random.default_rng(seed)
    x = rng.integers(3, len(VOCAB), size=(n, length)).astype(np.int64)
    y = np.concatenate([x[:, ::-1], np.full((n, 1), 2)], axis=1).astype(np.int64)
    with h5py.File(path, "w") as f:
        f["inputs"] = x
        f["targets"] = y
        f["vocab"] = np.array(VOCAB, dtype=h5py.string_dtype())
    return path


def tiny_config(data: Path, **changes) -> RunConfig:
    """A run that takes well under a second: hidden 8, batch 16, 12 steps."""
    base = dict(data=str(data), cell="gru", hidden=8, batch_size=16, epochs=None, steps=12,
                lr=0.01, probe_batch=8, probe_samples=2, val_fraction=0.2, threads=1)
    base.update(changes)
    return RunConfig(**base).validate()


def open_dataset(config: RunConfig) -> SequenceDataset:
    return SequenceDataset.open(config.data, config.inputs, config.targets,
                                split_seed=config.split_seed, val_fraction=config.val_fraction,
                                safe_check=False)


def state_equal(a: dict, b: dict) -> bool:
    """Two model state dicts hold the same tensors, bit for bit."""
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class StopAt:
    """A listener that asks its run (an ActiveRun or a Trainer, set as `run`) to stop
    once step `step` is done."""

    def __init__(self, step: int, run=None) -> None:
        self.step, self.run = step, run

    def on_event(self, event) -> None:
        if isinstance(event, StepMetrics) and event.step == self.step:
            self.run.request_stop()


def record_run(config: RunConfig, runs_dir: Path, listeners=(), *, stop_at: int | None = None,
               **service) -> Path:
    """Train `config` as the app does (workbench.run_service) into a new folder of
    `runs_dir`, stopped after step `stop_at` when given; the run's folder.

    The dataset is opened here without the safe-open child (the tests' own files), and
    handed to the service as the comparison queue does.
    """
    from workbench.run_service import RunService

    stopper = [StopAt(stop_at)] if stop_at else []
    with open_dataset(config) as dataset:
        active = RunService(runs_dir, **service).start(config, [*listeners, *stopper],
                                                       dataset=dataset)
        for listener in stopper:
            listener.run = active
        active.run()
    return active.run_dir


def crash_child(data: str, runs_dir: str, resume: str | None = None, budget: int = 10**9) -> None:
    """Train until killed (the SIGKILL test's child): a new run, or `resume` a crashed one,
    through the run service as the CLI does.

    Checkpoints every 0.3 s (the run's checkpoint_seconds) and flushes as usual, so kills
    land in every kind of write.
    """
    from workbench.run_service import RunService

    torch.set_num_threads(1)
    service = RunService(runs_dir, heartbeat_seconds=0.5)
    if resume:
        active = service.resume(resume, changes={"steps": budget})
    else:
        active = service.start(tiny_config(Path(data), steps=budget, probe_every=None,
                                           checkpoint_seconds=0.3))
    active.run()


if __name__ == "__main__":
    import sys

    if sys.argv[1] == "crash-child":
        crash_child(sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 and sys.argv[4] != "-" else None,
                    int(sys.argv[5]) if len(sys.argv) > 5 else 10**9)
