"""The window's comparisons: a queue of runs (Compare Cells…) and saved ones reopened.

`Comparisons` owns the `CompareSession` (ui.sessions) and the comparison views it
opens, each in its own window. Only one of a run and a comparison trains at a time:
the window asks `is_running()` before starting either.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QWidget

from ui import errors
from ui.compare_dialog import choose_comparison
from ui.compare_view import CompareView
from ui.jobs import JobFailure
from ui.runs_panel import RunsIndex
from ui.sessions import CompareSession, runner_factory
from ui.widgets import show_owned_window
from workbench.compare import ComparisonFinished, QueuedRunFinished, QueuedRunStarted
from workbench.config import RunConfig
from workbench.errors import WorkbenchError


class Comparisons(QObject):
    """Runs comparisons and keeps their views; `views` lists the open ones."""

    def __init__(self, window: QWidget, runs_dir: Path, runs_index: RunsIndex) -> None:
        super().__init__(window)
        self._window = window
        self.runs_dir = runs_dir
        self.runs_index = runs_index
        self.session = CompareSession(self)
        self.views: list[CompareView] = []
        self.session.events_ready.connect(self._on_events)
        self.session.failed.connect(self._on_failed)

    def start(self, config: RunConfig) -> CompareView | None:
        """Ask which cells and seeds, then train them one after another and show the
        comparison in its own window."""
        choice = choose_comparison(self._window, config)
        if choice is None:
            return None
        view = self.show_view(CompareView(session=self.session))
        self.session.start(runner_factory(config, choice.cells, choice.seeds,
                                          runs_dir=self.runs_dir))
        view.progress.label.setText(f"Starting {choice.runs} runs…")
        return view

    def open(self, comparison_id: str) -> CompareView | None:
        """Reopen a saved comparison in its own window."""
        from workbench.compare import open_comparison

        try:
            comparison = open_comparison(comparison_id, self.runs_dir)
            view = CompareView()
            view.set_comparison(comparison)
        except WorkbenchError as exc:
            errors.show_error(self._window, exc, title="Cannot open this comparison")
            return None
        return self.show_view(view)

    def show_view(self, view: CompareView) -> CompareView:
        return show_owned_window(self._window, view, self.views, largest=(1500, 950),
                                 smallest=(900, 700))

    def close_views(self) -> None:
        for view in list(self.views):
            view.close()

    def _on_events(self, events: tuple) -> None:
        if any(isinstance(e, (QueuedRunStarted, QueuedRunFinished, ComparisonFinished))
               for e in events):
            self.runs_index.refresh()  # the comparison's runs appear in the Runs panel

    def _on_failed(self, failure: JobFailure) -> None:
        title = "The comparison could not run" if failure.user_error else "The comparison failed"
        errors.show_failure(self._window, failure, title=title)
