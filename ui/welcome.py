"""The welcome panel: what a newcomer sees over the window on the first start.

It says in two sentences what the app is for and offers, one click each, the shipped
lessons (workbench.lessons: each causes a textbook effect, such as vanishing gradients,
and says what to look for) and "open a file". It is not modal: the window opens its
built-in dataset behind it, and closing the panel leaves the user there. Experiments ▸
Welcome… shows it again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6 import QtCore, QtWidgets

INTRO = ("<b>Sequence Workbench</b> trains recurrent networks (RNN, GRU, LSTM) on "
         "sequences and shows, live, how the gradient flows back through time. Start with a "
         "lesson: each trains a small grid of models (a few minutes on a laptop) that makes "
         "a textbook effect happen, and tells you what to look for.")


def first_sentence(text: str) -> str:
    """The first sentence of a lesson's text, for its button."""
    words = " ".join(text.split())
    start = 0
    while True:
        end = words.find(". ", start)
        if end < 0:
            return words
        if not words[:end].endswith((" al", " e.g", " i.e", " vs")):  # not "et al. 2015"
            return words[: end + 1]
        start = end + 2


class WelcomePanel(QtWidgets.QDialog):
    """Lessons and "open a file", over the window (module docstring)."""

    lesson_chosen = QtCore.Signal(str)  # a lesson's name
    open_file_requested = QtCore.Signal()

    def __init__(self, lessons: Sequence[Any], parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Welcome to Sequence Workbench")
        self.setModal(False)
        self.setObjectName("welcomePanel")
        intro = QtWidgets.QLabel(INTRO)
        intro.setWordWrap(True)
        intro.setTextFormat(QtCore.Qt.TextFormat.RichText)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(intro)
        self.lesson_buttons: dict[str, QtWidgets.QCommandLinkButton] = {}
        for lesson in lessons:
            button = QtWidgets.QCommandLinkButton(lesson.title, self)
            button.setDescription(f"{first_sentence(lesson.about)} ({lesson.runs} runs)")
            button.setToolTip(" ".join(lesson.about.split()))
            button.clicked.connect(lambda _checked=False, n=lesson.name: self._on_lesson(n))
            layout.addWidget(button)
            self.lesson_buttons[lesson.name] = button
        self.open_button = QtWidgets.QCommandLinkButton(
            "Open a file…", "Your own HDF5 file of sequences (docs/your-data.md says how to "
            "make one from CSV or text)", self)
        self.open_button.clicked.connect(self._on_open)
        layout.addWidget(self.open_button)
        self.explore_button = QtWidgets.QPushButton("Explore the built-in dataset", self)
        self.explore_button.setToolTip("Close this panel: the window has opened a sine-wave "
                                       "forecasting dataset; press Train to start a run")
        self.explore_button.clicked.connect(self.close)
        row = QtWidgets.QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.explore_button)
        layout.addLayout(row)
        self.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        self.resize(560, 120 + 70 * (len(lessons) + 1))

    def _on_lesson(self, name: str) -> None:
        self.close()
        self.lesson_chosen.emit(name)

    def _on_open(self) -> None:
        self.close()
        self.open_file_requested.emit()
