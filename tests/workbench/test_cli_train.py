"""The CLI's train, runs, show, export, evaluate and predict, run in-process."""

from __future__ import annotations

import csv
import json

import h5py
import numpy as np
import pytest

from tests.workbench.train_helpers import (
    open_dataset,
    record_run,
    state_equal,
    tiny_config,
    write_reverse,
    write_waves,
)
from workbench.cli import main
from workbench.runs import list_runs, open_run
from workbench.training import Trainer

TINY = ["--cell", "gru", "--hidden", "8", "--batch", "16", "--lr", "0.01", "--probe-batch", "8",
        "--threads", "1", "--no-progress"]


@pytest.fixture(scope="module")
def waves(tmp_path_factory):
    return write_waves(tmp_path_factory.mktemp("data") / "waves.h5")


@pytest.fixture()
def runs_dir(tmp_path):
    return tmp_path / "runs"


def _json_out(capsys) -> object:
    out = capsys.readouterr().out.strip().splitlines()
    return json.loads(out[-1], parse_constant=lambda c: pytest.fail(f"JSON holds {c}"))


def _train(capsys, *args) -> dict:
    assert main(["train", *args, "--json"]) == 0
    return _json_out(capsys)


def test_train_json_has_every_promised_key(waves, runs_dir, capsys):
    result = _train(capsys, "--data", str(waves), *TINY, "--steps", "7", "--runs-dir",
                    str(runs_dir))
    for key in ("run_id", "run_dir", "status", "cell", "parameters", "steps", "epochs",
                "train_loss", "val_loss", "val_loss_free_running", "best_val_loss", "seconds",
                "sequences_per_second", "encoder_grad_norms", "decoder_grad_norms"):
        assert key in result, key
    assert result["status"] == "completed" and result["steps"] == 7 and result["cell"] == "gru"
    assert len(result["encoder_grad_norms"]) == 12 and len(result["decoder_grad_norms"]) == 6
    assert result["val_loss"] > 0 and result["parameters"] > 0

    assert main(["runs", "--runs-dir", str(runs_dir), "--json"]) == 0
    runs = _json_out(capsys)
    assert [r["run_id"] for r in runs] == [result["run_id"]]
    for key in ("run_id", "name", "cell", "status", "steps", "best_val_loss", "seconds", "started"):
        assert key in runs[0], key

    assert main(["show", result["run_id"], "--runs-dir", str(runs_dir), "--json"]) == 0
    assert _json_out(capsys) == result
    assert main(["show", result["run_dir"], "--json"]) == 0  # a folder's path works too
    assert _json_out(capsys)["run_id"] == result["run_id"]


def test_config_file_alone_is_enough_and_flags_override_it(waves, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "waves.h5").write_bytes(waves.read_bytes())
    (folder / "run.toml").write_text(
        'version = 1\n[data]\ndata = "waves.h5"\n[model]\ncell = "lstm"\nhidden = 8\n'
        '[training]\nsteps = 4\nbatch_size = 16\n[probes]\nprobe_batch = 8\n'
    )
    monkeypatch.chdir(tmp_path)  # the relative path resolves against the TOML, not here
    result = _train(capsys, "--config", "project/run.toml", "--no-progress")
    assert result["cell"] == "lstm" and result["steps"] == 4
    result = _train(capsys, "--config", "project/run.toml", "--cell", "gru", "--epochs", "1",
                    "--no-progress")
    assert result["cell"] == "gru" and result["epochs"] == 1


@pytest.mark.parametrize(
    ("args", "words"),
    [(["train", "--data", "missing.h5", "--cell", "gru"], "missing.h5"),
     (["train", "--data", "{waves}", "--cell", "transformer"], "cell"),
     (["train", "--data", "{waves}", "--hidden", "-3"], "hidden"),
     (["train", "--config", "nope.toml"], "nope.toml"),
     (["train", "--cell", "gru"], "--data"),
     (["show", "no-such-run"], "no-such-run"),
     (["train", "--resume", "no-such-run"], "no-such-run")],
)
def test_mistakes_exit_2_with_one_line(waves, runs_dir, capsys, args, words):
    args = [a.replace("{waves}", str(waves)) for a in args] + ["--runs-dir", str(runs_dir)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and words in err[0]
    assert list_runs(runs_dir) == []  # no half-made run folder left behind


def test_export_evaluate_and_predict_in_data_units(waves, runs_dir, tmp_path, capsys):
    result = _train(capsys, "--data", str(waves), *TINY, "--steps", "10", "--runs-dir",
                    str(runs_dir))
    run_id = result["run_id"]
    out = tmp_path / "metrics.csv"
    assert main(["export", run_id, "--runs-dir", str(runs_dir), "--csv", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert set(rows[0]) == {"run", "cell", "seed", "step", "metric", "value"}
    losses = [r for r in rows if r["metric"] == "loss"]
    assert [int(r["step"]) for r in losses] == list(range(1, 11))
    assert any(r["metric"] == "val_loss" for r in rows)

    assert main(["evaluate", run_id, "--runs-dir", str(runs_dir), "--json"]) == 0
    scores = _json_out(capsys)
    assert scores["split"] == "val" and scores["sequences"] == 10  # val_fraction 0.1 of 96
    # the data's own units: the waves have amplitude 3, so MSE is ~9x the normalised loss
    ratio = scores["loss"] / scores["normalized_loss"]
    assert 3 < ratio < 30, ratio

    pred = tmp_path / "pred.h5"
    assert main(["predict", run_id, "--runs-dir", str(runs_dir), "--data", str(waves),
                 "--out", str(pred)]) == 0
    with h5py.File(pred, "r") as f:
        outputs = f["outputs"][()]
        assert outputs.shape == (96, 6, 1)
        assert f.attrs["run_id"] == run_id
    assert 7 < float(np.mean(outputs)) < 13  # around the data's mean of 10, not 0


def test_evaluate_tokens_reports_accuracies(tmp_path, runs_dir, capsys):
    data = write_reverse(tmp_path / "reverse.h5")
    result = _train(capsys, "--data", str(data), *TINY, "--steps", "5", "--runs-dir",
                    str(runs_dir))
    assert main(["evaluate", result["run_id"], "--runs-dir", str(runs_dir), "--json"]) == 0
    scores = _json_out(capsys)
    assert 0 <= scores["token_accuracy"] <= 1 and 0 <= scores["sequence_accuracy"] <= 1
    pred = tmp_path / "pred.h5"
    assert main(["predict", result["run_id"], "--runs-dir", str(runs_dir), "--data", str(data),
                 "--out", str(pred), "--split", "val"]) == 0
    with h5py.File(pred, "r") as f:
        assert f["outputs"].dtype == np.int64 and f["outputs"].shape == (10, 6)


def test_train_resume_of_a_stopped_run_matches_a_straight_run(waves, runs_dir, capsys):
    config = tiny_config(waves, steps=13, teacher_forcing=0.5)
    run_dir = record_run(config, runs_dir, stop_at=6)
    assert open_run(run_dir).status == "stopped"
    result = _train(capsys, "--resume", run_dir.name, "--runs-dir", str(runs_dir), "--no-progress")
    assert result["status"] == "completed" and result["steps"] == 13
    assert result["run_id"] == run_dir.name  # the same run, in the same folder
    with open_dataset(config) as dataset:
        straight = Trainer(config, dataset, [], run_id="straight", checkpointer=None)
        straight.run()
    resumed = open_run(run_dir).load_checkpoint("latest")["model"]
    assert state_equal(resumed, straight.model.state_dict())
    assert [s.step for s in open_run(run_dir).step_metrics()] == list(range(1, 14))
    assert main(["train", "--resume", run_dir.name, "--runs-dir", str(runs_dir)]) == 2
    assert "completed" in capsys.readouterr().err  # a finished run is not resumed


def test_ctrl_c_stops_cleanly_with_a_checkpoint(waves, runs_dir, capsys):
    import os
    import signal
    import threading
    import time

    def interrupt_when_training() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for status in runs_dir.glob("*/status.json"):
                try:
                    if json.loads(status.read_text()).get("step", 0) >= 3:
                        os.kill(os.getpid(), signal.SIGINT)
                        return
                except (OSError, ValueError):
                    pass
            time.sleep(0.02)

    watcher = threading.Thread(target=interrupt_when_training, daemon=True)
    watcher.start()
    result = _train(capsys, "--data", str(waves), *TINY, "--steps", "1000000", "--runs-dir",
                    str(runs_dir))
    watcher.join(timeout=5)
    assert result["status"] == "stopped"
    run = open_run(result["run_dir"])
    assert run.load_checkpoint("latest")["position"]["step"] == result["steps"]


@pytest.fixture(scope="module")
def waves_run(waves, tmp_path_factory):
    """A recorded tiny run on the sine-like waves (1 feature in, 1 out): (runs_dir, run_id)."""
    runs = tmp_path_factory.mktemp("runs")
    config = tiny_config(waves, steps=3)
    run_dir = record_run(config, runs)
    return runs, run_dir.name


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:"), err
    return err[0]


@pytest.mark.parametrize("command", ["export", "predict"])
def test_writing_onto_a_folder_exits_2_naming_it(waves, waves_run, tmp_path, capsys, command):
    runs, run_id = waves_run
    folder = tmp_path / "somedir"
    folder.mkdir()
    args = {"export": ["export", run_id, "--csv", str(folder)],
            "predict": ["predict", run_id, "--data", str(waves), "--out", str(folder)]}[command]
    assert main([*args, "--runs-dir", str(runs)]) == 2
    line = _one_error_line(capsys)
    assert str(folder) in line and "folder" in line
    assert folder.is_dir() and not any(folder.iterdir())


def test_os_errors_and_memory_errors_are_one_line_exit_2(capsys):
    from workbench.cli.common import run_handler

    def denied(_args):
        raise PermissionError(13, "Permission denied", "/srv/locked.csv")

    assert run_handler(denied, None) == 2
    assert _one_error_line(capsys) == "error: cannot read or write /srv/locked.csv: Permission denied"

    def is_a_folder(_args):
        raise IsADirectoryError(21, "Is a directory", "/tmp/somedir")

    assert run_handler(is_a_folder, None) == 2
    assert "/tmp/somedir: Is a directory" in _one_error_line(capsys)

    def huge(_args):
        raise MemoryError("Unable to allocate 745 GiB for an array")

    assert run_handler(huge, None) == 2
    assert "out of memory: Unable to allocate 745 GiB" in _one_error_line(capsys)


@pytest.fixture(scope="module")
def reverse_run(tmp_path_factory):
    """A recorded tiny token run (vocabulary of 8): (runs_dir, run_id, data)."""
    runs = tmp_path_factory.mktemp("runs")
    data = write_reverse(tmp_path_factory.mktemp("data") / "reverse.h5")
    config = tiny_config(data, steps=3)
    run_dir = record_run(config, runs)
    return runs, run_dir.name, data


@pytest.fixture(scope="module")
def other_files(tmp_path_factory):
    """Files that do not fit the runs above: copy tokens, 2-feature sine, a bigger vocabulary."""
    from workbench.tasks import generate

    folder = tmp_path_factory.mktemp("other")
    return {
        "copy": generate("copy", folder / "copy.h5", n=20, length=3, delay=2),
        "sine2": generate("sine", folder / "sine2.h5", n=20, input_steps=6, target_steps=3,
                          features=2),
        "reverse12": generate("reverse", folder / "reverse12.h5", n=20, length=5, vocab=9),
    }


@pytest.mark.parametrize(
    ("run", "command", "file", "words"),
    [("waves", "predict", "copy", ["inputs", "tokens with a vocabulary of 12",
                                   "continuous values with 1 feature per step"]),
     ("waves", "evaluate", "sine2", ["inputs", "2 features per step", "1 feature per step"]),
     ("reverse", "evaluate", "reverse12", ["inputs", "vocabulary of 12", "vocabulary of 8"]),
     ("reverse", "predict", "sine2", ["inputs", "2 features", "vocabulary of 8"])],
)
def test_data_that_does_not_fit_the_run_exits_2_naming_file_side_and_shapes(
    waves_run, reverse_run, other_files, tmp_path, capsys, run, command, file, words
):
    runs, run_id = (waves_run if run == "waves" else reverse_run[:2])
    path = other_files[file]
    args = [command, run_id, "--runs-dir", str(runs), "--data", str(path)]
    if command == "predict":
        args += ["--out", str(tmp_path / "pred.h5")]
    assert main(args) == 2
    line = _one_error_line(capsys)
    assert str(path) in line and "do not fit the run's model" in line
    for word in words:
        assert word in line, (word, line)
    assert not (tmp_path / "pred.h5").exists()


def test_resuming_on_a_file_that_does_not_fit_exits_2(waves, other_files, runs_dir, capsys):
    config = tiny_config(waves, steps=8)
    run_dir = record_run(config, runs_dir, stop_at=2)
    assert main(["train", "--resume", run_dir.name, "--runs-dir", str(runs_dir),
                 "--data", str(other_files["sine2"]), "--no-progress"]) == 2
    line = _one_error_line(capsys)
    assert str(other_files["sine2"]) in line and "2 features per step" in line


def test_resume_with_other_threads_warns_that_it_is_no_longer_bit_identical(waves, runs_dir,
                                                                           capsys):
    config = tiny_config(waves, steps=6, threads=1)
    run_dir = record_run(config, runs_dir, stop_at=2)
    assert main(["train", "--resume", run_dir.name, "--runs-dir", str(runs_dir), "--threads", "2",
                 "--no-progress", "--json"]) == 0
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "used 1" in warnings[0] and "bit-identical" in warnings[0]
    assert json.loads(captured.out.strip().splitlines()[-1])["threads"] == 2
    assert "warning" in open_run(run_dir).meta["segments"][-1]


def test_a_model_too_big_for_memory_is_refused_before_it_is_built(waves, runs_dir, capsys,
                                                                 monkeypatch):
    from workbench import memory

    monkeypatch.setattr(memory, "available_memory", lambda: 16 * 10**9)
    assert main(["train", "--data", str(waves), "--cell", "lstm", "--hidden", "30000",
                 "--steps", "1", "--no-progress", "--runs-dir", str(runs_dir)]) == 2
    line = _one_error_line(capsys)
    # encoder and decoder: 4 x 30000 x (1 + 30000) weights + 8 x 30000 biases each, a head
    # of 30001: 7.2e9 parameters, 16 bytes each with gradients and Adam's two moments, and
    # the probe's float64 copy of the model (8 bytes each) the largest activations
    for words in ("hidden = 30000", "7,200,750,002 parameters", "about 174 GB",
                  "28.8 GB of weights", "57.6 GB for Adam's two moments",
                  "GB of activations", "16 GB of memory available"):
        assert words in line, (words, line)
    assert list_runs(runs_dir) == []
