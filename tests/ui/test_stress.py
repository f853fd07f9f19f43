"""The window never hangs when runs end: many short runs and comparisons back to back
through the real main window (offscreen), while the GUI thread keeps building, showing
and connecting widgets. Each stress runs in a child process with a hard time limit
(tests/ui/stress_window.py), so a deadlock fails this test instead of hanging the
suite; the child also checks that no thread and no job runner is left behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("stress_window.py")
# The child ends itself, with every thread's stack, when one job does not end within a
# minute (stress_window.JOB_LIMIT_S); this limit is the last resort, below the suite's
# per-test watchdog (faulthandler_timeout = 300 s). On an idle 2-core machine the 300
# runs take about 100 s and the 50 comparisons about 25 s.
HARD_LIMIT_S = 280


@pytest.mark.slow
@pytest.mark.timeout(HARD_LIMIT_S + 10)
@pytest.mark.parametrize(("kind", "count"), [("runs", 300), ("comparisons", 50)])
def test_many_jobs_back_to_back_end_every_time(tmp_path, kind, count):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONFAULTHANDLER="1")
    try:
        result = subprocess.run([sys.executable, str(SCRIPT), kind, str(count), str(tmp_path)],
                                capture_output=True, text=True, timeout=HARD_LIMIT_S, env=env)
    except subprocess.TimeoutExpired as exc:  # pragma: no cover - the failure we guard
        pytest.fail(f"the {kind} stress hung: {(exc.stderr or b'')[-3000:]!r}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"stress ok: {count} {kind} ended" in result.stdout
