"""Recurrent cells: one time step each, with their gate activations exposed.

A cell maps `(x_t, state) -> (h_t, state)`. The vanilla RNN keeps one vector h_t;
the LSTM keeps two, h_t (short-term, the output) and c_t (long-term memory); the
GRU keeps h_t and decides with gates how much of it to overwrite.

Weights are laid out exactly as torch.nn.RNN / LSTM / GRU (and their *Cell
variants) lay them out: `weight_ih` (G*H, I), `weight_hh` (G*H, H), `bias_ih` and
`bias_hh` (G*H,), with the G gate blocks stacked in torch's order (LSTM i, f, g, o;
GRU r, z, n). The same tensors can therefore drive torch's fused kernels (the
fast path in models.recurrent) and the step functions here (the instrumented
path), and both must agree.

The step functions take the input projection `gi = W_ih x_t + b_ih` already
computed, because the unrolled path computes it for all time steps in one matrix
product before the loop (it does not depend on the state).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

# A cell's state: h (RNN, GRU) or (h, c) (LSTM).
State = Tensor | tuple[Tensor, Tensor]


@dataclass(frozen=True)
class CellStep:
    """One step of a cell: the new h_t, the new state, and every gate block's activation."""

    h: Tensor  # (B, H)
    state: State  # h, or (h, c) for an LSTM
    gates: dict[str, Tensor]  # block name -> (B, H) activation (empty for a vanilla RNN)


def _activation(name: str) -> Callable[[Tensor], Tensor]:
    return {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid}[name]


def _recurrent_term(gi: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor | None) -> Tensor:
    """gi + W_hh h + b_hh in as few kernels as possible (b_hh may already be in gi)."""
    pre = torch.addmm(gi, h, w_hh.t())
    return pre if b_hh is None else pre + b_hh


def rnn_step(gi: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor | None, activation: str) -> CellStep:
    """Vanilla RNN: h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh).

    gi = W_ih x_t + b_ih; pass b_hh=None when gi already includes b_hh.
    """
    h_new = _activation(activation)(_recurrent_term(gi, h, w_hh, b_hh))
    return CellStep(h_new, h_new, {})


def lstm_step(
    gi: Tensor, state: tuple[Tensor, Tensor], w_hh: Tensor, b_hh: Tensor | None
) -> CellStep:
    """LSTM, torch's gate order i, f, g, o.

    i, f, o = sigmoid(...) (input, forget, output gates), g = tanh(...) (candidate),
    c_t = f * c_{t-1} + i * g, h_t = o * tanh(c_t). gi = W_ih x_t + b_ih; pass
    b_hh=None when gi already includes b_hh.
    """
    h, c = state
    hidden = h.shape[1]
    pre = _recurrent_term(gi, h, w_hh, b_hh)
    sig = torch.sigmoid(pre)  # one kernel for all blocks; the g block's sigmoid goes unused
    i, f, o = sig[:, :hidden], sig[:, hidden : 2 * hidden], sig[:, 3 * hidden :]
    g = torch.tanh(pre[:, 2 * hidden : 3 * hidden])
    c_new = torch.addcmul(f * c, i, g)
    h_new = o * torch.tanh(c_new)
    return CellStep(h_new, (h_new, c_new), {"i": i, "f": f, "g": g, "o": o})


def gru_step(gi: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor | None) -> CellStep:
    """GRU, torch's gate order r, z, n.

    r, z = sigmoid(...) (reset, update gates), n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),
    h_t = (1 - z) * n + z * h_{t-1}.
    """
    gh = torch.addmm(b_hh, h, w_hh.t()) if b_hh is not None else h @ w_hh.t()
    # b_hh cannot be folded into gi: its n block sits inside r * (W_hn h + b_hn)
    i_r, i_z, i_n = gi.chunk(3, dim=1)
    h_r, h_z, h_n = gh.chunk(3, dim=1)
    r = torch.sigmoid(i_r + h_r)
    z = torch.sigmoid(i_z + h_z)
    n = torch.tanh(i_n + r * h_n)
    h_new = n + z * (h - n)
    return CellStep(h_new, h_new, {"r": r, "z": z, "n": n})


@dataclass(frozen=True)
class CellInfo:
    """What the app knows about a cell kind, without building one.

    gates: the sigmoid gates whose activations the probes summarise (saturation is
    only meaningful for them). blocks: every H-row block of the weight matrices in
    torch's order (the spectral radius is reported per block). fused: whether the
    fast path runs one of torch's fused sequence kernels.
    """

    name: str
    description: str
    gates: tuple[str, ...]
    has_cell_state: bool
    fused: bool
    blocks: tuple[str, ...] = ()
    activation: str | None = None  # vanilla RNNs only

    @property
    def gate_count(self) -> int:
        """G: how many H-row blocks weight_ih / weight_hh stack (1, 4 or 3)."""
        return max(1, len(self.blocks))

    def step(self, gi: Tensor, state: State, w_hh: Tensor, b_hh: Tensor | None) -> CellStep:
        """One step of this cell, given the input projection gi = W_ih x_t + b_ih."""
        if self.name == "lstm":
            assert isinstance(state, tuple)
            return lstm_step(gi, state, w_hh, b_hh)
        assert isinstance(state, Tensor)
        if self.name == "gru":
            return gru_step(gi, state, w_hh, b_hh)
        assert self.activation is not None
        return rnn_step(gi, state, w_hh, b_hh, self.activation)

    def make(self, input_size: int, hidden_size: int, bias: bool = True) -> Cell:
        """A standalone one-step cell module of this kind."""
        return Cell(self.name, input_size, hidden_size, bias)


_RNN_COMMON = (
    "A vanilla RNN keeps one hidden vector h and, at every step, mixes the new input "
    "into it with the same weight matrices: h_t = act(W_ih x_t + W_hh h_(t-1) + b). "
    "It is the simplest recurrent cell, with the fewest parameters, and it shows most "
    "plainly why long sequences are hard: the gradient that reaches an early step is "
    "a product of one W_hh factor per step in between, so it shrinks geometrically "
    "(vanishes) when W_hh is small and grows (explodes) when it is large. "
)

CELLS: dict[str, CellInfo] = {
    "rnn-tanh": CellInfo(
        "rnn-tanh",
        _RNN_COMMON + "With tanh the state stays in (-1, 1), which keeps it bounded, but tanh "
        "flattens out for large inputs (saturates), and a saturated unit passes back "
        "almost no gradient. Good for short dependencies (a few tens of steps); "
        "expect it to forget what it saw long ago.",
        (),
        False,
        True,
        (),
        "tanh",
    ),
    "rnn-relu": CellInfo(
        "rnn-relu",
        _RNN_COMMON + "With relu the state is unbounded above and relu never saturates for "
        "positive inputs, so gradients do not die from flat activations; instead "
        "they (and the state) can explode when W_hh stretches vectors. Initialised "
        "near the identity (IRNN) it can carry information far; it usually needs "
        "gradient clipping and a small learning rate.",
        (),
        False,
        True,
        (),
        "relu",
    ),
    "rnn-sigmoid": CellInfo(
        "rnn-sigmoid",
        _RNN_COMMON + "With a sigmoid the state lies in (0, 1) and is never centred on zero, and "
        "the sigmoid's slope is at most 1/4, so each step shrinks the gradient by at "
        "least four times unless W_hh is large: it vanishes fastest of all cells. "
        "Mostly of historical and teaching interest, as a contrast to tanh. torch "
        "has no fused kernel for it; the fast path runs it on the tanh kernel through "
        "the identity sigmoid(a) = (1 + tanh(a / 2)) / 2.",
        (),
        False,
        True,
        (),
        "sigmoid",
    ),
    "lstm": CellInfo(
        "lstm",
        "A Long Short-Term Memory cell keeps two vectors: the cell state c (long-term "
        "memory) and the hidden state h (short-term, what the cell outputs). Three "
        "sigmoid gates decide, per unit and per step, how much of c to keep (forget "
        "gate f), how much of a new candidate g to write (input gate i) and how much "
        "of c to show as h (output gate o). Because c is updated by addition, "
        "c_t = f c_(t-1) + i g, a gradient can flow back along c almost unchanged while "
        "f stays near 1, so LSTMs learn dependencies over hundreds of steps. The price: "
        "four times the weights of a vanilla RNN and slower steps; saturated gates "
        "(stuck near 0 or 1) can still stall learning.",
        ("i", "f", "o"),
        True,
        True,
        ("i", "f", "g", "o"),
    ),
    "gru": CellInfo(
        "gru",
        "A Gated Recurrent Unit is a leaner relative of the LSTM: one state vector h "
        "and two sigmoid gates. The update gate z decides how much of the old h to "
        "keep (h_t = z h_(t-1) + (1 - z) n), the reset gate r how much of the old h "
        "to use when proposing the new content n. When z is near 1 the state, and its "
        "gradient, pass through a step almost untouched, so GRUs also learn long "
        "dependencies, with three quarters of an LSTM's weights. It often trains as "
        "well as an LSTM; on very long or very precise memory tasks the LSTM's separate "
        "cell state can win.",
        ("r", "z"),
        False,
        True,
        ("r", "z", "n"),
    ),
}


def cell_info(name: str) -> CellInfo:
    """The registry entry for `name`, with a ValueError listing the known cells."""
    try:
        return CELLS[name]
    except KeyError:
        raise ValueError(f"unknown cell {name!r}; expected one of {', '.join(CELLS)}") from None


def init_state(info: CellInfo, batch: int, hidden: int, like: Tensor) -> State:
    """The zero state of a cell for a batch (torch.nn's default initial state)."""
    h = like.new_zeros(batch, hidden)
    return (h, like.new_zeros(batch, hidden)) if info.has_cell_state else h


def recurrent_parameter_count(cell: str, input_size: int, hidden: int, layers: int = 1) -> int:
    """Parameters of a stack of `layers` cells with biases, as torch.nn.RNN/LSTM/GRU count them."""
    g = cell_info(cell).gate_count
    total = 0
    for layer in range(layers):
        inp = input_size if layer == 0 else hidden
        total += g * hidden * (inp + hidden) + 2 * g * hidden
    return total


def parameter_count(config: Any) -> int:
    """Parameters of a models.seq2seq.Seq2Seq built from `config`, without building it.

    `config` is a Seq2SeqConfig (read by attribute, so this module need not import it).
    """
    total = 0
    sides = (("source", config.source), ("target", config.target))
    inputs: dict[str, int] = {}
    for role, side in sides:
        if side.kind == "tokens":
            total += side.vocab_size * side.embedding  # embedding table
            inputs[role] = side.embedding
        else:
            inputs[role] = side.features
            if role == "target":
                total += side.features  # learned start vector
    total += recurrent_parameter_count(config.cell, inputs["source"], config.hidden, config.layers)
    total += recurrent_parameter_count(config.cell, inputs["target"], config.hidden, config.layers)
    out = config.target.vocab_size if config.target.kind == "tokens" else config.target.features
    total += config.hidden * out + out  # output head
    return total


class Cell(nn.Module):
    """One step of a cell as a module, with torch.nn.RNNCell/LSTMCell/GRUCell's parameters.

    `forward(x, hx=None)` returns what torch's cell returns (h, or (h, c) for an
    LSTM); `step(x, hx=None)` also returns the gate activations.
    """

    def __init__(self, cell: str, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__()
        self.info = cell_info(cell)
        self.input_size = input_size
        self.hidden_size = hidden_size
        g = self.info.gate_count
        self.weight_ih = nn.Parameter(torch.empty(g * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(g * hidden_size, hidden_size))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(g * hidden_size))
            self.bias_hh = nn.Parameter(torch.empty(g * hidden_size))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch.nn's initialisation: every weight uniform in +-1/sqrt(hidden)."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def step(self, x: Tensor, hx: State | None = None) -> CellStep:
        """One step on x (B, input_size) from hx (zeros when None)."""
        if x.dim() != 2 or x.shape[1] != self.input_size:
            raise ValueError(
                f"{self.info.name} cell: expected input of shape (batch, {self.input_size}), "
                f"got {tuple(x.shape)}"
            )
        if hx is None:
            hx = init_state(self.info, x.shape[0], self.hidden_size, x)
        gi = x @ self.weight_ih.t()
        if self.bias_ih is not None:
            gi = gi + self.bias_ih
        return self.info.step(gi, hx, self.weight_hh, self.bias_hh)

    def forward(self, x: Tensor, hx: State | None = None) -> State:
        return self.step(x, hx).state

    def extra_repr(self) -> str:
        return f"{self.info.name}, {self.input_size}, {self.hidden_size}"
