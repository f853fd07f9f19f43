"""The main window: the composition root. It builds the objects the panels show, the
panels, their docks (ui.docks), the menus and the toolbar, and connects them.

    toolbar:  Open | New from task | Train  Pause  Stop  [progress: epoch, step]
    status:   messages | run name | ETA | sequences/s

The work is done by the parts it composes: `RunController` (start, resume and
follow the training run), `Comparisons` (Compare Cells… and saved comparisons),
`PlotFeed` (events to the plots, live and replayed through the same call),
`Overlays`, `PredictionsRouter` and `ExportActions`. Background work runs on plain
threads (ui.jobs); this window holds no training logic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QSize, Qt, QTimer
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QLabel, QMainWindow, QMessageBox, QTabWidget, QWidget

from ui import errors
from ui.comparisons import Comparisons
from ui.controls import TrainingControls
from ui.data_panel import DataPanel, DatasetDocument
from ui.docks import Docks
from ui.export_actions import ExportActions
from ui.import_dialog import import_dataset
from ui.launcher import Launcher
from ui.menus import build_menus_and_toolbar
from ui.model_panel import ModelPanel
from ui.plot_feed import Overlays, PlotFeed, RunHistories
from ui.plots.attention_plot import AttentionPlot
from ui.plots.gates_plot import GatesPlot
from ui.plots.grad_norm_plot import GradNormPlot
from ui.plots.gradient_plot import GradientPlot
from ui.plots.loss_plot import LossPlot
from ui.plots.predictions_plot import PredictionsPlot
from ui.plots.trajectory_plot import TrajectoryPlot
from ui.predictions_router import PredictionsRouter
from ui.presentation import Presentation
from ui.run_controller import RunController
from ui.runs_panel import RunsIndex, RunsPanel
from ui.settings import AppSettings
from ui.task_dialog import ensure_builtin_dataset, new_dataset_from_task
from workbench.runs import default_runs_dir

CLOSE_WAIT_MS = 500  # how long closing waits for a stopping run before saying so
LOAD_DELAY_MS = 50  # lets the window paint before the first dataset is opened
DATASET_SUFFIXES = (".h5", ".hdf5", ".hdf")


class MainWindow(QMainWindow):
    """Sequence Workbench's window. `settings` is read at start and written at close."""

    def __init__(self, settings: AppSettings, *, initial_path: str | None = None,
                 runs_dir: str | Path | None = None, load_dataset: bool = True,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.runs_dir = Path(runs_dir) if runs_dir is not None else default_runs_dir()
        self.setWindowTitle("Sequence Workbench")
        self.setObjectName("mainWindow")
        self.setAcceptDrops(True)
        self.setDockNestingEnabled(True)
        self.setTabPosition(Qt.DockWidgetArea.AllDockWidgetAreas, QTabWidget.TabPosition.North)
        self._close_pending = False
        self._close_confirmed = False  # close_without_asking: no question
        self._layout_size, self._settling = QSize(), 0  # the size a Reset Layout keeps
        self._opened_note = ""  # said with the next "Opened …"
        self._shown_once = False
        self._restored_state = False
        self._initial_path = initial_path
        self._load_pending = load_dataset

        # the objects the panels show, and the panels
        self.document = DatasetDocument(self)
        self.runs_index = RunsIndex(self.runs_dir, self)
        self.data_panel = DataPanel(self.document)
        self.model_panel = ModelPanel(self.document, settings.model_settings())
        self.loss_plot = LossPlot()
        self.gradient_plot = GradientPlot()
        self.trajectory_plot = TrajectoryPlot()
        self.gates_plot = GatesPlot()
        self.predictions_plot = PredictionsPlot()
        self.attention_plot = AttentionPlot()
        self.predictions_plot.runs_dir = self.runs_dir  # the beam tree's decodes
        self.grad_norm_plot = GradNormPlot()
        self.runs_panel = RunsPanel(self.runs_index)
        self.plots = (self.loss_plot, self.gradient_plot, self.trajectory_plot, self.gates_plot,
                      self.predictions_plot, self.attention_plot, self.grad_norm_plot)
        self.docks = Docks.build(self, {
            "data": self.data_panel, "model": self.model_panel, "loss": self.loss_plot,
            "gradient": self.gradient_plot, "trajectory": self.trajectory_plot,
            "gates": self.gates_plot, "predictions": self.predictions_plot,
            "attention": self.attention_plot, "runs": self.runs_panel,
            "grad_norm": self.grad_norm_plot})
        self.run_label = QLabel("", self)
        self.run_label.setObjectName("runLabel")

        # the parts that do the work
        self.feed = PlotFeed(self.plots, self.docks.plots, self.isVisible)
        self.histories = RunHistories(self.runs_index)
        self.overlays = Overlays((self.loss_plot, self.gradient_plot), self.histories,
                                 self._on_overlay_error)
        self.predictions = PredictionsRouter(self.predictions_plot, self.runs_dir, self)
        self.runs = RunController(self, self.runs_dir, self.feed, self.runs_index,
                                  self.histories, self.predictions, self.statusBar(),
                                  self.run_label)
        self.replay_run = self.runs.replay
        self.session = self.runs.session
        self.comparisons = Comparisons(self, self.runs_dir, self.runs_index)
        self.compare_session = self.comparisons.session
        self.compare_views = self.comparisons.views
        self.controls = TrainingControls(self.session)
        self.exports = ExportActions(self, self.feed, self.runs_panel, self.runs_dir,
                                     self.statusBar(), lambda: self.runs.shown_run_id)
        self.launcher = Launcher(self, self.document, self.model_panel, settings, self.runs,
                                 self.comparisons, self.controls)
        self.train, self.resume_run = self.launcher.train, self.launcher.resume
        self.compare_cells = self.launcher.compare
        self.export_plots = self.exports.export_plots
        self.export_metrics = self.exports.export_metrics
        self.export_config = self.exports.export_config

        self.presentation = Presentation(self, self.docks, settings)
        build_menus_and_toolbar(self)
        self._connect()
        self._restore_layout()
        self.runs_index.refresh()

    def _connect(self) -> None:
        self.controls.train_requested.connect(self.train)
        for session in self.launcher.sessions:  # a run, a comparison, a sweep
            session.state_changed.connect(self._on_session_state)
        self.data_panel.file_opened.connect(self._on_file_opened)
        self.data_panel.new_from_task_requested.connect(self.new_dataset_from_task)
        self.model_panel.validity_changed.connect(self._update_train_enabled)
        self.model_panel.changed.connect(self._update_train_enabled)
        self.runs_panel.replay_requested.connect(self.runs.on_replay_requested)
        self.runs_panel.overlays_changed.connect(
            lambda colors: self.overlays.update(colors, live_run_id=self.runs.live_run_id))
        self.runs_panel.resume_requested.connect(self.resume_run)
        self.runs_panel.comparison_requested.connect(self.open_comparison)
        self.document.changed.connect(self._on_dataset_changed)
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self._on_about_to_quit)

    def showEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        if not self._shown_once:
            self._shown_once = True
            if not self._restored_state:  # once the window has its size:
                # its default layout, if it has another than the built one, else its sizes
                same = self.docks.is_wide() == self.docks.laid_out_wide
                QTimer.singleShot(0, self.docks.size_docks if same else self.reset_layout)
            if self._load_pending:
                # once the window is on screen: a first launch generates the built-in data
                self._load_pending = False
                QTimer.singleShot(LOAD_DELAY_MS, self._load_initial_dataset)

    # --- layout and settings ------------------------------------------------------------
    def reset_layout(self) -> None:
        """The default layout for the window's size (View ▸ Reset Layout)."""
        self.presentation.leave()
        if not self._settling:  # (a second reset before the first settled keeps it)
            self._layout_size = self.size()
        self._settling += 1
        self.docks.default_layout()
        QTimer.singleShot(0, self._settle_layout)

    def _settle_layout(self) -> None:
        # Moving the docks about grows a shown window to their size hints: back to its size.
        self._settling -= 1
        if not (self.isMaximized() or self.isFullScreen()):
            self.resize(self._layout_size)
        self.docks.size_docks()

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
        # the layout presentation mode or Focus Plots replaced, when one is on
        state = self.presentation.saved_state() or self.docks.focused_state
        self.settings.set_window_state(self.saveGeometry(), state or self.saveState())
        self.settings.set_splitter_state("data", QByteArray(self.data_panel.save_state()))
        self.settings.set_model_settings(self.model_panel.values())
        if self.document.path:
            self.settings.set_last_dataset(self.document.path)
        self.settings.sync()

    # --- datasets -----------------------------------------------------------------------
    def _load_initial_dataset(self) -> None:
        if self._initial_path:
            self.data_panel.open_file(self._initial_path)
            return
        last = self.settings.last_dataset()
        if last and Path(last).is_file():  # a relaunch: the dataset of the last session
            self.data_panel.open_file(last)
            return
        if last:  # said once the built-in data is open
            self._opened_note = f" (the last dataset, {last}, is no longer there)"
        try:
            path = ensure_builtin_dataset()
        except Exception as exc:  # noqa: BLE001 - a read-only data folder, a full disk
            errors.show_error(self, exc, title="The built-in dataset could not be created")
            return
        self.data_panel.open_file(path)

    def open_dataset(self, path: str | Path, timeout_ms: int = 60_000) -> bool:
        """Open a dataset file as Open… does and wait for it (scripts, tests); False, with
        a message, when it is bad."""
        self.data_panel.open_file(path)
        return self.data_panel.wait_opened(timeout_ms)

    def new_dataset_from_task(self) -> None:
        path = new_dataset_from_task(self)
        if path is not None:
            self.data_panel.open_file(path)

    def import_file(self) -> None:
        path = import_dataset(self)
        if path is not None:
            self.data_panel.open_file(path)

    def _on_file_opened(self, path: str) -> None:
        self.settings.add_recent_file(path)
        self.settings.set_last_dataset(path)
        self.recent_menu.fill()
        note, self._opened_note = self._opened_note, ""
        self.statusBar().showMessage(f"Opened {path}{note}", 15000 if note else 5000)

    def _on_dataset_changed(self) -> None:
        name = Path(self.document.path).name if self.document.path else ""
        self.setWindowTitle(f"{name} – Sequence Workbench" if name else "Sequence Workbench")
        summary = self.document.summary
        self.predictions.set_sample_count(summary.splits.get("val", 0) if summary else 0)
        self.feed.set_dataset(summary)  # labels, units and predictions follow the dataset
        self._update_train_enabled()

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt's name
        if _dropped_path(event) is not None:
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt's name
        path = _dropped_path(event)
        if path is None:
            event.ignore()
            return
        event.acceptProposedAction()
        # open after the drop returns, so the source application is not kept waiting
        QTimer.singleShot(0, lambda: self.data_panel.open_file(path))

    # --- training and comparisons -------------------------------------------------------
    def _busy(self) -> bool:
        return self.launcher.busy()

    def open_comparison(self, comparison_id: str) -> Any:
        return self.comparisons.open(comparison_id)

    def _on_session_state(self, state: str) -> None:
        self._update_train_enabled()
        if state == "idle" and self._close_pending:
            QTimer.singleShot(0, self.close)

    def _update_train_enabled(self, *_args: Any) -> None:
        self.launcher.update_enabled(closing=self._close_pending)

    def _on_overlay_error(self, _run_id: str, exc: Exception) -> None:
        errors.show_error(self, exc, title="Cannot overlay this run")

    # --- closing ------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt's name
        """Stop a run or a comparison first (it saves its checkpoint), wait for its
        thread, then close."""
        sessions = self.launcher.sessions
        if self._busy():
            if not (self._close_pending or self._close_confirmed or self.confirm_close()):
                event.ignore()  # Cancel: the run goes on
                return
            if not self._close_pending:
                self._close_pending = self.runs.closing = True
                if not all([s.shutdown(CLOSE_WAIT_MS) for s in sessions]):  # stop, then wait
                    self._show_finishing()
                    event.ignore()
                    return
            elif not all(s.wait(0) for s in sessions):
                event.ignore()
                return
        self.save_settings()
        self.predictions.close()
        self.predictions_plot.close_beam_tree()
        self.comparisons.close_views()
        self.experiments.close_views()
        self.document.close()
        event.accept()

    def confirm_close(self) -> bool:
        """Asked when the window closes during a run: True to stop and save it (tests
        replace this method)."""
        return ask_stop_and_save(self)

    def close_without_asking(self) -> bool:
        """Close, stopping and saving a run without the question (Ctrl-C, scripts)."""
        self._close_confirmed = True
        return self.close()

    def _show_finishing(self) -> None:
        self.controls.progress.setFormat("Finishing the current step and saving the run; "
                                         "the window closes when it is done…")
        self.statusBar().showMessage("Finishing the current step and saving the run…")
        for dock in self.docks.all:
            dock.widget().setEnabled(False)
        self._update_train_enabled()

    def _on_about_to_quit(self) -> None:
        # The last safety net: never leave a training thread running at exit.
        self.shutdown(60_000)

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        """Stop any run, comparison or sweep and wait for its thread (tests, scripts)."""
        return all([s.shutdown(timeout_ms) for s in self.launcher.sessions])


def ask_stop_and_save(parent: QWidget) -> bool:
    """"Stop and save" (True) or "Cancel" (False), in a message box owned by `parent`."""
    box = QMessageBox(QMessageBox.Icon.Question, "Training is running",
                      "A run is training. Stop it and save it (it can be resumed later), "
                      "then close the window?", QMessageBox.StandardButton.NoButton, parent)
    stop = box.addButton("Stop and Save", QMessageBox.ButtonRole.AcceptRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(stop)
    box.exec()
    answer = box.clickedButton() is stop
    box.deleteLater()
    return answer


def default_size(widget: QWidget) -> QSize:
    """A first-launch size: most of the screen, at most 1600 x 1000."""
    screen = widget.screen() or QApplication.primaryScreen()
    if screen is None:
        return QSize(1500, 940)
    area = screen.availableGeometry()
    return QSize(min(1600, int(area.width() * 0.94)), min(1000, int(area.height() * 0.94)))


def _dropped_path(event: Any) -> str | None:
    """The first local dataset file of a drag or drop, else None."""
    mime = event.mimeData()
    if not mime.hasUrls():
        return None
    for url in mime.urls():
        if url.isLocalFile() and url.toLocalFile().lower().endswith(DATASET_SUFFIXES):
            return url.toLocalFile()
    return None
