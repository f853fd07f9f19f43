"""Background jobs (ui.jobs) and the training session on them: events arrive in
order, batched by the GUI thread's drain, none dropped; stop, pause and shut-down end
the thread cleanly; no Qt object is ever touched from the worker thread. A fake
Trainer keeps these tests fast and free of torch; tests/ui/test_main_window.py runs
the real one."""

from __future__ import annotations

import gc
import threading
import time

import pytest
from PySide6.QtCore import QObject, QThread

from ui.jobs import GUI_GARBAGE, JobFailure, JobSession, Latest
from ui.sessions import TrainingSession
from workbench.errors import DatasetError
from workbench.events import EpochMetrics, RunFinished, RunStarted, StepMetrics


class FakeTrainer:
    """Emits `steps` StepMetrics (an EpochMetrics every 100) as a Trainer does, and
    records the thread it ran in and whether that thread saw any QObject."""

    def __init__(self, listener, steps: int = 400, step_seconds: float = 0.0005) -> None:
        self.listener = listener
        self.steps = steps
        self.step_seconds = step_seconds
        self.thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self.steps_done = 0

    def request_stop(self) -> None:
        self._stop.set()
        self._running.set()

    def request_pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def run(self) -> RunFinished:
        self.thread = threading.current_thread()
        self.listener.on_event(RunStarted("fake", {}, 10, {}))
        status = "completed"
        for step in range(1, self.steps + 1):
            self._running.wait()
            if self._stop.is_set():
                status = "stopped"
                break
            if self.step_seconds:
                time.sleep(self.step_seconds)
            self.steps_done = step
            self.listener.on_event(StepMetrics(step, 1, 1.0 / step, 1.0, 1e-3, 1.0, 100.0, 0.0))
            if step % 100 == 0:
                self.listener.on_event(EpochMetrics(step // 100, step, 0.5, 0.6))
        finished = RunFinished(status, "", self.steps_done, 1, 0.0)
        self.listener.on_event(finished)
        return finished


def _recording(s: TrainingSession) -> TrainingSession:
    """`s` with lists of what it emitted: received events, batches, results, failures."""
    received: list = []
    batches: list = []
    results: list = []
    failures: list = []
    s.events_ready.connect(lambda b: (received.extend(b), batches.append(b)))
    s.finished.connect(results.append)
    s.failed.connect(failures.append)
    s.received, s.batches, s.results, s.failures = received, batches, results, failures
    return s


@pytest.fixture
def session(qtbot):
    s = _recording(TrainingSession())
    yield s
    s.shutdown(5000)


def _wait_idle(qtbot, session, timeout=10_000):
    qtbot.waitUntil(lambda: not session.is_running(), timeout=timeout)


def test_every_event_arrives_in_order_in_one_batch_per_drain(qtbot):
    """The worker only queues; what it queued between two drains reaches the GUI as one
    batch, in order, none dropped, followed by the end."""
    session = _recording(TrainingSession(interval_ms=10**6))  # drained by the test only
    box = []

    def factory(sink):
        box.append(FakeTrainer(sink, steps=600, step_seconds=0.0))
        return box[0]

    session.start(factory)
    qtbot.waitUntil(lambda: bool(box) and box[0].thread is not None)
    box[0].thread.join(10)
    assert session.received == [] and session.is_running()  # nothing without a drain
    session.drain()
    assert len(session.batches) == 1
    steps = [e.step for e in session.received if isinstance(e, StepMetrics)]
    assert steps == list(range(1, 601))
    assert len([e for e in session.received if isinstance(e, EpochMetrics)]) == 6
    assert isinstance(session.received[0], RunStarted)
    assert isinstance(session.received[-1], RunFinished)
    assert [r.status for r in session.results] == ["completed"]
    assert session.state == "idle" and not session.is_running()


def test_the_timer_delivers_a_live_run_in_batches(qtbot, session):
    """While a run goes on, its events come in several batches (about every 50 ms), not
    one signal per event."""
    session.start(lambda sink: FakeTrainer(sink, steps=400, step_seconds=0.001))
    _wait_idle(qtbot, session)
    assert [e.step for e in session.received if isinstance(e, StepMetrics)] == list(range(1, 401))
    assert 2 <= len(session.batches) < 400


def test_the_worker_thread_owns_no_qt_object(qtbot, session):
    """The job runs on a plain Python thread (no QThread), and the session delivers
    in the GUI thread."""
    box, delivered_in = [], []
    session.events_ready.connect(lambda _b: delivered_in.append(threading.current_thread()))

    def factory(sink):
        assert not isinstance(sink, QObject)
        box.append(FakeTrainer(sink, steps=20, step_seconds=0.0))
        return box[0]

    session.start(factory)
    _wait_idle(qtbot, session)
    assert box[0].thread is not threading.main_thread()
    assert not isinstance(box[0].thread, QThread)
    assert set(delivered_in) == {threading.main_thread()}
    assert not box[0].thread.is_alive()


def test_stop_mid_run_ends_stopped_and_thread_gone(qtbot, session):
    session.start(lambda listener: FakeTrainer(listener, steps=100_000, step_seconds=0.001))
    qtbot.waitUntil(lambda: any(isinstance(e, StepMetrics) for e in session.received))
    session.stop()
    assert session.state == "stopping"
    _wait_idle(qtbot, session)
    assert session.results[0].status == "stopped"
    assert session.state == "idle"


def test_pause_holds_the_run_and_resume_continues(qtbot, session):
    trainer_box = []

    def factory(listener):
        trainer_box.append(FakeTrainer(listener, steps=100_000, step_seconds=0.001))
        return trainer_box[0]

    session.start(factory)
    qtbot.waitUntil(lambda: bool(trainer_box) and trainer_box[0].steps_done > 5)
    session.pause()
    assert session.state == "paused"
    qtbot.wait(100)
    held = trainer_box[0].steps_done
    qtbot.wait(150)
    assert trainer_box[0].steps_done == held
    # what was buffered before the pause reaches the GUI although the trainer is quiet
    qtbot.waitUntil(lambda: any(isinstance(e, StepMetrics) and e.step == held
                                for e in session.received), timeout=2000)
    session.resume()
    assert session.state == "running"
    qtbot.waitUntil(lambda: trainer_box[0].steps_done > held + 5)
    session.stop()
    _wait_idle(qtbot, session)
    assert session.results[0].status == "stopped"


def test_stop_while_paused_ends_the_run(qtbot, session):
    session.start(lambda listener: FakeTrainer(listener, steps=100_000, step_seconds=0.001))
    qtbot.waitUntil(lambda: len(session.received) > 3)
    session.pause()
    session.stop()
    _wait_idle(qtbot, session)
    assert session.results[0].status == "stopped"


def test_shutdown_waits_for_the_thread(qtbot, session):
    session.start(lambda listener: FakeTrainer(listener, steps=100_000, step_seconds=0.001))
    qtbot.waitUntil(lambda: len(session.received) > 3)
    assert session.shutdown(5000)
    qtbot.waitUntil(lambda: not session.is_running())


def test_a_users_mistake_is_reported_without_traceback(qtbot, session):
    def factory(listener):
        raise DatasetError("data.h5: /inputs: expected 3 dimensions")

    session.start(factory)
    _wait_idle(qtbot, session)
    assert session.failures == [JobFailure("data.h5: /inputs: expected 3 dimensions", "", True)]
    assert session.results == [None]


def test_a_bug_is_reported_with_its_traceback(qtbot, session):
    def factory(listener):
        raise ZeroDivisionError("boom")

    session.start(factory)
    _wait_idle(qtbot, session)
    (failure,) = session.failures
    assert not failure.user_error
    assert "ZeroDivisionError" in failure.traceback


def test_many_short_runs_in_a_row_end_cleanly(qtbot, session):
    """Each run's thread has ended once its end is delivered; none is left behind."""
    for _ in range(25):
        session.start(lambda listener: FakeTrainer(listener, steps=3, step_seconds=0.0))
        _wait_idle(qtbot, session)
    assert [r.status for r in session.results] == ["completed"] * 25
    assert not [t for t in threading.enumerate() if t.name == "training"]


def test_wait_delivers_what_the_job_left(qtbot, session):
    """After `wait` returns True the end has been delivered: the state is idle."""
    session.start(lambda sink: FakeTrainer(sink, steps=5, step_seconds=0.0))
    assert session.wait(10_000)
    assert session.state == "idle" and [r.status for r in session.results] == ["completed"]


def test_a_function_job_returns_its_result(qtbot):
    jobs = JobSession()
    results = []
    jobs.finished.connect(results.append)
    jobs.start_function(lambda sink: (sink.on_event("half"), 42)[1])
    _wait_idle(qtbot, jobs)
    assert results == [42]


def test_latest_drops_stale_requests(qtbot):
    """Requests made while one is computed: only the newest runs next."""
    jobs = JobSession()
    latest = Latest(jobs)
    gate = threading.Event()
    ran, results = [], []
    jobs.finished.connect(results.append)

    def work(n):
        def function(_sink):
            if n == 0:
                gate.wait(10)
            ran.append(n)
            return n
        return function

    latest.submit(work(0))
    for n in (1, 2, 3):
        latest.submit(work(n))
    gate.set()
    qtbot.waitUntil(lambda: results == [0, 3], timeout=10_000)
    _wait_idle(qtbot, jobs)
    assert ran == [0, 3]


def test_a_cancellable_job_stops_when_asked_and_reports_in_the_gui_thread(qtbot):
    jobs = JobSession()
    started = threading.Event()
    seen, results = [], []
    jobs.events_ready.connect(lambda b: seen.append((b, threading.current_thread())))
    jobs.finished.connect(results.append)

    def work(sink, cancelled):
        sink.on_event((0.5, "half"))
        started.set()
        while not cancelled():
            started.wait(0.01)
        return "stopped"

    jobs.start_cancellable(work)
    qtbot.waitUntil(started.is_set, timeout=5000)
    jobs.cancel()
    _wait_idle(qtbot, jobs)
    assert results == ["stopped"]
    assert seen == [(((0.5, "half"),), threading.main_thread())]


class _Cycle:
    """An object in a reference cycle: only the cyclic collector frees it."""

    def __init__(self, freed_in: list[str]) -> None:
        self.me = self
        self.freed_in = freed_in

    def __del__(self) -> None:
        self.freed_in.append(threading.current_thread().name)


def test_garbage_left_in_cycles_is_freed_in_the_gui_thread_while_a_job_runs(qtbot):
    """A worker that allocates must never be the thread that runs the cyclic collector:
    it could destroy a Python-defined QObject there (the PySide6 deadlock)."""
    freed_in: list[str] = []
    session = JobSession()
    release = threading.Event()

    def make_garbage(_sink):  # cycles far past gen 0's threshold, then wait for the GUI
        for _ in range(5_000):
            _Cycle(freed_in)
        release.wait(30)
        return True

    session.start_function(make_garbage)
    assert not gc.isenabled()  # while the job runs
    qtbot.waitUntil(lambda: len(freed_in) >= 1_000, timeout=10_000)  # the GUI's timer
    release.set()
    with qtbot.waitSignal(session.finished, timeout=30_000):
        pass
    gc.collect()
    assert len(freed_in) == 5_000
    assert set(freed_in) == {threading.main_thread().name}
    qtbot.waitUntil(lambda: not GUI_GARBAGE.threads, timeout=10_000)  # every job has ended
    assert gc.isenabled()  # automatic collection is back
