"""Attention and beam search as a user reaches them: the run config, the CLI, the run
record (probe files), predictions with hypotheses. Tiny token runs (reverse, T = 5)."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

from models.attention import ATTENTION_KINDS
from models.seq2seq import Seq2Seq, parameter_count
from tests.workbench.train_helpers import (
    VOCAB,
    open_dataset,
    record_run,
    tiny_config,
    write_reverse,
    write_waves,
)
from workbench import config as config_module
from workbench.cli import main
from workbench.config import RunConfig
from workbench.errors import ConfigError
from workbench.events import ProbeEvent, RecordingListener
from workbench.memory import estimate_run_memory
from workbench.model_config import build_model_config
from workbench.predictions import beam_search_sample, predict_sample
from workbench.runs import open_run

TINY = ["--cell", "gru", "--hidden", "8", "--batch", "16", "--lr", "0.01", "--probe-batch", "8",
        "--probe-samples", "2", "--threads", "1", "--no-progress", "--val-fraction", "0.2"]


@pytest.fixture(scope="module")
def reverse(tmp_path_factory):
    return write_reverse(tmp_path_factory.mktemp("data") / "reverse.h5")


@pytest.fixture(scope="module")
def waves(tmp_path_factory):
    return write_waves(tmp_path_factory.mktemp("data") / "waves.h5")


@pytest.fixture(scope="module")
def attention_run(reverse, tmp_path_factory):
    """A finished Luong (general) run and the events its listener received live."""
    runs_dir = tmp_path_factory.mktemp("runs")
    live = RecordingListener()
    run_dir = record_run(tiny_config(reverse, attention="luong-general", steps=9,
                                     probe_every=3), runs_dir, [live])
    return runs_dir, run_dir, live


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


# -- the run config -------------------------------------------------------------------------


def test_attention_round_trips_through_toml_and_old_configs_open_without_it(tmp_path):
    config = RunConfig(data="x.h5", attention=" Luong-General ").validate()
    assert config.attention == "luong-general"
    again = RunConfig.from_toml(config.to_toml())
    assert again == config and 'attention = "luong-general"' in config.to_toml()
    old = "version = 1\n[data]\ndata = \"x.h5\"\n[model]\ncell = \"gru\"\n"
    assert RunConfig.from_toml(old).attention == "none"
    assert RunConfig(data="x.h5").replace(attention="none").attention == "none"
    with pytest.raises(ConfigError, match="attention = 'luong' is not allowed: expected one "
                       "of none, bahdanau, luong-dot, luong-general"):
        RunConfig.from_toml(old.replace('cell = "gru"', 'attention = "luong"'))
    # the config spells the kinds without importing torch; they are the models' kinds
    assert config_module.ATTENTION_KINDS == ATTENTION_KINDS


def test_the_model_and_the_memory_check_count_attentions_weights(reverse):
    config = tiny_config(reverse, attention="bahdanau", cell="lstm")
    with open_dataset(config) as dataset:
        model_config = build_model_config(config, dataset.summary)
        estimate = estimate_run_memory(config, dataset.summary)
    assert model_config.attention == "bahdanau"
    real = sum(p.numel() for p in Seq2Seq(model_config).parameters())
    plain = sum(p.numel() for p in Seq2Seq(build_model_config(
        config.replace(attention="none"), dataset.summary)).parameters())
    assert real > plain
    assert estimate.parameters == real == parameter_count(model_config)


# -- the run record ---------------------------------------------------------------------------


def test_an_attention_runs_probe_files_hold_the_weights_and_replay_them(attention_run):
    _, run_dir, live = attention_run
    run = open_run(run_dir)
    assert run.started_event().model_config["attention"] == "luong-general"
    assert run.config().attention == "luong-general"
    files = run.probe_files()
    assert len(files) == 3
    with h5py.File(files[-1], "r") as f:  # plain h5py, as docs/run-format.md says
        weights = f["attention_weights"][()]
        tokens = f["sample_source_tokens"].asstr()[()]
    assert weights.shape == (2, 6, 5)  # (samples, T_out, T_in)
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, atol=1e-9)
    assert all(t in VOCAB for t in tokens.ravel())
    recorded = [e for e in live.events if isinstance(e, ProbeEvent)]
    replayed = list(run.probes())
    for a, b in zip(recorded, replayed, strict=True):
        np.testing.assert_array_equal(a.attention_weights, b.attention_weights)
        np.testing.assert_array_equal(a.sample_source_tokens, b.sample_source_tokens)
        np.testing.assert_array_equal(a.sample_target_tokens, b.sample_target_tokens)
        np.testing.assert_array_equal(a.sample_target_lengths, b.sample_target_lengths)
    # the samples' tokens are the probe batch's: the first validation sequences
    with open_dataset(run.config()) as dataset:
        first = dataset.split("val").read(np.arange(2))
    assert [[VOCAB.index(t) for t in row] for row in replayed[-1].sample_source_tokens] \
        == first.x.tolist()
    assert list(replayed[-1].sample_target_tokens[0]) == [VOCAB[i] for i in first.y[0]]


def test_a_run_without_attention_records_no_weights(reverse, tmp_path):
    run_dir = record_run(tiny_config(reverse, steps=3), tmp_path)
    probe = open_run(run_dir).last_probe()
    assert probe.attention_weights is None
    assert probe.sample_source_tokens is not None  # the samples are labelled all the same
    with h5py.File(open_run(run_dir).probe_files()[-1], "r") as f:
        assert "attention_weights" not in f


# -- the CLI -----------------------------------------------------------------------------------


def test_train_takes_attention_and_resume_refuses_to_change_it(reverse, tmp_path, capsys):
    runs = str(tmp_path / "runs")
    assert main(["train", "--data", str(reverse), *TINY, "--steps", "3", "--attention",
                 "bahdanau", "--runs-dir", runs, "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert open_run(result["run_dir"]).config().attention == "bahdanau"
    assert main(["train", "--data", str(reverse), *TINY, "--steps", "3", "--attention",
                 "luong", "--runs-dir", runs]) == 2
    assert "attention = 'luong' is not allowed" in _one_line_error(capsys)
    stopped = record_run(tiny_config(reverse, steps=30), tmp_path / "runs", stop_at=2)
    assert main(["train", "--resume", str(stopped), "--attention", "bahdanau",
                 "--no-progress"]) == 2
    assert "attention cannot change on resume" in _one_line_error(capsys)


def test_compare_takes_attention_as_a_fixed_flag(reverse, tmp_path, capsys):
    runs = str(tmp_path / "runs")
    assert main(["compare", "--data", str(reverse), *TINY[2:], "--steps", "2", "--cells",
                 "gru,lstm", "--seeds", "1", "--attention", "luong-dot", "--runs-dir", runs,
                 "--json"]) == 0
    capsys.readouterr()
    assert {open_run(r.run_id, runs).config().attention for r in _runs(runs)} == {"luong-dot"}


def _runs(runs_dir):
    from workbench.runs import list_runs

    return list_runs(runs_dir)


def test_evaluate_and_predict_with_a_beam(attention_run, reverse, tmp_path, capsys):
    runs_dir, run_dir, _ = attention_run
    base = ["--runs-dir", str(runs_dir), "--json"]
    assert main(["evaluate", str(run_dir), *base]) == 0
    greedy = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert main(["evaluate", str(run_dir), "--beam", "1", *base]) == 0
    one = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (one["token_accuracy"], one["sequence_accuracy"]) == (
        greedy["token_accuracy"], greedy["sequence_accuracy"])  # beam 1 is greedy decoding
    assert main(["evaluate", str(run_dir), "--beam", "4", "--length-penalty", "1", *base]) == 0
    four = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (four["beam"], four["length_penalty"], four["decoding"]) == (4, 1.0, "beam 4")
    assert 0 <= four["token_accuracy"] <= 1 and four["loss"] == greedy["loss"]

    out = tmp_path / "beam.h5"
    assert main(["predict", str(run_dir), "--data", str(reverse), "--out", str(out),
                 "--beam", "3", "--runs-dir", str(runs_dir)]) == 0
    capsys.readouterr()
    model, _, _ = open_run(run_dir).load_model("best")
    with h5py.File(out, "r") as f, open_dataset(open_run(run_dir).config()) as dataset:
        assert (f.attrs["beam"], f.attrs["length_penalty"]) == (3, 0.75)
        order = np.argsort(f["indices"][()][f["split"].asstr()[()] == "val"])
        written = f["outputs"][()][f["split"].asstr()[()] == "val"][order]
        batch = dataset.split("val").read(np.arange(len(order)))
    expected = model.generate(torch.from_numpy(batch.x), batch.y.shape[1],
                              torch.from_numpy(batch.x_lengths), beam=3).outputs.numpy()
    np.testing.assert_array_equal(written, expected)


def test_beam_on_continuous_targets_and_bad_beams_exit_2_with_one_line(waves, tmp_path,
                                                                       attention_run, capsys):
    run_dir = record_run(tiny_config(waves, steps=2), tmp_path)
    assert main(["evaluate", str(run_dir), "--beam", "4"]) == 2
    assert "needs token targets; this model's targets are continuous" in _one_line_error(capsys)
    assert main(["predict", str(run_dir), "--data", str(waves), "--out",
                 str(tmp_path / "p.h5"), "--beam", "2"]) == 2
    assert "continuous" in _one_line_error(capsys)
    assert not (tmp_path / "p.h5").exists()
    token_run = str(attention_run[1])
    for flags, words in ((["--beam", "0"], "beam = 0 is not allowed"),
                         (["--beam", "two"], "beam = 'two' is not allowed"),
                         (["--beam", "2", "--length-penalty", "-1"], "length penalty"),
                         (["--length-penalty", "1"], "--length-penalty needs --beam")):
        assert main(["evaluate", token_run, *flags]) == 2
        assert words in _one_line_error(capsys)


# -- predictions with hypotheses -----------------------------------------------------------------


def test_a_prediction_with_a_beam_holds_the_top_k_hypotheses_with_scores(attention_run):
    _, run_dir, _ = attention_run
    run = open_run(run_dir)
    model, _, _ = run.load_model("best")
    with open_dataset(run.config()) as dataset:
        p = predict_sample(model, dataset, "val", 1, beam=4, length_penalty=0.5)
        batch = dataset.split("val").read([1])
        plain = predict_sample(model, dataset, "val", 1)
    assert plain.hypotheses == () and plain.beam is None and plain.search is None
    assert p.beam == 4 and 1 <= len(p.hypotheses) <= 4 and p.search is not None
    scores = [h.score for h in p.hypotheses]
    assert scores == sorted(scores, reverse=True)
    for h in p.hypotheses:
        assert h.score == pytest.approx(h.log_prob / len(h.ids) ** 0.5)
        assert h.text == "".join(VOCAB[i] for i in h.ids)
    best = model.generate(torch.from_numpy(batch.x), batch.y.shape[1], beam=4,
                          length_penalty=0.5)
    n = int(best.lengths[0])
    np.testing.assert_array_equal(p.hypotheses[0].ids, best.outputs[0, :n].numpy())
    np.testing.assert_array_equal(p.free_running, plain.free_running)  # greedy is unchanged


def test_a_forced_prefix_starts_every_hypothesis_and_continuous_refuses(attention_run, waves):
    _, run_dir, _ = attention_run
    run = open_run(run_dir)
    model, _, _ = run.load_model("best")
    with open_dataset(run.config()) as dataset:
        search, hypotheses = beam_search_sample(model, dataset, "val", 0, beam=3,
                                                prefix=(5, 6))
    assert search.prefix == (5, 6) and hypotheses
    assert all(tuple(h.ids[:2]) == (5, 6) for h in hypotheses)
    config = tiny_config(waves)
    with open_dataset(config) as dataset:
        continuous = Seq2Seq(build_model_config(config, dataset.summary))
        with pytest.raises(ConfigError, match="needs token targets"):
            predict_sample(continuous, dataset, "val", 0, beam=2)
