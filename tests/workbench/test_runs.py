"""Run folders: recording, listing, replaying as events, renaming, deleting, checkpoints."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from workbench.config import RunConfig
from workbench.errors import RunError
from workbench.events import (
    EpochMetrics,
    ProbeEvent,
    RecordingListener,
    RunFinished,
    RunStarted,
    RunStatus,
    StepMetrics,
)
from workbench.runs import (
    RunRecorder,
    create_run_dir,
    default_runs_dir,
    effective_status,
    list_runs,
    new_run_id,
    open_run,
    read_jsonl,
)


def _started(run_id: str, resumed: int = 0) -> RunStarted:
    config = RunConfig(data="/data/x.h5", cell="gru", hidden=8, steps=10, epochs=None)
    return RunStarted(run_id=run_id, config=config.to_dict(), parameters=123,
                      dataset={"path": "/data/x.h5"}, resumed_from_step=resumed, threads=1)


def _step(step: int, loss: float = 1.0) -> StepMetrics:
    return StepMetrics(step=step, epoch=1, loss=loss, grad_norm=2.0, learning_rate=1e-3,
                       teacher_forcing=1.0, sequences_per_second=100.0, seconds=step * 0.1,
                       sequences=step * 4)


def _probe(step: int) -> ProbeEvent:
    return ProbeEvent(step=step, epoch=1, encoder_grad_norms=np.full((1, 5), 1e-30),
                      decoder_grad_norms=np.ones((1, 4)), encoder_hidden=np.zeros((2, 5, 8)),
                      decoder_hidden=np.zeros((2, 4, 8)), gate_means={"r": np.ones((1, 9))},
                      spectral_radius={"layer0": 0.9}, seconds=0.01)


def _record(run_dir, steps=5, finish="completed"):
    recorder = RunRecorder(run_dir, heartbeat_seconds=0.05)
    events = [_started(run_dir.name)]
    events += [_step(s, loss=float("nan") if s == 2 else 1.0 / s) for s in range(1, steps + 1)]
    events += [_probe(steps),
               EpochMetrics(epoch=1, step=steps, val_loss=0.5, val_loss_free_running=0.7,
                            train_loss=0.6, seconds=1.0)]
    if finish:
        events.append(RunFinished(finish, "done", steps, 1, 1.0))
    for event in events:
        recorder.on_event(event)
    return recorder, events


def test_default_runs_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQUENCE_WORKBENCH_HOME", str(tmp_path))
    assert default_runs_dir() == tmp_path / "runs"


def test_run_ids_sort_by_time_name_the_cell_and_are_unique(tmp_path):
    ids = [new_run_id("lstm", now=1_700_000_000.5 + i * 0.001) for i in range(3)]
    assert ids == sorted(ids) and all("-lstm-" in i for i in ids)
    dirs = {create_run_dir("gru", tmp_path).name for _ in range(20)}
    assert len(dirs) == 20


def test_recorded_run_replays_as_the_same_events(tmp_path):
    run_dir = create_run_dir("gru", tmp_path)
    _, sent = _record(run_dir)
    run = open_run(run_dir.name, tmp_path)
    replayed = RecordingListener()
    run.replay(replayed)
    kinds = [type(e).__name__ for e in replayed.events]
    assert kinds == [type(e).__name__ for e in sent]
    steps = replayed.of_type(StepMetrics)
    assert [s.step for s in steps] == [1, 2, 3, 4, 5]
    assert np.isnan(steps[1].loss) and steps[2] == sent[3]  # NaN survives as null -> nan
    probe = replayed.of_type(ProbeEvent)[0]
    assert probe.encoder_grad_norms[0, 0] == 1e-30  # tiny gradients are not flushed to zero
    assert probe.spectral_radius == {"layer0": 0.9}
    assert replayed.of_type(RunStarted)[0].parameters == 123
    assert replayed.of_type(RunFinished)[0].status == "completed"
    # the metrics file is plain JSON lines, strict JSON (no NaN)
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}"))


def test_list_rename_and_delete(tmp_path):
    a = create_run_dir("gru", tmp_path)
    _record(a)
    b = create_run_dir("lstm", tmp_path)
    _record(b, finish="stopped")
    infos = list_runs(tmp_path)
    assert [i.run_id for i in infos] == [a.name, b.name]
    assert infos[1].status == "stopped" and infos[0].best_val_loss == 0.5
    assert infos[0].steps == 5 and infos[0].started
    open_run(a, tmp_path).rename("my favourite")
    assert list_runs(tmp_path)[0].name == "my favourite"
    assert list_runs(tmp_path)[0].run_id == a.name  # the id never changes
    open_run(b.name, tmp_path).delete()
    assert [i.run_id for i in list_runs(tmp_path)] == [a.name]
    with pytest.raises(RunError):
        open_run("no-such-run", tmp_path)


def test_torn_last_line_is_skipped(tmp_path):
    run_dir = create_run_dir("gru", tmp_path)
    _record(run_dir)
    with open(run_dir / "metrics.jsonl", "ab") as handle:
        handle.write(b'{"type": "step", "step": 6, "epo')
    assert len(open_run(run_dir).step_metrics()) == 5
    assert len(read_jsonl(run_dir / "metrics.jsonl")) == 7  # 5 steps, probe, epoch


def test_a_live_run_with_a_stale_heartbeat_is_crashed_and_a_paused_one_is_not(tmp_path):
    run_dir = create_run_dir("gru", tmp_path)
    recorder, _ = _record(run_dir, finish=None)
    recorder.on_event(RunStatus("paused", 5, 1))
    beats = set()
    deadline = time.monotonic() + 60  # only a guard against a hang
    while len(beats) < 3:  # the heartbeat thread keeps rewriting status.json while paused
        assert time.monotonic() < deadline, "the heartbeat stopped while paused"
        status = json.loads((run_dir / "status.json").read_text())
        if status["status"] == "paused":
            beats.add(status["heartbeat"])
        time.sleep(0.01)
    assert open_run(run_dir).status == "paused"
    assert effective_status(status, now=status["heartbeat"] + 29) == "paused"
    recorder.close()
    assert effective_status(status, now=status["heartbeat"] + 31) == "crashed"
    assert effective_status(status, now=status["heartbeat"] + 5, stale_after=3) == "crashed"
    dead = dict(status, pid=2**22 + 12345)
    assert effective_status(dead, now=status["heartbeat"] + 1) == "crashed"


def test_resumed_recording_drops_records_after_the_checkpoint(tmp_path):
    run_dir = create_run_dir("gru", tmp_path)
    recorder, _ = _record(run_dir, finish="stopped")
    recorder = RunRecorder(run_dir)
    recorder.on_event(_started(run_dir.name, resumed=3))
    recorder.on_event(_step(4, 0.25))
    recorder.on_event(RunFinished("completed", "", 4, 1, 1.0))
    steps = open_run(run_dir).step_metrics()
    assert [s.step for s in steps] == [1, 2, 3, 4] and steps[-1].loss == 0.25
    assert not list((run_dir / "probes").glob("*.h5"))  # the step-5 probe went too


def test_runs_and_comparisons_write_times_with_one_helper():
    """One ISO-time helper: a comparison's times read exactly like a run's."""
    import datetime as dt

    from workbench import compare, runs

    assert compare.iso_time is runs.iso_time
    assert not hasattr(compare, "_iso")
    text = runs.iso_time(1_795_613_412.9)
    parsed = dt.datetime.fromisoformat(text)
    assert parsed.utcoffset() is not None  # local time with its offset
    assert parsed.timestamp() == 1_795_613_412  # to the second


def test_summary_and_run_data_read_the_metrics_file_once(tmp_path, monkeypatch):
    from workbench import runs as runs_module
    from workbench.compare import RunData

    run_dir = create_run_dir("gru", tmp_path)
    recorder, _ = _record(run_dir)
    recorder.close()
    run = open_run(run_dir)
    reads = []
    real = runs_module.read_jsonl
    monkeypatch.setattr(runs_module, "read_jsonl", lambda path: reads.append(path) or real(path))
    summary = run.summary()
    assert len(reads) == 1 and summary["probes"] == 1 and summary["steps"] == 5
    reads.clear()
    data = RunData.from_run(run)
    assert len(reads) == 1 and len(data.steps) == 5 and data.probe is not None
    assert data.status == run.status == "completed"


def test_listing_reads_each_runs_json_and_status_once(tmp_path, monkeypatch):
    from workbench import runs as runs_module

    for _ in range(2):
        recorder, _ = _record(create_run_dir("gru", tmp_path))
        recorder.close()
    (tmp_path / "not-a-run").mkdir()
    reads = []
    real = runs_module._read_record
    monkeypatch.setattr(runs_module, "_read_record",
                        lambda path, fields: reads.append(path.name) or real(path, fields))
    infos = list_runs(tmp_path)
    assert [i.status for i in infos] == ["completed", "completed"]
    assert sorted(reads) == ["run.json"] * 3 + ["status.json"] * 2
