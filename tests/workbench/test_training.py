"""The Trainer: it learns, it is deterministic, it resumes exactly, it stops, pauses,
diverges and survives a broken listener as a user would expect."""

from __future__ import annotations

import contextlib
import math
import threading
import time

import numpy as np
import pytest
import torch

from tests.workbench.train_helpers import (
    StopAt,
    open_dataset,
    record_run,
    state_equal,
    tiny_config,
    write_reverse,
    write_waves,
)
from workbench.checkpoints import ResumeState, load_checkpoint
from workbench.events import (
    EpochMetrics,
    ListenerError,
    ProbeEvent,
    RecordingListener,
    RunFinished,
    RunStarted,
    RunStatus,
    StepMetrics,
)
from workbench.run_service import RunService
from workbench.runs import open_run
from workbench.training import ProbeClock, Trainer


@pytest.fixture(scope="module")
def waves(tmp_path_factory):
    return write_waves(tmp_path_factory.mktemp("data") / "waves.h5")


@pytest.fixture(scope="module")
def reverse(tmp_path_factory):
    return write_reverse(tmp_path_factory.mktemp("data") / "reverse.h5")


def _trainer(config, dataset, listeners=(), **kwargs) -> Trainer:
    """A Trainer alone (no run folder, no checkpoints): what these tests look at."""
    return Trainer(config, dataset, listeners, run_id="test-run", checkpointer=None, **kwargs)


def _train(config, listeners=(), **kwargs):
    recording = RecordingListener()
    with open_dataset(config) as dataset:
        trainer = _trainer(config, dataset, [recording, *listeners], **kwargs)
        finished = trainer.run()
    return trainer, recording, finished


# --- it learns ---------------------------------------------------------------------------


def _builtin(task, tmp_path, **options):
    from workbench import tasks

    path = tmp_path / f"{task}.h5"
    tasks.generate(task, path, **options)
    return path


@pytest.mark.slow
def test_lstm_learns_the_builtin_sine_task_far_better_than_the_mean(tmp_path):
    data = _builtin("sine", tmp_path, n=400, seed=0, input_steps=20, target_steps=5)
    config = tiny_config(data, cell="lstm", hidden=32, batch_size=32, steps=150, lr=0.01)
    _, recording, finished = _train(config)
    assert finished.status == "completed"
    last = recording.of_type(EpochMetrics)[-1]
    # targets are normalised per feature: predicting the mean scores an MSE of about 1
    with open_dataset(config) as dataset:
        val = dataset.split("val").read(np.arange(len(dataset.split("val"))))
        norm = dataset.normalization()
    mean_mse = float(np.mean(norm.normalize_y(val.y) ** 2))
    assert last.val_loss < 0.25 * mean_mse, (last.val_loss, mean_mse)


@pytest.mark.slow
def test_gru_beats_chance_on_short_reverse_strings(tmp_path):
    data = _builtin("reverse", tmp_path, n=600, seed=0, length=5)
    config = tiny_config(data, cell="gru", hidden=48, batch_size=32, steps=150, lr=0.01,
                         embedding=16)
    with open_dataset(config) as dataset:
        vocab_size = dataset.summary.targets.vocab_size
    _, recording, _ = _train(config)
    last = recording.of_type(EpochMetrics)[-1]
    chance = 1.0 / (vocab_size - 3)  # the symbols besides pad, start and end
    assert last.token_accuracy > 3 * chance, (last.token_accuracy, chance)


# --- the events -------------------------------------------------------------------------------


def test_events_in_order_with_plain_values(waves):
    config = tiny_config(waves, probe_every=5)
    trainer, recording, finished = _train(config)
    events = recording.events
    assert isinstance(events[0], RunStarted) and isinstance(events[-1], RunFinished)
    started = events[0]
    assert started.parameters == sum(p.numel() for p in trainer.model.parameters())
    assert started.threads == 1 and started.device == "cpu"
    assert started.normalization is not None and len(started.normalization["y_mean"]) == 1
    steps = recording.of_type(StepMetrics)
    assert [s.step for s in steps] == list(range(1, 13))
    assert all(math.isfinite(s.loss) and s.grad_norm > 0 for s in steps)
    with open_dataset(config) as dataset:
        n_train = len(dataset.split("train"))
    assert n_train == 77 and trainer.batches_per_epoch == 5
    assert steps[-1].sequences == 2 * n_train + 2 * 16  # two epochs and two batches
    probes = recording.of_type(ProbeEvent)
    assert [p.step for p in probes] == [5, 10, 12]  # every 5 steps, and once at the end
    for probe in probes:
        assert isinstance(probe.encoder_grad_norms, np.ndarray)
        assert probe.encoder_grad_norms.shape == (1, 12)
        assert probe.decoder_hidden.shape == (2, 6, 8)
    for event in events:  # never a tensor
        for value in vars(event).values():
            assert not isinstance(value, torch.Tensor)
    assert finished.status == "completed" and finished.step == 12


def test_teacher_forcing_schedule_clipping_and_sgd(waves):
    config = tiny_config(waves, teacher_forcing=1.0, teacher_forcing_end=0.0, clip=0.01,
                         optimizer="sgd", steps=11)
    _, recording, finished = _train(config)
    tf = [s.teacher_forcing for s in recording.of_type(StepMetrics)]
    assert tf[0] == 1.0 and tf[-1] == 0.0 and tf[5] == pytest.approx(0.5)
    assert finished.status == "completed"


def _accuracy_by_hand(model, config):
    """Token and sequence accuracy on the val split from the model's own generate output:
    what the predictions panel shows (a generated sequence that ended early is wrong at
    every target step it did not reach)."""
    right = valid = exact = 0
    with open_dataset(config) as dataset:
        split = dataset.split("val")
        batch = split.read(np.arange(len(split)))
    model.eval()
    with torch.no_grad():
        generated = model.generate(torch.from_numpy(batch.x.astype(np.int64)), batch.y.shape[1],
                                   torch.from_numpy(batch.x_lengths))
    for ids, length, target, target_length in zip(generated.outputs.numpy(),
                                                  generated.lengths.numpy(), batch.y,
                                                  batch.y_lengths):
        out = np.full(target_length, -1)
        n = min(int(length), int(target_length))
        out[:n] = ids[:n]
        hits = out == target[:target_length]
        right += int(hits.sum())
        valid += int(target_length)
        exact += int(hits.all() and length == target_length)
    return right / valid, exact / len(batch.y)


def test_token_accuracies_are_those_of_the_models_generated_output(reverse):
    trainer, recording, _ = _train(tiny_config(reverse, steps=8))
    last = recording.of_type(EpochMetrics)[-1]
    token, sequence = _accuracy_by_hand(trainer.model, trainer.config)
    assert last.token_accuracy == pytest.approx(token)
    assert last.sequence_accuracy == pytest.approx(sequence)


def test_an_early_end_counts_the_steps_it_did_not_reach_as_wrong(reverse):
    """A model that says "end" at its second step, and the right ids otherwise: only the
    first step of each target is right, as generate (and the predictions panel) has it."""
    from workbench.training import BatchConverter, evaluate

    trainer, _, _ = _train(tiny_config(reverse, steps=2))
    model = trainer.model
    with open_dataset(trainer.config) as dataset:
        split = dataset.split("val")
        targets = split.read(np.arange(len(split))).y  # reverse: every target 6 long
        answers = torch.from_numpy(targets.astype(np.int64))
        answers[:, 1] = 2  # the end id, too early; the right id at every other step
        state = {"t": 0}  # the decoder step the next one-step call of the head answers

        def head(module, inputs, output):
            out = torch.full_like(output, -50.0)
            rows = torch.arange(out.shape[0])
            if out.dim() == 3:  # the decoder's first steps in one fused call
                steps = torch.arange(out.shape[1])
                out[rows[:, None], steps[None, :], answers[: out.shape[0], : out.shape[1]]] = 50.0
                state["t"] = out.shape[1]
            else:  # one free-running step
                out[rows, answers[: out.shape[0], state["t"]]] = 50.0
                state["t"] += 1
            return out

        handle = model.head.register_forward_hook(head)
        try:
            scores = evaluate(model, split, BatchConverter(None, False, False, "cpu"),
                              batch_size=len(split))
        finally:
            handle.remove()
    assert scores.token_accuracy == pytest.approx(1 / targets.shape[1])
    assert scores.sequence_accuracy == 0.0


def test_epoch_budget_and_early_stopping(waves):
    config = tiny_config(waves, steps=None, epochs=2)
    _, recording, finished = _train(config)
    assert [e.epoch for e in recording.of_type(EpochMetrics)] == [1, 2]
    assert finished.step == 2 * 5  # 77 training sequences: 5 batches of (up to) 16
    config = tiny_config(waves, steps=None, epochs=50, lr=1e-12, patience=2)
    _, recording, finished = _train(config)
    assert finished.status == "completed" and "early stopping" in finished.message
    assert len(recording.of_type(EpochMetrics)) < 50


# --- determinism and resume ------------------------------------------------------------------


def test_same_config_same_losses_bit_for_bit(waves):
    config = tiny_config(waves, teacher_forcing=0.5, layers=2, dropout=0.3, steps=15)
    a, rec_a, _ = _train(config)
    b, rec_b, _ = _train(config)
    losses_a = [s.loss for s in rec_a.of_type(StepMetrics)]
    assert losses_a == [s.loss for s in rec_b.of_type(StepMetrics)]
    assert state_equal(a.model.state_dict(), b.model.state_dict())
    c, rec_c, _ = _train(config.replace(seed=1))
    assert losses_a != [s.loss for s in rec_c.of_type(StepMetrics)]


def test_resume_from_a_checkpoint_ends_with_the_same_weights(waves, tmp_path):
    # mid-epoch stop (batches 5 per epoch), dropout, sampled teacher forcing and Adam
    config = tiny_config(waves, teacher_forcing=0.5, layers=2, dropout=0.3, steps=14)
    straight, rec_straight, _ = _train(config)

    run_dir = record_run(config, tmp_path, stop_at=7)
    run = open_run(run_dir)
    assert run.status == "stopped"
    assert run.resume_state().step == 7
    second = RunService(tmp_path).resume(run.run_id)
    assert second.run().status == "completed"
    assert state_equal(second.trainer.model.state_dict(), straight.model.state_dict())
    steps = open_run(run_dir).step_metrics()
    assert [s.step for s in steps] == list(range(1, 15))  # appended, no step twice
    assert [s.loss for s in steps] == [s.loss for s in rec_straight.of_type(StepMetrics)]


def test_resume_with_a_bigger_budget_matches_a_longer_run(waves, tmp_path):
    config = tiny_config(waves, steps=6)
    run_dir = record_run(config, tmp_path)
    state = ResumeState.from_checkpoint(load_checkpoint(run_dir / "checkpoints" / "latest.pt"))
    longer = config.replace(steps=12)
    with open_dataset(config) as dataset:
        resumed = _trainer(longer, dataset, resume=state)
        resumed.run()
    straight, _, _ = _train(longer)
    assert state_equal(resumed.model.state_dict(), straight.model.state_dict())


def _stopped_at(config, runs_dir, step, run=None, **kwargs):
    """Start `config` in runs_dir (or resume `run` with `kwargs`) through the service until
    `step`, stopped there; the Trainer, its events and the run folder."""
    stopper, recording = StopAt(step), RecordingListener()
    service = RunService(runs_dir)
    if run is None:
        active = service.start(config, [stopper, recording], **kwargs)
    else:
        active = service.resume(run, [stopper, recording], **kwargs)
    stopper.run = active
    assert active.run().status == "stopped"
    return active.trainer, recording, active.run_dir


def test_a_resume_keeps_the_recorded_threads_whatever_the_thread_policy(waves, tmp_path,
                                                                        monkeypatch):
    import os

    monkeypatch.setattr(os, "cpu_count", lambda: 2)  # "cli" resolves to 2 threads, "gui" to 1
    config = tiny_config(waves, hidden=128, threads=0, steps=6)  # automatic threads
    first, _, run_dir = _stopped_at(config, tmp_path, 2, thread_policy="cli")  # in the CLI
    assert first.threads == 2
    # resumed in the GUI: the recorded count, not the GUI's own automatic choice
    second, recording, _ = _stopped_at(config, tmp_path, 4, run_dir, thread_policy="gui")
    started = recording.of_type(RunStarted)[0]
    assert second.threads == 2 and started.threads == 2 and started.warning == ""
    # an explicit other count is allowed, and the record says what that costs
    third, recording, _ = _stopped_at(config, tmp_path, 5, run_dir, thread_policy="gui",
                                      changes={"threads": 1})
    warning = recording.of_type(RunStarted)[0].warning
    assert third.threads == 1 and "no longer bit-identical" in warning and "used 2" in warning
    segments = open_run(run_dir).meta["segments"]
    assert [s["threads"] for s in segments] == [2, 2, 1]
    assert ["warning" in s for s in segments] == [False, False, True]


def test_an_allocation_failure_while_building_is_a_config_error(waves, monkeypatch):
    """torch's allocator failing (as for `--hidden 30000` where the estimate passes) is a
    message naming what failed, not a RuntimeError traceback; other errors stay errors."""
    import models.seq2seq
    from workbench.errors import ConfigError

    config = tiny_config(waves)
    real = models.seq2seq.Seq2Seq.__init__
    message = ("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate "
               "memory: you tried to allocate 68719476736 bytes. Error code 12")

    def fails(self, *args, **kwargs):
        raise RuntimeError(message)

    monkeypatch.setattr(models.seq2seq.Seq2Seq, "__init__", fails)
    with open_dataset(config) as dataset, pytest.raises(ConfigError) as info:
        _trainer(config, dataset)
    text = str(info.value)
    assert "hidden = 8" in text and "out of memory" in text and "68719476736 bytes" in text
    assert info.value.__context__ is None  # the half-built model is not kept alive

    def bug(self, *args, **kwargs):
        raise RuntimeError("a bug, not memory")

    monkeypatch.setattr(models.seq2seq.Seq2Seq, "__init__", bug)
    with open_dataset(config) as dataset, pytest.raises(RuntimeError, match="a bug"):
        _trainer(config, dataset)
    monkeypatch.setattr(models.seq2seq.Seq2Seq, "__init__", real)


# --- divergence, stop, pause, listeners ----------------------------------------------------------


class _Poison:
    """Writes NaN into a weight after a given step (as an exploding run would)."""

    def __init__(self, step: int) -> None:
        self.step = step
        self.trainer = None

    def on_event(self, event) -> None:
        if isinstance(event, StepMetrics) and event.step == self.step:
            with torch.no_grad():
                next(self.trainer.model.parameters()).fill_(float("nan"))


@pytest.mark.parametrize("checkpoint_seconds", [30.0, 0.0])
def test_nan_ends_the_run_as_diverged_and_keeps_the_last_good_checkpoint(
    waves, tmp_path, checkpoint_seconds
):
    config = tiny_config(waves, steps=40)
    poison = _Poison(8)
    with open_dataset(config) as dataset:
        active = RunService(tmp_path, checkpoint_seconds=checkpoint_seconds).start(
            config, [poison], dataset=dataset)
        poison.trainer = active.trainer
        finished = active.run()
    run_dir = active.run_dir
    assert finished.status == "diverged"
    # the NaN shows in step 9's loss, or, when a checkpoint is due first, in the weights
    assert "step 9" in finished.message if checkpoint_seconds else "step 8" in finished.message
    assert finished.step == 8
    if checkpoint_seconds:  # step 9 was refused: the message says so beside "steps: 8"
        assert "diverged at step 9 (not applied): the loss is nan" in finished.message
    run = open_run(run_dir)
    assert run.status == "diverged"
    state = run.load_checkpoint("latest")
    assert state["position"]["step"] <= 8
    assert all(torch.isfinite(t).all() for t in state["model"].values())


def _run_in_thread(trainer):
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("finished", trainer.run()))
    thread.start()
    return thread, result


def _wait_for(predicate, timeout=60.0):
    """Poll until `predicate()` holds; the timeout only guards against a hang."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.01)


def _count_beats(run_dir, status, seen):
    """Look at status.json once; return how many distinct heartbeats with `status` were seen."""
    import json

    with contextlib.suppress(OSError, ValueError):  # mid-replace on some systems
        record = json.loads((run_dir / "status.json").read_text())
        if record.get("status") == status:
            seen.add(record.get("heartbeat"))
    return len(seen)


def test_stop_and_pause_from_another_thread(waves, tmp_path):
    config = tiny_config(waves, steps=100_000, probe_every=1000)
    recording = RecordingListener()
    with open_dataset(config) as dataset:
        trainer = RunService(tmp_path, heartbeat_seconds=0.05).start(config, [recording],
                                                                     dataset=dataset)
        run_dir = trainer.run_dir  # an ActiveRun: the same thread-safe controls
        thread, result = _run_in_thread(trainer)
        _wait_for(lambda: len(recording.of_type(StepMetrics)) >= 3)
        trainer.request_pause()
        _wait_for(lambda: trainer.paused)
        count = len(recording.of_type(StepMetrics))
        # while paused the heartbeat goes on (status.json rewritten again and again, so a
        # long pause never reads as crashed) and nothing trains
        beats: set = set()
        _wait_for(lambda: _count_beats(run_dir, "paused", beats) >= 4)
        assert len(recording.of_type(StepMetrics)) == count
        assert open_run(run_dir).status == "paused"
        trainer.resume()
        _wait_for(lambda: len(recording.of_type(StepMetrics)) > count + 2)
        trainer.request_stop()
        at_request = len(recording.of_type(StepMetrics))
        thread.join(timeout=60)
        assert not thread.is_alive()
    # a step under way when the stop came may finish; no step starts after it
    assert len(recording.of_type(StepMetrics)) <= at_request + 1
    assert result["finished"].status == "stopped"
    assert result["finished"].step == recording.of_type(StepMetrics)[-1].step
    statuses = [e.status for e in recording.of_type(RunStatus)]
    assert statuses == ["paused", "running"]
    assert open_run(run_dir).load_checkpoint("latest")["position"]["step"] == result["finished"].step


def test_stop_during_validation_takes_effect_at_the_next_batch(waves):
    config = tiny_config(waves, steps=None, epochs=3)
    stopper = StopAt(5)  # the last step of epoch 1: validation comes next
    with open_dataset(config) as dataset:
        trainer = _trainer(config, dataset, [stopper])
        stopper.run = trainer
        recording = RecordingListener()
        trainer.listeners.append(recording)
        finished = trainer.run()
    assert finished.status == "stopped" and finished.step == 5
    assert recording.of_type(EpochMetrics) == []  # the validation pass was cut short


class _Broken:
    def on_event(self, event) -> None:
        raise RuntimeError("listener bug")


def test_a_raising_listener_is_reported_and_the_run_goes_on(waves):
    _, recording, finished = _train(tiny_config(waves), listeners=[_Broken()])
    assert finished.status == "completed"
    errors = recording.of_type(ListenerError)
    assert errors and errors[0].listener == "_Broken" and "listener bug" in errors[0].message


def _simulate(step_seconds: float, cost: float, seconds: float) -> tuple[ProbeClock, float, list]:
    """A run of `seconds` training time under the probe rule, every probe costing `cost`
    (then the final probe, as the Trainer does): the clock, the end time, probe times."""
    clock, now, step, times = ProbeClock(), 0.0, 0, []
    while now < seconds:
        step += 1
        now += step_seconds
        if clock.due(step, now):
            now += cost
            clock.record(now, cost)
            times.append(now)
    if times[-1] != now:  # the final probe, unless the last step was probed
        now += cost
        clock.record(now, cost)
        times.append(now)
    return clock, now, times


def test_probe_rule_holds_five_percent_over_the_whole_run_first_and_final_probe_included():
    # (training step, probe cost) of the module docstring's table, over runs of 5 s to 10 min
    for step_seconds, cost in ((0.007, 0.007), (0.026, 0.034), (0.033, 0.083), (0.066, 0.104),
                               (0.106, 0.188), (0.227, 0.386), (0.76, 1.4)):
        for seconds in (5.0, 12.0, 60.0, 600.0):
            if seconds < 2 * cost / 0.05:
                continue  # too short to pay for the first and the final probe
            clock, end, times = _simulate(step_seconds, cost, seconds)
            assert clock.share(end) <= 0.05 + 1e-9, (step_seconds, cost, seconds)
            assert times[0] <= step_seconds + cost  # the first step is probed
            gaps = np.diff(times[:-1])  # the final probe comes when the run ends
            assert (gaps >= 2.0 + cost - 1e-9).all()  # never more often than every 2 s
    # a long run probes as often as the budget allows: every 2 s for a cheap probe, every
    # 19 x the cost of an expensive one (its 5%)
    _, end, times = _simulate(0.033, 0.083, 600.0)
    assert 0.9 * end / 2.0 <= len(times) <= end / 2.0 + 2
    _, end, times = _simulate(0.227, 0.386, 600.0)
    assert 0.9 * end / (20 * 0.386) <= len(times) <= end / (20 * 0.386) + 2


def test_probe_rule_counts_a_resumed_segment_from_its_own_start():
    clock = ProbeClock(origin=100.0)  # resumed after 100 s of training
    assert clock.due(51, 100.1)  # the first step after a resume is probed
    clock.record(100.2, 0.1)
    # the 100 s before hold no probe of this clock: they buy this segment no probes
    assert not clock.due(80, 102.3)
    assert clock.due(200, 100.0 + 0.3 / 0.05)
    assert ProbeClock(every=10).due(20, 0.0) and not ProbeClock(every=10).due(21, 0.0)


def test_speed_window_matches_a_plain_sum_over_the_window():
    from collections import deque

    from workbench.training import SpeedWindow

    window, plain = SpeedWindow(2.0), deque()
    rng = np.random.default_rng(0)
    now = 0.0
    for _ in range(500):
        now += float(rng.choice([0.0, 0.01, 0.3, 1.5]))
        size = int(rng.integers(1, 64))
        plain.append((now, size))
        while len(plain) > 2 and now - plain[1][0] >= 2.0:
            plain.popleft()
        span = now - plain[0][0]
        expected = (sum(s for _, s in list(plain)[1:]) / span
                    if len(plain) >= 2 and span > 0 else math.nan)
        got = window.add(now, size)
        assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected)


def test_a_probe_event_carries_every_field_the_probe_returns():
    """ProbeResult (models/) and ProbeEvent (workbench/) are separate dataclasses, as
    models/ may not import workbench/; a field added to one must reach the plots."""
    import dataclasses

    from models.probes import ProbeResult
    from workbench.events import (
        PROBE_SAMPLE_FIELDS,  # the Trainer's, from its probe batch
        ProbeEvent,
    )

    probe_fields = {f.name for f in dataclasses.fields(ProbeResult)}
    event_fields = {f.name for f in dataclasses.fields(ProbeEvent)} - {"step", "epoch"}
    assert probe_fields == event_fields - set(PROBE_SAMPLE_FIELDS)
