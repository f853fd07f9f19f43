"""The Attention panel: one probe sample's alignment matrix, as a user sees it, alone (on
demo events and a real run's) and in the window (a real tiny attention run, replayed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from tests.workbench.train_helpers import VOCAB, record_run, tiny_config, write_reverse  # noqa: E402
from ui.plots.attention_plot import NO_ATTENTION_NOTICE, AttentionPlot  # noqa: E402
from ui.plots.demo import demo_attention_events  # noqa: E402
from workbench.events import ProbeEvent  # noqa: E402
from workbench.runs import list_runs, open_run  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
LENGTH = 8


def _probes(events) -> list[ProbeEvent]:
    return [e for e in events if isinstance(e, ProbeEvent)]


@pytest.fixture
def panel(qtbot):
    widget = AttentionPlot()
    qtbot.addWidget(widget)
    return widget


@pytest.fixture(scope="module")
def attention_run(tmp_path_factory):
    """A finished Bahdanau run (reverse, T = 5, 2 probe samples) in its runs folder."""
    root = tmp_path_factory.mktemp("attention")
    data = write_reverse(root / "reverse.h5")
    config = tiny_config(data, cell="lstm", attention="bahdanau", steps=9, probe_every=3)
    return root / "runs", record_run(config, root / "runs"), data


def test_the_matrix_of_a_probe_sample_is_drawn_with_its_tokens(panel):
    events = demo_attention_events(steps=600, probe_every=100, length=LENGTH)
    panel.add_events(events)
    panel.redraw_now()
    last = _probes(events)[-1]
    assert panel.stack.currentWidget() is panel.plot_widget and panel.probe_count == 7
    # output steps x input steps, the target's end token included
    np.testing.assert_array_equal(panel.matrix(), last.attention_weights[0, :LENGTH + 1])
    np.testing.assert_array_equal(panel.image.image, last.attention_weights[0, :LENGTH + 1])
    inputs, outputs = panel.tick_labels()
    assert inputs == list(last.sample_source_tokens[0])
    assert outputs == list(last.sample_target_tokens[0])
    assert outputs[-1] == "</s>" and outputs[:-1] == inputs[::-1]  # a reverse task
    assert "sample 1" in panel.plot_item.titleLabel.text and "step 600" in panel.plot_item.titleLabel.text


def test_the_sample_chooser_crops_a_short_sample_and_the_slider_goes_back(panel):
    events = demo_attention_events(steps=600, probe_every=100, length=LENGTH)
    probes = _probes(events)
    panel.add_events(events)
    panel.set_sample(2)  # the demo's last sample is two steps shorter (padded)
    assert panel.matrix().shape == (LENGTH - 1, LENGTH - 2)
    np.testing.assert_array_equal(panel.matrix(), probes[-1].attention_weights[2, :7, :6])
    assert len(panel.tick_labels()[0]) == LENGTH - 2
    panel.show_probe(0)  # scrub back: the alignment before training was spread out
    np.testing.assert_array_equal(panel.matrix(), probes[0].attention_weights[2, :7, :6])
    assert panel.matrix().max() < 0.5 < np.asarray(
        [probes[-1].attention_weights[2, t, 5 - t] for t in range(6)]).min()
    assert "probe 1 of 7" in panel.probe_label.text()
    # the readout names both steps' tokens and the weight
    text = panel.describe_cell(1, 1)
    tokens = probes[0].sample_source_tokens[2]
    assert f"input 1 ({str(tokens[0])!r})" in text and f"{panel.matrix()[0, 0]:.3f}" in text


def test_a_run_without_attention_says_there_is_none(panel):
    panel.add_events(demo_attention_events("none", steps=300, probe_every=100))
    panel.redraw_now()
    assert not panel.has_attention
    assert panel.stack.currentWidget() is panel.notice
    assert panel.notice.text() == NO_ATTENTION_NOTICE and "no attention" in panel.notice.text()
    panel.clear()  # a new run with attention shows its matrix again
    panel.add_events(demo_attention_events(steps=300, probe_every=100))
    panel.redraw_now()
    assert panel.has_attention and panel.stack.currentWidget() is panel.plot_widget


def test_export_writes_png_and_svg(panel, tmp_path):
    panel.add_events(demo_attention_events(steps=300, probe_every=100))
    panel.export(tmp_path / "attention.png")
    panel.export(tmp_path / "attention.svg")
    assert (tmp_path / "attention.png").read_bytes()[:4] == b"\x89PNG"
    assert "attention weight" in (tmp_path / "attention.svg").read_text()


def test_the_panel_runs_alone():
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    child = subprocess.run([sys.executable, "-m", "ui.plots.attention_plot", "--smoke"],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert child.returncode == 0, child.stdout + child.stderr
    assert "Traceback" not in child.stdout + child.stderr


def test_a_real_runs_probes_replay_into_the_panel(panel, attention_run):
    _, run_dir, _ = attention_run
    run = open_run(run_dir)
    panel.add_events(list(run.events()))
    panel.redraw_now()
    last = run.last_probe()
    assert last.attention_weights.shape == (2, 6, 5)
    np.testing.assert_array_equal(panel.matrix(), last.attention_weights[0])
    inputs, outputs = panel.tick_labels()
    assert all(t in VOCAB for t in inputs + outputs) and outputs[-1] == "</s>"
    assert "Bahdanau" in panel.plot_item.titleLabel.text


def test_the_window_has_the_panel_and_replays_an_attention_run_into_it(qtbot, tmp_path,
                                                                       attention_run):
    from ui.main_window import MainWindow
    from ui.settings import AppSettings, open_settings

    runs_dir, run_dir, data = attention_run
    window = MainWindow(AppSettings(open_settings(tmp_path / "settings.ini")),
                        runs_dir=runs_dir, load_dataset=False)
    qtbot.addWidget(window)
    try:
        assert window.attention_plot in window.plots
        assert window.docks.attention.widget() is window.attention_plot
        assert window.docks.attention in window.docks.plots
        assert window.replay_run(run_dir.name)
        window.attention_plot.redraw_now()
        last = open_run(run_dir).last_probe()
        np.testing.assert_array_equal(window.attention_plot.matrix(), last.attention_weights[0])
        assert window.attention_plot.probe_count == 3
        # the Model panel offers attention, says what each kind does and counts its weights
        assert window.open_dataset(data)
        panel = window.model_panel
        panel.set_values({"cell": "gru", "hidden": 8, "attention": "none"})
        plain = int(panel.parameters.text().replace(",", ""))
        assert "only through the encoder's final state" in panel.attention_description.text()
        panel.attention.setCurrentIndex(panel.attention.findData("luong-general"))
        assert int(panel.parameters.text().replace(",", "")) == plain + 3 * 8 * 8  # W, W_c
        assert "tanh(W_c" in panel.attention_description.text()
        assert panel.values()["attention"] == "luong-general"
        assert panel.run_config(str(data)).attention == "luong-general"
        # live: a run trained from the window reaches the panel through the same feed
        panel.set_values({"cell": "gru", "hidden": 8, "batch_size": 16, "epochs": 1,
                          "attention": "bahdanau"})
        window.train()
        qtbot.waitUntil(lambda: not window.session.is_running(), timeout=60_000)
        window.feed.bring_up_to_date()
        (new,) = [r for r in list_runs(runs_dir) if r.run_id != run_dir.name]
        live = open_run(new.run_id, runs_dir)
        assert live.config().attention == "bahdanau" and live.status == "completed"
        assert window.attention_plot.probe_count == len(live.probe_files())
        np.testing.assert_array_equal(window.attention_plot.matrix(),
                                      live.last_probe().attention_weights[0])
        assert "Bahdanau" in window.attention_plot.plot_item.titleLabel.text
    finally:
        window.shutdown(30_000)
        window.predictions.close()
