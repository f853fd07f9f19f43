"""The main window's menus, toolbar and status bar widgets.

`build_menus_and_toolbar(window)` adds them to a MainWindow whose panels and parts
are built, and sets the actions other code reaches through the window
(`open_action`, `task_action`, `import_action`, `recent_menu`, `inspect_action`,
`experiments`, `toolbar`, `view_menu`).
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QToolBar, QWidget

from ui.experiments_menu import add_experiments_menu
from ui.help_menu import add_help_menu
from ui.inspect_panel import add_inspect_action
from ui.recent_menu import RecentMenu


def make_action(parent: QWidget, text: str, slot: Any, *, shortcut: Any = None,
                tip: str = "") -> QAction:
    """A QAction owned by `parent`, with a shortcut (one or several) and a tooltip."""
    action = QAction(text, parent)
    if isinstance(shortcut, (list, tuple)):
        action.setShortcuts([QKeySequence(s) for s in shortcut])
    elif shortcut is not None:
        action.setShortcut(shortcut)
    action.setToolTip(tip)
    action.triggered.connect(slot)
    return action


def build_menus_and_toolbar(window: Any) -> None:
    """File, Training, View, Experiments and Help menus, the toolbar and the status
    bar's permanent widgets of `window` (a ui.main_window.MainWindow)."""
    w = window
    keys = QKeySequence.StandardKey
    w.open_action = make_action(w, "&Open Dataset…", w.data_panel.open_dialog,
                                shortcut=keys.Open,
                                tip="Open an HDF5 file of sequences (Ctrl+O)")
    w.task_action = make_action(w, "&New Dataset from Task…", w.new_dataset_from_task,
                                shortcut=keys.New,
                                tip="Generate a dataset from a built-in task (Ctrl+N)")
    w.compare_action = w.launcher.compare_action
    w.import_action = make_action(
        w, "&Import Text or CSV…", w.import_file,
        tip="Make a dataset from text pairs (TSV/CSV) or a CSV of time series")
    w.recent_menu = RecentMenu(w.settings, w.data_panel.open_file, w)

    menu = w.menuBar().addMenu("&File")
    menu.addAction(w.open_action)
    menu.addMenu(w.recent_menu)
    menu.addAction(w.task_action)
    menu.addAction(w.import_action)
    menu.addSeparator()
    for action in w.exports.actions:
        menu.addAction(action)
    menu.addSeparator()
    menu.addAction(make_action(w, "&Quit", w.close, shortcut=keys.Quit))

    menu = w.menuBar().addMenu("&Training")
    for action in (w.controls.train_action, w.controls.pause_action,
                   w.controls.stop_action):
        menu.addAction(action)
    menu.addSeparator()
    menu.addAction(w.compare_action)

    menu = w.menuBar().addMenu("&View")
    w.view_menu = menu
    for dock in w.docks.all:
        menu.addAction(dock.toggleViewAction())
    menu.addSeparator()
    w.inspect_action = add_inspect_action(w, menu, w.runs_dir)
    def toggle_focus() -> None:
        if not w.presentation.active:  # presentation has hidden the side panels already
            w.docks.toggle_focus()
        w.focus_action.setChecked(w.docks.focused)

    w.focus_action = make_action(
        w, "&Focus Plots", toggle_focus, shortcut=("F11", "Ctrl+Shift+F"),
        tip="Give the plots the whole window (hides Data, Model and Runs); again restores")
    w.focus_action.setCheckable(True)
    w.docks.focus_changed = w.focus_action.setChecked
    menu.addAction(w.focus_action)
    for action in w.presentation.actions:
        menu.addAction(action)
    menu.addAction(make_action(w, "&Reset Layout", w.reset_layout))

    w.experiments = add_experiments_menu(
        w, w.menuBar().addMenu("E&xperiments"), w.runs_dir, settings=w.settings,
        welcome=w._load_pending and not w._initial_path)  # the first start's welcome
    w.launcher.sessions.append(w.experiments.session)
    add_help_menu(w, w.menuBar().addMenu("&Help"), w.settings, w.runs_dir)

    toolbar = QToolBar("Main", w)
    toolbar.setObjectName("mainToolBar")
    toolbar.setMovable(False)
    toolbar.setIconSize(QSize(18, 18))
    toolbar.addAction(w.open_action)
    toolbar.addAction(w.task_action)
    toolbar.addSeparator()
    toolbar.addWidget(w.controls)
    toolbar.addSeparator()
    toolbar.addAction(w.compare_action)
    w.addToolBar(Qt.ToolBarArea.TopToolBarArea, toolbar)
    w.toolbar = toolbar
    # Named for a newcomer: the toolbar shows short labels, the menus the full ones.
    for action, short in ((w.open_action, "Open…"), (w.task_action, "New from Task…"),
                          (w.compare_action, "Compare Cells…")):
        toolbar.widgetForAction(action).setText(short)

    bar = w.statusBar()
    bar.addPermanentWidget(w.run_label)
    bar.addPermanentWidget(w.controls.eta_label)
    bar.addPermanentWidget(w.controls.speed_label)
