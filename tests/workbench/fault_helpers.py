"""The command line in a child process under a fault: a file-size limit (a full disk),
an address-space limit (a memory limit), an unprivileged user (a read-only folder).

    python -m tests.workbench.fault_helpers [--fsize BYTES] [--address-space KIB]
        [--headroom BYTES] [--unprivileged] [--no-memory-check]
        -- train ... [--then train ...]

--fsize sets RLIMIT_FSIZE with SIGXFSZ ignored, so a write past it fails with EFBIG as
one on a full disk fails with ENOSPC (a tmpfs mount would need a privilege CI may lack).
--address-space sets RLIMIT_AS as `ulimit -v` does (KiB); --headroom sets it to what the
process has mapped once everything is imported, plus BYTES. --unprivileged drops root
to nobody after the imports (root ignores file modes; the interpreter's own files may be
root's only). --no-memory-check skips the run's memory pre-check, to reach what it
guards against: an allocation that fails later (an estimate can be wrong, and other
processes take memory after it). The child exits with the
CLI's status (of the last command: `--then` runs another in the same process, then
each is followed by a line "=== exit N" on stdout and stderr; `outcomes` splits them).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NOBODY = 65534


def run_cli(args: list[str], *, fsize: int | None = None, address_space_kib: int | None = None,
            headroom: int | None = None, unprivileged: bool = False,
            memory_check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    """`python main.py ARGS` in a child under the given limits; its exit status and output."""
    limits = []
    if fsize is not None:
        limits += ["--fsize", str(fsize)]
    if address_space_kib is not None:
        limits += ["--address-space", str(address_space_kib)]
    if headroom is not None:
        limits += ["--headroom", str(headroom)]
    if unprivileged:
        limits.append("--unprivileged")
    if not memory_check:
        limits.append("--no-memory-check")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "tests.workbench.fault_helpers", *limits, "--",
                           *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


def checksums(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under `folder` (or of the file itself), by relative path."""
    folder = Path(folder)
    files = [folder] if folder.is_file() else sorted(p for p in folder.rglob("*") if p.is_file())
    return {str(p.relative_to(folder)) if p != folder else p.name:
            hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _vm_size() -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize")


def main(argv: list[str]) -> int:
    import resource

    parser = argparse.ArgumentParser()
    parser.add_argument("--fsize", type=int)
    parser.add_argument("--address-space", type=int)
    parser.add_argument("--headroom", type=int)
    parser.add_argument("--unprivileged", action="store_true")
    parser.add_argument("--no-memory-check", action="store_true")
    parser.add_argument("cli", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    cli = args.cli[1:] if args.cli[:1] == ["--"] else args.cli
    # everything the CLI needs, imported while the interpreter's files can still be read
    # (and before the limits, which the imports themselves would count)
    import h5py  # noqa: F401
    import torch  # noqa: F401
    import tqdm  # noqa: F401

    import workbench.cli
    import workbench.cli.train  # noqa: F401
    import workbench.run_service  # noqa: F401

    if args.no_memory_check:
        import workbench.memory

        workbench.memory.check_run_memory = lambda *args, **kwargs: None
    if args.unprivileged and os.geteuid() == 0:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    if args.fsize is not None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (args.fsize, args.fsize))
    if args.address_space is not None:
        limit = args.address_space * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    if args.headroom is not None:
        limit = _vm_size() + args.headroom
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    commands, current = [], []
    for word in cli:
        if word == "--then":
            commands.append(current)
            current = []
        else:
            current.append(word)
    commands.append(current)
    code = 0
    for command in commands:
        code = workbench.cli.main(command)
        if len(commands) > 1:
            for stream in (sys.stdout, sys.stderr):
                print(f"{MARK}{code}", file=stream, flush=True)
    return code


MARK = "=== exit "


def outcomes(done: subprocess.CompletedProcess) -> list[tuple[int, str, str]]:
    """(exit status, stdout, stderr) of each command a child ran, in order."""
    def parts(text: str) -> list[tuple[int, str]]:
        found, lines = [], []
        for line in text.splitlines():
            if line.startswith(MARK):
                found.append((int(line[len(MARK):]), "\n".join(lines)))
                lines = []
            else:
                lines.append(line)
        return found

    out, err = parts(done.stdout), parts(done.stderr)
    return [(code, o, e) for (code, o), (_, e) in zip(out, err)]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
