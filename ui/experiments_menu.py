"""The Experiments menu: the shipped lessons one click away, sweeps, saved sweeps.

    Experiments ▸ <each lesson of resources/lessons>      run it and show its sweep view
                  Sweep the Model Panel's Settings…       a grid over the current settings
                  Open a Saved Sweep…                     any sweep (or comparison) recorded
                  Welcome…                                the first-start panel again

`add_experiments_menu(window, menu, runs_dir)` fills the menu and returns the
`Experiments` that owns the sweep job (ui.sweep_session.SweepSession: one sweep at a
time, on a plain thread) and the sweep views, each in its own window. A sweep starts
only while the window trains nothing (its launcher, when it has one, says). On the
first start (`welcome=True`) the welcome panel (ui.welcome) offers the lessons and
"open a file" over the window, which opens its built-in dataset behind it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QApplication, QInputDialog, QMenu, QWidget

from ui import errors
from ui.jobs import JobFailure
from ui.sweep_dialog import choose_sweep, confirm_runs
from ui.sweep_session import SweepSession, sweep_factory
from ui.sweep_view import SweepView
from ui.widgets import show_owned_window
from workbench.errors import WorkbenchError

WELCOME_KEY = "welcome/shown"


class Experiments(QObject):
    """Runs lessons and sweeps for `window` and keeps their views (`views`)."""

    def __init__(self, window: QWidget, runs_dir: Path) -> None:
        super().__init__(window)
        self._window = window
        self.runs_dir = Path(runs_dir)
        self.session = SweepSession(self)
        self.views: list[SweepView] = []
        self.welcome: QWidget | None = None
        self.session.failed.connect(self._on_failed)
        self.session.events_ready.connect(self._on_events)
        app = QApplication.instance()
        if app is not None:  # the last safety net: no sweep thread left running at exit
            app.aboutToQuit.connect(self._on_about_to_quit)

    # -- what the menu does ------------------------------------------------------------

    def lessons(self) -> list[Any]:
        from workbench.lessons import list_lessons

        return list_lessons()

    def run_lesson(self, name: str, *, changes: dict[str, Any] | None = None,
                   seeds: int | None = None, task_n: int | None = None,
                   ask: bool = True) -> SweepView | None:
        """Run the lesson `name` (after asking, with what to look for) and show its view.
        `changes` (RunConfig fields), `seeds` and `task_n` shrink it (tests, demos)."""
        from workbench.lessons import load_lesson
        from workbench.sweep_spec import SweepSpec, TaskSpec

        try:
            spec = load_lesson(name)
            if changes or seeds or task_n:
                task = spec.task
                if task is not None and task_n:
                    task = TaskSpec(task.name, task_n, task.seed, task.options)
                spec = SweepSpec.build(spec.base.replace(**(changes or {})).validate(),
                                       dict(spec.grid), task=task,
                                       task_grid=dict(spec.task_grid),
                                       seeds=seeds or list(spec.seeds), name=spec.name,
                                       title=spec.title, about=spec.about, view=spec.view)
        except WorkbenchError as exc:
            errors.show_error(self._window, exc, title="Cannot run this lesson")
            return None
        if ask and not errors.ask(self._window, spec.title or spec.name,
                                  f"{' '.join(spec.about.split())}\n\nThis trains "
                                  f"{spec.run_count} runs, one after another. Start it?"):
            return None
        return self.run_spec(spec)

    def run_spec(self, spec: Any, workers: int = 1, ray: Any = None) -> SweepView | None:
        """Start `spec` (when nothing trains; a large grid confirmed) and show its view."""
        if self._busy():
            errors.show_message(self._window, "Training in progress",
                                "Stop the current run, comparison or sweep first.",
                                level="info")
            return None
        if not confirm_runs(self._window, spec.run_count):
            return None
        view = self.show_view(SweepView(session=self.session, runs_dir=self.runs_dir))
        self.session.start(sweep_factory(spec, runs_dir=self.runs_dir, workers=workers, ray=ray))
        view.progress.label.setText(f"Starting {spec.run_count} runs…")
        return view

    def sweep_model_settings(self) -> SweepView | None:
        """Ask for a grid over the Model panel's settings on the open dataset, and run it."""
        document = getattr(self._window, "document", None)
        panel = getattr(self._window, "model_panel", None)
        if document is None or panel is None or document.summary is None:
            errors.show_message(self._window, "No dataset",
                                "Open a dataset first (File ▸ Open).", level="warning")
            return None
        try:
            config = panel.run_config(document.path, document.inputs, document.targets)
        except WorkbenchError as exc:
            errors.show_error(self._window, exc, title="Cannot sweep these settings")
            return None
        choice = choose_sweep(self._window, config)
        if choice is None:
            return None
        return self.run_spec(choice.spec, choice.workers, choice.ray)

    def open_saved(self) -> SweepView | None:
        """Pick a saved sweep (or comparison) and show it."""
        from workbench.sweeps import list_sweeps

        found = list(reversed(list_sweeps(self.runs_dir)))
        if not found:
            errors.show_message(self._window, "No sweeps yet",
                                f"No sweep has been recorded in {self.runs_dir}.", level="info")
            return None
        labels = [f"{s.name} – {s.status}, {len(s.run_ids)} runs ({s.sweep_id})" for s in found]
        label, ok = QInputDialog.getItem(self._window, "Open a saved sweep", "Sweep:", labels,
                                         0, False)
        if not ok:
            return None
        return self.open_sweep(found[labels.index(label)].sweep_id)

    def open_sweep(self, sweep_id: str) -> SweepView | None:
        """Show a saved sweep in its own window."""
        from workbench.sweeps import open_sweep

        try:
            sweep = open_sweep(sweep_id, self.runs_dir)
        except WorkbenchError as exc:
            errors.show_error(self._window, exc, title="Cannot open this sweep")
            return None
        return self.show_view(SweepView(sweep, runs_dir=self.runs_dir))

    def show_welcome(self) -> QWidget:
        """The welcome panel (ui.welcome), over the window."""
        from ui.welcome import WelcomePanel

        if self.welcome is None:
            panel = WelcomePanel(self.lessons(), self._window)
            panel.lesson_chosen.connect(lambda name: self.run_lesson(name))
            panel.open_file_requested.connect(self._open_file)
            panel.destroyed.connect(lambda _obj=None: setattr(self, "welcome", None))
            self.welcome = panel
        self.welcome.show()
        self.welcome.raise_()
        return self.welcome

    # -- views -------------------------------------------------------------------------

    def show_view(self, view: SweepView) -> SweepView:
        return show_owned_window(self._window, view, self.views, largest=(1400, 900),
                                 smallest=(900, 650))

    def close_views(self) -> None:
        """Close every sweep view (a running sweep is cancelled and waited for)."""
        for view in list(self.views):
            view.close()
        if self.welcome is not None:
            self.welcome.close()

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        return self.session.shutdown(timeout_ms)

    def _on_about_to_quit(self) -> None:
        self.shutdown(60_000)

    def _busy(self) -> bool:
        launcher = getattr(self._window, "launcher", None)
        return self.session.is_running() or bool(launcher is not None and launcher.busy())

    def _open_file(self) -> None:
        panel = getattr(self._window, "data_panel", None)
        if panel is not None:
            panel.open_dialog()

    def _on_events(self, events: tuple) -> None:
        from workbench.sweeps import SweepFinished, SweepRunFinished

        index = getattr(self._window, "runs_index", None)
        if index is not None and any(isinstance(e, (SweepRunFinished, SweepFinished))
                                     for e in events):
            index.refresh()  # the sweep's runs appear in the Runs panel

    def _on_failed(self, failure: JobFailure) -> None:
        title = "The sweep could not run" if failure.user_error else "The sweep failed"
        errors.show_failure(self._window, failure, title=title)


class _FirstShow(QObject):
    """Shows the welcome panel once the window is first on screen."""

    def __init__(self, window: QWidget, experiments: Experiments, settings: Any) -> None:
        super().__init__(window)
        self._experiments, self._settings = experiments, settings
        window.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.Show:
            watched.removeEventFilter(self)
            store = getattr(self._settings, "store", None)
            if store is not None:
                store.setValue(WELCOME_KEY, True)
            QTimer.singleShot(0, self._experiments.show_welcome)
        return False


def first_start(settings: Any) -> bool:
    """True until the welcome panel has been shown once (a fresh settings file)."""
    store = getattr(settings, "store", None)
    return store is not None and not store.value(WELCOME_KEY)


def add_experiments_menu(window: QWidget, menu: QMenu, runs_dir: Path, *,
                         settings: Any | None = None, welcome: bool = False) -> Experiments:
    """Fill `menu` (the window's Experiments menu); with `welcome`, show the welcome panel
    when the window first appears, if these `settings` never showed it."""
    experiments = Experiments(window, runs_dir)
    try:
        lessons = experiments.lessons()
    except WorkbenchError as exc:  # a broken lesson file: the menu says so, the app runs
        lessons = []
        broken = QAction(f"(lessons unavailable: {exc})", window)
        broken.setEnabled(False)
        menu.addAction(broken)
    for lesson in lessons:
        action = QAction(lesson.title, window)
        action.setToolTip(f"{lesson.runs} runs. {' '.join(lesson.about.split())}")
        action.triggered.connect(lambda _checked=False, n=lesson.name: experiments.run_lesson(n))
        menu.addAction(action)
    menu.setToolTipsVisible(True)
    menu.addSeparator()
    for text, slot in (("&Sweep the Model Panel's Settings…", experiments.sweep_model_settings),
                       ("&Open a Saved Sweep…", experiments.open_saved),
                       ("&Welcome…", experiments.show_welcome)):
        action = QAction(text, window)
        action.triggered.connect(lambda _checked=False, s=slot: s())
        menu.addAction(action)
    if welcome and settings is not None and first_start(settings):
        _FirstShow(window, experiments, settings)
    return experiments
