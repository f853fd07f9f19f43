"""What the plots say is true and readable: decades labelled one way, empty plots that
say what will appear (no fake axes), legends that fit, labels that follow the dataset,
overlays that refuse to mix units and say so, and the gradient panel's read-outs."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from ui.plots import axes, notes
from ui.plots.attention_plot import AttentionPlot
from ui.plots.demo import demo_events
from ui.plots.gates_plot import GatesPlot
from ui.plots.grad_norm_plot import GradNormPlot
from ui.plots.gradient_plot import GradientPlot
from ui.plots.loss_plot import LossPlot
from ui.plots.trajectory_plot import TrajectoryPlot
from workbench.compare import encoder_spectral_radius, vanishing_ratio
from workbench.events import ProbeEvent, RunStarted, StepMetrics

DECADE = re.compile(r"^(1|10|10⁻?[⁰¹²³⁴⁵⁶⁷⁸⁹]+)$")


def shown(qtbot, panel, size=(700, 460)):
    qtbot.addWidget(panel)
    panel.resize(*size)
    panel.show()
    qtbot.waitExposed(panel)
    return panel


def with_dataset(events, **dataset):
    """`events` with their RunStarted's dataset summary replaced by `dataset`."""
    return [dataclasses.replace(e, dataset=dataset) if isinstance(e, RunStarted) else e
            for e in events]


def legend_texts(panel) -> list[str]:
    return [label.text for _sample, label in panel.legend.items]


def steps(losses, run_id="r"):
    start = demo_events("gru", steps=2, steps_per_epoch=2, probe_every=2, run_id=run_id)[0]
    return [start] + [StepMetrics(step=i + 1, epoch=1, loss=float(v), grad_norm=float(v),
                                  learning_rate=0.01, teacher_forcing=1.0,
                                  sequences_per_second=1.0, seconds=0.0)
                      for i, v in enumerate(losses)]


# -- log axes ---------------------------------------------------------------------------


@pytest.mark.parametrize("panel_type", [LossPlot, GradNormPlot])
def test_every_decade_of_a_log_axis_is_labelled_the_same_way(qtbot, panel_type):
    panel = shown(qtbot, panel_type())
    panel.add_events(steps(np.logspace(0, -6, 200)))
    if isinstance(panel, LossPlot):
        panel.set_log_y(True)
    panel.redraw_now()
    qtbot.wait(50)
    axis = panel.plot_item.getAxis("left")
    assert axes.is_log_axis(axis)
    labels = axes.shown_tick_labels(axis)
    assert len(labels) >= 3
    assert all(DECADE.match(text) for text in labels), labels
    assert "10⁻⁶" in labels or "10⁻⁴" in labels


def test_the_gradient_plots_log_axis_writes_tiny_values_as_powers_of_ten(qtbot):
    panel = shown(qtbot, GradientPlot())
    panel.add_events(demo_events("rnn-tanh", steps=300, steps_per_epoch=100, probe_every=100))
    panel.redraw_now()
    qtbot.wait(50)
    labels = axes.shown_tick_labels(panel.plot_item.getAxis("left"))
    assert labels and all(DECADE.match(text) for text in labels), labels
    assert not any("e-" in text or "0.0" in text for text in labels)


def test_a_short_log_axis_labels_its_values_as_multiples_of_a_power_of_ten():
    ticks = axes.log_ticks(np.log10(3e-3), np.log10(6e-3), 200)
    assert [axes.log_tick_text(v) for v in ticks[0][1]] == ["3×10⁻³", "4×10⁻³", "5×10⁻³", "6×10⁻³"]
    assert axes.decade_text(-6) == "10⁻⁶" and axes.decade_text(0) == "1"


# -- empty plots --------------------------------------------------------------------------


@pytest.mark.parametrize("panel_type, words", [
    (LossPlot, "loss appears here"), (GradientPlot, "gradient at every time step"),
    (GradNormPlot, "gradient norm"), (TrajectoryPlot, "hidden state"),
    (GatesPlot, "gate"), (AttentionPlot, "output step looks in the input")])
def test_an_empty_plot_says_what_will_appear_and_shows_no_axes(qtbot, panel_type, words):
    panel = shown(qtbot, panel_type())
    items = [panel.mean_item] if isinstance(panel, GatesPlot) else [panel.plot_item]
    assert words in panel.empty.note.text
    assert panel.empty.note.isVisible()
    for item in items:
        assert not notes.axis_drawn(item.getAxis("left"))
        assert not notes.axis_drawn(item.getAxis("bottom"))
    cell = "lstm" if panel_type in (GatesPlot, AttentionPlot) else "gru"
    if panel_type is AttentionPlot:
        from ui.plots.demo import demo_attention_events

        panel.add_events(demo_attention_events())
    elif panel_type is GatesPlot:
        from ui.plots.gates_plot import demo_gates

        panel.add_events([demo_gates(e, "lstm", 0.5) if isinstance(e, ProbeEvent) else e
                          for e in demo_events(cell, steps=40, steps_per_epoch=20,
                                               probe_every=20)])
    else:
        panel.add_events(demo_events(cell, steps=40, steps_per_epoch=20, probe_every=20))
    panel.redraw_now()
    assert panel.empty.note.text == ""
    assert notes.axis_drawn(items[0].getAxis("left"))


# -- legends ----------------------------------------------------------------------------


def overlay_events(i, n=60):
    events = demo_events("gru", steps=n, steps_per_epoch=20, probe_every=20, seed=i,
                         run_id=f"run-{i}")
    return events


def test_a_legend_never_overflows_its_plot_and_says_what_it_leaves_out(qtbot):
    panel = shown(qtbot, LossPlot(), size=(420, 300))
    panel.add_events(demo_events("lstm", steps=60, steps_per_epoch=20, probe_every=20))
    for i in range(5):
        panel.set_overlay(f"k{i}", f"overlaid run number {i}", overlay_events(i))
    panel.redraw_now()
    qtbot.wait(50)
    legend, vb = panel.legend, panel.plot_item.getViewBox()
    assert legend.more_text.startswith("+")
    hidden = len(legend.items) - len(legend.shown_names)
    assert legend.more_text == f"+{hidden} more"
    assert set(legend.hidden_names) | set(legend.shown_names) == set(legend_texts(panel))
    inside = vb.sceneBoundingRect()
    assert inside.contains(legend.sceneBoundingRect())
    # overlaid runs come before baselines when not all fit
    assert not any(name.startswith("baseline") for name in legend.shown_names)
    panel.resize(1600, 1000)
    qtbot.wait(100)
    assert len(legend.shown_names) > len(legend.items) - hidden  # more room, more entries


def test_a_corner_legend_moves_off_the_data(qtbot):
    from ui.plots import legend as legends

    panel = shown(qtbot, GradNormPlot(), size=(600, 400))
    # high on the right: the top-right corner (where the legend starts) holds data
    panel.add_events(steps(np.linspace(0.01, 1.0, 300)))
    panel.redraw_now()
    qtbot.wait(50)
    vb = panel.plot_item.getViewBox()
    size = panel.legend.boundingRect().size()
    counts = {c: legends.covered(panel.plot_item, legends._corner_rect(vb, size, c))
              for c in legends.CORNERS}
    assert counts["top-right"] > 0
    assert panel.legend.corner != "top-right"
    assert counts[panel.legend.corner] == min(counts.values())


# -- labels follow the dataset, overlays say what they mix --------------------------------


def test_the_loss_axis_follows_the_open_dataset_while_no_run_is_shown(qtbot):
    panel = shown(qtbot, LossPlot())
    assert "MSE" in panel.loss_axis_label
    panel.set_dataset("tokens", "copy.h5")
    assert "cross-entropy" in panel.loss_axis_label and "MSE" not in panel.loss_axis_label
    panel.add_events(demo_events("gru", steps=40, steps_per_epoch=20, probe_every=20))
    assert "MSE" in panel.loss_axis_label  # the run shown is what the axis is about


def test_an_overlay_in_other_units_is_refused_with_a_warning_in_the_plot(qtbot):
    panel = shown(qtbot, LossPlot())
    panel.add_events(with_dataset(demo_events("gru", steps=40, steps_per_epoch=20,
                                              probe_every=20),
                                  path="/data/sine.h5", target_kind="continuous"))
    tokens = with_dataset(overlay_events(1), path="/data/copy.h5", target_kind="tokens")
    panel.set_overlay("copy-run", "lstm h64 copy", tokens, "#E69F00")
    panel.redraw_now()
    assert panel.mix_note.isVisible()
    assert "Not overlaid: lstm h64 copy (copy.h5)" in panel.mix_warning
    assert "cross-entropy" in panel.mix_warning and "MSE" in panel.mix_warning
    assert "lstm h64 copy" not in legend_texts(panel)
    assert panel.overlay_keys() == ["copy-run"]  # still ticked: unticking removes the warning
    panel.remove_overlay("copy-run")
    assert panel.mix_warning == ""


def test_an_overlay_of_another_dataset_in_the_same_units_is_drawn_and_named(qtbot):
    panel = shown(qtbot, GradientPlot())
    panel.add_events(with_dataset(demo_events("gru", steps=40, steps_per_epoch=20,
                                              probe_every=20),
                                  path="/data/sine.h5", target_kind="continuous"))
    other = with_dataset(overlay_events(2), path="/data/waves.h5", target_kind="continuous")
    panel.set_overlay("w", "gru on waves", other, "#56B4E9")
    assert "mix datasets" in panel.mix_warning
    assert "sine.h5" in panel.mix_warning and "waves.h5 (gru on waves)" in panel.mix_warning
    assert "gru on waves" in legend_texts(panel)


def test_a_new_run_of_other_units_rechecks_the_overlays(qtbot):
    panel = shown(qtbot, LossPlot())
    sine = with_dataset(overlay_events(3), path="/data/sine.h5", target_kind="continuous")
    panel.set_overlay("s", "sine run", sine, "#E69F00")
    assert panel.mix_warning == "" and "sine run" in legend_texts(panel)
    panel.clear()
    panel.add_events(with_dataset(demo_events("gru", steps=20, steps_per_epoch=10,
                                              probe_every=10),
                                  path="/data/copy.h5", target_kind="tokens"))
    assert "Not overlaid: sine run" in panel.mix_warning
    assert "sine run" not in legend_texts(panel)


# -- read-outs ------------------------------------------------------------------------------


def test_the_gradient_panel_reads_out_the_latest_ratio_and_spectral_radius(qtbot):
    panel = shown(qtbot, GradientPlot())
    assert panel.readouts == ("", "")
    events = demo_events("rnn-tanh", steps=300, steps_per_epoch=100, probe_every=100)
    probes = [e for e in events if isinstance(e, ProbeEvent)]
    last = dataclasses.replace(probes[-1], spectral_radius={"encoder.layer0": 0.8,
                                                            "encoder.layer1": 1.25,
                                                            "decoder.layer1": 3.0})
    events[events.index(probes[-1])] = last
    panel.add_events(events)
    panel.redraw_now()
    ratio, radius = panel.readouts
    assert ratio == f"G₁/G_T {axes.number_text(vanishing_ratio(last))}"
    assert "×10⁻" in ratio  # a vanishing gradient, as a power of ten
    assert radius == "ρ(W_hh) 1.25" == f"ρ(W_hh) {axes.number_text(encoder_spectral_radius(last), 3)}"
