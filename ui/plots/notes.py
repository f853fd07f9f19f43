"""Text drawn inside a plot's data area: what an empty plot will show, and warnings.

- `ViewNote`: a text box in a ViewBox's own pixel coordinates (it does not move or
  scale with the data), centred or along the top edge, wrapped to the view's width.
  It is part of the scene, so PNG and SVG exports carry it.
- `EmptyState`: an empty plot says what will appear ("The loss appears here once
  training starts") and shows no axes or grid, instead of pyqtgraph's meaningless
  0–1 axes; `update(has_data)` switches between the two.
"""

from __future__ import annotations

import html

import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

EMPTY_COLOR = "#666666"
WARNING_COLOR = "#8a4b00"
WARNING_FILL = QtGui.QColor(255, 243, 205, 225)  # a pale amber box
WARNING_BORDER = QtGui.QColor("#d9a400")
MARGIN = 8


class ViewNote(QtWidgets.QGraphicsRectItem):
    """Text in `view_box` at `where` ("center" or "top"), kept in place as the view
    is resized; `text` is plain text (newlines kept). A box (filled when `fill` is
    given) with the text inside: plain Qt items, no Python paint (a Python paint
    override in a pyqtgraph scene has crashed Qt's painter)."""

    def __init__(self, view_box: pg.ViewBox, where: str = "center", *, color: str = EMPTY_COLOR,
                 fill: QtGui.QColor | None = None, border: QtGui.QColor | None = None,
                 point_size: float | None = None) -> None:
        super().__init__()
        self.view_box = view_box
        self.where = where
        self._color = color
        self._text = ""
        self.setPen(QtGui.QPen(border) if border is not None else QtGui.QPen(QtCore.Qt.PenStyle.NoPen))
        self.setBrush(QtGui.QBrush(fill) if fill is not None else QtGui.QBrush(QtCore.Qt.BrushStyle.NoBrush))
        self.label = QtWidgets.QGraphicsTextItem(self)
        if point_size is not None:
            font = self.label.font()
            font.setPointSizeF(point_size)
            self.label.setFont(font)
        self.setParentItem(view_box)
        self.setZValue(1000)
        self.setVisible(False)
        view_box.sigResized.connect(self._place)

    @property
    def text(self) -> str:
        return self._text if self.isVisible() else ""

    def show_text(self, text: str) -> None:
        """Show `text` (an empty one hides the note)."""
        self._text = text
        if not text:
            self.setVisible(False)
            return
        body = html.escape(text).replace("\n", "<br>")
        align = "center" if self.where == "center" else "left"
        self.label.setHtml(f'<div style="color:{self._color}; text-align:{align};">{body}</div>')
        self.setVisible(True)
        self._place()

    def _place(self) -> None:
        if not self.isVisible():
            return
        rect = self.view_box.boundingRect()
        width = max(60.0, rect.width() - 2 * MARGIN)
        self.label.setTextWidth(width if self.where == "top" else min(width, 460.0))
        own = self.label.boundingRect()
        self.setRect(own)
        if self.where == "top":
            self.setPos(rect.left() + MARGIN, rect.top() + MARGIN / 2)
        else:
            self.setPos(rect.center().x() - own.width() / 2, rect.center().y() - own.height() / 2)


def warning_note(view_box: pg.ViewBox) -> ViewNote:
    """A warning along the top of the data area (amber box, dark text)."""
    return ViewNote(view_box, "top", color=WARNING_COLOR, fill=WARNING_FILL, border=WARNING_BORDER)


class EmptyState:
    """Until `update(True)`, `plot_items` show no axes or grid and the first one shows
    `text` in the middle of its data area.

    The axes are made transparent, not hidden: hiding a PlotItem's axis re-lays the
    plot out (the data area jumps when the first data arrives), and hiding and showing
    an axis of the trajectory plot (aspect-locked, with a colour bar) crashed Qt's
    painter."""

    def __init__(self, plot_items: pg.PlotItem | list[pg.PlotItem], text: str,
                 axes: tuple[str, ...] = ("left", "bottom")) -> None:
        self.plot_items = plot_items if isinstance(plot_items, list) else [plot_items]
        self.axes = axes
        self.note = ViewNote(self.plot_items[0].getViewBox(), "center", point_size=11)
        self.text = text
        self.empty: bool | None = None
        self.update(False)

    def set_text(self, text: str) -> None:
        """What an empty plot says (e.g. after the dataset changed)."""
        self.text = text
        if self.empty:
            self.note.show_text(text)

    def update(self, has_data: bool) -> None:
        empty = not has_data
        if empty == self.empty:
            return
        self.empty = empty
        for item in self.plot_items:
            for name in self.axes:
                item.getAxis(name).setOpacity(0.0 if empty else 1.0)
            if item.legend is not None:  # no legend of curves not drawn yet
                item.legend.setOpacity(0.0 if empty else 1.0)
        self.note.show_text(self.text if empty else "")


def axis_drawn(axis: pg.AxisItem) -> bool:
    """Whether `axis` is drawn (shown and not made transparent by an EmptyState)."""
    return axis.isVisible() and axis.opacity() > 0
