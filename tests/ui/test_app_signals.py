"""Issue 10, failure 1: the GUI ignored Ctrl-C and SIGTERM while a modal dialog was
open. The app runs in a child process (tests/ui/signal_window.py) with a question
open; the signal must close the question, then the window, and end the process
with 128 + the signal's number and no traceback, well within the child's hard limit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("signal_window.py")
HARD_LIMIT_S = 60  # the child is killed past this: the signal was ignored


@pytest.mark.parametrize(("signum", "parented"), [(signal.SIGTERM, False),
                                                 (signal.SIGINT, False),
                                                 (signal.SIGTERM, True)])
def test_a_signal_quits_the_app_while_a_modal_dialog_is_open(tmp_path, signum, parented):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONFAULTHANDLER="1",
               SEQUENCE_WORKBENCH_HOME=str(tmp_path))
    flags = ["--parented"] if parented else []
    child = subprocess.Popen([sys.executable, str(SCRIPT), *flags], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + HARD_LIMIT_S
        line = ""
        while time.monotonic() < deadline and not line.startswith("modal open"):
            line = child.stdout.readline()
            if not line and child.poll() is not None:
                break
        assert line.strip() == "modal open: True", child.stderr.read()
        child.send_signal(signum)
        out, err = child.communicate(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        child.kill()
        out, err = child.communicate()
        pytest.fail(f"the app ignored {signum.name} with a dialog open: {err[-2000:]}")
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 128 + signum, (child.returncode, err[-2000:])
    assert "Traceback" not in err, err[-2000:]
    assert out.splitlines() == ["question returned False",
                                f"event loop left, status {128 + signum}"]
