"""Seq2Seq: configuration, teacher forcing, generation, losses, input checks."""

from __future__ import annotations

import pytest
import torch

from models import cells
from models.seq2seq import Seq2Seq, Seq2SeqConfig, SideConfig, parameter_count

CELL_NAMES = ["rnn-tanh", "rnn-relu", "rnn-sigmoid", "lstm", "gru"]
CONT_IN, CONT_OUT = SideConfig("continuous", features=3), SideConfig("continuous", features=2)
TOK_IN = SideConfig("tokens", vocab_size=7, embedding=4)
TOK_OUT = SideConfig("tokens", vocab_size=9, embedding=5)
B, T_IN, T_OUT = 4, 6, 5
SRC_LENS = torch.tensor([6, 2, 4, 1])
TGT_LENS = torch.tensor([5, 3, 1, 4])


def batch(config: Seq2SeqConfig, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    s, t = config.source, config.target
    src = (
        torch.randn(B, T_IN, s.features, generator=g)
        if s.kind == "continuous"
        else torch.randint(3, s.vocab_size, (B, T_IN), generator=g)
    )
    tgt = (
        torch.randn(B, T_OUT, t.features, generator=g)
        if t.kind == "continuous"
        else torch.randint(3, t.vocab_size, (B, T_OUT), generator=g)
    )
    return src, tgt


def model(cell="lstm", source=CONT_IN, target=CONT_OUT, layers=2, dropout=0.0, seed=0):
    torch.manual_seed(seed)
    return Seq2Seq(Seq2SeqConfig(cell, 6, source, target, layers=layers, dropout=dropout)).eval()


# -- configuration ---------------------------------------------------------------------


def test_config_round_trips_through_a_plain_dict():
    config = Seq2SeqConfig("gru", 16, TOK_IN, CONT_OUT, layers=3, dropout=0.2)
    d = config.to_dict()
    assert d["source"] == {
        "kind": "tokens",
        "vocab_size": 7,
        "embedding": 4,
        "pad_id": 0,
        "start_id": 1,
        "end_id": 2,
    }
    assert Seq2SeqConfig.from_dict(d) == config
    with pytest.raises(ValueError, match="unknown keys"):
        Seq2SeqConfig.from_dict({**d, "colour": "blue"})


@pytest.mark.parametrize(
    "make",
    [
        lambda: Seq2SeqConfig("transformer", 8, CONT_IN, CONT_OUT),
        lambda: Seq2SeqConfig("lstm", 0, CONT_IN, CONT_OUT),
        lambda: Seq2SeqConfig("lstm", 8, CONT_IN, CONT_OUT, dropout=1.0),
        lambda: SideConfig("continuous"),
        lambda: SideConfig("tokens", vocab_size=2),  # end id 2 outside the vocabulary
        lambda: SideConfig("images", features=3),
    ],
)
def test_bad_config_is_a_value_error(make):
    with pytest.raises(ValueError):
        make()


@pytest.mark.parametrize("cell", CELL_NAMES)
@pytest.mark.parametrize(
    "sides", [(CONT_IN, CONT_OUT), (TOK_IN, TOK_OUT), (CONT_IN, TOK_OUT), (TOK_IN, CONT_OUT)]
)
def test_parameter_count_without_building(cell, sides):
    config = Seq2SeqConfig(cell, 7, sides[0], sides[1], layers=2)
    built = sum(p.numel() for p in Seq2Seq(config).parameters())
    assert parameter_count(config) == built == cells.parameter_count(config)


# -- teacher forcing ---------------------------------------------------------------------


@pytest.mark.parametrize("cell", CELL_NAMES)
@pytest.mark.parametrize("sides", [(CONT_IN, CONT_OUT), (TOK_IN, TOK_OUT)], ids=["cont", "tok"])
def test_teacher_forcing_one_equals_the_unrolled_path(cell, sides):
    m = model(cell, *sides)
    src, tgt = batch(m.config)
    fast = m(src, tgt, SRC_LENS, TGT_LENS, teacher_forcing=1.0)
    trace = m(src, tgt, SRC_LENS, TGT_LENS, teacher_forcing=1.0, instrumented=True)
    torch.testing.assert_close(fast, trace.outputs, atol=1e-5, rtol=0)
    # with some free-running steps, the chunked fast path equals the step-by-step one
    mixed = [
        m(src, tgt, SRC_LENS, TGT_LENS, 0.5, torch.Generator().manual_seed(3), instrumented=i)
        for i in (False, True)
    ]
    torch.testing.assert_close(mixed[0], mixed[1].outputs, atol=1e-5, rtol=0)


def test_padded_steps_change_neither_state_nor_loss():
    """A sample in a padded batch gets the same outputs and loss as alone, unpadded."""
    m = model("lstm")
    src, tgt = batch(m.config)
    out = m(src, tgt, SRC_LENS, TGT_LENS)
    losses = m.loss(out, tgt, TGT_LENS, reduction="none")
    for b in range(B):
        s, t = int(SRC_LENS[b]), int(TGT_LENS[b])
        alone = m(src[b : b + 1, :s], tgt[b : b + 1, :t])
        torch.testing.assert_close(out[b : b + 1, :t], alone, atol=1e-5, rtol=0)
        torch.testing.assert_close(losses[b], m.loss(alone, tgt[b : b + 1, :t]), atol=1e-6, rtol=0)
    assert bool((out[1, 3:] == 0).all())  # padded target steps are zero
    junk = tgt.clone()
    junk[1, 3:] = 1e6  # padded target values do not matter
    torch.testing.assert_close(m.loss(out, junk, TGT_LENS), m.loss(out, tgt, TGT_LENS))


def test_teacher_forcing_draws_come_from_the_given_generator():
    m = model("gru")
    src, tgt = batch(m.config)
    before = torch.get_rng_state()
    g = torch.Generator().manual_seed(11)
    a = m(src, tgt, teacher_forcing=0.5, generator=g)
    # one draw per decoder step after the first, nothing else
    expected = torch.Generator().manual_seed(11)
    torch.rand(T_OUT - 1, generator=expected)
    assert torch.equal(g.get_state(), expected.get_state())
    assert torch.equal(
        torch.get_rng_state(), before
    )  # eval mode, generator given: global RNG untouched
    b = m(src, tgt, teacher_forcing=0.5, generator=torch.Generator().manual_seed(11))
    torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_teacher_forcing_zero_is_generation():
    """Free running feeds back the model's own predictions, exactly as generate does."""
    m = model("lstm")
    src, tgt = batch(m.config)
    free = m(src, tgt, SRC_LENS, teacher_forcing=0.0)
    generated = m.generate(src, T_OUT, SRC_LENS)
    torch.testing.assert_close(free, generated.outputs, atol=1e-5, rtol=0)
    assert generated.lengths.tolist() == [T_OUT] * B
    # and it does not depend on the targets at all
    torch.testing.assert_close(m(src, tgt * 0 + 5, SRC_LENS, teacher_forcing=0.0), free)


def counter_model(target: SideConfig) -> Seq2Seq:
    """A decoder whose every output is (its input) + 1, so its behaviour is known.

    rnn-relu with W_hh = 0, b = 0: h_t = relu(W_ih x_t), and the head reads h back.
    Continuous: x -> x + 1 (start vector 0). Tokens: one-hot embeddings, the head maps
    the start id 1 to 3, id k to k + 1, and the last id to the end id 2.
    """
    vocab = target.vocab_size or 1
    hidden = vocab if target.kind == "tokens" else 1
    m = Seq2Seq(Seq2SeqConfig("rnn-relu", hidden, CONT_IN, target))
    with torch.no_grad():
        for p in m.parameters():
            p.zero_()
        if target.kind == "continuous":
            m.decoder.weight_ih_l0.fill_(1.0)
            m.head.weight.fill_(1.0)
            m.head.bias.fill_(1.0)
        else:
            m.target_embedding.weight.copy_(torch.eye(vocab))
            m.decoder.weight_ih_l0.copy_(torch.eye(vocab))
            nxt = {1: 3, vocab - 1: 2, **{k: k + 1 for k in range(3, vocab - 1)}}
            for k, v in nxt.items():
                m.head.weight[v, k] = 10.0
    return m.eval()


def test_generate_feeds_back_its_own_outputs():
    m = counter_model(SideConfig("continuous", features=1))
    src = torch.randn(2, 3, 3)
    out = m.generate(src, 5)
    assert out.outputs[..., 0].tolist() == [[1, 2, 3, 4, 5]] * 2
    # teacher-forced, every step reads the true previous target instead
    tgt = torch.tensor([[10.0, 20.0, 30.0]]).expand(2, 3).unsqueeze(-1)
    assert m(src, tgt)[..., 0].tolist() == [[1, 11, 21]] * 2


def test_generate_tokens_stops_at_the_end_id():
    m = counter_model(SideConfig("tokens", vocab_size=7, embedding=7))
    out = m.generate(torch.randn(2, 3, 3), 8)
    # start 1 -> 3 -> 4 -> 5 -> 6 -> end (2); the length counts the end id; then padding
    assert out.outputs.tolist() == [[3, 4, 5, 6, 2, 0, 0, 0]] * 2
    assert out.lengths.tolist() == [5, 5]
    short = m.generate(torch.randn(2, 3, 3), 3)
    assert short.outputs.tolist() == [[3, 4, 5]] * 2 and short.lengths.tolist() == [3, 3]


# -- losses ----------------------------------------------------------------------------


def test_losses_are_masked_means_per_sample():
    m = model("gru", TOK_IN, TOK_OUT)
    src, tgt = batch(m.config)
    logits = m(src, tgt, SRC_LENS, TGT_LENS)
    per = m.loss(logits, tgt, TGT_LENS, reduction="none")
    for b in range(B):
        n = int(TGT_LENS[b])
        ce = torch.nn.functional.cross_entropy(logits[b, :n], tgt[b, :n])
        torch.testing.assert_close(per[b], ce)
    torch.testing.assert_close(m.loss(logits, tgt, TGT_LENS), per.mean())
    c = model("gru")
    src, tgt = batch(c.config)
    pred = c(src, tgt)
    torch.testing.assert_close(c.loss(pred, tgt), ((pred - tgt) ** 2).mean())


# -- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sides, src, tgt, message",
    [
        (
            (CONT_IN, CONT_OUT),
            torch.randn(B, T_IN),
            torch.randn(B, T_OUT, 2),
            r"src of shape \(batch, steps, 3\)",
        ),
        (
            (CONT_IN, CONT_OUT),
            torch.randn(B, T_IN, 4),
            torch.randn(B, T_OUT, 2),
            r"src of shape \(batch, steps, 3\).*got shape \(4, 6, 4\)",
        ),
        (
            (CONT_IN, CONT_OUT),
            torch.randn(B, T_IN, 3),
            torch.randn(B, T_OUT, 3),
            r"tgt of shape \(batch, steps, 2\)",
        ),
        (
            (CONT_IN, CONT_OUT),
            torch.randn(B, T_IN, 3),
            torch.randn(B + 1, T_OUT, 2),
            r"batch size 4",
        ),
        (
            (TOK_IN, TOK_OUT),
            torch.randint(0, 7, (B, T_IN, 1)),
            torch.randint(0, 9, (B, T_OUT)),
            r"src of shape \(batch, steps\) integer token ids in \[0, 7\)",
        ),
        (
            (TOK_IN, TOK_OUT),
            torch.randint(0, 7, (B, T_IN)),
            torch.full((B, T_OUT), 9),
            r"tgt of shape \(batch, steps\) integer token ids in \[0, 9\).*ids from 9 to 9",
        ),
        (
            (TOK_IN, TOK_OUT),
            torch.full((B, T_IN), -1),
            torch.randint(0, 9, (B, T_OUT)),
            r"ids from -1",
        ),
        (
            (TOK_IN, TOK_OUT),
            torch.randn(B, T_IN),
            torch.randint(0, 9, (B, T_OUT)),
            r"integer token ids",
        ),
    ],
)
def test_bad_input_says_what_was_expected(sides, src, tgt, message):
    m = model("lstm", *sides)
    with pytest.raises(ValueError, match=message):
        m(src, tgt)


def test_bad_lengths_and_ratio():
    m = model("lstm")
    src, tgt = batch(m.config)
    with pytest.raises(ValueError, match=r"lengths in 1\.\.6"):
        m(src, tgt, src_lengths=[7, 1, 1, 1])
    with pytest.raises(ValueError, match=r"lengths of shape \(4,\)"):
        m(src, tgt, tgt_lengths=[1, 1])
    with pytest.raises(ValueError, match="teacher_forcing must be in"):
        m(src, tgt, teacher_forcing=1.5)
    with pytest.raises(ValueError, match=r"outputs of shape \(4, 5, 2\)"):
        m.loss(torch.zeros(B, T_OUT, 3), tgt)
