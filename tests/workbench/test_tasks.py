"""workbench.tasks: every task writes a file the reader accepts, deterministic for its
seed, doing what its name says; bad options fail with the flag named."""

from __future__ import annotations

import contextlib
import datetime as dt

import h5py
import numpy as np
import pytest

from tests.workbench.data_helpers import continuous_arrays, read_all
from workbench import tasks
from workbench.datasets import SequenceDataset
from workbench.errors import ConfigError
from workbench.tasks import TASKS, SplitArrays, generate, write_dataset

SMALL = {"sine": {"input_steps": 12, "target_steps": 4, "features": 2}, "copy": {"delay": 3},
         "reverse": {"length": 4}, "adding": {"length": 10}, "sort": {"length": 5},
         "dates": {}}
EXPECTED = {  # kind, T_in, F_in / V, T_out, F_out / V
    "sine": ("continuous", 12, 2, 4, 2),
    "copy": ("tokens", 13, 3 + 8 + 1, 11, 12),
    "reverse": ("tokens", 4, 3 + 8, 5, 11),
    "adding": ("continuous", 10, 2, 1, 1),
    "sort": ("tokens", 5, 3 + 10, 6, 13),
}


def _arrays(path):
    with h5py.File(path, "r") as f:
        return f["inputs"][()], f["targets"][()], dict(f.attrs)


def _width(side):
    return side.features if side.kind == "continuous" else side.vocab_size


def _open(path):
    return SequenceDataset.open(path, safe_check=False)


def test_the_registry_lists_every_task_with_options_and_defaults():
    assert set(TASKS) == {"sine", "copy", "reverse", "adding", "sort", "dates"}
    for info in TASKS.values():
        assert info.description and info.input_kind in ("continuous", "tokens")
        assert info.resolve({}) == info.defaults()
    assert [o.flag for o in TASKS["sine"].options][:3] == [
        "--input-steps", "--target-steps", "--features"]
    assert [o.flag for o in TASKS["copy"].options] == ["--length", "--delay", "--vocab"]
    assert TASKS["sort"].options[1].flag == "--max-value"


@pytest.mark.parametrize("name", list(TASKS))
def test_every_task_round_trips_through_the_reader(tmp_path, name):
    path = generate(name, tmp_path / f"{name}.h5", n=40, seed=1, **SMALL[name])
    with _open(path) as ds:
        s = ds.summary
        assert s.task == name and s.description and s.format_version == 1
        assert ds.check_values() == 40
        batches = list(ds.split("train").iter_batches(16, seed=0, epoch=0))
        assert sum(len(b) for b in batches) == 36
        if name in EXPECTED:
            got = (s.inputs.kind, s.inputs.steps, _width(s.inputs), s.targets.steps,
                   _width(s.targets))
            assert got == EXPECTED[name]
    x, y, attrs = _arrays(path)
    again = generate(name, tmp_path / "again.h5", n=40, seed=1, **SMALL[name])
    other = generate(name, tmp_path / "other.h5", n=40, seed=2, **SMALL[name])
    x2, y2, _ = _arrays(again)
    x3, _, _ = _arrays(other)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    assert not np.array_equal(x, x3)
    assert attrs["task_seed"] == 1 and attrs["task_n"] == 40


def test_copy_waits_through_the_delay_then_emits_the_string(tmp_path):
    path = generate("copy", tmp_path / "c.h5", n=20, seed=0, length=4, delay=6, vocab=3)
    x, y, _ = _arrays(path)
    assert x.shape == (20, 10) and y.shape == (20, 5)
    np.testing.assert_array_equal(y[:, :4], x[:, :4])
    assert (y[:, 4] == 2).all() and (x[:, 4:] == 3 + 3).all() and x[:, :4].max() < 6


def test_reverse_and_sort_targets(tmp_path):
    x, y, _ = _arrays(generate("reverse", tmp_path / "r.h5", n=20, seed=0, length=6))
    np.testing.assert_array_equal(y[:, :6], x[:, ::-1])
    x, y, _ = _arrays(generate("sort", tmp_path / "s.h5", n=20, seed=0, length=6, max_value=3))
    np.testing.assert_array_equal(y[:, :6], np.sort(x, axis=1))
    assert x.max() <= 3 + 3 and (y[:, 6] == 2).all()


def test_adding_target_is_the_sum_of_the_two_marked_values(tmp_path):
    x, y, _ = _arrays(generate("adding", tmp_path / "a.h5", n=30, seed=0, length=8))
    assert (x[:, :, 1].sum(axis=1) == 2).all()
    assert (x[:, :4, 1].sum(axis=1) == 1).all()  # one marker in each half
    np.testing.assert_allclose(y[:, 0, 0], (x[:, :, 0] * x[:, :, 1]).sum(axis=1), rtol=1e-6)


def test_dates_translate_human_dates_to_iso(tmp_path):
    path = generate("dates", tmp_path / "d.h5", n=60, seed=0)
    with _open(path) as ds:
        vocab = ds.summary.inputs.vocab
        assert ds.summary.inputs.variable_length and not ds.summary.targets.variable_length
        batch = read_all(ds.split("train"))
    formats = ["%d %b %Y", "%B %d, %Y", "%m/%d/%y", "%d.%m.%Y", "%a %d %b %Y", "%d %B %Y",
               "%b %d, %Y", "%A, %B %d, %Y"]
    for ids, n, target in zip(batch.x, batch.x_lengths, batch.y):
        text = "".join(vocab[i] for i in ids[:n])
        iso = "".join(vocab[i] for i in target[:-1])
        assert target[-1] == 2
        parsed = set()
        for fmt in formats:
            with contextlib.suppress(ValueError):
                parsed.add(dt.datetime.strptime(text, fmt).date())
        assert {d.replace(year=d.year - 100) if d.year > 2049 else d for d in parsed} == \
            {dt.date.fromisoformat(iso)}, (text, iso)


@pytest.mark.parametrize(("call", "needle"), [
    (lambda p: generate("copy", p, n=10, seed=0, delay=-1), "--delay must be at least 0"),
    (lambda p: generate("copy", p, n=10, seed=0, lenght=3), "no option 'lenght'"),
    (lambda p: generate("sine", p, n=10, seed=0, features=1.5), "--features expects int"),
    (lambda p: generate("adding", p, n=1, seed=0), "--n must be at least 2"),
    (lambda p: generate("sort", p, n=10, seed=-1), "--seed must be at least 0"),
    (lambda p: generate("unknown", p, n=10, seed=0), "unknown task 'unknown'; the tasks are"),
])
def test_bad_options_raise_config_errors_naming_the_option(tmp_path, call, needle):
    with pytest.raises(ConfigError, match=needle):
        call(tmp_path / "x.h5")
    assert not (tmp_path / "x.h5").exists()


def test_write_dataset_with_splits_and_compression(tmp_path):
    a, b = continuous_arrays(n=50, seed=1), continuous_arrays(n=9, seed=2)
    path = write_dataset(
        tmp_path / "s.h5", compression="gzip", chunk_rows=8,
        splits={"train": SplitArrays(a["inputs"], a["targets"], a["input_lengths"],
                                     a["target_lengths"]),
                "val": SplitArrays(b["inputs"], b["targets"], b["input_lengths"],
                                   b["target_lengths"])})
    with h5py.File(path, "r") as f:
        assert f["train/inputs"].compression == "gzip" and f["train/inputs"].chunks[0] == 8
    with SequenceDataset.open(path, safe_check=False, cache_bytes=0) as ds:
        assert ds.summary.splits == {"train": 50, "val": 9}
        batch = read_all(ds.split("val"))
    np.testing.assert_array_equal(batch.x_lengths, b["input_lengths"])
    with pytest.raises(ValueError, match="split names"):
        write_dataset(tmp_path / "t.h5", splits={"dev": SplitArrays(a["inputs"], a["targets"])})


def test_a_failed_write_leaves_the_previous_file_untouched(tmp_path):
    path = generate("reverse", tmp_path / "r.h5", n=10, seed=0)
    before = path.read_bytes()
    x = np.full((4, 3), 99, np.int64)  # ids outside the vocabulary
    y = np.full((4, 2), 2, np.int64)
    with pytest.raises(Exception, match="token id"):
        write_dataset(path, x, y, input_vocab=tasks.make_vocab("ab"),
                      target_vocab=tasks.make_vocab("ab"))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["r.h5"]
