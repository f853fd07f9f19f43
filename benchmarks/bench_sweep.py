"""A sweep's overhead against running its runs one by one, and the speed-up of workers.

Three measurements, each a ratio against a baseline timed in the same round (rounds
interleave the variants to even out a shared machine; the table gives the median and
every round's figure):

1. CLI: `python main.py sweep ... --workers 1` (one process) against the same runs as
   `python main.py train ...`, one process per run, one after another: what a user
   would otherwise type. Wall time of the whole command(s). The sweep saves the
   interpreter start and torch import of every run but the first.
2. In-process: a SweepRunner (its record written at every run's start and end, its
   table read at the end) against the same runs started one by one through
   workbench.run_service.RunService on the same dataset, opened once for both: the
   sweep machinery alone, without process starts or file opens. Target (issue 11): at
   most 5% overhead.
3. Workers: `sweep --workers 2` against `sweep --workers 1`, both whole commands.

Every run: the copy task (length 5, delay 10, 1,000 sequences), hidden 32, 1 torch
thread, the same steps; cells rnn-tanh and gru x `--seeds` seeds.

    .venv/bin/python benchmarks/bench_sweep.py [--steps 100] [--seeds 2] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from workbench import sweeps  # noqa: E402
from workbench.config import RunConfig  # noqa: E402
from workbench.run_service import RunService, open_run_data  # noqa: E402
from workbench.sweep_spec import SweepSpec, TaskSpec  # noqa: E402

CELLS = ("rnn-tanh", "gru")
TASK = TaskSpec("copy", n=1000, options={"length": 5, "delay": 10})


def fixed_flags(steps: int) -> list[str]:
    return ["--hidden", "32", "--batch", "32", "--steps", str(steps), "--threads", "1",
            "--probe-batch", "32", "--no-progress"]


def run_command(args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "main.py"), *args], check=True, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    return time.perf_counter() - started


def cli_train_one_by_one(data: Path, runs: Path, steps: int, seeds: int,
                         env: dict[str, str]) -> float:
    total = 0.0
    for seed in range(seeds):
        for cell in CELLS:
            total += run_command(["train", "--data", str(data), "--cell", cell, "--seed",
                                  str(seed), "--runs-dir", str(runs), *fixed_flags(steps)], env)
    return total


def cli_sweep(runs: Path, steps: int, seeds: int, workers: int, env: dict[str, str]) -> float:
    return run_command(["sweep", "--task", TASK.name, "--task-n", str(TASK.n),
                        "--task-option", "length=5", "--task-option", "delay=10",
                        "--grid", "cell=" + ",".join(CELLS), "--seeds", str(seeds),
                        "--workers", str(workers), "--runs-dir", str(runs),
                        *fixed_flags(steps)], env)


def base_config(data: Path, steps: int) -> RunConfig:
    return RunConfig(data=str(data), hidden=32, batch_size=32, steps=steps, epochs=None,
                     threads=1, probe_batch=32).validate()


def in_process_one_by_one(data: Path, runs: Path, steps: int, seeds: int) -> float:
    """The runs through the run service, on one dataset opened once (as the sweep does)."""
    started = time.perf_counter()
    service = RunService(runs)
    config = base_config(data, steps)
    with open_run_data(config) as dataset:
        for seed in range(seeds):
            for cell in CELLS:
                service.start(config.replace(cell=cell, seed=seed), dataset=dataset).run()
    return time.perf_counter() - started


def in_process_sweep(data: Path, runs: Path, steps: int, seeds: int) -> float:
    started = time.perf_counter()
    spec = SweepSpec.build(base_config(data, steps), {"cell": list(CELLS)}, seeds=seeds)
    sweep = sweeps.SweepRunner(spec, runs_dir=runs).run()
    sweep.table()  # what `sweep` prints at the end
    return time.perf_counter() - started


def warm_up(data: Path, runs: Path) -> None:
    """One tiny run first: torch's and the reader's first-use costs are nobody's."""
    RunService(runs).start(base_config(data, 2)).run()


def row(name: str, values: list[float], baselines: list[float], unit: str) -> str:
    ratios = [v / b for v, b in zip(values, baselines)]
    each = ", ".join(f"{r:.3f}" for r in ratios)
    return (f"{name:<44} {statistics.median(values):>8.1f} {unit}  "
            f"{statistics.median(baselines):>8.1f} {unit}  {statistics.median(ratios):>7.3f}"
            f"  ({each})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    results: dict[str, list[float]] = {k: [] for k in
                                       ("train", "sweep", "direct", "runner", "w1", "w2")}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        env = {**os.environ, "SEQUENCE_WORKBENCH_HOME": str(folder / "home")}
        cache = folder / "cache"
        data = sweeps.task_dataset(cache, TASK)  # made once: every variant finds it
        warm_up(data, folder / "warm-up")
        for r in range(args.rounds):
            def runs(name: str, r: int = r) -> Path:
                # every variant finds the task's file where a sweep caches it
                path = folder / f"{name}-{r}"
                (path / sweeps.DATASETS_DIR).mkdir(parents=True, exist_ok=True)
                target = path / sweeps.DATASETS_DIR / data.name
                if not target.exists():
                    target.symlink_to(data)
                return path

            order = ("train", "sweep", "direct", "runner", "w1", "w2")
            if r % 2:
                order = order[::-1]
            for variant in order:
                if variant == "train":
                    value = cli_train_one_by_one(data, runs(variant), args.steps, args.seeds, env)
                elif variant == "sweep":
                    value = cli_sweep(runs(variant), args.steps, args.seeds, 1, env)
                elif variant == "direct":
                    value = in_process_one_by_one(data, runs(variant), args.steps, args.seeds)
                elif variant == "runner":
                    value = in_process_sweep(data, runs(variant), args.steps, args.seeds)
                elif variant == "w1":
                    value = cli_sweep(runs(variant), args.steps, args.seeds, 1, env)
                else:
                    value = cli_sweep(runs(variant), args.steps, args.seeds, 2, env)
                results[variant].append(value)
                print(f"  round {r + 1}: {variant:<7} {value:7.1f} s", file=sys.stderr,
                      flush=True)
    runs_count = len(CELLS) * args.seeds
    print(f"\nbench_sweep: {runs_count} runs ({', '.join(CELLS)} x {args.seeds} seeds) of "
          f"{args.steps} steps, copy length 5 delay 10, hidden 32, 1 thread, "
          f"{args.rounds} rounds, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}\n")
    print(f"{'':<44} {'median':>10}  {'baseline':>10}  {'ratio':>7}  (per round)")
    print(row("CLI: sweep --workers 1 / train one by one", results["sweep"], results["train"],
              "s"))
    print(row("in-process: SweepRunner / RunService runs", results["runner"],
              results["direct"], "s"))
    speedups = [a / b for a, b in zip(results["w1"], results["w2"])]
    print(f"{'workers: --workers 1 / --workers 2 (speed-up)':<44} "
          f"{statistics.median(results['w1']):>8.1f} s  {statistics.median(results['w2']):>8.1f}"
          f" s  {statistics.median(speedups):>7.3f}  ({', '.join(f'{s:.3f}' for s in speedups)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
