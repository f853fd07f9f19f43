# FROZEN: models/seq2seq.py as it was before attention (commit 0821041), verbatim below
# this note: the reference for "with attention none the model is bit-identical to the
# model before attention" (tests/models/test_attention.py and test_beam.py). Do not
# edit it to follow models/seq2seq.py: its whole point is that it does not change.
"""The recurrent encoder-decoder: configuration, model, losses.

The encoder runs a recurrent stack over the source; its final state (h, and c for
an LSTM, every layer; each sample's own last valid step) is the decoder's initial
state. The decoder's first input is a start symbol (tokens) or a learned start
vector (continuous); at every later step it is fed either the true previous target
(teacher forcing) or its own previous prediction.

Teacher forcing draws: one Bernoulli(teacher_forcing) draw per decoder step
t = 2..T_out, shared by the whole batch (step 1 always reads the start symbol).
A step that draws "teacher" reads the true y_{t-1} for every sample, otherwise
every sample reads its own prediction. A forward with 0 < teacher_forcing < 1
takes exactly T_out - 1 numbers from its generator (the optional
torch.Generator argument, else torch's global one); with 1.0 or 0.0 it draws
nothing. Because a run of teacher-forced steps is known in advance, it runs as one
fused call; with 1.0 the whole decoder is one fused call.

The fed-back prediction is greedy argmax for tokens (no gradient flows through a
choice) and the prediction itself for continuous targets (gradient flows through
it: the loss is differentiated as the model computed it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.cells import cell_info, parameter_count
from models.recurrent import Recurrent, RecurrentTrace, StackState, _as_lengths, step_mask

__all__ = [
    "Generated",
    "Seq2Seq",
    "Seq2SeqConfig",
    "Seq2SeqTrace",
    "SideConfig",
    "parameter_count",
]

SIDE_KINDS = ("continuous", "tokens")


@dataclass(frozen=True)
class SideConfig:
    """One side of the data: the source (encoder input) or the target (decoder output).

    continuous: `features` floats per step. tokens: integer ids below `vocab_size`,
    embedded in `embedding` dimensions; pad/start/end ids as the dataset format
    reserves them (pad 0, start 1, end 2).
    """

    kind: str
    features: int | None = None
    vocab_size: int | None = None
    embedding: int = 32
    pad_id: int = 0
    start_id: int = 1
    end_id: int = 2

    def __post_init__(self) -> None:
        if self.kind not in SIDE_KINDS:
            raise ValueError(f"side kind must be one of {SIDE_KINDS}, got {self.kind!r}")
        if self.kind == "continuous":
            if not isinstance(self.features, int) or self.features < 1:
                raise ValueError(f"a continuous side needs features >= 1, got {self.features!r}")
        else:
            if not isinstance(self.vocab_size, int) or self.vocab_size < 1:
                raise ValueError(f"a token side needs vocab_size >= 1, got {self.vocab_size!r}")
            if self.embedding < 1:
                raise ValueError(f"a token side needs embedding >= 1, got {self.embedding}")
            for name in ("pad_id", "start_id", "end_id"):
                value = getattr(self, name)
                if not 0 <= value < self.vocab_size:
                    raise ValueError(
                        f"{name} must be in [0, {self.vocab_size}) (the vocabulary), got {value}"
                    )

    @property
    def size(self) -> int:
        """Features (continuous) or vocabulary size (tokens): the width of one step."""
        return self.features if self.kind == "continuous" else self.vocab_size  # type: ignore[return-value]


@dataclass(frozen=True)
class Seq2SeqConfig:
    """Everything needed to build a Seq2Seq: plain values, round-trips through a dict."""

    cell: str
    hidden: int
    source: SideConfig
    target: SideConfig
    layers: int = 1
    dropout: float = 0.0

    def __post_init__(self) -> None:
        cell_info(self.cell)
        if self.hidden < 1 or self.layers < 1:
            raise ValueError(f"hidden and layers must be >= 1, got {self.hidden}, {self.layers}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (nested dicts for the sides), TOML- and JSON-able (None entries dropped)."""
        d = asdict(self)
        for side in ("source", "target"):
            d[side] = {k: v for k, v in d[side].items() if v is not None}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Seq2SeqConfig:
        """The inverse of to_dict; ValueError naming any unknown key."""
        d = dict(d)
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(
                f"Seq2SeqConfig: unknown keys {sorted(unknown)}; known {sorted(known)}"
            )
        side_known = {f.name for f in fields(SideConfig)}
        for side in ("source", "target"):
            if side not in d:
                raise ValueError(f"Seq2SeqConfig: missing {side!r}")
            if isinstance(d[side], dict):
                bad = set(d[side]) - side_known
                if bad:
                    raise ValueError(f"Seq2SeqConfig.{side}: unknown keys {sorted(bad)}")
                d[side] = SideConfig(**d[side])
        return cls(**d)


@dataclass
class Generated:
    """What generate() returns: outputs (B, steps, F) floats or (B, steps) ids (pad after
    the end id), and lengths (B,) int64 (tokens: up to and including the end id)."""

    outputs: Tensor
    lengths: Tensor


@dataclass
class Seq2SeqTrace:
    """forward(..., instrumented=True): the outputs plus both sides' per-step records."""

    outputs: Tensor
    encoder: RecurrentTrace
    decoder: RecurrentTrace


class Seq2Seq(nn.Module):
    """A recurrent encoder-decoder for continuous or token sequences on either side.

    Submodules: `source_embedding` / `target_embedding` (token sides), `start`
    (the learned start vector of a continuous target), `encoder` and `decoder`
    (models.recurrent.Recurrent), `head` (Linear hidden -> features or vocabulary).
    """

    def __init__(self, config: Seq2SeqConfig) -> None:
        super().__init__()
        self.config = config
        src, tgt = config.source, config.target
        self.source_embedding = (
            nn.Embedding(src.vocab_size, src.embedding, padding_idx=src.pad_id)  # type: ignore[arg-type]
            if src.kind == "tokens"
            else None
        )
        if tgt.kind == "tokens":
            self.target_embedding = nn.Embedding(
                tgt.vocab_size,  # type: ignore[arg-type]
                tgt.embedding,
                padding_idx=tgt.pad_id,
            )
            self.start = None
            dec_in = tgt.embedding
        else:
            self.target_embedding = None
            self.start = nn.Parameter(torch.zeros(tgt.features))  # type: ignore[arg-type]
            dec_in = tgt.features
        enc_in = src.embedding if src.kind == "tokens" else src.features
        self.encoder = Recurrent(config.cell, enc_in, config.hidden, config.layers, config.dropout)  # type: ignore[arg-type]
        self.decoder = Recurrent(config.cell, dec_in, config.hidden, config.layers, config.dropout)  # type: ignore[arg-type]
        self.head = nn.Linear(config.hidden, tgt.size)

    # -- input checks ------------------------------------------------------------------

    def _check_side(self, name: str, side: SideConfig, x: Tensor, batch: int | None) -> None:
        if not isinstance(x, Tensor):
            raise TypeError(
                f"Seq2Seq: expected {name} to be a torch.Tensor, got {type(x).__name__}"
            )
        if side.kind == "continuous":
            want = f"(batch, steps, {side.features}) floats ({side.features} features)"
            ok = x.dim() == 3 and x.shape[2] == side.features and x.is_floating_point()
        else:
            want = f"(batch, steps) integer token ids in [0, {side.vocab_size})"
            ok = x.dim() == 2 and not x.is_floating_point() and x.dtype != torch.bool
        if not ok:
            raise ValueError(
                f"Seq2Seq: expected {name} of shape {want}, got shape {tuple(x.shape)} "
                f"dtype {x.dtype}"
            )
        if x.shape[1] < 1:
            raise ValueError(f"Seq2Seq: expected {name} of shape {want} with at least one step")
        if batch is not None and x.shape[0] != batch:
            raise ValueError(
                f"Seq2Seq: expected {name} with batch size {batch} (as src), got {x.shape[0]}"
            )
        if side.kind == "tokens" and x.numel():
            lo, hi = int(x.min()), int(x.max())
            if lo < 0 or hi >= side.vocab_size:  # type: ignore[operator]
                raise ValueError(
                    f"Seq2Seq: expected {name} of shape {want}, got ids from {lo} to {hi}"
                )

    def _embed_source(self, src: Tensor) -> Tensor:
        if self.source_embedding is not None:
            return self.source_embedding(src)
        return src.to(self.head.weight.dtype)

    def _embed_target(self, ids_or_values: Tensor) -> Tensor:
        if self.target_embedding is not None:
            return self.target_embedding(ids_or_values)
        return ids_or_values.to(self.head.weight.dtype)

    def _start_input(self, batch: int) -> Tensor:
        """The decoder's first input (B, in): the start symbol's embedding or the start vector."""
        if self.target_embedding is not None:
            ids = torch.full((batch,), self.config.target.start_id, device=self.head.weight.device)
            return self.target_embedding(ids)
        assert self.start is not None
        return self.start.expand(batch, -1)

    def _feedback(self, prediction: Tensor) -> Tensor:
        """The decoder's next input from its own prediction at one step (B, F or V)."""
        if self.target_embedding is not None:
            return self.target_embedding(prediction.argmax(dim=-1))
        return prediction

    # -- encoder ---------------------------------------------------------------------

    def encode(self, src: Tensor, src_lengths: object = None) -> StackState:
        """The encoder's final state (layers, B, H) (a pair for an LSTM), each sample's
        state at its own last valid source step."""
        self._check_side("src", self.config.source, src, None)
        return self.encoder(self._embed_source(src), None, src_lengths)[1]

    # -- forward ----------------------------------------------------------------------

    def forward(
        self,
        src: Tensor,
        tgt: Tensor,
        src_lengths: object = None,
        tgt_lengths: object = None,
        teacher_forcing: float = 1.0,
        generator: torch.Generator | None = None,
        *,
        instrumented: bool = False,
    ) -> Tensor | Seq2SeqTrace:
        """Predictions for every target step.

        src: (B, T_in, F_in) floats or (B, T_in) ids; tgt: (B, T_out, F_out) or (B, T_out).
        src_lengths / tgt_lengths: (B,) valid steps, or None when all are full.
        teacher_forcing: the probability that a decoder step reads the true previous
        target (see the module docstring: one draw per step, shared by the batch,
        taken from `generator`).
        Returns continuous predictions (B, T_out, F_out) or logits (B, T_out, V), zero
        at padded target steps; with instrumented=True a Seq2SeqTrace whose records
        come from the unrolled path (every h_t, c_t and gate in the autograd graph).
        """
        self._check_side("src", self.config.source, src, None)
        batch = src.shape[0]
        self._check_side("tgt", self.config.target, tgt, batch)
        steps = tgt.shape[1]
        tgt_lens = _as_lengths(tgt_lengths, batch, steps, "Seq2Seq tgt_lengths")
        src_in = self._embed_source(src)
        if instrumented:
            enc_trace = self.encoder.unroll(src_in, None, src_lengths)
            state = enc_trace.state
        else:
            state = self.encoder(src_in, None, src_lengths)[1]
        teacher = self._draws(steps, teacher_forcing, generator)
        # the teacher-forced inputs: start, y_1, ..., y_{T-1}
        teacher_in = torch.cat(
            [self._start_input(batch).unsqueeze(1), self._embed_target(tgt[:, :-1])], dim=1
        )
        if instrumented:
            if all(teacher):
                dec_trace = self.decoder.unroll(teacher_in, state)
                outputs = self.head(dec_trace.output)
            else:
                outputs, dec_trace = self._decode_stepwise(teacher_in, state, teacher)
            outputs = _zero_padded(outputs, tgt_lens)
            return Seq2SeqTrace(outputs, enc_trace, dec_trace)
        if all(teacher):
            outputs = self.head(self.decoder(teacher_in, state)[0])
        else:
            outputs = self._decode_mixed(teacher_in, state, teacher)
        return _zero_padded(outputs, tgt_lens)

    def _draws(
        self, steps: int, teacher_forcing: float, generator: torch.Generator | None
    ) -> list[bool]:
        """teacher[t]: does decoder step t (0-based) read the true previous target.

        Step 0 reads the start symbol either way (True). One draw per later step.
        """
        if not 0.0 <= teacher_forcing <= 1.0:
            raise ValueError(f"Seq2Seq: teacher_forcing must be in [0, 1], got {teacher_forcing}")
        if teacher_forcing >= 1.0 or steps == 1:
            return [True] * steps
        if teacher_forcing <= 0.0:
            return [True] + [False] * (steps - 1)
        device = generator.device if generator is not None else torch.device("cpu")
        u = torch.rand(steps - 1, generator=generator, device=device)
        return [True] + (u < teacher_forcing).tolist()

    def _decode_mixed(self, teacher_in: Tensor, state: StackState, teacher: list[bool]) -> Tensor:
        """The fast path with some free-running steps: each run of teacher-forced steps
        is one fused call, each free-running step one step of the stack."""
        runs: list[list[bool]] = []  # consecutive steps of one kind; free steps one each
        for forced in teacher:
            if forced and runs and runs[-1][0]:
                runs[-1].append(True)
            else:
                runs.append([forced])
        # one split, not a slice per run: each slice's backward allocates a full-size zero
        chunks = torch.split(teacher_in, [len(r) for r in runs], dim=1)
        outs: list[Tensor] = []
        for run, chunk in zip(runs, chunks, strict=True):
            if run[0]:
                h, state = self.decoder(chunk, state)
                outs.append(self.head(h))
            else:
                x = self._feedback(outs[-1][:, -1])
                stepped = self.decoder.step(x, self.decoder.split_state(state))
                state = self.decoder.join_state(stepped.states)
                outs.append(self.head(stepped.h).unsqueeze(1))
        return torch.cat(outs, dim=1)

    def _decode_stepwise(
        self, teacher_in: Tensor, state: StackState, teacher: list[bool]
    ) -> tuple[Tensor, RecurrentTrace]:
        """The instrumented decoder with free-running steps: one step at a time, every
        layer's h_t, c_t and gates kept (a RecurrentTrace)."""
        layers = self.decoder.num_layers
        lstm = self.decoder.info.has_cell_state
        states = self.decoder.split_state(state)
        hs: list[list[Tensor]] = [[] for _ in range(layers)]
        cs: list[list[Tensor]] | None = [[] for _ in range(layers)] if lstm else None
        gates: list[dict[str, list[Tensor]]] = [{} for _ in range(layers)]
        preds: list[Tensor] = []
        teacher_steps = teacher_in.unbind(1)
        for t, forced in enumerate(teacher):
            x = teacher_steps[t] if forced else self._feedback(preds[-1])
            stepped = self.decoder.step(x, states)
            states = stepped.states
            for layer, out in enumerate(stepped.layers):
                hs[layer].append(out.h)
                if cs is not None:
                    cs[layer].append(out.state[1])  # type: ignore[index]
                for name, a in out.gates.items():
                    gates[layer].setdefault(name, []).append(a)
            preds.append(self.head(stepped.h))
        trace = RecurrentTrace(
            torch.stack(hs[-1], dim=1),
            self.decoder.join_state(states),
            hs,
            cs,
            [{n: torch.stack(v, dim=1) for n, v in g.items()} for g in gates],
        )
        return torch.stack(preds, dim=1), trace

    # -- generation ---------------------------------------------------------------------

    @torch.no_grad()
    def generate(self, src: Tensor, steps: int, src_lengths: object = None) -> Generated:
        """Autoregressive decoding: every step reads the model's own previous prediction.

        Tokens: greedy argmax; a sample stops at its first end id (its length counts
        it) and the rest of its row is pad_id; decoding stops early when every sample
        has ended. Continuous: all `steps` steps. Runs in the model's current mode
        (call eval() for deterministic output) and without gradients.
        """
        if steps < 1:
            raise ValueError(f"Seq2Seq.generate: steps must be >= 1, got {steps}")
        state = self.encode(src, src_lengths)
        batch = src.shape[0]
        states = self.decoder.split_state(state)
        x = self._start_input(batch)
        tgt = self.config.target
        device = self.head.weight.device
        if tgt.kind == "tokens":
            ids = torch.full((batch, steps), tgt.pad_id, dtype=torch.int64, device=device)
            lengths = torch.full((batch,), steps, dtype=torch.int64, device=device)
            done = torch.zeros(batch, dtype=torch.bool, device=device)
            for t in range(steps):
                stepped = self.decoder.step(x, states)
                states = stepped.states
                choice = self.head(stepped.h).argmax(dim=-1)
                ids[:, t] = torch.where(done, torch.full_like(choice, tgt.pad_id), choice)
                ended = ~done & (choice == tgt.end_id)
                lengths[ended] = t + 1
                done |= ended
                if bool(done.all()):
                    break
                x = self.target_embedding(choice)  # type: ignore[misc]
            return Generated(ids, lengths)
        preds = []
        for _ in range(steps):
            stepped = self.decoder.step(x, states)
            states = stepped.states
            x = self.head(stepped.h)
            preds.append(x)
        return Generated(
            torch.stack(preds, dim=1), torch.full((batch,), steps, dtype=torch.int64, device=device)
        )

    # -- loss ------------------------------------------------------------------------------

    def loss(
        self,
        outputs: Tensor,
        tgt: Tensor,
        tgt_lengths: object = None,
        reduction: str = "mean",
    ) -> Tensor:
        """The training loss: MSE (continuous, mean over features) or cross-entropy (tokens)
        per step; per sample the mean over its valid target steps; "mean" averages the
        per-sample losses (every sample weighs the same, whatever its length), "none"
        returns them (B,), "sum" sums them."""
        self._check_side("tgt", self.config.target, tgt, None)
        batch, steps = tgt.shape[0], tgt.shape[1]
        want = (batch, steps, self.config.target.size)
        if tuple(outputs.shape) != want:
            raise ValueError(
                f"Seq2Seq.loss: expected outputs of shape {want}, got {tuple(outputs.shape)}"
            )
        if self.config.target.kind == "tokens":
            per_step = F.cross_entropy(outputs.transpose(1, 2), tgt, reduction="none")
        else:
            per_step = (outputs - tgt.to(outputs.dtype)).pow(2).mean(dim=2)
        lens = _as_lengths(tgt_lengths, batch, steps, "Seq2Seq.loss tgt_lengths")
        if lens is None:
            per_sample = per_step.mean(dim=1)
        else:
            mask = step_mask(lens, steps, per_step.device)
            assert mask is not None
            per_sample = (per_step * mask.to(per_step.dtype)).sum(dim=1) / lens.to(per_step)
        if reduction == "none":
            return per_sample
        if reduction == "mean":
            return per_sample.mean()
        if reduction == "sum":
            return per_sample.sum()
        raise ValueError(
            f"Seq2Seq.loss: reduction must be 'mean', 'none' or 'sum', got {reduction!r}"
        )


def _zero_padded(outputs: Tensor, lens: Tensor | None) -> Tensor:
    """Outputs with padded target steps set to zero (they are never part of a loss)."""
    mask = step_mask(lens, outputs.shape[1], outputs.device)
    if mask is None:
        return outputs
    return torch.where(mask.unsqueeze(-1), outputs, outputs.new_zeros(()))
