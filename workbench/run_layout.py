"""Where runs live and how a run folder is laid out (docs/run-format.md).

The names of a run folder's files, the default runs directory, making a new folder
and finding an existing one. Its own module, below both the recorder and readers
(workbench.runs) and the run service, so that neither has to import the other for it.
"""

from __future__ import annotations

import os
from pathlib import Path

from workbench.errors import RunError
from workbench.run_ids import new_run_id

RUN_JSON = "run.json"
CONFIG_TOML = "config.toml"
STATUS_JSON = "status.json"
METRICS_JSONL = "metrics.jsonl"
PROBES_DIR = "probes"
CHECKPOINTS_DIR = "checkpoints"


def default_runs_dir() -> Path:
    """$SEQUENCE_WORKBENCH_HOME/runs when set (tests use it), else the user's data folder."""
    home = os.environ.get("SEQUENCE_WORKBENCH_HOME")
    if home:
        return Path(home) / "runs"
    import platformdirs

    return Path(platformdirs.user_data_dir("sequence-workbench", appauthor=False)) / "runs"


def runs_root(runs_dir: str | Path | None = None) -> Path:
    """`runs_dir` as a Path, or the default runs directory when None."""
    return Path(runs_dir) if runs_dir is not None else default_runs_dir()


def create_run_dir(cell: str, runs_dir: str | Path | None = None) -> Path:
    """Make a new, empty run folder with a fresh id and return its path."""
    root = runs_root(runs_dir)
    root.mkdir(parents=True, exist_ok=True)
    for _ in range(100):
        path = root / new_run_id(cell)
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise RunError(f"could not create a new run folder in {root}")  # pragma: no cover


def resolve_run_dir(run: str | Path, runs_dir: str | Path | None = None) -> Path:
    """A run id (in runs_dir) or a run folder's path -> the folder; RunError if neither."""
    candidate = Path(run)
    if (candidate / RUN_JSON).is_file():
        return candidate
    root = runs_root(runs_dir)
    by_id = root / str(run)
    if (by_id / RUN_JSON).is_file():
        return by_id
    raise RunError(f"no run {str(run)!r}: not a run folder, and not a run id in {root}")


def probe_file_name(step: int) -> str:
    """The file of the probe taken at `step`, in the run's PROBES_DIR."""
    return f"step-{step:09d}.h5"


def checkpoint_path(run_dir: str | Path, which: str = "latest") -> Path:
    """checkpoints/<which>.pt of a run folder ("latest" or "best")."""
    return Path(run_dir) / CHECKPOINTS_DIR / f"{which}.pt"
