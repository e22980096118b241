"""Plain, frozen data shared across modver's layers. No I/O here, no third-party imports."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from modver import errors


class SourceTree(Protocol):
    """Read-only view of a project's files: the working tree, or a tree in git history.

    Paths are POSIX, relative to the project root (``"pipeline/model.py"``).
    """

    def read(self, path: str) -> bytes | None:
        """The file's bytes, or None when there is no such file."""

    def content_id(self, path: str) -> str | None:
        """A key that changes exactly when the file's bytes change (git blob sha), or None."""

    def is_dir(self, path: str) -> bool:
        """Whether ``path`` is a folder in this tree ('' is the root)."""


@dataclass(frozen=True)
class Definition:
    """One top-level piece of a closure: a function, class, constant, import or statement."""

    path: str  # file, relative to the project root
    name: str  # qualified name inside the module ("preprocess", "Model", "<module>" for statements)
    kind: str  # "function" | "class" | "assignment" | "import" | "statement" | "module"
    line: int
    end_line: int
    digest: str  # digest of this definition's normalized syntax alone


@dataclass(frozen=True)
class Unresolved:
    """A reference the closure could not follow statically; the fallback included ``included``."""

    path: str
    line: int
    reason: str  # e.g. "getattr() on module pipeline.helpers", "from pipeline.util import *"
    included: str  # what was included instead (a path, or "whole module pipeline/util.py")


@dataclass(frozen=True)
class Closure:
    """The result of fingerprinting one stage: its digest and everything that went into it."""

    fingerprint: str  # "mv1:<hex>"
    entry: str  # "pipeline/model.py:train"
    files: tuple[str, ...]  # every project file whose content is (partly) in the closure, sorted
    definitions: tuple[Definition, ...]
    unresolved: tuple[Unresolved, ...] = ()
    deps: tuple[str, ...] = ()  # files included whole through the manifest's `deps:`
    # project files that importing the closure's modules imports as well (an unused module-level
    # `from . import config`): stored with a version so that it runs, never in the fingerprint
    imports: tuple[str, ...] = ()


@dataclass(frozen=True)
class StageSpec:
    """A stage as one manifest declares it."""

    name: str
    entry: str  # "path/to/file.py:func" | "file.py:Class" | "file.py:Class.method" | "file.py"
    version: str | None = None  # the pin ("v3", a tag, ...) or None for the working tree
    inputs: dict[str, str] = field(default_factory=dict)  # kwarg -> "data.<name>" | "<stage>"
    params: dict[str, Any] = field(default_factory=dict)
    deps: tuple[str, ...] = ()  # function stage: files fingerprinted whole; script stage: files it reads
    # script stages (docs/scripts.md): positional args, files written, metrics and plots files, and
    # list-form params (keys of the manifest's params file; their values are in ``params`` under
    # the full key once the pipeline is built). ``args``/``deps``/``outs`` may hold ${} templates.
    args: tuple[str, ...] = ()
    outs: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()
    plots: tuple[str, ...] = ()
    file_params: tuple[str, ...] = ()
    outside: tuple[str, ...] = ()  # deps outside the project (absolute, opted in): hashed, never stored

    @property
    def is_script(self) -> bool:
        """Whether the stage is a whole module (``train.py``), run as ``__main__`` in a workspace."""
        return ":" not in self.entry

    @property
    def code_deps(self) -> tuple[str, ...]:
        """The ``deps`` fingerprinted whole, part of the version: all of a function stage's; a
        script stage's ``.py`` files (its other deps are files it reads, content-hashed)."""
        if not self.is_script:
            return self.deps
        return tuple(d for d in self.deps if d.endswith(".py") and "${" not in d)

    @property
    def path(self) -> str:
        """The entry's file."""
        return self.entry.split(":", 1)[0]

    @property
    def target(self) -> str | None:
        """The callable inside the file ("train", "Model.fit"), or None for a whole module."""
        return self.entry.split(":", 1)[1] if ":" in self.entry else None


@dataclass(frozen=True)
class StageVersion:
    """A registered version of a stage: one commit on ``refs/modver/stages/<stage>``."""

    stage: str
    number: int
    fingerprint: str
    entry: str
    origin: str | None  # git commit sha where first seen, None for a working-tree snapshot
    created: str  # ISO 8601, UTC
    message: str
    commit: str  # sha of the history commit holding this version
    files: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    # the git commit where code first registered from the working tree was later found by
    # `index` (None: not seen committed, or registered from a commit: see ``origin``)
    committed: str | None = None

    @property
    def version(self) -> str:
        """The version's label, ``v<number>``."""
        return f"v{self.number}"

    def to_json(self) -> dict[str, Any]:
        """The stable JSON shape of ``modver log --json``."""
        return {
            "stage": self.stage,
            "version": self.version,
            "number": self.number,
            "fingerprint": self.fingerprint,
            "entry": self.entry,
            "origin": self.origin,
            "created": self.created,
            "message": self.message,
            "commit": self.commit,
            "files": list(self.files),
            "tags": list(self.tags),
            "committed": self.committed,
        }


# -- sweeps ----------------------------------------------------------------------------------------

MAX_POINTS = 10_000  # points of one sweep: each is a run record


@dataclass(frozen=True)
class Axis:
    """One param and the values a sweep gives it."""

    target: str  # "stage.param"
    values: tuple[Any, ...]

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target, "values": list(self.values)}


DISTRIBUTIONS = ("uniform", "loguniform", "int", "choice")  # what a search draws values from


@dataclass(frozen=True)
class Distribution:
    """One param a search (``sweep --optimize``) draws: ``uniform``/``loguniform`` (``args``: low,
    high), ``int`` (low, high — both included — and ``log``), or ``choice`` (``args``: the values)."""

    target: str  # "stage.param"
    kind: str  # one of DISTRIBUTIONS
    args: tuple[Any, ...]
    log: bool = False  # int(a,b,log)

    def text(self) -> str:
        """As written on the command line: ``loguniform(0.0001,1)``, ``int(1,64,log)``."""
        args = [repr(a) if isinstance(a, str) and ("," in a or "(" in a) else str(a) for a in self.args]
        return f"{self.kind}({','.join(args + (['log'] if self.log else []))})"

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target, "kind": self.kind, "args": list(self.args), "log": self.log}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Distribution:
        return cls(str(data["target"]), str(data["kind"]), tuple(data["args"]), bool(data.get("log", False)))


@dataclass(frozen=True)
class SweepSpec:
    """The axes of a sweep: ``grid`` axes combine as a product, ``zip`` axes pair in order (one
    more axis of the product); ``sets`` are the plain ``--set`` values every point shares;
    ``search`` the distributions a search (``sweep --optimize``) draws from."""

    grid: tuple[Axis, ...] = ()
    zip: tuple[Axis, ...] = ()
    sets: tuple[str, ...] = ()
    search: tuple[Distribution, ...] = ()

    @property
    def axes(self) -> tuple[Axis, ...]:
        return self.grid + self.zip

    def size(self) -> int:
        """How many points the sweep has (computed without making them)."""
        size = math.prod(len(a.values) for a in self.grid)
        return size * (len(self.zip[0].values) if self.zip else 1)

    def points(self) -> list[dict[str, Any]]:
        """Every point, ``{target: value}`` in axis order; :class:`SweepError` beyond :data:`MAX_POINTS`."""
        size = self.size()
        if size > MAX_POINTS:
            shape = " x ".join(str(len(a.values)) for a in self.grid) + (
                f" x {len(self.zip[0].values)} (zipped)" if self.zip else ""
            )
            raise errors.SweepError(
                f"the sweep has {size:,} points ({shape}), more than {MAX_POINTS:,}",
                hint="sweep fewer values, pair axes with --zip, or split the sweep into several",
            )
        zipped: list[tuple[Any, ...]] = list(zip(*(a.values for a in self.zip), strict=True)) if self.zip else [()]
        out = []
        for combo in itertools.product(*(a.values for a in self.grid), zipped):
            *grid_values, zip_values = combo
            point = dict(zip((a.target for a in self.grid), grid_values, strict=True))
            point.update(zip((a.target for a in self.zip), zip_values, strict=True))
            out.append(point)
        return out

    def to_json(self) -> dict[str, Any]:
        out = {"grid": [a.to_json() for a in self.grid], "zip": [a.to_json() for a in self.zip],
               "sets": list(self.sets)}  # fmt: skip
        if self.search:
            out["search"] = [d.to_json() for d in self.search]
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SweepSpec:
        def axes(key: str) -> tuple[Axis, ...]:
            return tuple(Axis(a["target"], tuple(a["values"])) for a in data.get(key) or ())

        search = tuple(Distribution.from_json(d) for d in data.get("search") or ())
        return cls(axes("grid"), axes("zip"), tuple(data.get("sets") or ()), search)
