"""The GUI's sweep job: one `workbench.sweeps.SweepRunner` on a plain thread (ui.jobs).

`SweepSession.start(sweep_factory(spec, runs_dir=...))` runs the sweep; its events (the
sweep's own and, with one worker, every run's) reach the GUI in batches from the drain
timer; `cancel()` stops the runs in progress (checkpointed, resumable) and skips the
rest. Runs started from the GUI leave it a core: thread policy "gui", and at most
(cores - 1) workers.

With `ray` (workbench.ray_engine.RayOptions) the runs are Ray tasks: Ray is started
or connected to, waited on and shut down in the sweep's own thread, like any job here,
so the GUI thread never touches a Ray object; what the window shows comes from the
sweep's events (each run's start and end, and its step read from its run folder's
status.json) and from the run folders themselves. A private instance started from
the GUI leaves the window a core (at most cores - 1 CPUs).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ui.jobs import JobFactory, Sink
from ui.sessions import QueueSession
from workbench.ray_engine import RayOptions
from workbench.sweep_spec import SweepSpec
from workbench.sweeps import SweepRunner, SweepRunStarted


def gui_workers() -> int:
    """The most workers a sweep started from the GUI may use: every core but the GUI's."""
    return max(1, (os.cpu_count() or 1) - 1)


class SweepSession(QueueSession):
    """At most one sweep (ui.sessions.QueueSession): `cancel()` stops the runs in progress
    (checkpointed, resumable) and skips the rest; `run_started(SweepRunStarted)`."""

    started_type = SweepRunStarted
    thread_name = "sweep"
    busy_message = "a sweep is already in progress"


def sweep_factory(spec: SweepSpec | None = None, *, runs_dir: str | Path | None = None,
                  workers: int = 1, resume: str | None = None,
                  ray: RayOptions | None = None) -> JobFactory:
    """A job factory for a SweepRunner of `spec` (or resuming the saved sweep `resume`),
    with the GUI's thread policy and at most `gui_workers()` workers, or on Ray."""
    workers = max(1, min(int(workers), gui_workers()))
    if ray is not None and ray.address is None:
        ray = RayOptions(None, ray.cpus_per_run, ray.max_concurrent,
                         min(ray.num_cpus or gui_workers(), gui_workers()))

    def build(sink: Sink) -> Any:
        if resume is not None:
            return SweepRunner.resume(resume, runs_dir=runs_dir, listeners=[sink],
                                      workers=workers, thread_policy="gui", ray=ray)
        assert spec is not None
        return SweepRunner(spec, runs_dir=runs_dir, listeners=[sink], workers=workers,
                           thread_policy="gui", ray=ray)

    return build
