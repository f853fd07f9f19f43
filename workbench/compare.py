"""Comparisons: the same run config trained with several cells and seeds, and what they show.

A comparison answers "which cell, and why" with the noise of initialisation made
visible: every cell is trained with the training seeds base, base+1, ... and every
other setting of the base config shared, including the split seed and the probe
batch, so each run is scored and probed on the same data.

Three parts, no Qt:

- `ComparisonRunner` runs the Trainers one after another in the caller's thread (a
  GUI runs it in a background thread) through the sweeps' engine
  (workbench.sweep_engine: a comparison is a sweep over `cell`), which starts each
  through the run service (with the dataset opened once) so each is recorded as
  any run is; it tells
  its listeners every run's events plus the queue's own (`ComparisonStarted`,
  `QueuedRunStarted`, `QueuedRunFinished`, `ComparisonFinished`), and saves the
  comparison (which runs, which settings) so it reopens later.
- Storage: `<runs_dir>/_comparisons/<id>.json`, written atomically; `list_comparisons`,
  `open_comparison`. `list_runs` ignores the folder (it holds no run.json).
- Figures, pure numpy on detached data (`RunData`, built from a run folder or from a
  live run's events): `comparison_rows` (the table, mean and std across seeds),
  `loss_bands` (training and validation loss across seeds) and `gradient_profiles`
  (the latest probe's G_t, encoder then decoder).

Sequential, not parallel, and why (measured on the 2-core development machine, shared
with other work; figures and commands in docs/comparison-guide.md): the same two small
LSTM runs (hidden 64, 1 thread each) took, for 400-step runs, 6.8-8.2 s one after
another in one process against 8.9-10.6 s as two processes side by side (the second
process's start-up outweighs the gain); for 1500-step runs, 16.7-36.0 s (mean 25.3 s)
against 14.1-26.6 s (mean 22.2 s) over six pairs: 12% on average, less than the spread
between pairs, and won by taking CPU from the machine's other work. The GUI keeps one
of two cores for itself, so there a second worker has no core at all. So the queue runs
one Trainer at a time. On machines with four or more cores, worker processes pay: a
sweep (workbench.sweeps, `sweep --workers N`) runs its runs N at once in child processes
through the same engine.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workbench import baselines, summaries, units
from workbench.atomic import atomic_write_json
from workbench.config import RunConfig, validate_field
from workbench.errors import ConfigError, RunError
from workbench.events import (
    EpochMetrics,
    Event,
    Listener,
    ProbeEvent,
    RunFinished,
    RunStarted,
    StepMetrics,
    throughput,
)
from workbench.jsonsafe import json_safe as _json_safe
from workbench.run_ids import new_run_id
from workbench.run_layout import runs_root
from workbench.runs import LIVE_STATUSES, effective_status, iso_time, pid_alive
from workbench.smoothing import smooth

log = logging.getLogger(__name__)

COMPARISON_FORMAT = 1
COMPARISONS_DIR = "_comparisons"
DEFAULT_SEEDS = 3
FINAL_COMPARISON_STATUSES = ("completed", "cancelled", "failed")

# --- queue events ----------------------------------------------------------------------


@dataclass(frozen=True)
class ComparisonStarted:
    """The queue starts: `planned` runs, in the order of `plan` (cell, seed) pairs."""

    comparison_id: str
    planned: int
    cells: tuple[str, ...]
    seeds: tuple[int, ...]


@dataclass(frozen=True)
class QueuedRunStarted:
    """Run `index` (0-based) of `planned` starts; its own events follow."""

    comparison_id: str
    index: int
    planned: int
    cell: str
    seed: int
    run_id: str
    total_steps: int  # the run's step budget, for one progress display over the queue


@dataclass(frozen=True)
class QueuedRunFinished:
    """Run `index` ended with `status` (a RunFinished status)."""

    comparison_id: str
    index: int
    planned: int
    cell: str
    seed: int
    run_id: str
    status: str


@dataclass(frozen=True)
class ComparisonFinished:
    """The queue ended: "completed", "cancelled" (the rest skipped) or "failed"."""

    comparison_id: str
    status: str
    completed: int  # runs that ran to their end ("completed" status)
    planned: int
    message: str = ""


QueueEvent = ComparisonStarted | QueuedRunStarted | QueuedRunFinished | ComparisonFinished


def queue_fraction(index: int, step: int, total_steps: int, planned: int) -> float:
    """Progress of the whole queue in [0, 1]: runs done plus the share of the current one."""
    if planned <= 0:
        return 1.0
    within = min(max(step / total_steps, 0.0), 1.0) if total_steps > 0 else 0.0
    return min((index + within) / planned, 1.0)


# --- the plan ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedRun:
    """One run of the queue: the base config with its cell and training seed."""

    index: int
    cell: str
    seed: int
    config: RunConfig = field(compare=False)


def parse_cells(cells: str | Iterable[str]) -> tuple[str, ...]:
    """"rnn-tanh,gru" or a list -> checked cell names, in order, without repeats."""
    names = cells.split(",") if isinstance(cells, str) else list(cells)
    out: list[str] = []
    for name in names:
        if not str(name).strip():
            continue
        cell = validate_field("cell", name)
        if cell not in out:
            out.append(cell)
    if not out:
        raise ConfigError("cells = '' is not allowed: expected one or more of "
                          "rnn-tanh, rnn-relu, rnn-sigmoid, gru, lstm (comma-separated)")
    return tuple(out)


def seed_list(base: int, seeds: int | Sequence[int]) -> tuple[int, ...]:
    """A count n -> (base, base+1, ..., base+n-1); an explicit list is taken as is."""
    if isinstance(seeds, int):
        if seeds < 1:
            raise ConfigError(f"seeds = {seeds} is not allowed: expected 1 or more")
        return tuple(base + i for i in range(seeds))
    out = tuple(validate_field("seed", s) for s in seeds)
    if not out:
        raise ConfigError("seeds = [] is not allowed: expected 1 or more")
    return out


def cell_config(base: RunConfig, cell: str) -> RunConfig:
    """`base` with `cell`, validated. forget_bias (an LSTM's only gate bias) is kept for an
    LSTM and dropped for any other cell, so one config compares an LSTM with a set forget
    bias against cells that have no forget gate."""
    changes: dict[str, Any] = {"cell": cell}
    if cell != "lstm" and base.forget_bias is not None:
        changes["forget_bias"] = None
    return base.replace(**changes).validate()


def plan_runs(base: RunConfig, cells: Sequence[str], seeds: Sequence[int]) -> list[PlannedRun]:
    """The queue, seed-major: every cell with the first seed, then every cell with the next.

    So a comparison cancelled halfway still has every cell in its table.
    """
    plan: list[PlannedRun] = []
    for seed in seeds:
        for cell in cells:
            config = cell_config(base, cell).replace(seed=seed).validate()
            plan.append(PlannedRun(len(plan), cell, int(seed), config))
    return plan


# --- the runner --------------------------------------------------------------------------


class ComparisonRunner:
    """Train `cells` x `seeds` runs of `base`, one after another, in the calling thread.

    A comparison is a sweep over `cell` (workbench.sweeps reads it as one): its runs go
    through the sweeps' engine (workbench.sweep_engine.LocalEngine), so each starts
    through the run service and is recorded as any run is. `listeners` receive every
    run's Trainer events and the queue events above. `request_cancel()` (any thread)
    stops the current run and skips the rest. A run that cannot start (a setting its
    cell refuses, memory) or fails is recorded with its message and the queue goes on.
    The dataset is opened once (split seed and validation share from `base`), unless an
    open `dataset` is given. `thread_policy` is the Trainer's ("gui" leaves a core to
    the GUI).

    `forget_bias` is an LSTM's only: in a comparison of several cells it is kept for the
    LSTM's runs and dropped (torch's bias) for the other cells' (see `plan_runs`).
    """

    def __init__(self, base: RunConfig, cells: str | Sequence[str],
                 seeds: int | Sequence[int] = DEFAULT_SEEDS, *,
                 listeners: Sequence[Listener] = (), runs_dir: str | Path | None = None,
                 name: str | None = None, dataset: Any | None = None,
                 thread_policy: str = "cli") -> None:
        from workbench.sweep_engine import LocalEngine

        self.cells = parse_cells(cells)
        self.base = cell_config(base, self.cells[0])  # as recorded: the first cell
        self.seeds = seed_list(self.base.seed, seeds)
        self.plan = plan_runs(base, self.cells, self.seeds)
        self.listeners = list(listeners)
        self._dataset = dataset
        self._open: Any | None = None
        self.engine = LocalEngine(runs_dir, listeners=self.listeners,
                                  thread_policy=thread_policy,
                                  dataset_for=lambda _config: self._open)
        self.service = self.engine.service  # where every run of the queue starts
        self.runs_dir = self.service.runs_dir
        self.name = name
        self.thread_policy = thread_policy
        self._completed = 0
        self.comparison_id = ""
        self.record: dict[str, Any] = {}

    # -- thread-safe controls --------------------------------------------------------------

    def request_cancel(self) -> None:
        """Stop the current run (it ends "stopped") and start no other (any thread)."""
        self.engine.request_cancel()

    @property
    def cancel_requested(self) -> bool:
        return self.engine.cancel_requested

    @property
    def current_trainer(self) -> Any | None:
        """The Trainer of the run in progress (None between runs): for pause and resume."""
        return self.engine.current_trainer

    # the names workbench.cli.train.stop_on_interrupt expects of what it stops
    request_stop = request_cancel

    @property
    def stop_requested(self) -> bool:
        return self.cancel_requested

    # -- the queue -------------------------------------------------------------------------

    def run(self) -> Comparison:
        """Run the queue; return the saved comparison. Errors propagate after it is saved."""
        from workbench.sweep_engine import EngineJob

        self._start_record()
        self._emit(ComparisonStarted(self.comparison_id, len(self.plan), self.cells, self.seeds))
        status, message, self._completed = "completed", "", 0
        jobs = [EngineJob(p.index, p.config, f"{p.cell} seed {p.seed}") for p in self.plan]
        try:
            with self._open_dataset() as dataset:
                self._open = dataset
                self.engine.run(jobs, self)
            if self.engine.cancel_requested:
                status, message = "cancelled", "cancelled: the remaining runs were not started"
        except BaseException as exc:
            status, message = "failed", f"{type(exc).__name__}: {exc}"
            self._finish(status, message, self._completed)
            raise
        finally:
            self._open = None
        self._finish(status, message, self._completed)
        return open_comparison(self.comparison_id, self.runs_dir)

    def _open_dataset(self) -> contextlib.AbstractContextManager[Any]:
        if self._dataset is not None:
            return contextlib.nullcontext(self._dataset)
        from workbench.run_service import open_run_data

        return open_run_data(self.base)

    # the engine's callbacks (workbench.sweep_engine.EngineCallbacks), in the queue's thread

    def job_started(self, job: Any, run_id: str, total_steps: int) -> None:
        planned = self.plan[job.index]
        entry = self.record["runs"][planned.index]
        entry.update(run_id=run_id, status="running")
        self._save()
        self._emit(QueuedRunStarted(self.comparison_id, planned.index, len(self.plan),
                                    planned.cell, planned.seed, run_id, total_steps))

    def job_finished(self, job: Any, outcome: Any) -> None:
        planned = self.plan[job.index]
        if outcome.status == "skipped":
            return  # cancelled before it started: _finish marks it
        entry = self.record["runs"][planned.index]
        entry["status"] = outcome.status
        if outcome.message:
            entry["message"] = outcome.message
        self._save()
        if outcome.status == "completed":
            self._completed += 1
        self._emit(QueuedRunFinished(self.comparison_id, planned.index, len(self.plan),
                                     planned.cell, planned.seed, outcome.run_id or "",
                                     outcome.status))

    # -- the record ------------------------------------------------------------------------

    def _start_record(self) -> None:
        folder = comparisons_dir(self.runs_dir)
        folder.mkdir(parents=True, exist_ok=True)
        while True:
            self.comparison_id = new_run_id("compare")
            if not (folder / f"{self.comparison_id}.json").exists():
                break
        now = time.time()
        self.record = {
            "format": COMPARISON_FORMAT,
            "comparison_id": self.comparison_id,
            "name": self.name or " vs ".join(self.cells),
            "created": now,
            "created_iso": iso_time(now),
            "finished_iso": None,
            "status": "running",
            "message": "",
            "cells": list(self.cells),
            "seeds": list(self.seeds),
            "base_config": self.base.to_dict(),
            "runs": [{"index": p.index, "cell": p.cell, "seed": p.seed, "run_id": None,
                      "status": "planned"} for p in self.plan],
            "pid": os.getpid(),
            "host": socket.gethostname(),
        }
        self._save()

    def _finish(self, status: str, message: str, completed: int) -> None:
        self.record.update(status=status, message=message, finished_iso=iso_time(time.time()))
        for entry in self.record["runs"]:
            if entry["status"] == "planned":
                entry["status"] = "skipped"
        with contextlib.suppress(OSError):
            self._save()
        self._emit(ComparisonFinished(self.comparison_id, status, completed, len(self.plan),
                                      message))

    def _save(self) -> None:
        path = comparisons_dir(self.runs_dir) / f"{self.comparison_id}.json"
        atomic_write_json(path, _json_safe(self.record))

    def _emit(self, event: QueueEvent) -> None:
        """Send a queue event to every listener; one that raises is logged, the queue goes on."""
        for listener in self.listeners:
            try:
                listener.on_event(event)  # type: ignore[arg-type]
            except Exception:  # noqa: BLE001 - a listener must not kill the queue
                log.warning("listener %s raised on %s", type(listener).__name__,
                            type(event).__name__, exc_info=True)


# --- saved comparisons -----------------------------------------------------------------------


def comparisons_dir(runs_dir: str | Path | None = None) -> Path:
    """Where a runs directory's comparisons are saved: `<runs_dir>/_comparisons`."""
    root = runs_root(runs_dir)
    return root / COMPARISONS_DIR


@dataclass(frozen=True)
class ComparisonEntry:
    """One planned run of a saved comparison (run_id None when it never started)."""

    index: int
    cell: str
    seed: int
    run_id: str | None
    status: str  # planned, running, completed, stopped, diverged, failed, skipped


@dataclass(frozen=True)
class Comparison:
    """A saved comparison, read back: which runs, with which settings."""

    path: Path
    comparison_id: str
    name: str
    status: str  # running, completed, cancelled, failed; "crashed" if its process is gone
    message: str
    created_iso: str
    finished_iso: str | None
    cells: tuple[str, ...]
    seeds: tuple[int, ...]
    base_config: dict[str, Any]
    entries: tuple[ComparisonEntry, ...]

    @property
    def runs_dir(self) -> Path:
        """The runs directory its runs are in (the comparisons folder's parent)."""
        return self.path.parent.parent

    def config(self) -> RunConfig:
        """The base config (cell and seed of the first run): what every run shares."""
        return RunConfig.from_dict(self.base_config)

    @property
    def run_ids(self) -> tuple[str, ...]:
        return tuple(e.run_id for e in self.entries if e.run_id)

    def open_runs(self) -> list[Any]:
        """The runs that started and still exist (workbench.runs.Run), in queue order."""
        from workbench.runs import open_run

        runs = []
        for run_id in self.run_ids:
            with contextlib.suppress(RunError):
                runs.append(open_run(run_id, self.runs_dir))
        return runs

    def run_data(self) -> list[RunData]:
        """Each existing run's figures (RunData), in queue order."""
        return [RunData.from_run(run) for run in self.open_runs()]

    def table(self) -> ComparisonTable:
        return comparison_rows(self.run_data(), cells=self.cells)

    def to_json(self) -> dict[str, Any]:
        return _json_safe({
            "comparison_id": self.comparison_id, "name": self.name, "status": self.status,
            "message": self.message, "created_iso": self.created_iso,
            "finished_iso": self.finished_iso, "cells": list(self.cells),
            "seeds": list(self.seeds), "runs": len(self.run_ids), "planned": len(self.entries),
            "path": str(self.path),
        })


def _read_comparison(path: Path) -> Comparison:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunError(f"{path} is not a readable comparison: {exc}") from None
    if not isinstance(data, dict) or data.get("format", 0) > COMPARISON_FORMAT:
        raise RunError(f"{path} is not a comparison this version reads "
                       f"(format {data.get('format') if isinstance(data, dict) else '?'})")
    try:
        entries = tuple(ComparisonEntry(int(e["index"]), str(e["cell"]), int(e["seed"]),
                                        e.get("run_id"), str(e.get("status", "")))
                        for e in data.get("runs", []))
        return Comparison(
            path=path, comparison_id=str(data["comparison_id"]),
            name=str(data.get("name") or data["comparison_id"]),
            status=_effective_status(data), message=str(data.get("message") or ""),
            created_iso=str(data.get("created_iso", "")), finished_iso=data.get("finished_iso"),
            cells=tuple(data.get("cells", [])), seeds=tuple(int(s) for s in data.get("seeds", [])),
            base_config=dict(data.get("base_config") or {}), entries=entries)
    except (KeyError, TypeError, ValueError) as exc:
        raise RunError(f"{path} is not a readable comparison: missing or bad {exc}") from None


def _effective_status(data: dict[str, Any]) -> str:
    """A "running" comparison whose process (on this host) is gone reads "crashed"."""
    status = str(data.get("status", "crashed"))
    if status != "running" or data.get("host") != socket.gethostname():
        return status
    pid = data.get("pid")
    return "crashed" if isinstance(pid, int) and not pid_alive(pid) else status


def list_comparisons(runs_dir: str | Path | None = None) -> list[Comparison]:
    """The saved comparisons of a runs directory, oldest first (ids sort by time)."""
    folder = comparisons_dir(runs_dir)
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.glob("*.json")):
        if path.name.startswith("."):
            continue
        with contextlib.suppress(RunError):
            out.append(_read_comparison(path))
    return out


def open_comparison(comparison_id_or_path: str | Path,
                    runs_dir: str | Path | None = None) -> Comparison:
    """A saved comparison by id (in `runs_dir`) or by the path of its JSON file."""
    candidate = Path(comparison_id_or_path)
    if candidate.suffix == ".json" and candidate.is_file():
        return _read_comparison(candidate)
    path = comparisons_dir(runs_dir) / f"{comparison_id_or_path}.json"
    if not path.is_file():
        raise RunError(f"no comparison {str(comparison_id_or_path)!r} in {path.parent}")
    return _read_comparison(path)


# --- one run's figures, detached ---------------------------------------------------------------


@dataclass(frozen=True)
class RunData:
    """What the comparison figures need of one run: plain numbers and the last probe."""

    run_id: str
    cell: str
    seed: int | None
    status: str
    parameters: int | None
    seconds: float
    sequences: int
    steps: tuple[StepMetrics, ...]
    epochs: tuple[EpochMetrics, ...]
    probe: ProbeEvent | None
    layers: int = 1
    best_by: str = summaries.LEGACY_BEST_BY  # which validation loss picked `best`
    baselines: dict[str, Any] | None = None  # the run's record (workbench.baselines)
    data_factor: float | None = None  # normalised MSE -> data units² (workbench.units)
    kind: str = "continuous"  # of the targets

    @classmethod
    def from_run(cls, run: Any) -> RunData:
        """From a run folder (workbench.runs.Run)."""
        status = run.status_record()
        history = run.history()
        steps = tuple(history.steps)
        config = run.config_dict()
        seconds = float(status.get("seconds") or (steps[-1].seconds if steps else 0.0))
        return cls(run_id=run.run_id, cell=run.cell,
                   seed=config.get("training", {}).get("seed"),
                   status=effective_status(status, stale_after=run.stale_after),
                   parameters=run.meta.get("parameters"), seconds=seconds,
                   sequences=steps[-1].sequences if steps else 0, steps=steps,
                   epochs=tuple(history.epochs), probe=history.last_probe(),
                   layers=int(config.get("model", {}).get("layers", 1)),
                   **_honest(run.meta, config))

    @classmethod
    def from_events(cls, events: Iterable[Event]) -> RunData:
        """From a run's events (a live run's RecordingListener, or Run.events())."""
        started: RunStarted | None = None
        finished: RunFinished | None = None
        steps: list[StepMetrics] = []
        epochs: list[EpochMetrics] = []
        probe: ProbeEvent | None = None
        for event in events:
            if isinstance(event, RunStarted):
                started = event
            elif isinstance(event, StepMetrics):
                steps.append(event)
            elif isinstance(event, EpochMetrics):
                epochs.append(event)
            elif isinstance(event, ProbeEvent):
                probe = event
            elif isinstance(event, RunFinished):
                finished = event
        if started is None:
            raise RunError("a run's events must begin with RunStarted")
        config = started.config
        seconds = finished.seconds if finished else (steps[-1].seconds if steps else 0.0)
        return cls(run_id=started.run_id, cell=config.get("model", {}).get("cell", ""),
                   seed=config.get("training", {}).get("seed"),
                   status=finished.status if finished else "running",
                   parameters=started.parameters, seconds=float(seconds),
                   sequences=steps[-1].sequences if steps else 0, steps=tuple(steps),
                   epochs=tuple(epochs), probe=probe,
                   layers=int(config.get("model", {}).get("layers", 1)),
                   **_honest({"dataset": started.dataset,
                              "normalization": started.normalization}, config))

    # -- the figures -----------------------------------------------------------------------

    def best_epoch(self) -> EpochMetrics | None:
        """The epoch of the best checkpoint: the lowest validation loss by `best_by`."""
        return summaries.best_epoch(self.epochs, self.best_by)

    def figures(self) -> dict[str, float | None]:
        """The table's per-run values (None where not defined); see COLUMNS and
        EXTRA_COLUMNS."""
        best = self.best_epoch()
        return {**self._model_figures(best), **self._extra_figures(best)}

    def _extra_figures(self, best: EpochMetrics | None) -> dict[str, float | None]:
        """The best epoch's losses in data units² and the baselines (normalised and data
        units; tokens: cross-entropy and token accuracy)."""
        scores = (self.baselines or {}).get("scores") or {}
        out: dict[str, float | None] = {
            "best_val_loss_data": units.in_data_units(best.val_loss if best else None,
                                                      self.data_factor),
            "val_loss_free_running_data": units.in_data_units(
                best.val_loss_free_running if best else None, self.data_factor)}
        for name in baselines.LOSS_NAMES:
            entry = scores.get(name) or {}
            out[name] = entry.get("normalized")
            out[f"{name}_data"] = entry.get("data")
        for name in baselines.TOKEN_NAMES:
            entry = scores.get(name) or {}
            out[name] = entry.get("loss")
            out[f"{name}_accuracy"] = entry.get("token_accuracy")
        if self.kind == "tokens":  # token data: no loss is in "data units"
            out["best_val_loss_data"] = out["val_loss_free_running_data"] = None
        return out

    def _model_figures(self, best: EpochMetrics | None) -> dict[str, float | None]:
        return {
            "seconds": self.seconds if self.steps else None,
            "sequences_per_second": throughput(self.sequences, self.seconds),
            "best_val_loss": best.val_loss if best else None,
            "val_loss_free_running": best.val_loss_free_running if best else None,
            "token_accuracy": best.token_accuracy if best else None,
            "sequence_accuracy": best.sequence_accuracy if best else None,
            "vanishing_ratio": vanishing_ratio(self.probe),
            "spectral_radius": encoder_spectral_radius(self.probe, self.layers),
        }


def vanishing_ratio(probe: ProbeEvent | None) -> float | None:
    """G_1 / G_T of the encoder's top layer: how much of the loss's gradient reaches the
    first input step relative to the last. ~1: it carries through; << 1: it vanishes."""
    if probe is None or probe.encoder_grad_norms is None:
        return None
    top = np.asarray(probe.encoder_grad_norms, dtype=np.float64)
    top = top[-1] if top.ndim == 2 else top
    if top.size == 0:
        return None
    first, last = float(top[0]), float(top[-1])
    if not (math.isfinite(first) and math.isfinite(last)) or last <= 0.0:
        return None
    return first / last


def encoder_spectral_radius(probe: ProbeEvent | None, layers: int | None = None) -> float | None:
    """The spectral radius of the encoder's top-layer recurrent weights W_hh.

    Vanilla RNN: of W_hh. Gated cells (LSTM i, f, g, o; GRU r, z, n): the largest over
    the H x H gate blocks of W_hh, the block that can amplify most. Keys are the
    probe's ("encoder.layer0" or "encoder.layer0.f"); `layers` picks the top layer
    (default: the highest the probe has).
    """
    if probe is None or not probe.spectral_radius:
        return None
    if layers is None:
        layers = 1 + max((_layer_of(k) for k in probe.spectral_radius
                          if k.startswith("encoder.layer")), default=0)
    prefix = f"encoder.layer{layers - 1}"
    values = [v for k, v in probe.spectral_radius.items()
              if (k == prefix or k.startswith(prefix + ".")) and math.isfinite(v)]
    return max(values) if values else None


def _layer_of(key: str) -> int:
    try:
        return int(key.split(".")[1].removeprefix("layer"))
    except (IndexError, ValueError):
        return 0


# --- the table ----------------------------------------------------------------------------------


COLUMNS: tuple[str, ...] = (
    "seconds", "sequences_per_second", "best_val_loss", "val_loss_free_running",
    "token_accuracy", "sequence_accuracy", "vanishing_ratio", "spectral_radius",
)
# beside the model's figures: its losses in data units² and the baselines' (normalised
# and data units for continuous targets; cross-entropy and accuracy for tokens), the same
# for every seed of a comparison (one data set, one split)
EXTRA_COLUMNS: tuple[str, ...] = (
    "best_val_loss_data", "val_loss_free_running_data",
    "persistence", "persistence_data", "seasonal_persistence", "seasonal_persistence_data",
    "mean", "mean_data", "chance", "chance_accuracy", "majority", "majority_accuracy",
)
LOSS_COLUMNS = ("best_val_loss", "val_loss_free_running", "persistence",
                "seasonal_persistence", "mean", "chance", "majority")  # in the losses' units
DATA_COLUMNS = tuple(c for c in EXTRA_COLUMNS if c.endswith("_data"))  # in data units²
COLUMN_TITLES: dict[str, str] = {
    "seconds": "wall time (s)", "sequences_per_second": "sequences/s",
    "best_val_loss": "best val loss (teacher-forced)",
    "val_loss_free_running": "best val loss (free-running)",
    "best_val_loss_data": "best val loss (teacher-forced)",
    "val_loss_free_running_data": "best val loss (free-running)",
    "persistence": "baseline: persistence", "persistence_data": "baseline: persistence",
    "seasonal_persistence": "baseline: seasonal persistence",
    "seasonal_persistence_data": "baseline: seasonal persistence",
    "mean": "baseline: training mean", "mean_data": "baseline: training mean",
    "chance": "baseline: chance", "chance_accuracy": "baseline: chance, token accuracy",
    "majority": "baseline: majority token",
    "majority_accuracy": "baseline: majority token, token accuracy",
    "token_accuracy": "token accuracy", "sequence_accuracy": "sequence accuracy",
    "vanishing_ratio": "G_1/G_T (encoder)", "spectral_radius": "spectral radius (encoder)",
}


@dataclass(frozen=True)
class Stat:
    """Mean and sample std (ddof 1) across seeds of the defined values; None where
    not defined (std needs two values)."""

    mean: float | None
    std: float | None
    values: tuple[float | None, ...]  # per seed, in run order

    @classmethod
    def of(cls, values: Sequence[float | None]) -> Stat:
        finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
        mean = float(np.mean(finite)) if finite else None
        std = float(np.std(finite, ddof=1)) if len(finite) > 1 else None
        return cls(mean, std, tuple(None if v is None else float(v) for v in values))


@dataclass(frozen=True)
class ComparisonRow:
    """One cell of a comparison: its runs and each figure's mean and std across seeds."""

    cell: str
    run_ids: tuple[str, ...]
    seeds: tuple[int | None, ...]
    statuses: tuple[str, ...]
    parameters: int | None
    stats: dict[str, Stat]  # COLUMNS and EXTRA_COLUMNS -> Stat
    best_by: str = summaries.LEGACY_BEST_BY
    beats: dict[str, bool | None] = field(default_factory=dict)  # by the means across seeds
    notes: tuple[str, ...] = ()  # the baselines the cell does not beat

    @property
    def running(self) -> int:
        """Runs of this cell still training: not in its figures until they end."""
        return sum(status in LIVE_STATUSES for status in self.statuses)

    @property
    def counted_seeds(self) -> tuple[int | None, ...]:
        """The seeds whose runs the figures (`stats`) are of, in their order."""
        return tuple(seed for seed, status in zip(self.seeds, self.statuses)
                     if status not in LIVE_STATUSES)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"cell": self.cell, "run_ids": list(self.run_ids),
                               "seeds": list(self.seeds), "statuses": list(self.statuses),
                               "parameters": self.parameters, "best_by": self.best_by}
        for name in (*COLUMNS, *EXTRA_COLUMNS):
            stat = self.stats[name]
            out[f"{name}_mean"] = stat.mean
            out[f"{name}_std"] = stat.std
        out["per_seed"] = {name: list(self.stats[name].values) for name in COLUMNS}
        out["beats"] = dict(self.beats)
        out["beats_persistence"] = self.beats.get("persistence")
        out["notes"] = list(self.notes)
        return _json_safe(out)


@dataclass(frozen=True)
class ComparisonTable:
    """The comparison's table: one row per cell, in the order the cells were given."""

    rows: tuple[ComparisonRow, ...]
    columns: tuple[str, ...] = COLUMNS
    extra_columns: tuple[str, ...] = EXTRA_COLUMNS
    kind: str = "continuous"  # of the targets: the losses' unit

    def unit(self, name: str) -> str:
        """The unit of a column's figures ("" for those that are no loss)."""
        if name in DATA_COLUMNS:
            return units.short_unit(self.kind, "data")
        return units.short_unit(self.kind) if name in LOSS_COLUMNS else ""

    def title(self, name: str) -> str:
        unit = self.unit(name)
        return f"{COLUMN_TITLES[name]} [{unit}]" if unit else COLUMN_TITLES[name]

    def row(self, cell: str) -> ComparisonRow:
        for row in self.rows:
            if row.cell == cell:
                return row
        raise KeyError(cell)

    def to_json(self) -> list[dict[str, Any]]:
        return [row.to_json() for row in self.rows]

    def to_text(self) -> str:
        """A plain-text table: one column per cell, each figure as mean +/- std, each loss
        with its unit; then the extra figures that any cell has (losses in data units²,
        baselines: one value, the same for every seed), which loss picked the best
        epoch, and a note per cell for each baseline it does not beat."""
        width = max([22, *(len(r.cell) + 2 for r in self.rows)])
        label = max([26, *(len(self.title(n)) + 2 for n in (*self.columns, *self.extra_columns))])
        lines = [f"{'':<{label}}" + "".join(f"{r.cell:>{width}}" for r in self.rows)]
        lines.append(f"{'runs':<{label}}" + "".join(f"{len(r.run_ids):>{width}}" for r in self.rows))
        lines.append(f"{'parameters':<{label}}" + "".join(
            f"{_fmt(r.parameters):>{width}}" for r in self.rows))
        for name in self.columns:
            cells = "".join(f"{_fmt_stat(r.stats[name]):>{width}}" for r in self.rows)
            lines.append(f"{self.title(name):<{label}}{cells}")
        for name in self.extra_columns:
            if all(r.stats[name].mean is None for r in self.rows):
                continue
            baseline = name not in ("best_val_loss_data", "val_loss_free_running_data")
            cells = "".join(f"{(_fmt(r.stats[name].mean) if baseline else _fmt_stat(r.stats[name])):>{width}}"
                            for r in self.rows)
            lines.append(f"{self.title(name):<{label}}{cells}")
        by = sorted({r.best_by for r in self.rows if r.run_ids})
        if by:
            lines.append(f"{'best epoch by':<{label}}{', '.join(by)} (the best val losses are "
                         "that epoch's, the checkpoint evaluate uses)")
        lines.extend(f"note: {r.cell}: {note}" for r in self.rows for note in r.notes)
        return "\n".join(lines)


def comparison_rows(runs: Iterable[Any], cells: Sequence[str] | None = None) -> ComparisonTable:
    """The table of a comparison from its runs (RunData, or Run folders, any order).

    Rows follow `cells` when given (a cell without runs gets an empty row), else the
    order cells first appear in. A run still training (running or paused) is listed in
    its row but left out of the figures: a mean ± std over runs that have ended only.
    """
    grouped = _group(runs)
    order = list(cells) if cells is not None else list(grouped)
    rows = []
    kinds = set()
    for cell in order:
        members = grouped.get(cell, [])
        kinds.update(m.kind for m in members)
        figures = [m.figures() for m in members if m.status not in LIVE_STATUSES]
        params = [m.parameters for m in members if m.parameters is not None]
        stats = {name: Stat.of([f[name] for f in figures]) for name in (*COLUMNS, *EXTRA_COLUMNS)}
        record = next((m.baselines for m in members if m.baselines), None)
        verdict = baselines.judge(record, loss_free_running=stats["val_loss_free_running"].mean,
                                  loss=stats["best_val_loss"].mean,
                                  token_accuracy=stats["token_accuracy"].mean)
        rows.append(ComparisonRow(
            cell=cell, run_ids=tuple(m.run_id for m in members),
            seeds=tuple(m.seed for m in members), statuses=tuple(m.status for m in members),
            parameters=int(params[0]) if params else None, stats=stats,
            best_by=members[0].best_by if members else summaries.LEGACY_BEST_BY,
            beats=verdict.beats, notes=verdict.notes))
    kind = "tokens" if kinds == {"tokens"} else "continuous"
    return ComparisonTable(tuple(rows), kind=kind)


def _honest(meta: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """RunData's fields about units, best_by and baselines, from run.json (or a RunStarted's
    dataset and normalization) and the config."""
    dataset = meta.get("dataset") if isinstance(meta.get("dataset"), dict) else {}
    kind = units.target_kind(dataset)
    return {"best_by": summaries.recorded_best_by(config), "baselines": baselines.recorded(meta),
            "data_factor": units.data_unit_factor(meta.get("normalization"))
            if kind == "continuous" else None, "kind": kind}


def _as_data(run: Any) -> RunData:
    return run if isinstance(run, RunData) else RunData.from_run(run)


def _group(runs: Iterable[Any]) -> dict[str, list[RunData]]:
    grouped: dict[str, list[RunData]] = {}
    for run in runs:
        data = _as_data(run)
        grouped.setdefault(data.cell, []).append(data)
    return grouped


# --- loss bands -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Band:
    """A curve across seeds on common x values: per-seed values and their spread."""

    x: np.ndarray  # (N,) steps (training) or epochs (validation)
    per_seed: np.ndarray  # (seeds, N)
    mean: np.ndarray
    minimum: np.ndarray
    maximum: np.ndarray
    std: np.ndarray  # sample std (ddof 1); NaN with one seed

    @classmethod
    def of(cls, x: np.ndarray, per_seed: np.ndarray) -> Band:
        """`per_seed`: one row per seed, one column per x; with no common x yet (a live
        run before its first epoch) every array is empty."""
        x = np.asarray(x)
        per_seed = np.asarray(per_seed, dtype=np.float64)
        per_seed = per_seed.reshape(-1, len(x)) if len(x) else np.empty((len(per_seed), 0))
        with np.errstate(all="ignore"), _quiet_nan_warnings():
            std = (np.nanstd(per_seed, axis=0, ddof=1) if per_seed.shape[0] > 1
                   else np.full(len(x), np.nan))
            return cls(x, per_seed, np.nanmean(per_seed, axis=0),
                       np.nanmin(per_seed, axis=0), np.nanmax(per_seed, axis=0), std)


@dataclass(frozen=True)
class LossBand:
    """One cell's losses across seeds.

    train: training loss per step on the steps every seed has (raw, or the debiased
    EMA of `smoothing`); val / val_free_running: validation losses per epoch on
    the epochs every seed has, with `val_steps` the step each epoch ended at (first run).
    """

    cell: str
    run_ids: tuple[str, ...]
    train: Band
    val: Band
    val_free_running: Band
    val_steps: np.ndarray


def loss_bands(runs: Iterable[Any], smoothing: float = 0.0,
               cells: Sequence[str] | None = None) -> dict[str, LossBand]:
    """Per cell, the training and validation loss curves across seeds, aligned.

    Steps (and epochs) are aligned by number: a band covers those every seed reached.
    `smoothing` in [0, 1) is TensorBoard's debiased EMA weight (0: raw).
    """
    if not 0.0 <= smoothing < 1.0:
        raise ConfigError(f"smoothing = {smoothing} is not allowed: expected 0 <= s < 1")
    grouped = _group(runs)
    out: dict[str, LossBand] = {}
    for cell in (cells if cells is not None else list(grouped)):
        members = grouped.get(cell, [])
        train_curves = [({s.step: s.loss for s in m.steps}) for m in members]
        steps = _common_keys(train_curves)
        train = np.array([smooth([c[s] for s in steps], smoothing) for c in train_curves])
        val_curves = [{e.epoch: e for e in m.epochs} for m in members]
        epochs = _common_keys(val_curves)
        val = np.array([[c[e].val_loss for e in epochs] for c in val_curves])
        free = np.array([[c[e].val_loss_free_running for e in epochs] for c in val_curves])
        val_steps = (np.array([val_curves[0][e].step for e in epochs], dtype=np.int64)
                     if members else np.zeros(0, dtype=np.int64))
        out[cell] = LossBand(cell, tuple(m.run_id for m in members),
                             Band.of(steps, train), Band.of(epochs, val),
                             Band.of(epochs, free), val_steps)
    return out


def _common_keys(curves: Sequence[dict[int, Any]]) -> np.ndarray:
    if not curves:
        return np.zeros(0, dtype=np.int64)
    common = set(curves[0])
    for curve in curves[1:]:
        common &= set(curve)
    return np.array(sorted(common), dtype=np.int64)


# --- gradient profiles ------------------------------------------------------------------------------


@dataclass(frozen=True)
class GradientProfile:
    """One cell's G_t at each seed's latest probe (top layer), encoder then decoder.

    encoder_per_seed (seeds, T_in), decoder_per_seed (seeds, T_out); the means are
    arithmetic means across seeds (NaN where a step has no finite value). `probe_steps`:
    the training step of each seed's probe. Seeds without a probe are left out.
    """

    cell: str
    run_ids: tuple[str, ...]
    probe_steps: tuple[int, ...]
    encoder_per_seed: np.ndarray
    decoder_per_seed: np.ndarray
    encoder_mean: np.ndarray
    decoder_mean: np.ndarray

    @property
    def mean(self) -> np.ndarray:
        """(T_in + T_out,) encoder steps then decoder steps."""
        return np.concatenate([self.encoder_mean, self.decoder_mean])

    @property
    def per_seed(self) -> np.ndarray:
        """(seeds, T_in + T_out)."""
        return np.concatenate([self.encoder_per_seed, self.decoder_per_seed], axis=1)


def gradient_profiles(runs: Iterable[Any],
                      cells: Sequence[str] | None = None) -> dict[str, GradientProfile]:
    """Per cell, the latest probe's per-step gradient norms G_t, per seed and mean."""
    grouped = _group(runs)
    out: dict[str, GradientProfile] = {}
    for cell in (cells if cells is not None else list(grouped)):
        probed = [m for m in grouped.get(cell, []) if m.probe is not None]
        enc = _stack([_top(m.probe.encoder_grad_norms) for m in probed])  # type: ignore[union-attr]
        dec = _stack([_top(m.probe.decoder_grad_norms) for m in probed])  # type: ignore[union-attr]
        out[cell] = GradientProfile(
            cell, tuple(m.run_id for m in probed),
            tuple(m.probe.step for m in probed),  # type: ignore[union-attr]
            enc, dec, _nanmean(enc), _nanmean(dec))
    return out


def _top(norms: np.ndarray | None) -> np.ndarray:
    array = np.asarray(norms if norms is not None else [], dtype=np.float64)
    return array[-1] if array.ndim == 2 else array


def _stack(rows: list[np.ndarray]) -> np.ndarray:
    if not rows:
        return np.zeros((0, 0))
    width = max(len(r) for r in rows)
    out = np.full((len(rows), width), np.nan)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def _nanmean(array: np.ndarray) -> np.ndarray:
    if array.shape[0] == 0:
        return np.zeros(array.shape[1])
    with np.errstate(all="ignore"), _quiet_nan_warnings():
        return np.nanmean(array, axis=0)


# --- small helpers ------------------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet_nan_warnings():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _fmt_stat(stat: Stat) -> str:
    if stat.mean is None:
        return "-"
    if stat.std is None:
        return _fmt(stat.mean)
    return f"{_fmt(stat.mean)} +/- {_fmt(stat.std)}"
