"""Shared test set-up: every test writes under a temporary SEQUENCE_WORKBENCH_HOME,
never the user's real data folder, and torch uses one thread so that the suite's
timings do not depend on how many tests share the machine's cores."""

from __future__ import annotations

import os

import pytest

# Qt tests never need a screen; without this a run outside `make test` aborts in Qt.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True, scope="session")
def _workbench_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("workbench-home")
    old = os.environ.get("SEQUENCE_WORKBENCH_HOME")
    os.environ["SEQUENCE_WORKBENCH_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("SEQUENCE_WORKBENCH_HOME", None)
    else:
        os.environ["SEQUENCE_WORKBENCH_HOME"] = old


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    try:
        import torch
    except ImportError:  # pragma: no cover
        yield
        return
    torch.set_num_threads(1)
    yield


# tests/watchdog_demo holds a deliberate deadlock: run only by tests/test_watchdog.py.
collect_ignore = ["watchdog_demo"]
