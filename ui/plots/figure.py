"""Figures for slides: every panel's export goes through `export_figure`.

- PNG at a chosen size: `width` pixels, or `scale` × the size it has on screen
  (default DEFAULT_SCALE = 2, for a sharp picture on a projector), never wider than
  MAX_WIDTH (4000 px). A panel that was never laid out (a tab never shown) is drawn at
  least FALLBACK_WIDTH wide.
- SVG with nothing that only follows the mouse: the panel's hover items (a cursor
  line, a crosshair) are hidden while the file is written and shown again after.

PNG and SVG go through pyqtgraph.exporters (style.py installs its SVG fix on import).
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyqtgraph as pg

from ui.plots import style

DEFAULT_SCALE = 2.0
MAX_WIDTH = 4000
FALLBACK_WIDTH = 800  # a panel never laid out on screen
MIN_SCREEN_WIDTH = 200  # narrower than this on "screen": it was never laid out
LAYOUT_SIZE = style.DEFAULT_PANEL_SIZE  # a panel not on screen is laid out at this size
SMALL_WIDTH = 300  # a panel narrower than this is laid out at LAYOUT_SIZE for its file
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def png_width(screen_width: float, *, scale: float | None = None, width: int | None = None) -> int:
    """The width of an exported PNG for an item `screen_width` pixels wide on screen."""
    if width is not None:
        if width < 1:
            raise ValueError(f"export: a width of {width} px is not possible; use 1 to {MAX_WIDTH}")
        return min(int(width), MAX_WIDTH)
    if scale is not None and not scale > 0:
        raise ValueError(f"export: a scale of {scale} is not possible; use a number above 0")
    factor = DEFAULT_SCALE if scale is None else float(scale)
    if screen_width < MIN_SCREEN_WIDTH:
        return min(max(FALLBACK_WIDTH, int(round(FALLBACK_WIDTH * factor / DEFAULT_SCALE))),
                   MAX_WIDTH)
    return max(1, min(int(round(screen_width * factor)), MAX_WIDTH))


@contextmanager
def hidden(items: Iterable[Any]):
    """Hide `items` (hover lines, crosshairs) for the duration; restore after."""
    was = [(item, item.isVisible()) for item in items if item is not None]
    for item, _visible in was:
        item.setVisible(False)
    try:
        yield
    finally:
        for item, visible in was:
            item.setVisible(visible)


@contextmanager
def laid_out(item: Any):
    """Lay `item` out at LAYOUT_SIZE for the duration when it is not on screen (a dock
    never shown, a tab behind another) or too small to read; restore after."""
    views = item.scene().views() if item.scene() is not None else []
    rect = item.geometry() if hasattr(item, "setGeometry") else None
    small = rect is not None and rect.width() < SMALL_WIDTH
    off_screen = not views or not views[0].isVisible()
    if rect is None or not (small or off_screen):
        yield
        return
    from PySide6 import QtCore

    item.setGeometry(QtCore.QRectF(0, 0, max(rect.width(), LAYOUT_SIZE[0]),
                                   max(rect.height(), LAYOUT_SIZE[1])))
    try:
        yield
    finally:
        item.setGeometry(rect)


def export_figure(item: Any, path: str | Path, *, scale: float | None = None,
                  width: int | None = None, hover: Iterable[Any] = ()) -> Path:
    """Write `item` (a PlotItem, a GraphicsLayout) to PNG or SVG by the file's
    extension, at `width` px or `scale` × its size on screen (PNG), without `hover`."""
    from pyqtgraph import exporters

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".svg", *IMAGE_SUFFIXES):
        raise ValueError(f"export: unsupported file type {suffix!r} in {path}; use .png or .svg")
    with hidden(list(hover)), laid_out(item):
        if suffix == ".svg":
            exporters.SVGExporter(item).export(str(path))
            return path
        exporter = exporters.ImageExporter(item)
        screen = float(item.sceneBoundingRect().width())
        exporter.parameters()["width"] = png_width(screen, scale=scale, width=width)
        exporter.parameters()["background"] = pg.mkColor(style.BACKGROUND)
        exporter.export(str(path))
    return path
