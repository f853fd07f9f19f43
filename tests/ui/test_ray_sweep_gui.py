"""A sweep on Ray from the window: the dialog offers the engine and the address, and the
sweep view follows the runs live from their run folders (no Ray object in the GUI
thread: Ray lives in the sweep's own thread), then opens the saved sweep as any."""

from __future__ import annotations

import time

import psutil
import pytest

pytest.importorskip("pytestqt")

from tests.workbench.train_helpers import tiny_config, write_reverse  # noqa: E402
from ui import errors  # noqa: E402
from ui.main_window import MainWindow  # noqa: E402
from ui.settings import AppSettings, open_settings  # noqa: E402
from ui.sweep_dialog import ENGINE_RAY, SweepDialog  # noqa: E402
from workbench import sweeps  # noqa: E402
from workbench.ray_engine import RayOptions  # noqa: E402
from workbench.runs import open_run  # noqa: E402
from workbench.sweep_spec import SweepSpec  # noqa: E402

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_reverse(tmp_path_factory.mktemp("data") / "reverse.h5", n=4000)


def test_the_dialog_offers_ray_and_checks_the_address(qtbot, data):
    dialog = SweepDialog(tiny_config(data))
    qtbot.addWidget(dialog)
    ok = dialog.buttons.button(dialog.buttons.StandardButton.Ok)
    assert dialog.choice().ray is None and not dialog.ray_address.isEnabled()
    dialog.engine.setCurrentIndex(dialog.engine.findData(ENGINE_RAY))
    assert dialog.ray_address.isEnabled() and not dialog.workers.isEnabled()
    assert dialog.choice().ray == RayOptions(None, 1, None)  # a private instance
    dialog.ray_address.setText("head-node")
    assert not ok.isEnabled() and "expected HOST:PORT" in dialog.error.text()
    dialog.ray_address.setText("10.0.0.5:6379")
    dialog.cpus_per_run.setValue(2)
    dialog.max_concurrent.setValue(8)
    assert ok.isEnabled() and dialog.error.text() == ""
    assert dialog.choice().ray == RayOptions("10.0.0.5:6379", 2, 8)


def _ray_children() -> list[str]:
    return [f"{p.pid} {p.name()}" for p in psutil.Process().children(recursive=True)
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


@pytest.mark.timeout(150)
def test_a_ray_sweep_from_the_window_follows_its_runs_live_and_leaves_no_process(
        qtbot, tmp_path, data, monkeypatch):
    monkeypatch.setattr(errors, "ask", lambda parent, title, text: True)
    shown: list[str] = []
    monkeypatch.setattr(errors, "show_failure", lambda parent, failure, **kw: shown.append(
        f"{failure.message}\n{failure.traceback}"))
    settings = AppSettings(open_settings(tmp_path / "settings.ini"))
    window = MainWindow(settings, runs_dir=tmp_path / "runs", load_dataset=False)
    qtbot.addWidget(window)
    # a short run that ends while a long one trains: the table shows the one, the label
    # the other's step; then Cancel
    spec = SweepSpec.build(tiny_config(data, checkpoint_seconds=60.0), {"steps": [20, 20000]})
    view = window.experiments.run_spec(spec, ray=RayOptions(cpus_per_run=1, num_cpus=2))
    assert view is not None
    labels: list[str] = []

    def live() -> bool:
        labels.append(view.progress.label.text())
        return bool(shown) or ("step" in labels[-1] and " step 0 of" not in labels[-1]
                               and view.table_data is not None
                               and any("completed" in row.statuses
                                       for row in view.table_data.rows))

    qtbot.waitUntil(live, timeout=90_000)
    assert not shown, shown[0]
    # a step read from the long run's folder (status.json) while it trains in a Ray worker
    assert "of 20,000" in labels[-1]
    short = view.table_data.rows[0]
    assert short.params == {"steps": 20} and short.statuses == ("completed",)
    view.progress.cancel_button.click()
    qtbot.waitUntil(lambda: not window.experiments.session.is_running(), timeout=60_000)
    assert view.wait_loaded()
    assert view.sweep.status == "cancelled" and len(view.sweep.run_ids) == 2
    assert [e.status for e in view.sweep.entries] == ["completed", "stopped"]
    assert all(open_run(r, tmp_path / "runs").status in ("completed", "stopped")
               for r in view.sweep.run_ids)
    [saved] = sweeps.list_sweeps(tmp_path / "runs")
    assert saved.sweep_id == view.sweep.sweep_id
    deadline = time.monotonic() + 10
    while _ray_children() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _ray_children() == []  # the private instance went with the sweep
    window.close()
