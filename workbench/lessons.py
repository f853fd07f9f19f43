"""The ready-made experiments: sweep TOML files shipped in resources/lessons/.

    list_lessons()            # every lesson: name, title, what to look for, its runs
    load_lesson("clipping")   # its SweepSpec (workbench.sweep_spec), ready to run

`sweep --preset NAME` and the GUI's Experiments menu run them; `sweep --presets` lists
them. Each is a plain sweep file (workbench.sweep_spec's TOML form) with a `title` and
an `about`: a few sentences on what to look for. Their sizes are chosen so that each
runs in under 3 minutes on 2 cores (docs/lessons.md has the measured times).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from workbench.errors import ConfigError
from workbench.sweep_spec import SweepSpec, load_spec

LESSONS_FOLDER = "lessons"
# the order the menu and `--presets` list them in (a file not named here comes after)
ORDER = ("vanishing-exploding", "memory-length", "clipping", "teacher-forcing", "attention")


@dataclass(frozen=True)
class Lesson:
    """One shipped experiment."""

    name: str
    title: str
    about: str
    path: Path
    runs: int  # runs it trains (points x seeds)
    fields: tuple[str, ...]

    def spec(self) -> SweepSpec:
        return load_spec(self.path)


def lessons_folder() -> Path:
    """resources/lessons as a folder on disk (the package is installed unzipped)."""
    return Path(str(resources.files("resources") / LESSONS_FOLDER))


def list_lessons() -> list[Lesson]:
    """Every lesson file, in ORDER (then by name); a broken file raises ConfigError."""
    folder = lessons_folder()
    paths = sorted(folder.glob("*.toml")) if folder.is_dir() else []
    rank = {name: i for i, name in enumerate(ORDER)}
    out = []
    for path in sorted(paths, key=lambda p: (rank.get(p.stem, len(ORDER)), p.stem)):
        spec = load_spec(path)
        out.append(Lesson(spec.name or path.stem, spec.title or path.stem, spec.about.strip(),
                          path, spec.run_count, spec.fields))
    return out


def load_lesson(name: str) -> SweepSpec:
    """The spec of lesson `name` (ConfigError naming the known ones otherwise)."""
    for lesson in list_lessons():
        if lesson.name == name:
            return lesson.spec()
    known = ", ".join(lesson.name for lesson in list_lessons())
    raise ConfigError(f"no lesson {name!r}; the lessons are: {known}")
