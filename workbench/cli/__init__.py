"""The headless command line: `python main.py SUBCOMMAND ...`.

Each subcommand module has `register(subparsers)` which adds its parser and sets
`func` to a handler `(args) -> int`. A WorkbenchError (a user's mistake) becomes a
one-line message on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from workbench.cli import common

SUBCOMMAND_MODULES = ("workbench.cli.data", "workbench.cli.train", "workbench.cli.compare",
                      "workbench.cli.importing", "workbench.cli.explain", "workbench.cli.sweep")


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr (and exit 2), like any
    other user error, with a pointer to --help instead of the whole usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(common.EXIT_USER_ERROR, f"error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = OneLineErrorParser(
        prog="python main.py",
        description="Sequence Workbench: train and look inside recurrent sequence models. "
        "Without a subcommand, opens the desktop app.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # a subcommand module not written yet
            if exc.name != name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return common.run_handler(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
