"""Subcommands about runs: train, runs, show, export, evaluate, predict.

    python main.py train --data FILE --cell lstm [--steps 500 ...] [--json]
    python main.py train --config RUN.toml [flags override the file]
    python main.py train --resume RUN
    python main.py runs [--json]
    python main.py show RUN [--json]
    python main.py export RUN --csv FILE
    python main.py evaluate RUN [--data FILE] [--split val] [--beam K] [--json]
    python main.py predict RUN --data FILE --out FILE.h5 [--beam K]

RUN is a run id (in --runs-dir, default the user's runs folder) or a run folder.
A user's mistake (missing file, bad value, unknown cell) exits 2 with one line.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
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
    "probe_batch": "probe_batch", "best_by": "best_by", "threads": "threads", "device": "device",
    "attention": "attention", "recurrent_init": "recurrent_init",
    "recurrent_radius": "recurrent_radius", "forget_bias": "forget_bias",
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
    export.add_argument("--force", action="store_true", help="replace --csv if it exists")
    export.set_defaults(func=cmd_export)

    evaluate = subparsers.add_parser("evaluate", help="score a run's checkpoint on a split")
    evaluate.add_argument("run", metavar="RUN")
    add_runs_dir_arg(evaluate)
    evaluate.add_argument("--data", metavar="FILE", help="dataset (default: the run's)")
    evaluate.add_argument("--split", default="val", help="split to score (default: val)")
    evaluate.add_argument("--checkpoint", choices=("best", "latest"), default=None,
                          help="which checkpoint (default: best, else latest)")
    add_beam_args(evaluate, "score the outputs of a beam search of width K (token targets)")
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
    add_beam_args(predict, "write each sample's best hypothesis of a beam search of width K "
                  "(token targets)")
    predict.add_argument("--force", action="store_true", help="replace --out if it exists")
    predict.set_defaults(func=cmd_predict)


def add_beam_args(parser: argparse.ArgumentParser, beam_help: str) -> None:
    """--beam K and --length-penalty ALPHA (checked by workbench.predictions.check_beam)."""
    from workbench.predictions import DEFAULT_LENGTH_PENALTY

    parser.add_argument("--beam", metavar="K", help=beam_help + " (default: greedy decoding)")
    parser.add_argument("--length-penalty", metavar="ALPHA", default=None,
                        help="rank beam hypotheses by log P / length^ALPHA "
                        f"(default {DEFAULT_LENGTH_PENALTY:g})")


def beam_from_args(args: argparse.Namespace, model_config: Any) -> tuple[int, float] | None:
    """(beam, length penalty) from --beam/--length-penalty; None without --beam.
    ConfigError (exit 2, one line) for continuous targets or a bad value."""
    from workbench.predictions import DEFAULT_LENGTH_PENALTY, check_beam

    if args.beam is None:
        if args.length_penalty is not None:
            raise ConfigError("--length-penalty needs --beam K")
        return None
    try:
        beam: Any = int(str(args.beam).strip())
    except ValueError:
        beam = args.beam
    alpha = DEFAULT_LENGTH_PENALTY if args.length_penalty is None else args.length_penalty
    return check_beam(model_config, beam, alpha, where=f"--beam {args.beam}")


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
    model.add_argument("--attention", help="none, bahdanau, luong-dot or luong-general")
    model.add_argument("--recurrent-init", metavar="INIT",
                       help="start of W_hh: default (torch's uniform), orthogonal or identity")
    model.add_argument("--recurrent-radius", metavar="R",
                       help="scale each layer's W_hh (each gate block) to spectral radius R "
                       "at the start, or off")
    model.add_argument("--forget-bias", metavar="B",
                       help="LSTM only: the forget gate's bias at the start, or off")
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
    train.add_argument("--best-by", help="which validation loss picks the best checkpoint: "
                       "val_free_running, val_teacher_forced or auto (by the targets' kind)")
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


LOSS_KEYS = ("train_loss", "val_loss", "val_loss_free_running", "best_val_loss")


def _summary_text(summary: dict[str, Any]) -> str:
    """`show` (and `train`) as text: each loss with its unit (and in data units where
    exact), the best epoch by best_by, the baselines and what the model does not beat."""
    from workbench import units

    keys = ("run_id", "name", "run_dir", "status", "message", "cell", "hidden", "layers",
            "parameters", "steps", "epochs", "train_loss", "val_loss", "val_loss_free_running",
            "token_accuracy", "sequence_accuracy", "best_val_loss", "best_by", "best",
            "seconds", "sequences_per_second", "threads", "device", "probes", "started")
    kind = "tokens" if summary.get("loss_units") == units.CROSS_ENTROPY else "continuous"
    data = summary.get("data_units") or {}
    lines = []
    for key in keys:
        value = summary.get(key)
        text = _fmt(value)
        if key == "best" and isinstance(value, dict):
            text = (f"epoch {value.get('epoch')} (step {value.get('step')}): val_loss "
                    f"{_fmt(value.get('val_loss'))}, free-running "
                    f"{_fmt(value.get('val_loss_free_running'))}")
        elif key in LOSS_KEYS and value is not None:
            text = f"{text:<12} {units.short_unit(kind)}"
            if data.get(key) is not None:
                text += f" ({_fmt(data[key])} {units.short_unit(kind, 'data')})"
            if key == "best_val_loss":
                text += ", teacher-forced"
            if key == "train_loss" and summary.get("train_loss_over"):
                text += f"; mean over {summary['train_loss_over']}"
        lines.append(f"  {key:<22} {text}")
    if data.get("note"):
        lines.append(f"  {'data units':<22} {data['note']}")
    lines.extend(_baseline_lines(summary.get("baselines"), summary.get("notes") or []))
    return "\n".join(lines)


def _baseline_lines(record: dict[str, Any] | None, notes: list[str]) -> list[str]:
    """The baselines as rows under their heading, then a `note:` line per baseline the
    model does not beat."""
    from workbench import baselines

    if not record:
        return [f"  {'baselines':<22} none recorded"]
    lines = [f"  {baselines.heading(record)}"]
    for title, value, what in baselines.describe(record):
        lines.append(f"    {title:<20} {value:<20} {what}")
    lines.extend(f"  note: {note}" for note in notes)
    return lines


# --- runs, show, export ------------------------------------------------------------------------


def cmd_runs(args: argparse.Namespace) -> int:
    from workbench.runs import list_runs

    infos = list_runs(args.runs_dir)
    if args.json:
        common.print_json([{**info.to_json(), **_run_units(info)} for info in infos])
        return EXIT_OK
    if not infos:
        print("no runs")
        return EXIT_OK
    print(f"{'run id':<36} {'name':<20} {'status':<10} {'steps':>7} {'best val':>10} "
          f"{'loss':<26} {'in data units²':>14} {'seconds':>8}")
    for info in infos:
        extra = _run_units(info)
        print(f"{info.run_id:<36} {info.name[:20]:<20} {info.status:<10} {info.steps:>7} "
              f"{_fmt(info.best_val_loss):>10} {extra['loss_unit']:<26} "
              f"{_fmt(extra['best_val_loss_data_units']):>14} {info.seconds:>8.1f}")
        if info.unreadable:
            print(f"  {info.message}")
    print("best val: the lowest teacher-forced validation loss, as trained; in data units²: "
          "the same MSE in the targets' own units, where one scale converts it")
    return EXIT_OK


def _run_units(info: Any) -> dict[str, Any]:
    """What `runs` adds to a run's line: the unit of its losses and, where exact, its best
    validation loss in the data's units² (from run.json; nothing if that is unreadable)."""
    import json

    from workbench import units

    try:
        meta = json.loads((Path(info.path) / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        meta = {}
    meta = meta if isinstance(meta, dict) else {}
    kind = units.target_kind(meta.get("dataset") if isinstance(meta.get("dataset"), dict) else None)
    factor = units.data_unit_factor(meta.get("normalization")) if kind == "continuous" else None
    return {"loss_units": units.loss_words(kind), "loss_unit": units.short_unit(kind),
            "best_val_loss_data_units": units.in_data_units(info.best_val_loss, factor)}


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
    from workbench.outputs import check_output

    out = check_output(args.csv, force=args.force, runs_dir=args.runs_dir, flag="--csv")
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
    beam = beam_from_args(args, model.config)
    with open_inference_data(config, args.data, model) as dataset:
        split = dataset.split(args.split)
        convert = BatchConverter(normalization, model.config.source.kind == "continuous",
                                 model.config.target.kind == "continuous", "cpu")
        scores = evaluate(model, split, convert, config.batch_size, normalization=normalization)
        if beam is not None:
            from workbench.predictions import beam_accuracy

            token_accuracy, sequence_accuracy, _ = beam_accuracy(
                model, split, convert, config.batch_size, beam=beam[0], length_penalty=beam[1])
            scores = dataclasses.replace(scores, token_accuracy=token_accuracy,
                                         sequence_accuracy=sequence_accuracy)
        record = _evaluation_baselines(run, dataset, split, normalization, args.data)
    tokens = model.config.target.kind == "tokens"
    result = {
        "run_id": run.run_id, "checkpoint": which, "step": state["position"]["step"],
        "best_by": _best_by_of(run) if which == "best" else None,
        "data": str(args.data or config.data), "split": args.split, "sequences": scores.sequences,
        "units": "cross-entropy" if tokens else "data (MSE in the targets' own units)",
        "loss": scores.loss if tokens else scores.extra.get("mse"),
        "loss_free_running": scores.loss_free_running if tokens
        else scores.extra.get("mse_free_running"),
        "normalized_loss": scores.loss, "normalized_loss_free_running": scores.loss_free_running,
        "token_accuracy": scores.token_accuracy, "sequence_accuracy": scores.sequence_accuracy,
    }
    if beam is not None:  # the accuracies above are the beam's; the losses stay greedy's
        result["decoding"] = f"beam {beam[0]}"
        result["beam"], result["length_penalty"] = beam
    result.update(_baseline_result(record, result, tokens))
    if args.json:
        common.print_json(result)
    else:
        print("\n".join(f"  {key:<30} {_fmt(value)}" for key, value in common.json_safe(result).items()
                        if not isinstance(value, (dict, list))))
        print("\n".join(_baseline_lines(record, result["notes"])))
    return EXIT_OK


def _best_by_of(run: Any) -> str:
    from workbench.summaries import recorded_best_by

    return recorded_best_by(run.config_dict())


def _evaluation_baselines(run: Any, dataset: Any, split: Any, normalization: Any,
                          data: str | None) -> dict[str, Any] | None:
    """The baselines of the split evaluated: the run's own record when it is of this very
    split (the run's data, the whole split), else computed now over the whole split."""
    from workbench import baselines

    recorded = baselines.recorded(run.meta)
    same_file = data is None or Path(data).resolve() == Path(run.config().data).resolve()
    if (recorded and same_file and recorded.get("split") == split.name
            and recorded.get("sequences") == recorded.get("split_sequences") == len(split)):
        return recorded
    hints = baselines.file_hints(str(data or run.config().data))
    seasonal = ((recorded or {}).get("scores") or {}).get("seasonal_persistence") or {}
    if hints.period is None and seasonal.get("period"):
        hints = baselines.Hints(int(seasonal["period"]), hints.input_columns, hints.target_columns)
    try:
        train = dataset.split("train")
    except Exception:  # noqa: BLE001 - a file without a training split: no detection
        train = None
    return baselines.compute(dataset.summary, split, normalization=normalization, train=train,
                             hints=hints, limit=None)


def _baseline_result(record: dict[str, Any] | None, result: dict[str, Any],
                     tokens: bool) -> dict[str, Any]:
    """evaluate's baseline keys: `baselines` in the units of its `loss` (data units for
    continuous targets, cross-entropy for tokens), `normalized_baselines` beside
    `normalized_loss`, the token accuracies of chance and the majority token, and
    whether the model beats each baseline (`beats`, `beats_persistence`, `notes`)."""
    from workbench import baselines

    verdict = baselines.judge(record, loss_free_running=result["loss_free_running"],
                              loss=result["loss"], token_accuracy=result["token_accuracy"],
                              units_="data")
    out: dict[str, Any] = {"baselines": baselines.losses(record, "data")}
    if tokens:
        out["baseline_token_accuracy"] = baselines.accuracies(record)
    else:
        out["normalized_baselines"] = baselines.losses(record, "normalized")
    out["baselines_sequences"] = (record or {}).get("sequences")
    out.update(beats=verdict.beats, beats_persistence=verdict.beats.get("persistence"),
               notes=list(verdict.notes))
    return out


def cmd_predict(args: argparse.Namespace) -> int:
    import h5py
    import numpy as np
    import torch

    from workbench.atomic import atomic_path
    from workbench.outputs import check_output
    from workbench.training import BatchConverter

    out = check_output(args.out, force=args.force, runs_dir=args.runs_dir, flag="--out",
                       inputs=(args.data,))
    run, config, model, normalization, state, which = _load_for_inference(args)
    beam = beam_from_args(args, model.config)
    decoding = {} if beam is None else {"beam": beam[0], "length_penalty": beam[1]}
    with open_inference_data(config, args.data, model) as dataset:
        names = [args.split] if args.split else list(dataset.summary.splits)
        convert = BatchConverter(normalization, model.config.source.kind == "continuous",
                                 model.config.target.kind == "continuous", "cpu")
        steps = dataset.summary.targets.steps
        outputs, lengths, splits, indices, rows, groups = [], [], [], [], [], {}
        with torch.no_grad():
            for name in names:
                split = dataset.split(name)
                stored, groups[name] = split.stored_rows, split.stored_group
                for batch in split.iter_batches(config.batch_size, seed=0, epoch=0, shuffle=False):
                    t = convert(batch)
                    generated = model.generate(t.src, steps, t.src_lengths, **decoding)
                    values = generated.outputs.cpu().numpy()
                    if model.config.target.kind == "continuous" and normalization is not None:
                        values = normalization.denormalize_y(values).astype(np.float32)
                    outputs.append(values)
                    lengths.append(generated.lengths.cpu().numpy().astype(np.int64))
                    indices.append(batch.indices)
                    rows.append(stored[batch.indices])
                    splits.extend([name] * len(batch.indices))
    if not outputs:
        raise RunError(f"{args.data}: no sequences to predict in split(s) {', '.join(names)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("outputs", data=np.concatenate(outputs))
        f.create_dataset("lengths", data=np.concatenate(lengths))
        f.create_dataset("indices", data=np.concatenate(indices))
        f.create_dataset("split", data=np.array(splits, dtype=h5py.string_dtype()))
        f.create_dataset("rows", data=np.concatenate(rows))
        _describe_prediction(f, steps, groups, model.config.target.kind)
        f.attrs["run_id"] = run.run_id
        f.attrs["checkpoint"] = which
        f.attrs["step"] = int(state["position"]["step"])
        f.attrs["data"] = str(Path(args.data).resolve())
        f.attrs["kind"] = model.config.target.kind
        for key, value in decoding.items():  # absent: greedy decoding
            f.attrs[key] = value
        vocab = dataset.summary.targets.vocab
        if vocab:
            f.attrs["vocab"] = list(vocab)
    print(f"wrote {sum(len(o) for o in outputs)} predictions to {out}", file=sys.stderr)
    return EXIT_OK


def _describe_prediction(f: Any, steps: int, groups: dict[str, str], kind: str) -> None:
    """The attributes that say what predict's arrays are (docs/run-format.md)."""
    import json

    f.attrs["generated_steps"] = int(steps)
    f.attrs["outputs_are"] = (
        f"generated free-running (each step fed the model's own previous output) for "
        f"T_out = {steps} steps, the padded length of the file's targets, whatever each "
        "target's own length" + ("; in the data's own units" if kind == "continuous" else ""))
    f.attrs["lengths_are"] = ("where each generated token sequence ends (its end id "
                              "counted), at most T_out" if kind == "tokens" else
                              f"T_out ({steps}) for every sample: continuous outputs do not end")
    f.attrs["indices_are"] = "each sample's position in its split, as the reader serves it"
    f.attrs["rows_are"] = ("each sample's row in the file's stored arrays: the root arrays "
                           "for a split group 'all', else that group's (split_groups)")
    f.attrs["split_groups"] = json.dumps(groups)
