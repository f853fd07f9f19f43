"""One legend for every plot: outside the data area, or in the emptiest corner.

`FittedLegend` never overflows. It lays its entries out in as many columns as fit the
room it has (`max_width`), and when they would still take more than `max_rows` rows it
shows the first ones and a last entry "+N more" whose tooltip names the rest.

Two placements (`install`):

- "below": a row of its own under the x axis (the PlotItem's layout row 4, as
  style.add_legend does); it can never cover data. For plots whose curves may fill
  every corner (gradient per time step, trajectories, predictions).
- "corner": inside the data area, semi-transparent, in the corner that covers the
  fewest data points (`choose_corner`, called after each redraw; a corner is left only
  for a clearly emptier one, so the legend does not jump about). It takes at most 75 %
  of the view's width and 50 % of its height.

Entries named "baseline: …" are shown after the others (the curves and overlaid runs
come first when not all fit). For the loss and gradient-norm plots,
  whose data area must keep its height at 1366×768.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

FOREGROUND = "#222222"
HOR_SPACING = 16
SAMPLE_WIDTH = 24  # pyqtgraph's ItemSample is 20 px wide, plus the layout's spacing
CORNERS = ("top-right", "top-left", "bottom-right", "bottom-left")
CORNER_BRUSH = (255, 255, 255, 170)  # semi-transparent: data under it stays visible
MAX_POINTS = 4000  # per curve, when counting what a corner would cover


class FittedLegend(pg.LegendItem):
    """A legend that fits `max_width()` by columns and `max_rows()` by "+N more"."""

    def __init__(self, max_width: Callable[[], float], max_rows: Callable[[], int],
                 **options) -> None:
        super().__init__(horSpacing=HOR_SPACING, **options)
        self._max_width = max_width
        self._max_rows = max_rows
        self.more_label = pg.LabelItem("", color=FOREGROUND, justify="left")
        self.more_label.setParentItem(self)
        self.more_label.setVisible(False)
        self.hidden_names: list[str] = []
        self._relaying = False
        # Geometry and range changes can come while a view prepares its paint: the legend
        # is laid out again (and moved) just after, never in the middle of a paint.
        self._later = QtCore.QTimer()
        self._later.setSingleShot(True)
        self._later.setInterval(0)
        self._later.timeout.connect(self._on_later)
        self._after_layout: Callable[[], None] | None = None
        # room kept free along the top of the data area (a warning shown there)
        self.reserve_top: Callable[[], float] = lambda: 0.0
        self.setLabelTextColor(FOREGROUND)

    # -- entries ------------------------------------------------------------------
    def addItem(self, item, name) -> None:  # noqa: N802, ANN001 - pyqtgraph's name
        super().addItem(item, name)
        self.relayout()

    def removeItem(self, item) -> None:  # noqa: N802, ANN001
        """pyqtgraph's, for an entry that may be out of the layout ("+N more" hides it)."""
        for entry in list(self.items):
            sample, label = entry
            if sample.item is item or label.text == item:
                self.items.remove(entry)
                in_layout = {self.layout.itemAt(i) for i in range(self.layout.count())}
                for part in (sample, label):
                    if part in in_layout:
                        self.layout.removeItem(part)
                    part.close()
                    if part.scene() is not None:
                        part.scene().removeItem(part)
                break
        self.relayout()

    def clear(self) -> None:
        super().clear()
        self.relayout()

    def _ordered(self) -> list[tuple]:
        return sorted(self.items, key=lambda e: 1 if str(e[1].text).startswith("baseline") else 0)

    @property
    def shown_names(self) -> list[str]:
        """The entries drawn now (without "+N more"), in order."""
        return [label.text for sample, label in self._ordered() if sample.isVisible()]

    @property
    def more_text(self) -> str:
        return self.more_label.text if self.more_label.isVisible() else ""

    # -- layout ---------------------------------------------------------------------
    def updateSize(self) -> None:  # noqa: N802 - pyqtgraph's name
        """Its entries' preferred size (pyqtgraph sums the entries' current widths, which
        a layout has stretched: it only ever grows)."""
        if self.size is not None:
            return
        self.layout.invalidate()
        hint = self.layout.effectiveSizeHint(QtCore.Qt.SizeHint.PreferredSize)
        self.setGeometry(0, 0, hint.width(), hint.height())

    def _entry_width(self, entry: tuple) -> float:
        _sample, label = entry
        return SAMPLE_WIDTH + label.itemRect().width() + HOR_SPACING

    def fit(self) -> tuple[int, int]:
        """(columns, entries shown) for the room there is now."""
        n = len(self.items)
        if n == 0:
            return 1, 0
        widths = [self._entry_width(e) for e in self._ordered()]
        room = max(1.0, float(self._max_width()))
        rows_allowed = max(1, int(self._max_rows()))
        columns = 1
        for c in range(n, 0, -1):  # the most columns that fit
            if sum(max(widths[col::c]) for col in range(c)) <= room:
                columns = c
                break
        if math.ceil(n / columns) <= rows_allowed:
            return columns, n
        return columns, max(0, columns * rows_allowed - 1)

    def relayout_soon(self, *_args) -> None:
        """Lay out again (and choose the corner) once control is back in the event loop."""
        self._later.start()

    def _on_later(self) -> None:
        self.relayout()
        if self._after_layout is not None:
            self._after_layout()

    def relayout(self) -> None:
        """Lay the entries out again for the room there is (idempotent)."""
        if self._relaying:
            return
        self._relaying = True
        try:
            columns, shown = self.fit()
            for i in range(self.layout.count() - 1, -1, -1):
                self.layout.removeAt(i)
            # Taken out of a layout an item belongs to the caller: given back to the
            # legend, Qt deletes it with the legend (a Python-owned item in the scene is
            # deleted by the garbage collector, at any time, even during a paint).
            for sample, label in self.items:
                sample.setParentItem(self)
                label.setParentItem(self)
            self.more_label.setParentItem(self)
            self.columnCount = columns
            ordered = self._ordered()
            for i, (sample, label) in enumerate(ordered):
                visible = i < shown
                sample.setVisible(visible)
                label.setVisible(visible)
                if visible:
                    self.layout.addItem(sample, i // columns, 2 * (i % columns),
                                        alignment=QtCore.Qt.AlignmentFlag.AlignVCenter)
                    self.layout.addItem(label, i // columns, 2 * (i % columns) + 1)
            hidden = ordered[shown:]
            self.hidden_names = [label.text for _s, label in hidden]
            if hidden:
                self.more_label.setText(f"+{len(hidden)} more", color=FOREGROUND)
                self.more_label.setToolTip("\n".join(self.hidden_names))
                self.more_label.setVisible(True)
                self.layout.addItem(self.more_label, shown // columns, 2 * (shown % columns), 1, 2)
            else:
                self.more_label.setVisible(False)
            self.rowCount = math.ceil((shown + (1 if hidden else 0)) / columns) if columns else 0
            self.updateSize()
        finally:
            self._relaying = False


def _remove_legend(plot_item: pg.PlotItem) -> None:
    """Retire the legend `plot_item` has: out of its layout, hidden, and kept (parented)
    so that Qt deletes it with the plot; deleting it from Python while the scene still
    knows it crashes a later paint."""
    old = plot_item.legend
    if old is None:
        return
    if old in [plot_item.layout.itemAt(i) for i in range(plot_item.layout.count())]:
        plot_item.layout.removeItem(old)
        QtWidgets.QGraphicsWidget.setParentItem(old, plot_item)  # LegendItem's own anchors
    old.setVisible(False)
    plot_item._retired_legends = [*getattr(plot_item, "_retired_legends", []), old]
    plot_item.legend = None


def install(plot_item: pg.PlotItem, placement: str = "below", *, max_rows: int = 2,
            container: pg.GraphicsWidget | None = None) -> FittedLegend:
    """Give `plot_item` a FittedLegend (in place of any legend it has; call it before
    curves with names are added). "below": in its own row under the plot, at most
    `max_rows` rows, as wide as `container` (default: the plot). "corner": inside the
    data area (see the module docstring)."""
    _remove_legend(plot_item)
    vb = plot_item.getViewBox()
    if placement == "corner":
        legend = FittedLegend(lambda: 0.75 * vb.width(),
                              lambda: max(1, int(0.5 * vb.height() // 20)),
                              offset=(-10, 10), brush=pg.mkBrush(*CORNER_BRUSH),
                              pen=pg.mkPen("#bbbbbb"))
        legend.setParentItem(vb)
        legend.anchor((1, 0), (1, 0), offset=(-10, 10))
        legend.corner = "top-right"
        # the data's place on screen is known once the view has its range
        legend._after_layout = lambda: choose_corner(plot_item, legend)
        vb.sigResized.connect(legend.relayout_soon)
        vb.sigRangeChanged.connect(legend.relayout_soon)
    else:
        holder = container if container is not None else plot_item
        legend = FittedLegend(lambda: holder.geometry().width() - 20, lambda: max_rows)
        plot_item.layout.addItem(legend, 4, 1, 1, 5)
        plot_item.layout.setRowSpacing(4, 0)
        legend.setMinimumWidth(0)
        legend.corner = "below"
        holder.geometryChanged.connect(legend.relayout_soon)
    plot_item.legend = legend  # PlotItem.plot(name=...) adds its entries here
    return legend


def in_row(legend_holder: pg.GraphicsLayout, row: int, col: int, *, max_rows: int = 2,
           col_span: int = 1) -> FittedLegend:
    """A FittedLegend in its own row of a GraphicsLayout (plots that share one legend,
    like the gates' two)."""
    legend = FittedLegend(lambda: legend_holder.geometry().width() - 20, lambda: max_rows)
    legend.setMinimumWidth(0)
    legend_holder.addItem(legend, row, col, 1, col_span)
    legend.corner = "below"
    legend_holder.geometryChanged.connect(legend.relayout_soon)
    return legend


# -- the corner --------------------------------------------------------------------


def _corner_rect(vb: pg.ViewBox, size: QtCore.QSizeF, corner: str, margin: float = 10,
                 reserved: float = 0.0) -> QtCore.QRectF:
    """The view-coordinate rectangle a legend of `size` (pixels) covers in `corner`
    (a top corner `reserved` pixels lower)."""
    view = vb.viewRect()
    px, py = vb.viewPixelSize()
    w, h = (size.width() + margin) * px, (size.height() + margin) * py
    left = view.right() - w if corner.endswith("right") else view.left()
    top = (view.bottom() - h - reserved * py if corner.startswith("top")
           else view.top())  # y grows upward
    return QtCore.QRectF(left, top, w, h)


def covered(plot_item: pg.PlotItem, rect: QtCore.QRectF) -> int:
    """How many drawn points (and points along the curves between them) fall in `rect`."""
    count = 0
    for item in plot_item.listDataItems():
        if not item.isVisible():
            continue
        x, y = item.getData()
        if x is None or y is None or len(x) == 0:
            continue
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        if x.size > MAX_POINTS:
            step = int(math.ceil(x.size / MAX_POINTS))
            x, y = x[::step], y[::step]
        keep = np.isfinite(x) & np.isfinite(y)
        x, y = x[keep], y[keep]
        if x.size == 0:
            continue
        inside = ((x >= rect.left()) & (x <= rect.right()) & (y >= rect.top())
                  & (y <= rect.bottom()))
        count += int(inside.sum())
        if x.size > 1 and np.all(np.diff(x) >= 0):  # a curve: where it passes between points
            grid = np.linspace(rect.left(), rect.right(), 24)
            grid = grid[(grid >= x[0]) & (grid <= x[-1])]
            if grid.size:
                gy = np.interp(grid, x, y)
                count += int(((gy >= rect.top()) & (gy <= rect.bottom())).sum())
    return count


def choose_corner(plot_item: pg.PlotItem, legend: FittedLegend) -> str:
    """Move a corner legend to the corner that covers the fewest points (it stays where
    it is unless another is clearly emptier); the corner it is in."""
    if getattr(legend, "corner", "below") == "below" or not legend.items:
        return getattr(legend, "corner", "below")
    vb = plot_item.getViewBox()
    size = legend.boundingRect().size()
    reserved = float(legend.reserve_top())
    counts = {c: covered(plot_item, _corner_rect(vb, size, c, reserved=reserved))
              for c in CORNERS}
    current = legend.corner
    best = min(CORNERS, key=lambda c: (counts[c], CORNERS.index(c)))
    if not (counts[best] < counts[current] and counts[current] - counts[best] >= 3):
        best = current
    right, top = best.endswith("right"), best.startswith("top")
    anchor = (1 if right else 0, 0 if top else 1)
    offset = (-10 if right else 10, 10 + reserved if top else -10)
    if (best, offset) != getattr(legend, "_placed", None):
        legend.anchor(anchor, anchor, offset=offset)
        legend._placed = (best, offset)
    legend.corner = best
    return legend.corner
