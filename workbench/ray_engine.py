"""The Ray engine of sweeps: the same jobs as workbench.sweep_engine.LocalEngine, each a
Ray task, on a private Ray instance on this machine or on a running cluster.

    engine = RayEngine(runs_dir, address=None, cpus_per_run=1, max_concurrent=None)
    engine.run(jobs, callbacks)     # blocks; engine.request_cancel() from any thread

Ray is an optional extra, imported here only, and only when a Ray sweep runs
(`import_ray`: one line saying how to install it when it is missing). Plain Ray tasks,
not Tune (docs/scaling.md says why): each job is one task holding `cpus_per_run` CPUs
(`num_cpus`), at most `max_concurrent` in flight (default: as many as the cluster's
CPUs hold), `max_retries=0` (a run whose worker dies is recorded as crashed, not
silently restarted from scratch).

- Each task (`_trial`) trains its run through workbench.run_service.RunService in the
  sweep's runs directory, so it writes the run folder any run writes (status.json with
  its heartbeat, pid and host; metrics; checkpoints). On a cluster that directory must
  be a path every node shares. A task first checks it on its own node: missing or not
  writable there, the task fails at once naming the node and the path, the sweep
  starts nothing more and the caller gets an OutputError with that line.
- The task sets torch's thread count to its CPUs explicitly (the run's `threads`, the
  config's when it sets one, else `cpus_per_run`): Ray's OMP_NUM_THREADS is not reliable
  across worker reuse. With the same thread count a run is bit-identical to the local
  engine's (a run is a function of its config alone).
- A task is a streaming generator: it yields "started" (run id, steps, node, pid) once
  its run folder exists, then its outcome. The caller's callbacks run in the calling
  thread, in order per job, as with the local engine, so the sweep record is the same.
- Cancel: the engine writes a flag file beside the sweep records; each task's run looks
  for it between steps and stops with its checkpoint ("stopped", resumable); jobs not
  submitted end "skipped". Tasks ignore SIGINT (Ctrl-C is the driver's).
- A worker that dies (killed, out of memory, its node lost): its job ends "crashed"
  with the run id it reported, so `sweep --resume` continues that run from its
  checkpoint.
- Without `address` a private instance is started for the sweep (`num_cpus`, default
  every core; no dashboard; usage stats off; its files in a temporary folder) and
  shut down after it, whatever happens, so none of its processes outlive the sweep.
  With `address` ("host:port" of `ray start --head`), a TCP connect with a 5 s timeout
  comes first: an address that does not answer is a ConfigError naming it at once
  (Ray's own client retries for about a minute).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.config import RunConfig
from workbench.errors import ConfigError, OutputError, WorkbenchError
from workbench.events import StepMetrics
from workbench.sweep_engine import EngineCallbacks, EngineJob, JobOutcome, ProgressWatch

log = logging.getLogger(__name__)

ENGINES = ("local", "ray")
RAY_MISSING = "Ray is not installed: pip install -e '.[ray]' or make install-ray"
CONNECT_TIMEOUT = 5.0  # seconds for the TCP check of a cluster's address
POLL_SECONDS = 0.2
CANCEL_CHECK_SECONDS = 0.5  # how often a task's run looks for the cancel flag
MAX_CPUS_PER_RUN = 256
CANCEL_DIR = "_sweeps"  # the flag file lives beside the sweep records (shared storage)


@dataclass(frozen=True)
class RayOptions:
    """How a sweep runs on Ray: `address` of a cluster (None: a private instance of
    `num_cpus` CPUs, default every core), CPUs (and torch threads) per run, and the most
    runs at once (None: what the CPUs hold)."""

    address: str | None = None
    cpus_per_run: int = 1
    max_concurrent: int | None = None
    num_cpus: int | None = None


def import_ray(*, cluster: bool = False) -> Any:
    """The ray module (ConfigError with how to install it when it is missing). Usage
    statistics are switched off before Ray reads its settings. `cluster`: where this
    machine has a Ray token (~/.ray/auth_token, as `ray start --head` writes it, or
    RAY_AUTH_TOKEN) and RAY_AUTH_MODE is not set, token authentication is switched on
    for an explicit --ray-address too (Ray itself does so only for a cluster it finds
    by itself, and for a private instance)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError:
        raise ConfigError(RAY_MISSING) from None
    if cluster and "RAY_AUTH_MODE" not in os.environ and (
            os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
            or (Path.home() / ".ray" / "auth_token").is_file()):
        os.environ["RAY_AUTH_MODE"] = "token"
        with contextlib.suppress(Exception):  # what Ray does when it enables it itself
            from ray._raylet import Config

            Config.initialize("")
    return ray


def parse_address(address: str) -> tuple[str, int]:
    """"host:port" (or "ray://host:port") -> (host, port); ConfigError naming it otherwise."""
    text = str(address).strip()
    rest = text.removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--ray-address {address!r} is not allowed: expected HOST:PORT, "
                          "e.g. 10.0.0.5:6379 (the address `ray start --head` prints)")
    return host, int(port)


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """ConfigError naming `address` when nothing answers a TCP connect there in `timeout`."""
    host, port = parse_address(address)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        reason = "no answer in 5 s" if isinstance(exc, TimeoutError) else (
            exc.strerror or type(exc).__name__)
        raise ConfigError(f"cannot reach the Ray cluster at {address}: {reason} (is "
                          "`ray start --head` running there, and the port open?)") from None


def check_cpus_per_run(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not (
            1 <= value <= MAX_CPUS_PER_RUN):
        raise ConfigError(f"--cpus-per-run {value!r} is not allowed: expected an integer "
                          f"from 1 to {MAX_CPUS_PER_RUN}")
    return value


def check_max_concurrent(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"--max-concurrent {value!r} is not allowed: expected an integer "
                          ">= 1")
    return value


def check_node_runs_dir(runs_dir: str | Path) -> None:
    """OutputError naming this node and `runs_dir` when no run folder can be made there
    (missing, not a folder, or not writable: a file is really made and removed, so a
    read-only mount is found as well as a mode)."""
    node = socket.gethostname()
    path = Path(runs_dir)
    shared = "on a cluster it must be a path every node shares"
    if not path.exists():
        raise OutputError(f"on node {node}: the runs directory {path} does not exist ({shared})")
    if not path.is_dir():
        raise OutputError(f"on node {node}: the runs directory {path} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-check-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"on node {node}: the runs directory {path} is not writable "
                          f"({exc.strerror or type(exc).__name__}; {shared})") from None


class RayEngine:
    """Runs jobs as Ray tasks (module docstring); the interface of LocalEngine."""

    def __init__(self, runs_dir: str | Path | None = None, *, address: str | None = None,
                 cpus_per_run: int = 1, max_concurrent: int | None = None,
                 num_cpus: int | None = None) -> None:
        from workbench.run_layout import runs_root

        self.runs_dir = runs_root(runs_dir)
        self.address = address or None
        if self.address is not None:
            parse_address(self.address)
        self.cpus_per_run = check_cpus_per_run(cpus_per_run)
        self.max_concurrent = check_max_concurrent(max_concurrent)
        self.num_cpus = num_cpus
        self._cancel = threading.Event()
        self._cancel_path: Path | None = None
        self._lock = threading.RLock()  # re-entrant: Ctrl-C's handler may cancel mid-run()
        self.fatal: str | None = None
        self.ray_start_seconds: float | None = None  # how long ray.init took (benchmarks)

    # -- thread-safe controls --------------------------------------------------------------

    def request_cancel(self) -> None:
        """Stop the runs in progress (checkpointed) and start no other (any thread)."""
        with self._lock:
            self._cancel.set()
            path = self._cancel_path
        if path is not None:
            with contextlib.suppress(OSError):
                path.touch()

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    @property
    def current_trainer(self) -> Any | None:
        return None  # runs train in Ray's workers

    # -- running ---------------------------------------------------------------------------

    def preflight(self) -> None:
        """What can be refused before a sweep is recorded: Ray missing, an address that
        does not answer."""
        import_ray()
        if self.address is not None:
            check_reachable(self.address)

    def run(self, jobs: Sequence[EngineJob], callbacks: EngineCallbacks) -> None:
        """Train every job (blocks); every job's outcome reaches `callbacks.job_finished`.
        Raises OutputError when a node cannot write the runs directory."""
        jobs = list(jobs)
        self.preflight()
        ray = import_ray()
        if not jobs:
            return
        temp_dir = None
        cancel_path = self.runs_dir / CANCEL_DIR / f".cancel-{uuid.uuid4().hex}"
        cancel_path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._cancel_path = cancel_path
            if self._cancel.is_set():
                cancel_path.touch()
        try:
            started = time.perf_counter()
            temp_dir = self._init(ray)
            self.ray_start_seconds = time.perf_counter() - started
            self._loop(ray, jobs, callbacks, cancel_path)
        finally:
            with contextlib.suppress(Exception):
                ray.shutdown()
            with self._lock:
                self._cancel_path = None
            with contextlib.suppress(OSError):
                cancel_path.unlink()
            if temp_dir is not None:
                shutil.rmtree(temp_dir, ignore_errors=True)
        if self.fatal is not None:
            raise OutputError(self.fatal)

    def _init(self, ray: Any) -> str | None:
        """Connect to the cluster, or start a private instance (its temp folder returned)."""
        quiet = dict(include_dashboard=False, log_to_driver=False,
                     logging_level=logging.WARNING)
        if self.address is not None:
            import_ray(cluster=True)
            ray.init(address=self.address, **quiet)
            return None
        # the workers import this very package (not another install of it)
        root = str(Path(__file__).resolve().parent.parent)
        paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        if root not in paths:
            os.environ["PYTHONPATH"] = os.pathsep.join([root, *paths])
        base = tempfile.gettempdir()
        if len(base) > 40:  # Ray's sockets live in it: a Unix socket path is <= 107 bytes
            base = "/tmp"
        temp_dir = tempfile.mkdtemp(prefix="wb-ray-", dir=base)
        # "local": always a new instance, never a cluster that happens to run here
        ray.init(address="local", num_cpus=self.num_cpus or os.cpu_count() or 1,
                 _temp_dir=temp_dir,
                 _node_ip_address="127.0.0.1", **quiet)
        return temp_dir

    def _window(self, ray: Any) -> int:
        """How many tasks may be in flight: --max-concurrent, else what the CPUs hold."""
        if self.max_concurrent is not None:
            return self.max_concurrent
        try:
            cpus = float(ray.cluster_resources().get("CPU", 1))
        except Exception:  # noqa: BLE001 - the GCS busy: one at a time this round
            cpus = self.cpus_per_run
        return max(1, int(cpus // self.cpus_per_run))

    def _loop(self, ray: Any, jobs: list[EngineJob], callbacks: EngineCallbacks,
              cancel_path: Path) -> None:
        trial = ray.remote(_trial).options(num_cpus=self.cpus_per_run, max_retries=0,
                                           num_returns="streaming")
        waiting = list(jobs)
        inflight: dict[Any, EngineJob] = {}
        run_ids: dict[int, str] = {}
        nodes: dict[int, str] = {}
        watch = ProgressWatch(self.runs_dir, callbacks)
        while waiting or inflight:
            if self._cancel.is_set() and waiting:
                for job in waiting:
                    callbacks.job_finished(job, JobOutcome(job.index, None, "skipped"))
                waiting = []
            window = self._window(ray) if waiting else 0
            while waiting and len(inflight) < window:
                job = waiting.pop(0)
                config = job.config
                threads = config.threads if config.threads > 0 else self.cpus_per_run
                if config.threads != threads:
                    config = config.replace(threads=threads)
                generator = trial.remote(str(self.runs_dir), config.to_dict(), job.name,
                                         job.index, job.resume, threads, str(cancel_path))
                inflight[generator] = job
            if not inflight:
                break
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=POLL_SECONDS)
            for generator in ready:
                job = inflight[generator]
                outcome = self._next(ray, generator, job, run_ids, nodes, callbacks, watch)
                if outcome is None:
                    continue
                del inflight[generator]
                watch.ended(job)
                if outcome.run_id is None and job.index in run_ids:
                    outcome = JobOutcome(outcome.index, run_ids[job.index], outcome.status,
                                         outcome.message)
                callbacks.job_finished(job, outcome)
            watch.poll()

    def _next(self, ray: Any, generator: Any, job: EngineJob, run_ids: dict[int, str],
              nodes: dict[int, str], callbacks: EngineCallbacks,
              watch: ProgressWatch) -> JobOutcome | None:
        """Read a task's next news: None while it runs, its outcome once it ended."""
        try:
            news = ray.get(next(generator))
        except StopIteration:
            return JobOutcome(job.index, None, "failed", "its Ray task ended without an outcome")
        except ray.exceptions.RayTaskError as exc:  # a bug in the trial: recorded, go on
            cause = exc.cause if getattr(exc, "cause", None) is not None else exc
            return JobOutcome(job.index, None, "failed", f"{type(cause).__name__}: {cause}")
        except ray.exceptions.RayError as exc:
            node = nodes.get(job.index)
            where = f" on node {node}" if node else ""
            log.warning("run %d: its Ray worker died%s: %s", job.index, where, exc)
            return JobOutcome(job.index, None, "crashed",
                              f"its Ray worker died{where} (killed, out of memory, or the "
                              f"node was lost): {type(exc).__name__}")
        kind = news[0]
        if kind == "started":
            _kind, index, run_id, total_steps, node, _pid = news
            run_ids[index], nodes[index] = run_id, node
            callbacks.job_started(job, run_id, total_steps)
            watch.started(job, run_id, total_steps)
            return None
        if kind == "fatal":
            if self.fatal is None:
                self.fatal = str(news[2])
            self.request_cancel()
            return JobOutcome(job.index, None, "failed", str(news[2]))
        _kind, index, run_id, status, message = news
        if run_id is not None and index not in run_ids:  # its news came with its end
            run_ids[index] = run_id
            callbacks.job_started(job, run_id, 0)
        return JobOutcome(index, run_id, status, message)


# --- the task's side (top level: Ray's workers import it by name) ------------------------------


class _FlagWatch:
    """A run's listener: asks the run to stop once the cancel flag file exists."""

    def __init__(self, flag: str) -> None:
        self.flag = flag
        self.active: Any | None = None
        self._next_look = 0.0

    def cancelled(self) -> bool:
        return os.path.exists(self.flag)

    def on_event(self, event: Any) -> None:
        if not isinstance(event, StepMetrics) or self.active is None:
            return
        now = time.monotonic()
        if now >= self._next_look:
            self._next_look = now + CANCEL_CHECK_SECONDS
            if self.cancelled():
                self.active.request_stop()


def _trial(runs_dir: str, config: dict[str, Any], name: str, index: int,
           resume: str | None, threads: int, flag: str) -> Any:
    """One job in a Ray worker (a generator: "started" news, then the outcome)."""
    import torch

    from workbench.run_service import RunService
    from workbench.sweep_engine import _child_dataset

    with contextlib.suppress(ValueError):  # Ctrl-C is the driver's: it cancels cleanly
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)
    try:
        check_node_runs_dir(runs_dir)
    except OutputError as exc:
        yield ("fatal", index, str(exc))
        return
    watch = _FlagWatch(flag)
    if watch.cancelled():
        yield ("end", index, None, "skipped", "")
        return
    service = RunService(runs_dir)
    try:
        active = None
        if resume is not None:
            try:
                active = service.resume(resume, [watch])
            except WorkbenchError as exc:  # no checkpoint that loads: train it anew
                log.warning("run %s cannot be resumed (%s); starting it anew", resume, exc)
        if active is None:
            run_config = RunConfig.from_dict(config)
            active = service.start(run_config, [watch], name=name,
                                   dataset=_child_dataset(run_config))
    except WorkbenchError as exc:
        yield ("end", index, None, "failed", str(exc))
        return
    watch.active = active
    yield ("started", index, active.run_id, active.total_steps, socket.gethostname(),
           os.getpid())
    finished = active.run()
    yield ("end", index, active.run_id, finished.status, finished.message)


__all__ = ["ENGINES", "RAY_MISSING", "RayEngine", "RayOptions", "check_node_runs_dir", "check_reachable",
           "import_ray", "parse_address"]
