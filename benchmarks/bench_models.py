"""How much the instrumented path and a probe cost, as ratios to the fast path.

For each cell, hidden size and sequence length, times one training step (forward,
backward, Adam) on the fast path (fused kernels, what the Trainer uses) and on the
unrolled path (forward(..., instrumented=True)), and one probe (models.probes.probe,
float64, on the probe batch), interleaved so that they share the machine's noise.
Prints the fast path's p50 and p90 in ms and the others as ratios of medians. The
ratios decide how often the Trainer can afford to probe; the absolute times depend
on the machine and are no pass/fail criterion.

Attention table (LSTM, H 128, T 50 by default): a training step (forward, backward,
Adam; teacher-forced) and a probe with each attention type, as ratios to the same
with no attention, measured interleaved in the same run.

Beam table (token targets, LSTM H 128): Seq2Seq.generate over a batch with beam 1
(greedy) and beam k = 1, 4, 8 (models.beam), and beam_search of one sample with its
tree (what the GUI's beam view runs on a click), as p50 ms and ratios to greedy.

    .venv/bin/python benchmarks/bench_models.py [--threads N] [--repeats R] [--quick]
        [--tables cells attention beam]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.attention import ATTENTION_KINDS  # noqa: E402
from models.beam import beam_search, generate_beam  # noqa: E402
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


def interleaved(tasks: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """ms per call of each task: one warm-up each, then `repeats` rounds of all of them."""
    times: dict[str, list[float]] = {k: [] for k in tasks}
    for f in tasks.values():
        f()
    for _ in range(repeats):
        for name, f in tasks.items():
            started = time.perf_counter()
            f()
            times[name].append((time.perf_counter() - started) * 1000)
    return times


def attention_table(args: argparse.Namespace) -> None:
    """A training step and a probe with each attention type, as ratios to none."""
    hidden, steps = args.attention_hidden, args.attention_steps
    side = SideConfig("continuous", features=FEATURES)
    src = torch.randn(args.batch, steps, FEATURES)
    tgt = torch.randn(args.batch, steps, FEATURES)
    pb = min(args.probe_batch, args.batch)
    tasks: dict[str, Callable[[], object]] = {}
    for kind in ATTENTION_KINDS:
        torch.manual_seed(0)
        model = Seq2Seq(Seq2SeqConfig("lstm", hidden, side, side, attention=kind))
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)

        def train(model: Seq2Seq = model, opt: torch.optim.Optimizer = opt) -> None:
            loss = model.loss(model(src, tgt), tgt)
            opt.zero_grad()
            loss.backward()
            opt.step()

        tasks[f"train {kind}"] = train
        tasks[f"probe {kind}"] = lambda model=model: probe(model, src[:pb], tgt[:pb])
    t = interleaved(tasks, args.repeats)
    base_train = statistics.median(t["train none"])
    base_probe = statistics.median(t["probe none"])
    print(
        f"\nattention: lstm H {hidden}, T_in = T_out = {steps}, batch {args.batch}, "
        f"probe batch {pb}, median of {args.repeats}"
    )
    print(f"{'attention':<15}{'train p50 ms':>14}{'train':>9}{'probe p50 ms':>14}{'probe':>9}")
    for kind in ATTENTION_KINDS:
        train_ms = statistics.median(t[f"train {kind}"])
        probe_ms = statistics.median(t[f"probe {kind}"])
        print(
            f"{kind:<15}{train_ms:>14.1f}{train_ms / base_train:>8.2f}x"
            f"{probe_ms:>14.1f}{probe_ms / base_probe:>8.2f}x",
            flush=True,
        )


def beam_table(args: argparse.Namespace) -> None:
    """generate with beam 1 (greedy) and k = 1, 4, 8; beam_search of one sample."""
    hidden, steps, vocab = args.attention_hidden, args.beam_steps, args.beam_vocab
    tokens = SideConfig("tokens", vocab_size=vocab, embedding=32)
    torch.manual_seed(0)
    model = Seq2Seq(Seq2SeqConfig("lstm", hidden, tokens, tokens)).eval()
    # a model that never ends early: decoding runs all `steps` steps, a worst case
    with torch.no_grad():
        model.head.bias[tokens.end_id] = -1e4
    src = torch.randint(3, vocab, (args.beam_batch, steps))
    widths = (4, 8)
    tasks: dict[str, Callable[[], object]] = {
        "greedy": lambda: model.generate(src, steps),
        "beam 1": lambda: model.generate(src, steps, beam=1),
    }
    tasks["search 1"] = lambda: generate_beam(model, src, steps, None, 1)
    for k in widths:
        tasks[f"beam {k}"] = lambda k=k: model.generate(src, steps, beam=k)
    for k in (1, *widths):
        tasks[f"one {k}"] = lambda k=k: beam_search(model, src[:1], steps, k)
    t = interleaved(tasks, args.repeats)
    greedy = statistics.median(t["greedy"])
    one = statistics.median(t["one 1"])
    print(
        f"\nbeam search: lstm H {hidden}, vocabulary {vocab}, T_in = steps = {steps} "
        f"(no early end), median of {args.repeats}"
    )
    print(f"{'what':<44}{'p50 ms':>9}{'p90 ms':>9}{'ratio':>9}")
    rows = [
        ("greedy", f"generate, batch {args.beam_batch}, greedy (beam=1)", greedy),
        ("search 1", f"generate_beam, batch {args.beam_batch}, k=1", greedy),
        *[(f"beam {k}", f"generate, batch {args.beam_batch}, beam={k}", greedy) for k in widths],
        *[(f"one {k}", f"beam_search, 1 sample + tree, k={k}", one) for k in (1, *widths)],
    ]
    for key, label, base in rows:
        med = statistics.median(t[key])
        print(f"{label:<44}{med:>9.1f}{percentile(t[key], 0.9):>9.1f}{med / base:>8.2f}x")


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
    parser.add_argument(
        "--tables",
        nargs="*",
        default=["cells", "attention", "beam"],
        choices=["cells", "attention", "beam"],
    )
    parser.add_argument("--attention-hidden", type=int, default=128)
    parser.add_argument("--attention-steps", type=int, default=50)
    parser.add_argument("--beam-steps", type=int, default=20)
    parser.add_argument("--beam-vocab", type=int, default=32)
    parser.add_argument("--beam-batch", type=int, default=32)
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
    if "attention" in args.tables:
        attention_table(args)
    if "beam" in args.tables:
        beam_table(args)
    if "cells" not in args.tables:
        return 0
    print(
        f"\n{'cell':<12}{'H':>5}{'T':>5}{'fast p50 ms':>13}{'fast p90 ms':>13}{'unrolled':>10}{'probe':>8}"
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
