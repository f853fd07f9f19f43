"""Probes: what happens inside a Seq2Seq on one batch, for the live plots.

`probe()` runs one instrumented forward and backward pass and returns plain numpy
arrays (a ProbeResult, whose fields are those of workbench.events.ProbeEvent):

- the gradient norm at every time step, G_t = mean over samples b of
  ||dL_b / dh_{b,t}||_2, the total derivative (through every later step too), for
  every layer of the encoder and the decoder, and the same for an LSTM's c_t;
- the hidden states of the first few samples (trajectory plots);
- per step and per sigmoid gate, the mean activation and the saturated fraction;
- the spectral radius of each layer's recurrent weights (per gate block);
- with attention, the attention weights of the first few samples (alignment plots).

With attention, G_t over encoder steps includes the paths through the attention
context (every decoder step reads h_t directly): it is the total derivative.

Its figures mean the same in every run and at every step, and measuring must not
disturb what is measured. So the pass runs on a float64 deep copy of the model
(vanishing gradients of 1e-28 underflow to 0 in float32), in eval mode (no
dropout), with the decoder teacher-forced (no draws), and L_b is the per-sample loss
the training minimises. No weight, optimizer state or `.grad` of the model is
touched, and torch's global random state is saved and restored around the pass.

Why one backward gives every per-sample gradient: dL_b/dh_{b',t} is zero for
b' != b (samples never interact), so the gradient of sum_b L_b with respect to
h_t (B, H) holds dL_b/dh_{b,t} in row b.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from models.init import seq2seq_spectral_radii
from models.recurrent import _as_lengths, step_mask
from models.seq2seq import Seq2Seq

SATURATION_LOW = 0.05
SATURATION_HIGH = 0.95


@dataclass(frozen=True)
class ProbeResult:
    """One probe, as plain numpy float64 arrays (field names as workbench.events.ProbeEvent).

    encoder_grad_norms: (layers, T_in) G_t of dL/dh_t; decoder_grad_norms: (layers, T_out).
      NaN at a step no sample of the batch reaches.
    encoder_cell_grad_norms / decoder_cell_grad_norms: the same for c_t (LSTM), else None.
    encoder_hidden: (samples, T_in, H) top-layer h_t of the first samples of the batch;
      decoder_hidden: (samples, T_out, H). NaN at a sample's padded steps.
    gate_means / gate_saturation: sigmoid gate name ("i", "f", "o" for an LSTM; "r", "z"
      for a GRU; none for a vanilla RNN) -> (layers, T_in + T_out), encoder steps then
      decoder steps, over valid samples and all units. Saturated: below 0.05 or above 0.95.
    spectral_radius: "encoder.layer0" (vanilla RNN: of W_hh) or "encoder.layer0.f"
      (LSTM i, f, g, o / GRU r, z, n: of that H x H block of W_hh) -> float.
    seconds: wall time of the probe.
    attention_weights: (samples, T_out, T_in) the teacher-forced decoder's attention
      weights for the first samples of the batch: 0 at padded source steps, each row
      summing to 1 over the valid ones, NaN rows at a sample's padded target steps;
      None for a model without attention.
    """

    encoder_grad_norms: np.ndarray
    decoder_grad_norms: np.ndarray
    encoder_hidden: np.ndarray
    decoder_hidden: np.ndarray
    encoder_cell_grad_norms: np.ndarray | None = None
    decoder_cell_grad_norms: np.ndarray | None = None
    gate_means: dict[str, np.ndarray] = field(default_factory=dict)
    gate_saturation: dict[str, np.ndarray] = field(default_factory=dict)
    spectral_radius: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    attention_weights: np.ndarray | None = None


def probe(
    model: Seq2Seq,
    src: Tensor,
    tgt: Tensor,
    src_lengths: object = None,
    tgt_lengths: object = None,
    *,
    sample_count: int = 4,
    dtype: torch.dtype = torch.float64,
) -> ProbeResult:
    """Probe `model` on one batch (see the module docstring). The model is not changed.

    dtype: the precision of the pass; float64 unless a model is too large for it
    (float32 shows vanishing gradients below ~1e-19 as 0).
    """
    started = time.perf_counter()
    device = model.head.weight.device
    batch = src.shape[0]
    src_lens = _as_lengths(src_lengths, batch, src.shape[1], "probe src_lengths")
    tgt_lens = _as_lengths(tgt_lengths, batch, tgt.shape[1], "probe tgt_lengths")
    cuda = (
        [device.index if device.index is not None else torch.cuda.current_device()]
        if (device.type == "cuda")
        else []
    )
    with torch.random.fork_rng(devices=cuda), torch.enable_grad():
        twin = copy.deepcopy(model).to(dtype).eval()
        for p in twin.parameters():
            p.grad = None
            p.requires_grad_(True)  # so that every h_t is in a graph, even for a frozen model
        if src.is_floating_point():
            src = src.to(device=device, dtype=dtype)
        if tgt.is_floating_point():
            tgt = tgt.to(device=device, dtype=dtype)
        trace = twin(src, tgt, src_lens, tgt_lens, teacher_forcing=1.0, instrumented=True)
        per_sample = twin.loss(trace.outputs, tgt, tgt_lens, reduction="none")
        enc, dec = trace.encoder, trace.decoder
        groups = [enc.h, dec.h] + ([enc.c, dec.c] if enc.c is not None else [])
        tensors = [h for group in groups for layer in group for h in layer]  # type: ignore[union-attr]
        grads = torch.autograd.grad(
            per_sample.sum(), tensors, allow_unused=True, materialize_grads=True
        )
    src_mask = _mask(src_lens, src.shape[1], batch, device)
    tgt_mask = _mask(tgt_lens, tgt.shape[1], batch, device)
    norms = []
    it = iter(grads)
    for group, mask in zip(groups, [src_mask, tgt_mask, src_mask, tgt_mask], strict=False):
        layers = [torch.stack([next(it) for _ in layer], dim=1) for layer in group]  # type: ignore[union-attr]
        norms.append(np.stack([_masked_mean(g.norm(dim=2), mask) for g in layers]))
    samples = min(sample_count, batch)
    info = model.encoder.info
    means: dict[str, np.ndarray] = {}
    saturation: dict[str, np.ndarray] = {}
    for name in info.gates:
        per_layer_mean, per_layer_sat = [], []
        for layer in range(model.encoder.num_layers):
            m, f = [], []
            for trace_side, mask in ((enc, src_mask), (dec, tgt_mask)):
                a = trace_side.gates[layer][name].detach()
                saturated = (a < SATURATION_LOW) | (a > SATURATION_HIGH)
                m.append(_masked_mean(a.mean(dim=2), mask))
                f.append(_masked_mean(saturated.to(a.dtype).mean(dim=2), mask))
            per_layer_mean.append(np.concatenate(m))
            per_layer_sat.append(np.concatenate(f))
        means[name] = np.stack(per_layer_mean)
        saturation[name] = np.stack(per_layer_sat)
    return ProbeResult(
        encoder_grad_norms=norms[0],
        decoder_grad_norms=norms[1],
        encoder_hidden=_hidden(enc.h[-1], src_mask, samples),
        decoder_hidden=_hidden(dec.h[-1], tgt_mask, samples),
        encoder_cell_grad_norms=norms[2] if len(norms) > 2 else None,
        decoder_cell_grad_norms=norms[3] if len(norms) > 2 else None,
        gate_means=means,
        gate_saturation=saturation,
        spectral_radius=spectral_radii(model),
        seconds=time.perf_counter() - started,
        attention_weights=_attention(trace.attention, tgt_mask, samples),
    )


def spectral_radii(model: Seq2Seq) -> dict[str, float]:
    """The spectral radius (largest |eigenvalue|) of each layer's recurrent weights, per
    gate block, as "encoder.layer0" or "encoder.layer0.f".

    models.init.seq2seq_spectral_radii in float32: LAPACK's eigvals is about 2x faster
    there than in float64 (12 vs 22 ms at H 256, 8 blocks per LSTM probe) and accurate to
    ~1e-6 relative, plenty for a plotted radius; float64 only where float32 fails to
    converge. One function, so the probe records what the init set."""
    return seq2seq_spectral_radii(model, dtype=torch.float32)


def _mask(lens: Tensor | None, steps: int, batch: int, device: torch.device) -> Tensor:
    mask = step_mask(lens, steps, device)
    return torch.ones(batch, steps, dtype=torch.bool, device=device) if mask is None else mask


def _masked_mean(values: Tensor, mask: Tensor) -> np.ndarray:
    """(B, T) values -> (T,) float64 mean over the samples valid at each step, NaN where none."""
    values = values.detach().to(torch.float64)
    m = mask.to(torch.float64)
    count = m.sum(dim=0)
    total = torch.where(mask, values, values.new_zeros(())).sum(dim=0)
    mean = torch.where(count > 0, total / count.clamp(min=1), torch.full_like(total, float("nan")))
    return mean.cpu().numpy()


def _hidden(h_steps: list[Tensor], mask: Tensor, samples: int) -> np.ndarray:
    """(samples, T, H) float64 of the first samples' h_t, NaN at their padded steps."""
    h = torch.stack([s[:samples] for s in h_steps], dim=1).detach().to(torch.float64)
    nan = torch.full_like(h, float("nan"))
    return torch.where(mask[:samples].unsqueeze(-1), h, nan).cpu().numpy()


def _attention(weights: Tensor | None, tgt_mask: Tensor, samples: int) -> np.ndarray | None:
    """(samples, T_out, T_in) float64 of the first samples' attention weights, NaN rows at
    their padded target steps; None without attention."""
    if weights is None:
        return None
    w = weights[:samples].detach().to(torch.float64)
    nan = torch.full_like(w, float("nan"))
    return torch.where(tgt_mask[:samples, :, None], w, nan).cpu().numpy()
