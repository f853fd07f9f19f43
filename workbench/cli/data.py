"""Data subcommands: `make-dataset` (write a built-in task's file) and `inspect`
(what a file holds, or why it can't be used).

    python main.py make-dataset copy --out copy.h5 --n 5000 --delay 50
    python main.py inspect copy.h5 --json
    python main.py inspect other.h5 --inputs /data/x --targets /data/y --arrays
    python main.py inspect other.h5 --arrays       # lists them; exit 0 without /inputs
    python main.py inspect copy.h5 --recheck       # forget the safety verdict, check again
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from workbench import datasets, safe_open, tasks
from workbench.cli import common
from workbench.dataset_layout import names_default_arrays
from workbench.outputs import check_output


def register(subparsers: Any) -> None:
    """Add `make-dataset` and `inspect` to the CLI."""
    _register_make_dataset(subparsers)
    _register_inspect(subparsers)


# --- make-dataset -------------------------------------------------------------------


def _task_listing() -> str:
    lines = ["tasks (python main.py make-dataset TASK --help for one task):"]
    for info in tasks.TASKS.values():
        lines.append(f"  {info.name:<8} {info.description}")
        for option in info.options:
            lines.append(f"  {'':<8}   {option.flag} {option.type.__name__.upper()} "
                         f"(default {option.default}): {option.help}")
    lines.append(f"common options: --out FILE (required), --n N (default {tasks.DEFAULT_N}), "
                 "--seed S (default 0), --force")
    return "\n".join(lines)


def _register_make_dataset(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "make-dataset",
        help="write a built-in task's dataset file",
        description="Write a dataset file of a built-in task (deterministic for its seed).",
        epilog=_task_listing(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="task", metavar="TASK", required=True)
    for info in tasks.TASKS.values():
        task_parser = sub.add_parser(
            info.name,
            help=info.description,
            description=info.description,
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )
        task_parser.add_argument("--out", type=Path, required=True, help="the file to write")
        task_parser.add_argument("--n", type=int, default=tasks.DEFAULT_N, help="sequences")
        task_parser.add_argument("--seed", type=int, default=0, help="random seed")
        task_parser.add_argument("--force", action="store_true",
                                 help="replace the file if it exists")
        for option in info.options:
            task_parser.add_argument(option.flag, dest=option.name, type=option.type,
                                     default=option.default, help=option.help)
        task_parser.set_defaults(func=_make_dataset, task_info=info)


def _make_dataset(args: argparse.Namespace) -> int:
    info: tasks.TaskInfo = args.task_info
    out: Path = check_output(args.out, force=args.force, flag="--out")
    options = {o.name: getattr(args, o.name) for o in info.options}
    path = tasks.generate(info.name, out, n=args.n, seed=args.seed, **options)
    shown = " ".join(f"{o.flag} {options[o.name]}" for o in info.options)
    print(f"wrote {path}: task {info.name}, {args.n} sequences, seed {args.seed}, {shown}")
    return 0


# --- inspect ------------------------------------------------------------------------


def _register_inspect(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "inspect",
        help="summarise a dataset file, or say why it can't be used",
        description="Summarise a dataset file: kinds, steps, features or vocabulary, splits. "
        "Exits with status 2 and the reason if the file can't be used.",
    )
    parser.add_argument("file", type=Path, help="an HDF5 file")
    parser.add_argument("--inputs", metavar="PATH", help="path of the inputs array in the file "
                        "(for files that don't follow the format)")
    parser.add_argument("--targets", metavar="PATH", help="path of the targets array")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.add_argument("--arrays", action="store_true",
                        help="also list every array in the file (path, shape, dtype)")
    parser.add_argument("--check", action="store_true",
                        help="also read every value and check it (NaN/inf, token ids)")
    parser.add_argument("--recheck", action="store_true",
                        help="forget the remembered safety verdict on this file and check it "
                        "again (after a crash or an interrupted check)")
    parser.add_argument("--split-seed", type=int, default=0,
                        help="seed of the validation split drawn when the file has none")
    parser.add_argument("--val-fraction", type=float, default=0.1,
                        help="fraction of samples drawn for validation when the file has none")
    parser.set_defaults(func=_inspect)


def _inspect(args: argparse.Namespace) -> int:
    import sys

    from workbench.importers import looks_like_overlapping_windows, read_time_split

    if args.recheck:
        safe_open.forget(args.file)
    arrays = None
    if args.arrays:
        arrays = datasets.list_arrays(args.file)
        if not args.json:
            _print_arrays(arrays)
        if not (args.inputs or args.targets) and not names_default_arrays(
                a.path for a in arrays):
            return _arrays_only(args, arrays)
    with datasets.SequenceDataset.open(
        args.file, args.inputs, args.targets, split_seed=args.split_seed,
        val_fraction=args.val_fraction,
    ) as ds:
        checked = ds.check_values() if args.check else None
        summary = ds.summary
        warning = looks_like_overlapping_windows(ds)
    time_split = read_time_split(args.file)
    if args.json:
        out = summary.to_json()
        if arrays is not None:
            out["arrays"] = [_array_json(a) for a in arrays]
        if checked is not None:
            out["values_checked"] = checked
        if time_split is not None:
            out["time_split"] = time_split.to_json()
        common.print_json(out)
    else:
        print(_summary_text(summary))
        if time_split is not None:
            print("\n".join(time_split.lines()))
        if checked is not None:
            print(f"  values:   all {checked} samples checked, none bad")
    if warning:  # on stderr, so that --json stays one clean line
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _arrays_only(args: argparse.Namespace, arrays: list[datasets.ArrayInfo]) -> int:
    """`inspect --arrays` on a file without /inputs and /targets: the arrays were asked
    for and are shown; what the dataset would need is said, and that is no error."""
    note = ("not in the dataset format (no /inputs and /targets); name the arrays to use "
            "with --inputs PATH --targets PATH")
    if args.json:
        common.print_json({"path": str(args.file), "dataset": None, "note": note,
                           "arrays": [_array_json(a) for a in arrays]})
    else:
        print(f"{args.file}: {note}")
    return 0


def _array_json(a: datasets.ArrayInfo) -> dict[str, Any]:
    out: dict[str, Any] = {"path": a.path, "shape": list(a.shape), "dtype": a.dtype}
    if a.same_as:
        out["same_as"] = a.same_as
    return out


def _print_arrays(arrays: list[datasets.ArrayInfo]) -> None:
    print("arrays:")
    width = max((len(a.path) for a in arrays), default=0)
    for a in arrays:
        alias = f"  (a link to {a.same_as})" if a.same_as else ""
        print(f"  {a.path:<{width}}  {str(a.shape):<20} {a.dtype}{alias}")


def _side_text(side: datasets.SideSpec) -> str:
    if side.kind == datasets.TOKENS:
        what = (f"tokens, {side.steps} steps, vocabulary of {side.vocab_size} "
                f"(pad {side.pad_id}, start {side.start_id}, end {side.end_id})")
    else:
        what = f"continuous, {side.steps} steps, {side.features} feature(s)"
    return what + (", variable length" if side.variable_length else ", fixed length")


def _summary_text(s: datasets.DatasetSummary) -> str:
    version = f"format v{s.format_version}" if s.format_version else "no format attribute"
    lines = [f"{s.path} ({version})"]
    if s.task:
        lines.append(f"  task:     {s.task}")
    if s.description:
        lines.append(f"  about:    {s.description}")
    lines.append(f"  inputs:   {_side_text(s.inputs)}")
    lines.append(f"  targets:  {_side_text(s.targets)}")
    stored = ", ".join(f"{k} {v}" for k, v in s.file_splits.items())
    served = ", ".join(f"{k} {v}" for k, v in s.splits.items())
    lines.append(f"  stored:   {stored}")
    note = (f" (validation drawn with split seed {s.split_seed}, fraction {s.val_fraction:g})"
            if s.val_from_seed else "")
    lines.append(f"  splits:   {served}{note}")
    return "\n".join(lines)
