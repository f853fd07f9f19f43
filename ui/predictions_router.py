"""Where the Predictions panel's sample comes from: the live model, or a checkpoint.

During a run a `LivePredictor` (a Trainer listener) predicts the chosen validation
sample in the training thread, between steps, and sends it down the run's event
stream, so no training model is touched from the GUI thread. For a finished or
replayed run a `CheckpointPredictor` loads the run's best (else latest) checkpoint
into a model of its own, in the background.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject

from ui.plots.predictions_plot import CheckpointPredictor, LivePredictor, PredictionsPlot


class PredictionsRouter(QObject):
    """Routes the panel's sample choice to the live run or to a recorded run's checkpoint."""

    def __init__(self, plot: PredictionsPlot, runs_dir: str | Path,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.plot = plot
        self.checkpoint_predictor = CheckpointPredictor(runs_dir, self)
        self._live: LivePredictor | None = None
        self._run_id: str | None = None  # the recorded run whose checkpoint predicts
        plot.sample_changed.connect(self._on_sample_changed)
        plot.beam_changed.connect(lambda _k: self._on_sample_changed(plot.sample_index))
        plot.cleared.connect(self._on_plot_cleared)
        plot.settle_hook = self.settle
        self.checkpoint_predictor.predicted.connect(self._on_predicted)
        self.checkpoint_predictor.failed.connect(self._on_failed)

    def live_predictor(self) -> LivePredictor:
        """A new run starts: the listener that predicts its chosen sample as it trains."""
        self._live = LivePredictor(self.plot.sample_index, beam=self.plot.beam_width)
        self._run_id = None
        return self._live

    def show_recorded(self, run_id: str | None, *, predict_now: bool = True) -> None:
        """A finished or replayed run: its chosen sample (now, unless the live model's
        last prediction is shown already) and the samples picked next come from its
        checkpoint."""
        self._live = None
        self._run_id = run_id
        if run_id is not None and predict_now:
            self.checkpoint_predictor.request(run_id, self.plot.sample_index,
                                              beam=self.plot.beam_width)

    def settle(self, timeout_ms: int) -> None:
        """Wait up to `timeout_ms` for the checkpoint predictions asked for (the latest
        one included) to arrive and be shown (before an export)."""
        import time

        predictor = self.checkpoint_predictor
        deadline = time.monotonic() + max(0, timeout_ms) / 1000
        while predictor.job.is_running():
            left = int((deadline - time.monotonic()) * 1000)
            if left <= 0 or not predictor.job.wait(left):
                return  # `wait` delivered what the job left; a waiting request runs next

    def set_sample_count(self, count: int) -> None:
        self.plot.set_sample_count(count)

    def close(self) -> None:
        self.checkpoint_predictor.close()

    def _on_sample_changed(self, index: int) -> None:
        beam = self.plot.beam_width
        if self._live is not None:
            self._live.request(index, beam=beam)
        elif self._run_id is not None:
            self.checkpoint_predictor.request(self._run_id, index, beam=beam)

    def _on_plot_cleared(self) -> None:
        # The panel dropped its prediction (another run, another dataset): a finished
        # run's checkpoint no longer answers its sample choices. A live run's does.
        if self._live is None:
            self._run_id = None

    def _on_predicted(self, prediction: Any) -> None:
        if prediction.prediction.run_id == self._run_id:
            self.plot.show_prediction(prediction)

    def _on_failed(self, message: str) -> None:
        self.plot.show_message(f"No prediction for this run.\n\n{message}")
