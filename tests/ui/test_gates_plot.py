"""The gates panel: one curve per gate of an LSTM or a GRU over every time step (mean
activation and saturated fraction), the probe slider and layer selector, and a clear
note instead of empty axes for a vanilla RNN."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from ui.plots.gates_plot import GatesPlot, gate_color, gate_label  # noqa: E402
from workbench.events import ProbeEvent, RunStarted  # noqa: E402

T_IN, T_OUT, LAYERS = 7, 4, 2


def _started(cell: str) -> RunStarted:
    return RunStarted(f"run-{cell}", {"model": {"cell": cell}}, 10, {})


def _probe(step: int, gates: tuple[str, ...], *, layers: int = LAYERS) -> ProbeEvent:
    """A probe whose gate g in layer l has mean activation (l + 1) / 10 + step / 1000 + k / 100."""
    t = T_IN + T_OUT
    means, sat = {}, {}
    for k, gate in enumerate(gates):
        base = np.array([(layer + 1) / 10 + step / 1000 + k / 100 for layer in range(layers)])
        means[gate] = np.repeat(base[:, None], t, axis=1) + np.linspace(0, 0.05, t)
        sat[gate] = np.full((layers, t), 0.1 * (k + 1))
    hidden = np.zeros((2, t, 3))
    return ProbeEvent(step, 1, np.ones((layers, T_IN)), np.ones((layers, T_OUT)),
                      hidden[:, :T_IN], hidden[:, T_IN:], gate_means=means, gate_saturation=sat)


@pytest.mark.parametrize(("cell", "gates"), [("lstm", ("i", "f", "o")), ("gru", ("r", "z"))])
def test_one_curve_per_gate_over_every_time_step(qtbot, cell, gates):
    plot = GatesPlot()
    qtbot.addWidget(plot)
    probes = [_probe(s, gates) for s in (100, 200, 300)]
    plot.add_events([_started(cell), *probes])
    plot.redraw_now()
    assert plot.stack.currentWidget() is plot.plot_widget
    assert plot.gates == list(gates)
    assert [label.text for _s, label in plot.legend.items] == [gate_label(g) for g in gates]
    assert "forget gate f" in [label.text for _s, label in plot.legend.items] or cell == "gru"
    latest = probes[-1]
    for gate in gates:
        x, y = plot.mean_curves[gate].getOriginalDataset()
        assert len(x) == T_IN + T_OUT and list(x) == list(range(1, T_IN + T_OUT + 1))
        np.testing.assert_allclose(y, latest.gate_means[gate][LAYERS - 1])  # the top layer
        _, s = plot.saturation_curves[gate].getOriginalDataset()
        np.testing.assert_allclose(s, latest.gate_saturation[gate][LAYERS - 1])
        assert plot.mean_curves[gate].opts["pen"].color().name() == gate_color(gate).lower()
    # the encoder | decoder boundary sits between the last input and the first output step
    assert plot.separator.isVisible() and plot.separator.value() == pytest.approx(T_IN + 0.5)
    assert "probe 3 of 3" in plot.probe_label.text()


def test_keep_gates_share_a_colour_and_differ_from_the_others():
    assert gate_color("f") == gate_color("z")
    assert len({gate_color(g) for g in ("i", "f", "o")}) == 3


def test_slider_and_layer_selector_pick_the_probe_and_layer(qtbot):
    plot = GatesPlot()
    qtbot.addWidget(plot)
    probes = [_probe(s, ("i", "f", "o")) for s in (100, 200, 300)]
    plot.add_events([_started("lstm"), *probes])
    plot.redraw_now()
    assert plot.layer_combo.count() == LAYERS and plot.layer_combo.isEnabled()
    plot.slider.setValue(0)
    _, y = plot.mean_curves["f"].getOriginalDataset()
    np.testing.assert_allclose(y, probes[0].gate_means["f"][LAYERS - 1])
    assert "probe 1 of 3" in plot.probe_label.text()
    plot.set_layer(0)
    _, y = plot.mean_curves["f"].getOriginalDataset()
    np.testing.assert_allclose(y, probes[0].gate_means["f"][0])
    # A new probe does not pull the user away from the probe being looked at.
    plot.add_event(_probe(400, ("i", "f", "o")))
    plot.redraw_now()
    plot.redraw_now()
    assert plot.current_index == 0 and plot.probe_count == 4
    text = plot.describe_step(T_IN + 1)
    assert text.startswith("decoder step 1:") and "f 0." in text and "saturated" in text


def test_vanilla_rnn_shows_a_note_not_empty_axes(qtbot, tmp_path):
    plot = GatesPlot()
    qtbot.addWidget(plot)
    plot.add_events([_started("rnn-tanh"), _probe(100, ())])
    plot.redraw_now()
    assert not plot.has_gates
    assert plot.stack.currentWidget() is plot.notice
    assert plot.notice.text().startswith("Vanilla RNNs have no gates")
    assert "rnn-tanh" in plot.notice.text()
    assert plot.gates == []
    plot.export(tmp_path / "gates.svg")  # the note is the picture's title
    assert "no gates" in (tmp_path / "gates.svg").read_text()
    # the next run is an LSTM: the plots come back
    plot.clear()
    plot.add_events([_started("lstm"), _probe(100, ("i", "f", "o"))])
    plot.redraw_now()
    assert plot.stack.currentWidget() is plot.plot_widget and plot.gates == ["i", "f", "o"]


def test_real_probe_of_a_tiny_lstm_is_drawn(qtbot):
    """The gate names and shapes models.probes produces are the ones the panel draws."""
    torch = pytest.importorskip("torch")
    from models.probes import SATURATION_HIGH, SATURATION_LOW, probe
    from models.seq2seq import Seq2Seq, Seq2SeqConfig, SideConfig
    from ui.plots import gates_plot

    assert (gates_plot.SATURATION_LOW, gates_plot.SATURATION_HIGH) == (SATURATION_LOW, SATURATION_HIGH)
    side = SideConfig("continuous", features=2)
    torch.manual_seed(0)
    model = Seq2Seq(Seq2SeqConfig(cell="lstm", hidden=5, layers=1, source=side, target=side))
    result = probe(model, torch.randn(3, T_IN, 2), torch.randn(3, T_OUT, 2), sample_count=2)
    event = ProbeEvent(50, 1, **{f.name: getattr(result, f.name)
                                 for f in dataclasses.fields(result)})
    plot = GatesPlot()
    qtbot.addWidget(plot)
    plot.add_events([_started("lstm"), event])
    plot.redraw_now()
    assert plot.gates == ["i", "f", "o"]
    x, y = plot.mean_curves["f"].getOriginalDataset()
    assert len(x) == T_IN + T_OUT and np.all((y > 0) & (y < 1))
    assert not plot.layer_combo.isEnabled()  # one layer: nothing to choose


def test_export_png(qtbot, tmp_path):
    plot = GatesPlot()
    qtbot.addWidget(plot)
    plot.add_events([_started("gru"), _probe(100, ("r", "z"))])
    plot.redraw_now()
    plot.export(tmp_path / "gates.png")
    png = (tmp_path / "gates.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000


def test_a_wide_short_panel_puts_the_plots_side_by_side(qtbot):
    plot = GatesPlot()
    qtbot.addWidget(plot)
    plot.add_events([_started("lstm"), _probe(100, ("i", "f", "o"))])
    plot.redraw_now()
    plot.show()
    plot.resize(1200, 300)  # a dock under the loss plot
    qtbot.waitUntil(lambda: plot.side_by_side, timeout=2000)
    assert plot.mean_item.getAxis("bottom").isVisible()
    plot.resize(700, 700)
    qtbot.waitUntil(lambda: not plot.side_by_side, timeout=2000)
    assert not plot.mean_item.getAxis("bottom").isVisible()  # one shared time axis, below
