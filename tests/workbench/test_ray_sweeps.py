"""Sweeps on Ray, for real: a private instance, a cluster on this machine, a killed
worker, Ctrl-C, and the mistakes (no Ray, an address that does not answer, a runs
directory a node cannot write). Every sweep runs as the command line in a child
process whose environment carries a marker, so the Ray processes it starts are found
by that marker afterwards (and killed by pid, only those, if any were left)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil
import pytest

from tests.workbench.train_helpers import state_equal, write_reverse
from workbench import sweeps
from workbench.cli import main
from workbench.ray_engine import RAY_MISSING, check_node_runs_dir
from workbench.runs import open_run

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--hidden", "8", "--batch", "16", "--lr", "0.01", "--probe-batch", "8", "--threads", "1",
        "--val-fraction", "0.2", "--no-progress"]
LONG_STEPS = 300
pytestmark = pytest.mark.ray

GRID = ["--grid", "cell=rnn-tanh,lstm", "--seeds", "2", "--steps", "6"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_reverse(tmp_path_factory.mktemp("data") / "reverse.h5")


@pytest.fixture(scope="module")
def long_data(tmp_path_factory):
    """Enough sequences that a run of LONG_STEPS steps is a few epochs, not hundreds."""
    return write_reverse(tmp_path_factory.mktemp("long") / "reverse.h5", n=4000)


@pytest.fixture(scope="module")
def ray_bin():
    pytest.importorskip("ray", reason="the Ray extra: pip install -e '.[ray]'")
    return str(Path(sys.executable).with_name("ray"))


def _marker_env(marker: str, **more: str) -> dict[str, str]:
    env = dict(os.environ, WB_RAY_TEST=marker, RAY_USAGE_STATS_ENABLED="0",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    env.update(more)
    return env


def _marked(marker: str) -> list[psutil.Process]:
    """The live processes (not zombies) whose environment holds `marker`."""
    found = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if (process.pid != os.getpid() and process.status() != psutil.STATUS_ZOMBIE
                    and process.environ().get("WB_RAY_TEST") == marker):
                found.append(process)
    return found


def _kill_marked(marker: str) -> None:
    """End what this test started (by pid): TERM, then KILL what is still there."""
    left = _marked(marker)
    for process in left:
        with contextlib.suppress(psutil.Error):
            process.terminate()
    _, alive = psutil.wait_procs(left, timeout=5)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()


def _left_after(marker: str, grace: float = 10.0) -> list[str]:
    """What is still running of `marker` once `grace` seconds have let it exit."""
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        left = _marked(marker)
        if not left:
            return []
        time.sleep(0.2)
    return [f"{p.pid} {p.name()}" for p in _marked(marker)]


@pytest.fixture
def marker():
    token = uuid.uuid4().hex
    yield token
    _kill_marked(token)


def _sweep_cli(args: list[str], marker: str, *, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "main.py", "sweep", *args], cwd=ROOT, env=_marker_env(marker),
                          capture_output=True, text=True, timeout=timeout)


def _last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def _record(runs_dir: Path, sweep_id: str) -> dict:
    return json.loads((runs_dir / "_sweeps" / f"{sweep_id}.json").read_text())


def _assert_same_runs(ray_dir: Path, ray_id: str, local_dir: Path, local_id: str) -> None:
    """Same record form, same plan, and every run's final weights equal bit for bit."""
    ray_record, local_record = _record(ray_dir, ray_id), _record(local_dir, local_id)
    assert set(ray_record) == set(local_record)
    assert ray_record["spec"] == local_record["spec"]
    assert ray_record["points"] == local_record["points"]
    assert [set(e) for e in ray_record["runs"]] == [set(e) for e in local_record["runs"]]
    ray_sweep, local_sweep = sweeps.open_sweep(ray_id, ray_dir), sweeps.open_sweep(local_id,
                                                                                   local_dir)
    assert ray_sweep.status == local_sweep.status == "completed"
    for a, b in zip(ray_sweep.entries, local_sweep.entries):
        assert (a.point, a.seed, a.status) == (b.point, b.seed, "completed")
        run_a, run_b = open_run(a.run_id, ray_dir), open_run(b.run_id, local_dir)
        assert run_a.status == "completed"
        assert run_a.config() == run_b.config()
        assert [s.loss for s in run_a.step_metrics()] == [s.loss for s in run_b.step_metrics()]
        assert state_equal(run_a.load_checkpoint("latest")["model"],
                           run_b.load_checkpoint("latest")["model"])


# --- a private instance -------------------------------------------------------------------------


@pytest.mark.timeout(150)
def test_a_private_instance_sweep_is_a_local_sweep_bit_for_bit_and_leaves_no_process(
        data, tmp_path, marker, ray_bin, capsys):
    ray_dir, local_dir = tmp_path / "ray", tmp_path / "local"
    done = _sweep_cli(["--data", str(data), *GRID, *TINY, "--runs-dir", str(ray_dir),
                       "--engine", "ray", "--ray-cpus", "2", "--cpus-per-run", "1", "--json"],
                      marker)
    assert done.returncode == 0, done.stderr
    result = _last_json(done.stdout)
    assert result["status"] == "completed"
    assert [p["statuses"] for p in result["points"]] == [["completed"] * 2] * 2
    assert _left_after(marker) == []  # raylet, gcs_server, workers: all gone with the sweep
    assert not list((ray_dir / "_sweeps").glob(".cancel-*"))

    assert main(["sweep", "--data", str(data), *GRID, *TINY, "--runs-dir", str(local_dir),
                 "--json"]) == 0
    local = _last_json(capsys.readouterr().out)
    _assert_same_runs(ray_dir, result["sweep_id"], local_dir, local["sweep_id"])

    # the listing and --show read it as any sweep
    assert main(["sweeps", "--runs-dir", str(ray_dir), "--json"]) == 0
    listing = _last_json(capsys.readouterr().out)
    assert [(s["sweep_id"], s["status"], s["runs"]) for s in listing] == [
        (result["sweep_id"], "completed", 4)]
    assert main(["sweep", "--show", result["sweep_id"], "--runs-dir", str(ray_dir), "--json"]) == 0
    assert _last_json(capsys.readouterr().out)["points"] == result["points"]


# --- a cluster on this machine ----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _can_unshare() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "true"],
                           capture_output=True, timeout=10)
    return probe.returncode == 0


@pytest.fixture(scope="module")
def cluster(ray_bin, tmp_path_factory):
    """`ray start --head --num-cpus 2` on 127.0.0.1, in a mount namespace of its own where
    `read_only` is mounted read-only and `hidden` is covered by an empty tmpfs (so the
    node cannot write the one and cannot see the runs directory under the other), when
    this machine allows it. Stopped after the module's tests, its processes by pid."""
    marker = uuid.uuid4().hex
    base = tmp_path_factory.mktemp("cluster")
    read_only, hidden = base / "read-only", base / "hidden"
    read_only.mkdir()
    (hidden / "runs").mkdir(parents=True)
    temp_dir = tempfile.mkdtemp(prefix="wb-ray-test-", dir="/tmp")  # short: Ray's sockets
    port = _free_port()
    start = [ray_bin, "start", "--head", "--num-cpus", "2", "--port", str(port),
             "--node-ip-address", "127.0.0.1", "--include-dashboard=false",
             "--disable-usage-stats", "--temp-dir", temp_dir]
    isolated = _can_unshare()
    if isolated:
        script = (f"mount --bind {read_only} {read_only} && "
                  f"mount -o remount,bind,ro {read_only} && mount -t tmpfs none {hidden} && "
                  + " ".join(start) + " && sleep infinity")
        command = ["unshare", "-m", "--propagation", "private", "sh", "-c", script]
    else:
        command = [*start, "--block"]
    log = base / "ray-start.log"
    with open(log, "w") as out:
        process = subprocess.Popen(command, env=_marker_env(marker), stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while "Ray runtime started" not in log.read_text(errors="replace"):
            assert process.poll() is None, f"ray start --head ended: {log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"no Ray cluster in 60 s: {log.read_text()[-2000:]}"
            time.sleep(0.5)
        yield {"address": address, "read_only": read_only, "hidden": hidden / "runs",
               "isolated": isolated, "marker": marker}
    finally:
        _kill_marked(marker)
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait(timeout=10)
        assert _left_after(marker) == []
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.mark.timeout(120)
def test_a_sweep_on_a_cluster_writes_the_same_runs(data, tmp_path, marker, cluster, capsys):
    runs_dir = tmp_path / "runs"
    done = _sweep_cli(["--data", str(data), "--grid", "cell=rnn-tanh,lstm", "--steps", "6",
                       *TINY, "--runs-dir", str(runs_dir), "--engine", "ray",
                       "--ray-address", cluster["address"], "--json"], marker)
    assert done.returncode == 0, done.stderr
    result = _last_json(done.stdout)
    assert main(["sweep", "--data", str(data), "--grid", "cell=rnn-tanh,lstm", "--steps", "6",
                 *TINY, "--runs-dir", str(tmp_path / "local"), "--json"]) == 0
    local = _last_json(capsys.readouterr().out)
    _assert_same_runs(runs_dir, result["sweep_id"], tmp_path / "local", local["sweep_id"])
    assert _left_after(marker) == []  # the driver disconnected; the cluster is the cluster's


@pytest.mark.timeout(120)
def test_a_runs_directory_a_node_cannot_write_or_see_is_one_line_naming_node_and_path(
        data, tmp_path, marker, cluster):
    if not cluster["isolated"]:
        pytest.skip("no mount namespace here (unshare -m) to give the node its own view")
    node = socket.gethostname()
    for runs_dir, words in ((cluster["read_only"], "is not writable"),):
        # (a runs directory the node cannot see at all: cluster["hidden"]; the same check,
        # test_the_node_check_names_the_node_and_the_path, without a sweep's cost)
        done = _sweep_cli(["--data", str(data), "--grid", "cell=rnn-tanh,lstm", "--steps", "6",
                           *TINY, "--runs-dir", str(runs_dir), "--engine", "ray",
                           "--ray-address", cluster["address"]], marker)
        assert done.returncode == 2, done.stderr
        [line] = _error_lines(done.stderr)
        assert f"on node {node}" in line and str(runs_dir) in line and words in line, line
        [saved] = sweeps.list_sweeps(runs_dir)  # the driver could write; it says why it failed
        assert saved.status == "failed" and words in saved.message
        assert not list(runs_dir.glob("*/status.json"))  # no run started


def test_the_node_check_names_the_node_and_the_path(tmp_path):
    node = socket.gethostname()
    with pytest.raises(OSError, match=f"on node {node}: the runs directory .*absent does not "
                                      "exist"):
        check_node_runs_dir(tmp_path / "absent")
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError, match="file is not a folder"):
        check_node_runs_dir(tmp_path / "file")
    check_node_runs_dir(tmp_path)
    assert list(tmp_path.iterdir()) == [tmp_path / "file"]  # its write check left nothing


# --- faults ------------------------------------------------------------------------------------


def _watch_runs(runs_dir: Path, process: subprocess.Popen, ready, timeout: float = 60) -> dict:
    """Wait for a run folder whose status satisfies `ready(status, run_dir)`; its status."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in runs_dir.glob("*/status.json"):
            with contextlib.suppress(OSError, ValueError):
                status = json.loads(path.read_text())
                if ready(status, path.parent):
                    return dict(status, run_dir=str(path.parent))
        if process.poll() is not None:
            break
        time.sleep(0.1)
    process.kill()
    out, err = process.communicate()
    pytest.fail(f"no run became ready (exit {process.returncode}): {err[-2000:]}")


def _checkpointed(status: dict, run_dir: Path) -> bool:
    return (status.get("status") == "running" and status.get("step", 0) >= 20
            and any((run_dir / "checkpoints").glob("latest*")))


LONG = ["--grid", f"steps=5,{LONG_STEPS}", "--checkpoint-seconds", "0.2"]


@pytest.mark.timeout(180)
def test_a_killed_worker_is_a_crashed_run_the_sweep_goes_on_and_resume_finishes_it(
        long_data, tmp_path, marker, cluster):
    """On the cluster (its workers already up): the worker killed is the cluster's."""
    runs_dir = tmp_path / "runs"
    ray = ["--engine", "ray", "--ray-address", cluster["address"]]
    args = ["--data", str(long_data), *LONG, *TINY, "--runs-dir", str(runs_dir), *ray]
    process = subprocess.Popen([sys.executable, "main.py", "sweep", *args, "--json"], cwd=ROOT,
                               env=_marker_env(marker), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    victim = _watch_runs(runs_dir, process, _checkpointed)
    worker = psutil.Process(victim["pid"])
    assert worker.environ().get("WB_RAY_TEST") == cluster["marker"]
    os.kill(victim["pid"], signal.SIGKILL)  # the trial's Ray worker, by the pid it reported
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    result = _last_json(out)
    assert result["status"] == "completed"
    short, long = result["points"]
    assert short["statuses"] == ["completed"]
    assert long["statuses"] == ["crashed"] and "Ray worker died" in long["messages"][0]
    crashed_id = long["runs"][0]
    assert open_run(crashed_id, runs_dir).status == "crashed"
    assert Path(victim["run_dir"]).name == crashed_id
    assert _left_after(marker) == []

    again = _sweep_cli(["--resume", result["sweep_id"], "--runs-dir", str(runs_dir), *ray,
                        "--no-progress", "--json"],
                       marker, timeout=120)
    assert again.returncode == 0, again.stderr
    resumed = _last_json(again.stdout)
    assert resumed["status"] == "completed"
    assert [p["statuses"] for p in resumed["points"]] == [["completed"], ["completed"]]
    assert resumed["points"][0]["runs"] == short["runs"]  # a result: not trained again
    assert resumed["points"][1]["runs"] == [crashed_id]  # the same run, continued
    run = open_run(crashed_id, runs_dir)
    segments = json.loads((run.path / "run.json").read_text())["segments"]
    assert len(segments) == 2 and segments[-1]["from_step"] >= 20  # from its checkpoint
    assert run.status == "completed" and run.step_metrics()[-1].step == LONG_STEPS
    assert _left_after(marker) == []


@pytest.mark.timeout(120)
def test_ctrl_c_cancels_keeps_the_finished_runs_and_leaves_no_ray_process(
        long_data, tmp_path, marker, ray_bin):
    runs_dir = tmp_path / "runs"
    # a long run (stopped long before its end, so its length costs nothing)
    args = ["--data", str(long_data), "--grid", "steps=5,5000", "--checkpoint-seconds", "0.2",
            "--seeds", "2", *TINY, "--runs-dir", str(runs_dir),
            "--engine", "ray", "--ray-cpus", "2", "--max-concurrent", "1", "--json"]
    process = subprocess.Popen([sys.executable, "main.py", "sweep", *args], cwd=ROOT,
                               env=_marker_env(marker), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    _watch_runs(runs_dir, process, _checkpointed)
    os.killpg(process.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole group
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    result = _last_json(out)
    assert result["status"] == "cancelled"
    short, long = result["points"]  # seed-major: steps=5 seed 0, steps=4000 seed 0, ...
    assert short["statuses"] == ["completed", "skipped"]
    assert long["statuses"] == ["stopped", "skipped"]
    assert open_run(long["runs"][0], runs_dir).status == "stopped"
    assert _left_after(marker) == []
    assert not list((runs_dir / "_sweeps").glob(".cancel-*"))


# --- mistakes ----------------------------------------------------------------------------------


def test_an_unreachable_address_exits_2_at_once_naming_it(data, tmp_path, marker):
    address = f"127.0.0.1:{_free_port()}"
    done = _sweep_cli(["--data", str(data), "--grid", "cell=rnn-tanh,lstm", *TINY,
                       "--runs-dir", str(tmp_path / "runs"), "--engine", "ray",
                       "--ray-address", address], marker, timeout=30)
    assert done.returncode == 2
    assert _error_lines(done.stderr) == [
        f"error: cannot reach the Ray cluster at {address}: Connection refused (is `ray start "
        "--head` running there, and the port open?)"]
    assert not (tmp_path / "runs" / "_sweeps").exists()  # refused before anything is recorded


@pytest.mark.parametrize(("flags", "words"), [
    (["--ray-address", "nohost"], "--ray-address 'nohost' is not allowed: expected HOST:PORT"),
    (["--cpus-per-run", "2"], "--cpus-per-run goes with --engine ray"),
    (["--engine", "ray", "--cpus-per-run", "0"], "--cpus-per-run 0 is not allowed"),
    (["--engine", "ray", "--max-concurrent", "0"], "--max-concurrent 0 is not allowed"),
    (["--engine", "ray", "--workers", "2"], "--workers is the local engine's"),
])
def test_bad_ray_flags_are_one_line(data, tmp_path, capsys, flags, words):
    if flags[0] == "--ray-address":
        flags = ["--engine", "ray", *flags]
    code = main(["sweep", "--data", str(data), "--grid", "cell=rnn-tanh,lstm", *TINY,
                 "--runs-dir", str(tmp_path), *flags])
    err = capsys.readouterr().err
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err


def test_without_the_extra_engine_ray_says_how_to_install_it(data, tmp_path):
    hide = ("import sys; sys.modules['ray'] = None; from workbench.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    done = subprocess.run([sys.executable, "-c", hide, "sweep", "--data", str(data),
                           "--grid", "cell=rnn-tanh,lstm", *TINY, "--runs-dir",
                           str(tmp_path / "runs"), "--engine", "ray"], cwd=ROOT,
                          env=_marker_env("no-ray"), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"error: {RAY_MISSING}"]
    assert not (tmp_path / "runs").exists()


def test_ray_is_imported_only_by_the_ray_engine_and_only_when_a_ray_sweep_runs():
    importers = sorted(str(path.relative_to(ROOT)) for folder in ("workbench", "ui")
                       for path in (ROOT / folder).rglob("*.py")
                       if any(line.strip().startswith(("import ray", "from ray"))
                              for line in path.read_text(encoding="utf-8").splitlines()))
    assert importers == ["workbench/ray_engine.py"]
    probe = ("import sys, workbench.sweeps, workbench.cli.sweep, workbench.ray_engine; "
             "print('ray' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=_marker_env("import"),
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr
