"""File ▸ Open Recent: the recent files of the settings, each opening its file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtWidgets import QMenu, QWidget

from ui import errors
from ui.settings import AppSettings


class RecentMenu(QMenu):
    """Lists `settings.recent_files()`; choosing one calls `open_file(path)`. A file that
    has gone is said so and removed from the list."""

    def __init__(self, settings: AppSettings, open_file: Callable[[str], object],
                 parent: QWidget | None = None) -> None:
        super().__init__("Open &Recent", parent)
        self.setObjectName("recentMenu")
        self.settings = settings
        self._open_file = open_file
        self.fill()

    def fill(self) -> None:
        self.clear()
        files = self.settings.recent_files()
        for path in files:
            action = self.addAction(Path(path).name)
            action.setToolTip(path)
            action.setStatusTip(path)
            action.triggered.connect(lambda _checked=False, p=path: self.open_recent(p))
        if files:
            self.addSeparator()
            self.addAction("Clear Menu", self._clear)
        else:
            self.addAction("No recent files").setEnabled(False)

    def open_recent(self, path: str) -> None:
        if not Path(path).exists():
            errors.show_message(self.parentWidget(), "File not found",
                                f"{path} no longer exists; it was removed from the recent files.",
                                level="warning")
            self.settings.remove_recent_file(path)
            self.fill()
            return
        self._open_file(path)

    def _clear(self) -> None:
        self.settings.clear_recent_files()
        self.fill()
