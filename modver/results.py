"""What the façade's methods return: frozen models with a stable ``to_json`` (``--json``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modver.models import Closure, StageVersion
from modver.record import RunRecord

__all__ = ["InitResult", "PinResult", "RunDiff", "ShownRun", "ShownVersion", "SnapshotResult", "StageState"]


@dataclass(frozen=True)
class InitResult:
    """What ``modver init`` did."""

    root: Path
    created_repository: bool
    created_manifest: bool
    updated_gitignore: bool
    converted: Any = None  # with --from-dvc: the modver.manifest.from_dvc.Conversion
    manifest_state: str = ""  # with --from-dvc: "written", "replaced" or "unchanged"


@dataclass(frozen=True)
class SnapshotResult:
    """One stage's working-tree version, and whether snapshotting registered it just now."""

    version: StageVersion
    new: bool

    def to_json(self) -> dict[str, Any]:
        return {**self.version.to_json(), "new": self.new}


@dataclass(frozen=True)
class StageState:
    """One row of ``modver status``: a stage's working tree against what it is compared with."""

    stage: str
    entry: str
    pinned: str | None  # "v3", or None when the manifest pins nothing (the working tree)
    pinned_fingerprint: str | None
    working: str | None  # the working tree's version, or None when it is not registered
    working_fingerprint: str | None
    changed: bool  # the working tree differs from what it is compared with (or is unregistered)
    error: str | None = None  # a pin that does not resolve, or code that does not fingerprint
    cached: bool | None = None
    compared_with: str | None = None  # "v3": the pin, or the version the stage's last run used
    compared_source: str | None = None  # "pin" | "last run" | None (nothing to compare with)

    def to_json(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "entry": self.entry,
            "pinned": self.pinned,
            "pinned_fingerprint": self.pinned_fingerprint,
            "working": self.working,
            "working_fingerprint": self.working_fingerprint,
            "compared_with": self.compared_with,
            "compared_source": self.compared_source,
            "changed": self.changed,
            "cached": self.cached,
            "error": self.error,
        }


GROUPED = {"assignment": "assignments", "import": "imports"}


@dataclass(frozen=True)
class ClosurePart:
    """One definition of a closure, or a run of assignments or imports next to each other."""

    path: str
    name: str  # the definition's name; "first … last (n)" for a run; a statement's first line
    kind: str  # the definition's kind, or "assignments" / "imports" for a run
    line: int  # where ``source`` starts in the file (comments above a definition included)
    end_line: int
    names: tuple[str, ...]  # the names of the definitions it holds
    source: str

    @property
    def key(self) -> str:
        """Unique in one closure: ``path:name`` for a single named definition, else its lines."""
        if len(self.names) == 1 and self.kind not in ("statement", *GROUPED.values()):
            return f"{self.path}:{self.name}"
        return f"{self.path}:{self.line}-{self.end_line}"

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "path": self.path,
            "name": self.name,
            "kind": self.kind,
            "line": self.line,
            "end_line": self.end_line,
            "names": list(self.names),
        }


@dataclass(frozen=True)
class ShownVersion:
    """``modver show``: a version, its closure and the source of each definition."""

    version: StageVersion
    closure: Closure
    sources: dict[str, str]  # part key ("path:name", or "path:LINE-END" for a run or a statement) -> source
    declared_entry: str | None = None  # the manifest's entry for the stage, when it declares one
    parts: tuple[ClosurePart, ...] = ()  # what ``sources`` shows, in file and line order

    def to_json(self) -> dict[str, Any]:
        c = self.closure
        return {
            **self.version.to_json(),
            "declared_entry": self.declared_entry,
            "files": list(c.files),
            "deps": list(c.deps),
            "imports": list(c.imports),
            "definitions": [
                {
                    "path": d.path,
                    "name": d.name,
                    "kind": d.kind,
                    "line": d.line,
                    "end_line": d.end_line,
                    "digest": d.digest,
                }
                for d in c.definitions
            ],
            "unresolved": [
                {"path": u.path, "line": u.line, "reason": u.reason, "included": u.included} for u in c.unresolved
            ],
            "parts": [part.to_json() for part in self.parts],
            "sources": self.sources,
        }


@dataclass(frozen=True)
class PinResult:
    """A pin set (or cleared) in a manifest."""

    manifest: Path
    stage: str
    version: StageVersion | None  # None after unpin

    def to_json(self) -> dict[str, Any]:
        return {
            "manifest": str(self.manifest),
            "stage": self.stage,
            "version": None if self.version is None else self.version.version,
            "fingerprint": None if self.version is None else self.version.fingerprint,
        }


@dataclass(frozen=True)
class RunDiff:
    """Two runs side by side: the versions, params, data and metrics that differ."""

    a: str
    b: str
    rows: tuple[tuple[str, Any, Any], ...]  # (column, value in a, value in b)

    def to_json(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "differences": [{"key": k, "a": va, "b": vb} for k, va, vb in self.rows]}


@dataclass(frozen=True)
class ShownRun:
    """``modver show RUN``: a run's record and what each of its stages printed."""

    record: RunRecord
    logs: Mapping[str, Mapping[str, str | None]]  # stage -> {"stdout": ..., "stderr": ...}

    def to_json(self) -> dict[str, Any]:
        return self.record.to_json()
