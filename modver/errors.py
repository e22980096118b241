"""Errors modver raises. Every one is a :class:`ModverError`, in one family by kind.

``str(err)`` is the whole user message: what happened and where. ``err.hint`` says what to do
next. The CLI prints both and exits with ``err.exit_code`` (1); nothing else in modver prints or
exits.

The families (docs/errors.md draws the tree): a caller catches a kind of error by its family —
``except errors.NotFoundError`` — never by the words of its message. Every concrete class keeps
the name it had before the families, so ``except errors.UnknownRunError`` still works::

    ModverError
    ├── NotFoundError        a name, reference or file that does not exist
    ├── AmbiguousError       a prefix that matches more than one thing
    ├── InvalidError         input that cannot be used as given (usage, manifest, code, names)
    ├── DamagedError         something stored that is unreadable or not what it says
    ├── ConflictError        another process holds or keeps changing what is needed
    ├── FailedError          the user's own code failed (a stage, the demo's steps)
    └── ExternalError        a system modver relies on: git remotes, clusters, storage, the disk
"""

from __future__ import annotations

from typing import ClassVar


class ModverError(Exception):
    """Root of every error modver raises on purpose.

    ``where`` names the place (a path, ``path:line:col``, a stage, a ref); ``hint`` is the next
    step for the user. Both are optional and already part of ``str(err)`` where it helps.
    """

    exit_code: ClassVar[int] = 1  # every family exits 1 (scripts test for it); usage errors of the parser exit 2

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None):
        self.message = message
        self.where = where
        self.hint = hint
        super().__init__(message if where is None or where in message else f"{where}: {message}")


# -- the families --


class NotFoundError(ModverError):
    """Something named does not exist: a repository, stage, version, run, entry or sweep."""


class AmbiguousError(ModverError):
    """A prefix that matches more than one version, run, sweep or commit; the message lists them."""


class InvalidError(ModverError):
    """Input that cannot be used as given: an option, a manifest, stage code, a name, a path, a metric."""


class DamagedError(ModverError):
    """Something stored that is unreadable or not what it says: a git object, a record, a cache entry."""


class ConflictError(ModverError):
    """Another process holds a lock or keeps changing a ref modver needs; retried and gave up."""


class FailedError(ModverError):
    """The user's own code failed: a stage raised, or a step of the demo failed."""


class ExternalError(ModverError):
    """A system modver relies on failed or refused: a git remote, a cluster, the storage, the disk."""


# -- the classes raised (each in its family; the names are public and stay) --


class NotARepositoryError(NotFoundError):
    """The folder is not inside a git repository."""


class ManifestError(InvalidError):
    """The manifest is missing, not valid YAML, or does not match the schema."""


class UnknownStageError(NotFoundError):
    """A stage name that no manifest declares."""


class UnknownVersionError(NotFoundError):
    """A version reference that does not resolve."""


class InvalidNameError(InvalidError):
    """A stage or tag name that cannot be a git ref component."""


class SourceError(InvalidError):
    """User code that cannot be read or parsed (syntax errors carry path:line:col)."""


class EntryNotFoundError(NotFoundError):
    """A stage's entry file or callable does not exist."""


class PathError(InvalidError):
    """A path that leaves the project (``..``, absolute, or a symlink to outside), or that names
    something other than a regular file or folder (a FIFO, a device, a socket)."""


class StoreError(DamagedError):
    """The .modver store or the git object database is unreadable or corrupt."""


class ConcurrencyError(ConflictError):
    """Another process kept changing the same ref; retried and gave up."""


class RunError(FailedError):
    """A pipeline run failed: a stage raised, or its inputs/params are wrong."""


class UnknownRunError(NotFoundError):
    """A run reference that matches no run, or more than one."""


class StageFailedError(RunError):
    """A stage raised an exception while running."""


class CacheError(DamagedError):
    """A cached output cannot be written or read."""


class UsageError(InvalidError):
    """A bad option or setting: a duration, a count, a timeout, a folder that must be empty."""


class MaterializeError(DamagedError):
    """A version that cannot be written as its private package, or whose materialized folder is damaged."""


class MetricError(InvalidError):
    """A metric that is not a real number, or a step that is not an integer (``log_metrics``)."""


class DemoError(FailedError):
    """``modver demo`` cannot run: its example is missing or changed, its requirements are not
    installed, or one of its steps failed."""


# -- sweeps (issue 9, sweep-core) --


class SweepError(InvalidError):
    """A sweep that cannot be made: a bad axis, sweep file or number of points, or an unknown
    sweep id; also a sweep whose points failed (the message lists them)."""


# -- executors (issue 9, sweep-exec) --


class ClusterError(ExternalError):
    """An executor that cannot start or be reached, or a worker that does not see the project's store."""


def format_syntax_error(path: str, line: int, col: int, source_line: str, detail: str) -> str:
    """Render a syntax error as ``path:line:col: detail`` plus the line and a caret."""
    caret = " " * max(col - 1, 0) + "^"
    return f"{path}:{line}:{col}: {detail}\n    {source_line.rstrip()}\n    {caret}"


class RemoteError(ExternalError):
    """A git remote that cannot be reached or read, or that refuses a push (``modver push``/``pull``)."""


class StorageError(ExternalError):
    """The project's storage (``storage =`` in modver.toml) cannot be reached, read or written, or
    holds a damaged object."""


# -- members of two families: the specific kind, and the class callers caught before the families --


class AmbiguousVersionError(AmbiguousError, UnknownVersionError):
    """A fingerprint prefix or commit abbreviation that matches more than one version or commit."""


class AmbiguousRunError(AmbiguousError, UnknownRunError):
    """A run-id prefix that matches more than one run."""


class AmbiguousSweepError(AmbiguousError, SweepError):
    """A sweep-id prefix that matches more than one sweep."""


class UnknownSweepError(NotFoundError, SweepError):
    """A sweep id that matches no recorded sweep."""


class WriteFailedError(ExternalError, StoreError):
    """A write the file system refused: a full disk, a quota, a read-only file system, an I/O error.
    A :class:`StoreError` too, as such writes were reported before the families."""
