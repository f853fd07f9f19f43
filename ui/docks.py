"""The window's docks and their default arrangement.

Every panel is a dock, so it can be moved, tabbed or floated, and the arrangement
is saved with the window's state:

    left:     Data (arrays, summary, sample preview)
    top:      Loss | Gradient norm        right: Model and training settings
    bottom:   Gradient per time step | Hidden trajectory | Gates | Predictions | Attention
              Runs (every run in the runs directory; Comparisons reopens saved ones)
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDockWidget, QMainWindow, QWidget

# (attribute, title, object name, tooltip), in the order of the View menu
DOCKS = (
    ("data", "Data", "dataDock", "The dataset: its arrays, summary and one sample"),
    ("model", "Model and training", "modelDock", "The settings of the next run"),
    ("loss", "Loss", "lossDock", "Training and validation loss"),
    ("gradient", "Gradient per time step", "gradientDock",
     "How strongly the loss depends on the hidden state at each time step: "
     "a curve falling towards early steps is a vanishing gradient (with attention, G_t "
     "includes the paths through it)"),
    ("trajectory", "Hidden-state trajectory", "trajectoryDock",
     "The hidden state of a few samples moving through time (projected to 2-D)"),
    ("gates", "Gates", "gatesDock",
     "LSTM and GRU: how open each gate is at each time step, and how often saturated"),
    ("predictions", "Predictions", "predictionsDock",
     "One validation sample: the target, the teacher-forced and the generated output"),
    ("attention", "Attention", "attentionDock",
     "Where each output step looks in the input, per probe (runs with attention)"),
    ("runs", "Runs", "runsDock", "Every run in the runs directory"),
    ("grad_norm", "Gradient norm", "gradNormDock",
     "The total gradient norm of every training step (log scale), with the clipping "
     "threshold and how often it clipped"),
)


@dataclass
class Docks:
    """The window's docks by name (`docks.loss`, …) and in menu order (`all`)."""

    window: QMainWindow
    data: QDockWidget
    model: QDockWidget
    loss: QDockWidget
    gradient: QDockWidget
    trajectory: QDockWidget
    gates: QDockWidget
    predictions: QDockWidget
    attention: QDockWidget
    runs: QDockWidget
    grad_norm: QDockWidget

    @classmethod
    def build(cls, window: QMainWindow, panels: dict[str, QWidget]) -> Docks:
        """A dock around each of `panels` (keyed as DOCKS), in the default layout."""
        center = QWidget(window)  # a small central widget: every panel is a dock around it
        center.setObjectName("center")
        center.setMaximumHeight(0)  # the center column takes spare width, no height
        window.setCentralWidget(center)
        for corner, area in ((Qt.Corner.TopLeftCorner, Qt.DockWidgetArea.LeftDockWidgetArea),
                             (Qt.Corner.BottomLeftCorner, Qt.DockWidgetArea.LeftDockWidgetArea),
                             (Qt.Corner.TopRightCorner, Qt.DockWidgetArea.RightDockWidgetArea),
                             (Qt.Corner.BottomRightCorner,
                              Qt.DockWidgetArea.RightDockWidgetArea)):
            window.setCorner(corner, area)
        docks = {}
        for key, title, name, tip in DOCKS:
            dock = QDockWidget(title, window)
            dock.setObjectName(name)
            dock.setWidget(panels[key])
            dock.setToolTip(tip)
            dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                             | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                             | QDockWidget.DockWidgetFeature.DockWidgetClosable)
            docks[key] = dock
        result = cls(window, **docks)
        result.default_layout()
        return result

    @property
    def all(self) -> tuple[QDockWidget, ...]:
        return (self.data, self.model, self.loss, self.gradient, self.trajectory, self.gates,
                self.predictions, self.attention, self.runs, self.grad_norm)

    @property
    def plots(self) -> tuple[QDockWidget, ...]:
        return (self.loss, self.gradient, self.trajectory, self.gates, self.predictions,
                self.attention, self.grad_norm)

    def default_layout(self) -> None:
        w = self.window
        for dock in self.all:
            dock.setFloating(False)
            dock.show()
        w.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.data)
        w.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.model)
        w.addDockWidget(Qt.DockWidgetArea.TopDockWidgetArea, self.loss)
        w.tabifyDockWidget(self.loss, self.grad_norm)  # a tab beside the loss it explains
        self.loss.raise_()
        w.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.gradient)
        # Side by side the two need ~1000 px: tabbed, the window fits a laptop screen.
        # Drag a tab out to see both at once; the arrangement is saved.
        w.tabifyDockWidget(self.gradient, self.trajectory)
        w.tabifyDockWidget(self.trajectory, self.gates)
        w.tabifyDockWidget(self.gates, self.predictions)
        w.tabifyDockWidget(self.predictions, self.attention)
        self.gradient.raise_()
        w.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.runs,
                        Qt.Orientation.Vertical)
        self.size_docks()

    def size_docks(self) -> None:
        """Default dock sizes: side panels readable, plots sharing the rest."""
        w = self.window
        height = max(600, w.height())
        side = max(320, min(380, int(w.width() * 0.22)))
        w.resizeDocks([self.data, self.model], [side, side - 20], Qt.Orientation.Horizontal)
        w.resizeDocks([self.loss, self.gradient, self.runs],
                      [int(height * 0.36), int(height * 0.36), int(height * 0.2)],
                      Qt.Orientation.Vertical)
