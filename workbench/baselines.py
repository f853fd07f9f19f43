"""Baselines: what trivial predictors score on a run's data, to read every loss against.

A loss alone says little: 9.09 units² on a weekly series is good or bad only next to
what repeating the last input (8.57) or last year's value (2.48) scores. So each run
records, when it starts, the baselines of its validation split, in the units of its
losses (normalised and data units), and every table shows them beside the model:

continuous targets
    persistence            every target step is the last valid input step (needs the
                           inputs to hold the target's features: matched by the file's
                           recorded column names, else feature i for feature i when
                           both sides have as many; otherwise skipped, with the reason)
    seasonal_persistence   target step h is the input value one period P before it
                           (x[L - 1 + h - P * ceil(h / P)]): P from the file's `period`
                           attribute, else detected by a cheap autocorrelation of the
                           training inputs; absent when neither gives one
    mean                   every step is the training split's mean of each feature
                           (the normalisation's mean: 0 in normalised units)

token targets
    chance                 uniform over the V target ids: cross-entropy ln V,
                           token accuracy 1 / V
    majority               the training split's token frequencies as a constant
                           prediction (add-one smoothed): its cross-entropy, and the
                           accuracy of always emitting the most frequent token

Each loss is reduced as the model's (Seq2Seq.loss): per step the mean over features
(MSE) or the cross-entropy, per sample the mean over its valid target steps, then the
mean over samples; accuracies pool the valid target tokens as `evaluate` does. A
forecast is free-running, so a model "beats" a loss baseline when its free-running
validation loss is lower (tokens: teacher-forced cross-entropy below chance, token
accuracy above the majority's).

Computed streaming in blocks (bounded memory), over the whole split up to
MAX_SEQUENCES sequences, else over SAMPLE_BLOCKS contiguous blocks spread evenly over
it (`sequences` says how many). The record is plain JSON (docs/run-format.md).
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workbench import units

BASELINES_FORMAT = 1
MAX_SEQUENCES = 20_000  # of a split the recorded baselines are computed over
SAMPLE_BLOCKS = 20  # contiguous blocks a larger split is sampled in
READ_ROWS = 2048  # sequences read at a time
PERIOD_SEQUENCES = 256  # training inputs the autocorrelation looks at
PERIOD_MIN_ACF = 0.5  # a detected period's mean autocorrelation, at least
LOSS_NAMES = ("persistence", "seasonal_persistence", "mean")
TOKEN_NAMES = ("chance", "majority")
TITLES = {"persistence": "persistence", "seasonal_persistence": "seasonal persistence",
          "mean": "training mean", "chance": "chance", "majority": "majority token"}
NOTE_NAMES = {**TITLES, "mean": "the training mean", "majority": "the majority token"}


# --- what the file says about itself --------------------------------------------------------


@dataclass(frozen=True)
class Hints:
    """What a data file records that the baselines use: its period (steps) and the
    names of the input and target features (import-series records them)."""

    period: int | None = None
    input_columns: tuple[str, ...] | None = None
    target_columns: tuple[str, ...] | None = None


def file_hints(path: str | None) -> Hints:
    """The root attributes `period`, `input_columns` and `target_columns` (JSON lists) of
    an HDF5 file; empty Hints when the file has none of them or cannot be read."""
    if not path:
        return Hints()
    try:
        import h5py

        with h5py.File(path, "r") as f:
            attrs = dict(f.attrs)
    except (OSError, ValueError, TypeError):
        return Hints()
    return Hints(_period_attr(attrs.get("period")), _columns(attrs.get("input_columns")),
                 _columns(attrs.get("target_columns")))


def _period_attr(value: Any) -> int | None:
    with contextlib.suppress(TypeError, ValueError):
        number = float(np.asarray(value).reshape(-1)[0])
        if math.isfinite(number) and number >= 2 and number == int(number):
            return int(number)
    return None


def _columns(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    with contextlib.suppress(TypeError, ValueError):
        names = json.loads(value) if isinstance(value, str) else list(value)
        if isinstance(names, list) and all(isinstance(n, str) for n in names):
            return tuple(names)
    return None


# --- which split rows ---------------------------------------------------------------------------


def sample_indices(n: int, limit: int | None = MAX_SEQUENCES,
                   blocks: int = SAMPLE_BLOCKS) -> np.ndarray:
    """0..n-1 when n <= limit, else `blocks` runs of consecutive indices spread evenly
    (contiguous runs read fast; single scattered rows would not)."""
    if limit is None or n <= limit:
        return np.arange(n, dtype=np.int64)
    blocks = max(1, min(blocks, limit))
    size = limit // blocks
    starts = np.linspace(0, n - size, blocks).astype(np.int64)
    return np.unique(np.concatenate([np.arange(s, s + size, dtype=np.int64) for s in starts]))


def _chunks(indices: np.ndarray):
    for lo in range(0, len(indices), READ_ROWS):
        yield indices[lo:lo + READ_ROWS]


# --- the period ---------------------------------------------------------------------------


def detect_period(split: Any, *, sequences: int = PERIOD_SEQUENCES,
                  min_acf: float = PERIOD_MIN_ACF) -> tuple[int | None, float | None]:
    """(period, its autocorrelation) of a split's continuous inputs, or (None, None).

    The autocorrelation of each full-length input sequence (its own mean removed, each
    lag's products averaged over the pairs it has), averaged over up to `sequences`
    sequences and every feature, at lags 2 .. 2/3 of the input length. The period is the
    highest local maximum after the first dip, if it reaches `min_acf`: a cycle strong
    enough to see inside one input window.
    """
    n = len(split)
    if n == 0:
        return None, None
    rows = sample_indices(n, sequences, blocks=4)
    batch = split.read(rows)
    x = np.asarray(batch.x, dtype=np.float64)
    if x.ndim != 3:
        return None, None
    steps = x.shape[1]
    full = batch.x_lengths == steps
    x = x[full]
    max_lag = (2 * steps) // 3
    if x.shape[0] == 0 or max_lag < 3:
        return None, None
    z = x - x.mean(axis=1, keepdims=True)
    spectrum = np.fft.rfft(z, n=2 * steps, axis=1)
    acov = np.fft.irfft(spectrum * np.conj(spectrum), n=2 * steps, axis=1)[:, :steps]
    acov = acov / (steps - np.arange(steps))[None, :, None]
    variance = acov[:, :1, :]
    keep = variance[:, 0, :] > 1e-12
    if not keep.any():
        return None, None
    acf = (acov / np.where(variance > 1e-12, variance, 1.0)).transpose(0, 2, 1)[keep]
    mean = acf.mean(axis=0)[: max_lag + 2]
    dip = next((k for k in range(1, len(mean) - 1)
                if mean[k] < mean[k - 1] and mean[k] <= mean[k + 1]), None)
    if dip is None:
        return None, None
    peaks = [k for k in range(max(dip + 1, 2), min(max_lag, len(mean) - 2) + 1)
             if mean[k] > mean[k - 1] and mean[k] >= mean[k + 1] and mean[k] >= min_acf]
    if not peaks:
        return None, None
    best = max(peaks, key=lambda k: mean[k])
    return int(best), float(mean[best])


# --- computing them --------------------------------------------------------------------------


@dataclass
class _Sums:
    """Per-sample losses summed over samples, in both units."""

    data: float = 0.0
    normalized: float = 0.0

    def add(self, squared: np.ndarray, valid: np.ndarray, inv_var: np.ndarray | None) -> None:
        """`squared` (B, T, F) data-unit squared errors, `valid` (B, T) float mask."""
        counts = np.maximum(valid.sum(axis=1), 1.0)
        self.data += float(((squared.mean(axis=-1) * valid).sum(axis=1) / counts).sum())
        if inv_var is not None:
            scaled = (squared * inv_var).mean(axis=-1)
            self.normalized += float(((scaled * valid).sum(axis=1) / counts).sum())


@dataclass
class _Plan:
    """What the continuous baselines need: which input feature stands for each target
    feature, the period, and why anything is left out."""

    features: np.ndarray | None = None  # input index per target feature
    what: str = ""
    period: int | None = None
    period_from: str = ""
    skipped: dict[str, str] = field(default_factory=dict)


def compute(summary: Any, split: Any, *, normalization: Any | None = None,
            train: Any | None = None, hints: Hints | None = None,
            limit: int | None = MAX_SEQUENCES, detect: bool = True) -> dict[str, Any]:
    """The baselines record of `split` (a DataSplit of the dataset `summary` describes).

    `normalization` (the run's) gives the training mean and the normalised units;
    `train` (the training split) gives the majority token and the detected period;
    `hints` what the file records (file_hints). `limit` bounds the sequences read
    (None: all of them). Plain JSON values; see the module docstring for each baseline.
    """
    n = len(split)
    indices = sample_indices(n, limit)
    record: dict[str, Any] = {"format": BASELINES_FORMAT, "kind": summary.targets.kind,
                              "split": split.name, "sequences": int(len(indices)),
                              "split_sequences": int(n), "scores": {}, "skipped": {}}
    if n == 0:
        record["skipped"]["all"] = f"the {split.name} split is empty"
        return record
    if summary.targets.kind == "tokens":
        _token_scores(record, summary, split, indices, train)
    else:
        _continuous_scores(record, summary, split, indices, normalization, train,
                           hints or Hints(), detect)
    return record


def _plan(summary: Any, hints: Hints, train: Any | None, detect: bool) -> _Plan:
    plan = _Plan()
    f_in, f_out = summary.inputs.features, summary.targets.features
    if summary.inputs.kind != "continuous":
        reason = "the inputs are tokens, not values of the targets"
        plan.skipped = {"persistence": reason, "seasonal_persistence": reason}
        return plan
    names_in, names_out = hints.input_columns, hints.target_columns
    if names_in and names_out and len(names_in) == f_in and len(names_out) == f_out:
        missing = [name for name in names_out if name not in names_in]
        if missing:
            reason = f"the target column {missing[0]!r} is not among the inputs"
            plan.skipped = {"persistence": reason, "seasonal_persistence": reason}
            return plan
        plan.features = np.array([names_in.index(name) for name in names_out], dtype=np.int64)
        plan.what = "by column name: " + ", ".join(f"{name!r}" for name in names_out)
    elif f_in == f_out:
        plan.features = np.arange(f_out, dtype=np.int64)
        plan.what = "" if f_out == 1 else "input feature i for target feature i"
    else:
        reason = (f"the inputs have {f_in} features and the targets {f_out}, and the file "
                  "names no columns to match them")
        plan.skipped = {"persistence": reason, "seasonal_persistence": reason}
        return plan
    if hints.period is not None:
        plan.period, plan.period_from = hints.period, "the file's period attribute"
    elif detect and train is not None:
        period, acf = detect_period(train)
        if period is not None:
            plan.period = period
            plan.period_from = f"detected: autocorrelation {acf:.2f} in the training inputs"
    if plan.period is None:
        plan.skipped["seasonal_persistence"] = ("no period: the file records none and the "
                                                "training inputs show no clear cycle")
    elif plan.period > summary.inputs.steps:
        plan.skipped["seasonal_persistence"] = (
            f"the period ({plan.period} steps) is longer than the inputs "
            f"({summary.inputs.steps} steps)")
        plan.period = None
    return plan


def _continuous_scores(record: dict[str, Any], summary: Any, split: Any, indices: np.ndarray,
                       normalization: Any | None, train: Any | None, hints: Hints,
                       detect: bool) -> None:
    plan = _plan(summary, hints, train, detect)
    y_mean = getattr(normalization, "y_mean", None)
    y_std = getattr(normalization, "y_std", None)
    inv_var = (1.0 / np.square(np.asarray(y_std, dtype=np.float64))) if y_std is not None else None
    sums = {"mean": _Sums()}
    if plan.features is not None:
        sums["persistence"] = _Sums()
    if plan.period is not None:
        sums["seasonal_persistence"] = _Sums()
    if y_mean is None:
        del sums["mean"]
        plan.skipped["mean"] = "no training statistics"
    short = 0  # samples whose input is shorter than the period
    count = 0
    for rows in _chunks(indices):
        batch = split.read(rows)
        y = np.asarray(batch.y, dtype=np.float64)
        steps = y.shape[1]
        valid = (np.arange(steps)[None, :] < batch.y_lengths[:, None]).astype(np.float64)
        count += len(rows)
        if "mean" in sums:
            sums["mean"].add(np.square(y - np.asarray(y_mean)[None, None, :]), valid, inv_var)
        if plan.features is None:
            continue
        x = np.asarray(batch.x, dtype=np.float64)[:, :, plan.features]
        last = np.asarray(batch.x_lengths, dtype=np.int64) - 1
        b = np.arange(len(rows))[:, None]
        sums["persistence"].add(np.square(y - x[np.arange(len(rows)), last][:, None, :]),
                                valid, inv_var)
        if plan.period is not None:
            h = np.arange(1, steps + 1)[None, :]
            source = last[:, None] + h - plan.period * np.ceil(h / plan.period).astype(np.int64)
            short += int((source.min(axis=1) < 0).sum())
            sums["seasonal_persistence"].add(np.square(y - x[b, np.maximum(source, 0)]),
                                             valid, inv_var)
    if short and "seasonal_persistence" in sums:
        del sums["seasonal_persistence"]
        plan.skipped["seasonal_persistence"] = (
            f"{short} of {count} inputs are shorter than the period ({plan.period} steps)")
    words = {"persistence": "repeat the last input step" + (f" ({plan.what})" if plan.what else ""),
             "seasonal_persistence": (f"repeat the value one period ({plan.period} steps, "
                                      f"{plan.period_from}) earlier"),
             "mean": "predict the training split's mean of each target feature"}
    for name in LOSS_NAMES:
        if name not in sums:
            continue
        entry = {"data": sums[name].data / count,
                 "normalized": sums[name].normalized / count if inv_var is not None else None,
                 "what": words[name]}
        if name == "seasonal_persistence":
            entry.update(period=plan.period, period_from=plan.period_from)
        record["scores"][name] = entry
    record["skipped"].update({k: v for k, v in plan.skipped.items() if k not in sums})


def _token_scores(record: dict[str, Any], summary: Any, split: Any, indices: np.ndarray,
                  train: Any | None) -> None:
    vocab = int(summary.targets.vocab_size or 0)
    if vocab < 1:
        record["skipped"]["all"] = "no target vocabulary"
        return
    record["scores"]["chance"] = {"loss": math.log(vocab), "token_accuracy": 1.0 / vocab,
                                  "what": f"uniform over the {vocab} target ids"}
    source = train if train is not None and len(train) else split
    counts = np.zeros(vocab, dtype=np.float64)
    for rows in _chunks(sample_indices(len(source))):
        batch = source.read(rows)
        counts += _valid_counts(batch, vocab)
    if counts.sum() == 0:
        record["skipped"]["majority"] = "no target tokens in the training split"
        return
    majority = int(np.argmax(counts))
    log_p = np.log((counts + 1.0) / (counts.sum() + vocab))
    loss = hits = tokens = 0.0
    for rows in _chunks(indices):
        batch = split.read(rows)
        y = np.clip(np.asarray(batch.y, dtype=np.int64), 0, vocab - 1)
        valid = np.arange(y.shape[1])[None, :] < batch.y_lengths[:, None]
        lengths = np.maximum(valid.sum(axis=1), 1)
        loss += float(((-log_p[y] * valid).sum(axis=1) / lengths).sum())
        hits += float(((y == majority) & valid).sum())
        tokens += float(valid.sum())
    names = summary.targets.vocab or ()
    word = names[majority] if majority < len(names) else str(majority)
    record["scores"]["majority"] = {
        "loss": loss / len(indices), "token_accuracy": hits / tokens if tokens else None,
        "token": word, "what": f"the training split's token frequencies (most frequent: {word!r})"}


def _valid_counts(batch: Any, vocab: int) -> np.ndarray:
    y = np.asarray(batch.y, dtype=np.int64)
    valid = np.arange(y.shape[1])[None, :] < batch.y_lengths[:, None]
    ids = y[valid]
    ids = ids[(ids >= 0) & (ids < vocab)]
    return np.bincount(ids, minlength=vocab).astype(np.float64)


def for_training(dataset: Any, train: Any, val: Any | None, normalization: Any | None,
                 *, limit: int | None = MAX_SEQUENCES) -> dict[str, Any] | None:
    """The record a run keeps (the Trainer calls it when the run starts): the baselines
    of its validation split, or None without one."""
    if val is None:
        return None
    summary = dataset.summary
    return compute(summary, val, normalization=normalization, train=train,
                   hints=file_hints(getattr(dataset, "path", None) or summary.path), limit=limit)


# --- reading them ---------------------------------------------------------------------------------


def recorded(meta: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The baselines record in a run's run.json (or a RunStarted's dataset dict)."""
    if not isinstance(meta, Mapping):
        return None
    for value in (meta.get("baselines"), (meta.get("dataset") or {}).get("baselines")
                  if isinstance(meta.get("dataset"), Mapping) else None):
        if isinstance(value, Mapping) and isinstance(value.get("scores"), Mapping):
            return dict(value)
    return None


def losses(record: Mapping[str, Any] | None, units_: str = "normalized") -> dict[str, float | None]:
    """{name: loss} in `units_` ("normalized" or "data"; tokens: cross-entropy), with
    None for a baseline that was skipped: what `evaluate --json` prints as baselines."""
    if not record:
        return {}
    scores = record.get("scores") or {}
    if record.get("kind") == "tokens":
        return {name: _number((scores.get(name) or {}).get("loss")) for name in TOKEN_NAMES}
    out: dict[str, float | None] = {}
    for name in LOSS_NAMES:
        if name in scores:
            out[name] = _number(scores[name].get(units_))
        elif name != "seasonal_persistence":
            out[name] = None
    return out


def accuracies(record: Mapping[str, Any] | None) -> dict[str, float | None]:
    """Tokens: {"chance": 1/V, "majority": accuracy of the most frequent token}."""
    if not record or record.get("kind") != "tokens":
        return {}
    scores = record.get("scores") or {}
    return {name: _number((scores.get(name) or {}).get("token_accuracy")) for name in TOKEN_NAMES}


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


@dataclass(frozen=True)
class Verdict:
    """Whether a model beats each baseline (None: not comparable) and the notes to show
    for those it does not beat."""

    beats: dict[str, bool | None]
    notes: tuple[str, ...]

    def flags(self) -> dict[str, bool | None]:
        """{"beats_persistence": ..., ...}: the keys of `evaluate --json` and `show --json`."""
        return {f"beats_{name}": value for name, value in self.beats.items()}


def judge(record: Mapping[str, Any] | None, *, loss_free_running: float | None,
          loss: float | None = None, token_accuracy: float | None = None,
          units_: str = "normalized") -> Verdict:
    """Compare a model's scores with the baselines, in `units_` (both sides the same).

    Continuous: the free-running loss (a forecast is free-running) against each loss
    baseline. Tokens: the teacher-forced cross-entropy `loss` against chance, and the
    token accuracy against the majority token's.
    """
    if not record:
        return Verdict({}, ())
    beats: dict[str, bool | None] = {}
    notes: list[str] = []
    kind = record.get("kind", "continuous")
    unit = units.short_unit(kind, "data" if units_ == "data" else "normalised")
    if kind == "tokens":
        chance = losses(record).get("chance")
        beats["chance"] = _below(loss, chance)
        if beats["chance"] is False:
            notes.append(f"the model does not beat chance: cross-entropy {loss:.4g} vs "
                         f"{chance:.4g} ({unit})")
        majority = accuracies(record).get("majority")
        beats["majority"] = _below(majority, token_accuracy)
        if beats["majority"] is False:
            notes.append(f"the model does not beat the majority token: token accuracy "
                         f"{token_accuracy:.1%} vs {majority:.1%}")
        return Verdict(beats, tuple(notes))
    for name, value in losses(record, units_).items():
        beats[name] = _below(loss_free_running, value)
        if beats[name] is False:
            notes.append(f"the model does not beat {NOTE_NAMES[name]}: free-running loss "
                         f"{loss_free_running:.4g} vs {value:.4g} ({unit})")
    return Verdict(beats, tuple(notes))


def _below(a: float | None, b: float | None) -> bool | None:
    if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
        return None
    return a < b


def describe(record: Mapping[str, Any] | None) -> list[tuple[str, str, str]]:
    """(title, value text, what it is) per baseline, for text tables: continuous values
    as "normalised (data units²)", tokens as "cross-entropy, accuracy"; then a line per
    skipped baseline with its reason."""
    if not record:
        return []
    scores = record.get("scores") or {}
    rows: list[tuple[str, str, str]] = []
    tokens = record.get("kind") == "tokens"
    for name in TOKEN_NAMES if tokens else LOSS_NAMES:
        entry = scores.get(name)
        if not entry:
            continue
        if tokens:
            accuracy = _number(entry.get("token_accuracy"))
            text = f"{_fmt(entry.get('loss'))}, {accuracy:.1%}" if accuracy is not None \
                else _fmt(entry.get("loss"))
        else:
            text = f"{_fmt(entry.get('normalized'))} ({_fmt(entry.get('data'))})"
        rows.append((TITLES[name], text, str(entry.get("what", ""))))
    for name, reason in (record.get("skipped") or {}).items():
        rows.append((TITLES.get(name, name), "-", f"not computed: {reason}"))
    return rows


def heading(record: Mapping[str, Any] | None) -> str:
    """One line saying what the baselines were computed on and in which units."""
    if not record:
        return "baselines: none recorded"
    kind = record.get("kind", "continuous")
    what = ("cross-entropy, token accuracy" if kind == "tokens"
            else f"{units.short_unit(kind)} ({units.short_unit(kind, 'data')})")
    sample, total = record.get("sequences"), record.get("split_sequences")
    count = f"{sample:,}" if isinstance(sample, int) else "?"
    of = f" of {total:,}" if isinstance(total, int) and total != sample else ""
    return f"baselines on the {record.get('split')} split ({count}{of} sequences): {what}"


def _fmt(value: Any) -> str:
    number = _number(value)
    return "-" if number is None else f"{number:.4g}"
