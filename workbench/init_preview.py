"""What a run's initial recurrent weights will be, before it trains: the Model panel's
read-out of the init settings.

    preview = init_preview(config, summary)   # the model the run would build, not trained
    preview.radius                            # rho(W_hh) of the encoder's top layer
    preview.gain                              # rho ** (T_in - 1) over the data's input steps

The model is built as the Trainer builds it (seeded with `config.seed`, then
models.init as the config says), so `radius` is the figure the run's first probe
records in `spectral_radius` (before its first step changes the weights). For a gated
cell it is the largest of the gate blocks (as the comparison table's). Going back one
step multiplies the gradient by W_hh^T (and the activation's slope, at most 1), so
rho^(T_in - 1) is roughly how much of the last input step's gradient reaches the first:
far below 1 it vanishes, far above it explodes.

Building the model draws from torch's global generator (inside fork_rng, restored
after): the GUI calls this only while no run trains in its process.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from workbench.config import RunConfig

MAX_PREVIEW_HIDDEN = 2048  # above this, eigenvalues take seconds: not previewed


@dataclass(frozen=True)
class InitPreview:
    radius: float  # spectral radius of the encoder's top-layer W_hh (largest gate block)
    radii: dict[str, float]  # every layer and block, keyed as the probes key them
    steps: int | None  # T_in of the data (None without data)

    @property
    def gain(self) -> float | None:
        """rho ** (T_in - 1): roughly G_1 / G_T at the start (None without data)."""
        if self.steps is None or not math.isfinite(self.radius):
            return None
        with_steps = max(self.steps - 1, 0)
        try:
            return self.radius ** with_steps
        except OverflowError:
            return math.inf


def known_radius(config: RunConfig) -> float | None:
    """The radius the settings fix without drawing a number (a radius given; identity
    and orthogonal blocks have every eigenvalue of modulus 1), else None."""
    if config.recurrent_radius is not None:
        return float(config.recurrent_radius)
    if config.recurrent_init in ("identity", "orthogonal"):
        return 1.0
    return None


def init_preview(config: RunConfig, summary: Any | None = None) -> InitPreview:
    """The initial spectral radii of the model `config` builds on data `summary` (any
    DatasetSummary; without one, a one-feature continuous model: W_hh does not depend on
    the data). ValueError when the model is too big to preview."""
    import torch

    from models.init import seq2seq_spectral_radii
    from models.seq2seq import Seq2Seq
    from workbench.compare import encoder_spectral_radius
    from workbench.model_config import build_model_config
    from workbench.training import initialize_model

    if config.hidden > MAX_PREVIEW_HIDDEN:
        raise ValueError(f"hidden = {config.hidden}: too large to preview (at most "
                         f"{MAX_PREVIEW_HIDDEN})")
    if summary is None:
        side = SimpleNamespace(kind="continuous", features=1, vocab_size=None, pad_id=None,
                               start_id=None, end_id=None)
        summary = SimpleNamespace(inputs=side, targets=side)
    model_config = build_model_config(config, summary)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = Seq2Seq(model_config)
        initialize_model(model, config)
    radii = seq2seq_spectral_radii(model, dtype=torch.float32)
    probe = SimpleNamespace(spectral_radius=radii)
    radius = encoder_spectral_radius(probe, config.layers)  # type: ignore[arg-type]
    steps = getattr(getattr(summary, "inputs", None), "steps", None)
    return InitPreview(radius if radius is not None else math.nan, radii,
                       int(steps) if isinstance(steps, int) else None)
