"""The window's docks and their default arrangement.

Every panel is a dock, so it can be moved, tabbed or floated, and the arrangement
is saved with the window's state. The default depends on the window's size. On a
large screen (at least WIDE_SIZE):

    left:     Data (arrays, summary, sample preview)
    top:      Loss | Gradient norm        right: Model and training settings
    bottom:   Gradient per time step | Hidden trajectory | Gates | Predictions | Attention
              Runs (every run in the runs directory; Comparisons reopens saved ones)

On a laptop (1280 x 720, 1366 x 768) the side panels share one column as tabs, so
the plots keep a usable height and width:

    left:     Model | Data | Runs (tabs)
    top:      Loss | Gradient norm
    bottom:   Gradient per time step | Hidden trajectory | Gates | Predictions | Attention

Focus Plots (F11) hides the side panels and gives the plots the whole window;
again, it puts back the layout it replaced.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from PySide6.QtCore import QByteArray, Qt
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
# The least window size that gets the large-screen layout (side panels side by side).
WIDE_SIZE = (1700, 1000)
SIDE_WIDTH = (320, 400)  # the side column's width, least and most


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
    focused_state: QByteArray | None = None  # the layout Focus Plots replaced
    focus_changed: Callable[[bool], None] | None = field(default=None, repr=False)

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

    @property
    def sides(self) -> tuple[QDockWidget, ...]:
        """The settings and data panels, which Focus Plots and presentation hide."""
        return (self.data, self.model, self.runs)

    def is_wide(self) -> bool:
        return (self.window.width() >= WIDE_SIZE[0]
                and self.window.height() >= WIDE_SIZE[1])

    def default_layout(self) -> None:
        """The default arrangement for the window's present size (see the module)."""
        self._set_focused(False)
        w = self.window
        for dock in self.all:
            dock.setFloating(False)
            dock.show()
        wide = self.is_wide()
        w.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.data)
        if wide:
            w.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.model)
        else:
            w.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.model)
            w.tabifyDockWidget(self.model, self.data)
            w.tabifyDockWidget(self.data, self.runs)
            self.model.raise_()
        w.addDockWidget(Qt.DockWidgetArea.TopDockWidgetArea, self.loss)
        w.tabifyDockWidget(self.loss, self.grad_norm)  # a tab beside the loss it explains
        self.loss.raise_()
        w.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.gradient)
        # Side by side the plots need ~1000 px: tabbed, the window fits a laptop screen.
        # Drag a tab out to see both at once; the arrangement is saved.
        w.tabifyDockWidget(self.gradient, self.trajectory)
        w.tabifyDockWidget(self.trajectory, self.gates)
        w.tabifyDockWidget(self.gates, self.predictions)
        w.tabifyDockWidget(self.predictions, self.attention)
        self.gradient.raise_()
        if wide:
            w.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.runs,
                            Qt.Orientation.Vertical)
        self.size_docks()

    def size_docks(self) -> None:
        """Default dock sizes: side panels readable, plots sharing the rest."""
        w = self.window
        height = max(600, w.height())
        side = max(SIDE_WIDTH[0], min(SIDE_WIDTH[1], int(w.width() * 0.22)))
        if self.is_wide():
            w.resizeDocks([self.data, self.model], [side, side - 20], Qt.Orientation.Horizontal)
            w.resizeDocks([self.loss, self.gradient, self.runs],
                          [int(height * 0.34), int(height * 0.42), int(height * 0.18)],
                          Qt.Orientation.Vertical)
        else:
            w.resizeDocks([self.model], [side], Qt.Orientation.Horizontal)
            # the bottom row holds the two-plot panels (Predictions, Gates)
            w.resizeDocks([self.loss, self.gradient], [int(height * 0.4), int(height * 0.6)],
                          Qt.Orientation.Vertical)

    # --- Focus Plots ----------------------------------------------------------------
    @property
    def focused(self) -> bool:
        return self.focused_state is not None

    def toggle_focus(self) -> None:
        """Hide the side panels (the plots get the window); again: the layout before."""
        if self.focused_state is not None:
            state, self.focused_state = self.focused_state, None
            self.window.restoreState(state)
        else:
            self.focused_state = self.window.saveState()
            for dock in self.sides:
                dock.hide()
        self._notify()

    def _set_focused(self, focused: bool) -> None:
        if not focused and self.focused_state is not None:
            self.focused_state = None
            self._notify()

    def _notify(self) -> None:
        if self.focus_changed is not None:
            self.focus_changed(self.focused)
