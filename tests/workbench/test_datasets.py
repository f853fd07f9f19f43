"""workbench.datasets: structure errors at open, value errors as read, block shuffle,
splits, normalisation, and the safe first open in a child process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.workbench.data_helpers import (
    VOCAB,
    continuous_arrays,
    read_all,
    token_arrays,
    write_continuous,
    write_raw,
    write_tokens,
)
from workbench import datasets, safe_open
from workbench.datasets import SequenceDataset, list_arrays
from workbench.errors import ConfigError, DatasetError
from workbench.tasks import SplitArrays, write_dataset


def _open(path, *args, **kwargs) -> SequenceDataset:
    kwargs.setdefault("safe_check", False)
    return SequenceDataset.open(path, *args, **kwargs)


# --- round trip -----------------------------------------------------------------------


@pytest.mark.parametrize("cache_bytes", [0, datasets.DEFAULT_CACHE_BYTES])
def test_continuous_round_trip_serves_the_stored_values_with_padding_cleared(tmp_path, cache_bytes):
    arrays = continuous_arrays(n=40)
    arrays["inputs"][0, arrays["input_lengths"][0]:] = np.nan  # NaN padding is harmless
    path = write_dataset(tmp_path / "c.h5", arrays["inputs"], arrays["targets"],
                         input_lengths=arrays["input_lengths"],
                         target_lengths=arrays["target_lengths"])
    with _open(path, cache_bytes=cache_bytes) as ds:
        s = ds.summary
        assert (s.inputs.kind, s.inputs.steps, s.inputs.features) == ("continuous", 6, 2)
        assert (s.targets.steps, s.targets.features, s.variable_length) == (3, 1, True)
        assert s.file_splits == {"all": 40} and s.splits == {"train": 36, "val": 4}
        seen = 0
        for name in ("train", "val"):
            split = ds.split(name)
            batch = read_all(split)
            rows = split.stored_rows
            assert batch.x.dtype == np.float32 and batch.x_lengths.dtype == np.int64
            np.testing.assert_array_equal(batch.x_lengths, arrays["input_lengths"][rows])
            for i, row in enumerate(rows):
                k = arrays["input_lengths"][row]
                np.testing.assert_array_equal(batch.x[i, :k], arrays["inputs"][row, :k])
                assert not batch.x[i, k:].any()
            seen += len(rows)
        assert seen == 40


def test_tokens_round_trip_and_reads_in_any_order_with_repeats(tmp_path):
    a = token_arrays(n=30)
    path = write_tokens(tmp_path / "t.h5", n=30)
    with _open(path) as ds:
        s = ds.summary
        assert s.inputs.kind == "tokens" and s.inputs.vocab == VOCAB and s.inputs.features is None
        assert (s.targets.pad_id, s.targets.start_id, s.targets.end_id) == (0, 1, 2)
        split = ds.split("train")
        batch = split.read([5, 1, 5, 0])
        rows = split.stored_rows[[5, 1, 5, 0]]
        assert batch.y.dtype == np.int64
        np.testing.assert_array_equal(batch.y, a["targets"][rows])
        np.testing.assert_array_equal(batch.indices, [5, 1, 5, 0])
        np.testing.assert_array_equal(batch.y_lengths, a["target_lengths"][rows])


def test_split_groups_are_served_as_stored_and_a_missing_split_is_named(tmp_path):
    a, b, c = (continuous_arrays(n=n, seed=n, variable=False) for n in (20, 5, 7))
    splits = {name: SplitArrays(d["inputs"], d["targets"])
              for name, d in (("train", a), ("val", b), ("test", c))}
    path = write_dataset(tmp_path / "s.h5", splits=splits)
    with _open(path) as ds:
        assert ds.summary.file_splits == {"train": 20, "val": 5, "test": 7}
        assert ds.summary.splits == {"train": 20, "val": 5, "test": 7}
        np.testing.assert_array_equal(read_all(ds.split("test")).x, c["inputs"])
        with pytest.raises(DatasetError, match="no split 'dev'.*train, val, test"):
            ds.split("dev")


def test_a_train_group_without_val_gets_a_validation_split_drawn_from_it(tmp_path):
    a = continuous_arrays(n=30, variable=False)
    path = write_dataset(tmp_path / "t.h5", splits={"train": SplitArrays(a["inputs"], a["targets"])})
    with _open(path, val_fraction=0.2) as ds:
        assert ds.summary.splits == {"train": 24, "val": 6}
        assert ds.split("val").stored_group == "train"


def test_explicit_paths_open_a_file_that_does_not_follow_the_format(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(3, 7, (12, 4))
    y = np.concatenate([x[:, :2], np.full((12, 1), 2)], axis=1)
    path = write_raw(tmp_path / "foreign.h5",
                     {"/data/x": x, "/data/y": y, "/data/n": np.full(12, 3), "/meta/chars": VOCAB},
                     array_attrs={"/data/x": {"vocab": "/meta/chars"},
                                  "/data/y": {"vocab": "/meta/chars", "lengths": "n"}})
    with pytest.raises(DatasetError, match=r"--inputs PATH --targets PATH.*/data/x \(12, 4\)"):
        _open(path)
    with _open(path, "/data/x", "/data/y") as ds:
        assert ds.summary.format_version is None and ds.summary.targets.vocab_size == len(VOCAB)
        batch = read_all(ds.split("train"))
        assert set(batch.y_lengths.tolist()) == {3}
    with pytest.raises(ConfigError, match="both the inputs and the targets"):
        _open(path, "/data/x")


def test_list_arrays_names_every_array_with_shape_and_dtype(tmp_path):
    path = write_raw(tmp_path / "a.h5", {"/x": np.zeros((3, 4), np.float32),
                                        "/g/h/y": np.zeros(5, np.int8), "/v": VOCAB})
    arrays = list_arrays(path, safe_check=False)
    assert [(a.path, a.shape, a.dtype) for a in arrays] == [
        ("/g/h/y", (5,), "int8"), ("/v", (7,), "string"), ("/x", (3, 4), "float32")]


def test_a_closed_dataset_says_so(tmp_path):
    ds = _open(write_continuous(tmp_path / "c.h5"), cache_bytes=0)
    split = ds.split("train")
    ds.close()
    with pytest.raises(DatasetError, match="closed"):
        split.read([0])


# --- structure errors at open -----------------------------------------------------------

F32 = np.zeros((4, 5, 1), np.float32)
TOK = np.full((4, 5), 3, np.int64)
STRUCTURE_CASES = {
    "missing targets": ({"inputs": F32}, {}, ["/targets", "the targets array", "nothing at"]),
    "wrong rank": ({"inputs": np.zeros((4, 5), np.float32), "targets": F32}, {},
                   ["/inputs", "3 dimensions (N, T, F)", "shape (4, 5)", "(N, T, 1)"]),
    "sample counts differ": ({"inputs": F32, "targets": F32[:3]}, {},
                             ["/targets", "4 samples, as many as /inputs", "found 3 samples"]),
    "strings": ({"inputs": np.array([["a"] * 5] * 4), "targets": F32}, {},
                ["/inputs", "floats (continuous values) or integers", "strings"]),
    "complex": ({"inputs": F32.astype(np.complex64), "targets": F32}, {}, ["/inputs", "complex"]),
    "compound": ({"inputs": np.zeros((4, 5), dtype=[("a", "f4"), ("b", "i4")]), "targets": F32},
                 {}, ["/inputs", "compound type (a, b)"]),
    "empty": ({"inputs": np.zeros((0, 5, 1), np.float32), "targets": np.zeros((0, 5, 1))}, {},
              ["/inputs", "at least one sample", "shape (0, 5, 1)"]),
    "zero length": ({"inputs": F32, "targets": F32, "input_lengths": [5, 5, 0, 5]}, {},
                    ["/input_lengths", "between 1 and 5", "0 for sample 2"]),
    "length past T": ({"inputs": F32, "targets": F32, "target_lengths": [5, 6, 5, 5]}, {},
                      ["/target_lengths", "between 1 and 5", "6 for sample 1"]),
    "lengths shape": ({"inputs": F32, "targets": F32, "input_lengths": [5, 5]}, {},
                      ["/input_lengths", "shape (4,)", "shape (2,)"]),
    "no vocabulary": ({"inputs": TOK, "targets": F32}, {},
                      ["/inputs", "vocabulary", "/input_vocab or /vocab", "found none"]),
    "newer format": ({"inputs": F32, "targets": F32}, {datasets.FORMAT_ATTR: 99},
                     ["format version 99", "reads versions 1 to 1"]),
    "val without train": ({"val/inputs": F32, "val/targets": F32}, {},
                          ["/train", "a /train group beside /val"]),
    "splits disagree": ({"train/inputs": F32, "train/targets": F32,
                         "val/inputs": np.zeros((2, 7, 1), np.float32), "val/targets": F32[:2]},
                        {}, ["/val/inputs", "same kind and shape as /train/inputs", "(7, 1)"]),
}


@pytest.mark.parametrize("case", STRUCTURE_CASES)
def test_every_structure_error_names_file_path_expected_and_found(tmp_path, case):
    arrays, attrs, needles = STRUCTURE_CASES[case]
    path = write_raw(tmp_path / "bad.h5", arrays, attrs)
    with pytest.raises(DatasetError) as info:
        _open(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    for needle in needles:
        assert needle in message, (needle, message)


def test_files_that_are_not_hdf5_or_absent_fail_with_the_file_named(tmp_path):
    text = tmp_path / "notes.h5"
    text.write_text("hello")
    with pytest.raises(DatasetError, match=r"notes\.h5 is not an HDF5 file: it looks like plain text"):
        _open(text)
    with pytest.raises(DatasetError, match=r"absent\.h5: no such file"):
        _open(tmp_path / "absent.h5")


def test_opening_reads_no_data_array(tmp_path, monkeypatch):
    path = write_continuous(tmp_path / "c.h5", n=50)
    reads = []
    original = h5py.Dataset.__getitem__

    def spy(self, key):
        reads.append(self.name)
        return original(self, key)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    with _open(path):
        pass
    assert set(reads) <= {"/input_lengths", "/target_lengths"}, reads


# --- value errors as read ----------------------------------------------------------------


def _bad_values(tmp_path, kind):
    a = continuous_arrays(n=20, variable=False) if kind in ("nan", "inf", "huge") \
        else token_arrays(n=20)
    if kind == "nan":
        a["inputs"][13, 2, 1] = np.nan
    elif kind == "inf":
        a["targets"][7, 0, 0] = -np.inf
    elif kind == "huge":
        a["inputs"] = a["inputs"].astype(np.float64)
        a["inputs"][11, 0, 0] = 1e300
    elif kind == "id":
        a["inputs"][9, 0] = 42
    elif kind == "end":
        a["targets"][4, a["target_lengths"][4] - 1] = 3
    path = write_dataset(tmp_path / f"{kind}.h5", a["inputs"], a["targets"],
                         input_lengths=a.get("input_lengths"),
                         target_lengths=a.get("target_lengths"),
                         input_vocab=None if kind in ("nan", "inf", "huge") else VOCAB,
                         target_vocab=None if kind in ("nan", "inf", "huge") else VOCAB,
                         validate=False)
    return path


VALUE_CASES = {
    "nan": ["/inputs: sample 13", "step 2, feature 1", "finite value", "found nan"],
    "inf": ["/targets: sample 7", "found -inf"],
    "huge": ["/inputs: sample 11", "float32 range", "found 1e+300"],
    "id": ["/inputs: sample 9", "step 0", "token id in 0..6", "found 42"],
    "end": ["/targets: sample 4", "end id 2", "found id 3"],
}


@pytest.mark.parametrize("cache_bytes", [0, datasets.DEFAULT_CACHE_BYTES])
@pytest.mark.parametrize("kind", VALUE_CASES)
def test_bad_values_raise_when_read_naming_the_sample(tmp_path, kind, cache_bytes):
    path = _bad_values(tmp_path, kind)
    with _open(path, cache_bytes=cache_bytes) as ds, pytest.raises(DatasetError) as info:
        for split in ("train", "val"):  # the structure is fine: values fail as read
            list(ds.split(split).iter_batches(8, seed=0, epoch=0))
    message = str(info.value)
    assert message.startswith(str(path))
    for needle in VALUE_CASES[kind]:
        assert needle in message, (needle, message)


def test_check_values_scans_the_whole_file_and_write_dataset_refuses_bad_data(tmp_path):
    path = _bad_values(tmp_path, "nan")
    with _open(path, cache_bytes=0) as ds, pytest.raises(DatasetError, match="sample 13"):
        ds.check_values()
    a = continuous_arrays(n=20, variable=False)
    a["inputs"][3, 0, 0] = np.inf
    target = tmp_path / "out.h5"
    with pytest.raises(DatasetError, match=r"out\.h5: /inputs: sample 3"):
        write_dataset(target, a["inputs"], a["targets"])
    assert not target.exists() and not list(tmp_path.glob(".out.h5*"))


# --- block shuffle ------------------------------------------------------------------------


@pytest.fixture
def blocky(tmp_path, monkeypatch):
    """200 samples in blocks of 5 (8 blocks per window): shuffle by blocks is visible."""
    row_bytes = 6 * 2 * 4 + 3 * 1 * 4
    monkeypatch.setattr(datasets, "BLOCK_BYTES", 5 * row_bytes)
    path = write_continuous(tmp_path / "c.h5", n=200, variable=False)
    with _open(path, val_fraction=0.0, cache_bytes=0) as ds:
        yield ds.split("train")


def _indices(split, **kwargs):
    kwargs.setdefault("seed", 3)
    kwargs.setdefault("epoch", 1)
    return [b.indices.tolist() for b in split.iter_batches(16, **kwargs)]


def test_block_shuffle_visits_every_sample_once_deterministically_for_seed_and_epoch(blocky):
    first = _indices(blocky)
    flat = [i for batch in first for i in batch]
    assert sorted(flat) == list(range(200))
    assert first == _indices(blocky)
    assert first != _indices(blocky, epoch=2) and first != _indices(blocky, seed=4)
    # blocks are shuffled as well as samples within a window
    assert flat != sorted(flat)
    blocks = {i // 5 for i in first[0]}
    assert len(blocks) > 2, blocks
    runs = sum(b == a + 1 for a, b in zip(flat, flat[1:]))
    assert runs < 0.3 * len(flat), "samples of a window are not shuffled together"


def test_batches_hold_the_values_of_their_indices(blocky):
    for batch in blocky.iter_batches(16, seed=0, epoch=0):
        again = blocky.read(batch.indices)
        np.testing.assert_array_equal(batch.x, again.x)
        np.testing.assert_array_equal(batch.y, again.y)


def test_start_batch_resumes_mid_epoch_without_reading_the_skipped_batches(blocky, monkeypatch):
    full = _indices(blocky)
    read_rows = []
    original = SequenceDataset._read_buffer

    def spy(self, group, rows):
        read_rows.extend(rows.tolist())
        return original(self, group, rows)

    monkeypatch.setattr(SequenceDataset, "_read_buffer", spy)
    resumed = _indices(blocky, start_batch=9)
    assert resumed == full[9:]
    assert len(read_rows) <= 200 - 9 * 16 + 40  # at most one window (8 blocks) more
    assert _indices(blocky, start_batch=13) == []


def test_drop_last_and_num_batches_agree(blocky):
    kept = _indices(blocky, drop_last=True)
    assert len(kept) == blocky.num_batches(16, drop_last=True) == 12
    assert all(len(b) == 16 for b in kept)
    assert blocky.num_batches(16) == 13
    with pytest.raises(ConfigError, match="batch_size"):
        blocky.num_batches(0)


def test_lazy_reading_is_bounded_by_one_window(blocky, monkeypatch):
    sizes = []
    original = SequenceDataset._read_buffer
    monkeypatch.setattr(SequenceDataset, "_read_buffer",
                        lambda self, g, rows: sizes.append(len(rows)) or original(self, g, rows))
    list(blocky.iter_batches(16, seed=0, epoch=0))
    assert max(sizes) <= 8 * 5 and sum(sizes) == 200


def test_padding_is_cleared_in_every_epoch_and_checks_are_not_skipped_for_it(tmp_path):
    a = continuous_arrays(n=30)
    for i, k in enumerate(a["input_lengths"]):
        a["inputs"][i, k:] = 7.0  # garbage padding, not zero
    path = write_dataset(tmp_path / "p.h5", a["inputs"], a["targets"],
                         input_lengths=a["input_lengths"], target_lengths=a["target_lengths"])
    with _open(path, cache_bytes=0, val_fraction=0.0) as ds:
        for epoch in range(3):
            for batch in ds.split("train").iter_batches(8, seed=0, epoch=epoch):
                for x, k in zip(batch.x, batch.x_lengths):
                    assert not x[k:].any() and (x[:k] != 0).all()


def test_cached_and_lazy_reading_give_the_same_batches(tmp_path):
    path = write_continuous(tmp_path / "c.h5", n=64)
    got = []
    for cache_bytes in (0, datasets.DEFAULT_CACHE_BYTES):
        with _open(path, cache_bytes=cache_bytes) as ds:
            got.append([(b.indices, b.x, b.y_lengths)
                        for b in ds.split("train").iter_batches(10, seed=5, epoch=2)])
    for (i0, x0, l0), (i1, x1, l1) in zip(*got, strict=True):
        np.testing.assert_array_equal(i0, i1)
        np.testing.assert_array_equal(x0, x1)
        np.testing.assert_array_equal(l0, l1)


# --- the validation split ----------------------------------------------------------------


def test_validation_split_depends_on_the_split_seed_only(tmp_path):
    path = write_continuous(tmp_path / "c.h5", n=300, variable=False)

    def val_rows(**kwargs):
        with _open(path, **kwargs) as ds:
            val, train = ds.split("val"), ds.split("train")
            for seed in (1, 2):  # training with different seeds does not move it
                list(train.iter_batches(32, seed=seed, epoch=0))
            assert not set(val.stored_rows) & set(train.stored_rows)
            return val.stored_rows.tolist()

    first = val_rows()
    assert len(first) == 30 and first == val_rows() == val_rows(split_seed=0)
    assert first != val_rows(split_seed=1)
    assert first != list(range(270, 300))  # drawn, not the tail


# --- normalisation -------------------------------------------------------------------------


def test_normalization_matches_numpy_on_the_valid_steps_of_the_training_split(tmp_path):
    a = continuous_arrays(n=120, f_in=3)
    a["inputs"][:, :, 2] = 4.0  # a constant feature
    path = write_dataset(tmp_path / "c.h5", a["inputs"], a["targets"],
                         input_lengths=a["input_lengths"], target_lengths=a["target_lengths"])
    with _open(path, cache_bytes=0) as ds:
        rows = ds.split("train").stored_rows
        norm = ds.normalization()
    mask = np.arange(6)[None, :] < a["input_lengths"][rows][:, None]
    valid = a["inputs"][rows][mask].astype(np.float64)
    np.testing.assert_allclose(norm.x_mean, valid.mean(0), rtol=1e-10)
    np.testing.assert_allclose(norm.x_std[:2], valid.std(0)[:2], rtol=1e-10)
    assert norm.x_std[2] == 1.0
    ymask = np.arange(3)[None, :] < a["target_lengths"][rows][:, None]
    np.testing.assert_allclose(norm.y_mean, a["targets"][rows][ymask].mean(0), rtol=1e-6)
    y = a["targets"][:5]
    np.testing.assert_allclose(norm.denormalize_y(norm.normalize_y(y)), y, atol=1e-5)
    again = datasets.Normalization.from_dict(norm.to_dict())
    np.testing.assert_array_equal(again.x_std, norm.x_std)


def test_token_sides_have_no_normalization(tmp_path):
    with _open(write_tokens(tmp_path / "t.h5")) as ds:
        norm = ds.normalization()
    assert norm.x_mean is None and norm.to_dict()["y_std"] is None
    ids = np.array([[3, 4, 2]])
    assert norm.normalize_x(ids) is ids


# --- the safe first open ----------------------------------------------------------------


def _fake_child(monkeypatch, code):
    monkeypatch.setattr(safe_open, "_child_command",
                        lambda *args: [sys.executable, "-c", code])


def test_a_crash_in_the_child_becomes_a_dataset_error_and_is_remembered(tmp_path, monkeypatch):
    path = write_continuous(tmp_path / "c.h5")
    _fake_child(monkeypatch, "import os, signal; print('step reading /inputs', flush=True); "
                             "os.kill(os.getpid(), signal.SIGSEGV)")
    with pytest.raises(DatasetError) as info:
        SequenceDataset.open(path)
    message = str(info.value)
    assert message.startswith(f"{path}: the file could not be read safely")
    assert "SIGSEGV" in message and "while reading /inputs" in message
    _fake_child(monkeypatch, "raise SystemExit('must not run')")
    safe_open.clear_cache()  # the verdict is on disk too
    with pytest.raises(DatasetError, match="SIGSEGV"):
        SequenceDataset.open(path)


def test_a_hang_in_the_child_times_out(tmp_path, monkeypatch):
    path = write_continuous(tmp_path / "c.h5")
    _fake_child(monkeypatch, "import time; print('step listing', flush=True); time.sleep(30)")
    with pytest.raises(DatasetError, match=r"did not finish within 0.5 s \(stuck while listing\)"):
        safe_open.check_file(path, mode="list", timeout=0.5)


def test_the_real_child_checks_once_per_file_version(tmp_path, monkeypatch):
    path = write_continuous(tmp_path / "c.h5")
    safe_open.check_file(path)
    monkeypatch.setattr(safe_open, "_run_child", lambda *a: pytest.fail("checked twice"))
    safe_open.check_file(path)
    safe_open.clear_cache()
    with SequenceDataset.open(path):  # from the disk cache
        pass
    bad = write_raw(tmp_path / "bad.h5", {"inputs": F32})
    monkeypatch.undo()
    with pytest.raises(DatasetError, match="/targets: expected the targets array"):
        SequenceDataset.open(bad)  # the child's structural verdict, as in-process


def test_the_child_reads_small_arrays_in_full_and_large_ones_at_both_ends(tmp_path, monkeypatch):
    with h5py.File(tmp_path / "z.h5", "w") as f:  # 40 kB in memory, tiny when compressed
        f.create_dataset("zeros", (1000, 10), dtype=np.float32, chunks=(100, 10),
                         compression="gzip")
    reads = []
    original = h5py.Dataset.__getitem__
    monkeypatch.setattr(h5py.Dataset, "__getitem__",
                        lambda self, key: reads.append(key) or original(self, key))
    with h5py.File(tmp_path / "z.h5", "r") as f:
        datasets.probe_array(f["zeros"], full_read_bytes=4000)
        assert reads == [slice(0, 1), slice(999, 1000)]
        reads.clear()
        datasets.probe_array(f["zeros"], full_read_bytes=40_000)
        assert reads[0] == slice(0, 125) and len(reads) == 8


def test_the_child_starts_without_torch(tmp_path):
    path = write_continuous(tmp_path / "c.h5")
    code = ("import sys; from workbench import safe_open; "
            f"safe_open.main(['--path', {str(path)!r}]); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).parents[2], timeout=60)
    assert out.stdout.splitlines()[-2:] == ['result {"ok": true}', "False"], out
