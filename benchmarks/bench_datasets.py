"""What lazy, checked, block-shuffled reading costs, against the obvious alternatives.

Writes a continuous variable-length dataset of about --size-mb MB (default 1000) and
one of 10 MB with the same row shape (inputs (T=100, F=8), targets (T=20, F=8),
float32) under a temporary folder, with plain h5py slab by slab as
docs/dataset-format.md describes, then prints:

- open + validate structure, including the safe-open child check (cold verdict) and
  with the verdict cached, large vs small file, as a ratio;
- time to the first batch (the small file is cached in memory at that point);
- batch latency (p50/p99) and throughput over two epochs (the first checks every
  value; the second trusts rows already checked), against batches gathered from an
  in-memory numpy copy of the same data in a full random shuffle, as a ratio;
- peak RSS growth while iterating those epochs (psutil).

Targets (reported, never asserted): open within 20% between the two sizes and under
1.5 s including the child check; RSS growth under 300 MB; lazy throughput at least a
third of in-memory. The file is freshly written, so it sits in the page cache: these
are reader costs, not disk speed. Run it alone; other work on the machine shows up.

    .venv/bin/python benchmarks/bench_datasets.py [--size-mb 1000] [--batch 64] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench import datasets, safe_open  # noqa: E402
from workbench.datasets import SequenceDataset  # noqa: E402

T_IN, F_IN, T_OUT, F_OUT = 100, 8, 20, 8
ROW_BYTES = (T_IN * F_IN + T_OUT * F_OUT) * 4


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def write_file(path: Path, size_mb: float, seed: int = 0) -> int:
    """A format-v1 file of about size_mb MB, written slab by slab; returns N."""
    n = max(2, int(size_mb * 1e6 / ROW_BYTES))
    rng = np.random.default_rng(seed)
    slab = 8192
    with h5py.File(path, "w") as f:
        f.attrs[datasets.FORMAT_ATTR] = datasets.FORMAT_VERSION
        f.attrs["task"] = "bench"
        f.attrs["description"] = f"{n} random sequences for bench_datasets.py"
        x = f.create_dataset("inputs", (n, T_IN, F_IN), dtype=np.float32)
        y = f.create_dataset("targets", (n, T_OUT, F_OUT), dtype=np.float32)
        lengths = rng.integers(T_IN // 2, T_IN + 1, n).astype(np.int32)
        f["input_lengths"] = lengths
        for lo in range(0, n, slab):
            hi = min(n, lo + slab)
            values = rng.standard_normal((hi - lo, T_IN, F_IN), dtype=np.float32)
            values[np.arange(T_IN)[None, :] >= lengths[lo:hi, None]] = 0.0  # zero padding
            x[lo:hi] = values
            y[lo:hi] = rng.standard_normal((hi - lo, T_OUT, F_OUT), dtype=np.float32)
    return n


def time_open(path: Path, repeats: int, cold: bool) -> list[float]:
    times = []
    for _ in range(repeats):
        if cold:
            safe_open.clear_cache(disk=True)
        start = time.perf_counter()
        with SequenceDataset.open(path):
            times.append(time.perf_counter() - start)
    return times


def first_batch(path: Path, batch: int) -> float:
    with SequenceDataset.open(path) as ds:
        start = time.perf_counter()
        next(ds.split("train").iter_batches(batch, seed=0, epoch=0))
        return time.perf_counter() - start


def lazy_epochs(path: Path, batch: int, epochs: int = 2) -> tuple[list, int, float]:
    """Per epoch (latencies, seconds); samples per epoch; peak RSS growth (bytes)."""
    proc = psutil.Process()
    results = []
    with SequenceDataset.open(path) as ds:
        split = ds.split("train")
        base = peak = proc.memory_info().rss
        for epoch in range(epochs):
            latencies = []
            start = last = time.perf_counter()
            for b in split.iter_batches(batch, seed=0, epoch=epoch):
                assert len(b)
                now = time.perf_counter()
                latencies.append(now - last)
                if len(latencies) % 16 == 0:
                    peak = max(peak, proc.memory_info().rss)
                last = time.perf_counter()
            results.append((latencies, time.perf_counter() - start))
        peak = max(peak, proc.memory_info().rss)
        return results, len(split), peak - base


def memory_epoch(path: Path, batch: int, n_train: int) -> tuple[list[float], float]:
    """The same number of samples, gathered from in-memory arrays in a full shuffle."""
    with h5py.File(path, "r") as f:
        x, y = f["inputs"][()], f["targets"][()]
    order = np.random.default_rng(0).permutation(len(x))[:n_train]
    latencies = []
    start = last = time.perf_counter()
    for lo in range(0, n_train, batch):
        idx = np.sort(order[lo : lo + batch])
        bx, by = x[idx], y[idx]
        assert len(bx) and len(by)
        now = time.perf_counter()
        latencies.append(now - last)
        last = now
    return latencies, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=float, default=1000.0)
    parser.add_argument("--small-mb", type=float, default=10.0)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--keep", type=Path, help="write the files here and keep them")
    args = parser.parse_args()

    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench-datasets-"))
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["SEQUENCE_WORKBENCH_HOME"] = str(folder / "home")
    big, small = folder / "big.h5", folder / "small.h5"
    try:
        start = time.perf_counter()
        n_big = write_file(big, args.size_mb)
        n_small = write_file(small, args.small_mb, seed=1)
        print(f"wrote {big.stat().st_size / 1e6:.0f} MB ({n_big} sequences) and "
              f"{small.stat().st_size / 1e6:.1f} MB ({n_small}) in "
              f"{time.perf_counter() - start:.1f} s")

        rows = []

        def row(name: str, big_value: str, small_value: str, ratio: str, target: str) -> None:
            rows.append((name, big_value, small_value, ratio, target))

        opens = {}
        for name, path in (("big", big), ("small", small)):
            opens[name, True] = time_open(path, args.repeats, cold=True)
            opens[name, False] = time_open(path, args.repeats * 3, cold=False)
        for cold, label in ((True, "open + validate, incl. child check"),
                            (False, "open + validate, verdict cached")):
            tb, ts = opens["big", cold], opens["small", cold]
            row(f"{label} (p50 / p99)",
                f"{percentile(tb, .5) * 1e3:.0f} / {percentile(tb, .99) * 1e3:.0f} ms",
                f"{percentile(ts, .5) * 1e3:.0f} / {percentile(ts, .99) * 1e3:.0f} ms",
                f"{percentile(tb, .5) / percentile(ts, .5):.2f}x",
                "<= 1.2x, < 1.5 s" if cold else "")
        fb, fs = first_batch(big, args.batch), first_batch(small, args.batch)
        row("time to first batch", f"{fb * 1e3:.1f} ms", f"{fs * 1e3:.1f} ms (loads cache)",
            "", "")

        epochs, n_train, rss = lazy_epochs(big, args.batch)
        mem_lat, mem_total = memory_epoch(big, args.batch, n_train)
        mem_rate = n_train / mem_total
        for k, (lat, total) in enumerate(epochs, start=1):
            what = "values checked" if k == 1 else "checked rows trusted"
            rate = n_train / total
            row(f"epoch {k} ({what}): batch of {args.batch} p50 / p99",
                f"{percentile(lat, .5) * 1e3:.3f} / {percentile(lat, .99) * 1e3:.2f} ms",
                f"in memory: {percentile(mem_lat, .5) * 1e3:.3f} / "
                f"{percentile(mem_lat, .99) * 1e3:.2f} ms", "", "")
            row(f"epoch {k}: throughput, lazy vs in-memory",
                f"{rate:,.0f} seq/s ({rate * ROW_BYTES / 1e9:.2f} GB/s)",
                f"in memory: {mem_rate:,.0f} seq/s", f"{rate / mem_rate:.2f}x", ">= 0.33x")
        row("peak RSS growth over both epochs", f"{rss / 1e6:.0f} MB", "", "", "< 300 MB")
        with SequenceDataset.open(big) as ds:
            start = time.perf_counter()
            ds.normalization()
            norm = time.perf_counter() - start
        row("normalisation stats, one streaming pass", f"{norm:.2f} s",
            f"{n_train * ROW_BYTES / norm / 1e9:.2f} GB/s", "", "")

        head = ("measure", f"{args.size_mb:g} MB file", f"{args.small_mb:g} MB file / baseline",
                "ratio", "target")
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(5)]
        print("| " + " | ".join(h.ljust(w) for h, w in zip(head, widths)) + " |")
        print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        for r in rows:
            print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
