"""The Runs panel: every run in the runs directory, to replay, overlay, resume,
rename or delete.

`RunsIndex` is the object shown: the runs directory read through
workbench.runs (open_runs, open_run), refreshed on demand, with the live run's
progress folded in by the window. `RunsPanel` shows it as a table. Selecting a
row asks for a replay (`replay_requested`); ticking rows asks for overlays
(`overlays_changed`, each run with its own colour); Resume asks the window to
continue a stopped or crashed run. Renaming edits the display name in place
(the id and folder never change); Delete asks first. The Comparisons button lists
the comparisons saved in the runs directory (workbench.compare) and asks the
window to reopen one (`comparison_requested`).

A run folder whose records cannot be read (workbench.runs.list_runs: a damaged
run.json or status.json) is shown too, with status "unreadable" and the reason in
its tooltip; it cannot be replayed, ticked, resumed or renamed, only deleted. One
damaged folder never hides the others, and a runs folder that cannot be listed at
all is said in the panel instead of keeping the window from starting.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from PySide6.QtCore import QObject, QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ui import errors
from ui.controls import format_duration
from workbench import baselines, units
from workbench.errors import WorkbenchError
from workbench.events import throughput
from workbench.runs import (
    RESUMABLE_STATUSES,
    UNREADABLE,
    Run,
    RunInfo,
    dataset_label,
    list_runs,
    open_run,
)

try:  # the shared palette of overlaid runs
    from ui.plots.style import RUN_COLORS
except ImportError:  # pragma: no cover
    RUN_COLORS = ("#E69F00", "#56B4E9", "#009E73", "#D55E00", "#CC79A7", "#0072B2")

HINT = ("Select a run to replay it in the plots · tick runs to compare them · "
        "double-click a name to rename")
COLUMNS = ("Overlay", "Name", "Cell", "Parameters", "Status", "Steps", "Best val. loss",
           "Duration", "Sequences/s", "Dataset")
COL_CELL, COL_PARAMETERS, COL_STATUS, COL_STEPS, COL_BEST = 2, 3, 4, 5, 6
COL_DATASET = COLUMNS.index("Dataset")
STATUS_TIPS = {
    "running": "Training now",
    "paused": "Paused",
    "completed": "Trained for its whole budget",
    "stopped": "Stopped by the user; can be resumed",
    "diverged": "The loss became NaN or infinite; training ended",
    "failed": "Ended by an error (see the message)",
    "crashed": "The training process ended without finishing (killed, crashed, "
               "or the power went); can be resumed from its last checkpoint",
    UNREADABLE: "This run's records cannot be read (damaged or edited); it can only be "
                "deleted",
}


@dataclass(frozen=True)
class RunRow:
    """One line of the table: what list_runs gives, plus parameters and speed."""

    run_id: str
    path: Path
    name: str
    cell: str
    status: str
    steps: int
    best_val_loss: float | None
    seconds: float
    parameters: int | None
    sequences_per_second: float | None
    message: str = ""
    loss_unit: str = ""  # what the losses are in (workbench.units), for the tooltip
    data_factor: float | None = None  # normalised MSE -> data units², where exact
    baselines_tip: str = ""  # the run's baselines, one per line
    dataset: str = ""  # the dataset's short name (workbench.runs.dataset_label)
    dataset_path: str = ""  # the dataset's file, for the tooltip

    @property
    def resumable(self) -> bool:
        return self.status in RESUMABLE_STATUSES

    @property
    def unreadable(self) -> bool:
        return self.status == UNREADABLE


def _row_from_info(info: RunInfo) -> RunRow:
    dataset = info.meta.get("dataset") if isinstance(info.meta.get("dataset"), dict) else {}
    path = dataset.get("path")
    return RunRow(info.run_id, info.path, info.name, info.cell, info.status, info.steps,
                  info.best_val_loss, info.seconds,
                  info.parameters, throughput(info.sequences, info.seconds), info.message,
                  **_loss_units(info.meta), dataset=dataset_label(dataset),
                  dataset_path=path if isinstance(path, str) else "")


def _loss_units(meta: dict) -> dict:
    """RunRow's unit fields from run.json: the losses' unit, the factor to data units²
    and the recorded baselines (workbench.baselines), for the best-loss tooltip."""
    dataset = meta.get("dataset") if isinstance(meta.get("dataset"), dict) else None
    kind = units.target_kind(dataset)
    record = baselines.recorded(meta)
    lines = [baselines.heading(record)] if record else []
    lines += [f"  {title}: {value}" for title, value, _what in baselines.describe(record)
              if value != "-"]
    return {"loss_unit": units.loss_words(kind),
            "data_factor": units.data_unit_factor(meta.get("normalization"))
            if kind == "continuous" else None,
            "baselines_tip": "\n".join(lines)}


def loss_tip(row: RunRow) -> str:
    """The best-loss cell's tooltip: what the figure is, its unit, the value in data
    units² where one scale converts it, and the run's baselines."""
    lines = [f"Lowest teacher-forced validation loss, {row.loss_unit or 'as trained'}"]
    if row.best_val_loss is not None and row.data_factor is not None \
            and math.isfinite(row.best_val_loss):
        lines.append(f"In data units: {row.best_val_loss * row.data_factor:.4g} (MSE, data units²)")
    if row.baselines_tip:
        lines.append(row.baselines_tip)
    return "\n".join(lines)


class RunsIndex(QObject):
    """The runs of one runs directory, as `RunRow`s; `changed` after every refresh."""

    changed = Signal()  # the list was re-read: rows may have come or gone
    row_changed = Signal(str)  # one row's figures changed (the live run), by run id

    def __init__(self, runs_dir: str | Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.runs_dir = Path(runs_dir)
        self.rows: list[RunRow] = []
        self.live_run_id: str | None = None
        self.error = ""  # why the runs folder could not be listed ("" when it could)

    def refresh(self) -> None:
        """Re-read the runs directory (run.json and status.json of each run); a damaged
        run is a row with status "unreadable", a runs folder that cannot be listed at all
        leaves no rows and its reason in `error`."""
        try:
            infos = list_runs(self.runs_dir)
        except WorkbenchError as exc:
            infos, self.error = [], str(exc)
        else:
            self.error = ""
        self.rows = [_row_from_info(info) for info in infos]
        self.changed.emit()

    def update_live(self, run_id: str, *, steps: int | None = None,
                    seconds: float | None = None, sequences_per_second: float | None = None,
                    best_val_loss: float | None = None) -> None:
        """Fold the live run's progress (from its own events) into its line, between the
        recorder's less frequent status writes. Only the line of `run_id` changes: the
        figures of one run never reach another's line."""
        for i, row in enumerate(self.rows):
            if row.run_id != run_id:
                continue
            best = row.best_val_loss
            if best_val_loss is not None:
                best = best_val_loss if best is None else min(best, best_val_loss)
            self.rows[i] = replace(
                row, steps=row.steps if steps is None else steps,
                seconds=row.seconds if seconds is None else seconds,
                sequences_per_second=(row.sequences_per_second if sequences_per_second is None
                                      else sequences_per_second),
                best_val_loss=best)
            self.row_changed.emit(run_id)
            return

    def row(self, run_id: str) -> RunRow | None:
        return next((r for r in self.rows if r.run_id == run_id), None)

    def open(self, run_id: str) -> Run:
        return open_run(run_id, self.runs_dir)

    def rename(self, run_id: str, name: str) -> None:
        """Change the display name (RunError for an empty name)."""
        self.open(run_id).rename(name)
        self.refresh()

    def delete(self, run_id: str) -> None:
        """Remove the run's folder (RunError while it is live)."""
        if run_id == self.live_run_id:
            raise WorkbenchError("this run is training now: stop it before deleting it")
        row = self.row(run_id)
        if row is not None and row.unreadable:  # no Run to ask: its records are damaged
            try:
                shutil.rmtree(row.path)
            except OSError as exc:
                raise WorkbenchError(f"cannot delete {row.path}: {exc.strerror or exc}") from None
        else:
            self.open(run_id).delete()
        self.refresh()


class RunsPanel(QWidget):
    """A table of the runs of a `RunsIndex`, with Resume, Rename, Delete."""

    replay_requested = Signal(str)  # run id of a selected run
    overlays_changed = Signal(object)  # dict run id -> colour of the ticked runs, in order
    resume_requested = Signal(str)  # run id
    comparison_requested = Signal(str)  # comparison id of a saved comparison to reopen

    def __init__(self, index: RunsIndex, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.index = index
        self._overlay_colors: dict[str, str] = {}
        self._filling = False
        self._shown: list[RunRow | None] = []  # what each table row shows, newest first

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        self.hint = QLabel(HINT, self)
        self.hint.setObjectName("hint")
        self.hint.setWordWrap(True)
        layout.addWidget(self.hint)
        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked
                                   | QAbstractItemView.EditTrigger.EditKeyPressed)
        self.table.verticalHeader().hide()
        self.table.setAlternatingRowColors(True)
        self.table.setIconSize(QSize(12, 12))
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        header.setToolTip("Tick runs to overlay their loss and gradients; select a "
                          "finished run to replay it; double-click a name to rename it")
        self.table.horizontalHeaderItem(COL_DATASET).setToolTip(
            "The dataset the run trained on (hover a value for its file)")
        self.table.horizontalHeaderItem(COLUMNS.index("Best val. loss")).setToolTip(
            "The lowest teacher-forced validation loss: MSE on normalised data (continuous "
            "targets) or cross-entropy (tokens). Hover a value for data units and baselines")
        layout.addWidget(self.table, 1)

        buttons = QHBoxLayout()
        self.comparisons_button = QToolButton(self)
        self.comparisons_button.setText("Comparisons")
        self.comparisons_button.setToolTip("Reopen a saved comparison of cells "
                                           "(Training ▸ Compare Cells… makes one)")
        self.comparisons_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.comparisons_menu = QMenu(self.comparisons_button)
        self.comparisons_menu.aboutToShow.connect(self._on_comparisons_menu_shown)
        self.comparisons_button.setMenu(self.comparisons_menu)
        buttons.addWidget(self.comparisons_button)
        buttons.addStretch(1)
        self.setToolTip(f"Runs folder: {index.runs_dir}")
        self.refresh_button = QPushButton("Refresh", self)
        self.resume_button = QPushButton("Resume", self)
        self.resume_button.setToolTip("Continue a stopped or crashed run from its last checkpoint")
        self.rename_button = QPushButton("Rename", self)
        self.delete_button = QPushButton("Delete…", self)
        for button in (self.refresh_button, self.resume_button, self.rename_button,
                       self.delete_button):
            buttons.addWidget(button)
        layout.addLayout(buttons)

        self.refresh_button.clicked.connect(index.refresh)
        self.resume_button.clicked.connect(self._on_resume_clicked)
        self.rename_button.clicked.connect(self._on_rename_clicked)
        self.delete_button.clicked.connect(self._on_delete_clicked)
        self.table.itemSelectionChanged.connect(self._on_selection_changed)
        self.table.itemChanged.connect(self._on_item_changed)
        index.changed.connect(self._on_index_changed)
        index.row_changed.connect(self._on_row_changed)
        self._on_index_changed()

    # --- public -----------------------------------------------------------------------
    def selected_run_id(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        item = self.table.item(rows[0].row(), 1)
        return item.data(Qt.ItemDataRole.UserRole) if item else None

    def select_run(self, run_id: str) -> None:
        for r in range(self.table.rowCount()):
            if self.table.item(r, 1).data(Qt.ItemDataRole.UserRole) == run_id:
                self.table.selectRow(r)
                return

    def overlays(self) -> dict[str, str]:
        """Ticked run id -> its colour."""
        return dict(self._overlay_colors)

    def set_overlay(self, run_id: str, on: bool) -> None:
        row = self.index.row(run_id)
        if row is not None and row.unreadable:  # nothing recorded can be drawn
            return
        for r in range(self.table.rowCount()):
            if self.table.item(r, 1).data(Qt.ItemDataRole.UserRole) == run_id:
                self.table.item(r, 0).setCheckState(
                    Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)

    def rename_run(self, run_id: str, name: str) -> bool:
        """Rename through the index; shows the error and returns False when refused."""
        try:
            self.index.rename(run_id, name)
        except WorkbenchError as exc:
            errors.show_error(self, exc, title="Rename run")
            self.index.changed.emit()  # put the old name back in the table
            return False
        return True

    def delete_run(self, run_id: str) -> bool:
        """Ask, then delete the run; True when it was deleted."""
        row = self.index.row(run_id)
        name = row.name if row else run_id
        if not errors.ask(self, "Delete run",
                          f"Delete the run “{name}” and everything recorded for it "
                          f"(metrics, probes, checkpoints)?\n\nThis cannot be undone."):
            return False
        self._overlay_colors.pop(run_id, None)
        try:
            self.index.delete(run_id)
        except WorkbenchError as exc:
            errors.show_error(self, exc, title="Delete run")
            return False
        self.overlays_changed.emit(self.overlays())
        return True

    # --- slots ------------------------------------------------------------------------
    def _on_index_changed(self) -> None:
        self.hint.setText(f"Cannot list the runs: {self.index.error}" if self.index.error
                          else HINT)
        self.hint.setStyleSheet("color: #b00020;" if self.index.error else "")
        selected = self.selected_run_id()
        known = {row.run_id for row in self.index.rows}
        dropped = [k for k in self._overlay_colors if k not in known]
        for key in dropped:
            del self._overlay_colors[key]
        rows = list(reversed(self.index.rows))  # newest first
        self._filling = True
        try:
            self._fill_changed(rows)
        finally:
            self._filling = False
        if selected:
            self.table.blockSignals(True)
            self.select_run(selected)
            self.table.blockSignals(False)
        self._update_buttons()
        if dropped:
            self.overlays_changed.emit(self.overlays())

    def _fill_changed(self, rows: list[RunRow]) -> None:
        """Show `rows`, touching only the table rows whose run changed: new runs are
        inserted at the top, so a refresh after a run starts or ends costs a few rows,
        not the whole table (hundreds of runs stay quick)."""
        old = [r.run_id if r else None for r in self._shown]
        new = [r.run_id for r in rows]
        added = len(new) - len(old)
        if added >= 0 and new[added:] == old:
            for _ in range(added):
                self.table.insertRow(0)
            self._shown = [None] * added + self._shown
        else:
            self.table.setRowCount(0)
            self.table.setRowCount(len(rows))
            self._shown = [None] * len(rows)
        for r, row in enumerate(rows):
            shown = self._shown[r]
            # a row is reused only for the same run with the same figures: a new run's
            # line never keeps the cells of the run that was there before
            if shown is None or shown.run_id != row.run_id or shown != row \
                    or self._row_id(r) != row.run_id:
                self._fill_row(r, row)
        self._shown = list(rows)

    def _row_id(self, r: int) -> str | None:
        item = self.table.item(r, 1)
        return item.data(Qt.ItemDataRole.UserRole) if item is not None else None

    def _on_row_changed(self, run_id: str) -> None:
        row = self.index.row(run_id)
        for r in range(self.table.rowCount()):
            if row is not None and self._row_id(r) == run_id:
                self._filling = True
                try:
                    self._fill_values(r, row)  # not the name: the user may be editing it
                finally:
                    self._filling = False
                if r < len(self._shown):  # what the table shows now
                    self._shown[r] = row
                return

    def _fill_row(self, r: int, row: RunRow) -> None:
        tick = QTableWidgetItem()
        tick.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
                      | (Qt.ItemFlag.NoItemFlags if row.unreadable
                         else Qt.ItemFlag.ItemIsUserCheckable))
        color = self._overlay_colors.get(row.run_id)
        if not row.unreadable:
            tick.setCheckState(Qt.CheckState.Checked if color else Qt.CheckState.Unchecked)
        tick.setToolTip(row.message if row.unreadable
                        else "Overlay this run's loss and gradients on the plots")
        if color:
            tick.setIcon(_swatch(color))
        tick.setData(Qt.ItemDataRole.UserRole, row.run_id)
        self.table.setItem(r, 0, tick)

        name = QTableWidgetItem(row.name)
        name.setData(Qt.ItemDataRole.UserRole, row.run_id)
        if row.unreadable:
            name.setToolTip(f"{row.name}\nid: {row.run_id}\nunreadable: {row.message}")
            name.setFlags(name.flags() & ~Qt.ItemFlag.ItemIsEditable)
        else:
            name.setToolTip(f"{row.name}\nid: {row.run_id}\nDouble-click to rename")
            name.setFlags(name.flags() | Qt.ItemFlag.ItemIsEditable)
        self.table.setItem(r, 1, name)
        self._fill_values(r, row)

    def _fill_values(self, r: int, row: RunRow) -> None:
        status_tip = STATUS_TIPS.get(row.status, "")
        if row.message:
            status_tip = f"{status_tip}\n{row.message}".strip()
        best = ("–" if row.best_val_loss is None or not math.isfinite(row.best_val_loss)
                else f"{row.best_val_loss:.4g}")
        values = (row.cell, _count(row.parameters), row.status, f"{row.steps:,}", best,
                  format_duration(row.seconds), format_speed(row.sequences_per_second),
                  row.dataset or "–")
        for c, text in enumerate(values, start=COL_CELL):
            item = QTableWidgetItem(text)
            item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
            if COL_STEPS <= c < COL_DATASET or c == COL_PARAMETERS:
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            if c == COL_DATASET and row.dataset_path:
                item.setToolTip(row.dataset_path)
            if c == COL_BEST:
                item.setToolTip(loss_tip(row))
            if c == COL_STATUS:
                item.setToolTip(status_tip)
                if row.status in ("diverged", "failed", "crashed", UNREADABLE):
                    item.setForeground(QColor("#b00020"))
            self.table.setItem(r, c, item)

    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        if self._filling:
            return
        run_id = item.data(Qt.ItemDataRole.UserRole)
        if item.column() == 0:
            on = item.checkState() == Qt.CheckState.Checked
            if on and run_id not in self._overlay_colors:
                used = set(self._overlay_colors.values())
                free = [c for c in RUN_COLORS if c not in used]
                self._overlay_colors[run_id] = (free or RUN_COLORS)[
                    0 if free else len(self._overlay_colors) % len(RUN_COLORS)]
            elif not on:
                self._overlay_colors.pop(run_id, None)
            self._filling = True
            color = self._overlay_colors.get(run_id)
            item.setIcon(_swatch(color) if color else QIcon())
            self._filling = False
            self.overlays_changed.emit(self.overlays())
        elif item.column() == 1:
            row = self.index.row(run_id)
            if row is not None and item.text().strip() != row.name:
                self.rename_run(run_id, item.text())

    def _on_selection_changed(self) -> None:
        self._update_buttons()
        run_id = self.selected_run_id()
        row = self.index.row(run_id) if run_id else None
        if run_id and not (row is not None and row.unreadable):  # nothing to replay there
            self.replay_requested.emit(run_id)

    def comparison_entries(self) -> list[tuple[str, str]]:
        """(comparison id, menu label) of the saved comparisons, newest first."""
        from workbench.compare import list_comparisons

        out = []
        for comparison in reversed(list_comparisons(self.index.runs_dir)):
            created = comparison.created_iso[:16].replace("T", " ")
            out.append((comparison.comparison_id,
                        f"{comparison.name} · {len(comparison.run_ids)} runs · "
                        f"{comparison.status} · {created}"))
        return out

    def _on_comparisons_menu_shown(self) -> None:
        self.comparisons_menu.clear()
        entries = self.comparison_entries()
        for comparison_id, label in entries:
            action = self.comparisons_menu.addAction(label)
            action.triggered.connect(
                lambda _checked=False, c=comparison_id: self.comparison_requested.emit(c))
        if not entries:
            self.comparisons_menu.addAction("No saved comparisons yet").setEnabled(False)

    def _on_resume_clicked(self) -> None:
        run_id = self.selected_run_id()
        if run_id:
            self.resume_requested.emit(run_id)

    def _on_rename_clicked(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if rows:
            self.table.editItem(self.table.item(rows[0].row(), 1))

    def _on_delete_clicked(self) -> None:
        run_id = self.selected_run_id()
        if run_id:
            self.delete_run(run_id)

    def _update_buttons(self) -> None:
        run_id = self.selected_run_id()
        row = self.index.row(run_id) if run_id else None
        live = run_id is not None and run_id == self.index.live_run_id
        self.resume_button.setEnabled(bool(row and row.resumable and not live))
        self.rename_button.setEnabled(row is not None and not row.unreadable)
        self.delete_button.setEnabled(row is not None and not live)


def format_speed(sequences_per_second: float | None) -> str:
    """Sequences per second as the Runs list and the status bar both show it."""
    return "–" if sequences_per_second is None else f"{sequences_per_second:,.0f}"


def _count(value: int | None) -> str:
    return "–" if value is None else f"{value:,}"


def _swatch(color: str) -> QIcon:
    pixmap = QPixmap(12, 12)
    pixmap.fill(QColor(color))
    return QIcon(pixmap)
