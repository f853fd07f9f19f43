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

from PySide6.QtCore import QByteArray, Qt, QTimer
from PySide6.QtWidgets import QDockWidget, QMainWindow, QTabBar, QWidget

# (attribute, title, object name, tooltip), in the order of the View menu
DOCKS = (
    ("data", "Data", "dataDock", "The dataset: its arrays, summary and one sample"),
    ("model", "Model and training", "modelDock", "The settings of the next run"),
    ("loss", "Loss", "lossDock", "Training and validation loss"),
    ("gradient", "Gradient per step", "gradientDock",
     "How strongly the loss depends on the hidden state at each time step: "
     "a curve falling towards early steps is a vanishing gradient (with attention, G_t "
     "includes the paths through it)"),
    ("trajectory", "Trajectory", "trajectoryDock",
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
    _title_bars_pending: bool = field(default=False, repr=False)
    laid_out_wide: bool = False  # the default_layout last made: the large-screen one

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
        for dock in result.all:
            dock.topLevelChanged.connect(result.schedule_title_bars)
            dock.dockLocationChanged.connect(result.schedule_title_bars)
            dock.visibilityChanged.connect(result.schedule_title_bars)
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

    def schedule_title_bars(self, *_args: object) -> None:
        """Update the title bars once the layout settles (see update_title_bars)."""
        if not self._title_bars_pending:
            self._title_bars_pending = True
            QTimer.singleShot(0, self.update_title_bars)

    def update_title_bars(self) -> None:
        """A docked panel in a group of tabs shows no title bar: its tab names it, and
        the ~20 px go to its plot. Alone or floating, it has its title bar (to drag
        it by, float it, close it)."""
        self._title_bars_pending = False
        w = self.window
        for dock in self.all:
            tabbed = (not dock.isFloating()
                      and any(not other.isHidden() for other in w.tabifiedDockWidgets(dock)))
            has_blank = dock.titleBarWidget() is not None
            if tabbed and not has_blank:
                dock.setTitleBarWidget(QWidget(dock))
            elif not tabbed and has_blank:
                blank = dock.titleBarWidget()
                dock.setTitleBarWidget(None)
                blank.deleteLater()
        self.hide_stale_tab_bars()

    def hide_stale_tab_bars(self) -> None:
        """Hide the tab bars QMainWindow left behind. Qt 6 (6.11) keeps the tab bar of a
        group the docks have been moved out of (by a new layout, restoreState,
        presentation mode) shown where the group was: it is drawn over the panels.
        A tab bar in use sits right above its group's front dock, which its current
        tab names (the tabs are at the North of every area, see MainWindow)."""
        w = self.window
        docked = [d for d in self.all if d.isVisible() and not d.isFloating()]
        for bar in w.findChildren(QTabBar, options=Qt.FindChildOption.FindDirectChildrenOnly):
            if not bar.isVisible() or bar.shape() not in (QTabBar.Shape.RoundedNorth,
                                                           QTabBar.Shape.TriangularNorth):
                continue
            title = bar.tabText(bar.currentIndex()) if bar.count() else None
            rect = bar.geometry()
            if not any(d.windowTitle() == title and abs(d.x() - rect.x()) <= 2
                       and abs(d.y() - rect.bottom() - 1) <= 2 for d in docked):
                bar.hide()

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
        wide = self.laid_out_wide = self.is_wide()
        top, left = Qt.DockWidgetArea.TopDockWidgetArea, Qt.DockWidgetArea.LeftDockWidgetArea
        w.addDockWidget(left, self.data)
        if wide:
            w.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.model)
            w.splitDockWidget(self.data, self.runs, Qt.Orientation.Vertical)
            w.addDockWidget(top, self.loss)
            w.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.gradient)
        else:
            w.addDockWidget(left, self.model)
            w.tabifyDockWidget(self.model, self.data)
            w.tabifyDockWidget(self.data, self.runs)
            self.model.raise_()
            # the plots side by side: each gets the window's height (Predictions and
            # Gates draw two plots one above the other)
            w.addDockWidget(top, self.loss)
            w.splitDockWidget(self.loss, self.gradient, Qt.Orientation.Horizontal)
        w.tabifyDockWidget(self.loss, self.grad_norm)  # a tab beside the loss it explains
        self.loss.raise_()
        # Side by side the plots would need ~1000 px: tabbed, the window fits a laptop
        # screen. Drag a tab out to see two at once; the arrangement is saved.
        w.tabifyDockWidget(self.gradient, self.trajectory)
        w.tabifyDockWidget(self.trajectory, self.gates)
        w.tabifyDockWidget(self.gates, self.predictions)
        w.tabifyDockWidget(self.predictions, self.attention)
        self.gradient.raise_()
        self.update_title_bars()
        self.size_docks()

    def size_docks(self) -> None:
        """Default dock sizes: side panels readable, plots sharing the rest."""
        w = self.window
        height = max(600, w.height())
        side = max(SIDE_WIDTH[0], min(SIDE_WIDTH[1], int(w.width() * 0.22)))
        if self.is_wide():
            side = max(side, self.data.minimumSizeHint().width(),
                       self.runs.minimumSizeHint().width())
            w.resizeDocks([self.data, self.model], [side, side - 20], Qt.Orientation.Horizontal)
            w.resizeDocks([self.data, self.runs], [int(height * 0.55), int(height * 0.4)],
                          Qt.Orientation.Vertical)
            # the bottom row holds the two-plot panels (Predictions, Gates)
            w.resizeDocks([self.loss, self.gradient], [int(height * 0.34), int(height * 0.66)],
                          Qt.Orientation.Vertical)
        else:
            side = max(side, *(d.minimumSizeHint().width() for d in self.sides))
            w.resizeDocks([self.model], [side], Qt.Orientation.Horizontal)
            plots = w.width() - side - 20  # the separators' and the frame's pixels
            w.resizeDocks([self.loss, self.gradient], [int(plots * 0.42), int(plots * 0.58)],
                          Qt.Orientation.Horizontal)
        QTimer.singleShot(0, self.hide_stale_tab_bars)  # once the new sizes are applied

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
