"""Honest numbers through the CLI, on real files and real tiny runs: units in every table,
baselines recorded at the start and shown beside every score, the best checkpoint by
`best_by`, the training loss over an epoch, and predict's rows and T_out."""

from __future__ import annotations

import json
import math

import h5py
import numpy as np
import pytest

from tests.workbench.baseline_helpers import write_weekly
from tests.workbench.train_helpers import (
    open_dataset,
    record_run,
    tiny_config,
    write_reverse,
    write_waves,
)
from workbench.cli import main
from workbench.runs import open_run

TINY = ["--cell", "gru", "--hidden", "8", "--batch", "32", "--lr", "0.01", "--probe-batch", "8",
        "--threads", "1", "--no-progress"]


def _json(capsys) -> dict:
    out = capsys.readouterr().out.strip().splitlines()
    return json.loads(out[-1], parse_constant=lambda c: pytest.fail(f"JSON holds {c}"))


@pytest.fixture(scope="module")
def weekly(tmp_path_factory):
    """A run of a tiny GRU on the weekly series (no period attribute: it is detected),
    12 steps of 5-batch epochs: (runs_dir, train --json summary)."""
    folder = tmp_path_factory.mktemp("weekly")
    data = write_weekly(folder / "weekly.h5")
    runs_dir = folder / "runs"
    code = main(["train", "--data", str(data), *TINY, "--steps", "12", "--runs-dir",
                 str(runs_dir), "--json"])
    return runs_dir, code


def _summary(weekly, capsys) -> dict:
    runs_dir, code = weekly
    assert code == 0
    (run_dir,) = runs_dir.iterdir()
    assert main(["show", run_dir.name, "--runs-dir", str(runs_dir), "--json"]) == 0
    return _json(capsys)


def test_the_weekly_model_is_told_it_does_not_beat_seasonal_persistence(weekly, capsys):
    summary = _summary(weekly, capsys)
    runs_dir = weekly[0]
    recorded = json.loads((runs_dir / summary["run_id"] / "run.json").read_text())
    record = recorded["dataset"]["baselines"]  # recorded when the run started
    seasonal = record["scores"]["seasonal_persistence"]
    assert seasonal["period"] == 52 and "detected" in seasonal["period_from"]
    assert summary["baselines"] == record
    assert summary["beats"]["seasonal_persistence"] is False
    assert any("does not beat seasonal persistence" in n for n in summary["notes"])

    assert main(["show", summary["run_id"], "--runs-dir", str(runs_dir)]) == 0
    text = capsys.readouterr().out
    assert "note: the model does not beat seasonal persistence" in text
    assert "MSE, normalised" in text and "MSE, data units²" in text

    assert main(["evaluate", summary["run_id"], "--runs-dir", str(runs_dir), "--json"]) == 0
    scores = _json(capsys)
    assert set(scores["baselines"]) == {"persistence", "seasonal_persistence", "mean"}
    for name, value in scores["baselines"].items():  # data units, as its loss; the record's
        assert value == pytest.approx(record["scores"][name]["data"])
        assert scores["normalized_baselines"][name] == pytest.approx(
            record["scores"][name]["normalized"])
    assert scores["units"] == "data (MSE in the targets' own units)"
    assert scores["beats"]["seasonal_persistence"] is False
    assert scores["loss_free_running"] >= scores["baselines"]["seasonal_persistence"]
    assert isinstance(scores["beats_persistence"], bool)
    assert scores["best_by"] == "val_free_running"

    # another split: computed there, over all of it, in the same units
    assert main(["evaluate", summary["run_id"], "--runs-dir", str(runs_dir), "--split",
                 "train", "--json"]) == 0
    train = _json(capsys)
    assert train["baselines_sequences"] == train["sequences"] == 140
    assert train["baselines"]["persistence"] != scores["baselines"]["persistence"]


def test_train_loss_is_the_mean_of_an_epochs_worth_of_steps(weekly, capsys):
    summary = _summary(weekly, capsys)
    steps = open_run(summary["run_dir"]).step_metrics()
    # 5 batches an epoch: epochs 1-2 whole, epoch 3 ran 2 steps: the last 5 steps count
    assert [s.epoch for s in steps].count(3) == 2
    assert summary["train_loss"] == pytest.approx(np.mean([s.loss for s in steps[-5:]]))
    assert summary["train_loss"] != pytest.approx(steps[-1].loss)
    assert "last 5 steps" in summary["train_loss_over"]
    factor = float(json.loads((open_run(summary["run_dir"]).path / "run.json").read_text())
                   ["normalization"]["y_std"][0]) ** 2
    assert summary["data_units"]["train_loss"] == pytest.approx(summary["train_loss"] * factor)
    assert summary["data_units"]["val_loss"] == pytest.approx(summary["val_loss"] * factor)


def test_runs_lists_the_unit_and_the_data_units(weekly, capsys):
    summary = _summary(weekly, capsys)
    runs_dir = weekly[0]
    assert main(["runs", "--runs-dir", str(runs_dir), "--json"]) == 0
    (line,) = _json(capsys)
    assert line["loss_units"].startswith("normalised")
    assert line["best_val_loss_data_units"] == pytest.approx(
        summary["data_units"]["best_val_loss"])
    assert main(["runs", "--runs-dir", str(runs_dir)]) == 0
    text = capsys.readouterr().out
    assert "MSE, normalised" in text and "in data units²" in text


@pytest.mark.parametrize("best_by", ["val_free_running", "val_teacher_forced"])
def test_the_best_checkpoint_is_the_epoch_best_by_says(tmp_path, best_by):
    # a run whose teacher-forced and free-running minima fall in different epochs
    data = write_waves(tmp_path / "waves.h5")
    config = tiny_config(data, steps=None, epochs=5, lr=0.3, seed=2, best_by=best_by)
    run = open_run(record_run(config, tmp_path / "runs"))
    epochs = run.epoch_metrics()
    forced = min(epochs, key=lambda e: e.val_loss)
    free = min(epochs, key=lambda e: e.val_loss_free_running)
    assert forced.step != free.step
    chosen = free if best_by == "val_free_running" else forced
    assert run.load_checkpoint("best")["position"]["step"] == chosen.step
    assert run.config().best_by == best_by  # recorded
    summary = run.summary()
    assert summary["best_by"] == best_by and summary["best"]["step"] == chosen.step


def test_an_old_run_resumed_keeps_choosing_by_the_teacher_forced_loss(tmp_path, capsys):
    data = write_waves(tmp_path / "waves.h5")
    run_dir = record_run(tiny_config(data, steps=8), tmp_path / "runs", stop_at=4)
    toml = run_dir / "config.toml"  # as a version before best_by wrote it
    toml.write_text("\n".join(line for line in toml.read_text().splitlines()
                              if not line.startswith("best_by")) + "\n")
    assert open_run(run_dir).summary()["best_by"] == "val_teacher_forced"
    assert main(["train", "--resume", run_dir.name, "--runs-dir", str(tmp_path / "runs"),
                 "--no-progress", "--json"]) == 0
    assert _json(capsys)["best_by"] == "val_teacher_forced"
    assert open_run(run_dir).config().best_by == "val_teacher_forced"


def test_predict_records_each_samples_row_and_that_outputs_are_t_out_long(tmp_path, capsys):
    data = write_waves(tmp_path / "waves.h5")
    config = tiny_config(data, steps=3)
    run_dir = record_run(config, tmp_path / "runs")
    out = tmp_path / "pred.h5"
    assert main(["predict", str(run_dir), "--data", str(data), "--out", str(out)]) == 0
    with h5py.File(out, "r") as f, h5py.File(data, "r") as source, open_dataset(config) as d:
        assert f.attrs["generated_steps"] == 6 and "T_out = 6" in f.attrs["outputs_are"]
        assert json.loads(f.attrs["split_groups"]) == {"train": "all", "val": "all"}
        rows, indices, splits = f["rows"][()], f["indices"][()], f["split"].asstr()[()]
        assert sorted(rows.tolist()) == list(range(96))  # every row once, train and val
        for name in ("train", "val"):
            mine = splits == name
            served = d.split(name).read(indices[mine]).x
            np.testing.assert_array_equal(source["inputs"][()][rows[mine]], served)


def test_token_runs_report_chance_and_the_majority_token(tmp_path, capsys):
    data = write_reverse(tmp_path / "reverse.h5")
    runs_dir = tmp_path / "runs"
    assert main(["train", "--data", str(data), *TINY, "--steps", "3", "--runs-dir",
                 str(runs_dir), "--json"]) == 0
    summary = _json(capsys)
    assert summary["best_by"] == "val_teacher_forced"  # the documented default for tokens
    assert summary["loss_units"] == "cross-entropy" and summary["data_units"] is None
    assert main(["evaluate", summary["run_id"], "--runs-dir", str(runs_dir), "--json"]) == 0
    scores = _json(capsys)
    assert scores["baselines"]["chance"] == pytest.approx(math.log(8))  # 8 target ids
    assert scores["baseline_token_accuracy"]["chance"] == pytest.approx(1 / 8)
    assert 0 < scores["baseline_token_accuracy"]["majority"] < 1
    assert scores["baselines"]["majority"] < scores["baselines"]["chance"]
    assert set(scores["beats"]) == {"chance", "majority"}


def test_the_comparison_table_has_the_baselines_and_the_note(tmp_path, capsys):
    data = write_weekly(tmp_path / "weekly.h5", period_attr=True)
    runs_dir = tmp_path / "runs"
    assert main(["compare", "--data", str(data), "--cells", "gru", "--seeds", "1", *TINY[2:],
                 "--steps", "4", "--runs-dir", str(runs_dir), "--json"]) == 0
    (entry,) = _json(capsys)["cells"]
    (run_id,) = entry["run_ids"]
    record = open_run(run_id, runs_dir).summary()["baselines"]
    assert "period attribute" in record["scores"]["seasonal_persistence"]["period_from"]
    for name in ("persistence", "seasonal_persistence", "mean"):
        assert entry[f"{name}_mean"] == pytest.approx(record["scores"][name]["normalized"])
        assert entry[f"{name}_data_mean"] == pytest.approx(record["scores"][name]["data"])
    assert entry["beats"]["seasonal_persistence"] is False and entry["best_by"] == "val_free_running"
    (comparison,) = (runs_dir / "_comparisons").glob("*.json")
    assert main(["compare", "--show", comparison.stem, "--runs-dir", str(runs_dir)]) == 0
    text = capsys.readouterr().out
    assert "baseline: seasonal persistence [MSE, data units²]" in text
    assert "[MSE, normalised]" in text and "best epoch by" in text
    assert "note: gru: the model does not beat seasonal persistence" in text
