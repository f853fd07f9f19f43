"""import-series: windows split by time (no validation or test window shares a step
with training), missing values refused, interpolated or dropped with the counts one
computes by hand, several series never mixed, hostile files refused with no file
left; and the overlap warning for files that were not split by time."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

import workbench.importers.series as series_module
from workbench.datasets import SequenceDataset
from workbench.errors import ConfigError, DatasetError
from workbench.importers import (
    SeriesOptions,
    import_series,
    looks_like_overlapping_windows,
    read_time_split,
    scan_series,
)
from workbench.tasks import TASKS, SplitArrays, generate, write_dataset

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


def steps_csv(path: Path, n: int, *, start: int = 0) -> Path:
    """A series whose value at each step is the step's number: windows show their steps."""
    lines = ["t,v,w"] + [f"{i},{i}.0,{-i}" for i in range(start, start + n)]
    path.write_text("\n".join(lines) + "\n")
    return path


def read_splits(out: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    with h5py.File(out) as f:
        return {s: (f[s]["inputs"][:], f[s]["targets"][:]) for s in ("train", "val", "test")
                if s in f}


def options(**kw) -> SeriesOptions:
    base = {"input_cols": ("v",), "target_cols": ("v",), "window": 12, "horizon": 4,
            "val_fraction": 0.2, "test_fraction": 0.2}
    return SeriesOptions(**{**base, **kw})


def test_windows_hold_the_rows_they_say(tmp_path):
    src = steps_csv(tmp_path / "s.csv", 200)
    import_series(src, tmp_path / "s.h5", options(input_cols="v,w", target_cols="w", stride=5))
    x, y = read_splits(tmp_path / "s.h5")["train"]
    assert x.shape == (21, 12, 2) and y.shape == (21, 4, 1) and x.dtype == np.float32
    assert np.array_equal(x[3, :, 0], np.arange(15, 27))  # stride 5: the 4th starts at 15
    assert np.array_equal(x[3, :, 1], -np.arange(15, 27))
    assert np.array_equal(y[3, :, 0], -np.arange(27, 31))  # then the next 4 steps of w


def test_no_val_or_test_window_shares_a_step_with_a_training_window(tmp_path):
    src = steps_csv(tmp_path / "s.csv", 200)
    for stride in (1, 3, 7):
        out = tmp_path / f"s{stride}.h5"
        import_series(src, out, options(stride=stride))
        splits = read_splits(out)
        steps = {s: set(np.concatenate([x.reshape(-1), y.reshape(-1)]).astype(int).tolist())
                 for s, (x, y) in splits.items()}
        train_targets = set(splits["train"][1].reshape(-1).astype(int).tolist())
        for held_out in ("val", "test"):
            assert not steps[held_out] & train_targets
            assert not steps[held_out] & steps["train"]
        assert not steps["val"] & steps["test"]
        assert max(steps["train"]) < 120 <= min(steps["val"])
        assert max(steps["val"]) < 160 <= min(steps["test"])


def test_with_stride_1_the_gap_at_each_boundary_is_window_plus_horizon(tmp_path):
    src = steps_csv(tmp_path / "s.csv", 200)
    summary = import_series(src, tmp_path / "s.h5", options())
    splits = read_splits(tmp_path / "s.h5")
    starts = {s: x[:, 0, 0].astype(int) for s, (x, _) in splits.items()}
    for split, (lo, hi) in {"train": (0, 120), "val": (120, 160), "test": (160, 200)}.items():
        assert starts[split][0] == lo  # the first window starts at the span's first step
        assert starts[split][-1] + 16 == hi  # the last one's targets end at the boundary
        assert np.all(np.diff(starts[split]) == 1)
    assert starts["val"][0] - starts["train"][-1] == 12 + 4
    assert starts["test"][0] - starts["val"][-1] == 12 + 4
    # 185 windows fit the whole series; 15 straddle each of the two boundaries
    assert summary.splits == {"train": 105, "val": 25, "test": 25}
    assert summary.straddling_windows == 185 - 155 == 2 * (16 - 1)


def test_the_boundaries_are_recorded_and_read_back(tmp_path):
    src = steps_csv(tmp_path / "s.csv", 200)
    import_series(src, tmp_path / "s.h5", options(time_col="t"))
    with h5py.File(tmp_path / "s.h5") as f:
        assert f.attrs["split_by"] == "time" and f.attrs["window"] == 12
        assert list(f["val"].attrs["start_steps"]) == [120]
        assert list(f["val"].attrs["end_steps"]) == [160]
    split = read_time_split(tmp_path / "s.h5")
    assert split is not None and (split.window, split.horizon, split.stride) == (12, 4, 1)
    val = split.splits["val"][0]
    assert (val.start, val.end, val.windows, val.first_time, val.last_time) == \
        (120, 160, 25, "120", "159")
    lines = split.lines()
    assert "      val   steps 120-159 (120 .. 159), 25 windows" in lines
    assert read_time_split(generate("sine", tmp_path / "sine.h5", n=20)) is None


def test_a_split_without_windows_names_the_length_it_needs(tmp_path):
    short = steps_csv(tmp_path / "short.csv", 77)
    with pytest.raises(DatasetError, match=r"short\.csv: the val split would hold no window: "
                                           r"a window of --window 12 \+ --horizon 4 = 16 steps .*"
                                           r"a series needs at least 78 steps, the series has 77"):
        import_series(short, tmp_path / "short.h5", options())
    assert not (tmp_path / "short.h5").exists()
    summary = import_series(steps_csv(tmp_path / "ok.csv", 78), tmp_path / "ok.h5", options())
    assert summary.splits == {"train": 31, "val": 1, "test": 1}


def test_missing_values_are_refused_naming_line_row_and_column(tmp_path):
    src = tmp_path / "m.csv"
    src.write_text("t,v\n" + "".join(f"{i},{i}\n" for i in range(5)) + "5,\n"
                   + "".join(f"{i},{i}\n" for i in range(6, 100)))
    with pytest.raises(DatasetError, match=r"m\.csv: line 7 \(data row 6\), column 'v': a "
                                           r"missing value \(an empty cell\); pass --missing "
                                           r"interpolate"):
        import_series(src, tmp_path / "m.h5", options(window=3, horizon=1))
    assert not (tmp_path / "m.h5").exists()


def test_interpolate_fills_linearly_and_counts(tmp_path):
    src = tmp_path / "m.csv"
    rows = [(i, float(i), float(10 + i)) for i in range(60)]
    text = ["t,a,b"]
    for i, a, b in rows:
        cell_a = "" if i in (1, 2) else ("NaN" if i == 40 else f"{a:g}")
        cell_b = "NA" if i == 3 else f"{b:g}"
        text.append(f"{i},{cell_a},{cell_b}")
    src.write_text("\n".join(text) + "\n")
    summary = import_series(src, tmp_path / "m.h5", SeriesOptions(
        input_cols="a,b", target_cols="b", window=3, horizon=1, missing="interpolate",
        val_fraction=0.0, test_fraction=0.0))
    assert (summary.missing_cells, summary.filled_cells) == (4, 4)
    x, y = read_splits(tmp_path / "m.h5")["train"]
    assert np.array_equal(x[0], [[0, 10], [1, 11], [2, 12]])  # a filled at 1, 2 (0 .. 3)
    assert np.array_equal(y[0], [[13]])  # b filled at 3 (12 .. 14)
    assert np.array_equal(x[38, :, 0], [38, 39, 40])


def test_interpolate_works_across_blocks_of_rows(tmp_path, monkeypatch):
    src = tmp_path / "m.csv"
    src.write_text("t,v\n" + "".join(f"{i},{'' if 5 <= i < 23 else i}\n" for i in range(100)))
    o = options(window=3, horizon=2, missing="interpolate", stride=2)
    whole = import_series(src, tmp_path / "a.h5", o)
    monkeypatch.setattr(series_module, "BLOCK_ROWS", 4)  # the gap spans five blocks
    pieces = import_series(src, tmp_path / "b.h5", o)
    a, b = read_splits(tmp_path / "a.h5"), read_splits(tmp_path / "b.h5")
    assert whole.splits == pieces.splits and whole.filled_cells == pieces.filled_cells == 18
    for split in a:
        assert np.array_equal(a[split][0], b[split][0])
        assert np.array_equal(a[split][1], b[split][1])
    assert np.allclose(a["train"][0][:, :, 0], a["train"][0][:, :1, 0] + np.arange(3))


@pytest.mark.parametrize("gap,line,where", [(0, 2, "start"), (59, 61, "end")])
def test_interpolate_refuses_a_gap_at_either_end(tmp_path, gap, line, where):
    src = tmp_path / "m.csv"
    src.write_text("t,v\n" + "".join(f"{i},{'' if i == gap else i}\n" for i in range(60)))
    with pytest.raises(DatasetError, match=rf"line {line}, column 'v': a missing value at the "
                                           rf"{where} of the series, with no value"):
        import_series(src, tmp_path / "m.h5", options(window=3, horizon=1, missing="interpolate"))
    assert not (tmp_path / "m.h5").exists()


def test_drop_windows_drops_every_window_holding_a_missing_value(tmp_path):
    src = tmp_path / "m.csv"
    cells = ["t,a,b"] + [f"{i},{'' if i == 5 else i},{'' if i == 12 else i}" for i in range(20)]
    src.write_text("\n".join(cells) + "\n")
    # windows of 3 + 1 starting at 0..16 (17); a is an input only, b a target only:
    # a@5 is in the inputs of the windows starting at 3, 4, 5; b@12 is the target of
    # the window starting at 9: 4 dropped
    only = SeriesOptions(input_cols="a", target_cols="b", window=3, horizon=1,
                         missing="drop-windows", val_fraction=0, test_fraction=0)
    summary = import_series(src, tmp_path / "a.h5", only)
    assert (summary.missing_cells, summary.dropped_windows, summary.splits) == \
        (2, 4, {"train": 13})
    x, _ = read_splits(tmp_path / "a.h5")["train"]
    assert sorted(set(range(17)) - set(x[:, 0, 0].astype(int).tolist())) == [3, 4, 5, 9]
    # with b an input too, b@12 is also in the inputs of the windows at 10, 11, 12: 7
    both = SeriesOptions(input_cols="a,b", target_cols="b", window=3, horizon=1,
                         missing="drop-windows", val_fraction=0, test_fraction=0)
    assert import_series(src, tmp_path / "b.h5", both).dropped_windows == 7


def test_drop_windows_that_empties_a_split_is_refused(tmp_path):
    src = tmp_path / "m.csv"
    src.write_text("t,v\n" + "".join(f"{i},{'' if i >= 80 else i}\n" for i in range(100)))
    with pytest.raises(DatasetError, match="the test split is left with no window"):
        import_series(src, tmp_path / "m.h5", options(window=3, horizon=1, missing="drop-windows"))
    assert not (tmp_path / "m.h5").exists()


def test_several_series_are_windowed_and_split_each_on_its_own(tmp_path):
    src = tmp_path / "two.csv"
    rows = ["id,step,v"]
    for i in range(100):  # interleaved; A has 60 steps, B 100
        if i < 60:
            rows.append(f"A,{i},{1000 + i}")
        rows.append(f"B,{i},{2000 + i}")
    src.write_text("\n".join(rows) + "\n")
    o = SeriesOptions(input_cols="v", target_cols="v", window=5, horizon=2, series_col="id",
                      time_col="step", val_fraction=0.2, test_fraction=0.2)
    summary = import_series(src, tmp_path / "two.h5", o)
    for split, (x, y) in read_splits(tmp_path / "two.h5").items():
        whole = np.concatenate([x[:, :, 0], y[:, :, 0]], axis=1)
        assert np.all(np.diff(whole, axis=1) == 1), split  # consecutive steps of one series
        assert np.all((whole[:, 0] >= 2000) == (whole[:, -1] >= 2000))
    # A: train 0-35 (30 windows), val 36-47, test 48-59 (6 each); B: 60, 20, 20 steps
    assert summary.splits == {"train": 30 + 54, "val": 6 + 14, "test": 6 + 14}
    split = read_time_split(tmp_path / "two.h5")
    assert split.series == ("A", "B") and split.steps == (60, 100)
    assert [(s.start, s.end) for s in split.splits["val"]] == [(36, 48), (60, 80)]
    assert [s.first_time for s in split.splits["test"]] == ["48", "80"]


BAD = {
    "empty": ("", DatasetError, r"the file is empty"),
    "header only": ("t,v\n", DatasetError, r"has a header \(line 1\) but no rows"),
    "ragged": ("t,v\n0,1\n1,2,3\n", DatasetError, r"line 3: 3 fields, expected 2 as in the "
                                                 r"header"),
    "text": ("t,v\n0,1\n1,2\n2,abc\n", DatasetError, r"line 4 \(data row 3\), column 'v': 'abc' "
                                                   r"is not a number"),
    "inf": ("t,v\n0,1\n1,inf\n", DatasetError, r"line 3 \(data row 2\), column 'v': 'inf' is "
                                              r"not a finite number"),
    "too big": ("t,v\n0,1e39\n1,1\n", DatasetError, r"line 2 \(data row 1\), column 'v': '1e39' is "
                                              r"not a finite number that fits a 32-bit float"),
    "backwards": ("t,v\n0,1\n2,2\n1,3\n", DatasetError, r"line 4, column 't': 1 comes before 2 "
                                                       r"\(line 3\); the rows must be in time "
                                                       r"order"),
    "open quote": ('t,v\n0,1\n"1,2\n', DatasetError, r"line 3: a quoted field opens here"),
    "latin-1": ("t,v\n0,1\n1,2 \xb0C\n", DatasetError, r"line 3: byte 0xb0 at offset 12"),
    "unknown column": ("t,x\n0,1\n", ConfigError, r"--input-cols 'v': no such column in the "
                                                 r"header \(line 1\); the columns are 't', 'x'"),
    "one column": ("t;v\n0;1\n", ConfigError, r"the header was read as one column"),
    "long line": ("t,v\n0," + "1" * (2 * 2**20) + "\n", DatasetError, r"line 2: longer than"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_hostile_files_are_refused_by_line_and_column_and_leave_no_file(tmp_path, name):
    text, error, message = BAD[name]
    src = tmp_path / "bad.csv"
    src.write_bytes(text.encode("latin-1"))
    with pytest.raises(error, match=r"bad\.csv: .*" + message):
        import_series(src, tmp_path / "bad.h5", options(window=1, horizon=1, time_col="t",
                                                        val_fraction=0, test_fraction=0))
    assert [p.name for p in tmp_path.iterdir()] == ["bad.csv"]


def test_a_failure_late_in_the_file_leaves_the_old_output_as_it_was(tmp_path):
    out = tmp_path / "s.h5"
    import_series(steps_csv(tmp_path / "s.csv", 200), out, options())
    before = out.read_bytes()
    src = steps_csv(tmp_path / "late.csv", 20_000)
    with src.open("a") as f:
        f.write("20000,oops,0\n")
    with pytest.raises(DatasetError, match=r"line 20002 \(data row 20001\), column 'v'"):
        import_series(src, out, options())
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["late.csv", "s.csv", "s.h5"]


def test_semicolons_and_options_are_checked(tmp_path):
    src = tmp_path / "eu.csv"
    src.write_text("t;v\n" + "".join(f"{i};{i}\n" for i in range(100)))
    summary = import_series(src, tmp_path / "eu.h5", options(window=3, horizon=1, delimiter=";"))
    assert summary.rows == 100
    for kw, message in [({"window": 0}, "--window must be at least 1"),
                        ({"missing": "guess"}, "--missing must be one of"),
                        ({"input_cols": ""}, "--input-cols needs at least one column"),
                        ({"time_col": "v"}, "--time-col 'v' is also an input"),
                        ({"test_fraction": 1.0}, "--test-fraction must be at least 0 and "
                                                 "below 1")]:
        with pytest.raises(ConfigError, match=message):
            import_series(src, tmp_path / "x.h5", options(**kw))


def test_scan_gives_the_numbers_the_import_gives(tmp_path):
    o = SeriesOptions(input_cols="temperature,humidity", target_cols="temperature", window=28,
                      horizon=7, time_col="date", missing="drop-windows")
    scanned = scan_series(EXAMPLES / "sensor.csv", o)
    done = import_series(EXAMPLES / "sensor.csv", tmp_path / "s.h5", o)
    assert scanned.complete and scanned.path is None
    for key in ("rows", "splits", "missing_cells", "dropped_windows", "straddling_windows",
                "input_shape", "target_shape"):
        assert getattr(scanned, key) == getattr(done, key), key
    first = scan_series(EXAMPLES / "sensor.csv", o, max_rows=200)
    assert not first.complete and first.rows == 200 and 300 < first.estimated_rows < 450


# --- the overlap warning ------------------------------------------------------------------


def windows_file(path: Path, stride: int, splits: bool = False) -> Path:
    series = np.cumsum(np.random.default_rng(0).normal(size=600)).astype(np.float32)
    starts = np.arange(0, 600 - 30 + 1, stride)
    x = np.stack([series[s:s + 24] for s in starts])[:, :, None]
    y = np.stack([series[s + 24:s + 30] for s in starts])[:, :, None]
    if splits:
        cut = len(x) * 3 // 4
        return write_dataset(path, splits={"train": SplitArrays(x[:cut], y[:cut]),
                                           "val": SplitArrays(x[cut:], y[cut:])})
    return write_dataset(path, x, y)


@pytest.mark.parametrize("stride", [1, 6, 24])
def test_the_overlap_warning_fires_on_windows_of_one_series(tmp_path, stride):
    with SequenceDataset.open(windows_file(tmp_path / "w.h5", stride), safe_check=False) as ds:
        warning = looks_like_overlapping_windows(ds)
    assert warning is not None
    assert f"shifted by {stride} step(s)" in warning and "import-series" in warning


@pytest.mark.parametrize("task", list(TASKS))
def test_the_overlap_warning_stays_quiet_on_every_built_in_task(tmp_path, task):
    with SequenceDataset.open(generate(task, tmp_path / f"{task}.h5", n=300, seed=1),
                              safe_check=False) as ds:
        assert looks_like_overlapping_windows(ds) is None


def test_the_overlap_warning_stays_quiet_where_split_groups_decide(tmp_path):
    with SequenceDataset.open(windows_file(tmp_path / "w.h5", 1, splits=True),
                              safe_check=False) as ds:
        assert looks_like_overlapping_windows(ds) is None
    import_series(steps_csv(tmp_path / "s.csv", 200), tmp_path / "s.h5", options())
    with SequenceDataset.open(tmp_path / "s.h5", safe_check=False) as ds:
        assert looks_like_overlapping_windows(ds) is None


def test_a_huge_stride_and_an_unmarked_utf16_file_are_one_clear_line(tmp_path):
    """Found by the CLI fuzz: both reached a traceback through the importers' own API
    (which the GUI's dialog calls)."""
    from workbench.errors import ConfigError, DatasetError
    from workbench.importers import SeriesOptions, TextOptions, import_series, import_text

    csv = tmp_path / "s.csv"
    csv.write_text("a\n" + "\n".join(str(i) for i in range(30)) + "\n")
    with pytest.raises(ConfigError, match="--stride must be at most"):
        import_series(csv, tmp_path / "s.h5", SeriesOptions(
            input_cols=("a",), target_cols=("a",), window=4, horizon=1,
            stride=99999999999999999999))
    pairs = tmp_path / "p.tsv"
    pairs.write_bytes("go\tva\n".encode("utf-16-le"))
    with pytest.raises(DatasetError, match="not valid utf-16"):
        import_text(pairs, tmp_path / "p.h5", TextOptions(encoding="utf-16"))
    assert not (tmp_path / "s.h5").exists() and not (tmp_path / "p.h5").exists()
