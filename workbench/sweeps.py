"""Sweeps: a grid over any setting and a task's options, x seeds; run, recorded, read back.

    spec = SweepSpec.build(base, {"recurrent_radius": [0.5, 1, 1.5]}, seeds=3)
    sweep = SweepRunner(spec, runs_dir=...).run()         # blocks; request_cancel() any thread
    sweep = SweepRunner.resume(sweep.sweep_id, runs_dir=...).run()   # only what is missing
    table = sweep.table()                                  # per point, mean and std over seeds

No Qt. What a sweep is (the grid, its checks, the TOML form) is workbench.sweep_spec;
how its runs are trained (in turn, or `workers` child processes, each through the run
service) is workbench.sweep_engine. This module keeps the record and reads it back.

- Data: a sweep over a built-in task's options trains each point on its own generated
  file, `<runs_dir>/_datasets/<task>-<options>.h5`, made once and reused by any later
  sweep with the same options (`task_dataset`). The files are generated before the
  first run starts.
- The record: `<runs_dir>/_sweeps/<id>.json` (a folder whose name begins with "_", so
  the runs listing ignores it), written atomically whenever a run starts or ends: the
  spec, the points, and per planned run its point, seed, run id, status and message.
  Each run is an ordinary run folder beside the others.
- Failures lose nothing: a run that cannot start, fails or diverges is recorded with
  its message and the sweep goes on. Cancel stops the runs in progress (they end
  "stopped", checkpointed) and skips the rest; `SweepRunner.resume(id)` runs only what
  is missing: a stopped or crashed run is resumed from its checkpoint, a skipped or
  never started one is started; completed, diverged and failed runs are results.
- Comparisons are sweeps over `cell`: `list_sweeps` and `open_sweep` read the saved
  comparisons (`<runs_dir>/_comparisons`, workbench.compare) as such, so `sweep --show`
  shows any of them and the sweep view draws them.
- Results: `Sweep.table()` has one row per point with every figure of the comparison
  table (workbench.compare.COLUMNS: best validation loss teacher-forced and
  free-running, token and sequence accuracy, G_1/G_T, spectral radius, time, seq/s),
  the parameter count, and what the gradient lab adds: G_1/G_T and the spectral radius
  at the first probe (the init's), the largest total gradient norm and the share of
  steps clipped; `series()` gives the sweep view's lines.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import math
import os
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from workbench.atomic import atomic_path, atomic_write_json
from workbench.compare import (
    COLUMN_TITLES,
    COLUMNS,
    RunData,
    Stat,
    encoder_spectral_radius,
    list_comparisons,
    vanishing_ratio,
)
from workbench.config import RunConfig
from workbench.errors import ConfigError, RunError, WorkbenchError
from workbench.events import Listener
from workbench.jsonsafe import json_safe
from workbench.ray_engine import RayOptions
from workbench.run_ids import new_run_id
from workbench.run_layout import runs_root
from workbench.runs import iso_time, pid_alive
from workbench.sweep_engine import EngineJob, JobOutcome, LocalEngine, check_workers
from workbench.sweep_spec import SweepPoint, SweepSpec, TaskSpec, format_value, numeric_values

log = logging.getLogger(__name__)

SWEEP_FORMAT = 1
SWEEPS_DIR = "_sweeps"
DATASETS_DIR = "_datasets"
CONFIRM_RUNS = 500  # more runs than this: the GUI asks, the CLI needs --yes
RESULT_STATUSES = ("completed", "diverged", "failed")  # a resume leaves these as they are
FINAL_SWEEP_STATUSES = ("completed", "cancelled", "failed")

EXTRA_METRICS: tuple[str, ...] = ("parameters", "initial_vanishing_ratio",
                                  "initial_spectral_radius", "grad_norm_max", "clip_rate")
METRICS: tuple[str, ...] = (*COLUMNS, *EXTRA_METRICS)
METRIC_TITLES: dict[str, str] = {
    **COLUMN_TITLES, "parameters": "parameters",
    "initial_vanishing_ratio": "G_1/G_T at the first probe (step 1)",
    "initial_spectral_radius": "spectral radius at the first probe (step 1)",
    "grad_norm_max": "largest total gradient norm", "clip_rate": "steps clipped (share)",
}


# --- events ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepStarted:
    """The sweep starts (or resumes): `pending` of its `planned` runs are to be trained."""

    sweep_id: str
    planned: int
    pending: int
    points: int
    fields: tuple[str, ...]
    resumed: bool = False


@dataclass(frozen=True)
class SweepRunStarted:
    """Run `index` of `planned` (point `point`, training seed `seed`) started as `run_id`."""

    sweep_id: str
    index: int
    planned: int
    point: int
    params: dict[str, Any]
    seed: int
    run_id: str
    total_steps: int


@dataclass(frozen=True)
class SweepRunProgress:
    """Run `index` (training in a child process or a Ray worker) is at `step`: read from
    its run folder's status.json, about once a second."""

    sweep_id: str
    index: int
    run_id: str
    step: int
    total_steps: int


@dataclass(frozen=True)
class SweepRunFinished:
    """Run `index` ended with `status` (run_id None: it could not start)."""

    sweep_id: str
    index: int
    planned: int
    point: int
    params: dict[str, Any]
    seed: int
    run_id: str | None
    status: str
    message: str = ""


@dataclass(frozen=True)
class SweepFinished:
    """The sweep ended: "completed" (every run ended), "cancelled" or "failed"."""

    sweep_id: str
    status: str
    completed: int  # runs that ran to their end ("completed")
    failed: int  # runs that failed, diverged or could not start
    planned: int
    message: str = ""


SweepEvent = (SweepStarted | SweepRunStarted | SweepRunProgress | SweepRunFinished
              | SweepFinished)


# --- where things live ------------------------------------------------------------------------


def sweeps_dir(runs_dir: str | Path | None = None) -> Path:
    """`<runs_dir>/_sweeps`: the sweep records of a runs directory."""
    return runs_root(runs_dir) / SWEEPS_DIR


def task_dataset(runs_dir: str | Path | None, task: TaskSpec,
                 resolved: dict[str, Any] | None = None) -> Path:
    """The generated file of `task` (with `resolved`, every option plus n and seed as
    TaskSpec.resolved gives them; default: the task's own), made on first use in
    `<runs_dir>/_datasets` and reused after: its name holds every option, n and seed."""
    from workbench.tasks import generate

    resolved = resolved if resolved is not None else task.resolved()
    values = {k: v for k, v in resolved.items() if k not in ("n", "seed")}
    words = "-".join(f"{k.replace('_', '')}{format_value(v)}" for k, v in sorted(values.items()))
    name = f"{task.name}-{words}-n{resolved['n']}-seed{resolved['seed']}.h5".replace("--", "-")
    path = runs_root(runs_dir) / DATASETS_DIR / name
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        generate(task.name, path, n=int(resolved["n"]), seed=int(resolved["seed"]), **values)
    return path


# --- the runner -------------------------------------------------------------------------------


class SweepRunner:
    """Train every run of `spec` (or what a recorded sweep misses) and keep its record.

    `listeners` get the sweep events above and, with `workers=1`, every run's Trainer
    events. `dataset`: an open dataset of `spec.base.data` to train on (the caller keeps
    it); others are opened once each and closed at the end. `thread_policy` is the
    Trainer's ("gui" leaves a core to the GUI). `workers` > 1: that many runs at once in
    child processes (workbench.sweep_engine). `ray` (workbench.ray_engine.RayOptions):
    the runs are Ray tasks instead, on a private instance or a cluster; the record is
    the same.
    """

    def __init__(self, spec: SweepSpec, *, runs_dir: str | Path | None = None,
                 listeners: Sequence[Listener] = (), workers: int = 1,
                 thread_policy: str = "cli", dataset: Any | None = None,
                 kind: str = "sweep", ray: RayOptions | None = None) -> None:
        self.spec = spec
        self.points = spec.points()
        self.plan = spec.plan()
        self.listeners = list(listeners)
        self.workers = check_workers(workers)
        self.engine: Any
        if ray is not None:
            from workbench.ray_engine import RayEngine

            self.engine = RayEngine(runs_dir, address=ray.address,
                                    cpus_per_run=ray.cpus_per_run,
                                    max_concurrent=ray.max_concurrent, num_cpus=ray.num_cpus)
        else:
            self.engine = LocalEngine(runs_dir, workers=self.workers, listeners=self.listeners,
                                      thread_policy=thread_policy,
                                      dataset_for=self._dataset_for)
        self.runs_dir = self.engine.runs_dir
        self.kind = kind
        self._given = dataset
        self._open: dict[tuple, Any] = {}
        self.sweep_id = ""
        self.record: dict[str, Any] = {}
        self._resumed = False
        self._counts = {"completed": 0, "failed": 0}

    @classmethod
    def resume(cls, sweep_id: str, *, runs_dir: str | Path | None = None,
               listeners: Sequence[Listener] = (), workers: int = 1,
               thread_policy: str = "cli", ray: RayOptions | None = None) -> SweepRunner:
        """A runner for what the recorded sweep `sweep_id` misses (RunError if it is still
        running in another process, or is not a sweep this version reads)."""
        path = sweeps_dir(runs_dir) / f"{sweep_id}.json"
        if not path.is_file():
            raise RunError(f"no sweep {sweep_id!r} in {path.parent}")
        record = _read_json(path)
        if _effective_status(record) == "running":
            raise RunError(f"sweep {sweep_id} is still running (process {record.get('pid')} "
                           f"on {record.get('host')}); cancel it first")
        spec = SweepSpec.from_dict(record.get("spec") or {}, where=f"sweep {sweep_id}")
        runner = cls(spec, runs_dir=runs_dir, listeners=listeners, workers=workers,
                     thread_policy=thread_policy, kind=str(record.get("kind", "sweep")),
                     ray=ray)
        if len(record.get("runs", [])) != len(runner.plan):
            raise RunError(f"{path}: its runs do not match its grid; it cannot be resumed")
        runner.sweep_id, runner.record, runner._resumed = sweep_id, record, True
        return runner

    # -- thread-safe controls --------------------------------------------------------------

    def request_cancel(self) -> None:
        """Stop the runs in progress (they end "stopped") and start no other (any thread)."""
        self.engine.request_cancel()

    request_stop = request_cancel  # what workbench.cli.train.stop_on_interrupt calls

    @property
    def cancel_requested(self) -> bool:
        return self.engine.cancel_requested

    stop_requested = cancel_requested

    @property
    def current_trainer(self) -> Any | None:
        return self.engine.current_trainer

    # -- the sweep ---------------------------------------------------------------------------

    def run(self) -> Sweep:
        """Run what is missing; return the saved sweep. Errors propagate after it is saved."""
        preflight = getattr(self.engine, "preflight", None)
        if preflight is not None:  # Ray missing, a cluster that does not answer: no record
            preflight()
        if not self._resumed:
            self._start_record()
        else:
            self.record.update(status="running", message="", finished_iso=None,
                               pid=os.getpid(), host=socket.gethostname())
            self._save()
        jobs, refused = self._jobs()
        self._emit(SweepStarted(self.sweep_id, len(self.plan), len(jobs) + len(refused),
                                len(self.points), self.spec.fields, self._resumed))
        status, message = "completed", ""
        try:
            for job, reason in refused:  # no data for its point: failed before it started
                self.job_finished(job, JobOutcome(job.index, None, "failed", reason))
            self.engine.run(jobs, self)
            if self.engine.cancel_requested:
                status, message = "cancelled", "cancelled: the runs not finished can be resumed"
        except BaseException as exc:
            status, message = "failed", f"{type(exc).__name__}: {exc}"
            self._finish(status, message)
            raise
        finally:
            for dataset in self._open.values():
                with contextlib.suppress(Exception):
                    dataset.close()
            self._open = {}
        self._finish(status, message)
        return open_sweep(self.sweep_id, self.runs_dir)

    def _jobs(self) -> tuple[list[EngineJob], list[tuple[EngineJob, str]]]:
        """The runs to train (every one of a new sweep; a resumed one's missing runs), and
        those refused before they start, with the reason (a point's data not made)."""
        data = self._task_files()
        jobs: list[EngineJob] = []
        refused: list[tuple[EngineJob, str]] = []
        for planned in self.plan:
            entry = self.record["runs"][planned.index]
            resume = None
            if self._resumed:
                resume = self._resume_of(entry)
                if resume == "":
                    continue  # a result already
            point = self.points[planned.point]
            path = data.get(planned.point)
            name = _run_name(point, planned.seed)
            if isinstance(path, WorkbenchError):
                refused.append((EngineJob(planned.index, self.spec.base, name), str(path)))
                continue
            config = self.spec.config_for(point, planned.seed, data=str(path) if path else None)
            entry.update(status="planned", message="")
            jobs.append(EngineJob(planned.index, config, name, resume or None))
        self._save()
        return jobs, refused

    def _resume_of(self, entry: dict[str, Any]) -> str | None:
        """"" for a result to keep, a run id to resume, None to start anew."""
        from workbench.runs import open_run

        if entry.get("status") in RESULT_STATUSES:
            return ""
        run_id = entry.get("run_id")
        if not run_id:
            return None
        try:
            status = open_run(run_id, self.runs_dir).status
        except RunError:
            return None
        if status in RESULT_STATUSES:  # it ended after the record was last written
            entry["status"] = status
            return ""
        return run_id if status in ("stopped", "crashed") else None

    def _task_files(self) -> dict[int, Path | WorkbenchError]:
        """Each point's generated dataset (a task sweep), made before any run starts; a
        point whose file cannot be made gets the error (its runs fail with it)."""
        if self.spec.task is None:
            return {}
        out: dict[int, Path | WorkbenchError] = {}
        made: dict[str, Path | WorkbenchError] = {}
        for point in self.points:
            options = self.spec.task_options(point)
            key = json.dumps(options, sort_keys=True)
            if key not in made:
                try:
                    made[key] = task_dataset(self.runs_dir, self.spec.task, options)
                except WorkbenchError as exc:
                    made[key] = exc
            out[point.index] = made[key]
        return out

    def _dataset_for(self, config: RunConfig) -> Any | None:
        """An open dataset for a new run, opened once per file and split."""
        from workbench.run_service import open_run_data

        key = (config.data, config.inputs, config.targets, config.split_seed,
               config.val_fraction)
        base = self.spec.base
        if self._given is not None and key == (base.data, base.inputs, base.targets,
                                               base.split_seed, base.val_fraction):
            return self._given
        if key not in self._open:
            self._open[key] = open_run_data(config)
        return self._open[key]

    # the engine's callbacks (workbench.sweep_engine.EngineCallbacks)

    def job_started(self, job: EngineJob, run_id: str, total_steps: int) -> None:
        planned = self.plan[job.index]
        entry = self.record["runs"][job.index]
        entry.update(run_id=run_id, status="running", message="")
        self._save()
        self._emit(SweepRunStarted(self.sweep_id, job.index, len(self.plan), planned.point,
                                   dict(self.points[planned.point].params), planned.seed,
                                   run_id, total_steps))

    def job_progress(self, job: EngineJob, run_id: str, step: int, total_steps: int) -> None:
        self._emit(SweepRunProgress(self.sweep_id, job.index, run_id, step, total_steps))

    def job_finished(self, job: EngineJob, outcome: JobOutcome) -> None:
        planned = self.plan[job.index]
        entry = self.record["runs"][job.index]
        entry["status"] = outcome.status
        entry["message"] = outcome.message
        if outcome.run_id is not None:
            entry["run_id"] = outcome.run_id
        self._save()
        if outcome.status == "completed":
            self._counts["completed"] += 1
        elif outcome.status in ("failed", "diverged"):
            self._counts["failed"] += 1
        self._emit(SweepRunFinished(self.sweep_id, job.index, len(self.plan), planned.point,
                                    dict(self.points[planned.point].params), planned.seed,
                                    outcome.run_id, outcome.status, outcome.message))

    # -- the record ------------------------------------------------------------------------

    def _start_record(self) -> None:
        folder = sweeps_dir(self.runs_dir)
        folder.mkdir(parents=True, exist_ok=True)
        while True:
            self.sweep_id = new_run_id(self.spec.name or "sweep")
            if not (folder / f"{self.sweep_id}.json").exists():
                break
        now = time.time()
        self.record = {
            "format": SWEEP_FORMAT, "kind": self.kind, "sweep_id": self.sweep_id,
            "name": self.spec.name or _default_name(self.spec), "created": now,
            "created_iso": iso_time(now), "finished_iso": None, "status": "running",
            "message": "", "spec": self.spec.to_dict(),
            "points": [{"index": p.index, "params": p.params} for p in self.points],
            "runs": [{"index": r.index, "point": r.point, "seed": r.seed, "run_id": None,
                      "status": "planned", "message": ""} for r in self.plan],
            "pid": os.getpid(), "host": socket.gethostname(),
        }
        self._save()

    def _finish(self, status: str, message: str) -> None:
        self.record.update(status=status, message=message, finished_iso=iso_time(time.time()))
        for entry in self.record["runs"]:
            if entry["status"] in ("planned", "running"):
                entry["status"] = "skipped"
        with contextlib.suppress(OSError):
            self._save()
        self._emit(SweepFinished(self.sweep_id, status, self._counts["completed"],
                                 self._counts["failed"], len(self.plan), message))

    def _save(self) -> None:
        atomic_write_json(sweeps_dir(self.runs_dir) / f"{self.sweep_id}.json",
                          json_safe(self.record))

    def _emit(self, event: SweepEvent) -> None:
        """A sweep event to every listener; one that raises is logged, the sweep goes on."""
        for listener in self.listeners:
            try:
                listener.on_event(event)  # type: ignore[arg-type]
            except Exception:  # noqa: BLE001 - a listener must not end the sweep
                log.warning("listener %s raised on %s", type(listener).__name__,
                            type(event).__name__, exc_info=True)


def _run_name(point: SweepPoint, seed: int) -> str:
    return f"{point.label()} seed {seed}"


def _default_name(spec: SweepSpec) -> str:
    return " x ".join(spec.fields)


# --- saved sweeps ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepEntry:
    """One planned run of a saved sweep (run_id None when it never started)."""

    index: int
    point: int
    seed: int
    run_id: str | None
    status: str  # planned, running, completed, stopped, diverged, failed, skipped, crashed
    message: str = ""


@dataclass(frozen=True)
class Sweep:
    """A saved sweep (or a saved comparison, read as a sweep over `cell`)."""

    path: Path
    sweep_id: str
    kind: str  # "sweep" | "comparison"
    name: str
    status: str  # running, completed, cancelled, failed; "crashed" if its process is gone
    message: str
    created_iso: str
    finished_iso: str | None
    spec: SweepSpec
    points: tuple[SweepPoint, ...]
    entries: tuple[SweepEntry, ...]

    @property
    def runs_dir(self) -> Path:
        """The runs directory its runs are in (the records folder's parent)."""
        return self.path.parent.parent

    @property
    def fields(self) -> tuple[str, ...]:
        return self.spec.fields

    @property
    def run_ids(self) -> tuple[str, ...]:
        return tuple(e.run_id for e in self.entries if e.run_id)

    def point_entries(self, point: int) -> list[SweepEntry]:
        return [e for e in self.entries if e.point == point]

    def open_runs(self, point: int | None = None) -> list[Any]:
        """The started runs that still exist (workbench.runs.Run), of one point or all."""
        from workbench.runs import open_run

        out = []
        for entry in self.entries if point is None else self.point_entries(point):
            if entry.run_id:
                with contextlib.suppress(RunError):
                    out.append(open_run(entry.run_id, self.runs_dir))
        return out

    def table(self, cache: dict[str, dict[str, float | None]] | None = None) -> SweepTable:
        """One row per point: each figure's mean and std across its seeds. `cache` (run id
        -> figures) spares reading a finished run twice (the sweep view keeps one)."""
        return sweep_table(self, cache)

    def to_json(self) -> dict[str, Any]:
        """The listing's entry (`sweeps --json`)."""
        return json_safe({
            "sweep_id": self.sweep_id, "kind": self.kind, "name": self.name,
            "status": self.status, "message": self.message, "created_iso": self.created_iso,
            "finished_iso": self.finished_iso, "fields": list(self.fields),
            "points": len(self.points), "seeds": list(self.spec.seeds),
            "runs": len(self.run_ids), "planned": len(self.entries), "path": str(self.path)})


def list_sweeps(runs_dir: str | Path | None = None, *,
                comparisons: bool = True) -> list[Sweep]:
    """The saved sweeps of a runs directory and (as sweeps over cell) its comparisons,
    oldest first (ids sort by time)."""
    found: list[Sweep] = []
    folder = sweeps_dir(runs_dir)
    if folder.is_dir():
        for path in sorted(folder.glob("*.json")):
            if not path.name.startswith("."):
                with contextlib.suppress(RunError, ConfigError):
                    found.append(_read_sweep(path))
    if comparisons:
        for comparison in list_comparisons(runs_dir):
            with contextlib.suppress(RunError, ConfigError):
                found.append(sweep_of_comparison(comparison))
    return sorted(found, key=lambda s: (s.created_iso, s.sweep_id))


def open_sweep(sweep_id_or_path: str | Path, runs_dir: str | Path | None = None) -> Sweep:
    """A saved sweep by id (in `runs_dir`) or by its JSON file; a saved comparison's id
    opens it as a sweep over cell."""
    candidate = Path(sweep_id_or_path)
    if candidate.suffix == ".json" and candidate.is_file():
        if candidate.parent.name == SWEEPS_DIR:
            return _read_sweep(candidate)
        from workbench.compare import open_comparison

        return sweep_of_comparison(open_comparison(candidate))
    path = sweeps_dir(runs_dir) / f"{sweep_id_or_path}.json"
    if path.is_file():
        return _read_sweep(path)
    from workbench.compare import open_comparison

    try:
        return sweep_of_comparison(open_comparison(str(sweep_id_or_path), runs_dir))
    except RunError:
        raise RunError(f"no sweep {str(sweep_id_or_path)!r} in {path.parent}") from None


def sweep_of_comparison(comparison: Any) -> Sweep:
    """A saved comparison (workbench.compare.Comparison) as a sweep over `cell`."""
    base = comparison.config()
    cells = tuple(comparison.cells)
    spec = SweepSpec(base=base, grid=(("cell", cells),), seeds=tuple(comparison.seeds),
                     name=comparison.name)
    points = tuple(spec.points())
    entries = tuple(SweepEntry(e.index, cells.index(e.cell) if e.cell in cells else 0, e.seed,
                               e.run_id, e.status) for e in comparison.entries)
    return Sweep(path=comparison.path, sweep_id=comparison.comparison_id, kind="comparison",
                 name=comparison.name, status=comparison.status, message=comparison.message,
                 created_iso=comparison.created_iso, finished_iso=comparison.finished_iso,
                 spec=spec, points=points, entries=entries)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunError(f"{path} is not a readable sweep: {exc}") from None
    if not isinstance(data, dict) or data.get("format", 0) > SWEEP_FORMAT:
        raise RunError(f"{path} is not a sweep this version reads "
                       f"(format {data.get('format') if isinstance(data, dict) else '?'})")
    return data


def _read_sweep(path: Path) -> Sweep:
    data = _read_json(path)
    try:
        spec = SweepSpec.from_dict(data["spec"], where=str(path))
        points = tuple(SweepPoint(int(p["index"]), dict(p["params"])) for p in data["points"])
        entries = tuple(SweepEntry(int(e["index"]), int(e["point"]), int(e["seed"]),
                                   e.get("run_id"), str(e.get("status", "")),
                                   str(e.get("message") or "")) for e in data["runs"])
        return Sweep(path=path, sweep_id=str(data["sweep_id"]), kind=str(data.get("kind", "sweep")),
                     name=str(data.get("name") or data["sweep_id"]),
                     status=_effective_status(data), message=str(data.get("message") or ""),
                     created_iso=str(data.get("created_iso", "")),
                     finished_iso=data.get("finished_iso"), spec=spec, points=points,
                     entries=entries)
    except (KeyError, TypeError, ValueError) as exc:
        raise RunError(f"{path} is not a readable sweep: missing or bad {exc}") from None


def _effective_status(data: dict[str, Any]) -> str:
    """A "running" sweep whose process (on this host) is gone reads "crashed"."""
    status = str(data.get("status", "crashed"))
    if status != "running" or data.get("host") != socket.gethostname():
        return status
    pid = data.get("pid")
    return "crashed" if isinstance(pid, int) and not pid_alive(pid) else status


# --- results ----------------------------------------------------------------------------------


def run_figures(run: Any) -> dict[str, float | None]:
    """Every METRICS figure of one run folder (workbench.runs.Run); None where undefined."""
    from workbench.runs import read_probe

    data = RunData.from_run(run)
    figures: dict[str, float | None] = dict(data.figures())
    figures["parameters"] = float(data.parameters) if data.parameters is not None else None
    first = None
    for path in run.probe_files():
        with contextlib.suppress(OSError, KeyError):
            first = read_probe(path)
            break
    figures["initial_vanishing_ratio"] = vanishing_ratio(first)
    figures["initial_spectral_radius"] = encoder_spectral_radius(first, data.layers)
    norms = [s.grad_norm for s in data.steps if math.isfinite(s.grad_norm)]
    figures["grad_norm_max"] = max(norms) if norms else None
    clip = run.config_dict().get("training", {}).get("clip")
    figures["clip_rate"] = (sum(s.clipped for s in data.steps) / len(data.steps)
                            if clip is not None and data.steps else None)
    return figures


@dataclass(frozen=True)
class SweepRow:
    """One point of a sweep: its params, runs and each figure across its seeds."""

    point: int
    params: dict[str, Any]
    run_ids: tuple[str, ...]
    seeds: tuple[int, ...]
    statuses: tuple[str, ...]
    messages: tuple[str, ...]
    stats: dict[str, Stat]  # METRICS -> Stat over the runs that exist

    def to_json(self) -> dict[str, Any]:
        """A point as `sweep --json` prints it: params, runs, then {"mean", "std"} each."""
        out: dict[str, Any] = {"params": self.params, "runs": list(self.run_ids),
                               "seeds": list(self.seeds), "statuses": list(self.statuses),
                               "messages": list(self.messages)}
        for name in METRICS:
            out[name] = {"mean": self.stats[name].mean, "std": self.stats[name].std}
        return json_safe(out)


@dataclass(frozen=True)
class SweepTable:
    """A sweep's table: one row per point, in grid order."""

    fields: tuple[str, ...]
    rows: tuple[SweepRow, ...]
    metrics: tuple[str, ...] = METRICS

    def to_json(self) -> list[dict[str, Any]]:
        return [row.to_json() for row in self.rows]

    def to_text(self, metrics: Sequence[str] | None = None) -> str:
        """A plain-text table: a line per point, its params then mean +/- std per figure."""
        metrics = list(metrics or ("best_val_loss", "val_loss_free_running",
                                   "sequence_accuracy", "vanishing_ratio",
                                   "initial_vanishing_ratio", "spectral_radius", "clip_rate"))
        metrics = [m for m in metrics if any(r.stats[m].mean is not None for r in self.rows)]
        header = [*self.fields, "runs", *metrics]
        lines = [[*(format_value(r.params[f]) for f in self.fields),
                  status_words(r.statuses), *(_stat_text(r.stats[m]) for m in metrics)]
                 for r in self.rows]
        widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h)
                  for i, h in enumerate(header)]
        out = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
        out += ["  ".join(c.ljust(w) for c, w in zip(line, widths)) for line in lines]
        return "\n".join(out)


def sweep_table(sweep: Sweep, cache: dict[str, dict[str, float | None]] | None = None
                ) -> SweepTable:
    """The table of a saved sweep, read from its run folders. A run still training
    (running or paused) is listed in its row but left out of the figures: each mean ±
    std is over the runs that have ended (as in the comparison table)."""
    from workbench.runs import LIVE_STATUSES, open_run

    cache = cache if cache is not None else {}
    rows = []
    for point in sweep.points:
        entries = sweep.point_entries(point.index)
        figures, run_ids = [], []
        for entry in entries:
            if not entry.run_id:
                continue
            if entry.run_id not in cache:
                try:
                    run = open_run(entry.run_id, sweep.runs_dir)
                except RunError:
                    continue
                run_ids.append(entry.run_id)
                if run.status in LIVE_STATUSES:
                    continue  # still training: listed, not in the figures until it ends
                values = run_figures(run)
                if run.status in ("completed", "diverged", "failed", "stopped"):
                    cache[entry.run_id] = values  # ended: it no longer changes
            else:
                values = cache[entry.run_id]
                run_ids.append(entry.run_id)
            figures.append(values)
        rows.append(SweepRow(
            point=point.index, params=dict(point.params), run_ids=tuple(run_ids),
            seeds=tuple(e.seed for e in entries), statuses=tuple(e.status for e in entries),
            messages=tuple(e.message for e in entries),
            stats={name: Stat.of([f.get(name) for f in figures]) for name in METRICS}))
    return SweepTable(sweep.fields, tuple(rows))


def result_json(sweep: Sweep, table: SweepTable | None = None) -> dict[str, Any]:
    """The object `sweep --json` prints: its id, status and points (SweepRow.to_json)."""
    table = table or sweep.table()
    return json_safe({"sweep_id": sweep.sweep_id, "name": sweep.name, "kind": sweep.kind,
                      "status": sweep.status, "message": sweep.message,
                      "fields": list(sweep.fields), "seeds": list(sweep.spec.seeds),
                      "runs_dir": str(sweep.runs_dir), "points": table.to_json()})


def write_sweep_csv(table: SweepTable, path: str | Path) -> Path:
    """The table as CSV, atomically: a row per point, its params, then each figure's
    mean and std (empty where undefined)."""
    from workbench.exports import csv_value

    path = Path(path)
    header = [*table.fields, "runs", "statuses"]
    for name in table.metrics:
        header += [f"{name}_mean", f"{name}_std"]
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for row in table.rows:
            cells = [format_value(row.params[k]) if row.params[k] is None else row.params[k]
                     for k in table.fields]
            cells += [" ".join(row.run_ids), " ".join(row.statuses)]
            for name in table.metrics:
                stat = row.stats[name]
                cells += [csv_value(stat.mean), csv_value(stat.std)]
            writer.writerow(cells)
    return path


@dataclass(frozen=True)
class Series:
    """One line of the sweep view: the points sharing `fixed` (every swept field but x),
    in x order, with each figure's mean, std, min and max across seeds."""

    label: str
    fixed: dict[str, Any]
    x: tuple[Any, ...]
    points: tuple[int, ...]
    mean: np.ndarray
    std: np.ndarray
    minimum: np.ndarray
    maximum: np.ndarray


def series(table: SweepTable, x: str, metric: str) -> list[Series]:
    """`metric` against swept field `x`, one Series per combination of the other swept
    fields (e.g. per cell), in grid order. NaN where a point has no value."""
    if x not in table.fields:
        raise ConfigError(f"{x!r} is not swept; swept: {', '.join(table.fields)}")
    if metric not in table.metrics:
        raise ConfigError(f"unknown figure {metric!r}; expected one of {', '.join(table.metrics)}")
    others = [f for f in table.fields if f != x]
    groups: dict[tuple, list[SweepRow]] = {}
    for row in table.rows:
        groups.setdefault(tuple(_key(row.params[f]) for f in others), []).append(row)
    out = []
    for rows in groups.values():
        fixed = {f: rows[0].params[f] for f in others}
        label = ", ".join(f"{f}={format_value(v)}" if f != "cell" else str(v)
                          for f, v in fixed.items()) or metric
        stats = [r.stats[metric] for r in rows]
        out.append(Series(label, fixed, tuple(r.params[x] for r in rows),
                          tuple(r.point for r in rows),
                          _array(s.mean for s in stats), _array(s.std for s in stats),
                          _array(_finite_min(s.values) for s in stats),
                          _array(_finite_max(s.values) for s in stats)))
    return out


def x_positions(values: Iterable[Any]) -> tuple[np.ndarray, list[str] | None]:
    """Where the sweep view puts x values: the numbers themselves, or 0, 1, ... with
    tick labels for categorical values (cells, schedules)."""
    values = list(values)
    numbers = numeric_values(values)
    if numbers is not None:
        return np.asarray(numbers, dtype=np.float64), None
    labels = list(dict.fromkeys(format_value(v) for v in values))
    return np.asarray([labels.index(format_value(v)) for v in values], dtype=np.float64), labels


def _key(value: Any) -> Any:
    return json.dumps(value)


def _array(values: Iterable[float | None]) -> np.ndarray:
    return np.asarray([math.nan if v is None else float(v) for v in values], dtype=np.float64)


def _finite_min(values: Sequence[float | None]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return min(finite) if finite else None


def _finite_max(values: Sequence[float | None]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return max(finite) if finite else None


def _stat_text(stat: Stat) -> str:
    if stat.mean is None:
        return "-"
    text = f"{stat.mean:.4g}"
    return text if stat.std is None else f"{text} +/- {stat.std:.2g}"


def status_words(statuses: Sequence[str]) -> str:
    """"2 completed, 1 failed": how a point's runs ended."""
    counts: dict[str, int] = {}
    for status in statuses:
        counts[status] = counts.get(status, 0) + 1
    return ", ".join(f"{n} {s}" for s, n in counts.items())


__all__ = [
    "CONFIRM_RUNS", "METRICS", "METRIC_TITLES", "Series", "Sweep", "SweepEntry",
    "SweepFinished", "SweepRow", "SweepRunFinished", "SweepRunProgress", "SweepRunStarted",
    "SweepRunner",
    "SweepSpec", "SweepStarted", "SweepTable", "TaskSpec", "list_sweeps", "open_sweep",
    "result_json", "run_figures", "series", "sweep_of_comparison", "sweep_table",
    "sweeps_dir", "task_dataset", "write_sweep_csv", "x_positions",
]
