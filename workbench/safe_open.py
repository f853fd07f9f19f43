"""The first open of a user's HDF5 file, checked in a child process with a time limit.

A hostile or damaged file can crash or hang libhdf5 itself (h5py issues #1183 and
#2569, HDF5 #1707): no Python exception, the whole app dies. So before the app opens
a file in-process, a child process (`python -m workbench.safe_open`) opens it, checks
its structure exactly as the reader does, and reads the first and last sample of each
array the dataset uses (all of an array whose data take under 16 MiB). A crash or a
timeout there becomes a DatasetError ("the file could not be read safely: ...") and
the app lives on.

The verdict is cached by (real path, size, mtime, what was checked, HDF5 version) in
memory and on disk (`cache_dir()`), so re-opening a file, or a test suite, pays for the
child once. Only verdicts about the file are cached: "ok", "error" (the reader's own
refusal) and a death by a signal that a damaged file can cause (SIGSEGV, SIGBUS,
SIGABRT, SIGFPE, SIGILL). A timeout, a death by a signal someone sent (SIGINT, SIGTERM,
SIGHUP, SIGKILL: a Ctrl-C, a shutdown, the OOM killer) and an exit without a result
say nothing about the file and are never cached: the next open checks again. The
child runs in its own session (setsid), so a Ctrl-C in the terminal reaches only the
app, never the check. `forget(path)` drops a file's verdicts (`inspect --recheck`,
the Data panel's "Check again").

The child imports only numpy, h5py and the reader's structure checks
(workbench.dataset_layout; never the reader, which imports this module, and never
torch), so it starts in about a tenth of a second.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from workbench.errors import DatasetError

__all__ = ["CACHED_SIGNALS", "DEFAULT_TIMEOUT_S", "UNSAFE", "cache_dir", "check_file",
           "clear_cache", "forget", "main"]

DEFAULT_TIMEOUT_S = 30.0
CHECKER_VERSION = 2  # 2: verdicts of deaths by SIGINT/SIGTERM/... are no longer cached
CACHE_FILE = "safe-open-v2.json"
# deaths a damaged file can cause: a verdict about the file, cached
CACHED_SIGNALS = frozenset({"SIGSEGV", "SIGBUS", "SIGABRT", "SIGFPE", "SIGILL"})
UNSAFE = "the file could not be read safely"  # in every message of a crash or timeout
MAX_CACHED = 2000
_STEP = "step "
_RESULT = "result "
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[1])

_memory: dict[str, dict[str, str]] = {}
_lock = threading.Lock()


def cache_dir() -> Path:
    """$SEQUENCE_WORKBENCH_HOME/cache if set, else the user's cache folder."""
    home = os.environ.get("SEQUENCE_WORKBENCH_HOME")
    if home:
        return Path(home) / "cache"
    import platformdirs

    return Path(platformdirs.user_cache_dir("sequence-workbench", appauthor=False))


def clear_cache(*, disk: bool = False) -> None:
    """Forget the verdicts held in memory (and on disk with `disk=True`)."""
    with _lock:
        _memory.clear()
        if disk:
            with contextlib.suppress(OSError):
                (cache_dir() / CACHE_FILE).unlink()


def forget(path: str | Path) -> int:
    """Drop every cached verdict about `path` (any mode, arrays, size or mtime), in
    memory and on disk, so the next check runs the child again; how many were dropped."""
    real = os.path.realpath(path)

    def about(key: str) -> bool:
        try:
            return json.loads(key)[0] == real
        except (ValueError, IndexError, TypeError, KeyError):
            return False

    with _lock:
        for key in [k for k in _memory if about(k)]:
            del _memory[key]
        entries = _read_disk()
        dropped = [k for k in entries if about(k)]
        for key in dropped:
            del entries[key]
        if dropped:
            _write_disk(entries)
    return len(dropped)


def _cacheable(verdict: dict[str, str]) -> bool:
    """A verdict about the file itself (see the module's docstring)."""
    kind = verdict.get("verdict")
    return kind in ("ok", "error") or (kind == "crash" and verdict.get("signal") in CACHED_SIGNALS)


def check_file(
    path: str | Path,
    *,
    inputs: str | None = None,
    targets: str | None = None,
    mode: str = "open",
    timeout: float | None = None,
    use_cache: bool = True,
) -> None:
    """Raise DatasetError unless the file can be read in-process without risk.

    mode "open": the dataset's structure and the first and last sample of each array
    it uses, all of an array whose data take under 16 MiB (`inputs`/`targets` as for
    SequenceDataset.open); mode "list": a walk over every object in the file (for
    list_arrays); mode "both": the two in one child process (a first open of a file in
    the app: one child, not two), caching both verdicts ("open" as the file says, with
    no `inputs`/`targets`). A structural DatasetError found by the child is raised as
    it is. `timeout` defaults to DEFAULT_TIMEOUT_S (read at call time).
    """
    if mode not in ("open", "list", "both"):
        raise ValueError(f"mode must be 'open', 'list' or 'both', not {mode!r}")
    _refuse_not_hdf5(Path(path))
    if mode == "both":
        _check_both(Path(path), timeout, use_cache)
        return
    path = Path(path)
    try:
        key = _cache_key(path, mode, inputs, targets)
    except OSError as exc:
        raise DatasetError(f"{path}: could not read the file: {exc.strerror or exc}") from exc
    verdict = _lookup(key) if use_cache else None
    if verdict is None:
        limit = DEFAULT_TIMEOUT_S if timeout is None else float(timeout)
        verdict = _run_child(path, mode, inputs, targets, limit)
        if use_cache and _cacheable(verdict):
            _store(key, verdict)
    if verdict["verdict"] != "ok":
        raise DatasetError(verdict["message"])


def _refuse_not_hdf5(path: Path) -> None:
    """DatasetError naming the file and what it seems to be, when it is not HDF5 at all
    (a CSV, an image, an empty file): said at once, with no child and no h5py text."""
    from workbench.file_kinds import not_hdf5_message

    try:
        message = not_hdf5_message(path) if path.is_file() else None
    except OSError:
        return  # the check itself says why the file cannot be read
    if message:
        raise DatasetError(message)


def _check_both(path: Path, timeout: float | None, use_cache: bool) -> None:
    try:
        list_key = _cache_key(path, "list", None, None)
        open_key = _cache_key(path, "open", None, None)
    except OSError as exc:
        raise DatasetError(f"{path}: could not read the file: {exc.strerror or exc}") from exc
    listed = _lookup(list_key) if use_cache else None
    if listed is None or (listed["verdict"] == "ok" and _lookup(open_key) is None):
        limit = DEFAULT_TIMEOUT_S if timeout is None else float(timeout)
        listed = _run_child(path, "both", None, None, limit)
        opened = listed.pop("open", None)
        if use_cache and _cacheable(listed):
            _store(list_key, listed)
            if isinstance(opened, dict) and _cacheable(opened):
                _store(open_key, opened)
    if listed["verdict"] != "ok":
        raise DatasetError(listed["message"])


# --- the parent's side --------------------------------------------------------------


def _cache_key(path: Path, mode: str, inputs: str | None, targets: str | None) -> str:
    real = os.path.realpath(path)
    stat = os.stat(real)
    return json.dumps([real, stat.st_size, stat.st_mtime_ns, mode, inputs, targets,
                       _hdf5_version(), CHECKER_VERSION])


def _hdf5_version() -> str:
    import h5py

    return str(h5py.version.hdf5_version)


def _lookup(key: str) -> dict[str, str] | None:
    with _lock:
        if key in _memory:
            return _memory[key]
        verdict = _read_disk().get(key)
        if isinstance(verdict, dict) and _cacheable(verdict):
            _memory[key] = verdict
            return verdict
    return None


def _store(key: str, verdict: dict[str, str]) -> None:
    with _lock:
        _memory[key] = verdict
        entries = _read_disk()
        entries.pop(key, None)
        entries[key] = verdict
        while len(entries) > MAX_CACHED:
            entries.pop(next(iter(entries)))
        _write_disk(entries)


def _read_disk() -> dict[str, Any]:
    try:
        data = json.loads((cache_dir() / CACHE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_disk(entries: dict[str, Any]) -> None:
    """Best effort: a read-only or full disk only costs the next run another check."""
    folder = cache_dir()
    tmp = folder / f".{CACHE_FILE}.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(entries), encoding="utf-8")
        os.replace(tmp, folder / CACHE_FILE)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _child_command(path: Path, mode: str, inputs: str | None, targets: str | None) -> list[str]:
    command = [sys.executable, "-m", "workbench.safe_open", "--mode", mode, "--path", str(path)]
    if inputs:
        command += ["--inputs", inputs]
    if targets:
        command += ["--targets", targets]
    return command


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
    env["OMP_NUM_THREADS"] = env["OPENBLAS_NUM_THREADS"] = env["MKL_NUM_THREADS"] = "1"
    env.pop("PYTHONSTARTUP", None)
    return env


def _run_child(
    path: Path, mode: str, inputs: str | None, targets: str | None, timeout: float
) -> dict[str, str]:
    command = _child_command(path, mode, inputs, targets)
    unsafe = f"{path}: {UNSAFE}: "
    try:
        # its own session: a Ctrl-C in the terminal (SIGINT to the foreground process
        # group) reaches the app, which stops waiting, and never kills the check
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              env=_child_env(), stdin=subprocess.DEVNULL, errors="replace",
                              start_new_session=True)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout
        step = _last_step(out or "")
        return {"verdict": "timeout", "message": unsafe + f"reading it did not finish within "
                f"{timeout:g} s (stuck while {step}); the file may be damaged, or on a slow "
                "or unreachable disk"}
    result = _result(proc.stdout)
    if proc.returncode == 0 and result is not None:
        verdict = ({"verdict": "ok", "message": ""} if result.get("ok")
                   else {"verdict": "error", "message": str(result.get("error"))})
        opened = result.get("open")  # mode "both": the open check's own verdict
        if isinstance(opened, dict):
            verdict["open"] = ({"verdict": "ok", "message": ""} if opened.get("ok")  # type: ignore[assignment]
                               else {"verdict": "error", "message": str(opened.get("error"))})
        return verdict
    step = _last_step(proc.stdout)
    name = ""
    if proc.returncode < 0:
        try:
            name = signal.Signals(-proc.returncode).name
        except ValueError:
            name = f"signal {-proc.returncode}"
        how = f"crashed ({name})"
    else:
        tail = (proc.stderr.strip().splitlines() or [""])[-1][:200]
        how = f"stopped with status {proc.returncode}" + (f" ({tail})" if tail else "")
    if name in CACHED_SIGNALS:
        return {"verdict": "crash", "signal": name, "message": unsafe + f"the HDF5 reader "
                f"{how} while {step}; the file is probably damaged"}
    if name:
        how = f"was stopped by {name}"
    return {"verdict": "crash", "signal": name, "message": unsafe + f"the check {how} while "
            f"{step}, which is no verdict on the file; open it again to check it again"}


def _result(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith(_RESULT):
            try:
                value = json.loads(line[len(_RESULT):])
            except ValueError:
                return None
            return value if isinstance(value, dict) else None
    return None


def _last_step(stdout: str) -> str:
    steps = [line[len(_STEP):] for line in stdout.splitlines() if line.startswith(_STEP)]
    return steps[-1] if steps else "starting"


# --- the child's side ---------------------------------------------------------------


def _step(text: str) -> None:
    print(_STEP + text, flush=True)


def _check_open(path: str, inputs: str | None, targets: str | None) -> None:
    import h5py

    from workbench import dataset_layout

    _step("opening the file")
    with h5py.File(path, "r") as f:
        _step("reading the structure")
        layout = dataset_layout.resolve_layout(f, path, inputs, targets)
        for group in layout.groups.values():
            for side in (group.x, group.y):
                _step(f"reading the samples of {side.path}")
                dataset_layout.probe_array(side.dataset)


def _check_list(path: str) -> None:
    import h5py

    from workbench import dataset_layout

    _step("opening the file")
    with h5py.File(path, "r") as f:
        _step("listing the arrays in the file")
        for info in dataset_layout.walk_arrays(f, path):
            _step(f"reading the attributes of {info.path}")
            dict(f[info.path].attrs)


def main(argv: list[str] | None = None) -> int:
    """The child: check one file, print `result {json}` as the last line of stdout."""
    parser = argparse.ArgumentParser(prog="python -m workbench.safe_open")
    parser.add_argument("--mode", choices=("open", "list", "both"), default="open")
    parser.add_argument("--path", required=True)
    parser.add_argument("--inputs")
    parser.add_argument("--targets")
    args = parser.parse_args(argv)
    if args.mode == "both":
        result = _verdict(_check_list, args.path)
        if result["ok"]:
            result["open"] = _verdict(_check_open, args.path, None, None)
    elif args.mode == "open":
        result = _verdict(_check_open, args.path, args.inputs, args.targets)
    else:
        result = _verdict(_check_list, args.path)
    print(_RESULT + json.dumps(result), flush=True)
    return 0


def _verdict(check: Any, path: str, *args: Any) -> dict[str, Any]:
    """{"ok": True}, or {"ok": False, "error": why} when `check(path, *args)` fails."""
    try:
        check(path, *args)
    except DatasetError as exc:
        return {"ok": False, "error": str(exc)}
    except Exception as exc:  # any failure of the reader is a verdict about the file
        detail = str(exc).strip() or type(exc).__name__
        return {"ok": False, "error": f"{path}: the file could not be read: {detail}"}
    return {"ok": True}


if __name__ == "__main__":
    sys.exit(main())
