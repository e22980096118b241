"""What every part of the façade shares: a project's repository, store, stage histories, registry,
run records and manifests, each made on first use.

:class:`~modver.project.Project` is a :class:`Workspace` with the commands; the parts it holds
(``project.sweeps``, ``project.runs``, ``project.outputs``, ``project.sharing``) are given the
same workspace. Nothing here computes: it opens things and hands them on.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Self

from modver import errors
from modver.models import Closure, SourceTree, StageSpec
from modver.store.layout import Store

if TYPE_CHECKING:  # pragma: no cover
    from modver._git import GitRepo
    from modver.engine.planner import Pipeline
    from modver.engine.registry import Registry
    from modver.fingerprint import SummaryCache
    from modver.manifest import Manifest
    from modver.store.history import History
    from modver.store.runindex import RunIndex
    from modver.store.runstore import RunStore

__all__ = ["DEFAULT_MANIFEST", "PathArg", "Workspace"]

DEFAULT_MANIFEST = "manifest.yaml"

PathArg = str | os.PathLike[str] | None


class Workspace:
    """The git repository containing ``path``, its store and its manifests (``manifest``: the one
    commands use by default). Use it as a context manager (or call :meth:`close`)."""

    def __init__(self, path: str | os.PathLike[str] = ".", manifest: PathArg = None):
        from modver import _git

        self.base = Path(path).resolve()  # paths the user gives start here (`modver -C DIR`, like git)
        self._repo: GitRepo = _git.GitRepo.discover(self.base)
        self.root: Path = self._repo.root
        self._store = Store.of(self._repo)
        self._manifest_arg = manifest
        self._manifests: dict[Path, Manifest] = {}

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the underlying git repository."""
        self._repo.close()

    # -- the store and the histories ---------------------------------------------------------------

    @property
    def store(self) -> Store:
        """The project's store; ``.modver/`` is made on first use (git-ignored: :meth:`Store.make`)."""
        return self._store.make()

    @cached_property
    def history(self) -> History:
        """The stage histories under ``refs/modver/``."""
        from modver.store.history import History

        return History(self._repo)

    @cached_property
    def summary_cache(self) -> SummaryCache:
        """Parsed module summaries, by file content (``.modver/cache/parse/``)."""
        from modver.fingerprint import SummaryCache

        return SummaryCache(self.store.parse_cache)

    @cached_property
    def registry(self) -> Registry:
        """Fingerprinting, registering and resolving the stages' versions."""
        from modver.engine.registry import Registry

        return Registry(self._repo, self.history, self.summary_cache)

    @property
    def runs_store(self) -> RunStore:
        """The run records (``.modver/runs/``)."""
        return self.store.run_store()

    @property
    def run_index(self) -> RunIndex:
        """The cache of the run records' summaries (``.modver/cache/runs-index.sqlite``)."""
        return self.store.run_index()

    def working_tree(self) -> SourceTree:
        """The project's files as they are now."""
        return self.registry.working_tree()

    def fingerprint(self, spec: StageSpec, tree: SourceTree | None = None, *, docstrings: bool = False) -> Closure:
        """The closure and fingerprint of a declared stage in ``tree`` (default: working tree)."""
        return self.registry.fingerprint(spec, tree if tree is not None else self.working_tree(), docstrings=docstrings)

    # -- manifests ----------------------------------------------------------------------------------

    def manifest_path(self, manifest: PathArg = None) -> Path:
        """The manifest to use: the argument, the project's default, or ``manifest.yaml``."""
        chosen = manifest if manifest is not None else self._manifest_arg
        if chosen is None:
            return self.root / DEFAULT_MANIFEST
        path = Path(chosen)
        return path if path.is_absolute() else (self.base / path).resolve()

    def manifest(self, manifest: PathArg = None) -> Manifest:
        """Load (once) and validate a manifest (remembered in ``.modver/cache/manifests/``)."""
        from modver.manifest import load_manifest_cached

        path = self.manifest_path(manifest)
        if path not in self._manifests:
            cache_dir = self._store.manifest_cache if self._store.path.is_dir() else None
            self._manifests[path] = load_manifest_cached(path, self.root, cache_dir)
        return self._manifests[path]

    def docstrings(self, manifest: PathArg = None) -> bool:
        """Whether the manifest counts docstrings in fingerprints (its errors are raised)."""
        return bool(self.manifest(manifest).options.get("docstrings", False))

    def pipeline(self, manifest: PathArg = None, sets: Sequence[str] = (), pins: Sequence[str] = ()) -> Pipeline:
        """The manifest as a :class:`modver.engine.planner.Pipeline` in DAG order, ``--set`` and
        ``--pin STAGE@REF`` (this run's pins; the manifest file is not touched) applied."""
        from modver.engine.planner import Pipeline

        return Pipeline.from_manifest(self.manifest(manifest), self.root, sets, pins)

    def stage_names(self, manifest: PathArg = None) -> list[str]:
        """Every stage the manifest declares (in its order), then those only the history has."""
        try:
            declared = list(self.manifest(manifest).stages)
        except errors.ModverError:  # a broken or missing manifest: the history's stages only
            declared = []
        return declared + [s for s in self.history.stages() if s not in declared]

    def write_pin(self, path: Path, stage: str, version: str | None) -> None:
        """Set (``None``: clear) a stage's pin in the manifest at ``path``, formatting kept, under
        an inter-process lock of that file so that concurrent pins never lose an edit."""
        from modver import _encoding, _fs
        from modver.manifest import set_pin

        key = _encoding.digest_value(os.path.realpath(path)).split(":")[1][:16]  # one lock per file, however reached
        with _fs.file_lock(self.store.manifest_lock(key), what=f"manifest {path}"):
            set_pin(path, stage, version, temp_dir=self.store.tmp)
        self._manifests.pop(path, None)
