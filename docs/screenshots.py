"""Take the main window's screenshots for the README and docs, as a user sees them.

Run under a real X server with a window manager, at the screen size to show:

    Xvfb :99 -screen 0 1366x768x24 & DISPLAY=:99 openbox &
    DISPLAY=:99 .venv/bin/python docs/screenshots.py docs/screenshot-main.png

It starts the app maximised on the built-in sine dataset (in a temporary data
folder), trains an LSTM for a few epochs, and grabs the whole screen (window frame
included) once the run has finished and the plots have drawn.

    DISPLAY=:99 .venv/bin/python docs/screenshots.py docs/screenshot-presentation.png 6 \
        --presentation predictions

takes the same run in presentation mode (F5), showing the named plot panel (loss,
gradient, trajectory, gates, predictions, attention, grad_norm; default loss), as a
room sees it on a projector.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(out: str, epochs: int = 6, presentation: str | None = None) -> int:
    home = Path(tempfile.mkdtemp(prefix="workbench-shots-"))
    os.environ["SEQUENCE_WORKBENCH_HOME"] = str(home)
    from PySide6.QtCore import QTimer
    from PySide6.QtGui import QGuiApplication

    from ui.app import create_main_window, make_application

    app = make_application()
    window = create_main_window(settings_path=str(home / "settings.ini"))
    window.showMaximized()
    state = {"trained": False}

    def start() -> None:
        if window.document.summary is None or window.data_panel.opening:
            QTimer.singleShot(200, start)
            return
        window.model_panel.set_values({"cell": "lstm", "hidden": 32, "epochs": epochs,
                                       "batch_size": 64})
        window.session.finished.connect(lambda _r: QTimer.singleShot(1500, grab))
        window.train()
        state["trained"] = True

    def grab() -> None:
        window.feed.bring_up_to_date()
        app.processEvents()
        if presentation is not None and not window.presentation.active:
            if window.experiments.welcome is not None:  # the first start's welcome
                window.experiments.welcome.close()
            window.presentation.enter(getattr(window.docks, presentation))
            QTimer.singleShot(1500, grab)  # once the plot has its size and large text
            return
        QGuiApplication.primaryScreen().grabWindow(0).save(out)
        print(f"saved {out}")
        window.close()
        app.quit()

    QTimer.singleShot(1500, start)
    app.exec()
    return 0 if state["trained"] and Path(out).is_file() else 1


def _parse(argv: list[str]) -> tuple[str, int, str | None]:
    import argparse

    parser = argparse.ArgumentParser(description="Take a screenshot of the main window.")
    parser.add_argument("out", help="the PNG to write")
    parser.add_argument("epochs", nargs="?", type=int, default=6)
    parser.add_argument("--presentation", nargs="?", const="loss", default=None,
                        choices=("loss", "gradient", "trajectory", "gates", "predictions",
                                 "attention", "grad_norm"),
                        help="in presentation mode, showing this plot (default loss)")
    args = parser.parse_args(argv)
    return args.out, args.epochs, args.presentation


if __name__ == "__main__":
    sys.exit(main(*_parse(sys.argv[1:])))
