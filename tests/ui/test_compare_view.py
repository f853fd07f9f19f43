"""The comparison: the "Compare cells..." dialog, the queue worker, and the view
(loss bands across seeds, gradient profiles, trajectories, a numerically sorted
table, one colour per cell), built from real tiny runs."""

from __future__ import annotations

import pytest

pytest.importorskip("pytestqt")

from ui.compare_dialog import CompareDialog  # noqa: E402
from ui.plots import style  # noqa: E402
from workbench.config import RunConfig  # noqa: E402

# -- the dialog ----------------------------------------------------------------------


def test_dialog_returns_the_picked_cells_and_seeds(qtbot):
    config = RunConfig(data="/data/copy.h5", cell="gru", hidden=24, seed=5, epochs=4)
    dialog = CompareDialog(config)
    qtbot.addWidget(dialog)
    # defaults: the classic contrast plus the model panel's own cell, 3 seeds
    assert dialog.cells() == ("rnn-tanh", "gru", "lstm")
    assert dialog.seeds() == (5, 6, 7)
    assert list(dialog.cell_checkboxes) == ["rnn-tanh", "rnn-relu", "rnn-sigmoid", "gru", "lstm"]
    dialog.set_cells(["rnn-relu", "lstm"])
    dialog.set_seed_count(2)
    choice = dialog.choice()
    assert choice.cells == ("rnn-relu", "lstm") and choice.seeds == (5, 6) and choice.runs == 4
    assert "4 runs in total" in dialog.summary.text()
    # what every run shares is shown, read-only
    assert dialog.shared_labels["Data"].text() == "copy.h5"
    assert dialog.shared_labels["Hidden units"].text() == "24 × 1 layer"
    assert dialog.shared_labels["Budget"].text() == "4 epochs"
    # each cell's swatch is its colour in every view
    icon = dialog.cell_checkboxes["lstm"].icon().pixmap(12, 12).toImage()
    assert icon.pixelColor(6, 6).name() == style.cell_color("lstm").lower()
    dialog.set_cells([])
    assert not dialog.start_button.isEnabled()
    assert "at least one cell" in dialog.summary.text()


def test_dialog_without_data_cannot_start(qtbot):
    dialog = CompareDialog(RunConfig())
    qtbot.addWidget(dialog)
    assert not dialog.start_button.isEnabled()
    assert "Open a dataset first" in dialog.summary.text()
