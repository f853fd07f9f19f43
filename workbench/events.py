"""The events a Trainer sends its listeners, and the listener protocol.

Events are small frozen dataclasses of plain numbers, strings and numpy arrays:
never tensors, never widgets. The same events come from a live Trainer and from a
run record replayed from disk (workbench.runs), so every consumer (the run
recorder, the GUI's Qt bridge, the CLI's progress bar) has one code path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np


def throughput(sequences: int | None, seconds: float | None) -> float | None:
    """A run's sequences per second: sequences trained on over the training time so far.

    The one figure of speed that the window's status bar, the Runs list and the
    comparison table all show (StepMetrics.sequences_per_second is a short window's
    rate, for the records); None before any time has passed."""
    if not sequences or seconds is None or not seconds > 0:
        return None
    return sequences / seconds


@dataclass(frozen=True)
class RunStarted:
    run_id: str
    config: dict[str, Any]  # RunConfig.to_dict(): plain, TOML-able
    parameters: int
    dataset: dict[str, Any]  # DatasetSummary.to_json()
    resumed_from_step: int = 0
    threads: int = 0  # torch threads the run trains with (part of its record)
    device: str = "cpu"  # where it trains ("cpu" or "cuda", never "auto")
    model_config: dict[str, Any] = field(default_factory=dict)  # Seq2SeqConfig.to_dict()
    normalization: dict[str, Any] | None = None  # Normalization.to_dict(); None for tokens
    warning: str = ""  # e.g. a resume whose thread count differs: no longer bit-identical


@dataclass(frozen=True)
class StepMetrics:
    step: int  # 1-based count of optimizer steps taken in the run
    epoch: int  # 1-based epoch this step belongs to
    loss: float  # training loss of the batch (normalised units)
    grad_norm: float  # total gradient norm before clipping
    learning_rate: float
    teacher_forcing: float
    sequences_per_second: float
    seconds: float  # training wall time so far (excluding pauses)
    sequences: int = 0  # sequences trained on so far in the run (cumulative)
    clipped: bool = False  # grad_norm was over the clip threshold and was scaled down to it


@dataclass(frozen=True)
class EpochMetrics:
    epoch: int
    step: int
    val_loss: float  # teacher-forced
    val_loss_free_running: float
    token_accuracy: float | None = None  # token targets only
    sequence_accuracy: float | None = None
    train_loss: float | None = None  # mean over the epoch
    seconds: float = 0.0


@dataclass(frozen=True)
class ProbeEvent:
    """One probe (models.probes.ProbeResult, flattened to numpy) at a training step.

    Arrays:
      encoder_grad_norms: (layers, T_in) float64, G_t of dL/dh_t per layer
      decoder_grad_norms: (layers, T_out) float64
      encoder_cell_grad_norms / decoder_cell_grad_norms: same for c_t (LSTM) or None
      encoder_hidden: (samples, T_in, hidden) top layer h_t of the probe samples
      decoder_hidden: (samples, T_out, hidden)
      gate_means / gate_saturation: gate name -> (layers, T_in + T_out)
      spectral_radius: name -> float, e.g. "layer0" (RNN) or "layer0.f" (LSTM gate block)
      attention_weights: (samples, T_out, T_in) or None without attention

    The probe samples themselves (set by the Trainer, not the probe: PROBE_SAMPLE_FIELDS;
    None in a probe recorded before they existed), so a panel can label their steps:
      sample_source_lengths / sample_target_lengths: (samples,) int64 valid steps
      sample_source_tokens: (samples, T_in) str, the input tokens ("" past a sample's
        length), token inputs only; sample_target_tokens: (samples, T_out) the same
    """

    step: int
    epoch: int
    encoder_grad_norms: np.ndarray
    decoder_grad_norms: np.ndarray
    encoder_hidden: np.ndarray
    decoder_hidden: np.ndarray
    encoder_cell_grad_norms: np.ndarray | None = None
    decoder_cell_grad_norms: np.ndarray | None = None
    gate_means: dict[str, np.ndarray] = field(default_factory=dict)
    gate_saturation: dict[str, np.ndarray] = field(default_factory=dict)
    spectral_radius: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0  # how long the probe took
    attention_weights: np.ndarray | None = None  # (samples, T_out, T_in); None: no attention
    sample_source_lengths: np.ndarray | None = None
    sample_target_lengths: np.ndarray | None = None
    sample_source_tokens: np.ndarray | None = None
    sample_target_tokens: np.ndarray | None = None


# ProbeEvent fields the Trainer fills from its probe batch (not models.probes.ProbeResult's)
PROBE_SAMPLE_FIELDS = ("sample_source_lengths", "sample_target_lengths",
                       "sample_source_tokens", "sample_target_tokens")


@dataclass(frozen=True)
class RunFinished:
    status: str  # "completed" | "stopped" | "diverged" | "failed"
    message: str
    step: int
    epoch: int
    seconds: float


@dataclass(frozen=True)
class RunStatus:
    """The trainer paused ("paused") or went on ("running") at a step.

    Sent when a pause request takes effect and when training resumes, so a listener
    can show it; not part of a replayed history.
    """

    status: str  # "paused" | "running"
    step: int
    epoch: int


@dataclass(frozen=True)
class PhaseProgress:
    """How far a phase that is not a training step has got, sent while it runs.

    Phases that can take more than a second on a large file send it: "normalisation"
    (the sample of training rows the statistics come from, before RunStarted) and
    "validation" (the batches of the validation subset after an epoch). A stop request
    takes effect between two of its units. Sent at the phase's start, at most every
    0.2 s, and at its end (done == total); not part of a replayed history.
    """

    phase: str  # "normalisation" | "validation"
    done: int
    total: int
    unit: str = ""  # what is counted: "rows", "batches"
    step: int = 0  # the training step it follows (0 before the first)


@dataclass(frozen=True)
class ListenerError:
    """Sent to the other listeners when one listener raised; the run goes on."""

    listener: str
    message: str


Event = (
    RunStarted | StepMetrics | EpochMetrics | ProbeEvent | RunFinished | ListenerError | RunStatus
    | PhaseProgress
)

STATUSES = ("running", "paused", "completed", "stopped", "diverged", "failed", "crashed")


class Listener(Protocol):
    """Anything with `on_event(event)`. Called in the training thread."""

    def on_event(self, event: Event) -> None: ...


class RecordingListener:
    """Keeps every event it is sent: for tests and for replays into memory."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def on_event(self, event: Event) -> None:
        self.events.append(event)

    def of_type(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]
