"""The model a run config makes for a dataset: RunConfig + DatasetSummary -> Seq2SeqConfig.

Its own module so that both the Trainer (which builds the model) and the memory
estimate (workbench.memory, which sizes it before anything is built) take the one
definition, and neither imports the other.
"""

from __future__ import annotations

from typing import Any

from workbench.config import RunConfig


def build_model_config(config: RunConfig, summary: Any):
    """The Seq2SeqConfig a run config makes for a dataset (sides from its summary)."""
    from models.seq2seq import Seq2SeqConfig, SideConfig

    def side(spec: Any) -> SideConfig:
        if spec.kind == "tokens":
            return SideConfig(kind="tokens", vocab_size=spec.vocab_size, embedding=config.embedding,
                              pad_id=spec.pad_id if spec.pad_id is not None else 0,
                              start_id=spec.start_id if spec.start_id is not None else 1,
                              end_id=spec.end_id if spec.end_id is not None else 2)
        return SideConfig(kind="continuous", features=spec.features)

    return Seq2SeqConfig(cell=config.cell, hidden=config.hidden, layers=config.layers,
                         dropout=config.dropout, source=side(summary.inputs),
                         target=side(summary.targets), attention=config.attention)
