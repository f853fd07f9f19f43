"""The Qt bridge: events arrive in order, batched at a bounded rate; stop, pause and
shut-down end the thread cleanly. A fake Trainer keeps these tests fast and free
of torch; tests/ui/test_main_window.py runs the real one."""

from __future__ import annotations

import threading
import time

import pytest

from ui.worker import TrainingSession, WorkerFailure
from workbench.errors import DatasetError
from workbench.events import EpochMetrics, RunFinished, RunStarted, StepMetrics


class FakeClock:
    """A monotonic clock that moves only when told (the worker's `clock`)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeTrainer:
    """Emits `steps` StepMetrics (an EpochMetrics every 100) as a Trainer does. With a
    `clock`, each step advances it by `step_seconds` instead of sleeping."""

    def __init__(self, listener, steps: int = 400, step_seconds: float = 0.0005,
                 clock: FakeClock | None = None) -> None:
        self.listener = listener
        self.steps = steps
        self.step_seconds = step_seconds
        self.clock = clock
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
        self.listener.on_event(RunStarted("fake", {}, 10, {}))
        status = "completed"
        for step in range(1, self.steps + 1):
            self._running.wait()
            if self._stop.is_set():
                status = "stopped"
                break
            if self.clock is not None:
                self.clock.now += self.step_seconds
            else:
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


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def clocked_session(qtbot, clock):
    """A session whose worker batches by `clock`, which only the test moves."""
    s = _recording(TrainingSession(clock=clock))
    yield s
    s.shutdown(5000)


def _wait_idle(qtbot, session, timeout=10_000):
    qtbot.waitUntil(lambda: not session.is_running(), timeout=timeout)


def test_every_event_arrives_in_order_in_few_batches(qtbot, clocked_session, clock):
    """600 steps of 1 ms (on the worker's clock) reach the GUI in order, none dropped,
    coalesced into batches at most 50 ms of that clock apart: ~12, not 600."""
    session = clocked_session
    session.start(lambda listener: FakeTrainer(listener, steps=600, step_seconds=0.001,
                                               clock=clock))
    _wait_idle(qtbot, session)
    steps = [e.step for e in session.received if isinstance(e, StepMetrics)]
    assert steps == list(range(1, 601))  # none dropped, in order
    assert len([e for e in session.received if isinstance(e, EpochMetrics)]) == 6
    assert isinstance(session.received[0], RunStarted)
    assert isinstance(session.received[-1], RunFinished)
    assert session.results[0].status == "completed"
    # 0.6 s of steps: one batch per 50 ms, the first event and the end at once
    assert 2 <= len(session.batches) <= 600 * 0.001 / 0.05 + 3


def test_events_wait_for_the_interval_and_a_quiet_run_is_flushed(qtbot, clocked_session, clock):
    """Between two intervals the events are held; when the trainer goes quiet (paused)
    what it sent reaches the GUI once the interval has passed."""
    session = clocked_session
    box = []

    def factory(listener):
        box.append(FakeTrainer(listener, steps=100_000, step_seconds=0.0, clock=clock))
        box[0].request_pause()  # holds before its first step
        return box[0]

    session.start(factory)
    qtbot.waitUntil(lambda: bool(session.received))  # RunStarted, the first event: at once
    worker = session._worker
    worker.on_event(StepMetrics(1, 1, 1.0, 1.0, 1e-3, 1.0, 100.0, 0.0))
    worker.on_event(StepMetrics(2, 1, 0.5, 1.0, 1e-3, 1.0, 100.0, 0.0))
    qtbot.wait(200)  # several flush ticks, but no time has passed on the worker's clock
    assert [type(e) for e in session.received] == [RunStarted]
    clock.now += 0.06  # past the 50 ms interval
    qtbot.waitUntil(lambda: len(session.received) == 3, timeout=2000)  # the timer's flush
    assert [e.step for e in session.received[1:]] == [1, 2]
    assert len(session.batches) == 2  # both steps in one batch
    session.stop()
    _wait_idle(qtbot, session)


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
    assert session.failures == [WorkerFailure("data.h5: /inputs: expected 3 dimensions", "", True)]
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
    """Regression: dropping the last reference to a worker while Qt deleted it in its
    thread (deleteLater) deleted it twice and crashed; the session now keeps it until
    the thread has ended."""
    for _ in range(25):
        session.start(lambda listener: FakeTrainer(listener, steps=3, step_seconds=0.0))
        _wait_idle(qtbot, session)
        assert session._retired == []
    assert [r.status for r in session.results] == ["completed"] * 25
