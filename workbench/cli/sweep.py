"""Subcommands about sweeps: sweep (run one, resume one, or --show a saved one) and sweeps.

    python main.py sweep --data FILE --grid cell=rnn-tanh,lstm --grid recurrent_radius=0.5,1,1.5 \\
        --seeds 3 --steps 400 [--json]
    python main.py sweep --task copy --task-grid delay=5,10,20,40 --grid cell=rnn-tanh,gru,lstm \\
        --seeds 2 --epochs 10
    python main.py sweep --spec lesson.toml [train flags override its config]
    python main.py sweep --preset memory-length        # a shipped lesson; --presets lists them
    python main.py sweep --resume ID [--workers N]     # only the runs that are missing
    python main.py sweep ... --engine ray [--ray-address HOST:PORT] [--cpus-per-run N] \\
        [--max-concurrent N]                           # Ray tasks (docs/scaling.md)
    python main.py sweep --show ID [--csv table.csv] [--json]
    python main.py sweeps [--json]

`sweep` takes every `train` flag as the fixed part of the grid (the same parser as
`compare`); `--seed` is the base seed, the runs use base, base+1, ... . `--grid
FIELD=V1,V2` sweeps a RunConfig field, `--task-grid OPTION=V1,V2` a task's option (one
generated dataset per value). More than 500 runs need `--yes`. `--json` ends with one
line: {"sweep_id", "status", "points": [{"params", "runs", <figure>: {"mean", "std"}}]}.
Ctrl-C cancels (the runs in progress stop with a checkpoint; `--resume ID` goes on).
The exit status is 0 when the sweep ran (a run that failed or diverged is a result,
recorded in its point), 2 for a user's mistake, 1 when the sweep itself failed.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from workbench.cli import common
from workbench.cli import train as train_cli
from workbench.config import RunConfig
from workbench.errors import ConfigError
from workbench.events import Event

EXIT_OK, EXIT_FAILED = 0, 1


def register(subparsers: Any) -> None:
    """Add `sweep` and `sweeps`."""
    parser = subparsers.add_parser(
        "sweep", parents=[_train_parser()], conflict_handler="resolve",
        help="train a grid of settings x seeds and compare them",
        description="Train a grid over any setting (and a built-in task's options) with "
        "several seeds, and print each point's figures (mean and std across seeds). Takes "
        "every train flag as the fixed part of the grid.")
    group = parser.add_argument_group("sweep")
    group.add_argument("--grid", action="append", default=[], metavar="FIELD=V1,V2",
                       help="a setting to sweep and its values (repeat for more), e.g. "
                       "recurrent_radius=0.5,1,1.5 or teacher_forcing=1,0.5,0,1:0")
    group.add_argument("--task", metavar="NAME",
                       help="train on a built-in task's generated data instead of --data")
    group.add_argument("--task-option", action="append", default=[], metavar="OPTION=VALUE",
                       help="a fixed option of --task (repeat), e.g. length=5")
    group.add_argument("--task-n", type=int, default=None, metavar="N",
                       help="sequences per generated dataset (default 2000)")
    group.add_argument("--task-seed", type=int, default=None, metavar="S",
                       help="seed of the generated data (default 0)")
    group.add_argument("--task-grid", action="append", default=[], metavar="OPTION=V1,V2",
                       help="a task option to sweep (repeat), e.g. delay=5,10,20,40: one "
                       "dataset per value, cached by its options")
    group.add_argument("--spec", metavar="FILE.toml", help="the sweep as a TOML file")
    group.add_argument("--preset", metavar="NAME", help="a shipped lesson (see --presets)")
    group.add_argument("--presets", action="store_true", help="list the shipped lessons")
    group.add_argument("--seeds", metavar="N", default=None,
                       help="training seeds per point: --seed, --seed+1, ... (default 1, or "
                       "the spec's)")
    group.add_argument("--seed", help="the base training seed (default 0 or the config's)")
    group.add_argument("--name", help="display name of the sweep")
    group.add_argument("--workers", type=int, default=1, metavar="N",
                       help="runs at once, in child processes, the torch threads split "
                       "among them (default 1: one after another)")
    group.add_argument("--engine", choices=("local", "ray"), default="local",
                       help="local: this machine, in turn or --workers child processes "
                       "(default); ray: each run a Ray task, on a private Ray instance or "
                       "the cluster at --ray-address (pip install -e '.[ray]')")
    group.add_argument("--ray-address", metavar="HOST:PORT",
                       help="a running Ray cluster (`ray start --head` prints it); without "
                       "it a private instance is started for the sweep and shut down after")
    group.add_argument("--cpus-per-run", type=int, default=None, metavar="N",
                       help="with --engine ray: the CPUs each run holds, and its torch "
                       "threads (default 1, or the config's --threads)")
    group.add_argument("--max-concurrent", type=int, default=None, metavar="N",
                       help="with --engine ray: the most runs at once (default: as many as "
                       "the cluster's CPUs hold)")
    group.add_argument("--ray-cpus", type=int, default=None, metavar="N",
                       help="with --engine ray and no --ray-address: the private "
                       "instance's CPUs (default every core)")
    group.add_argument("--yes", action="store_true", help="run a grid of more than 500 runs")
    group.add_argument("--resume", metavar="ID", help="run what a saved sweep is missing")
    group.add_argument("--show", metavar="ID", help="print a saved sweep instead of running one")
    group.add_argument("--csv", metavar="FILE", help="also write the table as CSV")
    group.add_argument("--json", action="store_true",
                       help="end with one JSON line: the sweep and its points")
    parser.set_defaults(func=cmd_sweep)

    listing = subparsers.add_parser("sweeps", help="list saved sweeps (and comparisons)")
    train_cli.add_runs_dir_arg(listing)
    listing.add_argument("--json", action="store_true", help="print a JSON list")
    listing.set_defaults(func=cmd_sweeps)


def _train_parser() -> argparse.ArgumentParser:
    """The `train` parser as workbench.cli.train builds it, as a parent parser."""
    subparsers = argparse.ArgumentParser(add_help=False).add_subparsers()
    train_cli.register_train(subparsers)
    return subparsers.choices["train"]


class SweepConsole:
    """Prints the sweep's progress to stderr and points the run's progress bar at it."""

    def __init__(self, progress: Any, *, enabled: bool = True) -> None:
        self.progress = progress
        self.enabled = enabled

    def on_event(self, event: Event | Any) -> None:
        from workbench import sweeps

        if isinstance(event, sweeps.SweepStarted):
            verb = "resumes" if event.resumed else "starts"
            self._say(f"sweep {event.sweep_id} {verb}: {event.pending} of {event.planned} runs "
                      f"({event.points} points over {', '.join(event.fields)})")
        elif isinstance(event, sweeps.SweepRunStarted):
            self.progress.total = event.total_steps
            self._say(f"[{event.index + 1}/{event.planned}] {_params(event.params)} seed "
                      f"{event.seed}: {event.run_id}")
        elif isinstance(event, sweeps.SweepRunFinished) and event.status != "completed":
            self._say(f"[{event.index + 1}/{event.planned}] {_params(event.params)} seed "
                      f"{event.seed}: {event.status}"
                      + (f" - {event.message}" if event.message else ""))
        elif isinstance(event, sweeps.SweepFinished):
            self._say(f"sweep {event.sweep_id} {event.status}: {event.completed}/"
                      f"{event.planned} runs completed, {event.failed} failed or diverged"
                      + (f" ({event.message})" if event.message else ""))

    def _say(self, text: str) -> None:
        if self.enabled:
            print(text, file=sys.stderr, flush=True)


def _params(params: dict[str, Any]) -> str:
    from workbench.sweep_spec import format_value

    return ", ".join(f"{k}={format_value(v)}" for k, v in params.items())


def cmd_sweep(args: argparse.Namespace) -> int:
    from workbench import sweeps

    if args.presets:
        return _list_presets(args)
    if args.show:
        return _print(sweeps.open_sweep(args.show, args.runs_dir), args)
    ray = ray_options(args)
    if args.resume:
        _refuse_settings_on_resume(args)
        return _run(lambda listeners: sweeps.SweepRunner.resume(
            args.resume, runs_dir=args.runs_dir, listeners=listeners, workers=args.workers,
            thread_policy="cli", ray=ray), args)
    spec = spec_from_args(args)
    if spec.run_count > sweeps.CONFIRM_RUNS and not args.yes:
        raise ConfigError(f"this sweep trains {spec.run_count} runs ({len(spec.points())} "
                          f"points x {len(spec.seeds)} seeds), more than "
                          f"{sweeps.CONFIRM_RUNS}: add --yes to run them")
    return _run(lambda listeners: sweeps.SweepRunner(
        spec, runs_dir=args.runs_dir, listeners=listeners, workers=args.workers,
        thread_policy="cli", ray=ray), args)


def ray_options(args: argparse.Namespace) -> Any:
    """The RayOptions of --engine ray and its flags (None for the local engine); Ray
    missing or a cluster address that does not answer is refused here, before anything
    is recorded."""
    ray_flags = [flag for flag in ("ray_address", "cpus_per_run", "max_concurrent", "ray_cpus")
                 if getattr(args, flag, None) is not None]
    if args.engine != "ray":
        if ray_flags:
            raise ConfigError(f"--{ray_flags[0].replace('_', '-')} goes with --engine ray")
        return None
    from workbench import ray_engine

    if args.workers != 1:
        raise ConfigError("--workers is the local engine's: with --engine ray, "
                          "--max-concurrent N caps the runs at once")
    if args.ray_address and args.ray_cpus is not None:
        raise ConfigError("--ray-cpus sizes a private Ray instance; a cluster at "
                          "--ray-address has its own CPUs")
    if args.ray_cpus is not None and (args.ray_cpus < 1 or args.ray_cpus > 4096):
        raise ConfigError(f"--ray-cpus {args.ray_cpus} is not allowed: expected 1 to 4096")
    options = ray_engine.RayOptions(
        address=args.ray_address, cpus_per_run=ray_engine.check_cpus_per_run(
            args.cpus_per_run if args.cpus_per_run is not None else 1),
        max_concurrent=ray_engine.check_max_concurrent(args.max_concurrent),
        num_cpus=args.ray_cpus)
    ray_engine.import_ray()
    if options.address:
        ray_engine.check_reachable(options.address)
    return options


def _run(build: Any, args: argparse.Namespace) -> int:
    progress = train_cli.ConsoleProgress(
        0, enabled=not args.no_progress and args.workers == 1 and args.engine == "local")
    console = SweepConsole(progress, enabled=not args.no_progress)
    runner = build([console, progress])
    with train_cli.stop_on_interrupt(runner):
        sweep = runner.run()
    code = _print(sweep, args)
    return code if sweep.status != "failed" else EXIT_FAILED


def spec_from_args(args: argparse.Namespace) -> Any:
    """The SweepSpec the command line describes: a --spec file or --preset, with the train
    flags given on top of its config; or the train flags, --grid and --task flags."""
    from workbench.sweep_spec import (
        DEFAULT_TASK_N,
        TASK_DATA,
        SweepSpec,
        TaskSpec,
        load_spec,
        parse_grid_arg,
    )

    sources = [s for s in (args.spec, args.preset) if s]
    if len(sources) > 1:
        raise ConfigError("give --spec FILE or --preset NAME, not both")
    seeds = _seeds(args.seeds)
    if sources:
        if args.spec:
            spec = load_spec(args.spec)
        else:
            from workbench.lessons import load_lesson

            spec = load_lesson(args.preset)
        base = train_cli.apply_overrides(spec.base, args)
        grid = dict(spec.grid)
        task_grid = dict(spec.task_grid)
        for text in args.grid:
            name, values = parse_grid_arg(text)
            grid[name] = values
        for text in args.task_grid:
            name, values = parse_grid_arg(text, "--task-grid")
            task_grid[name] = values
        return SweepSpec.build(base, grid, task=spec.task, task_grid=task_grid,
                               seeds=seeds if seeds is not None else _spec_seeds(spec, base),
                               name=args.name or spec.name, title=spec.title,
                               about=spec.about, view=spec.view)
    task = None
    if args.task:
        if args.data:
            raise ConfigError("give --data FILE or --task NAME, not both")
        options = dict(parse_option(text) for text in args.task_option)
        task = TaskSpec(args.task, args.task_n if args.task_n is not None else DEFAULT_TASK_N,
                        args.task_seed or 0, options)
        config = RunConfig.load(args.config) if args.config else RunConfig()
        config.data = TASK_DATA + args.task  # each point's generated file, once made
        base = train_cli.apply_overrides(config, args)
    elif args.task_option or args.task_grid or args.task_n is not None:
        raise ConfigError("--task-option, --task-grid and --task-n need --task NAME")
    else:
        if not args.config and not args.data:
            raise ConfigError("sweep needs --data FILE, --config RUN.toml, --task NAME, "
                              "--spec FILE.toml or --preset NAME")
        base = train_cli.config_from_args(args)
    grid: dict[str, list[str]] = {}
    for text in args.grid:
        name, values = parse_grid_arg(text)
        grid[name] = values
    task_grid: dict[str, list[str]] = {}
    for text in args.task_grid:
        name, values = parse_grid_arg(text, "--task-grid")
        task_grid[name] = values
    return SweepSpec.build(base, grid, task=task, task_grid=task_grid,
                           seeds=seeds if seeds is not None else 1, name=args.name or "")


def parse_option(text: str) -> tuple[str, str]:
    """"length=5" -> ("length", "5")."""
    name, sep, value = str(text).partition("=")
    if not sep or not name.strip():
        raise ConfigError(f"--task-option {text!r} is not allowed: expected OPTION=VALUE")
    return name.strip().replace("-", "_"), value.strip()


def _seeds(text: str | None) -> int | list[int] | None:
    """--seeds N (a count), or a comma-separated list of seeds."""
    if text is None:
        return None
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        raise ConfigError(f"--seeds {text!r} is not allowed: expected a count or a list of "
                          "seeds, e.g. 3 or 0,1,2") from None
    if len(numbers) == 1 and "," not in str(text):
        return numbers[0]
    return numbers


def _spec_seeds(spec: Any, base: RunConfig) -> Any:
    """The spec's seeds, moved to a new base seed when --seed changed it."""
    if base.seed == spec.base.seed:
        return list(spec.seeds)
    return len(spec.seeds)


def _refuse_settings_on_resume(args: argparse.Namespace) -> None:
    given = [flag for flag in train_cli.OVERRIDES if getattr(args, flag, None) is not None]
    given += [name for name in ("grid", "task_grid", "task_option") if getattr(args, name)]
    given += [name for name in ("spec", "preset", "task", "seeds", "config") if getattr(args, name)]
    if given:
        flag = "--" + given[0].replace("_", "-")
        raise ConfigError(f"{flag} cannot be used with --resume: a resumed sweep keeps its "
                          "grid and settings (only --workers, --engine and its flags may change)")


def _print(sweep: Any, args: argparse.Namespace) -> int:
    from workbench import sweeps

    table = sweep.table()
    if args.csv:
        common.check_output_file(args.csv, "--csv")
        sweeps.write_sweep_csv(table, args.csv)
        print(f"wrote {args.csv}", file=sys.stderr)
    if args.json:
        common.print_json(sweeps.result_json(sweep, table))
    else:
        print(f"sweep {sweep.sweep_id} ({sweep.name}): {sweep.status}"
              + (f" - {sweep.message}" if sweep.message else ""))
        print(table.to_text())
        failed = [(row, s, m) for row in table.rows for s, m in zip(row.statuses, row.messages)
                  if m and s in ("failed", "diverged")]
        for row, status, message in failed:
            print(f"  {_params(row.params)}: {status}: {message}")
    return EXIT_OK


def _list_presets(args: argparse.Namespace) -> int:
    from workbench.lessons import list_lessons

    lessons = list_lessons()
    if args.json:
        common.print_json([{"name": x.name, "title": x.title, "about": x.about,
                            "runs": x.runs, "fields": list(x.fields), "path": str(x.path)}
                           for x in lessons])
        return EXIT_OK
    for lesson in lessons:
        print(f"{lesson.name:<22} {lesson.runs:>3} runs  {lesson.title}")
    return EXIT_OK


def cmd_sweeps(args: argparse.Namespace) -> int:
    from workbench.sweeps import list_sweeps

    found = list_sweeps(args.runs_dir)
    if args.json:
        common.print_json([s.to_json() for s in found])
        return EXIT_OK
    if not found:
        print("no sweeps")
        return EXIT_OK
    print(f"{'sweep id':<44} {'kind':<10} {'status':<10} {'runs':>7}  fields")
    for s in found:
        print(f"{s.sweep_id:<44} {s.kind:<10} {s.status:<10} {len(s.run_ids):>3}/"
              f"{len(s.entries):<3}  {', '.join(s.fields)}")
    return EXIT_OK
