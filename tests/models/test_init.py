"""Recurrent initialisation: each setting gives the W_hh it promises, on every cell and
layer, both paths still agree, and at init the radius decides whether the gradient
through time vanishes or explodes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.cells import CELLS
from models.init import (
    initialize_recurrent,
    initialize_seq2seq,
    recurrent_init_names,
    seq2seq_spectral_radii,
    spectral_radii,
)
from models.probes import probe
from models.recurrent import Recurrent
from models.seq2seq import Seq2Seq, Seq2SeqConfig, SideConfig

ALL_CELLS = tuple(CELLS)
HIDDEN, LAYERS = 6, 2
CONT = SideConfig("continuous", features=1)


def make_recurrent(cell: str, seed: int = 0) -> Recurrent:
    torch.manual_seed(seed)
    return Recurrent(cell, 3, HIDDEN, LAYERS)


def blocks(rnn: Recurrent):
    """(layer, block name, H x H block of W_hh) for every layer and gate block."""
    names = rnn.info.blocks or ("all",)
    for layer in range(rnn.num_layers):
        w = rnn.layer_weights(layer)[1].detach().double()
        for k, name in enumerate(names):
            yield layer, name, w[k * HIDDEN : (k + 1) * HIDDEN]


def radius(w: torch.Tensor) -> float:
    return float(torch.linalg.eigvals(w.double()).abs().max())


# -- what each setting gives -------------------------------------------------------------


@pytest.mark.parametrize("cell", ALL_CELLS)
def test_orthogonal_makes_every_gate_block_of_every_layer_orthogonal(cell):
    rnn = make_recurrent(cell)
    initialize_recurrent(rnn, cell, init="orthogonal")
    eye = torch.eye(HIDDEN, dtype=torch.float64)
    seen = 0
    for _layer, _name, w in blocks(rnn):
        torch.testing.assert_close(w.T @ w, eye, atol=1e-5, rtol=0)
        seen += 1
    assert seen == LAYERS * max(1, len(CELLS[cell].blocks))


@pytest.mark.parametrize("cell", ALL_CELLS)
def test_identity_makes_every_gate_block_the_identity(cell):
    rnn = make_recurrent(cell)
    w_ih_before = rnn.weight_ih_l0.detach().clone()
    initialize_recurrent(rnn, cell, init="identity")
    for _layer, _name, w in blocks(rnn):
        assert torch.equal(w, torch.eye(HIDDEN, dtype=torch.float64))
    assert torch.equal(rnn.weight_ih_l0, w_ih_before)  # only W_hh changes


@pytest.mark.parametrize("cell", ALL_CELLS)
@pytest.mark.parametrize(("init", "r"), [("default", 0.5), ("orthogonal", 1.5), ("identity", 0.8)])
def test_radius_sets_the_spectral_radius_of_every_layer_and_gate_block(cell, init, r):
    rnn = make_recurrent(cell)
    initialize_recurrent(rnn, cell, init=init, radius=r)
    for layer, name, w in blocks(rnn):
        assert radius(w) == pytest.approx(r, abs=1e-4), (layer, name)
    reported = spectral_radii(rnn, cell)
    assert len(reported) == LAYERS * max(1, len(CELLS[cell].blocks))
    assert all(v == pytest.approx(r, abs=1e-4) for v in reported.values())


def test_radius_scales_each_gate_block_by_its_own_factor():
    """Each LSTM block is multiplied by r / (its own radius), so the blocks keep their
    shape and each reaches r, rather than all sharing one factor."""
    rnn = make_recurrent("lstm")
    before = {(layer, name): w.clone() for layer, name, w in blocks(rnn)}
    initialize_recurrent(rnn, "lstm", radius=0.9)
    factors = []
    for layer, name, w in blocks(rnn):
        old = before[layer, name]
        factor = 0.9 / radius(old)
        torch.testing.assert_close(w, old * factor, atol=1e-6, rtol=1e-6)
        factors.append(factor)
    assert max(factors) - min(factors) > 1e-3


def test_forget_bias_lands_in_the_forget_slice_of_torchs_gate_order():
    rnn = make_recurrent("lstm")
    before = {n: p.detach().clone() for n, p in rnn.named_parameters()}
    initialize_recurrent(rnn, "lstm", forget_bias=2.0)
    f = slice(HIDDEN, 2 * HIDDEN)  # torch's order i, f, g, o
    for layer in range(LAYERS):
        b_ih, b_hh = getattr(rnn, f"bias_ih_l{layer}"), getattr(rnn, f"bias_hh_l{layer}")
        assert torch.all(b_ih[f] == 2.0) and torch.all(b_hh[f] == 0.0)
        for name, b in (("bias_ih", b_ih), ("bias_hh", b_hh)):
            old = before[f"{name}_l{layer}"]
            assert torch.equal(b[:HIDDEN], old[:HIDDEN])  # i, g, o untouched
            assert torch.equal(b[2 * HIDDEN :], old[2 * HIDDEN :])
    # what the gate does with it: zero input from the zero state, f_1 = sigmoid(2) exactly
    trace = rnn.unroll(torch.zeros(2, 3, 3))
    expected = torch.full((2, HIDDEN), torch.sigmoid(torch.tensor(2.0)).item())
    torch.testing.assert_close(trace.gates[0]["f"][:, 0], expected)


@pytest.mark.parametrize("cell", ["rnn-tanh", "rnn-relu", "rnn-sigmoid", "gru"])
def test_forget_bias_is_refused_for_cells_without_a_forget_gate(cell):
    rnn = make_recurrent(cell)
    before = {n: p.detach().clone() for n, p in rnn.named_parameters()}
    with pytest.raises(ValueError, match=f"forget_bias = 1.0 is not allowed for cell '{cell}'"):
        initialize_recurrent(rnn, cell, init="orthogonal", forget_bias=1.0)
    assert all(torch.equal(p, before[n]) for n, p in rnn.named_parameters())  # untouched


@pytest.mark.parametrize("cell", ALL_CELLS)
def test_default_leaves_every_weight_bit_identical_and_draws_nothing(cell):
    rnn = make_recurrent(cell)
    before = {n: p.detach().clone() for n, p in rnn.named_parameters()}
    rng = torch.random.get_rng_state()
    initialize_recurrent(rnn, cell, init="default")
    initialize_recurrent(rnn, cell, init="identity")  # draws nothing either
    assert torch.equal(torch.random.get_rng_state(), rng)
    rnn2 = make_recurrent(cell)
    initialize_recurrent(rnn2, cell)
    assert all(torch.equal(p, before[n]) for n, p in rnn2.named_parameters())


def test_orthogonal_is_a_function_of_the_callers_seed():
    def weights(seed):
        rnn = make_recurrent("gru")
        torch.manual_seed(seed)
        initialize_recurrent(rnn, "gru", init="orthogonal")
        return rnn.weight_hh_l1.detach().clone()

    assert torch.equal(weights(3), weights(3))
    assert not torch.equal(weights(3), weights(4))


@pytest.mark.parametrize("cell", ALL_CELLS)
def test_fused_and_unrolled_paths_agree_after_init(cell):
    rnn = make_recurrent(cell)
    initialize_recurrent(
        rnn, cell, init="orthogonal", radius=1.2, forget_bias=1.0 if cell == "lstm" else None
    )
    x = torch.randn(4, 9, 3)
    lengths = torch.tensor([9, 4, 7, 1])
    for lens in (None, lengths):
        out, state = rnn(x, lengths=lens)
        trace = rnn.unroll(x, lengths=lens)
        torch.testing.assert_close(out, trace.output, atol=1e-5, rtol=1e-5)
        for a, b in zip(
            state if isinstance(state, tuple) else (state,),
            trace.state if isinstance(trace.state, tuple) else (trace.state,),
            strict=True,
        ):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("cell", "module_type"), [("lstm", torch.nn.LSTM), ("gru", torch.nn.GRU),
                                                   ("rnn-relu", torch.nn.RNN)])
def test_torch_modules_get_the_same_weights_as_recurrent(cell, module_type):
    """torch.nn.RNN/LSTM/GRU name W_hh as Recurrent does; the same init under the same
    seed gives the same state dict."""
    rnn = make_recurrent(cell)
    kwargs = {"nonlinearity": "relu"} if module_type is torch.nn.RNN else {}
    fused = module_type(3, HIDDEN, LAYERS, batch_first=True, **kwargs)
    fused.load_state_dict(rnn.state_dict())
    settings = {"init": "orthogonal", "radius": 0.7,
                "forget_bias": 1.5 if cell == "lstm" else None}
    torch.manual_seed(5)
    initialize_recurrent(rnn, cell, **settings)
    torch.manual_seed(5)
    initialize_recurrent(fused, cell, **settings)
    for name, value in rnn.state_dict().items():
        assert torch.equal(fused.state_dict()[name], value), name


def test_bad_arguments_raise_one_line_value_errors():
    rnn = make_recurrent("lstm")
    cases = [
        ({"init": "xavier"},
         "recurrent init 'xavier' is not known; expected one of default, orthogonal, identity"),
        ({"radius": 0.0}, "recurrent radius 0.0 is not allowed: expected a number > 0"),
        ({"radius": float("nan")}, "recurrent radius nan"),
        ({"forget_bias": float("inf")}, "forget_bias = inf is not allowed"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError) as info:
            initialize_recurrent(rnn, "lstm", **kwargs)
        assert str(info.value).startswith(message) and "\n" not in str(info.value)
    with pytest.raises(ValueError, match="holds 'lstm' layers, not 'gru'"):
        initialize_recurrent(rnn, "gru", init="orthogonal")
    with pytest.raises(ValueError, match="unknown cell"):
        initialize_recurrent(rnn, "transformer")
    with pytest.raises(ValueError, match="no recurrent weights"):
        initialize_recurrent(torch.nn.Linear(2, 2), "rnn-tanh")
    assert recurrent_init_names == ("default", "orthogonal", "identity")


# -- the seq2seq helper and the physics at init ------------------------------------------------


def make_seq2seq(cell: str, seed: int = 0, hidden: int = 16) -> Seq2Seq:
    torch.manual_seed(seed)
    return Seq2Seq(Seq2SeqConfig(cell=cell, hidden=hidden, source=CONT, target=CONT))


def encoder_gradient_ratio(model: Seq2Seq, steps: int = 50) -> tuple[float, dict[str, float]]:
    """G_1 / G_T of the encoder's top layer at init, and the radii the probe recorded."""
    torch.manual_seed(1)
    src, tgt = torch.randn(8, steps, 1), torch.randn(8, 5, 1)
    result = probe(model, src, tgt)
    g = result.encoder_grad_norms[-1]
    assert np.isfinite(g).all() and g[-1] > 0
    return float(g[0] / g[-1]), result.spectral_radius


def test_initialize_seq2seq_sets_encoder_and_decoder_and_the_probe_records_it():
    model = make_seq2seq("lstm", hidden=5)
    initialize_seq2seq(model, init="orthogonal", radius=0.6, forget_bias=1.0)
    radii = seq2seq_spectral_radii(model)
    assert sorted(radii) == sorted(f"{side}.layer0.{b}" for side in ("encoder", "decoder")
                                   for b in "ifgo")
    assert all(v == pytest.approx(0.6, abs=1e-4) for v in radii.values())
    assert torch.all(model.decoder.bias_ih_l0[5:10] == 1.0)
    _, recorded = encoder_gradient_ratio(model, steps=5)
    assert recorded.keys() == radii.keys()
    assert all(recorded[k] == pytest.approx(radii[k], abs=1e-4) for k in radii)


def test_spectral_radii_match_the_probes_figures_in_float32_too():
    """seq2seq_spectral_radii gives what models.probes records (its keys, its values),
    in float64 by default or float32 (the probes' faster choice)."""
    model = make_seq2seq("gru", hidden=7)
    _, recorded = encoder_gradient_ratio(model, steps=3)
    exact = seq2seq_spectral_radii(model)
    fast = seq2seq_spectral_radii(model, dtype=torch.float32)
    assert exact.keys() == recorded.keys() == fast.keys()
    for key, value in exact.items():
        assert recorded[key] == pytest.approx(value, rel=1e-5)
        assert fast[key] == pytest.approx(value, rel=1e-5)
    with torch.no_grad():
        model.encoder.weight_hh_l0[0, 0] = float("nan")
    assert np.isnan(seq2seq_spectral_radii(model)["encoder.layer0.r"])


def test_initialize_seq2seq_refuses_forget_bias_for_a_gru_and_changes_nothing():
    model = make_seq2seq("gru", hidden=4)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with pytest.raises(ValueError, match="cell 'gru'"):
        initialize_seq2seq(model, init="identity", forget_bias=1.0)
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())


def test_tanh_at_radius_half_vanishes_over_50_steps():
    """Each step back multiplies dL/dh_t by W_hh^T diag(tanh') with rho(W_hh) = 0.5 and
    tanh' <= 1: over 49 steps roughly 0.5^49 ~ 2e-15. The first steps get no signal."""
    model = make_seq2seq("rnn-tanh")
    initialize_seq2seq(model, radius=0.5)
    ratio, recorded = encoder_gradient_ratio(model)
    assert recorded["encoder.layer0"] == pytest.approx(0.5, abs=1e-4)
    assert ratio < 1e-6


def test_relu_with_identity_times_one_and_a_half_explodes_over_50_steps():
    """W_hh = 1.5 I (IRNN scaled past 1): active relu units pass the gradient back
    multiplied by 1.5 per step, so G_1 / G_T grows towards 1.5^49 ~ 4e8."""
    model = make_seq2seq("rnn-relu")
    initialize_seq2seq(model, init="identity", radius=1.5)
    assert torch.equal(model.encoder.weight_hh_l0, 1.5 * torch.eye(16))
    ratio, _ = encoder_gradient_ratio(model)
    assert ratio > 1e3
