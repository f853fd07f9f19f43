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

- Beam search (token targets, `beam=k`): the top k hypotheses of a beam search of
  width k with their scores, log P / L^length_penalty (models.beam), and the search
  tree a view draws; `beam_search_sample` decodes one sample again from a forced
  prefix (the beam tree's click), `beam_accuracy` scores a split (`evaluate --beam`).
- `RunModelCache`: a recorded run's checkpoint model and open dataset, kept while the
  checkpoint file is unchanged (the GUI's checkpoint predictions and re-decodes).

Looking changes nothing: the model runs in eval mode (no dropout) without
gradients and draws no random number, and its training mode is restored. torch's
global generator is deliberately not saved and restored around the prediction: the
GUI predicts in a background thread while training runs in another, and restoring
the process-wide generator would rewind the draws training made meanwhile.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workbench.errors import ConfigError, DatasetError

DEFAULT_LENGTH_PENALTY = 0.75  # alpha of log P / L^alpha (models.beam, the CLI's default)
MAX_BEAM = 256


@dataclass(frozen=True, eq=False)
class ScoredHypothesis:
    """One hypothesis of a beam search, as a view shows it.

    ids: the decoded ids up to and including the end id (none if cut off by the step
    limit); text: decoded with the targets' vocabulary; score: log P / L^alpha, what
    the hypotheses are ranked by; log_prob: log P(ids | input); ended: it reached the
    end id; mismatch: (len(target),) True where it differs from the target.
    """

    ids: np.ndarray
    text: str | None
    score: float
    log_prob: float
    ended: bool
    mismatch: np.ndarray

    @property
    def exact(self) -> bool:
        return not bool(np.any(self.mismatch)) and len(self.ids) == len(self.mismatch)


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
    beam: int | None = None  # the beam width of `hypotheses` (None: no beam search)
    length_penalty: float = DEFAULT_LENGTH_PENALTY
    hypotheses: tuple[ScoredHypothesis, ...] = ()  # best score first
    search: Any | None = None  # models.beam.BeamResult: the tree a beam view draws
    vocab: tuple[str, ...] | None = None  # tokens: the targets' vocabulary (index = id)

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


def check_beam(model_config: Any, beam: Any, length_penalty: Any = DEFAULT_LENGTH_PENALTY,
               where: str = "beam search") -> tuple[int, float]:
    """(beam, length_penalty) checked: ConfigError for continuous targets (there are no
    hypotheses to rank), a width outside 1..MAX_BEAM or a penalty that is not a finite
    number >= 0."""
    if model_config.target.kind != "tokens":
        raise ConfigError(f"{where} needs token targets; this model's targets are continuous "
                          "(it generates one value per step: there are no hypotheses to rank)")
    if isinstance(beam, bool) or not isinstance(beam, int) or not 1 <= beam <= MAX_BEAM:
        raise ConfigError(f"beam = {beam!r} is not allowed: expected an integer from 1 to "
                          f"{MAX_BEAM}")
    try:
        alpha = float(length_penalty)
    except (TypeError, ValueError):
        alpha = math.nan
    if not math.isfinite(alpha) or alpha < 0:
        raise ConfigError(f"length penalty = {length_penalty!r} is not allowed: expected a "
                          "number >= 0 (0 ranks by probability alone, 1 per token)")
    return beam, alpha


def _read_sample(model: Any, dataset: Any, split: str, index: int,
                 normalization: Any | None) -> tuple[Any, Any]:
    """(the raw Batch of one sample, its tensors on the model's device), checked."""
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
    return batch, convert(batch)


def predict_sample(model: Any, dataset: Any, split: str, index: int,
                   normalization: Any | None = None, *, run_id: str | None = None,
                   beam: int | None = None,
                   length_penalty: float = DEFAULT_LENGTH_PENALTY) -> Prediction:
    """Predict sample `index` of `split` of an open SequenceDataset with a Seq2Seq.

    `normalization` is the run's (continuous data; None for tokens): what the model
    was trained on. With `beam` (token targets only: ConfigError otherwise) the
    prediction also holds the top `beam` hypotheses of a beam search of that width,
    ranked by log P / L^length_penalty, and its search tree. The model, its mode and
    the global RNG are left as they were (eval mode draws nothing; see the module
    docstring for why nothing is restored).
    """
    if beam is not None:
        beam, length_penalty = check_beam(model.config, beam, length_penalty)
    batch, t = _read_sample(model, dataset, split, index, normalization)
    target = model.config.target
    was_training = model.training
    model.eval()
    search = None
    try:
        with torch.no_grad():
            forced = model(t.src, t.tgt, t.src_lengths, t.tgt_lengths, teacher_forcing=1.0)
            loss = float(model.loss(forced, t.tgt, t.tgt_lengths, reduction="none")[0])
            generated = model.generate(t.src, int(t.tgt.shape[1]), t.src_lengths)
            if beam is not None:
                search = _beam_search(model, t, beam, length_penalty, ())
    finally:
        model.train(was_training)
    x_len, y_len = int(batch.x_lengths[0]), int(batch.y_lengths[0])
    common = dict(split=split, index=index, run_id=run_id, loss_teacher_forced=loss)
    if target.kind == "tokens":
        prediction = _token_prediction(batch, forced, generated, x_len, y_len, dataset.summary,
                                       common)
        if search is None:
            return prediction
        return dataclasses.replace(
            prediction, beam=beam, length_penalty=length_penalty, search=search,
            hypotheses=scored_hypotheses(search, prediction.target,
                                         dataset.summary.targets.vocab))
    return _continuous_prediction(batch, forced, generated, x_len, y_len, normalization,
                                  dataset.summary, common)


def _beam_search(model: Any, t: Any, beam: int, length_penalty: float,
                 prefix: tuple[int, ...]) -> Any:
    from models.beam import beam_search

    try:
        return beam_search(model, t.src, int(t.tgt.shape[1]), beam, length_penalty,
                           t.src_lengths, prefix=prefix)
    except ValueError as exc:  # a prefix the model cannot take (the view's own mistake)
        raise ConfigError(str(exc)) from None


def scored_hypotheses(search: Any, target: np.ndarray, vocab: tuple[str, ...] | None
                      ) -> tuple[ScoredHypothesis, ...]:
    """A models.beam.BeamResult's hypotheses as a view shows them (best first)."""
    out = []
    for h in search.hypotheses:
        ids = np.asarray(h.tokens, dtype=np.int64)
        out.append(ScoredHypothesis(ids, decode(ids, vocab), float(h.score), float(h.log_prob),
                                    bool(h.ended), mismatch_mask(ids, target)))
    return tuple(out)


def beam_search_sample(model: Any, dataset: Any, split: str, index: int,
                       normalization: Any | None = None, *, beam: int,
                       length_penalty: float = DEFAULT_LENGTH_PENALTY,
                       prefix: tuple[int, ...] = ()) -> tuple[Any, tuple[ScoredHypothesis, ...]]:
    """(BeamResult, its hypotheses scored against the target) of sample `index`, the
    first outputs forced to `prefix` (the beam view's click: "what if it said this?").
    ConfigError for continuous targets or a prefix the model cannot take."""
    beam, length_penalty = check_beam(model.config, beam, length_penalty)
    batch, t = _read_sample(model, dataset, split, index, normalization)
    was_training = model.training
    model.eval()
    try:
        search = _beam_search(model, t, beam, length_penalty, tuple(int(i) for i in prefix))
    finally:
        model.train(was_training)
    target = batch.y[0, : int(batch.y_lengths[0])].astype(np.int64)
    return search, scored_hypotheses(search, target, dataset.summary.targets.vocab)


def beam_accuracy(model: Any, split: Any, convert: Any, batch_size: int, *, beam: int,
                  length_penalty: float = DEFAULT_LENGTH_PENALTY) -> tuple[float, float, int]:
    """(token accuracy, sequence accuracy, sequences) of beam-search outputs over a split,
    counted as workbench.training.evaluate counts greedy ones: over each target's valid
    steps, a sequence that ended early wrong at every step it did not reach."""
    beam, length_penalty = check_beam(model.config, beam, length_penalty)
    was_training = model.training
    model.eval()
    correct = valid_total = exact = count = 0
    try:
        with torch.no_grad():
            for batch in split.iter_batches(batch_size, seed=0, epoch=0, shuffle=False):
                t = convert(batch)
                steps = int(t.tgt.shape[1])
                ids = model.generate(t.src, steps, t.src_lengths, beam=beam,
                                     length_penalty=length_penalty).outputs
                valid = (torch.arange(steps, device=t.tgt.device)[None, :]
                         < t.tgt_lengths.to(t.tgt.device)[:, None])
                hits = (ids == t.tgt) & valid
                correct += int(hits.sum())
                valid_total += int(valid.sum())
                exact += int((hits | ~valid).all(dim=1).sum())
                count += t.size
    finally:
        model.train(was_training)
    if count == 0:
        return math.nan, math.nan, 0
    return correct / max(valid_total, 1), exact / count, count


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
        free_running_text=decode(free_ids, vocab), vocab=vocab, **common)


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


# --- a recorded run's model, kept for repeated predictions ------------------------------------


def _file_version(path: Path) -> tuple[str, int, int]:
    """(path, modification time in ns, size): changes when the file is rewritten."""
    try:
        stat = path.stat()
    except OSError:
        return str(path), -1, -1
    return str(path), stat.st_mtime_ns, stat.st_size


@dataclass(frozen=True, eq=False)
class LoadedRun:
    """A run's checkpoint model (eval mode), its normalization and its open dataset."""

    run_id: str
    model: Any
    normalization: Any | None
    dataset: Any
    which: str  # "best" | "latest"
    step: int
    epoch: int


class RunModelCache:
    """One recorded run's best (else latest) checkpoint model and its dataset, kept for
    as long as the checkpoint file is the same (path, modification time and size): a
    run resumed and trained further writes a new one, which the next `load` reads.

    Not thread-safe: one job at a time uses it (a ui.jobs session runs one job at a
    time). `close()` releases the dataset.
    """

    def __init__(self, runs_dir: Any | None = None) -> None:
        self.runs_dir = runs_dir
        self._key: tuple | None = None
        self._loaded: LoadedRun | None = None

    def load(self, run_id: str) -> LoadedRun:
        from workbench.runs import open_run

        run = open_run(run_id, self.runs_dir)
        which = "best" if run.checkpoint_path("best").is_file() else "latest"
        key = (run_id, *_file_version(run.checkpoint_path(which)))
        if self._key != key or self._loaded is None:
            self.close()
            from workbench.datasets import SequenceDataset

            model, normalization, state = run.load_model(which)
            config = run.config()
            dataset = SequenceDataset.open(config.data, config.inputs, config.targets,
                                           split_seed=config.split_seed,
                                           val_fraction=config.val_fraction)
            position = state.get("position") or {}
            self._loaded = LoadedRun(run_id, model, normalization, dataset, which,
                                     int(position.get("step", 0) or 0),
                                     int(position.get("epoch", 0) or 0))
            self._key = key
        return self._loaded

    def close(self) -> None:
        loaded, self._loaded, self._key = self._loaded, None, None
        if loaded is not None:
            loaded.dataset.close()
