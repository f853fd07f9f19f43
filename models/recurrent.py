"""A cell run over time: a fused fast path and an instrumented unrolled path.

`Recurrent` holds its weights under torch.nn.RNN/LSTM/GRU's names
(weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0, weight_ih_l1, ...), so a state
dict moves between it and torch's modules unchanged. Inputs are batch-first.

- `forward(x, hx=None, lengths=None)`: the fast path. It calls torch's fused
  sequence kernels (the ones torch.nn.RNN/LSTM/GRU call) on these weights. For a
  batch of variable lengths every sample's final state is the state at its own
  last valid step; torch's packed sequences do this but their backward is 5-8x
  slower on CPU, so the padded kernels are used instead (see _variable_lengths).
  The sigmoid RNN has no fused kernel: on CPU it runs unrolled (measured faster
  than any alternative here), elsewhere on the tanh kernel through
  sigmoid(a) = (1 + tanh(a/2)) / 2 (see _sigmoid_layer), exact up to rounding.
- `unroll(x, hx=None, lengths=None)`: the instrumented path. The same weights,
  one step at a time with the step functions of models.cells, keeping every h_t,
  c_t and gate activation of every layer in the autograd graph (a RecurrentTrace),
  so that probes can take dL/dh_t of any step. Padded steps keep the state
  unchanged (masking); padded output steps are zero, as with packing.
- `step(x_t, states)`: one time step through all layers, for loops that need the
  output of step t before they know the input of step t+1 (a decoder feeding back
  its own predictions).

Dropout (between layers, as torch.nn) is applied only in training mode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import _VF, Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from models.cells import CellInfo, CellStep, State, cell_info

# The module-level state, as torch.nn returns it: h (layers, B, H), or (h, c) for an LSTM.
StackState = Tensor | tuple[Tensor, Tensor]


@dataclass
class RecurrentTrace:
    """Everything the unrolled path computed, in the autograd graph.

    output: (B, T, H) top layer h_t, zero at padded steps.
    state: the final state as forward() returns it (each sample's own last valid step).
    h: h[layer][t] is the (B, H) tensor the cell computed as h_t, so
       torch.autograd.grad(loss, h[layer][t]) is the total derivative dL/dh_t. At a
       sample's padded steps its row is not the (carried) state and gets no gradient.
    c: the same for an LSTM's c_t, else None.
    gates: gates[layer][name] is (B, T, H), every gate block's activation
       (LSTM i, f, g, o; GRU r, z, n; empty for a vanilla RNN), padded steps included.
    """

    output: Tensor
    state: StackState
    h: list[list[Tensor]]
    c: list[list[Tensor]] | None
    gates: list[dict[str, Tensor]]


@dataclass
class StackStep:
    """One step through every layer: the top layer's h, each layer's new state, each
    layer's CellStep (with its gate activations)."""

    h: Tensor
    states: list[State]
    layers: list[CellStep]


def _as_lengths(lengths: object, batch: int, steps: int, who: str) -> Tensor | None:
    """lengths as an int64 CPU tensor (B,) checked against 1..steps; None when all are full."""
    if lengths is None:
        return None
    lens = torch.as_tensor(lengths).detach().to("cpu")
    if lens.dim() != 1 or lens.shape[0] != batch:
        raise ValueError(f"{who}: expected lengths of shape ({batch},), got {tuple(lens.shape)}")
    if lens.is_floating_point() or lens.is_complex() or lens.dtype == torch.bool:
        raise ValueError(f"{who}: expected integer lengths, got dtype {lens.dtype}")
    lens = lens.to(torch.int64)
    if batch and (int(lens.min()) < 1 or int(lens.max()) > steps):
        raise ValueError(
            f"{who}: expected lengths in 1..{steps} (the padded step count), "
            f"got values from {int(lens.min())} to {int(lens.max())}"
        )
    if batch == 0 or bool((lens == steps).all()):
        return None
    return lens


def step_mask(lengths: Tensor | None, steps: int, device: torch.device) -> Tensor | None:
    """(B, T) bool, True where step t < length of sample b; None when every step is valid."""
    if lengths is None:
        return None
    return torch.arange(steps, device=device)[None, :] < lengths.to(device)[:, None]


class Recurrent(nn.Module):
    """A multi-layer, batch-first recurrent network of one cell kind.

    Args:
        cell: a name of models.cells.CELLS ("rnn-tanh", "rnn-relu", "rnn-sigmoid", "lstm", "gru").
        input_size: features per input step.
        hidden_size: H, units per layer.
        num_layers: stacked layers; layer l+1 reads layer l's h_t.
        dropout: dropout on each layer's output except the last (training mode only).
        force_unrolled: make forward() run the unrolled path too (for measurements).
        sigmoid_kernel: how forward() runs "rnn-sigmoid": "tanh" on torch's fused tanh
            kernel (see _sigmoid_layer), "unrolled" step by step, or "auto": unrolled on
            CPU, where it measured 12-18% faster (no fused kernel gains much there), and
            the tanh kernel elsewhere (cuDNN), where a fused kernel is far faster.
    """

    def __init__(
        self,
        cell: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        dropout: float = 0.0,
        *,
        force_unrolled: bool = False,
        sigmoid_kernel: str = "auto",
    ) -> None:
        super().__init__()
        self.info: CellInfo = cell_info(cell)
        if input_size < 1 or hidden_size < 1 or num_layers < 1:
            raise ValueError(
                "Recurrent: input_size, hidden_size and num_layers must be positive, got "
                f"{input_size}, {hidden_size}, {num_layers}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"Recurrent: dropout must be in [0, 1), got {dropout}")
        self.cell = cell
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.dropout = float(dropout)
        self.force_unrolled = force_unrolled
        if sigmoid_kernel not in ("auto", "tanh", "unrolled"):
            raise ValueError(
                f"Recurrent: sigmoid_kernel must be 'auto', 'tanh' or 'unrolled', got {sigmoid_kernel!r}"
            )
        self.sigmoid_kernel = sigmoid_kernel
        g = self.info.gate_count
        for layer in range(num_layers):
            inp = input_size if layer == 0 else hidden_size
            self.register_parameter(
                f"weight_ih_l{layer}", nn.Parameter(torch.empty(g * hidden_size, inp))
            )
            self.register_parameter(
                f"weight_hh_l{layer}", nn.Parameter(torch.empty(g * hidden_size, hidden_size))
            )
            self.register_parameter(f"bias_ih_l{layer}", nn.Parameter(torch.empty(g * hidden_size)))
            self.register_parameter(f"bias_hh_l{layer}", nn.Parameter(torch.empty(g * hidden_size)))
        self.reset_parameters()

    # -- parameters ---------------------------------------------------------------

    def reset_parameters(self) -> None:
        """torch.nn.RNN's initialisation: every weight uniform in +-1/sqrt(hidden)."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def layer_weights(self, layer: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(weight_ih, weight_hh, bias_ih, bias_hh) of one layer."""
        return (
            getattr(self, f"weight_ih_l{layer}"),
            getattr(self, f"weight_hh_l{layer}"),
            getattr(self, f"bias_ih_l{layer}"),
            getattr(self, f"bias_hh_l{layer}"),
        )

    def flat_weights(self) -> list[Tensor]:
        """The weights in the order torch's fused kernels take them."""
        return [w for layer in range(self.num_layers) for w in self.layer_weights(layer)]

    def extra_repr(self) -> str:
        s = f"{self.cell}, {self.input_size}, {self.hidden_size}, num_layers={self.num_layers}"
        return s + (f", dropout={self.dropout}" if self.dropout else "")

    # -- shapes and states ----------------------------------------------------------

    def _check_input(self, x: Tensor) -> None:
        if x.dim() != 3:
            raise ValueError(
                f"Recurrent({self.cell}): expected input of shape (batch, steps, "
                f"{self.input_size}), got {tuple(x.shape)}"
            )
        if x.shape[2] != self.input_size:
            raise ValueError(
                f"Recurrent({self.cell}): expected input of shape (batch, steps, "
                f"{self.input_size}), got {tuple(x.shape)} ({x.shape[2]} features)"
            )
        if x.shape[1] < 1:
            raise ValueError(f"Recurrent({self.cell}): expected at least one step, got 0")

    def zero_state(self, batch: int, like: Tensor) -> StackState:
        """torch.nn's default initial state: zeros, (layers, B, H) (a pair for an LSTM)."""
        h = like.new_zeros(self.num_layers, batch, self.hidden_size)
        return (h, h.clone()) if self.info.has_cell_state else h

    def _check_state(self, hx: StackState, batch: int) -> None:
        expected = (self.num_layers, batch, self.hidden_size)
        parts = hx if isinstance(hx, tuple) else (hx,)
        want = 2 if self.info.has_cell_state else 1
        if len(parts) != want or not all(isinstance(p, Tensor) for p in parts):
            kind = "a pair (h, c) of tensors" if want == 2 else "one tensor"
            raise ValueError(
                f"Recurrent({self.cell}): expected hx to be {kind} of shape {expected}"
            )
        for p in parts:
            if tuple(p.shape) != expected:
                raise ValueError(
                    f"Recurrent({self.cell}): expected hx of shape {expected}, got {tuple(p.shape)}"
                )

    def split_state(self, hx: StackState) -> list[State]:
        """The module-level state as one State per layer."""
        if isinstance(hx, tuple):
            return list(zip(hx[0].unbind(0), hx[1].unbind(0), strict=True))
        return list(hx.unbind(0))

    def join_state(self, states: list[State]) -> StackState:
        """One State per layer back to the module-level state."""
        if self.info.has_cell_state:
            return (
                torch.stack([s[0] for s in states]),  # type: ignore[index]
                torch.stack([s[1] for s in states]),  # type: ignore[index]
            )
        return torch.stack(states)  # type: ignore[arg-type]

    # -- the fast path -------------------------------------------------------------

    def forward(
        self, x: Tensor, hx: StackState | None = None, lengths: object = None
    ) -> tuple[Tensor, StackState]:
        """Run over x (B, T, input_size) from hx (zeros when None).

        lengths: (B,) valid steps per sample (1..T), or None when all are T.
        Returns (output (B, T, H) top layer h_t, zero at padded steps; final state
        (layers, B, H), or (h, c) for an LSTM, each sample's own last valid step).
        """
        zero_start = hx is None
        x, hx, lens = self._prepare(x, hx, lengths)
        if self.force_unrolled or (self.cell == "rnn-sigmoid" and not self._sigmoid_on_tanh(x)):
            trace = self._unroll(x, hx, lens, keep=False)
            return trace.output, trace.state
        if lens is not None:
            return self._variable_lengths(x, hx, lens, zero_start)
        if self.cell == "rnn-sigmoid":
            return self._sigmoid_via_tanh(x, hx)
        return self._fused(x, hx)

    def _sigmoid_on_tanh(self, x: Tensor) -> bool:
        if self.sigmoid_kernel == "auto":
            return x.device.type != "cpu"
        return self.sigmoid_kernel == "tanh"

    def _variable_lengths(
        self, x: Tensor, hx: StackState, lens: Tensor, zero_start: bool
    ) -> tuple[Tensor, StackState]:
        """The fast path for a padded batch of variable lengths.

        torch's packed sequences are exact but their backward on CPU is 5-8x slower
        than the padded fused kernel (measured: LSTM H64 T100, 69 vs 9 ms), so:
        - a cell whose state is h alone (RNNs, GRU) runs layer by layer on the padded
          batch; padded steps come after the valid ones, so every valid h_t is exact,
          and each layer's final state is read at the sample's last valid step;
        - an LSTM from the zero state runs layer by layer on the batch shifted to end
          at step T (see _lstm_right_aligned);
        - an LSTM from a given state falls back to packing.
        """
        mask = step_mask(lens, x.shape[1], x.device)
        assert mask is not None
        if self.cell == "lstm":
            if not zero_start:
                return self._packed(x, hx, lens)
            return self._lstm_right_aligned(x, lens, mask)
        last = (lens - 1).to(x.device)
        rows = torch.arange(x.shape[0], device=x.device)
        inp, finals = x, []
        assert isinstance(hx, Tensor)
        for layer in range(self.num_layers):
            if self.cell == "rnn-sigmoid":
                out = self._sigmoid_layer(layer, inp, hx[layer : layer + 1])[0]
            else:
                out = self._fused_layer(layer, inp, hx[layer : layer + 1])[0]
            finals.append(out[rows, last])
            inp = self._between_layers(layer, out)
        return _zero_padded(inp, mask), torch.stack(finals)

    def _lstm_right_aligned(
        self, x: Tensor, lens: Tensor, mask: Tensor
    ) -> tuple[Tensor, StackState]:
        """An LSTM from the zero state over a batch of variable lengths, on the fused kernel.

        Each sample is shifted to end at step T, behind (T - length) padding steps
        whose input is zero, and the biases move into an extra input column that is
        1 on valid steps and 0 on padding. On a padding step every pre-activation is
        then exactly 0, so from the zero state i = f = o = 1/2, g = 0, and c and h
        stay exactly 0: the state at step T is each sample's own final state, and
        the padding contributes exactly nothing to any gradient.
        """
        batch, steps = x.shape[0], x.shape[1]
        shift = (steps - lens).to(x.device)  # (B,)
        src = torch.arange(steps, device=x.device)[None, :] - shift[:, None]  # (B, T)
        valid = src >= 0
        src = src.clamp(min=0)
        flag = valid.unsqueeze(-1).to(x.dtype)
        inp = _zero_padded(x.gather(1, src.unsqueeze(-1).expand(-1, -1, x.shape[2])), valid)
        h0 = x.new_zeros(1, batch, self.hidden_size)
        hs, cs = [], []
        for layer in range(self.num_layers):
            w_ih, w_hh, b_ih, b_hh = self.layer_weights(layer)
            weights = [torch.cat([w_ih, (b_ih + b_hh).unsqueeze(1)], dim=1), w_hh]
            out, h_n, c_n = _VF.lstm(
                torch.cat([inp, flag], dim=2),
                (h0, h0),
                weights,
                False,
                1,
                0.0,
                self.training,
                False,
                True,
            )
            hs.append(h_n[0])
            cs.append(c_n[0])
            inp = self._between_layers(layer, out)
        # back to left-aligned: step t of sample b sits at t + shift_b
        back = (torch.arange(steps, device=x.device)[None, :] + shift[:, None]).clamp(max=steps - 1)
        out = inp.gather(1, back.unsqueeze(-1).expand(-1, -1, inp.shape[2]))
        return _zero_padded(out, mask), (torch.stack(hs), torch.stack(cs))

    def _packed(self, x: Tensor, hx: StackState, lens: Tensor) -> tuple[Tensor, StackState]:
        """torch's packed sequences: exact for any cell and start state, slow backward on CPU."""
        packed = pack_padded_sequence(x, lens, batch_first=True, enforce_sorted=False)
        hx = _permute(hx, packed.sorted_indices)
        out, state = self._fused(packed.data, hx, packed.batch_sizes)
        out, _ = pad_packed_sequence(
            PackedSequence(out, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices),
            batch_first=True,
            total_length=x.shape[1],
        )
        return out, _permute(state, packed.unsorted_indices)

    def _between_layers(self, layer: int, out: Tensor) -> Tensor:
        """Dropout on a layer's output before the next layer reads it (training mode only)."""
        if layer < self.num_layers - 1 and self.dropout and self.training:
            return F.dropout(out, self.dropout, training=True)
        return out

    def _fused(
        self, x: Tensor, hx: StackState, batch_sizes: Tensor | None = None
    ) -> tuple[Tensor, StackState]:
        """One call of torch's fused kernel for the cell (as torch.nn.RNN/LSTM/GRU make it),
        every layer at once; on packed data when batch_sizes is given."""
        fn = _FUSED[self.cell]
        common = (self.flat_weights(), True, self.num_layers, self.dropout, self.training, False)
        if batch_sizes is None:
            result = fn(x, hx, *common, True)
        else:
            result = fn(x, batch_sizes, hx, *common)
        if self.info.has_cell_state:
            return result[0], (result[1], result[2])
        return result[0], result[1]

    def _fused_layer(self, layer: int, x: Tensor, h0: Tensor) -> tuple[Tensor, Tensor]:
        """One layer of a cell whose state is h alone, on the fused kernel."""
        return _FUSED[self.cell](
            x, h0, list(self.layer_weights(layer)), True, 1, 0.0, self.training, False, True
        )

    def _sigmoid_layer(self, layer: int, x: Tensor, h0: Tensor) -> tuple[Tensor, Tensor]:
        """One layer of the sigmoid RNN on torch's fused tanh kernel.

        With u = 2h - 1 (so h = (1 + u) / 2) and sigmoid(a) = (1 + tanh(a/2)) / 2,
        h_t = sigmoid(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh) becomes the tanh RNN
        u_t = tanh(W_ih/2 x_t + W_hh/4 u_{t-1} + (b_ih + b_hh)/2 + W_hh 1/4),
        exact up to float rounding. The transformed weights are differentiable
        functions of the real ones, so gradients reach the real weights.
        """
        w_ih, w_hh, b_ih, b_hh = self.layer_weights(layer)
        w_hh4 = w_hh * 0.25
        weights = [w_ih * 0.5, w_hh4, (b_ih + b_hh) * 0.5 + w_hh4.sum(dim=1)]
        u, u_n = _VF.rnn_tanh(
            x, h0 * 2.0 - 1.0, weights + [torch.zeros_like(b_hh)], True, 1, 0.0, False, False, True
        )
        return (u + 1.0) * 0.5, (u_n + 1.0) * 0.5

    def _sigmoid_via_tanh(self, x: Tensor, hx: StackState) -> tuple[Tensor, Tensor]:
        """The sigmoid RNN, layer by layer (dropout acts on h, not u) on the tanh kernel."""
        assert isinstance(hx, Tensor)
        inp, finals = x, []
        for layer in range(self.num_layers):
            out, h_n = self._sigmoid_layer(layer, inp, hx[layer : layer + 1])
            finals.append(h_n)
            inp = self._between_layers(layer, out)
        return inp, torch.cat(finals, dim=0)

    # -- the instrumented path -------------------------------------------------------

    def unroll(
        self, x: Tensor, hx: StackState | None = None, lengths: object = None
    ) -> RecurrentTrace:
        """The instrumented path: same arguments and results as forward(), plus every
        per-step h_t, c_t and gate activation in the autograd graph."""
        x, hx, lens = self._prepare(x, hx, lengths)
        return self._unroll(x, hx, lens, keep=True)

    def _prepare(
        self, x: Tensor, hx: StackState | None, lengths: object
    ) -> tuple[Tensor, StackState, Tensor | None]:
        """forward() and unroll()'s checks: x and hx checked (hx zeros when None), the
        lengths as a tensor (None when all are T), x's padded steps zeroed."""
        self._check_input(x)
        batch, steps = x.shape[0], x.shape[1]
        lens = _as_lengths(lengths, batch, steps, f"Recurrent({self.cell})")
        if hx is None:
            hx = self.zero_state(batch, x)
        else:
            self._check_state(hx, batch)
        if lens is not None:
            # zero the padding, so that a NaN or a huge value there cannot reach a gradient
            x = _zero_padded(x, step_mask(lens, steps, x.device))  # type: ignore[arg-type]
        return x, hx, lens

    def _unroll(self, x: Tensor, hx: StackState, lens: Tensor | None, keep: bool) -> RecurrentTrace:
        """Layer by layer, step by step. keep=False drops the per-step records (the
        unrolled fast path of force_unrolled)."""
        steps = x.shape[1]
        mask = step_mask(lens, steps, x.device)
        valid = None if mask is None else mask.t().unsqueeze(-1)  # (T, B, 1)
        lstm = self.info.has_cell_state
        gru = self.cell == "gru"
        hs: list[list[Tensor]] = []
        cs: list[list[Tensor]] | None = [] if lstm else None
        gates: list[dict[str, Tensor]] = []
        finals: list[State] = []
        inp = x
        for layer, state in enumerate(self.split_state(hx)):
            w_ih, w_hh, b_ih, b_hh = self.layer_weights(layer)
            # every step's input projection at once; b_hh joins it except for a GRU
            gi_all = F.linear(inp, w_ih, b_ih if gru else b_ih + b_hh)
            b_step = b_hh if gru else None
            # unbind, not gi_all[:, t]: each select's backward would allocate a whole
            # (B, T, G*H) zero tensor, making the backward quadratic in T
            gi_steps = gi_all.unbind(1)
            h_list: list[Tensor] = []
            c_list: list[Tensor] = []
            g_lists: dict[str, list[Tensor]] = {}
            for t in range(steps):
                out = self.info.step(gi_steps[t], state, w_hh, b_step)
                new = out.state
                if valid is not None:
                    new = _where_state(valid[t], new, state)
                state = new
                # the cell's own h_t and c_t, before masking: dL/dc_t must include the
                # path through h_t = o * tanh(c_t), which the masked copies do not share
                h_list.append(out.h)
                if isinstance(out.state, tuple):
                    c_list.append(out.state[1])
                if keep:
                    for name, a in out.gates.items():
                        g_lists.setdefault(name, []).append(a)
            finals.append(state)
            inp = torch.stack(h_list, dim=1)
            if mask is not None:
                inp = _zero_padded(inp, mask)
            if keep:
                hs.append(h_list)
                if cs is not None:
                    cs.append(c_list)
                gates.append({n: torch.stack(v, dim=1) for n, v in g_lists.items()})
            if layer < self.num_layers - 1 and self.dropout and self.training:
                inp = F.dropout(inp, self.dropout, training=True)
        return RecurrentTrace(inp, self.join_state(finals), hs, cs, gates)

    def step(self, x_t: Tensor, states: list[State] | None = None) -> StackStep:
        """One time step through every layer: x_t (B, input_size), states one per layer
        (zeros when None). Used where the next input depends on this step's output."""
        if x_t.dim() != 2 or x_t.shape[1] != self.input_size:
            raise ValueError(
                f"Recurrent({self.cell}): expected a step input of shape (batch, "
                f"{self.input_size}), got {tuple(x_t.shape)}"
            )
        if states is None:
            states = self.split_state(self.zero_state(x_t.shape[0], x_t))
        inp = x_t
        new_states: list[State] = []
        outs: list[CellStep] = []
        for layer, state in enumerate(states):
            w_ih, w_hh, b_ih, b_hh = self.layer_weights(layer)
            out = self.info.step(F.linear(inp, w_ih, b_ih), state, w_hh, b_hh)
            outs.append(out)
            new_states.append(out.state)
            inp = out.h
            if layer < self.num_layers - 1 and self.dropout and self.training:
                inp = F.dropout(inp, self.dropout, training=True)
        return StackStep(outs[-1].h, new_states, outs)


_FUSED = {"rnn-tanh": _VF.rnn_tanh, "rnn-relu": _VF.rnn_relu, "lstm": _VF.lstm, "gru": _VF.gru}


def _zero_padded(x: Tensor, mask: Tensor) -> Tensor:
    """x (B, T, H) with the padded steps (mask False) set to zero."""
    return torch.where(mask.unsqueeze(-1), x, x.new_zeros(()))


def _where_state(valid: Tensor, new: State, old: State) -> State:
    if isinstance(new, tuple):
        assert isinstance(old, tuple)
        return (torch.where(valid, new[0], old[0]), torch.where(valid, new[1], old[1]))
    assert isinstance(old, Tensor)
    return torch.where(valid, new, old)


def _permute(hx: StackState, index: Tensor | None) -> StackState:
    if index is None:
        return hx
    if isinstance(hx, tuple):
        return (hx[0].index_select(1, index), hx[1].index_select(1, index))
    return hx.index_select(1, index)
