"""Baselines on real HDF5 files: each value against the same formula written out by hand."""

from __future__ import annotations

import json
import math

import h5py
import numpy as np
import pytest

from tests.workbench.baseline_helpers import write_weekly
from workbench import baselines
from workbench.datasets import SequenceDataset

VOCAB = ("<pad>", "<s>", "</s>", "a", "b", "c")


def _open(path):
    return SequenceDataset.open(path, safe_check=False)


def _continuous(path, *, period=None, columns=None, f_in=1):
    """train/val groups of (N, 4, f_in) inputs with lengths and (N, 3, 1) targets with lengths."""
    rng = np.random.default_rng(1)
    with h5py.File(path, "w") as f:
        f.attrs["sequence_workbench_format"] = 1
        if period is not None:
            f.attrs["period"] = period
        if columns is not None:
            f.attrs["input_columns"] = json.dumps(columns[0])
            f.attrs["target_columns"] = json.dumps(columns[1])
        for name, n in (("train", 40), ("val", 12)):
            f[f"{name}/inputs"] = rng.normal(5, 2, (n, 4, f_in)).astype(np.float32)
            f[f"{name}/targets"] = rng.normal(5, 3, (n, 3, 1)).astype(np.float32)
            f[f"{name}/input_lengths"] = rng.integers(2, 5, n)
            f[f"{name}/target_lengths"] = rng.integers(1, 4, n)
    return path


def _by_hand(path, predict):
    """Per sample the mean over valid target steps of the squared error (data units and
    normalised by the training targets' std), then the mean over samples."""
    with h5py.File(path, "r") as f:
        train_y = f["train/targets"][()].astype(np.float64)
        train_len = f["train/target_lengths"][()]
        valid = np.concatenate([train_y[i, :train_len[i], 0] for i in range(len(train_y))])
        mean, std = valid.mean(), valid.std()
        x, y = f["val/inputs"][()].astype(np.float64), f["val/targets"][()].astype(np.float64)
        xl, yl = f["val/input_lengths"][()], f["val/target_lengths"][()]
    data = []
    for i in range(len(y)):
        guess = np.array([predict(x[i, :xl[i]], h, mean) for h in range(1, yl[i] + 1)])
        data.append(np.mean((y[i, :yl[i], 0] - guess) ** 2))
    return float(np.mean(data)), float(np.mean(data)) / std**2


def test_continuous_baselines_equal_the_formulas(tmp_path):
    path = _continuous(tmp_path / "c.h5", period=2)
    with _open(path) as d:
        record = baselines.for_training(d, d.split("train"), d.split("val"), d.normalization())
    assert record["split"] == "val" and record["sequences"] == record["split_sequences"] == 12
    scores = record["scores"]
    for name, predict in (
        ("persistence", lambda x, h, m: x[-1, 0]),
        ("mean", lambda x, h, m: m),
        # one period (2 steps) before target step h: x[L - 1 + h - 2 * ceil(h / 2)]
        ("seasonal_persistence", lambda x, h, m: x[len(x) - 1 + h - 2 * math.ceil(h / 2), 0]),
    ):
        data, normalized = _by_hand(path, predict)
        assert scores[name]["data"] == pytest.approx(data, rel=1e-6), name
        assert scores[name]["normalized"] == pytest.approx(normalized, rel=1e-5), name
    assert scores["seasonal_persistence"]["period"] == 2
    assert "period attribute" in scores["seasonal_persistence"]["period_from"]
    assert baselines.losses(record, "data") == {
        k: scores[k]["data"] for k in ("persistence", "seasonal_persistence", "mean")}


def test_persistence_matches_columns_by_name_or_says_why_not(tmp_path):
    named = _continuous(tmp_path / "named.h5", f_in=2,
                        columns=(["humidity", "temperature"], ["temperature"]))
    with _open(named) as d:
        record = baselines.compute(d.summary, d.split("val"), normalization=d.normalization(),
                                   hints=baselines.file_hints(named))
    data, _ = _by_hand(named, lambda x, h, m: x[-1, 1])  # 'temperature' is input feature 1
    assert record["scores"]["persistence"]["data"] == pytest.approx(data, rel=1e-6)
    assert "'temperature'" in record["scores"]["persistence"]["what"]

    other = _continuous(tmp_path / "other.h5", f_in=2, columns=(["a", "b"], ["pressure"]))
    unnamed = _continuous(tmp_path / "unnamed.h5", f_in=2)
    for path, words in ((other, "'pressure' is not among the inputs"),
                        (unnamed, "the inputs have 2 features and the targets 1")):
        with _open(path) as d:
            record = baselines.compute(d.summary, d.split("val"), normalization=d.normalization(),
                                       hints=baselines.file_hints(path))
        assert "persistence" not in record["scores"] and "mean" in record["scores"]
        assert words in record["skipped"]["persistence"]
        assert baselines.losses(record)["persistence"] is None  # evaluate --json: null


def test_a_yearly_cycle_is_detected_and_noise_is_not(tmp_path):
    weekly = write_weekly(tmp_path / "weekly.h5")
    with _open(weekly) as d:
        period, acf = baselines.detect_period(d.split("train"))
    assert period == 52 and acf > 0.5
    noise = tmp_path / "noise.h5"
    with h5py.File(noise, "w") as f:
        f["inputs"] = np.random.default_rng(0).normal(size=(300, 104, 1)).astype(np.float32)
        f["targets"] = np.zeros((300, 26, 1), np.float32)
    with _open(noise) as d:
        assert baselines.detect_period(d.split("train")) == (None, None)
        record = baselines.for_training(d, d.split("train"), d.split("val"), d.normalization())
    assert "no period" in record["skipped"]["seasonal_persistence"]


def test_token_baselines_equal_the_formulas(tmp_path):
    rng = np.random.default_rng(2)
    path = tmp_path / "tokens.h5"
    with h5py.File(path, "w") as f:
        for name, n in (("train", 50), ("val", 10)):
            y = rng.choice([3, 3, 3, 4, 5], size=(n, 4))
            lengths = rng.integers(1, 5, n)
            y[np.arange(n), lengths - 1] = 2  # the end id closes each target
            f[f"{name}/inputs"] = rng.integers(3, 6, (n, 3))
            f[f"{name}/targets"] = y
            f[f"{name}/target_lengths"] = lengths
        f["vocab"] = np.array(VOCAB, dtype=h5py.string_dtype())
    with h5py.File(path, "r") as f:
        def valid(name):
            y, n = f[f"{name}/targets"][()], f[f"{name}/target_lengths"][()]
            return [y[i, :n[i]] for i in range(len(y))]
        train, val = valid("train"), valid("val")
    counts = np.bincount(np.concatenate(train), minlength=6).astype(float)
    log_p = np.log((counts + 1) / (counts.sum() + 6))
    with _open(path) as d:
        record = baselines.for_training(d, d.split("train"), d.split("val"), None)
    chance, majority = record["scores"]["chance"], record["scores"]["majority"]
    assert chance["loss"] == pytest.approx(math.log(6)) and chance["token_accuracy"] == 1 / 6
    assert majority["token"] == VOCAB[int(np.argmax(counts))]
    assert majority["loss"] == pytest.approx(np.mean([-log_p[s].mean() for s in val]))
    flat = np.concatenate(val)
    assert majority["token_accuracy"] == pytest.approx(np.mean(flat == np.argmax(counts)))
    verdict = baselines.judge(record, loss_free_running=None, loss=0.1, token_accuracy=0.0)
    assert verdict.beats == {"chance": True, "majority": False}
    assert "majority token" in verdict.notes[0]


def test_a_large_split_is_sampled_in_contiguous_blocks():
    rows = baselines.sample_indices(10_000_000, 20_000, blocks=20)
    assert len(rows) == 20_000 and rows[0] == 0 and rows[-1] == 9_999_999
    assert len(np.flatnonzero(np.diff(rows) > 1)) == 19  # 20 runs of consecutive rows
    assert list(baselines.sample_indices(5, 20_000)) == [0, 1, 2, 3, 4]
