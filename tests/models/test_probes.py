"""Probes: per-step gradient norms against an independent reference, the physics of
vanishing and exploding gradients on controlled weights, and no side effects."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models.probes import ProbeResult, probe
from models.seq2seq import Seq2Seq, Seq2SeqConfig, SideConfig
from workbench.events import ProbeEvent

CONT_IN, CONT_OUT = SideConfig("continuous", features=2), SideConfig("continuous", features=2)
TOK_IN = SideConfig("tokens", vocab_size=6, embedding=3)
TOK_OUT = SideConfig("tokens", vocab_size=7, embedding=4)


# -- an independent reference -------------------------------------------------------------


def ref_step(cell, x, h, c, w_ih, w_hh, b_ih, b_hh):
    """One step, written out from the textbook formulas (torch's gate order)."""
    gi, gh = x @ w_ih.T + b_ih, h @ w_hh.T + b_hh
    if cell == "lstm":
        i, f, g, o = (gi + gh).chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c
    if cell == "gru":
        ir, iz, inn = gi.chunk(3, dim=-1)
        hr, hz, hn = gh.chunk(3, dim=-1)
        r, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
        n = torch.tanh(inn + r * hn)
        return (1 - z) * n + z * h, c
    act = {"rnn-tanh": torch.tanh, "rnn-relu": torch.relu, "rnn-sigmoid": torch.sigmoid}[cell]
    return act(gi + gh), c


def reference_grad_norms(model, src, tgt, src_lens, tgt_lens):
    """G_t per side, layer and step, one sample at a time, unpadded, in float64.

    For each sample b alone: run the encoder over its own src_lens[b] steps and the
    teacher-forced decoder over its tgt_lens[b] steps, keeping every h_t (and c_t),
    compute its loss L_b, and take torch.autograd.grad(L_b, [every h_t]). Returns
    {"encoder": (layers, T_in), "decoder": ..., "encoder_c": ..., "decoder_c": ...}
    averaged over the samples valid at each step (NaN where none is).
    """
    cfg = model.config
    p = {k: v.detach().double().requires_grad_(False) for k, v in model.state_dict().items()}
    layers, cell = cfg.layers, cfg.cell
    sums = {
        k: np.zeros((layers, n)) for k, n in [("encoder", src.shape[1]), ("decoder", tgt.shape[1])]
    }
    counts = {k: np.zeros(v.shape[1]) for k, v in sums.items()}
    sums.update({k + "_c": np.zeros_like(v) for k, v in list(sums.items())})

    def embed(side, ids_or_x, table):
        if side.kind == "tokens":
            return p[table][ids_or_x]
        return ids_or_x.double()

    def run(prefix, xs, h, c, keep):
        for layer in range(layers):
            w = [
                p[f"{prefix}.{n}_l{layer}"]
                for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
            ]
            outs = []
            for x in xs:
                h[layer], c[layer] = ref_step(cell, x, h[layer], c[layer], *w)
                h[layer].requires_grad_(True) if not h[layer].requires_grad else None
                keep.append((prefix, layer, len(outs), h[layer], c[layer]))
                outs.append(h[layer])
            xs = outs
        return xs

    for b in range(src.shape[0]):
        n_in, n_out = int(src_lens[b]), int(tgt_lens[b])
        s = embed(cfg.source, src[b, :n_in], "source_embedding.weight")
        if cfg.target.kind == "tokens":
            start = p["target_embedding.weight"][cfg.target.start_id]
            prev = p["target_embedding.weight"][tgt[b, : n_out - 1]]
        else:
            start = p["start"]
            prev = tgt[b, : n_out - 1].double()
        dec_in = torch.cat([start[None], prev])
        zero = torch.zeros(cfg.hidden, dtype=torch.float64, requires_grad=True)
        h = [zero * 1.0 for _ in range(layers)]  # in the graph, so grads reach every h_t
        c = [zero * 1.0 for _ in range(layers)]
        keep: list = []
        run("encoder", list(s), h, c, keep)
        top = run("decoder", list(dec_in), h, c, keep)
        out = torch.stack(top) @ p["head.weight"].T + p["head.bias"]
        if cfg.target.kind == "tokens":
            loss = F.cross_entropy(out, tgt[b, :n_out])
        else:
            loss = ((out - tgt[b, :n_out].double()) ** 2).mean()
        hs = [k[3] for k in keep]
        cs = [k[4] for k in keep] if cell == "lstm" else []
        grads = torch.autograd.grad(loss, hs + cs, allow_unused=True, materialize_grads=True)
        for i, (side, layer, t, _, _) in enumerate(keep):
            sums[side][layer, t] += float(grads[i].norm())
            if cs:
                sums[side + "_c"][layer, t] += float(grads[len(hs) + i].norm())
        counts["encoder"][:n_in] += 1
        counts["decoder"][:n_out] += 1
    with np.errstate(invalid="ignore"):
        return {k: v / counts[k.split("_")[0]] for k, v in sums.items()}


def make_model(cell, source, target, layers=2, hidden=5, seed=0):
    torch.manual_seed(seed)
    return Seq2Seq(Seq2SeqConfig(cell, hidden, source, target, layers=layers, dropout=0.3))


def make_batch(model, b, t_in, t_out, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for side, t in ((model.config.source, t_in), (model.config.target, t_out)):
        if side.kind == "tokens":
            out.append(torch.randint(3, side.vocab_size, (b, t), generator=g))
        else:
            out.append(torch.randn(b, t, side.features, generator=g))
    return out


# -- gradient norms against the reference ---------------------------------------------------


@pytest.mark.parametrize(
    "cell, sides",
    [
        ("lstm", (CONT_IN, CONT_OUT)),
        ("gru", (TOK_IN, TOK_OUT)),
        ("rnn-tanh", (CONT_IN, TOK_OUT)),
        ("rnn-sigmoid", (TOK_IN, CONT_OUT)),
    ],
)
def test_grad_norms_equal_reference(cell, sides):
    model = make_model(cell, *sides)
    src, tgt = make_batch(model, 4, 7, 6)
    # the last step of each side is padding for every sample: its G_t must be NaN
    src_lens, tgt_lens = torch.tensor([6, 2, 5, 1]), torch.tensor([5, 5, 1, 3])
    result = probe(model, src, tgt, src_lens, tgt_lens)
    ref = reference_grad_norms(model, src, tgt, src_lens, tgt_lens)
    np.testing.assert_allclose(result.encoder_grad_norms, ref["encoder"], rtol=1e-6)
    np.testing.assert_allclose(result.decoder_grad_norms, ref["decoder"], rtol=1e-6)
    assert (
        np.isnan(result.encoder_grad_norms[:, 6]).all()
        and np.isnan(result.decoder_grad_norms[:, 5]).all()
    )
    if cell == "lstm":
        np.testing.assert_allclose(result.encoder_cell_grad_norms, ref["encoder_c"], rtol=1e-6)
        np.testing.assert_allclose(result.decoder_cell_grad_norms, ref["decoder_c"], rtol=1e-6)
    else:
        assert result.encoder_cell_grad_norms is None and result.decoder_cell_grad_norms is None


def test_grad_norms_far_below_float32_range():
    """A tanh RNN with a small W_hh (radius 0.05) over 40 steps: G_1 ~ 0.05^39 ~ 1e-51.

    In float32 these gradients flush to zero; the probe must report them as they are.
    """
    model = make_model("rnn-tanh", CONT_IN, CONT_OUT, layers=1, hidden=4, seed=1)
    with torch.no_grad():
        q, _ = torch.linalg.qr(torch.randn(4, 4))
        model.encoder.weight_hh_l0.copy_(0.05 * q)
    src, tgt = make_batch(model, 2, 40, 2)
    lens_in, lens_out = torch.tensor([40, 40]), torch.tensor([2, 2])
    result = probe(model, src, tgt, lens_in, lens_out)
    g1 = result.encoder_grad_norms[0, 0]
    assert 0 < g1 < 1e-30
    ref = reference_grad_norms(model, src, tgt, lens_in, lens_out)
    np.testing.assert_allclose(result.encoder_grad_norms, ref["encoder"], rtol=1e-6)
    low = probe(model, src, tgt, lens_in, lens_out, dtype=torch.float32)
    assert low.encoder_grad_norms[0, 0] == 0.0  # what float32 would have shown


# -- the physics, on controlled weights -------------------------------------------------------


def single_layer_rnn(cell, w_hh):
    """A one-layer encoder-decoder whose encoder recurrence is W_hh; 1 feature each side.

    For a one-layer encoder, h_t reaches the loss only through h_{t+1}, so
    dL/dh_t = (dh_{t+1}/dh_t)^T dL/dh_{t+1} = W_hh^T diag(act'(a_{t+1})) dL/dh_{t+1}:
    every step back multiplies the gradient by W_hh^T and by the activation's slope.
    """
    h = w_hh.shape[0]
    side = SideConfig("continuous", features=1)
    model = Seq2Seq(Seq2SeqConfig(cell, h, side, side))
    with torch.no_grad():
        model.encoder.weight_hh_l0.copy_(w_hh)
    return model


def test_contracting_recurrence_vanishes_geometrically():
    """tanh, W_hh = 0.5 Q with Q orthogonal: every singular value is 0.5 and tanh' <= 1,
    so each step back shrinks ||dL/dh_t|| to at most half: G_t <= G_{t+1} / 2, and over
    50 steps G_1 / G_50 <= 2^-49 ~ 2e-15. The start of a long sequence gets no signal."""
    torch.manual_seed(2)
    q, _ = torch.linalg.qr(torch.randn(8, 8))
    model = single_layer_rnn("rnn-tanh", 0.5 * q)
    src, tgt = torch.randn(16, 50, 1), torch.randn(16, 1, 1)
    g = probe(model, src, tgt).encoder_grad_norms[0]
    assert g[0] / g[-1] < 1e-3
    assert np.all(g[:-1] <= 0.5 * g[1:] * (1 + 1e-9))
    rate = math.exp(np.polyfit(np.arange(50), np.log(g), 1)[0])  # growth per step forward
    assert rate > 2.0  # i.e. G shrinks by more than 2x per step going back


def test_expanding_relu_recurrence_explodes():
    """relu, W_hh = 1.5 I (spectral radius 1.5), positive inputs, weights and bias: every
    pre-activation is positive, so relu' = 1 (no saturation) and dh_{t+1}/dh_t = 1.5 I
    exactly. Going back, the gradient grows by exactly 1.5 per step: G_1 / G_T = 1.5^(T-1)."""
    t_in = 20
    model = single_layer_rnn("rnn-relu", 1.5 * torch.eye(4))
    with torch.no_grad():
        model.encoder.weight_ih_l0.uniform_(0.1, 1.0)
        model.encoder.bias_ih_l0.fill_(0.1)
        model.encoder.bias_hh_l0.fill_(0.1)
    src, tgt = torch.rand(8, t_in, 1) + 0.1, torch.randn(8, 1, 1)
    g = probe(model, src, tgt).encoder_grad_norms[0]
    np.testing.assert_allclose(g[:-1] / g[1:], 1.5, rtol=1e-9)
    assert g[0] / g[-1] == pytest.approx(1.5 ** (t_in - 1), rel=1e-9)


# -- the other figures -------------------------------------------------------------------------


def test_hidden_states_gates_and_spectra():
    model = make_model("lstm", CONT_IN, TOK_OUT, layers=2, hidden=5)
    src, tgt = make_batch(model, 6, 7, 4)
    src_lens = torch.tensor([7, 3, 7, 7, 7, 7])
    r = probe(model, src, tgt, src_lens, None, sample_count=3)
    assert r.encoder_hidden.shape == (3, 7, 5) and r.decoder_hidden.shape == (3, 4, 5)
    assert np.isnan(r.encoder_hidden[1, 3:]).all() and np.isfinite(r.encoder_hidden[1, :3]).all()
    model.eval()
    trace = model(src, tgt, src_lens, instrumented=True)
    np.testing.assert_allclose(
        r.decoder_hidden[2], torch.stack(trace.decoder.h[-1], 1)[2].detach(), atol=1e-6
    )
    assert set(r.gate_means) == set(r.gate_saturation) == {"i", "f", "o"}
    for name in ("i", "f", "o"):
        assert r.gate_means[name].shape == (2, 11) and r.gate_saturation[name].shape == (2, 11)
        gates = torch.cat(
            [trace.encoder.gates[0][name][:, :1], trace.decoder.gates[0][name][:, -1:]], 1
        )
        np.testing.assert_allclose(
            r.gate_means[name][0, [0, -1]], gates.mean(dim=(0, 2)).detach(), atol=1e-6
        )
    assert set(r.spectral_radius) == {
        f"{side}.layer{k}.{g}" for side in ("encoder", "decoder") for k in (0, 1) for g in "ifgo"
    }
    with torch.no_grad():  # a diagonal forget block: its radius is its largest |entry|
        w = model.encoder.weight_hh_l0
        w.zero_()
        w[5:10] = torch.diag(torch.tensor([0.1, -0.7, 0.3, 0.2, 0.0]))
        w[:, :] *= 1.0
    r2 = probe(model, src, tgt)
    assert r2.spectral_radius["encoder.layer0.f"] == pytest.approx(0.7)
    assert r2.spectral_radius["encoder.layer0.i"] == 0.0


def test_saturated_gates_are_counted():
    model = make_model("gru", CONT_IN, CONT_OUT, layers=1, hidden=4)
    with torch.no_grad():
        model.encoder.bias_ih_l0[:4] = 50.0  # reset gate r pinned at 1
        model.encoder.bias_ih_l0[4:8] = 0.0
        model.encoder.weight_ih_l0.zero_()
        model.encoder.weight_hh_l0.zero_()
        model.encoder.bias_hh_l0.zero_()
    src, tgt = make_batch(model, 3, 5, 2)
    r = probe(model, src, tgt)
    np.testing.assert_allclose(r.gate_saturation["r"][0, :5], 1.0)
    np.testing.assert_allclose(r.gate_means["z"][0, :5], 0.5)
    np.testing.assert_allclose(r.gate_saturation["z"][0, :5], 0.0)
    vanilla = probe(make_model("rnn-relu", CONT_IN, CONT_OUT), src, tgt)
    assert vanilla.gate_means == {} and vanilla.gate_saturation == {}
    assert set(vanilla.spectral_radius) == {
        "encoder.layer0",
        "encoder.layer1",
        "decoder.layer0",
        "decoder.layer1",
    }


def test_result_fields_are_the_probe_events():
    model = make_model("gru", TOK_IN, CONT_OUT)
    src, tgt = make_batch(model, 3, 4, 3)
    r = probe(model, src, tgt)
    from workbench.events import PROBE_SAMPLE_FIELDS  # the Trainer adds these

    event_fields = {f.name for f in dataclasses.fields(ProbeEvent)} - {"step", "epoch"}
    event_fields -= set(PROBE_SAMPLE_FIELDS)
    assert {f.name for f in dataclasses.fields(ProbeResult)} == event_fields
    event = ProbeEvent(step=1, epoch=1, **{f: getattr(r, f) for f in event_fields})
    assert event.encoder_grad_norms.dtype == np.float64 and event.seconds > 0


# -- no side effects ---------------------------------------------------------------------------


def test_probe_changes_nothing_the_training_holds():
    model = make_model("lstm", CONT_IN, CONT_OUT)  # dropout 0.3, training mode
    src, tgt = make_batch(model, 4, 5, 4)
    model(src, tgt).pow(2).mean().backward()  # the training holds gradients
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    grads = {k: v.grad.clone() for k, v in model.named_parameters()}
    rng = torch.get_rng_state()
    probe(model, src, tgt, torch.tensor([5, 2, 3, 5]), torch.tensor([4, 1, 4, 2]))
    assert model.training
    assert torch.equal(torch.get_rng_state(), rng)
    for k, v in model.named_parameters():
        assert (
            torch.equal(v, params[k]) and torch.equal(v.grad, grads[k]) and v.dtype == torch.float32
        )


def test_losses_do_not_depend_on_probing():
    """Train a few steps (dropout, scheduled sampling), once probing between every step and
    once not: the losses are bit-identical."""

    def train(probe_every_step):
        model = make_model("gru", CONT_IN, CONT_OUT)
        opt = torch.optim.Adam(model.parameters(), lr=0.01)
        gen = torch.Generator().manual_seed(0)
        torch.manual_seed(1)
        src, tgt = make_batch(model, 4, 5, 4)
        losses = []
        for _ in range(3):
            loss = model.loss(model(src, tgt, teacher_forcing=0.5, generator=gen), tgt)
            opt.zero_grad()
            loss.backward()
            if probe_every_step:
                probe(model, src, tgt)
            opt.step()
            losses.append(loss.item())
        return losses

    assert train(True) == train(False)
