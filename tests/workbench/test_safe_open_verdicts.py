"""Issue 10, failure 1: a valid file is never marked damaged for good.

The safety check's child is killed by a signal: only a death a damaged file can
cause (SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL) is remembered; a Ctrl-C, a
SIGTERM, a SIGHUP, a SIGKILL or a timeout is not, so the next open of the valid
file checks it again and opens it. The child runs in its own session, so a Ctrl-C
in the terminal never reaches it. `inspect --recheck` forgets a verdict.
"""

from __future__ import annotations

import os
import sys

import h5py
import numpy as np
import pytest

from workbench import safe_open
from workbench.cli import main as cli_main
from workbench.datasets import SequenceDataset
from workbench.errors import DatasetError


def write_valid(path):
    with h5py.File(path, "w") as f:
        f["inputs"] = np.zeros((6, 4, 1), np.float32)
        f["targets"] = np.ones((6, 2, 1), np.float32)
    return path


def die_by(monkeypatch, name: str) -> None:
    """The next children kill themselves with signal `name` (default action: death)."""
    default = "" if name == "SIGKILL" else f"signal.signal(signal.{name}, signal.SIG_DFL); "
    code = (f"import os, signal; print('step reading /inputs', flush=True); "
            f"{default}os.kill(os.getpid(), signal.{name})")
    monkeypatch.setattr(safe_open, "_child_command", lambda *a: [sys.executable, "-c", code])


def real_child(monkeypatch) -> None:
    monkeypatch.setattr(safe_open, "_child_command", REAL_COMMAND)


def sound_child(monkeypatch) -> None:
    """A quick child that finds every file sound (the real one takes ~0.5 s to start)."""
    code = "print('result {\"ok\": true}')"
    monkeypatch.setattr(safe_open, "_child_command", lambda *a: [sys.executable, "-c", code])


REAL_COMMAND = safe_open._child_command


def test_ctrl_c_during_a_check_does_not_mark_a_valid_file_damaged(tmp_path, monkeypatch):
    """The issue's case: the check dies of SIGINT; every later open of the valid file
    used to be refused as damaged. Now the next open checks it again and opens it."""
    path = write_valid(tmp_path / "valid.h5")
    die_by(monkeypatch, "SIGINT")
    with pytest.raises(DatasetError) as info:
        SequenceDataset.open(path)
    message = str(info.value)
    assert "SIGINT" in message and "no verdict on the file" in message and "\n" not in message
    real_child(monkeypatch)
    safe_open.clear_cache()  # memory forgotten: only the disk cache could still refuse
    with SequenceDataset.open(path) as ds:  # the real check again, and the file is valid
        assert len(ds.split("train")) > 0


@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP", "SIGKILL"])
def test_a_child_killed_from_outside_is_not_remembered(tmp_path, monkeypatch, name):
    path = write_valid(tmp_path / f"valid-{name}.h5")
    die_by(monkeypatch, name)
    with pytest.raises(DatasetError, match=f"stopped by {name}"):
        safe_open.check_file(path)
    sound_child(monkeypatch)
    safe_open.clear_cache()
    safe_open.check_file(path)  # checked again: no remembered verdict refused it


def test_crashes_a_damaged_file_can_cause_are_remembered_until_forgotten(tmp_path, monkeypatch):
    for name in sorted(safe_open.CACHED_SIGNALS):
        path = write_valid(tmp_path / f"crash-{name}.h5")
        die_by(monkeypatch, name)
        with pytest.raises(DatasetError, match=name):
            safe_open.check_file(path)
        sound_child(monkeypatch)
        safe_open.clear_cache()  # the verdict is on disk too
        with pytest.raises(DatasetError, match=f"crashed \\({name}\\).*probably damaged"):
            safe_open.check_file(path)
        assert safe_open.forget(path) == 1
        safe_open.check_file(path)  # the child ran again


def test_a_timeout_is_not_remembered(tmp_path, monkeypatch):
    path = write_valid(tmp_path / "slow.h5")
    code = "import time; print('step opening the file', flush=True); time.sleep(30)"
    monkeypatch.setattr(safe_open, "_child_command", lambda *a: [sys.executable, "-c", code])
    with pytest.raises(DatasetError, match="did not finish within 0.3 s"):
        safe_open.check_file(path, timeout=0.3)
    sound_child(monkeypatch)
    safe_open.check_file(path)


def test_the_child_runs_in_its_own_session(tmp_path, monkeypatch):
    """A Ctrl-C in the terminal goes to the foreground process group: the child is
    not in it (its own session and group), so only the app sees the Ctrl-C."""
    path = write_valid(tmp_path / "session.h5")
    code = ("import os, json; print('result ' + json.dumps({'ok': False, 'error': "
            "f'sid={os.getsid(0)} pid={os.getpid()} pgid={os.getpgid(0)}'}))")
    monkeypatch.setattr(safe_open, "_child_command", lambda *a: [sys.executable, "-c", code])
    with pytest.raises(DatasetError) as info:
        safe_open.check_file(path, use_cache=False)
    fields = dict(item.split("=") for item in str(info.value).split())
    assert fields["sid"] == fields["pid"] == fields["pgid"]
    assert int(fields["sid"]) != os.getsid(0) and int(fields["pgid"]) != os.getpgid(0)


def test_inspect_recheck_forgets_a_remembered_crash(tmp_path, monkeypatch, capsys):
    path = write_valid(tmp_path / "recheck.h5")
    die_by(monkeypatch, "SIGSEGV")
    with pytest.raises(DatasetError):
        safe_open.check_file(path, mode="open")
    real_child(monkeypatch)
    safe_open.clear_cache()
    capsys.readouterr()
    assert cli_main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "SIGSEGV" in err and "Traceback" not in err
    assert cli_main(["inspect", str(path), "--recheck"]) == 0
    assert "inputs:   continuous, 4 steps" in capsys.readouterr().out
    assert cli_main(["inspect", str(path)]) == 0  # the new verdict is the one remembered
