"""The live plot panels: loss, gradient per time step, hidden-state trajectory.

Each panel is a QWidget with the same API (add_event, add_events, clear,
set_overlay, remove_overlay, clear_overlays, export) and can run alone on demo
data: `python -m ui.plots.loss_plot` (gradient_plot, trajectory_plot).
"""

from ui.plots.gradient_plot import GradientPlot
from ui.plots.loss_plot import LossPlot
from ui.plots.trajectory_plot import TrajectoryPlot

__all__ = ["GradientPlot", "LossPlot", "TrajectoryPlot"]
