"""Sequence Workbench.

    python main.py                 the desktop app on the built-in dataset
    python main.py FILE.h5         the desktop app on FILE.h5
    python main.py COMMAND ...     the headless CLI (python main.py --help)
"""

from __future__ import annotations

import os
import sys

HDF5_SUFFIXES = (".h5", ".hdf5", ".he5", ".hdf")


def _wants_gui(argv: list[str]) -> bool:
    """No arguments, or a single argument that names a data file: the desktop app."""
    if not argv:
        return True
    if len(argv) != 1 or argv[0].startswith("-"):
        return False
    return argv[0].lower().endswith(HDF5_SUFFIXES) or os.path.isfile(argv[0])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if _wants_gui(argv):
        from ui.app import run_app

        return run_app(argv[0] if argv else None)
    from workbench.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
