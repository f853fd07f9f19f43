"""The gradient lab's causes, through real runs: the init settings reach the model (and
the probe records them), and clipping is recorded as it happened."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from tests.workbench.train_helpers import open_dataset, record_run, tiny_config, write_waves
from workbench.cli import main
from workbench.events import RecordingListener, StepMetrics
from workbench.runs import open_run
from workbench.training import Trainer

TINY = ["--hidden", "8", "--batch", "16", "--probe-batch", "8", "--threads", "1",
        "--no-progress", "--probe-every", "1", "--steps", "2"]


@pytest.fixture(scope="module")
def waves(tmp_path_factory):
    return write_waves(tmp_path_factory.mktemp("data") / "waves.h5")


def _json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.parametrize(("cell", "init", "radius"), [("rnn-tanh", "orthogonal", 0.7),
                                                       ("lstm", "identity", 1.5),
                                                       ("gru", "default", 0.5)])
def test_the_first_probe_records_the_radius_the_train_flags_asked_for(
        waves, tmp_path, capsys, cell, init, radius):
    # SGD with a tiny rate: the first probe (after step 1) sees the weights as initialised
    args = ["train", "--data", str(waves), "--cell", cell, "--recurrent-init", init,
            "--recurrent-radius", str(radius), "--optimizer", "sgd", "--lr", "1e-9",
            "--momentum", "0", "--runs-dir", str(tmp_path), *TINY, "--json"]
    assert main(args) == 0
    run = open_run(_json(capsys)["run_id"], tmp_path)
    assert run.config().recurrent_init == init and run.config().recurrent_radius == radius
    first = next(iter(run.probes()))
    assert first.step == 1
    assert len(first.spectral_radius) == 2 * (1 if cell.startswith("rnn") else
                                              {"lstm": 4, "gru": 3}[cell])
    for key, value in first.spectral_radius.items():  # every side and gate block
        assert value == pytest.approx(radius, abs=1e-4), key


def test_forget_bias_reaches_the_lstm_and_is_refused_for_a_gru(waves, tmp_path, capsys):
    config = tiny_config(waves, cell="lstm", forget_bias=2.0)
    with open_dataset(config) as dataset:
        trainer = Trainer(config, dataset, [], run_id="fb", checkpointer=None)
    state = trainer.model.state_dict()
    hidden = config.hidden
    for side in ("encoder", "decoder"):  # torch's gate order i, f, g, o: f is rows H..2H
        total = state[f"{side}.bias_ih_l0"] + state[f"{side}.bias_hh_l0"]
        assert torch.all(total[hidden:2 * hidden] == 2.0)
    assert main(["train", "--data", str(waves), "--cell", "gru", "--forget-bias", "1",
                 "--runs-dir", str(tmp_path), *TINY]) == 2
    err = capsys.readouterr().err.strip()
    assert "forget_bias" in err and "'gru'" in err and len(err.splitlines()) == 1


def test_default_init_builds_the_very_weights_of_the_seed_alone(waves):
    from models.seq2seq import Seq2Seq

    config = tiny_config(waves, cell="lstm", seed=5)
    with open_dataset(config) as dataset:
        trainer = Trainer(config, dataset, [], run_id="d", checkpointer=None)
    torch.manual_seed(5)
    plain = Seq2Seq(trainer.model_config)
    for name, value in plain.state_dict().items():
        assert torch.equal(value, trainer.model.state_dict()[name]), name


@pytest.mark.parametrize("flag", ["--recurrent-init", "--recurrent-radius", "--forget-bias"])
def test_resume_with_an_init_flag_exits_2_naming_it(waves, tmp_path, capsys, flag):
    run_dir = record_run(tiny_config(waves, steps=6), tmp_path, stop_at=2)
    value = {"--recurrent-init": "orthogonal"}.get(flag, "1.0")
    assert main(["train", "--resume", run_dir.name, flag, value, "--runs-dir", str(tmp_path),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert flag in err and "resume" in err and len(err.splitlines()) == 1
    assert open_run(run_dir).status == "stopped"  # untouched


class Snapshots:
    """After every step: the model's weights (the start of the next step) and the event."""

    def __init__(self) -> None:
        self.trainer: Trainer | None = None
        self.states: dict[int, dict] = {}
        self.events: dict[int, StepMetrics] = {}

    def on_event(self, event) -> None:
        if isinstance(event, StepMetrics):
            self.states[event.step] = copy.deepcopy(self.trainer.model.state_dict())
            self.events[event.step] = event


def test_the_recorded_norm_is_clip_grad_norms_and_the_flag_says_whether_it_clipped(
        waves, tmp_path):
    steps = 5  # within the first epoch (96 * 0.8 / 16 = 4.8 -> 5 batches)
    pilot = RecordingListener()
    config = tiny_config(waves, cell="rnn-relu", steps=steps, lr=0.05)
    with open_dataset(config) as dataset:
        Trainer(config, dataset, [pilot], run_id="pilot", checkpointer=None).run()
    norms = sorted(e.grad_norm for e in pilot.of_type(StepMetrics))
    clip = (norms[1] + norms[2]) / 2  # some steps above it, some below
    clipped = config.replace(clip=clip)
    snapshots = Snapshots()
    with open_dataset(clipped) as dataset:
        trainer = Trainer(clipped, dataset, [snapshots], run_id="clip", checkpointer=None)
        snapshots.trainer = trainer
        trainer.run()
        # each step again by hand from the weights the one before left: clip_grad_norm_'s
        batches = list(trainer.train_split.iter_batches(clipped.batch_size, seed=clipped.seed,
                                                        epoch=1))
    model = copy.deepcopy(trainer.model)
    flags = []
    for step in range(2, steps + 1):
        model.load_state_dict(snapshots.states[step - 1])
        model.train()
        model.zero_grad(set_to_none=True)
        batch = trainer.convert(batches[step - 1])
        out = model(batch.src, batch.tgt, batch.src_lengths, batch.tgt_lengths,
                    teacher_forcing=1.0)
        model.loss(out, batch.tgt, batch.tgt_lengths).backward()
        returned = float(torch.nn.utils.clip_grad_norm_(model.parameters(), clip))
        event = snapshots.events[step]
        assert event.grad_norm == pytest.approx(returned, rel=1e-6)
        assert event.clipped == (returned > clip)
        flags.append(event.clipped)
    assert True in flags and False in flags


def test_clipped_is_recorded_beside_grad_norm_and_old_records_read_unclipped(waves, tmp_path):
    run_dir = record_run(tiny_config(waves, cell="rnn-relu", steps=6, lr=0.05, clip=1e-3),
                         tmp_path)
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in lines if r["type"] == "step"]
    assert steps and all(r["clipped"] is True for r in steps)  # every norm is over 1e-3
    assert all(s.clipped for s in open_run(run_dir).step_metrics())
    for record in lines:  # a record written before `clipped` existed
        record.pop("clipped", None)
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    assert [s.clipped for s in open_run(run_dir).step_metrics()] == [False] * len(steps)
