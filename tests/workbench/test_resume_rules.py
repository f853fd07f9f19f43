"""`train --resume`: what may change and what may not, said by name; the changes in the
run's history; a completed run extended; the data compared by its fingerprint."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.workbench.fault_helpers import checksums
from tests.workbench.train_helpers import record_run, tiny_config, write_waves
from workbench.cli import main
from workbench.errors import ConfigError
from workbench.run_service import RESUME_CHANGES, RunService
from workbench.runs import load_checkpoint, open_run, read_jsonl

TINY = ["--cell", "gru", "--hidden", "8", "--batch", "16", "--lr", "0.01", "--probe-batch", "8",
        "--threads", "1", "--no-progress"]


@pytest.fixture(scope="module")
def waves(tmp_path_factory):
    return write_waves(tmp_path_factory.mktemp("data") / "waves.h5")


@pytest.fixture(scope="module")
def stopped(waves, tmp_path_factory):
    """A run stopped at step 4 of 12: (runs_dir, run_dir), never resumed (tests copy it)."""
    runs = tmp_path_factory.mktemp("runs")
    return runs, record_run(tiny_config(waves, steps=12), runs, stop_at=4)


@pytest.fixture()
def run_copy(stopped, tmp_path):
    """A fresh copy of the stopped run to resume: (runs_dir, run_dir)."""
    runs = tmp_path / "runs"
    runs.mkdir()
    target = runs / stopped[1].name
    shutil.copytree(stopped[1], target)
    return runs, target


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:"), err
    return err[0]


@pytest.mark.parametrize("flags", [
    ["--cell", "lstm"], ["--hidden", "16"], ["--layers", "2"], ["--embedding", "8"],
    ["--dropout", "0.1"], ["--inputs", "/inputs", "--targets", "/targets"], ["--split-seed", "3"],
    ["--val-fraction", "0.3"], ["--batch", "8"], ["--seed", "5"], ["--optimizer", "sgd"],
    ["--teacher-forcing", "0.5"]])
def test_a_flag_that_cannot_change_on_resume_is_refused_by_name(stopped, capsys, flags):
    runs, run_dir = stopped
    before = checksums(run_dir)
    assert main(["train", "--resume", run_dir.name, "--runs-dir", str(runs), "--lr", "0.02",
                 *flags]) == 2
    line = _one_error_line(capsys)
    assert f"{flags[0]} cannot change on resume" in line and "--steps" in line, line
    assert checksums(run_dir) == before


def test_allow_data_change_and_config_are_refused_where_they_mean_nothing(waves, stopped,
                                                                          capsys):
    runs, run_dir = stopped
    assert main(["train", "--data", str(waves), "--allow-data-change", "--runs-dir",
                 str(runs)]) == 2
    assert "--allow-data-change goes with --resume" in _one_error_line(capsys)
    assert main(["train", "--resume", run_dir.name, "--config", "x.toml", "--runs-dir",
                 str(runs)]) == 2
    assert "--config cannot be given with --resume" in _one_error_line(capsys)
    assert sorted(p.name for p in runs.iterdir()) == [run_dir.name]


def test_the_service_refuses_init_and_any_other_unlisted_field(stopped):
    runs, run_dir = stopped
    service = RunService(runs)
    for field in ("recurrent_init", "recurrent_radius", "forget_bias", "momentum"):
        with pytest.raises(ConfigError, match=f"{field} cannot change on resume"):
            service.resume(run_dir.name, changes={field: 1.0})
    assert {"steps", "epochs", "lr", "clip", "patience", "probe_every", "checkpoint_seconds",
            "threads", "device", "data", "val_subset"} <= set(RESUME_CHANGES)


def test_the_flags_that_may_change_are_applied_printed_and_recorded(run_copy, capsys):
    runs, run_dir = run_copy
    assert main(["train", "--resume", run_dir.name, "--runs-dir", str(runs), "--lr", "0.003",
                 "--clip", "1.5", "--steps", "9", "--probe-every", "2", "--name", "slower",
                 "--no-progress", "--json"]) == 0
    captured = capsys.readouterr()
    note = [line for line in captured.err.splitlines() if line.startswith("resumed with")]
    assert note == ["resumed with steps 12 -> 9, lr 0.01 -> 0.003, clip off -> 1.5, "
                    "probe_every off -> 2"]
    assert json.loads(captured.out.splitlines()[-1])["steps"] == 9
    run = open_run(run_dir)
    steps = run.step_metrics()
    assert [s.learning_rate for s in steps] == [0.01] * 4 + [0.003] * 5  # the optimizer's
    assert load_checkpoint(run.checkpoint_path())["optimizer"]["param_groups"][0]["lr"] == 0.003
    (resumed,) = [r for r in read_jsonl(run_dir / "metrics.jsonl") if r["type"] == "resumed"]
    assert resumed["step"] == 4 and resumed["changes"]["lr"] == [0.01, 0.003]
    assert run.meta["segments"][-1]["changes"]["clip"] == [None, 1.5]
    config = run.config()
    assert (config.lr, config.clip, config.probe_every, config.steps) == (0.003, 1.5, 2, 9)
    assert run.name == "slower"
    assert [s.step for s in steps] == list(range(1, 10))


def test_a_completed_run_goes_on_with_a_larger_budget_only(run_copy, capsys):
    runs, run_dir = run_copy
    assert RunService(runs).resume(run_dir.name).run().status == "completed"  # to 12
    capsys.readouterr()
    assert main(["train", "--resume", run_dir.name, "--runs-dir", str(runs)]) == 2
    assert "completed (12 steps" in _one_error_line(capsys)
    assert main(["train", "--resume", run_dir.name, "--runs-dir", str(runs), "--steps",
                 "12"]) == 2
    assert "give a larger --steps or --epochs" in _one_error_line(capsys)
    assert main(["train", "--resume", run_dir.name, "--runs-dir", str(runs), "--steps", "16",
                 "--no-progress", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["status"] == "completed"
    run = open_run(run_dir)
    assert [s.step for s in run.step_metrics()] == list(range(1, 17))
    assert run.load_checkpoint()["position"]["step"] == 16


# --- 9. the data's fingerprint ---------------------------------------------------------------


def test_a_moved_copy_of_the_data_resumes_and_other_content_is_refused_showing_both(
        waves, run_copy, tmp_path, capsys):
    runs, run_dir = run_copy
    recorded = open_run(run_dir).meta["data"]
    assert recorded["path"] == str(waves) and recorded["arrays"] == {
        "/inputs": "96x12x1 <f4", "/targets": "96x6x1 <f4"}
    other = write_waves(tmp_path / "other.h5", seed=1)  # the same shapes, other values
    before = checksums(run_dir)
    assert main(["train", "--resume", run_dir.name, "--runs-dir", str(runs), "--data",
                 str(other)]) == 2
    line = _one_error_line(capsys)
    now = {"hash": None}
    from workbench.datasets import SequenceDataset

    with SequenceDataset.open(other) as dataset:
        now = dataset.fingerprint()
    assert "the data differs from what run" in line and "--allow-data-change" in line
    assert recorded["hash"] in line and now["hash"] in line and str(other) in line
    assert checksums(run_dir) == before

    moved = tmp_path / "moved" / "waves.h5"
    moved.parent.mkdir()
    shutil.copy(waves, moved)
    assert main(["train", "--resume", run_dir.name, "--runs-dir", str(runs), "--data",
                 str(moved), "--steps", "6", "--no-progress"]) == 0
    capsys.readouterr()
    meta = open_run(run_dir).meta
    assert meta["data"]["path"] == str(moved) and meta["data"]["hash"] == recorded["hash"]
    assert "data_changed" not in meta["segments"][-1]

    assert main(["train", "--resume", run_dir.name, "--runs-dir", str(runs), "--data",
                 str(other), "--steps", "8", "--allow-data-change", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "the data changed (allowed)" in err and now["hash"] in err
    meta = open_run(run_dir).meta
    change = meta["segments"][-1]["data_changed"]
    assert change["from"]["hash"] == recorded["hash"] and change["to"]["hash"] == now["hash"]
    (record,) = [r for r in read_jsonl(run_dir / "metrics.jsonl")
                 if r["type"] == "resumed" and "data_changed" in r]
    assert record["step"] == 6 and record["data_changed"]["to"]["path"] == str(other)
    assert open_run(run_dir).status == "completed"


def test_a_run_stopped_at_its_last_step_resumes_to_its_validation_not_one_step_more(
        waves, tmp_path, capsys):
    run_dir = record_run(tiny_config(waves, steps=6), tmp_path, stop_at=6)  # stopped validating
    assert open_run(run_dir).status == "stopped" and open_run(run_dir).epoch_metrics()[-1].step == 5
    assert main(["train", "--resume", run_dir.name, "--runs-dir", str(tmp_path), "--steps",
                 "4"]) == 2
    assert "has trained 6 steps: --steps 4 would not train it further" in _one_error_line(capsys)
    assert main(["train", "--resume", run_dir.name, "--runs-dir", str(tmp_path),
                 "--no-progress"]) == 0
    run = open_run(run_dir)
    assert run.status == "completed" and [s.step for s in run.step_metrics()] == list(range(1, 7))
    assert run.epoch_metrics()[-1].step == 6


def test_a_token_files_fingerprint_is_the_same_at_every_open(tmp_path):
    """Its vocabulary (variable-length strings) is hashed by value: hashing the object
    array's memory (pointers) made every open a different file, and a resume refused."""
    from workbench.datasets import SequenceDataset
    from workbench.tasks import generate

    path = generate("reverse", tmp_path / "rev.h5", n=40, seed=0, length=4)
    prints = []
    for _ in range(2):
        with SequenceDataset.open(str(path)) as dataset:
            prints.append(dataset.fingerprint()["hash"])
    assert prints[0] == prints[1]
