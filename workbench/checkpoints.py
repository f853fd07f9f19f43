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
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"checkpoint {path} refused: it holds more than tensors and plain values, "
            f"and loading it could run code ({_unpickling_reason(exc)})"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path} is unreadable: {exc}") from None
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"checkpoint {path} is not a Sequence Workbench checkpoint")
    return state


def _unpickling_reason(exc: Exception) -> str:
    """The telling line of torch's weights_only error (e.g. 'Unsupported global: ...')."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        if "Unsupported" in line or "GLOBAL" in line:
            return line.split("WeightsUnpickler error:")[-1].strip()[:200]
    return lines[0][:200] if lines else type(exc).__name__
