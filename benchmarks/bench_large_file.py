"""A file of 10^8 sequences: time to the first training step, and how soon Stop takes
effect in each phase (issue 10, item 11). Reported, not asserted.

The file is the issue's: a chunked, never-written /x of 1e8 x 100 x 1 float32 and /y of
1e8 x 10 x 1 (h5py makes it at once; HDF5 serves fill values: 44 GB declared, a few kB
on disk). Runs start through the run service as the CLI starts them (the file opened,
its safety check in a child process, the validation split drawn; a GRU h16).

- time to first step: from RunService.start to the first StepMetrics (the set-up: the
  open, the normalisation sample of at most 10^6 rows, the probe batch, the first
  window of training samples read), each repetition with a fresh open;
- Stop latency: a stop requested at a random moment after a phase begins (its first
  progress event, with PHASE_QUIET_SECONDS at 0 so that it comes at the phase's first
  block; then uniform 0-0.2 s for the normalisation, 0-0.5 s for the others), to the
  moment run() returns, which is what the GUI's Stop and its window close wait for
  (they call the same request_stop). The phase it took effect in is checked: a stop
  meant for the normalisation that lands after it is counted apart.

Latencies as percentiles over the repetitions (nearest rank).

    .venv/bin/python benchmarks/bench_large_file.py [--repeats 5] [--rows 100000000]
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

import h5py
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench import training  # noqa: E402
from workbench.config import RunConfig  # noqa: E402
from workbench.events import PhaseProgress, StepMetrics  # noqa: E402
from workbench.run_service import RunService, open_run_data  # noqa: E402


def make_file(path: Path, rows: int) -> None:
    with h5py.File(path, "w") as f:
        f.create_dataset("x", shape=(rows, 100, 1), dtype="f4", chunks=True)
        f.create_dataset("y", shape=(rows, 10, 1), dtype="f4", chunks=True)


def config(path: Path, steps: int) -> RunConfig:
    return RunConfig(data=str(path), inputs="/x", targets="/y", cell="gru", hidden=16,
                     batch_size=32, epochs=None, steps=steps, threads=1).validate()


class Watch:
    """Notes when the first step comes, and stops the run at a random moment after a
    phase first shows ("normalisation", "steps", "validation")."""

    def __init__(self, phase: str | None, rng: random.Random, most: float = 0.5) -> None:
        self.phase, self.rng, self.most = phase, rng, most
        self.active = None
        self.first_step: float | None = None
        self.requested: float | None = None
        self._armed = False

    def on_event(self, event) -> None:
        now = time.perf_counter()
        if isinstance(event, StepMetrics) and self.first_step is None:
            self.first_step = now
        seen = ("steps" if isinstance(event, StepMetrics) else
                event.phase if isinstance(event, PhaseProgress) else None)
        if seen == self.phase and not self._armed:
            self._armed = True
            delay = self.rng.uniform(0.0, self.most)
            threading.Thread(target=self._stop_after, args=(delay,), daemon=True).start()
        elif seen == "steps" and self.phase == "normalisation" and not self._armed:
            # the set-up went by unseen: end the run
            self._armed = True
            self.active.request_stop()

    def _stop_after(self, delay: float) -> None:
        time.sleep(delay)
        self.requested = time.perf_counter()
        self.active.request_stop()


def first_step_seconds(path: Path, runs: Path) -> float:
    watch = Watch("steps", random.Random(0))
    started = time.perf_counter()
    active = RunService(runs).start(config(path, 10**9), [watch])  # opens the file itself
    watch.active = active
    active.run()
    return watch.first_step - started


def stop_latency(path: Path, runs: Path, phase: str, dataset,
                 rng: random.Random) -> tuple[float, bool]:
    """(seconds from the stop request to run()'s return, whether it took effect in
    `phase`)."""
    steps = 3 if phase == "validation" else 10**9
    watch = Watch(phase, rng, 0.2 if phase == "normalisation" else 0.5)
    active = RunService(runs).start(config(path, steps), [watch], dataset=dataset)
    watch.active = active
    finished = active.run()
    ended = time.perf_counter()
    if watch.requested is None:
        raise RuntimeError(f"the {phase} phase never showed")
    within = ("set-up" in finished.message if phase == "normalisation"
              else finished.status == "stopped")
    return ended - watch.requested, within


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10**8)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rng = random.Random(20261202)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "huge.h5"
        make_file(path, args.rows)
        runs = Path(tmp) / "runs"
        print(f"# {args.rows:,} x 100 x 1 -> 10 x 1 float32, chunked, never written; GRU h16, "
              f"batch 32, 1 thread; {args.repeats} repetitions", flush=True)
        firsts = [first_step_seconds(path, runs) for _ in range(args.repeats)]
        print(f"  first step: {[round(v, 2) for v in firsts]}", flush=True)
        # a stop during the normalisation must come after its progress shows (>= 0.5 s
        # into it): measure it from there, the way a user sees it
        rows = []
        training.PHASE_QUIET_SECONDS = 0.0  # each phase's first event at its first unit
        with open_run_data(config(path, 1)) as dataset:
            for phase in ("normalisation", "steps", "validation"):
                if phase == "steps":
                    dataset.normalization()  # cached from here: the later runs skip it
                results = [stop_latency(path, runs, phase, dataset, rng)
                           for _ in range(args.repeats)]
                latencies = [v for v, within in results if within]
                late = len(results) - len(latencies)
                print(f"  stop during {phase}: {[round(v, 3) for v in latencies]}"
                      + (f" ({late} landed after the phase)" if late else ""), flush=True)
                if latencies:
                    rows.append((phase, latencies))
    print()
    print("| measure | p50 | p90 | max |")
    print("|---|---|---|---|")
    print(f"| time to first step (s) | {percentile(firsts, 0.5):.2f} | "
          f"{percentile(firsts, 0.9):.2f} | {max(firsts):.2f} |")
    for phase, latencies in rows:
        print(f"| Stop latency during {phase} (s) | {percentile(latencies, 0.5):.3f} | "
              f"{percentile(latencies, 0.9):.3f} | {max(latencies):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
