"""Colours and shared helpers for the plot panels.

One place decides how every plot looks, so the same cell type has the same colour
in the loss, gradient and trajectory views, axis labels carry their units, and
every panel redraws and exports the same way:

- ``CELL_COLORS``: a fixed colour per cell type (rnn-tanh, rnn-relu, rnn-sigmoid,
  gru, lstm), used wherever a run of that cell is drawn.
- ``RUN_COLORS``: distinct colours for overlaid runs (Okabe-Ito, colour-blind safe).
- ``make_plot_widget``: a light-background PlotWidget with labelled axes, a grid and
  a legend; pyqtgraph's right-click menu (with "Export...") stays as it is.
- ``RedrawThrottle``: coalesces many data updates into at most one redraw per
  interval, so a fast stream of events never floods the GUI thread.
- ``export_item``: PNG or SVG by the file's extension, through pyqtgraph.exporters.
- ``scale_plots``: presentation mode's one scale of every plot's text and lines (tick,
  axis-label, title and legend fonts, curve pens), through generic pyqtgraph APIs,
  so that no plot module needs to know about it; scale 1 puts everything back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pyqtgraph as pg
import shiboken6
from PySide6 import QtCore, QtGui, QtWidgets

# -- colours ---------------------------------------------------------------------

BACKGROUND = "#ffffff"
FOREGROUND = "#222222"  # axes, tick labels, titles
GRID_ALPHA = 0.12

CELL_COLORS: dict[str, str] = {
    "rnn-tanh": "#0072B2",  # blue
    "rnn-relu": "#D55E00",  # vermillion
    "rnn-sigmoid": "#CC79A7",  # reddish purple
    "gru": "#009E73",  # bluish green
    "lstm": "#7B3294",  # purple
}
DEFAULT_CELL_COLOR = "#444444"

# Okabe-Ito (minus black and yellow, which read badly on white), then a few extra.
RUN_COLORS: tuple[str, ...] = (
    "#E69F00",  # orange
    "#56B4E9",  # sky blue
    "#009E73",  # bluish green
    "#D55E00",  # vermillion
    "#CC79A7",  # reddish purple
    "#0072B2",  # blue
    "#8C564B",  # brown
    "#7F7F7F",  # grey
)

# Validation curves of the loss panel's own run: neutral, so that no run colour
# (a cell's or an overlay's) is mistaken for them; line style and marker tell which.
VAL_TEACHER_FORCED_COLOR = "#222222"  # near black, solid, circles
VAL_FREE_RUNNING_COLOR = "#808080"  # grey, dashed, triangles

# Sequential colour map for time steps and heatmaps (perceptually uniform).
SEQUENTIAL_CMAP = "viridis"

# -- axis labels (with units) ----------------------------------------------------

LABEL_TRAINING_STEP = "training step"
LABEL_TIME_STEP = "time step (encoder, then decoder)"
LABEL_GRAD_H = "‖∂L/∂hₜ‖ (mean over samples)"
LABEL_GRAD_C = "‖∂L/∂cₜ‖ (mean over samples)"
LABEL_PROBE = "probe (training step)"
LABEL_LOG_GRAD = "log₁₀ ‖∂L/∂hₜ‖"
LABEL_LOG_GRAD_C = "log₁₀ ‖∂L/∂cₜ‖"

DEFAULT_PANEL_SIZE = (720, 460)  # width, height in pixels
# The least a plot may be squeezed to (in a dock): small enough that the window, with
# every panel shown, fits a 1280 x 720 screen.
PLOT_MIN_SIZE = (220, 150)
# The one redraw throttle between a live run and the screen (the job queue, drained
# every 50 ms, is the one buffer): pyqtgraph paints in Python, holding the GIL the
# training thread needs between torch calls, so a live plot redraws 4 times a second.
REDRAW_INTERVAL_MS = 250


def cell_color(cell: str | None) -> str:
    """The fixed colour of a cell type ("rnn-tanh", "gru", ...); grey when unknown."""
    if not cell:
        return DEFAULT_CELL_COLOR
    return CELL_COLORS.get(str(cell).lower(), DEFAULT_CELL_COLOR)


def next_run_color(used: Iterable[str]) -> str:
    """The first run colour not in `used` (cycling when all are taken)."""
    used_set = {QtGui.QColor(c).name() for c in used}
    for color in RUN_COLORS:
        if QtGui.QColor(color).name() not in used_set:
            return color
    return RUN_COLORS[len(used_set) % len(RUN_COLORS)]


def with_alpha(color: Any, alpha: float) -> QtGui.QColor:
    """`color` (anything pg.mkColor takes) with opacity `alpha` in [0, 1]."""
    c = pg.mkColor(color)
    c.setAlphaF(max(0.0, min(1.0, float(alpha))))
    return c


# -- reading what the events carry ---------------------------------------------


def _lookup(mapping: Mapping[str, Any] | None, *paths: tuple[str, ...]) -> Any:
    """The first value found along any of the key paths in a nested dict, else None."""
    for path in paths:
        node: Any = mapping
        for key in path:
            if not isinstance(node, Mapping) or key not in node:
                node = None
                break
            node = node[key]
        if node is not None:
            return node
    return None


def cell_of(config: Mapping[str, Any] | None) -> str | None:
    """The cell type named in a RunStarted config (top level or under "model")."""
    value = _lookup(config, ("cell",), ("model", "cell"), ("model", "config", "cell"))
    return str(value) if value is not None else None


def loss_label(dataset: Mapping[str, Any] | None, config: Mapping[str, Any] | None = None) -> str:
    """The loss axis label with its unit: MSE on normalised targets, or cross-entropy."""
    kind = _lookup(dataset, ("target_kind",), ("targets", "kind"), ("target", "kind"))
    if kind is None:
        kind = _lookup(config, ("target", "kind"), ("model", "target", "kind"))
    if kind == "tokens":
        return "loss (cross-entropy, nats per token)"
    return "loss (MSE, normalised)"


# -- plot widgets ----------------------------------------------------------------


def style_plot_item(plot_item: pg.PlotItem, *, bottom: str, left: str, title: str = "") -> None:
    """Dark text on a light background, axis labels with units, a faint grid."""
    for name in ("left", "bottom", "right", "top"):
        axis = plot_item.getAxis(name)
        axis.setPen(pg.mkPen(FOREGROUND))
        axis.setTextPen(pg.mkPen(FOREGROUND))
        # No "(x0.001)" appended to a label: the tick values are the values themselves.
        axis.enableAutoSIPrefix(False)
    plot_item.setLabel("bottom", bottom, color=FOREGROUND)
    plot_item.setLabel("left", left, color=FOREGROUND)
    plot_item.showGrid(x=True, y=True, alpha=GRID_ALPHA)
    if title:
        set_title(plot_item, title)


def never_widen(label: pg.LabelItem) -> pg.LabelItem:
    """Let a layout make `label` narrower than its text (the text is then clipped at
    the sides, not the plots pushed out of view). pyqtgraph resets a LabelItem's
    minimum width and its minimum size hint to its text's width on every resize and
    every new text (LabelItem.updateMin), so setting the minimum once is undone at the
    next resize: the instance's updateMin is wrapped instead. Idempotent."""
    if getattr(label, "_never_widen", False):
        return label
    original = label.updateMin

    def update_min() -> None:
        original()
        label.setMinimumWidth(0)
        hint = getattr(label, "_sizeHint", None)
        if hint and QtCore.Qt.SizeHint.MinimumSize in hint:
            hint[QtCore.Qt.SizeHint.MinimumSize] = (0, hint[QtCore.Qt.SizeHint.MinimumSize][1])

    label.updateMin = update_min
    label._never_widen = True
    update_min()
    _wrap_to_width(label)
    return label


def _wrap_to_width(label: pg.LabelItem) -> None:
    """Wrap a LabelItem's text at spaces onto more lines when it is wider than the
    label's room (a title in a narrow panel), instead of cutting it at the sides."""
    option = label.item.document().defaultTextOption()
    option.setWrapMode(QtGui.QTextOption.WrapMode.WordWrap)
    option.setAlignment(QtCore.Qt.AlignmentFlag.AlignHCenter)
    label.item.document().setDefaultTextOption(option)
    state: dict[str, Any] = {"key": None}

    def fit() -> None:
        if not shiboken6.isValid(label) or not shiboken6.isValid(label.item):
            return  # deleted with its plot (its parent's signal may outlive it)
        width = label.size().width()
        parent = label.parentWidget()
        if parent is not None:  # a title wider than its plot is clipped by the plot
            width = min(width, parent.size().width())
        key = (width, label.text, label.opts.get("size"))
        if key == state["key"]:
            return
        state["key"] = key
        item = label.item
        item.setTextWidth(-1)
        if width >= 40 and item.boundingRect().width() > width:
            item.setTextWidth(width)
        label.resizeEvent(None)  # its place, and its height for the lines (updateMin)
        if isinstance(parent, pg.PlotItem) and parent.titleLabel is label and label.isVisible():
            # pyqtgraph fixes a title's row at 30 px: room for every line
            height = max(30, int(item.boundingRect().height()) + 2)
            label.setMaximumHeight(height)
            parent.layout.setRowFixedHeight(0, height)
        label.updateGeometry()

    original_set_text = label.setText

    def set_text(text: str, **options: Any) -> None:
        original_set_text(text, **options)
        fit()

    label.setText = set_text  # a new title: wrapped for the room it has
    label.geometryChanged.connect(fit)
    if label.parentWidget() is not None:
        label.parentWidget().geometryChanged.connect(fit)


def set_title(plot_item: pg.PlotItem, text: str, *, size: str | None = None) -> None:
    """Set a plot's title (in `size`, e.g. "9pt"; pyqtgraph's 11pt by default) without
    letting a long title widen the plot beyond its widget: pyqtgraph makes the
    title's width a minimum, which pushes the right-hand axis or colour bar out of
    view in a narrow panel (see never_widen)."""
    never_widen(plot_item.titleLabel)
    options = {"color": FOREGROUND} if size is None else {"color": FOREGROUND, "size": size}
    plot_item.setTitle(text, **options)


def add_legend(plot_item: pg.PlotItem, *, below: bool = False, columns: int = 2) -> pg.LegendItem:
    """A legend for `plot_item`: in the top-right corner of the data area with a
    translucent white box, or (`below=True`) in its own row under the x axis, where
    it can never cover data (for plots whose every corner may hold curves)."""
    if below:
        legend = pg.LegendItem(colCount=columns, horSpacing=20)
        plot_item.legend = legend  # PlotItem.plot(name=...) adds its entries here
        # Spanning to the last column, its width never pushes a colour bar out of view.
        plot_item.layout.addItem(legend, 4, 1, 1, 5)
        plot_item.layout.setRowSpacing(4, 0)
        legend_in_row(legend, plot_item, columns)
    else:
        legend = plot_item.addLegend(offset=(-10, 10))
        legend.setBrush(pg.mkBrush(255, 255, 255, 215))
        legend.setPen(pg.mkPen("#bbbbbb"))
    legend.setLabelTextColor(FOREGROUND)
    return legend


def legend_in_row(legend: pg.LegendItem, container: pg.GraphicsWidget,
                  columns: int) -> pg.LegendItem:
    """Make a legend that has a row of its own never widen its plot: it may be
    narrower than its entries (min width 0), and it takes as many columns, up to
    `columns`, as fit the width of `container` (a narrow panel gets more rows)."""
    legend.setMinimumWidth(0)
    spacing = 2 * 20 + 6  # horSpacing on both sides of an entry, and the margins

    def reflow() -> None:
        width = container.geometry().width()
        if not legend.items or width <= 0:
            return
        widest = max(sample.boundingRect().width() + label.itemRect().width()
                     for sample, label in legend.items) + spacing
        fit = max(1, min(columns, int(width // widest)))
        if fit != legend.columnCount:
            legend.setColumnCount(fit)

    container.geometryChanged.connect(reflow)
    legend.geometryChanged.connect(reflow)  # entries added or renamed
    return legend


def make_plot_widget(
    *, bottom: str, left: str, title: str = "", legend_below: bool = False
) -> pg.PlotWidget:
    """A PlotWidget styled for the workbench: labelled axes, grid and a legend."""
    widget = pg.PlotWidget(background=BACKGROUND)
    widget.setMinimumSize(*PLOT_MIN_SIZE)
    style_plot_item(widget.getPlotItem(), bottom=bottom, left=left, title=title)
    add_legend(widget.getPlotItem(), below=legend_below)
    return widget


def readout_label() -> QtWidgets.QLabel:
    """A label for the value under the cursor: it takes the room left in a toolbar and
    never squeezes the controls beside it, however long its text."""
    label = QtWidgets.QLabel("")
    label.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Preferred)
    label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


def legend_labels(plot_item: pg.PlotItem) -> list[str]:
    """The texts of a plot's legend entries, in order (for tests and tooltips)."""
    legend = plot_item.legend
    if legend is None:
        return []
    return [label.text for _sample, label in legend.items]


def long_curve(curve: pg.PlotDataItem) -> pg.PlotDataItem:
    """Make a curve that may hold 100k points cheap to draw: peak downsampling and
    clipping to the visible range."""
    curve.setDownsampling(auto=True, method="peak")
    curve.setClipToView(True)
    return curve


# -- throttled redraw ------------------------------------------------------------


class RedrawThrottle(QtCore.QObject):
    """Calls `redraw` at most once per `interval_ms`, and only after `mark_dirty`.

    Many events inside one interval cost one redraw; with no new data the timer is
    idle. A single-shot timer is started by the first dirty mark, so the rate is
    bounded by 1000 / interval_ms redraws a second.
    """

    def __init__(
        self,
        redraw: Callable[[], None],
        interval_ms: int = REDRAW_INTERVAL_MS,
        parent: QtCore.QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._redraw = redraw
        self.dirty = False
        self.timer = QtCore.QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._on_timeout)

    def mark_dirty(self) -> None:
        """New data is waiting: redraw within one interval."""
        self.dirty = True
        if not self.timer.isActive():
            self.timer.start()

    def flush(self) -> None:
        """Redraw now if anything is waiting (a replayed run, a test, an export)."""
        self.timer.stop()
        self._on_timeout()

    def _on_timeout(self) -> None:
        if not self.dirty:
            return
        self.dirty = False
        self._redraw()


# -- export ----------------------------------------------------------------------


def _install_svg_closed_path_fix() -> None:
    """Make pyqtgraph's SVG export survive closed paths ("... Z").

    Qt 6.10+ writes closed paths with a trailing "Z"; pyqtgraph 0.14.0's
    SVGExporter.correctCoordinates parses every token of a path as "x,y" and raises
    ValueError, so every plot failed to export to SVG, from `export()` and from the
    right-click "Export..." menu alike (pyqtgraph issue #3495, fixed by PR #3458 after
    0.14.0). The wrapper takes the "Z" tokens out before pyqtgraph rewrites the
    coordinates and puts them back at the same places after (pyqtgraph writes one
    token per token it reads). Harmless with a fixed pyqtgraph: no "Z", no change.
    """
    import importlib

    module = importlib.import_module("pyqtgraph.exporters.SVGExporter")
    original = getattr(module, "correctCoordinates", None)
    if original is None or getattr(original, "_workbench_closed_path_fix", False):
        return

    def correct_coordinates(node, defs, item, options):  # type: ignore[no-untyped-def]
        closes = []
        for path in node.getElementsByTagName("path"):
            tokens = path.getAttribute("d").strip().split(" ")
            where = [i for i, token in enumerate(tokens) if token in ("Z", "z")]
            if where:
                path.setAttribute("d", " ".join(t for t in tokens if t not in ("Z", "z")))
                closes.append((path, where))
        original(node, defs, item, options)
        for path, where in closes:
            tokens = path.getAttribute("d").strip().split(" ")
            for i in where:
                tokens.insert(i, "Z")
            path.setAttribute("d", " ".join(t for t in tokens if t))

    correct_coordinates._workbench_closed_path_fix = True  # type: ignore[attr-defined]
    module.correctCoordinates = correct_coordinates


_install_svg_closed_path_fix()


def _fit_axis_label(axis: pg.AxisItem) -> bool:
    """Wrap an axis label longer than its axis onto more lines, at spaces (a word is
    never cut), so it neither runs past its plot nor over a neighbour's label. True
    when its height (the room the axis needs) changed."""
    label = axis.label
    if label is None:
        return False
    if not getattr(label, "_wb_word_wrap", False):
        option = label.document().defaultTextOption()
        option.setWrapMode(QtGui.QTextOption.WrapMode.WordWrap)
        option.setAlignment(QtCore.Qt.AlignmentFlag.AlignHCenter)
        label.document().setDefaultTextOption(option)
        label._wb_word_wrap = True
    size = axis.size()
    length = size.height() if axis.orientation in ("left", "right") else size.width()
    before = label.boundingRect().height()
    label.setTextWidth(-1)
    if length >= 40 and label.boundingRect().width() > length:
        label.setTextWidth(length)
    return label.boundingRect().height() != before


def _install_axis_label_wrap() -> None:
    """Every AxisItem wraps its label to the axis's length (see _fit_axis_label):
    pyqtgraph draws a label longer than its axis past the plot's edge, over the
    neighbouring plot's label, or cut off by the widget."""
    cls = pg.AxisItem
    if getattr(cls, "_workbench_label_wrap", False):
        return
    original_resize = cls.resizeEvent
    original_update_label = cls._updateLabel

    def resize_event(self, ev=None):  # type: ignore[no-untyped-def]
        if _fit_axis_label(self):
            self._adjustSize()
        original_resize(self, ev)

    def update_label(self):  # type: ignore[no-untyped-def]
        original_update_label(self)
        if _fit_axis_label(self):
            self._adjustSize()
        original_resize(self)  # the label's place for its new size

    cls.resizeEvent = resize_event
    cls._updateLabel = update_label
    cls._workbench_label_wrap = True


_install_axis_label_wrap()


def export_item(item: Any, path: str | Path, min_width: int = 800) -> None:
    """Write `item` (a PlotItem or another QGraphicsItem) to PNG or SVG by extension.

    The PNG is at least `min_width` pixels wide, so a panel that was never shown
    (or is small on screen) still gives a readable picture.
    """
    from pyqtgraph import exporters

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".svg":
        exporters.SVGExporter(item).export(str(path))
        return
    if suffix not in (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"):
        raise ValueError(f"export: unsupported file type {suffix!r} in {path}; use .png or .svg")
    exporter = exporters.ImageExporter(item)
    width = int(exporter.parameters()["width"])
    if width < min_width:
        # Setting the width keeps the aspect ratio (the exporter adjusts the height).
        exporter.parameters()["width"] = min_width
    exporter.parameters()["background"] = pg.mkColor(BACKGROUND)
    exporter.export(str(path))


# -- presentation scale ----------------------------------------------------------

# Presentation mode's text and line scale: the default, the range Ctrl+= / Ctrl+-
# move it in, and the step. At 2x the tick text is 24 px and every curve >= 3 px.
PRESENTATION_SCALE = 2.0
PRESENTATION_SCALE_RANGE = (1.0, 4.0)
PRESENTATION_SCALE_STEP = 0.25
BASE_TICK_PX = 12  # the tick text at scale 1 (about the 9 pt of a 96 dpi screen)
BASE_LABEL_PX = 13  # the axis labels
BASE_TITLE_PX = 14  # the plot titles
BASE_LEGEND_PX = 12
LEAST_LINE_WIDTH = 1.5  # a curve's width before scaling, when it is thinner


def clamp_scale(scale: float) -> float:
    low, high = PRESENTATION_SCALE_RANGE
    return max(low, min(high, round(float(scale) / PRESENTATION_SCALE_STEP)
                        * PRESENTATION_SCALE_STEP))


def plot_items_in(root: QtWidgets.QWidget) -> list[pg.PlotItem]:
    """Every PlotItem drawn by the pyqtgraph views inside `root` (a dock, a panel)."""
    views = [root] if isinstance(root, pg.GraphicsView) else []
    views += root.findChildren(pg.GraphicsView)
    items: list[pg.PlotItem] = []
    for view in views:
        scene = view.scene()
        if scene is None:
            continue
        items += [item for item in scene.items() if isinstance(item, pg.PlotItem)]
    return items


def _legends_in(root: QtWidgets.QWidget) -> list[pg.LegendItem]:
    views = [root] if isinstance(root, pg.GraphicsView) else []
    views += root.findChildren(pg.GraphicsView)
    return [item for view in views if view.scene() is not None
            for item in view.scene().items() if isinstance(item, pg.LegendItem)]


def scale_plots(root: QtWidgets.QWidget, scale: float) -> None:
    """Scale the text and lines of every plot inside `root` by `scale` (1: as built).
    Idempotent: it may run again on the same plots (new curves, new titles) at no
    harm, and a pen a plot sets anew becomes that curve's new base."""
    for item in plot_items_in(root):
        scale_plot_item(item, scale)
    for legend in _legends_in(root):
        _scale_legend(legend, scale)


def scale_plot_item(item: pg.PlotItem, scale: float) -> None:
    """One PlotItem's axis tick and label fonts, title and curve pens at `scale`."""
    for name in ("left", "bottom", "right", "top"):
        axis = item.getAxis(name)
        if axis is not None:
            _scale_axis(axis, scale)
    title = item.titleLabel
    if title is not None and title.text:
        if not hasattr(title, "_wb_base_size"):
            title._wb_base_size = title.opts.get("size")
        size = title._wb_base_size if scale == 1 else f"{round(BASE_TITLE_PX * scale)}px"
        if title.opts.get("size") != size:
            options = {"size": size} if size is not None else {}
            if size is None:
                title.opts.pop("size", None)
            title.setText(title.text, **options)
    for data in item.listDataItems():
        _scale_pen(data, scale)


def _scale_axis(axis: pg.AxisItem, scale: float) -> None:
    if not hasattr(axis, "_wb_base"):
        axis._wb_base = (axis.style["tickFont"], dict(axis.labelStyle), axis.fixedWidth,
                         axis.fixedHeight)
    base_font, base_style, fixed_width, fixed_height = axis._wb_base
    if scale == 1:
        font, label_style = base_font, base_style
    else:
        font = QtGui.QFont(base_font) if base_font is not None else QtGui.QFont()
        font.setPixelSize(round(BASE_TICK_PX * scale))
        label_style = {**base_style, "font-size": f"{round(BASE_LABEL_PX * scale)}px"}
    # a plot that fixed its axis's room (to line two plots up) gets it scaled alike
    if fixed_width is not None and axis.fixedWidth != round(fixed_width * scale):
        axis.setWidth(round(fixed_width * scale))
    if fixed_height is not None and axis.fixedHeight != round(fixed_height * scale):
        axis.setHeight(round(fixed_height * scale))
    current = axis.style["tickFont"]
    if (current is None) != (font is None) or (font is not None and current != font):
        axis.setTickFont(font)
        # the tick text's room is re-measured from the new font
        axis.textWidth = axis.textHeight = 0
        axis._updateWidth() if axis.orientation in ("left", "right") else axis._updateHeight()
    if axis.labelStyle != label_style:
        axis.labelStyle = label_style
        if axis.label.isVisible():
            axis.setLabel(axis.labelText, units=axis.labelUnits or None,
                          unitPrefix=axis.labelUnitPrefix or None, **label_style)


def _scale_legend(legend: pg.LegendItem, scale: float) -> None:
    if not hasattr(legend, "_wb_base_size"):
        legend._wb_base_size = legend.opts.get("labelTextSize")
    size = legend._wb_base_size if scale == 1 else f"{round(BASE_LEGEND_PX * scale)}px"
    if legend.opts.get("labelTextSize") != size:
        legend.opts["labelTextSize"] = size
        for _sample, label in legend.items:
            if size is None:
                label.opts.pop("size", None)
                label.setText(label.text)
            else:
                label.setText(label.text, size=size)
            label.resize(label.sizeHint(QtCore.Qt.SizeHint.PreferredSize, QtCore.QSizeF()))
        # the entries at their new size first, then the legend's box around them
        legend.layout.invalidate()
        legend.resize(0, 0)  # (its layout keeps it at least as large as the entries need)
        legend.layout.activate()
        legend.updateSize()


def _scale_pen(data: Any, scale: float) -> None:
    opts = getattr(data, "opts", None)
    if not isinstance(opts, dict) or opts.get("pen") is None or not hasattr(data, "setPen"):
        return
    pen = pg.mkPen(opts["pen"])
    if pen.style() == QtCore.Qt.PenStyle.NoPen:
        return
    if getattr(data, "_wb_set_width", None) != pen.widthF():  # new, or set anew by its plot
        data._wb_base_pen = QtGui.QPen(pen)
    base = data._wb_base_pen
    if scale == 1:
        target = base
    else:
        target = QtGui.QPen(base)
        target.setWidthF(max(base.widthF(), LEAST_LINE_WIDTH) * scale)
        target.setCosmetic(True)
    data._wb_set_width = target.widthF()
    if pen != target:
        data.setPen(target)


def tick_font_px(axis: pg.AxisItem) -> int:
    """The pixel size of an axis's tick text (for tests and checks)."""
    font = axis.style["tickFont"] or QtGui.QFont()
    if font.pixelSize() > 0:
        return font.pixelSize()
    return round(QtGui.QFontInfo(font).pixelSize())


def pen_width(data: Any) -> float:
    """The drawn width of a curve's pen in pixels (a cosmetic 0 is 1)."""
    pen = pg.mkPen(data.opts["pen"])
    return max(1.0, pen.widthF())
