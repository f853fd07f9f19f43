"""The two long jobs of the window: one training run, and one comparison queue.

Both are `ui.jobs.JobSession`s: the job (a workbench `ActiveRun`, a
`ComparisonRunner`) runs on a plain thread and tells the session's sink what
happens; the session, in the GUI thread, delivers the events in batches from its
drain timer. Pause, resume, stop and cancel are the job's own thread-safe
requests, read between steps; nothing is ever terminated.

Torch threads: jobs started from the GUI use `thread_policy="gui"`, which leaves
one core to the GUI thread (workbench.config.resolve_threads).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal

from ui.jobs import JobFactory, JobSession, Sink
from workbench.compare import ComparisonRunner, QueuedRunStarted
from workbench.config import RunConfig


class TrainingSession(JobSession):
    """At most one training run: `start(factory)`, `pause()`, `resume()`, `stop()`,
    `shutdown(ms)`; `state` is "idle" | "running" | "paused" | "stopping"."""

    thread_name = "training"
    busy_message = "a run is already in progress"

    def pause(self) -> None:
        if self._state == "running":
            self._request("request_pause")
            self._set_state("paused")

    def resume(self) -> None:
        if self._state == "paused":
            self._request("resume")
            self._set_state("running")

    def stop(self) -> None:
        """Ask the run to stop; `finished` follows when the current step is done."""
        if self._state in ("running", "paused"):
            self._request("request_stop")
            self._set_state("stopping")

    def _request_end(self) -> None:
        self.stop()


class QueueSession(JobSession):
    """At most one queue of runs (a comparison, a sweep): `start(factory)`, `cancel()`,
    `shutdown(ms)`; `state` is "idle" | "running" | "cancelling"; `run_started(event)`
    follows the batch that holds a queued run's start (an event of `started_type`)."""

    run_started = Signal(object)
    started_type: type = object

    def cancel(self) -> None:
        """Cancel the whole queue; `finished` follows when the current step is done."""
        if self._state == "running":
            self._request("request_cancel")
            self._set_state("cancelling")

    def _request_end(self) -> None:
        self.cancel()

    def _after_batch(self, batch: tuple) -> None:
        for event in batch:
            if isinstance(event, self.started_type):
                self.run_started.emit(event)


class CompareSession(QueueSession):
    """A comparison queue; `run_started(QueuedRunStarted)`."""

    started_type = QueuedRunStarted
    thread_name = "comparison"
    busy_message = "a comparison is already in progress"


def runner_factory(base: RunConfig, cells: Sequence[str], seeds: int | Sequence[int], *,
                   runs_dir: str | Path | None = None, name: str | None = None) -> JobFactory:
    """A job factory for a ComparisonRunner of `cells` x `seeds` on `base` that leaves the
    GUI a core (thread policy "gui")."""

    def build(sink: Sink) -> Any:
        return ComparisonRunner(base, tuple(cells), seeds, listeners=[sink],
                                runs_dir=runs_dir, name=name, thread_policy="gui")

    return build
