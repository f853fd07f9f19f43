"""Issue 10, failure 6: outputs never overwrite anything silently.

`predict --out X.h5` with `--data X.h5` replaced the dataset, `export --csv
RUN/metrics.jsonl` destroyed the run's metrics and `--out RUN/checkpoints/best.pt`
a checkpoint. Now every command that writes a file refuses an existing file unless
--force, and even with --force the command's own input and any file inside a run
folder: exit 2, one line, and the files are byte for byte what they were.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from tests.workbench.train_helpers import record_run, tiny_config, write_waves
from workbench.cli import main
from workbench.errors import OutputError
from workbench.outputs import check_output, run_folder_of

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A finished tiny run (with best and latest checkpoints) and its dataset."""
    folder = tmp_path_factory.mktemp("outputs")
    data = write_waves(folder / "waves.h5", n=48)
    runs_dir = folder / "runs"
    run_dir = record_run(tiny_config(data, steps=4), runs_dir)
    assert (run_dir / "checkpoints" / "best.pt").is_file()
    return {"data": data, "runs_dir": runs_dir, "run_dir": run_dir}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def refused(capsys, argv: list[str], *protected: Path) -> str:
    """Run the CLI; assert exit 2, one line on stderr, no traceback, files untouched."""
    before = {p: digest(p) for p in protected}
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert {p: digest(p) for p in protected} == before
    return err.strip()


def run_args(recorded) -> list[str]:
    return [recorded["run_dir"].name, "--runs-dir", str(recorded["runs_dir"])]


def test_predict_never_replaces_its_own_dataset(recorded, capsys):
    data = recorded["data"]
    for spelling in (str(data), str(data.parent / "." / data.name)):
        for force in ([], ["--force"]):
            line = refused(capsys, ["predict", *run_args(recorded), "--data", str(data),
                                    "--out", spelling, *force], data)
            assert "own input" in line and "--force does not change this" in line


def test_nothing_inside_a_run_folder_is_replaced_even_with_force(recorded, capsys, tmp_path):
    run_dir, data = recorded["run_dir"], recorded["data"]
    metrics, best = run_dir / "metrics.jsonl", run_dir / "checkpoints" / "best.pt"
    files = [metrics, best, run_dir / "run.json", run_dir / "config.toml"]
    line = refused(capsys, ["export", *run_args(recorded), "--csv", str(metrics), "--force"],
                   *files)
    assert f"inside the run folder {run_dir.resolve()}" in line
    refused(capsys, ["predict", *run_args(recorded), "--data", str(data), "--out", str(best),
                     "--force"], *files)
    refused(capsys, ["predict", str(run_dir), "--data", str(data), "--out",
                     str(run_dir / "new.h5")], *files)  # a new file in a run folder too
    refused(capsys, ["make-dataset", "sine", "--n", "8", "--out", str(best), "--force"], *files)
    src = tmp_path / "s.csv"
    shutil.copy(ROOT / "docs/examples/sensor.csv", src)
    refused(capsys, ["import-series", str(src), "--out", str(metrics), "--force",
                     "--input-cols", "temperature", "--target-cols", "temperature",
                     "--window", "8", "--horizon", "2"], *files, src)
    refused(capsys, ["compare", "--show", "anything", "--metrics-csv", str(metrics),
                     "--force", "--runs-dir", str(recorded["runs_dir"])], *files)
    assert not (run_dir / "new.h5").exists()


def test_a_run_folder_of_the_runs_dir_is_protected_even_when_its_records_are_damaged(
        recorded, tmp_path):
    damaged = recorded["runs_dir"] / "20260101-000000-000-gru-dead"
    damaged.mkdir()
    target = damaged / "metrics.jsonl"
    with pytest.raises(OutputError, match="inside the run folder"):
        check_output(target, force=True, runs_dir=recorded["runs_dir"], flag="--csv")
    assert run_folder_of(recorded["runs_dir"] / "_comparisons" / "x.csv",
                         recorded["runs_dir"]) is None
    assert run_folder_of(tmp_path / "elsewhere.csv", recorded["runs_dir"]) is None
    shutil.rmtree(damaged)


def test_an_existing_file_is_replaced_only_with_force(recorded, capsys, tmp_path):
    data = recorded["data"]
    precious = tmp_path / "precious.h5"
    precious.write_bytes(b"precious bytes")
    line = refused(capsys, ["predict", *run_args(recorded), "--data", str(data), "--out",
                            str(precious)], precious)
    assert line == f"error: {precious}: exists; pass --force to replace it"
    assert main(["predict", *run_args(recorded), "--data", str(data), "--out", str(precious),
                 "--force"]) == 0
    assert precious.read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"

    table = tmp_path / "metrics.csv"
    table.write_text("mine\n")
    refused(capsys, ["export", *run_args(recorded), "--csv", str(table)], table)
    assert main(["export", *run_args(recorded), "--csv", str(table), "--force"]) == 0
    assert table.read_text().startswith("run,cell,seed,step,metric,value")

    refused(capsys, ["compare", "--show", "anything", "--csv", str(table)], table)
    refused(capsys, ["make-dataset", "sine", "--n", "8", "--out", str(table)], table)
    refused(capsys, ["predict", *run_args(recorded), "--data", str(data), "--out",
                     str(tmp_path)])  # a folder, with or without --force
