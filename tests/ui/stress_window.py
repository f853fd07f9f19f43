"""Stress the real main window (offscreen): many short runs or comparisons back to back
while the GUI thread keeps building, showing and connecting widgets, switching plot
tabs, showing predictions and replaying runs. Run by tests/ui/test_stress.py in a child
process under a hard time limit; it prints one line "stress ok: ..." and exits 0, or
fails an assertion.

    python tests/ui/stress_window.py runs 300 FOLDER
    python tests/ui/stress_window.py comparisons 50 FOLDER
"""

from __future__ import annotations

import faulthandler
import gc
import os
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from PySide6.QtCore import QObject, Signal  # noqa: E402
from PySide6.QtWidgets import QApplication, QLabel, QPushButton  # noqa: E402

from ui import errors  # noqa: E402
from ui.compare_dialog import CompareChoice  # noqa: E402
from ui.main_window import MainWindow  # noqa: E402
from ui.settings import AppSettings, open_settings  # noqa: E402
from workbench.tasks import generate  # noqa: E402

JOB_LIMIT_S = 60.0  # one 2-step run or one-run comparison, however loaded the machine


class _Pinger(QObject):
    """A Python-defined QObject made, connected and destroyed in the GUI thread."""

    pinged = Signal(int)


def churn(app: QApplication, window: MainWindow, i: int) -> None:
    """GUI-thread work while the job runs: widgets built, shown, connected, dropped."""
    docks = window.docks
    (docks.gradient, docks.trajectory, docks.gates, docks.predictions)[i % 4].raise_()
    label = QLabel(f"churn {i}", window)
    label.show()
    button = QPushButton("x", window)
    pinger = _Pinger()
    seen = []
    pinger.pinged.connect(seen.append)
    button.clicked.connect(lambda: pinger.pinged.emit(i))
    button.click()
    assert seen == [i]
    button.clicked.disconnect()
    label.deleteLater()
    button.deleteLater()  # the pinger dies with this function, in the GUI thread
    window.predictions_plot.set_sample(i % 3)
    app.processEvents()


def wait_idle(app: QApplication, window: MainWindow, limit_s: float = JOB_LIMIT_S) -> int:
    """Turn the event loop (with churn) until no job runs; the number of churn rounds."""
    rounds = 0
    deadline = time.monotonic() + limit_s
    while window.session.is_running() or window.compare_session.is_running():
        assert time.monotonic() < deadline, "a job did not end"
        churn(app, window, rounds)
        rounds += 1
        time.sleep(0.002)
    app.processEvents()
    return rounds


def main(kind: str, count: int, folder: Path) -> None:
    app = QApplication.instance() or QApplication([])
    messages: list[str] = []
    errors.show_message = lambda parent, title, text, **kw: messages.append(f"{title}: {text}")
    data = generate("sine", folder / "tiny.h5", n=64, seed=1, input_steps=6, target_steps=3)
    window = MainWindow(AppSettings(open_settings(folder / "settings.ini")),
                        runs_dir=folder / "runs", load_dataset=False)
    window.show()
    assert window.open_dataset(data), messages
    # 58 training samples, batch 32: one epoch is 2 steps
    window.model_panel.set_values({"hidden": 4, "batch_size": 32, "epochs": 1,
                                   "cell": "rnn-tanh", "threads": 1})
    if kind == "comparisons":
        import ui.comparisons as comparisons

        comparisons.choose_comparison = lambda parent, config: CompareChoice(
            ("rnn-tanh",), (config.seed,))
    ended = 0
    for i in range(count):
        # a hang (one job that never ends) exits with every thread's stack; the time
        # of the whole stress depends on the machine's load, a job's end does not
        faulthandler.dump_traceback_later(JOB_LIMIT_S, exit=True)
        if kind == "runs":
            window.train()
        else:
            window.compare_cells()
            for view in list(window.compare_views):
                if not view.session:
                    view.close()
        assert window.session.is_running() or window.compare_session.is_running(), messages
        wait_idle(app, window)
        ended += 1
        if kind == "runs" and i % 10 == 5:
            row = window.runs_index.rows[-1] if window.runs_index.rows else None
            if row is not None:
                window.replay_run(row.run_id)
    faulthandler.cancel_dump_traceback_later()
    assert not messages, messages[:3]
    window.close()
    app.processEvents()
    window.deleteLater()
    app.processEvents()
    for _ in range(50):  # the last threads (heartbeats) end once their run has
        others = [t for t in threading.enumerate() if t is not threading.main_thread()]
        if not others:
            break
        time.sleep(0.05)
    assert not others, f"threads left behind: {[t.name for t in others]}"
    gc.collect()
    from ui.jobs import _Runner

    runners = [o for o in gc.get_objects() if type(o) is _Runner]
    assert not runners, f"{len(runners)} job runners left behind"
    runs = list((folder / "runs").iterdir())
    print(f"stress ok: {ended} {kind} ended, {len(runs)} entries in the runs folder")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]))
