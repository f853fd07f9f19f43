"""What every subcommand shares: error handling and JSON output."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from workbench.errors import WorkbenchError
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
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def dumps(value: Any) -> str:
    """One line of strict JSON (never NaN or Infinity)."""
    return json.dumps(json_safe(value), allow_nan=False)


def print_json(value: Any) -> None:
    print(dumps(value), flush=True)
