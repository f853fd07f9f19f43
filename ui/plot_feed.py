"""How events reach the plot panels: one call for live and replayed runs.

`PlotFeed.show(events)` hands a batch of events (a drained batch of a live run, or
a recorded run's whole history) to every panel through `add_events`; each panel
stores what it uses and redraws from its one throttle (style.RedrawThrottle, 4 times
a second). A replay is the same call followed by `redraw_now`. A panel the user
cannot see (a tab behind another, a closed dock) is given nothing while hidden: its
events are held and handed over in one batch when it is shown, so hidden panels
cost nothing during training and catch up when shown.

`set_dataset(summary)` is told of each dataset opened: the panels' labels, units and
empty-state texts follow it, and a finished run of another dataset is taken off the
panels (a live run stays). `bring_up_to_date()` (before an export) hands every panel
what it holds, waits for what a panel still computes (the predictions panel's
checkpoint prediction) and draws them all, seen or not.

`RunHistories` keeps recorded runs' events (read once while a run's step count is
unchanged) for replays and overlays; `Overlays` lays ticked runs over the loss and
gradient panels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QDockWidget

from workbench.events import Event, RunFinished, RunStarted

SETTLE_MS = 30_000  # the longest an export waits for a panel still computing


class PlotFeed:
    """Delivers events to `plots`, holding them for a plot whose dock is not shown.

    `window_visible()` says whether the window is on screen: before it is, every plot
    takes its events at once (tests, exports of a window never shown)."""

    def __init__(self, plots: Sequence[Any], docks: Sequence[QDockWidget],
                 window_visible: Callable[[], bool]) -> None:
        self.plots = tuple(plots)
        self._docks = dict(zip(self.plots, docks))
        self._window_visible = window_visible
        self._shown: dict[Any, bool] = {}
        self._held: dict[Any, list[Event]] = {plot: [] for plot in self.plots}
        self._run_dataset: str | None = None  # the shown run's dataset file (resolved)
        self._run_live = False
        for plot, dock in self._docks.items():
            dock.visibilityChanged.connect(
                lambda visible, p=plot: self._on_visibility(p, visible))

    def show(self, events: Iterable[Event]) -> None:
        """Give a batch of events to every plot (held for the hidden ones)."""
        events = list(events)
        if not events:
            return
        for event in events:
            if isinstance(event, RunStarted):
                self._run_dataset = _resolved((event.dataset or {}).get("path"))
                self._run_live = True
            elif isinstance(event, RunFinished):
                self._run_live = False
        visible = self._window_visible()
        for plot in self.plots:
            if visible and not self._shown.get(plot, True):
                self._held[plot].extend(events)
                continue
            self.release(plot)
            plot.add_events(events)

    def replay(self, events: Iterable[Event]) -> None:
        """Show a recorded history in place of what the plots show, drawn at once."""
        self.clear()
        self.show(events)
        self.redraw_now()

    def clear(self) -> None:
        self._held = {plot: [] for plot in self.plots}
        self._run_dataset, self._run_live = None, False
        for plot in self.plots:
            plot.clear()

    def set_dataset(self, summary: Any) -> None:
        """A dataset was opened (a workbench.datasets.DatasetSummary, or None): a
        finished run of another dataset leaves the panels, and each panel with a
        `set_dataset(kind, name)` is told the new one's target kind and file name."""
        if summary is None:
            return
        data = summary.to_json() if hasattr(summary, "to_json") else dict(summary)
        path = _resolved(data.get("path"))
        if (self._run_dataset is not None and not self._run_live
                and path is not None and path != self._run_dataset):
            self.clear()
        kind = "tokens" if data.get("target_kind") == "tokens" else "continuous"
        name = Path(str(data.get("path"))).name if data.get("path") else None
        for plot in self.plots:
            follow = getattr(plot, "set_dataset", None)
            if follow is not None:
                follow(kind, name)

    def redraw_now(self) -> None:
        for plot in self.plots:
            if self._held[plot]:
                continue  # drawn when shown
            plot.redraw_now()

    def bring_up_to_date(self, timeout_ms: int = SETTLE_MS) -> None:
        """Hand every plot what it holds, let a plot still computing finish (`settle`),
        and draw it now, whether it is seen or not (before an export)."""
        for plot in self.plots:
            self.release(plot)
            settle = getattr(plot, "settle", None)
            if settle is not None:
                settle(timeout_ms)
            plot.redraw_now()

    def release(self, plot: Any) -> None:
        held = self._held.get(plot)
        if held:
            self._held[plot] = []
            plot.add_events(held)

    def _on_visibility(self, plot: Any, visible: bool) -> None:
        # A dock behind another tab is moved off-screen, not hidden: isVisible() stays
        # True, so what counts is this signal.
        self._shown[plot] = visible
        if visible:
            self.release(plot)
            plot.redraw_now()


class RunHistories:
    """Recorded runs' events (the run service's replay: the list the live path
    delivered), read once while a run's step count is unchanged."""

    def __init__(self, runs_index: Any) -> None:
        from workbench.run_service import RunService

        self.runs_index = runs_index
        self._service = RunService(runs_index.runs_dir)
        self._cache: dict[str, tuple[int, list[Event]]] = {}

    def events(self, run_id: str, *, live_run_id: str | None = None) -> list[Event]:
        """The run's recorded events (WorkbenchError when its folder cannot be read)."""
        row = self.runs_index.row(run_id)
        steps = row.steps if row else -1
        cached = self._cache.get(run_id)
        if cached is not None and cached[0] == steps and run_id != live_run_id:
            return cached[1]
        events = self._service.replay(run_id)
        self._cache[run_id] = (steps, events)
        return events


class Overlays:
    """Ticked runs drawn over `plots` (loss and gradient), each in its colour.

    `update(colors)` with the ticked runs' colours: a run whose history, colour and
    name are unchanged keeps its curves; `on_error(run_id, exc)` is told of a run
    that cannot be read."""

    def __init__(self, plots: Sequence[Any], histories: RunHistories,
                 on_error: Callable[[str, Exception], None]) -> None:
        self.plots = tuple(plots)
        self.histories = histories
        self._on_error = on_error
        self._drawn: dict[str, tuple[list[Event], str, str]] = {}

    def update(self, colors: dict[str, str], *, live_run_id: str | None = None) -> None:
        from workbench.errors import WorkbenchError

        for plot in self.plots:
            for key in list(plot.overlay_keys()):
                if key not in colors:
                    plot.remove_overlay(key)
        for key in [k for k in self._drawn if k not in colors]:
            del self._drawn[key]
        for run_id, color in colors.items():
            try:
                events = self.histories.events(run_id, live_run_id=live_run_id)
            except WorkbenchError as exc:
                self._on_error(run_id, exc)
                continue
            row = self.histories.runs_index.row(run_id)
            label = row.name if row else run_id
            drawn = self._drawn.get(run_id)
            if drawn is not None and drawn[0] is events and drawn[1:] == (color, label):
                continue  # unchanged: keep its curves
            for plot in self.plots:
                plot.set_overlay(run_id, label, events, color)
            self._drawn[run_id] = (events, color, label)


def _resolved(path: Any) -> str | None:
    """A dataset path as one string per file (None without one)."""
    if not path:
        return None
    try:
        return str(Path(str(path)).expanduser().resolve())
    except (OSError, RuntimeError):
        return str(path)
