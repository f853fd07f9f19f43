"""How much memory there is, and whether a request fits: refuse before allocating.

A model or a dataset too big for the machine should be a one-line message naming
the size, not a MemoryError (or torch's "can't allocate memory") traceback, nor a
machine that swaps to a halt. The callers estimate what a request needs, refuse it
when that exceeds what is available, and also turn a MemoryError that happens anyway
into the project's errors. A training run's estimate is `estimate_run_memory` (the one
estimator: the Trainer's pre-check and the GUI's confirmation both use it): weights,
gradients, the optimizer's state and the activations of one batch over the whole
unroll, encoder and decoder, for the fused training path and for the instrumented
float64 probe, whichever is larger.

What is available is the smallest of: /proc/meminfo's MemAvailable; the headroom
under a cgroup memory limit (v2 or v1, the process's own group and its parents);
and the headroom under the process's own limits, RLIMIT_AS (`ulimit -v`, against
the address space already mapped) and RLIMIT_DATA (`ulimit -d`). Without any of
these, the physical memory from os.sysconf; else unknown (no check). Standard
library only (psutil is not a dependency).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# torch's CPU allocator and CUDA say these when an allocation fails
ALLOCATION_FAILURES = ("can't allocate memory", "out of memory", "not enough memory",
                       "cannot allocate memory")
UNLIMITED = 2**60  # a cgroup "limit" at least this large is no limit

# Floats kept per sample, time step, layer and hidden unit for the backward pass, by
# cell (measured: peak RSS of one step, CPU, torch 2.13, T_in = T_out = 50, hidden
# 128-512: LSTM 11.3-11.6, GRU ~9.6, tanh RNN ~4.1 units on the fused path; the probe's
# unrolled float64 path ~14 for LSTM and ~16.5 for GRU), with ~20% to spare: an
# estimate that is short refuses nothing it should.
TRAIN_UNITS = {"lstm": 14, "gru": 12}
PROBE_UNITS = {"lstm": 17, "gru": 20}
RNN_TRAIN_UNITS, RNN_PROBE_UNITS = 5, 9
STEPWISE_FACTOR = 1.5  # teacher forcing < 1 or no fused kernel: the decoder runs step by step
LOGIT_COPIES = 4  # logits, log-softmax and their gradients, per target step (tokens)


def available_memory() -> int | None:
    """Bytes a new allocation can count on, or None when the system does not say."""
    figures = memory_figures()
    if figures:
        return min(figures.values())
    return _physical_memory()


def memory_figures() -> dict[str, int]:
    """Every figure that bounds a new allocation, by what it is (see the module doc)."""
    figures = {
        "memory available": _meminfo_available(),
        "the container's memory limit (cgroup)": _cgroup_headroom(),
        "the process's address-space limit (ulimit -v)": _rlimit_headroom("RLIMIT_AS", "VmSize"),
        "the process's data limit (ulimit -d)": _rlimit_headroom("RLIMIT_DATA", "VmData"),
    }
    return {name: value for name, value in figures.items() if value is not None}


def limiting_figure(available: int | None) -> str:
    """What the figure `available` is ("memory available", "the process's ... limit")."""
    for name, value in memory_figures().items():
        if value == available:
            return name
    return "memory available"


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _cgroup_dirs() -> list[tuple[Path, str, str]]:
    """(folder, limit file, usage file) of this process's memory cgroups, own first."""
    found: list[tuple[Path, str, str]] = []
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        lines = []
    root = Path("/sys/fs/cgroup")
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":  # v2: one unified hierarchy
            base, files = root, ("memory.max", "memory.current")
        elif "memory" in controllers.split(","):
            base, files = root / "memory", ("memory.limit_in_bytes", "memory.usage_in_bytes")
        else:
            continue
        folder = base / path.lstrip("/")
        while True:  # the group and its parents: the tightest limit counts
            found.append((folder, *files))
            if folder == base:
                break
            folder = folder.parent
    found.append((root, "memory.max", "memory.current"))  # a container sees its own at /
    found.append((root / "memory", "memory.limit_in_bytes", "memory.usage_in_bytes"))
    return found


def _cgroup_headroom() -> int | None:
    """The tightest cgroup memory limit less what the group uses (reclaimable cache
    excluded), if the process is under one."""
    best = None
    for folder, limit_file, usage_file in _cgroup_dirs():
        limit = _read_int(folder / limit_file)
        if limit is None or limit >= UNLIMITED:
            continue
        used = _read_int(folder / usage_file)
        if used is None:
            continue
        used -= _inactive_file(folder)
        headroom = max(limit - max(used, 0), 0)
        best = headroom if best is None else min(best, headroom)
    return best


def _inactive_file(folder: Path) -> int:
    """Page cache the kernel can drop (memory.stat's inactive_file), else 0."""
    try:
        for line in (folder / "memory.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key in ("inactive_file", "total_inactive_file"):
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def _rlimit_headroom(limit_name: str, status_key: str) -> int | None:
    """The process's soft limit less what it already has mapped (/proc/self/status)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    try:
        soft, _ = resource.getrlimit(getattr(resource, limit_name))
    except (AttributeError, OSError, ValueError):
        return None
    if soft == resource.RLIM_INFINITY or soft < 0:
        return None
    used = _status_kib(status_key)
    return max(int(soft) - (used or 0), 0)


def _status_kib(key: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _physical_memory() -> int | None:
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):  # Windows has no sysconf
        return None
    return pages * size if pages > 0 and size > 0 else None


def format_bytes(count: float) -> str:
    """'68.7 GB', '512 MB', '3.2 kB' (decimal units, as disk and memory are sold)."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:.3g} {unit}"
    return f"{int(count)} bytes"


def fits(needed: int, available: int | None = None) -> tuple[bool, int | None]:
    """(needed fits in what is available, the figure compared with); unknown fits."""
    available = available_memory() if available is None else available
    return (available is None or needed <= available), available


def is_allocation_failure(exc: BaseException) -> bool:
    """A MemoryError, or a RuntimeError in which torch says an allocation failed."""
    if isinstance(exc, MemoryError):
        return True
    return isinstance(exc, RuntimeError) and any(
        words in str(exc).lower() for words in ALLOCATION_FAILURES)


# --- a training run's estimate ------------------------------------------------------------


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a training run needs, by part, and what is available (None: unknown).

    `activations` is one batch's over the full unroll on the fused training path or the
    probe batch's on the instrumented float64 path, whichever is larger (they never
    coexist). Data buffers (a window of ~8 MiB of samples, or a small file cached) are
    not counted. `limit` says what `available` is (e.g. "the process's address-space
    limit (ulimit -v)").
    """

    weights: int
    gradients: int
    optimizer: int
    activations: int
    total: int
    available: int | None
    parameters: int = 0
    limit: str = "memory available"

    @property
    def fits(self) -> bool:
        return self.available is None or self.total <= self.available

    def breakdown(self, optimizer_words: str = "the optimizer's state") -> str:
        """'28.8 GB of weights, 28.8 GB of gradients, ... and 512 MB of activations'."""
        return (f"{format_bytes(self.weights)} of weights, {format_bytes(self.gradients)} of "
                f"gradients, {format_bytes(self.optimizer)} for {optimizer_words} and "
                f"{format_bytes(self.activations)} of activations")


def estimate_run_memory(config: Any, summary: Any, *, available: int | None = None,
                        device: str = "cpu") -> MemoryEstimate:
    """What training `config` (a RunConfig) on a dataset (its DatasetSummary) needs.

    Weights, gradients and the optimizer's state (Adam: two moments; SGD with momentum:
    one buffer) are float32 copies of the parameters. Activations: see MemoryEstimate.
    `available` overrides the figure compared with (default: available_memory(), or
    the GPU's free memory for device "cuda").
    """
    from models.seq2seq import parameter_count
    from workbench.model_config import build_model_config

    model = build_model_config(config, summary)
    parameters = parameter_count(model)
    weights = gradients = parameters * 4
    moments = 2 if config.optimizer == "adam" else (1 if config.momentum > 0 else 0)
    optimizer = parameters * 4 * moments
    activations = max(_training_activations(config, model, summary),
                      _probe_activations(config, model, summary, parameters))
    total = weights + gradients + optimizer + activations
    limit = "memory available"
    if available is None and device == "cuda":
        available, limit = _gpu_free(), "GPU memory free"
    elif available is None:
        available = available_memory()
        limit = limiting_figure(available)
    return MemoryEstimate(weights, gradients, optimizer, activations, total, available,
                          parameters, limit)


def _gpu_free() -> int | None:
    try:
        import torch

        return int(torch.cuda.mem_get_info()[0])
    except Exception:  # noqa: BLE001 - no figure: no check
        return None


def _split_size(summary: Any, *names: str) -> int:
    splits = getattr(summary, "splits", {}) or {}
    for name in names:
        if splits.get(name):
            return int(splits[name])
    return 0


def _per_step_units(model: Any, table: dict[str, int], rnn_units: int) -> int:
    return table.get(model.cell, rnn_units) * model.hidden * model.layers


def _side_width(side: Any) -> tuple[int, int]:
    """(values per step fed in, values per step produced) of a side."""
    if side.kind == "tokens":
        return side.embedding, LOGIT_COPIES * int(side.vocab_size)
    return int(side.features), 3 * int(side.features)


def _training_activations(config: Any, model: Any, summary: Any) -> int:
    """float32 activations of one training batch (forward kept for backward)."""
    from models.cells import cell_info

    batch = min(config.batch_size, _split_size(summary, "train") or config.batch_size)
    t_in, t_out = summary.inputs.steps, summary.targets.steps
    recurrent = batch * (t_in + t_out) * _per_step_units(model, TRAIN_UNITS, RNN_TRAIN_UNITS)
    stepwise = (config.teacher_forcing < 1.0 or (config.teacher_forcing_end or 1.0) < 1.0
                or not cell_info(model.cell).fused)
    if stepwise:
        recurrent = int(recurrent * STEPWISE_FACTOR)
    source_in, _ = _side_width(model.source)
    target_in, target_out = _side_width(model.target)
    edges = batch * (t_in * source_in + t_out * (target_in + target_out))
    return 4 * (recurrent + edges)


def _probe_activations(config: Any, model: Any, summary: Any, parameters: int) -> int:
    """float64 activations of the probe batch on the unrolled path, plus the probe's
    float64 copy of the model."""
    batch = min(config.probe_batch, _split_size(summary, "val", "train") or config.probe_batch)
    t_in, t_out = summary.inputs.steps, summary.targets.steps
    recurrent = batch * (t_in + t_out) * _per_step_units(model, PROBE_UNITS, RNN_PROBE_UNITS)
    source_in, _ = _side_width(model.source)
    target_in, target_out = _side_width(model.target)
    edges = batch * (t_in * source_in + t_out * (target_in + target_out))
    return 8 * (recurrent + edges + parameters)


def check_run_memory(config: Any, summary: Any, *, device: str = "cpu",
                     available: int | None = None) -> MemoryEstimate:
    """The estimate, or ConfigError (one line naming it, by part, and what is available)
    when the run would not fit: before the model is built or anything is allocated."""
    from workbench.errors import ConfigError

    estimate = estimate_run_memory(config, summary, available=available, device=device)
    if estimate.fits:
        return estimate
    words = "Adam's two moments" if config.optimizer == "adam" else "the optimizer's state"
    raise ConfigError(
        f"cell = {config.cell}, hidden = {config.hidden}, layers = {config.layers}: the model "
        f"has {estimate.parameters:,} parameters and training it needs about "
        f"{format_bytes(estimate.total)} ({estimate.breakdown(words)} for a batch of "
        f"{config.batch_size}), more than the {format_bytes(estimate.available or 0)} of "
        f"{estimate.limit}; use a smaller hidden, layers, embedding or batch size")
