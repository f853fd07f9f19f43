"""Beam search in the GUI: the Predictions panel's top-k hypotheses (made in the training
thread or a checkpoint job), and the beam tree, where a click forces a prefix and the
rest is decoded again in the background. A real tiny token run (reverse, T = 5)."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6 import QtCore

pytest.importorskip("pytestqt")

from tests.workbench.train_helpers import (  # noqa: E402
    VOCAB,
    open_dataset,
    tiny_config,
    write_reverse,
)
from ui.beam_tree import PRUNED_ALPHA, BeamTreeWindow, prefix_of  # noqa: E402
from ui.plots.predictions_plot import (  # noqa: E402
    CheckpointPredictor,
    LivePrediction,
    LivePredictor,
    PredictionsPlot,
)
from workbench.events import RecordingListener  # noqa: E402
from workbench.run_service import RunService  # noqa: E402


@pytest.fixture(scope="module")
def live_run(tmp_path_factory):
    """(runs_dir, run_id, the LivePredictions of a run trained with a LivePredictor)."""
    root = tmp_path_factory.mktemp("beam")
    config = tiny_config(write_reverse(root / "reverse.h5"), cell="gru", attention="luong-dot",
                         epochs=2, steps=None)
    recorder = RecordingListener()
    predictor = LivePredictor(index=1, beam=3)
    with open_dataset(config) as dataset:
        active = RunService(root / "runs").start(config, [recorder, predictor],
                                                 dataset=dataset)
        predictor.bind(recorder, active.trainer)  # as the GUI's training job binds it
        active.run()
    live = [e for e in recorder.events if isinstance(e, LivePrediction)]
    return root / "runs", active.run_id, live


@pytest.fixture
def panel(qtbot):
    widget = PredictionsPlot()
    qtbot.addWidget(widget)
    yield widget
    widget.close_beam_tree()


def test_live_predictions_list_the_top_k_hypotheses_with_their_scores(panel, live_run):
    _, run_id, live = live_run
    assert live and all(p.prediction.beam == 3 for p in live)
    panel.show_prediction(live[-1])
    rows = panel.hypothesis_rows()
    assert 1 <= len(rows) <= 3 and panel.hypotheses_table.rowCount() == len(rows)
    assert [score for _, score, _ in rows] == sorted((s for _, s, _ in rows), reverse=True)
    for (text, score, log_prob), h in zip(rows, live[-1].prediction.hypotheses, strict=True):
        assert text == "".join(VOCAB[i] for i in h.ids)
        assert panel.hypotheses_table.item(rows.index((text, score, log_prob)), 1).text() \
            == f"{score:.3f}"
        assert score == pytest.approx(log_prob / len(h.ids) ** 0.75)
    assert "width 3" in panel.hypotheses_title.text()
    assert panel.beam_spin.isVisibleTo(panel) and panel.beam_width == 3  # token targets
    assert panel.tree_button.isEnabled()
    picked = []
    panel.beam_changed.connect(picked.append)
    panel.set_beam_width(5)
    assert picked == [5] and panel.beam_width == 5


def test_a_checkpoint_prediction_searches_with_the_beam_asked_for(qtbot, panel, live_run):
    runs_dir, run_id, _ = live_run
    predictor = CheckpointPredictor(runs_dir)
    predictor.predicted.connect(panel.show_prediction)
    try:
        with qtbot.waitSignal(predictor.predicted, timeout=30_000):
            predictor.request(run_id, 2, beam=2)
    finally:
        predictor.close()
    p = panel.prediction
    assert (p.index, p.beam, p.run_id) == (2, 2, run_id)
    assert 1 <= len(panel.hypothesis_rows()) <= 2


def _tree_window(qtbot, panel, live_run) -> BeamTreeWindow:
    runs_dir, _, live = live_run
    panel.runs_dir = runs_dir
    panel.show_prediction(live[-1])
    window = panel.open_beam_tree()
    qtbot.addWidget(window)
    return window


def test_the_beam_tree_draws_kept_pruned_and_chosen_tokens(qtbot, panel, live_run):
    window = _tree_window(qtbot, panel, live_run)
    search = live_run[2][-1].prediction.search
    view = window.view
    assert len(view.items) == sum(len(step) for step in search.tree)
    best = search.hypotheses[0]
    bold = {key for key, item in view.items.items() if item.font().bold()}
    assert bold == {(t, i) for t, i in enumerate(best.nodes)}  # the chosen path, bold
    for (t, i), item in view.items.items():
        candidate = search.tree[t][i]
        alpha = item.brush().color().alphaF()
        assert (alpha == pytest.approx(PRUNED_ALPHA, abs=0.01)) == (not candidate.kept)
        assert item.text() == VOCAB[candidate.token]
    assert any(not c.kept for step in search.tree for c in step)  # something was pruned
    assert f"{best.score:.3f}" in window.ranking.text()


def test_clicking_a_token_decodes_again_from_that_prefix(qtbot, panel, live_run):
    window = _tree_window(qtbot, panel, live_run)
    window.show()
    qtbot.waitExposed(window)
    search = window.search
    best = search.hypotheses[0]
    # a token of step 2 off the chosen path: "what if it had said this?"
    step = 1
    index = next(i for i in range(len(search.tree[step])) if i != best.nodes[step])
    prefix = prefix_of(search.tree, step, index)
    assert len(prefix) == 2
    item = window.view.token_at(step, index)
    window.view.ensureVisible(item)
    where = window.view.mapFromScene(item.sceneBoundingRect().center())
    with qtbot.waitSignal(window.decoder.decoded, timeout=30_000):
        qtbot.mouseClick(window.view.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=where)
    assert window.prefix == prefix
    assert window.hypotheses and all(tuple(h.ids[:2]) == prefix for h in window.hypotheses)
    assert [len(window.search.tree[t]) for t in range(2)] == [1, 1]  # forced steps
    assert "checkpoint" in window.header.text() and window.reset_button.isEnabled()
    # a newer live prediction of the same sample does not undo the exploration
    window.follow(live_run[2][-1].prediction)
    assert window.prefix == prefix
    with qtbot.waitSignal(window.decoder.decoded, timeout=30_000):
        window.reset_button.click()
    assert window.prefix == () and not window.reset_button.isEnabled()
    np.testing.assert_array_equal(window.hypotheses[0].ids, _checkpoint_best(live_run))


def _checkpoint_best(live_run) -> np.ndarray:
    """The best hypothesis (beam 3, no prefix) of validation sample 1 with the run's
    checkpoint, the model the tree's decodes use."""
    from workbench.predictions import beam_search_sample
    from workbench.runs import open_run

    runs_dir, run_id, _ = live_run
    run = open_run(run_id, runs_dir)
    model, _, _ = run.load_model("best" if run.checkpoint_path("best").is_file() else "latest")
    with open_dataset(run.config()) as dataset:
        _, hypotheses = beam_search_sample(model, dataset, "val", 1, beam=3)
    return hypotheses[0].ids


def test_changing_the_beam_width_predicts_again_with_it(qtbot, panel, live_run):
    """The router passes the panel's beam width to the checkpoint's prediction."""
    from ui.predictions_router import PredictionsRouter

    runs_dir, run_id, _ = live_run
    router = PredictionsRouter(panel, runs_dir)
    try:
        panel.set_sample_count(4)
        with qtbot.waitSignal(router.checkpoint_predictor.predicted, timeout=30_000):
            router.show_recorded(run_id)
        with qtbot.waitSignal(router.checkpoint_predictor.predicted, timeout=30_000):
            panel.set_beam_width(2)
        assert panel.prediction.beam == 2 and panel.prediction.run_id == run_id
    finally:
        router.close()
