"""How quickly does the Inspect window answer an edit, alone and while a run trains?

For an LSTM of hidden H on continuous data with T_in = T_out = T (one feature), the
Inspect panel (ui.inspect_panel, offscreen unless a display is set) shows a run's
checkpoint on a values input; each edit drags one point of the values plot (the real
editor), and the time from the edit to the painted panel is recorded: to the first
paint (outputs, hidden states, gates) and to the complete one (with the float64
connectivity matrix), when the panel's slot has set it; with --rendered, "rendered" adds
the time until Qt has drawn it (the end of the next Paint event: the application's
notify is timed, in Python, which itself slows the GUI thread, most while training: nan
without --rendered). Edits are made one after another, each once the previous one is
painted. A 5 ms QTimer measures how late the GUI thread's event loop runs meanwhile
(the longest lateness is the longest the GUI thread was blocked).

Each configuration is measured without training and with a real run training in the
background: RunService(...).start(config).run() in a plain thread, an LSTM of the same
size on the same data. torch uses 1 thread. With --baseline, each is measured with the
connectivity's first version too (workbench.explain's method "unrolled": the batched
backward pass over the instrumented, unrolled forward pass, against the default "fused"
over torch's fused kernels), the two methods taking turns edit by edit, so that the
ratio of the two is of the same machine under the same load.

Target (reported, never asserted): p99 of edit-to-complete-paint under 150 ms at H 128,
T 50 while training; the GUI thread never blocked over 50 ms.
Other work on the machine shows up in every figure; run it alone.

    .venv/bin/python benchmarks/bench_inspect.py [--edits 30] [--configs 128x50,256x100]
                                                 [--baseline] [--rendered]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

TICK_MS = 5


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def make_data(folder: Path, steps: int) -> Path:
    from workbench.tasks import generate

    return generate("sine", folder / f"sine-{steps}.h5", n=512, seed=0, input_steps=steps,
                    target_steps=steps)


def run_config(data: Path, hidden: int, steps: int):
    from workbench.config import RunConfig

    return RunConfig(data=str(data), cell="lstm", hidden=hidden, batch_size=32, epochs=None,
                     steps=steps, lr=1e-3, threads=1, probe_every=10**9).validate()


def train_checkpoint(data: Path, hidden: int, runs_dir: Path) -> str:
    """A run to inspect: two training steps, so it has a checkpoint."""
    from workbench.run_service import RunService

    active = RunService(runs_dir).start(run_config(data, hidden, 2))
    active.run()
    return active.run_id


class Background:
    """A real run training in a plain thread until stopped."""

    def __init__(self, data: Path, hidden: int, runs_dir: Path) -> None:
        from workbench.run_service import RunService

        self.active = RunService(runs_dir).start(run_config(data, hidden, 10**7),
                                                 thread_policy="gui")
        self.thread = threading.Thread(target=self.active.run, name="bench-train", daemon=True)

    def __enter__(self) -> Background:
        self.thread.start()
        time.sleep(1.0)  # past its first steps
        return self

    def __exit__(self, *_exc: object) -> None:
        self.active.request_stop()
        self.thread.join(120)


def paint_clock_app():
    """A QApplication that notes when its latest Paint event ended (`painted_at`)."""
    from PySide6 import QtCore, QtWidgets

    class PaintClock(QtWidgets.QApplication):
        painted_at = 0.0

        def notify(self, receiver: QtCore.QObject, event: QtCore.QEvent) -> bool:  # noqa: N802
            done = super().notify(receiver, event)
            if event.type() == QtCore.QEvent.Type.Paint:
                self.painted_at = time.perf_counter()
            return done

    return PaintClock(sys.argv[:1])


def measure(app, runs_dir: Path, run_id: str, steps: int, edits: int,
            methods: tuple[str, ...] = ("fused",)) -> dict[str, dict[str, list[float]]]:
    """Edit-to-paint latencies (ms) and event-loop lateness (ms) over `edits` edits per
    connectivity method (workbench.explain.CONNECTIVITY_METHODS): the methods take turns,
    edit by edit, so that each sees the same load. {method: {figure: values}}."""
    import numpy as np
    from PySide6 import QtCore

    from ui.inspect_panel import InspectPanel

    panel = InspectPanel(runs_dir, run_id=run_id)
    panel.connectivity_method = methods[0]
    panel.resize(1280, 900)
    panel.show()

    def settled() -> bool:
        return (panel.requested_seq > 0 and panel.painted_seq == panel.requested_seq
                and panel.painted_complete and not panel.job.is_running())

    def wait(until, seconds: float = 300.0) -> None:
        """Run the event loop (the GUI thread sleeps in Qt, as in the app) until `until()`."""
        if until():
            return
        loop = QtCore.QEventLoop()

        def check(*_args: object) -> None:
            if until():
                loop.quit()

        panel.painted.connect(check)
        panel.list_job.finished.connect(check)
        panel.job.finished.connect(check)
        QtCore.QTimer.singleShot(int(seconds * 1000), loop.quit)
        loop.exec()
        for signal in (panel.painted, panel.list_job.finished, panel.job.finished):
            signal.disconnect(check)
        if not until():
            raise RuntimeError("the inspector did not answer in time")

    marks: dict[int, float] = {}  # request -> when its complete paint was set
    panel.painted.connect(lambda seq, complete: marks.__setitem__(seq, time.perf_counter())
                          if complete else None)

    def drawn() -> float | None:
        """Wait (the event loop running) until Qt has drawn the newest complete paint;
        the edit-to-drawn latency (ms), None when unknown."""
        mark = marks.get(panel.requested_seq)
        if mark is None or not hasattr(app, "painted_at"):
            return None
        end = time.perf_counter() + 1.0
        while app.painted_at <= mark and time.perf_counter() < end:
            _idle(app, time.perf_counter() + 0.002)
        whole = [ms for seq, complete, ms in panel.latencies
                 if complete and seq == panel.requested_seq]
        if app.painted_at <= mark or not whole:
            return None
        return whole[-1] + (app.painted_at - mark) * 1000

    wait(lambda: run_id in panel.choices and settled())
    panel.editor.set_mode("values")
    panel.editor.set_values(np.sin(np.arange(steps) / 3.0)[:, None])
    wait(settled)
    for method in methods:  # warm: the model is loaded, autograd's batched backward compiled
        panel.connectivity_method = method
        for _ in range(2):
            panel.editor.points.drag_point(1, 0.5)
            wait(settled)
    panel.latencies.clear()
    panel.paint_ms.clear()
    panel.compute_ms.clear()
    late: list[float] = []
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        late.append(max(0.0, (now - last[0]) * 1000 - TICK_MS))
        last[0] = now

    names = ("first", "complete", "rendered", "late", "paint", "job_first", "job_complete")
    out = {m: {name: [] for name in names} for m in methods}
    timer = QtCore.QTimer()
    timer.setInterval(TICK_MS)
    timer.timeout.connect(tick)
    timer.start()
    rng = np.random.default_rng(0)
    for i in range(edits * len(methods)):
        method = methods[i % len(methods)]
        panel.connectivity_method = method
        sizes = len(panel.latencies), len(panel.paint_ms), len(panel.compute_ms)
        late.clear()
        last[0] = time.perf_counter()
        panel.editor.points.drag_point(int(rng.integers(0, steps)), float(rng.normal()))
        wait(settled)
        rendered = drawn()
        figures = out[method]
        for _seq, complete, ms in panel.latencies[sizes[0]:]:
            figures["complete" if complete else "first"].append(ms)
        figures["paint"] += panel.paint_ms[sizes[1]:]
        for complete, ms in panel.compute_ms[sizes[2]:]:
            figures["job_complete" if complete else "job_first"].append(ms)
        if rendered is not None:
            figures["rendered"].append(rendered)
        figures["late"] += late
    timer.stop()
    late.clear()
    last[0] = time.perf_counter()
    timer.start()  # the same timer with the panel shown and nothing asked: the machine's noise
    _idle(app, time.perf_counter() + 2.0)
    timer.stop()
    for figures in out.values():
        figures["quiet"] = list(late)
    panel.close_jobs()
    panel.close()
    panel.deleteLater()
    app.processEvents()
    return out


def _idle(app, end: float) -> None:
    """Run the event loop, asking nothing, until `end` (perf_counter)."""
    from PySide6 import QtCore

    loop = QtCore.QEventLoop()
    QtCore.QTimer.singleShot(max(0, int((end - time.perf_counter()) * 1000)), loop.quit)
    loop.exec()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=30, help="edits per measurement")
    parser.add_argument("--configs", default="128x50,256x100",
                        help="HIDDENxT pairs, comma-separated")
    parser.add_argument("--rendered", action="store_true",
                        help="time Qt's drawing too (a Python notify on every event: it "
                        "slows the GUI thread, most while training, so it is not the default)")
    parser.add_argument("--baseline", action="store_true",
                        help="measure the connectivity's first version too (unrolled)")
    args = parser.parse_args(argv)

    import torch
    from PySide6 import QtWidgets

    torch.set_num_threads(1)
    app = QtWidgets.QApplication.instance() or (
        paint_clock_app() if args.rendered else QtWidgets.QApplication(sys.argv[:1]))
    configs = [tuple(int(v) for v in c.split("x")) for c in args.configs.split(",")]
    methods = ("fused", "unrolled") if args.baseline else ("fused",)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-inspect-") as temp:
        folder = Path(temp)
        runs_dir = folder / "runs"
        for hidden, steps in configs:
            data = make_data(folder, steps)
            run_id = train_checkpoint(data, hidden, runs_dir)
            idle = measure(app, runs_dir, run_id, steps, args.edits, methods)
            with Background(data, hidden, folder / "background-runs"):
                busy = measure(app, runs_dir, run_id, steps, args.edits, methods)
            for method in methods:
                rows.append((hidden, steps, method, idle[method], busy[method]))
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"\nInspect panel, LSTM, continuous T_in = T_out = T, 1 feature, {args.edits} edits "
          f"(a dragged point each), torch 1 thread; {os.cpu_count()} cores, load average "
          f"{load} at the end")
    print(f"{'H':>4} {'T':>4} {'connectivity':<16} {'training':<9} {'first paint p50/p99':>20} "
          f"{'complete p50/p99':>18} {'rendered p50/p99':>17} {'vs idle':>8} "
          f"{'GUI late p99/max':>17} "
          f"{'quiet p99/max':>14} {'paint p99':>9} "
          f"{'job p50 first/complete':>23}")
    for hidden, steps, method, idle, busy in rows:
        base = statistics.median(idle["complete"])
        for label, figures in (("no", idle), ("yes", busy)):
            ratio = statistics.median(figures["complete"]) / base
            print(f"{hidden:>4} {steps:>4} {method:<16} {label:<9} "
                  f"{percentile(figures['first'], 0.5):>9.0f} / {percentile(figures['first'], 0.99):<7.0f}ms"
                  f"{percentile(figures['complete'], 0.5):>7.0f} / {percentile(figures['complete'], 0.99):<6.0f}ms"
                  f"{percentile(figures['rendered'], 0.5):>7.0f} / {percentile(figures['rendered'], 0.99):<6.0f}ms"
                  f"{ratio:>8.2f}x"
                  f"{percentile(figures['late'], 0.99):>9.1f} / {max(figures['late'], default=0):<5.1f}ms"
                  f"{percentile(figures['quiet'], 0.99):>7.1f} / {max(figures['quiet'], default=0):<5.1f}ms"
                  f"{percentile(figures['paint'], 0.99):>7.1f}ms"
                  f"{percentile(figures['job_first'], 0.5):>12.0f} / "
                  f"{percentile(figures['job_complete'], 0.5):<5.0f}ms")
    print("first paint: outputs, hidden states and gates; complete: with the connectivity "
          "matrix; rendered: the complete paint drawn by Qt. GUI late: how late a 5 ms timer fired (the GUI thread's longest block). "
          "quiet: the same timer for 2 s with nothing asked (the machine's own noise; while "
          "training, the training thread's). job: the worker thread's own time to each part.")
    if args.baseline:
        print("\nunrolled / fused, the same machine and load (p50 and p99 of the "
              "complete paint; the job's p50 to the complete result):")
        found = {(h, t, m): (i, b) for h, t, m, i, b in rows}
        for hidden, steps in configs:
            new, old = found[(hidden, steps, "fused")], found[(hidden, steps, "unrolled")]
            for k, label in enumerate(("no", "yes")):
                q50 = percentile(old[k]["complete"], 0.5) / percentile(new[k]["complete"], 0.5)
                q99 = percentile(old[k]["complete"], 0.99) / percentile(new[k]["complete"], 0.99)
                job = (percentile(old[k]["job_complete"], 0.5)
                       / percentile(new[k]["job_complete"], 0.5))
                print(f"  H {hidden} T {steps}, training {label}: {q50:.2f}x p50, "
                      f"{q99:.2f}x p99, job {job:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
