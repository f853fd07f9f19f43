"""The CLI's compare and comparisons, run in-process."""

from __future__ import annotations

import csv
import json

import pytest

from tests.workbench.train_helpers import write_reverse, write_waves
from workbench.cli import main
from workbench.compare import COLUMNS
from workbench.runs import list_runs

TINY = ["--hidden", "8", "--batch", "16", "--lr", "0.01", "--probe-batch", "8", "--steps", "6",
        "--threads", "1", "--val-fraction", "0.2", "--no-progress"]


@pytest.fixture(scope="module")
def reverse(tmp_path_factory):
    return write_reverse(tmp_path_factory.mktemp("data") / "reverse.h5")


def _last_json(capsys) -> object:
    out = capsys.readouterr().out.strip().splitlines()
    return json.loads(out[-1], parse_constant=lambda c: pytest.fail(f"JSON holds {c}"))


def test_compare_json_has_every_cell_in_the_order_given(reverse, tmp_path, capsys):
    runs_dir = tmp_path / "runs"
    assert main(["compare", "--data", str(reverse), "--cells", "gru,rnn-tanh", "--seeds", "2",
                 "--seed", "4", *TINY, "--runs-dir", str(runs_dir), "--json"]) == 0
    result = _last_json(capsys)
    assert result["comparison_id"] and result["seeds"] == [4, 5]
    assert [c["cell"] for c in result["cells"]] == ["gru", "rnn-tanh"]
    for entry in result["cells"]:
        assert len(entry["run_ids"]) == 2 and entry["parameters"] > 0
        for name in COLUMNS:
            assert isinstance(entry[f"{name}_mean"], float), name
            assert isinstance(entry[f"{name}_std"], float), name
    assert len(list_runs(runs_dir)) == 4

    assert main(["compare", "--show", result["comparison_id"], "--runs-dir", str(runs_dir),
                 "--json"]) == 0
    assert _last_json(capsys)["cells"] == result["cells"]
    assert main(["compare", "--show", result["comparison_id"], "--runs-dir", str(runs_dir),
                 "--json", "--profiles"]) == 0
    profiled = _last_json(capsys)["cells"][0]
    assert len(profiled["encoder_grad_norms_mean"]) == 5
    assert len(profiled["decoder_grad_norms_mean"]) == 6
    assert main(["comparisons", "--runs-dir", str(runs_dir), "--json"]) == 0
    listed = _last_json(capsys)
    assert [c["comparison_id"] for c in listed] == [result["comparison_id"]]
    assert listed[0]["runs"] == 4 and listed[0]["status"] == "completed"


def test_continuous_data_gives_null_not_nan(tmp_path, capsys):
    waves = write_waves(tmp_path / "waves.h5")
    runs_dir = tmp_path / "runs"
    assert main(["compare", "--data", str(waves), "--cells", "lstm", "--seeds", "1", *TINY,
                 "--runs-dir", str(runs_dir), "--json", "--csv", str(tmp_path / "table.csv"),
                 "--metrics-csv", str(tmp_path / "metrics.csv")]) == 0
    entry = _last_json(capsys)["cells"][0]
    assert entry["token_accuracy_mean"] is None and entry["token_accuracy_std"] is None
    assert entry["best_val_loss_std"] is None  # one seed: no spread
    assert entry["best_val_loss_mean"] > 0
    with open(tmp_path / "table.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["cell"] for r in rows] == ["lstm"] and rows[0]["token_accuracy_mean"] == ""
    with open(tmp_path / "metrics.csv", newline="") as handle:
        assert next(csv.reader(handle)) == ["run", "cell", "seed", "step", "metric", "value"]


def test_text_table_and_listing(reverse, tmp_path, capsys):
    runs_dir = tmp_path / "runs"
    assert main(["compare", "--data", str(reverse), "--cells", "rnn-tanh", "--seeds", "1",
                 *TINY, "--runs-dir", str(runs_dir)]) == 0
    out = capsys.readouterr().out
    assert "rnn-tanh" in out and "best val loss" in out and "G_1/G_T" in out
    assert main(["comparisons", "--runs-dir", str(runs_dir)]) == 0
    assert "completed" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--seeds", "2"], "--cells"),
    (["--cells", "lstm,transformer"], "cell"),
    (["--cells", "lstm", "--cell", "gru"], "--cells"),
    (["--cells", "lstm", "--seeds", "0"], "seeds"),
    (["--cells", "lstm", "--hidden", "0"], "hidden"),
])
def test_user_mistakes_exit_2_with_one_line(reverse, tmp_path, capsys, args, message):
    assert main(["compare", "--data", str(reverse), *args, "--runs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err and "Traceback" not in err
    assert not list_runs(tmp_path)


def test_show_of_an_unknown_comparison_exits_2(tmp_path, capsys):
    assert main(["compare", "--show", "nope", "--runs-dir", str(tmp_path)]) == 2
    assert "no comparison" in capsys.readouterr().err
