"""The data subcommands: make-dataset and inspect, their exit codes and JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.workbench.data_helpers import VOCAB, write_raw
from workbench.cli import main
from workbench.tasks import TASKS

ROOT = Path(__file__).parents[2]
KEYS = {"input_kind", "target_kind", "splits", "input_steps", "target_steps", "input_features",
        "target_features", "input_vocab_size", "target_vocab_size", "variable_length"}


def _strict_json(text: str) -> dict:
    def refuse(constant):
        raise AssertionError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


def _make(tmp_path, task, *options):
    out = tmp_path / f"{task}.h5"
    assert main(["make-dataset", task, "--out", str(out), "--n", "30", *options]) == 0
    return out


def _inspect_json(capsys, *argv) -> dict:
    capsys.readouterr()
    assert main(["inspect", *argv, "--json"]) == 0
    out = capsys.readouterr().out
    assert len(out.strip().splitlines()) == 1
    return _strict_json(out)


def _user_error(capsys, argv) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert "Traceback" not in captured.err
    return lines[0]


def test_make_dataset_help_lists_every_task_with_its_options_and_defaults(capsys):
    with pytest.raises(SystemExit) as info:
        main(["make-dataset", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for task in TASKS.values():
        assert task.name in out
        for option in task.options:
            assert f"{option.flag} {option.type.__name__.upper()} (default {option.default})" in out
    with pytest.raises(SystemExit):
        main(["make-dataset", "copy", "--help"])
    assert "--delay DELAY" in capsys.readouterr().out


def test_make_dataset_then_inspect_json_for_continuous_data(tmp_path, capsys):
    out = _make(tmp_path, "sine", "--input-steps", "7", "--target-steps", "3", "--features", "2")
    assert f"wrote {out}: task sine, 30 sequences" in capsys.readouterr().out
    data = _inspect_json(capsys, str(out))
    assert set(data) >= KEYS
    assert data["input_kind"] == data["target_kind"] == "continuous"
    assert data["splits"] == {"all": 30} and data["reader_splits"] == {"train": 27, "val": 3}
    assert (data["input_steps"], data["target_steps"]) == (7, 3)
    assert (data["input_features"], data["target_features"]) == (2, 2)
    assert data["input_vocab_size"] is None and data["variable_length"] is False


def test_inspect_json_for_variable_length_tokens_with_arrays(tmp_path, capsys):
    out = _make(tmp_path, "dates", "--formats", "3")
    data = _inspect_json(capsys, str(out), "--arrays", "--check")
    assert data["input_kind"] == "tokens" and data["input_features"] is None
    assert data["input_vocab_size"] == data["target_vocab_size"] > 10
    assert data["variable_length"] is True and data["target_steps"] == 11
    assert {a["path"] for a in data["arrays"]} == {"/inputs", "/targets", "/input_lengths",
                                                   "/vocab"}
    assert data["values_checked"] == 30


def test_inspect_text_and_split_groups(tmp_path, capsys):
    x = np.zeros((6, 4, 1), np.float32)
    path = write_raw(tmp_path / "s.h5", {"train/inputs": x, "train/targets": x,
                                         "val/inputs": x[:2], "val/targets": x[:2]})
    assert _inspect_json(capsys, str(path))["splits"] == {"train": 6, "val": 2}
    assert main(["inspect", str(path)]) == 0
    text = capsys.readouterr().out
    assert "continuous, 4 steps, 1 feature(s), fixed length" in text
    assert "splits:   train 6, val 2" in text


def test_inspect_explicit_paths(tmp_path, capsys):
    ids = np.full((5, 3), 4)
    ids[:, -1] = 2
    path = write_raw(tmp_path / "f.h5", {"d/x": ids, "d/y": ids, "vocab": VOCAB})
    line = _user_error(capsys, ["inspect", str(path)])
    assert "--inputs PATH --targets PATH" in line and "/d/x (5, 3) int64" in line
    data = _inspect_json(capsys, str(path), "--inputs", "/d/x", "--targets", "/d/y")
    assert data["target_vocab_size"] == len(VOCAB) and data["format_version"] is None
    assert "both the inputs and the targets" in _user_error(
        capsys, ["inspect", str(path), "--inputs", "/d/x"])


@pytest.mark.parametrize("case", ["missing", "broken", "bad-values", "exists", "bad-option"])
def test_user_mistakes_exit_2_with_one_line(tmp_path, capsys, case):
    bad = write_raw(tmp_path / "bad.h5", {"inputs": np.zeros((3, 4), np.float32),
                                          "targets": np.zeros((3, 4, 1), np.float32)})
    nan = np.zeros((3, 4, 1), np.float32)
    nan[1, 2, 0] = np.nan
    nan_file = write_raw(tmp_path / "nan.h5", {"inputs": nan, "targets": nan})
    argv, needle = {
        "missing": (["inspect", str(tmp_path / "nope.h5")], "nope.h5: no such file"),
        "broken": (["inspect", str(bad)], "/inputs: expected 3 dimensions"),
        "bad-values": (["inspect", str(nan_file), "--check"], "/inputs: sample 1, step 2"),
        "exists": (["make-dataset", "copy", "--out", str(bad)], "exists; pass --force"),
        "bad-option": (["make-dataset", "copy", "--out", str(tmp_path / "c.h5"), "--vocab",
                        "0"], "--vocab must be at least 1"),
    }[case]
    assert needle in _user_error(capsys, argv)


def _run(*argv):
    return subprocess.run([sys.executable, "main.py", *argv], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_main_py_in_a_subprocess(tmp_path):
    out = tmp_path / "copy.h5"
    made = _run("make-dataset", "copy", "--out", str(out), "--n", "20", "--delay", "2")
    assert made.returncode == 0, made.stderr
    inspected = _run("inspect", str(out), "--json")
    assert inspected.returncode == 0, inspected.stderr
    data = _strict_json(inspected.stdout)
    assert data["input_kind"] == "tokens" and data["input_steps"] == 12
    missing = _run("inspect", str(tmp_path / "nope.h5"))
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [f"error: {tmp_path / 'nope.h5'}: no such file"]


@pytest.mark.parametrize(
    ("argv", "words"),
    [(["sine", "--n", "100000000000"], ["--n", "at most 1000000000"]),
     (["sine", "--n", "10000000"], ["--n 10,000,000 sequences", "16.8 GB", "1 GB available"]),
     (["copy", "--n", "1000000", "--length", "5000"], ["60 GB", "1 GB available"])],
)
def test_a_dataset_too_big_for_memory_is_refused_naming_its_size(tmp_path, capsys, monkeypatch,
                                                                 argv, words):
    from workbench import memory

    monkeypatch.setattr(memory, "available_memory", lambda: 10**9)
    out = tmp_path / "big.h5"
    assert main(["make-dataset", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:"), err
    for word in words:
        assert word in err[0], (word, err[0])
    assert not out.exists() and not list(tmp_path.iterdir())


def test_running_out_of_memory_while_generating_is_a_config_error(tmp_path, monkeypatch):
    from workbench import tasks
    from workbench.errors import ConfigError

    def exhausted(rng, n, **options):
        raise MemoryError(f"Unable to allocate 447 GiB for an array with shape ({n}, 60, 1)")

    info = tasks.TASKS["sine"]
    monkeypatch.setitem(tasks.TASKS, "sine", tasks.TaskInfo(
        info.name, info.description, info.input_kind, info.target_kind, info.options, exhausted))
    with pytest.raises(ConfigError, match=r"task 'sine': out of memory generating --n 1,000 "
                                          r"sequences \(Unable to allocate"):
        tasks.generate("sine", tmp_path / "x.h5", n=1000)
    assert not list(tmp_path.iterdir())
