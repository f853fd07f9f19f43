"""Trainer throughput against a plain PyTorch script, as a ratio (reported, not asserted).

The baseline is what a user would write: torch's fused modules (nn.LSTM / nn.GRU /
nn.RNN) for the same encoder-decoder, teacher forcing 1.0, a TensorDataset with
DataLoader(shuffle=True), Adam, no instrumentation. rnn-sigmoid has no fused module
in torch, so its baseline is the step loop a user would write (Linear layers and
torch.sigmoid). The Trainer runs as the app runs it, started through the run service
(workbench.run_service.RunService, as the CLI and the GUI start it): a RunRecorder
writing the run folder, probes at the default rule (workbench.training.ProbeClock),
checkpoints.

Both sides train the same number of steps on the same data with the same torch
thread count, interleaved in rounds (plain, trainer, trainer, plain) to even out a
shared machine; sequences/s is measured from the end of step `warmup` to the last
step, in wall time and in the process's CPU time (all its threads: the recorder's
writes and heartbeat count). The CPU-time ratio is the steadier one where other
processes compete for the cores; the table gives the median over rounds. The
Trainer's steps stay inside its first epoch, so no validation pass is timed.
The probe share is the probes' cost (each probe and the sending of its event) over
whole runs, the first and the final probe included, against the runs' training time.
Targets (issue 9): a ratio of at least 0.95 for every cell, a probe share of at most 5%.

--checkpoint-cost measures instead what rewriting `latest` every `checkpoint_seconds`
(5 s, the default since issue 10: a kill loses at most that plus a step) costs an LSTM
(hidden 128, T 50 by default): the same runs with the periodic checkpoint and without it
(latest only at the start and the end), interleaved (5 s, off, off, 5 s) per round. The
table gives sequences/s and their ratio (median over rounds), and the share of the
timed steps' wall time spent writing checkpoints, timed around each write. Target: at
most 2%.

    .venv/bin/python benchmarks/bench_training.py [--steps 200] [--threads 1]
        [--cells lstm,gru,...] [--hidden 128] [--batch 64] [--steps-in 50] [--device cpu]
    .venv/bin/python benchmarks/bench_training.py --checkpoint-cost [--steps 400]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench import tasks  # noqa: E402
from workbench.config import RunConfig  # noqa: E402
from workbench.datasets import SequenceDataset  # noqa: E402
from workbench.events import StepMetrics  # noqa: E402
from workbench.run_service import RunService  # noqa: E402

CELLS = ("rnn-tanh", "rnn-relu", "rnn-sigmoid", "lstm", "gru")


# --- the plain script ------------------------------------------------------------------------


class SigmoidRNN(nn.Module):
    """No fused sigmoid RNN exists in torch: the loop a user would write."""

    def __init__(self, inputs: int, hidden: int) -> None:
        super().__init__()
        self.ih = nn.Linear(inputs, hidden)
        self.hh = nn.Linear(hidden, hidden)
        self.hidden = hidden

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None):
        h = x.new_zeros(x.shape[0], self.hidden) if h is None else h[0]
        gi = self.ih(x)
        outs = []
        for t in range(x.shape[1]):
            h = torch.sigmoid(gi[:, t] + self.hh(h))
            outs.append(h)
        return torch.stack(outs, dim=1), h.unsqueeze(0)


def recurrent(cell: str, inputs: int, hidden: int) -> nn.Module:
    if cell == "lstm":
        return nn.LSTM(inputs, hidden, batch_first=True)
    if cell == "gru":
        return nn.GRU(inputs, hidden, batch_first=True)
    if cell in ("rnn-tanh", "rnn-relu"):
        return nn.RNN(inputs, hidden, nonlinearity=cell[4:], batch_first=True)
    return SigmoidRNN(inputs, hidden)


class PlainSeq2Seq(nn.Module):
    def __init__(self, cell: str, features: int, hidden: int) -> None:
        super().__init__()
        self.encoder = recurrent(cell, features, hidden)
        self.decoder = recurrent(cell, features, hidden)
        self.start = nn.Parameter(torch.zeros(features))
        self.head = nn.Linear(hidden, features)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        _, state = self.encoder(x)
        start = self.start.expand(y.shape[0], 1, -1)
        out, _ = self.decoder(torch.cat([start, y[:, :-1]], dim=1), state)
        return self.head(out)


def plain_run(cell: str, x: np.ndarray, y: np.ndarray, args: argparse.Namespace) -> tuple[float, float]:
    """Sequences per second of the plain script after `warmup` steps: (wall, CPU time)."""
    torch.manual_seed(0)
    device = torch.device(args.device)
    model = PlainSeq2Seq(cell, x.shape[2], args.hidden).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
                        batch_size=args.batch, shuffle=True)
    loss_fn = nn.MSELoss()
    step, seen, started, cpu = 0, 0, 0.0, 0.0
    while True:
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            optimizer.zero_grad()
            loss = loss_fn(model(xb, yb), yb)
            loss.backward()
            optimizer.step()
            loss.item()  # a user logs the loss: one sync per step, as the Trainer has
            step += 1
            if step == args.warmup:
                started, cpu = time.perf_counter(), time.process_time()
            elif step > args.warmup:
                seen += len(xb)
            if step == args.steps:
                return (seen / (time.perf_counter() - started),
                        seen / (time.process_time() - cpu))


# --- the Trainer ---------------------------------------------------------------------------------


class _Clock:
    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.started = self.cpu_started = 0.0
        self.last = self.cpu_last = 0.0
        self.seen = 0
        self.start_sequences = 0

    def on_event(self, event) -> None:
        if not isinstance(event, StepMetrics):
            return
        if event.step == self.warmup:
            self.started, self.cpu_started = time.perf_counter(), time.process_time()
            self.start_sequences = event.sequences
        elif event.step > self.warmup:
            self.last, self.cpu_last = time.perf_counter(), time.process_time()
            self.seen = event.sequences - self.start_sequences


def trainer_run(cell: str, data: Path, runs_dir: Path, args: argparse.Namespace,
                checkpoint_seconds: float | None = None) -> dict:
    config = RunConfig(data=str(data), cell=cell, hidden=args.hidden, batch_size=args.batch,
                       epochs=None, steps=args.steps, lr=1e-3, teacher_forcing=1.0,
                       threads=args.threads, device=args.device, val_fraction=0.1).validate()
    if checkpoint_seconds is not None:
        config = config.replace(checkpoint_seconds=checkpoint_seconds)
    clock = _Clock(args.warmup)
    active = RunService(runs_dir).start(config, [clock])  # opens the data, as the CLI does
    trainer = active.trainer
    assert trainer.batches_per_epoch > args.steps, "the timed steps must fit in one epoch"
    active.run()
    seconds = clock.last - clock.started
    probes = trainer.probes
    saves = [(start, end) for start, end in _SAVES if clock.started <= start <= clock.last]
    _SAVES.clear()
    return {"sps": clock.seen / seconds, "cpu_sps": clock.seen / (clock.cpu_last - clock.cpu_started),
            "probes": probes.count, "probe_cost": probes.total_cost,
            "seconds": trainer.progress.seconds, "timed": seconds,
            "saves": len(saves), "save_seconds": sum(end - start for start, end in saves)}


_SAVES: list[tuple[float, float]] = []  # (start, end) of every checkpoint write, for the cost


def _time_checkpoint_writes() -> None:
    """Wrap the Trainer's checkpointing (the finite-weights check, the state dicts, the
    metrics flushed first, the atomic write and its fsyncs) to note when each starts and
    ends."""
    from workbench.training import Trainer

    save = Trainer._save

    def timed(self, name):
        started = time.perf_counter()
        try:
            return save(self, name)
        finally:
            _SAVES.append((started, time.perf_counter()))

    Trainer._save = timed


def checkpoint_cost(data: Path, runs_dir: Path, args: argparse.Namespace) -> int:
    """The periodic checkpoint's cost (module docstring): a table."""
    _time_checkpoint_writes()
    cell = args.cells.split(",")[0] if args.cells != ",".join(CELLS) else "lstm"
    every, ratios, cpu_ratios, shares, counts = [], [], [], [], []
    never: list[float] = []
    for _ in range(args.rounds):
        order = [5.0, 86400.0, 86400.0, 5.0]
        results = {5.0: [], 86400.0: []}
        for interval in order:
            results[interval].append(trainer_run(cell, data, runs_dir, args, interval))
        with_ = statistics.mean(r["sps"] for r in results[5.0])
        without = statistics.mean(r["sps"] for r in results[86400.0])
        every.append(with_)
        never.append(without)
        ratios.append(with_ / without)
        cpu_ratios.append(statistics.mean(r["cpu_sps"] for r in results[5.0])
                          / statistics.mean(r["cpu_sps"] for r in results[86400.0]))
        shares.append(100 * sum(r["save_seconds"] for r in results[5.0])
                      / sum(r["timed"] for r in results[5.0]))
        counts.append(sum(r["saves"] for r in results[5.0]) / len(results[5.0]))
        print(f"  every 5 s {[round(r['sps']) for r in results[5.0]]} seq/s, "
              f"{counts[-1]:.1f} checkpoints of {statistics.mean(r['timed'] for r in results[5.0]):.1f} s; "
              f"off {[round(r['sps']) for r in results[86400.0]]} seq/s; ratio {ratios[-1]:.3f} "
              f"(CPU time {cpu_ratios[-1]:.3f}), share {shares[-1]:.2f}%", flush=True)
    print()
    print("| latest checkpoint | seq/s | ratio to off (wall) | ratio (CPU time) "
          "| checkpoints in the timed steps | share of the time writing them |")
    print("|---|---|---|---|---|---|")
    print(f"| off (start and end only) | {statistics.median(never):.0f} | 1 | 1 | 0 | 0 |")
    print(f"| every 5 s | {statistics.median(every):.0f} | {statistics.median(ratios):.3f} "
          f"({min(ratios):.3f}-{max(ratios):.3f}) | {statistics.median(cpu_ratios):.3f} | "
          f"{statistics.median(counts):.1f} | {statistics.median(shares):.2f}% |")
    return 0


def measure_cell(cell: str, x: np.ndarray, y: np.ndarray, data: Path, runs_dir: Path,
                 args: argparse.Namespace) -> dict:
    """Rounds of plain/trainer/trainer/plain; medians of the per-round ratios."""
    wall, cpu, plain_sps, our_sps, info = [], [], [], [], []
    for _ in range(args.rounds):
        plain = [plain_run(cell, x, y, args)]
        ours = [trainer_run(cell, data, runs_dir, args) for _ in range(2)]
        plain.append(plain_run(cell, x, y, args))
        p_wall = statistics.mean(p[0] for p in plain)
        o_wall = statistics.mean(o["sps"] for o in ours)
        wall.append(o_wall / p_wall)
        cpu.append(statistics.mean(o["cpu_sps"] for o in ours) / statistics.mean(p[1] for p in plain))
        plain_sps.append(p_wall)
        our_sps.append(o_wall)
        info.extend(ours)
        print(f"  {cell}: plain {[round(p[0]) for p in plain]} trainer "
              f"{[round(o['sps']) for o in ours]} wall ratio {wall[-1]:.2f} cpu ratio {cpu[-1]:.2f}",
              flush=True)
    seconds = sum(r["seconds"] for r in info)
    return {"cell": cell, "plain": statistics.median(plain_sps), "ours": statistics.median(our_sps),
            "wall": statistics.median(wall), "wall_lo": min(wall), "wall_hi": max(wall),
            "cpu": statistics.median(cpu),
            "rate": 60 * sum(r["probes"] for r in info) / seconds,
            "share": 100 * sum(r["probe_cost"] for r in info) / seconds}


# --- the table ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", default=",".join(CELLS))
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps-in", type=int, default=50, help="T_in = T_out")
    parser.add_argument("--steps", type=int, default=200, help="training steps per measurement")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of plain/trainer/trainer/plain")
    parser.add_argument("--checkpoint-cost", action="store_true",
                        help="the cost of the periodic latest checkpoint instead (module doc)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "sine.h5"
        n = int(args.batch * (args.steps + 5) / 0.9) + args.batch
        tasks.generate("sine", data, n=n, seed=0, input_steps=args.steps_in,
                       target_steps=args.steps_in)
        with SequenceDataset.open(data, split_seed=0, val_fraction=0.1) as dataset:
            train = dataset.split("train")
            batch = train.read(np.arange(len(train)))
            norm = dataset.normalization()
            x = norm.normalize_x(batch.x).astype(np.float32)
            y = norm.normalize_y(batch.y).astype(np.float32)
        if args.checkpoint_cost:
            print(f"# {args.device}, torch {torch.__version__}, {args.threads} thread(s), "
                  f"hidden {args.hidden}, batch {args.batch}, T_in = T_out = {args.steps_in}, "
                  f"{args.steps} steps ({args.warmup} warm-up), order 5 s/off/off/5 s",
                  flush=True)
            return checkpoint_cost(data, Path(tmp) / "runs", args)
        rows = []
        print(f"# {args.device}, torch {torch.__version__}, {args.threads} thread(s), hidden "
              f"{args.hidden}, batch {args.batch}, T_in = T_out = {args.steps_in}, "
              f"{args.steps} steps ({args.warmup} warm-up), order plain/trainer/trainer/plain",
              flush=True)
        for cell in args.cells.split(","):
            rows.append(measure_cell(cell, x, y, data, Path(tmp) / "runs", args))
    print()
    print("| cell | plain seq/s | Trainer seq/s | ratio (wall) | ratio (CPU time) "
          "| probes/min | probe share |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print("| {cell} | {plain:.0f} | {ours:.0f} | {wall:.2f} ({wall_lo:.2f}-{wall_hi:.2f}) | "
              "{cpu:.2f} | {rate:.1f} | {share:.1f}% |".format(**row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
