"""The factors that differ between two runs, and the mixed configurations made of them.

A **factor** is one thing two runs of the same pipeline set differently: a stage's version (its
fingerprint, and the entry it ran under), one param of one stage, or one data input (its path
and content hash). The environment's package versions differ too, but cannot be varied: they
are listed, not factors.

A **configuration** takes each factor from run B or from run A (:meth:`Mix.pipeline`): run B's
pipeline with some factors reverted to A's. Versions are pinned by fingerprint (as
``reproduce`` does), so a configuration whose stage has the key some run had is served from the
cache. A data factor is reverted *by content*: the pipeline keys the input with A's path and
hash, and when the file at that path holds other bytes now, A's bytes are restored under
``.modver/explain/data/`` from git history (the first commit, from A's and B's commits back, whose
file at that path has that hash); a stage reads them there, and its cache key is A's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from modver import _fs, errors
from modver.engine.planner import Pipeline, change_summary
from modver.engine.registry import Registry
from modver.engine.run import recorded_manifest
from modver.manifest import Manifest
from modver.record import RunRecord
from modver.store.data import FILE_SCHEME, DataHasher
from modver.store.layout import Store

__all__ = ["Factor", "Mix", "version_summary"]


@dataclass(frozen=True)
class Factor:
    """One difference between runs A and B. ``kind`` is ``version``, ``param`` or ``data``;
    ``name`` the stage, ``stage.param`` or data name; ``a``/``b`` the values shown ("v1", 0.5,
    a content hash); ``summary`` and ``command`` (versions) the semantic diff in one line and the
    command that shows it."""

    kind: str
    name: str
    a: Any
    b: Any
    summary: str = ""
    command: str = ""

    @property
    def label(self) -> str:
        if self.kind == "data":
            return f"data {self.name}"
        if self.kind == "version":
            return f"{self.name} {self.a}->{self.b}"
        return f"{self.name} {self.a!r}->{self.b!r}"

    def to_json(self) -> dict[str, Any]:
        out = {"kind": self.kind, "name": self.name, "label": self.label, "a": self.a, "b": self.b}
        if self.kind == "version":
            out |= {"summary": self.summary, "command": self.command}
        return out


_MISSING = object()


@dataclass
class Mix:
    """Runs A and B of one pipeline, their factors, and the configurations mixing them."""

    registry: Registry
    store: Store
    a: RunRecord
    b: RunRecord
    factors: tuple[Factor, ...] = ()
    environment: tuple[tuple[str, str | None, str | None], ...] = ()  # (package, in A, in B)
    _specs_a: dict[str, Any] = field(default_factory=dict)
    _base: Pipeline | None = None
    _current: dict[tuple[str, str], bool] = field(default_factory=dict)

    @classmethod
    def of(cls, registry: Registry, store: Store, a: RunRecord, b: RunRecord) -> Mix:
        """The factors of runs ``a`` and ``b`` (a clear error when they are not two runs of one
        pipeline: other stages, other wiring)."""
        runs = store.run_store()
        for record in (a, b):
            if not record.fingerprints:
                raise errors.RunError(
                    f"run {record.run} recorded no stage versions (it failed before planning)",
                    hint="explain runs that got past planning; see `modver runs`",
                )
        ma, mb = recorded_manifest(a, registry.repo.root, runs), recorded_manifest(b, registry.repo.root, runs)
        stages_a, stages_b = list(a.fingerprints), list(b.fingerprints)
        if set(stages_a) != set(stages_b):
            raise errors.RunError(
                f"runs {a.run} and {b.run} have different stages ({', '.join(stages_a)} / {', '.join(stages_b)})",
                hint="compare runs of the same pipeline; `modver diff RUN_A RUN_B` shows everything that differs",
            )
        for name in stages_b:
            if dict(ma.stages[name].inputs) != dict(mb.stages[name].inputs):
                raise errors.RunError(
                    f"runs {a.run} and {b.run} wire stage {name}'s inputs differently",
                    hint="compare runs of the same pipeline; `modver diff RUN_A RUN_B` shows everything that differs",
                )
        mix = cls(registry, store, a, b, _specs_a={n: ma.stages[n] for n in stages_a})
        mix._base = _pipeline_of(b, mb)
        mix.factors = tuple(mix._find_factors(ma, mb))
        packages = sorted(set(a.packages) | set(b.packages))
        mix.environment = tuple(
            (p, a.packages.get(p), b.packages.get(p)) for p in packages if a.packages.get(p) != b.packages.get(p)
        )
        return mix

    def _find_factors(self, ma: Manifest, mb: Manifest) -> Iterable[Factor]:
        a, b = self.a, self.b
        for name in b.fingerprints:
            if a.fingerprints[name] != b.fingerprints[name] or ma.stages[name].entry != mb.stages[name].entry:
                va, vb = a.stages[name].version or a.fingerprints[name][:12], b.stages[name].version
                vb = vb or b.fingerprints[name][:12]
                summary = version_summary(self.registry, name, a.fingerprints[name], b.fingerprints[name])
                yield Factor("version", name, va, vb, summary, f"modver diff {name}@{va} {name}@{vb}")
        for name in b.fingerprints:
            pa, pb = dict(a.params.get(name, {})), dict(b.params.get(name, {}))
            for param in [*pa, *(p for p in pb if p not in pa)]:
                va, vb = pa.get(param, _MISSING), pb.get(param, _MISSING)
                if va != vb or type(va) is not type(vb):
                    yield Factor("param", f"{name}.{param}", _shown(va), _shown(vb))
        for name in [*b.data, *(d for d in a.data if d not in b.data)]:
            da, db = a.data.get(name), b.data.get(name)
            if da is None or db is None:
                raise errors.RunError(
                    f"runs {a.run} and {b.run} do not both read data {name}",
                    hint="compare runs of the same pipeline; `modver diff RUN_A RUN_B` shows everything that differs",
                )
            if da != db:
                yield Factor("data", name, dict(da), dict(db))

    def pipeline(self, from_b: Iterable[int]) -> Pipeline:
        """The configuration taking the factors numbered ``from_b`` from run B, the rest from A."""
        assert self._base is not None
        taken = set(from_b)
        reverted = [f for i, f in enumerate(self.factors) if i not in taken]
        base = self._base
        exact = dict(base.exact)
        params = {s.name: dict(s.params) for s in base.stages}
        specs = {s.name: s for s in base.stages}
        data = dict(base.data)
        for f in reverted:
            if f.kind == "version":
                specs[f.name] = replace(self._specs_a[f.name], version=None)
                exact[f.name] = self.a.fingerprints[f.name]
            elif f.kind == "param":
                stage, _, param = f.name.partition(".")
                value = self.a.params.get(stage, {}).get(param, _MISSING)
                if value is _MISSING:
                    params[stage].pop(param, None)
                else:
                    params[stage][param] = value
            else:
                data[f.name] = self.a.data[f.name]["path"]
        hashes = {name: info["hash"] for name, info in self.b.data.items()}
        hashes |= {f.name: self.a.data[f.name]["hash"] for f in reverted if f.kind == "data"}
        restored = {}
        for name, rel in data.items():
            if name in hashes and not self._holds(name, rel, hashes[name]):
                restored[name] = (hashes[name], str(self._restore(name, rel, hashes[name])))
        stages = tuple(replace(specs[s.name], params=params[s.name]) for s in base.stages)
        return replace(base, stages=stages, data=data, exact=exact, restored=restored)

    def _holds(self, name: str, rel: str, wanted: str) -> bool:
        """Whether the file at ``rel`` holds the content ``wanted`` now."""
        if (rel, wanted) not in self._current:
            try:
                now = DataHasher(self.store).hash(name, rel)
            except errors.ModverError:
                now = None
            self._current[rel, wanted] = now == wanted
        return self._current[rel, wanted]

    def _restore(self, name: str, rel: str, wanted: str) -> Path:
        """A file holding the content ``wanted`` of data ``name`` (at ``rel`` in the runs): under
        ``.modver/explain/data/``, its bytes found in git history."""
        scheme, _, digest = wanted.partition(":")
        target = self.store.explain / "data" / digest / Path(rel).name
        if target.is_file() and _file_hash(target.read_bytes()) == wanted:
            return target
        found = self._find_bytes(rel, wanted) if scheme == FILE_SCHEME else None
        if found is None:
            raise errors.RunError(
                f"cannot revert data {name}: the content {wanted[:24]}... of {rel} is not in the git history",
                where=rel,
                hint="commit the data the runs read, or restore that file yourself and run again",
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        _fs.write_bytes_atomic(target, found)
        return target

    def _find_bytes(self, rel: str, wanted: str) -> bytes | None:
        repo = self.registry.repo
        seen: set[str] = set()
        starts = [c for c in (self.a.git_commit, self.b.git_commit, repo.head_commit()) if c]
        for start in starts:
            for commit in reversed(repo.first_parent_walk(start)):
                blob = repo.tree_at(commit).blob_id(rel)
                if blob is None or blob in seen:
                    continue
                seen.add(blob)
                data = repo.read_blob(blob)
                if _file_hash(data) == wanted:
                    return data
        return None


def _pipeline_of(record: RunRecord, manifest: Manifest) -> Pipeline:
    """The pipeline that runs ``record`` again: its exact versions, params and data paths."""
    fingerprints = record.fingerprints
    stages = tuple(
        replace(manifest.stages[name], version=None, params=dict(record.params.get(name, {})))
        for name in manifest.order()
        if name in fingerprints
    )
    data = {**dict(manifest.data), **{name: info["path"] for name, info in record.data.items()}}
    return Pipeline(
        stages, data, record.manifest_path, record.manifest_content,
        bool(manifest.options.get("docstrings", False)), exact=fingerprints,
    )  # fmt: skip


def _file_hash(data: bytes) -> str:
    """A data file's content hash (:mod:`modver.store.data`'s scheme for files)."""
    return f"{FILE_SCHEME}:{hashlib.blake2b(data, digest_size=32).hexdigest()}"


def _shown(value: Any) -> Any:
    return "(absent)" if value is _MISSING else value


def version_summary(registry: Registry, stage: str, fingerprint_a: str, fingerprint_b: str) -> str:
    """The semantic diff of two versions of ``stage`` in one line: the definitions that changed
    (:func:`modver.engine.planner.change_summary`, which a run's reasons say too)."""
    return change_summary(registry, stage, fingerprint_a, fingerprint_b) or (
        "(a version is not in the history: fetch refs/modver/*)"
    )
