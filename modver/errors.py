"""Errors modver raises. Every one is a :class:`ModverError`.

``str(err)`` is the whole user message: what happened and where. ``err.hint`` says what to do
next. The CLI prints both and exits 1; nothing else in modver prints or exits.
"""

from __future__ import annotations


class ModverError(Exception):
    """Root of every error modver raises on purpose.

    ``where`` names the place (a path, ``path:line:col``, a stage, a ref); ``hint`` is the next
    step for the user. Both are optional and already part of ``str(err)`` where it helps.
    """

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None):
        self.message = message
        self.where = where
        self.hint = hint
        super().__init__(message if where is None or where in message else f"{where}: {message}")


class NotARepositoryError(ModverError):
    """The folder is not inside a git repository."""


class ManifestError(ModverError):
    """The manifest is missing, not valid YAML, or does not match the schema."""


class UnknownStageError(ModverError):
    """A stage name that no manifest declares."""


class UnknownVersionError(ModverError):
    """A version reference that does not resolve."""


class InvalidNameError(ModverError):
    """A stage or tag name that cannot be a git ref component."""


class SourceError(ModverError):
    """User code that cannot be read or parsed (syntax errors carry path:line:col)."""


class EntryNotFoundError(ModverError):
    """A stage's entry file or callable does not exist."""


class PathError(ModverError):
    """A path that leaves the project (``..``, absolute, or a symlink to outside), or that names
    something other than a regular file or folder (a FIFO, a device, a socket)."""


class StoreError(ModverError):
    """The .modver store or the git object database is unreadable or corrupt."""


class ConcurrencyError(ModverError):
    """Another process kept changing the same ref; retried and gave up."""


class RunError(ModverError):
    """A pipeline run failed: a stage raised, or its inputs/params are wrong."""


class UnknownRunError(ModverError):
    """A run reference that matches no run, or more than one."""


class StageFailedError(RunError):
    """A stage raised an exception while running."""


class CacheError(ModverError):
    """A cached output cannot be written or read."""


class UsageError(ModverError):
    """A bad option or setting: a duration, a count, a timeout, a folder that must be empty."""


class MaterializeError(ModverError):
    """A version that cannot be written as its private package, or whose materialized folder is damaged."""


class MetricError(ModverError):
    """A metric that is not a real number, or a step that is not an integer (``log_metrics``)."""


class DemoError(ModverError):
    """``modver demo`` cannot run: its example is missing or changed, its requirements are not
    installed, or one of its steps failed."""


# -- sweeps (issue 9, sweep-core) --


class SweepError(ModverError):
    """A sweep that cannot be made: a bad axis, sweep file or number of points, or an unknown
    sweep id; also a sweep whose points failed (the message lists them)."""


# -- executors (issue 9, sweep-exec) --


class ClusterError(ModverError):
    """An executor that cannot start or be reached, or a worker that does not see the project's store."""


def format_syntax_error(path: str, line: int, col: int, source_line: str, detail: str) -> str:
    """Render a syntax error as ``path:line:col: detail`` plus the line and a caret."""
    caret = " " * max(col - 1, 0) + "^"
    return f"{path}:{line}:{col}: {detail}\n    {source_line.rstrip()}\n    {caret}"


class RemoteError(ModverError):
    """A git remote that cannot be reached or read, or that refuses a push (``modver push``/``pull``)."""


class StorageError(ModverError):
    """The project's storage (``storage =`` in modver.toml) cannot be reached, read or written, or
    holds a damaged object."""
