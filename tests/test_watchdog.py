"""The suite's watchdog: a test that hangs while holding the GIL ends the test
process with every thread's stack, instead of making CI wait out its limit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).parent / "watchdog_demo" / "test_deliberate_deadlock.py"


def test_a_hang_holding_the_gil_ends_with_every_threads_stack(tmp_path):
    result = subprocess.run(
        # --noconftest: the suite's session fixtures (torch's import) would eat the 5 s
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--noconftest",
         str(DEMO), "--rootdir", str(Path(__file__).parent.parent),
         "-o", "faulthandler_timeout=5", "-o", "timeout=0"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Timeout (0:00:05)!" in output
    assert "in test_a_deadlock_that_holds_the_gil" in output  # the hung thread's stack
    assert output.count("Thread 0x") >= 2  # and the other thread's too
    assert "passed" not in output
