"""Run ids: the name of a run's folder, sortable by time, naming its cell.

Its own module (imports nothing of the project) because the run folders, the
comparisons and the run service all make ids, and none of them should have to import
another to do it.
"""

from __future__ import annotations

import secrets
import time


def new_run_id(cell: str, now: float | None = None) -> str:
    """An id that sorts by time and names its cell: 20261125-143012-123-lstm-ab12.

    Milliseconds plus four random hex digits keep ids unique for runs started in the
    same second; run_layout.create_run_dir() also refuses to reuse a folder.
    """
    total_ms = round((time.time() if now is None else now) * 1000)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(total_ms // 1000))
    millis = total_ms % 1000
    safe_cell = "".join(ch if ch.isalnum() or ch == "-" else "-" for ch in cell.lower())
    return f"{stamp}-{millis:03d}-{safe_cell}-{secrets.token_hex(2)}"
