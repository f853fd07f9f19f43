"""A run stopped before its first step leaves no checkpoint of weights and is listed as
stopped; a file that is not HDF5 is named with what it seems to be, through the
workbench API and the CLI's `inspect`; default run names tell runs apart."""

from __future__ import annotations

import json

import pytest

from tests.workbench.train_helpers import StopAt, tiny_config, write_waves
from workbench.cli import main
from workbench.datasets import SequenceDataset, list_arrays
from workbench.errors import DatasetError
from workbench.events import RunStarted
from workbench.file_kinds import not_hdf5_message
from workbench.run_service import RunService
from workbench.runs import list_runs, open_run


@pytest.fixture(scope="module")
def waves(tmp_path_factory):
    return write_waves(tmp_path_factory.mktemp("data") / "waves.h5")


class StopAtStart:
    """Asks for a stop when the run starts: before its first step (as Stop pressed then)."""

    def __init__(self) -> None:
        self.run = None

    def on_event(self, event) -> None:
        if isinstance(event, RunStarted):
            self.run.request_stop()


@pytest.mark.parametrize("when", ["before run()", "at its start"])
def test_a_run_stopped_before_its_first_step_keeps_no_weights(waves, tmp_path, when):
    config = tiny_config(waves, cell="lstm", hidden=256, layers=2, steps=50)  # ~1.6 M params
    stopper = StopAtStart()
    active = RunService(tmp_path).start(config, [stopper] if when == "at its start" else [])
    stopper.run = active
    if when == "before run()":
        active.request_stop()
    finished = active.run()
    assert finished.status == "stopped" and finished.step == 0
    (info,) = list_runs(tmp_path)
    assert info.status == "stopped" and info.steps == 0
    assert info.parameters > 1_000_000
    assert not list(active.run_dir.rglob("*.pt"))  # no checkpoint of untrained weights
    size = sum(p.stat().st_size for p in active.run_dir.rglob("*") if p.is_file())
    assert size < 200_000  # the records only: run.json, status, config


def test_a_stop_after_some_steps_still_keeps_its_checkpoint(waves, tmp_path):
    config = tiny_config(waves, steps=50)
    stopper = StopAt(3)
    active = RunService(tmp_path).start(config, [stopper])
    stopper.run = active
    assert active.run().status == "stopped"
    assert open_run(active.run_dir).load_checkpoint("latest")["position"]["step"] >= 3


NOT_HDF5 = [
    ("data.csv", b"time,value\n0,1.5\n1,2.5\n", "it looks like CSV text. Use File ▸ Import…"),
    ("picture.h5", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "it looks like a PNG image"),
    ("bundle.h5", b"PK\x03\x04" + b"\x00" * 40, "it looks like a ZIP archive"),
    ("paper.h5", b"%PDF-1.7\n" + b"\x00" * 40, "it looks like a PDF document"),
    ("settings.h5", json.dumps({"a": [1, 2]}).encode(), "it looks like JSON text"),
    ("empty.h5", b"", "is empty (0 bytes)"),
    ("noise.h5", bytes(range(256)) * 4, "its first bytes are not the HDF5 signature"),
]


@pytest.mark.parametrize("name, content, words", NOT_HDF5)
def test_a_file_that_is_not_hdf5_is_named_with_what_it_seems_to_be(tmp_path, name, content,
                                                                     words, capsys):
    path = tmp_path / name
    path.write_bytes(content)
    for opener in (lambda: SequenceDataset.open(path), lambda: list_arrays(path),
                   lambda: SequenceDataset.open(path, safe_check=False)):
        with pytest.raises(DatasetError) as caught:
            opener()
        message = str(caught.value)
        assert message.startswith(str(path)) and words in message
        assert "signature not found" not in message and "synchronously" not in message
    assert main(["inspect", str(path)]) != 0
    err = capsys.readouterr().err
    assert words in err and name in err and "synchronously" not in err


def test_an_hdf5_file_passes_the_sniff(waves):
    assert not_hdf5_message(waves) is None


def test_default_run_names_carry_cell_hidden_dataset_and_seed_and_never_repeat(waves,
                                                                               tmp_path):
    service = RunService(tmp_path)
    config = tiny_config(waves, cell="gru", hidden=8, steps=1, seed=4)
    for _ in range(3):
        assert service.start(config).run().status == "completed"
    names = [info.name for info in list_runs(tmp_path)]
    assert names == ["gru h8 · waves · s4", "gru h8 · waves · s4 (2)", "gru h8 · waves · s4 (3)"]
    stacked = service.start(config.replace(layers=2, seed=0))
    stacked.run()
    assert open_run(stacked.run_dir).name == "gru h8x2 · waves · s0"
