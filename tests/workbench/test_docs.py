"""The examples in docs/ run and do what the text says."""

from __future__ import annotations

import re
from pathlib import Path

from workbench.datasets import SequenceDataset

DOCS = Path(__file__).resolve().parents[2] / "docs"


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, flags=re.S)


def test_dataset_format_example_writes_a_file_the_reader_accepts(tmp_path, monkeypatch):
    blocks = python_blocks((DOCS / "dataset-format.md").read_text(encoding="utf-8"))
    example = next(b for b in blocks if "my-data.h5" in b)
    monkeypatch.chdir(tmp_path)
    exec(compile(example, "dataset-format.md", "exec"), {})
    with SequenceDataset.open(tmp_path / "my-data.h5") as data:
        summary = data.summary
        assert summary.task == "my-forecast"
        assert (summary.inputs.kind, summary.inputs.steps, summary.inputs.features) == (
            "continuous", 20, 2)
        assert (summary.targets.kind, summary.targets.steps, summary.targets.features) == (
            "continuous", 5, 2)
        assert sum(summary.splits.values()) == 500


def test_the_heartbeat_interval_is_stated_as_it_is():
    """Every place that says how often status.json is rewritten says HEARTBEAT_SECONDS."""
    from workbench import runs

    texts = {"docs/run-format.md": (DOCS / "run-format.md").read_text(encoding="utf-8"),
             "workbench/runs.py": runs.__doc__}
    stated = []
    for name, text in texts.items():
        for line in text.splitlines():
            if "status.json" in line or "heartbeat" in line:
                stated += [(name, float(n)) for n in re.findall(r"every (\d+(?:\.\d+)?) s\b", line)]
    assert stated, "the interval is documented somewhere"
    assert all(value == runs.HEARTBEAT_SECONDS for _, value in stated), stated
