"""TensorBoard's smoothing of a noisy loss curve, shared by the loss plot and the
comparison bands so both draw the same numbers.

An exponential moving average divided by its bias (1 - weight**n), as TensorBoard
does since its PR #639, so the first values are not pulled towards zero: the first
smoothed value equals the first raw value. Non-finite values (a diverged step) pass
through unchanged and do not count.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np


class DebiasedEma:
    """Incremental: `update` smooths values that continue the ones seen before."""

    def __init__(self, weight: float) -> None:
        if not 0.0 <= weight < 1.0:
            raise ValueError(f"smoothing weight must be in [0, 1), got {weight}")
        self.weight = float(weight)
        self._last = 0.0
        self._count = 0

    def reset(self, weight: float | None = None) -> None:
        if weight is not None:
            self.__init__(weight)  # type: ignore[misc]
        else:
            self._last, self._count = 0.0, 0

    def update(self, values: Iterable[float]) -> np.ndarray:
        """The smoothed values of `values`, continuing the average so far."""
        raw = np.asarray(list(values) if not isinstance(values, np.ndarray) else values,
                         dtype=np.float64)
        out = np.empty_like(raw)
        w, last, count = self.weight, self._last, self._count
        for i, value in enumerate(raw.tolist()):
            if not math.isfinite(value):
                out[i] = value
                continue
            last = last * w + (1.0 - w) * value
            count += 1
            out[i] = last / (1.0 - w**count)
        self._last, self._count = last, count
        return out


def smooth(values: Iterable[float], weight: float) -> np.ndarray:
    """The bias-corrected EMA of a whole curve; weight 0 returns the values."""
    return DebiasedEma(weight).update(values)
