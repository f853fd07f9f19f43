"""The Trainer: the training loop, probes on the side, stop and pause, listeners.

`Trainer(config, dataset, listeners, run_id=..., checkpointer=...).run()` blocks the
calling thread and tells its listeners what happens as small frozen dataclasses
(workbench.events): never tensors, never Qt. Stop and pause are thread-safe requests
read between training steps and between validation batches, so a stop takes effect
within one step or one validation batch. Runs are started by
workbench.run_service.RunService, the one place that builds a Trainer.

Training uses the model's fast path (fused kernels). Probes (models.probes) run
the instrumented path on a fixed probe batch from the validation split, in
float64, touching no weight, gradient or random stream the trainer uses. When to
probe (unless `probe_every` is set) is the rule of `ProbeClock`. The first step is
probed (the panels fill at once) and one more probe runs when the run ends; in
between, a probe is due when

    at least 2 s of training have passed since the last probe, and the probes so far,
    this one and the final one (each counted at the last probe's cost) stay within 5%
    of the run's training time once they are done

The budget holds over the whole run, not only between two probes: the old rule
(wait max(2 s, 19 x the last cost) after each probe) kept every interval at 5% but
left the first probe (at step 1, before any training time) and the final one
unpaid, so a run of a few hundred steps spent 5.3-6% on probes (GRU and LSTM at
hidden 128, T 50, whose probes cost ~100 ms: just under the 2 s floor's 5%). Now
the first probe's cost is paid back by a later second probe, and the final one is
reserved in advance. A run shorter than about 40 probe costs still pays for the
first and the final probe, whatever their share. The cost counted is the probe plus
sending its event to the listeners (the recorder writes it to disk). Once the
first probe is paid for, probes come every max(2 s, 19 x their cost): every 2 s
while a probe costs under ~105 ms (small and medium models); for bigger models the
5% budget wins and probes thin out.

Measured (CPU, 1 thread, probe batch 32, T_in = T_out):

    model            probe    interval   training step (batch 64)
    gru h16 T20       7 ms     2.0 s      7 ms
    lstm h64 T50     34 ms     2.0 s     26 ms
    lstm h128 T50    83 ms     2.0 s     33 ms     -> ~4% of training time
    gru h256 T50    188 ms     3.6 s    106 ms
    lstm h256 T100  386 ms     7.3 s    227 ms
    lstm h512 T100  1.4 s     27 s      760 ms

benchmarks/bench_training.py reports the share over whole runs.

Determinism: the model's initial weights come from `seed`, the dropout stream is
torch's global generator seeded from `seed` when the run starts, teacher forcing
draws from its own generator, and data order is a function of (seed, epoch). All
of it, with the optimizer state and the position in the epoch, is in each
checkpoint, so a resumed run goes on exactly as if never stopped (on CPU, with
the same torch thread count, which the run records). A resume with threads = 0
(automatic) therefore takes the recorded count, whatever the thread policy of the
process that resumes (the CLI's "cli" and the GUI's "gui" would resolve it
differently); an explicit other count is allowed, with a warning in `RunStarted`
and the run record that the continuation is no longer bit-identical (float sums in
torch's kernels are split per thread: LSTM H256 losses differ between 1 and 2).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workbench.checkpoints import CHECKPOINT_FORMAT, Checkpointer, ResumeState, load_weights
from workbench.config import RunConfig, resolve_best_by, resolve_device, resolve_threads
from workbench.disk import disk_error_text
from workbench.errors import CheckpointError, ConfigError, OutputError, RunError, WorkbenchError
from workbench.events import (
    EpochMetrics,
    Event,
    Listener,
    ListenerError,
    PhaseProgress,
    ProbeEvent,
    RunFinished,
    RunStarted,
    RunStatus,
    StepMetrics,
)
from workbench.model_config import build_model_config

log = logging.getLogger(__name__)

PROBE_MIN_INTERVAL = 2.0  # seconds of training between probes, at least
PROBE_BUDGET = 0.05  # probes take at most this share of a run's training time
CHECKPOINT_SECONDS = 5.0  # RunConfig.checkpoint_seconds' default: `latest` at least this often
SPEED_WINDOW_SECONDS = 2.0
DATA_CHECK_SECONDS = 2.0  # how often (and at every epoch's end) the data file is checked
PROGRESS_SECONDS = 0.2  # PhaseProgress at most this often
PHASE_QUIET_SECONDS = 0.5  # a phase shorter than this sends no PhaseProgress


@dataclass
class _Position:
    """Where the run is: steps taken, the epoch, batches of it done, validated or not."""

    step: int = 0
    epoch: int = 1
    batch: int = 0
    validated: bool = False


@dataclass
class _Progress:
    """Counters that go into checkpoints so a resumed run reports the same numbers."""

    sequences: int = 0
    seconds: float = 0.0
    best_val_loss: float = math.inf
    epochs_since_best: int = 0
    epoch_loss_sum: float = 0.0
    epoch_loss_count: int = 0
    last_probe_step: int = -1


class _Stop(Exception):
    """A stop request took effect."""


class _Diverged(Exception):
    """The loss or the gradients stopped being finite."""


class _Fatal(Exception):
    """The run cannot go on (its record cannot be written, memory ran out, the data file
    changed): `error` is the one-line WorkbenchError the caller reports."""

    def __init__(self, error: WorkbenchError) -> None:
        super().__init__(str(error))
        self.error = error


# --- the probe rule -----------------------------------------------------------------


@dataclass
class ProbeClock:
    """Decides when to probe: every `every` steps, or by the time rule (module doc).

    Times are the run's training seconds (Trainer._now()); `origin` is where this
    segment of the run started (a resumed run's probes are budgeted against the time
    since the resume, as the probes before it are not counted here).
    """

    every: int | None = None
    min_interval: float = PROBE_MIN_INTERVAL
    budget: float = PROBE_BUDGET
    origin: float = 0.0
    last_time: float = -math.inf  # training seconds at the end of the last probe
    last_cost: float = 0.0
    count: int = 0
    total_cost: float = 0.0

    def due(self, step: int, now: float) -> bool:
        """Whether to probe after `step`, at `now` training seconds."""
        if self.every is not None:
            return step % self.every == 0
        if self.count == 0:
            return True  # the first step: the panels fill at once
        if now - self.last_time < self.min_interval:
            return False
        # this probe and the final one at the last cost, within budget when both are done
        expected = 2.0 * self.last_cost
        return self.total_cost + expected <= self.budget * (now - self.origin + expected)

    def record(self, now: float, cost: float) -> None:
        """A probe that took `cost` seconds (its event sent) ended at `now`."""
        self.last_time = now
        self.last_cost = cost
        self.count += 1
        self.total_cost += cost

    def share(self, now: float) -> float:
        """The share of the training time since `origin` spent on probes so far."""
        elapsed = now - self.origin
        return self.total_cost / elapsed if elapsed > 0 else 0.0


class SpeedWindow:
    """Sequences per second over the last ~SPEED_WINDOW_SECONDS of training steps,
    kept as a running sum (add() is O(1) amortized per step)."""

    def __init__(self, window: float = SPEED_WINDOW_SECONDS) -> None:
        self.window = window
        self._steps: deque[tuple[float, int]] = deque()
        self._done = 0  # sequences of every step after the first kept one

    def add(self, now: float, size: int) -> float:
        """Record a step of `size` sequences ending at `now`; the speed (NaN until two
        steps are kept or while no time has passed)."""
        if self._steps:
            self._done += size
        self._steps.append((now, size))
        while len(self._steps) > 2 and now - self._steps[1][0] >= self.window:
            self._steps.popleft()
            self._done -= self._steps[0][1]
        if len(self._steps) < 2:
            return math.nan
        span = now - self._steps[0][0]
        return self._done / span if span > 0 else math.nan


class _PhaseReporter:
    """Called between the units of a phase (`reporter(done, total)`, or `reporter()` for
    one more unit of `total`): runs `controls` (which may raise _Stop) and, once the
    phase has lasted PHASE_QUIET_SECONDS, emits PhaseProgress at most every
    PROGRESS_SECONDS; `finish()` emits the last one (done == total) if any was. A
    short phase sends none, so small runs' event streams stay as they were."""

    def __init__(self, phase: str, unit: str, total: int, emit: Callable[[Event], None],
                 controls: Callable[[], None], step: Callable[[], int]) -> None:
        self.phase, self.unit, self.total = phase, unit, int(total)
        self._emit, self._controls, self._step = emit, controls, step
        self._started = time.perf_counter()
        self._shown = -math.inf
        self._any = False
        self._count = 0

    def __call__(self, done: int | None = None, total: int | None = None) -> None:
        if done is None:
            done, self._count = self._count, self._count + 1
        if total is not None:
            self.total = int(total)
        now = time.perf_counter()
        if now - self._started >= PHASE_QUIET_SECONDS and now - self._shown >= PROGRESS_SECONDS:
            self._send(int(done), now)
        self._controls()

    def finish(self) -> None:
        if self._any:
            self._send(self.total, time.perf_counter())

    def _send(self, done: int, now: float) -> None:
        self._shown, self._any = now, True
        self._emit(PhaseProgress(self.phase, done, self.total, self.unit, self._step()))


# --- tensors from batches ----------------------------------------------------------------


@dataclass(frozen=True)
class _Tensors:
    src: torch.Tensor
    tgt: torch.Tensor
    src_lengths: torch.Tensor
    tgt_lengths: torch.Tensor

    @property
    def size(self) -> int:
        return int(self.src.shape[0])


def initialize_model(model: Any, config: RunConfig) -> None:
    """Set W_hh (and an LSTM's forget bias) as the config's init settings say, in place.

    "default" with no radius and no forget bias changes nothing and draws nothing, so a
    run without these settings is bit-identical to one from before they existed. A
    refusal of models.init (a bad combination that validation let through) becomes a
    ConfigError naming it.
    """
    if (config.recurrent_init == "default" and config.recurrent_radius is None
            and config.forget_bias is None):
        return
    from models.init import initialize_seq2seq

    try:
        initialize_seq2seq(model, init=config.recurrent_init, radius=config.recurrent_radius,
                           forget_bias=config.forget_bias)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _describe_side(kind: str, features: int | None, vocab_size: int | None) -> str:
    if kind == "tokens":
        return f"tokens with a vocabulary of {vocab_size}"
    return f"continuous values with {features} feature{'s' if features != 1 else ''} per step"


def check_compatible(model_config: Any, summary: Any, path: Any | None = None) -> None:
    """Refuse data a trained model cannot read: RunError naming the file, the side and both.

    Compares each side's kind, features (continuous) and vocabulary size (tokens) of
    the dataset `summary` with the model's Seq2SeqConfig. Every inference path (the
    CLI's evaluate and predict, predictions in the GUI) calls it before running the
    model, so a mismatched file is a one-line message, not a shape error from torch.
    """
    where = path if path is not None else summary.path
    sides = (("inputs", summary.inputs, model_config.source),
             ("targets", summary.targets, model_config.target))
    for name, spec, side in sides:
        if spec.kind == side.kind and (
            (side.kind == "tokens" and spec.vocab_size == side.vocab_size)
            or (side.kind == "continuous" and spec.features == side.features)
        ):
            continue
        raise RunError(
            f"{where}: its {name} do not fit the run's model: the file holds "
            f"{_describe_side(spec.kind, spec.features, spec.vocab_size)}, the model was "
            f"trained on {_describe_side(side.kind, side.features, side.vocab_size)}"
        )


def _model_words(config: RunConfig) -> str:
    return f"cell = {config.cell}, hidden = {config.hidden}, layers = {config.layers}"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


class BatchConverter:
    """Batches (raw numpy, data units) -> tensors on the device, normalised where continuous."""

    def __init__(self, normalization: Any | None, inputs_continuous: bool,
                 targets_continuous: bool, device: str) -> None:
        self.normalization = normalization
        self.inputs_continuous = inputs_continuous
        self.targets_continuous = targets_continuous
        self.device = torch.device(device)

    def __call__(self, batch: Any) -> _Tensors:
        x, y = batch.x, batch.y
        if self.normalization is not None and self.inputs_continuous:
            x = self.normalization.normalize_x(x)
        if self.normalization is not None and self.targets_continuous:
            y = self.normalization.normalize_y(y)
        # lengths stay on the CPU: packing wants them there, and moving them costs a sync
        return _Tensors(self._tensor(x), self._tensor(y), self._tensor(batch.x_lengths, cpu=True),
                        self._tensor(batch.y_lengths, cpu=True))

    def _tensor(self, array: np.ndarray, cpu: bool = False) -> torch.Tensor:
        array = np.ascontiguousarray(array)
        if array.dtype == np.float64:
            array = array.astype(np.float32)
        tensor = torch.from_numpy(array)
        return tensor if cpu else tensor.to(self.device, non_blocking=True)


# --- the trainer --------------------------------------------------------------------------


class Trainer:
    """Trains one run; see the module docstring for the rules it keeps.

    Built by workbench.run_service.RunService, which opens the dataset and makes the
    run folder: it passes the run's id and where its checkpoints go (`checkpointer`,
    the run's RunRecorder; None keeps no checkpoints). `thread_policy` ("cli" or
    "gui") decides how many torch threads `threads = 0` (automatic) means.
    `checkpoint_seconds` (None: the config's) overrides how often `latest` is written.

    Building it is cheap: what can take long on a large file (the normalisation
    statistics, the probe batch) is done by `run()` first, where a stop request is
    honoured between blocks and PhaseProgress events tell the listeners how far it got.
    A run that cannot go on (its record cannot be written, memory runs out, the data
    file changes) ends as `failed` with a one-line message, and `failure` holds it as
    the WorkbenchError a caller reports (the CLI: exit 2).
    """

    def __init__(self, config: RunConfig, dataset: Any, listeners: Sequence[Listener], *,
                 run_id: str, checkpointer: Checkpointer | None,
                 resume: ResumeState | None = None, thread_policy: str = "cli",
                 checkpoint_seconds: float | None = None) -> None:
        if not run_id:
            raise ValueError("a Trainer needs the run's id")
        self.config = config.validate()
        self.dataset = dataset
        self.listeners = list(listeners)
        self.checkpointer = checkpointer
        self.run_id = str(run_id)
        self.checkpoint_seconds = (self.config.checkpoint_seconds if checkpoint_seconds is None
                                   else float(checkpoint_seconds))
        self.threads, self.warning = _threads_for(config, resume, thread_policy)
        if self.warning:
            log.warning("%s", self.warning)
        self.device = resolve_device(config.device)
        self.failure: WorkbenchError | None = None  # why a `failed` run failed, as a user's error
        self._resume = resume
        self._stop = threading.Event()
        self._written_checkpoints: list[Any] = []  # files save_checkpoint wrote
        self._pause = threading.Event()
        self._paused = threading.Event()
        self._wake = threading.Condition()
        self._prepared = False
        self._setup_data()
        self.best_by = _best_by(self.config, self.summary.targets.kind, resume)
        self.config = dataclasses.replace(self.config, best_by=self.best_by)  # recorded
        self.baselines: dict[str, Any] | None = None  # computed when the run starts
        if resume is not None:
            self._check_resumable(resume.checkpoint)
        self._setup_model()
        self.probes = ProbeClock(every=config.probe_every)
        self.position = _Position()
        self.progress = _Progress()
        self._listener_failures: dict[str, int] = {}
        self._last_data_check = 0.0

    # -- thread-safe controls -------------------------------------------------------------

    def request_stop(self) -> None:
        """Ask the run to stop after the current step or validation batch (any thread)."""
        self._stop.set()
        with self._wake:
            self._wake.notify_all()

    def request_pause(self) -> None:
        """Ask the run to pause between steps (any thread); `resume()` goes on."""
        self._pause.set()

    def resume(self) -> None:
        """Go on after a pause (any thread)."""
        self._pause.clear()
        with self._wake:
            self._wake.notify_all()

    @property
    def paused(self) -> bool:
        """True while a pause has taken effect (not merely been requested)."""
        return self._paused.is_set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    # -- set-up -------------------------------------------------------------------------------

    def _setup_data(self) -> None:
        """Splits and the budget: nothing is read here."""
        summary = self.dataset.summary
        self.summary = summary
        self.train_split = self.dataset.split("train")
        try:
            self.val_split = self.dataset.split("val")
        except Exception:  # noqa: BLE001 - a file without a validation split
            self.val_split = None
        if len(self.train_split) == 0:
            raise ConfigError(f"{summary.path}: the training split is empty")
        if self.val_split is not None and len(self.val_split) == 0:
            self.val_split = None
        # what is scored after each epoch: a fixed subset of a large validation split
        self.val_scored = self.val_split
        if self.val_split is not None and self.config.val_subset is not None:
            self.val_scored = self.val_split.subset(self.config.val_subset)
        self.batches_per_epoch = self.train_split.num_batches(self.config.batch_size)
        if self.config.steps is not None:
            self.total_steps = self.config.steps
        else:
            self.total_steps = self.config.epochs * self.batches_per_epoch

    def _prepare(self, *, stoppable: bool = False) -> None:
        """The normalisation statistics (a resume takes its checkpoint's), the batch
        converter and the probe batch. With `stoppable` (from run()): progress events,
        and a stop request ends it between blocks (_Stop)."""
        if self._prepared:
            return
        summary = self.summary
        continuous = summary.inputs.kind == "continuous" or summary.targets.kind == "continuous"
        normalization = None
        if continuous:
            recorded = self._resume.checkpoint.get("normalization") if self._resume else None
            if isinstance(recorded, dict):
                from workbench.datasets import Normalization

                normalization = Normalization.from_dict(recorded)
            else:
                reporter = self._phase("normalisation", "rows") if stoppable else None
                normalization = self.dataset.normalization(between=reporter)
                if reporter is not None:
                    reporter.finish()
        self._normalization = normalization
        self._convert = BatchConverter(normalization, summary.inputs.kind == "continuous",
                                       summary.targets.kind == "continuous", self.device)
        probe_split = self.val_split if self.val_split is not None else self.train_split
        count = min(self.config.probe_batch, len(probe_split))
        self._probe_batch = self._convert(probe_split.read(np.arange(count, dtype=np.int64)))
        self._prepared = True

    @property
    def normalization(self) -> Any | None:
        """The run's normalisation statistics (None for token data)."""
        self._prepare()
        return self._normalization

    @property
    def convert(self) -> BatchConverter:
        self._prepare()
        return self._convert

    @property
    def probe_batch(self) -> _Tensors:
        """The fixed probe batch: the first `probe_batch` validation sequences."""
        self._prepare()
        return self._probe_batch

    def _phase(self, phase: str, unit: str, total: int = 0) -> _PhaseReporter:
        """A reporter for a phase that may take long (see _PhaseReporter); before the
        run has started only a stop request is honoured (a pause has nothing to show)."""
        def controls() -> None:
            if self._stop.is_set():
                raise _Stop

        return _PhaseReporter(phase, unit, total, self._emit,
                              controls if not self._prepared else self._controls,
                              lambda: self.position.step)

    def _setup_model(self) -> None:
        from models.seq2seq import Seq2Seq
        from workbench.memory import check_run_memory

        self.model_config = build_model_config(self.config, self.summary)
        check_run_memory(self.config, self.summary, device=self.device)
        failure = None
        try:
            self.model, self.optimizer = self._build_model(Seq2Seq)
        except (MemoryError, RuntimeError) as exc:
            from workbench.memory import is_allocation_failure

            if not is_allocation_failure(exc):
                raise
            failure = _one_line(exc)
        if failure is not None:  # raised outside `except`, so the half-built model is freed
            raise ConfigError(
                f"{_model_words(self.config)}: out of memory building the model "
                f"({failure}); use a smaller hidden, layers or embedding")
        self.parameters = sum(p.numel() for p in self.model.parameters())
        self.tf_generator = torch.Generator(device=self.device)
        self.tf_generator.manual_seed(self.config.seed + 1)

    def _build_model(self, seq2seq: Any) -> tuple[Any, torch.optim.Optimizer]:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed)
            model = seq2seq(self.model_config)
            if self._resume is None:  # a resumed run's weights come from its checkpoint
                initialize_model(model, self.config)
        model = model.to(self.device)
        params = [p for p in model.parameters() if p.requires_grad]
        if self.config.optimizer == "adam":
            return model, torch.optim.Adam(params, lr=self.config.lr)
        return model, torch.optim.SGD(params, lr=self.config.lr, momentum=self.config.momentum)

    # -- events ------------------------------------------------------------------------------

    def _emit(self, event: Event, *, final: bool = False) -> None:
        """Send an event to every listener; one that raises is reported, the run goes on,
        unless it could not write the run's record (OutputError) or ran out of memory:
        then the run ends (_Fatal, after every listener had the event), unless `final`."""
        fatal: WorkbenchError | None = None
        for listener in self.listeners:
            try:
                listener.on_event(event)
            except Exception as exc:  # noqa: BLE001 - a listener must not kill the run
                from workbench.memory import is_allocation_failure

                if isinstance(exc, OutputError) and fatal is None:
                    fatal = exc
                elif is_allocation_failure(exc) and fatal is None:
                    fatal = RunError(f"out of memory in {type(listener).__name__} "
                                     f"({_one_line(exc)})")
                self._listener_failed(listener, exc)
        if fatal is not None and not final:
            raise _Fatal(fatal)

    def _listener_failed(self, listener: Listener, exc: Exception) -> None:
        name = type(listener).__name__
        count = self._listener_failures.get(name, 0) + 1
        self._listener_failures[name] = count
        if count <= 3 and not isinstance(exc, OutputError):
            log.warning("listener %s raised: %s", name, exc, exc_info=count == 1)
        report = ListenerError(listener=name, message=f"{type(exc).__name__}: {exc}")
        for other in self.listeners:
            if other is listener:
                continue
            with contextlib.suppress(Exception):  # never recurse on a broken listener
                other.on_event(report)

    # -- timing --------------------------------------------------------------------------------

    def _now(self) -> float:
        """Training seconds of the run so far (pauses excluded, earlier segments included)."""
        return self._seconds_base + (time.perf_counter() - self._t0 - self._paused_total)

    # -- the run -------------------------------------------------------------------------------

    def run(self) -> RunFinished:
        """Train until the budget, early stopping, a stop request, divergence or an error."""
        previous_threads = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        # Vanishing float32 gradients leave denormal numbers that the CPU handles slowly:
        # flushing them to zero halved the step time of sigmoid and relu RNNs at H256 T100
        # (benchmarks/bench_models.py --flush-denormal). The float64 probes lose nothing:
        # float64 denormals start below 1e-307.
        flushing = torch.set_flush_denormal(True)
        try:
            return self._run()
        finally:
            torch.set_num_threads(previous_threads)
            if flushing:
                torch.set_flush_denormal(False)

    def _run(self) -> RunFinished:
        self._paused_total = 0.0
        self._t0 = time.perf_counter()
        self._seconds_base = 0.0
        self._speed = SpeedWindow()
        # A stop asked before run() began ends the run at its first step, recorded as
        # ever; one that comes during the set-up ends it there, before anything is
        # recorded: no event, so a new folder goes and a resumed one stays as it was.
        try:
            self._prepare(stoppable=not self._stop.is_set())
        except _Stop:
            step = self._resume.step if self._resume is not None else 0
            return RunFinished(status="stopped", step=step, epoch=0, seconds=0.0,
                               message="stopped during set-up, before training went on")
        # after the set-up (the normalisation, with its progress and stop): the baselines
        # read it; their cost is not training time
        started = time.perf_counter()
        self.baselines = self._compute_baselines()
        self._t0 += time.perf_counter() - started
        if self._resume is not None:
            self._restore(self._resume.checkpoint)
        else:
            torch.manual_seed(self.config.seed)
            if self.device == "cuda":
                torch.cuda.manual_seed_all(self.config.seed)
        self._seconds_base = self.progress.seconds
        self.probes.origin = self._seconds_base
        self._last_data_check = self._now()
        resumed_from = self.position.step if self._resume is not None else 0
        status, message = "completed", ""
        try:
            self._emit(self._started_event(resumed_from))
            if self._resume is None:
                self._controls()  # a stop asked by now: no checkpoint of an untrained model
                self._save("latest")  # a run always has a checkpoint that loads
            status, message = self._loop()
        except _Stop:
            status, message = "stopped", f"stopped at step {self.position.step}"
        except _Diverged as exc:
            status, message = "diverged", str(exc)
        except Exception as exc:  # noqa: BLE001 - reported as a failed run
            status, message = "failed", self._failed(exc)
        # A new run stopped before its first step keeps no checkpoint (for a large model,
        # gigabytes of weights that never trained) and takes no final probe: it ends at once.
        untrained = status == "stopped" and self._resume is None and self.position.step == 0
        if untrained:
            self._remove_checkpoints()
        elif status in ("completed", "stopped", "diverged"):
            self._final_probe()
        self.progress.seconds = self._now()  # the final probe is part of the run's time
        if status in ("completed", "stopped") and not untrained:
            try:
                self._save("latest")
            except _Diverged as exc:  # the last steps made the weights non-finite
                status, message = "diverged", str(exc)
            except Exception as exc:  # noqa: BLE001 - the run's end must still be reported
                status, message = "failed", self._failed(exc)
        finished = RunFinished(status=status, message=message, step=self.position.step,
                               epoch=self.position.epoch, seconds=self.progress.seconds)
        self._emit(finished, final=True)
        return finished

    def _failed(self, exc: Exception) -> str:
        """The one-line message of a run that failed with `exc`; `failure` is set when it
        is the machine's or the user's doing (disk, memory, data), else it is logged."""
        from workbench.memory import is_allocation_failure

        where = f"training stopped at step {self.position.step}; {self._kept()}"
        if isinstance(exc, _Fatal):
            error: WorkbenchError = exc.error
        elif isinstance(exc, WorkbenchError):
            error = exc
        elif is_allocation_failure(exc):
            error = RunError(f"out of memory at step {self.position.step + 1} "
                             f"({_one_line(exc)}); use a smaller batch size, hidden or "
                             f"probe batch")
        elif isinstance(exc, OSError):
            error = OutputError(f"{disk_error_text(exc)}")
        else:
            log.exception("training failed")
            return f"{type(exc).__name__}: {exc}"
        text = f"{' '.join(str(error).split())}; {where}"  # one line, never cut short
        self.failure = type(error)(text)
        log.info("run %s failed: %s", self.run_id, text)
        return text

    def _started_event(self, resumed_from: int) -> RunStarted:
        return RunStarted(
            run_id=self.run_id,
            config=self.config.to_dict(),
            parameters=self.parameters,
            dataset={**self.summary.to_json(), "baselines": self.baselines},
            resumed_from_step=resumed_from,
            threads=self.threads,
            device=self.device,
            model_config=self.model_config.to_dict(),
            normalization=self.normalization.to_dict() if self.normalization is not None else None,
            warning=self.warning,
        )

    def _loop(self) -> tuple[str, str]:
        """Epochs until a budget ends; returns (status, message)."""
        pos = self.position
        if self.config.steps is not None and pos.step >= self.config.steps:
            if not pos.validated:  # resumed at its last step (stopped there): finish it
                self._check_data()
                self._validate_and_checkpoint()
            return "completed", self._done_message()
        while True:
            if pos.batch < self.batches_per_epoch and self._train_epoch():
                break  # the step budget ended inside this epoch
            self._check_data()
            if not pos.validated and self._validate_and_checkpoint():
                return "completed", (
                    f"early stopping: no better validation loss for {self.config.patience} "
                    f"epochs (best {self.progress.best_val_loss:.6g})"
                )
            if self._budget_done():
                return "completed", self._done_message()
            pos.epoch += 1
            pos.batch = 0
            pos.validated = False
            self.progress.epoch_loss_sum = 0.0
            self.progress.epoch_loss_count = 0
        # the step budget ended inside an epoch: validate what there is
        if not pos.validated:
            self._check_data()
            self._validate_and_checkpoint()
        return "completed", self._done_message()

    def _check_data(self) -> None:
        """End the run (_Fatal) when the data file changed since it was opened."""
        self._last_data_check = self._now()
        changed = getattr(self.dataset, "changed", None)
        reason = changed() if changed is not None else None
        if reason:
            raise _Fatal(RunError(
                f"{self.summary.path} changed during the run: {reason} (a file rewritten "
                f"while it is read gives wrong values)"))

    def _budget_done(self) -> bool:
        if self.config.steps is not None:
            return self.position.step >= self.config.steps
        return self.position.epoch >= (self.config.epochs or 0)

    def _done_message(self) -> str:
        return f"trained {self.position.step} steps, {self.position.epoch} epochs"

    def _train_epoch(self) -> bool:
        """Train the rest of the current epoch; True when the step budget ended it."""
        pos = self.position
        batches = self.train_split.iter_batches(self.config.batch_size, seed=self.config.seed,
                                                epoch=pos.epoch, start_batch=pos.batch)
        for batch in batches:
            self._controls()
            self._train_step(self.convert(batch))
            pos.batch += 1
            now = self._now()
            if self.probes.due(pos.step, now):
                self._probe()
            if now - self._last_checkpoint >= self.checkpoint_seconds:
                self._save("latest")
            if now - self._last_data_check >= DATA_CHECK_SECONDS:
                self._check_data()
            if self.config.steps is not None and pos.step >= self.config.steps:
                return True
        return False

    def _train_step(self, batch: _Tensors) -> None:
        pos, config = self.position, self.config
        step = pos.step + 1
        tf = config.teacher_forcing_at(step, self.total_steps)
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        outputs = self.model(batch.src, batch.tgt, batch.src_lengths, batch.tgt_lengths,
                             teacher_forcing=tf, generator=self.tf_generator)
        loss = self.model.loss(outputs, batch.tgt, batch.tgt_lengths)
        loss.backward()
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        total_norm = torch.nn.utils.get_total_norm(grads)
        loss_value, norm_value = float(loss.item()), float(total_norm.item())
        if not math.isfinite(loss_value) or not math.isfinite(norm_value):
            self.optimizer.zero_grad(set_to_none=True)
            what = "the loss" if not math.isfinite(loss_value) else "the gradient norm"
            bad = loss_value if not math.isfinite(loss_value) else norm_value
            raise _Diverged(f"diverged at step {step} (not applied): {what} is {bad}; "
                            f"{self._kept()}")
        # clipped: the norm was over the threshold, so clip_grads_with_norm_ scaled it down
        clipped = config.clip is not None and norm_value > config.clip
        if config.clip is not None:
            torch.nn.utils.clip_grads_with_norm_(self.model.parameters(), config.clip, total_norm)
        self.optimizer.step()
        pos.step = step
        pos.validated = False
        self.progress.sequences += batch.size
        self.progress.epoch_loss_sum += loss_value
        self.progress.epoch_loss_count += 1
        now = self._now()
        self._emit(StepMetrics(step=step, epoch=pos.epoch, loss=loss_value, grad_norm=norm_value,
                               learning_rate=self.optimizer.param_groups[0]["lr"],
                               teacher_forcing=tf, sequences_per_second=self._speed.add(now, batch.size),
                               seconds=now, sequences=self.progress.sequences,
                               clipped=clipped))

    def _controls(self) -> None:
        """Honour stop and pause requests (called between steps and validation batches)."""
        if self._stop.is_set():
            raise _Stop
        if not self._pause.is_set():
            return
        started = time.perf_counter()
        self._paused.set()
        self._emit(RunStatus("paused", self.position.step, self.position.epoch))
        with self._wake:
            while self._pause.is_set() and not self._stop.is_set():
                self._wake.wait(0.5)
        self._paused.clear()
        self._paused_total += time.perf_counter() - started
        if self._stop.is_set():
            raise _Stop
        self._emit(RunStatus("running", self.position.step, self.position.epoch))

    # -- validation -----------------------------------------------------------------------------

    def _validate_and_checkpoint(self) -> bool:
        """Validate, report the epoch, checkpoint; True when early stopping says stop."""
        pos, progress = self.position, self.progress
        scores = self.evaluate_split(self.val_scored) if self.val_scored is not None else None
        pos.validated = True
        train_loss = (progress.epoch_loss_sum / progress.epoch_loss_count
                      if progress.epoch_loss_count else None)
        if scores is None:
            self._save("latest")
            return False
        chosen = scores.loss_free_running if self.best_by == "val_free_running" else scores.loss
        improved = math.isfinite(chosen) and chosen < progress.best_val_loss
        if improved:  # best.pt and early stopping follow `best_by`
            progress.best_val_loss = chosen
            progress.epochs_since_best = 0
        else:
            progress.epochs_since_best += 1
        self._emit(EpochMetrics(epoch=pos.epoch, step=pos.step, val_loss=scores.loss,
                                val_loss_free_running=scores.loss_free_running,
                                token_accuracy=scores.token_accuracy,
                                sequence_accuracy=scores.sequence_accuracy,
                                train_loss=train_loss, seconds=self._now()))
        self._save("latest")
        if improved:
            self._save("best")
        patience = self.config.patience
        return patience is not None and progress.epochs_since_best >= patience

    def _compute_baselines(self) -> dict[str, Any] | None:
        """What trivial predictors score on the validation split (workbench.baselines),
        recorded in run.json's dataset; a failure there is logged, never the run's."""
        from workbench import baselines

        try:
            return baselines.for_training(self.dataset, self.train_split, self.val_split,
                                          self.normalization)
        except Exception:  # noqa: BLE001 - the baselines are a reading aid, not the run
            log.exception("could not compute the baselines")
            return None

    def evaluate_split(self, split: Any) -> Scores:
        """Score the model on a split: PhaseProgress("validation") as it goes, stop and
        pause requests honoured between batches."""
        reporter = self._phase("validation", "batches", split.num_batches(self.config.batch_size))
        scores = evaluate(self.model, split, self.convert, self.config.batch_size,
                          between_batches=reporter)
        reporter.finish()
        return scores

    # -- probes -------------------------------------------------------------------------------

    def _probe(self) -> None:
        from models.probes import probe
        from workbench.probe_samples import probe_sample_fields

        started = time.perf_counter()
        result = probe(self.model, self.probe_batch.src, self.probe_batch.tgt,
                       self.probe_batch.src_lengths, self.probe_batch.tgt_lengths,
                       sample_count=self.config.probe_samples, dtype=torch.float64)
        event = probe_event(result, self.position.step, self.position.epoch,
                            time.perf_counter() - started)
        event = dataclasses.replace(event, **probe_sample_fields(  # the samples' tokens
            self.probe_batch, self.summary, self.config.probe_samples))
        self._emit(event)
        self.progress.last_probe_step = self.position.step
        self.probes.record(self._now(), time.perf_counter() - started)

    def _final_probe(self) -> None:
        if self.progress.last_probe_step == self.position.step or self.position.step == 0:
            return
        try:
            self._probe()
        except Exception:  # noqa: BLE001 - the run's end must still be reported
            log.exception("final probe failed")

    # -- checkpoints ----------------------------------------------------------------------------

    _last_checkpoint: float = 0.0
    _last_saved_step: int | None = None  # None: no checkpoint written (or resumed from) yet

    def checkpoint_state(self) -> dict[str, Any]:
        """Everything a resumed run needs, as tensors and plain values (weights_only-safe)."""
        pos, progress = self.position, self.progress
        rng: dict[str, Any] = {"torch": torch.get_rng_state(),
                               "teacher_forcing": self.tf_generator.get_state()}
        if self.device == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {
            "format": CHECKPOINT_FORMAT,
            "run_id": self.run_id,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": rng,
            "position": {"step": pos.step, "epoch": pos.epoch, "batch": pos.batch,
                         "validated": pos.validated},
            "trainer": {"sequences": progress.sequences, "seconds": self._now(),
                        "best_val_loss": progress.best_val_loss,
                        "epochs_since_best": progress.epochs_since_best,
                        "epoch_loss_sum": progress.epoch_loss_sum,
                        "epoch_loss_count": progress.epoch_loss_count,
                        "last_probe_step": progress.last_probe_step,
                        "threads": self.threads, "device": self.device},
            "model_config": self.model_config.to_dict(),
            "normalization": self.normalization.to_dict() if self.normalization else None,
            "config": self.config.to_dict(),
            "torch_version": str(torch.__version__),
        }

    def _kept(self) -> str:
        if self._last_saved_step is None:
            return "no checkpoint was written"
        return f"the last good checkpoint is kept (step {self._last_saved_step})"

    def _remove_checkpoints(self) -> None:
        """Delete the checkpoints this (new, untrained) run wrote."""
        for path in self._written_checkpoints:
            with contextlib.suppress(OSError):
                Path(path).unlink()
        self._written_checkpoints.clear()
        self._last_saved_step = None

    def _save(self, name: str) -> None:
        """Checkpoint, unless the weights went non-finite (the last good one stays)."""
        self._last_checkpoint = self._now()
        if self.checkpointer is None:
            return
        if not all(bool(torch.isfinite(p).all()) for p in self.model.parameters()):
            raise _Diverged(f"diverged after step {self.position.step}: the weights are not "
                            f"finite; {self._kept()}")
        written = self.checkpointer.save_checkpoint(name, self.checkpoint_state())
        if written is not None:
            self._written_checkpoints.append(written)
        if name == "latest":
            self._last_saved_step = self.position.step

    def _check_resumable(self, state: dict[str, Any]) -> None:
        """Refuse (RunError naming the file and both shapes) data the checkpoint's model
        cannot read, when the Trainer is built: before a model is, or anything is written."""
        if isinstance(state.get("model_config"), dict):
            from models.seq2seq import Seq2SeqConfig

            with contextlib.suppress(KeyError, TypeError, ValueError):  # load_state_dict judges
                recorded = Seq2SeqConfig.from_dict(state["model_config"])
                check_compatible(recorded, self.summary)

    def _restore(self, state: dict[str, Any]) -> None:
        """Load a checkpoint's weights, optimizer, RNG states and position."""
        load_weights(self.model, state["model"], where=f"the checkpoint of run {self.run_id}",
                     saved_config=state.get("model_config"))
        try:
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, KeyError, ValueError) as exc:
            raise CheckpointError(f"checkpoint does not fit this run's model: {exc}") from None
        for group in self.optimizer.param_groups:  # a resume may change the learning rate
            group["lr"] = self.config.lr
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        self.tf_generator.set_state(rng["teacher_forcing"])
        if self.device == "cuda" and "cuda" in rng:
            torch.cuda.set_rng_state_all(rng["cuda"])
        p = state["position"]
        self.position = _Position(int(p["step"]), int(p["epoch"]), int(p["batch"]),
                                  bool(p["validated"]))
        t = state["trainer"]
        self.progress = _Progress(
            sequences=int(t["sequences"]), seconds=float(t["seconds"]),
            best_val_loss=float(t["best_val_loss"]), epochs_since_best=int(t["epochs_since_best"]),
            epoch_loss_sum=float(t["epoch_loss_sum"]), epoch_loss_count=int(t["epoch_loss_count"]),
            last_probe_step=int(t.get("last_probe_step", -1)))
        self._last_saved_step = self.position.step


# --- evaluation, shared with the CLI's evaluate ------------------------------------------------


@dataclass(frozen=True)
class Scores:
    """Losses (normalised units, as trained) and accuracies of a model on a split."""

    loss: float
    loss_free_running: float
    token_accuracy: float | None = None
    sequence_accuracy: float | None = None
    sequences: int = 0
    extra: dict[str, float] = field(default_factory=dict)


def evaluate(model: Any, split: Any, convert: BatchConverter, batch_size: int, *,
             between_batches: Callable[[], None] | None = None,
             normalization: Any | None = None) -> Scores:
    """Teacher-forced and free-running loss over a split; token and sequence accuracy.

    The accuracies are those of the free-running output as `Seq2Seq.generate` gives it
    (greedy, ending at the first end id) over each target's valid steps.

    With `normalization` (continuous targets), also the MSE in the data's own units
    (`extra["mse"]`, `extra["mse_free_running"]`).
    """
    tokens = model.config.target.kind == "tokens"
    was_training = model.training
    model.eval()
    total = total_free = 0.0
    count = correct_tokens = valid_tokens = exact = 0
    mse = mse_free = 0.0
    try:
        with torch.no_grad():
            for batch in split.iter_batches(batch_size, seed=0, epoch=0, shuffle=False):
                if between_batches is not None:
                    between_batches()
                t = convert(batch)
                forced = model(t.src, t.tgt, t.src_lengths, t.tgt_lengths, teacher_forcing=1.0)
                free = model(t.src, t.tgt, t.src_lengths, t.tgt_lengths, teacher_forcing=0.0)
                total += float(model.loss(forced, t.tgt, t.tgt_lengths, reduction="none").sum())
                total_free += float(model.loss(free, t.tgt, t.tgt_lengths, reduction="none").sum())
                count += t.size
                if tokens:
                    generated = _as_generated(free.argmax(-1), model.config.target)
                    ok, valid, whole = _token_hits(generated, t.tgt, t.tgt_lengths)
                    correct_tokens += ok
                    valid_tokens += valid
                    exact += whole
                elif normalization is not None:
                    mse += _data_unit_mse(model, forced, batch, normalization)
                    mse_free += _data_unit_mse(model, free, batch, normalization)
    finally:
        model.train(was_training)
    if count == 0:
        return Scores(math.nan, math.nan)
    extra = {"mse": mse / count, "mse_free_running": mse_free / count} if (
        normalization is not None and not tokens) else {}
    return Scores(
        loss=total / count,
        loss_free_running=total_free / count,
        token_accuracy=correct_tokens / valid_tokens if tokens and valid_tokens else None,
        sequence_accuracy=exact / count if tokens else None,
        sequences=count,
        extra=extra,
    )


def _as_generated(predicted: torch.Tensor, target: Any) -> torch.Tensor:
    """Free-running ids as `Seq2Seq.generate` returns them: pad after the first end id.

    The free-running forward goes on decoding after a sample's end id; generate (and so
    the predictions panel) stops there, so a sequence that ended early is wrong at every
    target step it did not reach, and the accuracies say the same.
    """
    is_end = predicted == target.end_id
    after_end = (is_end.cumsum(dim=1) - is_end.long()) > 0
    return predicted.masked_fill(after_end, target.pad_id)


def _token_hits(predicted: torch.Tensor, target: torch.Tensor,
                lengths: torch.Tensor) -> tuple[int, int, int]:
    """(correct tokens, valid tokens, sequences entirely right) over valid target steps."""
    steps = target.shape[1]
    lengths = lengths.to(target.device)
    valid = torch.arange(steps, device=target.device)[None, :] < lengths[:, None]
    hits = (predicted == target) & valid
    whole = (hits | ~valid).all(dim=1)
    return int(hits.sum()), int(valid.sum()), int(whole.sum())


def _data_unit_mse(model: Any, outputs: torch.Tensor, batch: Any, normalization: Any) -> float:
    """Sum over samples of the per-sample MSE in the data's own units."""
    predicted = normalization.denormalize_y(outputs.detach().cpu().numpy().astype(np.float64))
    target = batch.y.astype(np.float64)
    steps = target.shape[1]
    valid = (np.arange(steps)[None, :] < batch.y_lengths[:, None]).astype(np.float64)
    squared = ((predicted - target) ** 2).mean(axis=-1) * valid
    return float((squared.sum(axis=1) / np.maximum(valid.sum(axis=1), 1)).sum())


_PROBE_OWN_FIELDS = ("step", "epoch", "seconds")  # set by the Trainer, not the probe


def probe_event(result: Any, step: int, epoch: int, seconds: float) -> ProbeEvent:
    """A models.probes.ProbeResult as the ProbeEvent listeners get (numpy, no tensors).

    Every other ProbeEvent field is read from the result by name, so the two
    dataclasses (models/ cannot import workbench/) cannot drift apart silently.
    """
    values: dict[str, Any] = {}
    for spec in dataclasses.fields(ProbeEvent):
        if spec.name in _PROBE_OWN_FIELDS:
            continue
        value = getattr(result, spec.name, None)
        if spec.name == "spectral_radius":
            values[spec.name] = {str(k): float(v) for k, v in (value or {}).items()}
        elif spec.name.startswith("gate_"):
            values[spec.name] = {str(k): _numpy(v) for k, v in (value or {}).items()}
        else:
            values[spec.name] = _numpy(value)
    return ProbeEvent(step=step, epoch=epoch, seconds=seconds, **values)


def _numpy(value: Any) -> np.ndarray | None:
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _best_by(config: RunConfig, target_kind: str, resume: ResumeState | None) -> str:
    """The validation loss that picks `best`: the config's, else by the targets' kind; a
    run recorded before `best_by` existed goes on by the teacher-forced loss, as it began."""
    if config.best_by is None and resume is not None:
        return "val_teacher_forced"
    return resolve_best_by(config.best_by, target_kind)


def _threads_for(config: RunConfig, resume: ResumeState | None,
                 policy: str) -> tuple[int, str]:
    """(torch threads, warning): a resume keeps the recorded count unless told otherwise."""
    recorded = None
    if resume is not None:
        with contextlib.suppress(KeyError, TypeError, ValueError):
            recorded = int(resume.checkpoint["trainer"]["threads"])
    if recorded is not None and recorded > 0 and config.threads == 0:
        return recorded, ""
    threads = resolve_threads(config.threads, config.hidden, policy=policy)
    if recorded is not None and recorded > 0 and threads != recorded:
        return threads, (
            f"resumed with {threads} torch thread{'s' if threads != 1 else ''} where the run "
            f"so far used {recorded}: the continuation is no longer bit-identical to an "
            f"uninterrupted run (threads = 0 keeps the recorded count)")
    return threads, ""

