"""The Qt bridge between a Trainer (no Qt, blocking `run()`) and the GUI thread.

One `TrainingWorker` QObject is moved to one QThread (superqt's pattern):
`thread.started -> worker.run`, `worker.finished -> thread.quit` and
`worker.deleteLater`. Stop and pause are the Trainer's own thread-safe requests,
read between steps; the thread is never terminated. The session keeps its Python
references to the worker and the QThread until the thread has wholly ended (the
worker's deferred delete runs in the thread's last moments), so no object is
deleted twice or while its thread runs. That lifecycle and the batching below are
ui.threaded's (`BatchingWorker`, `ThreadedSession`), shared with ui.compare_worker.

The worker is the Trainer's listener. Events arrive in the training thread at any
rate; the worker buffers them and emits them in order as one tuple at most every
`interval` seconds (50 ms: about 20 updates a second reach the panels whatever
the step rate). StepMetrics are thereby coalesced into batches; no event is ever
dropped. A QTimer on the GUI side flushes what is left in the buffer when the
Trainer goes quiet (paused, or in a long validation pass).

Torch threads: the Trainer is built with `thread_policy="gui"` (by the window's
factory), which leaves one core to the GUI thread (workbench.config.resolve_threads).

Signals carry plain data only: the frozen event dataclasses of workbench.events,
`WorkerFailure`, strings.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from ui.threaded import EMIT_INTERVAL_S, BatchingWorker, ThreadedSession, WorkerFailure
from workbench.events import Event, Listener, RunFinished, RunStatus

__all__ = ["EMIT_INTERVAL_S", "TrainerFactory", "TrainerLike", "TrainingSession",
           "TrainingWorker", "WorkerFailure"]


class TrainerLike(Protocol):
    """What the worker needs of workbench.training.Trainer."""

    def run(self) -> RunFinished: ...
    def request_stop(self) -> None: ...
    def request_pause(self) -> None: ...
    def resume(self) -> None: ...


# Builds the Trainer, in the training thread (opening the dataset there keeps the
# GUI thread free), given the listener that forwards events to the GUI.
TrainerFactory = Callable[[Listener], TrainerLike]


class TrainingWorker(BatchingWorker):
    """Runs one Trainer in the thread it is moved to; forwards its events, throttled.

    `events_ready(tuple[Event, ...])`, `failed(WorkerFailure)`, `finished(RunFinished
    | None)`; `on_event` is the Trainer's listener call.
    """

    def _is_urgent(self, event: Event) -> bool:
        # A pause taking effect and the end are rare and shown at once.
        return isinstance(event, (RunStatus, RunFinished))

    def _pending_requests(self) -> list[str]:
        if self._requested("stop"):
            return ["request_stop"]
        return ["request_pause"] if self._requested("pause") else []

    def request_stop(self) -> None:
        """Ask the run to stop after the current step (it saves a checkpoint)."""
        self._request("request_stop", "stop")

    def request_pause(self) -> None:
        self._request("request_pause", "pause")

    def resume(self) -> None:
        self._request("resume", "pause", False)


class TrainingSession(ThreadedSession):
    """Owns at most one running Trainer (worker and QThread); lives in the GUI thread.

    The window talks to this object only: `start(factory)`, `pause()`, `resume()`,
    `stop()`, `shutdown(timeout_ms)`. It re-emits the worker's signals, so a
    listener connects once for every run: `events_ready`, `failed`, `finished`
    (RunFinished | None) and `state_changed` ("idle" | "running" | "paused" |
    "stopping").
    """

    worker_type = TrainingWorker
    thread_name = "training"
    busy_message = "a run is already in progress"

    def pause(self) -> None:
        if self._worker is not None and self._state == "running":
            self._worker.request_pause()
            self._set_state("paused")

    def resume(self) -> None:
        if self._worker is not None and self._state == "paused":
            self._worker.resume()
            self._set_state("running")

    def stop(self) -> None:
        """Ask the run to stop; `finished` follows when the current step is done."""
        if self._worker is not None and self._state in ("running", "paused"):
            self._worker.request_stop()
            self._set_state("stopping")

    def _request_end(self) -> None:
        self.stop()
