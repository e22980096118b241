"""Stage versions, the façade's part: ``project.versions`` — registering them (``snapshot``,
``index``), listing, resolving, tagging and showing them, verifying the stored ones, and pinning
them in a manifest. Each method is a thin call of :class:`~modver.engine.registry.Registry`,
:mod:`modver.engine.indexer` or :class:`~modver.store.history.History`, and returns their models.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from modver import errors
from modver.api.workspace import PathArg, Workspace
from modver.models import StageSpec, StageVersion
from modver.names import did_you_mean, validate_name
from modver.results import PinResult, ShownVersion, SnapshotResult

if TYPE_CHECKING:  # pragma: no cover
    from modver.engine.indexer import IndexResult, Progress
    from modver.engine.verify import VersionCheck
    from modver.manifest import Manifest

__all__ = ["Versions"]


class Versions:
    """A project's stage versions (see the module docstring)."""

    def __init__(self, workspace: Workspace):
        self._ws = workspace

    def spec(self, stage: str, manifest: PathArg = None) -> StageSpec:
        """The stage's declaration in the manifest, or, failing that, in its history."""
        validate_name(stage)
        try:
            m: Manifest | None = self._ws.manifest(manifest)
        except errors.ManifestError:
            m = None
        if m is not None and stage in m.stages:
            return m.stages[stage]
        versions = self._ws.history.versions(stage) if stage in self._ws.history.stages() else []
        if versions:
            return StageSpec(name=stage, entry=versions[-1].entry)
        if m is None:
            return self._ws.manifest(manifest).stage(stage)  # re-raise the manifest's error
        return m.stage(stage)  # raises UnknownStageError listing the declared stages

    def snapshot(self, stages: Sequence[str] = (), message: str = "", manifest: PathArg = None) -> list[SnapshotResult]:
        """Register the working tree's version of each stage (all declared stages by default)."""
        m = self._ws.manifest(manifest)
        docstrings = self._ws.docstrings(manifest)
        tree = self._ws.working_tree()
        results = []
        for name in list(stages) or list(m.stages):
            spec = m.stage(name)
            closure = self._ws.registry.fingerprint(spec, tree, docstrings=docstrings)
            version, new = self._ws.registry.register_working(
                spec, closure, tree, message or "working tree snapshot", docstrings=docstrings
            )
            results.append(SnapshotResult(version, new))
        return results

    def index(
        self,
        rev: str | None = None,
        *,
        all_branches: bool = False,
        manifest: PathArg = None,
        progress: Progress | None = None,
    ) -> IndexResult:
        """Walk first-parent git history (oldest first) and register every declared stage's
        versions; incremental (see :mod:`modver.engine.indexer`)."""
        from modver.engine.indexer import index_history

        return index_history(
            self._ws.registry, self._ws.manifest(manifest), self._ws.store.index_state, rev,
            all_branches=all_branches, progress=progress,
        )  # fmt: skip

    def log(self, stage: str | None = None) -> list[StageVersion]:
        """Every registered version of one stage (or of all stages), oldest first."""
        if stage is None:  # in the manifest's order, then the stages only the history has
            have = set(self._ws.history.stages())
            return [v for s in self._ws.stage_names() if s in have for v in self._ws.history.versions(s)]
        validate_name(stage)
        if stage not in self._ws.history.stages():
            try:
                declared = list(self._ws.manifest().stages)
            except errors.ModverError:  # a broken manifest: name the history's stages only
                declared = []
            if stage in declared:
                return []
            known = sorted(set(self._ws.history.stages()) | set(declared))
            raise errors.UnknownStageError(
                f"unknown stage {stage!r}; known stages: {', '.join(known) or '(none)'}",
                hint=f"{did_you_mean(stage, known)}declare it in the manifest, then `modver snapshot` or `modver index`",
            )
        return self._ws.history.versions(stage)

    def resolve(self, ref: str, manifest: PathArg = None) -> StageVersion:
        """Resolve ``STAGE@REF`` (vN, latest, working, fingerprint prefix, git:REV, tag).

        ``working`` and ``git:REV`` register the code they name when it is new.
        """
        stage, _, what = ref.partition("@")
        if not stage or not what:
            raise errors.UnknownVersionError(
                f"bad version reference {ref!r}: expected STAGE@REF",
                hint="e.g. preprocess@v3, model@latest, augment@working, model@git:HEAD~2",
            )
        spec = self.spec(stage, manifest)
        if what != "working" and not what.startswith("git:"):
            return self._ws.history.resolve(stage, what)  # the history's own: no manifest needed
        version = self._ws.registry.resolve(
            spec,
            what,
            docstrings=self._ws.docstrings(manifest),
            manifest_rel=self._ws.registry.manifest_rel(self._ws.manifest_path(manifest)),
        )
        assert version is not None  # a registering resolve gives a version
        return version

    def tag(self, ref: str, name: str, *, force: bool = False) -> StageVersion:
        """Give a version a name usable as ``STAGE@NAME``."""
        version = self.resolve(ref)
        self._ws.history.tag(version.stage, version, name, force=force)
        return self._ws.history.resolve(version.stage, name)

    def show(self, ref: str, manifest: PathArg = None) -> ShownVersion:
        """A version's metadata, closure and the exact source of each of its parts (neighbouring
        assignments and imports as one part, each module-level statement on its own)."""
        from modver.engine.parts import closure_parts

        version = self.resolve(ref, manifest)
        closure = self._ws.history.closure(version)
        tree = self._ws.history.source_tree(version)
        try:
            declared = self._ws.manifest(manifest).stages.get(version.stage)
        except errors.ModverError:
            declared = None  # a broken manifest: the version is still shown
        parts = closure_parts(tree, closure)
        sources = {part.key: part.source for part in parts}
        return ShownVersion(version, closure, sources, declared.entry if declared is not None else None, parts)

    def verify(self, stages: Sequence[str] = ()) -> list[VersionCheck]:
        """Re-fingerprint every stored version (of ``stages``, default all) and compare.

        A version whose stored code does not give its fingerprint, or whose files are missing
        or damaged, comes back with its problems; nothing is written.
        """
        from modver.engine.verify import verify_history

        have = set(self._ws.history.stages())
        try:
            docstrings = self._ws.docstrings()
        except errors.ModverError:
            docstrings = False  # verify tries both settings: the manifest's is only tried first
        names = list(stages) or [s for s in self._ws.stage_names() if s in have]
        return verify_history(self._ws.history, names, docstrings=docstrings)

    def pin(self, ref: str, manifest: PathArg = None) -> PinResult:
        """Pin ``STAGE@REF`` in the manifest (comments and formatting kept)."""
        stage = ref.partition("@")[0]
        self._ws.manifest(manifest).stage(stage)
        version = self.resolve(ref, manifest)
        path = self._ws.manifest_path(manifest)
        self._ws.write_pin(path, stage, version.version)
        return PinResult(path, stage, version)

    def unpin(self, stage: str, manifest: PathArg = None) -> PinResult:
        """Clear a stage's pin: it follows the working tree again."""
        self._ws.manifest(manifest).stage(stage)
        path = self._ws.manifest_path(manifest)
        self._ws.write_pin(path, stage, None)
        return PinResult(path, stage, None)
