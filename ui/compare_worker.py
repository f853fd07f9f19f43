"""The Qt bridge for a comparison: workbench.compare.ComparisonRunner in a QThread.

The same pattern as ui.worker (superqt's), from the same base (ui.threaded): one
`CompareWorker` QObject moved to one QThread, `thread.started -> worker.run`,
`worker.finished -> thread.quit` and `worker.deleteLater`. The runner trains its queue of runs one after another in
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

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from PySide6.QtCore import Signal

from ui.threaded import BatchingWorker, ThreadedSession
from workbench.config import RunConfig
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


class CompareWorker(BatchingWorker):
    """Runs one comparison queue in the thread it is moved to; forwards its events.

    `events_ready(tuple)` (the runs' and the queue's events, in order), `failed
    (WorkerFailure)`, `finished` (the saved workbench.compare.Comparison, or None
    when it raised).
    """

    def _is_urgent(self, event: object) -> bool:
        return _is_urgent(event)

    def _pending_requests(self) -> list[str]:
        return ["request_cancel"] if self._requested("cancel") else []

    def request_cancel(self) -> None:
        """Stop the current run and skip the rest of the queue."""
        self._request("request_cancel", "cancel")


class CompareSession(ThreadedSession):
    """Owns at most one running comparison (worker and QThread); lives in the GUI thread.

    `start(factory)`, `cancel()`, `wait(ms)`, `shutdown(ms)`; re-emits the worker's
    signals so a view connects once: `events_ready` (tuple of events), `failed`,
    `finished` (Comparison | None), `state_changed` ("idle" | "running" |
    "cancelling"), and `run_started` (QueuedRunStarted) after the batch that holds it.
    """

    run_started = Signal(object)  # workbench.compare.QueuedRunStarted

    worker_type = CompareWorker
    thread_name = "comparison"
    busy_message = "a comparison is already in progress"

    def cancel(self) -> None:
        """Cancel the whole queue; `finished` follows when the current step is done."""
        if self._worker is not None and self._state == "running":
            self._worker.request_cancel()
            self._set_state("cancelling")

    def _request_end(self) -> None:
        self.cancel()

    def _on_worker_events(self, batch: tuple) -> None:
        from workbench.compare import QueuedRunStarted

        super()._on_worker_events(batch)
        for event in batch:
            if isinstance(event, QueuedRunStarted):
                self.run_started.emit(event)
