"""What the plot panels share besides their looks (those are in style.py).

- ``RunHeader``: a run's id, cell and how it ended, taken from RunStarted and
  RunFinished; each panel's run data extends it.
- ``ProbeFrames``: the part of a panel that keeps one frame per probe and scrubs
  them with a slider that follows new probes at its right end (gates, trajectory).
- ``LayerCombo``: the layer selector ("layer 1 (bottom)" ... "layer n (top)").
- ``Overlays`` and ``NoOverlays``: the overlay half of the panels' common API.
- ``control_bar``, ``panel_layout``, ``boundary_line``, ``time_step_axis``: the
  pieces every panel builds the same way.

A panel is a QWidget; the mixins here are plain classes placed before QWidget in
its bases and expect the attributes their docstrings name.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from ui.plots import notes, style
from workbench import units
from workbench.events import RunFinished, RunStarted

READOUT_SPACING = 12  # between a panel's controls and its read-out


@dataclass(frozen=True)
class DataFacts:
    """What a run's losses are of: its dataset (a name a user recognises) and units."""

    dataset: str
    kind: str  # "tokens" or "continuous"

    @property
    def units(self) -> str:
        """The loss's units, as the axis says them ("MSE, normalised", "cross-entropy, …")."""
        return units.SHORT[(self.kind, "normalised")]

    @classmethod
    def of_dataset(cls, dataset: dict | None) -> DataFacts:
        """From a RunStarted's dataset summary (DatasetSummary.to_json())."""
        dataset = dataset or {}
        path = dataset.get("path") or ""
        name = Path(str(path)).name if path else str(dataset.get("task") or "unnamed dataset")
        return cls(name, units.target_kind(dataset))


def facts_of(events: Iterable[object]) -> DataFacts | None:
    """The DataFacts of the first RunStarted in `events` (None without one)."""
    for event in events:
        if isinstance(event, RunStarted):
            return DataFacts.of_dataset(event.dataset)
    return None


def loss_axis_label(kind: str) -> str:
    """The loss axis label of a dataset kind ("tokens" or "continuous")."""
    return style.loss_label({"target_kind": kind})


@dataclass
class RunHeader:
    """What a panel shows of a run besides its data: its id, its cell, its dataset and
    how it ended."""

    run_id: str = ""
    cell: str | None = None
    status: str = ""  # "" while running; RunFinished.status after
    facts: DataFacts | None = None

    def take_header(self, event: object) -> bool:
        """Take RunStarted (a new run: id, cell, dataset, no status) or RunFinished (its
        status); True when `event` was one of them."""
        if isinstance(event, RunStarted):
            self.run_id, self.cell, self.status = event.run_id, style.cell_of(event.config), ""
            self.facts = DataFacts.of_dataset(event.dataset)
            return True
        if isinstance(event, RunFinished):
            self.status = event.status
            return True
        return False


# -- layout ----------------------------------------------------------------------------


def control_bar(*items: QtWidgets.QWidget | str | int | tuple[QtWidgets.QWidget, int],
                readout: QtWidgets.QLabel | None = None) -> QtWidgets.QHBoxLayout:
    """A row of controls: a widget, a text (a plain label), an int (that much space)
    or (widget, stretch); then `readout` (the value under the cursor), which takes
    the room that is left."""
    bar = QtWidgets.QHBoxLayout()
    for item in items:
        if isinstance(item, int):
            bar.addSpacing(item)
        elif isinstance(item, str):
            bar.addWidget(QtWidgets.QLabel(item))
        elif isinstance(item, tuple):
            bar.addWidget(*item)
        else:
            bar.addWidget(item)
    if readout is not None:
        bar.addSpacing(READOUT_SPACING)
        bar.addWidget(readout, 1)
    return bar


def panel_layout(panel: QtWidgets.QWidget, controls: QtWidgets.QLayout,
                 body: QtWidgets.QWidget) -> None:
    """Lay a panel out as its controls above its plot (or stack of plots), and give
    it the default size it has when it runs alone."""
    layout = QtWidgets.QVBoxLayout(panel)
    layout.setContentsMargins(4, 4, 4, 4)
    layout.addLayout(controls)
    layout.addWidget(body, 1)
    panel.resize(*style.DEFAULT_PANEL_SIZE)


class StableLabel(QtWidgets.QLabel):
    """A label that asks for the width of `template` whatever its text (so the
    controls beside it do not move as the text changes) and can shrink to a few
    characters in a narrow panel (the text is then cut at the right)."""

    def __init__(self, text: str, template: str) -> None:
        super().__init__(text)
        self._template = template

    def sizeHint(self) -> QtCore.QSize:  # noqa: N802 - Qt's name
        hint = super().sizeHint()
        return QtCore.QSize(self.fontMetrics().horizontalAdvance(self._template) + 8,
                            hint.height())

    def minimumSizeHint(self) -> QtCore.QSize:  # noqa: N802 - Qt's name
        return QtCore.QSize(self.fontMetrics().horizontalAdvance("probe 00"),
                            super().minimumSizeHint().height())


class ShrinkingLabel(QtWidgets.QLabel):
    """A label that asks for its text's width but may be cut to nothing in a narrow
    panel (a read-out beside controls that must not be pushed out)."""

    def minimumSizeHint(self) -> QtCore.QSize:  # noqa: N802 - Qt's name
        return QtCore.QSize(0, super().minimumSizeHint().height())


def compact_combo(combo: QtWidgets.QComboBox, characters: int = 8) -> QtWidgets.QComboBox:
    """Let a combo box shrink to about `characters` characters in a narrow panel (its
    text is then cut); with room it is as wide as its longest entry."""
    combo.setMinimumWidth(combo.fontMetrics().horizontalAdvance("x" * characters) + 28)
    return combo


# -- pieces of plots --------------------------------------------------------------------


def boundary_line(position: float = 0.05, label: str | None = "encoder │ decoder"
                  ) -> pg.InfiniteLine:
    """The dashed vertical line between the last encoder (input) step and the first
    decoder (output) step, with `label` at `position` (0 = bottom, 1 = top of the
    view) kept inside the view; place it with setPos(T_in + 0.5)."""
    options = None
    if label:
        anchor = 1.0 if position < 0.5 else 0.0
        options = {"position": position, "color": style.FOREGROUND,
                   "anchors": [(0.5, anchor), (0.5, anchor)],
                   "fill": pg.mkBrush(255, 255, 255, 200)}
    return pg.InfiniteLine(
        angle=90, movable=False,
        pen=pg.mkPen("#555555", width=1, style=QtCore.Qt.PenStyle.DashLine),
        label=label or None, labelOpts=options)


def time_step_axis(t_in: int, t_out: int) -> str:
    """The time axis label of a probe: "time step (encoder 1–8, decoder 9–13)"."""
    return f"time step (encoder 1–{t_in}, decoder {t_in + 1}–{t_in + t_out})"


class LayerCombo(QtWidgets.QComboBox):
    """Picks a layer of the model: "layer 1 (bottom)" ... "layer n (top)"; disabled
    while the model has one layer."""

    def __init__(self, tooltip: str) -> None:
        super().__init__()
        self.addItem("layer 1", 0)
        self.setEnabled(False)
        self.setToolTip(tooltip)
        compact_combo(self, 5)

    @property
    def layer(self) -> int:
        """The chosen layer, 0 = bottom."""
        data = self.currentData()
        return int(data) if data is not None else 0

    def sync(self, layers: int, preferred: int) -> None:
        """Offer `layers` layers (nothing changes for 0) and pick `preferred` (-1: the
        top), without emitting a change."""
        if layers and self.count() != layers:
            self.blockSignals(True)
            self.clear()
            for i in range(layers):
                where = (" (top)" if i == layers - 1 and layers > 1
                         else (" (bottom)" if i == 0 and layers > 1 else ""))
                self.addItem(f"layer {i + 1}{where}", i)
            self.setCurrentIndex(layers - 1 if preferred < 0 else min(preferred, layers - 1))
            self.blockSignals(False)
        self.setEnabled(self.count() > 1)

    def choose(self, layer: int) -> None:
        """Pick `layer` (0 = bottom, -1 = top; past the top: the top), as a user would."""
        index = self.count() - 1 if layer < 0 else layer
        self.setCurrentIndex(min(index, self.count() - 1))


# -- the panels' common API ---------------------------------------------------------------


class NoOverlays:
    """The overlay methods of the panels' common API for a panel that shows one run
    (its module says why)."""

    def set_overlay(self, key: str, label: str, events: list, color: str | None = None) -> None:
        """No-op: this panel draws one run."""

    def remove_overlay(self, key: str) -> None:
        """No-op (see set_overlay)."""

    def clear_overlays(self) -> None:
        """No-op (see set_overlay)."""


class Overlays:
    """Overlay bookkeeping for a panel that draws other runs over its own, and the
    check that an overlay does not mix what cannot be mixed.

    The panel keeps `_overlays` (key -> an object with a `color`), `_run` (a
    RunHeader), implements `_add_overlay(key, label, events, color)` and
    `_drop_overlay(key)`, and calls `_init_overlay_guard(view_box)` once.

    An overlay whose loss is in other units than the panel's (cross-entropy over MSE)
    is refused: it is not drawn, and a warning in the plot names it. One of another
    dataset in the same units is drawn, and the warning says which datasets are mixed.
    The panel's units are its own run's, else the first overlay's; with neither, the
    open dataset's (`set_open_dataset`: what the axis says before anything is drawn).
    When they change, every overlay is checked again and `_units_changed(facts)` is
    called."""

    _overlays: dict[str, Any]
    _run: RunHeader

    def _init_overlay_guard(self, view_box: Any) -> None:
        self._overlay_sources: dict[str, tuple[str, list, str | None, DataFacts | None]] = {}
        self.refused_overlays: dict[str, str] = {}  # key -> why it is not drawn
        self._open_facts: DataFacts | None = None
        self.mix_note = notes.warning_note(view_box)
        legend = getattr(self, "legend", None)
        if legend is not None and hasattr(legend, "reserve_top"):
            # a corner legend keeps below the warning
            legend.reserve_top = lambda: (self.mix_note.rect().height() + 4
                                          if self.mix_note.isVisible() else 0.0)

    # -- the panels' API -------------------------------------------------------------
    def set_overlay(self, key: str, label: str, events: list, color: str | None = None) -> None:
        """Overlay another run (its events) under `key`, in `color` (a free run colour
        when None), with `label` in the legend; replaces that key's overlay. Refused,
        with a warning in the plot, when its loss is in other units."""
        self._overlay_sources[key] = (label, events, color, facts_of(events))
        self._place_overlay(key)
        self._update_mix_note()

    def remove_overlay(self, key: str) -> None:
        """Take the overlay `key` (and its legend entry) off; unknown keys are ignored."""
        self._overlay_sources.pop(key, None)
        self.refused_overlays.pop(key, None)
        self._drop_overlay(key)
        self._update_mix_note()

    def clear_overlays(self) -> None:
        """Remove every overlaid run."""
        for key in list(self._overlay_sources):
            self.remove_overlay(key)

    def overlay_keys(self) -> list[str]:
        """Every overlay asked for, drawn or refused."""
        return list(self._overlay_sources)

    @property
    def mix_warning(self) -> str:
        """The warning the plot shows about its overlays ("" when none)."""
        return self.mix_note.text

    # -- checks ----------------------------------------------------------------------
    def _reference_facts(self, excluding: str | None = None) -> DataFacts | None:
        """What the overlays are checked against: the own run's data, else the first
        drawn overlay's (not `excluding`)."""
        if self._run.run_id and self._run.facts is not None:
            return self._run.facts
        for key, (_label, _events, _color, facts) in self._overlay_sources.items():
            if key != excluding and facts is not None and key not in self.refused_overlays:
                return facts
        return None

    @property
    def shown_facts(self) -> DataFacts | None:
        """The data the panel's axes are about: the reference, else the open dataset."""
        return self._reference_facts() or self._open_facts

    def _units_changed(self, facts: DataFacts | None) -> None:
        """The panel's data may now be another kind (panels relabel their axes here)."""

    def _place_overlay(self, key: str) -> None:
        label, events, color, facts = self._overlay_sources[key]
        reference = self._reference_facts(excluding=key)
        self.refused_overlays.pop(key, None)
        if reference is not None and facts is not None and facts.units != reference.units:
            self._drop_overlay(key)
            self.refused_overlays[key] = (
                f"Not overlaid: {label} ({facts.dataset}): its loss is {facts.units}, "
                f"this plot's is {reference.units}.")
            return
        self._add_overlay(key, label, events, color)

    def _recheck_overlays(self) -> None:
        """The panel's units may have changed (a new run, another dataset): check every
        overlay again."""
        for key in list(self._overlay_sources):
            self._place_overlay(key)
        self._update_mix_note()

    def _update_mix_note(self) -> None:
        lines = list(self.refused_overlays.values())
        reference = self._reference_facts()
        if reference is not None:
            others = {}
            for key, (label, _events, _color, facts) in self._overlay_sources.items():
                if (key not in self.refused_overlays and facts is not None
                        and facts.dataset != reference.dataset):
                    others.setdefault(facts.dataset, []).append(label)
            if others:
                whose = "this run" if self._run.run_id else "the first overlay"
                mixed = "; ".join(f"{name} ({', '.join(labels)})" for name, labels in others.items())
                lines.insert(0, f"⚠ Overlays mix datasets: {reference.dataset} ({whose}); {mixed}.")
        self.mix_note.show_text("\n".join(lines))
        legend = getattr(self, "legend", None)
        if legend is not None and hasattr(legend, "relayout_soon"):
            legend.relayout_soon()
        self._units_changed(self.shown_facts)

    def set_open_dataset(self, facts: DataFacts | None) -> None:
        """The dataset that is open: the panel's units while it shows no run."""
        self._open_facts = facts
        self._recheck_overlays()

    def _claim_overlay(self, key: str, color: str | None, own_cell: str | None) -> str:
        """Make room for the overlay `key` (an old one of that key goes) and return its
        colour: `color`, or the first run colour no other overlay and not the panel's
        own run (its cell's colour) uses."""
        if key in self._overlays:
            self._drop_overlay(key)
        if color is not None:
            return color
        used = [o.color for o in self._overlays.values()]
        return style.next_run_color([*used, style.cell_color(own_cell)])


class ProbeFrames:
    """One frame per probe, scrubbed with a slider that follows new probes while it
    is at its right end. The panel provides `_frames` (a list), `_take(event) ->
    bool` (True when the event changed anything), `_after_events()` (called after
    events were taken), `throttle` (a style.RedrawThrottle) and the signal
    `probe_shown(int)`; it calls `_build_probe_slider()` to get `slider` and
    `probe_label`."""

    _frames: list[Any]
    slider: QtWidgets.QSlider
    probe_label: QtWidgets.QLabel
    throttle: style.RedrawThrottle

    # -- events -------------------------------------------------------------------
    def add_event(self, event: object) -> None:
        """Take one event (see `add_events`)."""
        self.add_events((event,))

    def add_events(self, events: Iterable[object]) -> None:
        """Take a batch of events, live or replayed; probes add frames, other events name
        the run or end it. The redraw follows at the throttle's next tick (`redraw_now`
        draws at once)."""
        changed = False
        for event in events:
            changed = self._take(event) or changed
        if changed:
            self._after_events()

    def redraw_now(self) -> None:
        """Draw pending data at once instead of at the next timer tick."""
        self.throttle.flush()

    # -- the slider -----------------------------------------------------------------
    @property
    def probe_count(self) -> int:
        return len(self._frames)

    @property
    def current_index(self) -> int:
        return self.slider.value()

    def show_probe(self, index: int) -> None:
        """Show probe `index` (negative counts from the end)."""
        if self._frames:
            self.slider.setValue(index % len(self._frames))

    def _build_probe_slider(self) -> None:
        self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.slider.setRange(0, 0)
        self.slider.setEnabled(False)
        self.slider.setMinimumWidth(40)
        self.slider.setToolTip(
            "Scrub through the probes of the run (at the right end it follows new probes)")
        self.slider.valueChanged.connect(self._on_slider_moved)
        self.probe_label = StableLabel("no probe yet", "probe 00 of 00: step 000,000 (epoch 00)")

    def _follow_probes(self, enabled: bool = True) -> None:
        """Give the slider one position per frame; at its right end it moves to the
        newest. Scrubbing is possible with two frames or more (and `enabled`)."""
        count = len(self._frames)
        following = self.slider.value() >= self.slider.maximum()
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(count - 1, 0))
        if following:
            self.slider.setValue(max(count - 1, 0))
        self.slider.blockSignals(False)
        self.slider.setEnabled(count > 1 and enabled)

    def _on_slider_moved(self, _value: int) -> None:
        self.throttle.dirty = True
        self.redraw_now()  # the user is scrubbing: answer at once, one frame is cheap
        self.probe_shown.emit(self.current_index)

    def _probe_text(self, index: int, step: int, epoch: int) -> str:
        return f"probe {index + 1} of {len(self._frames)}: step {step:,} (epoch {epoch})"
