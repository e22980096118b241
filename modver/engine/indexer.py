"""``modver index``: walk git history and register every declared stage's versions.

The walk is first-parent, oldest first, from the current branch's tip (or ``rev``, or every
local branch). At a commit whose manifest does not declare a stage (or that has no manifest: a
project adopting modver) the stage's entry comes from today's manifest. A stage is fingerprinted
again only at commits that changed a file its closure read, or that added or removed a file;
every new version is registered in one batch (one pack, each ref moved once). It is incremental:
``.modver/index.json`` remembers the tips walked for each stage declaration, and a commit walked
before is not examined again. A version first registered from the working tree that a commit
turns out to hold is noted as committed there (:meth:`History.record_committed`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modver import _encoding, errors
from modver.engine.registry import ManifestSpecs, Registry
from modver.manifest import Manifest
from modver.models import Closure, StageSpec, StageVersion
from modver.store.history import load_index_state, save_index_state

__all__ = ["IndexResult", "Progress", "index_history"]

Progress = Callable[[int, int], None]  # (commits done, commits to walk)


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


@dataclass
class _Walk:
    """What a walk collects."""

    new_versions: list[StageVersion] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    committed: list[tuple[StageVersion, str]] = field(default_factory=list)


def index_history(
    registry: Registry,
    manifest: Manifest,
    state_path: Path,
    rev: str | None = None,
    *,
    all_branches: bool = False,
    progress: Progress | None = None,
) -> IndexResult:
    """Walk the history (see the module docstring); ``state_path`` is ``.modver/index.json``."""
    repo = registry.repo
    head = repo.head_commit() if rev is None else repo.resolve_rev(rev)
    if head is None:
        return IndexResult(rev, 0, 0, ())
    tips = [repo.resolve_rev(b) for b in repo.branches()] if all_branches else [head]
    docstrings = bool(manifest.options.get("docstrings", False))
    state = load_index_state(state_path)
    done: dict[str, list[str]] = state.setdefault("stages", {})
    keys = {
        name: "|".join([name, _encoding.digest_value([spec.entry, list(spec.deps), docstrings])])
        for name, spec in manifest.stages.items()
    }
    if all(set(tips) <= set(done.get(key, [])) for key in keys.values()):
        return IndexResult(rev, 0, 0, (), up_to_date=True)  # nothing new: not even a walk
    commits: list[str] = []
    seen: set[str] = set()
    for tip in tips:
        for sha in repo.first_parent_walk(tip):
            if sha not in seen:
                seen.add(sha)
                commits.append(sha)
    if len(tips) > 1:
        commits.sort(key=repo.commit_time)
    position = {sha: i for i, sha in enumerate(commits)}
    start = {
        name: max((position[s] + 1 for s in done.get(keys[name], []) if s in position), default=0)
        for name in manifest.stages
    }
    todo = commits[min(start.values(), default=len(commits)) :]
    walk = _Walk()
    history = registry.history
    registry.cache.persist = False  # thousands of old file versions: one summary file each costs more than it saves
    try:
        with history.batch():
            _walk(registry, manifest, todo, start, position, docstrings, progress, walk)
    finally:
        registry.cache.persist = True
    # a stage another process registered versions of meanwhile was re-registered on top of
    # them: report the numbers its versions ended with
    new_versions = [
        (history.find(v.stage, v.fingerprint) or v) if v.stage in history.rebased else v for v in walk.new_versions
    ]
    noted = history.record_committed(walk.committed)
    for key in keys.values():
        done[key] = sorted(set(tips))
    save_index_state(state_path, state)
    return IndexResult(rev, len(commits), len(todo), tuple(new_versions), walk.skipped, committed=tuple(noted))


def _walk(
    registry: Registry,
    manifest: Manifest,
    todo: list[str],
    start: dict[str, int],
    position: dict[str, int],
    docstrings: bool,
    progress: Progress | None,
    walk: _Walk,
) -> None:
    """Fingerprint every declared stage at each commit of ``todo``; register new versions."""
    repo = registry.repo
    last: dict[str, Closure] = {}  # each stage's closure at the previous commit
    manifest_specs: ManifestSpecs = {}
    manifest_rel = registry.manifest_rel(manifest.path)
    previous: str | None = None
    for step, sha in enumerate(todo):
        tree = repo.tree_at(sha)
        specs = registry.specs_at(tree, manifest_rel, manifest_specs)
        changed, structural = repo.diff_trees(previous, sha) if previous else (set(), True)
        if manifest_rel in changed:
            structural = True
        previous = sha
        for name, spec in manifest.stages.items():
            if position[sha] < start[name]:
                continue
            before = last.get(name)
            if before is not None and not structural and changed.isdisjoint(before.files + before.deps):
                continue  # nothing the closure read changed, and no file came or went
            at: StageSpec = specs.get(name, spec)
            try:
                closure = registry.fingerprint(at, tree, docstrings=docstrings)
            except (errors.EntryNotFoundError, errors.SourceError):
                last.pop(name, None)
                walk.skipped[name] = walk.skipped.get(name, 0) + 1  # not there yet, or did not parse then
                continue
            last[name] = closure
            if before is not None and before.fingerprint == closure.fingerprint:
                continue
            version, new = registry.register(
                name,
                closure,
                tree,
                docstrings=docstrings,
                origin=sha,
                message=registry.subject(sha),
                created=repo.commit_time(sha),
            )
            if new:
                walk.new_versions.append(version)
            elif version.origin is None and version.committed is None:
                walk.committed.append((version, sha))  # working-tree code, now found committed
        if progress is not None:
            progress(step + 1, len(todo))
