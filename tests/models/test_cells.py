"""Cells: the registry, torch's parameter layout, one step against torch's own cells."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from models.cells import CELLS, Cell, cell_info, recurrent_parameter_count
from models.recurrent import Recurrent

TORCH_CELL = {
    "rnn-tanh": lambda i, h: nn.RNNCell(i, h, nonlinearity="tanh"),
    "rnn-relu": lambda i, h: nn.RNNCell(i, h, nonlinearity="relu"),
    "lstm": lambda i, h: nn.LSTMCell(i, h),
    "gru": lambda i, h: nn.GRUCell(i, h),
}
TORCH_STACK = {
    "rnn-tanh": lambda i, h, n: nn.RNN(i, h, n, nonlinearity="tanh", batch_first=True),
    "rnn-relu": lambda i, h, n: nn.RNN(i, h, n, nonlinearity="relu", batch_first=True),
    "rnn-sigmoid": lambda i, h, n: nn.RNN(i, h, n, batch_first=True),  # same layout, G = 1
    "lstm": lambda i, h, n: nn.LSTM(i, h, n, batch_first=True),
    "gru": lambda i, h, n: nn.GRU(i, h, n, batch_first=True),
}


def test_registry_names_and_texts():
    assert set(CELLS) == {"rnn-tanh", "rnn-relu", "rnn-sigmoid", "lstm", "gru"}
    for name, info in CELLS.items():
        assert info.name == name
        assert len(info.description) > 200  # a paragraph a student can read
    assert CELLS["lstm"].gates == ("i", "f", "o") and CELLS["lstm"].has_cell_state
    assert CELLS["gru"].gates == ("r", "z") and not CELLS["gru"].has_cell_state
    assert CELLS["rnn-tanh"].gates == ()
    with pytest.raises(ValueError, match="expected one of"):
        cell_info("transformer")


@pytest.mark.parametrize("cell", sorted(TORCH_STACK))
def test_parameter_layout_is_torchs(cell):
    """Same names, shapes and order as torch.nn.RNN/LSTM/GRU: state dicts load both ways."""
    ours = Recurrent(cell, 3, 5, num_layers=2)
    theirs = TORCH_STACK[cell](3, 5, 2)
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == [
        (k, v.shape) for k, v in theirs.state_dict().items()
    ]
    theirs.load_state_dict(ours.state_dict())
    ours.load_state_dict(theirs.state_dict())
    n = sum(p.numel() for p in theirs.parameters())
    assert (
        recurrent_parameter_count(cell, 3, 5, 2) == n == sum(p.numel() for p in ours.parameters())
    )


@pytest.mark.parametrize("cell", sorted(TORCH_CELL))
def test_one_step_equals_torch_cell(cell):
    torch.manual_seed(0)
    ours = Cell(cell, 4, 6)
    theirs = TORCH_CELL[cell](4, 6)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(3, 4)
    state = (torch.randn(3, 6), torch.randn(3, 6)) if cell == "lstm" else torch.randn(3, 6)
    step = ours.step(x, state)
    expected = theirs(x, state)
    got = step.state
    if cell == "lstm":
        torch.testing.assert_close(got[0], expected[0], atol=1e-6, rtol=0)
        torch.testing.assert_close(got[1], expected[1], atol=1e-6, rtol=0)
        assert set(step.gates) == {"i", "f", "g", "o"}
    else:
        torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
    if cell == "gru":
        assert set(step.gates) == {"r", "z", "n"}
    for name in CELLS[cell].gates:  # sigmoid gates lie in (0, 1)
        assert bool(((step.gates[name] > 0) & (step.gates[name] < 1)).all())


def test_sigmoid_cell_equals_formula():
    torch.manual_seed(1)
    cell = Cell("rnn-sigmoid", 4, 6)
    x, h = torch.randn(3, 4), torch.randn(3, 6)
    expected = torch.sigmoid(
        x @ cell.weight_ih.T + cell.bias_ih + h @ cell.weight_hh.T + cell.bias_hh
    )
    torch.testing.assert_close(cell(x, h), expected, atol=1e-6, rtol=0)
    assert cell(x).shape == (3, 6)  # zero initial state by default


def test_cell_rejects_wrong_input_shape():
    with pytest.raises(ValueError, match=r"expected input of shape \(batch, 4\), got \(3, 5\)"):
        Cell("gru", 4, 6)(torch.randn(3, 5))
