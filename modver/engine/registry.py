"""The stage versions of one repository: fingerprint a declared stage, register it, resolve a reference.

:class:`Registry` joins the fingerprint (:mod:`modver.fingerprint`) and the stage histories
(:mod:`modver.store.history`): it turns a stage's declaration and a source tree into a version,
registering it when it is new, and resolves every ``STAGE@REF`` spelling — ``vN``, ``latest``,
tags and fingerprint prefixes (the history's), ``working`` (the working tree, registered on use)
and ``git:REV`` (the code at a commit, with the entry the manifest had there). The façade, the
indexer and the run planner all register through it, so a version is made one way.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from modver import errors
from modver._git import GitRepo
from modver.fingerprint import SummaryCache, fingerprint_stage, import_files
from modver.models import Closure, SourceTree, StageSpec, StageVersion
from modver.sourcetree import WorkingTree
from modver.store.history import History

__all__ = ["Registry"]

ManifestSpecs = dict[str | None, dict[str, StageSpec]]  # manifest blob id -> its stages


class Registry:
    """Versions of the stages of the repository ``repo`` (see the module docstring)."""

    def __init__(self, repo: GitRepo, history: History, cache: SummaryCache):
        self.repo = repo
        self.history = history
        self.cache = cache

    def working_tree(self) -> WorkingTree:
        """The project's files as they are now (each file read once: :class:`WorkingTree`)."""
        return WorkingTree(self.repo.root)

    def fingerprint(self, spec: StageSpec, tree: SourceTree, *, docstrings: bool) -> Closure:
        """The closure and fingerprint of the declared stage ``spec`` in ``tree``."""
        return fingerprint_stage(tree, spec.entry, spec.code_deps, docstrings=docstrings, cache=self.cache)

    def find(self, stage: str, fingerprint: str) -> StageVersion | None:
        """The registered version of ``stage`` with this fingerprint, or None."""
        return self.history.find(stage, fingerprint) if stage in self.history.stages() else None

    def register(
        self,
        stage: str,
        closure: Closure,
        tree: SourceTree,
        *,
        docstrings: bool,
        origin: str | None,
        message: str,
        created: datetime | None = None,
    ) -> tuple[StageVersion, bool]:
        """:meth:`History.register`, storing with a new version the files its modules import."""
        if self.history.find(stage, closure.fingerprint) is None:
            imports = import_files(tree, closure, docstrings=docstrings, cache=self.cache)
            closure = replace(closure, imports=imports)
        return self.history.register(stage, closure, tree, origin=origin, message=message, created=created)

    def register_working(
        self, spec: StageSpec, closure: Closure, tree: SourceTree, message: str, *, docstrings: bool
    ) -> tuple[StageVersion, bool]:
        """Register the working tree's version of a stage.

        When the stage at HEAD has the same fingerprint — the code is committed — the version's
        origin is HEAD and its message HEAD's subject, as ``index`` would have recorded them.
        """
        origin = None
        head = self.repo.head_commit()
        if head is not None and self.find(spec.name, closure.fingerprint) is None:
            try:
                at_head = self.fingerprint(spec, self.repo.tree_at(head), docstrings=docstrings)
            except (errors.NotFoundError, errors.InvalidError):  # the stage is new or broken at HEAD
                at_head = None
            if at_head is not None and at_head.fingerprint == closure.fingerprint:
                origin, message = head, self.subject(head)
        return self.register(spec.name, closure, tree, docstrings=docstrings, origin=origin, message=message)

    def resolve(
        self, spec: StageSpec, what: str, *, docstrings: bool, manifest_rel: str | None, register: bool = True
    ) -> StageVersion | None:
        """The version of ``spec``'s stage that ``what`` names (the part after ``@``).

        ``working`` and ``git:REV`` register the code they name when it is new; with
        ``register=False`` they return None for new code instead (nothing is written). Unknown
        references raise :class:`~modver.errors.UnknownVersionError` and its kin.
        """
        if what == "working":
            return self._version_in(spec, self.working_tree(), None, "working tree snapshot", docstrings, register)
        if what.startswith("git:"):
            sha = self.repo.resolve_rev(what[4:])
            tree = self.repo.tree_at(sha)
            at = self.specs_at(tree, manifest_rel, {}).get(spec.name, spec)
            return self._version_in(
                at, tree, sha, self.subject(sha), docstrings, register, created=self.repo.commit_time(sha)
            )
        return self.history.resolve(spec.name, what)

    def _version_in(
        self,
        spec: StageSpec,
        tree: SourceTree,
        origin: str | None,
        message: str,
        docstrings: bool,
        register: bool,
        created: datetime | None = None,
    ) -> StageVersion | None:
        closure = self.fingerprint(spec, tree, docstrings=docstrings)
        if not register:
            return self.find(spec.name, closure.fingerprint)
        version, _ = self.register(
            spec.name, closure, tree, docstrings=docstrings, origin=origin, message=message, created=created
        )
        return version

    def subject(self, sha: str) -> str:
        """The first line of a commit's message; a pull request's merge by its title (the first
        line of the body): ``Add dropout (#12)``, not ``Merge pull request #12 from x/y``."""
        lines = self.repo.commit_message(sha).splitlines()
        first = next(iter(lines), "")
        merged = re.match(r"Merge pull request #(\d+) from \S+$", first)
        title = next((line.strip() for line in lines[1:] if line.strip()), "")
        return f"{title} (#{merged.group(1)})" if merged and title else first

    def manifest_rel(self, path: Path) -> str | None:
        """The manifest ``path`` inside the repository, or None when it lies outside."""
        resolved = path.resolve()
        return resolved.relative_to(self.repo.root).as_posix() if resolved.is_relative_to(self.repo.root) else None

    @staticmethod
    def specs_at(tree: SourceTree, rel: str | None, cache: ManifestSpecs) -> dict[str, StageSpec]:
        """Stage declarations of the manifest at ``rel`` as it was in ``tree`` ({} when it had none).

        Parsed once per manifest content (blob id) in ``cache``; a manifest that did not load then
        declares nothing (its stages keep today's entries).
        """
        from modver.manifest import load_manifest_text

        blob = tree.content_id(rel) if rel else None
        if blob not in cache:
            data = tree.read(rel) if rel and blob else None
            try:
                cache[blob] = dict(load_manifest_text(data, Path(rel or "")).stages) if data is not None else {}
            except errors.InvalidError:
                cache[blob] = {}  # that commit's manifest was malformed: use the current entries
        return cache[blob]
