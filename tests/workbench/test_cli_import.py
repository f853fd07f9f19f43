"""The import subcommands as a user types them: every command of docs/your-data.md
prints what the page says, --json is one strict line, --force and --out are
respected, hostile files exit 2 with one line and no file; inspect shows a recorded
time split and warns about overlapping windows on stderr only."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from workbench.cli import main
from workbench.datasets import SequenceDataset
from workbench.importers import looks_like_overlapping_windows
from workbench.tasks import TASKS

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "your-data.md"


def strict_json(text: str) -> dict:
    def refuse(constant):
        raise AssertionError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


def console_examples(markdown: str) -> list[tuple[list[str], list[str]]]:
    """(argv after `python main.py`, the output lines) of each ```console block."""
    examples = []
    for block in re.findall(r"```console\n(.*?)```", markdown, flags=re.S):
        lines = block.rstrip("\n").split("\n")
        assert lines[0].startswith("$ python main.py "), lines[0]
        examples.append((lines[0][len("$ python main.py "):].split(), lines[1:]))
    return examples


@pytest.fixture
def in_docs_copy(tmp_path, monkeypatch):
    """A folder holding docs/examples, as the page's commands expect, as the cwd."""
    shutil.copytree(ROOT / "docs" / "examples", tmp_path / "docs" / "examples")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(capsys, argv) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def user_error(capsys, argv) -> str:
    code, out, err = run(capsys, argv)
    lines = err.strip().splitlines()
    assert code == 2 and out == "", (code, out, err)
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def test_every_command_of_the_page_prints_what_the_page_says(in_docs_copy, capsys):
    examples = console_examples(DOC.read_text(encoding="utf-8"))
    assert len(examples) >= 6
    for argv, expected in examples:
        code, out, err = run(capsys, argv)
        if expected and expected[0].startswith("error: "):
            assert (code, err.splitlines()) == (2, expected), argv
        else:
            assert (code, out.splitlines(), err) == (0, expected, ""), argv
    assert {p.name for p in in_docs_copy.glob("*.h5")} == {
        "phrases.h5", "phrases-chars.h5", "sensor.h5", "stations.h5"}


def test_the_pages_h5py_example_writes_a_file_split_by_time(tmp_path, monkeypatch):
    block = next(b for b in re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"),
                                       flags=re.S) if "my-series.h5" in b)
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "your-data.md", "exec"), {})
    with SequenceDataset.open(tmp_path / "my-series.h5", safe_check=False) as ds:
        assert ds.summary.splits == {"train": 771, "val": 171}
        assert looks_like_overlapping_windows(ds) is None


def test_json_is_one_strict_line(tmp_path, capsys):
    out = tmp_path / "p.h5"
    code, text, err = run(capsys, ["import-text", str(ROOT / "docs/examples/phrases.tsv"),
                                   "--out", str(out), "--json", "--level", "char"])
    assert code == 0 and err == "" and len(text.strip().splitlines()) == 1
    data = strict_json(text)
    assert data["kind"] == "text" and data["path"] == str(out) and data["pairs"] == 44
    assert data["splits"] == {"train": 36, "val": 4, "test": 4}
    assert set(data["dropped"]) == {"over_max_length", "empty", "bad_lines"}
    code, text, err = run(capsys, [
        "import-series", str(ROOT / "docs/examples/sensor.csv"), "--out", str(tmp_path / "s.h5"),
        "--input-cols", "temperature", "--target-cols", "temperature", "--window", "20",
        "--horizon", "5", "--missing", "drop-windows", "--stride", "2", "--json"])
    assert code == 0 and err == "" and len(text.strip().splitlines()) == 1
    data = strict_json(text)
    assert data["kind"] == "series" and data["missing_cells"] == 1
    assert data["input_shape"] == [20, 1] and data["boundaries"][0]["val"]["start"] == 255


def test_an_existing_out_needs_force_and_the_input_is_never_the_out(tmp_path, capsys):
    src = tmp_path / "p.tsv"
    shutil.copy(ROOT / "docs/examples/phrases.tsv", src)
    out = tmp_path / "p.h5"
    out.write_bytes(b"precious")
    line = user_error(capsys, ["import-text", str(src), "--out", str(out)])
    assert line == f"error: {out}: exists; pass --force to replace it"
    assert out.read_bytes() == b"precious"
    assert run(capsys, ["import-text", str(src), "--out", str(out), "--force"])[0] == 0
    assert out.read_bytes()[:8] != b"precious"
    original = src.read_bytes()
    for spelling in (str(src), str(tmp_path / "." / "p.tsv")):
        line = user_error(capsys, ["import-text", str(src), "--out", spelling, "--force"])
        assert "the output would replace the file being imported" in line
    assert src.read_bytes() == original
    line = user_error(capsys, ["import-text", str(src), "--out", str(tmp_path)])
    assert "it is a folder" in line


HOSTILE = [
    ("ragged.tsv", b"a\tb\nc\td\te\n", "line 2: 3 fields, expected 2"),
    ("open.tsv", b'a\tb\n"c\td\n', "line 2: a quoted field opens here and is never closed"),
    ("line.tsv", b"x" * (10 * 2**20), "line 1: longer than 1,048,576 bytes"),
    ("latin.tsv", "caf\xe9\tcoffee\n".encode("latin-1"), "line 1: byte 0xe9 at offset 3"),
    ("empty.tsv", b"", "the file is empty"),
]


@pytest.mark.parametrize("name,data,message", HOSTILE)
def test_hostile_text_files_exit_2_with_one_line_and_no_file(tmp_path, capsys, name, data,
                                                             message):
    src = tmp_path / name
    src.write_bytes(data)
    line = user_error(capsys, ["import-text", str(src), "--out", str(tmp_path / "o.h5")])
    assert line.startswith(f"error: {src}: ") and message in line
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_skip_bad_lines_warns_on_stderr(tmp_path, capsys):
    src = tmp_path / "r.tsv"
    src.write_bytes(b"a\tb\nc\td\te\nf\tg\n")
    code, out, err = run(capsys, ["import-text", str(src), "--out", str(tmp_path / "o.h5"),
                                  "--skip-bad-lines", "--val-fraction", "0",
                                  "--test-fraction", "0"])
    assert code == 0 and "1 bad lines skipped (first: line 2: 3 fields" in out
    assert err == "warning: 1 bad lines skipped; the first: line 2: 3 fields, expected 2 " \
                  "(as on line 1)\n"


@pytest.mark.parametrize("text,argv,message", [
    ("t,v\n", [], "has a header (line 1) but no rows"),
    ("t,v\n0,1\n1,x\n", [], "line 3 (data row 2), column 'v': 'x' is not a number"),
    ("t,v\n0,1\n1,2\n", ["--input-cols", "nope"], "--input-cols 'nope': no such column"),
    ("t,v\n0,1\n1,2\n", ["--window", "0"], "--window must be at least 1"),
])
def test_hostile_series_files_exit_2_with_one_line_and_no_file(tmp_path, capsys, text, argv,
                                                               message):
    src = tmp_path / "s.csv"
    src.write_text(text)
    base = {"--input-cols": "v", "--target-cols": "v", "--window": "1", "--horizon": "1"}
    for i in range(0, len(argv), 2):
        base[argv[i]] = argv[i + 1]
    flags = [x for kv in base.items() for x in kv]
    line = user_error(capsys, ["import-series", str(src), "--out", str(tmp_path / "o.h5"),
                               "--val-fraction", "0", "--test-fraction", "0", *flags])
    assert message in line
    assert [p.name for p in tmp_path.iterdir()] == ["s.csv"]


def test_inspect_json_carries_the_time_split_and_stays_quiet(in_docs_copy, capsys):
    assert main(["import-series", "docs/examples/stations.csv", "--out", "st.h5",
                 "--input-cols", "level", "--target-cols", "level", "--window", "10",
                 "--horizon", "3", "--series-col", "station"]) == 0
    code, out, err = run(capsys, ["inspect", "st.h5", "--json"])
    assert code == 0 and err == "" and len(out.strip().splitlines()) == 1
    split = strict_json(out)["time_split"]
    assert (split["window"], split["horizon"], split["stride"]) == (10, 3, 1)
    assert [s["series"] for s in split["series"]] == ["north", "south"]
    assert split["series"][1]["test"] == {"start": 127, "end": 150, "windows": 11,
                                          "first_time": None, "last_time": None}


def test_inspect_warns_on_stderr_about_windows_of_one_series(tmp_path, capsys):
    import numpy as np

    from workbench.tasks import write_dataset

    series = np.cumsum(np.random.default_rng(0).normal(size=500)).astype(np.float32)
    x = np.stack([series[s:s + 20] for s in range(470)])[:, :, None]
    y = np.stack([series[s + 20:s + 25] for s in range(470)])[:, :, None]
    path = write_dataset(tmp_path / "w.h5", x, y)
    code, out, err = run(capsys, ["inspect", str(path), "--json"])
    assert code == 0 and len(out.strip().splitlines()) == 1 and strict_json(out)
    assert err.count("\n") == 1 and err.startswith(f"warning: {path}: its samples look like "
                                                   "overlapping windows of one series")
    assert "import-series" in err
    code, out, err = run(capsys, ["inspect", str(path)])
    assert code == 0 and "warning:" not in out and err.startswith("warning:")


def test_inspect_stays_quiet_on_built_in_tasks(tmp_path, capsys):
    for task in list(TASKS)[:3]:  # every task is checked directly in test_import_series
        out = tmp_path / f"{task}.h5"
        assert main(["make-dataset", task, "--out", str(out), "--n", "200"]) == 0
        code, _, err = run(capsys, ["inspect", str(out)])
        assert code == 0 and err == ""


def test_help_lists_the_flags_of_the_issue(capsys):
    for command, flags in {
        "import-text": ["--out", "--level", "--source-col", "--target-col", "--single",
                        "--lowercase", "--max-length", "--min-count", "--val-fraction",
                        "--test-fraction", "--seed", "--encoding", "--skip-bad-lines", "--force",
                        "--json"],
        "import-series": ["--out", "--input-cols", "--target-cols", "--window", "--horizon",
                          "--stride", "--time-col", "--series-col", "--val-fraction",
                          "--test-fraction", "--missing", "--force", "--json"],
    }.items():
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        for flag in flags:
            assert flag in text, (command, flag)


def test_a_bad_value_in_the_first_samples_does_not_make_inspect_fail(tmp_path, capsys):
    import numpy as np

    from workbench.tasks import write_dataset

    x = np.random.default_rng(0).normal(size=(20, 6, 1)).astype(np.float32)
    x[0, 2, 0] = np.nan
    path = write_dataset(tmp_path / "nan.h5", x, x[:, :2], validate=False)
    code, out, err = run(capsys, ["inspect", str(path)])
    assert code == 0 and err == "" and "stored:   all 20" in out
    line = user_error(capsys, ["inspect", str(path), "--check"])
    assert "NaN" in line
