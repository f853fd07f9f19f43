"""Regression guard for the PySide6 pin in pyproject.toml.

PySide6 6.12.0 on CPython 3.11 drops a reference to None on every call of a void
Qt method; after about 5,000 such calls the interpreter aborts with "Fatal Python
error: none_dealloc" (a pyqtgraph app died after ~2,800 live plot updates). The
calls run in a child process so that a crash fails this test instead of killing
the whole pytest run.
"""

from __future__ import annotations

import os
import subprocess
import sys

CALLS = 20_000

SCRIPT = f"""
import sys
from PySide6.QtWidgets import QApplication, QGraphicsRectItem
app = QApplication(sys.argv)
item = QGraphicsRectItem(0, 0, 10, 10)
for _ in range({CALLS}):
    item.update()          # a void Qt method
    item.setZValue(1.0)    # another one
print("clean", flush=True)
"""


def test_many_void_qt_calls_do_not_abort_the_interpreter():
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, (
        f"{CALLS} void Qt calls killed the interpreter (exit {proc.returncode}); "
        f"is an affected PySide6 installed? stderr: {proc.stderr[-500:]}"
    )
    assert "clean" in proc.stdout


def test_installed_pyside_is_not_the_affected_combination():
    import PySide6

    version = tuple(int(p) for p in PySide6.__version__.split(".")[:3])
    assert not (version == (6, 12, 0) and sys.version_info[:2] == (3, 11)), (
        "PySide6 6.12.0 on Python 3.11 aborts after ~5,000 void Qt calls; "
        "pyproject.toml must keep it from installing"
    )
