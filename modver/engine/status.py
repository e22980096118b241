"""``modver status``: each declared stage's working tree against what it is compared with.

A pinned stage's working tree is compared with its pin; an unpinned stage's with the version its
last run used (the code a run would replace); with neither, it is ``changed`` only when its code
is not registered. A pin that does not resolve, code that does not fingerprint or a data input
that cannot be read is reported in the stage's row (``error``), and whether a run now would be
served from the cache is asked of the planner.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from modver import errors
from modver.engine.planner import Pipeline, last_key_parts, plan
from modver.engine.registry import Registry
from modver.manifest import Manifest
from modver.models import SourceTree, StageSpec, StageVersion
from modver.record import KeyParts
from modver.results import StageState
from modver.store.data import DataHasher
from modver.store.layout import Store

__all__ = ["Baseline", "baseline", "stage_states"]


def stage_states(registry: Registry, manifest: Manifest, store: Store) -> list[StageState]:
    """One :class:`StageState` per stage of ``manifest`` (see the module docstring)."""
    tree = registry.working_tree()
    previous = last_key_parts(store.run_store(), list(manifest.stages))
    hasher = DataHasher(store)
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
    except (errors.NotFoundError, errors.AmbiguousError, errors.InvalidError, errors.FailedError):
        cached = {}  # a missing data file or an unresolvable pin: not knowable now (a damaged store is an error)
    return [replace(r, cached=cached.get(r.stage)) for r in rows]


@dataclass(frozen=True)
class Baseline:
    """What a stage's working tree is compared with (``status``, ``diff``): see :func:`baseline`."""

    source: str | None  # "pin" | "last run" | None: nothing to compare with
    label: str | None  # "v3"; a last run's version not numbered here: its fingerprint's first 12 digits
    fingerprint: str | None
    version: StageVersion | None  # the registered version, when there is one
    error: errors.ModverError | None = None  # why the pin does not resolve


def baseline(
    registry: Registry, spec: StageSpec, last: KeyParts | None, *, docstrings: bool, manifest_rel: str | None
) -> Baseline:
    """The one rule of what a stage's working tree is compared with: its pin; an unpinned stage's,
    the version its last run used (``last``: that run's key parts), the code a run would replace;
    else nothing. A pin that does not resolve is the baseline's ``error``."""
    if spec.version:
        try:
            pinned = registry.resolve(spec, spec.version, docstrings=docstrings, manifest_rel=manifest_rel)
        except errors.ModverError as exc:
            return Baseline("pin", spec.version, None, None, exc)
        assert pinned is not None  # a registering resolve gives a version
        return Baseline("pin", pinned.version, pinned.fingerprint, pinned)
    if last is not None:
        label = last.version or last.fingerprint.split(":", 1)[-1][:12]
        return Baseline("last run", label, last.fingerprint, registry.find(spec.name, last.fingerprint))
    return Baseline(None, None, None, None)


def _state(
    registry: Registry, spec: StageSpec, tree: SourceTree, last: KeyParts | None, docstrings: bool,
    manifest_rel: str | None,
) -> StageState:  # fmt: skip
    base = baseline(registry, spec, last, docstrings=docstrings, manifest_rel=manifest_rel)
    problem = None if base.error is None else f"pin {spec.version} does not resolve: {base.error}"
    try:
        fingerprint: str | None = registry.fingerprint(spec, tree, docstrings=docstrings).fingerprint
    except errors.ModverError as exc:
        fingerprint, problem = None, problem or str(exc)
    known = registry.find(spec.name, fingerprint) if fingerprint else None
    changed = problem is not None or (known is None if base.fingerprint is None else base.fingerprint != fingerprint)
    pinned = base.version if base.source == "pin" else None
    return StageState(
        spec.name,
        spec.entry,
        pinned.version if pinned else None,
        pinned.fingerprint if pinned else None,
        known.version if known else None,
        fingerprint,
        changed,
        problem,
        compared_with=base.label,
        compared_source=base.source,
    )
