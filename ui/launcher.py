"""What may start now, and starting it: Train, Resume and Compare Cells….

Only one of a run and a comparison trains at a time. `Launcher` builds the run's
config from the open dataset and the Model panel, refuses with a message when it
cannot (no dataset, a bad setting, a job in progress), and keeps the Train and
Compare actions enabled only when they would work.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QWidget

from ui import errors
from ui.comparisons import Comparisons
from ui.controls import TrainingControls
from ui.data_panel import DatasetDocument
from ui.model_panel import ModelPanel, cuda_available
from ui.run_controller import RunController
from ui.settings import AppSettings
from workbench.errors import WorkbenchError


class Launcher(QObject):
    """Starts runs and comparisons from the panels' state; `compare_action` is its own."""

    def __init__(self, window: QWidget, document: DatasetDocument, model_panel: ModelPanel,
                 settings: AppSettings, runs: RunController, comparisons: Comparisons,
                 controls: TrainingControls) -> None:
        super().__init__(window)
        self._window = window
        self.document, self.model_panel, self.settings = document, model_panel, settings
        self.runs, self.comparisons, self.controls = runs, comparisons, controls
        # every job that trains: only one of them at a time (a sweep's joins later)
        self.sessions: list[Any] = [runs.session, comparisons.session]
        self.compare_action = QAction("&Compare Cells…", window)
        self.compare_action.setToolTip(
            "Train the Model panel's settings with several cells and seeds, one run after "
            "another, and compare them")
        self.compare_action.triggered.connect(self.compare)

    def busy(self) -> bool:
        return any(s.is_running() for s in self.sessions)

    def train(self) -> None:
        """Start a new run on the current dataset with the Model panel's settings."""
        if self.busy():
            return
        config = self._config("Cannot train with these settings")
        if config is not None and self.memory_allows(config):
            self.settings.set_model_settings(self.model_panel.values())
            self.runs.train(config)

    def resume(self, run_id: str) -> None:
        """Continue a stopped or crashed run from its latest checkpoint."""
        if self.busy():
            errors.show_message(self._window, "A run is in progress",
                                "Stop the current run (or comparison) before resuming a run.",
                                level="info")
            return
        self.runs.resume(run_id)

    def compare(self) -> None:
        """Ask which cells and seeds, then train them one after another and compare."""
        if self.busy():
            errors.show_message(self._window, "Training in progress",
                                "Stop the current run or comparison first.", level="info")
            return
        config = self._config("Cannot compare with these settings")
        if config is None or not self.memory_allows(config):
            return
        self.settings.set_model_settings(self.model_panel.values())
        self.comparisons.start(config)
        self.update_enabled()

    def memory_allows(self, config: Any, *, available: int | None = None) -> bool:
        """The memory guard before a run starts, with the one estimator
        (workbench.memory.estimate_run_memory: weights, gradients, the optimizer's state and
        one batch's activations over the full unroll): refused, with the estimate and what
        is available, when it does not fit; asked to confirm when it would take more than
        half of it. `available` overrides the figure (tests)."""
        from workbench.memory import estimate_run_memory, format_bytes

        device = "cuda" if config.device == "cuda" or (
            config.device == "auto" and cuda_available()) else "cpu"
        try:
            estimate = estimate_run_memory(config, self.document.summary, available=available,
                                           device=device)
        except WorkbenchError as exc:
            errors.show_error(self._window, exc, title="Cannot train with these settings")
            return False
        words = "Adam's two moments" if config.optimizer == "adam" else "the optimizer's state"
        need = (f"This run needs about {format_bytes(estimate.total)} of memory "
                f"({estimate.breakdown(words)} for a batch of {config.batch_size}; "
                f"{estimate.parameters:,} parameters)")
        if estimate.available is None:  # the system does not say: no check
            return True
        have = f"{format_bytes(estimate.available)} of {estimate.limit}"
        if not estimate.fits:
            self.refuse("Not enough memory for this run",
                        f"{need}, more than the {have}.\n\nUse a smaller hidden size, "
                        f"fewer layers, a smaller embedding or a smaller batch size.")
            return False
        if estimate.total > estimate.available / 2:
            return self.confirm("This run takes most of the memory",
                                f"{need}: more than half of the {have}. The computer may "
                                f"become slow while it trains.\n\nTrain anyway?")
        return True

    def refuse(self, title: str, text: str) -> None:
        """Say why a run is refused (tests replace errors.show_message)."""
        errors.show_message(self._window, title, text, level="warning")

    def confirm(self, title: str, text: str) -> bool:
        """Ask whether to go on (tests replace errors.ask)."""
        return errors.ask(self._window, title, text)

    def _config(self, title: str) -> Any | None:
        """The RunConfig of the open dataset and the Model panel's settings; None, with
        a message titled `title` (or one asking for a dataset), when there is none."""
        if self.document.path is None or self.document.summary is None:
            errors.show_message(self._window, "No dataset",
                                "Open a dataset first (File ▸ Open).", level="warning")
            return None
        try:
            return self.model_panel.run_config(self.document.path, self.document.inputs,
                                               self.document.targets)
        except WorkbenchError as exc:
            errors.show_error(self._window, exc, title=title)
            return None

    def update_enabled(self, *, closing: bool = False) -> None:
        """Train and Compare enabled only when idle, with a dataset and valid settings;
        Train's tooltip says what is missing."""
        idle = all(s.state == "idle" for s in self.sessions)
        ready = self.document.summary is not None and self.model_panel.is_valid()
        train = self.controls.train_action
        train.setEnabled(idle and ready and not closing)
        self.compare_action.setEnabled(idle and ready and not closing)
        if not self.model_panel.is_valid():
            reason = "; ".join(self.model_panel.errors().values())
            train.setToolTip(f"Fix the settings first: {reason}")
        elif self.document.summary is None:
            train.setToolTip("Open a dataset first")
        else:
            train.setToolTip("Train a new model on the dataset with the settings of the Model "
                             "panel (Ctrl+Return)")
