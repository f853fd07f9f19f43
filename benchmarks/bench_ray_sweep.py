"""The Ray engine against the local one: the same 8-run sweep, headless, on this machine.

1. `sweep --engine local --workers 2` against `sweep --engine ray --ray-cpus 2
   --cpus-per-run 1` (a private instance of 2 CPUs): wall time of the whole command,
   and the ratio ray / local.
2. Ray's start-up cost: in a fresh interpreter, `ray.init` of a private instance of 2
   CPUs, the first task (a worker process started and importing torch), and
   `ray.shutdown` (what the sweep pays once, before and after its runs).
3. The per-trial overhead: the same sweep with 1 training step per run, where a run's
   time is almost all fixed cost (its folder, data open, model build, probes, the last
   validation); per run and slot: (wall - start-up) / (8 runs / 2 slots), for each engine.

Every run: the copy task (length 5, delay 10, 1,000 sequences), hidden 32, 1 torch
thread; cells rnn-tanh and gru x 4 seeds = 8 runs. Rounds interleave the variants (a
shared machine's load moves); the table gives the median and every round.

    .venv/bin/python benchmarks/bench_ray_sweep.py [--steps 200] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RUNS, SLOTS = 8, 2

STARTUP = r"""
import json, os, tempfile, time
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
t0 = time.perf_counter()
from workbench.ray_engine import import_ray
ray = import_ray()
t1 = time.perf_counter()
temp = tempfile.mkdtemp(prefix="wb-ray-bench-", dir="/tmp")
ray.init(address="local", num_cpus=2, include_dashboard=False, _temp_dir=temp,
         _node_ip_address="127.0.0.1", log_to_driver=False)
t2 = time.perf_counter()
@ray.remote(num_cpus=1)
def first():
    import torch
    return torch.get_num_threads()
ray.get(first.remote())
t3 = time.perf_counter()
ray.shutdown()
t4 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "init": t2 - t1, "first_task": t3 - t2,
                  "shutdown": t4 - t3}))
"""


def sweep_args(runs: Path, steps: int) -> list[str]:
    return ["sweep", "--task", "copy", "--task-option", "length=5", "--task-option",
            "delay=10", "--task-n", "1000", "--grid", "cell=rnn-tanh,gru", "--seeds", "4",
            "--hidden", "32", "--batch", "32", "--steps", str(steps), "--threads", "1",
            "--probe-batch", "32", "--no-progress", "--runs-dir", str(runs)]


def timed(args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(ROOT / "main.py"), *args], env=env, cwd=ROOT,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(args)}\n{done.stderr[-2000:]}")
    return time.perf_counter() - started


def startup(env: dict[str, str]) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", STARTUP], env=env, cwd=ROOT,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH",
                                                                                   "")]),
               RAY_USAGE_STATS_ENABLED="0")
    local = ["--engine", "local", "--workers", str(SLOTS)]
    ray = ["--engine", "ray", "--ray-cpus", str(SLOTS), "--cpus-per-run", "1"]
    rows: dict[str, list[float]] = {k: [] for k in (
        "local", "ray", "local_1", "ray_1", "import", "init", "first_task", "shutdown")}
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
        # the task's data once, outside every timing
        timed(sweep_args(Path(tmp) / "warm", 1) + ["--seeds", "1", "--grid", "cell=gru"], env)
        data = Path(tmp) / "warm" / "_datasets"
        for round_no in range(args.rounds):
            for name, flags, steps in (("local", local, args.steps), ("ray", ray, args.steps),
                                       ("local_1", local, 1), ("ray_1", ray, 1)):
                runs = Path(tmp) / f"{name}-{round_no}"
                runs.mkdir()
                os.symlink(data, runs / "_datasets")
                rows[name].append(timed(sweep_args(runs, steps) + flags, env))
            for key, value in startup(env).items():
                rows[key].append(value)
            print(f"round {round_no + 1}: " + ", ".join(f"{k} {v[-1]:.2f}s"
                                                         for k, v in rows.items()),
                  file=sys.stderr, flush=True)
    med = {k: statistics.median(v) for k, v in rows.items()}
    ray_start = med["init"] + med["first_task"] + med["shutdown"]
    per_local = med["local_1"] / (RUNS / SLOTS)
    per_ray = (med["ray_1"] - ray_start) / (RUNS / SLOTS)

    def line(label: str, key: str, note: str = "") -> str:
        rounds = " ".join(f"{v:.2f}" for v in rows[key])
        return f"| {label} | {med[key]:.2f} s | {rounds} | {note} |"

    print(f"8-run sweep ({args.steps} steps per run; copy task, hidden 32, 1 thread), "
          f"{args.rounds} rounds, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    print()
    print("| measurement | median | rounds | note |")
    print("|---|---|---|---|")
    print(line("sweep --engine local --workers 2", "local", "whole command"))
    print(line("sweep --engine ray, 2 CPUs", "ray", f"ratio ray/local "
               f"{med['ray'] / med['local']:.2f}"))
    print(line("import ray", "import"))
    print(line("ray.init (private, 2 CPUs)", "init"))
    print(line("first task (worker start, torch import)", "first_task"))
    print(line("ray.shutdown", "shutdown"))
    print(line("local, 1 step per run", "local_1", f"{per_local:.2f} s per run and slot"))
    print(line("ray, 1 step per run", "ray_1", f"{per_ray:.2f} s per run and slot after "
               f"start-up ({ray_start:.2f} s)"))
    print()
    print(f"Ray start-up (init + first task + shutdown): {ray_start:.2f} s; per-trial "
          f"overhead of Ray over local: {per_ray - per_local:+.2f} s per run and slot")
    return 0


if __name__ == "__main__":
    sys.exit(main())
