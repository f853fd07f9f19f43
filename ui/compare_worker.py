"""The Qt bridge for a comparison: workbench.compare.ComparisonRunner in a QThread.

The same pattern as ui.worker (superqt's): one `CompareWorker` QObject moved to one
QThread, `thread.started -> worker.run`, `worker.finished -> thread.quit` and
`worker.deleteLater`. The runner trains its queue of runs one after another in
that thread; the worker is its listener and forwards every event (the runs' own
and the queue's: ComparisonStarted, QueuedRunStarted, QueuedRunFinished,
ComparisonFinished) to the GUI thread in order, as tuples at most every 50 ms.
Queue events and a run's end are forwarded at once.

Cancel is the runner's thread-safe `request_cancel()` (the current run stops after
its step, with a checkpoint; the rest are skipped); the thread is never terminated.
Closing the window calls `CompareSession.shutdown(timeout)`: cancel, then wait. The
session keeps its references to the worker and the QThread until the thread has
wholly ended, so nothing is deleted twice.

Signals carry plain data only: the frozen event dataclasses, a saved Comparison,
a WorkerFailure.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from PySide6.QtCore import QObject, Qt, QThread, QTimer, Signal, Slot

from ui.worker import EMIT_INTERVAL_S, WorkerFailure
from workbench.config import RunConfig
from workbench.errors import WorkbenchError
from workbench.events import Listener, RunFinished


class RunnerLike(Protocol):
    """What the worker needs of workbench.compare.ComparisonRunner."""

    def run(self) -> Any: ...
    def request_cancel(self) -> None: ...


# Builds the runner in the worker thread, given the listener that forwards to the GUI.
RunnerFactory = Callable[[Listener], RunnerLike]


def runner_factory(base: RunConfig, cells: Sequence[str], seeds: int | Sequence[int], *,
                   runs_dir: str | Path | None = None, name: str | None = None) -> RunnerFactory:
    """A factory for a ComparisonRunner of `cells` x `seeds` on `base` that leaves the
    GUI a core (thread policy "gui")."""

    def build(listener: Listener) -> RunnerLike:
        from workbench.compare import ComparisonRunner

        return ComparisonRunner(base, tuple(cells), seeds, listeners=[listener],
                                runs_dir=runs_dir, name=name, thread_policy="gui")

    return build


def _is_urgent(event: object) -> bool:
    """Queue events and a run's end are shown at once, not at the next tick."""
    from workbench import compare

    return isinstance(event, (RunFinished, compare.ComparisonStarted, compare.QueuedRunStarted,
                              compare.QueuedRunFinished, compare.ComparisonFinished))


class CompareWorker(QObject):
    """Runs one comparison queue in the thread it is moved to; forwards its events."""

    run_started = Signal(object)  # workbench.compare.QueuedRunStarted
    event = Signal(object)  # tuple of events (runs' and queue's), in the order they happened
    failed = Signal(object)  # WorkerFailure
    finished = Signal(object)  # the saved workbench.compare.Comparison, or None when it raised

    def __init__(self, factory: RunnerFactory, *, interval: float = EMIT_INTERVAL_S) -> None:
        super().__init__()
        self._factory = factory
        self._interval = interval
        self._lock = threading.Lock()
        self._buffer: list[object] = []
        self._last_emit = 0.0
        self._done = False
        self._runner: RunnerLike | None = None
        self._cancel_requested = False
        self.emitted_batches = 0

    # --- the worker thread ---------------------------------------------------------------
    @Slot()
    def run(self) -> None:
        """Build the runner and run its queue to the end; always emits `finished` last."""
        result: Any = None
        try:
            runner = self._factory(self)
            with self._lock:
                self._runner = runner
                cancel = self._cancel_requested
            if cancel:
                runner.request_cancel()
            result = runner.run()
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
                self._runner = None
            self.finished.emit(result)

    def on_event(self, event: object) -> None:
        """The runner's listener call (worker thread): buffer, emit when due."""
        from workbench.compare import QueuedRunStarted

        with self._lock:
            self._buffer.append(event)
            if _is_urgent(event) or time.monotonic() - self._last_emit >= self._interval:
                self._emit_locked()
        if isinstance(event, QueuedRunStarted):
            self.run_started.emit(event)

    # --- any thread ----------------------------------------------------------------------
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
        self.event.emit(batch)

    def request_cancel(self) -> None:
        """Stop the current run and skip the rest of the queue."""
        with self._lock:
            self._cancel_requested = True
            runner = self._runner
        if runner is not None:
            runner.request_cancel()


class CompareSession(QObject):
    """Owns at most one running comparison (worker and QThread); lives in the GUI thread.

    `start(factory)`, `cancel()`, `wait(ms)`, `shutdown(ms)`; re-emits the worker's
    signals so a view connects once.
    """

    run_started = Signal(object)
    event = Signal(object)  # tuple of events
    failed = Signal(object)
    finished = Signal(object)  # Comparison | None
    state_changed = Signal(str)  # "idle" | "running" | "cancelling"

    def __init__(self, parent: QObject | None = None, *,
                 interval: float = EMIT_INTERVAL_S) -> None:
        super().__init__(parent)
        self._interval = interval
        self._thread: QThread | None = None
        self._worker: CompareWorker | None = None
        self._retired: list[CompareWorker] = []  # finished, until their thread has ended
        self._state = "idle"
        self._flush_timer = QTimer(self)
        self._flush_timer.setInterval(max(10, int(interval * 1000)))
        self._flush_timer.timeout.connect(self._on_flush_due)

    @property
    def state(self) -> str:
        return self._state

    def is_running(self) -> bool:
        """True from `start` until the thread has ended (cancelling included)."""
        return self._thread is not None

    def start(self, factory: RunnerFactory) -> None:
        """Run the comparison that `factory` builds (in the new thread)."""
        if self._thread is not None:
            raise RuntimeError("a comparison is already in progress")
        thread = QThread()
        thread.setObjectName("comparison")
        worker = CompareWorker(factory, interval=self._interval)
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        # Direct: quit from the worker thread, so a GUI thread blocked in wait() sees it end.
        worker.finished.connect(thread.quit, Qt.ConnectionType.DirectConnection)
        worker.finished.connect(worker.deleteLater)
        queued = Qt.ConnectionType.QueuedConnection  # one queue keeps the order
        worker.run_started.connect(self._on_worker_run_started, queued)
        worker.event.connect(self._on_worker_event, queued)
        worker.failed.connect(self._on_worker_failed, queued)
        worker.finished.connect(self._on_worker_finished, queued)
        thread.finished.connect(self._on_thread_finished)
        self._thread, self._worker = thread, worker
        self._set_state("running")
        self._flush_timer.start()
        thread.start()

    def cancel(self) -> None:
        """Cancel the whole queue; `finished` follows when the current step is done."""
        if self._worker is not None and self._state == "running":
            self._worker.request_cancel()
            self._set_state("cancelling")

    def wait(self, timeout_ms: int) -> bool:
        """Block up to `timeout_ms` for the thread to end; True when it has ended."""
        thread = self._thread
        if thread is None:
            return True
        return bool(thread.wait(max(0, int(timeout_ms))))

    def shutdown(self, timeout_ms: int) -> bool:
        """Cancel and wait up to `timeout_ms`; True when no thread is left running."""
        self.cancel()
        return self.wait(timeout_ms)

    # --- slots (GUI thread) ----------------------------------------------------------------
    def _on_flush_due(self) -> None:
        if self._worker is not None:
            self._worker.flush()

    def _on_worker_run_started(self, event: object) -> None:
        self.run_started.emit(event)

    def _on_worker_event(self, batch: tuple) -> None:
        self.event.emit(batch)

    def _on_worker_failed(self, failure: WorkerFailure) -> None:
        self.failed.emit(failure)

    def _on_worker_finished(self, result: object) -> None:
        self._flush_timer.stop()
        # Qt deletes the worker (deleteLater) in its thread as the thread ends; until
        # then the Python reference lives, or the object would be deleted twice (the
        # fix ui.worker.TrainingSession has too).
        if self._worker is not None:
            self._retired.append(self._worker)
        self._worker = None
        self.finished.emit(result)

    def _on_thread_finished(self) -> None:
        thread, self._thread = self._thread, None
        self._flush_timer.stop()
        if thread is not None:
            thread.wait()  # returns once the thread's last clean-up (the worker's delete) is done
        if self._worker is not None:
            self._retired.append(self._worker)
            self._worker = None
        self._retired.clear()
        self._set_state("idle")

    def _set_state(self, state: str) -> None:
        if state != self._state:
            self._state = state
            self.state_changed.emit(state)
