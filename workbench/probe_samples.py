"""The probe samples themselves: their lengths and tokens, for the panels' labels.

A probe records the attention weights and hidden states of the first few samples of
the fixed probe batch; to label those steps ("the decoder's 'c' looked at the
input's 'c'") a panel needs the samples' tokens, and to crop padding, their lengths.
The Trainer adds these to every ProbeEvent (workbench.events.PROBE_SAMPLE_FIELDS),
so a replayed run needs neither its dataset file nor its vocabulary to show them.
Plain numpy; no Qt, no torch needed (tensors are accepted and copied to the CPU).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def token_strings(ids: np.ndarray, lengths: np.ndarray, vocab: tuple[str, ...] | None
                  ) -> np.ndarray:
    """(samples, T) str: each valid id as its vocabulary word ("<id>" past the
    vocabulary, the id itself without one), "" past a sample's length."""
    ids = np.asarray(ids)
    out = np.full(ids.shape, "", dtype=object)
    for b in range(ids.shape[0]):
        for t in range(min(int(lengths[b]), ids.shape[1])):
            i = int(ids[b, t])
            if vocab is None:
                out[b, t] = str(i)
            else:
                out[b, t] = vocab[i] if 0 <= i < len(vocab) else f"<{i}>"
    return out.astype(str)


def probe_sample_fields(batch: Any, summary: Any, count: int) -> dict[str, np.ndarray | None]:
    """The PROBE_SAMPLE_FIELDS of the first `count` samples of a probe batch.

    batch: anything with src, tgt, src_lengths, tgt_lengths (the Trainer's tensors or a
    datasets.Batch's arrays under those names); summary: the DatasetSummary (its sides'
    kinds and vocabularies). Tokens only for a token side, else None.
    """
    src_lengths = _numpy(batch.src_lengths).astype(np.int64)
    samples = min(int(count), int(src_lengths.shape[0]))
    src_lengths = src_lengths[:samples]
    tgt_lengths = _numpy(batch.tgt_lengths).astype(np.int64)[:samples]
    fields: dict[str, np.ndarray | None] = {
        "sample_source_lengths": src_lengths,
        "sample_target_lengths": tgt_lengths,
        "sample_source_tokens": None,
        "sample_target_tokens": None,
    }
    for side, name, data, lengths in (
            (summary.inputs, "sample_source_tokens", batch.src, src_lengths),
            (summary.targets, "sample_target_tokens", batch.tgt, tgt_lengths)):
        if side.kind == "tokens":
            fields[name] = token_strings(_numpy(data)[:samples], lengths, side.vocab)
    return fields
