"""Train / Pause-Resume / Stop, the progress bar, and the ETA and speed read-outs.

`TrainingControls` shows a `TrainingSession` (ui.sessions): it enables its actions
from the session's state and reads progress from the session's events. It asks
for a run with `train_requested`; the window decides what to train.
"""

from __future__ import annotations

import math
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QToolButton, QWidget

from ui.sessions import TrainingSession
from workbench.events import (
    PhaseProgress,
    RunFinished,
    RunStarted,
    RunStatus,
    StepMetrics,
    throughput,
)

DISPLAY_MS = 250  # how often the progress bar and the ETA / speed read-outs change
PHASE_WORDS = {"normalisation": "Computing the normalisation statistics",
               "validation": "Validating"}


def format_duration(seconds: float | None) -> str:
    """'42 s', '3 min 05 s', '1 h 02 min'; '–' when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "–"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def planned_steps(config: dict[str, Any], train_size: int) -> tuple[int | None, int]:
    """(total optimizer steps, steps per epoch) of a run's config (RunConfig.to_dict()).

    Steps per epoch is ceil(N_train / batch_size); the total is `steps` when set,
    else epochs times that.
    """
    training = config.get("training", config)
    batch = int(training.get("batch_size") or 1)
    per_epoch = max(1, math.ceil(max(train_size, 1) / max(batch, 1)))
    if training.get("steps"):
        return int(training["steps"]), per_epoch
    if training.get("epochs"):
        return int(training["epochs"]) * per_epoch, per_epoch
    return None, per_epoch


def _speed_text(event: StepMetrics) -> str:
    """The run's sequences/s (workbench.events.throughput, as the Runs list shows it); a
    record without the sequence count (an older run, a demo) says its step's rate."""
    speed = throughput(event.sequences, event.seconds)
    if speed is None and event.sequences_per_second > 0:
        speed = event.sequences_per_second
    return "" if speed is None else f"{speed:,.0f} sequences/s"


class TrainingControls(QWidget):
    """The toolbar row of a run: actions, progress, and status-bar read-outs."""

    train_requested = Signal()

    def __init__(self, session: TrainingSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self._total: int | None = None
        self._epochs: int | None = None
        self._first: tuple[int, float] | None = None  # (step, seconds) of the first step seen
        self._state = "idle"
        self._step = 0
        self._epoch = 0
        self._in_setup = False  # a set-up phase shows its progress, no run has started yet
        self._run_live = False  # between RunStarted and RunFinished
        self._finished_seen = False  # the current job's run has ended (RunFinished)
        self._sequences = 0  # sequences trained on so far in the run
        self._failure = ""  # why the current job failed, for the idle bar

        self.train_action = QAction("Train", self)
        self.train_action.setShortcut(QKeySequence("Ctrl+Return"))
        self.train_action.setToolTip("Train a new model on the dataset with the settings "
                                     "of the Model panel (Ctrl+Return)")
        self.train_action.triggered.connect(self.train_requested)
        self.pause_action = QAction("Pause", self)
        self.pause_action.setShortcut(QKeySequence("Ctrl+P"))
        self.pause_action.setToolTip("Pause after the current step; press again to resume (Ctrl+P)")
        self.pause_action.triggered.connect(self._on_pause_clicked)
        self.stop_action = QAction("Stop", self)
        self.stop_action.setShortcut(QKeySequence("Ctrl+."))
        self.stop_action.setToolTip("Stop after the current step and save a checkpoint; "
                                    "the run can be resumed later (Ctrl+.)")
        self.stop_action.triggered.connect(session.stop)

        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        for action, name in ((self.train_action, "trainButton"),
                             (self.pause_action, "pauseButton"),
                             (self.stop_action, "stopButton")):
            button = QToolButton(self)
            button.setDefaultAction(action)
            button.setObjectName(name)
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
            button.setMinimumWidth(84)
            layout.addWidget(button)
        self.progress = QProgressBar(self)
        self.progress.setMinimumWidth(280)
        self.progress.setTextVisible(True)
        self.progress.setFormat("Ready to train")
        self.progress.setValue(0)
        layout.addSpacing(8)
        layout.addWidget(self.progress, 1)

        # Shown by the window in its status bar.
        self.eta_label = QLabel("", self)
        self.eta_label.setToolTip("Estimated time left in this run")
        self.speed_label = QLabel("", self)
        self.speed_label.setToolTip("Training throughput: sequences per second")
        # Fixed widths: a changing text never re-lays out (and repaints) the status bar.
        metrics = self.fontMetrics()
        self.eta_label.setMinimumWidth(metrics.horizontalAdvance("ETA 00 h 00 min") + 8)
        self.speed_label.setMinimumWidth(metrics.horizontalAdvance("000,000 sequences/s") + 8)
        for label in (self.eta_label, self.speed_label):
            label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        # Progress read-outs change a few times a second at most, whatever the step rate.
        self._pending_step: StepMetrics | None = None
        self._display_timer = QTimer(self)
        self._display_timer.setSingleShot(True)
        self._display_timer.setInterval(DISPLAY_MS)
        self._display_timer.timeout.connect(self._on_display_due)

        session.state_changed.connect(self._on_state_changed)
        session.failed.connect(self._on_failed)
        session.events_ready.connect(self._on_events)
        self._on_state_changed(session.state)

    # --- slots ------------------------------------------------------------------------
    def _on_pause_clicked(self) -> None:
        if self._state == "paused":
            self.session.resume()
        else:
            self.session.pause()

    def _on_state_changed(self, state: str) -> None:
        previous, self._state = self._state, state
        idle = state == "idle"
        if state == "running" and previous == "idle":  # a new job: nothing of the last run
            self._reset_progress()
        elif idle and previous != "idle" and not self._finished_seen:
            self._show_idle()  # it ended before its run did (a failed start): idle again
        self.train_action.setEnabled(idle)
        self.pause_action.setEnabled(state in ("running", "paused"))
        self.pause_action.setText("Resume" if state == "paused" else "Pause")
        self.stop_action.setEnabled(state in ("running", "paused"))
        if state == "stopping":
            self.progress.setFormat("Stopping after the current step…")
        elif state == "paused":
            self.progress.setFormat("Paused · " + self._position_text())
        elif state == "running" and self._first is not None:
            self.progress.setFormat(self._position_text())
        elif state == "running":
            self.progress.setFormat("Starting…")
        elif idle and self._in_setup:  # stopped during the set-up: nothing was trained
            self._show_idle()

    def _reset_progress(self) -> None:
        """A new run is starting: the last run's position, total and read-outs go."""
        self._total = self._epochs = None
        self._first = None
        self._step = self._epoch = 0
        self._sequences = 0
        self._in_setup = False
        self._run_live = False
        self._finished_seen = False
        self._failure = ""
        self._pending_step = None
        self._display_timer.stop()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("Starting…")
        self.eta_label.setText("")
        self.speed_label.setText("")

    def _on_failed(self, failure: Any) -> None:
        self._failure = (getattr(failure, "message", "") or "").strip().splitlines()[0:1]
        self._failure = self._failure[0] if self._failure else "unknown error"

    def _show_idle(self) -> None:
        """Back to idle without a run's end to show: ready, or why the start failed."""
        self._in_setup = False
        self._run_live = False
        self._display_timer.stop()
        self._pending_step = None
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat(f"Could not start: {self._failure}" if self._failure
                                else "Ready to train")
        self.progress.setToolTip(self._failure)
        self.eta_label.setText("")
        self.speed_label.setText("")

    def _on_events(self, events: tuple) -> None:
        last_step: StepMetrics | None = None  # only the newest step of a batch is shown
        for event in events:
            if isinstance(event, StepMetrics):
                last_step = event
                if self._first is None:
                    self._first = (event.step - 1, event.seconds)
                continue
            if last_step is not None:
                self._show_step(last_step)
                last_step = None
            if isinstance(event, RunStarted):
                self._on_run_started(event)
            elif isinstance(event, RunFinished):
                self._on_run_finished(event)
            elif isinstance(event, RunStatus) and event.status == "paused":
                self.progress.setFormat("Paused · " + self._position_text())
            elif isinstance(event, PhaseProgress):
                self._on_phase(event)
        if last_step is not None:
            self._show_step(last_step)

    def _on_run_started(self, event: RunStarted) -> None:
        # "reader_splits": the splits as the trainer reads them ("splits": as stored)
        splits = event.dataset.get("reader_splits") or event.dataset.get("splits") or {}
        train_size = int(splits.get("train", 0))
        self._total, per_epoch = planned_steps(event.config, train_size)
        self._epochs = math.ceil(self._total / per_epoch) if self._total else None
        self._first = None
        self._in_setup = False
        self._run_live = True
        self._step = event.resumed_from_step
        self._epoch = 0
        self.progress.setRange(0, self._total or 0)
        self.progress.setValue(event.resumed_from_step)
        self.progress.setToolTip("")
        self.progress.setFormat("Starting…")
        self.eta_label.setText("")
        self.speed_label.setText("")

    def _on_phase(self, event: PhaseProgress) -> None:
        """A long phase outside the steps: the set-up's own bar before the first step;
        during training (validation) its count beside the position, the bar unchanged."""
        words = PHASE_WORDS.get(event.phase, event.phase.capitalize())
        share = f"{100 * event.done / event.total:.0f}%" if event.total else ""
        if not self._run_live:  # before RunStarted
            self._in_setup = True
            self.progress.setRange(0, max(event.total, 1))
            self.progress.setValue(min(event.done, event.total))
            self.progress.setFormat(f"{words}… {share}")
        elif event.done < event.total:
            self.progress.setFormat(f"{self._position_text()} · {words.lower()} "
                                    f"{event.done:,} of {event.total:,} {event.unit}")
        elif self._state == "running":
            self.progress.setFormat(self._position_text())

    def _show_step(self, event: StepMetrics) -> None:
        """Note the newest step; the read-outs show it at most every DISPLAY_MS."""
        self._step, self._epoch = event.step, event.epoch
        self._sequences = event.sequences
        self._pending_step = event
        if not self._display_timer.isActive():
            self._display_timer.start()

    def _on_display_due(self) -> None:
        event, self._pending_step = self._pending_step, None
        if event is None:
            return
        if self._total:
            self.progress.setValue(min(event.step, self._total))
        if self._state == "running":
            self.progress.setFormat(self._position_text())
        self.speed_label.setText(_speed_text(event))
        if self._total and self._first is not None and event.step > self._first[0]:
            per_step = (event.seconds - self._first[1]) / (event.step - self._first[0])
            eta = per_step * (self._total - event.step)
            self.eta_label.setText(f"ETA {format_duration(eta)}")

    def _on_run_finished(self, event: RunFinished) -> None:
        self._run_live = False
        self._finished_seen = True
        self._display_timer.stop()
        self._pending_step = None
        words = {"completed": "Completed", "stopped": "Stopped", "diverged": "Diverged",
                 "failed": "Failed"}
        self.progress.setFormat(f"{words.get(event.status, event.status.title())} at step "
                                f"{event.step} (epoch {event.epoch}) in "
                                f"{format_duration(event.seconds)}")
        if event.status == "completed" and self._total:
            self.progress.setValue(self._total)
        self.eta_label.setText("")
        # the run's figure over its whole time, as its line in the Runs list says it
        speed = throughput(self._sequences, event.seconds)
        if speed is not None:
            self.speed_label.setText(f"{speed:,.0f} sequences/s")

    def _position_text(self) -> str:
        epochs = f" of {self._epochs}" if self._epochs else ""
        total = f" of {self._total:,}" if self._total else ""
        return f"Epoch {self._epoch}{epochs} · step {self._step:,}{total}"
