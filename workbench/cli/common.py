"""What every subcommand shares: error handling and JSON output."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from workbench.errors import OutputError, WorkbenchError
from workbench.jsonsafe import json_safe

EXIT_USER_ERROR = 2


def run_handler(func: Callable[[Any], int], args: Any) -> int:
    """Run a subcommand; a user's mistake becomes one line on stderr and exit 2."""
    try:
        return int(func(args) or 0)
    except WorkbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except FileNotFoundError as exc:
        print(f"error: file not found: {exc.filename or exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as exc:  # a folder where a file should be, no permission, disk full
        print(f"error: {os_error_text(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except MemoryError as exc:
        detail = f": {exc}" if str(exc) else ""
        print(f"error: out of memory{detail}; ask for less (a smaller model, batch or --n)",
              file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def os_error_text(exc: OSError) -> str:
    """One line naming the path and the reason: 'cannot read or write PATH: Is a directory'."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.filename is None:
        return f"{reason}"
    paths = str(exc.filename) + (f" -> {exc.filename2}" if exc.filename2 else "")
    return f"cannot read or write {paths}: {reason}"


def check_output_file(path: Any, flag: str) -> None:
    """Refuse, before any work, an output path that is a folder (OutputError naming it)."""
    from pathlib import Path

    if Path(path).is_dir():
        raise OutputError(f"cannot write {flag} {path}: it is a folder; give a file name")


def dumps(value: Any) -> str:
    """One line of strict JSON (never NaN or Infinity)."""
    return json.dumps(json_safe(value), allow_nan=False)


def print_json(value: Any) -> None:
    print(dumps(value), flush=True)
