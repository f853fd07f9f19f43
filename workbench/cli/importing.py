"""Import subcommands: `import-text` (text pairs) and `import-series` (CSV time series).

    python main.py import-text pairs.tsv --out pairs.h5 --level word --lowercase
    python main.py import-series data.csv --out series.h5 --input-cols a,b --target-cols b \\
        --window 48 --horizon 12 --time-col date

Both write a dataset file atomically (a failed import leaves none), refuse an
existing --out without --force and always refuse --out equal to the input or inside a
run folder (workbench.outputs.check_output, as every command that writes a file), and
print one line saying what was written and what was dropped (`--json`: one JSON
object). docs/your-data.md shows both on example files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from workbench.cli import common
from workbench.errors import DatasetError
from workbench.importers.common import check_paths
from workbench.importers.series import MISSING_POLICIES, SeriesOptions, import_series
from workbench.importers.text import LEVELS, SINGLE_MODES, TextOptions, import_text
from workbench.outputs import check_output


def register(subparsers: Any) -> None:
    """Add `import-text` and `import-series` to the CLI."""
    _register_text(subparsers)
    _register_series(subparsers)


def _common_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="the dataset file to write")
    parser.add_argument("--force", action="store_true", help="replace --out if it exists")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object (what was written, counts) instead of text")
    parser.add_argument("--encoding", default=None,
                        help="the file's text encoding (default: UTF-8, with or without a BOM)")


def _register_text(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "import-text",
        help="import a TSV/CSV of text pairs (or one text column) as token sequences",
        description="Import (source, target) text pairs, or one column with --single, into "
        "a token dataset. The split is random (seeded); vocabularies come from the training "
        "split only, with <unk> (id 3) for the rest. Malformed lines are named by number.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("file", type=Path, help="the TSV or CSV file")
    _common_flags(parser)
    parser.add_argument("--level", choices=LEVELS, default="word",
                        help="a token per character or per white-space-separated word")
    parser.add_argument("--source-col", default="0",
                        help="the source column: its index from 0 (or its name with --header)")
    parser.add_argument("--target-col", default="1", help="the target column")
    parser.add_argument("--single", choices=SINGLE_MODES, default=None,
                        help="one text column: the target is the text itself or reversed")
    parser.add_argument("--lowercase", action="store_true", help="lower-case all text")
    parser.add_argument("--max-length", type=int, default=None,
                        help="drop pairs with more tokens than this on either side")
    parser.add_argument("--min-count", type=int, default=1,
                        help="training tokens seen fewer times become <unk>")
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--test-fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0, help="seed of the random split")
    parser.add_argument("--delimiter", default=None,
                        help="tab, comma, semicolon, pipe or one character (default: comma "
                        "for .csv files, tab for others)")
    parser.add_argument("--quoting", choices=("csv", "none"), default="csv",
                        help="csv: quoted fields as the csv module reads them; none: quotes "
                        "are ordinary characters")
    parser.add_argument("--header", action="store_true",
                        help="the first row names the columns (it is not a pair)")
    parser.add_argument("--skip-bad-lines", action="store_true",
                        help="count and skip malformed lines instead of stopping at the first")
    parser.set_defaults(func=_import_text)


def _register_series(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "import-series",
        help="import a CSV of time series as forecasting windows, split by time",
        description="Cut windows (--window input steps, then --horizon target steps) from "
        "the series of a CSV with a header. Each series is split by time: its last "
        "--test-fraction of steps is the test split, the --val-fraction before it the "
        "validation split; a window lies wholly inside one split (windows that would cross a "
        "boundary are left out), so no validation window shares a step with training.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("file", type=Path, help="the CSV file (with a header row)")
    _common_flags(parser)
    parser.add_argument("--input-cols", required=True, help="input columns: a,b,...")
    parser.add_argument("--target-cols", required=True, help="target columns: b,...")
    parser.add_argument("--window", type=steps_int, required=True,
                        help="input steps per window")
    parser.add_argument("--horizon", type=steps_int, required=True,
                        help="target steps per window")
    parser.add_argument("--stride", type=steps_int, default=1,
                        help="steps between window starts")
    parser.add_argument("--time-col", default=None,
                        help="the time column (numbers or ISO dates are checked to be in order; "
                        "its values name the split boundaries)")
    parser.add_argument("--series-col", default=None,
                        help="a series id column: several series in one file, windows made "
                        "within each")
    parser.add_argument("--val-fraction", type=float, default=0.15,
                        help="of each series' steps, before the test part")
    parser.add_argument("--test-fraction", type=float, default=0.15,
                        help="of each series' steps, at its end")
    parser.add_argument("--missing", choices=MISSING_POLICIES, default="refuse",
                        help="missing values (empty, NaN, NA): refuse, fill linearly, or drop "
                        "the windows that hold one")
    parser.add_argument("--delimiter", default=None,
                        help="comma (default), semicolon, tab, pipe or one character")
    parser.set_defaults(func=_import_series)


MAX_STEPS = 10**9  # a window, horizon or stride beyond any series a CSV can hold


def steps_int(text: str) -> int:
    """An int flag counted in time steps: above MAX_STEPS is refused by argparse on one
    line (a 20-digit --stride used to end in a traceback when the file was written)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value > MAX_STEPS:
        raise argparse.ArgumentTypeError(f"{value} is more than {MAX_STEPS:,} steps")
    return value


def _importing(args: argparse.Namespace, run: Any) -> Any:
    """`run()`, the import; a file that cannot be decoded in --encoding at all (a UTF-16
    file without its byte-order mark) is one line naming the file, not a traceback."""
    try:
        return run()
    except UnicodeError as exc:
        encoding = args.encoding or "UTF-8"
        raise DatasetError(f"{args.file}: cannot be read as {encoding}: {exc}") from None


def _check_out(args: argparse.Namespace) -> None:
    check_paths(args.file, args.out)  # the input must exist (and is never the output)
    check_output(args.out, force=args.force, inputs=(args.file,), flag="--out")


def _report(summary: Any, as_json: bool) -> int:
    if as_json:
        common.print_json(summary.to_json())
    else:
        print(summary.text())
    return 0


def _import_text(args: argparse.Namespace) -> int:
    _check_out(args)
    options = TextOptions(
        level=args.level, source_col=args.source_col,
        target_col=None if args.single else args.target_col, single=args.single,
        lowercase=args.lowercase, max_length=args.max_length, min_count=args.min_count,
        val_fraction=args.val_fraction, test_fraction=args.test_fraction, seed=args.seed,
        encoding=args.encoding, delimiter=args.delimiter, quoting=args.quoting == "csv",
        header=args.header, skip_bad_lines=args.skip_bad_lines,
    )
    summary = _importing(args, lambda: import_text(args.file, args.out, options))
    if summary.dropped.get("bad_lines") and not args.json:
        print(f"warning: {summary.dropped['bad_lines']:,} bad lines skipped; the first: "
              f"{summary.first_bad_line}", file=sys.stderr)
    return _report(summary, args.json)


def _import_series(args: argparse.Namespace) -> int:
    _check_out(args)
    options = SeriesOptions(
        input_cols=args.input_cols, target_cols=args.target_cols, window=args.window,
        horizon=args.horizon, stride=args.stride, time_col=args.time_col,
        series_col=args.series_col, val_fraction=args.val_fraction,
        test_fraction=args.test_fraction, missing=args.missing, encoding=args.encoding,
        delimiter=args.delimiter,
    )
    return _report(_importing(args, lambda: import_series(args.file, args.out, options)),
                   args.json)
