"""Comparisons: the queue of runs, its events, cancel, the saved record, and the figures."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest

from tests.workbench.train_helpers import open_dataset, tiny_config, write_reverse
from workbench.compare import (
    COLUMNS,
    ComparisonFinished,
    ComparisonRunner,
    ComparisonStarted,
    QueuedRunFinished,
    QueuedRunStarted,
    RunData,
    comparison_rows,
    encoder_spectral_radius,
    gradient_profiles,
    list_comparisons,
    loss_bands,
    open_comparison,
    queue_fraction,
    smooth,
    vanishing_ratio,
)
from workbench.errors import ConfigError, RunError
from workbench.events import EpochMetrics, ProbeEvent, RecordingListener, RunStarted, StepMetrics
from workbench.runs import list_runs, open_run


class ProbeBatches:
    """Keeps each queued run's probe batch (read from the runner's current Trainer)."""

    def __init__(self) -> None:
        self.runner: ComparisonRunner | None = None
        self.batches: list[np.ndarray] = []

    def on_event(self, event) -> None:
        if isinstance(event, QueuedRunStarted):
            self.batches.append(self.runner.current_trainer.probe_batch.src.numpy().copy())


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_reverse(tmp_path_factory.mktemp("data") / "reverse.h5")


@pytest.fixture(scope="module")
def done(data, tmp_path_factory):
    """One comparison of two cells x two seeds (base seed 3, split seed 7), run once."""
    runs_dir = tmp_path_factory.mktemp("runs")
    config = tiny_config(data, seed=3, split_seed=7, probe_batch=8)
    recording, batches = RecordingListener(), ProbeBatches()
    with open_dataset(config) as dataset:
        runner = ComparisonRunner(config, "rnn-tanh,gru", 2, listeners=[recording, batches],
                                  runs_dir=runs_dir, dataset=dataset)
        batches.runner = runner
        comparison = runner.run()
    return comparison, recording, batches, runs_dir


def test_queue_runs_every_cell_with_seeds_base_and_base_plus_one(done):
    comparison, recording, batches, runs_dir = done
    started = recording.of_type(QueuedRunStarted)
    assert [(e.cell, e.seed) for e in started] == [("rnn-tanh", 3), ("gru", 3), ("rnn-tanh", 4),
                                                   ("gru", 4)]
    assert [e.index for e in started] == [0, 1, 2, 3] and {e.planned for e in started} == {4}
    configs = [e.config for e in recording.of_type(RunStarted)]
    assert [c["model"]["cell"] for c in configs] == ["rnn-tanh", "gru", "rnn-tanh", "gru"]
    assert [c["training"]["seed"] for c in configs] == [3, 3, 4, 4]
    assert {c["data"]["split_seed"] for c in configs} == {7}
    assert {c["probes"]["probe_batch"] for c in configs} == {8}
    for batch in batches.batches[1:]:  # every run is probed on the very same sequences
        np.testing.assert_array_equal(batch, batches.batches[0])
    assert len({e.run_id for e in started}) == 4
    assert sorted(r.run_id for r in list_runs(runs_dir)) == sorted(e.run_id for e in started)


def test_queue_events_come_in_order(done):
    _, recording, _, _ = done
    kinds = [type(e).__name__ for e in recording.events
             if isinstance(e, (ComparisonStarted, QueuedRunStarted, QueuedRunFinished,
                               ComparisonFinished, RunStarted))]
    assert kinds == ["ComparisonStarted"] + ["QueuedRunStarted", "RunStarted",
                                             "QueuedRunFinished"] * 4 + ["ComparisonFinished"]
    first = recording.of_type(ComparisonStarted)[0]
    assert first.planned == 4 and first.cells == ("rnn-tanh", "gru") and first.seeds == (3, 4)
    last = recording.of_type(ComparisonFinished)[0]
    assert (last.status, last.completed, last.planned) == ("completed", 4, 4)
    assert {e.status for e in recording.of_type(QueuedRunFinished)} == {"completed"}


def test_comparison_is_saved_and_reopens(done):
    comparison, recording, _, runs_dir = done
    assert (runs_dir / "_comparisons" / f"{comparison.comparison_id}.json").is_file()
    again = open_comparison(comparison.comparison_id, runs_dir)
    assert again == open_comparison(comparison.path)
    assert again.status == "completed" and again.cells == ("rnn-tanh", "gru")
    assert again.seeds == (3, 4)
    assert again.run_ids == tuple(e.run_id for e in recording.of_type(QueuedRunStarted))
    assert again.config().split_seed == 7 and again.config().seed == 3
    assert again.config().cell == "rnn-tanh"  # the base config as recorded: the first cell
    assert [c.comparison_id for c in list_comparisons(runs_dir)] == [comparison.comparison_id]
    with pytest.raises(RunError, match="no comparison"):
        open_comparison("nope", runs_dir)


def test_table_has_each_cell_in_order_with_mean_and_std_across_seeds(done):
    comparison, _, _, runs_dir = done
    table = comparison.table()
    assert [row.cell for row in table.rows] == ["rnn-tanh", "gru"]
    assert table.columns == COLUMNS
    for row in table.rows:
        runs = [open_run(run_id, runs_dir) for run_id in row.run_ids]
        assert row.seeds == (3, 4) and row.parameters == runs[0].meta["parameters"]
        best = [min(e.val_loss for e in run.epoch_metrics()) for run in runs]
        assert row.stats["best_val_loss"].mean == pytest.approx(np.mean(best))
        assert row.stats["best_val_loss"].std == pytest.approx(np.std(best, ddof=1))
        ratios = [run.last_probe().encoder_grad_norms[-1] for run in runs]
        assert row.stats["vanishing_ratio"].values == pytest.approx(
            [r[0] / r[-1] for r in ratios])
        for name in COLUMNS:  # token data: every figure is defined
            assert row.stats[name].mean is not None, name
    flat = table.to_json()[1]
    assert flat["cell"] == "gru" and "spectral_radius_mean" in flat and "seconds_std" in flat
    assert "gru" in table.to_text() and "G_1/G_T" in table.to_text()


def test_bands_are_the_spread_of_the_per_seed_curves(done):
    comparison, _, _, runs_dir = done
    bands = loss_bands(comparison.open_runs())
    assert list(bands) == ["rnn-tanh", "gru"]
    for cell, band in bands.items():
        runs = [open_run(run_id, runs_dir) for run_id in band.run_ids]
        curves = np.array([[s.loss for s in run.step_metrics()] for run in runs])
        np.testing.assert_array_equal(band.train.x, np.arange(1, 13))
        np.testing.assert_allclose(band.train.mean, curves.mean(axis=0))
        np.testing.assert_allclose(band.train.minimum, curves.min(axis=0))
        np.testing.assert_allclose(band.train.maximum, curves.max(axis=0))
        np.testing.assert_allclose(band.train.std, curves.std(axis=0, ddof=1))
        val = np.array([[e.val_loss for e in run.epoch_metrics()] for run in runs])
        np.testing.assert_allclose(band.val.mean, val.mean(axis=0))
        assert len(band.val_steps) == val.shape[1], cell
    smoothed = loss_bands(comparison.open_runs(), smoothing=0.6)["gru"]
    np.testing.assert_allclose(smoothed.train.per_seed[0], smooth(
        bands["gru"].train.per_seed[0], 0.6))


def test_gradient_profiles_average_the_latest_probes(done):
    comparison, _, _, runs_dir = done
    profiles = gradient_profiles(comparison.open_runs())
    for _cell, profile in profiles.items():
        probes = [open_run(run_id, runs_dir).last_probe() for run_id in profile.run_ids]
        enc = np.array([p.encoder_grad_norms[-1] for p in probes])
        dec = np.array([p.decoder_grad_norms[-1] for p in probes])
        np.testing.assert_allclose(profile.encoder_mean, enc.mean(axis=0))
        np.testing.assert_allclose(profile.decoder_mean, dec.mean(axis=0))
        assert profile.mean.shape == (5 + 6,) and profile.per_seed.shape == (2, 11)
        assert profile.probe_steps == (12, 12)


def test_live_events_give_the_same_figures_as_the_run_folder(done):
    comparison, _, _, _ = done
    run = comparison.open_runs()[0]
    live, replayed = RunData.from_events(run.events()), RunData.from_run(run)
    assert live.figures() == pytest.approx(replayed.figures())


def test_cancel_stops_the_current_run_and_starts_no_other(data, tmp_path):
    config = tiny_config(data, steps=200)
    recording = RecordingListener()
    reached, cancelled = threading.Event(), threading.Event()

    class Gate:
        def on_event(self, event) -> None:  # hold the run at step 2 until cancel is asked
            if isinstance(event, StepMetrics) and event.step == 2:
                reached.set()
                cancelled.wait(10)

    with open_dataset(config) as dataset:
        runner = ComparisonRunner(config, ["rnn-tanh", "lstm"], 2,
                                  listeners=[recording, Gate()], runs_dir=tmp_path,
                                  dataset=dataset)
        worker = threading.Thread(target=runner.run)
        worker.start()
        assert reached.wait(30)
        runner.request_cancel()  # from another thread, as the GUI does
        cancelled.set()
        worker.join(30)
    assert not worker.is_alive()
    assert len(recording.of_type(QueuedRunStarted)) == 1
    assert recording.of_type(QueuedRunFinished)[0].status == "stopped"
    assert recording.of_type(ComparisonFinished)[0].status == "cancelled"
    assert max(e.step for e in recording.of_type(StepMetrics)) < 200
    assert len(list_runs(tmp_path)) == 1
    saved = list_comparisons(tmp_path)[0]
    assert saved.status == "cancelled"
    assert [e.status for e in saved.entries] == ["stopped", "skipped", "skipped", "skipped"]


def test_bad_cells_and_seeds_are_refused_before_anything_runs(data, tmp_path):
    config = tiny_config(data)
    with pytest.raises(ConfigError, match="cell"):
        ComparisonRunner(config, "rnn-tanh,transformer", 2, runs_dir=tmp_path)
    with pytest.raises(ConfigError, match="seeds"):
        ComparisonRunner(config, "gru", 0, runs_dir=tmp_path)
    assert not (tmp_path / "_comparisons").exists()


# --- the figures on hand-made data ---------------------------------------------------------------


def _run(run_id: str, cell: str, losses: list[float], val: list[float | None],
         probe: ProbeEvent | None = None, seconds: float = 2.0) -> RunData:
    steps = tuple(StepMetrics(step=i + 1, epoch=1, loss=v, grad_norm=1.0, learning_rate=0.1,
                              teacher_forcing=1.0, sequences_per_second=1.0, seconds=i,
                              sequences=10 * (i + 1)) for i, v in enumerate(losses))
    epochs = tuple(EpochMetrics(epoch=i + 1, step=5 * (i + 1), val_loss=math.nan if v is None
                                else v, val_loss_free_running=2 * (v or 0)) for i, v in
                   enumerate(val))
    return RunData(run_id, cell, 0, "completed", 100, seconds, steps[-1].sequences if steps
                   else 0, steps, epochs, probe)


def _probe(encoder: list[float], radius: dict[str, float]) -> ProbeEvent:
    empty = np.zeros((1, 1, 1))
    return ProbeEvent(step=5, epoch=1, encoder_grad_norms=np.array([encoder]),
                      decoder_grad_norms=np.array([[1.0, 2.0]]), encoder_hidden=empty,
                      decoder_hidden=empty, spectral_radius=radius)


def test_bands_align_on_the_steps_every_seed_reached():
    runs = [_run("a", "lstm", [4.0, 3.0, 2.0, 1.0], [3.0, 1.0]),
            _run("b", "lstm", [2.0, 1.0, 0.0], [1.0])]
    band = loss_bands(runs)["lstm"]
    np.testing.assert_array_equal(band.train.x, [1, 2, 3])
    np.testing.assert_allclose(band.train.mean, [3.0, 2.0, 1.0])
    np.testing.assert_allclose(band.train.minimum, [2.0, 1.0, 0.0])
    np.testing.assert_allclose(band.train.maximum, [4.0, 3.0, 2.0])
    np.testing.assert_allclose(band.train.std, [math.sqrt(2)] * 3)
    np.testing.assert_array_equal(band.val.x, [1])
    np.testing.assert_allclose(band.val_free_running.mean, [4.0])
    single = loss_bands(runs[:1])["lstm"]
    assert np.isnan(single.train.std).all()  # one seed: no spread


def test_table_figures_and_undefined_values():
    runs = [_run("a", "rnn-tanh", [1.0], [3.0, 2.0, 2.5],
                 _probe([1e-12, 1e-6, 1e-3], {"encoder.layer0": 0.9, "decoder.layer0": 5.0})),
            _run("b", "rnn-tanh", [1.0], [None, 4.0], _probe([0.5, 1.0], {}), seconds=4.0)]
    table = comparison_rows(runs, cells=["rnn-tanh", "gru"])
    row = table.row("rnn-tanh")
    assert row.stats["best_val_loss"].values == (2.0, 4.0)
    assert row.stats["val_loss_free_running"].values == (4.0, 8.0)  # at the best epoch
    assert row.stats["vanishing_ratio"].values == pytest.approx((1e-9, 0.5))
    assert row.stats["spectral_radius"].values == (0.9, None)
    assert row.stats["spectral_radius"].mean == 0.9 and row.stats["spectral_radius"].std is None
    assert row.stats["token_accuracy"].mean is None  # continuous data
    assert row.stats["sequences_per_second"].values == (5.0, 2.5)
    empty = table.row("gru")
    assert empty.run_ids == () and empty.stats["best_val_loss"].mean is None


def test_spectral_radius_is_the_largest_gate_block_of_the_top_encoder_layer():
    probe = _probe([1.0], {"encoder.layer0.i": 3.0, "encoder.layer1.i": 0.5,
                           "encoder.layer1.f": 1.2, "decoder.layer1.f": 9.0})
    assert encoder_spectral_radius(probe, layers=2) == 1.2
    assert encoder_spectral_radius(probe) == 1.2  # the top layer the probe has
    assert encoder_spectral_radius(probe, layers=1) == 3.0
    assert encoder_spectral_radius(None) is None
    assert vanishing_ratio(_probe([0.0, 0.0], {})) is None


def test_queue_fraction_counts_done_runs_and_the_current_one():
    assert queue_fraction(0, 0, 100, 4) == 0.0
    assert queue_fraction(1, 50, 100, 4) == pytest.approx(0.375)
    assert queue_fraction(3, 100, 100, 4) == 1.0


def test_loss_bands_of_a_live_run_before_its_first_epoch_are_empty_not_an_error():
    """The comparison view draws bands while runs train: a cell whose run has steps but
    no validated epoch yet gets its training band and empty validation bands."""
    from workbench.compare import RunData, loss_bands
    from workbench.events import RunStarted, StepMetrics

    started = RunStarted("live-lstm", {"model": {"cell": "lstm"}, "training": {"seed": 0}}, 10, {})
    steps = [StepMetrics(step=i, epoch=1, loss=1.0 / i, grad_norm=1.0, learning_rate=1e-3,
                         teacher_forcing=1.0, sequences_per_second=10.0, seconds=0.1 * i)
             for i in range(1, 6)]
    run = RunData.from_events([started, *steps])
    band = loss_bands([run], cells=[run.cell])[run.cell]
    assert band.train.x.tolist() == [1, 2, 3, 4, 5]
    assert band.val.x.size == 0 and band.val.mean.size == 0
    assert band.val_free_running.per_seed.shape == (1, 0)
