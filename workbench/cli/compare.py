"""Subcommands about comparisons: compare (run one, or --show a saved one) and comparisons.

    python main.py compare --data FILE --cells rnn-tanh,gru,lstm --seeds 3 [train flags]
    python main.py compare --config RUN.toml --cells rnn-tanh,lstm [flags override it]
    python main.py compare --show ID [--json] [--csv TABLE.csv] [--metrics-csv METRICS.csv] [--force]
    python main.py comparisons [--json]

`compare` takes every flag of `train` (the same parser: workbench.cli.train builds
it); `--seed` is the base seed, the runs use base, base+1, ... . It trains the runs
one after another, prints the table (mean and std across seeds per cell) and, with
--json, ends with one line: {"comparison_id": ..., "cells": [...]}. Ctrl-C cancels
the comparison (the current run stops, the rest are skipped). The exit status is 0
when the queue ran (a run that diverged is a result, shown in the table), 2 for a
user's mistake, 1 when the comparison failed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from workbench.cli import common
from workbench.cli import train as train_cli
from workbench.errors import ConfigError
from workbench.events import Event

EXIT_OK, EXIT_FAILED = 0, 1


def register(subparsers: Any) -> None:
    """Add `compare` and `comparisons`."""
    parser = subparsers.add_parser(
        "compare", parents=[_train_parser()], conflict_handler="resolve",
        help="train several cells x seeds on the same data and compare them",
        description="Train the same config with several cells and seeds (shared split and "
        "probe batch), one run after another, and print the comparison table. Takes every "
        "train flag.")
    group = parser.add_argument_group("comparison")
    group.add_argument("--cells", metavar="CELLS",
                       help="comma-separated cells, e.g. rnn-tanh,gru,lstm (table order)")
    group.add_argument("--seeds", type=seed_count, default=3, metavar="N",
                       help="training seeds per cell: --seed, --seed+1, ... (default 3)")
    group.add_argument("--seed", help="the base training seed (default 0 or the config's)")
    group.add_argument("--name", help="display name of the comparison")
    group.add_argument("--show", metavar="ID",
                       help="print a saved comparison's table instead of running one")
    group.add_argument("--profiles", action="store_true",
                       help="also print each cell's gradient profile: G_t at the latest "
                       "probe (top layer, mean across seeds), encoder then decoder steps")
    group.add_argument("--csv", metavar="FILE", help="also write the table as CSV")
    group.add_argument("--metrics-csv", metavar="FILE",
                       help="also write every run's metrics as one tidy CSV")
    group.add_argument("--force", action="store_true",
                       help="replace the --csv and --metrics-csv files if they exist")
    group.add_argument("--json", action="store_true",
                       help="end with one JSON line: the comparison and its table")
    for flag in ("--cell", "--resume"):  # train's, refused here: kept out of the help
        parser.add_argument(flag, help=argparse.SUPPRESS)
    parser.set_defaults(func=cmd_compare)

    listing = subparsers.add_parser("comparisons", help="list saved comparisons")
    train_cli.add_runs_dir_arg(listing)
    listing.add_argument("--json", action="store_true", help="print a JSON list")
    listing.set_defaults(func=cmd_comparisons)


MAX_SEEDS = 1000  # runs per cell; more is a typo (a 20-digit --seeds ran out of memory)


def seed_count(text: str) -> int:
    """--seeds N, refused on one line above MAX_SEEDS before any run is planned."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value > MAX_SEEDS:
        raise argparse.ArgumentTypeError(f"{value} seeds is more than {MAX_SEEDS}")
    return value


def _train_parser() -> argparse.ArgumentParser:
    """The `train` parser exactly as workbench.cli.train builds it, as a parent parser,
    so compare takes the same flags with no copy of the argparse block."""
    subparsers = argparse.ArgumentParser(add_help=False).add_subparsers()
    train_cli.register_train(subparsers)
    return subparsers.choices["train"]


class QueueConsole:
    """Prints the queue's progress to stderr and points the run's progress bar at it."""

    def __init__(self, progress: Any, *, enabled: bool = True) -> None:
        self.progress = progress
        self.enabled = enabled

    def on_event(self, event: Event | Any) -> None:
        from workbench.compare import ComparisonFinished, ComparisonStarted, QueuedRunStarted

        if isinstance(event, QueuedRunStarted):
            self.progress.total = event.total_steps
            self._say(f"[{event.index + 1}/{event.planned}] {event.cell} seed {event.seed}: "
                      f"{event.run_id}")
        elif isinstance(event, ComparisonStarted):
            self._say(f"comparison {event.comparison_id}: {event.planned} runs "
                      f"({', '.join(event.cells)} x seeds {', '.join(map(str, event.seeds))})")
        elif isinstance(event, ComparisonFinished):
            self._say(f"comparison {event.comparison_id} {event.status}: "
                      f"{event.completed}/{event.planned} runs completed"
                      + (f" ({event.message})" if event.message else ""))

    def _say(self, text: str) -> None:
        if self.enabled:
            print(text, file=sys.stderr, flush=True)


def cmd_compare(args: argparse.Namespace) -> int:
    from workbench.compare import ComparisonRunner, open_comparison

    _check_outputs(args)
    if args.show:
        return _print(open_comparison(args.show, args.runs_dir), args)
    if args.resume:
        raise ConfigError("compare cannot --resume; resume a run with train --resume RUN")
    if args.cell:
        raise ConfigError("compare takes --cells (comma-separated), not --cell")
    if not args.cells:
        raise ConfigError("compare needs --cells, e.g. --cells rnn-tanh,lstm (or --show ID)")
    if not args.config and not args.data:
        raise ConfigError("compare needs --data FILE or --config RUN.toml")
    config = train_cli.config_from_args(args)
    progress = train_cli.ConsoleProgress(0, enabled=not args.no_progress)
    console = QueueConsole(progress, enabled=not args.no_progress)
    with train_cli.open_dataset(config) as dataset:
        runner = ComparisonRunner(config, args.cells, args.seeds, listeners=[console, progress],
                                  runs_dir=args.runs_dir, name=args.name, dataset=dataset,
                                  thread_policy="cli")
        with train_cli.stop_on_interrupt(runner):
            comparison = runner.run()
    code = _print(comparison, args)
    return code if comparison.status != "failed" else EXIT_FAILED


def _check_outputs(args: argparse.Namespace) -> None:
    """Refuse, before anything runs, a --csv or --metrics-csv file that must not be
    written (workbench.outputs: an existing file without --force, an input, a run's file)."""
    from workbench.outputs import check_output

    if args.csv and args.metrics_csv and Path(args.csv).resolve() == Path(args.metrics_csv).resolve():
        raise ConfigError(f"--csv and --metrics-csv name the same file {args.csv}; give two names")
    for flag, path in (("--csv", args.csv), ("--metrics-csv", args.metrics_csv)):
        if path:
            check_output(path, force=args.force, inputs=(args.data, args.config),
                         runs_dir=args.runs_dir, flag=flag)


def comparison_json(comparison: Any, table: Any) -> dict[str, Any]:
    """The object `compare --json` prints: the comparison and one entry per cell."""
    return {"comparison_id": comparison.comparison_id, "name": comparison.name,
            "status": comparison.status, "seeds": list(comparison.seeds),
            "runs_dir": str(comparison.runs_dir), "cells": table.to_json()}


def _print(comparison: Any, args: argparse.Namespace) -> int:
    from workbench import exports

    table = comparison.table()
    if args.csv:
        exports.write_table_csv(table, args.csv)
        print(f"wrote {args.csv}", file=sys.stderr)
    if args.metrics_csv:
        count = exports.write_metrics_csv(comparison.open_runs(), args.metrics_csv)
        print(f"wrote {count} rows to {args.metrics_csv}", file=sys.stderr)
    profiles = None
    if args.profiles:
        from workbench.compare import gradient_profiles

        profiles = gradient_profiles(comparison.run_data(), cells=comparison.cells)
    if args.json:
        result = comparison_json(comparison, table)
        for entry in result["cells"] if profiles else []:
            profile = profiles[entry["cell"]]
            entry["encoder_grad_norms_mean"] = profile.encoder_mean
            entry["decoder_grad_norms_mean"] = profile.decoder_mean
        common.print_json(result)
    else:
        print(f"comparison {comparison.comparison_id} ({comparison.name}): {comparison.status}"
              + (f" - {comparison.message}" if comparison.message else ""))
        print(table.to_text())
        if profiles:
            print(profiles_text(profiles))
    return EXIT_OK


def profiles_text(profiles: dict[str, Any]) -> str:
    """G_t per step (rows) and cell (columns): the mean across seeds at the latest probe."""
    cells = list(profiles)
    lines = ["gradient norm G_t at the latest probe (top layer, mean across seeds)",
             f"{'step':<10}" + "".join(f"{cell:>12}" for cell in cells)]
    for side in ("encoder", "decoder"):
        columns = [getattr(profiles[cell], f"{side}_mean") for cell in cells]
        for t in range(max((len(c) for c in columns), default=0)):
            values = "".join(f"{c[t]:>12.2e}" if t < len(c) else f"{'-':>12}" for c in columns)
            lines.append(f"{side[:3]} t={t + 1:<4}{values}")
    return "\n".join(lines)


def cmd_comparisons(args: argparse.Namespace) -> int:
    from workbench.compare import list_comparisons

    found = list_comparisons(args.runs_dir)
    if args.json:
        common.print_json([c.to_json() for c in found])
        return EXIT_OK
    if not found:
        print("no comparisons")
        return EXIT_OK
    print(f"{'comparison id':<40} {'status':<10} {'runs':>6}  cells")
    for c in found:
        print(f"{c.comparison_id:<40} {c.status:<10} {len(c.run_ids):>3}/{len(c.entries):<2}  "
              f"{', '.join(c.cells)}")
    return EXIT_OK
