"""The one place that starts, resumes and replays runs: no Qt, any thread.

    service = RunService(runs_dir)                      # None: the default runs folder
    active = service.start(config, [listener, ...])    # dataset open, folder made, Trainer built
    finished = active.run()                             # blocks; stop/pause from any thread
    active = service.resume(run_id, [listener], changes={"steps": 500})
    events = service.replay(run_id)                     # the recorded run as the same events

The CLI (`train`, `train --resume`), the comparison queue and the GUI all start their
runs here, so a run folder is written one way (docs/run-format.md). `start` and
`resume` open the dataset (unless `start` is given one already open), make the run
folder and its RunRecorder, and build the Trainer with its run id and the recorder as
its checkpointer. When any of that fails, they close what they opened, remove the
new run folder (it never took a step) and re-raise, so a refused start leaves
nothing behind. The listeners given are called after the recorder, in order, in the
thread that calls `ActiveRun.run()`.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from workbench.checkpoints import ResumeState
from workbench.config import RunConfig
from workbench.datasets import SequenceDataset
from workbench.errors import ConfigError, RunError
from workbench.events import Event, Listener, RunFinished
from workbench.run_layout import RUN_JSON, create_run_dir, runs_root
from workbench.runs import HEARTBEAT_SECONDS, RunRecorder, open_run
from workbench.training import CHECKPOINT_SECONDS, Trainer

# the RunConfig fields a resume may change: the budget, where the (same) data is now, and
# threads and device (the Trainer warns when these make the continuation not bit-identical)
RESUME_CHANGES = ("epochs", "steps", "data", "threads", "device")

log = logging.getLogger(__name__)


def open_run_data(config: RunConfig, data: str | Path | None = None) -> SequenceDataset:
    """Open the dataset a run config names (or `data` instead), with its split settings.

    ConfigError when the file does not exist; DatasetError (from the reader) when it
    is not a dataset the reader accepts.
    """
    path = Path(data or config.data)
    if not path.is_file():
        raise ConfigError(f"data file not found: {path}")
    return SequenceDataset.open(str(path), config.inputs, config.targets,
                                split_seed=config.split_seed, val_fraction=config.val_fraction)


def resume_config(config: RunConfig, changes: dict[str, Any]) -> RunConfig:
    """The config a resumed run trains with: the recorded one with `changes` applied.

    Only RESUME_CHANGES may change (ConfigError naming any other field). A new budget
    replaces the old one: steps alone drop the epoch budget and epochs alone the step
    budget. `data` is made absolute (the same data, moved).
    """
    unknown = sorted(set(changes) - set(RESUME_CHANGES))
    if unknown:
        raise ConfigError(
            f"a resumed run keeps its settings: {', '.join(unknown)} cannot change on resume "
            f"(only {', '.join(RESUME_CHANGES)})")
    budget = {k: changes[k] for k in ("epochs", "steps") if k in changes}
    if budget:
        if "steps" in budget and "epochs" not in budget:
            budget["epochs"] = None
        if "epochs" in budget and "steps" not in budget:
            budget["steps"] = None
        config = config.replace(**budget).validate()
    moved = {k: changes[k] for k in ("data", "threads", "device") if k in changes}
    if moved.get("data") is not None:
        moved["data"] = str(Path(moved["data"]).expanduser().resolve())
    if moved:
        config = config.replace(**moved)
    return config


class ActiveRun:
    """A run built and ready: `run()` trains it in the calling thread.

    The controls (`request_stop`, `request_pause`, `resume`) are thread-safe requests
    to the Trainer; they may come before `run()` starts. `trainer` is exposed for
    listeners that need the model between steps (the GUI's live predictions).
    """

    def __init__(self, trainer: Trainer, recorder: RunRecorder, run_dir: Path,
                 dataset: SequenceDataset | None, *, new: bool) -> None:
        self.trainer = trainer
        self.run_dir = run_dir
        self.run_id: str = trainer.run_id
        self.total_steps: int = trainer.total_steps
        self.warning: str = trainer.warning  # non-empty: a resume that is not bit-identical
        self._recorder = recorder
        self._dataset = dataset  # closed when the run ends: the service opened it
        self._new = new
        self._lock = threading.Lock()
        self._state = "ready"  # ready -> running -> done

    def run(self) -> RunFinished:
        """Train to the end (blocks); always closes the recorder and the dataset it owns."""
        with self._lock:
            if self._state != "ready":
                raise RunError(f"run {self.run_id} was already run or closed")
            self._state = "running"
        try:
            return self.trainer.run()
        finally:
            self._release()

    def close(self) -> None:
        """Release what start or resume opened without running (nothing to do after
        `run()`). A new run's folder, which holds nothing yet, is removed."""
        with self._lock:
            if self._state != "ready":
                return
            self._state = "done"
        self._release()
        if self._new and not (self.run_dir / RUN_JSON).exists():
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def _release(self) -> None:
        self._state = "done"
        try:
            self._recorder.close()
        except OSError:  # the run's end is reported all the same; metrics lost are logged
            log.exception("could not close the record of run %s", self.run_id)
        finally:
            if self._dataset is not None:
                self._dataset.close()

    # -- thread-safe controls -------------------------------------------------------------

    def request_stop(self) -> None:
        """Stop after the current step or validation batch (any thread)."""
        self.trainer.request_stop()

    def request_pause(self) -> None:
        """Pause between steps (any thread); `resume()` goes on."""
        self.trainer.request_pause()

    def resume(self) -> None:
        """Go on after a pause (any thread)."""
        self.trainer.resume()

    @property
    def stop_requested(self) -> bool:
        return self.trainer.stop_requested

    @property
    def paused(self) -> bool:
        """True while a pause has taken effect (not merely been requested)."""
        return self.trainer.paused


class RunService:
    """Starts, resumes and replays the runs of one runs directory (module docstring).

    `checkpoint_seconds` (how often `latest` is rewritten, besides every epoch) and
    `heartbeat_seconds` (how often status.json is) keep their defaults in the app;
    tests of crash safety make them shorter.
    """

    def __init__(self, runs_dir: str | Path | None = None, *,
                 checkpoint_seconds: float = CHECKPOINT_SECONDS,
                 heartbeat_seconds: float = HEARTBEAT_SECONDS) -> None:
        self.runs_dir: Path = runs_root(runs_dir)
        self.checkpoint_seconds = checkpoint_seconds
        self.heartbeat_seconds = heartbeat_seconds

    def _build(self, config: RunConfig, dataset: SequenceDataset, recorder: RunRecorder,
               listeners: Sequence[Listener], *, resume: ResumeState | None,
               thread_policy: str) -> Trainer:
        """The one Trainer construction of the project: the recorder first, then `listeners`."""
        return Trainer(config, dataset, [recorder, *listeners], run_id=recorder.run_id,
                       checkpointer=recorder, resume=resume, thread_policy=thread_policy,
                       checkpoint_seconds=self.checkpoint_seconds)

    def start(self, config: RunConfig, listeners: Sequence[Listener] = (), *,
              name: str | None = None, thread_policy: str = "cli",
              dataset: SequenceDataset | None = None) -> ActiveRun:
        """A new run of `config` in a new folder, ready to run.

        Opens `config.data` unless an open `dataset` is given (that one is left open,
        also when the run ends). `name` is the display name (default: cell, hidden and
        layers). On any failure (data, config, memory, the folder) nothing is left
        behind and the error is re-raised.
        """
        config = config.validate()
        with contextlib.ExitStack() as undo:
            owned = None
            if dataset is None:
                dataset = owned = open_run_data(config)
                undo.callback(owned.close)
            run_dir = create_run_dir(config.cell, self.runs_dir)
            undo.callback(shutil.rmtree, run_dir, ignore_errors=True)
            recorder = RunRecorder(run_dir, name=name, heartbeat_seconds=self.heartbeat_seconds)
            undo.callback(recorder.close)
            trainer = self._build(config, dataset, recorder, listeners, resume=None,
                                  thread_policy=thread_policy)
            undo.pop_all()
        return ActiveRun(trainer, recorder, run_dir, owned, new=True)

    def resume(self, run: str | Path, listeners: Sequence[Listener] = (), *,
               changes: dict[str, Any] | None = None, thread_policy: str = "cli") -> ActiveRun:
        """Continue a stopped or crashed run (an id in runs_dir, or a folder) from its
        latest checkpoint, in its own folder.

        `changes`: RunConfig fields to change (RESUME_CHANGES; see resume_config). With
        the recorded config, thread count and device, the continuation is bit-identical
        to a run never stopped; otherwise `ActiveRun.warning` says it is not.
        """
        recorded = open_run(run, self.runs_dir)
        state = recorded.resume_state()  # RunError unless stopped or crashed
        config = resume_config(recorded.config(), changes or {})
        with contextlib.ExitStack() as undo:
            dataset = open_run_data(config)
            undo.callback(dataset.close)
            recorder = RunRecorder(recorded.path, heartbeat_seconds=self.heartbeat_seconds)
            undo.callback(recorder.close)
            trainer = self._build(config, dataset, recorder, listeners, resume=state,
                                  thread_policy=thread_policy)
            undo.pop_all()
        return ActiveRun(trainer, recorder, recorded.path, dataset, new=False)

    def replay(self, run: str | Path) -> list[Event]:
        """A recorded run's history as the events its listeners received live: RunStarted,
        then steps, probes and epochs in the order sent, then RunFinished (none while the
        run is live elsewhere). Pause and listener notices are not recorded."""
        return list(open_run(run, self.runs_dir).events())

    def history_until(self, run: str | Path, step: int | None = None) -> list[Event]:
        """The replayed events up to `step` (default: the latest checkpoint's, where a
        resume goes on), without RunFinished: what the plots show before a resume."""
        recorded = open_run(run, self.runs_dir)
        if step is None:
            step = recorded.resume_state().step
        return [e for e in recorded.events()
                if not isinstance(e, RunFinished) and getattr(e, "step", 0) <= step]
