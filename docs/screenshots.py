"""Take every screenshot of the README and docs, as a user sees them, at one screen size.

Two steps. `prepare` trains what the screenshots show, headless, through the CLI (the
same runs a user gets from the commands named in the docs). `shoot` opens the app on
those runs under a real X server with a window manager, at the screen's size, and
grabs the screen (window frame included) or one panel:

    .venv/bin/python docs/screenshots.py prepare /tmp/shots-home
    Xvfb :99 -screen 0 1366x768x24 & DISPLAY=:99 openbox &
    DISPLAY=:99 QT_QPA_PLATFORM=xcb .venv/bin/python docs/screenshots.py shoot \\
        /tmp/shots-home docs/images/1366x768

Run `shoot` once per size (1366x768 and 1920x1080: a new Xvfb for each). `--only NAME`
takes one scene. The scenes, and where the docs show them:

    welcome       README            the first start: the welcome panel over the window
    main          README            an LSTM on the built-in sine task, replayed
    presentation  docs/teaching.md  presentation mode (F5) on the gradient plot
    compare       comparison-guide  rnn-tanh against lstm on the copy task, 3 seeds
    predictions   comparison-guide  the Predictions panel of the comparison's lstm
    gates         comparison-guide  the Gates panel of the same run
    grad-norm     lessons           the clipping lesson's clipped IRNN, seed 0
    attention     lessons           the attention lesson's Bahdanau run
    sweep-vanishing, sweep-memory   lessons: the sweep view of two lessons
    inspector     inspector         rnn-tanh and lstm side by side on the copy task
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SCENES = ("welcome", "main", "presentation", "compare", "predictions", "gates", "grad-norm",
          "attention", "sweep-vanishing", "sweep-memory", "inspector")
SETTLE_MS = 1500  # lets the plots draw (their redraw throttle) before a grab


# -- prepare: the runs the screenshots show ------------------------------------------------
def _cli(home: Path, *args: str) -> dict[str, Any]:
    """Run `main.py ARGS --json` with the shots' home; its last line, parsed."""
    env = dict(os.environ, SEQUENCE_WORKBENCH_HOME=str(home))
    out = subprocess.run([sys.executable, str(ROOT / "main.py"), *args, "--json"], env=env,
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def prepare(home: Path) -> dict[str, Any]:
    """Train the runs, comparison and sweeps the scenes show; write their ids to
    HOME/shots.json."""
    home.mkdir(parents=True, exist_ok=True)
    data = home / "shots-data"
    data.mkdir(exist_ok=True)
    runs = str(home / "runs")
    sine, copy = data / "sine.h5", data / "copy-l5-d8-v6.h5"
    subprocess.run([sys.executable, str(ROOT / "main.py"), "make-dataset", "sine",
                    "--out", str(sine), "--n", "2000", "--force"], check=True)
    subprocess.run([sys.executable, str(ROOT / "main.py"), "make-dataset", "copy",
                    "--out", str(copy), "--n", "2000", "--length", "5", "--delay", "8",
                    "--vocab", "6", "--force"], check=True)
    ids: dict[str, Any] = {"sine": str(sine), "copy": str(copy)}
    ids["main"] = _cli(home, "train", "--data", str(sine), "--cell", "lstm", "--hidden", "32",
                       "--epochs", "6", "--batch", "64", "--runs-dir", runs,
                       "--no-progress")["run_id"]
    ids["compare"] = _cli(home, "compare", "--data", str(copy), "--cells", "rnn-tanh,lstm",
                          "--hidden", "48", "--epochs", "8", "--seeds", "3", "--runs-dir", runs,
                          "--no-progress")["comparison_id"]
    for lesson in ("vanishing-exploding", "memory-length", "clipping", "attention"):
        ids[lesson] = _cli(home, "sweep", "--preset", lesson, "--yes", "--runs-dir", runs,
                           "--no-progress")["sweep_id"]
    (home / "shots.json").write_text(json.dumps(ids, indent=1), encoding="utf-8")
    return ids


# -- shoot: the app on those runs ----------------------------------------------------------
class Shooter:
    """Opens the app on the prepared runs and takes the scenes one after another, each
    when the previous one has been saved (the event loop runs between them)."""

    def __init__(self, home: Path, out: Path, scenes: list[str]) -> None:
        from ui.app import make_application

        self.home, self.out, self.todo = home, out, list(scenes)
        self.ids = json.loads((home / "shots.json").read_text(encoding="utf-8"))
        self.app = make_application()
        self.window: Any = None
        self.extra: list[Any] = []  # views opened for a scene, closed after it
        self.saved: list[Path] = []

    # the scenes' helpers
    def _new_window(self, *, first_start: bool, data: str | None = None) -> Any:
        from ui.app import create_main_window

        self._close_window()
        settings = Path(tempfile.mkdtemp(prefix="shots-settings-")) / "settings.ini"
        if not first_start:
            settings.write_text("[welcome]\nshown=true\n", encoding="utf-8")
        self.window = create_main_window(None if first_start else data or self.ids["sine"],
                                         settings_path=str(settings))
        self.window.showMaximized()
        return self.window

    def _close_window(self) -> None:
        for view in self.extra:
            view.close()
        self.extra.clear()
        if self.window is not None:
            self.window.close()
            self.window = None

    def _replay(self, run_id: str, data: str) -> None:
        """Replay a run once the window has opened its dataset (a window opens its first
        file after it is shown: replaying before would be undone by that open)."""
        from PySide6.QtCore import QDeadlineTimer, QThread

        window = self.window
        deadline = QDeadlineTimer(60_000)
        while (Path(window.document.path or "").resolve() != Path(data).resolve()
               or window.data_panel.opening) \
                and not deadline.hasExpired():
            self.app.processEvents()
            QThread.msleep(20)
        window.runs_index.refresh()
        if not window.replay_run(run_id):
            raise RuntimeError(f"could not replay {run_id}")
        window.feed.bring_up_to_date()

    def _sweep_run(self, sweep_id: str, match: Callable[[dict[str, Any]], bool]) -> str:
        from workbench.sweeps import open_sweep

        sweep = open_sweep(sweep_id, self.home / "runs")
        for entry in sweep.entries:
            point = sweep.points[entry.point]
            if entry.run_id and match({**point.params, "seed": entry.seed}):
                return entry.run_id
        raise RuntimeError(f"no run of sweep {sweep_id} matches")

    def _comparison_run(self, cell: str) -> tuple[str, str]:
        from workbench.compare import open_comparison

        comparison = open_comparison(self.ids["compare"], self.home / "runs")
        entry = next(e for e in comparison.entries if e.cell == cell and e.run_id)
        return str(entry.run_id), str(comparison.config().data)

    def _grab_screen(self, name: str) -> None:
        from PySide6.QtGui import QGuiApplication

        path = self.out / f"screenshot-{name}.png"
        QGuiApplication.primaryScreen().grabWindow(0).save(str(path))
        self.saved.append(path)
        print(f"saved {path}")

    def _grab_dock(self, name: str, dock: Any) -> None:
        path = self.out / f"screenshot-{name}.png"
        dock.widget().grab().save(str(path))
        self.saved.append(path)
        print(f"saved {path}")

    def _show_dock(self, dock: Any) -> None:
        dock.show()
        dock.raise_()

    # the scenes: each sets the window up and returns the grab to run once it has drawn
    def scene_welcome(self) -> Callable[[], None]:
        self._new_window(first_start=True)
        return lambda: self._grab_screen("welcome")

    def scene_main(self) -> Callable[[], None]:
        self._new_window(first_start=False)
        self._replay(self.ids["main"], self.ids["sine"])
        return lambda: self._grab_screen("main")

    def scene_presentation(self) -> Callable[[], None]:
        run_id, data = self._comparison_run("rnn-tanh")
        self._new_window(first_start=False, data=data)
        self._replay(run_id, data)
        self.window.presentation.enter(self.window.docks.gradient)
        return lambda: self._grab_screen("presentation")

    def scene_compare(self) -> Callable[[], None]:
        self._new_window(first_start=False)
        view = self.window.open_comparison(self.ids["compare"])
        view.showMaximized()
        self.extra.append(view)
        return lambda: self._grab_screen("compare")

    def scene_predictions(self) -> Callable[[], None]:
        run_id, data = self._comparison_run("lstm")
        self._new_window(first_start=False, data=data)
        self._replay(run_id, data)
        self._show_dock(self.window.docks.predictions)
        return lambda: self._grab_dock("predictions", self.window.docks.predictions)

    def scene_gates(self) -> Callable[[], None]:
        run_id, data = self._comparison_run("lstm")
        self._new_window(first_start=False, data=data)
        self._replay(run_id, data)
        self._show_dock(self.window.docks.gates)
        return lambda: self._grab_dock("gates", self.window.docks.gates)

    def _lesson_run(self, lesson: str, match: Callable[[dict[str, Any]], bool]) -> None:
        from workbench.runs import open_run

        run_id = self._sweep_run(self.ids[lesson], match)
        data = str(open_run(run_id, self.home / "runs").config().data)
        self._new_window(first_start=False, data=data)
        self._replay(run_id, data)

    def scene_grad_norm(self) -> Callable[[], None]:
        self._lesson_run("clipping", lambda v: v.get("clip") not in (None, 0, 0.0, "off")
                         and v["seed"] == 0)
        self._show_dock(self.window.docks.grad_norm)
        return lambda: self._grab_dock("grad-norm", self.window.docks.grad_norm)

    def scene_attention(self) -> Callable[[], None]:
        self._lesson_run("attention", lambda v: v.get("attention") == "bahdanau")
        self._show_dock(self.window.docks.attention)
        return lambda: self._grab_dock("attention", self.window.docks.attention)

    def _sweep_scene(self, lesson: str, name: str) -> Callable[[], None]:
        self._new_window(first_start=False)
        view = self.window.experiments.open_sweep(self.ids[lesson])
        view.showMaximized()
        self.extra.append(view)
        return lambda: self._grab_screen(name)

    def scene_sweep_vanishing(self) -> Callable[[], None]:
        return self._sweep_scene("vanishing-exploding", "sweep-vanishing")

    def scene_sweep_memory(self) -> Callable[[], None]:
        return self._sweep_scene("memory-length", "sweep-memory")

    def scene_inspector(self) -> Callable[[], None]:
        self._close_window()
        rnn, _data = self._comparison_run("rnn-tanh")
        lstm, _data = self._comparison_run("lstm")
        path = self.out / "screenshot-inspector.png"
        subprocess.run([sys.executable, "-m", "ui.inspect_panel", "--runs-dir",
                        str(self.home / "runs"), "--run", rnn, "--compare", lstm,
                        "--screenshot", str(path)], check=True, cwd=ROOT)
        self.saved.append(path)
        print(f"saved {path}")
        return lambda: None

    # the loop
    def next_scene(self) -> None:
        from PySide6.QtCore import QTimer

        if not self.todo:
            self._close_window()
            self.app.quit()
            return
        name = self.todo.pop(0)
        grab = getattr(self, "scene_" + name.replace("-", "_"))()

        def finish() -> None:
            self.app.processEvents()
            if self.window is not None:
                self.window.feed.bring_up_to_date()
            self.app.processEvents()
            grab()
            QTimer.singleShot(0, self.next_scene)

        QTimer.singleShot(SETTLE_MS * (3 if name == "welcome" else 1), finish)

    def run(self) -> int:
        from PySide6.QtCore import QTimer

        self.out.mkdir(parents=True, exist_ok=True)
        QTimer.singleShot(0, self.next_scene)
        self.app.exec()
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="train the runs the screenshots show")
    p.add_argument("home")
    s = sub.add_parser("shoot", help="take the screenshots at this screen's size")
    s.add_argument("home")
    s.add_argument("out")
    s.add_argument("--only", action="append", choices=SCENES, help="one scene (repeatable)")
    args = parser.parse_args(argv)
    home = Path(args.home).resolve()
    os.environ["SEQUENCE_WORKBENCH_HOME"] = str(home)
    if args.command == "prepare":
        print(json.dumps(prepare(home), indent=1))
        return 0
    return Shooter(home, Path(args.out).resolve(), args.only or list(SCENES)).run()


if __name__ == "__main__":
    sys.exit(main())
