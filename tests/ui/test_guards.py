"""Guards a user meets before training: the memory estimate, fields that refuse values
out of range (never clamp them), a Model panel whose fields stay in place, and a new
dataset that never replaces a file without asking. Real window and dialogs offscreen."""

from __future__ import annotations

import pytest
from PySide6.QtTest import QTest

import ui.task_dialog as task_dialog_module
from tests.ui.test_main_window import T_IN, T_OUT, make_window
from ui import errors
from ui.data_panel import DatasetDocument
from ui.model_panel import ModelPanel
from ui.task_dialog import TaskDialog, default_name
from workbench.memory import estimate_run_memory, format_bytes
from workbench.tasks import generate


@pytest.fixture
def dialogs(monkeypatch):
    """Messages recorded; questions recorded and answered from `answer`."""
    state = {"shown": [], "asked": [], "answer": True}
    monkeypatch.setattr(errors, "show_message", lambda parent, title, text, **kw:
                        state["shown"].append((title, text)))

    def ask(parent, title, text):
        state["asked"].append((title, text))
        return state["answer"]

    monkeypatch.setattr(errors, "ask", ask)
    return state


@pytest.fixture
def window(qtbot, tmp_path, dialogs):
    path = tmp_path / "tiny.h5"
    generate("sine", path, n=64, seed=1, input_steps=T_IN, target_steps=T_OUT)
    w = make_window(qtbot, tmp_path)
    assert w.open_dataset(path)
    w.model_panel.set_values({"hidden": 8, "batch_size": 16, "epochs": 1})
    yield w
    w.shutdown(30_000)


def test_an_oversized_model_is_refused_with_its_estimate(qtbot, window, dialogs):
    window.model_panel.set_values({"hidden": 65536, "layers": 64, "batch_size": 16})
    assert window.model_panel.is_valid()  # in range: only the memory says no
    config = window.model_panel.run_config(window.document.path)
    estimate = estimate_run_memory(config, window.document.summary)
    assert not estimate.fits
    window.train()
    assert window.session.state == "idle"  # nothing started
    assert not (window.runs_dir.exists() and any(window.runs_dir.iterdir()))
    ((title, text),) = dialogs["shown"]
    assert "memory" in title.lower()
    assert f"about {format_bytes(estimate.total)}" in text
    assert format_bytes(estimate.available) in text  # what is available
    assert f"{estimate.parameters:,} parameters" in text


def test_a_run_taking_over_half_the_memory_asks_first(qtbot, window, dialogs):
    config = window.model_panel.run_config(window.document.path)
    estimate = estimate_run_memory(config, window.document.summary)
    dialogs["answer"] = False
    assert not window.launcher.memory_allows(config, available=int(estimate.total * 1.5))
    ((_title, text),) = dialogs["asked"]
    assert "more than half" in text and format_bytes(estimate.total) in text
    dialogs["answer"] = True
    assert window.launcher.memory_allows(config, available=int(estimate.total * 1.5))
    assert window.launcher.memory_allows(config, available=estimate.total * 10)  # no question
    assert len(dialogs["asked"]) == 2


def test_an_out_of_range_value_is_refused_at_the_field_not_clamped(qtbot, window):
    panel = window.model_panel
    panel.hidden.lineEdit().selectAll()
    QTest.keyClicks(panel.hidden.lineEdit(), "99999")  # as a user types it
    assert panel.hidden.value() == 99999  # kept as typed, not silently 9999
    assert panel.errors()["hidden"].startswith("hidden size must be 1–65,536")
    label = panel._range_errors["hidden"]
    assert label.isVisibleTo(panel) and "hidden size must be 1–65,536" in label.text()
    assert "b00020" in panel.hidden.styleSheet()  # shown red
    assert not window.controls.train_action.isEnabled()
    assert "hidden size must be" in window.controls.train_action.toolTip()
    assert panel.parameters.text() == "–"  # no model of that size is built, even to count
    panel.hidden.lineEdit().selectAll()
    QTest.keyClicks(panel.hidden.lineEdit(), "64")
    assert panel.is_valid() and not label.isVisibleTo(panel)
    assert window.controls.train_action.isEnabled()


def test_the_model_panels_fields_stay_in_place_when_the_cell_changes(qtbot):
    panel = ModelPanel(DatasetDocument())
    qtbot.addWidget(panel)
    panel.resize(420, 900)
    panel.show()
    qtbot.waitExposed(panel)
    places = set()
    for i in range(panel.cell.count()):
        panel.cell.setCurrentIndex(i)
        QTest.qWait(10)
        places.add(panel.hidden.mapTo(panel, panel.hidden.rect().topLeft()).y())
        assert panel.description.text()  # every cell is described
    assert len(places) == 1


def test_a_new_datasets_default_name_has_its_options_and_replacing_asks(qtbot, tmp_path,
                                                                        dialogs, monkeypatch):
    monkeypatch.setattr(task_dialog_module, "datasets_dir", lambda: tmp_path)
    dialog = TaskDialog(task="copy")
    qtbot.addWidget(dialog)
    first = dialog.output_path()
    assert first.name == default_name("copy", dialog.n.value(), 0, dialog.options())
    assert first.name.startswith("copy-T") and "-v" in first.name
    dialog.set_option("vocab", 5)
    assert dialog.output_path() != first and "-v5-" in dialog.output_path().name
    dialog.seed.setValue(7)
    assert dialog.output_path().name.endswith("-s7.h5")

    target = dialog.output_path()
    target.write_bytes(b"an earlier dataset")
    dialogs["answer"] = False
    dialog.generate_button.click()
    ((title, text),) = dialogs["asked"]
    assert "Replace" in title and str(target) in text
    assert not dialog.generating() and dialog.written_path is None
    assert target.read_bytes() == b"an earlier dataset"
    dialogs["answer"] = True
    dialog.generate_button.click()
    qtbot.waitUntil(lambda: dialog.written_path is not None, timeout=30_000)
    assert target.read_bytes()[:4] == b"\x89HDF"


def test_opening_a_csv_as_a_dataset_says_what_it_is(qtbot, window, tmp_path, dialogs):
    csv = tmp_path / "data.csv"
    csv.write_text("time,value\n0,1.5\n1,2.5\n")
    before = window.document.path
    assert not window.open_dataset(csv)
    assert window.document.path == before  # the open dataset stays
    texts = [text for _title, text in dialogs["shown"]]
    assert any("data.csv is not an HDF5 file: it looks like CSV text. Use File ▸ Import…"
               in text for text in texts), texts
    assert not any("synchronously" in text for text in texts)
