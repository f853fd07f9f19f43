"""Demo events, and the runner that opens one plot panel alone on them.

`demo_events()` makes a plausible run as real workbench.events dataclasses: a
decaying, noisy training loss, validation losses per epoch, and probes whose
per-step gradient norms G_t vanish towards the early encoder steps for a vanilla
RNN (faster as training goes on, down to ~1e-30), stay near 1 for an LSTM and
explode then recover for a relu RNN; the probe samples' hidden states lie on a
spiral that rotates as training proceeds. No torch, no randomness beyond a seed.

`run_standalone()` is what `python -m ui.plots.loss_plot` (and the other panels)
call: it opens the panel and streams the demo run into it as a live run would.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from workbench.events import (
    EpochMetrics,
    Event,
    ProbeEvent,
    RunFinished,
    RunStarted,
    StepMetrics,
)

# Per-step gradient decay factor r over training (start, end): G_t ~ r**(T_in - t).
_DECAY: dict[str, tuple[float, float]] = {
    "rnn-tanh": (0.55, 0.055),
    "rnn-sigmoid": (0.25, 0.2),
    "rnn-relu": (1.25, 0.92),
    "gru": (0.9, 0.8),
    "lstm": (0.98, 0.93),
}


def _grad_norms(
    cell: str, progress: float, t_in: int, t_out: int, layers: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(layers, T_in) and (layers, T_out) float64 G_t for a probe at `progress` in [0, 1]."""
    r0, r1 = _DECAY.get(cell, _DECAY["rnn-tanh"])
    r = r0 * (r1 / r0) ** progress  # geometric interpolation
    scale = 0.5 * (1.0 - 0.6 * progress)  # the loss, and so its gradient, shrinks
    enc = np.empty((layers, t_in))
    dec = np.empty((layers, t_out))
    for layer in range(layers):
        lr = r ** (1.0 + 0.15 * (layers - 1 - layer))  # lower layers decay a little faster
        # Decoder step j collects the loss of steps j..T_out: larger near the start.
        j = np.arange(t_out)
        dec[layer] = scale * (1.0 + np.minimum(t_out - j - 1, 6) * 0.15)
        dec[layer] *= np.exp(rng.normal(0.0, 0.05, t_out))
        t = np.arange(t_in)
        enc[layer] = dec[layer, 0] * lr ** (t_in - t)
        enc[layer] *= np.exp(rng.normal(0.0, 0.1, t_in))
    return enc, dec


def _spiral_hidden(
    progress: float, t_in: int, t_out: int, hidden: int, samples: int, basis: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Hidden states on a 2D spiral (rotating with `progress`) embedded in `hidden` dims."""
    t = np.arange(t_in + t_out, dtype=float)
    states = np.empty((samples, t_in + t_out, hidden))
    for s in range(samples):
        phase = 2 * math.pi * s / max(samples, 1) + 2.5 * progress
        radius = np.where(t < t_in, 0.1 + 0.9 * t / t_in, 1.0 - 0.6 * (t - t_in) / max(t_out, 1))
        angle = phase + 0.3 * t
        xyz = np.stack([radius * np.cos(angle), radius * np.sin(angle), 0.15 * t / t.size], axis=1)
        states[s] = np.tanh(xyz @ basis.T + rng.normal(0.0, 0.01, (t.size, hidden)))
    return states[:, :t_in], states[:, t_in:]


def demo_events(
    cell: str = "rnn-tanh",
    *,
    steps: int = 3000,
    steps_per_epoch: int = 300,
    probe_every: int = 100,
    t_in: int = 24,
    t_out: int = 12,
    layers: int = 2,
    hidden: int = 32,
    samples: int = 3,
    seed: int = 0,
    run_id: str | None = None,
) -> list[Event]:
    """A whole demo run: RunStarted, StepMetrics per step, EpochMetrics per epoch,
    a ProbeEvent every `probe_every` steps (and at step 0), RunFinished."""
    rng = np.random.default_rng(seed)
    run_id = run_id or f"demo-{cell}-{seed}"
    lstm = cell == "lstm"
    speed = {"lstm": 1.6, "gru": 1.4, "rnn-relu": 1.1}.get(cell, 1.0)
    config = {"version": 1, "model": {"cell": cell, "hidden": hidden, "layers": layers}}
    dataset = {"task": "demo", "input_kind": "continuous", "target_kind": "continuous",
               "input_steps": t_in, "target_steps": t_out}
    events: list[Event] = [RunStarted(run_id, config, parameters=1234, dataset=dataset)]
    basis, _ = np.linalg.qr(rng.normal(size=(hidden, 3)))

    def level(step: float) -> float:
        return 0.04 + 0.9 * math.exp(-speed * step / (steps / 4))

    def probe(step: int) -> ProbeEvent:
        progress = step / steps
        enc, dec = _grad_norms(cell, progress, t_in, t_out, layers, rng)
        enc_c = dec_c = None
        if lstm:
            enc_c = enc * np.linspace(1.2, 1.0, t_in) ** 2
            dec_c = dec * 1.1
        eh, dh = _spiral_hidden(progress, t_in, t_out, hidden, samples, basis, rng)
        return ProbeEvent(step, 1 + (step - 1) // steps_per_epoch if step else 1, enc, dec, eh, dh,
                          encoder_cell_grad_norms=enc_c, decoder_cell_grad_norms=dec_c)

    events.append(probe(0))
    epoch_losses: list[float] = []
    for step in range(1, steps + 1):
        epoch = 1 + (step - 1) // steps_per_epoch
        loss = level(step) * math.exp(rng.normal(0.0, 0.25))
        epoch_losses.append(loss)
        events.append(StepMetrics(step, epoch, loss, grad_norm=1.0 + rng.random(),
                                  learning_rate=1e-3, teacher_forcing=1.0,
                                  sequences_per_second=2000.0, seconds=step * 0.01))
        if step % probe_every == 0:
            events.append(probe(step))
        if step % steps_per_epoch == 0 or step == steps:
            events.append(EpochMetrics(epoch, step, val_loss=level(step) * 1.15,
                                       val_loss_free_running=level(step) * 1.6 + 0.03,
                                       train_loss=float(np.mean(epoch_losses)),
                                       seconds=step * 0.01))
            epoch_losses = []
    events.append(RunFinished("completed", "demo finished", steps, epoch, steps * 0.01))
    return events


def demo_attention_events(
    attention: str = "bahdanau",
    *,
    steps: int = 3000,
    probe_every: int = 100,
    length: int = 8,
    samples: int = 3,
    seed: int = 0,
    run_id: str | None = None,
) -> list[Event]:
    """A demo token run with attention on a reverse task: probes whose alignment (output
    step t looks at input step T_in - t + 1) sharpens from uniform towards the
    anti-diagonal as training goes on; the last sample is shorter (padded), as in a
    variable-length file. attention "none": the same run without attention weights."""
    rng = np.random.default_rng(seed)
    run_id = run_id or f"demo-attention-{attention}-{seed}"
    words = ("<pad>", "<s>", "</s>", *"abcdefgh")
    config = {"version": 1, "model": {"cell": "lstm", "hidden": 32, "layers": 1,
                                      "attention": attention}}
    dataset = {"task": "reverse", "input_kind": "tokens", "target_kind": "tokens",
               "input_steps": length, "target_steps": length + 1}
    events: list[Event] = [RunStarted(run_id, config, parameters=4321, dataset=dataset,
                                      model_config={"cell": "lstm", "attention": attention})]
    lengths = np.full(samples, length, dtype=np.int64)
    lengths[-1] = max(1, length - 2)
    ids = rng.integers(3, len(words), (samples, length))
    src = np.full((samples, length), "", dtype=object)
    tgt = np.full((samples, length + 1), "", dtype=object)
    for b, n in enumerate(lengths):
        src[b, :n] = [words[i] for i in ids[b, :n]]
        tgt[b, :n] = src[b, :n][::-1]
        tgt[b, n] = "</s>"
    basis, _ = np.linalg.qr(rng.normal(size=(16, 3)))

    def weights(progress: float) -> np.ndarray:
        w = np.full((samples, length + 1, length), np.nan)
        sharp = 0.05 + 2.5 * progress**1.5
        for b, n in enumerate(lengths):
            i = np.arange(n)
            for t in range(n + 1):
                mirror = n - 1 - t if t < n else n - 1  # the end token looks at the last step
                score = -sharp * (i - mirror) ** 2 + rng.normal(0, 0.3, n)
                row = np.exp(score - score.max())
                w[b, t] = 0.0
                w[b, t, :n] = row / row.sum()
        return w

    for step in range(0, steps + 1, probe_every):
        progress = step / steps
        enc, dec = _grad_norms("lstm", progress, length, length + 1, 1, rng)
        eh, dh = _spiral_hidden(progress, length, length + 1, 16, samples, basis, rng)
        events.append(ProbeEvent(
            step, 1 + step // 300, enc, dec, eh, dh,
            attention_weights=None if attention == "none" else weights(progress),
            sample_source_lengths=lengths, sample_target_lengths=lengths + 1,
            sample_source_tokens=src.astype(str), sample_target_tokens=tgt.astype(str)))
    events.append(RunFinished("completed", "demo finished", steps, 10, steps * 0.01))
    return events


# -- standalone runner -----------------------------------------------------------


def run_standalone(
    make_panel: Callable[[], Any], title: str, argv: Sequence[str] | None = None,
    *, overlay_cell: str | None = "lstm",
    make_events: Callable[[str], list[Event]] | None = None,
) -> int:
    """Open one panel on demo data, streaming the events in as a live run would.

    --smoke quits after about a second (a test proves the entry point runs);
    --export PATH feeds the whole run at once, writes PATH (PNG or SVG) and quits.
    `make_events(cell)` makes the demo run instead of `demo_events(cell)`.
    """
    parser = argparse.ArgumentParser(description=f"{title} on demo data")
    parser.add_argument("--cell", default="rnn-tanh", help="cell type of the demo run")
    parser.add_argument("--no-overlay", action="store_true", help="do not overlay a second run")
    parser.add_argument("--smoke", action="store_true", help="quit after about one second")
    parser.add_argument("--export", metavar="PATH", help="write the panel to PATH and quit")
    args = parser.parse_args(argv)

    from PySide6 import QtCore, QtWidgets

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    panel = make_panel()
    panel.setWindowTitle(f"{title} (demo: {args.cell})")
    events = (make_events or demo_events)(args.cell)
    if overlay_cell and not args.no_overlay and overlay_cell != args.cell:
        panel.set_overlay("demo-overlay", f"{overlay_cell} (demo)", demo_events(overlay_cell, seed=1))

    if args.export:
        panel.add_events(events)
        panel.show()
        app.processEvents()
        panel.export(args.export)
        print(f"wrote {args.export}")
        return 0

    panel.show()
    position = 0

    def _on_feed_tick() -> None:  # about 40 steps per 50 ms, like a fast live run
        nonlocal position
        chunk = events[position:position + 40]
        position += len(chunk)
        for event in chunk:
            panel.add_event(event)
        if position >= len(events):
            feed.stop()

    feed = QtCore.QTimer(panel)
    feed.setInterval(50)
    feed.timeout.connect(_on_feed_tick)
    feed.start()
    if args.smoke:
        QtCore.QTimer.singleShot(1000, app.quit)
    return app.exec()
