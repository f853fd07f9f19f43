"""The Inspect window: give a trained model your own input and watch it think.

Pick a run (any: finished, stopped, crashed, or the one training now, at its latest
checkpoint), optionally a second one to compare side by side, and an input (a sample of
any split, typed text, values, or a formula of t: ui.inspect_input). The panel shows at
once what the model makes of it (ui.inspect_views.ExplanationView): the outputs, the
hidden state heatmap with unit sorting, a unit's trace and LSTMVis's Select View, the
gates per step, and the connectivity matrix (workbench.explain).

Every computation runs off the GUI thread through ui.jobs: one JobSession and its
`Latest`, so only the newest request waits while one is computed and stale ones are
dropped. Each request has a number; a result is painted only when no newer one has been
painted (`painted_seq`), so a superseded request never paints over a newer one. A
request comes back in two parts: first the outputs, states and gates (painted at once),
then the connectivity matrix (its gradients cost the most). The loaded models are kept
by the job between requests (one job at a time touches them), keyed on the checkpoint
file, so a run training now is reloaded when it writes a newer checkpoint.

    python -m ui.inspect_panel                 # trains rnn-tanh and lstm on a copy task
    python -m ui.inspect_panel --runs-dir DIR  # the runs of DIR
"""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6 import QtCore, QtGui, QtWidgets

from ui.inspect_input import InputEditor
from ui.inspect_views import SORTS, ExplanationView, log_levels
from ui.jobs import JobSession, Latest
from ui.plots import common

DRAIN_MS = 10  # the inspector's job queue is drained every 10 ms: an edit feels immediate
CACHED_RUNS = 4  # loaded models kept by the job


@dataclass(frozen=True)

class RunChoice:
    """One run as the run pickers list it (from its run.json: no checkpoint is read)."""

    run_id: str
    label: str
    cell: str
    status: str
    input_kind: str
    target_kind: str
    features: int | None
    input_steps: int | None
    splits: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Request:
    seq: int
    run_ids: tuple[str, ...]
    which: str
    source: Any
    beam: int
    method: str = "fused"  # the connectivity's (workbench.explain.CONNECTIVITY_METHODS)


@dataclass(frozen=True)
class Partial:
    """The first part of a result: explanations without their connectivity."""

    seq: int
    run_ids: tuple[str, ...]
    results: tuple[Any, ...]  # Explanation or str (why there is none), one per run
    seconds: float = 0.0  # the job's time so far


@dataclass(frozen=True)
class Result:
    seq: int
    run_ids: tuple[str, ...]
    results: tuple[Any, ...]
    seconds: float


def list_choices(runs_dir: str | Path) -> list[RunChoice]:
    """Every run of `runs_dir`, newest first, as the pickers show them."""
    from workbench.runs import open_runs

    choices = []
    for run in reversed(open_runs(runs_dir)):
        data = run.meta.get("dataset") or {}
        status = run.status
        splits = data.get("reader_splits") or data.get("splits") or {}
        choices.append(RunChoice(
            run.run_id, f"{run.name} · {run.cell} · {status}", run.cell, status,
            str(data.get("input_kind") or "tokens"), str(data.get("target_kind") or "tokens"),
            data.get("input_features"), data.get("input_steps"),
            {str(k): int(v) for k, v in splits.items() if isinstance(v, (int, float))}))
    return choices


class ModelCache:
    """The loaded runs (workbench.explain.LoadedRun), used by one job at a time."""

    def __init__(self, runs_dir: str | Path) -> None:
        self.runs_dir = runs_dir
        self._loaded: OrderedDict[tuple[str, str], Any] = OrderedDict()

    def get(self, run_id: str, which: str) -> Any:
        from workbench.explain import load_run

        key = (run_id, which)
        loaded = self._loaded.get(key)
        if loaded is not None and not loaded.is_current():
            self._loaded.pop(key).close()
            loaded = None
        if loaded is None:
            loaded = load_run(run_id, which, runs_dir=self.runs_dir)
            self._loaded[key] = loaded
            while len(self._loaded) > CACHED_RUNS:
                self._loaded.popitem(last=False)[1].close()
        self._loaded.move_to_end(key)
        return loaded

    def close(self) -> None:
        for loaded in self._loaded.values():
            loaded.close()
        self._loaded.clear()


def compute(request: Request, cache: ModelCache, sink: Any) -> Result:
    """The job: every run's explanation of the request's input (the first part sent to
    `sink` as a Partial), then their connectivity."""
    import torch

    from workbench.explain import add_connectivity, explain_loaded

    # Each job is a new thread, and MKL keeps its thread count per thread: without this a
    # job's float32 tanh ran on MKL's default team, 15 ms per call of 128 values instead
    # of 6 us (2 loaded cores). Re-applying the process's torch setting fixes it.
    torch.set_num_threads(torch.get_num_threads())
    started = time.perf_counter()
    loaded: list[Any] = []
    first: list[Any] = []
    for run_id in request.run_ids:
        try:
            model = cache.get(run_id, request.which)
            beam = request.beam if model.target.kind == "tokens" else 1
            first.append(explain_loaded(model, request.source, beam=beam, connectivity=False))
            loaded.append(model)
        except Exception as exc:  # noqa: BLE001 - shown in the view, never lost
            first.append(_message(exc))
            loaded.append(None)
    sink.on_event(Partial(request.seq, request.run_ids, tuple(first),
                          time.perf_counter() - started))
    done: list[Any] = []
    for model, result in zip(loaded, first, strict=True):
        if model is None:
            done.append(result)
            continue
        try:
            done.append(add_connectivity(model, result, method=request.method))
        except Exception as exc:  # noqa: BLE001
            done.append(_message(exc))
    return Result(request.seq, request.run_ids, tuple(done), time.perf_counter() - started)


def _message(exc: BaseException) -> str:
    from workbench.errors import WorkbenchError

    text = " ".join(str(exc).split())
    return text if isinstance(exc, WorkbenchError) else f"{type(exc).__name__}: {text}"


class InspectPanel(QtWidgets.QWidget):
    """The inspector (see the module docstring). `runs_dir`: where the runs are."""

    painted = QtCore.Signal(int, bool)  # request number, complete (with connectivity)

    def __init__(self, runs_dir: str | Path, parent: QtWidgets.QWidget | None = None, *,
                 run_id: str | None = None) -> None:
        super().__init__(parent)
        self.runs_dir = Path(runs_dir)
        self.choices: dict[str, RunChoice] = {}
        self._wanted_run = run_id
        self._seq = itertools.count(1)
        self.requested_seq = 0
        self.painted_seq = 0
        self.painted_complete = False
        self.paint_ms: list[float] = []  # the GUI thread's time for each paint (benchmark)
        self._requested_at: dict[int, float] = {}
        self.latencies: list[tuple[int, bool, float]] = []  # (seq, complete, ms from request)
        self.compute_ms: list[tuple[bool, float]] = []  # (complete, the job's ms) per paint
        self.connectivity_method = "fused"  # the benchmark measures "unrolled" too
        self.cache = ModelCache(self.runs_dir)
        self.job = JobSession(self, interval_ms=DRAIN_MS)
        self.job.thread_name = "inspect"
        self.latest = Latest(self.job)
        self.job.events_ready.connect(self._on_events)
        self.job.finished.connect(self._on_finished)
        self.list_job = JobSession(self, interval_ms=DRAIN_MS)
        self.list_job.thread_name = "inspect-runs"
        self.list_latest = Latest(self.list_job)
        self.list_job.finished.connect(self._on_listed)
        self._build()
        self.refresh_runs()

    # -- building ------------------------------------------------------------------------

    def _build(self) -> None:
        self.run_combo = common.compact_combo(QtWidgets.QComboBox(), 16)
        self.run_combo.setToolTip("The run whose model is inspected (a run training now: its "
                                  "latest checkpoint)")
        self.compare_combo = common.compact_combo(QtWidgets.QComboBox(), 12)
        self.compare_combo.setToolTip("A second run on the same input, side by side")
        self.which_combo = QtWidgets.QComboBox()
        self.which_combo.addItems(["best", "latest"])
        self.which_combo.setToolTip("Which checkpoint: the best validation loss (else the "
                                    "latest), or the latest")
        self.beam_spin = QtWidgets.QSpinBox()
        self.beam_spin.setRange(1, 16)
        self.beam_spin.setToolTip("Beam width for token outputs (1: greedy)")
        self.refresh_button = QtWidgets.QPushButton("Refresh")
        self.refresh_button.setToolTip("Re-read the runs folder and the checkpoints")
        self.editor = InputEditor()
        self.editor.setSizePolicy(QtWidgets.QSizePolicy.Policy.Preferred,
                                  QtWidgets.QSizePolicy.Policy.Maximum)
        self.state_combo = QtWidgets.QComboBox()
        self.state_combo.addItem("h (hidden state)", "h")
        self.state_combo.addItem("c (cell state, LSTM)", "c")
        self.layer_combo = common.LayerCombo("The layer whose states are shown")
        self.sort_combo = QtWidgets.QComboBox()
        self.sort_combo.addItems(list(SORTS))
        self.sort_combo.setToolTip("The order of the heatmap's rows")
        self.threshold_spin = QtWidgets.QDoubleSpinBox()
        self.threshold_spin.setRange(-100.0, 100.0)
        self.threshold_spin.setSingleStep(0.05)
        self.threshold_spin.setValue(0.3)
        self.threshold_spin.setToolTip("Select View: a unit is 'on' over the span when its "
                                       "value stays above this")
        self.status = QtWidgets.QLabel("")
        self.status.setWordWrap(True)
        self.views = (ExplanationView(), ExplanationView())
        self.views[1].hide()
        self.view_splitter = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        for view in self.views:
            self.view_splitter.addWidget(view)
        top = QtWidgets.QHBoxLayout()
        for item in (QtWidgets.QLabel("Run:"), (self.run_combo, 3), QtWidgets.QLabel("Checkpoint:"),
                     self.which_combo, QtWidgets.QLabel("Compare with:"), (self.compare_combo, 2),
                     QtWidgets.QLabel("Beam:"), self.beam_spin, self.refresh_button):
            if isinstance(item, tuple):
                top.addWidget(*item)
            else:
                top.addWidget(item)
        options = QtWidgets.QHBoxLayout()
        for widget in (QtWidgets.QLabel("State:"), self.state_combo, self.layer_combo,
                       QtWidgets.QLabel("Sort units:"), self.sort_combo,
                       QtWidgets.QLabel("On above:"), self.threshold_spin):
            options.addWidget(widget)
        options.addWidget(self.status, 1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(top)
        layout.addWidget(self.editor)
        layout.addLayout(options)
        # On a short screen (a 1366x768 laptop) the views scroll rather than squash their
        # unit trace and gates to a few pixels (ui.inspect_views: each view's minimum).
        self.view_scroll = QtWidgets.QScrollArea()
        self.view_scroll.setWidgetResizable(True)
        self.view_scroll.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        self.view_scroll.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.view_scroll.setWidget(self.view_splitter)
        layout.addWidget(self.view_scroll, 1)
        self.resize(1200, 860)

        self.run_combo.currentIndexChanged.connect(self._on_run_changed)
        self.compare_combo.currentIndexChanged.connect(self._on_compare_changed)
        self.which_combo.currentIndexChanged.connect(lambda _i: self.request())
        self.beam_spin.valueChanged.connect(lambda _v: self.request())
        self.refresh_button.clicked.connect(self.refresh_runs)
        self.editor.changed.connect(self.request)
        self.editor.copy_requested.connect(self._on_copy_requested)
        self.state_combo.currentIndexChanged.connect(self._on_options)
        self.layer_combo.currentIndexChanged.connect(self._on_options)
        self.sort_combo.currentIndexChanged.connect(self._on_options)
        self.threshold_spin.valueChanged.connect(self._on_options)
        for view, other in ((self.views[0], self.views[1]), (self.views[1], self.views[0])):
            view.span_changed.connect(other.set_span)

    # -- runs ----------------------------------------------------------------------------

    def refresh_runs(self) -> None:
        """Re-list the runs (in the background) and recompute with fresh checkpoints."""
        runs_dir = self.runs_dir
        self.list_latest.submit(lambda _sink: list_choices(runs_dir))

    def _on_listed(self, choices: list[RunChoice] | None) -> None:
        if choices is None:
            return
        self.choices = {c.run_id: c for c in choices}
        current = self._wanted_run or self.run_combo.currentData()
        compare = self.compare_combo.currentData()
        for combo, chosen, none in ((self.run_combo, current, None),
                                    (self.compare_combo, compare, "— none —")):
            combo.blockSignals(True)
            combo.clear()
            if none:
                combo.addItem(none, None)
            for choice in choices:
                combo.addItem(choice.label, choice.run_id)
            index = combo.findData(chosen) if chosen else -1
            combo.setCurrentIndex(index if index >= 0 else 0)
            combo.blockSignals(False)
        self._wanted_run = None
        if not choices:
            self.views[0].show_message(f"No runs in {self.runs_dir} yet: train one first.")
            return
        self._configure_editor()
        self.request()

    def set_runs(self, run_id: str, compare: str | None = None) -> None:
        """Inspect `run_id` (and `compare` beside it) once the runs are listed."""
        if run_id not in self.choices:
            self._wanted_run = run_id
            self.refresh_runs()
            return
        self.compare_combo.blockSignals(True)
        index = self.compare_combo.findData(compare) if compare else 0
        self.compare_combo.setCurrentIndex(max(0, index))
        self.compare_combo.blockSignals(False)
        self._show_second(compare is not None)
        self.run_combo.setCurrentIndex(self.run_combo.findData(run_id))
        self._on_run_changed()

    def _on_run_changed(self, *_args: Any) -> None:
        self._configure_editor()
        self.request()

    def _on_compare_changed(self, *_args: Any) -> None:
        self._show_second(self.compare_combo.currentData() is not None)
        self.request()

    def _show_second(self, shown: bool) -> None:
        if shown and not self.views[1].isVisibleTo(self):
            self.view_splitter.setSizes([10_000, 10_000])
        self.views[1].setVisible(shown)
        for view in self.views:
            view.set_tall(shown)

    def _configure_editor(self) -> None:
        choice = self.choices.get(self.run_combo.currentData())
        if choice is None:
            return
        self.editor.configure(choice.input_kind, choice.features, choice.splits,
                              choice.input_steps)
        self.beam_spin.setEnabled(choice.target_kind == "tokens")

    def run_ids(self) -> tuple[str, ...]:
        ids = [self.run_combo.currentData(), self.compare_combo.currentData()]
        return tuple(str(i) for i in ids if i)

    # -- requests and results ------------------------------------------------------------

    def request(self) -> int:
        """Ask for the explanations of the editor's input; the request's number (0: none)."""
        run_ids = self.run_ids()
        if not run_ids:
            return 0
        source = self.editor.source()
        if isinstance(source, str):
            self.status.setText(source)
            return 0
        seq = next(self._seq)
        self.requested_seq = seq
        self._requested_at[seq] = time.perf_counter()
        request = Request(seq, run_ids, self.which_combo.currentText(), source,
                          self.beam_spin.value(), self.connectivity_method)
        cache = self.cache
        self.latest.submit(lambda sink: compute(request, cache, sink))
        self.status.setText("Computing…")
        return seq

    def _on_events(self, events: tuple) -> None:
        for event in events:
            # a first part is worth painting only while no newer request is waiting
            if (isinstance(event, Partial) and event.seq == self.requested_seq
                    and self._paint(event.seq, event.run_ids, event.results, complete=False)):
                self.compute_ms.append((False, event.seconds * 1000))

    def _on_finished(self, result: Result | None) -> None:
        if isinstance(result, Result):
            if result.seq == self.requested_seq:
                self.status.setText(self._status_text(result))
            if self._paint(result.seq, result.run_ids, result.results, complete=True):
                self.compute_ms.append((True, result.seconds * 1000))

    def _paint(self, seq: int, run_ids: tuple[str, ...], results: tuple[Any, ...], *,
               complete: bool) -> bool:
        """Paint a request's results unless a newer request has been painted; True if painted."""
        if seq < self.painted_seq or (seq == self.painted_seq and self.painted_complete):
            return False
        started = time.perf_counter()
        # the whole of a request whose first part is shown: only the connectivity is new
        connectivity_only = complete and seq == self.painted_seq
        explanations = [r for r in results if not isinstance(r, str)]
        levels = log_levels([e.connectivity for e in explanations]) if complete else None
        shown = (self.views[0], self.views[1]) if len(results) > 1 else (self.views[0],)
        for view, run_id, result in zip(shown, run_ids, results, strict=False):
            choice = self.choices.get(run_id)
            title = choice.label if choice else run_id
            if isinstance(result, str):
                view.show_message(result, title)
                continue
            view.set_connectivity_levels(levels if len(explanations) > 1 else None)
            if connectivity_only and view.explanation is not None:
                view.show_connectivity(result)
                continue
            view.show_explanation(result, f"{title} — {result.checkpoint} checkpoint, step "
                                          f"{result.step:,} — {result.source}")
        first = explanations[0] if explanations else None
        if first is not None:
            self.layer_combo.sync(first.layers, -1)
            self.state_combo.setEnabled(first.encoder.cell is not None)
        self.painted_seq, self.painted_complete = seq, complete
        now = time.perf_counter()
        self.paint_ms.append((now - started) * 1000)
        asked = self._requested_at.get(seq)
        if asked is not None:
            self.latencies.append((seq, complete, (now - asked) * 1000))
        if complete:
            for old in [s for s in self._requested_at if s <= seq]:
                self._requested_at.pop(old, None)
        self.painted.emit(seq, complete)
        return True

    def _status_text(self, result: Result) -> str:
        errors = [r for r in result.results if isinstance(r, str)]
        if errors:
            return errors[0]
        return f"Computed in {result.seconds * 1000:.0f} ms."

    def _on_options(self, *_args: Any) -> None:
        state = self.state_combo.currentData() or "h"
        for view in self.views:
            view.set_options(state=state, layer=self.layer_combo.layer,
                             sort=self.sort_combo.currentText(),
                             threshold=self.threshold_spin.value())

    def _on_copy_requested(self) -> None:
        """"Edit a copy": the sample shown goes into the Text or Values tab."""
        e = self.views[0].explanation
        if e is None:
            return
        if e.input_kind == "tokens":
            self.editor.set_mode("text")
            self.editor.set_text(e.text("input") or "")
        else:
            self.editor.set_mode("values")
            self.editor.set_values(e.input)

    # -- closing -------------------------------------------------------------------------

    def close_jobs(self, timeout_ms: int = 30_000) -> bool:
        """Drop waiting requests, wait for the running ones, release the models."""
        self.latest.drop_waiting()
        self.list_latest.drop_waiting()
        done = self.job.wait(timeout_ms) and self.list_job.wait(timeout_ms)
        if done:
            self.cache.close()
        return done


class InspectWindow(QtWidgets.QMainWindow):
    """The panel in a window of its own (View ▸ Inspect…)."""

    def __init__(self, runs_dir: str | Path, parent: QtWidgets.QWidget | None = None, *,
                 run_id: str | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Inspect – Sequence Workbench")
        self.setObjectName("inspectWindow")
        self.panel = InspectPanel(runs_dir, self, run_id=run_id)
        self.setCentralWidget(self.panel)
        self.resize(1280, 900)

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 - Qt's name
        self.panel.close_jobs()
        super().closeEvent(event)


class _CloseWith(QtCore.QObject):
    """Closes the inspector when the main window closes (an event filter on it)."""

    def __init__(self, window: QtWidgets.QWidget, holder: dict[str, Any]) -> None:
        super().__init__(window)
        self._holder = holder

    def eventFilter(self, watched: QtCore.QObject, event: QtCore.QEvent) -> bool:  # noqa: N802
        if event.type() == QtCore.QEvent.Type.Close and event.isAccepted():
            inspector = self._holder.get("window")
            if inspector is not None:
                inspector.close()
        return False


def add_inspect_action(window: QtWidgets.QWidget, menu: QtWidgets.QMenu,
                       runs_dir: str | Path) -> QtGui.QAction:
    """Add "Inspect…" to `menu`: opens (or raises) the Inspect window on the run the main
    window shows, if any. The inspector closes with `window`."""
    holder: dict[str, Any] = {}

    def open_inspector() -> None:
        shown = getattr(getattr(window, "runs", None), "shown_run_id", None)
        inspector = holder.get("window")
        if inspector is None:
            inspector = InspectWindow(runs_dir, window, run_id=shown)
            inspector.setWindowFlag(QtCore.Qt.WindowType.Window, True)
            holder["window"] = inspector
        else:
            inspector.panel.refresh_runs()
        inspector.show()
        inspector.raise_()
        inspector.activateWindow()

    action = QtGui.QAction("&Inspect…", window)
    action.setShortcut(QtGui.QKeySequence("Ctrl+I"))
    action.setToolTip("Give a trained model your own input and watch its hidden states, "
                      "gates and connectivity (Ctrl+I)")
    action.triggered.connect(open_inspector)
    menu.addAction(action)
    window.installEventFilter(_CloseWith(window, holder))
    window.inspect_windows = holder  # type: ignore[attr-defined]  # tests reach the window
    return action


# -- running alone ----------------------------------------------------------------------------


def make_demo_runs(folder: Path, steps: int = 300, *, length: int = 5,
                   delay: int = 15) -> tuple[str, str]:
    """(rnn-tanh run id, lstm run id) trained on a copy task in `folder` (RunService)."""
    from workbench.config import RunConfig
    from workbench.run_service import RunService
    from workbench.tasks import generate

    data = generate("copy", folder / "copy.h5", n=2000, seed=0, length=length, delay=delay,
                    vocab=8)
    service = RunService(folder / "runs")
    ids = []
    for cell in ("rnn-tanh", "lstm"):
        config = RunConfig(data=str(data), cell=cell, hidden=64, batch_size=32, epochs=None,
                           steps=steps, lr=0.01, threads=1, probe_every=max(1, steps)).validate()
        active = service.start(config)
        active.run()
        ids.append(active.run_id)
    return ids[0], ids[1]


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys
    import tempfile

    parser = argparse.ArgumentParser(description="The Inspect window alone")
    parser.add_argument("--runs-dir", help="inspect the runs of this folder (default: train "
                        "rnn-tanh and lstm on a copy task in a temporary folder)")
    parser.add_argument("--run", help="the run to inspect (default: the newest)")
    parser.add_argument("--compare", help="a second run, side by side")
    parser.add_argument("--steps", type=int, default=300, help="training steps of the demo runs")
    parser.add_argument("--smoke", action="store_true",
                        help="quit once the first complete explanation is painted")
    parser.add_argument("--screenshot", metavar="PNG", help="save the window there and quit")
    args = parser.parse_args(argv)
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    temp = None
    compare, run_id = args.compare, args.run
    if args.runs_dir:
        runs_dir = Path(args.runs_dir)
    else:
        temp = tempfile.TemporaryDirectory(prefix="inspect-demo-")
        print("training rnn-tanh and lstm on a copy task…", file=sys.stderr)
        compare, run_id = make_demo_runs(Path(temp.name), args.steps)
        runs_dir = Path(temp.name) / "runs"
    window = InspectWindow(runs_dir, run_id=run_id)
    if compare and run_id:
        def compare_once(_result: Any) -> None:
            window.panel.list_job.finished.disconnect(compare_once)
            window.panel.set_runs(run_id, compare)

        window.panel.list_job.finished.connect(compare_once)
    if args.screenshot:  # as a user sees it: maximised on this screen, frame and all
        window.showMaximized()
    else:
        window.show()
    outcome = {"painted": False}

    def on_painted(seq: int, complete: bool) -> None:
        done = complete and seq == window.panel.requested_seq and not window.panel.latest.waiting
        if done and (args.smoke or args.screenshot) and not outcome["painted"]:
            outcome["painted"] = True
            if args.screenshot:  # once the side-by-side run has painted too
                QtCore.QTimer.singleShot(3000, grab)
            else:
                QtCore.QTimer.singleShot(100, window.close)

    def grab() -> None:
        QtGui.QGuiApplication.primaryScreen().grabWindow(0).save(args.screenshot)
        print(f"wrote {args.screenshot}", file=sys.stderr)
        QtCore.QTimer.singleShot(100, window.close)

    window.panel.painted.connect(on_painted)
    if args.smoke or args.screenshot:
        QtCore.QTimer.singleShot(60_000, window.close)
    app.lastWindowClosed.connect(app.quit)
    code = app.exec()
    window.panel.close_jobs()
    if temp is not None:
        temp.cleanup()
    if args.smoke and not outcome["painted"]:
        print("nothing was painted", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    raise SystemExit(main())
