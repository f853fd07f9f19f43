"""Help ▸ Where Are My Files? and About."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu, QWidget

from ui import errors
from ui.settings import AppSettings, data_home

ABOUT = ("Sequence Workbench trains recurrent sequence models (RNN, GRU, LSTM) on your data "
         "and shows, live, the loss, the gradient at every time step (vanishing and "
         "exploding gradients made visible) and the hidden state moving through time.")


def add_help_menu(window: QWidget, menu: QMenu, settings: AppSettings, runs_dir: Path) -> None:
    """Fill the Help menu of `window`."""

    def where() -> None:
        errors.show_message(
            window, "Where are my files?",
            f"Data folder: {data_home()}\nRuns: {runs_dir}\n"
            f"Settings: {settings.path}\nError log: {errors.log_path()}", level="info")

    for text, slot in (("Where Are My &Files?", where),
                       ("&About Sequence Workbench",
                        lambda: errors.show_message(window, "About Sequence Workbench", ABOUT,
                                                    level="info"))):
        action = QAction(text, window)
        action.triggered.connect(slot)
        menu.addAction(action)
