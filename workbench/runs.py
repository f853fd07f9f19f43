"""Run folders: the RunRecorder that writes them, and the functions that read them back.

A runs directory holds one folder per run, named by its id (see docs/run-format.md):

    run.json           who the run is: id, display name, cell, created, parameters,
                       dataset summary, threads, device, normalization (atomic rewrite)
    config.toml        the RunConfig it trains with (atomic rewrite)
    status.json        status + heartbeat, rewritten atomically every 2 s (HEARTBEAT_SECONDS)
    metrics.jsonl      append-only JSON lines: step, epoch and probe records
    probes/step-NNNNNNNNN.h5   one probe per file, written whole and renamed in
    checkpoints/latest.pt, best.pt   state dicts + plain metadata (atomic)

Everything a kill can interrupt is either append-only (a torn last line is
skipped on read) or written to a temporary file and renamed into place, so a run
reopens after a crash with everything up to the last flush. An opened run replays
its history as the Trainer's own events, so live and past runs draw the same way.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import math
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workbench.atomic import atomic_path, atomic_write_json, fsync_dir, remove_stale_temporaries
from workbench.checkpoints import ResumeState, load_checkpoint, load_weights, save_checkpoint
from workbench.config import RunConfig
from workbench.disk import disk_error_text
from workbench.errors import CheckpointError, ConfigError, OutputError, RunError
from workbench.events import (
    EpochMetrics,
    Event,
    Listener,
    ProbeEvent,
    RunFinished,
    RunStarted,
    RunStatus,
    StepMetrics,
)
from workbench.jsonsafe import json_safe
from workbench.run_ids import new_run_id
from workbench.run_layout import (
    CHECKPOINTS_DIR,
    CONFIG_TOML,
    METRICS_JSONL,
    PROBES_DIR,
    RUN_JSON,
    STATUS_JSON,
    checkpoint_path,
    create_run_dir,
    default_runs_dir,
    probe_file_name,
    resolve_run_dir,
    runs_root,
)

log = logging.getLogger(__name__)

RUN_FORMAT = 1
STALE_AFTER_SECONDS = 30.0
HEARTBEAT_SECONDS = 2.0
FLUSH_STEPS = 50
FLUSH_SECONDS = 1.0
LIVE_STATUSES = ("running", "paused")
FINAL_STATUSES = ("completed", "stopped", "diverged", "failed")
RESUMABLE_STATUSES = ("stopped", "crashed", "failed")  # "completed" too, given a larger budget

# this module's own names, then those of run_layout, run_ids and checkpoints that
# callers import from here (they lived here before those modules were split out)
__all__ = [
    "FINAL_STATUSES",
    "FLUSH_SECONDS",
    "FLUSH_STEPS",
    "HEARTBEAT_SECONDS",
    "LIVE_STATUSES",
    "RESUMABLE_STATUSES",
    "RUN_FORMAT",
    "Run",
    "RunHistory",
    "RunInfo",
    "RunRecorder",
    "STALE_AFTER_SECONDS",
    "UNREADABLE",
    "dataset_label",
    "default_display_name",
    "delete_run",
    "effective_status",
    "iso_time",
    "list_runs",
    "open_run",
    "open_runs",
    "pid_alive",
    "read_jsonl",
    "read_probe",
    "rename_run",
    "unique_name",
    "unreadable_info",
    "write_probe",
    "ResumeState",
    "load_checkpoint",
    "save_checkpoint",
    "new_run_id",
    "CHECKPOINTS_DIR",
    "CONFIG_TOML",
    "METRICS_JSONL",
    "PROBES_DIR",
    "RUN_JSON",
    "STATUS_JSON",
    "checkpoint_path",
    "create_run_dir",
    "default_runs_dir",
    "probe_file_name",
    "resolve_run_dir",
]


# --- small helpers ----------------------------------------------------------------------


def iso_time(timestamp: float) -> str:
    """A Unix time as local ISO 8601 to the second, with its UTC offset (run and comparison
    records use it)."""
    return _dt.datetime.fromtimestamp(timestamp, _dt.timezone.utc).astimezone().isoformat(
        timespec="seconds"
    )


def _float(value: Any) -> float:
    """A recorded number back to float (None, the JSON for NaN/inf, becomes NaN)."""
    return math.nan if value is None else float(value)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as handle:
            value = json.load(handle)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every whole record of a JSON-lines file; a torn or garbled line is skipped."""
    records: list[dict[str, Any]] = []
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return records
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            records.append(value)
    return records


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists on this host (True when that cannot be told)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def effective_status(status: dict[str, Any] | None, *, stale_after: float = STALE_AFTER_SECONDS,
                     now: float | None = None) -> str:
    """The status to show: a live status whose writer is gone reads as `crashed`.

    Gone means the heartbeat is older than `stale_after` seconds, or the writing
    process (same host) no longer exists.
    """
    if not status:
        return "crashed"
    value = str(status.get("status", "crashed"))
    if value not in LIVE_STATUSES:
        return value
    now = time.time() if now is None else now
    heartbeat = status.get("heartbeat")
    if not isinstance(heartbeat, (int, float)) or now - heartbeat > stale_after:
        return "crashed"
    pid = status.get("pid")
    if status.get("host") == socket.gethostname() and isinstance(pid, int) and not pid_alive(pid):
        return "crashed"
    return value


# --- probes on disk ---------------------------------------------------------------------


def write_probe(path: Path, event: ProbeEvent) -> None:
    """One probe as one small HDF5 file, written whole and renamed into place."""
    import h5py

    with atomic_path(path, fsync=False) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["step"] = event.step
        f.attrs["epoch"] = event.epoch
        f.attrs["seconds"] = event.seconds
        for name in ("encoder_grad_norms", "decoder_grad_norms", "encoder_hidden",
                     "decoder_hidden", "encoder_cell_grad_norms", "decoder_cell_grad_norms",
                     "attention_weights", "sample_source_lengths", "sample_target_lengths"):
            value = getattr(event, name)
            if value is not None:
                f.create_dataset(name, data=np.asarray(value))
        for name in ("sample_source_tokens", "sample_target_tokens"):
            value = getattr(event, name)
            if value is not None:
                f.create_dataset(name, data=np.asarray(value, dtype=object).astype(str).astype(
                    object), dtype=h5py.string_dtype())
        for group_name in ("gate_means", "gate_saturation"):
            group = f.create_group(group_name)
            for key, value in getattr(event, group_name).items():
                group.create_dataset(key, data=np.asarray(value))
        radius = f.create_group("spectral_radius")
        for key, value in event.spectral_radius.items():
            radius.attrs[key] = float(value)


def read_probe(path: Path) -> ProbeEvent:
    """A probe file back into the ProbeEvent that was recorded."""
    import h5py

    with h5py.File(path, "r") as f:
        def array(name: str) -> np.ndarray | None:
            return f[name][()] if name in f else None

        def strings(name: str) -> np.ndarray | None:
            return f[name].asstr()[()].astype(str) if name in f else None

        return ProbeEvent(
            step=int(f.attrs["step"]),
            epoch=int(f.attrs["epoch"]),
            encoder_grad_norms=array("encoder_grad_norms"),
            decoder_grad_norms=array("decoder_grad_norms"),
            encoder_hidden=array("encoder_hidden"),
            decoder_hidden=array("decoder_hidden"),
            encoder_cell_grad_norms=array("encoder_cell_grad_norms"),
            decoder_cell_grad_norms=array("decoder_cell_grad_norms"),
            gate_means={k: v[()] for k, v in f["gate_means"].items()},
            gate_saturation={k: v[()] for k, v in f["gate_saturation"].items()},
            spectral_radius={k: float(v) for k, v in f["spectral_radius"].attrs.items()},
            seconds=float(f.attrs["seconds"]),
            attention_weights=array("attention_weights"),  # absent: no attention, or older
            sample_source_lengths=array("sample_source_lengths"),
            sample_target_lengths=array("sample_target_lengths"),
            sample_source_tokens=strings("sample_source_tokens"),
            sample_target_tokens=strings("sample_target_tokens"),
        )


# --- the recorder -----------------------------------------------------------------------


class RunRecorder:
    """A Listener that writes a run folder while the Trainer runs.

    Metrics are buffered and appended (flushed at least every `flush_steps` steps,
    every `flush_seconds`, and at every epoch, probe and finish); status.json is
    rewritten atomically by a heartbeat thread every `heartbeat_seconds`, also while
    the trainer is paused or validating. It is also the Trainer's checkpointer
    (`save_checkpoint`), so metrics are flushed before each checkpoint is written.

    A write that fails (a full disk, a quota, a file-size limit, a folder made
    read-only) raises OutputError with one line naming the file, from the event or the
    checkpoint that needed it; one the heartbeat thread met is raised at the next event.
    The Trainer then ends the run as failed: the recorder never goes on silently with a
    record it cannot write. The run's end is recorded as far as there is room.

    `fingerprint` (SequenceDataset.fingerprint) goes into run.json as `data`; `resumed`
    (a resume's history note: the settings it changed, the data it was allowed to
    change) into the new segment of run.json and a `resumed` record of metrics.jsonl.
    """

    def __init__(self, run_dir: str | Path, *, name: str | None = None,
                 heartbeat_seconds: float = HEARTBEAT_SECONDS, flush_steps: int = FLUSH_STEPS,
                 flush_seconds: float = FLUSH_SECONDS, fingerprint: dict[str, Any] | None = None,
                 resumed: dict[str, Any] | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.name = name
        self.fingerprint = fingerprint
        self.resumed = resumed
        self._beat_error: OSError | None = None
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / CHECKPOINTS_DIR).mkdir(exist_ok=True)
        (self.run_dir / PROBES_DIR).mkdir(exist_ok=True)
        self.run_id = self.run_dir.name
        self.heartbeat_seconds = heartbeat_seconds
        self.flush_steps = flush_steps
        self.flush_seconds = flush_seconds
        self._lock = threading.RLock()
        self._pending: list[str] = []
        self._pending_steps = 0
        self._last_flush = time.monotonic()
        self._status: dict[str, Any] = {"status": "running", "step": 0, "epoch": 0,
                                        "seconds": 0.0, "best_val_loss": None, "message": ""}
        self._stop_beat = threading.Event()
        self._beat_thread: threading.Thread | None = None
        self._metrics = None
        self._closed = False

    # -- Listener --------------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        if isinstance(event, RunFinished):
            self._on_finished(event)
            return
        with self._writing(self.run_dir / STATUS_JSON):
            if self._beat_error is not None:
                raise self._beat_error
        with self._writing(self.run_dir):
            if isinstance(event, StepMetrics):
                self._on_step(event)
            elif isinstance(event, EpochMetrics):
                self._on_epoch(event)
            elif isinstance(event, ProbeEvent):
                self._on_probe(event)
            elif isinstance(event, RunStarted):
                self._on_started(event)
            elif isinstance(event, RunStatus):
                self._update_status(status=event.status, step=event.step, epoch=event.epoch)
                self.write_status()

    @contextlib.contextmanager
    def _writing(self, where: Path) -> Iterator[None]:
        """An OSError of the block as one line: OutputError naming the file (else `where`)."""
        try:
            yield
        except OutputError:
            raise
        except OSError as exc:
            raise OutputError(disk_error_text(exc, exc.filename or where)) from None

    def _on_started(self, event: RunStarted) -> None:
        remove_stale_temporaries(self.run_dir)
        remove_stale_temporaries(self.run_dir / CHECKPOINTS_DIR)
        remove_stale_temporaries(self.run_dir / PROBES_DIR)
        if event.resumed_from_step > 0 or (self.run_dir / METRICS_JSONL).exists():
            self._truncate_after(event.resumed_from_step)
        existing = _read_json(self.run_dir / RUN_JSON) or {}
        now = time.time()
        config = event.config
        model = config.get("model", {}) if isinstance(config, dict) else {}
        meta = {
            "format": RUN_FORMAT,
            "run_id": self.run_id,
            "name": self.name or existing.get("name") if existing.get("name") else unique_name(
                self.run_dir.parent, self.name or default_display_name(model, config, event.dataset),
                self.run_id),
            "cell": model.get("cell", ""),
            "created": existing.get("created", now),
            "created_iso": existing.get("created_iso", iso_time(now)),
            "parameters": event.parameters,
            "dataset": event.dataset,
            "threads": event.threads,
            "device": event.device,
            "model_config": event.model_config,
            "normalization": event.normalization,
            "segments": list(existing.get("segments", [])) + [
                {"started": iso_time(now), "from_step": event.resumed_from_step,
                 "threads": event.threads, "device": event.device, "pid": os.getpid(),
                 **({"warning": event.warning} if event.warning else {})}
            ],
        }
        if self.fingerprint is not None:
            meta["data"] = self.fingerprint
        elif existing.get("data") is not None:
            meta["data"] = existing["data"]
        if self.resumed:
            meta["segments"][-1].update(self.resumed)
        atomic_write_json(self.run_dir / RUN_JSON, json_safe(meta))
        with contextlib.suppress(ConfigError):
            RunConfig.from_dict(config).save(self.run_dir / CONFIG_TOML)
        previous = _read_json(self.run_dir / STATUS_JSON) or {}
        self._update_status(status="running", step=event.resumed_from_step,
                            epoch=previous.get("epoch", 0) if event.resumed_from_step else 0,
                            seconds=previous.get("seconds", 0.0) if event.resumed_from_step else 0.0,
                            best_val_loss=previous.get("best_val_loss") if event.resumed_from_step else None,
                            message="", started=iso_time(now))
        self._metrics = open(self.run_dir / METRICS_JSONL, "ab")  # noqa: SIM115 - kept open
        if self.resumed:
            with self._lock:
                self._pending.append(json.dumps(json_safe(
                    {"type": "resumed", "step": event.resumed_from_step, **self.resumed})))
            self.flush(fsync=True)
        self.write_status()
        self._start_heartbeat()

    def _on_step(self, event: StepMetrics) -> None:
        record = {"type": "step", **asdict(event)}
        with self._lock:
            self._pending.append(json.dumps(json_safe(record)))
            self._pending_steps += 1
            self._update_status(step=event.step, epoch=event.epoch, seconds=event.seconds,
                                sequences=event.sequences)
            due = (self._pending_steps >= self.flush_steps
                   or time.monotonic() - self._last_flush >= self.flush_seconds)
        if due:
            self.flush()

    def _on_epoch(self, event: EpochMetrics) -> None:
        with self._lock:
            self._pending.append(json.dumps(json_safe({"type": "epoch", **asdict(event)})))
            best = self._status.get("best_val_loss")
            if math.isfinite(event.val_loss) and (best is None or event.val_loss < best):
                self._status["best_val_loss"] = event.val_loss
            self._update_status(epoch=event.epoch, step=event.step)
        self.flush(fsync=True)
        self.write_status()

    def _on_probe(self, event: ProbeEvent) -> None:
        name = probe_file_name(event.step)
        with self._writing(self.run_dir / PROBES_DIR / name):
            write_probe(self.run_dir / PROBES_DIR / name, event)
        with self._lock:
            self._pending.append(json.dumps({"type": "probe", "step": event.step,
                                             "epoch": event.epoch, "file": f"{PROBES_DIR}/{name}"}))
        self.flush()

    def _on_finished(self, event: RunFinished) -> None:
        """The end, recorded as far as there is room: metrics first, then the status (the
        status is small: after a full disk it often still fits, and says why)."""
        self._update_status(status=event.status, message=event.message, step=event.step,
                            epoch=event.epoch, seconds=event.seconds, finished=iso_time(time.time()))
        self.close()
        try:
            self.write_status()
        except OSError as exc:
            log.info("could not record the end of run %s: %s", self.run_id, exc)

    # -- writing -------------------------------------------------------------------------

    def flush(self, fsync: bool = False) -> None:
        """Append the buffered records to metrics.jsonl (whole lines, one write)."""
        with self._lock, self._writing(self.run_dir / METRICS_JSONL):
            if self._metrics is None:
                return
            if self._pending:
                self._metrics.write(("\n".join(self._pending) + "\n").encode("utf-8"))
                self._metrics.flush()
                self._pending.clear()
                self._pending_steps = 0
            if fsync:
                os.fsync(self._metrics.fileno())
            self._last_flush = time.monotonic()

    def save_checkpoint(self, name: str, state: dict[str, Any]) -> Path:
        """Write checkpoints/<name>.pt atomically (metrics first, so none go missing);
        OutputError naming the file when it cannot be written (the previous one stays)."""
        path = checkpoint_path(self.run_dir, name)
        with self._writing(self.run_dir / METRICS_JSONL):
            self.flush(fsync=True)
        with self._writing(path):
            _save_checkpoint_file(path, state)
        return path

    def _update_status(self, **fields: Any) -> None:
        with self._lock:
            self._status.update(fields)

    def write_status(self) -> None:
        """Rewrite status.json atomically with a fresh heartbeat."""
        with self._lock, self._writing(self.run_dir / STATUS_JSON):
            now = time.time()
            status = dict(self._status, heartbeat=now, heartbeat_iso=iso_time(now),
                          pid=os.getpid(), host=socket.gethostname(), run_id=self.run_id)
            atomic_write_json(self.run_dir / STATUS_JSON, json_safe(status))

    def _start_heartbeat(self) -> None:
        if self._beat_thread is not None:
            return
        self._stop_beat.clear()
        self._beat_thread = threading.Thread(target=self._beat, name=f"heartbeat-{self.run_id}",
                                             daemon=True)
        self._beat_thread.start()

    def _beat(self) -> None:
        while not self._stop_beat.wait(self.heartbeat_seconds):
            try:
                self.write_status()
            except OSError as exc:  # raised in the training thread at the next event
                if self._beat_error is None:
                    self._beat_error = exc

    def close(self) -> None:
        """Stop the heartbeat and close metrics.jsonl (idempotent). Records that cannot
        be written any more (a full disk) are dropped: the run has already said so."""
        self._stop_beat.set()
        thread, self._beat_thread = self._beat_thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        with self._lock:
            if self._metrics is not None:
                try:
                    self.flush(fsync=True)
                except OSError as exc:
                    self._pending.clear()
                    log.info("run %s: the last records were not written: %s", self.run_id, exc)
                with contextlib.suppress(OSError):
                    self._metrics.close()
                self._metrics = None

    # -- resume ----------------------------------------------------------------------------

    def _truncate_after(self, step: int) -> None:
        """Drop records after `step` (a resumed run continues without duplicated steps)."""
        path = self.run_dir / METRICS_JSONL
        kept = [r for r in read_jsonl(path) if int(r.get("step", 0)) <= step]
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            handle.write("".join(json.dumps(r) + "\n" for r in kept).encode("utf-8"))
        for probe_path in (self.run_dir / PROBES_DIR).glob("step-*.h5"):
            with contextlib.suppress(ValueError, OSError):
                if int(probe_path.stem.split("-")[1]) > step:
                    probe_path.unlink()
        fsync_dir(self.run_dir)


def _save_checkpoint_file(path: Path, state: dict[str, Any]) -> None:
    """checkpoints.save_checkpoint, but torch writes through a Python file: when a write
    fails (a full disk, a file-size limit) torch raises a RuntimeError ("unexpected pos")
    that hides why; through a Python file the OSError it comes from is kept as its
    context, and raised here instead."""
    import torch

    with atomic_path(Path(path)) as tmp, open(tmp, "wb") as handle:
        try:
            torch.save(state, handle)
        except RuntimeError as exc:
            if isinstance(exc.__context__, OSError):
                raise exc.__context__ from None
            raise
        handle.flush()


def default_display_name(model: dict[str, Any], config: dict[str, Any] | None = None,
                         dataset: dict[str, Any] | None = None) -> str:
    """A run's default name from its settings: cell, hidden (x layers when stacked),
    dataset and seed, e.g. "lstm h64 · sine · s0" (what tells two runs apart)."""
    cell = model.get("cell", "run")
    layers = model.get("layers", 1)
    parts = [f"{cell} h{model.get('hidden', '?')}" + (f"x{layers}" if layers not in (1, None) else "")]
    data_name = dataset_label(dataset, config)
    if data_name:
        parts.append(data_name)
    training = (config or {}).get("training", {}) if isinstance(config, dict) else {}
    if isinstance(training, dict) and training.get("seed") is not None:
        parts.append(f"s{training['seed']}")
    return " · ".join(parts)


def dataset_label(dataset: dict[str, Any] | None, config: dict[str, Any] | None = None) -> str:
    """The short name of a run's dataset: its file's stem (the built-in sine file reads
    "sine"), else its task; "" when neither is recorded."""
    path = (dataset or {}).get("path") if isinstance(dataset, dict) else None
    if not path and isinstance(config, dict) and isinstance(config.get("data"), dict):
        path = config["data"].get("data")
    if isinstance(path, str) and path:
        stem = Path(path).stem
        return stem.removeprefix("builtin-") or stem
    task = (dataset or {}).get("task") if isinstance(dataset, dict) else None
    return str(task) if task else ""


def unique_name(runs_dir: Path, name: str, run_id: str) -> str:
    """`name`, or "name (2)", "name (3)", … when another run of `runs_dir` reads the same
    (read from the runs' run.json), so that no two rows of a runs list read alike."""
    taken = set()
    with contextlib.suppress(OSError):
        for entry in runs_dir.iterdir():
            if entry.name == run_id or entry.name.startswith(("_", ".")):
                continue
            other = _read_json(entry / RUN_JSON)
            if other and isinstance(other.get("name"), str):
                taken.add(other["name"])
    if name not in taken:
        return name
    n = 2
    while f"{name} ({n})" in taken:
        n += 1
    return f"{name} ({n})"


# --- reading runs -------------------------------------------------------------------------


UNREADABLE = "unreadable"  # the status of a listed folder whose records cannot be read
# the fields of status.json and run.json a listing reads, and the types they must have
_STATUS_FIELDS: dict[str, tuple[type, ...]] = {
    "status": (str,), "message": (str,), "step": (int,), "epoch": (int,),
    "sequences": (int,), "seconds": (int, float), "best_val_loss": (int, float),
    "heartbeat": (int, float), "pid": (int,), "host": (str,),
}
_META_FIELDS: dict[str, tuple[type, ...]] = {
    "name": (str,), "cell": (str,), "created_iso": (str,), "parameters": (int,),
}


@dataclass(frozen=True)
class RunInfo:
    """One line of the runs list: cheap to read (run.json and status.json only).

    A folder whose run.json or status.json cannot be read (not JSON, a field of the
    wrong type) is listed too, with status "unreadable" and the reason as `message`,
    so that one damaged run never hides the others.
    """

    run_id: str
    path: Path
    name: str
    cell: str
    status: str  # effective: a live status with a stale heartbeat reads "crashed"
    steps: int
    epochs: int
    best_val_loss: float | None
    seconds: float
    started: str  # ISO 8601
    message: str = ""
    parameters: int | None = None
    sequences: int = 0
    meta: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)  # run.json

    @property
    def unreadable(self) -> bool:
        return self.status == UNREADABLE

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("meta")
        out["path"] = str(self.path)
        return json_safe(out)


def _read_record(path: Path, fields: dict[str, tuple[type, ...]]) -> dict[str, Any] | None:
    """A run's JSON record (run.json, status.json); None when the file does not exist.

    RunError naming the file and what is wrong when it is not a JSON object or one of
    `fields` has the wrong type (e.g. "step": "many"): the file was damaged or edited.
    """
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RunError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RunError(f"{path}: not valid JSON ({str(exc)[:120]})") from None
    if not isinstance(value, dict):
        raise RunError(f"{path}: not a JSON object but {type(value).__name__}")
    for key, types in fields.items():
        item = value.get(key)
        if item is not None and (isinstance(item, bool) or not isinstance(item, types)):
            expected = "a number" if float in types or int in types else "text"
            raise RunError(f"{path}: {key!r} is {json.dumps(item)[:60]}, not {expected}")
    return value


def _run_info(path: Path, meta: dict[str, Any], status: dict[str, Any],
              stale_after: float) -> RunInfo:
    best = status.get("best_val_loss")
    parameters = meta.get("parameters")
    return RunInfo(
        run_id=path.name,
        path=path,
        name=str(meta.get("name") or path.name),
        cell=str(meta.get("cell", "")),
        status=effective_status(status, stale_after=stale_after),
        steps=int(status.get("step") or 0),
        epochs=int(status.get("epoch") or 0),
        best_val_loss=None if best is None else float(best),
        seconds=float(status.get("seconds") or 0.0),
        started=str(meta.get("created_iso", "")),
        message=str(status.get("message") or ""),
        parameters=parameters if isinstance(parameters, int) else None,
        sequences=int(status.get("sequences") or 0),
        meta=meta,
    )


def unreadable_info(path: Path, reason: str, meta: dict[str, Any] | None = None) -> RunInfo:
    """The runs list's line of a run folder whose records cannot be read."""
    meta = meta or {}
    name, cell = meta.get("name"), meta.get("cell")
    return RunInfo(run_id=path.name, path=path,
                   name=name if isinstance(name, str) and name else path.name,
                   cell=cell if isinstance(cell, str) else "", status=UNREADABLE, steps=0,
                   epochs=0, best_val_loss=None, seconds=0.0, started="", message=reason)


def _run_folders(runs_dir: str | Path | None) -> list[Path]:
    """The entries of the runs directory that are runs: its folders, less those whose
    name begins with "_" (comparisons, sweeps: docs/run-format.md) or "." (temporary).
    RunError when the runs directory is not a folder."""
    root = runs_root(runs_dir)
    if not root.exists():
        return []
    if not root.is_dir():
        raise RunError(f"{root}: not a folder; the runs directory must be a folder "
                       "(--runs-dir DIR)")
    try:
        entries = sorted(root.iterdir())
    except OSError as exc:
        raise RunError(f"{root}: cannot list the runs directory: {exc.strerror or exc}") from None
    return [p for p in entries if not p.name.startswith(("_", ".")) and p.is_dir()]


def _being_created(path: Path, stale_after: float) -> bool:
    """A folder without run.json that changed in the last `stale_after` seconds: a run
    being set up (its run.json comes with its first event) or being deleted."""
    try:
        return time.time() - path.stat().st_mtime < stale_after
    except OSError:
        return True  # gone while we looked


def open_runs(runs_dir: str | Path | None = None, *,
              stale_after: float = STALE_AFTER_SECONDS) -> list[Run]:
    """Every readable run folder in the runs directory, oldest first (ids sort by time).

    A folder whose run.json cannot be read is left out here; list_runs lists it as
    unreadable. RunError when the runs directory is not a folder.
    """
    runs = []
    for path in _run_folders(runs_dir):
        with contextlib.suppress(RunError):
            runs.append(Run(path, stale_after=stale_after))
    return runs


def list_runs(runs_dir: str | Path | None = None, *,
              stale_after: float = STALE_AFTER_SECONDS) -> list[RunInfo]:
    """Every run in the runs directory, oldest first (ids sort by time).

    A run whose run.json or status.json cannot be read is listed with status
    "unreadable" and the reason as its message; a folder without run.json is listed so
    too, unless it changed in the last `stale_after` seconds (a run being set up).
    RunError when the runs directory is not a folder.
    """
    infos = []
    for path in _run_folders(runs_dir):
        try:
            run = Run(path, stale_after=stale_after)
            infos.append(run.info)
        except RunError as exc:
            if not (path / RUN_JSON).exists() and _being_created(path, stale_after):
                continue
            meta = None
            with contextlib.suppress(RunError):
                meta = _read_record(path / RUN_JSON, _META_FIELDS)
            infos.append(unreadable_info(path, str(exc), meta))
    return infos


def open_run(run_id_or_path: str | Path, runs_dir: str | Path | None = None, *,
             stale_after: float = STALE_AFTER_SECONDS) -> Run:
    """Open a recorded run (finished, stopped, crashed, or still running elsewhere)."""
    return Run(resolve_run_dir(run_id_or_path, runs_dir), stale_after=stale_after)


@dataclass(frozen=True)
class RunHistory:
    """A run's recorded metrics, as read at one moment (Run.history())."""

    steps: list[StepMetrics]
    epochs: list[EpochMetrics]
    probe_files: list[Path]  # the probes whose files exist, oldest first

    def last_probe(self) -> ProbeEvent | None:
        """The newest probe that can be read, or None."""
        for path in reversed(self.probe_files):
            with contextlib.suppress(OSError, KeyError):
                return read_probe(path)
        return None


@dataclass
class Run:
    """A run folder opened for reading, replaying, resuming, renaming or deleting."""

    path: Path
    stale_after: float = STALE_AFTER_SECONDS
    meta: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        meta = _read_record(self.path / RUN_JSON, _META_FIELDS)
        if meta is None:
            raise RunError(f"{self.path} is not a readable run folder (no {RUN_JSON})")
        self.meta = meta

    # -- what it is ------------------------------------------------------------------------

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def name(self) -> str:
        return str(self.meta.get("name") or self.run_id)

    @property
    def cell(self) -> str:
        return str(self.meta.get("cell", ""))

    def status_record(self) -> dict[str, Any]:
        """status.json ({} when there is none yet); RunError naming the file when it is
        damaged (not JSON, or a field of the wrong type)."""
        return _read_record(self.path / STATUS_JSON, _STATUS_FIELDS) or {}

    @property
    def status(self) -> str:
        return effective_status(self.status_record(), stale_after=self.stale_after)

    @property
    def info(self) -> RunInfo:
        return self.info_from(self.status_record())

    def info_from(self, status: dict[str, Any]) -> RunInfo:
        """The runs list's line from a status record already read (status_record())."""
        return _run_info(self.path, self.meta, status, self.stale_after)

    def config(self) -> RunConfig:
        return RunConfig.load(self.path / CONFIG_TOML)

    def config_dict(self) -> dict[str, Any]:
        from workbench.config import tomllib

        try:
            return tomllib.loads((self.path / CONFIG_TOML).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    # -- history ---------------------------------------------------------------------------

    def records(self) -> list[dict[str, Any]]:
        return read_jsonl(self.path / METRICS_JSONL)

    def history(self) -> RunHistory:
        """Step and epoch metrics and probe files from one read of metrics.jsonl."""
        steps, epochs, probe_files = [], [], []
        for record in self.records():
            kind = record.get("type")
            if kind == "step":
                steps.append(_step_event(record))
            elif kind == "epoch":
                epochs.append(_epoch_event(record))
            elif kind == "probe" and (self.path / str(record.get("file"))).is_file():
                probe_files.append(self.path / record["file"])
        return RunHistory(steps, epochs, probe_files)

    def step_metrics(self) -> list[StepMetrics]:
        return self.history().steps

    def epoch_metrics(self) -> list[EpochMetrics]:
        return self.history().epochs

    def probe_files(self) -> list[Path]:
        return self.history().probe_files

    def probes(self) -> Iterator[ProbeEvent]:
        for path in self.probe_files():
            with contextlib.suppress(OSError, KeyError):
                yield read_probe(path)

    def last_probe(self) -> ProbeEvent | None:
        return self.history().last_probe()

    def started_event(self) -> RunStarted:
        return RunStarted(
            run_id=self.run_id,
            config=self.config_dict(),
            parameters=int(self.meta.get("parameters") or 0),
            dataset=self.meta.get("dataset") or {},
            threads=int(self.meta.get("threads") or 0),
            device=str(self.meta.get("device") or "cpu"),
            model_config=self.meta.get("model_config") or {},
            normalization=self.meta.get("normalization"),
        )

    def finished_event(self) -> RunFinished | None:
        """The run's end as a RunFinished; `crashed` for a dead run; None while live."""
        record = self.status_record()
        status = effective_status(record, stale_after=self.stale_after)
        if status in LIVE_STATUSES:
            return None
        message = str(record.get("message") or "")
        if status == "crashed" and not message:
            message = "the training process ended without finishing the run"
        return RunFinished(status=status, message=message, step=int(record.get("step") or 0),
                           epoch=int(record.get("epoch") or 0),
                           seconds=float(record.get("seconds") or 0.0))

    def events(self) -> Iterator[Event]:
        """The recorded history as the Trainer's events, in the order they were sent."""
        yield self.started_event()
        for record in self.records():
            kind = record.get("type")
            if kind == "step":
                yield _step_event(record)
            elif kind == "epoch":
                yield _epoch_event(record)
            elif kind == "probe":
                path = self.path / str(record.get("file"))
                with contextlib.suppress(OSError, KeyError):
                    yield read_probe(path)
        finished = self.finished_event()
        if finished is not None:
            yield finished

    def replay(self, listener: Listener) -> None:
        """Send the recorded history to `listener`, as a live run would have."""
        for event in self.events():
            listener.on_event(event)

    # -- checkpoints and resume --------------------------------------------------------------

    def checkpoint_path(self, which: str = "latest") -> Path:
        return checkpoint_path(self.path, which)

    def load_checkpoint(self, which: str = "latest") -> dict[str, Any]:
        return load_checkpoint(self.checkpoint_path(which))

    def load_model(self, which: str = "best"):
        """(Seq2Seq in eval mode, Normalization or None, checkpoint dict) from a checkpoint."""
        from models.seq2seq import Seq2Seq, Seq2SeqConfig

        state = self.load_checkpoint(which)
        try:
            model = Seq2Seq(Seq2SeqConfig.from_dict(state["model_config"]))
        except (KeyError, RuntimeError, TypeError, ValueError) as exc:
            raise CheckpointError(
                f"checkpoint {self.checkpoint_path(which)} does not hold a model this "
                f"version can build: {exc}"
            ) from None
        load_weights(model, state["model"], where=f"checkpoint {self.checkpoint_path(which)}",
                     saved_config=state["model_config"])
        model.eval()
        normalization = None
        if state.get("normalization"):
            from workbench.datasets import Normalization

            normalization = Normalization.from_dict(state["normalization"])
        return model, normalization, state

    def resume_state(self) -> ResumeState:
        """What the Trainer needs to continue this run from its latest checkpoint."""
        status = self.status
        if status not in RESUMABLE_STATUSES:
            raise RunError(
                f"run {self.run_id} is {status}: only a stopped or crashed run can be resumed"
            )
        return ResumeState.from_checkpoint(self.load_checkpoint("latest"))

    # -- editing ---------------------------------------------------------------------------

    def rename(self, name: str) -> None:
        """Change the display name (the id never changes)."""
        name = name.strip()
        if not name:
            raise RunError("a run's name cannot be empty")
        meta = _read_json(self.path / RUN_JSON) or dict(self.meta)
        meta["name"] = name
        atomic_write_json(self.path / RUN_JSON, json_safe(meta))
        self.meta = meta

    def delete(self) -> None:
        """Remove the run folder; refused while the run is live."""
        if self.status in LIVE_STATUSES:
            raise RunError(f"run {self.run_id} is {self.status}: stop it before deleting it")
        shutil.rmtree(self.path)

    # -- summary ---------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """The object `train --json` and `show --json` print (NaN/inf become null)."""
        status = self.status_record()
        history = self.history()
        steps, epochs = history.steps, history.epochs
        probe = history.last_probe()
        config = self.config_dict()
        model = config.get("model", {})
        training = config.get("training", {})
        last_epoch = epochs[-1] if epochs else None
        seconds = float(status.get("seconds") or (steps[-1].seconds if steps else 0.0))
        sequences = steps[-1].sequences if steps else 0
        best = [e.val_loss for e in epochs if math.isfinite(e.val_loss)]
        out = {
            "run_id": self.run_id,
            "run_dir": str(self.path.resolve()),
            "name": self.name,
            "status": effective_status(status, stale_after=self.stale_after),
            "message": status.get("message") or "",
            "cell": self.cell,
            "hidden": model.get("hidden"),
            "layers": model.get("layers"),
            "seed": training.get("seed"),
            "threads": self.meta.get("threads"),
            "device": self.meta.get("device"),
            "parameters": self.meta.get("parameters"),
            "steps": steps[-1].step if steps else int(status.get("step") or 0),
            "epochs": last_epoch.epoch if last_epoch else 0,
            "train_loss": None,  # the mean over the last epoch: honest_fields below
            "val_loss": last_epoch.val_loss if last_epoch else None,
            "val_loss_free_running": last_epoch.val_loss_free_running if last_epoch else None,
            "token_accuracy": last_epoch.token_accuracy if last_epoch else None,
            "sequence_accuracy": last_epoch.sequence_accuracy if last_epoch else None,
            "best_val_loss": min(best) if best else None,
            "seconds": seconds,
            "sequences_per_second": sequences / seconds if seconds > 0 else None,
            "probes": len(history.probe_files),
            "encoder_grad_norms": probe.encoder_grad_norms[-1] if probe is not None else None,
            "decoder_grad_norms": probe.decoder_grad_norms[-1] if probe is not None else None,
            "started": self.meta.get("created_iso"),
        }
        from workbench.summaries import honest_fields

        out.update(honest_fields(self.meta, config, steps, epochs))
        return json_safe(out)


def _step_event(record: dict[str, Any]) -> StepMetrics:
    return StepMetrics(
        step=int(record["step"]),
        epoch=int(record["epoch"]),
        loss=_float(record.get("loss")),
        grad_norm=_float(record.get("grad_norm")),
        learning_rate=_float(record.get("learning_rate")),
        teacher_forcing=_float(record.get("teacher_forcing")),
        sequences_per_second=_float(record.get("sequences_per_second")),
        seconds=_float(record.get("seconds")),
        sequences=int(record.get("sequences") or 0),
        clipped=bool(record.get("clipped", False)),  # absent in records before it existed
    )


def _epoch_event(record: dict[str, Any]) -> EpochMetrics:
    def optional(key: str) -> float | None:
        value = record.get(key)
        return None if value is None else float(value)

    return EpochMetrics(
        epoch=int(record["epoch"]),
        step=int(record["step"]),
        val_loss=_float(record.get("val_loss")),
        val_loss_free_running=_float(record.get("val_loss_free_running")),
        token_accuracy=optional("token_accuracy"),
        sequence_accuracy=optional("sequence_accuracy"),
        train_loss=optional("train_loss"),
        seconds=_float(record.get("seconds")),
    )


def rename_run(run: str | Path, name: str, runs_dir: str | Path | None = None) -> None:
    open_run(run, runs_dir).rename(name)


def delete_run(run: str | Path, runs_dir: str | Path | None = None) -> None:
    open_run(run, runs_dir).delete()
