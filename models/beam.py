"""Beam search for token targets: the best few decodings, and what was considered.

Greedy decoding commits to the most likely token at every step; a beam search keeps
the `beam` most likely prefixes (hypotheses) instead. At each step every live
hypothesis is extended by every token of the vocabulary, and the `width` best
extensions by cumulative log-probability are kept, where width = beam minus the
hypotheses already finished (a shrinking beam, so beam=1 is greedy decoding). A
kept extension that is the end token finishes its hypothesis; at the last allowed
step every kept extension finishes (truncated, as greedy decoding's output is).
The search stops when the beam has shrunk to nothing or the steps run out.

Finished hypotheses are ranked by score = log P / L^alpha, L = the number of tokens
(the end token included, as Generated.lengths counts it), alpha = length_penalty:
0 ranks by probability alone (favouring short outputs), 1 by the mean log-probability
per token. Within one step every candidate has the same length, so the penalty only
matters in this final ranking.

- `beam_search(model, src, ...)`: one sample, everything a view needs: the
  hypotheses best first and the search tree (the candidates of each step, which were
  kept and which pruned), optionally from a forced prefix.
- `generate_beam(model, src, ...)`: a batch, each sample's best hypothesis, as
  Seq2Seq.generate(..., beam=k) returns it.

Both run without gradients and in the model's current mode (call eval() first).
The log-probabilities are accumulated in float64.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

if TYPE_CHECKING:  # models.seq2seq imports this module
    from models.seq2seq import Generated, Seq2Seq

__all__ = ["BeamResult", "Candidate", "Hypothesis", "beam_search", "generate_beam"]


@dataclass(frozen=True)
class Hypothesis:
    """One finished decoding.

    tokens: the decoded ids, the prefix included, up to and including the end id
      (a hypothesis cut off by the step limit has none).
    log_prob: log P(tokens | src), the sum of its steps' log-probabilities.
    score: log_prob / len(tokens) ** length_penalty, what the hypotheses are ranked by.
    ended: it ends with the end id (False: cut off by the step limit).
    nodes: for each step t, the index of this hypothesis's candidate in tree[t], so a
      view can draw its path (empty when the tree was not recorded).
    attention: (len(tokens), T_in) the attention weights of each of its steps, or None
      without attention.
    """

    tokens: tuple[int, ...]
    log_prob: float
    score: float
    ended: bool
    nodes: tuple[int, ...] = ()
    attention: np.ndarray | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Candidate:
    """One extension considered at one step of the search tree.

    token: the id appended. parent: the index in the previous step's tree list of
    the hypothesis it extends (-1 at step 0, whose parent is the start symbol).
    log_prob: the cumulative log P of the prefix ending with this token. kept: it was
    among the `width` best at its step (it lived on, or finished if it is the end
    token or the last step); otherwise it was pruned.
    """

    token: int
    parent: int
    log_prob: float
    kept: bool


@dataclass(frozen=True)
class BeamResult:
    """What beam_search returns.

    hypotheses: the finished hypotheses, best score first (at most `beam`).
    tree: tree[t] lists the candidates considered at step t: for each hypothesis alive
      before step t, its best `width` extensions (only those can be kept; the rest of
      the vocabulary is not listed). A forced prefix step lists its one token.
    """

    hypotheses: tuple[Hypothesis, ...]
    tree: tuple[tuple[Candidate, ...], ...]
    beam: int
    length_penalty: float
    prefix: tuple[int, ...] = ()

    @property
    def best(self) -> Hypothesis:
        return self.hypotheses[0]


def score(log_prob: float, length: int, length_penalty: float) -> float:
    """The ranking of a finished hypothesis: log P / L^alpha."""
    return log_prob / length**length_penalty


@torch.no_grad()
def beam_search(
    model: Seq2Seq,
    src: Tensor,
    steps: int,
    beam: int,
    length_penalty: float = 0.75,
    src_lengths: object = None,
    prefix: Sequence[int] = (),
) -> BeamResult:
    """Beam search of width `beam` for one sample src (1, T_in) ids or (1, T_in, F).

    steps: the most tokens a hypothesis may have. prefix: token ids forced as the
    first outputs (their log-probabilities count); a prefix that ends with the end
    id is the only hypothesis. ValueError for continuous targets, a batch of more
    than one sample, or a bad beam, steps or prefix.
    """
    if src.dim() < 1 or src.shape[0] != 1:
        raise ValueError(
            f"beam_search: expected one sample (src of batch size 1), got shape {tuple(src.shape)}"
        )
    forced = _check(model, steps, beam, length_penalty, prefix)
    found = _search(model, src, steps, beam, length_penalty, src_lengths, forced, record=True)[0]
    return BeamResult(
        tuple(found.hypotheses), tuple(found.tree), beam, float(length_penalty), forced
    )


@torch.no_grad()
def generate_beam(
    model: Seq2Seq,
    src: Tensor,
    steps: int,
    src_lengths: object,
    beam: int,
    length_penalty: float = 0.75,
) -> Generated:
    """Each sample's best hypothesis of a beam search, as Seq2Seq.generate returns
    greedy outputs: ids (B, steps) with pad_id after the end, lengths (B,), and the
    attention weights of the chosen path (B, steps, T_in) (0 after its length)."""
    from models.seq2seq import Generated

    _check(model, steps, beam, length_penalty, ())
    found = _search(model, src, steps, beam, length_penalty, src_lengths, (), record=False)
    tgt = model.config.target
    device = model.head.weight.device
    batch = src.shape[0]
    ids = torch.full((batch, steps), tgt.pad_id, dtype=torch.int64, device=device)
    lengths = torch.zeros(batch, dtype=torch.int64, device=device)
    attention = None
    if model.attention is not None:
        attention = torch.zeros(
            batch, steps, src.shape[1], dtype=model.head.weight.dtype, device=device
        )
    for b, sample in enumerate(found):
        best = sample.hypotheses[0]
        n = len(best.tokens)
        ids[b, :n] = torch.tensor(best.tokens, dtype=torch.int64)
        lengths[b] = n
        if attention is not None and best.attention is not None:
            attention[b, :n] = torch.as_tensor(best.attention, dtype=attention.dtype)
    return Generated(ids, lengths, attention)


# -- the search -----------------------------------------------------------------------------


@dataclass
class _Found:
    hypotheses: list[Hypothesis]
    tree: list[tuple[Candidate, ...]]


def _check(
    model: Seq2Seq, steps: int, beam: int, length_penalty: float, prefix: Sequence[int]
) -> tuple[int, ...]:
    tgt = model.config.target
    if tgt.kind != "tokens":
        raise ValueError(
            "beam search needs token targets; this model's targets are continuous (use beam 1)"
        )
    if isinstance(beam, bool) or not isinstance(beam, int) or beam < 1:
        raise ValueError(f"beam search: beam must be an integer >= 1, got {beam!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"beam search: steps must be an integer >= 1, got {steps!r}")
    if not math.isfinite(float(length_penalty)):
        raise ValueError(f"beam search: length_penalty must be finite, got {length_penalty!r}")
    forced = tuple(int(t) for t in prefix)
    vocab = tgt.vocab_size
    assert vocab is not None
    if len(forced) > steps:
        raise ValueError(f"beam search: a prefix of {len(forced)} tokens exceeds steps={steps}")
    bad = [t for t in forced if not 0 <= t < vocab]
    if bad:
        raise ValueError(f"beam search: prefix ids must be in [0, {vocab}), got {bad[0]}")
    if tgt.end_id in forced[:-1]:
        raise ValueError(
            f"beam search: the prefix goes on after the end id {tgt.end_id}: {list(forced)}"
        )
    return forced


def _search(
    model: Seq2Seq,
    src: Tensor,
    steps: int,
    beam: int,
    length_penalty: float,
    src_lengths: object,
    prefix: tuple[int, ...],
    record: bool,
) -> list[_Found]:
    """The shrinking beam over a batch: each sample's hypotheses in `beam` slots.

    Slot (b, j) is row b * beam + j of the decoder's batch. cum[b, j] is the slot's
    cumulative log-probability, -inf for an empty slot, so an empty slot's
    extensions are never chosen. width[b] = beam - (hypotheses of b finished).
    """
    tgt = model.config.target
    vocab, end = int(tgt.vocab_size), tgt.end_id  # type: ignore[arg-type]
    batch, k = src.shape[0], beam
    device = model.head.weight.device
    state = model.start_decoding(src, src_lengths)
    state = state.select(torch.arange(batch, device=device).repeat_interleave(k))
    x = model.decoder_input(None, batch * k)
    cum = torch.full((batch, k), -math.inf, dtype=torch.float64, device=device)
    cum[:, 0] = 0.0
    width = torch.full((batch,), k, dtype=torch.int64, device=device)
    tokens = torch.zeros(batch, k, 0, dtype=torch.int64, device=device)
    weights: Tensor | None = None  # (B, k, t, T_in) the slots' attention histories
    nodes: list[list[list[int]]] = [[[] for _ in range(k)] for _ in range(batch)]
    found = [_Found([], []) for _ in range(batch)]
    rank = torch.arange(k, device=device)
    for t in range(steps):
        stepped = model.decode_step(x, state)
        logp = torch.log_softmax(stepped.output.to(torch.float64), dim=-1).view(batch, k, vocab)
        cand = cum.unsqueeze(-1) + logp  # (B, k, V)
        if t < len(prefix):
            only = torch.full_like(cand, -math.inf)
            only[:, 0, prefix[t]] = cand[:, 0, prefix[t]]
            cand = only
        flat = cand.view(batch, k * vocab)
        top, index = flat.topk(k, dim=1)  # best first (k <= k * V candidates)
        parent, token = index // vocab, index % vocab
        chosen = (rank[None, :] < width[:, None]) & torch.isfinite(top)
        ends = chosen & (token == end)
        finishing = chosen if t == steps - 1 else ends
        alive = chosen & ~finishing
        step_weights = None
        if stepped.weights is not None:
            w = stepped.weights.to(torch.float64).view(batch, k, 1, -1)
            hist = w if weights is None else torch.cat([weights, w], dim=2)
            step_weights = hist.gather(
                1, parent[:, :, None, None].expand(-1, -1, hist.shape[2], hist.shape[3])
            )
        new_tokens = torch.cat(
            [tokens.gather(1, parent[:, :, None].expand(-1, -1, t)), token.unsqueeze(-1)], dim=2
        )
        if record:
            nodes = _record_tree(found, nodes, cand, cum, width, top, parent, token, chosen)
        for b, j in finishing.nonzero().tolist():
            seq = tuple(new_tokens[b, j].tolist())
            log_prob = float(top[b, j])
            att = None if step_weights is None else step_weights[b, j].cpu().numpy()
            found[b].hypotheses.append(
                Hypothesis(
                    seq,
                    log_prob,
                    score(log_prob, len(seq), length_penalty),
                    seq[-1] == end,
                    tuple(nodes[b][j]) if record else (),
                    att,
                )
            )
        if not bool(alive.any()):
            break
        width = width - ends.sum(dim=1)
        cum = torch.where(alive, top, torch.full_like(top, -math.inf))
        rows = (torch.arange(batch, device=device)[:, None] * k + parent).view(-1)
        state = stepped.state.select(rows)
        tokens = new_tokens
        weights = step_weights
        x = model.decoder_input(token.view(-1), batch * k)
    for sample in found:
        sample.hypotheses.sort(key=lambda h: h.score, reverse=True)
    return found


def _record_tree(
    found: list[_Found],
    nodes: list[list[list[int]]],
    cand: Tensor,
    cum: Tensor,
    width: Tensor,
    top: Tensor,
    parent: Tensor,
    token: Tensor,
    chosen: Tensor,
) -> list[list[list[int]]]:
    """Append this step's candidates to each sample's tree; return each slot's node path
    after the step (the slot order of `top`)."""
    new_nodes: list[list[list[int]]] = []
    for b, sample in enumerate(found):
        kept = {
            (int(p), int(tok))
            for p, tok, c in zip(
                parent[b].tolist(), token[b].tolist(), chosen[b].tolist(), strict=True
            )
            if c
        }
        listed: list[Candidate] = []
        where: dict[tuple[int, int], int] = {}
        w = max(1, int(width[b]))
        for j in range(cand.shape[1]):
            if not math.isfinite(float(cum[b, j])):
                continue
            values, toks = cand[b, j].topk(min(w, cand.shape[2]))
            parent_node = nodes[b][j][-1] if nodes[b][j] else -1
            for v, tok in zip(values.tolist(), toks.tolist(), strict=True):
                if not math.isfinite(v):
                    continue
                where[(j, tok)] = len(listed)
                listed.append(Candidate(tok, parent_node, v, (j, tok) in kept))
        sample.tree.append(tuple(listed))
        paths = []
        for j in range(top.shape[1]):
            key = (int(parent[b, j]), int(token[b, j]))
            if bool(chosen[b, j]) and key in where:
                paths.append(nodes[b][key[0]] + [where[key]])
            else:
                paths.append([])
        new_nodes.append(paths)
    return new_nodes
