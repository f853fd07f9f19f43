"""The desktop app's entry point: QApplication set-up, style, excepthook, main window.

`main.py` calls `run_app(path_or_None)`; it returns the process's exit status.
"""

from __future__ import annotations

import os

# numpy's BLAS in the GUI process works on small matrices (a PCA of a few hundred
# hidden states per probe). With its default thread pool it spins on every core and
# fights the training thread for them: measured on 2 cores, an SVD of 440 x 256 took
# 90-800 ms multi-threaded and 14 ms on one thread. Set before numpy is imported;
# a user's own setting wins. (Torch sets its own thread count per run.)
for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import signal  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from importlib import resources as importlib_resources  # noqa: E402
from typing import Any  # noqa: E402

from PySide6.QtCore import QObject, QTimer  # noqa: E402
from PySide6.QtGui import QIcon  # noqa: E402
from PySide6.QtWidgets import QApplication, QDialog, QWidget  # noqa: E402

from ui.errors import install_excepthook, show_error  # noqa: E402

APP_DISPLAY_NAME = "Sequence Workbench"


def make_application(argv: list[str] | None = None) -> QApplication:
    """The QApplication (reused when one exists, as under pytest-qt), styled."""
    app = QApplication.instance()
    if app is None:
        app = QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName("sequence-workbench")
    app.setOrganizationName("sequence-workbench")
    app.setApplicationDisplayName(APP_DISPLAY_NAME)
    icon = _resource_path("icon.svg")
    if icon:
        app.setWindowIcon(QIcon(icon))
    style = _resource_text("style.qss")
    if style:
        app.setStyleSheet(style)
    return app


def create_main_window(path: str | os.PathLike[str] | None = None, *,
                       settings_path: str | os.PathLike[str] | None = None):
    """The main window on `path` (None: the last file, else the built-in dataset)."""
    from ui.main_window import MainWindow
    from ui.settings import AppSettings, open_settings

    settings = AppSettings(open_settings(settings_path))
    return MainWindow(settings, initial_path=os.fspath(path) if path else None)


def run_app(path: str | os.PathLike[str] | None = None) -> int:
    """Open the main window on `path` and run the event loop; the exit status
    (128 + the signal's number when Ctrl-C or SIGTERM ended it, as a shell reports)."""
    app = make_application()
    install_excepthook()
    try:
        window = create_main_window(path)
    except Exception as exc:  # the window could not even be built: say why, then exit
        show_error(None, exc, title="Sequence Workbench could not start")
        return 1
    window.show()
    quitter = QuitOnSignal(app, window)
    quitter.install()
    code = int(app.exec())
    quitter.uninstall()
    return 128 + quitter.signum if quitter.signum else code


class QuitOnSignal(QObject):
    """Ctrl-C (SIGINT) and SIGTERM quit the app, also while a modal dialog is open.

    A Python signal handler runs only when the interpreter gets control, and Qt's
    event loop (the main one, or a dialog's nested one) keeps it in C: a QTimer of
    `poll_ms` wakes it. The handler only notes the signal; the timer, in the GUI
    thread, does the quitting: it closes the modal dialogs one by one (each returns
    from its exec() as if cancelled), then closes the window (which stops a run
    cleanly and saves the settings), and quits when the window is gone. A second
    signal, or `deadline_s` after the first, quits at once (aboutToQuit still stops a
    run and waits for it).
    """

    def __init__(self, app: QApplication, window: QWidget, *, poll_ms: int = 100,
                 deadline_s: float = 20.0,
                 signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> None:
        super().__init__(app)
        self.app, self.window = app, window
        self.signals = signals
        self.deadline_s = deadline_s
        self.signum = 0  # the first signal received (0: none)
        self._count = 0
        self._since = 0.0
        self._closing = False
        self._previous: dict[int, Any] = {}
        self.timer = QTimer(self)
        self.timer.setInterval(poll_ms)
        self.timer.timeout.connect(self.poll)

    def install(self) -> None:
        """Handle the signals (in the main thread) and start the waking timer."""
        for signum in self.signals:
            self._previous[signum] = signal.signal(signum, self._on_signal)
        self.timer.start()

    def uninstall(self) -> None:
        """Stop the timer and put the previous handlers back."""
        self.timer.stop()
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    def _on_signal(self, signum: int, _frame: Any) -> None:
        # runs in the main thread between two bytecodes: only note it, the timer acts
        if not self.signum:
            self.signum, self._since = signum, time.monotonic()
        self._count += 1

    def poll(self) -> None:
        """The timer's tick: take the next step towards quitting, once a signal came."""
        if not self.signum:
            return
        if self._count > 1 or time.monotonic() - self._since > self.deadline_s:
            self.app.quit()  # leaves every event loop, the dialogs' nested ones too
            return
        modal = self.app.activeModalWidget()
        if modal is not None:
            if isinstance(modal, QDialog):
                modal.reject()
            else:
                modal.close()
            return
        popup = self.app.activePopupWidget()
        if popup is not None:
            popup.close()
            return
        if not self._closing:
            self._closing = True
            # stops a run and saves (no question asked); may wait for the run to end
            getattr(self.window, "close_without_asking", self.window.close)()
        if not self.window.isVisible():
            self.app.quit()


def _resource_path(name: str) -> str | None:
    try:
        path = importlib_resources.files("resources") / name
    except (ModuleNotFoundError, TypeError):
        return None
    return str(path) if path.is_file() else None


def _resource_text(name: str) -> str:
    path = _resource_path(name)
    if path is None:
        return ""
    with open(path, encoding="utf-8") as f:
        return f.read()
