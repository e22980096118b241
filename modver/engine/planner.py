"""Planning a run: each stage's version and cache key, and why it runs or is served from cache.

:func:`plan` resolves every stage of a :class:`Pipeline` to a registered version (unpinned
stages: the working tree, fingerprinted — and snapshotted when a run asks to ``register``) and
computes its cache key from its entry, its version's fingerprint, its params, its upstream
stages' keys and its data inputs' content hashes. Nothing is executed: ``modver status`` uses it
to say what is cached. Everything planning can fail on (a pin, code that does not fingerprint, a
data file) is checked before anything is registered, so a run that fails on a bad pin has not
snapshotted the other stages first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from modver import _encoding, errors
from modver.engine.registry import Registry
from modver.engine.scriptplan import (
    ScriptFiles,
    check_file_key,
    file_key_of,
    fill_file_params,
    resolve_files,
    script_inputs,
)
from modver.manifest import DEFAULT_PARAMS_FILE, Manifest, dump_manifest_dict, parse_scalar, split_set
from modver.manifest._params import read_params
from modver.models import SourceTree, StageSpec, StageVersion
from modver.names import did_you_mean
from modver.record import InputKey, KeyParts
from modver.store.cache import OutputCache
from modver.store.data import DataHasher
from modver.store.layout import Store
from modver.store.runstore import RunStore

__all__ = ["CACHE_KEY_SCHEME", "Pipeline", "StagePlan", "cache_key", "change_summary", "check_force", "check_param",
           "explain", "last_key_parts", "parse_pins", "parse_sets", "plan", "with_params"]  # fmt: skip

CACHE_KEY_SCHEME = "modver-output-key/1"


@dataclass(frozen=True)
class Pipeline:
    """Stages in the order they run, named data files, and where the description came from.

    ``exact`` pins stages to exact fingerprints (``reproduce``): it wins over their ``version``.
    ``pins`` are the ``--pin STAGE@REF`` of this run (already set as the stages' ``version``),
    kept to be recorded. ``restored`` keys data inputs by a content hash whose bytes are not at
    the manifest's path: ``{name: (hash, absolute path of the bytes)}`` (``blame`` reverting data).
    """

    stages: tuple[StageSpec, ...]
    data: Mapping[str, str]
    manifest_path: str  # relative to the project root when inside it
    manifest_content: Mapping[str, Any]
    docstrings: bool = False
    exact: Mapping[str, str] = field(default_factory=dict)
    # script stages' params file: its path, text and content; ``file_sets``: --set of its keys
    params_file: str = DEFAULT_PARAMS_FILE
    params_text: str = ""
    params_doc: Mapping[str, Any] = field(default_factory=dict)
    file_sets: Mapping[str, Any] = field(default_factory=dict)
    pins: Mapping[str, str] = field(default_factory=dict)
    restored: Mapping[str, tuple[str, str]] = field(default_factory=dict)

    @classmethod
    def from_manifest(
        cls, manifest: Manifest, root: Path, sets: Sequence[str] = (), pins: Sequence[str] = ()
    ) -> Pipeline:
        """The manifest's stages in DAG order, with ``--set`` overrides and ``--pin`` pins applied."""
        path = manifest.path
        rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
        pipeline = cls(
            tuple(manifest.stages[name] for name in manifest.order()),
            dict(manifest.data),
            rel,
            dump_manifest_dict(manifest),
            bool(manifest.options.get("docstrings", False)),
        )
        pipeline = with_params_file(pipeline, root, manifest.params_file)
        pipeline = parse_sets(list(sets), pipeline) if sets else pipeline
        return parse_pins(list(pins), pipeline) if pins else pipeline

    def files(self, spec: StageSpec, root: Path, upstream_outs: tuple[str, ...] = ()) -> ScriptFiles:
        """Script stage ``spec``'s files, templates filled (:func:`~modver.engine.scriptplan.resolve_files`)."""
        params = (self.params_file, self.params_text, self.params_file.endswith(".json"))
        return resolve_files(spec, root, self.data, self.params_doc, self.file_sets, params, upstream_outs)


def with_params_file(pipeline: Pipeline, root: Path, rel: str, sets: Mapping[str, Any] | None = None) -> Pipeline:
    """The pipeline with the params file at ``rel`` read (when a script stage may read it) and the
    listed keys' values put in the stages' params (``sets``: values that win over the file's)."""
    if not any(s.is_script for s in pipeline.stages):
        return pipeline
    text, doc = read_params(root / rel, rel)
    sets = dict(sets or {})
    stages = fill_file_params(pipeline.stages, doc, sets, rel)
    return replace(pipeline, stages=stages, params_file=rel, params_text=text, params_doc=doc, file_sets=sets)

    def stage(self, name: str) -> StageSpec:
        """The stage called ``name``."""
        return next(s for s in self.stages if s.name == name)


def parse_sets(sets: list[str], pipeline: Pipeline) -> Pipeline:
    """Apply ``--set stage.param=value`` overrides (values typed as YAML scalars)."""
    values: dict[str, Any] = {}
    for item in sets:
        split, shown = split_set(item), item if len(item) <= 80 else item[:77] + "..."
        key, eq, text = item.partition("=")
        if split is None and eq and key and file_key_of(pipeline.stages, key) is not None:
            split = (key, text)  # a key of a params file a stage lists: any number of dots
        if split is None:
            raise errors.RunError(f"bad --set {shown!r}: expected stage.param=value", hint="e.g. --set model.C=0.5")
        target, text = split
        check_param(pipeline, target, f"--set {shown!r}")
        if target in values:
            raise errors.RunError(
                f"--set {target} is given twice", hint="give each param one value (a sweep of values is `modver sweep`)"
            )
        values[target] = parse_scalar(text, f"--set {target}")
    return with_params(pipeline, values)


def parse_pins(pins: list[str], pipeline: Pipeline) -> Pipeline:
    """Apply ``--pin STAGE@REF`` pins for one run: each stage's ``version`` becomes REF (resolved
    when the run is planned, like a manifest pin); the manifest file is not touched."""
    by_name = {s.name: s for s in pipeline.stages}
    chosen: dict[str, str] = {}
    for item in pins:
        stage, at, ref = item.strip().partition("@")
        shown = item if len(item) <= 80 else item[:77] + "..."
        if not at or not stage or not ref.strip():
            raise errors.UsageError(f"bad --pin {shown!r}: expected STAGE@REF", hint="e.g. --pin model@v3")
        if stage not in by_name:
            raise errors.UnknownStageError(
                f"--pin {shown!r}: unknown stage {stage!r}; stages: {', '.join(by_name)}",
                hint=f"{did_you_mean(stage, by_name)}use a stage declared in the manifest",
            )
        if stage in chosen:
            raise errors.UsageError(f"--pin {stage} is given twice", hint="give each stage one --pin")
        chosen[stage] = ref.strip()
    stages = tuple(replace(s, version=chosen[s.name]) if s.name in chosen else s for s in pipeline.stages)
    return replace(pipeline, stages=stages, pins={**pipeline.pins, **chosen})


def check_param(pipeline: Pipeline, target: str, what: str) -> None:
    """``target`` (``stage.param``) names a param of a stage of the pipeline, or a clear error
    (``what`` says where it was given: ``--set 'model.C=1'``, a sweep file's key)."""
    by_name = {s.name: s for s in pipeline.stages}
    listed = file_key_of(pipeline.stages, target)
    if listed is not None:  # a key of the params file that a stage lists, or a key inside it
        if listed != target:
            check_file_key(pipeline.params_doc, pipeline.params_file, target, what)
        return
    stage, _, param = target.partition(".")
    if stage not in by_name:
        raise errors.UnknownStageError(
            f"{what}: unknown stage {stage!r}; stages: {', '.join(by_name)}",
            hint=f"{did_you_mean(stage, by_name)}use a stage declared in the manifest",
        )
    source = by_name[stage].inputs.get(param)
    if source is not None:
        kind = f"data file {source}" if source.startswith("data.") else f"the output of stage {source}"
        raise errors.RunError(
            f"--set {target}: {param!r} is an input of stage {stage} ({kind}), not a param",
            hint="--set changes params; an input is wired under the stage's `inputs:` in the manifest",
        )


def with_params(pipeline: Pipeline, values: Mapping[str, Any], *, as_defaults: bool = True) -> Pipeline:
    """The pipeline with params set: ``{"stage.param": value}`` (targets checked by :func:`check_param`).

    A value takes the type of the manifest's default when it converts exactly: ``--set model.C=1``
    over ``C: 1.0`` is ``1.0``, so it is the same cache key as the run made with the manifest
    (``as_defaults=False``: values keep their own type, as a search's drawn values do)."""
    params = {s.name: dict(s.params) for s in pipeline.stages}
    file_sets = dict(pipeline.file_sets)
    for target, value in values.items():
        if file_key_of(pipeline.stages, target) is not None:
            file_sets[target] = value
            continue
        stage, _, param = target.partition(".")
        params[stage][param] = _as_default(params[stage].get(param), value) if as_defaults else value
    stages = tuple(replace(s, params=params[s.name]) for s in pipeline.stages)
    if file_sets != pipeline.file_sets:
        stages = fill_file_params(stages, pipeline.params_doc, file_sets, pipeline.params_file)
    return replace(pipeline, stages=stages, file_sets=file_sets)


def _as_default(default: Any, value: Any) -> Any:
    """``value`` as a float when the default is a float and it is an int that converts exactly."""
    exact = isinstance(value, int) and not isinstance(value, bool) and abs(value) <= 2**53
    return float(value) if isinstance(default, float) and exact else value


def check_force(pipeline: Pipeline, force: Iterable[str]) -> None:
    """Every ``--force`` name is a stage of the pipeline, or :class:`UnknownStageError`."""
    known = [s.name for s in pipeline.stages]
    for name in force:
        if name not in known:
            raise errors.UnknownStageError(
                f"--force {name!r}: unknown stage; stages: {', '.join(known)}",
                hint=f"{did_you_mean(name, known)}use a stage declared in the manifest",
            )


def cache_key(parts: KeyParts) -> str:
    """The output key of a stage: a digest of the canonical encoding of its key parts."""
    return _encoding.digest_value([CACHE_KEY_SCHEME, parts.keyed()])


@dataclass(frozen=True)
class StagePlan:
    """One stage of a planned run."""

    spec: StageSpec
    version: StageVersion | None  # None: the working tree's code is not registered (yet)
    key_parts: KeyParts
    key: str
    cached: bool = False
    forced: bool = False
    reason: str = ""
    damage: str = ""  # what is wrong with the stage's cached output, when it has a damaged one
    notes: tuple[str, ...] = ()  # worth saying whether or not it runs
    files: ScriptFiles | None = None  # a script stage's files, templates filled
    data_paths: Mapping[str, str] = field(default_factory=dict)  # kwarg -> where a restored data input's bytes are

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def fingerprint(self) -> str:
        return self.key_parts.fingerprint

    @property
    def label(self) -> str:
        """``v3``, or ``working tree`` for code that is not registered."""
        return self.version.version if self.version else "working tree"

    @property
    def entry(self) -> str:
        """The entry the stage's code runs under: where its version stored it (code moved since
        keeps its fingerprint, and its version runs from the stored path), else the manifest's."""
        return self.version.entry if self.version else self.spec.entry


def plan(
    registry: Registry,
    store: Store,
    pipeline: Pipeline,
    *,
    force: Sequence[str] = (),
    register: bool = False,
    previous: Mapping[str, KeyParts] | None = None,
) -> list[StagePlan]:
    """Resolve versions and cache keys of every stage, in order; execute nothing.

    ``register``: snapshot unregistered working-tree code (a run does; ``status`` does not).
    ``previous``: the last recorded key parts per stage, to explain cache misses.
    """
    cache = store.output_cache()
    hasher = DataHasher(store)
    tree = registry.working_tree()
    check_force(pipeline, force)
    manifest_rel = (
        registry.manifest_rel(registry.repo.root / pipeline.manifest_path) if pipeline.manifest_path else None
    )
    if register:
        _check_before_registering(registry, pipeline, tree, hasher, manifest_rel)
    plans: dict[str, StagePlan] = {}
    outs_of: dict[str, tuple[str, ...]] = {}
    for spec in pipeline.stages:
        version, fingerprint = _version(registry, pipeline, spec, tree, register, manifest_rel)
        inputs: dict[str, InputKey] = {}
        paths: dict[str, str] = {}
        for kw, source in spec.inputs.items():
            if source[5:] in pipeline.restored and source.startswith("data."):
                inputs[kw] = InputKey(data=pipeline.data[source[5:]], hash=pipeline.restored[source[5:]][0])
                paths[kw] = pipeline.restored[source[5:]][1]
            elif source.startswith("data."):
                rel = pipeline.data[source[5:]]
                inputs[kw] = InputKey(data=rel, hash=hasher.hash(source[5:], rel))
            else:
                inputs[kw] = InputKey(stage=source, key=plans[source].key)
        files, script = None, {}
        notes: list[str] = []
        implied: list[str] = []
        if spec.is_script:
            files = pipeline.files(spec, store.root, tuple(o for outs in outs_of.values() for o in outs))
            deps, upstream = script_inputs(spec, files, outs_of, {n: q.key for n, q in plans.items()}, hasher)
            inputs.update(deps)
            files = replace(files, upstream=upstream)
            outs_of[spec.name] = files.outs
            script = files.keyed()
            implied = [
                f"arg {dep} is {upstream[dep]}'s out: {upstream[dep]} is upstream"
                if dep in upstream
                else f"arg {dep} names a project file: a dep (its content is in the key)"
                for dep in files.implied
            ]
        label = version.version if version else None
        parts = KeyParts(spec.entry, fingerprint, dict(spec.params), inputs, label, script)
        key = cache_key(parts)
        forced = spec.name in force
        damage = None if forced else _damage(cache, key, register)
        p = StagePlan(spec, version, parts, key, cached=damage == "", forced=forced, damage=damage or "",
                      files=files, data_paths=paths)  # fmt: skip
        if version is not None and (spec.name in pipeline.exact or spec.version is not None):
            notes += _drifted_deps(registry, version, tree)
        if version is not None and version.entry != spec.entry:
            notes.append(
                f"{version.version} was stored as {version.entry}: it runs from there (the manifest says {spec.entry})"
            )
        reason = explain(p, (previous or {}).get(spec.name), registry)
        if spec.is_script and implied:  # said with the reason (--explain), not on every run
            reason = "; ".join([reason, *implied])
        plans[spec.name] = replace(p, reason=reason, notes=tuple(notes))
    hasher.save()
    return list(plans.values())


def _damage(cache: OutputCache, key: str, run: bool) -> str | None:
    """``""`` when ``key`` has an intact cached output (a run also takes one a teammate pushed to
    storage), None when it has none, else what is wrong with it: a stage is served from the
    cache only after its entry's files are checked (:meth:`OutputCache.check`: stat stamps,
    and checksums where a stamp changed), never on the word of its ``entry.json``."""
    entry = cache.lookup(key) if run else cache.get(key)
    if entry is None:
        return None
    problems = cache.check(entry)
    return problems[0] if problems else ""


def _version(
    registry: Registry, pipeline: Pipeline, spec: StageSpec, tree: SourceTree, register: bool, manifest_rel: str | None
) -> tuple[StageVersion | None, str]:
    """The stage's version and fingerprint: its exact fingerprint, its pin, or its working tree's
    code (whose version is None when it is not registered and ``register`` is off)."""
    exact = pipeline.exact.get(spec.name)
    if exact is not None:
        version = registry.find(spec.name, exact)
        if version is None:
            raise errors.UnknownVersionError(
                f"stage {spec.name}: version {exact} is not in the history",
                hint="fetch the modver refs: git fetch origin 'refs/modver/*:refs/modver/*'",
            )
        return version, version.fingerprint
    if spec.version is not None:
        pinned = registry.resolve(spec, spec.version, docstrings=pipeline.docstrings, manifest_rel=manifest_rel)
        assert pinned is not None  # a registering resolve always gives a version
        return pinned, pinned.fingerprint
    closure = registry.fingerprint(spec, tree, docstrings=pipeline.docstrings)
    version = registry.find(spec.name, closure.fingerprint)
    if version is None and register:
        message = "working tree, snapshot for a run"
        version, _ = registry.register_working(spec, closure, tree, message, docstrings=pipeline.docstrings)
    return version, closure.fingerprint


def _check_before_registering(
    registry: Registry, pipeline: Pipeline, tree: SourceTree, hasher: DataHasher, manifest_rel: str | None
) -> None:
    """Everything planning can fail on, checked before it registers anything: every pin
    resolves, every unpinned stage's code fingerprints, every data input hashes."""
    for spec in pipeline.stages:
        if spec.name in pipeline.exact:
            pass
        elif spec.version is not None:
            registry.resolve(
                spec, spec.version, docstrings=pipeline.docstrings, manifest_rel=manifest_rel, register=False
            )
        else:
            registry.fingerprint(spec, tree, docstrings=pipeline.docstrings)
        for source in spec.inputs.values():
            if source.startswith("data.") and source[5:] not in pipeline.restored:
                hasher.hash(source[5:], pipeline.data[source[5:]])


def _drifted_deps(registry: Registry, version: StageVersion, tree: SourceTree) -> list[str]:
    """Notes on a pinned version's ``deps:`` files whose project copy is not the version's: code
    reads files from the project folder, so the version runs with today's copy."""
    deps = registry.history.closure(version).deps
    if not deps:
        return []
    stored = registry.history.source_tree(version)
    return [
        f"deps file {dep} is not {version.version}'s copy: the stage reads the project's file"
        for dep in deps
        if stored.content_id(dep) != tree.content_id(dep)
    ]


def _version_number(label: str | None) -> int:
    """``3`` for ``"v3"``; 0 for anything else (a fingerprint prefix, None)."""
    return int(label[1:]) if label and label[:1] == "v" and label[1:].isdigit() else 0


_SUMMARIES: dict[tuple[str, str, str, str], str] = {}  # (repository, stage, fingerprint a, b) -> summary


def change_summary(registry: Registry, stage: str, fingerprint_a: str, fingerprint_b: str) -> str:
    """The semantic diff of two registered versions of ``stage`` in one line — the definitions
    that changed (``function train changed, assignment OFFSET changed``), as ``modver diff``
    pairs them — or ``""`` when either is not in the history.

    Cheap enough for every run: definitions are compared by digest (no source is parsed unless
    nothing but formatting differs), and versions never change, so a summary is computed once
    per process."""
    from modver.engine import diff

    memo = (str(registry.repo.root), stage, fingerprint_a, fingerprint_b)
    if memo in _SUMMARIES:
        return _SUMMARIES[memo]
    history = registry.history
    va, vb = history.find(stage, fingerprint_a), history.find(stage, fingerprint_b)
    if va is None or vb is None:
        return ""
    ca, cb, ta, tb = history.closure(va), history.closure(vb), history.source_tree(va), history.source_tree(vb)
    texts: dict[tuple[int, str], str] = {}
    changed = []
    pairs = diff._match(
        ca, cb, lambda d: diff.definition_text(ta, d, texts), lambda d: diff.definition_text(tb, d, texts)
    )
    for a, b in pairs:
        if a is not None and b is not None and a.digest == b.digest:
            continue  # the same meaning (at most formatting, which a summary leaves out)
        status = diff.ADDED if a is None else diff.REMOVED if b is None else diff.CHANGED
        shown, tree = (b, tb) if b is not None else (a, ta)
        assert shown is not None  # a pair always has one side
        name = (
            diff.statement_label(shown, diff.definition_text(tree, shown, texts))
            if shown.kind == "statement"
            else shown.name
        )
        changed.append(f"{shown.kind} {name} {status}")
    if not changed:  # formatting only, or the entry moved: the full diff says which
        full = diff.diff_closures(stage, f"{stage}@{va.version}", ca, ta, f"{stage}@{vb.version}", cb, tb)
        summary = "formatting only" if full.changes else "no definition differs (entry moved)"
    else:
        summary = ", ".join(changed[:4]) + (f" (+{len(changed) - 4} more)" if len(changed) > 4 else "")
    if len(_SUMMARIES) > 4096:
        _SUMMARIES.clear()
    _SUMMARIES[memo] = summary
    return summary


def _summary(registry: Registry, stage: str, fingerprint_a: str, fingerprint_b: str) -> str:
    """:func:`change_summary`, or ``""`` when the history cannot be read: a reason is worth a
    run's saying, never its failing (``modver diff`` reports the damage)."""
    try:
        return change_summary(registry, stage, fingerprint_a, fingerprint_b)
    except (errors.ModverError, OSError, KeyError, ValueError):
        return ""


def explain(p: StagePlan, before: KeyParts | None, registry: Registry | None = None) -> str:
    """Why a stage runs, or why it is served from the cache, in one line. With ``registry``, a
    version that changed is said with the one-line summary of its semantic diff
    (:func:`change_summary`: ``new version v3 of model (was v2): function train changed``)."""
    if p.forced:
        return "forced with --force"
    if p.cached:
        return "the same version, params and inputs ran before"
    if p.damage:
        return f"recomputed: its cached output is damaged ({p.damage})"
    if before is None:
        return f"no cached output: first run of {p.name}@{p.label} with these params and inputs"
    reasons: list[str] = []
    parts = p.key_parts
    if before.fingerprint != parts.fingerprint:
        old = before.version or before.fingerprint[:16]
        if p.version is None:
            reasons.append(f"changed code of {p.name} in the working tree (was {old})")
        else:
            newer = _version_number(p.label) > _version_number(old)
            summary = _summary(registry, p.name, before.fingerprint, parts.fingerprint) if registry else ""
            said = f"{'new ' if newer else ''}version {p.label} of {p.name} (was {old})"
            reasons.append(f"{said}: {summary}" if summary else said)
    old_params, new_params = before.params, parts.params
    for name in list(old_params) + [n for n in new_params if n not in old_params]:
        if name not in new_params:
            reasons.append(f"param {name} removed (was {old_params[name]!r})")
        elif name not in old_params:
            reasons.append(f"param {name} added ({new_params[name]!r})")
        elif old_params[name] != new_params[name] or type(old_params[name]) is not type(new_params[name]):
            reasons.append(f"param {name} {old_params[name]!r} -> {new_params[name]!r}")
    for kw, now in parts.inputs.items():
        was = before.inputs.get(kw)
        if now.stage is None:
            if was is None or was.hash != now.hash or was.data != now.data:
                reasons.append(f"{now.data} changed")
        elif was is None or was.key != now.key or was.stage != now.stage:
            reasons.append(f"input {kw}: output of {now.stage} changed")
    if before.entry != parts.entry:
        reasons.append(f"entry {before.entry} -> {parts.entry}")
    return "; ".join(reasons) or (
        "no cached output for this key: the last run with it did not save one (it failed or was interrupted), "
        "or the entry was removed"
    )


def last_key_parts(runs: RunStore, stages: Iterable[str], exclude: str | None = None) -> dict[str, KeyParts]:
    """The key parts of each of ``stages`` in the most recent run that planned it.

    Records are read newest first and only until every stage is found: usually one record,
    however many runs the project has. Damaged records are passed over.
    """
    wanted = set(stages)
    out: dict[str, KeyParts] = {}
    for run_id in reversed(runs.ids()):
        if not wanted - out.keys():
            break
        if run_id == exclude:
            continue
        try:
            record = runs.load(run_id)
        except errors.ModverError:
            continue  # a damaged record explains nothing; the runs listing reports it
        for name, stage in record.stages.items():
            if name in wanted and name not in out and stage.key_parts is not None:
                out[name] = stage.key_parts
    return out
