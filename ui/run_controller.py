"""The window's run: start, resume, the live events, the end, and replays.

`RunController` owns the `TrainingSession` (ui.sessions). A run is started by the
workbench's run service in the training thread (opening the data there keeps the
GUI thread free); the drained events go to the plots through the `PlotFeed`, to the
Runs panel's live row and to the status bar. A recorded run is replayed through the
same `PlotFeed` call. It holds no training logic.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QLabel, QStatusBar, QWidget

from ui import errors
from ui.jobs import JobFailure, Sink
from ui.plot_feed import PlotFeed, RunHistories
from ui.predictions_router import PredictionsRouter
from ui.runs_panel import RunsIndex
from ui.sessions import TrainingSession
from workbench.config import RunConfig
from workbench.errors import WorkbenchError
from workbench.events import (
    EpochMetrics,
    Event,
    ListenerError,
    RunFinished,
    RunStarted,
    StepMetrics,
    throughput,
)
from workbench.run_service import RunService

LIVE_ROW_INTERVAL_S = 1.0  # how often the live run's line in the Runs panel updates
END_WORDS = {"completed": "finished", "stopped": "stopped", "diverged": "diverged",
             "failed": "failed"}


class RunController(QObject):
    """Starts and follows the window's one training run.

    `train(config)`, `resume(run_id)`, `replay(run_id)`; `live_run_id` while a run
    trains, `shown_run_id` for a replayed one; `run_ended` (run id) after its end was
    shown. Messages go to `parent_widget`'s dialogs, the status bar and `run_label`.
    """

    run_ended = Signal(str)

    def __init__(self, parent_widget: QWidget, runs_dir: Path, feed: PlotFeed,
                 runs_index: RunsIndex, histories: RunHistories, predictions: PredictionsRouter,
                 status_bar: QStatusBar, run_label: QLabel) -> None:
        super().__init__(parent_widget)
        self._widget = parent_widget
        self.service = RunService(runs_dir)
        self.session = TrainingSession(self)
        self.feed = feed
        self.runs_index = runs_index
        self.histories = histories
        self.predictions = predictions
        self.status_bar = status_bar
        self.run_label = run_label
        self.live_run_id: str | None = None
        self.shown_run_id: str | None = None  # the recorded run the plots show
        self.closing = False  # the window is closing: no dialogs for the run's end
        self._progress: list[Event] = []
        self._row_shown = 0.0
        self.session.events_ready.connect(self._on_events)
        self.session.failed.connect(self._on_failed)
        self.session.finished.connect(self._on_finished)

    # --- starting -------------------------------------------------------------------------
    def train(self, config: RunConfig) -> None:
        """Start a new run of `config` (the data is opened in the training thread)."""
        predictor = self.predictions.live_predictor()
        service = self.service

        def factory(sink: Sink) -> Any:
            run = service.start(config, [sink, predictor], thread_policy="gui")
            predictor.bind(sink, run.trainer)
            return run

        self._start(factory)

    def resume(self, run_id: str) -> bool:
        """Continue a stopped or crashed run from its latest checkpoint; False, with a
        message, when it cannot be resumed."""
        try:  # the plots show the history up to the checkpoint, then the run goes on
            history = self.service.history_until(run_id)
        except WorkbenchError as exc:
            errors.show_error(self._widget, exc, title="Cannot resume this run")
            return False
        predictor = self.predictions.live_predictor()
        service = self.service

        def factory(sink: Sink) -> Any:
            run = service.resume(run_id, [sink, predictor], thread_policy="gui")
            predictor.bind(sink, run.trainer)
            return run

        self._start(factory, history)
        return True

    def _start(self, factory: Any, history: list[Event] | None = None) -> None:
        # nothing of the previous run is carried into this one: its id, its progress
        self.shown_run_id = None
        self.live_run_id = None
        self.runs_index.live_run_id = None
        self._row_shown = 0.0
        self.feed.clear()
        if history:
            self.feed.replay(history)
        self._progress = []
        self.run_label.setText("Starting…")
        self.session.start(factory)

    def replay(self, run_id: str) -> bool:
        """Show a recorded run in the plots, through the same call as a live run."""
        if self.session.is_running():
            self.status_bar.showMessage(
                "The plots show the run in progress; tick a run to overlay it instead.", 8000)
            return False
        try:
            events = self.histories.events(run_id)
        except WorkbenchError as exc:
            errors.show_error(self._widget, exc, title="Cannot replay this run")
            return False
        self.feed.replay(events)
        self.shown_run_id = run_id
        self.predictions.show_recorded(run_id)
        row = self.runs_index.row(run_id)
        status = f" ({row.status})" if row else ""
        self.run_label.setText(f"Showing: {row.name if row else run_id}{status}")
        return True

    def on_replay_requested(self, run_id: str) -> None:
        """A run selected in the Runs panel: replay it unless it is shown already."""
        if run_id not in (self.live_run_id, self.shown_run_id):
            self.replay(run_id)

    # --- while it trains ------------------------------------------------------------------
    def _on_events(self, events: tuple) -> None:
        for event in events:
            if isinstance(event, (StepMetrics, EpochMetrics)):
                self._progress.append(event)
            elif isinstance(event, RunStarted):
                self._on_started(event)
            elif isinstance(event, ListenerError):
                self.status_bar.showMessage(
                    f"Recording problem ({event.listener}): {event.message}", 10000)
        self.feed.show(events)
        if self.live_run_id and time.monotonic() - self._row_shown >= LIVE_ROW_INTERVAL_S:
            self._show_live_row()

    def _on_started(self, event: RunStarted) -> None:
        self.live_run_id = event.run_id
        self.runs_index.live_run_id = event.run_id
        self.runs_index.refresh()
        row = self.runs_index.row(event.run_id)
        self.run_label.setText(f"Training: {row.name if row else event.run_id}")
        if event.warning:  # e.g. resumed with another thread count
            self.status_bar.showMessage(event.warning, 15000)

    def _show_live_row(self) -> None:
        """The live run's line in the Runs panel: steps, best loss, time, speed."""
        self._row_shown = time.monotonic()
        steps = [e for e in self._progress if isinstance(e, StepMetrics)]
        losses = [e.val_loss for e in self._progress
                  if isinstance(e, EpochMetrics) and math.isfinite(e.val_loss)]
        self._progress = self._progress[-1:] if steps else []
        if not steps and not losses:
            return
        last = steps[-1] if steps else None
        self.runs_index.update_live(
            self.live_run_id,
            steps=last.step if last else None,
            seconds=last.seconds if last else None,
            sequences_per_second=throughput(last.sequences, last.seconds) if last else None,
            best_val_loss=min(losses) if losses else None)

    # --- the end --------------------------------------------------------------------------
    def _on_failed(self, failure: JobFailure) -> None:
        self.run_label.setText("")
        title = "Training could not start" if failure.user_error else "Training failed"
        reason = (failure.message or "unknown error").strip().splitlines()[0]
        self.status_bar.showMessage(f"{title}: {reason}", 30000)
        errors.show_failure(self._widget, failure, title=title)

    def _on_finished(self, result: RunFinished | None) -> None:
        self.feed.redraw_now()  # the last events at once
        run_id = self.live_run_id
        # Other samples of the finished run now come from its best checkpoint.
        self.predictions.show_recorded(run_id, predict_now=False)
        self.runs_index.live_run_id = None
        self.runs_index.refresh()
        if result is not None and run_id is None:  # stopped in its set-up: nothing recorded
            self.run_label.setText("")
            self.status_bar.showMessage(f"Run {result.status}: {result.message}", 15000)
        elif result is not None:
            word = END_WORDS.get(result.status, result.status)
            name = self.run_label.text().removeprefix("Training: ")
            self.run_label.setText(f"{name}: {word}")
            message = f"Run {word} at step {result.step}"
            if result.message and result.status in ("diverged", "failed"):
                message += f": {result.message}"
            self.status_bar.showMessage(message, 15000)
            if result.status == "failed" and not self.closing:
                errors.show_message(self._widget, "Training failed",
                                    result.message or "unknown error")
        self.live_run_id = None
        if run_id:
            self.run_ended.emit(run_id)
