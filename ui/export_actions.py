"""File ▸ Export: the plots as images, the ticked runs' metrics as CSV, a run's config.

`ExportActions` holds the three QActions and does what they ask. Before the plots
are written, every panel is brought up to date (`PlotFeed.bring_up_to_date`), so a
panel not viewed since the shown run changed (a tab behind another, a closed dock) is
exported as it is now. One command writes every panel and every open comparison view
(CompareView.export); PNGs are 2× their size on screen by default (a chosen scale or
width, at most 4000 px), SVGs carry no hover lines. Every dialog starts in the folder
used last (ui.export_dialog.LastFolder, kept in the app's settings).

No export replaces a file silently: an existing file is replaced only after the user
says yes (`errors.ask`; the file dialogs' own question is turned off, so it is asked
once), and a file inside a run folder is refused outright (workbench.outputs: a run's
files are written only by the run itself).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QFileDialog, QStatusBar, QWidget

from ui import errors
from ui.export_dialog import ExportPlotsDialog, LastFolder
from ui.plot_feed import PlotFeed
from ui.runs_panel import RunsPanel
from workbench.errors import WorkbenchError
from workbench.outputs import protected_reason

PLOT_NAMES = ("loss", "gradient", "trajectory", "gates", "predictions", "attention",
              "grad_norm")
COMPARISON_PLOTS = ("loss", "gradient", "trajectories")  # ui.compare_view.PLOTS
# the file dialogs do not ask about replacing a file: may_write asks (once)
NO_DIALOG_CONFIRM = QFileDialog.Option.DontConfirmOverwrite


class ExportActions(QObject):
    """Export Plots…, Export Metrics…, Export Run Config…; `shown_run_id()` names the
    run the plots show (a replay), used when no run is selected."""

    def __init__(self, window: QWidget, feed: PlotFeed, runs_panel: RunsPanel, runs_dir: Path,
                 status_bar: QStatusBar, shown_run_id: Callable[[], str | None]) -> None:
        super().__init__(window)
        self._window = window
        self.feed = feed
        self.runs_panel = runs_panel
        self.runs_dir = runs_dir
        self.status_bar = status_bar
        self._shown_run_id = shown_run_id
        self.last_folder = LastFolder.of(window)
        self.plots_action = QAction("&Export Plots…", window)
        self.plots_action.setToolTip("Save the plots as PNG (or SVG) files")
        self.plots_action.triggered.connect(self._on_plots)
        self.metrics_action = QAction("Export &Metrics of Ticked Runs (CSV)…", window)
        self.metrics_action.setToolTip(
            "One tidy CSV (run, cell, seed, step, metric, value) of the runs ticked in the "
            "Runs panel (or the selected run)")
        self.metrics_action.triggered.connect(self._on_metrics)
        self.config_action = QAction("Export Run &Config (TOML)…", window)
        self.config_action.setToolTip(
            "The selected run's settings as TOML: python main.py train --config FILE re-runs it")
        self.config_action.triggered.connect(self._on_config)

    @property
    def actions(self) -> tuple[QAction, ...]:
        return (self.plots_action, self.metrics_action, self.config_action)

    # --- plots ----------------------------------------------------------------------------
    def _on_plots(self) -> None:
        dialog = ExportPlotsDialog(self._window, self.last_folder.get())
        if not dialog.exec():
            return
        choice = dialog.choice()
        if not choice.folder or not Path(choice.folder).is_dir():
            errors.show_message(self._window, "Could not export the plots",
                                f"The folder {choice.folder or '(none given)'} does not exist.",
                                level="warning")
            return
        written = self.export_plots(choice.folder, choice.suffix, scale=choice.scale,
                                    width=choice.width)
        if not written:
            return
        self.status_bar.showMessage(
            f"Saved {len(written)} plots ({', '.join(p.name for p in written)}) in "
            f"{choice.folder}", 8000)

    def may_write(self, paths: list[Path], title: str) -> bool:
        """Whether `paths` may be written: never a run's file (said why), an existing
        file only when the user agrees to replace it."""
        for path in paths:
            reason = protected_reason(path, runs_dir=self.runs_dir)
            if reason is not None:
                errors.show_message(self._window, title, f"Cannot write {path}: {reason}.",
                                    level="warning")
                return False
        existing = [p for p in paths if p.exists()]
        if not existing:
            return True
        names = ", ".join(p.name for p in existing)
        where = existing[0].parent
        return errors.ask(self._window, "Replace existing files?" if len(existing) > 1
                          else "Replace the existing file?",
                          f"{names} already exist{'s' if len(existing) == 1 else ''} in "
                          f"{where}.\n\nReplace {'them' if len(existing) > 1 else 'it'}?")

    def comparison_views(self) -> list:
        """The comparison views open now (the window's ui.comparisons.Comparisons)."""
        comparisons = getattr(self._window, "comparisons", None)
        views = getattr(comparisons, "views", None) or []
        return [v for v in views if v.isVisible()]

    def export_plots(self, folder: str | Path, suffix: str = ".png", *,
                     scale: float | None = None, width: int | None = None,
                     comparisons: bool = True) -> list[Path]:
        """Write every plot, brought up to date first, as `<folder>/<name><suffix>`, and
        (`comparisons`) each open comparison view's plots as
        `comparison-<id>-<plot><suffix>`, asking before replacing files already there.
        PNGs are `width` px wide, or `scale` × their size on screen (2× by default),
        at most 4000 px. The folder is remembered for the next export."""
        folder = Path(folder)
        jobs: list[tuple[str, Path, Callable[[Path], None]]] = []
        for name, plot in zip(PLOT_NAMES, self.feed.plots):
            jobs.append((f"the {name} plot", folder / f"{name}{suffix}",
                         lambda path, p=plot: p.export(path, scale=scale, width=width)))
        for i, view in enumerate(self.comparison_views() if comparisons else [], start=1):
            tag = getattr(getattr(view, "comparison", None), "comparison_id", None) or str(i)
            for plot in COMPARISON_PLOTS:
                jobs.append((f"the comparison's {plot} plot",
                             folder / f"comparison-{tag}-{plot}{suffix}",
                             lambda path, v=view, name=plot: v.export(path, name)))
        if not self.may_write([path for _what, path, _write in jobs],
                              "Could not export the plots"):
            return []
        self.last_folder.set(folder)
        self.feed.bring_up_to_date()
        written = []
        for what, path, write in jobs:
            try:
                write(path)
            except Exception as exc:  # noqa: BLE001 - one failed plot must not stop the rest
                errors.show_error(self._window, exc, title=f"Could not export {what}")
                continue
            written.append(path)
        return written

    # --- metrics and config ---------------------------------------------------------------
    def _run_ids(self) -> list[str]:
        """The runs an export is about: the ticked ones, else the selected or shown one."""
        ticked = list(self.runs_panel.overlays())
        if ticked:
            return ticked
        selected = self.runs_panel.selected_run_id() or self._shown_run_id()
        return [selected] if selected else []

    def _on_metrics(self) -> None:
        run_ids = self._run_ids()
        if not run_ids:
            errors.show_message(self._window, "No runs to export",
                                "Tick runs in the Runs panel (or select one) first.", level="info")
            return
        path, _ = QFileDialog.getSaveFileName(self._window, "Export the metrics of the runs",
                                              self.last_folder.path_for("metrics.csv"),
                                              "CSV files (*.csv)", options=NO_DIALOG_CONFIRM)
        if path:
            self.last_folder.set(Path(path).parent)
            self.export_metrics(run_ids, path if path.lower().endswith(".csv") else path + ".csv")

    def export_metrics(self, run_ids: list[str], path: str | Path) -> int:
        """Write the metrics of `run_ids` to one tidy CSV; the number of rows written
        (0 when refused or not confirmed)."""
        from workbench.exports import write_metrics_csv

        if not self.may_write([Path(path)], "Could not export the metrics"):
            return 0
        try:
            rows = write_metrics_csv(run_ids, path, runs_dir=self.runs_dir)
        except (OSError, WorkbenchError) as exc:
            errors.show_error(self._window, exc, title="Could not export the metrics")
            return 0
        self.status_bar.showMessage(f"Saved the metrics of {len(run_ids)} run(s) in {path}", 8000)
        return rows

    def _on_config(self) -> None:
        run_id = self.runs_panel.selected_run_id() or self._shown_run_id()
        if not run_id:
            errors.show_message(self._window, "No run selected",
                                "Select a run in the Runs panel first.", level="info")
            return
        path, _ = QFileDialog.getSaveFileName(self._window, "Export the run's config",
                                              self.last_folder.path_for(f"{run_id}.toml"),
                                              "TOML files (*.toml)", options=NO_DIALOG_CONFIRM)
        if path:
            self.last_folder.set(Path(path).parent)
            self.export_config(run_id, path if path.lower().endswith(".toml") else path + ".toml")

    def export_config(self, run_id: str, path: str | Path) -> Path | None:
        """Write a run's config as TOML (what `train --config` re-runs); None when refused
        or not confirmed."""
        from workbench.exports import export_config

        if not self.may_write([Path(path)], "Could not export the config"):
            return None
        try:
            written = export_config(run_id, path, runs_dir=self.runs_dir)
        except (OSError, WorkbenchError) as exc:
            errors.show_error(self._window, exc, title="Could not export the config")
            return None
        self.status_bar.showMessage(f"Saved the config of {run_id} in {written}", 8000)
        return written
