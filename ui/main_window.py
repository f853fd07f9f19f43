"""The main window: panels in docks, the training controls, and the wiring between them.

Layout (every panel is a dock, so it can be moved, tabbed or floated, and the
arrangement is saved):

    toolbar:  Open | New from task | Train  Pause  Stop  [progress: epoch, step]
    left:     Data (arrays, summary, sample preview)
    top:      Loss                        right: Model and training settings
    bottom:   Gradient per time step | Hidden trajectory | Gates | Predictions
              Runs (every run in the runs directory; Comparisons reopens saved ones)
    status:   messages | run name | ETA | sequences/s

Predictions never touch a training model from the GUI thread: during a run a
`LivePredictor` (a Trainer listener) predicts the chosen validation sample in the
training thread, between steps, and sends it down the worker's event stream; for a
finished or replayed run a `CheckpointPredictor` loads the run's best checkpoint
into a model of its own in a background thread. "Compare Cells…" runs a queue of
runs (ui.compare_worker) shown in a CompareView window; only one of a run and a
comparison trains at a time.

The window owns the objects the panels show (`DatasetDocument`, `TrainingSession`,
`RunsIndex`) and connects them; it holds no training logic. A live run's events
and a replayed run's events reach the same plots (`_feed_plots`). Live events come
from the worker at most ~20 times a second and reach the plots 4 times a second
(PLOT_UPDATE_MS): pyqtgraph paints in Python, holding the GIL the training thread
needs between torch calls (measured: benchmarks/bench_ui.py).
"""

from __future__ import annotations

import contextlib
import math
import shutil
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QSize, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMenu,
    QTabWidget,
    QToolBar,
    QWidget,
)

from ui import errors
from ui.compare_dialog import choose_comparison
from ui.compare_view import CompareView
from ui.compare_worker import CompareSession, runner_factory
from ui.controls import TrainingControls
from ui.data_panel import DataPanel, DatasetDocument
from ui.model_panel import ModelPanel
from ui.plots.gates_plot import GatesPlot
from ui.plots.gradient_plot import GradientPlot
from ui.plots.loss_plot import LossPlot
from ui.plots.predictions_plot import CheckpointPredictor, LivePredictor, PredictionsPlot
from ui.plots.trajectory_plot import TrajectoryPlot
from ui.runs_panel import RunsIndex, RunsPanel
from ui.settings import AppSettings
from ui.task_dialog import ensure_builtin_dataset, new_dataset_from_task
from ui.worker import TrainingSession, WorkerFailure
from workbench.errors import WorkbenchError
from workbench.events import (
    EpochMetrics,
    Event,
    ListenerError,
    RecordingListener,
    RunFinished,
    RunStarted,
    StepMetrics,
)

CLOSE_WAIT_MS = 500
LOAD_DELAY_MS = 50
PLOT_UPDATE_MS = 250  # live plots update 4 times a second (see _plot_timer)
LIVE_ROW_INTERVAL_S = 1.0  # how often the live run's line in the Runs panel updates  # lets the window paint before the first dataset is opened  # how long closing waits for a stopping run before saying so
DATASET_SUFFIXES = (".h5", ".hdf5", ".hdf")


class MainWindow(QMainWindow):
    """Sequence Workbench's window. `settings` is read at start and written at close."""

    def __init__(self, settings: AppSettings, *, initial_path: str | None = None,
                 runs_dir: str | Path | None = None, load_dataset: bool = True,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from workbench.runs import default_runs_dir

        self.settings = settings
        self.runs_dir = Path(runs_dir) if runs_dir is not None else default_runs_dir()
        self.setWindowTitle("Sequence Workbench")
        self.setObjectName("mainWindow")
        self.setAcceptDrops(True)
        self.setDockNestingEnabled(True)
        self.setTabPosition(Qt.DockWidgetArea.AllDockWidgetAreas, QTabWidget.TabPosition.North)
        self._close_pending = False
        self._shown_once = False
        self._restored_state = False
        self._live_run_id: str | None = None
        self._replayed_run_id: str | None = None
        self._overlay_cache: dict[str, tuple[int, list[Event]]] = {}
        # run id -> (events, colour, label) the overlaid plots were last given
        self._overlays_drawn: dict[str, tuple[list[Event], str, str]] = {}
        self._live_progress: list[Event] = []
        self._live_row_shown = 0.0
        self._live_predictor: LivePredictor | None = None
        self._prediction_run_id: str | None = None  # the finished run the predictions show
        self.compare_views: list[CompareView] = []

        # the objects the panels show
        self.document = DatasetDocument(self)
        self.session = TrainingSession(self)
        self.compare_session = CompareSession(self)
        self.checkpoint_predictor = CheckpointPredictor(self.runs_dir, self)
        self.runs_index = RunsIndex(self.runs_dir, self)

        # the panels
        self.data_panel = DataPanel(self.document)
        self.model_panel = ModelPanel(self.document, settings.model_settings())
        self.controls = TrainingControls(self.session)
        self.loss_plot = LossPlot()
        self.gradient_plot = GradientPlot()
        self.trajectory_plot = TrajectoryPlot()
        self.gates_plot = GatesPlot()
        self.predictions_plot = PredictionsPlot()
        self.runs_panel = RunsPanel(self.runs_index)
        self.plots = (self.loss_plot, self.gradient_plot, self.trajectory_plot, self.gates_plot,
                      self.predictions_plot)
        self._held_events: dict[Any, list[Event]] = {plot: [] for plot in self.plots}
        # Live events reach the plots PLOT_UPDATE_MS apart: painting a plot is Python
        # work that holds the GIL, and each redraw slows the training thread a little.
        self._live_for_plots: list[Event] = []
        self._plot_timer = QTimer(self)
        self._plot_timer.setSingleShot(True)
        self._plot_timer.setInterval(PLOT_UPDATE_MS)
        self._plot_timer.timeout.connect(self._on_plot_update_due)

        self._build_docks()
        self._build_actions()
        self._build_menus_and_toolbar()
        self._build_status_bar()
        self._connect()
        self._restore_layout()
        self.runs_index.refresh()
        self._initial_path = initial_path
        self._load_pending = load_dataset

    # --- construction -------------------------------------------------------------------
    def _dock(self, title: str, name: str, widget: QWidget, tip: str) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        dock.setToolTip(tip)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                         | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        return dock

    def _build_docks(self) -> None:
        # A small central widget: every panel is a dock around it.
        center = QWidget(self)
        center.setObjectName("center")
        center.setMaximumHeight(0)  # the center column takes spare width, no height
        self.setCentralWidget(center)
        self.setCorner(Qt.Corner.TopLeftCorner, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.setCorner(Qt.Corner.BottomLeftCorner, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.setCorner(Qt.Corner.TopRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)

        self.data_dock = self._dock("Data", "dataDock", self.data_panel,
                                    "The dataset: its arrays, summary and one sample")
        self.model_dock = self._dock("Model and training", "modelDock", self.model_panel,
                                     "The settings of the next run")
        self.loss_dock = self._dock("Loss", "lossDock", self.loss_plot,
                                    "Training and validation loss")
        self.gradient_dock = self._dock(
            "Gradient per time step", "gradientDock", self.gradient_plot,
            "How strongly the loss depends on the hidden state at each time step: "
            "a curve falling towards early steps is a vanishing gradient")
        self.trajectory_dock = self._dock(
            "Hidden-state trajectory", "trajectoryDock", self.trajectory_plot,
            "The hidden state of a few samples moving through time (projected to 2-D)")
        self.gates_dock = self._dock(
            "Gates", "gatesDock", self.gates_plot,
            "LSTM and GRU: how open each gate is at each time step, and how often saturated")
        self.predictions_dock = self._dock(
            "Predictions", "predictionsDock", self.predictions_plot,
            "One validation sample: the target, the teacher-forced and the generated output")
        self.runs_dock = self._dock("Runs", "runsDock", self.runs_panel,
                                    "Every run in the runs directory")
        self.docks = (self.data_dock, self.model_dock, self.loss_dock, self.gradient_dock,
                      self.trajectory_dock, self.gates_dock, self.predictions_dock,
                      self.runs_dock)
        self._plot_docks = (self.loss_dock, self.gradient_dock, self.trajectory_dock,
                            self.gates_dock, self.predictions_dock)
        self._dock_shown: dict[QDockWidget, bool] = {}
        for plot, dock in zip(self.plots, self._plot_docks):
            dock.visibilityChanged.connect(
                lambda visible, p=plot, d=dock: self._on_plot_dock_visibility(p, d, visible))
        self._default_layout()

    def _default_layout(self) -> None:
        for dock in self.docks:
            dock.setFloating(False)
            dock.show()
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.data_dock)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.model_dock)
        self.addDockWidget(Qt.DockWidgetArea.TopDockWidgetArea, self.loss_dock)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.gradient_dock)
        # Side by side the two need ~1000 px: tabbed, the window fits a laptop screen.
        # Drag a tab out to see both at once; the arrangement is saved.
        self.tabifyDockWidget(self.gradient_dock, self.trajectory_dock)
        self.tabifyDockWidget(self.trajectory_dock, self.gates_dock)
        self.tabifyDockWidget(self.gates_dock, self.predictions_dock)
        self.gradient_dock.raise_()
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.runs_dock,
                           Qt.Orientation.Vertical)
        self._size_docks()

    def _size_docks(self) -> None:
        """Default dock sizes: side panels readable, plots sharing the rest."""
        height = max(600, self.height())
        side = max(320, min(380, int(self.width() * 0.22)))
        self.resizeDocks([self.data_dock, self.model_dock], [side, side - 20],
                         Qt.Orientation.Horizontal)
        self.resizeDocks([self.loss_dock, self.gradient_dock, self.runs_dock],
                         [int(height * 0.36), int(height * 0.36), int(height * 0.2)],
                         Qt.Orientation.Vertical)

    def showEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        if not self._shown_once:
            self._shown_once = True
            if not self._restored_state:
                # dock sizes apply only once the window has its size
                QTimer.singleShot(0, self._size_docks)
            if self._load_pending:
                # once the window is on screen: a first launch generates the built-in data
                self._load_pending = False
                QTimer.singleShot(LOAD_DELAY_MS, self._load_initial_dataset)

    def _build_actions(self) -> None:
        self.open_action = QAction("&Open Dataset…", self)
        self.open_action.setShortcut(QKeySequence.StandardKey.Open)
        self.open_action.setToolTip("Open an HDF5 file of sequences (Ctrl+O)")
        self.open_action.triggered.connect(self.data_panel.open_dialog)
        self.task_action = QAction("&New Dataset from Task…", self)
        self.task_action.setShortcut(QKeySequence.StandardKey.New)
        self.task_action.setToolTip("Generate a dataset from a built-in task (Ctrl+N)")
        self.task_action.triggered.connect(self.new_dataset_from_task)
        self.export_action = QAction("&Export Plots…", self)
        self.export_action.setToolTip("Save the plots as PNG (or SVG) files")
        self.export_action.triggered.connect(self._on_export_clicked)
        self.export_metrics_action = QAction("Export &Metrics of Ticked Runs (CSV)…", self)
        self.export_metrics_action.setToolTip(
            "One tidy CSV (run, cell, seed, step, metric, value) of the runs ticked in the "
            "Runs panel (or the selected run)")
        self.export_metrics_action.triggered.connect(self._on_export_metrics_clicked)
        self.export_config_action = QAction("Export Run &Config (TOML)…", self)
        self.export_config_action.setToolTip(
            "The selected run's settings as TOML: python main.py train --config FILE re-runs it")
        self.export_config_action.triggered.connect(self._on_export_config_clicked)
        self.compare_action = QAction("&Compare Cells…", self)
        self.compare_action.setToolTip(
            "Train the Model panel's settings with several cells and seeds, one run after "
            "another, and compare them")
        self.compare_action.triggered.connect(self.compare_cells)
        self.quit_action = QAction("&Quit", self)
        self.quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        self.quit_action.triggered.connect(self.close)
        self.reset_layout_action = QAction("&Reset Layout", self)
        self.reset_layout_action.triggered.connect(self._on_reset_layout)
        self.folders_action = QAction("Where Are My &Files?", self)
        self.folders_action.triggered.connect(self._on_folders_clicked)
        self.about_action = QAction("&About Sequence Workbench", self)
        self.about_action.triggered.connect(self._on_about_clicked)

    def _on_reset_layout(self) -> None:
        self._default_layout()
        QTimer.singleShot(0, self._size_docks)

    def _build_menus_and_toolbar(self) -> None:
        menu = self.menuBar().addMenu("&File")
        menu.addAction(self.open_action)
        self.recent_menu = QMenu("Open &Recent", self)
        self.recent_menu.setObjectName("recentMenu")
        menu.addMenu(self.recent_menu)
        menu.addAction(self.task_action)
        menu.addSeparator()
        menu.addAction(self.export_action)
        menu.addAction(self.export_metrics_action)
        menu.addAction(self.export_config_action)
        menu.addSeparator()
        menu.addAction(self.quit_action)
        self._fill_recent_menu()

        menu = self.menuBar().addMenu("&Training")
        menu.addAction(self.controls.train_action)
        menu.addAction(self.controls.pause_action)
        menu.addAction(self.controls.stop_action)
        menu.addSeparator()
        menu.addAction(self.compare_action)

        menu = self.menuBar().addMenu("&View")
        for dock in self.docks:
            menu.addAction(dock.toggleViewAction())
        menu.addSeparator()
        menu.addAction(self.reset_layout_action)

        menu = self.menuBar().addMenu("&Help")
        menu.addAction(self.folders_action)
        menu.addAction(self.about_action)

        toolbar = QToolBar("Main", self)
        toolbar.setObjectName("mainToolBar")
        toolbar.setMovable(False)
        toolbar.setIconSize(QSize(18, 18))
        toolbar.addAction(self.open_action)
        toolbar.addAction(self.task_action)
        toolbar.addSeparator()
        toolbar.addWidget(self.controls)
        toolbar.addSeparator()
        toolbar.addAction(self.compare_action)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, toolbar)
        self.toolbar = toolbar
        # Named for a newcomer: the toolbar shows short labels, the menus the full ones.
        for action, short in ((self.open_action, "Open…"), (self.task_action, "New from Task…"),
                              (self.compare_action, "Compare Cells…")):
            toolbar.widgetForAction(action).setText(short)

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.run_label = QLabel("", self)
        self.run_label.setObjectName("runLabel")
        bar.addPermanentWidget(self.run_label)
        bar.addPermanentWidget(self.controls.eta_label)
        bar.addPermanentWidget(self.controls.speed_label)

    def _connect(self) -> None:
        self.controls.train_requested.connect(self.train)
        self.session.events_ready.connect(self._on_events)
        self.session.failed.connect(self._on_run_failed)
        self.session.finished.connect(self._on_run_finished)
        self.session.state_changed.connect(self._on_session_state)
        self.data_panel.file_opened.connect(self._on_file_opened)
        self.data_panel.new_from_task_requested.connect(self.new_dataset_from_task)
        self.model_panel.validity_changed.connect(self._on_model_validity)
        self.model_panel.changed.connect(self._on_model_changed)
        self.runs_panel.replay_requested.connect(self._on_replay_requested)
        self.runs_panel.overlays_changed.connect(self._on_overlays_changed)
        self.runs_panel.resume_requested.connect(self.resume_run)
        self.runs_panel.comparison_requested.connect(self.open_comparison)
        self.document.changed.connect(self._on_dataset_changed)
        self.predictions_plot.sample_changed.connect(self._on_prediction_sample_changed)
        self.checkpoint_predictor.predicted.connect(self._on_checkpoint_predicted)
        self.checkpoint_predictor.failed.connect(self._on_checkpoint_prediction_failed)
        self.compare_session.events_ready.connect(self._on_compare_events)
        self.compare_session.failed.connect(self._on_compare_failed)
        self.compare_session.state_changed.connect(self._on_session_state)
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self._on_about_to_quit)

    # --- layout and settings ------------------------------------------------------------
    def _restore_layout(self) -> None:
        geometry, state = self.settings.window_state()
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(default_size(self))
        if state is not None:
            self._restored_state = bool(self.restoreState(state))
        self.data_panel.restore_state(self.settings.splitter_state("data"))

    def save_settings(self) -> None:
        """Write geometry, dock layout, model settings and the current dataset."""
        self.settings.set_window_state(self.saveGeometry(), self.saveState())
        self.settings.set_splitter_state("data", QByteArray(self.data_panel.save_state()))
        self.settings.set_model_settings(self.model_panel.values())
        if self.document.path:
            self.settings.set_last_dataset(self.document.path)
        self.settings.sync()

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        files = self.settings.recent_files()
        for path in files:
            action = self.recent_menu.addAction(Path(path).name)
            action.setToolTip(path)
            action.setStatusTip(path)
            action.triggered.connect(lambda _checked=False, p=path: self._open_recent(p))
        if files:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear Menu", self._clear_recent)
        else:
            self.recent_menu.addAction("No recent files").setEnabled(False)

    def _open_recent(self, path: str) -> None:
        if not Path(path).exists():
            errors.show_message(self, "File not found",
                                f"{path} no longer exists; it was removed from the recent files.",
                                level="warning")
            self.settings.remove_recent_file(path)
            self._fill_recent_menu()
            return
        self.data_panel.open_file(path)

    def _clear_recent(self) -> None:
        self.settings.clear_recent_files()
        self._fill_recent_menu()

    # --- datasets -----------------------------------------------------------------------
    def _load_initial_dataset(self) -> None:
        if self._initial_path and self.data_panel.open_file(self._initial_path):
            return
        try:
            path = ensure_builtin_dataset()
        except Exception as exc:  # a read-only data folder, a full disk
            errors.show_error(self, exc, title="The built-in dataset could not be created")
            return
        self.data_panel.open_file(path)

    def open_dataset(self, path: str | Path) -> bool:
        """Open a dataset file (as Open… does); False, with a dialog, when it is bad."""
        return self.data_panel.open_file(path)

    def new_dataset_from_task(self) -> None:
        path = new_dataset_from_task(self)
        if path is not None:
            self.data_panel.open_file(path)

    def _on_file_opened(self, path: str) -> None:
        self.settings.add_recent_file(path)
        self.settings.set_last_dataset(path)
        self._fill_recent_menu()
        self.statusBar().showMessage(f"Opened {path}", 5000)

    def _on_dataset_changed(self) -> None:
        name = Path(self.document.path).name if self.document.path else ""
        self.setWindowTitle(f"{name} – Sequence Workbench" if name else "Sequence Workbench")
        summary = self.document.summary
        self.predictions_plot.set_sample_count(summary.splits.get("val", 0) if summary else 0)
        self._update_train_enabled()

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt's name
        if self._dropped_path(event) is not None:
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt's name
        path = self._dropped_path(event)
        if path is None:
            event.ignore()
            return
        event.acceptProposedAction()
        # open after the drop returns, so the source application is not kept waiting
        QTimer.singleShot(0, lambda: self.data_panel.open_file(path))

    @staticmethod
    def _dropped_path(event: Any) -> str | None:
        mime = event.mimeData()
        if not mime.hasUrls():
            return None
        for url in mime.urls():
            if url.isLocalFile() and url.toLocalFile().lower().endswith(DATASET_SUFFIXES):
                return url.toLocalFile()
        return None

    # --- training -----------------------------------------------------------------------
    def train(self) -> None:
        """Start a new run on the current dataset with the Model panel's settings."""
        if self.session.is_running() or self.compare_session.is_running():
            return
        config = self._config_from_panels("Cannot train with these settings")
        if config is None:
            return
        self.settings.set_model_settings(self.model_panel.values())
        from workbench.runs import create_run_dir

        try:
            run_dir = create_run_dir(config.cell, self.runs_dir)
        except (OSError, WorkbenchError) as exc:
            errors.show_error(self, exc, title="Cannot create the run folder")
            return
        self._start(_new_run_factory(config, run_dir, self._new_live_predictor()))

    def _config_from_panels(self, title: str) -> Any | None:
        """The RunConfig of the open dataset and the Model panel's settings; None, with
        a message titled `title` (or one asking for a dataset), when there is none."""
        if self.document.path is None or self.document.summary is None:
            errors.show_message(self, "No dataset", "Open a dataset first (File ▸ Open).",
                                level="warning")
            return None
        try:
            return self.model_panel.run_config(self.document.path, self.document.inputs,
                                               self.document.targets)
        except WorkbenchError as exc:
            errors.show_error(self, exc, title=title)
            return None

    def resume_run(self, run_id: str) -> None:
        """Continue a stopped or crashed run from its latest checkpoint."""
        if self.session.is_running() or self.compare_session.is_running():
            errors.show_message(self, "A run is in progress",
                                "Stop the current run (or comparison) before resuming a run.",
                                level="info")
            return
        try:
            run = self.runs_index.open(run_id)
            state = run.resume_state()
            config = run.config()
            # the plots show the history up to the checkpoint, then the run goes on
            history = [e for e in run.events() if not isinstance(e, RunFinished)
                       and getattr(e, "step", 0) <= state.step]
        except WorkbenchError as exc:
            errors.show_error(self, exc, title="Cannot resume this run")
            return
        self._start(_resume_factory(config, run.path, run.run_id, state,
                                    self._new_live_predictor()), history)

    def _new_live_predictor(self) -> LivePredictor:
        """The Trainer listener that predicts the chosen sample in the training thread."""
        self._live_predictor = LivePredictor(self.predictions_plot.sample_index)
        self._prediction_run_id = None
        return self._live_predictor

    def _start(self, factory: Any, history: list[Event] | None = None) -> None:
        self._replayed_run_id = None
        self._clear_plots()
        if history:
            self._feed_plots(history)
        self.run_label.setText("Starting…")
        self.session.start(factory)

    def _on_events(self, events: tuple) -> None:
        for event in events:
            if isinstance(event, (StepMetrics, EpochMetrics)):
                self._live_progress.append(event)
            elif isinstance(event, RunStarted):
                self._live_run_id = event.run_id
                self.runs_index.live_run_id = event.run_id
                self.runs_index.refresh()
                row = self.runs_index.row(event.run_id)
                self.run_label.setText(f"Training: {row.name if row else event.run_id}")
                if event.warning:  # e.g. resumed with another thread count
                    self.statusBar().showMessage(event.warning, 15000)
            elif isinstance(event, ListenerError):
                self.statusBar().showMessage(
                    f"Recording problem ({event.listener}): {event.message}", 10000)
        self._live_for_plots.extend(events)
        if not self._plot_timer.isActive():
            self._plot_timer.start()
        if self._live_run_id and time.monotonic() - self._live_row_shown >= LIVE_ROW_INTERVAL_S:
            self._show_live_row()

    def _show_live_row(self) -> None:
        """The live run's line in the Runs panel: steps, best loss, time, speed."""
        self._live_row_shown = time.monotonic()
        steps = [e for e in self._live_progress if isinstance(e, StepMetrics)]
        losses = [e.val_loss for e in self._live_progress
                  if isinstance(e, EpochMetrics) and math.isfinite(e.val_loss)]
        self._live_progress = self._live_progress[-1:] if steps else []
        if not steps and not losses:
            return
        last = steps[-1] if steps else None
        self.runs_index.update_live(
            self._live_run_id,
            steps=last.step if last else None,
            seconds=last.seconds if last else None,
            sequences_per_second=last.sequences_per_second if last else None,
            best_val_loss=min(losses) if losses else None)

    def _on_run_failed(self, failure: WorkerFailure) -> None:
        if failure.user_error:
            errors.show_message(self, "Training could not start", failure.message,
                                level="warning")
        else:
            errors.report_unexpected(self, failure.message, failure.traceback,
                                     title="Training failed")

    def _on_run_finished(self, result: RunFinished | None) -> None:
        self._plot_timer.stop()
        self._on_plot_update_due()  # the last events at once
        # Other samples of the finished run now come from its best checkpoint.
        self._live_predictor = None
        self._prediction_run_id = self._live_run_id
        self.runs_index.live_run_id = None
        self.runs_index.refresh()
        if result is not None:
            words = {"completed": "finished", "stopped": "stopped", "diverged": "diverged",
                     "failed": "failed"}
            name = self.run_label.text().removeprefix("Training: ")
            self.run_label.setText(f"{name}: {words.get(result.status, result.status)}")
            message = f"Run {words.get(result.status, result.status)} at step {result.step}"
            if result.message and result.status in ("diverged", "failed"):
                message += f": {result.message}"
            self.statusBar().showMessage(message, 15000)
            if result.status == "failed" and not self._close_pending:
                errors.show_message(self, "Training failed", result.message or "unknown error")
        self._live_run_id = None

    def _on_session_state(self, state: str) -> None:
        self._update_train_enabled()
        if state == "idle" and self._close_pending:
            QTimer.singleShot(0, self.close)

    def _on_model_validity(self, _valid: bool) -> None:
        self._update_train_enabled()

    def _on_model_changed(self) -> None:
        self._update_train_enabled()

    def _update_train_enabled(self) -> None:
        idle = self.session.state == "idle" and self.compare_session.state == "idle"
        ready = self.document.summary is not None and self.model_panel.is_valid()
        self.controls.train_action.setEnabled(idle and ready and not self._close_pending)
        self.compare_action.setEnabled(idle and ready and not self._close_pending)
        if not self.model_panel.is_valid():
            reason = "; ".join(self.model_panel.errors().values())
            self.controls.train_action.setToolTip(f"Fix the settings first: {reason}")
        elif self.document.summary is None:
            self.controls.train_action.setToolTip("Open a dataset first")
        else:
            self.controls.train_action.setToolTip(
                "Train a new model on the dataset with the settings of the Model panel "
                "(Ctrl+Return)")

    # --- feeding the plots --------------------------------------------------------------
    def _on_plot_update_due(self) -> None:
        events, self._live_for_plots = self._live_for_plots, []
        if events:
            self._feed_plots(events, live=True)

    def _clear_plots(self) -> None:
        self._live_for_plots = []
        self._plot_timer.stop()
        self._held_events = {plot: [] for plot in self.plots}
        for plot in self.plots:
            plot.clear()

    def _feed_plots(self, events: list[Event] | tuple, *, live: bool = False) -> None:
        """Give events to the plots. Live events go one by one through `add_event`,
        whose redraw each plot throttles (a burst costs one redraw, and the gradient
        and trajectory plots ignore step metrics); a history goes through `add_events`,
        drawn at once. While the window is on screen, a plot the user cannot see (a
        tab behind another, a closed dock) gets its events when it is shown."""
        for plot, dock in zip(self.plots, self._plot_docks):
            if self.isVisible() and not self._dock_shown.get(dock, True):
                self._held_events[plot].extend(events)
                continue
            self._release_held(plot)
            if live:
                for event in events:
                    plot.add_event(event)
            else:
                plot.add_events(events)

    def _release_held(self, plot: Any) -> None:
        held = self._held_events.get(plot)
        if held:
            self._held_events[plot] = []
            plot.add_events(held)

    def _on_plot_dock_visibility(self, plot: Any, dock: QDockWidget, visible: bool) -> None:
        # A dock behind another tab is moved off-screen, not hidden: isVisible() stays
        # True, so what counts is this signal.
        self._dock_shown[dock] = visible
        if visible:
            self._release_held(plot)

    # --- runs: replay, overlays ---------------------------------------------------------
    def _run_events(self, run_id: str) -> list[Event]:
        """The recorded history of a run (cached while its step count is unchanged)."""
        row = self.runs_index.row(run_id)
        steps = row.steps if row else -1
        cached = self._overlay_cache.get(run_id)
        if cached is not None and cached[0] == steps and run_id != self._live_run_id:
            return cached[1]
        recorder = RecordingListener()
        self.runs_index.open(run_id).replay(recorder)
        self._overlay_cache[run_id] = (steps, recorder.events)
        return recorder.events

    def replay_run(self, run_id: str) -> bool:
        """Show a recorded run in the plots, through the same code as a live run."""
        if self.session.is_running():
            self.statusBar().showMessage(
                "The plots show the run in progress; tick a run to overlay it instead.", 8000)
            return False
        try:
            events = self._run_events(run_id)
        except WorkbenchError as exc:
            errors.show_error(self, exc, title="Cannot replay this run")
            return False
        self._clear_plots()
        self._feed_plots(events)
        self._replayed_run_id = run_id
        self._prediction_run_id = run_id
        self._request_checkpoint_prediction()
        row = self.runs_index.row(run_id)
        self.run_label.setText(f"Showing: {row.name if row else run_id} ({row.status if row else ''})")
        return True

    def _on_replay_requested(self, run_id: str) -> None:
        if run_id == self._live_run_id or run_id == self._replayed_run_id:
            return
        self.replay_run(run_id)

    def _on_overlays_changed(self, colors: dict[str, str]) -> None:
        overlaid = (self.loss_plot, self.gradient_plot)
        for plot in overlaid:
            for key in list(plot.overlay_keys()):
                if key not in colors:
                    plot.remove_overlay(key)
        for key in [k for k in self._overlays_drawn if k not in colors]:
            del self._overlays_drawn[key]
        for run_id, color in colors.items():
            try:
                events = self._run_events(run_id)
            except WorkbenchError as exc:
                errors.show_error(self, exc, title="Cannot overlay this run")
                continue
            row = self.runs_index.row(run_id)
            label = row.name if row else run_id
            drawn = self._overlays_drawn.get(run_id)
            if drawn is not None and drawn[0] is events and drawn[1:] == (color, label):
                continue  # unchanged (same cached history, colour and name): keep its curves
            for plot in overlaid:
                plot.set_overlay(run_id, label, events, color)
            self._overlays_drawn[run_id] = (events, color, label)

    # --- predictions ----------------------------------------------------------------------
    def _on_prediction_sample_changed(self, index: int) -> None:
        """Another validation sample: the live run predicts it at its next step (in the
        training thread); a finished or replayed run, with its checkpoint."""
        if self._live_predictor is not None and self.session.is_running():
            self._live_predictor.request(index)
        else:
            self._request_checkpoint_prediction(index)

    def _request_checkpoint_prediction(self, index: int | None = None) -> None:
        if self._prediction_run_id is None:
            return
        if index is None:
            index = self.predictions_plot.sample_index
        self.checkpoint_predictor.request(self._prediction_run_id, index)

    def _on_checkpoint_predicted(self, prediction: Any) -> None:
        if prediction.prediction.run_id == self._prediction_run_id:
            self.predictions_plot.show_prediction(prediction)

    def _on_checkpoint_prediction_failed(self, message: str) -> None:
        self.predictions_plot.show_message(f"No prediction for this run.\n\n{message}")

    # --- comparisons --------------------------------------------------------------------
    def compare_cells(self) -> None:
        """Ask which cells and seeds, then train them one after another and show the
        comparison in its own window."""
        if self.session.is_running() or self.compare_session.is_running():
            errors.show_message(self, "Training in progress",
                                "Stop the current run or comparison first.", level="info")
            return
        config = self._config_from_panels("Cannot compare with these settings")
        if config is None:
            return
        choice = choose_comparison(self, config)
        if choice is None:
            return
        self.settings.set_model_settings(self.model_panel.values())
        view = self._show_compare_view(CompareView(session=self.compare_session))
        self.compare_session.start(runner_factory(config, choice.cells, choice.seeds,
                                                  runs_dir=self.runs_dir))
        view.progress.label.setText(f"Starting {choice.runs} runs…")
        self._update_train_enabled()

    def open_comparison(self, comparison_id: str) -> CompareView | None:
        """Reopen a saved comparison in its own window."""
        from workbench.compare import open_comparison

        try:
            comparison = open_comparison(comparison_id, self.runs_dir)
            view = CompareView()
            view.set_comparison(comparison)
        except WorkbenchError as exc:
            errors.show_error(self, exc, title="Cannot open this comparison")
            return None
        return self._show_compare_view(view)

    def _show_compare_view(self, view: CompareView) -> CompareView:
        view.setParent(self, Qt.WindowType.Window)
        view.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        view.destroyed.connect(lambda _obj=None, v=view: self._forget_compare_view(v))
        view.resize(min(1500, max(900, self.width())), min(950, max(700, self.height())))
        self.compare_views.append(view)
        view.show()
        return view

    def _forget_compare_view(self, view: CompareView) -> None:
        with contextlib.suppress(ValueError):
            self.compare_views.remove(view)

    def _on_compare_events(self, events: tuple) -> None:
        from workbench.compare import ComparisonFinished, QueuedRunFinished, QueuedRunStarted

        if any(isinstance(e, (QueuedRunStarted, QueuedRunFinished, ComparisonFinished))
               for e in events):
            self.runs_index.refresh()  # the comparison's runs appear in the Runs panel

    def _on_compare_failed(self, failure: WorkerFailure) -> None:
        if failure.user_error:
            errors.show_message(self, "The comparison could not run", failure.message,
                                level="warning")
        else:
            errors.report_unexpected(self, failure.message, failure.traceback,
                                     title="The comparison failed")

    # --- export, help -------------------------------------------------------------------
    def _on_export_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export the plots into")
        if not folder:
            return
        written = self.export_plots(folder)
        self.statusBar().showMessage(f"Saved {', '.join(p.name for p in written)} in {folder}",
                                     8000)

    def export_plots(self, folder: str | Path, suffix: str = ".png") -> list[Path]:
        folder = Path(folder)
        written = []
        for plot, name in ((self.loss_plot, "loss"), (self.gradient_plot, "gradient"),
                           (self.trajectory_plot, "trajectory"), (self.gates_plot, "gates"),
                           (self.predictions_plot, "predictions")):
            path = folder / f"{name}{suffix}"
            try:
                plot.export(path)
            except Exception as exc:
                errors.show_error(self, exc, title=f"Could not export the {name} plot")
                continue
            written.append(path)
        return written

    def _export_run_ids(self) -> list[str]:
        """The runs an export is about: the ticked ones, else the selected one."""
        ticked = list(self.runs_panel.overlays())
        if ticked:
            return ticked
        selected = self.runs_panel.selected_run_id() or self._replayed_run_id
        return [selected] if selected else []

    def _on_export_metrics_clicked(self) -> None:
        run_ids = self._export_run_ids()
        if not run_ids:
            errors.show_message(self, "No runs to export",
                                "Tick runs in the Runs panel (or select one) first.", level="info")
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export the metrics of the runs",
                                              "metrics.csv", "CSV files (*.csv)")
        if path:
            self.export_metrics(run_ids, path if path.lower().endswith(".csv") else path + ".csv")

    def export_metrics(self, run_ids: list[str], path: str | Path) -> int:
        """Write the metrics of `run_ids` to one tidy CSV; the number of rows written."""
        from workbench.exports import write_metrics_csv

        try:
            rows = write_metrics_csv(run_ids, path, runs_dir=self.runs_dir)
        except (OSError, WorkbenchError) as exc:
            errors.show_error(self, exc, title="Could not export the metrics")
            return 0
        self.statusBar().showMessage(f"Saved the metrics of {len(run_ids)} run(s) in {path}", 8000)
        return rows

    def _on_export_config_clicked(self) -> None:
        run_id = self.runs_panel.selected_run_id() or self._replayed_run_id
        if not run_id:
            errors.show_message(self, "No run selected", "Select a run in the Runs panel first.",
                                level="info")
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export the run's config", f"{run_id}.toml",
                                              "TOML files (*.toml)")
        if path:
            self.export_config(run_id, path if path.lower().endswith(".toml") else path + ".toml")

    def export_config(self, run_id: str, path: str | Path) -> Path | None:
        """Write a run's config as TOML (what `train --config` re-runs)."""
        from workbench.exports import export_config

        try:
            written = export_config(run_id, path, runs_dir=self.runs_dir)
        except (OSError, WorkbenchError) as exc:
            errors.show_error(self, exc, title="Could not export the config")
            return None
        self.statusBar().showMessage(f"Saved the config of {run_id} in {written}", 8000)
        return written

    def _on_folders_clicked(self) -> None:
        from ui.errors import log_path
        from ui.settings import data_home

        errors.show_message(
            self, "Where are my files?",
            f"Data folder: {data_home()}\nRuns: {self.runs_dir}\n"
            f"Settings: {self.settings.path}\nError log: {log_path()}", level="info")

    def _on_about_clicked(self) -> None:
        errors.show_message(
            self, "About Sequence Workbench",
            "Sequence Workbench trains recurrent sequence models (RNN, GRU, LSTM) on your "
            "data and shows, live, the loss, the gradient at every time step (vanishing and "
            "exploding gradients made visible) and the hidden state moving through time.",
            level="info")

    # --- closing ------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt's name
        """Stop a run or a comparison first (it saves its checkpoint), wait for its
        thread, then close."""
        if self.session.is_running() or self.compare_session.is_running():
            if not self._close_pending:
                self._close_pending = True
                self.session.stop()
                self.compare_session.cancel()
                if not (self.session.wait(CLOSE_WAIT_MS)
                        and self.compare_session.wait(CLOSE_WAIT_MS)):
                    self._show_finishing()
                    event.ignore()
                    return
            elif not (self.session.wait(0) and self.compare_session.wait(0)):
                event.ignore()
                return
        self.save_settings()
        self.checkpoint_predictor.close()
        for view in list(self.compare_views):
            view.close()
        self.document.close()
        event.accept()

    def _show_finishing(self) -> None:
        self.controls.progress.setFormat("Finishing the current step and saving the run; "
                                         "the window closes when it is done…")
        self.statusBar().showMessage("Finishing the current step and saving the run…")
        for dock in self.docks:
            dock.widget().setEnabled(False)
        self._update_train_enabled()

    def _on_about_to_quit(self) -> None:
        # The last safety net: never leave the training thread running at exit.
        if self.session.is_running():
            self.session.stop()
            self.session.wait(60_000)
        if self.compare_session.is_running():
            self.compare_session.shutdown(60_000)

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        """Stop any run or comparison and wait for its thread (tests, scripts)."""
        compared = self.compare_session.shutdown(timeout_ms)
        return self.session.shutdown(timeout_ms) and compared


def default_size(widget: QWidget) -> QSize:
    """A first-launch size: most of the screen, at most 1600 x 1000."""
    screen = widget.screen() or QApplication.primaryScreen()
    if screen is None:
        return QSize(1500, 940)
    area = screen.availableGeometry()
    return QSize(min(1600, int(area.width() * 0.94)), min(1000, int(area.height() * 0.94)))


# --- what a run is built from (called in the training thread) ----------------------------


class _ClosingTrainer:
    """A Trainer that closes its dataset and its recorder when its run ends."""

    def __init__(self, trainer: Any, dataset: Any, recorder: Any) -> None:
        self._trainer, self._dataset, self._recorder = trainer, dataset, recorder

    def run(self) -> RunFinished:
        try:
            return self._trainer.run()
        finally:
            with contextlib.suppress(Exception):
                self._recorder.close()
            self._dataset.close()

    def request_stop(self) -> None:
        self._trainer.request_stop()

    def request_pause(self) -> None:
        self._trainer.request_pause()

    def resume(self) -> None:
        self._trainer.resume()


def _open_dataset(config: Any) -> Any:
    from workbench.datasets import SequenceDataset

    return SequenceDataset.open(config.data, config.inputs, config.targets,
                                split_seed=config.split_seed, val_fraction=config.val_fraction)


def _new_run_factory(config: Any, run_dir: Path, predictor: LivePredictor | None = None):
    """Builds a new run's Trainer in the training thread (opening the data there);
    `predictor` predicts a validation sample in that thread, after the GUI listener."""

    def factory(listener: Any) -> _ClosingTrainer:
        from workbench.runs import RunRecorder
        from workbench.training import Trainer

        dataset = None
        try:
            dataset = _open_dataset(config)
            recorder = RunRecorder(run_dir)
            trainer = Trainer(config, dataset, _listeners(recorder, listener, predictor),
                              thread_policy="gui")
            if predictor is not None:
                predictor.bind(listener, trainer)
        except BaseException:
            if dataset is not None:
                dataset.close()
            if not (run_dir / "run.json").exists():
                shutil.rmtree(run_dir, ignore_errors=True)  # nothing was recorded
            raise
        return _ClosingTrainer(trainer, dataset, recorder)

    return factory


def _listeners(recorder: Any, listener: Any, predictor: LivePredictor | None) -> list[Any]:
    return [recorder, listener] + ([predictor] if predictor is not None else [])


def _resume_factory(config: Any, run_dir: Path, run_id: str, state: Any,
                    predictor: LivePredictor | None = None):
    """Builds the Trainer that continues a recorded run."""

    def factory(listener: Any) -> _ClosingTrainer:
        from workbench.runs import RunRecorder
        from workbench.training import Trainer

        dataset = _open_dataset(config)
        try:
            recorder = RunRecorder(run_dir)
            trainer = Trainer(config, dataset, _listeners(recorder, listener, predictor),
                              run_id=run_id, resume=state, thread_policy="gui")
            if predictor is not None:
                predictor.bind(listener, trainer)
        except BaseException:
            dataset.close()
            raise
        return _ClosingTrainer(trainer, dataset, recorder)

    return factory
