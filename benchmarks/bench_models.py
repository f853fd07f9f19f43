"""How much the instrumented path and a probe cost, as ratios to the fast path.

For each cell, hidden size and sequence length, times one training step (forward,
backward, Adam) on the fast path (fused kernels, what the Trainer uses) and on the
unrolled path (forward(..., instrumented=True)), and one probe (models.probes.probe,
float64, on the probe batch), interleaved so that they share the machine's noise.
Prints the fast path's p50 and p90 in ms and the others as ratios of medians. The
ratios decide how often the Trainer can afford to probe; the absolute times depend
on the machine and are no pass/fail criterion.

    .venv/bin/python benchmarks/bench_models.py [--threads N] [--repeats R] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.cells import CELLS  # noqa: E402
from models.probes import probe  # noqa: E402
from models.seq2seq import Seq2Seq, Seq2SeqConfig, SideConfig  # noqa: E402

FEATURES = 8


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[k]


def measure(cell: str, hidden: int, steps: int, args: argparse.Namespace) -> dict[str, list[float]]:
    torch.manual_seed(0)
    side = SideConfig("continuous", features=FEATURES)
    config = Seq2SeqConfig(cell, hidden, side, side, layers=args.layers)
    model = Seq2Seq(config)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    src = torch.randn(args.batch, steps, FEATURES)
    tgt = torch.randn(args.batch, steps, FEATURES)
    lengths = None
    if args.variable:
        lengths = torch.randint(steps // 2, steps + 1, (args.batch,))
        lengths[0] = steps

    def train(instrumented: bool) -> None:
        out = model(src, tgt, lengths, lengths, instrumented=instrumented)
        outputs = out.outputs if instrumented else out
        loss = model.loss(outputs, tgt, lengths)
        opt.zero_grad()
        loss.backward()
        opt.step()

    pb = min(args.probe_batch, args.batch)
    plen = None if lengths is None else lengths[:pb]
    tasks = {
        "fast": lambda: train(False),
        "unrolled": lambda: train(True),
        "probe": lambda: probe(model, src[:pb], tgt[:pb], plen, plen),
    }
    times: dict[str, list[float]] = {k: [] for k in tasks}
    for f in tasks.values():  # warm-up (allocator, oneDNN primitives)
        f()
    for _ in range(args.repeats):
        for name, f in tasks.items():
            started = time.perf_counter()
            f()
            times[name].append((time.perf_counter() - started) * 1000)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per case")
    parser.add_argument("--quick", action="store_true", help="hidden 64 and T 20 only, 3 repeats")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument(
        "--probe-batch", type=int, default=32, help="RunConfig.probe_batch's default"
    )
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--variable", action="store_true", help="random lengths in T/2..T")
    parser.add_argument(
        "--flush-denormal",
        action="store_true",
        help="torch.set_flush_denormal(True): vanishing float32 gradients become 0 instead "
        "of slow subnormals (measured 2x on the sigmoid RNN's training step)",
    )
    parser.add_argument("--cells", nargs="*", default=list(CELLS), choices=list(CELLS))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(args.flush_denormal)
    hiddens, lengths = ((64,), (20,)) if args.quick else ((64, 256), (20, 100))
    if args.quick:
        args.repeats = min(args.repeats, 3)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), batch {args.batch}, "
        f"probe batch {min(args.probe_batch, args.batch)}, layers {args.layers}, "
        f"features {FEATURES}, T_in = T_out = T, "
        f"{'variable' if args.variable else 'full'} lengths, median of {args.repeats}"
        + (", denormals flushed" if args.flush_denormal else "")
    )
    print(
        f"{'cell':<12}{'H':>5}{'T':>5}{'fast p50 ms':>13}{'fast p90 ms':>13}{'unrolled':>10}{'probe':>8}"
    )
    for cell in args.cells:
        for hidden in hiddens:
            for steps in lengths:
                t = measure(cell, hidden, steps, args)
                fast = statistics.median(t["fast"])
                print(
                    f"{cell:<12}{hidden:>5}{steps:>5}{fast:>13.1f}{percentile(t['fast'], 0.9):>13.1f}"
                    f"{statistics.median(t['unrolled']) / fast:>9.2f}x"
                    f"{statistics.median(t['probe']) / fast:>7.2f}x",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
