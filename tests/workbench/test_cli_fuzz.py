"""Issue 10, "done when": a fuzz of the CLI's flags over every subcommand.

Each subcommand of `python main.py` (read from the real parser, so a flag added later
is fuzzed too) gets random values of the right and of the wrong type for random sets
of its flags: numbers in and out of range, text where numbers belong, NaN and
infinities, empty strings, missing files, folders, garbage files, run folders. Sizes
are capped (hidden <= 16, --n <= 40, ...), training runs one step (`--steps 1`), in a
temporary runs folder and working folder, on tiny datasets. Every outcome must be
exit 0, 1 or 2 with no traceback: a user's mistake is one line, never a crash.

A longer fuzz: FUZZ_SCALE=10 multiplies the examples; FUZZ_LOG=FILE appends one JSON
line per example (subcommand, exit status, last line of stderr, the command line).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.cells import CELLS
from tests.workbench.train_helpers import record_run, tiny_config, write_reverse, write_waves
from workbench import tasks
from workbench.cli import build_parser, main

ROOT = Path(__file__).parents[2]
_names = itertools.count()

# examples per subcommand: about 20 s of the suite on two slow, shared cores, most of
# it in the commands that train (train, compare) and write files
EXAMPLES = {"train": 60, "compare": 20, "make-dataset": 30, "inspect": 20, "import-text": 20,
            "import-series": 20, "predict": 16, "evaluate": 16, "export": 12, "show": 8,
            "runs": 5, "comparisons": 4, "explain": 12, "sweep": 12, "sweeps": 4}
SAFE_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=6)
WRONG = st.one_of(
    st.sampled_from(["", " ", "abc", "-1", "0", "1.5", "-0.5", "nan", "inf", "-inf", "1e999",
                     "99999999999999999999", "0x10", "1_000", "off", "none", "true", "-",
                     "/", ".", "..", "☃", "1,2", "3"]),
    SAFE_TEXT,
)
# flags whose values are sizes: valid values stay small (the suite's time), wrong ones
# are anything
SMALL_INTS = {
    "--hidden": (1, 16), "--layers": (1, 2), "--embedding": (1, 16), "--batch": (1, 64),
    "--probe-batch": (1, 16), "--probe-samples": (1, 4), "--threads": (0, 1),
    "--seeds": (1, 2), "--n": (2, 40), "--window": (1, 12), "--horizon": (1, 4),
    "--stride": (1, 5), "--max-length": (1, 20), "--min-count": (1, 3), "--epochs": (1, 1),
    "--steps": (1, 1), "--probe-every": (1, 5), "--patience": (1, 3), "--seed": (0, 5),
    "--split-seed": (0, 5),
}
FLOATS = {"--dropout": (0.0, 0.9), "--lr": (1e-4, 0.1), "--momentum": (0.0, 0.99),
          "--teacher-forcing-end": (0.0, 1.0), "--clip": (0.1, 10.0),
          "--val-fraction": (0.05, 0.4), "--test-fraction": (0.05, 0.3)}
# flags given most of the time, so that most examples get past the first check
LIKELY = {"--data", "--cells", "--runs-dir", "--missing"}
RARE = {"--resume", "--config", "--inputs", "--targets", "--show", "--series-col",
        "--time-col", "--cell"}  # each takes over, or mostly refuses
# whether a flag is given (a required one always is); hypothesis starts from the first
# entry, so its simplest example is the shortest command line
INCLUDE = {"likely": st.sampled_from([True, True, True, True, False]),
           "other": st.sampled_from([False, False, False, False, True]),
           "rare": st.sampled_from([False] * 9 + [True])}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Tiny datasets, hostile files, a runs folder with a completed run, a stopped run and
    a comparison, and the working folder the commands run in."""
    folder = tmp_path_factory.mktemp("fuzz-world")
    files = {
        "waves": write_waves(folder / "waves.h5", n=48),
        "tokens": write_reverse(folder / "tokens.h5", n=48),
        "garbage": folder / "garbage.h5",
        "missing": folder / "missing.h5",
        "folder": folder / "a-folder",
        "foreign": folder / "foreign.h5",
        "sensor": folder / "sensor.csv",
        "stations": folder / "stations.csv",
        "phrases": folder / "phrases.tsv",
    }
    files["garbage"].write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 4)
    files["folder"].mkdir()
    with h5py.File(files["foreign"], "w") as f:
        f["x"] = np.zeros((12, 5, 1), np.float32)
        f["y"] = np.ones((12, 2, 1), np.float32)
    for key, name in (("sensor", "sensor.csv"), ("stations", "stations.csv"),
                      ("phrases", "phrases.tsv")):
        shutil.copy(ROOT / "docs" / "examples" / name, files[key])
    runs = folder / "runs"
    completed = record_run(tiny_config(files["waves"], steps=2), runs)
    stopped = record_run(tiny_config(files["waves"], steps=3), runs, stop_at=1)
    toml = folder / "run.toml"
    shutil.copy(completed / "config.toml", toml)
    bad_toml = folder / "bad.toml"
    bad_toml.write_text("[model\nhidden = = 3\n")
    assert main(["compare", "--data", str(files["waves"]), "--cells", "gru", "--seeds", "1",
                 "--steps", "1", "--hidden", "4", "--no-progress", "--runs-dir", str(runs),
                 "--json"]) == 0
    comparison = next((runs / "_comparisons").glob("*.json")).stem
    cwd = folder / "cwd"
    cwd.mkdir()
    originals = {path: path.read_bytes() for path in [*files.values(), toml, bad_toml]
                 if path.is_file()}
    return {"files": files, "runs": runs, "completed": completed, "stopped": stopped,
            "toml": toml, "bad_toml": bad_toml, "comparison": comparison, "cwd": cwd,
            "folder": folder, "originals": originals}


def restore(world) -> None:
    """Put back an input file a command replaced (make-dataset --out waves.h5 --force may,
    and should), so that every example starts from the same files."""
    for path, data in world["originals"].items():
        if not path.is_file() or path.read_bytes() != data:
            path.write_bytes(data)


def _paths(world, *keys: str) -> list[str]:
    return [str(world["files"][k]) for k in keys]


def _out_paths(world) -> st.SearchStrategy[str]:
    """Where a command is told to write: new files (relative and absolute), an existing
    file, its own input, a run's file, a folder, nonsense."""
    fresh = st.builds(lambda _: str(world["folder"] / f"out-{next(_names)}.h5"), st.none())
    relative = st.builds(lambda _: f"rel-{next(_names)}.csv", st.none())
    return st.one_of(fresh, fresh, relative, st.sampled_from([
        *_paths(world, "waves", "sensor", "folder", "garbage"),
        str(world["completed"] / "metrics.jsonl"),
        str(world["completed"] / "checkpoints" / "best.pt"),
    ]), WRONG)


def value_strategy(flag: str, action: argparse.Action, world) -> st.SearchStrategy[str]:
    """The right values of a flag (of the right type; some are still refused, as a
    missing file or an unknown array path); wrong ones come from WRONG."""
    if flag in SMALL_INTS:
        lo, hi = SMALL_INTS[flag]
        return st.integers(lo, hi).map(str)
    if flag in FLOATS:
        return st.floats(*FLOATS[flag]).map(lambda v: f"{v:.3g}")
    by_flag: dict[str, st.SearchStrategy[str]] = {
        "--data": st.sampled_from(_paths(world, *["waves"] * 6, *["tokens"] * 3, "garbage",
                                         "missing", "folder", "foreign", "sensor")),
        "--config": st.sampled_from([str(world["toml"]), str(world["bad_toml"]),
                                     *_paths(world, "missing", "folder", "waves")]),
        "--resume": st.sampled_from([world["completed"].name, world["stopped"].name,
                                     str(world["stopped"]), "no-such-run"]),
        "--runs-dir": st.sampled_from([str(world["runs"])] * 4 + _paths(world, "sensor")
                                      + [str(world["folder"] / "fresh-runs")]),
        "--inputs": st.sampled_from(["/inputs", "/x", "/y", "/nope", "/targets"]),
        "--targets": st.sampled_from(["/targets", "/y", "/x", "/nope", "/inputs"]),
        "--cell": st.sampled_from(list(CELLS)),
        "--cells": st.lists(st.sampled_from(list(CELLS)), min_size=1, max_size=2)
                     .map(",".join),
        "--optimizer": st.sampled_from(["adam", "sgd"]),
        "--device": st.sampled_from(["cpu", "auto", "cuda"]),
        "--teacher-forcing": st.sampled_from(["1", "0.5", "1:0", "0.9:0.1", ":", "a:b",
                                              "2:0"]),
        "--split": st.sampled_from(["train", "val", "test", "all"]),
        "--show": st.sampled_from([world["comparison"], "no-such-comparison"]),
        "--out": _out_paths(world), "--csv": _out_paths(world),
        "--metrics-csv": _out_paths(world),
        "--encoding": st.sampled_from(["utf-8", "latin-1", "utf-16", "nope"]),
        "--delimiter": st.sampled_from([",", "\t", "tab", ";", "|", "ab"]),
        "--source-col": st.sampled_from(["0", "1", "2", "-1"]),
        "--target-col": st.sampled_from(["0", "1", "2", "-1"]),
        "--input-cols": st.sampled_from(["temperature", "temperature,humidity", "humidity",
                                         "level", "nope"]),
        "--target-cols": st.sampled_from(["temperature", "humidity", "level", "nope"]),
        "--time-col": st.sampled_from(["date", "day", "temperature", "nope"]),
        "--series-col": st.sampled_from(["station", "date", "nope"]),
        "--name": SAFE_TEXT,
        "--missing": st.sampled_from(["interpolate", "drop-windows", "refuse"]),
    }
    if flag in by_flag:
        return by_flag[flag]
    if action.choices is not None:
        return st.sampled_from([str(c) for c in action.choices])
    return st.one_of(st.integers(0, 3).map(str), WRONG)  # a flag added since: anything


def positional_strategy(dest: str, command: str, world) -> st.SearchStrategy[str]:
    files = world["files"]
    if dest == "run":
        return st.sampled_from([str(world["completed"]), world["completed"].name,
                                world["stopped"].name, str(world["stopped"]), "no-such-run",
                                str(files["folder"])])
    if command == "import-text":
        return st.sampled_from(_paths(world, "phrases", "phrases", "phrases", "sensor",
                                      "garbage", "missing", "folder"))
    if command == "import-series":
        return st.sampled_from(_paths(world, "sensor", "sensor", "sensor", "stations",
                                      "phrases", "garbage", "missing"))
    return st.sampled_from(_paths(world, "waves", "tokens", "foreign", "garbage", "missing",
                                  "folder"))


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # noqa: SLF001 - argparse keeps them here
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            return dict(action.choices)
    return {}


def _arguments(parser: argparse.ArgumentParser, command: str, world, draw) -> list[str]:
    """A command line of `parser`: its positionals, a random set of its flags with right
    values, and at most one of them (half the time) given a wrong value."""
    chosen: list[argparse.Action] = []
    argv: list[str] = []
    for action in parser._actions:  # noqa: SLF001
        if isinstance(action, argparse._HelpAction):  # noqa: SLF001
            continue
        if not action.option_strings:
            argv.append(draw(positional_strategy(action.dest, command, world)))
        elif action.required or draw(INCLUDE[
                "likely" if action.option_strings[-1] in LIKELY
                else "rare" if action.option_strings[-1] in RARE else "other"]):
            chosen.append(action)
    valued = [a for a in chosen if a.nargs != 0]
    wrong = draw(st.sampled_from([None, *valued])) if valued and draw(st.booleans()) else None
    for action in chosen:
        flag = action.option_strings[-1]
        if action.nargs == 0:
            argv.append(flag)
        else:
            values = WRONG if action is wrong else value_strategy(flag, action, world)
            argv += [flag, draw(values)]
    return argv


@st.composite
def command_line(draw, command: str, world) -> list[str]:
    parser = _subparsers(build_parser())[command]
    if command == "make-dataset":
        task = draw(st.sampled_from(sorted(tasks.TASKS)))
        task_parser = _subparsers(parser)[task]
        argv = ["make-dataset", task]
        for option in tasks.TASKS[task].options:  # sizes capped, wrong values anything
            if draw(st.booleans()):
                lo = option.minimum if option.minimum is not None else 0
                valid = (st.integers(int(lo), int(min(option.maximum or 12, 12))).map(str)
                         if option.type is int else
                         st.floats(float(lo), float(min(option.maximum or 1.0, 1.0))).map(str))
                argv += [option.flag, draw(st.one_of(valid, valid, valid, WRONG))]
        rest = [a for a in task_parser._actions  # noqa: SLF001
                if a.option_strings and a.dest in ("out", "n", "seed", "force")]
        for action in rest:
            flag = action.option_strings[-1]
            if flag == "--out" or draw(st.booleans()):
                argv += [flag] if action.nargs == 0 else [
                    flag, draw(value_strategy(flag, action, world))]
        return argv
    argv = [command, *_arguments(parser, command, world, draw)]
    if command in ("train", "compare", "sweep"):
        argv += ["--steps", "1", "--no-progress"]  # one step, whatever else was drawn
    return argv


def run(argv: list[str], capsys) -> tuple[int, str]:
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse: a usage mistake (2), or --help (0)
        code = exc.code if isinstance(exc.code, int) else 2
    return code, capsys.readouterr().err


def found(world) -> list[list[str]]:
    """Command lines the fuzz found a traceback or a hang with, kept as fixed cases."""
    files = world["files"]
    series = [str(files["sensor"]), "--out", str(world["folder"] / "found.h5"), "--force",
              "--input-cols", "temperature", "--target-cols", "temperature"]
    return [
        # h5py could not store a 20-digit stride as an attribute: TypeError
        ["import-series", *series, "--window", "4", "--horizon", "2",
         "--stride", "99999999999999999999"],
        # a UTF-16 file without a byte-order mark: UnicodeError from the decoder
        ["import-text", str(files["phrases"]), "--out", str(world["folder"] / "found.h5"),
         "--force", "--encoding", "utf-16"],
        # a 20-digit --seeds planned that many runs, until memory ran out
        ["compare", "--data", str(files["waves"]), "--cells", "gru",
         "--seeds", "99999999999999999999", "--steps", "1", "--no-progress",
         "--runs-dir", str(world["runs"])],
    ]


def test_what_the_fuzz_found_is_one_line_and_exit_2(world, capsys):
    for argv in found(world):
        code, err = run(argv, capsys)
        assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, (argv, err)


def test_the_fuzz_covers_every_subcommand():
    assert set(_subparsers(build_parser())) == set(EXAMPLES)


@pytest.mark.parametrize("command", sorted(EXAMPLES))
def test_every_flag_value_ends_in_0_1_or_2_without_a_traceback(world, command, capsys,
                                                               monkeypatch):
    monkeypatch.chdir(world["cwd"])  # relative outputs land in the temporary folder

    @settings(max_examples=EXAMPLES[command] * int(os.environ.get("FUZZ_SCALE", "1")),
              deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(argv=command_line(command, world))
    def check(argv: list[str]) -> None:
        code, err = run(argv, capsys)
        restore(world)
        if os.environ.get("FUZZ_LOG"):  # one JSON line per example: what ran, how it ended
            with open(os.environ["FUZZ_LOG"], "a", encoding="utf-8") as log:
                last = (err.strip().splitlines() or [""])[-1]
                log.write(json.dumps([command, code, last[:200], argv]) + "\n")
        assert code in (0, 1, 2), (argv, code, err[-2000:])
        assert "Traceback" not in err, (argv, err[-2000:])
        if code == 2:  # a user's mistake: said on one line (after any progress output)
            assert err.strip().splitlines()[-1].startswith(("error: ", "interrupted")), \
                (argv, err[-2000:])

    check()
