"""Atomic writes: files get the permissions a plain write would give, and a folder in the
way is refused with a message, never a traceback."""

from __future__ import annotations

import os
import stat
import sys

import pytest

from workbench.atomic import atomic_path, atomic_write_text, current_umask
from workbench.errors import OutputError, WorkbenchError

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")


@pytest.fixture()
def umask_027():
    old = os.umask(0o027)
    yield 0o027
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@posix_only
def test_a_new_file_gets_0666_less_the_umask(tmp_path, umask_027):
    assert current_umask() == 0o027
    target = tmp_path / "config.toml"
    atomic_write_text(target, "x = 1\n")
    assert _mode(target) == 0o640  # as open(target, "w") would make it, not 0600


@posix_only
def test_a_replaced_file_keeps_its_mode_even_read_only(tmp_path, umask_027):
    target = tmp_path / "shared.csv"
    target.write_text("old\n")
    os.chmod(target, 0o644)
    atomic_write_text(target, "new\n")
    assert _mode(target) == 0o644 and target.read_text() == "new\n"
    os.chmod(target, 0o444)
    atomic_write_text(target, "newer\n")  # the writer still fills the temporary file
    assert _mode(target) == 0o444 and target.read_text() == "newer\n"


@posix_only
def test_files_written_by_path_get_the_same_mode(tmp_path, umask_027):
    import h5py

    target = tmp_path / "made.h5"
    with atomic_path(target) as tmp, h5py.File(tmp, "w") as f:
        f["x"] = [1, 2, 3]
    assert _mode(target) == 0o640


def test_a_folder_as_target_is_refused_and_left_alone(tmp_path):
    folder = tmp_path / "somedir"
    folder.mkdir()
    (folder / "inside.txt").write_text("keep")
    with pytest.raises(OutputError, match=f"cannot write {folder}: it is a folder") as info:
        atomic_write_text(folder, "data")
    assert isinstance(info.value, WorkbenchError)  # shown as a message, never a traceback
    assert isinstance(info.value, OSError)  # and `except OSError` around writes still holds
    assert folder.is_dir() and (folder / "inside.txt").read_text() == "keep"
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_file_in_the_way_of_the_folder_is_an_output_error(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with pytest.raises(OutputError, match="cannot write .*not-a-folder"):
        atomic_write_text(blocker / "out.csv", "data")


@posix_only
def test_a_run_folder_and_a_made_dataset_are_readable_as_the_umask_allows(tmp_path, umask_027):
    from tests.workbench.train_helpers import record_run, tiny_config, write_waves
    from workbench.tasks import generate

    made = generate("reverse", tmp_path / "reverse.h5", n=20, length=3)
    assert _mode(made) == 0o640
    config = tiny_config(write_waves(tmp_path / "waves.h5"), steps=2)
    run_dir = record_run(config, tmp_path / "runs")
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    names = {p.relative_to(run_dir).as_posix() for p in files}
    assert {"run.json", "config.toml", "status.json", "checkpoints/latest.pt"} <= names
    assert {p.relative_to(run_dir).as_posix(): _mode(p) for p in files} == {
        name: 0o640 for name in names}
