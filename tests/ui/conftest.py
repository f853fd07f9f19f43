"""Fixtures the window's tests share."""

from __future__ import annotations

import pytest

from ui import errors
from ui.jobs import GUI_GARBAGE


@pytest.fixture
def dialogs(monkeypatch):
    """Every message box recorded (title, text) instead of shown; every question answered
    yes. A test file that needs other answers defines its own `dialogs`."""
    shown: list[tuple[str, str]] = []
    monkeypatch.setattr(errors, "show_message",
                        lambda parent, title, text, **kw: shown.append((title, text)))
    monkeypatch.setattr(errors, "ask", lambda parent, title, text: True)
    return shown


@pytest.fixture(autouse=True)
def _garbage_collection_back_after_each_test():
    """After each test, automatic garbage collection is back unless a job thread still
    runs (ui.jobs turns it off while jobs run and its GUI-thread timer turns it back on;
    between tests no event loop runs that timer)."""
    yield
    GUI_GARBAGE.tick()
