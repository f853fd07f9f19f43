"""The local engine of sweeps and comparisons: a list of runs, in turn or in child processes.

    engine = LocalEngine(runs_dir, workers=1, listeners=[...])
    engine.run(jobs, callbacks)     # blocks; engine.request_cancel() from any thread

Every run starts through workbench.run_service.RunService (a new run, or the resume of a
stopped one), so a sweep's run folders are written as any run's. The engine knows
nothing of grids: `workbench.sweeps` (a grid over any setting) and
`workbench.compare.ComparisonRunner` (cells x seeds) make the jobs and keep the records;
the engine tells them, through `callbacks`, when each run starts and how it ended.

- One run that cannot start (a setting refused, too big for memory, a file missing) or
  that fails or diverges is an outcome like any other; the next job starts.
- `request_cancel()` stops the runs in progress (each ends "stopped", with its
  checkpoint, so it can be resumed) and starts no other; the jobs not started end
  "skipped".
- `workers=1` (the default) runs the jobs one after another in the calling thread; the
  run's own events go to `listeners`, and `current_trainer` is the one training.
- `workers=N` runs N at once in child processes (forked from a fork server, or
  spawned: nothing of the parent's threads or of a GUI is inherited). Each child trains one run at a time with its
  share of the cores as torch threads (`worker_threads`); the parent alone writes the
  records. Only the start and end of each run come back to the parent, not its steps.
  A run is a function of its config alone (seeded weights, data order, teacher forcing),
  so with the same thread count a run is bit-identical however many workers there are.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import queue
import signal
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from workbench.config import RunConfig, resolve_threads
from workbench.errors import ConfigError, WorkbenchError
from workbench.events import Listener, StepMetrics

log = logging.getLogger(__name__)

POLL_SECONDS = 0.2  # how often the parent looks at its children's news
MAX_WORKERS = 64


@dataclass(frozen=True)
class EngineJob:
    """One run to train: `index` in the caller's plan, its config and display name, and
    `resume`, the id of a stopped or crashed run to continue instead of a new one."""

    index: int
    config: RunConfig
    name: str
    resume: str | None = None


@dataclass(frozen=True)
class JobOutcome:
    """How a job ended: a RunFinished status (completed, stopped, diverged, failed), or
    "failed" with no run id when it could not start, or "skipped" (cancelled first)."""

    index: int
    run_id: str | None
    status: str
    message: str = ""


class EngineCallbacks(Protocol):
    """What the engine tells its caller, in the caller's thread, in order per job. A
    caller may also have `job_progress(job, run_id, step, total_steps)`: the step of a
    run training elsewhere (a child process, a Ray worker), read from its run folder's
    status.json (ProgressWatch), about once a second."""

    def job_started(self, job: EngineJob, run_id: str, total_steps: int) -> None: ...

    def job_finished(self, job: EngineJob, outcome: JobOutcome) -> None: ...


PROGRESS_SECONDS = 1.0  # how often the runs' status files are read for their step


class ProgressWatch:
    """The steps of runs that train elsewhere, from their run folders: status.json, which
    each run's heartbeat rewrites every 2 s wherever it trains (a child process, a Ray
    worker on another node: the runs directory is shared). `poll()` calls the caller's
    `job_progress` for each run whose step moved; at most every PROGRESS_SECONDS."""

    def __init__(self, runs_dir: Path, callbacks: Any) -> None:
        self.runs_dir = runs_dir
        self.report = getattr(callbacks, "job_progress", None)
        self.running: dict[int, tuple[EngineJob, str, int, int]] = {}  # index -> job, id, total, step
        self._next = 0.0

    def started(self, job: EngineJob, run_id: str, total_steps: int) -> None:
        self.running[job.index] = (job, run_id, total_steps, 0)

    def ended(self, job: EngineJob) -> None:
        self.running.pop(job.index, None)

    def poll(self) -> None:
        import json
        import time

        if self.report is None or not self.running:
            return
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + PROGRESS_SECONDS
        for index, (job, run_id, total, step) in list(self.running.items()):
            try:
                status = json.loads((self.runs_dir / run_id / "status.json").read_text(
                    encoding="utf-8"))
                new_step = int(status.get("step") or 0)
                total = int(status.get("total_steps") or total or 0)
            except (OSError, ValueError, TypeError, AttributeError):
                continue
            if new_step != step:
                self.running[index] = (job, run_id, total, new_step)
                self.report(job, run_id, new_step, total)


def check_workers(workers: Any) -> int:
    """The worker count as an int >= 1 (ConfigError naming the value otherwise)."""
    if isinstance(workers, bool) or not isinstance(workers, int) or not (
            1 <= workers <= MAX_WORKERS):
        raise ConfigError(f"workers = {workers!r} is not allowed: expected an integer "
                          f"from 1 to {MAX_WORKERS}")
    return workers


def worker_threads(config: RunConfig, workers: int, *, policy: str = "cli",
                   cpus: int | None = None) -> int:
    """Torch threads for one of `workers` runs at once: the config's count when it sets
    one, else the automatic rule (workbench.config.resolve_threads) over this worker's
    share of the cores ("gui" leaves one core to the GUI first)."""
    if config.threads > 0:
        return config.threads
    cpus = cpus or os.cpu_count() or 1
    budget = max(1, cpus - 1 if policy == "gui" else cpus)
    return resolve_threads(0, config.hidden, policy="cli", cpus=max(1, budget // workers))


class LocalEngine:
    """Runs jobs through one RunService, in turn or `workers` at once (module docstring).

    `dataset_for(config)` may return an open dataset for a new run (the caller keeps it
    open and closes it); None lets the service open `config.data` itself. `thread_policy`
    is the Trainer's ("gui" leaves the GUI a core).
    """

    def __init__(self, runs_dir: str | Path | None = None, *, workers: int = 1,
                 listeners: Sequence[Listener] = (), thread_policy: str = "cli",
                 dataset_for: Callable[[RunConfig], Any | None] | None = None) -> None:
        from workbench.run_service import RunService

        self.service = RunService(runs_dir)
        self.runs_dir = self.service.runs_dir
        self.workers = check_workers(workers)
        self.listeners = list(listeners)
        self.thread_policy = thread_policy
        self._dataset_for = dataset_for or (lambda _config: None)
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._active: Any | None = None
        self._child_cancel: Any | None = None

    # -- thread-safe controls --------------------------------------------------------------

    def request_cancel(self) -> None:
        """Stop the runs in progress and start no other (any thread)."""
        with self._lock:
            self._cancel.set()
            active, child_cancel = self._active, self._child_cancel
        if active is not None:
            active.request_stop()
        if child_cancel is not None:
            child_cancel.set()

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    @property
    def current_trainer(self) -> Any | None:
        """The Trainer of the run in progress (in-process runs only; None between runs)."""
        with self._lock:
            return self._active.trainer if self._active is not None else None

    # -- running ---------------------------------------------------------------------------

    def run(self, jobs: Sequence[EngineJob], callbacks: EngineCallbacks) -> None:
        """Train every job (blocks). Outcomes reach `callbacks.job_finished`, skipped ones
        included, so every job is accounted for once."""
        jobs = list(jobs)
        if self.workers == 1 or len(jobs) <= 1:
            self._run_in_turn(jobs, callbacks)
        else:
            self._run_in_children(jobs, callbacks)

    def _run_in_turn(self, jobs: list[EngineJob], callbacks: EngineCallbacks) -> None:
        for job in jobs:
            if self._cancel.is_set():
                callbacks.job_finished(job, JobOutcome(job.index, None, "skipped"))
                continue
            try:
                active = self._start(job)
            except WorkbenchError as exc:
                callbacks.job_finished(job, JobOutcome(job.index, None, "failed", str(exc)))
                continue
            except Exception as exc:  # noqa: BLE001 - one point's bug must not end the sweep
                log.exception("run %d could not start", job.index)
                callbacks.job_finished(job, JobOutcome(job.index, None, "failed",
                                                       f"{type(exc).__name__}: {exc}"))
                continue
            with self._lock:
                self._active = active
                if self._cancel.is_set():
                    active.request_stop()
            try:
                callbacks.job_started(job, active.run_id, active.total_steps)
                finished = active.run()
            finally:
                with self._lock:
                    self._active = None
            callbacks.job_finished(job, JobOutcome(job.index, active.run_id, finished.status,
                                                   finished.message))

    def _start(self, job: EngineJob) -> Any:
        if job.resume is not None:
            try:
                return self.service.resume(job.resume, self.listeners,
                                           thread_policy=self.thread_policy)
            except WorkbenchError as exc:  # no checkpoint that loads: train it anew
                log.warning("run %s cannot be resumed (%s); starting it anew", job.resume, exc)
        return self.service.start(job.config, self.listeners, name=job.name,
                                  thread_policy=self.thread_policy,
                                  dataset=self._dataset_for(job.config))

    # -- child processes -------------------------------------------------------------------

    def _run_in_children(self, jobs: list[EngineJob], callbacks: EngineCallbacks) -> None:
        context = _process_context()
        news: Any = context.Queue()
        cancel = context.Event()
        with self._lock:
            self._child_cancel = cancel
            if self._cancel.is_set():
                cancel.set()
        by_index = {job.index: job for job in jobs}
        started: set[int] = set()
        pending: dict[Future, EngineJob] = {}
        watch = ProgressWatch(self.runs_dir, callbacks)
        executor = ProcessPoolExecutor(max_workers=min(self.workers, len(jobs)),
                                       mp_context=context, initializer=_child_init,
                                       initargs=(news, cancel))
        try:
            for job in jobs:
                threads = worker_threads(job.config, self.workers, policy=self.thread_policy)
                config = job.config if job.config.threads == threads else job.config.replace(
                    threads=threads)
                future = executor.submit(_child_run, str(self.runs_dir), config.to_dict(),
                                         job.name, job.index, job.resume)
                pending[future] = job
            while pending:
                done, _ = wait(pending, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
                self._relay(news, by_index, started, callbacks, watch)
                watch.poll()
                for future in done:
                    job = pending.pop(future)
                    watch.ended(job)
                    outcome = self._outcome(future, job)
                    if outcome.run_id is not None and job.index not in started:
                        started.add(job.index)  # its news came after its end: keep the order
                        callbacks.job_started(job, outcome.run_id, 0)
                    callbacks.job_finished(job, outcome)
                if self._cancel.is_set():
                    for future in list(pending):
                        if future.cancel():
                            job = pending.pop(future)
                            callbacks.job_finished(job, JobOutcome(job.index, None, "skipped"))
        finally:
            executor.shutdown(wait=True, cancel_futures=True)
            with self._lock:
                self._child_cancel = None
            with contextlib.suppress(Exception):
                news.close()

    @staticmethod
    def _relay(news: Any, by_index: dict[int, EngineJob], started: set[int],
               callbacks: EngineCallbacks, watch: ProgressWatch | None = None) -> None:
        """Pass on the children's "run started" news."""
        while True:
            try:
                _kind, index, run_id, total_steps = news.get_nowait()
            except queue.Empty:
                return
            if index not in started:
                started.add(index)
                callbacks.job_started(by_index[index], run_id, total_steps)
                if watch is not None:
                    watch.started(by_index[index], run_id, total_steps)

    @staticmethod
    def _outcome(future: Future, job: EngineJob) -> JobOutcome:
        try:
            index, run_id, status, message = future.result()
        except BrokenProcessPool:
            return JobOutcome(job.index, None, "crashed",
                              "its worker process died (killed, or out of memory)")
        except Exception as exc:  # noqa: BLE001 - recorded per job, the sweep goes on
            return JobOutcome(job.index, None, "failed", f"{type(exc).__name__}: {exc}")
        return JobOutcome(index, run_id, status, message)


def _process_context() -> Any:
    """Where worker processes come from: a fork server that has imported torch and the
    run service once (each worker forks from it in ~0.1 s; a spawned one imports torch
    itself, 5-15 s on a busy 2-core machine), else (no fork server: Windows) spawn.
    Neither inherits the caller's threads (a GUI's, a training run's)."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["torch", "workbench.run_service",
                                        "workbench.sweep_engine"])
        return context
    return multiprocessing.get_context("spawn")


# --- the child's side (top-level: spawned children import them by name) -----------------------

_NEWS: Any = None
_CANCEL: Any = None
_DATASETS: dict[tuple, Any] = {}  # a worker's open datasets, kept for its next runs


def _child_init(news: Any, cancel: Any) -> None:
    """A worker process's set-up: the parent's news queue and cancel flag. Ctrl-C is the
    parent's to handle (it cancels, and the children stop their runs cleanly)."""
    global _NEWS, _CANCEL
    _NEWS, _CANCEL = news, cancel
    with contextlib.suppress(ValueError):  # not the main thread: leave it
        signal.signal(signal.SIGINT, signal.SIG_IGN)


class _CancelWatch:
    """A child run's listener: asks its run to stop once the parent cancels."""

    def __init__(self) -> None:
        self.active: Any | None = None

    def on_event(self, event: Any) -> None:
        if (isinstance(event, StepMetrics) and self.active is not None and _CANCEL is not None
                and _CANCEL.is_set()):
            self.active.request_stop()


def _child_dataset(config: RunConfig) -> Any:
    """The dataset of `config`, opened once per worker process (the file is checked once)."""
    from workbench.run_service import open_run_data

    key = (config.data, config.inputs, config.targets, config.split_seed, config.val_fraction)
    if key not in _DATASETS:
        _DATASETS[key] = open_run_data(config)
    return _DATASETS[key]


def _child_run(runs_dir: str, config: dict[str, Any], name: str, index: int,
               resume: str | None) -> tuple[int, str | None, str, str]:
    """Train one job in a worker process: (index, run id, status, message)."""
    from workbench.run_service import RunService

    if _CANCEL is not None and _CANCEL.is_set():
        return index, None, "skipped", ""
    service = RunService(runs_dir)
    watch = _CancelWatch()
    try:
        active = None
        if resume is not None:
            with contextlib.suppress(WorkbenchError):
                active = service.resume(resume, [watch])
        if active is None:
            run_config = RunConfig.from_dict(config)
            active = service.start(run_config, [watch], name=name,
                                   dataset=_child_dataset(run_config))
    except WorkbenchError as exc:
        return index, None, "failed", str(exc)
    watch.active = active
    if _NEWS is not None:
        _NEWS.put(("started", index, active.run_id, active.total_steps))
    finished = active.run()
    return index, active.run_id, finished.status, finished.message
