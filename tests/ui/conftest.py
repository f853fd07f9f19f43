"""Fixtures the window's tests share."""

from __future__ import annotations

import pytest

from ui import errors


@pytest.fixture
def dialogs(monkeypatch):
    """Every message box recorded (title, text) instead of shown; every question answered
    yes. A test file that needs other answers defines its own `dialogs`."""
    shown: list[tuple[str, str]] = []
    monkeypatch.setattr(errors, "show_message",
                        lambda parent, title, text, **kw: shown.append((title, text)))
    monkeypatch.setattr(errors, "ask", lambda parent, title, text: True)
    return shown
