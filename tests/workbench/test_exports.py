"""Exports: the tidy metrics CSV of several runs, the table CSV, and a config that re-runs."""

from __future__ import annotations

import csv
import json

import pytest

from tests.workbench.train_helpers import record_run, tiny_config, write_waves
from workbench import exports
from workbench.cli import main
from workbench.compare import comparison_rows
from workbench.config import RunConfig
from workbench.runs import open_run


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two recorded tiny runs (gru seed 0, lstm seed 1)."""
    data = write_waves(tmp_path_factory.mktemp("data") / "waves.h5")
    runs_dir = tmp_path_factory.mktemp("runs")
    runs = []
    for cell, seed in (("gru", 0), ("lstm", 1)):
        config = tiny_config(data, cell=cell, seed=seed, steps=6)
        runs.append(open_run(record_run(config, runs_dir)))
    return runs


def _read(path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def test_metrics_csv_is_tidy_over_every_run(two_runs, tmp_path):
    out = tmp_path / "metrics.csv"
    count = exports.write_metrics_csv([two_runs[0], two_runs[1].run_id], out,
                                      runs_dir=two_runs[1].path.parent)
    rows = _read(out)
    assert rows[0] == ["run", "cell", "seed", "step", "metric", "value"]
    assert len(rows) == count + 1
    assert {(r[0], r[1], r[2]) for r in rows[1:]} == {
        (two_runs[0].run_id, "gru", "0"), (two_runs[1].run_id, "lstm", "1")}
    losses = [float(r[5]) for r in rows[1:] if r[0] == two_runs[1].run_id and r[4] == "loss"]
    assert losses == [s.loss for s in two_runs[1].step_metrics()]  # exact (repr round trip)
    metrics = {r[4] for r in rows[1:]}
    assert {"loss", "grad_norm", "val_loss", "val_loss_free_running", "epoch"} <= metrics


def test_one_run_gives_what_the_single_run_export_writes(two_runs, tmp_path, capsys):
    ours, theirs = tmp_path / "ours.csv", tmp_path / "theirs.csv"
    exports.write_metrics_csv([two_runs[0]], ours)
    assert main(["export", str(two_runs[0].path), "--csv", str(theirs)]) == 0
    assert _read(ours) == _read(theirs)


def test_table_csv_has_mean_and_std_columns(two_runs, tmp_path):
    out = tmp_path / "table.csv"
    exports.write_table_csv(comparison_rows(two_runs), out)
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["cell"] for r in rows] == ["gru", "lstm"]
    assert float(rows[0]["best_val_loss_mean"]) > 0 and rows[0]["best_val_loss_std"] == ""
    assert rows[1]["run_ids"] == two_runs[1].run_id and rows[1]["seeds"] == "1"


def test_exported_toml_re_runs_to_the_same_first_loss(two_runs, tmp_path, capsys):
    run = two_runs[1]
    path = exports.export_config(run, tmp_path / "elsewhere" / "run.toml")
    assert RunConfig.load(path) == run.config()
    assert exports.config_toml(run) == path.read_text(encoding="utf-8")
    runs_dir = tmp_path / "runs"
    assert main(["train", "--config", str(path), "--steps", "2", "--runs-dir", str(runs_dir),
                 "--no-progress", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    again = open_run(summary["run_id"], runs_dir)
    assert again.cell == "lstm"
    assert again.step_metrics()[0].loss == run.step_metrics()[0].loss
