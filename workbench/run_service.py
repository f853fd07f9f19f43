"""TEMPORARY stand-in (replaced by the spine-core branch's run service at merge)."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any


class ActiveRun:
    def __init__(self, trainer: Any, dataset: Any, recorder: Any, run_dir: Path) -> None:
        self.trainer, self._dataset, self._recorder, self.run_dir = trainer, dataset, recorder, run_dir
        self.run_id = trainer.run_id

    def run(self):
        try:
            return self.trainer.run()
        finally:
            with contextlib.suppress(Exception):
                self._recorder.close()
            self._dataset.close()

    def request_stop(self) -> None:
        self.trainer.request_stop()

    def request_pause(self) -> None:
        self.trainer.request_pause()

    def resume(self) -> None:
        self.trainer.resume()


class RunService:
    def __init__(self, runs_dir: str | Path | None = None) -> None:
        from workbench.runs import default_runs_dir

        self.runs_dir = Path(runs_dir) if runs_dir is not None else default_runs_dir()

    def _open(self, config: Any) -> Any:
        from workbench.datasets import SequenceDataset

        return SequenceDataset.open(config.data, config.inputs, config.targets,
                                    split_seed=config.split_seed, val_fraction=config.val_fraction)

    def start(self, config: Any, listeners: Sequence[Any] = (), *, name: str | None = None,
              thread_policy: str = "cli", dataset: Any = None) -> ActiveRun:
        from workbench.runs import RunRecorder, create_run_dir
        from workbench.training import Trainer

        run_dir = create_run_dir(config.cell, self.runs_dir)
        dataset = None
        try:
            dataset = self._open(config)
            recorder = RunRecorder(run_dir, name=name)
            trainer = Trainer(config, dataset, [recorder, *listeners], run_id=run_dir.name,
                              thread_policy=thread_policy)
        except BaseException:
            if dataset is not None:
                dataset.close()
            if not (run_dir / "run.json").exists():
                shutil.rmtree(run_dir, ignore_errors=True)
            raise
        return ActiveRun(trainer, dataset, recorder, run_dir)

    def resume(self, run: str | Path, listeners: Sequence[Any] = (), *,
               changes: dict[str, Any] | None = None, thread_policy: str = "cli") -> ActiveRun:
        from workbench.runs import RunRecorder, open_run
        from workbench.training import Trainer

        recorded = open_run(run, self.runs_dir)
        state = recorded.resume_state()
        config = recorded.config()
        dataset = self._open(config)
        try:
            recorder = RunRecorder(recorded.path)
            trainer = Trainer(config, dataset, [recorder, *listeners], run_id=recorded.run_id,
                              resume=state, thread_policy=thread_policy)
        except BaseException:
            dataset.close()
            raise
        return ActiveRun(trainer, dataset, recorder, recorded.path)
