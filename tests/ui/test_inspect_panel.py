"""The Inspect window as a user drives it: it builds alone and from the main window, a
sample is shown at once, editing the input (typed text, a dragged point, a formula)
repaints it, a bad input says why, sorting / clicking / Select View pick the units a
user means, two runs line up side by side, and a request superseded by a newer one
never paints over it. Tiny runs, trained through the run service."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from tests.workbench.train_helpers import record_run, tiny_config, write_reverse, write_waves  # noqa: E402
from ui.inspect_panel import InspectPanel, Partial, Result  # noqa: E402
from ui.inspect_views import (  # noqa: E402
    correlation_with,
    nice_ceiling,
    padded_range,
    shown_levels,
    unit_order,
    units_on,
)

ROOT = Path(__file__).resolve().parents[2]
WAIT_MS = 60_000


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("inspect")
    runs_dir = root / "runs"
    tokens = write_reverse(root / "reverse.h5", n=64, length=5)
    waves = write_waves(root / "waves.h5", n=64, t_in=10, t_out=4)
    made = {
        "lstm": record_run(tiny_config(tokens, cell="lstm", steps=6), runs_dir).name,
        "rnn": record_run(tiny_config(tokens, cell="rnn-tanh", steps=6), runs_dir).name,
        "gru": record_run(tiny_config(waves, cell="gru", steps=6, hidden=6), runs_dir).name,
    }
    return runs_dir, made


def _settled(panel):
    """The newest request is painted whole and nothing is left to compute."""
    return (panel.requested_seq > 0 and panel.painted_seq == panel.requested_seq
            and panel.painted_complete and not panel.job.is_running())


def open_panel(qtbot, runs, run="lstm", compare=None):
    runs_dir, made = runs
    panel = InspectPanel(runs_dir, run_id=made[run])
    qtbot.addWidget(panel)
    panel.show()
    qtbot.waitUntil(lambda: made[run] in panel.choices, timeout=WAIT_MS)
    panel.set_runs(made[run], made[compare] if compare else None)
    qtbot.waitUntil(lambda: _settled(panel), timeout=WAIT_MS)
    return panel


def close(panel):
    assert panel.close_jobs(WAIT_MS)


def test_the_panel_shows_a_sample_of_the_run_at_once(qtbot, runs):
    panel = open_panel(qtbot, runs)
    view = panel.views[0]
    e = view.explanation
    assert e is not None and e.source == "val sample 0" and e.cell == "lstm"
    assert view.heatmap_image.image.shape == (8, e.encoder.steps + e.decoder.steps)
    assert view.connectivity_image.image.shape == e.connectivity.shape
    np.testing.assert_allclose(view.connectivity_image.image, np.log10(e.connectivity))
    text = view.sequences.text()
    assert "Input:" in text and "Generated (greedy):" in text and "Target:" in text
    assert set(view.gate_curves) == {"i", "f", "o"}
    assert not panel.editor.tabs.isTabEnabled(2)  # no Values tab for a token run
    close(panel)


def test_typing_text_updates_the_panel_and_an_unknown_symbol_is_named(qtbot, runs):
    panel = open_panel(qtbot, runs)
    panel.editor.set_mode("text")
    qtbot.keyClicks(panel.editor.text_edit, "cab")
    qtbot.waitUntil(lambda: _settled(panel), timeout=WAIT_MS)
    e = panel.views[0].explanation
    assert e.text("input") == "cab" and e.source == "typed text"
    assert panel.views[0].heatmap_image.image.shape[1] == 3 + e.decoder.steps
    assert e.connectivity.shape[1] == 3
    qtbot.keyClicks(panel.editor.text_edit, "z")
    qtbot.waitUntil(lambda: _settled(panel), timeout=WAIT_MS)
    assert "'z' at character 4" in panel.views[0].sequences.text()
    assert "'z' at character 4" in panel.status.text()
    close(panel)


def test_a_superseded_request_never_paints_over_a_newer_one(qtbot, runs):
    panel = open_panel(qtbot, runs)
    panel.editor.set_mode("text")
    typed = []
    for text in ("a", "ab", "abc", "abcd", "abcde", "abcdeb"):
        panel.editor.set_text(text)  # one request per edit, faster than they are computed
        typed.append(panel.requested_seq)
    qtbot.waitUntil(lambda: _settled(panel), timeout=WAIT_MS)
    assert panel.painted_seq == typed[-1]
    newest = panel.views[0].explanation
    assert newest.text("input") == "abcdeb"
    # the stale requests that waited were dropped, never computed
    assert len({seq for seq, _complete, _ms in panel.latencies}) < len(typed)
    # a stale result arriving now (first part or whole) is not painted
    stale = (panel.views[0].explanation,)
    panel._on_events((Partial(typed[0], panel.run_ids(), stale),))
    panel._on_finished(Result(typed[1], panel.run_ids(), stale, 0.0))
    assert panel.painted_seq == typed[-1] and panel.views[0].explanation is newest
    close(panel)


def test_sorting_clicking_and_select_view_pick_the_units(qtbot, runs):
    panel = open_panel(qtbot, runs)
    view = panel.views[0]
    values = view.state_values()
    panel.sort_combo.setCurrentText("variance")
    assert list(view.order) == list(np.argsort(-values.var(axis=1), kind="stable"))
    view.click_row(2)
    unit = int(view.order[2])
    assert view.selected_unit == unit
    _, trace = view.trace_curve.getData()
    np.testing.assert_allclose(trace, values[unit])
    panel.sort_combo.setCurrentText("correlation with selected unit")
    assert view.order[0] == unit
    corr = correlation_with(values, unit)
    assert np.all(np.diff(corr[view.order]) <= 1e-12)
    panel.threshold_spin.setValue(0.0)
    view.set_span(1, 3)
    expected = np.flatnonzero((values[:, 1:4] > 0.0).all(axis=1))
    np.testing.assert_array_equal(view.on_units, expected)
    np.testing.assert_array_equal(units_on(values, 1, 3, 0.0), expected)
    _, rows = view.on_marks.getData()
    assert sorted(view.order[rows.astype(int)]) == sorted(expected)
    panel.sort_combo.setCurrentText("on over the span first")
    assert set(view.order[:expected.size]) == set(expected)
    assert f"{expected.size} unit" in view.selection_label.text()
    panel.state_combo.setCurrentIndex(1)  # the LSTM's cell state
    np.testing.assert_allclose(view.state_values()[:, 0], view.explanation.encoder.cell[-1][0])
    close(panel)


def test_two_runs_side_by_side_share_the_input_and_the_colour_scale(qtbot, runs):
    panel = open_panel(qtbot, runs, "lstm", compare="rnn")
    a, b = (v.explanation for v in panel.views)
    assert panel.views[1].isVisible()
    assert a.cell == "lstm" and b.cell == "rnn-tanh"
    np.testing.assert_array_equal(a.input, b.input)
    assert a.encoder.steps == b.encoder.steps
    assert panel.views[0].connectivity_bar.levels() == panel.views[1].connectivity_bar.levels()
    assert b.encoder.gates == {} and "No gates" in panel.views[1].gates_plot.titleLabel.text
    panel.views[0].span_region.setRegion((0.5, 3.5))  # dragging the span moves it in both
    assert panel.views[0].span == (0, 2) and panel.views[1].span == (0, 2)
    close(panel)


def test_continuous_values_follow_a_dragged_point_and_a_formula(qtbot, runs):
    panel = open_panel(qtbot, runs, "gru")
    assert panel.editor.tabs.isTabEnabled(2) and not panel.editor.tabs.isTabEnabled(1)
    panel.editor.copy_requested.emit()  # "Edit a copy" of the sample shown
    sample = panel.views[0].explanation.input
    np.testing.assert_allclose(panel.editor.values, sample)
    qtbot.waitUntil(lambda: _settled(panel), timeout=WAIT_MS)
    panel.editor.points.drag_point(3, 25.0)
    qtbot.waitUntil(lambda: _settled(panel), timeout=WAIT_MS)
    e = panel.views[0].explanation
    assert e.source == "typed values" and e.input[3, 0] == 25.0
    np.testing.assert_allclose(np.delete(e.input, 3), np.delete(sample, 3))
    _, curve = panel.views[0].input_curve.getData()
    assert curve[3] == 25.0
    panel.editor.set_mode("formula")
    panel.editor.formula_steps.setValue(14)
    panel.editor.formula_edit.setText("10 + 2*sin(t/2)")
    qtbot.waitUntil(lambda: _settled(panel), timeout=WAIT_MS)
    e = panel.views[0].explanation
    np.testing.assert_allclose(e.input[:, 0], 10 + 2 * np.sin(np.arange(14) / 2))
    assert "longer than in training" in panel.views[0].sequences.text()
    panel.editor.formula_edit.setText("__import__('os')")
    qtbot.waitUntil(lambda: _settled(panel), timeout=WAIT_MS)
    assert "may not contain the function '__import__'" in panel.status.text()
    close(panel)


def test_an_edit_keeps_the_axes_still_and_the_last_connectivity_faded_until_the_next(
        qtbot, runs):
    """An edit of the same length moves no axis (the ranges stay; a new range would
    re-lay every plot out), and the last connectivity stays, faded, under "computing…"
    until the new one is painted in full."""
    panel = open_panel(qtbot, runs, "gru")
    view = panel.views[0]
    panel.editor.copy_requested.emit()
    qtbot.waitUntil(lambda: _settled(panel), timeout=WAIT_MS)
    ranges = [plot.viewRange() for plot in (view.heatmap, view.connectivity, view.gates_plot)]
    seen = []

    def on_painted(seq, complete):
        seen.append((complete, view.connectivity_image.image is not None,
                     view.connectivity_image.opacity(), view.connectivity_note.toPlainText()))

    panel.painted.connect(on_painted)
    panel.editor.points.drag_point(2, float(panel.editor.values[2, 0]) + 0.3)
    qtbot.waitUntil(lambda: _settled(panel), timeout=WAIT_MS)
    first = [s for s in seen if not s[0]]
    assert first and first[-1][1:] == (True, 0.35, "computing…")  # the last one, faded
    assert seen[-1][1:] == (True, 1.0, "")
    e = view.explanation
    np.testing.assert_allclose(view.connectivity_image.image, np.log10(e.connectivity))
    lo, hi = view.connectivity_bar.levels()
    logs = np.log10(e.connectivity)
    assert lo <= logs.min() and logs.max() <= hi and (lo * 2).is_integer() and (hi * 2).is_integer()
    assert [plot.viewRange() for plot in (view.heatmap, view.connectivity,
                                          view.gates_plot)] == ranges
    close(panel)


def test_nice_bounds_for_ranges_and_colour_levels():
    assert [nice_ceiling(v) for v in (0.03, 0.3, 0.7, 1.0, 1.5, 3.0, 12.0)] == [
        0.05, 0.5, 1.0, 1.0, 2.0, 5.0, 20.0]
    assert shown_levels((-7.3, -0.2)) == (-7.5, 0.0)
    held = padded_range(0.0, 1.0, None)
    assert held[0] < 0.0 and held[1] > 1.0
    assert padded_range(0.1, 0.9, held) == held  # still inside and not too wide: kept
    moved = padded_range(0.0, 3.0, held)
    assert moved != held and moved[0] < 0.0 and moved[1] > 3.0
    assert padded_range(0.0, 0.01, held) != held  # far too wide for the values: narrowed


def test_inspect_opens_from_the_main_window_and_closes_with_it(qtbot, runs, tmp_path):
    from ui.main_window import MainWindow
    from ui.settings import AppSettings, open_settings

    runs_dir, made = runs
    window = MainWindow(AppSettings(open_settings(tmp_path / "settings.ini")),
                        runs_dir=runs_dir, load_dataset=False)
    qtbot.addWidget(window)
    assert window.inspect_action.text() == "&Inspect…"
    window.inspect_action.trigger()
    inspector = window.inspect_windows["window"]
    assert inspector.isVisible()
    panel = inspector.panel
    qtbot.waitUntil(lambda: _settled(panel), timeout=WAIT_MS)
    assert panel.views[0].explanation is not None
    window.close()
    assert not inspector.isVisible() and not panel.job.is_running()
    window.shutdown(30_000)


def test_the_panel_runs_alone(runs):
    runs_dir, made = runs
    done = subprocess.run(
        [sys.executable, "-m", "ui.inspect_panel", "--runs-dir", str(runs_dir), "--run",
         made["lstm"], "--smoke"],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert done.returncode == 0, done.stderr[-2000:]


def test_unit_order_helpers():
    values = np.array([[0.0, 0.1, 0.2], [1.0, -1.0, 1.0], [0.5, 0.5, 0.5]])
    assert list(unit_order(values, "as stored")) == [0, 1, 2]
    assert list(unit_order(values, "variance")) == [1, 0, 2]
    assert list(unit_order(values, "mean activation")) == [2, 1, 0]
    assert list(units_on(values, 0, 2, 0.4)) == [2]
    assert correlation_with(values, 0)[2] == 0.0  # a constant unit


def test_a_newer_checkpoint_is_loaded_for_the_next_request(runs):
    """A run training now writes new checkpoints: the job's cache reloads on a change."""
    from ui.inspect_panel import ModelCache
    from workbench.runs import open_run

    runs_dir, made = runs
    cache = ModelCache(runs_dir)
    first = cache.get(made["gru"], "latest")
    assert cache.get(made["gru"], "latest") is first
    path = open_run(made["gru"], runs_dir).checkpoint_path("latest")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # rewritten since
    assert not first.is_current()
    assert cache.get(made["gru"], "latest") is not first
    cache.close()
