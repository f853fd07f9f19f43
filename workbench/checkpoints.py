"""Checkpoints: what a run saves to continue exactly, how it is written and read back.

A checkpoint is one dict of state dicts and plain values (see
Trainer.checkpoint_state), written atomically with torch.save and read with
`weights_only=True`, so loading a crafted file never runs code from it.
`ResumeState` is a checkpoint checked to hold what a resume needs.

Its own module because the Trainer (which makes and restores the state) and the run
folders (which store it) both need it, and neither imports the other.
"""

from __future__ import annotations

import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from workbench.atomic import atomic_path
from workbench.errors import CheckpointError

CHECKPOINT_FORMAT = 1
RESUME_KEYS = ("model", "optimizer", "rng", "position", "trainer")


class Checkpointer(Protocol):
    """Where a Trainer's checkpoints go (runs.RunRecorder is one)."""

    def save_checkpoint(self, name: str, state: dict[str, Any]) -> Any: ...


@dataclass(frozen=True)
class ResumeState:
    """A checkpoint to continue from: weights, optimizer, RNG states, position in the data."""

    checkpoint: dict[str, Any]

    @classmethod
    def from_checkpoint(cls, state: dict[str, Any]) -> ResumeState:
        """Check that `state` can resume a run (CheckpointError naming what it lacks)."""
        missing = [k for k in RESUME_KEYS if k not in state]
        if missing:
            raise CheckpointError(f"checkpoint cannot resume a run: it lacks {', '.join(missing)}")
        if state.get("format", 0) > CHECKPOINT_FORMAT:
            raise CheckpointError(
                f"checkpoint format {state.get('format')} is newer than this version "
                f"reads ({CHECKPOINT_FORMAT})"
            )
        return cls(state)

    @property
    def step(self) -> int:
        """The optimizer steps the run had taken when the checkpoint was written."""
        return int(self.checkpoint["position"]["step"])


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """torch.save a dict of state dicts and plain values, atomically."""
    import torch

    with atomic_path(Path(path)) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint with weights_only=True: tensors and plain values, nothing else.

    A file that would need arbitrary code to unpickle (a crafted checkpoint) is
    refused with CheckpointError before anything in it runs.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with warnings.catch_warnings():
            # torch warns about a raw pickle's protocol before refusing it: the refusal
            # below says all there is to say, on one line
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        code = _could_run_code(path, exc)
        if code is None:
            raise CheckpointError(
                f"checkpoint {path} is unreadable: it is neither a torch checkpoint nor a "
                "pickle (damaged, truncated or another kind of file)"
            ) from None
        raise CheckpointError(
            f"checkpoint {path} refused: it holds more than tensors and plain values, "
            f"and loading it could run code ({code})"
        ) from None
    except MemoryError:
        raise CheckpointError(f"checkpoint {path} is unreadable: out of memory loading it "
                              "(damaged, or not a checkpoint)") from None
    except Exception as exc:  # noqa: BLE001 - any other failure of the loader (an
        # IndexError deep in the weights-only unpickler on garbage, a bad zip): unreadable
        detail = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise CheckpointError(f"checkpoint {path} is unreadable (damaged, truncated or not "
                              f"a checkpoint): {detail}") from None
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"checkpoint {path} is not a Sequence Workbench checkpoint")
    return state


# opcodes that make an unpickler import or call something: what weights_only refuses
_CODE_OPCODES = frozenset({"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "REDUCE", "NEWOBJ",
                           "NEWOBJ_EX", "BUILD", "EXT1", "EXT2", "EXT4"})


def _could_run_code(path: Path, exc: Exception) -> str | None:
    """What a file torch's weights-only unpickler refused would import or call, when it
    is a pickle that names code (a crafted or foreign checkpoint); None when it is
    garbage that is no pickle at all (damaged, truncated, another kind of file).

    A torch zip archive: torch's message names the global it refused. A raw file: the
    opcodes are decoded with pickletools, which never runs them.
    """
    import pickletools
    import zipfile

    if zipfile.is_zipfile(path):
        text = str(exc)
        return _unpickling_reason(exc) if "GLOBAL" in text or "global" in text else None
    try:
        data = path.read_bytes()
    except OSError:
        return None
    strings: list[str] = []
    code: str | None = None
    try:
        for opcode, arg, _pos in pickletools.genops(data):
            if isinstance(arg, str):
                strings.append(arg)
            if opcode.name in _CODE_OPCODES and code is None:
                if opcode.name == "GLOBAL" and isinstance(arg, str):
                    code = arg.replace(" ", ".")
                elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                    code = ".".join(strings[-2:])
                else:
                    code = opcode.name
            if opcode.name == "STOP":
                break
        else:
            return None  # no STOP: not a whole pickle
    except Exception:  # noqa: BLE001 - any decoding failure means: not a pickle
        return None
    return f"it names {code}" if code else None


def _param_shapes(state_dict: Any) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for key, value in state_dict.items():
        shape = getattr(value, "shape", None)
        if shape is not None:
            shapes[str(key)] = tuple(int(s) for s in shape)
    return shapes


def load_weights(model: Any, state_dict: Any, *, where: str,
                 saved_config: dict[str, Any] | None = None) -> None:
    """`model.load_state_dict(state_dict)`, refused on one line (CheckpointError) when
    the checkpoint's weights do not fit the model built from the run's config.

    The message names the first parameter whose shape differs, with both shapes, and
    the model settings that differ between the checkpoint (`saved_config`, its
    model_config) and the model (`model.config`), instead of torch's list of every
    mismatch, one per line.
    """
    if not isinstance(state_dict, dict):
        raise CheckpointError(f"{where} holds no model weights")
    saved, wanted = _param_shapes(state_dict), _param_shapes(model.state_dict())
    missing = [k for k in wanted if k not in saved]
    extra = [k for k in saved if k not in wanted]
    differ = [k for k in wanted if k in saved and saved[k] != wanted[k]]
    if differ or missing or extra:
        settings = _config_changes(saved_config, getattr(model, "config", None))
        if differ:
            first = differ[0]
            what = (f"parameter {first} is {saved[first]} in the checkpoint but "
                    f"{wanted[first]} in the model of the run's config")
            more = len(differ) - 1
            if more:
                what += f" ({more} more differ)"
        elif missing:
            what = f"the checkpoint has no parameter {missing[0]}, which the model needs"
        else:
            what = f"the checkpoint holds parameter {extra[0]}, which the model has not"
        hint = (f"; {settings}" if settings else
                "; was the cell, hidden or layers changed in config.toml?")
        raise CheckpointError(f"{where} does not fit the run's model: {what}{hint}")
    try:
        model.load_state_dict(state_dict)
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        first = next((line.strip() for line in str(exc).splitlines()[1:] if line.strip()),
                     str(exc).strip())
        raise CheckpointError(f"{where} does not fit the run's model: {first[:300]}") from None


def _config_changes(saved: dict[str, Any] | None, model_config: Any) -> str:
    """'hidden is 4 in the checkpoint and 8 in the config' for each model setting that
    differs between a checkpoint's model_config and a model's config."""
    if not isinstance(saved, dict) or model_config is None:
        return ""
    try:
        now = model_config.to_dict()
    except (AttributeError, TypeError, ValueError):
        return ""
    changes = [f"{key} is {saved[key]} in the checkpoint and {now[key]} in the config"
               for key in ("cell", "hidden", "layers", "attention")
               if key in saved and key in now and saved[key] != now[key]]
    return ", ".join(changes)


def _unpickling_reason(exc: Exception) -> str:
    """The telling line of torch's weights_only error (e.g. 'Unsupported global: ...')."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        if "Unsupported" in line or "GLOBAL" in line:
            return line.split("WeightsUnpickler error:")[-1].strip()[:200]
    return lines[0][:200] if lines else type(exc).__name__
