"""Small widget helpers the side panels share."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QScrollArea, QVBoxLayout, QWidget


def scrolling_body(panel: QWidget, margin: int) -> tuple[QScrollArea, QWidget, QVBoxLayout]:
    """Put `panel`'s content in a frameless scroll area that scrolls only vertically:
    a short dock shrinks the panel down to nothing, its content then scrolls (so the
    window fits a small screen). Returns the scroll area, the content widget and the
    content's layout (with `margin` all round)."""
    outer = QVBoxLayout(panel)
    outer.setContentsMargins(0, 0, 0, 0)
    scroll = QScrollArea(panel)
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QScrollArea.Shape.NoFrame)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    outer.addWidget(scroll)
    body = QWidget(scroll)
    scroll.setWidget(body)
    layout = QVBoxLayout(body)
    layout.setContentsMargins(margin, margin, margin, margin)
    return scroll, body, layout


def fit_width_to_content(panel: QWidget, scroll: QScrollArea, least: int = 0) -> None:
    """Make `panel` at least as wide as its scrolled content needs (and `least`): it
    never scrolls sideways. Call once the content is built."""
    bar = scroll.verticalScrollBar().sizeHint().width()
    panel.setMinimumWidth(max(least, scroll.widget().minimumSizeHint().width() + bar + 2))


def show_owned_window(owner: QWidget, view: QWidget, views: list, *, largest: tuple[int, int],
                      smallest: tuple[int, int]) -> QWidget:
    """Show `view` as a window of its own owned by `owner` (closed with it, deleted on
    close), sized like the owner within `smallest`..`largest`; kept in `views` while open."""
    def forget(_obj: object = None) -> None:
        if view in views:
            views.remove(view)

    view.setParent(owner, Qt.WindowType.Window)
    view.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    view.destroyed.connect(forget)
    view.resize(min(largest[0], max(smallest[0], owner.width())),
                min(largest[1], max(smallest[1], owner.height())))
    views.append(view)
    view.show()
    return view
