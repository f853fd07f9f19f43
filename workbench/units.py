"""The units a loss is in, said the same way everywhere, and the way to data units.

A run trains on continuous targets standardised per feature with the training split's
mean and std (workbench.datasets.Normalization), so every loss it records
(metrics.jsonl, status.json, the loss plot) is an MSE on normalised data. `evaluate`
and `predict` work in the data's own units. Token targets have one unit, the
cross-entropy in nats per token, whatever the table.

An MSE on normalised data turns into the data's units exactly when the target has one
feature (or all its features have the same std): it is then the normalised MSE times
std². With features on different scales it does not (each feature's share would be
needed), and `data_unit_factor` says so with None: only `evaluate` gives those.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

# the words of `evaluate`'s "units" (data) and their twins for what training records
DATA_UNITS = "data (MSE in the targets' own units)"
NORMALISED_UNITS = "normalised (MSE on the targets standardised with the training split's mean and std)"
CROSS_ENTROPY = "cross-entropy"

# short forms for table headers and axis labels
SHORT = {
    ("continuous", "normalised"): "MSE, normalised",
    ("continuous", "data"): "MSE, data units²",
    ("tokens", "normalised"): "cross-entropy, nats/token",
    ("tokens", "data"): "cross-entropy, nats/token",
}


def target_kind(dataset: Mapping[str, Any] | None) -> str:
    """"tokens" or "continuous" from a recorded dataset summary (run.json's "dataset")."""
    kind = (dataset or {}).get("target_kind")
    return "tokens" if kind == "tokens" else "continuous"


def loss_words(kind: str, units: str = "normalised") -> str:
    """The long form: what `evaluate --json` and `show --json` print as "units"."""
    if kind == "tokens":
        return CROSS_ENTROPY
    return DATA_UNITS if units == "data" else NORMALISED_UNITS


def short_unit(kind: str, units: str = "normalised") -> str:
    """e.g. "MSE, normalised", "MSE, data units²" or "cross-entropy, nats/token"."""
    return SHORT[("tokens" if kind == "tokens" else "continuous",
                  "data" if units == "data" else "normalised")]


def data_unit_factor(normalization: Mapping[str, Any] | None) -> float | None:
    """What a normalised MSE is multiplied by to be in the targets' units², or None when
    that is not exact (no statistics, or target features with different stds)."""
    if not normalization:
        return None
    stds = normalization.get("y_std")
    if not stds:
        return None
    try:
        values = [float(s) for s in stds]
    except (TypeError, ValueError):
        return None
    if not values or not all(math.isfinite(v) and v > 0 for v in values):
        return None
    first = values[0]
    if any(abs(v - first) > 1e-12 * max(1.0, first) for v in values):
        return None
    return first * first


def in_data_units(value: float | None, factor: float | None) -> float | None:
    """A normalised MSE in data units² (None when either is unknown or not finite)."""
    if value is None or factor is None or not math.isfinite(value):
        return None
    return value * factor


DATA_UNITS_UNAVAILABLE = ("the targets' features have different scales, so a normalised "
                          "loss has no single factor to data units: `evaluate` gives the "
                          "MSE in data units")
