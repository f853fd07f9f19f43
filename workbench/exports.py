"""Exports: runs' metrics as one tidy CSV, a comparison's table as CSV, a run's config as TOML.

The metrics CSV is tidy (one value per row: run, cell, seed, step, metric, value), so
a spreadsheet, pandas or R reads any number of runs at once. Its rows are those the
single-run `python main.py export RUN --csv FILE` writes (step metrics per step; per
epoch an `epoch` row and the validation metrics, the epoch's mean training loss as
`epoch_train_loss`); an undefined value (NaN, infinity) is an empty cell.

The config export is the run's RunConfig as TOML, which `python main.py train --config
FILE` runs again (same data, seeds and settings: on CPU with the same thread count it
retraces the original run's losses).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from workbench.atomic import atomic_write_text

CSV_COLUMNS: tuple[str, ...] = ("run", "cell", "seed", "step", "metric", "value")
STEP_METRICS: tuple[str, ...] = ("loss", "grad_norm", "learning_rate", "teacher_forcing",
                                 "sequences_per_second")
EPOCH_METRICS: tuple[str, ...] = ("val_loss", "val_loss_free_running", "token_accuracy",
                                  "sequence_accuracy", "train_loss")


def _open(run: Any, runs_dir: str | Path | None) -> Any:
    """A Run, or a run id / folder opened in `runs_dir`."""
    from workbench.runs import Run, open_run

    return run if isinstance(run, Run) else open_run(run, runs_dir)


def csv_value(value: Any) -> str:
    """A number as the CSV writes it: repr of floats (round-trips), empty when undefined."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return repr(float(value)) if isinstance(value, float) else str(value)


def metric_rows(run: Any) -> Iterator[list[str]]:
    """The tidy rows of one run (workbench.runs.Run), in the order they were recorded."""
    seed = run.config_dict().get("training", {}).get("seed", "")
    history = run.history()
    for event in history.steps:
        for metric in STEP_METRICS:
            yield [run.run_id, run.cell, str(seed), str(event.step), metric,
                   csv_value(getattr(event, metric))]
    for event in history.epochs:
        yield [run.run_id, run.cell, str(seed), str(event.step), "epoch", str(event.epoch)]
        for metric in EPOCH_METRICS:
            value = getattr(event, metric)
            if value is not None:
                name = "epoch_train_loss" if metric == "train_loss" else metric
                yield [run.run_id, run.cell, str(seed), str(event.step), name, csv_value(value)]


def write_metrics_csv(runs: Iterable[Any], path: str | Path, *,
                      runs_dir: str | Path | None = None) -> int:
    """Write the metrics of every run (Run objects, ids or folders) to one CSV, atomically.

    Returns the number of data rows written.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    count = 0
    for run in runs:
        for row in metric_rows(_open(run, runs_dir)):
            writer.writerow(row)
            count += 1
    atomic_write_text(Path(path), buffer.getvalue())
    return count


def table_rows(table: Any) -> list[dict[str, Any]]:
    """A ComparisonTable as flat dicts: cell, runs, run_ids, parameters, <figure>_mean/_std,
    then the losses' unit, best_by and the extra figures (data units², baselines)."""
    from workbench.compare import COLUMNS, EXTRA_COLUMNS

    rows = []
    for row in table.rows:
        flat: dict[str, Any] = {"cell": row.cell, "runs": len(row.run_ids),
                                "run_ids": " ".join(row.run_ids),
                                "seeds": " ".join(str(s) for s in row.seeds),
                                "parameters": row.parameters}
        for name in COLUMNS:
            flat[f"{name}_mean"] = row.stats[name].mean
            flat[f"{name}_std"] = row.stats[name].std
        flat["loss_unit"] = table.unit("best_val_loss")
        flat["best_by"] = row.best_by
        for name in EXTRA_COLUMNS:
            flat[f"{name}_mean"] = row.stats[name].mean
            flat[f"{name}_std"] = row.stats[name].std
        rows.append(flat)
    return rows


def write_table_csv(table: Any, path: str | Path) -> None:
    """Write a ComparisonTable (workbench.compare) as CSV, one row per cell, atomically."""
    rows = table_rows(table)
    header = list(rows[0]) if rows else ["cell"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([value if isinstance(value, str) else csv_value(value)
                         for value in (row[key] for key in header)])
    atomic_write_text(Path(path), buffer.getvalue())


def config_toml(run: Any, *, runs_dir: str | Path | None = None) -> str:
    """The TOML of a run's RunConfig (what `train --config` reads)."""
    return _open(run, runs_dir).config().to_toml()


def export_config(run: Any, path: str | Path, *, runs_dir: str | Path | None = None) -> Path:
    """Write a run's config as TOML (atomically) so `train --config PATH` re-runs it.

    The data path stays absolute, so the file works from any folder.
    """
    path = Path(path)
    _open(run, runs_dir).config().save(path)
    return path
