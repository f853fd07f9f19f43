"""The import dialog, offscreen and real: it previews a file as parsed, scans it,
imports it in the background with progress, names errors by line and column, and
a cancelled import leaves no file."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from ui import errors
from ui.import_dialog import ImportDialog, import_dataset
from workbench.datasets import SequenceDataset
from workbench.importers import read_time_split

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


@pytest.fixture
def messages(monkeypatch):
    shown: list[str] = []
    monkeypatch.setattr(errors, "show_message",
                        lambda parent, title, text, **kw: shown.append(text))
    monkeypatch.setattr(errors, "ask", lambda parent, title, text: True)
    return shown


@pytest.fixture
def dialog(qtbot):
    widget = ImportDialog()
    qtbot.addWidget(widget)
    yield widget
    widget.reject()


def scanned(qtbot, dialog) -> None:
    qtbot.waitUntil(lambda: dialog.scan_result is not None or dialog.scan_error is not None,
                    timeout=10_000)


def test_text_pairs_are_previewed_scanned_and_imported(qtbot, dialog, tmp_path, messages):
    dialog.set_file(EXAMPLES / "phrases.tsv", kind="text")
    page = dialog.text_page
    assert page.table.rowCount() == 20 and page.table.columnCount() == 2
    assert (page.table.item(1, 0).text(), page.table.item(1, 1).text()) == ("Hi.", "Salut !")
    scanned(qtbot, dialog)
    assert "44 pairs: train 36 · val 4 · test 4" in dialog.scan_label.text()
    assert "vocabulary of 55" in dialog.scan_label.text()
    page.level.setCurrentIndex(page.level.findData("char"))
    page.max_length.setValue(10)
    qtbot.waitUntil(lambda: dialog.scan_result is not None
                    and dialog.scan_result.options["level"] == "char", timeout=10_000)
    assert dialog.scan_result.dropped["over_max_length"] > 0
    assert "over the longest" in dialog.scan_label.text()
    out = tmp_path / "phrases.h5"
    dialog.out_edit.setText(str(out))
    dialog.import_button.click()
    qtbot.waitUntil(lambda: dialog.written_path is not None, timeout=20_000)
    assert dialog.written_path == str(out) and dialog.result() == ImportDialog.DialogCode.Accepted
    with SequenceDataset.open(out, safe_check=False) as ds:
        assert ds.summary.splits == dialog.summary.splits == dialog.scan_result.splits
        assert ds.summary.inputs.steps == 10
    assert messages == []


def test_a_series_error_names_line_and_column_until_missing_values_are_handled(
        qtbot, dialog, tmp_path, messages):
    dialog.set_file(EXAMPLES / "sensor.csv", kind="series")
    page = dialog.series_page
    assert page.header == ["date", "temperature", "humidity"]
    assert page.table.item(0, 0).text() == "2023-01-01"
    assert page.time_col.currentData() == "date"
    scanned(qtbot, dialog)
    assert dialog.scan_error is not None
    assert "line 42 (data row 41), column 'temperature': a missing value" in \
        dialog.scan_label.text()
    page.set_checked(page.targets, ["humidity"])
    page.window.setValue(28)
    page.horizon.setValue(7)
    page.missing.setCurrentIndex(page.missing.findData("interpolate"))
    qtbot.waitUntil(lambda: dialog.scan_result is not None
                    and dialog.scan_result.input_shape == (28, 2), timeout=10_000)
    assert "263 windows split by time: train 221 · val 21 · test 21" in dialog.scan_label.text()
    assert dialog.scan_result.target_shape == (7, 1)
    out = tmp_path / "sensor.h5"
    dialog.out_edit.setText(str(out))
    dialog.start_import()
    assert dialog.importing() and not dialog.progress.isHidden()
    qtbot.waitUntil(lambda: dialog.written_path is not None, timeout=20_000)
    split = read_time_split(out)
    assert split is not None and split.splits["val"][0].first_time == "2023-09-13"
    assert dialog.summary.filled_cells == 2 and messages == []


def test_an_import_error_is_shown_naming_the_line_and_leaves_no_file(qtbot, dialog, tmp_path,
                                                                     messages):
    src = tmp_path / "pairs.tsv"
    src.write_text("".join(f"w{i}\tv{i}\n" for i in range(100)) + "bad\tline\there\n")
    dialog.set_file(src, kind="text")
    scanned(qtbot, dialog)
    assert "line 101: 3 fields, expected 2" in dialog.scan_label.text()
    out = tmp_path / "pairs.h5"
    dialog.out_edit.setText(str(out))
    dialog.start_import()
    qtbot.waitUntil(lambda: not dialog.importing(), timeout=20_000)
    assert len(messages) == 1 and "pairs.tsv: line 101: 3 fields, expected 2" in messages[0]
    assert dialog.written_path is None and not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pairs.tsv"]
    assert dialog.import_button.isEnabled()
    dialog.text_page.skip_bad.setChecked(True)
    dialog.start_import()
    qtbot.waitUntil(lambda: dialog.written_path is not None, timeout=20_000)
    assert dialog.summary.dropped["bad_lines"] == 1


def test_a_preview_of_a_bad_file_says_why(qtbot, dialog, tmp_path):
    src = tmp_path / "latin.tsv"
    src.write_bytes("caf\xe9\tcoffee\n".encode("latin-1") * 10)
    dialog.set_file(src, kind="text")
    assert "line 1: byte 0xe9 at offset 3 is not valid utf-8" in dialog.scan_label.text()
    page = dialog.text_page
    page.encoding.setCurrentIndex(page.encoding.findData("latin-1"))
    assert page.table.item(0, 0).text() == "café"
    scanned(qtbot, dialog)
    assert dialog.scan_result is not None and dialog.scan_result.pairs == 10


def big_pairs(tmp_path: Path) -> Path:
    src = tmp_path / "big.tsv"
    src.write_text("".join(f"word{i} other{i % 97}\tmot{i} autre\n" for i in range(60_000)))
    return src


def test_stopping_an_import_leaves_no_file(qtbot, dialog, tmp_path, messages):
    dialog.set_file(big_pairs(tmp_path), kind="text")
    out = tmp_path / "big.h5"
    dialog.out_edit.setText(str(out))
    dialog.start_import()
    dialog.cancel_button.click()  # while importing: stops the import, keeps the dialog
    qtbot.waitUntil(lambda: not dialog.importing(), timeout=20_000)
    assert dialog.status.text() == "Import cancelled; nothing was written."
    assert dialog.written_path is None and dialog.import_button.isEnabled()
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["big.tsv"]
    assert messages == []


def test_closing_during_an_import_stops_it(qtbot, tmp_path, messages):
    dialog = ImportDialog(path=big_pairs(tmp_path))
    qtbot.addWidget(dialog)
    out = tmp_path / "big.h5"
    dialog.out_edit.setText(str(out))
    dialog.start_import()
    dialog.reject()
    assert not dialog.importing() and dialog.written_path is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.tsv"]


def test_import_dataset_returns_none_when_cancelled(qtbot):
    def close_it():
        widget = QApplication.activeModalWidget()
        assert isinstance(widget, ImportDialog)
        widget.reject()

    QTimer.singleShot(50, close_it)
    assert import_dataset(None) is None


def test_the_data_panel_says_what_the_format_cannot_know(qtbot, tmp_path):
    """Windows cut from one series without split groups get the overlap warning; an
    imported series shows its time split; a built-in task shows neither."""
    import h5py
    import numpy as np

    from ui.data_panel import DataPanel, DatasetDocument
    from workbench.importers import SeriesOptions, import_series
    from workbench.tasks import generate

    panel = DataPanel(DatasetDocument())
    qtbot.addWidget(panel)
    series = np.sin(np.arange(400) / 5.0).astype(np.float32)
    windows = tmp_path / "windows.h5"
    with h5py.File(windows, "w") as f:
        f.attrs["sequence_workbench_format"] = 1
        f["inputs"] = np.stack([series[i:i + 20] for i in range(300)])[..., None]
        f["targets"] = np.stack([series[i + 20:i + 25] for i in range(300)])[..., None]
    panel.open_file(windows)
    assert panel.wait_opened()
    assert "overlapping windows" in panel.description.text()

    imported = import_series(EXAMPLES / "sensor.csv", tmp_path / "sensor.h5", SeriesOptions(
        input_cols=("temperature",), target_cols=("temperature",), window=6, horizon=2,
        missing="interpolate"))
    panel.open_file(imported.path)
    assert panel.wait_opened()
    assert "by time" in panel.description.text()

    task = generate("copy", tmp_path / "copy.h5", n=60, seed=0, length=4, delay=3)
    panel.open_file(task)
    assert panel.wait_opened()
    assert "overlapping" not in panel.description.text()
    assert "by time" not in panel.description.text()
    panel.document.close()


def test_file_import_opens_the_imported_dataset_in_the_window(qtbot, tmp_path, monkeypatch,
                                                              messages):
    import ui.main_window as main_window_module
    from ui.main_window import MainWindow
    from ui.settings import AppSettings, open_settings
    from workbench.importers import TextOptions, import_text

    imported = import_text(EXAMPLES / "phrases.tsv", tmp_path / "phrases.h5", TextOptions())
    monkeypatch.setattr(main_window_module, "import_dataset", lambda parent: imported.path)
    window = MainWindow(AppSettings(open_settings(tmp_path / "settings.ini")),
                        runs_dir=tmp_path / "runs", load_dataset=False)
    qtbot.addWidget(window)
    assert "Import" in window.import_action.text()
    window.import_action.trigger()
    assert window.data_panel.wait_opened()
    assert window.document.path == str(Path(imported.path).resolve())
    assert window.document.summary.targets.kind == "tokens"
