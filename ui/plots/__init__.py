"""The live plot panels: loss, gradient per time step, hidden-state trajectory.

Each panel is a QWidget with the same API (add_event, add_events, clear,
set_overlay, remove_overlay, clear_overlays, export) and can run alone on demo
data: `python -m ui.plots.loss_plot` (gradient_plot, trajectory_plot).

Call the panels from the GUI thread (the worker bridge's signals deliver there):
they only store what arrives and redraw from a timer at most ~15 times a second.
The panels are imported lazily (`from ui.plots import LossPlot` works), so that
`python -m ui.plots.loss_plot` does not import its own module twice.
"""

from __future__ import annotations

import importlib
from typing import Any

_PANELS = {
    "LossPlot": "ui.plots.loss_plot",
    "GradientPlot": "ui.plots.gradient_plot",
    "TrajectoryPlot": "ui.plots.trajectory_plot",
}

__all__ = list(_PANELS)


def __getattr__(name: str) -> Any:
    if name in _PANELS:
        return getattr(importlib.import_module(_PANELS[name]), name)
    raise AttributeError(f"module 'ui.plots' has no attribute {name!r}")
