"""Recurrent: the fast path and the unrolled path against torch's modules and a reference.

The reference for a batch of variable lengths runs every sample alone, unpadded, up
to its own length, so it shares no masking or packing logic with the code under test.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from models.recurrent import Recurrent

# "rnn-sigmoid@tanh": the sigmoid RNN on torch's fused tanh kernel (its CUDA fast path)
CELLS = ["rnn-tanh", "rnn-relu", "rnn-sigmoid", "rnn-sigmoid@tanh", "lstm", "gru"]
B, T, IN, H = 4, 7, 3, 5
LENGTHS = torch.tensor([7, 3, 1, 5])


def make(cell_id: str, layers: int) -> Recurrent:
    cell, _, kernel = cell_id.partition("@")
    return Recurrent(cell, IN, H, layers, sigmoid_kernel=kernel or "auto")


def torch_module(cell: str, layers: int) -> nn.Module:
    if cell == "lstm":
        return nn.LSTM(IN, H, layers, batch_first=True)
    if cell == "gru":
        return nn.GRU(IN, H, layers, batch_first=True)
    return nn.RNN(IN, H, layers, nonlinearity=cell.split("-")[1], batch_first=True)


def sigmoid_rnn_reference(rnn: Recurrent, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The sigmoid RNN written out: h_t = sigmoid(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)."""
    inp, finals = x, []
    for layer in range(rnn.num_layers):
        w_ih, w_hh, b_ih, b_hh = rnn.layer_weights(layer)
        h = torch.zeros(x.shape[0], H)
        outs = []
        for t in range(x.shape[1]):
            h = torch.sigmoid(inp[:, t] @ w_ih.T + b_ih + h @ w_hh.T + b_hh)
            outs.append(h)
        inp = torch.stack(outs, dim=1)
        finals.append(h)
    return inp, torch.stack(finals)


def reference(rnn: Recurrent, x: torch.Tensor, lengths: torch.Tensor | None):
    """Every sample alone, up to its own length: (output padded with 0, final state)."""
    if rnn.cell == "rnn-sigmoid":
        run = lambda xb: sigmoid_rnn_reference(rnn, xb)  # noqa: E731
    else:
        module = torch_module(rnn.cell, rnn.num_layers)
        module.load_state_dict(rnn.state_dict())
        run = module
    outs, hs, cs = [], [], []
    for b in range(x.shape[0]):
        n = x.shape[1] if lengths is None else int(lengths[b])
        out, state = run(x[b : b + 1, :n])
        outs.append(torch.cat([out[0], out.new_zeros(x.shape[1] - n, H)]))
        if isinstance(state, tuple):
            hs.append(state[0][:, 0])
            cs.append(state[1][:, 0])
        else:
            hs.append(state[:, 0])
    h = torch.stack(hs, dim=1)
    return torch.stack(outs), ((h, torch.stack(cs, dim=1)) if cs else h)


def assert_same(got, expected, atol=1e-5):
    out, state = got
    torch.testing.assert_close(out, expected[0], atol=atol, rtol=0)
    if isinstance(state, tuple):
        torch.testing.assert_close(state[0], expected[1][0], atol=atol, rtol=0)
        torch.testing.assert_close(state[1], expected[1][1], atol=atol, rtol=0)
    else:
        torch.testing.assert_close(state, expected[1], atol=atol, rtol=0)


@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["full", "variable"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("cell", CELLS)
def test_fast_and_unrolled_equal_reference(cell, layers, lengths):
    torch.manual_seed(layers)
    rnn = make(cell, layers)
    x = torch.randn(B, T, IN)
    with torch.no_grad():
        expected = reference(rnn, x, lengths)
        assert_same(rnn(x, None, lengths), expected)
        trace = rnn.unroll(x, None, lengths)
        assert_same((trace.output, trace.state), expected)
    # the per-step records are the states themselves
    top = torch.stack(trace.h[-1], dim=1)
    lens = torch.full((B,), T) if lengths is None else lengths
    valid = torch.arange(T)[None, :] < lens[:, None]
    torch.testing.assert_close(top[valid], expected[0][valid], atol=1e-5, rtol=0)
    assert len(trace.h) == layers and len(trace.h[0]) == T
    assert (trace.c is not None) == (cell == "lstm")


@pytest.mark.parametrize("cell", CELLS)
def test_fast_and_unrolled_gradients_agree(cell):
    """The fast path's tricks (sigmoid on the tanh kernel, right-aligned LSTM for variable
    lengths) must give the same weight gradients as the plain unrolled loop."""
    torch.manual_seed(2)
    rnn = make(cell, 2)
    x = torch.randn(B, T, IN)
    grads = []
    for fast in (True, False):
        rnn.zero_grad()
        if fast:
            out, state = rnn(x, None, LENGTHS)
        else:
            trace = rnn.unroll(x, None, LENGTHS)
            out, state = trace.output, trace.state
        h = state[1] if isinstance(state, tuple) else state  # c of an LSTM, else h
        (out.pow(2).sum() + h.sin().sum()).backward()
        grads.append([p.grad.clone() for p in rnn.parameters()])
    for fast, slow in zip(*grads, strict=True):
        torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_given_initial_state_with_lengths(cell):
    torch.manual_seed(3)
    rnn = Recurrent(cell, IN, H, 2)
    x = torch.randn(B, T, IN)
    hx = torch.randn(2, B, H)
    hx = (hx, torch.randn(2, B, H)) if cell == "lstm" else hx
    with torch.no_grad():
        fast = rnn(x, hx, LENGTHS)
        trace = rnn.unroll(x, hx, LENGTHS)
    assert_same(fast, (trace.output, trace.state))
    module = torch_module(cell, 2)
    module.load_state_dict(rnn.state_dict())
    b = 1  # sample 1 alone, length 3, from its own initial state
    h_b = (hx[0][:, b : b + 1], hx[1][:, b : b + 1]) if cell == "lstm" else hx[:, b : b + 1]
    with torch.no_grad():
        out, _ = module(x[b : b + 1, :3], h_b)
    torch.testing.assert_close(fast[0][b, :3], out[0], atol=1e-5, rtol=0)


def test_padding_values_cannot_poison_the_result():
    torch.manual_seed(4)
    rnn = Recurrent("gru", IN, H, 1)
    x = torch.randn(B, T, IN)
    dirty = x.clone()
    dirty[1, 3:] = float("nan")
    out, h = rnn(dirty, None, LENGTHS)
    (out.sum() + h.sum()).backward()
    assert all(bool(torch.isfinite(p.grad).all()) for p in rnn.parameters())
    torch.testing.assert_close(out, rnn(x, None, LENGTHS)[0])


def test_dropout_only_in_training():
    torch.manual_seed(5)
    rnn = Recurrent("lstm", IN, H, 2, dropout=0.5)
    x = torch.randn(B, T, IN)
    rnn.eval()
    a, b = rnn(x)[0], rnn(x)[0]
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    rnn.train()
    assert not torch.allclose(rnn(x)[0], a)


def test_step_equals_sequence():
    torch.manual_seed(6)
    rnn = Recurrent("lstm", IN, H, 2)
    x = torch.randn(B, T, IN)
    out, _ = rnn(x)
    states = None
    for t in range(T):
        stepped = rnn.step(x[:, t], states)
        states = stepped.states
        torch.testing.assert_close(stepped.h, out[:, t], atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda r: r(torch.randn(B, IN)),
            r"expected input of shape \(batch, steps, 3\), got \(4, 3\)",
        ),
        (
            lambda r: r(torch.randn(B, T, 4)),
            r"expected input of shape \(batch, steps, 3\), got \(4, 7, 4\)",
        ),
        (lambda r: r(torch.randn(B, T, IN), torch.zeros(1, B, H)), r"expected hx to be a pair"),
        (
            lambda r: r(torch.randn(B, T, IN), (torch.zeros(1, B, H), torch.zeros(2, B, H))),
            r"expected hx of shape \(2, 4, 5\), got \(1, 4, 5\)",
        ),
        (lambda r: r(torch.randn(B, T, IN), None, [7, 3, 0, 5]), r"expected lengths in 1\.\.7"),
        (lambda r: r(torch.randn(B, T, IN), None, [7, 3]), r"expected lengths of shape \(4,\)"),
        (lambda r: r.step(torch.randn(B, T, IN)), r"expected a step input of shape \(batch, 3\)"),
    ],
)
def test_bad_input_says_what_was_expected(make, message):
    with pytest.raises(ValueError, match=message):
        make(Recurrent("lstm", IN, H, 2))
