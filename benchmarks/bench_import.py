"""What importing a large file costs: speed against reading it with csv.reader, and memory.

Writes a CSV time series of about --size-mb MB (default 1000: a date column and three
value columns, ~40 bytes a row) and a TSV of text pairs of about --text-mb MB (random
words, 3 to 8 a side), under a temporary folder, then measures in this process:

- `import-series` with --stride equal to --window (so the output stays about the
  input's size) and `import-text` at the word level: wall time, rows per second;
- the baseline measured in the same run: one pass of plain `csv.reader` over the
  same file, doing nothing with the rows (the importers read the file twice and
  parse, check and write every value);
- peak RSS growth during each import over the RSS before it (psutil, sampled every
  20 ms in a thread).

Targets (reported, never asserted): RSS growth under 300 MB for a 1 GB CSV. The files
are freshly written, so they sit in the page cache: this is parsing cost, not disk
speed. Both files and outputs are deleted at the end unless --keep is given.

    .venv/bin/python benchmarks/bench_import.py [--size-mb 1000] [--text-mb 100] [--keep DIR]
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench.importers import (  # noqa: E402
    SeriesOptions,
    TextOptions,
    import_series,
    import_text,
)

WORDS = 5000


class PeakRss:
    """The peak resident memory of this process while the block runs, sampled."""

    def __init__(self, every: float = 0.02) -> None:
        self.every = every
        self.process = psutil.Process()
        self.start = self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakRss:
        self.start = self.peak = self.process.memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)

    def _sample(self) -> None:
        while not self._stop.wait(self.every):
            self.peak = max(self.peak, self.process.memory_info().rss)

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.start) / 2**20


def write_series_csv(path: Path, size_mb: float, seed: int = 0) -> int:
    """A random-walk CSV of about size_mb MB; returns its rows."""
    rng = np.random.default_rng(seed)
    rows, block = 0, 200_000
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("step,a,b,c\n")
        written = f.tell()
        level = np.zeros(3)
        while written < size_mb * 1e6:
            steps = np.cumsum(rng.normal(size=(block, 3)), axis=0) * 0.01 + level
            level = steps[-1]
            index = np.arange(rows, rows + block)
            text = "\n".join(f"{i},{a:.5f},{b:.5f},{c:.5f}"
                             for i, (a, b, c) in zip(index.tolist(), steps.tolist()))
            f.write(text + "\n")
            written += len(text) + 1
            rows += block
    return rows


def write_pairs(path: Path, size_mb: float, seed: int = 0) -> int:
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(WORDS)]
    rows, written = 0, 0
    with open(path, "w", encoding="utf-8") as f:
        while written < size_mb * 1e6:
            ids = rng.zipf(1.3, size=(50_000, 16)) % WORDS
            lengths = rng.integers(3, 9, size=(50_000, 2))
            lines = []
            for row, (ls, lt) in zip(ids.tolist(), lengths.tolist()):
                lines.append(" ".join(words[i] for i in row[:ls]) + "\t"
                             + " ".join(words[i] for i in row[8:8 + lt]))
            text = "\n".join(lines) + "\n"
            f.write(text)
            written += len(text)
            rows += len(lines)
    return rows


def csv_pass(path: Path, delimiter: str) -> float:
    """Seconds for one plain csv.reader pass over the file (the baseline)."""
    start = time.perf_counter()
    with open(path, encoding="utf-8", newline="") as f:
        for _ in csv.reader(f, delimiter=delimiter):
            pass
    return time.perf_counter() - start


def measure(label: str, path: Path, rows: int, delimiter: str, run) -> dict:
    baseline = csv_pass(path, delimiter)
    with PeakRss() as rss:
        start = time.perf_counter()
        summary = run()
        seconds = time.perf_counter() - start
    out = Path(summary.path)
    return {"what": label, "input MB": path.stat().st_size / 1e6, "rows": rows,
            "seconds": seconds, "rows/s": rows / seconds, "csv.reader s": baseline,
            "x csv.reader": seconds / baseline, "RSS growth MB": rss.growth_mb,
            "output MB": out.stat().st_size / 1e6}


def print_table(results: list[dict]) -> None:
    keys = list(results[0])
    cells = [[k for k in keys]] + [[_fmt(r[k]) for k in keys] for r in results]
    widths = [max(len(row[i]) for row in cells) for i in range(len(keys))]
    for n, row in enumerate(cells):
        print("| " + " | ".join(c.rjust(w) for c, w in zip(row, widths)) + " |")
        if n == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.0f}" if value >= 100 else f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=float, default=1000, help="size of the series CSV")
    parser.add_argument("--text-mb", type=float, default=100, help="size of the pairs TSV "
                        "(0: skip)")
    parser.add_argument("--window", type=int, default=48)
    parser.add_argument("--horizon", type=int, default=12)
    parser.add_argument("--keep", type=Path, default=None, help="write the files here, keep them")
    args = parser.parse_args(argv)
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench-import-"))
    folder.mkdir(parents=True, exist_ok=True)
    results = []
    try:
        csv_path = folder / "series.csv"
        t = time.perf_counter()
        rows = write_series_csv(csv_path, args.size_mb)
        print(f"wrote {csv_path} ({csv_path.stat().st_size / 1e6:,.0f} MB, {rows:,} rows) in "
              f"{time.perf_counter() - t:.0f} s", flush=True)
        options = SeriesOptions(input_cols="a,b,c", target_cols="a", window=args.window,
                                horizon=args.horizon, stride=args.window, time_col="step")
        results.append(measure(f"import-series (stride {args.window})", csv_path, rows, ",",
                               lambda: import_series(csv_path, folder / "series.h5", options)))
        if not args.keep:
            for p in (csv_path, folder / "series.h5"):
                p.unlink(missing_ok=True)
        if args.text_mb > 0:
            tsv = folder / "pairs.tsv"
            rows = write_pairs(tsv, args.text_mb)
            print(f"wrote {tsv} ({tsv.stat().st_size / 1e6:,.0f} MB, {rows:,} rows)", flush=True)
            results.append(measure("import-text (word)", tsv, rows, "\t", lambda: import_text(
                tsv, folder / "pairs.h5", TextOptions(level="word", max_length=10))))
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    print(f"\npython {sys.version.split()[0]}, {os.cpu_count()} cpus; RSS growth is the peak "
          "during the import over the RSS before it; x csv.reader = import time / one plain "
          "csv.reader pass over the same file")
    print_table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
