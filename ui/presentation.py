"""Presentation mode: one plot filling the window, in text and lines a room can read.

F5 (View ▸ Presentation Mode) saves the window's layout, hides the side panels, the
toolbar and every dock but one plot, and scales that plot's text and lines by the
presentation scale (ui.plots.style.scale_plots). Right / Page Down and Left / Page
Up move to the next and previous plot; Ctrl+= and Ctrl+- change the scale, which
AppSettings remembers. Esc or F5 leaves, restoring the exact layout it replaced
(QMainWindow.saveState / restoreState) and the plots' own sizes.

F5 in a comparison (or lesson) window that is in front presents that window
instead: maximised, every plot in it scaled; Esc or F5 gives it back its size.

While it is on, a GUI-thread timer re-applies the scale every SCALE_REFRESH_MS, so
the curves and titles a running training adds are scaled too.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QByteArray, Qt, QTimer
from PySide6.QtWidgets import QApplication, QDockWidget, QWidget

from ui.menus import make_action
from ui.plots import style

SCALE_REFRESH_MS = 500


class Presentation:
    """Presentation mode of `window` (a MainWindow) over its `docks` (ui.docks.Docks)."""

    def __init__(self, window: Any, docks: Any, settings: Any) -> None:
        self.window, self.docks, self.settings = window, docks, settings
        self.scale = style.clamp_scale(settings.presentation_scale())
        self.current: QDockWidget | None = None
        self._state: QByteArray | None = None
        self._status_visible = True
        self.view: QWidget | None = None  # a comparison window being presented
        self._view_state: tuple[QByteArray, Qt.WindowState] | None = None
        self.toggle_action = make_action(
            window, "&Presentation Mode", self.toggle, shortcut="F5",
            tip="One plot fills the window in large text (F5; Esc leaves; "
                "Left/Right move between plots; Ctrl+= / Ctrl+- change the size)")
        self.toggle_action.setCheckable(True)
        self.next_action = make_action(window, "Next Plot", lambda: self.step(1),
                                       shortcut=("Right", "PgDown"))
        self.previous_action = make_action(window, "Previous Plot", lambda: self.step(-1),
                                           shortcut=("Left", "PgUp"))
        self.leave_action = make_action(window, "Leave Presentation", self.leave,
                                        shortcut="Esc")
        self.larger_action = make_action(window, "Larger Presentation Text",
                                         lambda: self.set_scale(self.scale
                                                                + style.PRESENTATION_SCALE_STEP),
                                         shortcut=("Ctrl+=", "Ctrl++"))
        self.smaller_action = make_action(window, "Smaller Presentation Text",
                                          lambda: self.set_scale(self.scale
                                                                 - style.PRESENTATION_SCALE_STEP),
                                          shortcut="Ctrl+-")
        for action in (self.next_action, self.previous_action, self.leave_action):
            action.setEnabled(False)  # the keys are the panels' own until it is on
            window.addAction(action)  # their shortcuts work without a menu
        for action in (self.toggle_action, self.leave_action, self.larger_action,
                       self.smaller_action):  # in the comparison windows too
            action.setShortcutContext(Qt.ShortcutContext.ApplicationShortcut)
        self.actions = (self.toggle_action, self.next_action, self.previous_action,
                        self.larger_action, self.smaller_action)
        self.timer = QTimer(window)
        self.timer.setInterval(SCALE_REFRESH_MS)
        self.timer.timeout.connect(self._apply)

    @property
    def active(self) -> bool:
        return self._state is not None or self.view is not None

    def saved_state(self) -> QByteArray | None:
        """The layout presentation replaced, while it is on (None when off)."""
        return self._state

    def toggle(self) -> None:
        if self.active:
            self.leave()
        else:
            self.enter()

    def enter(self, dock: QDockWidget | None = None) -> None:
        """Show `dock` (default: the plot in front, else Loss) alone, scaled."""
        if self.active:
            return
        front = QApplication.activeWindow()
        if dock is None and front is not None and front in self._views():
            self._enter_view(front)
            return
        w = self.window
        self._state = w.saveState()
        self._status_visible = w.statusBar().isVisible()
        target = dock or self._front_plot()
        w.toolbar.hide()
        w.statusBar().hide()
        for other in self.docks.all:
            if other is not target:
                other.hide()
        self._show(target)
        for action in (self.next_action, self.previous_action, self.leave_action):
            action.setEnabled(True)
        self.toggle_action.setChecked(True)
        self.timer.start()

    def leave(self) -> None:
        """Back to the layout presentation replaced, the plots at their own size."""
        if not self.active:
            return
        self.timer.stop()
        if self.view is not None:
            self._leave_view()
            return
        for dock in self.docks.plots:
            style.scale_plots(dock.widget(), 1.0)
        state, self._state = self._state, None
        self.current = None
        self.window.restoreState(state)
        self.window.statusBar().setVisible(self._status_visible)
        for action in (self.next_action, self.previous_action, self.leave_action):
            action.setEnabled(False)
        self.toggle_action.setChecked(False)

    def step(self, delta: int) -> None:
        """The next (`delta` 1) or previous (-1) plot, in the View menu's order."""
        if not self.active or self.current is None:
            return
        plots = self.docks.plots
        nxt = plots[(plots.index(self.current) + delta) % len(plots)]
        style.scale_plots(self.current.widget(), 1.0)
        self.current.hide()
        self._show(nxt)

    def set_scale(self, scale: float) -> None:
        """The presentation scale (clamped to its range), remembered in the settings."""
        self.scale = style.clamp_scale(scale)
        self.settings.set_presentation_scale(self.scale)
        self._apply()
        self.window.statusBar().showMessage(f"Presentation text and lines: {self.scale:g}×",
                                            3000)

    def _views(self) -> list[QWidget]:
        """The comparison and lesson windows open now."""
        experiments = getattr(self.window, "experiments", None)
        return [*getattr(self.window, "compare_views", ()), *getattr(experiments, "views", ())]

    def _enter_view(self, view: QWidget) -> None:
        self.view = view
        self._view_state = (view.saveGeometry(), view.windowState())
        view.destroyed.connect(self._on_view_closed)
        view.showMaximized()
        self.leave_action.setEnabled(True)
        self.toggle_action.setChecked(True)
        self._apply()
        self.timer.start()

    def _leave_view(self) -> None:
        view, self.view = self.view, None
        style.scale_plots(view, 1.0)
        geometry, state = self._view_state
        view.setWindowState(state)
        view.restoreGeometry(geometry)
        self.leave_action.setEnabled(False)
        self.toggle_action.setChecked(False)

    def _on_view_closed(self, _obj: object = None) -> None:
        if self.view is not None:
            self.view = None
            self.timer.stop()
            self.leave_action.setEnabled(False)
            self.toggle_action.setChecked(False)

    def _show(self, dock: QDockWidget) -> None:
        dock.setFloating(False)
        dock.show()
        dock.raise_()
        self.current = dock
        self._apply()

    def _apply(self) -> None:
        if self.view is not None:
            style.scale_plots(self.view, self.scale)
        elif self.active and self.current is not None:
            style.scale_plots(self.current.widget(), self.scale)

    def _front_plot(self) -> QDockWidget:
        for dock in self.docks.plots:
            if dock.isVisible() and not dock.visibleRegion().isEmpty():
                return dock
        return self.docks.loss
