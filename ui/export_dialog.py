"""The Export Plots dialog (folder, format, size) and the folder used last.

`LastFolder` keeps the folder of the last export in the app's settings store (the
QSettings under ui.settings.AppSettings, key "data/export_folder", a group the
settings migration keeps), so that every export dialog starts where the user saved
last; with no settings it remembers for the session only.

`ExportPlotsDialog` asks where and how: the folder (typed or browsed), PNG or SVG,
and the PNG's size (2× the size on screen by default, up to 4000 px wide).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QWidget,
)

from ui.plots.figure import MAX_WIDTH

EXPORT_FOLDER_KEY = "data/export_folder"
# (text, scale, width): None where the other decides
SIZES: tuple[tuple[str, float | None, int | None], ...] = (
    ("2× the size on screen (default)", 2.0, None),
    ("1× the size on screen", 1.0, None),
    ("3× the size on screen", 3.0, None),
    ("1920 px wide (Full HD slide)", None, 1920),
    (f"{MAX_WIDTH} px wide (the largest)", None, MAX_WIDTH),
)


class LastFolder:
    """The folder used last for an export, kept in `store` (anything with QSettings'
    `value` and `setValue`; None: for this session only)."""

    def __init__(self, store: Any | None = None) -> None:
        self.store = store
        self._session: str | None = None

    @classmethod
    def of(cls, window: Any) -> LastFolder:
        """The one kept in `window.settings` (an AppSettings), when it has one."""
        settings = getattr(window, "settings", None)
        return cls(getattr(settings, "store", None))

    def get(self) -> str:
        """The remembered folder if it still exists, else the user's home folder."""
        value = self.store.value(EXPORT_FOLDER_KEY) if self.store is not None else self._session
        if value and Path(str(value)).is_dir():
            return str(value)
        return str(Path.home())

    def set(self, folder: str | Path) -> None:
        folder = str(Path(folder))
        self._session = folder
        if self.store is not None:
            self.store.setValue(EXPORT_FOLDER_KEY, folder)

    def path_for(self, name: str) -> str:
        """`name` in the remembered folder (a save dialog's suggestion)."""
        return str(Path(self.get()) / name)


@dataclass(frozen=True)
class ExportChoice:
    folder: str
    suffix: str  # ".png" or ".svg"
    scale: float | None
    width: int | None


class ExportPlotsDialog(QDialog):
    """Where and how to export every plot (and the open comparison views)."""

    def __init__(self, parent: QWidget | None, folder: str) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export Plots")
        self.folder_edit = QLineEdit(folder)
        self.folder_edit.setMinimumWidth(320)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._on_browse)
        row = QHBoxLayout()
        row.addWidget(self.folder_edit, 1)
        row.addWidget(browse)
        self.format_combo = QComboBox()
        self.format_combo.addItem("PNG (an image)", ".png")
        self.format_combo.addItem("SVG (scalable, no hover lines)", ".svg")
        self.size_combo = QComboBox()
        for text, _scale, _width in SIZES:
            self.size_combo.addItem(text)
        self.size_combo.setToolTip(f"The width of each PNG; never more than {MAX_WIDTH} px")
        self.format_combo.currentIndexChanged.connect(
            lambda _i: self.size_combo.setEnabled(self.format_combo.currentData() == ".png"))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        form.addRow("Folder", row)
        form.addRow("Format", self.format_combo)
        form.addRow("Size", self.size_combo)
        form.addRow(buttons)

    def _on_browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export the plots into",
                                                  self.folder_edit.text())
        if folder:
            self.folder_edit.setText(folder)

    def choice(self) -> ExportChoice:
        _text, scale, width = SIZES[self.size_combo.currentIndex()]
        return ExportChoice(self.folder_edit.text().strip(), self.format_combo.currentData(),
                            scale, width)
