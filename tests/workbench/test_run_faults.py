"""A run under faults: a full disk, a read-only folder, a memory limit, two trainers at
once, a data file that changes under it. Each reproduction checks what a user sees (the
exit status, one line and no traceback) and what is left (status, checkpoint, lock,
the files it must not touch)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import stat
import tempfile
import threading
import time
from pathlib import Path

import pytest

from tests.workbench.fault_helpers import checksums, outcomes, run_cli
from tests.workbench.train_helpers import record_run, tiny_config, write_waves
from workbench.cli import main
from workbench.disk import disk_error_text, is_disk_full
from workbench.errors import RunError
from workbench.run_lock import RunLock
from workbench.run_service import RunService
from workbench.runs import list_runs, load_checkpoint, open_run, read_jsonl

TINY = ["--cell", "gru", "--hidden", "8", "--batch", "16", "--lr", "0.01", "--probe-batch", "8",
        "--threads", "1", "--no-progress"]


@pytest.fixture(scope="module")
def waves(tmp_path_factory):
    return write_waves(tmp_path_factory.mktemp("data") / "waves.h5")


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), stderr[-3000:]
    assert "Traceback" not in stderr
    return lines[0]


def _lock_is_free(run_dir: Path) -> bool:
    try:
        RunLock.acquire(run_dir).release()
    except RunError:
        return False
    return True


def _status(run_dir: Path) -> dict:
    return json.loads((run_dir / "status.json").read_text())


# --- 3. disk full ----------------------------------------------------------------------------


def test_disk_errors_are_told_apart_and_said_in_one_line():
    for code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        assert is_disk_full(OSError(code, os.strerror(code)))
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
    # h5py raises OSError without an errno; HDF5 puts it in the text
    h5 = OSError("Can't synchronously write data (file write failed: time = Tue, "
                 "filename = 'p.h5', errno = 28, error message = 'No space left on device')")
    assert is_disk_full(h5)
    assert disk_error_text(h5, "/runs/x/probes/p.h5").startswith(
        "cannot write /runs/x/probes/p.h5: No space left on device (the disk is full)")
    text = disk_error_text(OSError(errno.EDQUOT, os.strerror(errno.EDQUOT)), "/runs/x/m")
    assert "quota" in text and "\n" not in text


def test_a_full_disk_stops_the_run_at_once_failed_with_the_reason_and_the_last_checkpoint(
        tmp_path):
    """RLIMIT_FSIZE with SIGXFSZ ignored: a write past 40 kB fails (EFBIG) as on a full
    disk; metrics.jsonl reaches it first (checkpoints are ~32 kB, probes ~14 kB)."""
    data = write_waves(tmp_path / "waves.h5", n=2000)  # long epochs: few validations
    runs = tmp_path / "runs"
    data_before = checksums(data)
    done = run_cli(["train", "--data", str(data), *TINY, "--steps", "100000", "--probe-every",
                    "10", "--runs-dir", str(runs)], fsize=40_000)
    assert done.returncode == 2, done.stderr[-3000:]
    line = _one_error_line(done.stderr)
    (run_dir,) = runs.iterdir()
    assert f"cannot write {run_dir / 'metrics.jsonl'}: File too large" in line
    assert "the last good checkpoint is kept" in line
    status = _status(run_dir)
    assert status["status"] == "failed" and "File too large" in status["message"]
    assert open_run(run_dir).status == "failed"
    # it stopped at once: the steps not on disk are at most those of one flush
    recorded = [r["step"] for r in read_jsonl(run_dir / "metrics.jsonl") if r["type"] == "step"]
    assert status["step"] - recorded[-1] <= 50
    latest = load_checkpoint(run_dir / "checkpoints" / "latest.pt")
    assert 0 < latest["position"]["step"] <= recorded[-1]
    assert f"(step {latest['position']['step']})" in line
    assert (run_dir / "metrics.jsonl").stat().st_size <= 40_000
    assert not list(run_dir.rglob("*.tmp"))  # no half-written file left
    assert _lock_is_free(run_dir) and checksums(data) == data_before


def test_a_checkpoint_that_cannot_be_written_names_the_file_and_keeps_the_last_one(tmp_path):
    """torch.save on a full disk raises a RuntimeError ("unexpected pos") that hides why;
    the recorder says what it was, and the previous checkpoint stays whole."""
    import resource

    import torch

    from workbench.errors import OutputError
    from workbench.runs import RunRecorder, create_run_dir

    recorder = RunRecorder(create_run_dir("gru", tmp_path))
    recorder.save_checkpoint("latest", {"model": {"w": torch.ones(10)}})
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (16_000, limits[1]))
    try:
        with pytest.raises(OutputError) as info:
            recorder.save_checkpoint("latest", {"model": {"w": torch.zeros(10_000)}})
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, previous)
    assert str(info.value) == (f"cannot write {recorder.run_dir / 'checkpoints' / 'latest.pt'}: "
                               "File too large (a file reached the size this process may write)")
    assert torch.equal(load_checkpoint(recorder.run_dir / "checkpoints" / "latest.pt")["model"]["w"],
                       torch.ones(10))
    assert not list(recorder.run_dir.rglob("*.tmp"))
    recorder.close()


# --- 4. write access -------------------------------------------------------------------------


@pytest.fixture()
def open_folder():
    """A folder others can enter (pytest's tmp folders are the owner's only), removed after."""
    folder = Path(tempfile.mkdtemp(prefix="workbench-ro-"))
    folder.chmod(0o755)
    yield folder
    for path in [folder, *folder.rglob("*")]:
        if path.is_dir():
            path.chmod(0o755)
    shutil.rmtree(folder)


def _read_only(folder: Path) -> None:
    for path in [*folder.rglob("*"), folder]:
        mode = stat.S_IMODE(path.stat().st_mode)
        path.chmod(mode & ~0o222)


def test_resume_into_a_read_only_runs_folder_is_refused_before_training(open_folder):
    """As an unprivileged user (root, which ignores modes, drops to nobody in the child)."""
    data = write_waves(open_folder / "waves.h5")
    data.chmod(0o644)
    runs = open_folder / "runs"
    run_dir = record_run(tiny_config(data, steps=12), runs, stop_at=4)
    _read_only(runs)
    before = checksums(run_dir)
    done = run_cli(["train", "--resume", run_dir.name, "--steps", "20", "--runs-dir", str(runs),
                    "--no-progress", "--then", "train", "--data", str(data), *TINY, "--steps",
                    "3", "--runs-dir", str(runs)], unprivileged=True)
    (resumed, new) = outcomes(done)
    assert resumed[0] == 2, done.stderr[-3000:]
    line = _one_error_line(resumed[2])
    assert "not writable" in line and str(runs) in line
    assert checksums(run_dir) == before
    assert open_run(run_dir).status == "stopped"
    # a new run into it is refused too, naming the runs directory, leaving no folder
    assert new[0] == 2, done.stderr[-3000:]
    assert f"the runs directory {runs}" in _one_error_line(new[2])
    assert sorted(p.name for p in runs.iterdir()) == [run_dir.name]


# --- 5. memory -------------------------------------------------------------------------------


def test_a_model_too_big_for_the_process_limit_is_refused_naming_estimate_and_limit(
        waves, tmp_path):
    """`ulimit -v 3000000`, `train --hidden 8000`: 512 M parameters, ~8 GB to train."""
    runs = tmp_path / "runs"
    done = run_cli(["train", "--data", str(waves), "--cell", "lstm", "--hidden", "8000",
                    "--steps", "1", "--no-progress", "--runs-dir", str(runs)],
                   address_space_kib=3_000_000)
    assert done.returncode == 2, done.stderr[-3000:]
    line = _one_error_line(done.stderr)
    for words in ("hidden = 8000", "512,", "parameters", "needs about", "GB",
                  "address-space limit (ulimit -v)"):
        assert words in line, (words, line)
    assert not runs.exists() or list_runs(runs) == []


def test_an_allocation_failure_during_training_fails_the_run_in_one_line(tmp_path):
    """With the pre-check out of the way (an estimate can be wrong; other processes take
    memory after it), a batch of 20,000 at hidden 512 (~7 GB of activations) under 400 MB
    of headroom fails in its first step: one line, exit 2, status failed."""
    data = write_waves(tmp_path / "many.h5", n=20_000)
    runs = tmp_path / "runs"
    done = run_cli(["train", "--data", str(data), *TINY, "--hidden", "512", "--batch", "20000",
                    "--steps", "3", "--runs-dir", str(runs)], headroom=400 * 2**20,
                   memory_check=False)
    assert done.returncode == 2, done.stderr[-3000:]
    line = _one_error_line(done.stderr)
    assert "out of memory at step 1" in line and "can't allocate memory" in line, line
    (run_dir,) = runs.iterdir()
    status = _status(run_dir)
    assert status["status"] == "failed" and "out of memory" in status["message"]
    assert load_checkpoint(run_dir / "checkpoints" / "latest.pt")["position"]["step"] == 0
    assert _lock_is_free(run_dir)


# --- 7. one trainer per run ------------------------------------------------------------------


def test_a_second_resume_of_a_run_being_resumed_is_refused_naming_the_pid(waves, tmp_path):
    run_dir = record_run(tiny_config(waves, steps=12), tmp_path, stop_at=4)
    service = RunService(tmp_path)
    first = service.resume(run_dir.name)
    with pytest.raises(RunError, match=f"being trained by process {os.getpid()}"):
        service.resume(run_dir.name)
    with pytest.raises(RunError, match=f"process {os.getpid()}"):  # the GUI's Resume asks here
        service.history_until(run_dir.name)
    assert first.run().status == "completed"
    assert [s.step for s in open_run(run_dir).step_metrics()] == list(range(1, 13))
    assert _lock_is_free(run_dir)


def test_a_run_trained_by_another_process_is_refused_and_its_crash_leaves_no_stale_lock(
        waves, tmp_path, capsys):
    from tests.workbench.test_crash_safety import _child, _wait_until_training

    runs = tmp_path / "runs"
    proc = _child(waves, runs, None)
    try:
        run_dir = _wait_until_training(proc, runs)
        assert main(["train", "--resume", run_dir.name, "--runs-dir", str(runs),
                     "--no-progress"]) == 2
        line = _one_error_line(capsys.readouterr().err)
        assert f"being trained by process {proc.pid}" in line
        assert _status(run_dir)["pid"] == proc.pid  # its trainer goes on, alone
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert _lock_is_free(run_dir)  # the OS let go of the dead process's lock
    steps = [s.step for s in open_run(run_dir).step_metrics()]
    assert steps == list(range(1, len(steps) + 1))
    assert main(["train", "--resume", run_dir.name, "--runs-dir", str(runs), "--steps",
                 str(len(steps) + 5), "--no-progress"]) == 0
    assert open_run(run_dir).status == "completed"


# --- 14. the data file changes during the run -------------------------------------------------


@pytest.mark.parametrize("change", ["modified", "grew"])
def test_a_data_file_that_changes_during_the_run_stops_it_with_a_clear_message(
        tmp_path, capsys, change):
    data = write_waves(tmp_path / "waves.h5")
    runs = tmp_path / "runs"
    content = checksums(data)

    def change_when_training() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for status in runs.glob("*/status.json"):
                try:
                    if json.loads(status.read_text()).get("step", 0) >= 2:
                        if change == "modified":
                            os.utime(data, (time.time() + 60, time.time() + 60))
                        else:
                            with open(data, "ab") as handle:
                                handle.write(b"\0" * 512)
                        return
                except (OSError, ValueError):
                    pass
            time.sleep(0.01)

    watcher = threading.Thread(target=change_when_training, daemon=True)
    watcher.start()
    code = main(["train", "--data", str(data), *TINY, "--steps", "1000000", "--runs-dir",
                 str(runs)])
    watcher.join(timeout=5)
    assert code == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"{data} changed during the run" in line
    assert ("modified at" if change == "modified" else "size went from") in line
    (run_dir,) = runs.iterdir()
    assert _status(run_dir)["status"] == "failed"
    assert "changed during the run" in _status(run_dir)["message"]
    assert load_checkpoint(run_dir / "checkpoints" / "latest.pt")["position"]["step"] >= 0
    assert _lock_is_free(run_dir)
    if change == "modified":
        assert checksums(data) == content  # the app never wrote to it
