"""The run service: the one place that starts, resumes and replays runs.

A run it starts is written as the CLI writes it; a start that fails leaves no folder
and no open file; a resume goes on bit for bit; a replay gives back the events the
live listeners got."""

from __future__ import annotations

import json
import math

import h5py
import numpy as np
import pytest

from tests.workbench.train_helpers import (
    open_dataset,
    record_run,
    state_equal,
    tiny_config,
    write_waves,
)
from workbench.checkpoints import load_checkpoint
from workbench.cli import main
from workbench.config import RunConfig
from workbench.errors import ConfigError, DatasetError, RunError
from workbench.events import (
    EpochMetrics,
    ProbeEvent,
    RecordingListener,
    RunFinished,
    RunStarted,
    StepMetrics,
)
from workbench.run_service import RunService
from workbench.runs import RunRecorder, create_run_dir, open_run, read_jsonl
from workbench.training import Trainer

TIMING = {"seconds", "sequences_per_second"}  # the only fields two identical runs differ in


@pytest.fixture(scope="module")
def waves(tmp_path_factory):
    return write_waves(tmp_path_factory.mktemp("data") / "waves.h5")


def _config(waves, **changes) -> RunConfig:
    return tiny_config(waves, **{"steps": 7, "probe_every": 3, **changes})


def _open_files() -> list[str]:
    """The HDF5 files this process holds open."""
    return [i.name.decode() for i in h5py.h5f.get_obj_ids(types=h5py.h5f.OBJ_FILE)]


def _folder(run_dir) -> dict:
    """What a run folder holds, less ids, clock times and process ids (and the service's
    own additions, which a Trainer built by hand lacks: the lock file, the data's
    fingerprint)."""
    meta = json.loads((run_dir / "run.json").read_text())
    for key in ("run_id", "created", "created_iso", "data"):
        meta.pop(key, None)
    meta["segments"] = [{k: v for k, v in s.items() if k not in ("started", "pid")}
                        for s in meta["segments"]]
    status = json.loads((run_dir / "status.json").read_text())
    metrics = [{k: v for k, v in r.items() if k not in TIMING}
               for r in read_jsonl(run_dir / "metrics.jsonl")]
    latest = load_checkpoint(run_dir / "checkpoints" / "latest.pt")
    return {
        "files": sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*")
                        if p.name != ".lock"),
        "run.json": meta,
        "config.toml": (run_dir / "config.toml").read_text(),
        "status": {k: status[k] for k in ("status", "step", "epoch", "best_val_loss", "message")},
        "metrics": metrics,
        "position": latest["position"],
        "model": latest["model"],
    }


def _same_folders(a: dict, b: dict) -> None:
    model_a, model_b = a.pop("model"), b.pop("model")
    assert a == b
    assert state_equal(model_a, model_b)


# --- start ---------------------------------------------------------------------------------


def test_a_started_run_is_written_as_the_cli_and_the_old_hand_built_recipe_write_it(
        waves, tmp_path, capsys):
    cli_runs = tmp_path / "cli"
    assert main(["train", "--data", str(waves), "--cell", "gru", "--hidden", "8", "--batch", "16",
                 "--lr", "0.01", "--probe-batch", "8", "--probe-samples", "2",
                 "--val-fraction", "0.2", "--threads", "1", "--steps", "7", "--probe-every", "3",
                 "--no-progress", "--runs-dir", str(cli_runs)]) == 0
    capsys.readouterr()
    (cli_dir,) = cli_runs.iterdir()
    config = RunConfig.load(cli_dir / "config.toml")
    assert config.best_by == "val_free_running"  # auto, resolved and recorded
    assert config.replace(best_by=None) == _config(waves)

    active = RunService(tmp_path / "service").start(config)
    assert active.run_dir.parent == tmp_path / "service" and active.total_steps == 7
    assert active.run().status == "completed"

    # what the CLI and the GUI wrote before the service: folder, recorder, Trainer by hand
    by_hand = create_run_dir(config.cell, tmp_path / "by-hand")
    recorder = RunRecorder(by_hand)
    with open_dataset(config) as dataset:
        Trainer(config, dataset, [recorder], run_id=by_hand.name, checkpointer=recorder).run()
    recorder.close()

    service = _folder(active.run_dir)
    assert "probes/step-000000003.h5" in service["files"]
    assert "checkpoints/best.pt" in service["files"]
    _same_folders(_folder(cli_dir), dict(service))
    _same_folders(_folder(by_hand), service)


def _garbage(tmp_path):
    path = tmp_path / "garbage.h5"
    path.write_bytes(b"not an HDF5 file" * 64)
    return path


@pytest.mark.parametrize("failure", ["missing file", "not HDF5", "model too big"])
def test_a_start_that_fails_leaves_no_run_folder_and_no_open_file(waves, tmp_path, monkeypatch,
                                                                 failure):
    from workbench import memory

    monkeypatch.setattr(memory, "available_memory", lambda: 16 * 10**9)
    config = {"missing file": _config(tmp_path / "nowhere.h5"),
              "not HDF5": _config(_garbage(tmp_path)),
              "model too big": _config(waves, cell="lstm", hidden=30000)}[failure]
    expected = DatasetError if failure == "not HDF5" else ConfigError
    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    with pytest.raises(expected) as info:
        RunService(runs_dir).start(config)
    # the traceback still holds the service's frames: what it opened must be closed anyway
    assert info.traceback
    assert list(runs_dir.iterdir()) == []
    assert _open_files() == []
    assert {"missing file": "nowhere.h5", "not HDF5": "garbage.h5",
            "model too big": "hidden = 30000"}[failure] in str(info.value)


def test_a_failed_start_leaves_a_given_dataset_open_and_removes_only_its_folder(waves, tmp_path,
                                                                               monkeypatch):
    from workbench import memory

    monkeypatch.setattr(memory, "available_memory", lambda: 16 * 10**9)
    earlier = record_run(_config(waves), tmp_path)
    with open_dataset(_config(waves)) as dataset:
        with pytest.raises(ConfigError):
            RunService(tmp_path).start(_config(waves, hidden=30000), dataset=dataset)
        assert len(dataset.split("train").read(np.arange(3))) == 3  # still open
        assert sorted(tmp_path.iterdir()) == [earlier]
        # and a run on it leaves it open too
        assert RunService(tmp_path).start(_config(waves), dataset=dataset).run().status == "completed"
        assert len(dataset.split("val").read(np.arange(2))) == 2
    assert _open_files() == []


def test_listeners_come_after_the_recorder_in_order_and_the_run_closes_what_it_opened(
        waves, tmp_path):
    calls = []

    class Mark:
        def __init__(self, name):
            self.name = name

        def on_event(self, event):
            if isinstance(event, RunStarted):
                # the recorder went first: run.json is written when the others hear of it
                calls.append((self.name, (tmp_path / event.run_id / "run.json").is_file()))

    active = RunService(tmp_path).start(_config(waves), [Mark("a"), Mark("b")], name="mine")
    assert active.run().status == "completed"
    assert calls == [("a", True), ("b", True)]
    assert open_run(active.run_dir).name == "mine"
    assert _open_files() == []
    with pytest.raises(RunError, match="already"):
        active.run()


def test_a_run_closed_before_it_ran_leaves_nothing_and_a_stop_before_run_stops_at_once(
        waves, tmp_path):
    service = RunService(tmp_path)
    never = service.start(_config(waves))
    never.close()
    assert list(tmp_path.iterdir()) == [] and _open_files() == []

    early = service.start(_config(waves))
    early.request_stop()  # thread-safe requests may come before run()
    assert early.stop_requested and not early.paused
    finished = early.run()
    assert finished.status == "stopped" and finished.step == 0
    # listed as stopped, with no checkpoint of weights that never trained
    assert open_run(early.run_dir).status == "stopped"
    assert not list((early.run_dir / "checkpoints").glob("*.pt"))


# --- resume --------------------------------------------------------------------------------


def test_resume_with_a_new_budget_goes_on_bit_for_bit(waves, tmp_path):
    config = _config(waves, steps=6, teacher_forcing=0.5)
    run_dir = record_run(config, tmp_path, stop_at=4)
    active = RunService(tmp_path).resume(run_dir.name, changes={"steps": "11"})
    assert active.run_id == run_dir.name and active.total_steps == 11 and active.warning == ""
    assert active.run().status == "completed"
    straight = record_run(config.replace(steps=11), tmp_path / "straight")
    assert state_equal(open_run(run_dir).load_checkpoint("latest")["model"],
                       open_run(straight).load_checkpoint("latest")["model"])
    resumed = [s.loss for s in open_run(run_dir).step_metrics()]
    assert resumed == [s.loss for s in open_run(straight).step_metrics()]
    assert open_run(run_dir).config().steps == 11 and open_run(run_dir).config().epochs is None
    assert _open_files() == []


def test_a_resume_that_fails_keeps_the_run_as_it_was(waves, tmp_path):
    run_dir = record_run(_config(waves, steps=6), tmp_path, stop_at=3)
    before = _folder(run_dir)
    service = RunService(tmp_path)
    with pytest.raises(ConfigError, match="hidden"):  # only the budget, data, threads, device
        service.resume(run_dir.name, changes={"hidden": 16})
    other = tmp_path / "sine2.h5"
    from workbench.tasks import generate

    generate("sine", other, n=20, input_steps=6, target_steps=3, features=2)
    with pytest.raises(RunError, match="2 features per step"):
        service.resume(run_dir, changes={"data": str(other)})
    with pytest.raises(ConfigError, match="not found"):
        service.resume(run_dir, changes={"data": str(tmp_path / "moved.h5")})
    _same_folders(before, _folder(run_dir))
    assert open_run(run_dir).status == "stopped" and _open_files() == []
    assert service.resume(run_dir).run().status == "completed"
    with pytest.raises(RunError, match="completed"):
        service.resume(run_dir)


# --- replay --------------------------------------------------------------------------------


def _same_number(a, b) -> bool:
    return (a == b) or (isinstance(a, float) and math.isnan(a) and math.isnan(b))


def _same_probe(a: ProbeEvent, b: ProbeEvent) -> bool:
    arrays = ("encoder_grad_norms", "decoder_grad_norms", "encoder_hidden", "decoder_hidden",
              "encoder_cell_grad_norms", "decoder_cell_grad_norms")
    return (a.step, a.epoch, a.seconds, a.spectral_radius) == (b.step, b.epoch, b.seconds,
                                                               b.spectral_radius) and all(
        np.array_equal(getattr(a, k), getattr(b, k)) for k in arrays if getattr(a, k) is not None
    ) and all(np.array_equal(a.gate_means[k], b.gate_means[k]) for k in a.gate_means) and all(
        np.array_equal(a.gate_saturation[k], b.gate_saturation[k]) for k in a.gate_saturation)


def test_replay_returns_the_events_the_live_listener_received(waves, tmp_path):
    live = RecordingListener()
    config = _config(waves, cell="lstm", steps=12)  # 5 batches an epoch: 2 epochs and a bit
    active = RunService(tmp_path).start(config, [live])
    active.run()
    replayed = RunService(tmp_path).replay(active.run_id)
    kinds = (RunStarted, StepMetrics, EpochMetrics, ProbeEvent, RunFinished)
    shown = [e for e in live.events if isinstance(e, kinds)]
    assert [type(e) for e in replayed] == [type(e) for e in shown]  # the same order
    assert len([e for e in shown if isinstance(e, EpochMetrics)]) == 3
    assert [e.step for e in shown if isinstance(e, ProbeEvent)] == [3, 6, 9, 12]
    for a, b in zip(shown, replayed):
        if isinstance(a, ProbeEvent):
            assert _same_probe(a, b), a.step
        elif isinstance(a, RunStarted):
            for key in ("run_id", "config", "parameters", "dataset", "threads", "device",
                        "model_config", "normalization"):
                assert getattr(a, key) == getattr(b, key), key
        else:
            assert all(_same_number(x, y) for x, y in zip(vars(a).values(), vars(b).values())), a


def test_history_until_a_resume_is_the_replay_up_to_the_checkpoint(waves, tmp_path):
    run_dir = record_run(_config(waves, steps=12), tmp_path, stop_at=8)
    service = RunService(tmp_path)
    history = service.history_until(run_dir.name)
    assert isinstance(history[0], RunStarted) and not any(isinstance(e, RunFinished)
                                                          for e in history)
    assert [e.step for e in history if isinstance(e, StepMetrics)] == list(range(1, 9))
    replayed = service.replay(run_dir)
    assert isinstance(replayed[-1], RunFinished) and replayed[-1].status == "stopped"
    assert [type(e) for e in history] == [type(e) for e in replayed[:len(history)]]
    assert all(getattr(e, "step", 0) > 8 for e in replayed[len(history):-1])
    assert max(getattr(e, "step", 0) for e in service.history_until(run_dir, 4)) == 4


# --- the Trainer's explicit run id and checkpointer --------------------------------------------


class _Keeper:
    """A checkpointer that keeps what it is given."""

    def __init__(self) -> None:
        self.saved: list[tuple[str, dict]] = []

    def save_checkpoint(self, name: str, state: dict) -> None:
        self.saved.append((name, state))


def test_the_trainer_uses_the_run_id_and_checkpointer_it_is_given_and_no_listener_s(waves,
                                                                                   tmp_path):
    config = _config(waves)
    recording, keeper = RecordingListener(), _Keeper()
    recorder = RunRecorder(create_run_dir(config.cell, tmp_path))  # has run_id, save_checkpoint
    with open_dataset(config) as dataset:
        Trainer(config, dataset, [recorder, recording], run_id="given-id",
                checkpointer=keeper).run()
        no_checkpoints = Trainer(config, dataset, [recorder], run_id="other", checkpointer=None)
        no_checkpoints.run()
        with pytest.raises(TypeError):
            Trainer(config, dataset, [recorder])  # neither is looked for among the listeners
    recorder.close()
    assert recording.of_type(RunStarted)[0].run_id == "given-id"
    assert {name for name, _ in keeper.saved} == {"latest", "best"}
    assert all(state["run_id"] == "given-id" for _, state in keeper.saved)
    assert list((recorder.run_dir / "checkpoints").iterdir()) == []  # the recorder got none
