"""Errors shown to the user: one dialog function, a log file, and the excepthook.

Every message box the app shows goes through `show_message` (and every yes/no
question through `ask`), so tests can replace those two functions and assert
what the user would have read instead of blocking on a modal dialog.

A user's mistake (a `WorkbenchError`: bad file, bad value) shows only its
message. Anything else is a bug: its traceback is appended to a log file in the
user's data folder and the dialog names that file; the app keeps running.
"""

from __future__ import annotations

import datetime
import logging
import sys
import traceback
from pathlib import Path
from types import TracebackType
from typing import Any

from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from ui.settings import data_home
from workbench.errors import WorkbenchError

log = logging.getLogger("sequence_workbench")

LOG_FILE_NAME = "sequence-workbench.log"


def log_path() -> Path:
    """The error log: `<data folder>/logs/sequence-workbench.log`."""
    return data_home() / "logs" / LOG_FILE_NAME


def show_message(parent: QWidget | None, title: str, text: str, *, level: str = "error",
                 details: str | None = None) -> None:
    """Show a modal message box. `level`: "error", "warning" or "info".

    The single place the app opens a message box: tests monkeypatch it.
    """
    box = QMessageBox(parent)
    box.setWindowTitle(title)
    box.setText(text)
    box.setIcon({"error": QMessageBox.Icon.Critical, "warning": QMessageBox.Icon.Warning,
                 "info": QMessageBox.Icon.Information}.get(level, QMessageBox.Icon.Critical))
    if details:
        box.setDetailedText(details)
    box.exec()


def ask(parent: QWidget | None, title: str, text: str) -> bool:
    """A yes/no question (e.g. "Delete this run?"); True for yes. Tests patch it."""
    answer = QMessageBox.question(parent, title, text,
                                  QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                  QMessageBox.StandardButton.No)
    return answer == QMessageBox.StandardButton.Yes


def write_log(text: str) -> Path | None:
    """Append `text` with a time stamp to the log file; None if it cannot be written."""
    path = log_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        stamp = datetime.datetime.now().isoformat(timespec="seconds")
        with path.open("a", encoding="utf-8") as f:
            f.write(f"--- {stamp}\n{text.rstrip()}\n")
    except OSError:
        return None
    return path


def show_error(parent: QWidget | None, exc: BaseException, *, title: str = "Error",
               context: str | None = None) -> None:
    """Show `exc` to the user: its message for a WorkbenchError, else message + log file.

    `context` says what the app was doing ("Opening a dataset"), prefixed to the text.
    """
    prefix = f"{context}: " if context else ""
    if isinstance(exc, WorkbenchError):
        show_message(parent, title, f"{prefix}{exc}", level="warning")
        return
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    report_unexpected(parent, f"{prefix}{type(exc).__name__}: {exc}", text, title=title)


def show_failure(parent: QWidget | None, failure: Any, *, title: str = "Error") -> None:
    """Show a job's failure (ui.jobs.JobFailure): a user's mistake as its message, a bug
    with its traceback logged."""
    if failure.user_error:
        show_message(parent, title, failure.message, level="warning")
    else:
        report_unexpected(parent, failure.message, failure.traceback, title=title)


def report_unexpected(parent: QWidget | None, message: str, traceback_text: str, *,
                      title: str = "Unexpected error") -> None:
    """Log `traceback_text` and tell the user what happened and where the details are."""
    log.error("%s\n%s", message, traceback_text)
    path = write_log(traceback_text)
    where = f"\n\nThe details were written to {path}." if path else ""
    show_message(parent, title,
                 f"Something went wrong inside Sequence Workbench:\n{message}{where}\n\n"
                 "The app keeps running; you may go on working.",
                 level="error", details=traceback_text)


_reporting = False


def excepthook(exc_type: type[BaseException], exc: BaseException,
               tb: TracebackType | None) -> None:
    """sys.excepthook for the GUI: show the error, log a bug's traceback, keep running."""
    global _reporting
    if issubclass(exc_type, KeyboardInterrupt):
        app = QApplication.instance()
        if app is not None:
            app.quit()
        return
    if exc.__traceback__ is None and tb is not None:
        exc = exc.with_traceback(tb)
    if _reporting:  # an error while showing an error: log it only, never recurse
        write_log("".join(traceback.format_exception(exc_type, exc, tb)))
        return
    _reporting = True
    try:
        parent = QApplication.activeWindow() if QApplication.instance() is not None else None
        show_error(parent, exc)
    except Exception:  # the dialog itself failed: fall back to stderr
        sys.__excepthook__(exc_type, exc, tb)
    finally:
        _reporting = False


def install_excepthook() -> None:
    """Route uncaught exceptions (in Qt slots too) to `excepthook`."""
    sys.excepthook = excepthook
