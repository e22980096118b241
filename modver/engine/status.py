"""``modver status``: each declared stage's working tree against what it is compared with.

A pinned stage's working tree is compared with its pin; an unpinned stage's with the version its
last run used (the code a run would replace); with neither, it is ``changed`` only when its code
is not registered. A pin that does not resolve, code that does not fingerprint or a data input
that cannot be read is reported in the stage's row (``error``), and whether a run now would be
served from the cache is asked of the planner.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from modver import errors
from modver.engine.planner import Pipeline, last_key_parts, plan
from modver.engine.registry import Registry
from modver.manifest import Manifest
from modver.models import SourceTree, StageSpec
from modver.record import KeyParts
from modver.results import StageState
from modver.store.data import DataHasher
from modver.store.runstore import RunStore

__all__ = ["stage_states"]


def stage_states(registry: Registry, manifest: Manifest, store: Path) -> list[StageState]:
    """One :class:`StageState` per stage of ``manifest`` (see the module docstring)."""
    tree = registry.working_tree()
    previous = last_key_parts(RunStore(store / "runs"), list(manifest.stages))
    hasher = DataHasher(registry.repo.root, store)
    docstrings = bool(manifest.options.get("docstrings", False))
    manifest_rel = registry.manifest_rel(manifest.path)
    rows = []
    for name, spec in manifest.stages.items():
        row = _state(registry, spec, tree, previous.get(name), docstrings, manifest_rel)
        for source in spec.inputs.values():  # a data input that cannot be read is that stage's problem
            if source.startswith("data.") and row.error is None:
                try:
                    hasher.hash(source[5:], manifest.data[source[5:]])
                except errors.ModverError as exc:
                    row = replace(row, error=str(exc), changed=True)
        rows.append(row)
    hasher.save()
    try:
        pipeline = Pipeline.from_manifest(manifest, registry.repo.root)
        cached = {p.name: p.cached for p in plan(registry, store, pipeline, previous=previous)}
    except errors.ModverError:
        cached = {}  # a missing data file or an unresolvable pin: not knowable now
    return [replace(r, cached=cached.get(r.stage)) for r in rows]


def _state(
    registry: Registry, spec: StageSpec, tree: SourceTree, last: KeyParts | None, docstrings: bool,
    manifest_rel: str | None,
) -> StageState:  # fmt: skip
    pinned, problem = None, None
    if spec.version:
        try:
            pinned = registry.resolve(spec, spec.version, docstrings=docstrings, manifest_rel=manifest_rel)
        except errors.ModverError as exc:
            problem = f"pin {spec.version} does not resolve: {exc}"
    try:
        fingerprint: str | None = registry.fingerprint(spec, tree, docstrings=docstrings).fingerprint
    except errors.ModverError as exc:
        fingerprint, problem = None, problem or str(exc)
    known = registry.find(spec.name, fingerprint) if fingerprint else None
    compared: tuple[str | None, str | None, str | None]
    if spec.version:
        compared = (pinned.version, pinned.fingerprint, "pin") if pinned else (spec.version, None, "pin")
    elif last is not None:
        compared = (last.version or last.fingerprint.split(":", 1)[-1][:12], last.fingerprint, "last run")
    else:
        compared = (None, None, None)
    changed = problem is not None or (known is None if compared[1] is None else compared[1] != fingerprint)
    return StageState(
        spec.name,
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
