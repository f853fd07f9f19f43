"""Beam search: greedy at width 1, exact against brute-force enumeration, the length
penalty's ranking, forced prefixes, the search tree, and refusals."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from models.attention import ATTENTION_KINDS
from models.beam import beam_search, generate_beam
from models.seq2seq import Seq2Seq, Seq2SeqConfig, SideConfig
from tests.models import seq2seq_before_attention as before

TOK_IN = SideConfig("tokens", vocab_size=7, embedding=4)
TOK_OUT = SideConfig("tokens", vocab_size=9, embedding=5)
TINY_OUT = SideConfig("tokens", vocab_size=5, embedding=3)  # pad, start, end and 2 symbols
CONT = SideConfig("continuous", features=2)
SRC_LENS = torch.tensor([6, 2, 4, 1, 5])


def build(target=TOK_OUT, attention="none", cell="gru", seed=0, hidden=6, layers=2):
    torch.manual_seed(seed)
    cfg = Seq2SeqConfig(cell, hidden, TOK_IN, target, layers=layers, attention=attention)
    return Seq2Seq(cfg).eval()


def sources(n=5, steps=6, seed=0):
    return torch.randint(3, 7, (n, steps), generator=torch.Generator().manual_seed(seed))


def log_prob_of(model, src, sequences, src_lengths=None):
    """log P(sequence | src) of each sequence, from one teacher-forced forward pass
    (not the stepping code the search uses)."""
    steps = max(len(s) for s in sequences)
    pad = model.config.target.pad_id
    tgt = torch.tensor([list(s) + [pad] * (steps - len(s)) for s in sequences])
    lens = torch.tensor([len(s) for s in sequences])
    n = len(sequences)
    src_lens = None if src_lengths is None else src_lengths.expand(n)
    with torch.no_grad():
        logits = model(src.expand(n, -1), tgt, src_lens, lens)
    logp = torch.log_softmax(logits.double(), -1).gather(2, tgt.unsqueeze(-1)).squeeze(-1)
    valid = torch.arange(steps)[None, :] < lens[:, None]
    return (logp * valid).sum(1).tolist()


def brute_force(model, src, steps, alpha, src_lengths=None):
    """Every possible output and its score log P / L^alpha, best first: the sequences
    that end at their first end id, and those cut off at `steps` tokens."""
    vocab, end = model.config.target.vocab_size, model.config.target.end_id
    sequences = [
        s
        for n in range(1, steps + 1)
        for s in itertools.product(range(vocab), repeat=n)
        if end not in s[:-1] and (n == steps or s[-1] == end)
    ]
    scored = [
        (lp / len(s) ** alpha, s, lp)
        for s, lp in zip(sequences, log_prob_of(model, src, sequences, src_lengths), strict=True)
    ]
    return sorted(scored, key=lambda x: x[0], reverse=True)


# -- width 1 is greedy ----------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["rnn-tanh", "lstm", "gru"])
def test_generate_beam_one_is_the_greedy_decoding_before_beam_search(cell):
    torch.manual_seed(3)
    cfg = Seq2SeqConfig(cell, 6, TOK_IN, TOK_OUT, layers=2)
    new = Seq2Seq(cfg).eval()
    old = before.Seq2Seq(cfg)
    old.load_state_dict(new.state_dict())
    old.eval()
    src = sources()
    ours, theirs = new.generate(src, 7, SRC_LENS, beam=1), old.generate(src, 7, SRC_LENS)
    assert torch.equal(ours.outputs, theirs.outputs) and torch.equal(ours.lengths, theirs.lengths)


@pytest.mark.parametrize("attention", ATTENTION_KINDS)
def test_a_search_of_width_one_is_greedy(attention):
    m = build(attention=attention, seed=1)
    src = sources(seed=1)
    greedy = m.generate(src, 7, SRC_LENS)
    batched = generate_beam(m, src, 7, SRC_LENS, 1)
    assert torch.equal(batched.outputs, greedy.outputs)
    assert torch.equal(batched.lengths, greedy.lengths)
    for b in range(src.shape[0]):
        found = beam_search(m, src[b : b + 1], 7, 1, src_lengths=SRC_LENS[b : b + 1])
        n = int(greedy.lengths[b])
        assert len(found.hypotheses) == 1
        assert found.best.tokens == tuple(greedy.outputs[b, :n].tolist())
    if attention != "none":
        torch.testing.assert_close(batched.attention, greedy.attention, atol=1e-6, rtol=0)


# -- exact against enumeration ------------------------------------------------------------------


@pytest.mark.parametrize("attention", ["none", "bahdanau", "luong-general"])
@pytest.mark.parametrize("alpha", [0.0, 0.75, 2.0])
def test_a_beam_wide_enough_finds_what_enumeration_finds(attention, alpha):
    """|V| = 5, 3 steps: a beam of 5^3 never prunes, so its hypotheses are every possible
    output, ranked as brute force ranks them."""
    m = build(TINY_OUT, attention, "lstm", seed=2, hidden=4).double()
    src, lens = sources(1, seed=2), torch.tensor([5])
    expected = brute_force(m, src, 3, alpha, lens)
    found = beam_search(m, src, 3, 5**3, alpha, src_lengths=lens)
    assert [h.tokens for h in found.hypotheses] == [s for _, s, _ in expected]
    np.testing.assert_allclose([h.log_prob for h in found.hypotheses], [lp for *_, lp in expected])
    np.testing.assert_allclose([h.score for h in found.hypotheses], [sc for sc, *_ in expected])
    # a narrow beam keeps a subset, scored the same
    narrow = beam_search(m, src, 3, 2, alpha, src_lengths=lens)
    truth = {s: sc for sc, s, _ in expected}
    assert 1 <= len(narrow.hypotheses) <= 2
    for h in narrow.hypotheses:
        assert h.score == pytest.approx(truth[h.tokens], rel=1e-9)


def test_beam_search_can_beat_greedy():
    """On this seed the most probable output is not the greedy one, and the beam finds it."""
    m = build(TINY_OUT, "bahdanau", "gru", seed=5, hidden=4).double()
    src = sources(1, seed=5)
    best = brute_force(m, src, 3, 0.0)[0][1]
    greedy = m.generate(src, 3)
    greedy_tokens = tuple(greedy.outputs[0, : int(greedy.lengths[0])].tolist())
    assert greedy_tokens != best
    assert beam_search(m, src, 3, 4, 0.0).best.tokens == best
    assert m.generate(src, 3, beam=4, length_penalty=0.0).outputs[0, : len(best)].tolist() == list(
        best
    )


# -- the length penalty ---------------------------------------------------------------------------


def constant_model(probabilities):
    """A decoder whose next-token distribution is the same at every step, whatever came
    before: every weight 0, the output bias log p."""
    target = SideConfig("tokens", vocab_size=len(probabilities), embedding=2)
    m = Seq2Seq(Seq2SeqConfig("rnn-relu", 2, TOK_IN, target)).double()
    with torch.no_grad():
        for p in m.parameters():
            p.zero_()
        m.head.bias.copy_(torch.tensor(probabilities, dtype=torch.float64).log())
    return m.eval()


def test_the_length_penalty_ranks_by_log_p_over_length_to_the_alpha():
    """p(end) = 0.3, p(a) = 0.6: a beam of 2 over 3 steps finishes "end" (log 0.3, L 1)
    and "a a a" (log 0.216, L 3). They swap at 3^alpha = log 0.216 / log 0.3, alpha 0.219."""
    m = constant_model([0.001, 0.001, 0.3, 0.6, 0.098])
    src = sources(1)
    crossover = math.log(math.log(0.216) / math.log(0.3)) / math.log(3)
    assert crossover == pytest.approx(0.219, abs=1e-3)
    for alpha, winner in [(0.0, (2,)), (crossover - 0.01, (2,)), (crossover + 0.01, (3, 3, 3))]:
        found = beam_search(m, src, 3, 2, alpha)
        assert {h.tokens for h in found.hypotheses} == {(2,), (3, 3, 3)}
        assert found.best.tokens == winner
        for h in found.hypotheses:
            assert h.score == pytest.approx(h.log_prob / len(h.tokens) ** alpha, rel=1e-12)
        assert found.hypotheses[0].score >= found.hypotheses[1].score
    short = beam_search(m, src, 3, 2, 0.0).hypotheses
    assert short[0].log_prob == pytest.approx(math.log(0.3), rel=1e-9) and short[0].ended
    assert short[1].log_prob == pytest.approx(3 * math.log(0.6), rel=1e-9) and not short[1].ended


# -- prefixes and the tree ---------------------------------------------------------------------


def test_a_prefix_forces_the_first_tokens():
    m = build(attention="luong-dot", seed=4).double()
    src = sources(1, seed=4)
    found = beam_search(m, src, 5, 3, prefix=(5, 6))
    assert all(h.tokens[:2] == (5, 6) for h in found.hypotheses)
    assert [len(step) for step in found.tree[:2]] == [1, 1] and found.tree[1][0].parent == 0
    assert found.prefix == (5, 6)
    truth = log_prob_of(m, src, [h.tokens for h in found.hypotheses])
    np.testing.assert_allclose([h.log_prob for h in found.hypotheses], truth, rtol=1e-9)
    ended = beam_search(m, src, 5, 3, prefix=(5, 2))
    assert [h.tokens for h in ended.hypotheses] == [(5, 2)] and ended.best.ended


@pytest.mark.parametrize(
    "prefix, message",
    [
        ((5, 9), r"prefix ids must be in \[0, 9\)"),
        ((2, 5), "after the end id 2"),
        ((3,) * 6, "steps=5"),
    ],
)
def test_a_bad_prefix_is_refused(prefix, message):
    with pytest.raises(ValueError, match=message):
        beam_search(build(), sources(1), 5, 3, prefix=prefix)


def test_the_tree_shows_what_was_kept_and_pruned():
    m = build(attention="bahdanau", seed=6)
    src = sources(1, seed=6)
    found = beam_search(m, src, 5, 3)
    tree = found.tree
    assert len(tree[0]) == 3 and all(c.parent == -1 for c in tree[0])  # 3 best first tokens
    for t, step in enumerate(tree):
        kept = [c for c in step if c.kept]
        assert 1 <= len(kept) <= 3
        if t:
            live = [i for i, c in enumerate(tree[t - 1]) if c.kept and c.token != 2]
            assert {c.parent for c in step} == set(live)  # every live hypothesis expanded
            for c in step:  # a child is less probable than its parent
                assert c.log_prob <= tree[t - 1][c.parent].log_prob
        # among the candidates listed, the kept ones are the most probable
        pruned = [c.log_prob for c in step if not c.kept]
        if pruned:
            assert min(c.log_prob for c in kept) >= max(pruned)
    assert any(not c.kept for step in tree for c in step)
    for h in found.hypotheses:  # each hypothesis's path through the tree spells it
        assert len(h.nodes) == len(h.tokens)
        for t, (node, token) in enumerate(zip(h.nodes, h.tokens, strict=True)):
            c = tree[t][node]
            assert c.token == token and c.kept and c.parent == (h.nodes[t - 1] if t else -1)
        assert tree[len(h.tokens) - 1][h.nodes[-1]].log_prob == h.log_prob
        assert h.attention.shape == (len(h.tokens), 6)


def test_generate_with_a_beam_is_each_samples_best_hypothesis():
    m = build(attention="luong-general", seed=7)
    src = sources(seed=7)
    out = m.generate(src, 6, SRC_LENS, beam=3, length_penalty=0.5)
    for b in range(src.shape[0]):
        best = beam_search(m, src[b : b + 1], 6, 3, 0.5, src_lengths=SRC_LENS[b : b + 1]).best
        n = len(best.tokens)
        assert int(out.lengths[b]) == n and out.outputs[b, :n].tolist() == list(best.tokens)
        assert bool((out.outputs[b, n:] == 0).all()) and bool((out.attention[b, n:] == 0).all())
        np.testing.assert_allclose(out.attention[b, :n].numpy(), best.attention, atol=1e-6)
        assert bool((out.attention[b, :, int(SRC_LENS[b]) :] == 0).all())


# -- refusals --------------------------------------------------------------------------------------


def test_beam_search_is_refused_for_continuous_targets_in_one_line():
    torch.manual_seed(0)
    m = Seq2Seq(Seq2SeqConfig("lstm", 4, TOK_IN, CONT)).eval()
    with pytest.raises(ValueError, match="beam search needs token targets") as info:
        m.generate(sources(), 4, beam=2)
    assert "\n" not in str(info.value)
    assert m.generate(sources(), 4, beam=1).outputs.shape == (5, 4, 2)
    with pytest.raises(ValueError, match="token targets"):
        beam_search(m, sources(1), 4, 2)


@pytest.mark.parametrize("beam", [0, -1, 2.0, True])
def test_a_bad_beam_is_refused(beam):
    with pytest.raises(ValueError, match="beam must be an integer >= 1"):
        build().generate(sources(), 4, beam=beam)


def test_beam_search_takes_one_sample():
    with pytest.raises(ValueError, match="one sample"):
        beam_search(build(), sources(2), 4, 2)
