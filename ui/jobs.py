"""Background work for the GUI: plain threads, one queue, a GUI-thread timer.

Every job the app runs off the GUI thread (training, a comparison queue, a
checkpoint prediction, generating a task's dataset, the safety check of a file
being opened, an import) runs here, in one way:

    GUI thread                                  worker thread (threading.Thread)
    JobSession.start(factory) ----------------> job = factory(sink); job.run()
                                                sink.on_event(e)  -> queue.put
    QTimer (every 50 ms) drains the queue <---- ("event", e) ... ("failed", f)
      -> events_ready(tuple), failed(f),         ("finished", result)
         finished(result), state_changed("idle")

Why this shape: a Python-defined QObject that lives in, moves to or dies in another
thread can deadlock PySide6 (its destructor takes the GIL while it holds a Qt mutex
that the GUI thread, holding the GIL, waits for). So no QObject is ever created in,
moved to or destroyed in a worker thread, and a worker never emits a signal or
touches a widget: it only puts plain events on a `queue.SimpleQueue`. The
`JobSession` (a QObject of the GUI thread) drains that queue from a QTimer and
emits its signals there, in the order the events happened, in batches (at most one
batch per tick, none dropped).

Requests (stop, pause, cancel) are plain thread-safe calls on the job, made from
the GUI thread; one made before the job exists is remembered and passed on when it
is built. A thread is never killed: `shutdown(ms)` asks the job to end and waits.

Signals carry plain data only: event dataclasses, `JobFailure`, the job's result.

Python's cyclic garbage collector runs in whichever thread happens to allocate when a
threshold is crossed, so a worker allocating (a training step, an import) could be
the one that destroys a Python-defined QObject left in a reference cycle, which is
the deadlock above. So while any job's thread runs, automatic collection is off and a
GUI-thread timer collects instead (`GuiThreadGarbage`, as pyqtgraph's
GarbageCollector does); when the last job ends, automatic collection is back.
"""

from __future__ import annotations

import gc
import queue
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from PySide6.QtCore import QObject, QTimer, Signal

from workbench.errors import WorkbenchError

DRAIN_INTERVAL_MS = 50  # events reach the GUI at most 20 times a second
GC_INTERVAL_MS = 200  # while jobs run, the GUI thread collects garbage this often


class GuiThreadGarbage:
    """While job threads run, cyclic garbage is collected in the GUI thread only (module
    docstring). `job_started(thread)` and `tick` run in the GUI thread; the timer sees
    for itself when the last thread has ended, so a session deleted mid-job (its end
    never delivered) cannot leave automatic collection off."""

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []
        self._timer: QTimer | None = None
        self._holding = False  # automatic collection is off because of jobs
        self._was_enabled = True  # what it was before the jobs turned it off

    def job_started(self, thread: threading.Thread) -> None:
        if not self._holding:
            self._holding = True
            self._was_enabled = gc.isenabled()
            gc.disable()
            if self._timer is None:
                self._timer = QTimer()
                self._timer.setInterval(GC_INTERVAL_MS)
                self._timer.timeout.connect(self.tick)
            self._timer.start()
        self.threads.append(thread)

    def tick(self) -> None:
        """Collect; once no job thread is left, automatic collection is back."""
        self.collect()
        self._prune()
        if not self.threads and self._holding:
            self._holding = False
            if self._timer is not None:
                self._timer.stop()
            if self._was_enabled:
                gc.enable()

    def _prune(self) -> None:
        # a thread not started yet (ident None) counts as running
        self.threads = [t for t in self.threads if t.ident is None or t.is_alive()]

    @staticmethod
    def collect() -> None:
        """What automatic collection would have done by now: each generation whose
        count passed its threshold."""
        thresholds = gc.get_threshold()
        counts = gc.get_count()
        for generation in (0, 1, 2):
            if counts[generation] <= thresholds[generation]:
                break
            gc.collect(generation)


GUI_GARBAGE = GuiThreadGarbage()


@dataclass(frozen=True)
class JobFailure:
    """An exception that ended a job, as plain data."""

    message: str
    traceback: str  # empty for a user's mistake
    user_error: bool  # a WorkbenchError: show the message only


class Job(Protocol):
    """What a session runs: `run()` blocks the worker thread and returns the result."""

    def run(self) -> Any: ...


JobFactory = Callable[["Sink"], Job]  # called in the worker thread


class Sink:
    """The job's listener: `on_event` from any thread puts the event on the queue."""

    __slots__ = ("_put",)

    def __init__(self, put: Callable[[tuple[str, Any]], None]) -> None:
        self._put = put

    def on_event(self, event: Any) -> None:
        self._put(("event", event))


class _FunctionJob:
    """A job that is one call: `function(sink)`; its return value is the result."""

    def __init__(self, function: Callable[[Sink], Any], sink: Sink) -> None:
        self._function, self._sink = function, sink

    def run(self) -> Any:
        return self._function(self._sink)


class _CancellableJob:
    """A job that is one call, `function(sink, cancelled)`, with `request_cancel()`."""

    def __init__(self, function: Callable[[Sink, Callable[[], bool]], Any], sink: Sink) -> None:
        self._function, self._sink = function, sink
        self._cancelled = threading.Event()

    def run(self) -> Any:
        return self._function(self._sink, self._cancelled.is_set)

    def request_cancel(self) -> None:
        self._cancelled.set()


class _Runner:
    """One job on one plain thread; no Qt object at all. Lives as long as its thread."""

    def __init__(self, factory: JobFactory, name: str) -> None:
        self.queue: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._factory = factory
        self._lock = threading.Lock()
        self._job: Any | None = None
        self._requests: list[str] = []  # job methods asked for before the job existed
        self.thread = threading.Thread(target=self._main, name=name, daemon=True)

    def _main(self) -> None:
        result: Any = None
        try:
            _same_torch_threads()
            job = self._factory(Sink(self.queue.put))
            with self._lock:
                self._job = job
                requests, self._requests = self._requests, []
            for method in requests:
                getattr(job, method)()
            result = job.run()
        except WorkbenchError as exc:
            self.queue.put(("failed", JobFailure(str(exc), "", True)))
        except BaseException as exc:  # noqa: BLE001 - reported to the GUI, never lost
            self.queue.put(("failed", JobFailure(f"{type(exc).__name__}: {exc}",
                                                 traceback.format_exc(), False)))
        finally:
            with self._lock:
                self._job = None
            self.queue.put(("finished", result))

    def request(self, method: str) -> None:
        """Call the job's `method` now, or as soon as it is built (any thread)."""
        with self._lock:
            job = self._job
            if job is None:
                self._requests.append(method)
                return
        getattr(job, method)()


def _same_torch_threads() -> None:
    """A new thread's math library may ignore the process's torch thread count (MKL:
    a float32 tanh of 128 values took 15 ms instead of 6 µs in a fresh thread);
    setting the count again in the thread applies it. Only when torch is loaded."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(torch.get_num_threads())


class JobSession(QObject):
    """Runs at most one job at a time on a plain thread; lives in the GUI thread.

    `start(factory)` or `start_function(function)`, `wait(ms)`, `shutdown(ms)`,
    `is_running()`, `state`; signals `events_ready(tuple)`, `failed(JobFailure)`,
    `finished(result | None)` and `state_changed(str)`, all emitted in the GUI
    thread by the drain timer (or by `drain()`). Subclasses add the job's requests
    and what "end the job" means (`_request_end`).
    """

    events_ready = Signal(object)  # tuple of events, in the order they happened
    failed = Signal(object)  # JobFailure
    finished = Signal(object)  # the job's result, or None when it raised
    state_changed = Signal(str)  # "idle" | "running" | subclasses' own states

    thread_name = "job"
    busy_message = "a job is already in progress"

    def __init__(self, parent: QObject | None = None, *,
                 interval_ms: int = DRAIN_INTERVAL_MS) -> None:
        super().__init__(parent)
        self._runner: _Runner | None = None
        self._state = "idle"
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.drain)
        self.batches_delivered = 0  # how many times events_ready was emitted (tests)

    # --- the GUI thread's calls -----------------------------------------------------------
    @property
    def state(self) -> str:
        return self._state

    def is_running(self) -> bool:
        """True from `start` until the job's end has been delivered."""
        return self._runner is not None

    def start(self, factory: JobFactory) -> None:
        """Run the job that `factory(sink)` builds, in a new worker thread."""
        if self._runner is not None:
            raise RuntimeError(self.busy_message)
        self._runner = _Runner(factory, self.thread_name)
        GUI_GARBAGE.job_started(self._runner.thread)
        self._set_state("running")
        self._timer.start()
        self._runner.thread.start()

    def start_function(self, function: Callable[[Sink], Any]) -> None:
        """Run `function(sink)` in a worker thread; its return value is the result."""
        self.start(lambda sink: _FunctionJob(function, sink))

    def start_cancellable(self, function: Callable[[Sink, Callable[[], bool]], Any]) -> None:
        """Run `function(sink, cancelled)` in a worker thread; `cancel()` makes
        `cancelled()` true (the function checks it between blocks of work)."""
        self.start(lambda sink: _CancellableJob(function, sink))

    def cancel(self) -> None:
        """Ask a cancellable job to stop at its next check."""
        self._request("request_cancel")

    def wait(self, timeout_ms: int) -> bool:
        """Block up to `timeout_ms` for the running job's thread to end, then deliver what
        it left; True when that job has ended (a `finished` handler may start another)."""
        runner = self._runner
        if runner is None:
            return True
        runner.thread.join(max(0, timeout_ms) / 1000)
        if runner.thread.is_alive():
            return False
        self.drain()
        return True

    def shutdown(self, timeout_ms: int) -> bool:
        """End the job and wait up to `timeout_ms`; True when no job is left running."""
        if self._runner is not None:
            self._request_end()
        return self.wait(timeout_ms)

    def drain(self) -> None:
        """Deliver everything the job has queued: one `events_ready` per run of events,
        then `failed` and `finished` in the order they came."""
        runner = self._runner
        if runner is None:
            return
        batch: list[Any] = []
        while True:
            try:
                kind, payload = runner.queue.get_nowait()
            except queue.Empty:
                break
            if kind == "event":
                batch.append(payload)
                continue
            self._deliver(batch)
            batch = []
            if kind == "failed":
                self.failed.emit(payload)
            else:  # finished: the last item a runner ever puts
                self._end(runner, payload)
                return
        self._deliver(batch)

    # --- for subclasses -------------------------------------------------------------------
    def _request(self, method: str) -> None:
        """Pass a request (the job's method name) to the running job."""
        if self._runner is not None:
            self._runner.request(method)

    def _request_end(self) -> None:
        """Ask the job to end soon (subclasses: stop a run, cancel a queue)."""

    def _set_state(self, state: str) -> None:
        if state != self._state:
            self._state = state
            self.state_changed.emit(state)

    def _after_batch(self, batch: tuple) -> None:
        """Called with each delivered batch after `events_ready` (subclasses)."""

    # --- internals ------------------------------------------------------------------------
    def _deliver(self, batch: list[Any]) -> None:
        if batch:
            events = tuple(batch)
            self.batches_delivered += 1
            self.events_ready.emit(events)
            self._after_batch(events)

    def _end(self, runner: _Runner, result: Any) -> None:
        self._timer.stop()
        runner.thread.join()  # it has put its last item: it ends at once
        self._runner = None
        GUI_GARBAGE.tick()
        self.finished.emit(result)
        if self._runner is None:  # a `finished` handler may have started the next job
            self._set_state("idle")


class Latest:
    """Run only the newest of many requests: one job at a time on `session`; a request
    made while one is computed replaces any still waiting (stale ones are dropped).

    `submit(function)` from the GUI thread; `function(sink)` runs in the worker thread.
    """

    def __init__(self, session: JobSession) -> None:
        self.session = session
        self._waiting: Callable[[Sink], Any] | None = None
        session.finished.connect(self._on_finished)

    def submit(self, function: Callable[[Sink], Any]) -> None:
        if self.session.is_running():
            self._waiting = function
        else:
            self.session.start_function(function)

    @property
    def waiting(self) -> bool:
        """A newer request waits for the one being computed."""
        return self._waiting is not None

    def drop_waiting(self) -> None:
        self._waiting = None

    def _on_finished(self, _result: Any) -> None:
        function, self._waiting = self._waiting, None
        if function is not None:
            self.session.start_function(function)
