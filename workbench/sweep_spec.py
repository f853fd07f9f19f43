"""What a sweep is: a base config, a grid over its settings and a task's options, seeds.

    spec = SweepSpec.build(base, grid={"cell": ["rnn-tanh", "lstm"],
                                       "recurrent_radius": [0.5, 1, 1.5]},
                           seeds=3)
    spec = load_spec("lesson.toml")          # the same, as a TOML file
    spec.points()                            # every combination, in grid order
    spec.config_for(point, seed, data=...)   # the run config of one run

A grid field is any RunConfig setting (workbench.config.FIELDS) except `seed` (the
seeds are the sweep's own axis), each value checked as the GUI and the CLI check it.
A task option (workbench.tasks, spelled as `make-dataset` spells it: `delay`,
`input_steps`, and `n`) makes one dataset per value, generated into the runs folder
and cached by its options (workbench.sweeps.task_dataset). The points are the product
of every field's values, fields first, in the order given; every point runs with
every seed. Mistakes (an unknown field, a value not allowed, an empty grid, a point
whose settings do not go together) raise ConfigError naming the field and the value,
before anything runs.

Special values: `teacher_forcing` takes "START:END" for a linear schedule (as
`train --teacher-forcing` does); a sweep over `steps` drops an epoch budget and one
over `epochs` a step budget. `forget_bias` is an LSTM's only: set in the base config it
is kept for the LSTM's points and dropped for the other cells'; swept, every point must
be an LSTM.

The TOML form (resources/lessons/*.toml are examples):

    name = "memory-length"            # what `sweep --preset` calls it
    title = "How far back can each cell remember?"
    about = "What to look for ..."
    seeds = 2                         # a count (0, 1, ...) or a list of seeds
    [config]                          # any RunConfig setting (flat); data relative to the file
    hidden = 32
    [task]                            # optional: a built-in task instead of data
    name = "copy"
    n = 2000
    length = 5                        # fixed task options
    [grid]                            # RunConfig fields -> values
    cell = ["rnn-tanh", "gru", "lstm"]
    [task_grid]                       # task options -> values
    delay = [5, 10, 20, 40]
    [view]                            # what the sweep view shows first (optional)
    x = "delay"
    metric = "sequence_accuracy"
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.config import FIELDS, RunConfig, validate_field
from workbench.errors import ConfigError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

DEFAULT_TASK_N = 2000  # sequences of a sweep's generated dataset unless it says
TASK_DATA = "task:"  # the base config's `data` while a task's files are not generated yet
NOT_SWEPT = {"seed": "the training seed is the sweep's own axis: use --seeds (seeds = N)"}
VIEW_KEYS = ("x", "metric", "gradient")
SPEC_KEYS = ("name", "title", "about", "seeds", "config", "task", "grid", "task_grid", "view")


@dataclass(frozen=True)
class TaskSpec:
    """A built-in task whose generated files a sweep trains on: `options` are the fixed
    ones (defaults for the rest), `n` sequences, generator `seed`."""

    name: str
    n: int = DEFAULT_TASK_N
    seed: int = 0
    options: Mapping[str, Any] = field(default_factory=dict)

    def resolved(self, swept: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Every option of the task with `swept` on top, checked, plus n and seed: the
        key of its generated file."""
        values = dict(self.options)
        n = self.n
        for key, value in (swept or {}).items():
            if key == "n":
                n = value
            else:
                values[key] = value
        from workbench.tasks import get_task

        resolved = get_task(self.name).resolve(values)
        return {**resolved, "n": _task_n(self.name, n), "seed": self.seed}


@dataclass(frozen=True)
class SweepPoint:
    """One combination of the grid: `params` holds every swept field and task option."""

    index: int
    params: dict[str, Any]

    def label(self) -> str:
        return ", ".join(f"{k}={format_value(v)}" for k, v in self.params.items())


@dataclass(frozen=True)
class PlannedSweepRun:
    """One run of the sweep: point `point` with training seed `seed`, `index` in order."""

    index: int
    point: int
    seed: int


@dataclass(frozen=True)
class SweepSpec:
    """A grid of runs (module docstring). Build it with `SweepSpec.build` or
    `from_dict`/`load_spec`, which check everything."""

    base: RunConfig
    grid: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    task: TaskSpec | None = None
    task_grid: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    seeds: tuple[int, ...] = (0,)
    name: str = ""
    title: str = ""
    about: str = ""
    view: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def build(cls, base: RunConfig, grid: Mapping[str, Iterable[Any]] | None = None, *,
              task: TaskSpec | None = None,
              task_grid: Mapping[str, Iterable[Any]] | None = None,
              seeds: int | Sequence[int] = 1, name: str = "", title: str = "",
              about: str = "", view: Mapping[str, str] | None = None) -> SweepSpec:
        """Check and canonicalise everything, then every point's config (ConfigError)."""
        checked_grid = tuple((name_, _field_values(name_, values))
                             for name_, values in _items(grid))
        if task is not None:
            task = _check_task(task)
        checked_task_grid = tuple((key, _option_values(task, key, values))
                                  for key, values in _items(task_grid))
        if not checked_grid and not checked_task_grid:
            raise ConfigError("the grid is empty: give at least one field to sweep, e.g. "
                              "--grid cell=rnn-tanh,lstm (or --task-grid delay=5,10)")
        repeated = {k for k, _ in checked_grid} & {k for k, _ in checked_task_grid}
        if repeated:
            raise ConfigError(f"{sorted(repeated)[0]} is both a setting and a task option in "
                              "the grid: sweep it once")
        if task is not None and "data" in {k for k, _ in checked_grid}:
            raise ConfigError("grid data: a task sweep generates its own data; sweep the "
                              "task's options (--task-grid) instead")
        if task is None and TASK_DATA in str(base.data):
            raise ConfigError("no data: give --data FILE, --config RUN.toml or --task NAME")
        seed_tuple = _seeds(base.seed, seeds)
        spec = cls(base=base, grid=checked_grid, task=task, task_grid=checked_task_grid,
                   seeds=seed_tuple, name=str(name), title=str(title), about=str(about),
                   view=_check_view(view or {}, [k for k, _ in checked_grid]
                                    + [k for k, _ in checked_task_grid]))
        spec.check()
        return spec

    # -- the grid ------------------------------------------------------------------------

    @property
    def fields(self) -> tuple[str, ...]:
        """Every swept name: RunConfig fields first, then task options."""
        return tuple(k for k, _ in self.grid) + tuple(k for k, _ in self.task_grid)

    def values(self, name: str) -> tuple[Any, ...]:
        for key, values in (*self.grid, *self.task_grid):
            if key == name:
                return values
        raise KeyError(name)

    def points(self) -> list[SweepPoint]:
        """Every combination of the grid's values, the first field varying slowest."""
        axes = [*self.grid, *self.task_grid]
        names = [k for k, _ in axes]
        return [SweepPoint(i, dict(zip(names, combo)))
                for i, combo in enumerate(itertools.product(*(v for _, v in axes)))]

    def plan(self) -> list[PlannedSweepRun]:
        """The runs, seed-major: every point with the first seed, then with the next, so
        a sweep cancelled halfway has every point in its table."""
        count = len(self.points())
        return [PlannedSweepRun(i * count + p, p, seed)
                for i, seed in enumerate(self.seeds) for p in range(count)]

    @property
    def run_count(self) -> int:
        return len(self.points()) * len(self.seeds)

    def task_options(self, point: SweepPoint) -> dict[str, Any] | None:
        """The task options (resolved, with n and seed) of the point's dataset, or None."""
        if self.task is None:
            return None
        return self.task.resolved({k: point.params[k] for k, _ in self.task_grid})

    def config_for(self, point: SweepPoint, seed: int, data: str | None = None) -> RunConfig:
        """The run config of `point` with training `seed` (on `data`, the point's generated
        file for a task sweep); ConfigError naming the point when its settings clash."""
        changes: dict[str, Any] = {"seed": seed}
        for name, _ in self.grid:
            changes.update(_changes(name, point.params[name]))
        cell = changes.get("cell", self.base.cell)
        if cell != "lstm" and "forget_bias" not in changes and self.base.forget_bias is not None:
            changes["forget_bias"] = None  # the base's LSTM forget bias; other cells have none
        if data is not None:
            changes["data"] = data
        try:
            return self.base.replace(**changes).validate()
        except ConfigError as exc:
            raise ConfigError(f"sweep point {point.label()}: {exc}") from None

    def check(self) -> None:
        """Every point's config and task options, checked before anything runs."""
        for point in self.points():
            self.config_for(point, self.seeds[0])
            self.task_options(point)

    # -- dicts and TOML ------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON- and TOML-able (None values left out of the grid as "off")."""
        out: dict[str, Any] = {
            "name": self.name, "title": self.title, "about": self.about,
            "seeds": list(self.seeds), "config": _flat_config(self.base),
            "grid": {k: [_plain(v) for v in vs] for k, vs in self.grid},
            "task_grid": {k: list(vs) for k, vs in self.task_grid}, "view": dict(self.view)}
        if self.task is not None:
            out["task"] = {"name": self.task.name, "n": self.task.n, "seed": self.task.seed,
                           **dict(self.task.options)}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, base_dir: str | Path | None = None,
                  where: str = "sweep") -> SweepSpec:
        """From to_dict()'s shape or a TOML file's (module docstring); `where` names the
        source in messages."""
        try:
            unknown = sorted(set(data) - set(SPEC_KEYS))
            if unknown:
                raise ConfigError(f"unknown key(s) {', '.join(unknown)}; a sweep has "
                                  f"{', '.join(SPEC_KEYS)}")
            task = _task_from(data.get("task"))
            base = _base_from(dict(_table(data, "config")), task, base_dir)
            seeds = data.get("seeds", 1)
            if isinstance(seeds, list):
                seeds = [validate_field("seed", s) for s in seeds]
            elif isinstance(seeds, bool) or not isinstance(seeds, int):
                raise ConfigError(f"seeds = {seeds!r} is not allowed: expected a count or a "
                                  "list of seeds")
            grid = {k: _as_list(k, v, base_dir if k == "data" else None)
                    for k, v in _table(data, "grid").items()}
            task_grid = {k: _as_list(k, v) for k, v in _table(data, "task_grid").items()}
            return cls.build(base, grid, task=task, task_grid=task_grid, seeds=seeds,
                             name=str(data.get("name", "")), title=str(data.get("title", "")),
                             about=str(data.get("about", "")),
                             view={str(k): str(v) for k, v in _table(data, "view").items()})
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None


def load_spec(path: str | Path) -> SweepSpec:
    """A sweep TOML file (module docstring); ConfigError naming the file on a mistake."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"sweep file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read sweep file {path}: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    spec = SweepSpec.from_dict(data, base_dir=path.parent, where=str(path))
    if not spec.name:
        spec = SweepSpec.build(spec.base, dict(spec.grid), task=spec.task,
                               task_grid=dict(spec.task_grid), seeds=spec.seeds,
                               name=path.stem, title=spec.title, about=spec.about,
                               view=spec.view)
    return spec


# --- values ---------------------------------------------------------------------------------


def format_value(value: Any) -> str:
    """A grid value as a label shows it: 0.5, 1e-05, lstm, off."""
    if value is None:
        return "off"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def parse_grid_arg(text: str, flag: str = "--grid") -> tuple[str, list[str]]:
    """"FIELD=V1,V2" -> ("FIELD", ["V1", "V2"]); ConfigError naming the flag if malformed."""
    name, sep, values = str(text).partition("=")
    name = name.strip().replace("-", "_")
    if not sep or not name:
        raise ConfigError(f"{flag} {text!r} is not allowed: expected NAME=V1,V2,...")
    return name, [v.strip() for v in values.split(",") if v.strip()]


def numeric_values(values: Iterable[Any]) -> list[float] | None:
    """The values as floats when every one is a number, else None (a categorical axis)."""
    out = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        out.append(float(value))
    return out


def spans_decade(values: Iterable[Any]) -> bool:
    """Positive numbers whose largest is at least 10 times the smallest: a log axis."""
    numbers = numeric_values(values)
    if not numbers or min(numbers) <= 0:
        return False
    return max(numbers) / min(numbers) >= 10.0


def _items(grid: Mapping[str, Iterable[Any]] | None) -> list[tuple[str, Iterable[Any]]]:
    return [(str(k).strip().replace("-", "_"), v) for k, v in (grid or {}).items()]


def _field_values(name: str, values: Iterable[Any]) -> tuple[Any, ...]:
    if name in NOT_SWEPT:
        raise ConfigError(f"grid {name}: {NOT_SWEPT[name]}")
    if name not in FIELDS:
        raise ConfigError(f"grid: unknown setting {name!r}; known: "
                          f"{', '.join(k for k in FIELDS if k not in NOT_SWEPT)}")
    values = [values] if isinstance(values, (str, int, float)) else list(values)
    out: list[Any] = []
    for value in values:
        canonical = _field_value(name, value)
        if canonical not in out:
            out.append(canonical)
    if not out:
        raise ConfigError(f"grid {name} has no values: expected {name}=V1,V2,...")
    return tuple(out)


def _field_value(name: str, value: Any) -> Any:
    try:
        if name == "teacher_forcing" and isinstance(value, str) and ":" in value:
            start, end = value.split(":", 1)
            start_value = validate_field("teacher_forcing", start)
            end_value = validate_field("teacher_forcing_end", end)
            return f"{start_value:g}:{end_value:g}"
        checked = validate_field(name, value)
    except ConfigError as exc:
        raise ConfigError(f"grid {exc}") from None
    if name == "data" and checked:
        checked = str(Path(checked).expanduser().resolve())
    return checked


def _changes(name: str, value: Any) -> dict[str, Any]:
    """The RunConfig fields one grid value sets."""
    if name == "teacher_forcing" and isinstance(value, str):
        start, end = value.split(":", 1)
        return {"teacher_forcing": float(start), "teacher_forcing_end": float(end)}
    if name == "steps":
        return {"steps": value, "epochs": None}
    if name == "epochs":
        return {"epochs": value, "steps": None}
    return {name: value}


def _check_task(task: TaskSpec) -> TaskSpec:
    from workbench.tasks import get_task

    info = get_task(task.name)
    options = {str(k).replace("-", "_"): v for k, v in dict(task.options).items()}
    known = {o.name: o for o in info.options}
    for key in options:
        if key not in known:
            raise ConfigError(f"task {task.name!r} has no option {key!r}; its options are "
                              f"{', '.join(known)}")
    options = {k: known[k].check(task.name, _typed(known[k].type, v)) for k, v in options.items()}
    from workbench.tasks import OptionSpec

    n = _task_n(task.name, task.n)
    seed = int(OptionSpec("seed", int, 0, "", minimum=0).check(task.name, _typed(int, task.seed)))
    return TaskSpec(task.name, n, seed, options)


def _option_values(task: TaskSpec | None, key: str, values: Iterable[Any]) -> tuple[Any, ...]:
    if task is None:
        raise ConfigError(f"task grid {key}: no task to generate data with; give --task NAME")
    from workbench.tasks import get_task

    known = {o.name: o for o in get_task(task.name).options}
    if key != "n" and key not in known:
        raise ConfigError(f"task {task.name!r} has no option {key!r}; its options are "
                          f"{', '.join([*known, 'n'])}")
    values = [values] if isinstance(values, (str, int, float)) else list(values)
    out: list[Any] = []
    for value in values:
        if key == "n":
            checked = _task_n(task.name, _typed(int, value))
        else:
            spec = known[key]
            checked = spec.check(task.name, _typed(spec.type, value))
        if checked not in out:
            out.append(checked)
    if not out:
        raise ConfigError(f"task grid {key} has no values: expected {key}=V1,V2,...")
    return tuple(out)


def _typed(kind: type, value: Any) -> Any:
    """A command line's text as the option's type (the option's check judges the rest)."""
    if not isinstance(value, str):
        return value
    try:
        number = float(value)
    except ValueError:
        return value
    if kind is int and number.is_integer():
        return int(number)
    return number


def _task_n(task: str, n: Any) -> int:
    from workbench.tasks import MAX_N, OptionSpec

    return int(OptionSpec("n", int, DEFAULT_TASK_N, "", minimum=2, maximum=MAX_N).check(
        task, _typed(int, n)))


def _seeds(base: int, seeds: int | Sequence[int]) -> tuple[int, ...]:
    if isinstance(seeds, bool):
        raise ConfigError(f"seeds = {seeds!r} is not allowed: expected 1 or more")
    if isinstance(seeds, int):
        if seeds < 1:
            raise ConfigError(f"seeds = {seeds} is not allowed: expected 1 or more")
        return tuple(base + i for i in range(seeds))
    out = tuple(dict.fromkeys(validate_field("seed", s) for s in seeds))
    if not out:
        raise ConfigError("seeds = [] is not allowed: expected 1 or more")
    return out


def _check_view(view: Mapping[str, str], fields: list[str]) -> dict[str, str]:
    unknown = sorted(set(view) - set(VIEW_KEYS))
    if unknown:
        raise ConfigError(f"view: unknown key(s) {', '.join(unknown)}; expected "
                          f"{', '.join(VIEW_KEYS)}")
    x = view.get("x")
    if x is not None and x not in fields:
        raise ConfigError(f"view x = {x!r} is not swept: expected one of {', '.join(fields)}")
    return dict(view)


def _table(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"[{key}] must be a table, not {value!r}")
    return value


def _as_list(key: str, value: Any, base_dir: str | Path | None = None) -> list[Any]:
    values = value if isinstance(value, list) else [value]
    if base_dir is not None:  # data paths relative to the sweep file
        values = [str((Path(base_dir) / str(v)).resolve()) for v in values]
    return values


def _task_from(value: Any) -> TaskSpec | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or "name" not in value:
        raise ConfigError("[task] must be a table with a name, e.g. name = \"copy\"")
    options = {k: v for k, v in value.items() if k not in ("name", "n", "seed")}
    return TaskSpec(str(value["name"]), value.get("n", DEFAULT_TASK_N), value.get("seed", 0),
                    options)


def _base_from(flat: dict[str, Any], task: TaskSpec | None,
               base_dir: str | Path | None) -> RunConfig:
    """The base RunConfig of a spec's [config] table (sections allowed, as a run config)."""
    flat = {k: v for k, v in flat.items()}
    for section in ("data", "model", "training", "probes", "system"):
        inner = flat.get(section)
        if isinstance(inner, Mapping):
            flat.pop(section)
            flat.update(inner)
    data = flat.pop("data", None)
    if data and base_dir is not None and not Path(str(data)).is_absolute():
        data = str((Path(base_dir) / str(data)).resolve())
    flat["data"] = data or (TASK_DATA + task.name if task is not None else TASK_DATA)
    if "steps" in flat and "epochs" not in flat:
        flat["epochs"] = None
    return RunConfig.from_dict(flat)


def _flat_config(config: RunConfig) -> dict[str, Any]:
    return {name: getattr(config, name) for name in FIELDS if getattr(config, name) is not None}


def _plain(value: Any) -> Any:
    return "off" if value is None else value

