"""The façade: every CLI command is a thin call of a method here. Returns models, never prints.

>>> with Project("path/to/repo") as project:          # doctest: +SKIP
...     project.index()
...     [v.version for v in project.log("preprocess")]
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from modver import errors
from modver.models import Closure, SourceTree, StageSpec, StageVersion
from modver.names import did_you_mean

STORE_DIR = ".modver"
DEFAULT_MANIFEST = "manifest.yaml"
MANIFEST_CACHE_SCHEME = b"modver-manifest-cache/1"  # bump when Manifest/StageSpec change shape

Progress = Callable[[int, int], None]


# --------------------------------------------------------------------------- result models


@dataclass(frozen=True)
class InitResult:
    """What ``modver init`` did."""

    root: Path
    created_repository: bool
    created_manifest: bool
    updated_gitignore: bool


@dataclass(frozen=True)
class IndexResult:
    """What ``modver index`` did: commits walked, versions registered, commits skipped."""

    rev: str | None
    commits: int  # commits in the walk
    walked: int  # commits actually examined (the rest were indexed before)
    new_versions: tuple[StageVersion, ...]
    skipped: dict[str, int] = field(default_factory=dict)  # stage -> commits where it did not parse/exist
    up_to_date: bool = False  # nothing new since the last index: no commit was walked
    committed: tuple[StageVersion, ...] = ()  # working-tree versions found committed by this walk

    def to_json(self) -> dict[str, Any]:
        return {
            "rev": self.rev,
            "commits": self.commits,
            "walked": self.walked,
            "new_versions": [v.to_json() for v in self.new_versions],
            "committed": [v.to_json() for v in self.committed],
            "skipped": dict(self.skipped),
            "up_to_date": self.up_to_date,
        }


@dataclass(frozen=True)
class SnapshotResult:
    """One stage's working-tree version, and whether snapshotting registered it just now."""

    version: StageVersion
    new: bool

    def to_json(self) -> dict[str, Any]:
        return {**self.version.to_json(), "new": self.new}


@dataclass(frozen=True)
class StageStatus:
    """One row of ``modver status``."""

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


@dataclass(frozen=True)
class ShownVersion:
    """``modver show``: a version, its closure and the source of each definition."""

    version: StageVersion
    closure: Closure
    sources: dict[str, str]  # "path:name" -> exact source text
    declared_entry: str | None = None  # the manifest's entry for the stage, when it declares one

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


# --------------------------------------------------------------------------- project


def make_store(root: Path) -> Path:
    """``root/.modver``, made if missing with a ``.gitignore`` of ``*`` inside it, so git ignores
    the store whichever command makes it first, without editing any file of the user's."""
    store = root / STORE_DIR
    if not (store / ".gitignore").is_file():
        from modver import _fs

        store.mkdir(exist_ok=True)
        _fs.write_text_atomic(store / ".gitignore", "# made by modver: git ignores the whole store\n*\n")
    return store


def init(path: str | os.PathLike[str] = ".") -> InitResult:
    """Make ``.modver/``, git-ignore it, write a starter manifest, ``git init`` if needed."""
    from modver import _fs, _git, manifest

    folder = Path(path).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    created_repo = False
    try:
        repo = _git.GitRepo.discover(folder)
    except errors.NotARepositoryError:
        repo = _git.GitRepo.init(folder)
        created_repo = True
    with repo:
        root = repo.root
    temp_dir = make_store(root) / "tmp"  # a killed init leaves no temp file for `git status` to show
    gitignore = root / ".gitignore"
    text = gitignore.read_text(encoding="utf-8") if gitignore.exists() else ""
    ignored = {line.strip().rstrip("/") for line in text.splitlines()}
    updated = False
    if STORE_DIR not in ignored and f"/{STORE_DIR}" not in ignored:
        sep = "" if not text or text.endswith("\n") else "\n"
        _fs.replace_file(gitignore, f"{text}{sep}{STORE_DIR}/\n".encode(), temp_dir=temp_dir)
        updated = True
    manifest_path = root / DEFAULT_MANIFEST
    created_manifest = False
    if not manifest_path.exists():
        _fs.replace_file(manifest_path, manifest.STARTER_MANIFEST.encode(), temp_dir=temp_dir)
        created_manifest = True
    return InitResult(root, created_repo, created_manifest, updated)


class Project:
    """A git repository using modver: manifests, stage histories, runs and the store.

    Use it as a context manager (or call :meth:`close`) so the git repository is closed.
    """

    def __init__(self, path: str | os.PathLike[str] = ".", manifest: str | os.PathLike[str] | None = None):
        from modver import _git

        self._repo = _git.GitRepo.discover(Path(path).resolve())
        self.root: Path = self._repo.root
        self._manifest_arg = manifest
        self._history = None
        self._cache = None
        self._manifests: dict[Path, Any] = {}

    # -- plumbing ----------------------------------------------------------------------

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the underlying git repository."""
        self._repo.close()

    @property
    def store(self) -> Path:
        """The ``.modver/`` folder (created on first use, git-ignored: see :func:`make_store`)."""
        return make_store(self.root)

    @property
    def history(self):  # -> modver.history.History
        """The stage histories under ``refs/modver/``."""
        if self._history is None:
            from modver.history import History

            self._history = History(self._repo)
        return self._history

    @property
    def summary_cache(self):  # -> modver.fingerprint.SummaryCache
        if self._cache is None:
            from modver.fingerprint import SummaryCache

            self._cache = SummaryCache(self.store / "cache" / "parse")
        return self._cache

    def manifest_path(self, manifest: str | os.PathLike[str] | None = None) -> Path:
        """The manifest to use: the argument, the project's default, or ``manifest.yaml``."""
        chosen = manifest if manifest is not None else self._manifest_arg
        if chosen is None:
            return self.root / DEFAULT_MANIFEST
        path = Path(chosen)
        return path if path.is_absolute() else (Path.cwd() / path).resolve()

    def manifest(self, manifest: str | os.PathLike[str] | None = None):  # -> Manifest
        """Load (once) and validate a manifest.

        A valid manifest is also remembered in ``.modver/cache/manifests/`` by the digest of its
        bytes, so that later commands skip parsing YAML (and importing the YAML library).
        """
        path = self.manifest_path(manifest)
        if path not in self._manifests:
            self._manifests[path] = self._load_manifest(path)
        return self._manifests[path]

    def _load_manifest(self, path: Path):  # -> Manifest
        import hashlib
        import pickle

        from modver import _fs
        from modver.manifest import load_manifest_text, read_manifest_bytes

        data = read_manifest_bytes(path)  # a FIFO or a huge file is refused, never read
        key = hashlib.blake2b(
            b"\0".join([MANIFEST_CACHE_SCHEME, os.fsencode(path), os.fsencode(self.root), data])
        ).hexdigest()
        cached = self.root / STORE_DIR / "cache" / "manifests" / f"{key[:32]}.pickle"
        found = _read_cached_manifest(cached)
        if found is not None:
            return found
        loaded = load_manifest_text(data, path, self.root)
        if (self.root / STORE_DIR).is_dir():
            with contextlib.suppress(OSError):  # a read-only store works too, parsing every time
                _fs.write_bytes_atomic(cached, pickle.dumps(loaded, protocol=pickle.HIGHEST_PROTOCOL), durable=False)
        return loaded

    def working_tree(self) -> SourceTree:
        from modver.sourcetree import WorkingTree

        return WorkingTree(self.root)

    def _docstrings(self, manifest: Any) -> bool:
        return bool(manifest.options.get("docstrings", False))

    def fingerprint(self, spec: StageSpec, tree: SourceTree | None = None, *, docstrings: bool = False) -> Closure:
        """The closure and fingerprint of a declared stage in ``tree`` (default: working tree)."""
        from modver.fingerprint import fingerprint_stage

        return fingerprint_stage(
            tree if tree is not None else self.working_tree(),
            spec.entry,
            spec.deps,
            docstrings=docstrings,
            cache=self.summary_cache,
        )

    def stage_names(self, manifest: str | os.PathLike[str] | None = None) -> list[str]:
        """Every stage the manifest declares (in its order), then those only the history has."""
        try:
            declared = list(self.manifest(manifest).stages)
        except errors.ModverError:  # a broken or missing manifest: the history's stages only
            declared = []
        return declared + [s for s in self.history.stages() if s not in declared]

    def names_run(self, ref: str) -> bool:
        """Whether ``ref`` reads as a run reference: ``latest``, ``latest~N``, or a prefix of a run id."""
        from modver.errors import UnknownRunError

        try:
            self.runs_store.resolve(ref)
        except UnknownRunError as exc:
            return "ambiguous" in str(exc)
        return True

    def _spec(self, stage: str, manifest: str | os.PathLike[str] | None = None) -> StageSpec:
        """The stage's declaration in the manifest, or, failing that, in its history."""
        from modver.names import validate_name

        validate_name(stage)
        try:
            m = self.manifest(manifest)
        except errors.ManifestError:
            m = None
        if m is not None and stage in m.stages:
            return m.stages[stage]
        versions = self.history.versions(stage) if stage in self.history.stages() else []
        if versions:
            return StageSpec(name=stage, entry=versions[-1].entry)
        if m is None:
            return self.manifest(manifest).stage(stage)  # re-raise the manifest's error
        return m.stage(stage)  # raises UnknownStageError listing the declared stages

    # -- commands --------------------------------------------------------------------

    def snapshot(
        self,
        stages: Sequence[str] = (),
        message: str = "",
        manifest: str | os.PathLike[str] | None = None,
    ) -> list[SnapshotResult]:
        """Register the working tree's version of each stage (all declared stages by default)."""
        m = self.manifest(manifest)
        names = list(stages) or list(m.stages)
        results = []
        tree = self.working_tree()
        for name in names:
            spec = m.stage(name)
            closure = self.fingerprint(spec, tree, docstrings=self._docstrings(m))
            version, new = self.register_working(
                spec, closure, tree, message or "working tree snapshot", self._docstrings(m)
            )
            results.append(SnapshotResult(version, new))
        return results

    def register_working(
        self, spec: StageSpec, closure: Closure, tree: SourceTree, message: str, docstrings: bool
    ) -> tuple[StageVersion, bool]:
        """Register the working tree's version of a stage (see :meth:`History.register`).

        When the stage at HEAD has the same fingerprint — the code is committed — the version's
        origin is HEAD and its message HEAD's subject, as `index` would have recorded them.
        """
        origin = None
        head = self._repo.head_commit()
        if head is not None and self.history.find(spec.name, closure.fingerprint) is None:
            try:
                at_head = self.fingerprint(spec, self._repo.tree_at(head), docstrings=docstrings)
            except errors.ModverError:  # the stage is new or broken at HEAD
                at_head = None
            if at_head is not None and at_head.fingerprint == closure.fingerprint:
                origin, message = head, self._subject(head)
        return self._register(spec.name, closure, tree, docstrings, origin=origin, message=message)

    def _register(
        self, stage: str, closure: Closure, tree: SourceTree, docstrings: bool, **details: Any
    ) -> tuple[StageVersion, bool]:
        """:meth:`History.register`, storing with a new version the files its modules import."""
        if self.history.find(stage, closure.fingerprint) is None:
            from modver.fingerprint import import_files

            imports = import_files(tree, closure, docstrings=docstrings, cache=self.summary_cache)
            closure = replace(closure, imports=imports)
        return self.history.register(stage, closure, tree, **details)

    def index(
        self,
        rev: str | None = None,
        *,
        all_branches: bool = False,
        manifest: str | os.PathLike[str] | None = None,
        progress: Progress | None = None,
    ) -> IndexResult:
        """Walk first-parent git history (oldest first) and register every declared stage's versions.

        Incremental: commits walked before for the same stage declaration are not examined again.
        """
        from modver import _encoding
        from modver.history import load_index_state, save_index_state

        m = self.manifest(manifest)
        head = self._repo.head_commit() if rev is None else self._repo.resolve_rev(rev)
        if head is None:
            return IndexResult(rev, 0, 0, ())
        tips = [self._repo.resolve_rev(b) for b in self._repo.branches()] if all_branches else [head]
        docstrings = self._docstrings(m)
        state_path = self.store / "index.json"
        state = load_index_state(state_path)
        done: dict[str, list[str]] = state.setdefault("stages", {})
        keys = {
            name: "|".join([name, _encoding.digest_value([spec.entry, list(spec.deps), docstrings])])
            for name, spec in m.stages.items()
        }
        if all(set(tips) <= set(done.get(key, [])) for key in keys.values()):
            return IndexResult(rev, 0, 0, (), up_to_date=True)  # nothing new: not even a walk
        commits: list[str] = []
        seen: set[str] = set()
        for tip in tips:
            for sha in self._repo.first_parent_walk(tip):
                if sha not in seen:
                    seen.add(sha)
                    commits.append(sha)
        if len(tips) > 1:
            commits.sort(key=self._repo.commit_time)
        position = {sha: i for i, sha in enumerate(commits)}
        start: dict[str, int] = {}
        for name in m.stages:
            indexed = done.get(keys[name], [])
            start[name] = max((position[s] + 1 for s in indexed if s in position), default=0)
        first = min(start.values(), default=len(commits))
        new_versions: list[StageVersion] = []
        skipped: dict[str, int] = {}
        found: list[tuple[StageVersion, str]] = []
        todo = commits[first:]
        self.summary_cache.persist = False
        try:
            with self.history.batch():
                self._walk(todo, m, start, position, docstrings, progress, new_versions, skipped, found)
        finally:
            self.summary_cache.persist = True
        # a stage another process registered versions of meanwhile was re-registered on top of
        # them: report the numbers its versions ended with
        new_versions = [
            (self.history.find(v.stage, v.fingerprint) or v) if v.stage in self.history.rebased else v
            for v in new_versions
        ]
        noted = self.history.record_committed(found)
        for key in keys.values():
            done[key] = sorted(set(tips))
        save_index_state(state_path, state)
        return IndexResult(rev, len(commits), len(todo), tuple(new_versions), skipped, committed=tuple(noted))

    def _walk(
        self,
        todo: list[str],
        m: Any,
        start: dict[str, int],
        position: dict[str, int],
        docstrings: bool,
        progress: Progress | None,
        new_versions: list[StageVersion],
        skipped: dict[str, int],
        committed: list[tuple[StageVersion, str]],
    ) -> None:
        """Fingerprint every declared stage at each commit of ``todo``; register new versions, and
        collect in ``committed`` the working-tree versions whose code a commit holds."""
        last: dict[str, Closure] = {}  # each stage's closure at the previous commit
        manifest_specs: dict[str | None, dict[str, StageSpec]] = {}
        manifest_rel = self._manifest_rel(m)
        previous: str | None = None
        for step, sha in enumerate(todo):
            tree = self._repo.tree_at(sha)
            specs = self._specs_at(tree, manifest_rel, manifest_specs)
            changed, structural = self._repo.diff_trees(previous, sha) if previous else (set(), True)
            if manifest_rel in changed:
                structural = True
            previous = sha
            for name, spec in m.stages.items():
                if position[sha] < start[name]:
                    continue
                before = last.get(name)
                if before is not None and not structural and changed.isdisjoint(before.files + before.deps):
                    continue  # nothing the closure read changed, and no file came or went
                at = specs.get(name, spec)
                try:
                    closure = self.fingerprint(at, tree, docstrings=docstrings)
                except (errors.EntryNotFoundError, errors.SourceError):
                    last.pop(name, None)
                    skipped[name] = skipped.get(name, 0) + 1  # not there yet, or did not parse then
                    continue
                last[name] = closure
                if before is not None and before.fingerprint == closure.fingerprint:
                    continue
                version, new = self._register(
                    name,
                    closure,
                    tree,
                    docstrings,
                    origin=sha,
                    message=self._subject(sha),
                    created=self._repo.commit_time(sha),
                )
                if new:
                    new_versions.append(version)
                elif version.origin is None and version.committed is None:
                    committed.append((version, sha))  # working-tree code, now found committed
            if progress is not None:
                progress(step + 1, len(todo))

    def _subject(self, sha: str) -> str:
        """The first line of a commit's message."""
        return next(iter(self._repo.commit_message(sha).splitlines()), "")

    def _manifest_rel(self, current: Any) -> str | None:
        """The manifest's path inside the repository, or None when it lies outside."""
        path = current.path.resolve()
        return path.relative_to(self.root).as_posix() if path.is_relative_to(self.root) else None

    def _specs_at(
        self, tree: SourceTree, rel: str | None, cache: dict[str | None, dict[str, StageSpec]]
    ) -> dict[str, StageSpec]:
        """Stage declarations of the manifest at ``rel`` as it was in ``tree`` ({} when it had none).

        Parsed once per manifest content (blob id); a manifest that did not load then declares nothing.
        """
        from modver.manifest import load_manifest_text

        blob = tree.content_id(rel) if rel else None
        if blob not in cache:
            data = tree.read(rel) if rel and blob else None
            try:
                cache[blob] = dict(load_manifest_text(data, Path(rel)).stages) if data is not None else {}
            except errors.ModverError:
                cache[blob] = {}  # that commit's manifest was malformed: use the current entries
        return cache[blob]

    def log(self, stage: str | None = None) -> list[StageVersion]:
        """Every registered version of one stage (or of all stages), oldest first."""
        if stage is None:  # in the manifest's order, then the stages only the history has
            have = set(self.history.stages())
            return [v for s in self.stage_names() if s in have for v in self.history.versions(s)]
        from modver.names import validate_name

        validate_name(stage)
        if stage not in self.history.stages():
            try:
                declared = list(self.manifest().stages)
            except errors.ModverError:  # a broken manifest: name the history's stages only
                declared = []
            if stage in declared:
                return []
            known = sorted(set(self.history.stages()) | set(declared))
            raise errors.UnknownStageError(
                f"unknown stage {stage!r}; known stages: {', '.join(known) or '(none)'}",
                hint=f"{did_you_mean(stage, known)}declare it in the manifest, then `modver snapshot` or `modver index`",
            )
        return self.history.versions(stage)

    def resolve(self, ref: str, manifest: str | os.PathLike[str] | None = None) -> StageVersion:
        """Resolve ``STAGE@REF`` (vN, latest, working, fingerprint prefix, git:REV, tag).

        ``working`` and ``git:REV`` register the code they name when it is new.
        """
        version = self._resolve(ref, manifest, register=True)
        assert version is not None
        return version

    def check_ref(self, ref: str, manifest: str | os.PathLike[str] | None = None) -> None:
        """Raise what :meth:`resolve` would raise for ``ref``, registering nothing."""
        self._resolve(ref, manifest, register=False)

    def _resolve(self, ref: str, manifest: str | os.PathLike[str] | None, *, register: bool) -> StageVersion | None:
        stage, _, what = ref.partition("@")
        if not stage or not what:
            raise errors.UnknownVersionError(
                f"bad version reference {ref!r}: expected STAGE@REF",
                hint="e.g. preprocess@v3, model@latest, augment@working, model@git:HEAD~2",
            )
        spec = self._spec(stage, manifest)
        if what == "working":
            return self._register_tree(
                spec, self.working_tree(), None, "working tree snapshot", manifest, register=register
            )
        if what.startswith("git:"):
            sha = self._repo.resolve_rev(what[4:])
            tree = self._repo.tree_at(sha)
            try:
                m = self.manifest(manifest)
                at = self._specs_at(tree, self._manifest_rel(m), {}).get(stage, spec)
            except errors.ManifestError:
                at = spec
            return self._register_tree(
                at, tree, sha, self._subject(sha), manifest, created=self._repo.commit_time(sha), register=register
            )
        return self.history.resolve(stage, what)

    def _register_tree(
        self,
        spec: StageSpec,
        tree: SourceTree,
        origin: str | None,
        message: str,
        manifest: str | os.PathLike[str] | None,
        created: datetime | None = None,
        *,
        register: bool = True,
    ) -> StageVersion | None:
        """The version of ``spec``'s code in ``tree``, registered if new (None: new, and not ``register``)."""
        docstrings = self._manifest_docstrings(manifest)
        closure = self.fingerprint(spec, tree, docstrings=docstrings)
        if not register:
            return self.history.find(spec.name, closure.fingerprint) if spec.name in self.history.stages() else None
        version, _ = self._register(
            spec.name, closure, tree, docstrings, origin=origin, message=message, created=created
        )
        return version

    def status(self, manifest: str | os.PathLike[str] | None = None) -> list[StageStatus]:
        """Per declared stage: the working tree's version against what it is compared with.

        A pinned stage's working tree is compared with its pin; an unpinned stage's with the
        version its last run used (the code a run would replace); with neither, it is
        ``changed`` only when its code is not registered. A pin that does not resolve or code
        that does not fingerprint is reported in the stage's row (``error``).
        """
        from modver.data import DataHasher
        from modver.runner import last_key_parts

        m = self.manifest(manifest)
        tree = self.working_tree()
        previous = last_key_parts(self.runs_store, list(m.stages))
        hasher = DataHasher(self.root, self.store)
        rows = []
        for name, spec in m.stages.items():
            rows.append(self._stage_status(name, spec, tree, previous.get(name), manifest))
            for source in spec.inputs.values():  # a data input that cannot be read is that stage's problem
                if source.startswith("data.") and rows[-1].error is None:
                    try:
                        hasher.hash(source[5:], m.data[source[5:]])
                    except errors.ModverError as exc:
                        rows[-1] = replace(rows[-1], error=str(exc), changed=True)
        hasher.save()
        try:
            cached = {p.name: p.cached for p in self.plan(manifest, previous=previous)}
        except errors.ModverError:
            cached = {}  # a missing data file or an unresolvable pin: not knowable now
        return [replace(r, cached=cached.get(r.stage)) for r in rows]

    def _stage_status(
        self, name: str, spec: StageSpec, tree: SourceTree, last: Any, manifest: str | os.PathLike[str] | None
    ) -> StageStatus:
        pinned, problem = None, None
        if spec.version:
            try:
                pinned = self.resolve(f"{name}@{spec.version}", manifest)
            except errors.ModverError as exc:
                problem = f"pin {spec.version} does not resolve: {exc}"
        try:
            closure = self.fingerprint(spec, tree, docstrings=self._docstrings(self.manifest(manifest)))
        except errors.ModverError as exc:
            closure, problem = None, problem or str(exc)
        fingerprint = closure.fingerprint if closure else None
        known = self.history.find(name, fingerprint) if fingerprint and name in self.history.stages() else None
        if spec.version:
            compared = (pinned.version, pinned.fingerprint, "pin") if pinned else (spec.version, None, "pin")
        elif last and last.get("fingerprint"):
            label = last.get("version") or str(last["fingerprint"]).split(":", 1)[-1][:12]
            compared = (label, last["fingerprint"], "last run")
        else:
            compared = (None, None, None)
        changed = problem is not None or (known is None if compared[1] is None else compared[1] != fingerprint)
        return StageStatus(
            name,
            spec.entry,
            pinned.version if pinned else None,
            pinned.fingerprint if pinned else None,
            known.version if known else None,
            fingerprint,
            changed,
            problem,
            compared_with=compared[0],
            compared_source=compared[2],
        )

    def show(self, ref: str, manifest: str | os.PathLike[str] | None = None) -> ShownVersion:
        """A version's metadata, closure and the exact source of each of its definitions."""
        version = self.resolve(ref, manifest)
        closure = self.history.closure(version)
        tree = self.history.source_tree(version)
        try:
            declared = self.manifest(manifest).stages.get(version.stage)
        except errors.ModverError:
            declared = None  # a broken manifest: the version is still shown
        entry = declared.entry if declared is not None else None
        return ShownVersion(version, closure, definition_sources(tree, closure), entry)

    def pin(self, ref: str, manifest: str | os.PathLike[str] | None = None) -> PinResult:
        """Pin ``STAGE@REF`` in the manifest (comments and formatting kept)."""
        from modver.manifest import set_pin

        stage = ref.partition("@")[0]
        self.manifest(manifest).stage(stage)
        version = self.resolve(ref, manifest)
        path = self.manifest_path(manifest)
        with self._manifest_lock(path):
            set_pin(path, stage, version.version, temp_dir=self.store / "tmp")
        self._manifests.pop(path, None)
        return PinResult(path, stage, version)

    def unpin(self, stage: str, manifest: str | os.PathLike[str] | None = None) -> PinResult:
        """Clear a stage's pin: it follows the working tree again."""
        from modver.manifest import set_pin

        self.manifest(manifest).stage(stage)
        path = self.manifest_path(manifest)
        with self._manifest_lock(path):
            set_pin(path, stage, None, temp_dir=self.store / "tmp")
        self._manifests.pop(path, None)
        return PinResult(path, stage, None)

    def _manifest_lock(self, path: Path):
        """An inter-process lock so that concurrent pins of one manifest never lose an edit."""
        from modver import _encoding, _fs

        name = _encoding.digest_value(os.path.realpath(path)).split(":")[1][:16]  # one lock per file, however reached
        return _fs.file_lock(self.store / "locks" / f"manifest-{name}.lock", what=f"manifest {path}")

    def gc(
        self,
        *,
        keep_last: int | None = None,
        older_than: str | None = None,
        remove_records: bool = False,
        dry_run: bool = False,
    ):  # -> modver.retention.GcResult
        """Remove cached outputs and materialized versions that no kept run uses (all runs are
        kept unless ``keep_last``/``older_than`` — e.g. ``"30d"`` — narrow them); run records
        only with ``remove_records``. Safe while runs are in progress (see modver/retention.py)."""
        from modver.retention import collect_garbage, parse_duration, store_lock
        from modver.runner import mark_dead

        seconds = parse_duration(older_than) if older_than is not None else None
        with store_lock(self.store, shared=False):
            records = [mark_dead(r) for r in self.runs_store.list()]
            return collect_garbage(
                self.store,
                records,
                keep_last=keep_last,
                older_than=seconds,
                remove_records=remove_records,
                dry_run=dry_run,
            )

    def verify(self, stages: Sequence[str] = ()) -> list[Any]:  # -> list[modver.verify.VersionCheck]
        """Re-fingerprint every stored version (of ``stages``, default all) and compare.

        A version whose stored code does not give its fingerprint, or whose files are missing
        or damaged, comes back with its problems; nothing is written.
        """
        from modver.verify import verify_history

        have = set(self.history.stages())
        names = list(stages) or [s for s in self.stage_names() if s in have]
        return verify_history(self.history, names, docstrings=self._manifest_docstrings(None))

    def tag(self, ref: str, name: str, *, force: bool = False) -> StageVersion:
        """Give a version a name usable as ``STAGE@NAME``."""
        version = self.resolve(ref)
        self.history.tag(version.stage, version, name, force=force)
        return self.history.resolve(version.stage, name)

    def diff(self, a: str | None = None, b: str | None = None, manifest: str | os.PathLike[str] | None = None):
        """Semantic diff: working tree vs pins; ``STAGE@A [STAGE@B]``; two manifests; two runs.

        Returns a list of :class:`modver.diff.StageDiff`, a :class:`modver.diff.ManifestDiff`
        or a :class:`RunDiff`.
        """
        from modver import diff as _diff

        if a is None:
            return self._diff_working(manifest)
        if _is_manifest_path(a) and b is not None and _is_manifest_path(b):
            return _diff.diff_manifests(self.manifest(a), self.manifest(b), self.history)
        if "@" in a:
            stage = a.partition("@")[0]
            va = self.resolve(a, manifest)
            ta = self.history.source_tree(va)
            ca = self.history.closure(va)
            if b is None:
                spec = self._spec(stage, manifest)
                tb = self.working_tree()
                cb = self.fingerprint(spec, tb, docstrings=self._manifest_docstrings(manifest))
                label_b = "working tree"
            else:
                if "@" not in b:
                    b = f"{stage}@{b}"
                vb = self.resolve(b, manifest)
                tb, cb, label_b = self.history.source_tree(vb), self.history.closure(vb), f"{vb.stage}@{vb.version}"
            return [_diff.diff_closures(stage, f"{stage}@{va.version}", ca, ta, label_b, cb, tb)]
        if b is not None and not _is_manifest_path(a) and not _is_manifest_path(b) and "@" not in b:
            return self.diff_runs(a, b)
        raise errors.ModverError(
            f"cannot tell what to compare: {a!r}" + (f" and {b!r}" if b else ""),
            hint="give STAGE@A [STAGE@B], two manifests (A.yaml B.yaml), two runs (RUN_A RUN_B), "
            "or nothing (working tree vs pins)",
        )

    def _manifest_docstrings(self, manifest: str | os.PathLike[str] | None) -> bool:
        """The manifest's docstrings setting; False when it does not load (a broken manifest)."""
        try:
            return self._docstrings(self.manifest(manifest))
        except errors.ModverError:
            return False

    def _diff_working(self, manifest: str | os.PathLike[str] | None):
        from modver import diff as _diff
        from modver.runner import last_key_parts

        m = self.manifest(manifest)
        tree = self.working_tree()
        previous = last_key_parts(self.runs_store, list(m.stages))
        out = []
        for name, spec in m.stages.items():
            closure = self.fingerprint(spec, tree, docstrings=self._docstrings(m))
            known = name in self.history.stages()
            last_run = (previous.get(name) or {}).get("fingerprint")
            used = self.history.find(name, last_run) if known and last_run else None
            if spec.version:
                pinned = self.resolve(f"{name}@{spec.version}", manifest)
            elif used is not None:
                pinned = used  # what the stage's last run used, as status compares
            else:
                versions = self.history.versions(name) if known else []
                pinned = versions[-1] if versions else None
            if pinned is None:
                out.append(_diff.diff_closures(name, "(nothing registered)", None, None, "working tree", closure, tree))
                continue
            out.append(
                _diff.diff_closures(
                    name,
                    f"{name}@{pinned.version}",
                    self.history.closure(pinned),
                    self.history.source_tree(pinned),
                    "working tree",
                    closure,
                    tree,
                )
            )
        return out

    # -- runs ------------------------------------------------------------------------

    @property
    def runs_store(self):  # -> modver.records.RunStore
        from modver.records import RunStore

        return RunStore(self.store / "runs")

    def pipeline(self, manifest: str | os.PathLike[str] | None = None, sets: Sequence[str] = ()):
        """The manifest as a :class:`modver.runner.Pipeline` in DAG order, ``--set`` applied."""
        from modver.manifest import dump_manifest_dict
        from modver.runner import Pipeline, PipelineStage, parse_sets

        m = self.manifest(manifest)
        stages = tuple(
            PipelineStage(
                name,
                m.stages[name].entry,
                m.stages[name].version,
                dict(m.stages[name].inputs),
                dict(m.stages[name].params),
                tuple(m.stages[name].deps),
            )
            for name in m.order()
        )
        rel = m.path.relative_to(self.root).as_posix() if m.path.is_relative_to(self.root) else str(m.path)
        pipeline = Pipeline(stages, dict(m.data), rel, dump_manifest_dict(m), self._docstrings(m))
        return parse_sets(list(sets), pipeline) if sets else pipeline

    def run(
        self,
        manifest: str | os.PathLike[str] | None = None,
        *,
        sets: Sequence[str] = (),
        force: Sequence[str] = (),
        on_event: Any = None,
        echo: Any = None,
    ) -> dict[str, Any]:
        """Run the manifest at its pinned versions, with caching; return the run record."""
        from modver.runner import execute

        return execute(self, self.pipeline(manifest, sets), force=tuple(force), on_event=on_event, echo=echo)

    def plan(
        self,
        manifest: str | os.PathLike[str] | None = None,
        *,
        sets: Sequence[str] = (),
        force: Sequence[str] = (),
        previous: Any = None,
    ):
        """What a run would do, stage by stage, and why (nothing is executed or registered).

        ``previous``: the last recorded key parts per stage (read from the run records if None).
        """
        from modver.runner import last_key_parts, plan

        pipeline = self.pipeline(manifest, sets)
        if previous is None:
            previous = last_key_parts(self.runs_store, [s.name for s in pipeline.stages])
        return plan(self, pipeline, force=tuple(force), previous=previous)

    def runs(self, where: str | None = None, sort: str | None = None) -> list[dict[str, Any]]:
        """Every run record, oldest first (or sorted by a column, ``-column`` descending)."""
        from modver.records import filter_records, sort_records
        from modver.runner import mark_dead

        records = [mark_dead(r) for r in self.runs_store.list()]
        if where:
            records = list(filter_records(records, where))
        return sort_records(records, sort) if sort else records

    def run_record(self, ref: str = "latest") -> dict[str, Any]:
        """One run's record (a run id, a unique prefix, ``latest`` or ``latest~N``)."""
        from modver.runner import mark_dead

        store = self.runs_store
        return mark_dead(store.load(store.resolve(ref)))

    def run_logs(self, ref: str) -> dict[str, dict[str, str | None]]:
        """What each stage of a run printed: {stage: {"stdout": ..., "stderr": ...}}."""
        store = self.runs_store
        run_id = store.resolve(ref)
        record = store.load(run_id)
        return {
            stage: {s: store.read_log(run_id, stage, s) for s in ("stdout", "stderr")}
            for stage in (record.get("stages") or {})
        }

    def diff_runs(self, a: str, b: str) -> RunDiff:
        """Versions, params, data and metrics of two runs, where they differ."""
        ra, rb = self.run_record(a), self.run_record(b)
        ca, cb = _run_columns(ra), _run_columns(rb)
        skip = {"run", "started", "duration"}  # differ between any two runs
        keys = [k for k in ca if k not in skip] + [k for k in cb if k not in ca and k not in skip]
        rows = tuple((k, ca.get(k), cb.get(k)) for k in keys if ca.get(k) != cb.get(k))
        return RunDiff(ra["run"], rb["run"], rows)

    def reproduce(self, ref: str, *, use_cache: bool = False, on_event: Any = None, echo: Any = None) -> dict[str, Any]:
        """Run again exactly the recorded versions, params and data; compare the metrics.

        Every stage is executed again unless ``use_cache``. The code comes from the store, so
        this works after it is gone from the working tree and every branch.
        """
        from modver.data import DataHasher
        from modver.runner import Pipeline, PipelineStage, execute

        original = self.run_record(ref)
        fingerprints = original.get("fingerprints") or {}
        if not fingerprints:
            raise errors.RunError(
                f"run {original['run']} recorded no stage versions (it failed before planning)",
                hint="reproduce a run that got past planning; see `modver runs`",
            )
        recorded = self._recorded_manifest(original, fingerprints)
        hasher = DataHasher(self.root, self.store)
        changed = []
        for name, info in (original.get("data") or {}).items():
            try:
                now = hasher.hash(name, info["path"])
            except errors.RunError:
                now = None
            if now != info["hash"]:
                changed.append(info["path"])
        if changed:
            raise errors.RunError(
                f"cannot reproduce run {original['run']}: its data changed since: {', '.join(changed)}",
                hint="restore the data files the run used (their content hashes are in its record)",
            )
        stages = tuple(
            PipelineStage(
                name,
                recorded.stages[name].entry,
                None,
                dict(recorded.stages[name].inputs),
                dict((original.get("params") or {}).get(name) or {}),
                recorded.stages[name].deps,
                fingerprint=fingerprints[name],
            )
            for name in recorded.order()
            if name in fingerprints
        )
        data = {name: info["path"] for name, info in (original.get("data") or {}).items()}
        data.update({k: v for k, v in recorded.data.items() if k not in data})
        manifest = original.get("manifest") or {}
        pipeline = Pipeline(stages, data, manifest.get("path", ""), manifest.get("content") or {})
        force = () if use_cache else tuple(s.name for s in stages)
        record = execute(
            self, pipeline, force=force, on_event=on_event, echo=echo, extra={"reproduces": original["run"]}
        )
        comparison = {}
        old, new = original.get("metrics") or {}, record.get("metrics") or {}
        for name in list(old) + [n for n in new if n not in old]:
            comparison[name] = {
                "original": old.get(name),
                "reproduced": new.get(name),
                "match": old.get(name) == new.get(name),
            }
        record["comparison"] = comparison
        self.runs_store.update(record["run"], record)
        return record

    def _recorded_manifest(self, record: dict[str, Any], fingerprints: dict[str, str]):  # -> Manifest
        """The manifest a run recorded, validated again (as a manifest, and against the recorded
        versions): what `reproduce` runs. A damaged one is a :class:`StoreError`."""
        import json

        from modver.manifest import load_manifest_text

        info = record.get("manifest") or {}
        try:
            m = load_manifest_text(
                json.dumps(info.get("content") or {}), Path(info.get("path") or DEFAULT_MANIFEST), self.root
            )
        except errors.ModverError as exc:
            raise self.runs_store.damaged(record["run"], f"its manifest does not load: {exc.message}") from exc
        used = {name for name in fingerprints if name in m.stages}
        inputs = {src for name in used for src in m.stages[name].inputs.values() if src in m.stages}
        missing = sorted((set(fingerprints) - used) | (inputs - set(fingerprints)))
        if missing:
            raise self.runs_store.damaged(
                record["run"], f"its manifest and its versions disagree on {', '.join(missing)}"
            )
        return m

    def load(self, stage: str, run: str = "latest") -> Any:
        """A stage's output object from a run; loads without the code in the working tree.

        ``run="latest"`` is the newest run that has an output of ``stage`` (a run that failed
        before it, or ran another manifest, is passed over); any other reference names one run.
        """
        from modver.cache import OutputCache
        from modver.materialize import make_importable

        record = self._latest_with_output(stage) if run.strip() == "latest" else None
        record = record or self.run_record(run)
        info = (record.get("stages") or {}).get(stage)
        if info is None:
            raise errors.UnknownStageError(
                f"run {record['run']} has no stage {stage!r}; it has: {', '.join(record.get('stages') or {}) or '(none)'}",
                hint="see `modver show " + record["run"] + "`",
            )
        if info.get("status") not in ("succeeded", "cached"):
            raise errors.RunError(
                f"stage {stage} has no output in run {record['run']} (it {info.get('status')})",
                hint="load it from a run where it succeeded: modver.load(stage, run=...)",
            )
        make_importable(self.store)
        return OutputCache(self.store / "cache" / "outputs").load(info["cache_key"])

    def _latest_with_output(self, stage: str) -> dict[str, Any] | None:
        store = self.runs_store
        for run_id in reversed(store.ids()):
            try:
                record = store.load(run_id)
            except errors.StoreError:
                continue
            if ((record.get("stages") or {}).get(stage) or {}).get("status") in ("succeeded", "cached"):
                return record
        return None

    def version_runs(self, stage: str) -> dict[str, list[dict[str, Any]]]:
        """For each version label of ``stage``, the runs that used it (id, status, metrics)."""
        out: dict[str, list[dict[str, Any]]] = {}
        for record in self.runs_store.list():
            label = (record.get("versions") or {}).get(stage)
            if label:
                out.setdefault(label, []).append(
                    {"run": record["run"], "status": record.get("status"), "metrics": record.get("metrics") or {}}
                )
        return out


def _read_cached_manifest(path: Path):  # -> Manifest | None
    """A manifest pickled by an earlier command, or None when absent, unreadable or stale."""
    import pickle

    from modver.manifest import Manifest

    try:
        with open(path, "rb") as f:
            found = pickle.load(f)
    except (
        OSError,
        EOFError,
        pickle.UnpicklingError,
        AttributeError,
        ImportError,
        IndexError,
        KeyError,
        TypeError,
        ValueError,
    ):
        return None  # missing or damaged: the caller parses the YAML and rewrites it
    return found if isinstance(found, Manifest) else None


def _is_manifest_path(text: str) -> bool:
    return text.endswith((".yaml", ".yml"))


def definition_sources(tree: SourceTree, closure: Closure) -> dict[str, str]:
    """The exact source of each definition of ``closure`` as it is in ``tree``, by ``path:name``."""
    from modver.diff import definition_text

    cache: dict[tuple[int, str], str] = {}
    return {f"{d.path}:{d.name}": definition_text(tree, d, cache) for d in closure.definitions}


# --------------------------------------------------------------------------- runs


@dataclass(frozen=True)
class RunDiff:
    """Two runs side by side: the versions, params, data and metrics that differ."""

    a: str
    b: str
    rows: tuple[tuple[str, Any, Any], ...]  # (column, value in a, value in b)

    def to_json(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "differences": [{"key": k, "a": va, "b": vb} for k, va, vb in self.rows]}


def _run_columns(record: dict[str, Any]) -> dict[str, Any]:
    from modver.records import flatten_record

    row = dict(flatten_record(record))
    for name, info in (record.get("data") or {}).items():
        row[f"data.{name}"] = (info or {}).get("hash")
    for name, cached in (record.get("cached") or {}).items():
        row[f"cached.{name}"] = cached
    return row


def runs(path: str | os.PathLike[str] = "."):  # -> pandas.DataFrame
    """All runs of the project at ``path`` as a pandas DataFrame, one row per run."""
    from modver.records import runs_dataframe

    with Project(path) as project:
        return runs_dataframe(project.runs())


def load(stage: str, run: str = "latest", path: str | os.PathLike[str] = ".") -> Any:
    """The output object of ``stage`` in ``run`` (default: the newest run that produced one)."""
    with Project(path) as project:
        return project.load(stage, run)
