"""Run every benchmark once, at sizes that take minutes on a 2-core machine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNS = [
    ["bench_datasets.py", "--size-mb", "300"],
    ["bench_models.py", "--quick"],
    ["bench_training.py", "--steps", "100", "--rounds", "1"],
    ["bench_ui.py", "--seconds", "10", "--rounds", "1", "--open-mb", "256"],
    ["bench_import.py", "--size-mb", "20", "--text-mb", "5"],
    ["bench_inspect.py", "--edits", "10"],
]


def main() -> int:
    env = {**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen")}
    failed = 0
    for script, *args in RUNS:
        print(f"\n=== {script} {' '.join(args)}", flush=True)
        failed += subprocess.call([sys.executable, str(HERE / script), *args], env=env) != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
