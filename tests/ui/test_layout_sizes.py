"""The default layout at the three screen sizes a classroom meets (1280 x 720,
1366 x 768, 1920 x 1080): after a tiny run, with each plot panel brought to the
front in turn, every plot that is on screen has a data area (ViewBox) of at least
160 x 120 px, no two axis labels overlap, and no label runs past its axis or its
plot. Also: the window's minimum fits 1280 x 720, Focus Plots (F11) gives the plots
the window and gives it back, and Reset Layout returns to the default.

Runs alone: `pytest tests/ui/test_layout_sizes.py` (the offscreen screen is only
800 x 800, so each size is set with resize())."""

from __future__ import annotations

import pyqtgraph as pg
import pytest
from PySide6.QtCore import QRectF
from PySide6.QtWidgets import QWidget

from ui import errors
from ui.main_window import MainWindow
from ui.settings import AppSettings, open_settings
from workbench.tasks import generate

SIZES = ((1280, 720), (1366, 768), (1920, 1080))
LEAST_VIEWBOX = (160, 120)
SLACK = 2  # px: rounding between scene and widget coordinates


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "tiny.h5"
    generate("sine", path, n=64, seed=1, input_steps=12, target_steps=4)
    return path


@pytest.fixture
def quiet(monkeypatch):
    shown: list[tuple[str, str]] = []
    monkeypatch.setattr(errors, "show_message",
                        lambda parent, title, text, **kw: shown.append((title, text)))
    return shown


def build(qtbot, tmp_path, size, data):
    window = MainWindow(AppSettings(open_settings(tmp_path / "settings.ini")),
                        runs_dir=tmp_path / "runs", load_dataset=False)
    qtbot.addWidget(window)
    window.resize(*size)
    window.show()
    qtbot.waitExposed(window)
    window.reset_layout()  # the default layout, for this size
    qtbot.wait(200)  # (it settles in the next turns of the event loop)
    assert window.open_dataset(data)
    return window


def train_tiny(qtbot, window):
    window.model_panel.set_values({"cell": "lstm", "hidden": 8, "batch_size": 16, "epochs": 2})
    window.train()
    qtbot.waitUntil(lambda: not window.session.is_running(), timeout=60_000)


def in_window(window: QWidget, view: pg.GraphicsView, scene_rect: QRectF) -> QRectF:
    """A scene rectangle of `view` in the window's coordinates."""
    rect = view.mapFromScene(scene_rect).boundingRect()  # in the view's viewport
    return QRectF(rect.translated(view.viewport().mapTo(window, rect.topLeft()) - rect.topLeft()))


def on_screen(dock) -> bool:
    return dock.isVisible() and not dock.visibleRegion().isEmpty()


def shown_plots(window):
    """(dock name, view, PlotItem) of every plot drawn on screen now (not a colour bar)."""
    for dock in window.docks.plots:
        if not on_screen(dock):
            continue
        for view in dock.widget().findChildren(pg.GraphicsView):
            if not view.isVisible() or view.viewport().visibleRegion().isEmpty():
                continue
            for item in view.scene().items():
                if (isinstance(item, pg.PlotItem) and not isinstance(item, pg.ColorBarItem)
                        and item.isVisible()):
                    yield dock.objectName(), view, item


def check_shown(window, where: str) -> int:
    """Assert the rules on every plot on screen; the number of plots checked."""
    labels: list[tuple[str, QRectF]] = []
    count = 0
    for name, view, item in shown_plots(window):
        count += 1
        box = in_window(window, view, item.getViewBox().sceneBoundingRect())
        assert box.width() >= LEAST_VIEWBOX[0] and box.height() >= LEAST_VIEWBOX[1], \
            f"{where}: {name}'s data area is {box.width():.0f} x {box.height():.0f} px"
        port = view.viewport()
        view_rect = QRectF(port.rect().translated(port.mapTo(window, port.rect().topLeft())))
        title = item.titleLabel
        if title.isVisible() and title.text:  # a title is wrapped, never cut at the sides
            text = title.item
            margin = text.document().documentMargin()
            rect = in_window(window, view, text.mapRectToScene(
                text.boundingRect().adjusted(margin, margin, -margin, -margin)))
            plot = in_window(window, view, item.sceneBoundingRect())
            assert plot.adjusted(-SLACK, -SLACK, SLACK, SLACK).contains(rect), \
                f"{where}: {name}'s title {title.text!r} is cut"
        for side in ("left", "bottom", "right", "top"):
            axis = item.getAxis(side)
            if not (axis.isVisible() and axis.label.isVisible() and axis.labelText):
                continue
            # the text itself: the label's box less its document's margin
            margin = axis.label.document().documentMargin()
            label = in_window(window, view, axis.label.mapRectToScene(
                axis.label.boundingRect().adjusted(margin, margin, -margin, -margin)))
            extent = in_window(window, view, axis.parentItem().mapRectToScene(axis.geometry()))
            text = f"{where}: {name}'s {side} label {axis.labelText!r}"
            assert view_rect.adjusted(-SLACK, -SLACK, SLACK, SLACK).contains(label), \
                f"{text} is cut by its plot's edge"
            if side in ("left", "right"):
                assert label.height() <= extent.height() + SLACK, f"{text} runs past its axis"
            else:
                assert label.width() <= extent.width() + SLACK, f"{text} runs past its axis"
            labels.append((text, label))
    for i, (a, ra) in enumerate(labels):
        for b, rb in labels[i + 1:]:
            overlap = ra.intersected(rb)
            assert overlap.width() <= SLACK or overlap.height() <= SLACK, f"{a} overlaps {b}"
    return count


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_every_plot_is_usable_at_the_size(qtbot, tmp_path, tiny_data, quiet, size):
    window = build(qtbot, tmp_path, size, tiny_data)
    train_tiny(qtbot, window)
    assert (window.width(), window.height()) == size  # the layout did not grow it
    checked = set()
    for dock in window.docks.plots:
        dock.raise_()  # each tab in turn (a tabbed-away dock is not on screen)
        qtbot.waitUntil(lambda d=dock: on_screen(d), timeout=2000)
        window.feed.bring_up_to_date()
        qtbot.wait(30)
        assert check_shown(window, f"{size[0]}x{size[1]} with {dock.objectName()} in front")
        checked |= {name for name, _view, _item in shown_plots(window)}
    # every panel that draws a plot for an LSTM run without attention was measured
    assert checked >= {"lossDock", "gradientDock", "trajectoryDock", "gatesDock",
                       "predictionsDock", "gradNormDock"}
    assert quiet == []
    window.shutdown(30_000)


def test_the_window_allows_1280_by_720_in_every_layout(qtbot, tmp_path, tiny_data, quiet):
    window = build(qtbot, tmp_path, (1920, 1080), tiny_data)  # the wide layout
    least = window.minimumSizeHint().expandedTo(window.minimumSize())
    assert least.width() <= 1280 and least.height() <= 720
    window.resize(1280, 720)
    window.reset_layout()  # the laptop layout: the side panels share one column
    qtbot.waitUntil(lambda: (window.width(), window.height()) == (1280, 720), timeout=2000)
    side = {window.dockWidgetArea(d) for d in window.docks.sides}
    assert len(side) == 1 and len(window.tabifiedDockWidgets(window.docks.model)) == 2
    least = window.minimumSizeHint().expandedTo(window.minimumSize())
    assert least.width() <= 1280 and least.height() <= 720


def test_focus_plots_gives_the_plots_the_window_and_gives_it_back(qtbot, tmp_path, tiny_data,
                                                                   quiet):
    window = build(qtbot, tmp_path, (1366, 768), tiny_data)
    loss_before = window.docks.loss.width()
    assert on_screen(window.docks.model)
    window.focus_action.trigger()  # F11
    qtbot.wait(50)
    assert window.focus_action.isChecked()
    assert not any(d.isVisible() for d in window.docks.sides)
    assert on_screen(window.docks.loss) and on_screen(window.docks.gradient)
    assert window.docks.loss.width() + window.docks.gradient.width() > 0.9 * window.width()
    assert window.docks.loss.width() > loss_before
    window.focus_action.trigger()  # again: the layout before
    qtbot.wait(50)
    assert not window.focus_action.isChecked()
    assert on_screen(window.docks.model)
    assert abs(window.docks.loss.width() - loss_before) <= SLACK
    # Reset Layout returns to the default from anything, Focus Plots included
    window.docks.gates.setFloating(True)
    window.focus_action.trigger()
    window.reset_layout()
    qtbot.wait(50)
    assert not window.focus_action.isChecked() and not window.docks.gates.isFloating()
    assert on_screen(window.docks.model) and on_screen(window.docks.loss)
    assert on_screen(window.docks.gradient)
