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

Before any training, for a new run and a resume alike:

- the runs directory and the run folder (its checkpoints/ and probes/, its metrics)
  must be writable: OutputError naming the folder, not a traceback after training;
- the run's lock (workbench.run_lock) is taken, and held until the run ends: a second
  trainer or resume of the same run is refused with the PID that holds it;
- a resume compares the data's fingerprint (SequenceDataset.fingerprint: size, shapes,
  a hash of each array's first and last blocks) with the one the run recorded: other
  content is refused showing both, unless `allow_data_change` (recorded in the run's
  history); a moved or copied file with the same content is the same data;
- a resume may change only RESUME_CHANGES; the changes are recorded in the run's
  history (run.json's new segment, a `resumed` record in metrics.jsonl) and given back
  as `ActiveRun.changes` (the CLI prints them). A completed run goes on when the new
  budget is larger than what it has trained.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from workbench.checkpoints import ResumeState
from workbench.config import RunConfig
from workbench.datasets import (
    SequenceDataset,
    describe_fingerprint,
    fingerprint_differs,
)
from workbench.disk import disk_error_text
from workbench.errors import ConfigError, OutputError, RunError
from workbench.events import Event, Listener, RunFinished
from workbench.run_layout import (
    CHECKPOINTS_DIR,
    METRICS_JSONL,
    PROBES_DIR,
    RUN_JSON,
    create_run_dir,
    resolve_run_dir,
    runs_root,
)
from workbench.run_lock import RunLock, check_unlocked
from workbench.runs import HEARTBEAT_SECONDS, RESUMABLE_STATUSES, Run, RunRecorder, open_run
from workbench.training import Trainer

# The RunConfig fields a resume may change: the budget, the optimizer's step size and
# clipping, early stopping, the probes, the validation subset, checkpoints, where the
# (same) data is now, threads and device (the Trainer warns when these make the
# continuation not bit-identical). Every other field (the model's shape and init, the
# data layout and split, the batch, the seeds, the optimizer) is the run's for good.
RESUME_CHANGES = ("epochs", "steps", "lr", "clip", "patience", "probe_every", "probe_batch",
                  "probe_samples", "val_subset", "checkpoint_seconds", "data", "threads",
                  "device")

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

    Only RESUME_CHANGES may change (ConfigError naming any other field and what may).
    A new budget replaces the old one: steps alone drop the epoch budget and epochs
    alone the step budget. `data` is made absolute (the same data, moved).
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
    others = {k: v for k, v in changes.items() if k not in ("epochs", "steps")}
    if others.get("data") is not None:
        others["data"] = str(Path(others["data"]).expanduser().resolve())
    if others:
        config = config.replace(**others)
    return config


def config_changes(before: RunConfig, after: RunConfig) -> dict[str, list[Any]]:
    """{field: [old, new]} for every field that differs (None: off)."""
    return {name: [getattr(before, name), getattr(after, name)]
            for name in RESUME_CHANGES if getattr(before, name) != getattr(after, name)}


def check_writable(folder: Path, *, what: str) -> None:
    """OutputError naming `folder` unless a file can be made in it (and removed): the
    honest test of write access, which root's ignored file modes, read-only mounts and
    ACLs all answer (os.access does not)."""
    try:
        fd, name = tempfile.mkstemp(prefix=".write-check.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise OutputError(f"{what} is not writable: {disk_error_text(exc, folder)}") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(name)


def check_run_folder_writable(run_dir: Path) -> None:
    """Everything a resume writes: the runs directory the run is in, the run folder, its
    checkpoints and probes folders, and its metrics (opened for appending, nothing
    written)."""
    runs_dir = run_dir.resolve().parent
    check_writable(runs_dir, what=f"the runs directory {runs_dir}")
    check_writable(run_dir, what=f"the run folder {run_dir}")
    for sub in (CHECKPOINTS_DIR, PROBES_DIR):
        if (run_dir / sub).is_dir():
            check_writable(run_dir / sub, what=f"the run folder {run_dir / sub}")
    metrics = run_dir / METRICS_JSONL
    if metrics.exists():
        try:
            with open(metrics, "ab"):
                pass
        except OSError as exc:
            raise OutputError(f"the run's metrics are not writable: "
                              f"{disk_error_text(exc, metrics)}") from None


class ActiveRun:
    """A run built and ready: `run()` trains it in the calling thread.

    The controls (`request_stop`, `request_pause`, `resume`) are thread-safe requests
    to the Trainer; they may come before `run()` starts. `trainer` is exposed for
    listeners that need the model between steps (the GUI's live predictions).
    `changes` ({field: [old, new]}) and `notes` (one line each: what a resume changed,
    the data it was allowed to change) say how a resume differs from the run so far.
    `failure` after run(): why a failed run failed, as the one-line WorkbenchError to
    report (a full disk, memory, a changed data file), else None.
    """

    def __init__(self, trainer: Trainer, recorder: RunRecorder, run_dir: Path,
                 dataset: SequenceDataset | None, *, new: bool, lock: RunLock,
                 changes: dict[str, list[Any]] | None = None,
                 notes: Sequence[str] = ()) -> None:
        self.trainer = trainer
        self.run_dir = run_dir
        self.run_id: str = trainer.run_id
        self.total_steps: int = trainer.total_steps
        self.warning: str = trainer.warning  # non-empty: a resume that is not bit-identical
        self.changes = dict(changes or {})
        self.notes = list(notes)
        self._recorder = recorder
        self._dataset = dataset  # closed when the run ends: the service opened it
        self._new = new
        self._run_lock = lock
        self._lock = threading.Lock()
        self._state = "ready"  # ready -> running -> done

    @property
    def failure(self) -> Any:
        return self.trainer.failure

    def run(self) -> RunFinished:
        """Train to the end (blocks); always closes the recorder and the dataset it owns
        and lets go of the run's lock. A new run stopped (or interrupted) before its
        first record leaves no folder."""
        with self._lock:
            if self._state != "ready":
                raise RunError(f"run {self.run_id} was already run or closed")
            self._state = "running"
        try:
            return self.trainer.run()
        finally:
            self._release()
            self._remove_if_empty()

    def close(self) -> None:
        """Release what start or resume opened without running (nothing to do after
        `run()`). A new run's folder, which holds nothing yet, is removed."""
        with self._lock:
            if self._state != "ready":
                return
            self._state = "done"
        self._release()
        self._remove_if_empty()

    def _remove_if_empty(self) -> None:
        if self._new and not (self.run_dir / RUN_JSON).exists():
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def _release(self) -> None:
        self._state = "done"
        try:
            self._recorder.close()
        except OSError:  # the run's end is reported all the same; metrics lost are logged
            log.info("could not close the record of run %s", self.run_id, exc_info=True)
        finally:
            self._run_lock.release()
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

    `checkpoint_seconds` (how often `latest` is rewritten, besides every epoch; None:
    the config's `checkpoint_seconds`) and `heartbeat_seconds` (how often status.json
    is) keep their defaults in the app; tests of crash safety make them shorter.
    """

    def __init__(self, runs_dir: str | Path | None = None, *,
                 checkpoint_seconds: float | None = None,
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
        also when the run ends). `name` is the display name (default: cell, hidden,
        dataset and seed, made unique in the runs directory: workbench.runs). On any
        failure (data, config, memory, the folder) nothing is left behind and the error
        is re-raised.
        """
        config = config.validate()
        self._check_runs_dir()
        with contextlib.ExitStack() as undo:
            owned = None
            if dataset is None:
                dataset = owned = open_run_data(config)
                undo.callback(owned.close)
            run_dir = create_run_dir(config.cell, self.runs_dir)
            undo.callback(shutil.rmtree, run_dir, ignore_errors=True)
            lock = RunLock.acquire(run_dir)
            undo.callback(lock.release)
            recorder = RunRecorder(run_dir, name=name, heartbeat_seconds=self.heartbeat_seconds,
                                   fingerprint=dataset.fingerprint())
            undo.callback(recorder.close)
            trainer = self._build(config, dataset, recorder, listeners, resume=None,
                                  thread_policy=thread_policy)
            undo.pop_all()
        return ActiveRun(trainer, recorder, run_dir, owned, new=True, lock=lock)

    def _check_runs_dir(self) -> None:
        """OutputError naming the runs directory when no run folder can be made in it."""
        root = self.runs_dir
        if root.exists() and not root.is_dir():
            raise OutputError(f"the runs directory {root} is not a folder")
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot make the runs directory: "
                              f"{disk_error_text(exc, root)}") from None
        check_writable(root, what=f"the runs directory {root}")

    def resume(self, run: str | Path, listeners: Sequence[Listener] = (), *,
               changes: dict[str, Any] | None = None, thread_policy: str = "cli",
               allow_data_change: bool = False, name: str | None = None) -> ActiveRun:
        """Continue a stopped, crashed or failed run (an id in runs_dir, or a folder) from
        its latest checkpoint, in its own folder; a completed one when `changes` give it
        a larger budget.

        `changes`: RunConfig fields to change (RESUME_CHANGES; see resume_config). With
        the recorded config, thread count and device, the continuation is bit-identical
        to a run never stopped; otherwise `ActiveRun.warning` says it is not. Refused
        before anything is written (the folder stays as it was): a folder that is not
        writable, a run another process trains, data whose fingerprint differs from
        the recorded one (unless `allow_data_change`). `name` renames the run.
        """
        run_dir = resolve_run_dir(run, self.runs_dir)
        check_run_folder_writable(run_dir)
        with contextlib.ExitStack() as undo:
            lock = RunLock.acquire(run_dir)
            undo.callback(lock.release)
            recorded = open_run(run_dir, self.runs_dir)
            before = recorded.config()
            config = resume_config(before, changes or {})
            state = self._resume_state(recorded, before, config)
            dataset = open_run_data(config)
            undo.callback(dataset.close)
            recorder = RunRecorder(run_dir, name=name, heartbeat_seconds=self.heartbeat_seconds)
            undo.callback(recorder.close)
            # built first: data its model cannot read at all is refused as such
            trainer = self._build(config, dataset, recorder, listeners, resume=state,
                                  thread_policy=thread_policy)
            recorder.fingerprint = dataset.fingerprint()
            notes, history = self._data_check(recorded, recorder.fingerprint, allow_data_change)
            moved = config_changes(before, config)
            if moved:
                history["changes"] = moved
                notes.insert(0, "resumed with " + ", ".join(
                    f"{name} {_shown(old)} -> {_shown(new)}" for name, (old, new) in moved.items()))
            recorder.resumed = history or None
            undo.pop_all()
        return ActiveRun(trainer, recorder, run_dir, dataset, new=False, lock=lock,
                         changes=moved, notes=notes)

    @staticmethod
    def _resume_state(recorded: Run, before: RunConfig, config: RunConfig) -> ResumeState:
        """The latest checkpoint to go on from: RunError unless the run can be resumed
        (a completed run only with a budget beyond what it trained)."""
        status = recorded.status
        if status in RESUMABLE_STATUSES:
            state = recorded.resume_state()
            done = int(state.checkpoint["position"]["step"])
            if config.steps is not None and config.steps < done:
                raise RunError(f"run {recorded.run_id} has trained {done} steps: --steps "
                               f"{config.steps} would not train it further")
            return state
        if status != "completed":
            raise RunError(f"run {recorded.run_id} is {status}: only a stopped, crashed or "
                           f"failed run can be resumed (or a completed one given a larger "
                           f"--steps or --epochs)")
        state = ResumeState.from_checkpoint(recorded.load_checkpoint("latest"))
        position = state.checkpoint["position"]
        beyond = (config.steps is not None and config.steps > int(position["step"])) or (
            config.epochs is not None and config.epochs > int(position["epoch"]))
        if not beyond:
            raise RunError(
                f"run {recorded.run_id} is completed ({position['step']} steps, "
                f"{position['epoch']} epochs): give a larger --steps or --epochs to train "
                f"it further")
        return state

    @staticmethod
    def _data_check(recorded: Run, now: dict[str, Any],
                    allow: bool) -> tuple[list[str], dict[str, Any]]:
        """(notes, history) of comparing the data with the run's recorded fingerprint;
        RunError showing both when they differ and a change is not allowed."""
        before = recorded.meta.get("data")
        if not isinstance(before, dict) or not fingerprint_differs(before, now):
            return [], {}
        if not allow:
            raise RunError(
                f"the data differs from what run {recorded.run_id} trained on: it trained on "
                f"{describe_fingerprint(before)}, this is {describe_fingerprint(now)}; "
                f"--allow-data-change goes on with it anyway")
        return ([f"the data changed (allowed): it was {describe_fingerprint(before)}, "
                 f"it is {describe_fingerprint(now)}"],
                {"data_changed": {"from": before, "to": now}})

    def replay(self, run: str | Path) -> list[Event]:
        """A recorded run's history as the events its listeners received live: RunStarted,
        then steps, probes and epochs in the order sent, then RunFinished (none while the
        run is live elsewhere). Pause and listener notices are not recorded."""
        return list(open_run(run, self.runs_dir).events())

    def history_until(self, run: str | Path, step: int | None = None) -> list[Event]:
        """The replayed events up to `step` (default: the latest checkpoint's, where a
        resume goes on), without RunFinished: what the plots show before a resume. For a
        resume, RunError (naming the PID) when another trainer holds the run."""
        recorded = open_run(run, self.runs_dir)
        if step is None:
            check_unlocked(recorded.path)
            step = recorded.resume_state().step
        return [e for e in recorded.events()
                if not isinstance(e, RunFinished) and getattr(e, "step", 0) <= step]


def _shown(value: Any) -> str:
    return "off" if value is None else f"{value:g}" if isinstance(value, float) else str(value)
