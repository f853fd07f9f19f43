"""Attention for the encoder-decoder: where each decoder step looks in the source.

Without attention the decoder sees the source only through the encoder's final
state. With attention, every decoder step t forms weights a_t over the encoder's
top-layer outputs h_1..h_{T_in} (softmax of a score per source step) and reads
their weighted sum, the context c_t = sum_i a_ti h_i. A gradient then reaches an
early encoder step directly through c_t, not only back through every later step.

Two families, by where the context enters the decoder:

- `bahdanau` (additive, Bahdanau et al. 2015): the score compares the decoder's
  previous top-layer state s_{t-1} with each h_i, e_ti = v^T tanh(W s_{t-1} + U h_i),
  and the context is concatenated to the decoder's input at step t, so the decoder
  must run one step at a time (step t's input needs step t-1's state).
- `luong-dot` and `luong-general` (multiplicative, Luong et al. 2015): the score
  compares the decoder's current top-layer output h_t with each h_i, h_t^T h_i (dot)
  or h_t^T W h_i (general), and the context is combined after the decoder,
  h~_t = tanh(W_c [c_t; h_t]), which the output layer reads instead of h_t. The
  decoder's recurrence does not see the context (no input feeding), so a
  teacher-forced decoder still runs on the fused kernel and attention is one
  batched product over all steps.

Padded source steps get weight exactly 0 (their score is -inf before the softmax),
so each row of weights sums to 1 over the sample's valid steps.

Parameters (state dict names under the model's `attention.`): Bahdanau `query` (W,
H x H), `key` (U, H x H), `score` (v, 1 x H); Luong `key` (W, H x H, general only)
and `combine_layer` (W_c, H x 2H). None has a bias, as in the formulas.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = [
    "ATTENTION_KINDS",
    "Attention",
    "BahdanauAttention",
    "LuongAttention",
    "Memory",
    "attention_parameter_count",
    "make_attention",
    "masked_softmax",
]

ATTENTION_KINDS = ("none", "bahdanau", "luong-dot", "luong-general")


@dataclass
class Memory:
    """What the decoder attends over, prepared once per source batch.

    values: (B, T_in, H) the encoder's top-layer outputs h_i (zero at padding).
    keys: (B, T_in, K) their projection for the score (U h_i, W h_i, or h_i itself).
    mask: (B, T_in) bool, True at valid source steps; None when every step is valid.
    """

    values: Tensor
    keys: Tensor
    mask: Tensor | None

    def select(self, index: Tensor) -> Memory:
        """The rows `index` (B',) of every tensor: a beam's hypotheses share their sample's."""
        mask = None if self.mask is None else self.mask.index_select(0, index)
        return Memory(self.values.index_select(0, index), self.keys.index_select(0, index), mask)


def masked_softmax(scores: Tensor, mask: Tensor | None) -> Tensor:
    """softmax over the last dim (T_in) with masked-out steps at exactly 0.

    scores: (B, t, T_in); mask: (B, T_in) bool or None. Every row needs one valid step
    (a source has at least one), so no row is all -inf.
    """
    if mask is not None:
        scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))
    return torch.softmax(scores, dim=-1)


class Attention(nn.Module):
    """The interface both families share.

    feeds_input: True when the context is part of the decoder's input (Bahdanau): the
    query is then the state before the step, and the decoder's input grows by H.
    """

    kind: str = ""
    feeds_input: bool = False

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.hidden = hidden

    def memory(self, values: Tensor, mask: Tensor | None) -> Memory:
        """Prepare the encoder outputs (B, T_in, H) once; mask (B, T_in) or None."""
        return Memory(values, self._keys(values), mask)

    def _keys(self, values: Tensor) -> Tensor:
        return values

    def scores(self, query: Tensor, memory: Memory) -> Tensor:
        """Unnormalised scores (B, t, T_in) of the queries (B, t, H)."""
        raise NotImplementedError

    def forward(self, query: Tensor, memory: Memory) -> tuple[Tensor, Tensor]:
        """(context, weights) for queries (B, t, H) or one step's (B, H).

        context: (B, t, H) (or (B, H)) = weights @ memory.values;
        weights: (B, t, T_in) (or (B, T_in)), 0 on padding, each row summing to 1.
        """
        single = query.dim() == 2
        q = query.unsqueeze(1) if single else query
        weights = masked_softmax(self.scores(q, memory), memory.mask)
        context = torch.bmm(weights, memory.values)
        if single:
            return context.squeeze(1), weights.squeeze(1)
        return context, weights

    def combine(self, context: Tensor, h: Tensor) -> Tensor:
        """What the output layer reads: h~ = tanh(W_c [c; h]) (Luong), h itself (Bahdanau)."""
        return h


class BahdanauAttention(Attention):
    """Additive attention: e_ti = v^T tanh(W s_{t-1} + U h_i); the context feeds the input."""

    kind = "bahdanau"
    feeds_input = True

    def __init__(self, hidden: int) -> None:
        super().__init__(hidden)
        self.query = nn.Linear(hidden, hidden, bias=False)  # W
        self.key = nn.Linear(hidden, hidden, bias=False)  # U
        self.score = nn.Linear(hidden, 1, bias=False)  # v

    def _keys(self, values: Tensor) -> Tensor:
        return self.key(values)

    def scores(self, query: Tensor, memory: Memory) -> Tensor:
        # (B, t, 1, H) + (B, 1, T_in, H) -> tanh -> v -> (B, t, T_in)
        mixed = torch.tanh(self.query(query).unsqueeze(2) + memory.keys.unsqueeze(1))
        return self.score(mixed).squeeze(-1)


class LuongAttention(Attention):
    """Multiplicative attention: h_t^T h_i (dot) or h_t^T W h_i (general), then
    h~_t = tanh(W_c [c_t; h_t]) before the output layer."""

    feeds_input = False

    def __init__(self, hidden: int, general: bool) -> None:
        super().__init__(hidden)
        self.kind = "luong-general" if general else "luong-dot"
        self.key = nn.Linear(hidden, hidden, bias=False) if general else None  # W
        self.combine_layer = nn.Linear(2 * hidden, hidden, bias=False)  # W_c

    def _keys(self, values: Tensor) -> Tensor:
        # h_t^T W h_i = h_t . (W h_i): project the memory once, not every query
        return values if self.key is None else self.key(values)

    def scores(self, query: Tensor, memory: Memory) -> Tensor:
        return torch.bmm(query, memory.keys.transpose(1, 2))

    def combine(self, context: Tensor, h: Tensor) -> Tensor:
        return torch.tanh(self.combine_layer(torch.cat([context, h], dim=-1)))


def make_attention(kind: str, hidden: int) -> Attention | None:
    """The attention module of `kind` (one of ATTENTION_KINDS); None for "none"."""
    check_kind(kind)
    if kind == "none":
        return None
    if kind == "bahdanau":
        return BahdanauAttention(hidden)
    return LuongAttention(hidden, general=kind == "luong-general")


def check_kind(kind: object) -> None:
    """ValueError naming the known kinds unless `kind` is one of them."""
    if kind not in ATTENTION_KINDS:
        raise ValueError(f"attention must be one of {', '.join(ATTENTION_KINDS)}; got {kind!r}")


def attention_parameter_count(kind: str, hidden: int, gate_count: int) -> int:
    """Parameters attention adds to a Seq2Seq: its own weights, and for Bahdanau the
    H extra input columns of the decoder's first layer (gate_count * H rows each)."""
    check_kind(kind)
    if kind == "none":
        return 0
    if kind == "bahdanau":
        return 2 * hidden * hidden + hidden + gate_count * hidden * hidden
    own = 2 * hidden * hidden  # W_c
    return own + (hidden * hidden if kind == "luong-general" else 0)
