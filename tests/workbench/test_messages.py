"""Issue 10, failure 13: messages that were wrong, or more than one line.

Each case through the CLI as a user meets it: exit 2 (0 for `inspect --arrays`),
one line on stderr, no traceback, and the words that say what is wrong.
"""

from __future__ import annotations

import json
import pickle
import shutil

import h5py
import numpy as np
import pytest

from tests.workbench.train_helpers import record_run, tiny_config, write_waves
from workbench.cli import main


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("messages")
    data = write_waves(folder / "waves.h5", n=48)
    run_dir = record_run(tiny_config(data, steps=2, hidden=4), folder / "runs", stop_at=1)
    return {"data": data, "run_dir": run_dir}


@pytest.fixture
def run_copy(recorded, tmp_path):
    runs_dir = tmp_path / "runs"
    shutil.copytree(recorded["run_dir"], runs_dir / recorded["run_dir"].name)
    return runs_dir / recorded["run_dir"].name


def one_line(capsys, argv: list[str], code: int = 2) -> str:
    capsys.readouterr()
    assert main(argv) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip()


@pytest.mark.parametrize("garbage", [b"garbage", b"\x8a\x01\x02abcd", b"PK\x03\x04xyz"])
def test_a_garbage_checkpoint_is_unreadable_not_code(run_copy, capsys, garbage):
    assert len(garbage) == 7
    best = run_copy / "checkpoints" / "best.pt"
    best.write_bytes(garbage)
    line = one_line(capsys, ["evaluate", str(run_copy), "--checkpoint", "best"])
    assert f"checkpoint {best} is unreadable" in line
    assert "could run code" not in line


class _Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_a_raw_pickle_is_refused_on_one_line_without_torch_s_warning(run_copy, capsys,
                                                                     recwarn):
    best = run_copy / "checkpoints" / "best.pt"
    best.write_bytes(pickle.dumps({"model": _Payload()}, protocol=4))
    line = one_line(capsys, ["evaluate", str(run_copy), "--checkpoint", "best"])
    assert "refused" in line and "could run code" in line and "builtins.print" in line
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)], \
        [str(w.message) for w in recwarn]


def test_a_hidden_size_changed_in_config_toml_is_one_line_naming_parameter_and_shapes(
        run_copy, capsys):
    config = run_copy / "config.toml"
    text = config.read_text()
    assert "hidden = 4" in text
    config.write_text(text.replace("hidden = 4", "hidden = 8"))
    status = json.loads((run_copy / "status.json").read_text())
    assert status["status"] == "stopped"
    line = one_line(capsys, ["train", "--resume", str(run_copy), "--no-progress"])
    assert "does not fit the run's model" in line
    assert "parameter encoder.weight_ih_l0 is (12, 1) in the checkpoint but (24, 1) in " \
           "the model" in line  # a GRU's 3 gates x hidden 4, then 8
    assert "hidden is 4 in the checkpoint and 8 in the config" in line
    assert "size mismatch" not in line


def test_an_external_link_to_a_missing_file_names_the_missing_target(tmp_path, capsys):
    path = tmp_path / "linked.h5"
    with h5py.File(path, "w") as f:
        f["inputs"] = h5py.ExternalLink("gone.h5", "/x")
        f["targets"] = np.zeros((4, 3, 1), np.float32)
    line = one_line(capsys, ["inspect", str(path)])
    assert "/inputs" in line and "external link to gone.h5:/x" in line
    assert "gone.h5 does not exist" in line


def test_inspect_arrays_on_a_file_without_inputs_and_targets_lists_them_and_exits_0(tmp_path,
                                                                                 capsys):
    path = tmp_path / "foreign.h5"
    with h5py.File(path, "w") as f:
        f["past"] = np.zeros((5, 8, 1), np.float32)
        f["future"] = np.zeros((5, 2, 1), np.float32)
    capsys.readouterr()
    assert main(["inspect", str(path), "--arrays"]) == 0
    out, err = capsys.readouterr()
    assert "/past" in out and "/future" in out and "--inputs PATH --targets PATH" in out
    assert err == ""
    assert main(["inspect", str(path), "--arrays", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [a["path"] for a in listed["arrays"]] == ["/future", "/past"]
    assert listed["dataset"] is None
    line = one_line(capsys, ["inspect", str(path)])  # not asked for the arrays: an error
    assert "not a Sequence Workbench dataset" in line
