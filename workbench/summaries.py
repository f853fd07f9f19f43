"""The honest part of a run's summary: units, the training loss over an epoch, the best
epoch by the run's `best_by`, and the baselines with what the model beats.

`Run.summary()` (what `show --json` and `train --json` print) and the comparison
table (workbench.compare) read a run through these, so both say the same thing:

- the losses a run records are on normalised data (continuous targets) or
  cross-entropies (tokens); `data_units` gives them in the targets' units² where
  that conversion is exact (workbench.units);
- `train_loss` is the mean over the last epoch's steps, not one batch: when the run
  ended early in an epoch, the mean over the last epoch's worth of steps, and
  `train_loss_over` says which;
- `best` is the epoch whose checkpoint is `best.pt`, chosen by `best_by` as the
  Trainer chose it (a run recorded before `best_by` existed: the teacher-forced loss);
- `baselines` is the record the run kept when it started (workbench.baselines), and
  `beats` whether the best epoch's free-running loss beats each of them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from workbench import baselines, units
from workbench.events import EpochMetrics, StepMetrics

LEGACY_BEST_BY = "val_teacher_forced"  # what picked `best` before best_by existed


def recorded_best_by(config: Mapping[str, Any] | None) -> str:
    """The best_by a run's config.toml (as a dict) records; the old rule when absent."""
    training = (config or {}).get("training") or {}
    value = training.get("best_by") if isinstance(training, Mapping) else None
    return value if value in ("val_free_running", "val_teacher_forced") else LEGACY_BEST_BY


def best_epoch(epochs: Sequence[EpochMetrics], best_by: str) -> EpochMetrics | None:
    """The epoch whose checkpoint is `best`: the lowest finite loss `best_by` names (the
    first of equals, as the Trainer keeps the first)."""
    def score(e: EpochMetrics) -> float:
        return e.val_loss_free_running if best_by == "val_free_running" else e.val_loss

    finite = [e for e in epochs if math.isfinite(score(e))]
    return min(finite, key=score) if finite else None


def train_loss(steps: Sequence[StepMetrics]) -> tuple[float | None, str]:
    """(mean training loss, what it is the mean over) from a run's step records.

    The last epoch's steps; when that epoch is shorter than the one before (the budget
    ended inside it), the last as many steps as that one had, so the figure is always
    an epoch's worth of batches and never one batch by chance.
    """
    if not steps:
        return None, ""
    last = steps[-1].epoch
    in_last = [s for s in steps if s.epoch == last]
    previous = sum(1 for s in steps if s.epoch == last - 1)
    if previous > len(in_last):
        window = list(steps[-previous:])
        over = (f"the last {len(window)} steps (an epoch's worth; epoch {last} "
                f"ran {len(in_last)})")
    else:
        window = in_last
        over = f"epoch {last} ({len(window)} step{'s' if len(window) != 1 else ''})"
    values = [s.loss for s in window if math.isfinite(s.loss)]
    return (sum(values) / len(values) if values else None), over


def honest_fields(meta: Mapping[str, Any], config: Mapping[str, Any] | None,
                  steps: Sequence[StepMetrics], epochs: Sequence[EpochMetrics]) -> dict[str, Any]:
    """The summary keys about units, training loss, the best epoch and the baselines."""
    dataset = meta.get("dataset") if isinstance(meta.get("dataset"), Mapping) else {}
    kind = units.target_kind(dataset)
    best_by = recorded_best_by(config)
    mean_loss, over = train_loss(steps)
    best = best_epoch(epochs, best_by)
    last = epochs[-1] if epochs else None
    record = baselines.recorded(meta)
    verdict = baselines.judge(record, loss_free_running=best.val_loss_free_running if best else None,
                              loss=best.val_loss if best else None,
                              token_accuracy=best.token_accuracy if best else None)
    best_values = [e.val_loss for e in epochs if math.isfinite(e.val_loss)]
    out: dict[str, Any] = {
        "loss_units": units.loss_words(kind),
        "train_loss": mean_loss,
        "train_loss_over": over,
        "data_units": None,
        "best_by": best_by,
        "best": None if best is None else {
            "epoch": best.epoch, "step": best.step, "val_loss": best.val_loss,
            "val_loss_free_running": best.val_loss_free_running,
            "token_accuracy": best.token_accuracy, "sequence_accuracy": best.sequence_accuracy},
        "baselines": record,
        "beats": verdict.beats,
        "beats_persistence": verdict.beats.get("persistence"),
        "notes": list(verdict.notes),
    }
    if kind == "continuous":
        factor = units.data_unit_factor(meta.get("normalization"))
        if factor is None:
            out["data_units"] = {"units": units.DATA_UNITS, "note": units.DATA_UNITS_UNAVAILABLE}
        else:
            figures = {"train_loss": mean_loss,
                       "val_loss": last.val_loss if last else None,
                       "val_loss_free_running": last.val_loss_free_running if last else None,
                       "best_val_loss": min(best_values) if best_values else None}
            out["data_units"] = {"units": units.DATA_UNITS, **{
                k: units.in_data_units(v, factor) for k, v in figures.items()}}
    return out
