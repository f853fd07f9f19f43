"""The Qt bridge between a Trainer (no Qt, blocking `run()`) and the GUI thread.

One `TrainingWorker` QObject is moved to one QThread (superqt's pattern):
`thread.started -> worker.run`, `worker.finished -> thread.quit` and
`worker.deleteLater`. Stop and pause are the Trainer's own thread-safe requests,
read between steps; the thread is never terminated. The session keeps its Python
references to the worker and the QThread until the thread has wholly ended (the
worker's deferred delete runs in the thread's last moments), so no object is
deleted twice or while its thread runs.

The worker is the Trainer's listener. Events arrive in the training thread at any
rate; the worker buffers them and emits them in order as one tuple at most every
`interval` seconds (50 ms: about 20 updates a second reach the panels whatever
the step rate). StepMetrics are thereby coalesced into batches; no event is ever
dropped. A QTimer on the GUI side flushes what is left in the buffer when the
Trainer goes quiet (paused, or in a long validation pass).

Torch threads: the Trainer is built with `thread_policy="gui"` (by the window's
factory), which leaves one core to the GUI thread (workbench.config.resolve_threads).

Signals carry plain data only: the frozen event dataclasses of workbench.events,
`WorkerFailure`, strings.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from PySide6.QtCore import QObject, Qt, QThread, QTimer, Signal, Slot

from workbench.errors import WorkbenchError
from workbench.events import Event, Listener, RunFinished, RunStatus

EMIT_INTERVAL_S = 0.05


class TrainerLike(Protocol):
    """What the worker needs of workbench.training.Trainer."""

    def run(self) -> RunFinished: ...
    def request_stop(self) -> None: ...
    def request_pause(self) -> None: ...
    def resume(self) -> None: ...


# Builds the Trainer, in the training thread (opening the dataset there keeps the
# GUI thread free), given the listener that forwards events to the GUI.
TrainerFactory = Callable[[Listener], TrainerLike]


@dataclass(frozen=True)
class WorkerFailure:
    """An exception that ended a run in the worker, as plain data."""

    message: str
    traceback: str  # empty for a user's mistake
    user_error: bool  # a WorkbenchError: show the message only


class TrainingWorker(QObject):
    """Runs one Trainer in the thread it is moved to; forwards its events, throttled."""

    events_ready = Signal(object)  # tuple[Event, ...], in the order they happened
    failed = Signal(object)  # WorkerFailure
    finished = Signal(object)  # RunFinished, or None when the run raised

    def __init__(self, factory: TrainerFactory, *, interval: float = EMIT_INTERVAL_S) -> None:
        super().__init__()
        self._factory = factory
        self._interval = interval
        # Plain Python state behind one lock: read from both threads.
        self._lock = threading.Lock()
        self._buffer: list[Event] = []
        self._last_emit = 0.0
        self._done = False
        self._trainer: TrainerLike | None = None
        self._stop_requested = False
        self._pause_requested = False
        self.emitted_batches = 0  # how many times events_ready was emitted (for tests)

    # --- the training thread ------------------------------------------------------
    @Slot()
    def run(self) -> None:
        """Build the Trainer and run it to the end; always emits `finished` last."""
        result: RunFinished | None = None
        try:
            trainer = self._factory(self)
            with self._lock:
                self._trainer = trainer
                stop, pause = self._stop_requested, self._pause_requested
            if stop:
                trainer.request_stop()
            elif pause:
                trainer.request_pause()
            result = trainer.run()
        except WorkbenchError as exc:
            self.flush(force=True)
            self.failed.emit(WorkerFailure(str(exc), "", True))
        except Exception as exc:
            self.flush(force=True)
            self.failed.emit(WorkerFailure(f"{type(exc).__name__}: {exc}",
                                           traceback.format_exc(), False))
        finally:
            with self._lock:
                self._emit_locked()
                self._done = True
                self._trainer = None
            self.finished.emit(result)

    def on_event(self, event: Event) -> None:
        """The Trainer's listener call (training thread): buffer, emit when due."""
        with self._lock:
            self._buffer.append(event)
            # A pause taking effect and the end are rare and shown at once.
            urgent = isinstance(event, (RunStatus, RunFinished))
            if urgent or time.monotonic() - self._last_emit >= self._interval:
                self._emit_locked()

    # --- any thread -----------------------------------------------------------------
    def flush(self, *, force: bool = False) -> None:
        """Emit what is buffered if the interval has passed (or `force`)."""
        with self._lock:
            if self._done:
                return
            if force or time.monotonic() - self._last_emit >= self._interval:
                self._emit_locked()

    def _emit_locked(self) -> None:
        if not self._buffer:
            return
        batch, self._buffer = tuple(self._buffer), []
        self._last_emit = time.monotonic()
        self.emitted_batches += 1
        self.events_ready.emit(batch)

    def request_stop(self) -> None:
        """Ask the run to stop after the current step (it saves a checkpoint)."""
        with self._lock:
            self._stop_requested = True
            trainer = self._trainer
        if trainer is not None:
            trainer.request_stop()

    def request_pause(self) -> None:
        with self._lock:
            self._pause_requested = True
            trainer = self._trainer
        if trainer is not None:
            trainer.request_pause()

    def resume(self) -> None:
        with self._lock:
            self._pause_requested = False
            trainer = self._trainer
        if trainer is not None:
            trainer.resume()

    @property
    def done(self) -> bool:
        with self._lock:
            return self._done


class TrainingSession(QObject):
    """Owns at most one running worker and its QThread; lives in the GUI thread.

    The window talks to this object only: `start(factory)`, `pause()`, `resume()`,
    `stop()`, `shutdown(timeout_ms)`. It re-emits the worker's signals, so a
    listener connects once for every run.
    """

    events_ready = Signal(object)  # tuple[Event, ...]
    failed = Signal(object)  # WorkerFailure
    finished = Signal(object)  # RunFinished | None
    state_changed = Signal(str)  # "idle" | "running" | "paused" | "stopping"

    def __init__(self, parent: QObject | None = None, *,
                 interval: float = EMIT_INTERVAL_S) -> None:
        super().__init__(parent)
        self._interval = interval
        self._thread: QThread | None = None
        self._worker: TrainingWorker | None = None
        self._retired: list[TrainingWorker] = []  # finished, until their thread has ended
        self._state = "idle"
        self._flush_timer = QTimer(self)
        self._flush_timer.setInterval(max(10, int(interval * 1000)))
        self._flush_timer.timeout.connect(self._on_flush_due)

    @property
    def state(self) -> str:
        return self._state

    def is_running(self) -> bool:
        """True from `start` until the thread has ended (stopping included)."""
        return self._thread is not None

    def start(self, factory: TrainerFactory) -> None:
        """Run the Trainer that `factory` builds (in the new thread)."""
        if self._thread is not None:
            raise RuntimeError("a run is already in progress")
        thread = QThread()
        thread.setObjectName("training")
        worker = TrainingWorker(factory, interval=self._interval)
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        # quit is thread-safe: call it directly from the training thread, so that a
        # GUI thread blocked in wait() still sees the thread end.
        worker.finished.connect(thread.quit, Qt.ConnectionType.DirectConnection)
        worker.finished.connect(worker.deleteLater)
        # Queued even when flushed from the GUI thread: one queue keeps the order.
        worker.events_ready.connect(self._on_worker_events, Qt.ConnectionType.QueuedConnection)
        worker.failed.connect(self._on_worker_failed, Qt.ConnectionType.QueuedConnection)
        worker.finished.connect(self._on_worker_finished, Qt.ConnectionType.QueuedConnection)
        thread.finished.connect(self._on_thread_finished)
        self._thread, self._worker = thread, worker
        self._set_state("running")
        self._flush_timer.start()
        thread.start()

    def pause(self) -> None:
        if self._worker is not None and self._state == "running":
            self._worker.request_pause()
            self._set_state("paused")

    def resume(self) -> None:
        if self._worker is not None and self._state == "paused":
            self._worker.resume()
            self._set_state("running")

    def stop(self) -> None:
        """Ask the run to stop; `finished` follows when the current step is done."""
        if self._worker is not None and self._state in ("running", "paused"):
            self._worker.request_stop()
            self._set_state("stopping")

    def wait(self, timeout_ms: int) -> bool:
        """Block up to `timeout_ms` for the thread to end; True when it has ended."""
        thread = self._thread
        if thread is None:
            return True
        return bool(thread.wait(max(0, int(timeout_ms))))

    def shutdown(self, timeout_ms: int) -> bool:
        """Stop and wait up to `timeout_ms`; True when no thread is left running."""
        self.stop()
        return self.wait(timeout_ms)

    # --- slots (GUI thread) ----------------------------------------------------------
    def _on_flush_due(self) -> None:
        if self._worker is not None:
            self._worker.flush()

    def _on_worker_events(self, batch: tuple) -> None:
        self.events_ready.emit(batch)

    def _on_worker_failed(self, failure: WorkerFailure) -> None:
        self.failed.emit(failure)

    def _on_worker_finished(self, result: RunFinished | None) -> None:
        self._flush_timer.stop()
        # Qt deletes the worker (deleteLater) in its thread as the thread ends. Until
        # then this reference must live: dropping the last Python reference while Qt
        # deletes the object in the other thread would delete it twice.
        if self._worker is not None:
            self._retired.append(self._worker)
        self._worker = None
        self.finished.emit(result)

    def _on_thread_finished(self) -> None:
        thread, self._thread = self._thread, None
        self._flush_timer.stop()
        if thread is not None:
            # `finished` is emitted before the thread's last clean-up (the worker's
            # deferred delete); wait() returns once that is done, so the worker is gone
            # and the QThread may be released.
            thread.wait()
        if self._worker is not None:  # finished arrived without the worker's signal
            self._retired.append(self._worker)
            self._worker = None
        self._retired.clear()
        self._set_state("idle")

    def _set_state(self, state: str) -> None:
        if state != self._state:
            self._state = state
            self.state_changed.emit(state)
