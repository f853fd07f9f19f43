"""Presentation mode as a teacher uses it at 1366 x 768: F5 shows one plot filling
the window in text and lines a room can read, Right moves to the next plot, Esc
gives back the exact layout, and Ctrl+= makes the text larger and is remembered."""

from __future__ import annotations

import pyqtgraph as pg
import pytest
from PySide6.QtCore import Qt

from tests.ui.test_layout_sizes import build, on_screen, quiet, tiny_data, train_tiny  # noqa: F401
from ui.plots import style
from ui.settings import AppSettings, open_settings

SIZE = (1366, 768)


def press(qtbot, window, key, modifier=Qt.KeyboardModifier.NoModifier):
    qtbot.keyClick(window, key, modifier)
    qtbot.wait(30)


def shown_plot_docks(window):
    return [d for d in window.docks.plots if on_screen(d)]


def plot_items(dock):
    return [item for item in style.plot_items_in(dock.widget())
            if not isinstance(item, pg.ColorBarItem)]


@pytest.fixture
def presenting(qtbot, tmp_path, tiny_data, quiet):  # noqa: F811
    window = build(qtbot, tmp_path, SIZE, tiny_data)
    train_tiny(qtbot, window)
    window.activateWindow()
    window.setFocus()
    yield window
    window.shutdown(30_000)


def test_f5_shows_one_plot_large_and_esc_restores_the_layout(qtbot, presenting):
    w = presenting
    before = {d.objectName() for d in w.docks.all if on_screen(d)}
    sizes_before = {d.objectName(): d.size() for d in w.docks.all if on_screen(d)}
    normal_width = style.pen_width(w.loss_plot.raw_curve)
    legend = w.loss_plot.plot_item.legend.boundingRect()
    press(qtbot, w, Qt.Key.Key_F5)
    assert w.presentation.active and w.presentation.toggle_action.isChecked()
    (shown,) = shown_plot_docks(w)
    assert not any(d.isVisible() for d in w.docks.sides)  # the settings panels hidden
    assert not w.toolbar.isVisible()
    assert shown.width() * shown.height() >= 0.8 * w.width() * w.height() * 0.9
    for item in plot_items(shown):
        for side in ("left", "bottom"):
            assert style.tick_font_px(item.getAxis(side)) >= 24
        for curve in item.listDataItems():
            if curve.opts.get("pen") is not None:
                assert style.pen_width(curve) >= 3
    # the axis labels too: a line of text at least 24 px high
    label = plot_items(shown)[0].getAxis("bottom").label
    assert label.boundingRect().height() - 2 * label.document().documentMargin() >= 24

    # Right: the next plot, large; the one before back to its own size
    press(qtbot, w, Qt.Key.Key_Right)
    (second,) = shown_plot_docks(w)
    assert second is not shown
    assert all(style.tick_font_px(i.getAxis("left")) >= 24 for i in plot_items(second))
    assert all(style.tick_font_px(i.getAxis("left")) < 24 for i in plot_items(shown))
    press(qtbot, w, Qt.Key.Key_Left)
    assert shown_plot_docks(w) == [shown]

    press(qtbot, w, Qt.Key.Key_Escape)
    qtbot.wait(50)
    assert not w.presentation.active
    assert {d.objectName() for d in w.docks.all if on_screen(d)} == before
    for name, size in sizes_before.items():
        dock = w.findChild(type(w.docks.loss), name)
        assert abs(dock.width() - size.width()) <= 2 and abs(dock.height() - size.height()) <= 2
    assert w.toolbar.isVisible()
    assert style.pen_width(w.loss_plot.raw_curve) == normal_width
    assert style.tick_font_px(w.loss_plot.plot_item.getAxis("left")) < 24
    assert w.loss_plot.plot_item.legend.boundingRect().size() == legend.size()
    # F5 toggles too
    press(qtbot, w, Qt.Key.Key_F5)
    assert w.presentation.active
    press(qtbot, w, Qt.Key.Key_F5)
    assert not w.presentation.active
    assert {d.objectName() for d in w.docks.all if on_screen(d)} == before


def test_ctrl_plus_scales_up_and_is_remembered(qtbot, presenting, tmp_path):
    w = presenting
    press(qtbot, w, Qt.Key.Key_F5)
    (shown,) = shown_plot_docks(w)
    axis = plot_items(shown)[0].getAxis("left")
    at_start = style.tick_font_px(axis)
    press(qtbot, w, Qt.Key.Key_Equal, Qt.KeyboardModifier.ControlModifier)
    assert w.presentation.scale == style.PRESENTATION_SCALE + style.PRESENTATION_SCALE_STEP
    assert style.tick_font_px(axis) > at_start
    w.settings.sync()
    again = AppSettings(open_settings(tmp_path / "settings.ini"))
    assert again.presentation_scale() == w.presentation.scale
    press(qtbot, w, Qt.Key.Key_Minus, Qt.KeyboardModifier.ControlModifier)
    press(qtbot, w, Qt.Key.Key_Minus, Qt.KeyboardModifier.ControlModifier)
    assert style.tick_font_px(axis) < at_start
    press(qtbot, w, Qt.Key.Key_Escape)


def test_closing_in_presentation_saves_the_layout_it_replaced(qtbot, presenting, tmp_path):
    w = presenting
    press(qtbot, w, Qt.Key.Key_F5)
    w.save_settings()
    _geometry, state = AppSettings(open_settings(tmp_path / "settings.ini")).window_state()
    assert state == w.presentation.saved_state()


def test_f5_in_a_comparison_window_presents_it(qtbot, presenting):
    from PySide6.QtWidgets import QApplication

    from ui.compare_view import CompareView
    from ui.widgets import show_owned_window

    w = presenting
    view = show_owned_window(w, CompareView(), w.compare_views, largest=(900, 600),
                             smallest=(600, 400))
    view.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is view, timeout=5000)
    items = style.plot_items_in(view)
    assert items
    press(qtbot, view, Qt.Key.Key_F5)
    assert w.presentation.view is view and view.isMaximized()
    assert all(style.tick_font_px(i.getAxis("left")) >= 24 for i in items)
    assert all(d.isVisible() for d in w.docks.sides)  # the main window as it was
    press(qtbot, view, Qt.Key.Key_Escape)
    assert not w.presentation.active and not view.isMaximized()
    assert all(style.tick_font_px(i.getAxis("left")) < 24 for i in items)
    view.close()
