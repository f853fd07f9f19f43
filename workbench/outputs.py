"""Where a command may write its output file: never over something it should not.

Every command that writes a file a user names (`predict --out`, `export --csv`,
`compare --csv`/`--metrics-csv`, `make-dataset --out`, `import-text`/`import-series
--out`) calls `check_output` before doing any work, and the GUI's export actions ask
`protected_reason` first. The rules, in order:

1. a folder is never a file name;
2. the command's own input files (the dataset it reads, the checkpoint it loads, the
   file it imports) are never replaced, whatever the spelling of the two paths, even
   with --force: that would destroy what the output is computed from;
3. nothing inside a run folder is replaced, even with --force: a run's files
   (metrics.jsonl, checkpoints, config.toml) are written only by the run itself.
   A run folder is any folder holding run.json, or any entry of the runs directory
   whose name does not begin with "_" or "." (docs/run-format.md: the entries that
   are not runs begin with "_");
4. an existing file is replaced only with --force.

A refusal is an OutputError (the CLI prints it on one line and exits 2) and nothing
has been written.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from workbench.errors import OutputError
from workbench.run_layout import RUN_JSON, runs_root

__all__ = ["check_output", "protected_reason", "run_folder_of"]

PathLike = str | os.PathLike[str]


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file: the same resolved path, or a hard link."""
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and a.samefile(b)
    except OSError:
        return False


def run_folder_of(path: PathLike, runs_dir: PathLike | None = None) -> Path | None:
    """The run folder `path` lies in (a folder holding run.json, or a run's entry of
    the runs directory), or None."""
    resolved = Path(path).resolve()
    try:
        root = runs_root(runs_dir).resolve()
    except OSError:
        root = None
    for folder in resolved.parents:
        if (folder / RUN_JSON).is_file():
            return folder
        if root is not None and folder.parent == root and not folder.name.startswith(("_", ".")):
            return folder
    return None


def protected_reason(path: PathLike, *, inputs: Iterable[PathLike | None] = (),
                     runs_dir: PathLike | None = None) -> str | None:
    """Why `path` may not be written even when replacing is allowed, or None.

    The reason reads after "cannot write PATH: " (a folder, an input, a run's file).
    """
    target = Path(path)
    if target.is_dir():
        return "it is a folder; give a file name"
    for source in inputs:
        if source is not None and _same_file(target, Path(source)):
            return (f"it is this command's own input ({source}); replacing it would destroy "
                    "it, so give another file name")
    folder = run_folder_of(target, runs_dir)
    if folder is not None:
        return (f"it is inside the run folder {folder}, whose files only the run itself "
                "writes; give a path outside it")
    return None


def check_output(path: PathLike, *, force: bool, inputs: Iterable[PathLike | None] = (),
                 runs_dir: PathLike | None = None, flag: str = "--out") -> Path:
    """`path` as a Path, if the command may write it (see the module's rules);
    OutputError naming the flag, the path and the reason if not. Writes nothing."""
    target = Path(path)
    reason = protected_reason(target, inputs=inputs, runs_dir=runs_dir)
    if reason is not None:
        always = "" if target.is_dir() else " (--force does not change this)"
        raise OutputError(f"cannot write {flag} {target}: {reason}{always}")
    if not force and (target.exists() or target.is_symlink()):
        raise OutputError(f"{target}: exists; pass --force to replace it")
    return target
