"""Initialisation of the recurrent weights W_hh: the causes of vanishing and exploding.

Whether a gradient vanishes or explodes through time is set, before any training,
by W_hh: going back one step multiplies dL/dh_t by W_hh^T (times the activation's
slope), so over T steps it scales roughly like rho(W_hh)^(T-1), rho the spectral
radius (the largest |eigenvalue|). These functions let a user choose W_hh's start:

- "default": torch's uniform +-1/sqrt(H), exactly as built (nothing changes);
- "orthogonal": each gate block of W_hh orthogonal (every singular value 1);
- "identity": each gate block of W_hh the identity (Le et al. 2015's IRNN, with relu);

then optionally rescale each layer's W_hh (each gate block separately for an LSTM or
a GRU) to a chosen spectral radius, and for an LSTM set the forget gate's bias.

They act on any module that holds its recurrent weights under torch.nn's names:
models.recurrent.Recurrent and torch.nn.RNN/LSTM/GRU (`weight_hh_l{k}`, with
`bias_ih_l{k}` and `bias_hh_l{k}`), or models.cells.Cell and torch.nn.*Cell
(`weight_hh`). Recurrent's fused fast path and its unrolled path read the same
parameters, so one initialisation serves both.

Randomness: only "orthogonal" draws numbers, from torch's global generator, layer by
layer and block by block in torch's order; "default" and "identity" draw nothing.
So a caller that seeds torch before building and initialising the model gets the
same weights every time.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from models.cells import CellInfo, cell_info

if TYPE_CHECKING:  # models.seq2seq may one day import this module
    from models.seq2seq import Seq2Seq

__all__ = [
    "initialize_recurrent",
    "initialize_seq2seq",
    "recurrent_init_names",
    "seq2seq_spectral_radii",
    "spectral_radii",
]

recurrent_init_names: tuple[str, ...] = ("default", "orthogonal", "identity")

# weight_hh (a cell), weight_hh_l0, weight_hh_l1_reverse (a bidirectional torch.nn.RNN)
_W_HH = re.compile(r"^weight_hh(?:_l(\d+)(_reverse)?)?$")


def initialize_recurrent(
    module: nn.Module,
    cell: str,
    *,
    init: str = "default",
    radius: float | None = None,
    forget_bias: float | None = None,
) -> None:
    """Initialise the recurrent weights of `module`, a stack of `cell` layers, in place.

    init: one of recurrent_init_names (see the module docstring), applied to each
      H x H gate block of every layer's W_hh (LSTM i, f, g, o; GRU r, z, n; the whole
      W_hh of a vanilla RNN).
    radius: if given (> 0), after `init` each layer's W_hh is scaled so that its
      spectral radius is exactly this value; for an LSTM or a GRU each gate block is
      scaled on its own (the radius is computed in float64 with torch.linalg.eigvals).
    forget_bias: LSTM only. The forget gate's pre-activation bias at the start. torch
      keeps two bias vectors, b_ih and b_hh, and adds them: the forget slice (rows
      H..2H, torch's gate order i, f, g, o) of b_ih is set to the value and that of
      b_hh to 0, so that their sum, the bias the gate sees, is the value.

    W_ih and the other biases are left as they are. Everything is checked before
    anything is changed: a bad argument raises ValueError with a one-line message and
    leaves the module untouched.
    """
    info = cell_info(cell)
    _check_arguments(info, init, radius, forget_bias)
    weights = _recurrent_weights(module, info)
    biases = _forget_biases(module, weights, info) if forget_bias is not None else []
    with torch.no_grad():
        # every new block first, written only once all are computed (a block that cannot
        # be scaled leaves the module as it was)
        new_blocks = [
            (block, _new_block(block, block_label, init, radius))
            for label, w in weights
            for block_label, block in _blocks(label, w, info)
        ]
        for block, value in new_blocks:
            block.copy_(value)
        for b_ih, b_hh, hidden in biases:
            b_ih[hidden : 2 * hidden] = float(forget_bias)  # type: ignore[arg-type]
            b_hh[hidden : 2 * hidden] = 0.0


def initialize_seq2seq(
    model: Seq2Seq,
    *,
    init: str = "default",
    radius: float | None = None,
    forget_bias: float | None = None,
) -> None:
    """initialize_recurrent on a models.seq2seq.Seq2Seq's encoder, then its decoder.

    The cell is the model's own (model.config.cell). Both sides are checked before
    either is changed; the encoder draws first (for "orthogonal"), so the result is
    a function of torch's global seed.
    """
    cell = model.config.cell
    info = cell_info(cell)
    _check_arguments(info, init, radius, forget_bias)
    for side in (model.encoder, model.decoder):  # check both before changing either
        weights = _recurrent_weights(side, info)
        if forget_bias is not None:
            _forget_biases(side, weights, info)
    for side in (model.encoder, model.decoder):
        initialize_recurrent(side, cell, init=init, radius=radius, forget_bias=forget_bias)


def spectral_radii(
    module: nn.Module, cell: str, *, dtype: torch.dtype = torch.float64
) -> dict[str, float]:
    """The spectral radius (largest |eigenvalue|) of each layer's W_hh.

    Keys: "layer0", "layer1", ... for a vanilla RNN (the whole W_hh), and "layer0.i",
    "layer0.f", ... per H x H gate block for an LSTM (i, f, g, o) or a GRU (r, z, n);
    a bidirectional torch module's reverse direction is "layer0_reverse". NaN for a
    block holding a non-finite value or whose eigenvalues do not converge.
    dtype: the precision of the eigenvalues. float32 is about 2x faster (models/probes.py
    measured 12 vs 22 ms for an LSTM at H 256) and good to ~1e-6 relative, enough for a
    plotted figure; it falls back to float64 where float32 does not converge.
    """
    info = cell_info(cell)
    out: dict[str, float] = {}
    for label, w in _recurrent_weights(module, info):
        for block_label, block in _blocks(label, w, info):
            out[block_label] = _radius(block, dtype)
    return out


def seq2seq_spectral_radii(
    model: Seq2Seq, *, dtype: torch.dtype = torch.float64
) -> dict[str, float]:
    """spectral_radii of a Seq2Seq's encoder and decoder, keyed as the probes key them:
    "encoder.layer0" (vanilla RNN) or "encoder.layer0.f" (a gate block)."""
    cell = model.config.cell
    out: dict[str, float] = {}
    for side in ("encoder", "decoder"):
        for key, value in spectral_radii(getattr(model, side), cell, dtype=dtype).items():
            out[f"{side}.{key}"] = value
    return out


# -- checks ----------------------------------------------------------------------------


def _check_arguments(
    info: CellInfo, init: str, radius: float | None, forget_bias: float | None
) -> None:
    if init not in recurrent_init_names:
        known = ", ".join(recurrent_init_names)
        raise ValueError(f"recurrent init {init!r} is not known; expected one of {known}")
    if radius is not None and (
        isinstance(radius, bool)
        or not isinstance(radius, (int, float))
        or not math.isfinite(radius)
        or radius <= 0
    ):
        raise ValueError(f"recurrent radius {radius!r} is not allowed: expected a number > 0")
    if forget_bias is None:
        return
    if info.name != "lstm":
        raise ValueError(
            f"forget_bias = {forget_bias!r} is not allowed for cell {info.name!r}: "
            "only an LSTM has a forget gate"
        )
    if (
        isinstance(forget_bias, bool)
        or not isinstance(forget_bias, (int, float))
        or not math.isfinite(forget_bias)
    ):
        raise ValueError(f"forget_bias = {forget_bias!r} is not allowed: expected a finite number")


def _recurrent_weights(module: nn.Module, info: CellInfo) -> list[tuple[str, Tensor]]:
    """(label, W_hh) of every layer of `module`, in registration (layer) order, each
    checked to be (G*H, H) for the cell's G gate blocks."""
    own = getattr(module, "cell", None)
    if isinstance(own, str) and own != info.name:
        raise ValueError(f"{type(module).__name__} holds {own!r} layers, not {info.name!r}")
    found: list[tuple[str, Tensor]] = []
    for name, param in module.named_parameters(recurse=False):
        match = _W_HH.match(name)
        if match is None:
            continue
        layer = match.group(1) or "0"
        label = f"layer{layer}" + ("_reverse" if match.group(2) else "")
        rows, cols = param.shape if param.dim() == 2 else (0, 0)
        if param.dim() != 2 or rows != info.gate_count * cols:
            raise ValueError(
                f"{type(module).__name__}.{name} has shape {tuple(param.shape)}, not "
                f"({info.gate_count} * H, H) as a {info.name} layer's W_hh"
            )
        found.append((label, param))
    if not found:
        raise ValueError(
            f"{type(module).__name__} has no recurrent weights (weight_hh_l0 or weight_hh)"
        )
    return found


def _forget_biases(
    module: nn.Module, weights: list[tuple[str, Tensor]], info: CellInfo
) -> list[tuple[Tensor, Tensor, int]]:
    """(b_ih, b_hh, H) of every layer, found beside its W_hh (bias_ih_l0 by weight_hh_l0)."""
    params = dict(module.named_parameters(recurse=False))
    names = {id(p): n for n, p in params.items()}
    out = []
    for _label, w in weights:
        name = names[id(w)]
        b_ih = params.get(name.replace("weight_hh", "bias_ih"))
        b_hh = params.get(name.replace("weight_hh", "bias_hh"))
        if b_ih is None or b_hh is None:
            raise ValueError(
                f"{type(module).__name__} has no biases beside {name}: cannot set forget_bias"
            )
        out.append((b_ih, b_hh, w.shape[1]))
    return out


# -- blocks and radii ------------------------------------------------------------------------


def _blocks(label: str, w: Tensor, info: CellInfo) -> list[tuple[str, Tensor]]:
    """The H x H gate blocks of W_hh as views (the whole W_hh for a vanilla RNN)."""
    if not info.blocks:
        return [(label, w)]
    hidden = w.shape[1]
    return [
        (f"{label}.{name}", w[k * hidden : (k + 1) * hidden]) for k, name in enumerate(info.blocks)
    ]


def _radius(w: Tensor, dtype: torch.dtype = torch.float64) -> float:
    """Largest |eigenvalue| computed in `dtype` (float64 if that fails to converge); NaN
    if w holds a non-finite value or LAPACK fails."""
    w = w.detach().to("cpu")
    if not bool(torch.isfinite(w).all()):
        return float("nan")
    for precision in dict.fromkeys((dtype, torch.float64)):
        try:
            return float(torch.linalg.eigvals(w.to(precision)).abs().max())
        except RuntimeError:  # torch.linalg.LinAlgError is a RuntimeError
            continue
    return float("nan")


def _new_block(block: Tensor, label: str, init: str, radius: float | None) -> Tensor:
    """What `block` becomes under `init`, then scaled to `radius` (a new tensor)."""
    value = block.detach().clone()
    if init == "orthogonal":
        nn.init.orthogonal_(value)
    elif init == "identity":
        value = torch.eye(value.shape[0], dtype=value.dtype, device=value.device)
    if radius is None:
        return value
    current = _radius(value)
    if not math.isfinite(current) or current <= 0.0:
        raise ValueError(
            f"cannot scale W_hh {label} to spectral radius {radius:g}: its radius is {current:g}"
        )
    return (value.to(torch.float64) * (float(radius) / current)).to(value.dtype)
