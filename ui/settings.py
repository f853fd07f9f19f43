"""Persisted settings of the desktop app: versioned, with a migration.

Everything the window remembers between launches goes through `AppSettings`:
window geometry and dock layout, recent files, the last dataset and the last
model settings. The store is a QSettings in INI format so that a test can point
it at a temporary file, and so that a user can read and delete it.

The store carries `settings_version`. When the app finds an older version it
migrates the stored values step by step (as Orange's `migrate_settings` does)
instead of throwing them away; when it finds a newer one (a downgrade) it keeps
the values it understands and ignores the rest.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QSettings

APP_NAME = "sequence-workbench"
SETTINGS_VERSION = 1
MAX_RECENT_FILES = 10


def data_home() -> Path:
    """The user's data folder: $SEQUENCE_WORKBENCH_HOME when set, else platformdirs'.

    Runs, the built-in dataset, the settings file and the error log live here.
    """
    env = os.environ.get("SEQUENCE_WORKBENCH_HOME")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def default_settings_path() -> Path:
    """Where the settings file lives: in the data folder, next to the runs."""
    return data_home() / "settings.ini"


def open_settings(path: str | os.PathLike[str] | None = None) -> QSettings:
    """A QSettings in INI format at `path` (default: `default_settings_path()`)."""
    target = Path(path) if path is not None else default_settings_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    return QSettings(str(target), QSettings.Format.IniFormat)


# --- migrations -------------------------------------------------------------------


KNOWN_GROUPS = ("window", "data", "model")


def _migrate_0_to_1(store: QSettings) -> None:
    """Version 0 is a store written before settings carried a version (development
    builds). Its values may have any shape, so keep only the known groups; each
    accessor below falls back to its default for a value it cannot read."""
    for key in store.allKeys():
        if key.split("/", 1)[0] not in KNOWN_GROUPS:
            store.remove(key)


# MIGRATIONS[v] turns a store of version v into version v + 1. A change to the
# shape of a stored value bumps SETTINGS_VERSION and adds one function here.
MIGRATIONS: dict[int, Callable[[QSettings], None]] = {0: _migrate_0_to_1}


def migrate(store: QSettings) -> int:
    """Bring `store` up to SETTINGS_VERSION; returns the version it was found at."""
    if not store.allKeys():
        found = SETTINGS_VERSION  # a fresh store: nothing to migrate
    else:
        found = _as_int(store.value("settings_version"), 0)
    version = found
    while version < SETTINGS_VERSION:
        MIGRATIONS[version](store)
        version += 1
    if found <= SETTINGS_VERSION:
        store.setValue("settings_version", SETTINGS_VERSION)
    store.sync()
    return found


def _as_int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


class AppSettings:
    """Typed access to the app's persisted settings (one QSettings underneath)."""

    def __init__(self, store: QSettings | None = None) -> None:
        self.store = store if store is not None else open_settings()
        self.found_version = migrate(self.store)

    @property
    def path(self) -> str:
        return self.store.fileName()

    # --- window -------------------------------------------------------------------
    def window_state(self) -> tuple[QByteArray | None, QByteArray | None]:
        """(geometry, dock state) as saved by QMainWindow, or None each."""
        return _bytes(self.store.value("window/geometry")), _bytes(self.store.value("window/state"))

    def set_window_state(self, geometry: QByteArray, state: QByteArray) -> None:
        self.store.setValue("window/geometry", geometry)
        self.store.setValue("window/state", state)

    def splitter_state(self, name: str) -> QByteArray | None:
        return _bytes(self.store.value(f"window/splitter_{name}"))

    def set_splitter_state(self, name: str, state: QByteArray) -> None:
        self.store.setValue(f"window/splitter_{name}", state)

    def presentation_scale(self) -> float:
        """Presentation mode's text and line scale (ui.plots.style's default when unset)."""
        from ui.plots.style import PRESENTATION_SCALE

        try:
            value = float(self.store.value("window/presentation_scale", PRESENTATION_SCALE))
        except (TypeError, ValueError):
            return PRESENTATION_SCALE
        return value if value > 0 else PRESENTATION_SCALE

    def set_presentation_scale(self, scale: float) -> None:
        self.store.setValue("window/presentation_scale", float(scale))

    # --- data ---------------------------------------------------------------------
    def recent_files(self) -> list[str]:
        return [str(f) for f in self._json("data/recent_files", []) if isinstance(f, str)]

    def add_recent_file(self, path: str | os.PathLike[str]) -> list[str]:
        """Move `path` to the top of the recent files (at most MAX_RECENT_FILES)."""
        path = str(Path(path).resolve())
        files = [path] + [f for f in self.recent_files() if f != path]
        files = files[:MAX_RECENT_FILES]
        self.store.setValue("data/recent_files", json.dumps(files))
        return files

    def remove_recent_file(self, path: str) -> None:
        files = [f for f in self.recent_files() if f != path]
        self.store.setValue("data/recent_files", json.dumps(files))

    def clear_recent_files(self) -> None:
        self.store.setValue("data/recent_files", json.dumps([]))

    def last_dataset(self) -> str | None:
        value = self.store.value("data/last_dataset")
        return str(value) if value else None

    def set_last_dataset(self, path: str | os.PathLike[str]) -> None:
        self.store.setValue("data/last_dataset", str(path))

    # --- model --------------------------------------------------------------------
    def model_settings(self) -> dict[str, Any]:
        value = self._json("model/settings", {})
        return value if isinstance(value, dict) else {}

    def set_model_settings(self, values: dict[str, Any]) -> None:
        self.store.setValue("model/settings", json.dumps(values))

    def sync(self) -> None:
        self.store.sync()

    def _json(self, key: str, default: Any) -> Any:
        raw = self.store.value(key)
        if raw is None:
            return default
        try:
            return json.loads(str(raw))
        except ValueError:
            return default


def _bytes(value: Any) -> QByteArray | None:
    if isinstance(value, QByteArray) and not value.isEmpty():
        return value
    if isinstance(value, (bytes, bytearray)) and value:
        return QByteArray(bytes(value))
    return None
