"""One sample's predictions: what the model makes of a validation sequence.

For the GUI's predictions panel (and anyone who wants to look at a model's output
rather than its loss): a sample's input and target, the decoder's teacher-forced
output (each step fed the true previous target, as in training) and its
free-running output (`Seq2Seq.generate`: each step fed its own previous
prediction, as in use), side by side.

- Continuous data: arrays in the data's own units (denormalised with the training
  split's statistics the run recorded) and the absolute error per step.
- Tokens: the id sequences, the decoded strings (the file's vocabulary) and a boolean
  mask of the target steps the model got wrong.

Looking changes nothing: the model runs in eval mode (no dropout) without
gradients and draws no random number, and its training mode is restored. torch's
global generator is deliberately not saved and restored around the prediction: the
GUI predicts in a background thread while training runs in another, and restoring
the process-wide generator would rewind the draws training made meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from workbench.errors import DatasetError


@dataclass(frozen=True, eq=False)
class Prediction:
    """One sample, its target and the model's two outputs, trimmed to valid steps.

    Continuous (kind "continuous"): input (T_in, F_in), target (T_out, F_out),
    teacher_forced and free_running (T_out, F_out), all in the data's own units;
    teacher_forced_error / free_running_error (T_out,): mean over features of the
    absolute error per step. Tokens: input (T_in,), target (T_out,) ids (ending with
    the end id), teacher_forced (T_out,) argmax ids, free_running (generated up to
    and including its end id, for at most as many steps as the file's padded target
    length, so a sample shorter than the padding can get a longer output); *_text the
    decoded strings; *_mismatch (T_out,) True where the output differs from the target
    (a generated sequence that ended early counts its missing steps as wrong). Losses are the
    sample's loss as trained (normalised units for continuous targets).
    """

    kind: str  # "continuous" | "tokens"
    split: str
    index: int
    run_id: str | None
    input: np.ndarray
    target: np.ndarray
    teacher_forced: np.ndarray
    free_running: np.ndarray
    loss_teacher_forced: float
    teacher_forced_error: np.ndarray | None = None
    free_running_error: np.ndarray | None = None
    teacher_forced_mismatch: np.ndarray | None = None
    free_running_mismatch: np.ndarray | None = None
    input_text: str | None = None
    target_text: str | None = None
    teacher_forced_text: str | None = None
    free_running_text: str | None = None

    @property
    def exact(self) -> bool | None:
        """Tokens: the generated sequence equals the target exactly."""
        if self.kind != "tokens":
            return None
        return bool(len(self.free_running) == len(self.target)
                    and np.array_equal(self.free_running, self.target))


def decode(ids: np.ndarray, vocab: tuple[str, ...] | None) -> str | None:
    """Ids as text: joined without spaces when every symbol is one character."""
    if vocab is None:
        return None
    words = [vocab[i] if 0 <= i < len(vocab) else f"<{i}>" for i in np.asarray(ids).tolist()]
    sep = "" if all(len(w) == 1 for w in words) else " "
    return sep.join(words)


def mismatch_mask(output: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(len(target),) True where output differs from target; missing steps count wrong."""
    padded = np.full(len(target), -1, dtype=np.int64)
    n = min(len(output), len(target))
    padded[:n] = output[:n]
    return padded != target


_mismatch = mismatch_mask  # the name ui/plots/predictions_plot.py imports


def predict_sample(model: Any, dataset: Any, split: str, index: int,
                   normalization: Any | None = None, *, run_id: str | None = None) -> Prediction:
    """Predict sample `index` of `split` of an open SequenceDataset with a Seq2Seq.

    `normalization` is the run's (continuous data; None for tokens): what the model
    was trained on. The model, its mode and the global RNG are left as they were
    (eval mode draws nothing; see the module docstring for why nothing is restored).
    """
    from workbench.training import BatchConverter, check_compatible

    check_compatible(model.config, dataset.summary)
    data = dataset.split(split)
    if not 0 <= index < len(data):
        raise DatasetError(f"{dataset.summary.path}: sample {index} is not in the {split} "
                           f"split (it has {len(data)} sequences)")
    batch = data.read(np.array([index], dtype=np.int64))
    device = next(model.parameters()).device
    source, target = model.config.source, model.config.target
    convert = BatchConverter(normalization, source.kind == "continuous",
                             target.kind == "continuous", str(device))
    t = convert(batch)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            forced = model(t.src, t.tgt, t.src_lengths, t.tgt_lengths, teacher_forcing=1.0)
            loss = float(model.loss(forced, t.tgt, t.tgt_lengths, reduction="none")[0])
            generated = model.generate(t.src, int(t.tgt.shape[1]), t.src_lengths)
    finally:
        model.train(was_training)
    x_len, y_len = int(batch.x_lengths[0]), int(batch.y_lengths[0])
    common = dict(split=split, index=index, run_id=run_id, loss_teacher_forced=loss)
    if target.kind == "tokens":
        return _token_prediction(batch, forced, generated, x_len, y_len, dataset.summary, common)
    return _continuous_prediction(batch, forced, generated, x_len, y_len, normalization,
                                  dataset.summary, common)


def _token_prediction(batch: Any, forced: torch.Tensor, generated: Any, x_len: int, y_len: int,
                      summary: Any, common: dict[str, Any]) -> Prediction:
    target = batch.y[0, :y_len].astype(np.int64)
    tf_ids = forced[0, :y_len].argmax(-1).cpu().numpy().astype(np.int64)
    free_ids = generated.outputs[0, : int(generated.lengths[0])].cpu().numpy().astype(np.int64)
    source = batch.x[0, :x_len]
    source_vocab = summary.inputs.vocab
    vocab = summary.targets.vocab
    return Prediction(
        kind="tokens", input=source, target=target, teacher_forced=tf_ids,
        free_running=free_ids,
        teacher_forced_mismatch=mismatch_mask(tf_ids, target),
        free_running_mismatch=mismatch_mask(free_ids, target),
        input_text=decode(source, source_vocab) if source_vocab else None,
        target_text=decode(target, vocab), teacher_forced_text=decode(tf_ids, vocab),
        free_running_text=decode(free_ids, vocab), **common)


def _continuous_prediction(batch: Any, forced: torch.Tensor, generated: Any, x_len: int,
                           y_len: int, normalization: Any | None, summary: Any,
                           common: dict[str, Any]) -> Prediction:
    def units(values: torch.Tensor) -> np.ndarray:
        array = values[0, :y_len].detach().cpu().numpy().astype(np.float64)
        return normalization.denormalize_y(array) if normalization is not None else array

    target = batch.y[0, :y_len].astype(np.float64)
    tf_values, free_values = units(forced), units(generated.outputs)
    source = batch.x[0, :x_len]
    if summary.inputs.kind == "continuous":
        source = source.astype(np.float64)
    return Prediction(
        kind="continuous", input=source, target=target, teacher_forced=tf_values,
        free_running=free_values,
        teacher_forced_error=np.abs(tf_values - target).mean(axis=-1),
        free_running_error=np.abs(free_values - target).mean(axis=-1), **common)


def predict_from_run(run: Any, dataset: Any | None, index: int, split: str = "val", *,
                     checkpoint: str | None = None, runs_dir: Any | None = None) -> Prediction:
    """Predict with a recorded run's checkpoint (best, else latest; or `checkpoint`).

    `run` is a workbench.runs.Run, a run id or a run folder; `dataset` an open
    SequenceDataset, or None to open the run's own data with its split seed (so
    "val" is the validation split the run was scored on).
    """
    from workbench.runs import Run, open_run

    if not isinstance(run, Run):
        run = open_run(run, runs_dir)
    which = checkpoint or ("best" if run.checkpoint_path("best").is_file() else "latest")
    model, normalization, _state = run.load_model(which)
    if dataset is not None:
        return predict_sample(model, dataset, split, index, normalization, run_id=run.run_id)
    from workbench.datasets import SequenceDataset

    config = run.config()
    with SequenceDataset.open(config.data, config.inputs, config.targets,
                              split_seed=config.split_seed,
                              val_fraction=config.val_fraction) as opened:
        return predict_sample(model, opened, split, index, normalization, run_id=run.run_id)
