"""Subcommands about runs: train, runs, show, export, evaluate, predict.

    python main.py train --data FILE --cell lstm [--steps 500 ...] [--json]
    python main.py train --config RUN.toml [flags override the file]
    python main.py train --resume RUN
    python main.py runs [--json]
    python main.py show RUN [--json]
    python main.py export RUN --csv FILE
    python main.py evaluate RUN [--data FILE] [--split val] [--json]
    python main.py predict RUN --data FILE --out FILE.h5

RUN is a run id (in --runs-dir, default the user's runs folder) or a run folder.
A user's mistake (missing file, bad value, unknown cell) exits 2 with one line.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from workbench.cli import common
from workbench.config import RunConfig
from workbench.errors import ConfigError, RunError
from workbench.events import Event, PhaseProgress, RunFinished, RunStarted, StepMetrics

# flag -> RunConfig field, for flags that override a config file
OVERRIDES: dict[str, str] = {
    "data": "data", "inputs": "inputs", "targets": "targets", "cell": "cell",
    "hidden": "hidden", "layers": "layers", "dropout": "dropout", "embedding": "embedding",
    "epochs": "epochs", "steps": "steps", "batch": "batch_size", "lr": "lr",
    "optimizer": "optimizer", "momentum": "momentum", "teacher_forcing": "teacher_forcing",
    "teacher_forcing_end": "teacher_forcing_end", "clip": "clip", "patience": "patience",
    "seed": "seed", "split_seed": "split_seed", "val_fraction": "val_fraction",
    "probe_every": "probe_every", "probe_samples": "probe_samples",
    "probe_batch": "probe_batch", "threads": "threads", "device": "device",
    "val_subset": "val_subset", "checkpoint_seconds": "checkpoint_seconds",
}
EXIT_OK, EXIT_RUN_FAILED = 0, 1


def register(subparsers: Any) -> None:
    """Add train, runs, show, export, evaluate and predict."""
    register_train(subparsers)
    runs = subparsers.add_parser("runs", help="list recorded runs")
    add_runs_dir_arg(runs)
    runs.add_argument("--json", action="store_true", help="print a JSON list")
    runs.set_defaults(func=cmd_runs)

    show = subparsers.add_parser("show", help="one run's summary")
    show.add_argument("run", metavar="RUN", help="run id or run folder")
    add_runs_dir_arg(show)
    show.add_argument("--json", action="store_true", help="print the same object as train --json")
    show.set_defaults(func=cmd_show)

    export = subparsers.add_parser("export", help="a run's metrics as a tidy CSV")
    export.add_argument("run", metavar="RUN")
    add_runs_dir_arg(export)
    export.add_argument("--csv", required=True, metavar="FILE", help="CSV file to write")
    export.set_defaults(func=cmd_export)

    evaluate = subparsers.add_parser("evaluate", help="score a run's checkpoint on a split")
    evaluate.add_argument("run", metavar="RUN")
    add_runs_dir_arg(evaluate)
    evaluate.add_argument("--data", metavar="FILE", help="dataset (default: the run's)")
    evaluate.add_argument("--split", default="val", help="split to score (default: val)")
    evaluate.add_argument("--checkpoint", choices=("best", "latest"), default=None,
                          help="which checkpoint (default: best, else latest)")
    evaluate.add_argument("--json", action="store_true")
    evaluate.set_defaults(func=cmd_evaluate)

    predict = subparsers.add_parser("predict", help="write a run's generated outputs to HDF5")
    predict.add_argument("run", metavar="RUN")
    add_runs_dir_arg(predict)
    predict.add_argument("--data", required=True, metavar="FILE")
    predict.add_argument("--out", required=True, metavar="FILE.h5")
    predict.add_argument("--split", default=None,
                         help="split to predict (default: every split the file serves)")
    predict.add_argument("--checkpoint", choices=("best", "latest"), default=None)
    predict.set_defaults(func=cmd_predict)


def add_runs_dir_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs-dir", metavar="DIR", default=None,
                        help="runs folder (default: $SEQUENCE_WORKBENCH_HOME/runs or the user's data folder)")


def register_train(subparsers: Any) -> None:
    p = subparsers.add_parser("train", help="train a model (a new run, or --resume one)",
                              description="Train an encoder-decoder and record the run.")
    source = p.add_argument_group("what to train")
    source.add_argument("--config", metavar="RUN.toml", help="a run config; flags override it")
    source.add_argument("--resume", metavar="RUN",
                        help="continue a stopped, crashed or failed run (or a completed one, "
                        "given a larger --steps or --epochs); only the budget, --lr, --clip, "
                        "--patience, the probe and checkpoint settings, --val-subset, --data "
                        "(the same data, moved), --threads and --device may change")
    source.add_argument("--allow-data-change", action="store_true",
                        help="with --resume: go on although the data's content differs "
                        "from what the run trained on (the run's history records it)")
    source.add_argument("--data", metavar="FILE", help="HDF5 dataset")
    source.add_argument("--inputs", metavar="PATH", help="array path of the inputs")
    source.add_argument("--targets", metavar="PATH", help="array path of the targets")
    source.add_argument("--name", help="display name of the run")
    model = p.add_argument_group("model")
    model.add_argument("--cell", help="rnn-tanh, rnn-relu, rnn-sigmoid, lstm or gru")
    model.add_argument("--hidden", help="hidden units")
    model.add_argument("--layers", help="layers")
    model.add_argument("--dropout", help="dropout between layers")
    model.add_argument("--embedding", help="token embedding size")
    train = p.add_argument_group("training")
    train.add_argument("--epochs", help="epochs (or --steps)")
    train.add_argument("--steps", help="a step budget (or --epochs)")
    train.add_argument("--batch", help="batch size")
    train.add_argument("--lr", help="learning rate")
    train.add_argument("--optimizer", help="adam or sgd")
    train.add_argument("--momentum", help="SGD momentum")
    train.add_argument("--teacher-forcing", metavar="P[:END]",
                       help="teacher forcing ratio, or START:END for a linear schedule")
    train.add_argument("--teacher-forcing-end", help=argparse.SUPPRESS)
    train.add_argument("--clip", help="gradient clipping max norm, or off")
    train.add_argument("--patience", help="early stopping patience in epochs, or off")
    train.add_argument("--val-subset", help="validation sequences scored after each epoch "
                       "(a fixed subset of a larger split; default 20000; off: all)")
    train.add_argument("--seed", help="training seed")
    train.add_argument("--split-seed", help="train/validation split seed")
    train.add_argument("--val-fraction", help="validation share of a file without splits")
    train.add_argument("--probe-every", help="probe every N steps (default: automatic)")
    train.add_argument("--probe-samples", help="hidden-state samples per probe")
    train.add_argument("--probe-batch", help="sequences in the probe batch")
    system = p.add_argument_group("system")
    system.add_argument("--threads", help="torch threads (0: automatic; with --resume, 0 keeps "
                        "the run's recorded count, another count works but the continuation "
                        "is no longer bit-identical)")
    system.add_argument("--device", help="cpu, cuda or auto")
    system.add_argument("--checkpoint-seconds", help="rewrite the latest checkpoint at least "
                        "this often, in seconds of training (default 5): a crash loses no more")
    add_runs_dir_arg(system)
    p.add_argument("--json", action="store_true",
                   help="end with one JSON line describing the run")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)


# --- train ---------------------------------------------------------------------------------


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """A RunConfig from --config (if given) with every flag given on top of it."""
    if args.config:
        config = RunConfig.load(args.config)
    elif args.data:
        config = RunConfig(data="")
    else:
        raise ConfigError("train needs --data FILE, --config RUN.toml or --resume RUN")
    return apply_overrides(config, args)


def apply_overrides(config: RunConfig, args: argparse.Namespace) -> RunConfig:
    changes: dict[str, Any] = {}
    for flag, name in OVERRIDES.items():
        value = getattr(args, flag, None)
        if value is not None:
            changes[name] = value
    tf = changes.get("teacher_forcing")
    if isinstance(tf, str) and ":" in tf:
        start, end = tf.split(":", 1)
        changes["teacher_forcing"], changes["teacher_forcing_end"] = start, end
    if "data" in changes:
        changes["data"] = str(Path(changes["data"]).expanduser().resolve())
    if "steps" in changes and "epochs" not in changes:
        changes["epochs"] = None
    if "epochs" in changes and "steps" not in changes:
        changes["steps"] = None
    return config.replace(**changes).validate()


def open_dataset(config: RunConfig, data: str | None = None):
    """The dataset `config` names (or `data`): ConfigError when the file is missing."""
    from workbench.run_service import open_run_data

    return open_run_data(config, data)


@contextlib.contextmanager
def open_inference_data(config: RunConfig, data: str | None, model: Any) -> Iterator[Any]:
    """The dataset to evaluate or predict on, refused (RunError) if the model can't read it."""
    from workbench.training import check_compatible

    with open_dataset(config, data) as dataset:
        check_compatible(model.config, dataset.summary, data or config.data)
        yield dataset


class ConsoleProgress:
    """A tqdm bar on stderr: epoch, step, loss, sequences/s and ETA; before the first
    step a bar for a long set-up phase (normalisation on a large file), and during a
    long validation its progress beside the step."""

    def __init__(self, total: int, *, enabled: bool = True) -> None:
        self.total = total
        self.enabled = enabled
        self.bar = None
        self.phase_bar = None

    def _on_phase(self, event: PhaseProgress) -> None:
        if self.bar is not None:  # during training: beside the step count
            words = f"{event.phase} {event.done:,}/{event.total:,} {event.unit}"
            self.bar.set_postfix_str(words if event.done < event.total else "", refresh=True)
            return
        from tqdm import tqdm

        if self.phase_bar is None:
            self.phase_bar = tqdm(total=event.total, unit=event.unit or "it", file=sys.stderr,
                                  dynamic_ncols=True, mininterval=0.5, desc=event.phase)
        self.phase_bar.n = event.done
        self.phase_bar.refresh()
        if event.done >= event.total:
            self.phase_bar.close()
            self.phase_bar = None

    def close(self) -> None:
        """Close any bar still open (a run interrupted, or stopped in its set-up)."""
        for name in ("phase_bar", "bar"):
            bar = getattr(self, name)
            if bar is not None:
                bar.close()
                setattr(self, name, None)

    def on_event(self, event: Event) -> None:
        if not self.enabled:
            return
        if isinstance(event, PhaseProgress):
            self._on_phase(event)
        elif isinstance(event, RunStarted):
            if self.phase_bar is not None:
                self.phase_bar.close()
                self.phase_bar = None
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, initial=event.resumed_from_step, unit="step",
                            file=sys.stderr, dynamic_ncols=True, mininterval=0.5,
                            desc=event.run_id)
        elif isinstance(event, StepMetrics) and self.bar is not None:
            self.bar.n = event.step
            sps = event.sequences_per_second
            self.bar.set_postfix_str(
                f"epoch {event.epoch} loss {event.loss:.4g} "
                f"{sps:.0f} seq/s" if math.isfinite(sps) else f"epoch {event.epoch} loss {event.loss:.4g}",
                refresh=False)
            self.bar.update(0)
        elif isinstance(event, RunFinished) and self.bar is not None:
            self.bar.n = event.step
            self.bar.refresh()
            self.bar.close()
            self.bar = None


@contextlib.contextmanager
def stop_on_interrupt(trainer: Any) -> Iterator[None]:
    """Ctrl-C asks `trainer` (anything with request_stop and stop_requested: an ActiveRun,
    a ComparisonRunner) to stop cleanly; a second Ctrl-C interrupts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: Any) -> None:
        if trainer.stop_requested:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt
        print("\nstopping after this step (Ctrl-C again to abort)", file=sys.stderr)
        trainer.request_stop()

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def cmd_train(args: argparse.Namespace) -> int:
    from workbench.run_service import RunService

    if args.resume:
        return _resume(args)
    if args.allow_data_change:
        raise ConfigError("--allow-data-change goes with --resume RUN only")
    config = config_from_args(args)
    progress = ConsoleProgress(0, enabled=not args.no_progress)
    active = RunService(args.runs_dir).start(config, [progress], name=args.name,
                                             thread_policy="cli")
    progress.total = active.total_steps
    try:
        with stop_on_interrupt(active):
            finished = active.run()
    finally:
        progress.close()
    return _finish(active, finished, args.json)


def resume_changes(args: argparse.Namespace) -> dict[str, Any]:
    """The RunConfig fields `train --resume` was asked to change, by the flags given;
    ConfigError naming the first flag that cannot change on resume."""
    from workbench.run_service import RESUME_CHANGES

    if args.config:
        raise ConfigError("--config cannot be given with --resume: a resumed run keeps "
                          "its recorded config")
    changes: dict[str, Any] = {}
    for flag, name in OVERRIDES.items():
        value = getattr(args, flag, None)
        if value is None:
            continue
        if name not in RESUME_CHANGES:
            allowed = ", ".join("--" + f.replace("_", "-") for f, n in OVERRIDES.items()
                                if n in RESUME_CHANGES)
            raise ConfigError(
                f"--{flag.replace('_', '-')} cannot change on resume: a resumed run keeps its "
                f"model, data layout, batch, seeds and optimizer (a resume may change "
                f"{allowed})")
        changes[name] = value
    return changes


def _resume(args: argparse.Namespace) -> int:
    """train --resume RUN: the flags a resume may change (RESUME_CHANGES) are applied and
    printed; any other is refused by name; the run's other settings are its recorded ones."""
    from workbench.run_service import RunService

    changes = resume_changes(args)
    progress = ConsoleProgress(0, enabled=not args.no_progress)
    active = RunService(args.runs_dir).resume(args.resume, [progress], changes=changes,
                                              thread_policy="cli", name=args.name,
                                              allow_data_change=args.allow_data_change)
    for note in active.notes:
        print(note, file=sys.stderr)
    if active.warning:
        print(f"warning: {active.warning}", file=sys.stderr)
    progress.total = active.total_steps
    try:
        with stop_on_interrupt(active):
            finished = active.run()
    finally:
        progress.close()
    return _finish(active, finished, args.json)


def _finish(active: Any, finished: RunFinished, as_json: bool) -> int:
    """The end of `train`: a run that failed for the machine's or the user's reason (a
    full disk, memory, a changed data file) is one line and exit 2; a run stopped in its
    set-up left nothing to show; else the run's summary."""
    from workbench.run_layout import RUN_JSON

    if active.failure is not None:
        raise active.failure
    if not (active.run_dir / RUN_JSON).exists():  # a new run stopped before it began
        if as_json:
            common.print_json({"run_id": active.run_id, "status": finished.status,
                               "message": finished.message, "recorded": False})
        else:
            print(f"run {active.run_id}: {finished.status} - {finished.message}; nothing "
                  f"was recorded")
        return EXIT_OK
    return _report(active.run_dir, finished, as_json)


def _report(run_dir: Path, finished: RunFinished, as_json: bool) -> int:
    from workbench.runs import open_run

    summary = open_run(run_dir).summary()
    if as_json:
        common.print_json(summary)
    else:
        print(f"run {summary['run_id']}: {finished.status} - {finished.message}")
        print(_summary_text(summary))
    return EXIT_OK if finished.status in ("completed", "stopped") else EXIT_RUN_FAILED


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _summary_text(summary: dict[str, Any]) -> str:
    keys = ("run_id", "name", "run_dir", "status", "message", "cell", "hidden", "layers",
            "parameters", "steps", "epochs", "train_loss", "val_loss", "val_loss_free_running",
            "token_accuracy", "sequence_accuracy", "best_val_loss", "seconds",
            "sequences_per_second", "threads", "device", "probes", "started")
    return "\n".join(f"  {key:<22} {_fmt(summary.get(key))}" for key in keys)


# --- runs, show, export ------------------------------------------------------------------------


def cmd_runs(args: argparse.Namespace) -> int:
    from workbench.runs import list_runs

    infos = list_runs(args.runs_dir)
    if args.json:
        common.print_json([info.to_json() for info in infos])
        return EXIT_OK
    if not infos:
        print("no runs")
        return EXIT_OK
    print(f"{'run id':<36} {'name':<20} {'status':<10} {'steps':>7} {'best val':>10} {'seconds':>8}")
    for info in infos:
        print(f"{info.run_id:<36} {info.name[:20]:<20} {info.status:<10} {info.steps:>7} "
              f"{_fmt(info.best_val_loss):>10} {info.seconds:>8.1f}")
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    from workbench.runs import open_run

    summary = open_run(args.run, args.runs_dir).summary()
    if args.json:
        common.print_json(summary)
    else:
        print(_summary_text(summary))
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from workbench.exports import write_metrics_csv

    out = Path(args.csv)
    common.check_output_file(out, "--csv")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_metrics_csv([args.run], out, runs_dir=args.runs_dir)
    print(f"wrote {out}", file=sys.stderr)
    return EXIT_OK


# --- evaluate and predict -------------------------------------------------------------------------


def _load_for_inference(args: argparse.Namespace):
    """The run, its config, the checkpoint's model (eval mode) and normalization."""
    from workbench.runs import open_run

    run = open_run(args.run, args.runs_dir)
    which = args.checkpoint or ("best" if run.checkpoint_path("best").is_file() else "latest")
    model, normalization, state = run.load_model(which)
    return run, run.config(), model, normalization, state, which


def cmd_evaluate(args: argparse.Namespace) -> int:
    from workbench.training import BatchConverter, evaluate

    run, config, model, normalization, state, which = _load_for_inference(args)
    with open_inference_data(config, args.data, model) as dataset:
        split = dataset.split(args.split)
        convert = BatchConverter(normalization, model.config.source.kind == "continuous",
                                 model.config.target.kind == "continuous", "cpu")
        scores = evaluate(model, split, convert, config.batch_size, normalization=normalization)
    tokens = model.config.target.kind == "tokens"
    result = {
        "run_id": run.run_id, "checkpoint": which, "step": state["position"]["step"],
        "data": str(args.data or config.data), "split": args.split, "sequences": scores.sequences,
        "units": "cross-entropy" if tokens else "data (MSE in the targets' own units)",
        "loss": scores.loss if tokens else scores.extra.get("mse"),
        "loss_free_running": scores.loss_free_running if tokens
        else scores.extra.get("mse_free_running"),
        "normalized_loss": scores.loss, "normalized_loss_free_running": scores.loss_free_running,
        "token_accuracy": scores.token_accuracy, "sequence_accuracy": scores.sequence_accuracy,
    }
    if args.json:
        common.print_json(result)
    else:
        print("\n".join(f"  {key:<30} {_fmt(value)}" for key, value in common.json_safe(result).items()))
    return EXIT_OK


def cmd_predict(args: argparse.Namespace) -> int:
    import h5py
    import numpy as np
    import torch

    from workbench.atomic import atomic_path
    from workbench.training import BatchConverter

    out = Path(args.out)
    common.check_output_file(out, "--out")
    run, config, model, normalization, state, which = _load_for_inference(args)
    with open_inference_data(config, args.data, model) as dataset:
        names = [args.split] if args.split else list(dataset.summary.splits)
        convert = BatchConverter(normalization, model.config.source.kind == "continuous",
                                 model.config.target.kind == "continuous", "cpu")
        steps = dataset.summary.targets.steps
        outputs, lengths, splits, indices = [], [], [], []
        with torch.no_grad():
            for name in names:
                split = dataset.split(name)
                for batch in split.iter_batches(config.batch_size, seed=0, epoch=0, shuffle=False):
                    t = convert(batch)
                    generated = model.generate(t.src, steps, t.src_lengths)
                    values = generated.outputs.cpu().numpy()
                    if model.config.target.kind == "continuous" and normalization is not None:
                        values = normalization.denormalize_y(values).astype(np.float32)
                    outputs.append(values)
                    lengths.append(generated.lengths.cpu().numpy().astype(np.int64))
                    indices.append(batch.indices)
                    splits.extend([name] * len(batch.indices))
    if not outputs:
        raise RunError(f"{args.data}: no sequences to predict in split(s) {', '.join(names)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("outputs", data=np.concatenate(outputs))
        f.create_dataset("lengths", data=np.concatenate(lengths))
        f.create_dataset("indices", data=np.concatenate(indices))
        f.create_dataset("split", data=np.array(splits, dtype=h5py.string_dtype()))
        f.attrs["run_id"] = run.run_id
        f.attrs["checkpoint"] = which
        f.attrs["step"] = int(state["position"]["step"])
        f.attrs["data"] = str(Path(args.data).resolve())
        f.attrs["kind"] = model.config.target.kind
        vocab = dataset.summary.targets.vocab
        if vocab:
            f.attrs["vocab"] = list(vocab)
    print(f"wrote {sum(len(o) for o in outputs)} predictions to {out}", file=sys.stderr)
    return EXIT_OK
