"""The child of tests/ui/test_app_signals.py: the app's entry point (ui.app.run_app) on a
light window, with a modal question open; the parent sends a signal and waits.

Prints "modal open" once the question's own event loop runs, then what the question
returned; exits with run_app's status. The question has no parent window unless
--parented is given. A stand-in window keeps the child's start-up
short (the real one builds every panel); the signal handling is the app's own.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication, QMainWindow  # noqa: E402

import ui.app as app_module  # noqa: E402
from ui import errors  # noqa: E402

PARENTED = "--parented" in sys.argv


def light_window(_path=None) -> QMainWindow:
    window = QMainWindow()
    window.setWindowTitle("stand-in")

    def ask() -> None:
        # fires inside the question's own (nested) event loop
        QTimer.singleShot(100, lambda: print(
            f"modal open: {QApplication.activeModalWidget() is not None}", flush=True))
        # parentless, as errors.show_error(None, ...) makes them: closing the window does
        # not dismiss it (the case the old handler hung on)
        parent = window if PARENTED else None
        answer = errors.ask(parent, "A question", "Still there?")
        print(f"question returned {answer}", flush=True)

    QTimer.singleShot(0, ask)
    return window


if __name__ == "__main__":
    app_module.create_main_window = light_window
    code = app_module.run_app()
    print(f"event loop left, status {code}", flush=True)
    sys.exit(code)
