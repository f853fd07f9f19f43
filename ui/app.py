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
from importlib import resources as importlib_resources  # noqa: E402

from PySide6.QtCore import QTimer  # noqa: E402
from PySide6.QtGui import QIcon  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

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
    """Open the main window on `path` and run the event loop; the exit status."""
    app = make_application()
    install_excepthook()
    try:
        window = create_main_window(path)
    except Exception as exc:  # the window could not even be built: say why, then exit
        show_error(None, exc, title="Sequence Workbench could not start")
        return 1
    window.show()
    _quit_on_ctrl_c(app, window)
    return int(app.exec())


def _quit_on_ctrl_c(app: QApplication, window) -> None:
    """Ctrl+C (or SIGTERM) closes the window: a run stops cleanly, settings are saved."""

    def on_signal(*_args) -> None:
        window.close()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    # The interpreter only runs signal handlers between bytecodes: wake it up.
    timer = QTimer(app)
    timer.timeout.connect(lambda: None)
    timer.start(250)


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
