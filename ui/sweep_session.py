"""The GUI's sweep job: one `workbench.sweeps.SweepRunner` on a plain thread (ui.jobs).

`SweepSession.start(sweep_factory(spec, runs_dir=...))` runs the sweep; its events (the
sweep's own and, with one worker, every run's) reach the GUI in batches from the drain
timer; `cancel()` stops the runs in progress (checkpointed, resumable) and skips the
rest. Runs started from the GUI leave it a core: thread policy "gui", and at most
(cores - 1) workers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal

from ui.jobs import JobFactory, JobSession, Sink
from workbench.sweep_spec import SweepSpec
from workbench.sweeps import SweepRunner, SweepRunStarted


def gui_workers() -> int:
    """The most workers a sweep started from the GUI may use: every core but the GUI's."""
    return max(1, (os.cpu_count() or 1) - 1)


class SweepSession(JobSession):
    """At most one sweep: `start(factory)`, `cancel()`, `shutdown(ms)`; `state` is "idle" |
    "running" | "cancelling"; `run_started(SweepRunStarted)` follows the batch holding it."""

    run_started = Signal(object)  # workbench.sweeps.SweepRunStarted

    thread_name = "sweep"
    busy_message = "a sweep is already in progress"

    def cancel(self) -> None:
        """Cancel the sweep; `finished` follows when the runs in progress have stopped."""
        if self._state == "running":
            self._request("request_cancel")
            self._set_state("cancelling")

    def _request_end(self) -> None:
        self.cancel()

    def _after_batch(self, batch: tuple) -> None:
        for event in batch:
            if isinstance(event, SweepRunStarted):
                self.run_started.emit(event)


def sweep_factory(spec: SweepSpec | None = None, *, runs_dir: str | Path | None = None,
                  workers: int = 1, resume: str | None = None) -> JobFactory:
    """A job factory for a SweepRunner of `spec` (or resuming the saved sweep `resume`),
    with the GUI's thread policy and at most `gui_workers()` workers."""
    workers = max(1, min(int(workers), gui_workers()))

    def build(sink: Sink) -> Any:
        if resume is not None:
            return SweepRunner.resume(resume, runs_dir=runs_dir, listeners=[sink],
                                      workers=workers, thread_policy="gui")
        assert spec is not None
        return SweepRunner(spec, runs_dir=runs_dir, listeners=[sink], workers=workers,
                           thread_policy="gui")

    return build
