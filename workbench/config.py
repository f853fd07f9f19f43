"""RunConfig: everything a training run needs, one dataclass for the GUI and the CLI.

The config is flat (one attribute per setting, so the GUI can check a value at its
field with `validate_field(name, value)`), and is written to TOML in sections
([data], [model], [training], [probes], [system]) so a person can read and edit it.
A value that is "off" (no gradient clipping, no early stopping, the automatic probe
rule, a constant teacher-forcing ratio, W_hh's radius as its init gives it, torch's
forget-gate bias) is None in Python and simply absent from the TOML, because TOML
has no null. A config written before a setting existed loads with its default.

Persisted configs carry `version`; `migrate()` brings an older dict up to date.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from workbench.errors import ConfigError

CONFIG_VERSION = 1

CELL_NAMES: tuple[str, ...] = ("rnn-tanh", "rnn-relu", "rnn-sigmoid", "lstm", "gru")
OPTIMIZERS: tuple[str, ...] = ("adam", "sgd")
DEVICES: tuple[str, ...] = ("cpu", "cuda", "auto")
# which validation loss picks a run's `best` checkpoint; None ("auto") decides by the targets
BEST_BY: tuple[str, ...] = ("val_free_running", "val_teacher_forced")
# models.init.recurrent_init_names, spelled here so that reading a config needs no torch
RECURRENT_INITS: tuple[str, ...] = ("default", "orthogonal", "identity")
# models.attention.ATTENTION_KINDS, spelled here so that reading a config needs no torch
ATTENTION_KINDS: tuple[str, ...] = ("none", "bahdanau", "luong-dot", "luong-general")
OFF_WORDS = ("off", "none", "")


def _cell_names() -> tuple[str, ...]:
    """The cells models/ offers (falls back to the documented five)."""
    try:
        from models.cells import CELLS
    except ImportError:  # pragma: no cover - models/ not importable
        return CELL_NAMES
    return tuple(CELLS)


@dataclass(frozen=True)
class FieldSpec:
    """What one setting may hold: for validation and for the GUI's labels and tooltips."""

    name: str
    section: str
    kind: type  # int, float, str
    help: str
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    choices: tuple[str, ...] | None = None
    optional: bool = False  # None ("off") is allowed

    def allowed(self) -> str:
        """A short phrase saying what is allowed, used in error messages."""
        if self.name == "cell":
            text = "one of " + ", ".join(_cell_names())
        elif self.choices:
            text = "one of " + ", ".join(self.choices)
        elif self.kind is str:
            text = "a text"
        else:
            noun = "an integer" if self.kind is int else "a number"
            bounds = []
            if self.minimum is not None:
                bounds.append(f"{'>' if self.exclusive_minimum else '>='} {self.minimum:g}")
            if self.maximum is not None:
                bounds.append(f"<= {self.maximum:g}")
            text = noun + (" " + " and ".join(bounds) if bounds else "")
        if self.optional:
            text += ', or "auto"' if self.name == "best_by" else ', or "off"'
        return text


_SPECS: tuple[FieldSpec, ...] = (
    FieldSpec("data", "data", str, "HDF5 file of sequences (a relative path resolves against the TOML's folder)"),
    FieldSpec("inputs", "data", str, "array path of the inputs in the file (default: the file's own)", optional=True),
    FieldSpec("targets", "data", str, "array path of the targets in the file (default: the file's own)", optional=True),
    FieldSpec("val_fraction", "data", float, "share of a file without splits held out for validation", 0.0, 0.9),
    FieldSpec("split_seed", "data", int, "seed of the train/validation split", 0, 2**63 - 1),
    FieldSpec("cell", "model", str, "recurrent cell of encoder and decoder"),
    FieldSpec("hidden", "model", int, "hidden units per layer", 1, 65536),
    FieldSpec("layers", "model", int, "stacked layers", 1, 64),
    FieldSpec("dropout", "model", float, "dropout between layers", 0.0, 0.99),
    FieldSpec("embedding", "model", int, "embedding size for token sequences", 1, 65536),
    FieldSpec("attention", "model", str, "attention of the decoder over the encoder's steps (none: the final state only)", choices=ATTENTION_KINDS),
    FieldSpec("recurrent_init", "model", str, "start of the recurrent weights W_hh, per gate block (default: torch's uniform)", choices=RECURRENT_INITS),
    FieldSpec("recurrent_radius", "model", float, "spectral radius of each layer's W_hh at the start, per gate block (off: as the init gives it)", 0.0, 100.0, exclusive_minimum=True, optional=True),
    FieldSpec("forget_bias", "model", float, "LSTM only: the forget gate's bias at the start (off: torch's)", -100.0, 100.0, optional=True),
    FieldSpec("optimizer", "training", str, "optimizer", choices=OPTIMIZERS),
    FieldSpec("lr", "training", float, "learning rate", 0.0, 100.0, exclusive_minimum=True),
    FieldSpec("momentum", "training", float, "momentum (SGD only)", 0.0, 0.999),
    FieldSpec("batch_size", "training", int, "sequences per step", 1, 1_000_000),
    FieldSpec("epochs", "training", int, "passes over the training split (or set steps)", 1, 1_000_000, optional=True),
    FieldSpec("steps", "training", int, "optimizer steps in total (instead of epochs)", 1, 10**12, optional=True),
    FieldSpec("teacher_forcing", "training", float, "probability of feeding the true previous target (at the start)", 0.0, 1.0),
    FieldSpec("teacher_forcing_end", "training", float, "teacher forcing at the end of a linear schedule", 0.0, 1.0, optional=True),
    FieldSpec("clip", "training", float, "gradient clipping: maximum total norm", 0.0, 1e12, exclusive_minimum=True, optional=True),
    FieldSpec("patience", "training", int, "early stopping: epochs without a better validation loss", 1, 1_000_000, optional=True),
    FieldSpec("val_subset", "training", int, "validation sequences scored after each epoch: a fixed subset of a larger split (off: all; evaluate always scores all)", 1, 10**12, optional=True),
    FieldSpec("seed", "training", int, "training seed (weights, teacher forcing, data order)", 0, 2**63 - 1),
    FieldSpec("best_by", "training", str, "the validation loss that picks the best checkpoint (auto: free-running for continuous targets, teacher-forced for tokens)", choices=BEST_BY, optional=True),
    FieldSpec("probe_every", "probes", int, "probe every N steps (off: the automatic rule)", 1, 10**12, optional=True),
    FieldSpec("probe_batch", "probes", int, "validation sequences in the fixed probe batch", 1, 4096),
    FieldSpec("probe_samples", "probes", int, "sequences whose hidden states a probe records", 1, 64),
    FieldSpec("threads", "system", int, "torch threads (0: automatic)", 0, 1024),
    FieldSpec("device", "system", str, "where to train", choices=DEVICES),
    FieldSpec("checkpoint_seconds", "system", float, "the latest checkpoint is rewritten at least this often (seconds of training): a crash loses no more", 0.0, 86400.0),
)
FIELDS: dict[str, FieldSpec] = {spec.name: spec for spec in _SPECS}
SECTIONS: tuple[str, ...] = ("data", "model", "training", "probes", "system")


def validate_field(name: str, value: Any) -> Any:
    """Check one setting and return it in its canonical type.

    Accepts what a GUI field or a command line gives (e.g. "64" for an int, "off"
    for an optional setting) and raises ConfigError naming the field, the value and
    what is allowed.
    """
    spec = FIELDS.get(name)
    if spec is None:
        raise ConfigError(f"unknown setting {name!r}; known: {', '.join(FIELDS)}")
    if name == "best_by" and isinstance(value, str) and value.strip().lower() == "auto":
        return None
    if value is None or (isinstance(value, str) and value.strip().lower() in OFF_WORDS
                         and value.strip().lower() not in (spec.choices or ())):  # attention "none"
        if spec.optional:
            return None
        raise ConfigError(f"{name} = {value!r} is not allowed: expected {spec.allowed()}")
    if value is False and spec.optional:
        return None
    coerced = _coerce(spec, value)
    _check_range(spec, value, coerced)
    return coerced


def _fail(spec: FieldSpec, value: Any) -> ConfigError:
    return ConfigError(f"{spec.name} = {value!r} is not allowed: expected {spec.allowed()}")


def _coerce(spec: FieldSpec, value: Any) -> Any:
    raw = value
    if isinstance(value, bool):
        raise _fail(spec, value)
    if spec.kind is str:
        if not isinstance(value, (str, os.PathLike)):
            raise _fail(spec, value)
        text = os.fspath(value)
        if spec.choices or spec.name == "cell":
            text = text.strip().lower()
        return text
    if isinstance(value, str):
        try:
            value = float(value) if spec.kind is float else _parse_int(value)
        except ValueError:
            raise _fail(spec, value) from None
    if spec.kind is int:
        if isinstance(value, float):
            if not value.is_integer():
                raise _fail(spec, raw)
            value = int(value)
        if not isinstance(value, int):
            raise _fail(spec, raw)
        return int(value)
    if not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise _fail(spec, raw)
    return float(value)


def _parse_int(text: str) -> int:
    text = text.strip().replace("_", "")
    try:
        return int(text)
    except ValueError:
        number = float(text)  # "1e3" is fine, "1.5" is not
        if not number.is_integer():
            raise
        return int(number)


def _check_range(spec: FieldSpec, raw: Any, value: Any) -> None:
    if spec.name == "cell":
        if value not in _cell_names():
            raise _fail(spec, raw)
        return
    if spec.choices is not None:
        if value not in spec.choices:
            raise _fail(spec, raw)
        return
    if spec.kind is str:
        if not value.strip() and not spec.optional:
            raise _fail(spec, raw)
        return
    if spec.minimum is not None and (
        value < spec.minimum or (spec.exclusive_minimum and value == spec.minimum)
    ):
        raise _fail(spec, raw)
    if spec.maximum is not None and value > spec.maximum:
        raise _fail(spec, raw)


def check_forget_bias(cell: str, forget_bias: float | None) -> None:
    """ConfigError unless forget_bias is off or the cell is an LSTM (the only cell with a
    forget gate). validate() calls it; the GUI can call it when either field changes."""
    if forget_bias is not None and cell != "lstm":
        raise ConfigError(
            f"forget_bias = {forget_bias!r} is not allowed with cell = {cell!r}: only an "
            'LSTM has a forget gate (set forget_bias to "off" or cell to "lstm")'
        )


@dataclass
class RunConfig:
    """Every setting of a training run. Defaults make a small, quick LSTM run."""

    data: str = ""
    inputs: str | None = None
    targets: str | None = None
    val_fraction: float = 0.1
    split_seed: int = 0
    cell: str = "lstm"
    hidden: int = 64
    layers: int = 1
    dropout: float = 0.0
    embedding: int = 32
    attention: str = "none"
    recurrent_init: str = "default"
    recurrent_radius: float | None = None
    forget_bias: float | None = None
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    batch_size: int = 32
    epochs: int | None = 10
    steps: int | None = None
    teacher_forcing: float = 1.0
    teacher_forcing_end: float | None = None
    clip: float | None = None
    patience: int | None = None
    seed: int = 0
    best_by: str | None = None  # None: auto (resolve_best_by)
    probe_every: int | None = None
    probe_batch: int = 32
    probe_samples: int = 4
    threads: int = 0
    device: str = "cpu"
    val_subset: int | None = 20000
    checkpoint_seconds: float = 5.0
    version: int = field(default=CONFIG_VERSION)

    # --- checks -----------------------------------------------------------------

    def validate(self) -> RunConfig:
        """Check every field and the rules between fields; return self (canonicalised)."""
        for name in FIELDS:
            setattr(self, name, validate_field(name, getattr(self, name)))
        if not self.data:
            raise ConfigError("data = '' is not allowed: expected the path of an HDF5 file")
        if self.epochs is not None and self.steps is not None:
            raise ConfigError(
                f"epochs = {self.epochs} and steps = {self.steps}: set one budget, not both"
            )
        if self.epochs is None and self.steps is None:
            raise ConfigError("no budget: set epochs or steps")
        check_forget_bias(self.cell, self.forget_bias)
        return self

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with some fields changed, each checked with validate_field."""
        checked = {name: validate_field(name, value) for name, value in changes.items()}
        return dataclasses.replace(self, **checked)

    # --- derived values -----------------------------------------------------------

    def teacher_forcing_at(self, step: int, total_steps: int) -> float:
        """The teacher-forcing ratio for 1-based `step` of a run of `total_steps`."""
        if self.teacher_forcing_end is None or total_steps <= 1:
            return self.teacher_forcing
        progress = min(max((step - 1) / (total_steps - 1), 0.0), 1.0)
        return self.teacher_forcing + (self.teacher_forcing_end - self.teacher_forcing) * progress

    # --- dicts and TOML -----------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain, TOML-able nested dict: {"version": 1, "data": {...}, "model": {...}, ...}.

        None ("off") values are left out.
        """
        out: dict[str, Any] = {"version": self.version}
        for section in SECTIONS:
            out[section] = {}
        for name, spec in FIELDS.items():
            value = getattr(self, name)
            if value is not None:
                out[spec.section][name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, base_dir: str | Path | None = None) -> RunConfig:
        """Build and validate a config from a nested (TOML) or flat dict.

        Unknown keys raise ConfigError (a typo should not be silently ignored). A
        relative `data` path resolves against `base_dir` when given.
        """
        flat = _flatten(migrate(dict(data)))
        if "steps" in flat and "epochs" not in flat:
            flat["epochs"] = None
        unknown = sorted(set(flat) - set(FIELDS) - {"version"})
        if unknown:
            raise ConfigError(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(FIELDS)}")
        flat.pop("version", None)
        config = cls(**{k: validate_field(k, v) for k, v in flat.items()})
        if base_dir is not None and config.data and not Path(config.data).is_absolute():
            config.data = str((Path(base_dir) / config.data).resolve())
        return config.validate()

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())

    @classmethod
    def from_toml(cls, text: str, *, base_dir: str | Path | None = None) -> RunConfig:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"not valid TOML: {exc}") from None
        return cls.from_dict(data, base_dir=base_dir)

    def save(self, path: str | Path) -> None:
        """Write the TOML atomically."""
        from workbench.atomic import atomic_write_text

        atomic_write_text(Path(path), self.to_toml())

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        """Read a TOML file; its relative paths resolve against its folder."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from None
        try:
            return cls.from_toml(text, base_dir=path.parent)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None


def _flatten(data: dict[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if key in SECTIONS and isinstance(value, dict):
            for inner, inner_value in value.items():
                flat[inner] = inner_value
        else:
            flat[key] = value
    return flat


def migrate(data: dict[str, Any]) -> dict[str, Any]:
    """Bring a config dict written by an older version up to CONFIG_VERSION."""
    version = data.get("version", CONFIG_VERSION)
    if not isinstance(version, int) or version > CONFIG_VERSION or version < 1:
        raise ConfigError(
            f"version = {version!r} is not allowed: expected 1..{CONFIG_VERSION} "
            "(a newer Sequence Workbench wrote this config?)"
        )
    data["version"] = CONFIG_VERSION
    return data


# --- torch threads and device ------------------------------------------------------

THREAD_POLICIES = ("gui", "cli")


def resolve_threads(requested: int, hidden: int, *, policy: str = "cli", cpus: int | None = None) -> int:
    """How many torch threads a run uses.

    `requested` > 0 is taken as is. 0 means automatic: small models (hidden < 128)
    run best on one thread (measured: hidden 64 ran up to 1.45x slower on 2 threads
    than on 1), larger ones gain from more (hidden 256: 1.3-2.2x from 2). Under the
    "gui" policy one core is always left for the GUI thread; "cli" may use them all.
    """
    if requested > 0:
        return requested
    if policy not in THREAD_POLICIES:
        raise ConfigError(f"thread policy {policy!r} is not allowed: expected one of {THREAD_POLICIES}")
    cpus = cpus or os.cpu_count() or 1
    available = cpus - 1 if policy == "gui" else cpus
    if hidden < 128:
        return 1
    return max(1, min(available, 8))


def resolve_best_by(best_by: str | None, target_kind: str) -> str:
    """The validation loss that picks a run's best checkpoint: `best_by` when set, else
    (auto) "val_free_running" for continuous targets, since a forecast is free-running,
    and "val_teacher_forced" for tokens, whose free-running cross-entropy is misaligned
    after the first wrong token and says more about where it fell than how good the
    model is (their accuracies are free-running either way)."""
    if best_by is not None:
        return best_by
    return "val_teacher_forced" if target_kind == "tokens" else "val_free_running"


def resolve_device(device: str) -> str:
    """'auto' becomes 'cuda' when a GPU is usable, else 'cpu'; 'cuda' without one is an error."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device = 'cuda' is not allowed here: no CUDA GPU is available (use cpu or auto)")
    return device
