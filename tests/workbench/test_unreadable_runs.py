"""Issue 10, failure 2: one bad run folder never breaks the list.

With `"step": "many"` in one run's status.json, `runs` raised a ValueError traceback
and hid every run; a garbage run.json dropped its run silently. Now such a folder is
listed as "unreadable" with the reason, the other runs are listed as before, and
`runs` exits 0. Entries whose names begin with "_" are not runs and are not listed.
"""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest

from tests.workbench.train_helpers import record_run, tiny_config, write_waves
from workbench.cli import main
from workbench.errors import RunError
from workbench.runs import UNREADABLE, list_runs, open_run, open_runs


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("good")
    data = write_waves(folder / "waves.h5", n=48)
    return record_run(tiny_config(data, steps=2), folder / "runs")


@pytest.fixture
def runs_dir(tmp_path, good_run):
    """A runs dir with the good run, a run whose status.json says "step": "many", one
    whose run.json is garbage, and a _comparisons folder."""
    root = tmp_path / "runs"
    shutil.copytree(good_run, root / good_run.name)
    many = root / "20260101-000000-000-gru-many"
    shutil.copytree(good_run, many)
    status = json.loads((many / "status.json").read_text())
    status["step"] = "many"
    (many / "status.json").write_text(json.dumps(status))
    garbage = root / "20260101-000001-000-gru-junk"
    shutil.copytree(good_run, garbage)
    (garbage / "run.json").write_bytes(b"\x00\x17 not json {")
    (root / "_comparisons").mkdir()
    (root / "notes.txt").write_text("a plain file is no run folder\n")
    return root


def test_a_corrupt_status_or_run_json_is_listed_as_unreadable_with_the_reason(runs_dir,
                                                                             good_run):
    infos = {info.run_id: info for info in list_runs(runs_dir)}
    assert set(infos) == {good_run.name, "20260101-000000-000-gru-many",
                          "20260101-000001-000-gru-junk"}
    assert infos[good_run.name].status == "completed" and infos[good_run.name].steps == 2
    many = infos["20260101-000000-000-gru-many"]
    assert many.status == UNREADABLE and many.unreadable
    assert "status.json: 'step' is \"many\", not a number" in many.message
    assert many.name == infos[good_run.name].name  # run.json still read for the name
    junk = infos["20260101-000001-000-gru-junk"]
    assert junk.status == UNREADABLE and "run.json: not valid JSON" in junk.message
    # open_runs still gives the runs it can open, and never raises for the others
    assert {run.run_id for run in open_runs(runs_dir)} == {good_run.name,
                                                           "20260101-000000-000-gru-many"}


def test_the_runs_command_exits_0_and_lists_every_run(runs_dir, good_run, capsys):
    capsys.readouterr()
    assert main(["runs", "--runs-dir", str(runs_dir)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert good_run.name in out and "completed" in out
    assert out.count(UNREADABLE) == 2 and "'step' is \"many\"" in out and "_comparisons" not in out
    assert main(["runs", "--runs-dir", str(runs_dir), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert sorted(item["status"] for item in listed) == ["completed", UNREADABLE, UNREADABLE]


def test_showing_or_resuming_a_corrupt_run_is_one_line(runs_dir, capsys):
    for argv in (["show", "20260101-000000-000-gru-many"],
                 ["train", "--resume", "20260101-000000-000-gru-many", "--no-progress"],
                 ["show", "20260101-000001-000-gru-junk"]):
        capsys.readouterr()
        assert main([*argv, "--runs-dir", str(runs_dir)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err and ".json" in err, err
    with pytest.raises(RunError, match="'step' is \"many\""):
        _ = open_run("20260101-000000-000-gru-many", runs_dir).status


def test_a_folder_without_run_json_is_listed_once_it_is_old(tmp_path):
    root = tmp_path / "runs"
    young, old = root / "20260101-000002-000-gru-new", root / "20260101-000003-000-gru-old"
    young.mkdir(parents=True)
    old.mkdir()
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    (info,) = list_runs(root)  # the young one is a run being set up
    assert info.run_id == old.name and info.status == UNREADABLE
    assert "no run.json" in info.message


def test_a_runs_dir_that_is_a_file_says_it_is_not_a_folder(tmp_path, capsys):
    not_a_folder = tmp_path / "passwd"
    not_a_folder.write_text("root:x:0:0\n")
    capsys.readouterr()
    assert main(["runs", "--runs-dir", str(not_a_folder)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {not_a_folder}: not a folder; the runs directory must be a folder " \
                  "(--runs-dir DIR)\n"
    assert main(["runs", "--runs-dir", str(tmp_path / "missing")]) == 0  # nothing yet: no runs
    assert capsys.readouterr().out == "no runs\n"
