"""Sweeps: the grid, its refusals, the record, failures, cancel and resume, workers, the CLI."""

from __future__ import annotations

import csv
import json
import os
import socket
import threading
import time

import numpy as np
import pytest

from tests.workbench.train_helpers import open_dataset, state_equal, tiny_config, write_reverse
from workbench import sweeps
from workbench.cli import main
from workbench.compare import ComparisonRunner
from workbench.errors import ConfigError
from workbench.events import RecordingListener, StepMetrics
from workbench.runs import list_runs, open_run
from workbench.sweep_spec import SweepSpec, TaskSpec, spans_decade

TINY = ["--hidden", "8", "--batch", "16", "--lr", "0.01", "--probe-batch", "8", "--threads", "1",
        "--val-fraction", "0.2", "--no-progress"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_reverse(tmp_path_factory.mktemp("data") / "reverse.h5")


def _json(capsys) -> dict:
    out = capsys.readouterr().out.strip().splitlines()
    return json.loads(out[-1], parse_constant=lambda c: pytest.fail(f"JSON holds {c}"))


# --- the grid ------------------------------------------------------------------------------


def test_the_grid_is_fields_times_task_options_times_seeds(data):
    base = tiny_config(data, seed=4, forget_bias=1.0, cell="lstm")
    spec = SweepSpec.build(base, {"cell": ["rnn-tanh", "lstm"],
                                  "teacher_forcing": ["1", "0.5", "1:0"]},
                           task=TaskSpec("copy", n=100, options={"length": 3}),
                           task_grid={"delay": ["2", 4]}, seeds=2)
    points = spec.points()
    assert spec.fields == ("cell", "teacher_forcing", "delay")
    assert len(points) == 2 * 3 * 2 and spec.run_count == 24
    assert points[0].params == {"cell": "rnn-tanh", "teacher_forcing": 1.0, "delay": 2}
    assert points[-1].params == {"cell": "lstm", "teacher_forcing": "1:0", "delay": 4}
    plan = spec.plan()  # seed-major: every point with seed 4, then every point with seed 5
    assert [(r.point, r.seed) for r in plan[:13]] == [(p, 4) for p in range(12)] + [(0, 5)]
    schedule = spec.config_for(points[-1], 5, data="/x/copy.h5")
    assert (schedule.teacher_forcing, schedule.teacher_forcing_end) == (1.0, 0.0)
    assert schedule.seed == 5 and schedule.data == "/x/copy.h5"
    assert schedule.forget_bias == 1.0  # the LSTM keeps the base's forget bias ...
    assert spec.config_for(points[0], 4).forget_bias is None  # ... the RNN has no forget gate
    assert spec.task_options(points[-1]) == {"length": 3, "delay": 4, "vocab": 8, "n": 100,
                                             "seed": 0}
    steps = SweepSpec.build(base, {"steps": [3, 9]}).config_for(
        SweepSpec.build(base, {"steps": [3, 9]}).points()[1], 0)
    assert (steps.steps, steps.epochs) == (9, None)
    again = SweepSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again.points() == points and again.seeds == (4, 5) and again.task == spec.task


@pytest.mark.parametrize(("grid", "task_grid", "words"), [
    ({"colour": ["red"]}, {}, ["unknown setting 'colour'"]),
    ({"hidden": ["8", "0"]}, {}, ["hidden = '0' is not allowed", ">= 1"]),
    ({"cell": ["lstm", "transformer"]}, {}, ["cell = 'transformer'"]),
    ({"cell": []}, {}, ["grid cell has no values"]),
    ({}, {}, ["the grid is empty"]),
    ({"seed": [1, 2]}, {}, ["--seeds"]),
    ({"cell": ["gru"], "forget_bias": [1.0]}, {}, ["cell=gru, forget_bias=1", "forget gate"]),
    ({}, {"delay": [2]}, ["task grid delay", "--task"]),
])
def test_bad_grids_name_the_field_and_the_value(data, grid, task_grid, words):
    with pytest.raises(ConfigError) as caught:
        SweepSpec.build(tiny_config(data), grid, task_grid=task_grid)
    for word in words:
        assert word in str(caught.value)


def test_a_bad_task_option_names_the_task_and_the_option(data):
    with pytest.raises(ConfigError, match="'copy' has no option 'colour'"):
        SweepSpec.build(tiny_config(data), {}, task=TaskSpec("copy"),
                        task_grid={"colour": [1]})
    with pytest.raises(ConfigError, match="--delay must be at least 0"):
        SweepSpec.build(tiny_config(data), {}, task=TaskSpec("copy"), task_grid={"delay": [-1]})


# --- running ----------------------------------------------------------------------------------


def test_sweep_json_has_every_point_with_its_runs_and_figures(tmp_path, capsys):
    runs_dir = tmp_path / "runs"
    args = ["sweep", "--task", "copy", "--task-option", "length=3", "--task-n", "120",
            "--task-grid", "delay=2,4", "--grid", "cell=rnn-tanh,gru", "--steps", "3",
            "--seeds", "2", "--runs-dir", str(runs_dir), *TINY, "--json"]
    assert main(args) == 0
    result = _json(capsys)
    assert result["status"] == "completed" and result["fields"] == ["cell", "delay"]
    assert [p["params"] for p in result["points"]] == [
        {"cell": "rnn-tanh", "delay": 2}, {"cell": "rnn-tanh", "delay": 4},
        {"cell": "gru", "delay": 2}, {"cell": "gru", "delay": 4}]
    for point in result["points"]:
        assert len(point["runs"]) == 2 and point["statuses"] == ["completed"] * 2
        for name in ("best_val_loss", "val_loss_free_running", "token_accuracy",
                     "sequence_accuracy", "vanishing_ratio", "spectral_radius", "parameters",
                     "seconds", "sequences_per_second"):
            assert set(point[name]) == {"mean", "std"}, name
            assert point[name]["mean"] is not None, name
        for run_id in point["runs"]:  # each on its point's own generated file
            config = open_run(run_id, runs_dir).config()
            assert f"delay{point['params']['delay']}" in config.data
    made = sorted(p.name for p in (runs_dir / "_datasets").iterdir())
    assert len(made) == 2 and all(name.startswith("copy-delay") for name in made)
    assert list(runs_dir.joinpath("_sweeps").glob("*.json"))[0].stem == result["sweep_id"]
    assert len(list_runs(runs_dir)) == 8  # the records are not runs

    assert main(["sweeps", "--runs-dir", str(runs_dir), "--json"]) == 0
    listing = _json(capsys)
    assert [s["sweep_id"] for s in listing] == [result["sweep_id"]]
    assert listing[0]["runs"] == listing[0]["planned"] == 8
    table = tmp_path / "table.csv"
    assert main(["sweep", "--show", result["sweep_id"], "--runs-dir", str(runs_dir), "--csv",
                 str(table)]) == 0
    assert "rnn-tanh" in capsys.readouterr().out
    rows = list(csv.DictReader(table.open()))
    assert [(r["cell"], r["delay"]) for r in rows] == [("rnn-tanh", "2"), ("rnn-tanh", "4"),
                                                        ("gru", "2"), ("gru", "4")]
    assert float(rows[0]["best_val_loss_mean"]) == pytest.approx(
        result["points"][0]["best_val_loss"]["mean"])


@pytest.mark.parametrize(("args", "words"), [
    (["--grid", "hidden=4,0"], ["hidden = '0'"]),
    (["--grid", "colour=red"], ["unknown setting 'colour'"]),
    (["--grid", "cell"], ["--grid 'cell'", "NAME=V1,V2"]),
    ([], ["the grid is empty"]),
    (["--grid", "lr=1e-3,1e-2", "--seeds", "300"], ["600 runs", "--yes"]),
    (["--preset", "no-such-lesson"], ["no lesson 'no-such-lesson'"]),
])
def test_cli_mistakes_exit_2_with_one_line(data, tmp_path, capsys, args, words):
    assert main(["sweep", "--data", str(data), "--runs-dir", str(tmp_path), *TINY, *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for word in words:
        assert word in err
    assert not (tmp_path / "_sweeps").exists()


def test_a_point_that_cannot_run_is_recorded_and_the_sweep_goes_on(data, tmp_path):
    base = tiny_config(data, steps=3)
    spec = SweepSpec.build(base, {"hidden": [8, 65536], "layers": [1, 64]})
    sweep = sweeps.SweepRunner(spec, runs_dir=tmp_path).run()
    assert sweep.status == "completed"
    statuses = {tuple(p.params.values()): e.status for p in sweep.points
                for e in sweep.point_entries(p.index)}
    assert statuses == {(8, 1): "completed", (8, 64): "completed", (65536, 1): "failed",
                        (65536, 64): "failed"}
    failed = [e for e in sweep.entries if e.status == "failed"]
    assert all("memory" in e.message and e.run_id is None for e in failed)
    assert len(list_runs(tmp_path)) == 2  # a refused run leaves no folder
    table = sweep.table()
    assert table.rows[0].stats["best_val_loss"].mean is not None
    assert table.rows[2].stats["best_val_loss"].mean is None


def test_cancel_keeps_the_finished_runs_and_resume_runs_only_what_is_missing(data, tmp_path):
    spec = SweepSpec.build(tiny_config(data, steps=8), {"cell": ["rnn-tanh", "gru", "lstm"]})
    reached, cancelled = threading.Event(), threading.Event()

    class Gate:  # hold the second run at step 2 until cancel is asked
        def __init__(self) -> None:
            self.runs = 0

        def on_event(self, event) -> None:
            if isinstance(event, sweeps.SweepRunStarted):
                self.runs += 1
            if isinstance(event, StepMetrics) and event.step == 2 and self.runs == 2:
                reached.set()
                cancelled.wait(10)

    runner = sweeps.SweepRunner(spec, runs_dir=tmp_path, listeners=[Gate()])
    worker = threading.Thread(target=runner.run)
    worker.start()
    assert reached.wait(60)
    runner.request_cancel()
    cancelled.set()
    worker.join(60)
    first = sweeps.open_sweep(runner.sweep_id, tmp_path)
    assert first.status == "cancelled"
    assert [e.status for e in first.entries] == ["completed", "stopped", "skipped"]
    done = open_run(first.entries[0].run_id, tmp_path)
    before = done.path.joinpath("metrics.jsonl").read_bytes()

    recording = RecordingListener()
    again = sweeps.SweepRunner.resume(runner.sweep_id, runs_dir=tmp_path,
                                      listeners=[recording]).run()
    started = recording.of_type(sweeps.SweepRunStarted)
    assert [e.index for e in started] == [1, 2]  # not the completed one
    assert started[0].run_id == first.entries[1].run_id  # the stopped run goes on in place
    assert again.status == "completed"
    assert [e.status for e in again.entries] == ["completed"] * 3
    assert [s.step for s in open_run(started[0].run_id, tmp_path).step_metrics()] == list(
        range(1, 9))
    assert done.path.joinpath("metrics.jsonl").read_bytes() == before
    assert len(list_runs(tmp_path)) == 3
    with pytest.raises(Exception, match="no sweep"):
        sweeps.SweepRunner.resume("nope", runs_dir=tmp_path)


def test_cli_resume_of_a_finished_sweep_runs_nothing_and_keeps_its_settings(
        data, tmp_path, capsys):
    spec = SweepSpec.build(tiny_config(data, steps=2), {"cell": ["rnn-tanh"]})
    done = sweeps.SweepRunner(spec, runs_dir=tmp_path).run()
    args = ["sweep", "--resume", done.sweep_id, "--runs-dir", str(tmp_path), "--no-progress"]
    assert main([*args, "--json"]) == 0
    result = _json(capsys)
    assert result["status"] == "completed" and result["points"][0]["runs"] == list(done.run_ids)
    assert len(list_runs(tmp_path)) == 1
    assert main([*args, "--hidden", "16"]) == 2
    err = capsys.readouterr().err
    assert "--hidden cannot be used with --resume" in err


def test_a_comparison_keeps_an_lstms_forget_bias_and_drops_it_for_other_cells(data):
    from workbench.compare import plan_runs

    base = tiny_config(data, cell="lstm", forget_bias=2.0)
    plan = plan_runs(base, ["rnn-tanh", "lstm"], [0])
    assert [(p.cell, p.config.forget_bias) for p in plan] == [("rnn-tanh", None), ("lstm", 2.0)]


def test_two_workers_give_the_runs_of_one_bit_for_bit(data, tmp_path):
    spec = SweepSpec.build(tiny_config(data, steps=4, threads=1),
                           {"cell": ["rnn-tanh", "lstm"]})
    one = sweeps.SweepRunner(spec, runs_dir=tmp_path / "one").run()
    two = sweeps.SweepRunner(spec, runs_dir=tmp_path / "two", workers=2).run()
    assert one.status == two.status == "completed"
    for a, b in zip(one.entries, two.entries):
        assert (a.point, a.seed, a.status) == (b.point, b.seed, b.status)
        run_a, run_b = open_run(a.run_id, one.runs_dir), open_run(b.run_id, two.runs_dir)
        steps_a, steps_b = run_a.step_metrics(), run_b.step_metrics()
        assert [s.loss for s in steps_a] == [s.loss for s in steps_b]
        assert [s.grad_norm for s in steps_a] == [s.grad_norm for s in steps_b]
        assert state_equal(run_a.load_checkpoint("latest")["model"],
                           run_b.load_checkpoint("latest")["model"])
        np.testing.assert_array_equal(run_a.last_probe().encoder_grad_norms,
                                      run_b.last_probe().encoder_grad_norms)


def test_a_saved_comparison_opens_as_a_sweep_over_cell(data, tmp_path):
    config = tiny_config(data, steps=3)
    with open_dataset(config) as dataset:
        comparison = ComparisonRunner(config, "rnn-tanh,gru", 1, runs_dir=tmp_path,
                                      dataset=dataset).run()
    sweep = sweeps.open_sweep(comparison.comparison_id, tmp_path)
    assert sweep.kind == "comparison" and sweep.fields == ("cell",)
    assert [p.params for p in sweep.points] == [{"cell": "rnn-tanh"}, {"cell": "gru"}]
    table = sweep.table()
    assert [r.run_ids for r in table.rows] == [(comparison.run_ids[0],),
                                               (comparison.run_ids[1],)]
    assert [s.sweep_id for s in sweeps.list_sweeps(tmp_path)] == [comparison.comparison_id]


# --- the view's figures -------------------------------------------------------------------------


def _row(point, params, values):
    stats = {name: sweeps.Stat.of(values if name == "best_val_loss" else [])
             for name in sweeps.METRICS}
    return sweeps.SweepRow(point, params, (), (), (), (), stats)


def test_series_are_a_line_per_other_field_in_x_order():
    rows = [_row(i, {"cell": cell, "recurrent_radius": r}, [i, i + 2.0])
            for i, (cell, r) in enumerate((c, r) for c in ("rnn-tanh", "lstm")
                                           for r in (0.5, 1.0, 5.0))]
    table = sweeps.SweepTable(("cell", "recurrent_radius"), tuple(rows))
    lines = sweeps.series(table, "recurrent_radius", "best_val_loss")
    assert [s.label for s in lines] == ["rnn-tanh", "lstm"]
    assert lines[1].x == (0.5, 1.0, 5.0) and lines[1].points == (3, 4, 5)
    np.testing.assert_allclose(lines[1].mean, [4.0, 5.0, 6.0])
    np.testing.assert_allclose(lines[1].minimum, [3.0, 4.0, 5.0])
    np.testing.assert_allclose(lines[1].std, [np.sqrt(2)] * 3)
    assert spans_decade((0.5, 1.0, 5.0)) and not spans_decade((0.5, 1.0, 4.0))
    assert not spans_decade(("rnn-tanh", "lstm"))
    positions, labels = sweeps.x_positions(["rnn-tanh", "lstm", "rnn-tanh"])
    assert labels == ["rnn-tanh", "lstm"] and list(positions) == [0, 1, 0]
    by_cell = sweeps.series(table, "cell", "best_val_loss")
    assert [s.label for s in by_cell] == ["recurrent_radius=0.5", "recurrent_radius=1",
                                          "recurrent_radius=5"]


def test_a_run_still_training_is_listed_but_left_out_of_its_points_figures(
        data, tmp_path, capsys):
    runs_dir = tmp_path / "runs"
    assert main(["sweep", "--data", str(data), "--grid", "cell=rnn-tanh", "--steps", "3",
                 "--seeds", "2", "--runs-dir", str(runs_dir), *TINY, "--json"]) == 0
    result = _json(capsys)
    (point,) = result["points"]
    first, second = point["runs"]
    # the second run as a running one looks: its writer (this process) alive, a fresh beat
    status_path = open_run(second, runs_dir).path / "status.json"
    status = json.loads(status_path.read_text())
    status.update(status="running", pid=os.getpid(), host=socket.gethostname(),
                  heartbeat=time.time(), best_val_loss=1e9, seconds=1e6)
    status_path.write_text(json.dumps(status))
    table = sweeps.open_sweep(result["sweep_id"], runs_dir).table()
    (row,) = table.rows
    assert row.run_ids == (first, second)  # both listed
    alone = sweeps.run_figures(open_run(first, runs_dir))
    assert row.stats["best_val_loss"].mean == pytest.approx(alone["best_val_loss"])
    assert row.stats["seconds"].mean == pytest.approx(alone["seconds"])  # not the 1e6 one
