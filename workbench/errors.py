"""The project's own exceptions: the errors a user can cause.

Every message names what was wrong and where (file, array path, field, step) and
what was expected. The GUI shows the message in a dialog; the CLI prints it on one
line and exits with status 2. A WorkbenchError never carries a traceback to a user.
"""

from __future__ import annotations


class WorkbenchError(Exception):
    """Base class of every error a user's input can cause."""


class DatasetError(WorkbenchError):
    """A dataset file is missing, malformed, unsafe to read or holds bad values."""


class ConfigError(WorkbenchError):
    """A run configuration has a value outside what is allowed."""


class RunError(WorkbenchError):
    """A run record is missing, unreadable, or cannot do what was asked (e.g. resume)."""


class OutputError(WorkbenchError, OSError):
    """A file cannot be written where asked (the path is a folder, no permission, disk full).

    Also an OSError, so code that tolerates failed writes (``except OSError``) still does.
    """


class CheckpointError(RunError):
    """A checkpoint could not be loaded safely."""
