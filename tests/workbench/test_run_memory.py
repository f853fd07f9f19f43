"""The one memory estimate of a training run (workbench.memory.estimate_run_memory): its
parts, the activations it counts, and what is available under the process's own limit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.workbench.train_helpers import open_dataset, tiny_config, write_reverse, write_waves
from workbench.errors import ConfigError
from workbench.memory import check_run_memory, estimate_run_memory

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def summaries(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    waves, reverse = write_waves(folder / "w.h5", n=400), write_reverse(folder / "r.h5", n=400)
    out = {}
    for name, path in (("waves", waves), ("reverse", reverse)):
        with open_dataset(tiny_config(path)) as dataset:
            out[name] = dataset.summary
    return out


def test_the_parts_are_the_parameters_copies_and_the_larger_activations(summaries):
    config = tiny_config(Path("x.h5"), cell="lstm", hidden=64, batch_size=32, probe_batch=8)
    adam = estimate_run_memory(config, summaries["waves"], available=10**12)
    assert adam.weights == adam.gradients == 4 * adam.parameters
    assert adam.optimizer == 8 * adam.parameters  # Adam's two moments
    assert adam.total == adam.weights + adam.gradients + adam.optimizer + adam.activations
    assert adam.fits and adam.available == 10**12
    sgd = estimate_run_memory(config.replace(optimizer="sgd", momentum=0.0), summaries["waves"])
    assert sgd.optimizer == 0
    # one batch over the whole unroll (12 + 6 steps): 12 floats per LSTM unit and step
    assert adam.activations >= 4 * 32 * 18 * 64 * 12
    bigger = estimate_run_memory(config.replace(batch_size=64), summaries["waves"])
    assert bigger.activations > 1.9 * adam.activations
    mixed = estimate_run_memory(config.replace(teacher_forcing=0.5), summaries["waves"])
    assert mixed.activations > adam.activations  # the decoder runs step by step
    deeper = estimate_run_memory(config.replace(layers=3), summaries["waves"])
    assert deeper.activations > 2.5 * adam.activations
    # the probe's float64 copy of the model is counted: a huge model's largest activation
    huge = estimate_run_memory(config.replace(hidden=4096, batch_size=1), summaries["waves"])
    assert huge.activations >= 8 * huge.parameters


def test_token_targets_count_their_logits(summaries):
    config = tiny_config(Path("x.h5"), cell="gru", hidden=16, batch_size=32)
    tokens = estimate_run_memory(config, summaries["reverse"])
    vocab = summaries["reverse"].targets.vocab_size
    assert tokens.activations >= 4 * 32 * summaries["reverse"].targets.steps * 4 * vocab


def test_a_run_that_does_not_fit_is_refused_naming_every_part(summaries):
    config = tiny_config(Path("x.h5"), cell="gru", hidden=512)
    with pytest.raises(ConfigError) as info:
        check_run_memory(config, summaries["waves"], available=10**6)
    text = str(info.value)
    for words in ("hidden = 512", "parameters", "of weights", "of gradients",
                  "for Adam's two moments", "of activations", "for a batch of 16",
                  "more than the 1 MB of memory available"):
        assert words in text, (words, text)
    assert check_run_memory(config, summaries["waves"], available=10**12).fits


def test_what_is_available_respects_the_address_space_limit():
    """`ulimit -v`: the headroom is the limit less what the process has mapped."""
    script = ("import resource, json; from workbench import memory;"
              "resource.setrlimit(resource.RLIMIT_AS, (3 * 10**9, 3 * 10**9));"
              "print(json.dumps([memory.available_memory(), memory._status_kib('VmSize'),"
              " memory.limiting_figure(memory.available_memory())]))")
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                         text=True, env=dict(os.environ, PYTHONPATH=str(REPO)), check=True)
    available, mapped, figure = json.loads(out.stdout)
    assert available <= 3 * 10**9 - mapped + 4096 * 1024  # a little mapped since it was read
    assert available > 3 * 10**9 - mapped - 256 * 2**20
    assert figure == "the process's address-space limit (ulimit -v)"


def test_the_estimate_is_not_below_what_a_training_step_takes(tmp_path):
    """A real step of LSTM h256 at batch 64 and T 50 + 50, its peak memory measured in a
    child process, against the estimate's activations (an upper bound, not a wild one)."""
    script = r'''
import torch
from models.seq2seq import Seq2Seq, Seq2SeqConfig, SideConfig
torch.set_num_threads(1)
side = SideConfig(kind="continuous", features=1)
model = Seq2Seq(Seq2SeqConfig(cell="lstm", hidden=256, source=side, target=side))
optimizer = torch.optim.Adam(model.parameters())
def step(batch):
    src, tgt = torch.randn(batch, 50, 1), torch.randn(batch, 50, 1)
    optimizer.zero_grad()
    model.loss(model(src, tgt), tgt, None).backward()
    optimizer.step()
def status(key):  # kB in /proc/self/status; VmHWM is this process's own peak (ru_maxrss
    for line in open("/proc/self/status"):  # may carry the parent's across fork and exec)
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
step(2)
with open("/proc/self/clear_refs", "w") as handle:
    handle.write("5")  # the peak starts again from what is resident now
base = status("VmHWM")
step(64)
print(status("VmHWM") - base)
'''
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                         text=True, env=dict(os.environ, PYTHONPATH=str(REPO)), check=True)
    measured = int(out.stdout.strip())
    from workbench.datasets import SequenceDataset
    from workbench.tasks import generate

    path = generate("sine", tmp_path / "s.h5", n=200, input_steps=50, target_steps=50)
    config = tiny_config(path, cell="lstm", hidden=256, batch_size=64, probe_batch=1)
    with SequenceDataset.open(path, safe_check=False) as dataset:
        estimate = estimate_run_memory(config, dataset.summary)
    assert measured <= estimate.activations <= 4 * max(measured, 1), (measured, estimate)
