"""One job in one QThread: the lifecycle and the event batching that the training
bridge (ui.worker) and the comparison bridge (ui.compare_worker) share.

`BatchingWorker` is a QObject moved to a QThread (superqt's pattern):
`thread.started -> worker.run`, `worker.finished -> thread.quit` and
`worker.deleteLater`. `run()` builds the job (a Trainer, a ComparisonRunner) with
the factory it was given, in that thread, and runs it to the end. The worker is the
job's listener: events arrive in the job's thread at any rate, are buffered, and
are emitted in order as one tuple at most every `interval` seconds (50 ms); urgent
ones (a run's end, a pause taking effect, queue events) go at once. No event is
ever dropped. Requests (stop, pause, cancel) are the job's own thread-safe calls;
one made before the job exists is remembered and passed on when it is built. The
thread is never terminated.

`ThreadedSession` lives in the GUI thread and owns at most one worker and its
QThread. It re-emits the worker's signals (so a listener connects once for every
job), flushes the worker's buffer from a QTimer when the job goes quiet, and keeps
its Python references to the worker and the QThread until the thread has wholly
ended: the worker's deferred delete runs in the thread's last moments, and dropping
the last reference while Qt deletes the object in the other thread would delete it
twice.

Signals carry plain data only: event dataclasses, `WorkerFailure`, the job's result.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, Qt, QThread, QTimer, Signal, Slot

from workbench.errors import WorkbenchError

EMIT_INTERVAL_S = 0.05

Clock = Callable[[], float]  # seconds, monotonic (time.monotonic; a fake one in tests)


@dataclass(frozen=True)
class WorkerFailure:
    """An exception that ended a job in the worker, as plain data."""

    message: str
    traceback: str  # empty for a user's mistake
    user_error: bool  # a WorkbenchError: show the message only


class BatchingWorker(QObject):
    """Runs one job in the thread it is moved to; forwards its events in batches.

    Subclasses name the job's urgent events (`_is_urgent`) and the requests still
    to be passed on to a job just built (`_pending_requests`).
    """

    events_ready = Signal(object)  # tuple of events, in the order they happened
    failed = Signal(object)  # WorkerFailure
    finished = Signal(object)  # the job's result, or None when it raised

    def __init__(self, factory: Callable[[Any], Any], *, interval: float = EMIT_INTERVAL_S,
                 clock: Clock = time.monotonic) -> None:
        super().__init__()
        self._factory = factory
        self._interval = interval
        self._clock = clock
        # Plain Python state behind one lock: read from both threads.
        self._lock = threading.Lock()
        self._buffer: list[Any] = []
        self._last_emit = float("-inf")  # the first event goes at once
        self._done = False
        self._job: Any | None = None
        self._requests: dict[str, bool] = {}  # what was asked before the job existed
        self.emitted_batches = 0  # how many times events_ready was emitted (for tests)

    # --- the worker's thread ------------------------------------------------------------
    @Slot()
    def run(self) -> None:
        """Build the job and run it to the end; always emits `finished` last."""
        result: Any = None
        try:
            job = self._factory(self)
            with self._lock:
                self._job = job
                requests = self._pending_requests()
            for method in requests:
                getattr(job, method)()
            result = job.run()
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
                self._job = None
            self.finished.emit(result)

    def on_event(self, event: Any) -> None:
        """The job's listener call (its thread): buffer, emit when due."""
        with self._lock:
            self._buffer.append(event)
            if self._is_urgent(event) or self._due_locked():
                self._emit_locked()

    # --- any thread ---------------------------------------------------------------------
    def flush(self, *, force: bool = False) -> None:
        """Emit what is buffered if the interval has passed (or `force`)."""
        with self._lock:
            if self._done:
                return
            if force or self._due_locked():
                self._emit_locked()

    @property
    def done(self) -> bool:
        with self._lock:
            return self._done

    def _request(self, method: str, flag: str, value: bool = True) -> None:
        """Remember `flag` (read by `_pending_requests` when the job is built) and call
        the running job's `method`, if there is a job yet."""
        with self._lock:
            self._requests[flag] = value
            job = self._job
        if job is not None:
            getattr(job, method)()

    def _requested(self, flag: str) -> bool:
        return self._requests.get(flag, False)

    # --- what subclasses say ------------------------------------------------------------
    def _is_urgent(self, event: Any) -> bool:
        """Events forwarded at once instead of at the next interval."""
        return False

    def _pending_requests(self) -> list[str]:
        """The job's methods to call as soon as it is built (called under the lock)."""
        return []

    # --- internals ----------------------------------------------------------------------
    def _due_locked(self) -> bool:
        return self._clock() - self._last_emit >= self._interval

    def _emit_locked(self) -> None:
        if not self._buffer:
            return
        batch, self._buffer = tuple(self._buffer), []
        self._last_emit = self._clock()
        self.emitted_batches += 1
        self.events_ready.emit(batch)


class ThreadedSession(QObject):
    """Owns at most one running worker and its QThread; lives in the GUI thread.

    `start(factory)`, `wait(ms)`, `shutdown(ms)`, `is_running()`, `state`.
    Subclasses give the worker type, the thread's name, and what "end the job"
    means (`_request_end`: stop a run, cancel a queue).
    """

    events_ready = Signal(object)  # tuple of events
    failed = Signal(object)  # WorkerFailure
    finished = Signal(object)  # the job's result, or None when it raised
    state_changed = Signal(str)  # "idle" | "running" | subclasses' own states

    worker_type: type[BatchingWorker] = BatchingWorker
    thread_name = "worker"
    busy_message = "a job is already in progress"

    def __init__(self, parent: QObject | None = None, *, interval: float = EMIT_INTERVAL_S,
                 clock: Clock = time.monotonic) -> None:
        super().__init__(parent)
        self._interval = interval
        self._clock = clock
        self._thread: QThread | None = None
        self._worker: BatchingWorker | None = None
        self._retired: list[BatchingWorker] = []  # finished, until their thread has ended
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

    def start(self, factory: Callable[[Any], Any]) -> None:
        """Run the job that `factory` builds (in the new thread)."""
        if self._thread is not None:
            raise RuntimeError(self.busy_message)
        thread = QThread()
        thread.setObjectName(self.thread_name)
        worker = self.worker_type(factory, interval=self._interval, clock=self._clock)
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        # quit is thread-safe: call it directly from the worker's thread, so that a
        # GUI thread blocked in wait() still sees the thread end.
        worker.finished.connect(thread.quit, Qt.ConnectionType.DirectConnection)
        worker.finished.connect(worker.deleteLater)
        # Queued even when flushed from the GUI thread: one queue keeps the order.
        queued = Qt.ConnectionType.QueuedConnection
        worker.events_ready.connect(self._on_worker_events, queued)
        worker.failed.connect(self._on_worker_failed, queued)
        worker.finished.connect(self._on_worker_finished, queued)
        thread.finished.connect(self._on_thread_finished)
        self._thread, self._worker = thread, worker
        self._set_state("running")
        self._flush_timer.start()
        thread.start()

    def wait(self, timeout_ms: int) -> bool:
        """Block up to `timeout_ms` for the thread to end; True when it has ended."""
        thread = self._thread
        if thread is None:
            return True
        return bool(thread.wait(max(0, int(timeout_ms))))

    def shutdown(self, timeout_ms: int) -> bool:
        """End the job and wait up to `timeout_ms`; True when no thread is left running."""
        self._request_end()
        return self.wait(timeout_ms)

    def _request_end(self) -> None:
        """Ask the job to end soon (subclasses: stop, cancel)."""

    # --- slots (GUI thread) -------------------------------------------------------------
    def _on_flush_due(self) -> None:
        if self._worker is not None:
            self._worker.flush()

    def _on_worker_events(self, batch: tuple) -> None:
        self.events_ready.emit(batch)

    def _on_worker_failed(self, failure: WorkerFailure) -> None:
        self.failed.emit(failure)

    def _on_worker_finished(self, result: Any) -> None:
        self._flush_timer.stop()
        # Qt deletes the worker (deleteLater) in its thread as the thread ends. Until
        # then this reference must live.
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
