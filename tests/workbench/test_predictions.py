"""Predictions of one sample: what the model outputs, in the data's units, touching nothing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.seq2seq import Seq2Seq
from tests.workbench.train_helpers import (
    VOCAB,
    open_dataset,
    record_run,
    state_equal,
    tiny_config,
    write_reverse,
    write_waves,
)
from workbench.errors import DatasetError
from workbench.model_config import build_model_config
from workbench.predictions import decode, predict_from_run, predict_sample
from workbench.runs import open_run
from workbench.training import BatchConverter


@pytest.fixture(scope="module")
def reverse(tmp_path_factory):
    return write_reverse(tmp_path_factory.mktemp("data") / "reverse.h5")


@pytest.fixture(scope="module")
def waves(tmp_path_factory):
    return write_waves(tmp_path_factory.mktemp("data") / "waves.h5")


def _model(config, dataset) -> Seq2Seq:
    torch.manual_seed(1)
    return Seq2Seq(build_model_config(config, dataset.summary))


def test_tokens_match_a_direct_forward_and_generate(reverse):
    config = tiny_config(reverse, cell="lstm")
    with open_dataset(config) as dataset:
        model = _model(config, dataset).train()
        before = {k: v.clone() for k, v in model.state_dict().items()}
        rng = torch.get_rng_state()
        p = predict_sample(model, dataset, "val", 3)
        batch = dataset.split("val").read([3])
    assert model.training  # restored
    assert state_equal(before, model.state_dict()) and torch.equal(rng, torch.get_rng_state())
    model.eval()
    src, tgt = torch.from_numpy(batch.x), torch.from_numpy(batch.y)
    with torch.no_grad():
        forced = model(src, tgt, teacher_forcing=1.0).argmax(-1)[0].numpy()
        generated = model.generate(src, tgt.shape[1])
    free = generated.outputs[0, : int(generated.lengths[0])].numpy()
    assert p.kind == "tokens" and (p.split, p.index) == ("val", 3)
    np.testing.assert_array_equal(p.input, batch.x[0])
    np.testing.assert_array_equal(p.target, batch.y[0])
    np.testing.assert_array_equal(p.teacher_forced, forced)
    np.testing.assert_array_equal(p.free_running, free)
    np.testing.assert_array_equal(p.teacher_forced_mismatch, forced != batch.y[0])
    assert p.target_text == " ".join(VOCAB[i] for i in batch.y[0]) == decode(batch.y[0], VOCAB)
    assert p.target_text.endswith(" </s>")  # multi-character symbols: spaced
    assert p.free_running_mismatch.shape == p.target.shape
    assert p.exact == (not p.free_running_mismatch.any() and len(free) == len(p.target))


def test_a_model_that_echoes_is_exactly_right(reverse):
    """A model whose head always answers the target id: no mismatch, exact sequence."""
    config = tiny_config(reverse, cell="gru")
    with open_dataset(config) as dataset:
        model = _model(config, dataset)
        batch = dataset.split("val").read([0])
        target = batch.y[0]
        calls = {"t": 0}  # generate asks the head one step at a time

        def head_hook(module, inputs, output):  # answer target[t] whatever the state
            out = torch.full_like(output, -50.0)
            if out.dim() == 3:  # teacher-forced: every step at once
                out[:, torch.arange(len(target)), torch.from_numpy(target)] = 50.0
            else:
                out[:, int(target[min(calls["t"], len(target) - 1)])] = 50.0
                calls["t"] += 1
            return out

        handle = model.head.register_forward_hook(head_hook)
        try:
            p = predict_sample(model, dataset, "val", 0)
        finally:
            handle.remove()
    np.testing.assert_array_equal(p.teacher_forced, target)
    np.testing.assert_array_equal(p.free_running, target)
    assert not p.teacher_forced_mismatch.any() and not p.free_running_mismatch.any()
    assert p.exact


def test_continuous_prediction_is_in_data_units(waves):
    config = tiny_config(waves, cell="gru")
    with open_dataset(config) as dataset:
        model = _model(config, dataset).eval()
        norm = dataset.normalization()
        p = predict_sample(model, dataset, "val", 2, norm)
        batch = dataset.split("val").read([2])
    convert = BatchConverter(norm, True, True, "cpu")
    t = convert(batch)
    with torch.no_grad():
        forced = model(t.src, t.tgt, teacher_forcing=1.0)[0].numpy()
        free = model.generate(t.src, t.tgt.shape[1]).outputs[0].numpy()
    np.testing.assert_allclose(p.teacher_forced, norm.denormalize_y(forced.astype(np.float64)))
    np.testing.assert_allclose(p.free_running, norm.denormalize_y(free.astype(np.float64)))
    np.testing.assert_array_equal(p.target, batch.y[0])
    np.testing.assert_array_equal(p.input, batch.x[0])  # raw, not normalised
    assert abs(p.target.mean() - 10.0) < 4.0  # the waves sit around 10
    assert abs(p.teacher_forced.mean() - float(norm.y_mean[0])) < 3 * float(norm.y_std[0])
    np.testing.assert_allclose(p.teacher_forced_error,
                               np.abs(p.teacher_forced - p.target).mean(axis=-1))
    assert p.free_running_error.shape == (6,) and p.exact is None
    assert p.teacher_forced_text is None and p.teacher_forced_mismatch is None


def test_from_a_recorded_run_uses_its_checkpoint_and_split(waves, tmp_path):
    config = tiny_config(waves, cell="lstm", steps=4, split_seed=5)
    run_dir = record_run(config, tmp_path)
    with open_dataset(config) as dataset:
        run = open_run(run_dir)
        model, norm, _ = run.load_model("best")
        direct = predict_sample(model, dataset, "val", 1, norm)
    p = predict_from_run(run.run_id, None, 1, runs_dir=tmp_path)  # opens the run's own data
    assert p.run_id == run.run_id
    np.testing.assert_allclose(p.teacher_forced, direct.teacher_forced)
    np.testing.assert_allclose(p.target, direct.target)


def test_an_index_outside_the_split_is_a_dataset_error(reverse):
    config = tiny_config(reverse)
    with open_dataset(config) as dataset:
        model = _model(config, dataset)
        n = len(dataset.split("val"))
        with pytest.raises(DatasetError, match=f"sample {n} is not in the val split"):
            predict_sample(model, dataset, "val", n)


def test_free_running_output_is_at_most_the_padded_target_length(tmp_path):
    """A model that never says "end" generates exactly the file's padded target length,
    as the Prediction docstring says (not one step more)."""
    from tests.workbench.data_helpers import write_tokens
    from workbench.predictions import Prediction

    data = write_tokens(tmp_path / "tokens.h5", n=30, t_in=5)
    config = tiny_config(data, cell="gru")
    with open_dataset(config) as dataset:
        model = _model(config, dataset)
        padded = dataset.summary.targets.steps
        end = model.config.target.end_id

        def never_end(module, inputs, output):
            output = output.clone()
            output[..., end] = -1e9
            return output

        handle = model.head.register_forward_hook(never_end)
        try:
            lengths = [predict_sample(model, dataset, "val", i).free_running.shape[0]
                       for i in range(len(dataset.split("val")))]
            targets = [len(predict_sample(model, dataset, "val", i).target)
                       for i in range(len(dataset.split("val")))]
        finally:
            handle.remove()
    assert set(lengths) == {padded} and min(targets) < padded
    assert "at most as many steps as the file's padded target length" in " ".join(
        Prediction.__doc__.split())
    assert "T_out + 1" not in Prediction.__doc__


def test_predicting_draws_nothing_and_rewinds_no_other_threads_draws(waves):
    """The GUI predicts in one thread while training draws dropout masks in another.

    Prediction itself draws nothing (a dropout model in train mode leaves the global
    generator as it was and gets its mode back), and draws another thread makes while
    a prediction runs stay made: nothing saves and restores the global generator.
    """
    import threading

    config = tiny_config(waves, cell="lstm", layers=2, dropout=0.5)
    with open_dataset(config) as dataset:
        norm = dataset.normalization()
        model = _model(config, dataset).train()
        torch.manual_seed(123)
        before = torch.get_rng_state()
        predict_sample(model, dataset, "val", 0, norm)
        assert model.training  # restored
        assert torch.equal(torch.get_rng_state(), before)  # eval mode: no dropout draws

        def training_thread_draws(module, inputs, output):  # while the prediction runs
            if not calls:
                worker = threading.Thread(target=lambda: calls.append(torch.rand(4)))
                worker.start()
                worker.join()

        calls: list[torch.Tensor] = []
        torch.manual_seed(7)
        handle = model.encoder.register_forward_hook(training_thread_draws)
        try:
            predict_sample(model, dataset, "val", 1, norm)
        finally:
            handle.remove()
        after = torch.get_rng_state()
    torch.manual_seed(7)
    torch.rand(4)
    assert len(calls) == 1
    assert torch.equal(after, torch.get_rng_state())  # the other thread's draw was kept


def test_a_file_that_does_not_fit_the_run_is_a_run_error(waves, reverse, tmp_path):
    from workbench.errors import RunError

    config = tiny_config(waves, steps=2)
    run_dir = record_run(config, tmp_path)
    expected = (f"{reverse}: its inputs do not fit the run's model: the file holds tokens "
                "with a vocabulary of 8, the model was trained on continuous values with 1 "
                "feature per step")
    with open_dataset(tiny_config(reverse)) as tokens, pytest.raises(RunError) as info:
        predict_from_run(run_dir, tokens, 0)
    assert str(info.value) == expected
