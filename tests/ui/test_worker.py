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


class FakeTrainer:
    """Emits `steps` StepMetrics (an EpochMetrics every 100) as a Trainer does."""

    def __init__(self, listener, steps: int = 400, step_seconds: float = 0.0005) -> None:
        self.listener = listener
        self.steps = steps
        self.step_seconds = step_seconds
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
            time.sleep(self.step_seconds)
            self.steps_done = step
            self.listener.on_event(StepMetrics(step, 1, 1.0 / step, 1.0, 1e-3, 1.0, 100.0, 0.0))
            if step % 100 == 0:
                self.listener.on_event(EpochMetrics(step // 100, step, 0.5, 0.6))
        finished = RunFinished(status, "", self.steps_done, 1, 0.0)
        self.listener.on_event(finished)
        return finished


@pytest.fixture
def session(qtbot):
    s = TrainingSession()
    received: list = []
    batches: list = []
    results: list = []
    failures: list = []
    s.events_ready.connect(lambda b: (received.extend(b), batches.append(b)))
    s.finished.connect(results.append)
    s.failed.connect(failures.append)
    s.received, s.batches, s.results, s.failures = received, batches, results, failures
    yield s
    s.shutdown(5000)


def _wait_idle(qtbot, session, timeout=10_000):
    qtbot.waitUntil(lambda: not session.is_running(), timeout=timeout)


def test_every_event_arrives_in_order_in_few_batches(qtbot, session):
    trainers = []

    def factory(listener):
        trainers.append(FakeTrainer(listener, steps=600, step_seconds=0.0005))
        return trainers[0]

    started = time.monotonic()
    session.start(factory)
    _wait_idle(qtbot, session)
    elapsed = time.monotonic() - started
    steps = [e.step for e in session.received if isinstance(e, StepMetrics)]
    assert steps == list(range(1, 601))  # none dropped, in order
    assert len([e for e in session.received if isinstance(e, EpochMetrics)]) == 6
    assert isinstance(session.received[0], RunStarted)
    assert isinstance(session.received[-1], RunFinished)
    assert session.results[0].status == "completed"
    # at most ~20 batches a second (plus the final flush), whatever the step rate
    assert len(session.batches) <= elapsed / 0.05 + 3
    assert len(session.batches) < 600 / 5


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
