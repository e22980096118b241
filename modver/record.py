"""Run records as typed, frozen models, and their one JSON schema.

A run's record is ``.modver/runs/<run-id>/run.json`` (:mod:`modver.store.runstore` keeps the files).
This module is the schema, written once: the models below, :func:`RunRecord.to_json` and
:func:`RunRecord.from_json`. ``run.json`` (sorted keys, indent 2)::

    format         int    FORMAT (absent in records of modver 0.1, which read the same)
    run            str    the run id (modver.store.runstore.new_run_id)
    status         str    RunStatus: running | succeeded | failed | interrupted | pruned (a search's trial)
    host, pid      str, int       where the run's process runs (a dead one reads as "died")
    user           str | null     who started it (the login name; shown in `modver runs` after a pull)
    started        str    ISO 8601 UTC, microseconds
    finished       str | null
    duration       float | null   seconds
    manifest       {"path": str, "content": {data, stages, fingerprint}}   the manifest as run
    order          [stage]        the order the stages ran in
    versions       {stage: "vN" | null}        derived from stages, for readers of the JSON
    fingerprints   {stage: "mv1:<hex>"}        derived from stages
    cached         {stage: bool}               derived from stages
    params         {stage: {name: value}}
    data           {name: {"path": str, "hash": str}}
    stages         {stage: StageRecord}: status, duration, cache_key, key_parts, reason, notes,
                   error, entry, timings {materialize, import, load, call, save}
    metrics        {name: last value}
    metric_series  {name: [{"step": int | null, "value": number, "stage": str}]}
    git            {"commit": str | null, "dirty": bool | null}
    python         str; packages {name: version}
    error          ErrorInfo {stage, type, message, where, traceback} | null
    timings        {plan, stages, other} | null   seconds: planning, inside stages, the rest
    reproduces     str    (a reproduce run) the run it reproduces
    comparison     {metric: {original, reproduced, match}}   (a reproduce run)
    sweep          str    (a point of a sweep) the sweep's id: .modver/sweeps/<id>.json
    pins           {stage: REF}   (a run with ``--pin STAGE@REF``) the pins of this run alone, as given
    blame          str    (a run a blame made) the blame's id
    bisect         str    (a probe of a bisect) the bisect's id
    trial          int    (a trial of a search: sweep --optimize) its study's trial number

:func:`check_shape` checks a JSON value against :data:`SHAPE` (the type of every field, nested
ones too; a field may be absent and unknown fields are kept in ``extra``), so a record that is
valid JSON with wrong types is a :class:`~modver.errors.StoreError` naming the field, never an
error deep inside a command. A record of a newer ``format`` is refused with a clear error.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = [
    "FORMAT",
    "ErrorInfo",
    "InputKey",
    "KeyParts",
    "RunRecord",
    "RunStatus",
    "StageRecord",
    "StageStatus",
    "check_shape",
]

FORMAT = 1


class RunStatus(enum.StrEnum):
    """A run's status. ``died`` and ``corrupt`` are never written: ``died`` is a ``running``
    record whose process is gone, ``corrupt`` a record that cannot be read."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    PRUNED = "pruned"  # a search's trial its pruner stopped early (sweep --optimize --prune)
    DIED = "died"
    CORRUPT = "corrupt"


class StageStatus(enum.StrEnum):
    """A stage's status within a run."""

    PENDING = "pending"
    CACHED = "cached"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    INTERRUPTED = "interrupted"

    @property
    def has_output(self) -> bool:
        """Whether a stage with this status has an output in the cache."""
        return self in (StageStatus.SUCCEEDED, StageStatus.CACHED)


@dataclass(frozen=True)
class ErrorInfo:
    """What went wrong: the exception's type and message, where, and its traceback."""

    type: str
    message: str
    stage: str | None = None
    where: str | None = None
    traceback: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "type": self.type,
            "message": self.message,
            "where": self.where,
            "traceback": self.traceback,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ErrorInfo:
        return cls(data["type"], data["message"], data.get("stage"), data.get("where"), data.get("traceback"))


@dataclass(frozen=True)
class InputKey:
    """One input of a stage in its cache key: a data file's hash, or an upstream stage's key."""

    data: str | None = None  # the data path
    hash: str | None = None
    stage: str | None = None  # the upstream stage
    key: str | None = None

    def to_json(self) -> dict[str, Any]:
        if self.stage is not None:
            return {"stage": self.stage, "key": self.key}
        return {"data": self.data, "hash": self.hash}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> InputKey:
        return cls(data.get("data"), data.get("hash"), data.get("stage"), data.get("key"))


@dataclass(frozen=True)
class KeyParts:
    """What a stage's cache key is made of (``version`` is shown, not keyed)."""

    entry: str
    fingerprint: str
    params: Mapping[str, Any]
    inputs: Mapping[str, InputKey]
    version: str | None = None
    # a script stage's command line and files ({"args": [...], "outs": [...], ...}); keyed only
    # when present, so function stages keep their keys
    script: Mapping[str, Any] = field(default_factory=dict)

    def keyed(self) -> dict[str, Any]:
        """The parts the key digests: entry, fingerprint, params and inputs (modver.engine.planner.cache_key)."""
        keyed = {
            "entry": self.entry,
            "fingerprint": self.fingerprint,
            "params": dict(self.params),
            "inputs": {kw: i.to_json() for kw, i in self.inputs.items()},
        }
        if self.script:
            keyed["script"] = dict(self.script)
        return keyed

    def to_json(self) -> dict[str, Any]:
        return {**self.keyed(), "version": self.version}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> KeyParts:
        inputs = {kw: InputKey.from_json(i) for kw, i in (data.get("inputs") or {}).items()}
        return cls(
            data["entry"], data["fingerprint"], dict(data.get("params") or {}), inputs, data.get("version"),
            dict(data.get("script") or {}),
        )  # fmt: skip


@dataclass(frozen=True)
class StageRecord:
    """One stage of a run: its version, key, status, time and why it ran (or not)."""

    status: StageStatus
    cache_key: str
    fingerprint: str | None = None
    version: str | None = None  # "v3", or None for code that was not registered
    key_parts: KeyParts | None = None
    entry: str | None = None
    duration: float | None = None  # seconds its call took
    reason: str = ""
    notes: tuple[str, ...] = ()
    error: ErrorInfo | None = None
    timings: Mapping[str, float] = field(default_factory=dict)  # materialize, import, load, call, save
    outs: Mapping[str, str] = field(default_factory=dict)  # a script stage's out path -> its content hash

    def to_json(self) -> dict[str, Any]:
        return {
            **({"outs": dict(self.outs)} if self.outs else {}),
            "status": str(self.status),
            "duration": self.duration,
            "cache_key": self.cache_key,
            "key_parts": None if self.key_parts is None else self.key_parts.to_json(),
            "reason": self.reason,
            "notes": list(self.notes),
            "error": None if self.error is None else self.error.to_json(),
            "entry": self.entry,
            "timings": dict(self.timings),
        }


@dataclass(frozen=True)
class RunRecord:
    """One run: see the module docstring for every field and its JSON."""

    run: str
    status: RunStatus
    started: str | None
    finished: str | None = None
    duration: float | None = None
    host: str | None = None
    pid: int | None = None
    user: str | None = None
    manifest_path: str = ""
    manifest_content: Mapping[str, Any] = field(default_factory=dict)
    stages: Mapping[str, StageRecord] = field(default_factory=dict)  # in the order they ran
    params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    data: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # name -> {path, hash}
    metrics: Mapping[str, float] = field(default_factory=dict)
    metric_series: Mapping[str, list[dict[str, Any]]] = field(default_factory=dict)
    git_commit: str | None = None
    git_dirty: bool | None = None
    python: str | None = None
    packages: Mapping[str, str] = field(default_factory=dict)
    error: ErrorInfo | None = None
    timings: Mapping[str, float] | None = None
    reproduces: str | None = None
    comparison: Mapping[str, Mapping[str, Any]] | None = None
    sweep: str | None = None  # the sweep this run is a point of
    pins: Mapping[str, str] | None = None  # --pin STAGE@REF of this run
    blame: str | None = None  # the blame that made this run
    bisect: str | None = None  # the bisect this run is a probe of
    trial: int | None = None  # the search's trial this run is
    format: int = FORMAT
    extra: Mapping[str, Any] = field(default_factory=dict)  # fields of a newer modver, kept as they are

    # -- derived --------------------------------------------------------------------------------

    @property
    def versions(self) -> dict[str, str | None]:
        return {name: s.version for name, s in self.stages.items()}

    @property
    def fingerprints(self) -> dict[str, str]:
        return {name: s.fingerprint for name, s in self.stages.items() if s.fingerprint is not None}

    @property
    def cached(self) -> dict[str, bool]:
        return {name: s.status is StageStatus.CACHED for name, s in self.stages.items()}

    def with_stage(self, name: str, stage: StageRecord) -> RunRecord:
        """This record with ``stage`` as the record of stage ``name`` (order kept)."""
        return replace(self, stages={**self.stages, name: stage})

    def with_version_labels(self, label: Callable[[str, str], str | None]) -> RunRecord:
        """This record with each stage's version as ``label(stage, fingerprint)`` names it now
        (None: kept as it is): a version's fingerprint is its identity, its number is derived
        (a pull may renumber a version made here). The stage's key parts follow, and so does
        the recorded manifest's pin where it named the old number. Unchanged: this record."""
        changed = self
        content: dict[str, Any] | None = None
        for name, info in self.stages.items():
            found = label(name, info.fingerprint) if info.fingerprint else None
            if found is None or found == info.version:
                continue
            parts = info.key_parts and replace(info.key_parts, version=found)
            changed = changed.with_stage(name, replace(info, version=found, key_parts=parts))
            if changed.pins and info.version is not None and changed.pins.get(name) == info.version:
                changed = replace(changed, pins={**changed.pins, name: found})  # `--pin stage@vN` follows
            if content is None:
                content = json.loads(json.dumps(dict(self.manifest_content)))
            pinned = content.get("stages", {}).get(name)
            if isinstance(pinned, dict) and info.version is not None and pinned.get("version") == info.version:
                pinned["version"] = found
        return changed if content is None else replace(changed, manifest_content=content)

    @classmethod
    def corrupt(cls, run: str, started: str | None, error: ErrorInfo) -> RunRecord:
        """What a run whose record cannot be read is listed as."""
        return cls(run, RunStatus.CORRUPT, started, error=error)

    # -- JSON -----------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The ``run.json`` of the record (the shape ``run --json`` and ``runs --json`` print)."""
        if self.status is RunStatus.CORRUPT:
            return {"run": self.run, "status": str(self.status), "started": self.started,
                    "error": None if self.error is None else self.error.to_json()}  # fmt: skip
        out: dict[str, Any] = {
            **self.extra,
            "format": self.format,
            "run": self.run,
            "status": str(self.status),
            "host": self.host,
            "pid": self.pid,
            "started": self.started,
            "finished": self.finished,
            "duration": self.duration,
            "manifest": {"path": self.manifest_path, "content": dict(self.manifest_content)},
            "order": list(self.stages),
            "versions": self.versions,
            "fingerprints": self.fingerprints,
            "cached": self.cached,
            "params": {name: dict(p) for name, p in self.params.items()},
            "data": {name: dict(d) for name, d in self.data.items()},
            "stages": {name: s.to_json() for name, s in self.stages.items()},
            "metrics": dict(self.metrics),
            "metric_series": {name: list(points) for name, points in self.metric_series.items()},
            "git": {"commit": self.git_commit, "dirty": self.git_dirty},
            "python": self.python,
            "packages": dict(self.packages),
            "error": None if self.error is None else self.error.to_json(),
            "timings": None if self.timings is None else dict(self.timings),
        }
        if self.user is not None:
            out["user"] = self.user
        if self.reproduces is not None:
            out["reproduces"] = self.reproduces
        if self.comparison is not None:
            out["comparison"] = {name: dict(c) for name, c in self.comparison.items()}
        if self.sweep is not None:
            out["sweep"] = self.sweep
        if self.pins is not None:
            out["pins"] = dict(self.pins)
        for name in ("blame", "bisect"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        if self.trial is not None:
            out["trial"] = self.trial
        return out

    @classmethod
    def from_json(cls, data: Any) -> RunRecord:
        """The record in ``data`` (parsed ``run.json``). A value of the wrong shape raises
        ValueError saying which field is wrong, and a record of a newer format says so."""
        fmt = data.get("format", 0) if isinstance(data, dict) else 0
        if isinstance(fmt, int) and fmt > FORMAT:
            raise ValueError(f"it is of record format {fmt}, newer than this modver reads ({FORMAT}): upgrade modver")
        problem = check_shape(data)
        if problem is not None:
            raise ValueError(problem)
        versions, fingerprints = data.get("versions") or {}, data.get("fingerprints") or {}
        stages_json = data.get("stages") or {}
        order = [n for n in data.get("order") or [] if n in stages_json]
        order += [n for n in stages_json if n not in order]
        stages = {
            name: _stage_from_json(stages_json[name], versions.get(name), fingerprints.get(name)) for name in order
        }
        manifest, git = data.get("manifest") or {}, data.get("git") or {}
        return cls(
            run=data["run"],
            status=RunStatus(data["status"]),
            started=data.get("started"),
            finished=data.get("finished"),
            duration=data.get("duration"),
            host=data.get("host"),
            pid=data.get("pid"),
            user=data.get("user"),
            manifest_path=manifest.get("path", ""),
            manifest_content=dict(manifest.get("content") or {}),
            stages=stages,
            params={name: dict(p) for name, p in (data.get("params") or {}).items()},
            data={name: dict(d) for name, d in (data.get("data") or {}).items()},
            metrics=dict(data.get("metrics") or {}),
            metric_series={name: list(p) for name, p in (data.get("metric_series") or {}).items()},
            git_commit=git.get("commit"),
            git_dirty=git.get("dirty"),
            python=data.get("python"),
            packages=dict(data.get("packages") or {}),
            error=None if data.get("error") is None else ErrorInfo.from_json(data["error"]),
            timings=data.get("timings"),
            reproduces=data.get("reproduces"),
            comparison=data.get("comparison"),
            sweep=data.get("sweep"),
            pins=data.get("pins"),
            blame=data.get("blame"),
            bisect=data.get("bisect"),
            trial=data.get("trial"),
            format=FORMAT,
            extra={k: v for k, v in data.items() if k not in _KNOWN},
        )


def _stage_from_json(data: Mapping[str, Any], version: str | None, fingerprint: str | None) -> StageRecord:
    parts = data.get("key_parts")
    return StageRecord(
        status=StageStatus(data.get("status", "pending")),
        cache_key=data["cache_key"],
        fingerprint=fingerprint if fingerprint is not None else (parts or {}).get("fingerprint"),
        version=version,
        key_parts=None if not parts else KeyParts.from_json(parts),
        entry=data.get("entry"),
        duration=data.get("duration"),
        reason=data.get("reason") or "",
        notes=tuple(data.get("notes") or ()),
        error=None if data.get("error") is None else ErrorInfo.from_json(data["error"]),
        timings=dict(data.get("timings") or {}),
        outs=dict(data.get("outs") or {}),
    )


# -- the shape of a record ---------------------------------------------------------------------
#
# A spec is a type (or a tuple of types), Opt(spec) (that or null), MapOf(spec) (a JSON object
# with any names), ListOf(spec), OneOf(values) (one of these strings), or Fields(...) (a JSON
# object with known fields, each of which may be absent unless required; unknown fields are
# allowed, so older modvers read newer records).


@dataclass(frozen=True)
class Opt:
    """``spec`` or null."""

    spec: Any


@dataclass(frozen=True)
class MapOf:
    """A JSON object whose values all match ``spec``."""

    spec: Any


@dataclass(frozen=True)
class ListOf:
    """A JSON array whose items all match ``spec``."""

    spec: Any


@dataclass(frozen=True)
class OneOf:
    """One of ``values`` (strings)."""

    values: tuple[str, ...]


@dataclass(frozen=True)
class Fields:
    """A JSON object with known fields (name -> spec); ``required`` ones must be present."""

    fields: Mapping[str, Any]
    required: tuple[str, ...] = ()


ANY = object  # any JSON value
NUMBER = (int, float)
ERROR = Fields(
    {"stage": Opt(str), "type": str, "message": str, "where": Opt(str), "traceback": Opt(str)},
    required=("type", "message"),
)
KEY_PARTS = Fields(
    {
        "entry": str,
        "fingerprint": str,
        "version": Opt(str),
        "params": MapOf(ANY),
        "inputs": MapOf(Fields({"data": str, "hash": str, "stage": str, "key": str})),
    },
    required=("entry", "fingerprint"),
)
STAGE = Fields(
    {
        "status": OneOf(tuple(StageStatus)),
        "duration": Opt(NUMBER),
        "cache_key": str,
        "key_parts": Opt(KEY_PARTS),
        "reason": str,
        "notes": ListOf(str),
        "error": Opt(ERROR),
        "entry": Opt(str),
        "timings": MapOf(NUMBER),
        "outs": MapOf(str),
    },
    required=("cache_key",),
)
MANIFEST_STAGE = Fields(
    {
        "entry": str,
        "version": Opt(str),
        "inputs": MapOf(str),
        "params": ANY,
        "deps": ListOf(ANY),  # outside deps are {path, outside}
    },  # params: list-form too
    required=("entry",),
)
SHAPE = Fields(
    {
        "format": int,
        "run": str,
        "status": OneOf(("running", "succeeded", "failed", "interrupted", "pruned")),
        "host": Opt(str),
        "pid": Opt(int),
        "user": Opt(str),
        "started": Opt(str),
        "finished": Opt(str),
        "duration": Opt(NUMBER),
        "manifest": Fields(
            {
                "path": str,
                "content": Fields({"data": MapOf(str), "stages": MapOf(MANIFEST_STAGE), "fingerprint": MapOf(ANY)}),
            }
        ),
        "versions": MapOf(Opt(str)),
        "fingerprints": MapOf(str),
        "params": MapOf(MapOf(ANY)),
        "data": MapOf(Fields({"path": str, "hash": str}, required=("path", "hash"))),
        "cached": MapOf(bool),
        "order": ListOf(str),
        "stages": MapOf(STAGE),
        "metrics": MapOf(NUMBER),
        "metric_series": MapOf(ListOf(Fields({"step": Opt(int), "value": NUMBER, "stage": Opt(str)}))),
        "git": Fields({"commit": Opt(str), "dirty": Opt(bool)}),
        "python": Opt(str),
        "packages": MapOf(str),
        "error": Opt(ERROR),
        "timings": Opt(MapOf(NUMBER)),
        "reproduces": str,
        "comparison": MapOf(Fields({"original": ANY, "reproduced": ANY, "match": bool})),
        "sweep": str,
        "pins": MapOf(str),
        "blame": str,
        "bisect": str,
        "trial": int,
    },
    required=("run", "status"),
)
_KNOWN = frozenset(SHAPE.fields)


def check_shape(value: Any, spec: Any = SHAPE) -> str | None:
    """What is wrong with the shape of ``value`` (a run record by default), or None if nothing.

    The answer names the field, e.g. ``"stages.train.duration should be a number or null,
    found a string '1s'"``.
    """
    found = _mismatch(value, spec)
    if found is None:
        return None
    path, spec, value = found
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in reversed(path)).lstrip(".")
    if spec is _MISSING:
        return f"{where} is missing"
    return f"{where or 'the record'} should be {_kind(spec)}, found {_found(value)}"


_MISSING = object()


def _mismatch(value: Any, spec: Any) -> tuple[list[str | int], Any, Any] | None:
    """None, or the first place where ``value`` does not match ``spec``: (its path, innermost
    first; the spec; the value there). Paths are only built for a mismatch: records are big."""
    if value is None and isinstance(spec, Opt):
        return None
    inner = spec.spec if isinstance(spec, Opt) else spec
    items: Iterator[tuple[str | int, Any, Any]]
    if isinstance(inner, OneOf):
        return None if isinstance(value, str) and value in inner.values else ([], spec, value)
    if isinstance(inner, (Fields, MapOf)):
        if not isinstance(value, dict):
            return [], spec, value
        if isinstance(inner, Fields):
            for name in inner.required:
                if name not in value:
                    return [name], _MISSING, None
            items = ((name, value[name], field) for name, field in inner.fields.items() if name in value)
        elif inner.spec is ANY:
            return None
        else:
            items = ((name, item, inner.spec) for name, item in value.items())
    elif isinstance(inner, ListOf):
        if not isinstance(value, list):
            return [], spec, value
        flat = _flat_fields(inner.spec)
        if flat is not None and _flat_match(value, flat):
            return None  # long lists of points (metric series): checked in one pass, paths only on a mismatch
        items = ((index, item, inner.spec) for index, item in enumerate(value))
    elif inner is int:  # a bool is an int to Python, not to JSON
        return None if isinstance(value, int) and not isinstance(value, bool) else ([], spec, value)
    else:
        return None if inner is ANY or isinstance(value, inner) else ([], spec, value)
    for key, item, field_spec in items:
        found = _mismatch(item, field_spec)
        if found is not None:
            found[0].append(key)
            return found
    return None


_FLAT: dict[int, tuple[tuple[str, tuple[type, ...], bool], ...] | None] = {}


def _flat_fields(spec: Any) -> tuple[tuple[str, tuple[type, ...], bool], ...] | None:
    """For ``Fields`` of plain types (or null), without required fields: (name, types, nullable)
    per field, so :func:`_flat_match` checks a list of them in one pass; None for any other spec."""
    if id(spec) not in _FLAT:
        plain: list[tuple[str, tuple[type, ...], bool]] | None = None
        if isinstance(spec, Fields) and not spec.required:
            plain = []
            for name, field_spec in spec.fields.items():
                nullable, inner = (True, field_spec.spec) if isinstance(field_spec, Opt) else (False, field_spec)
                types = inner if isinstance(inner, tuple) else (inner,)
                if not all(isinstance(t, type) and t is not object for t in types):
                    plain = None
                    break
                plain.append((name, types, nullable))
        _FLAT[id(spec)] = None if plain is None else tuple(plain)
    return _FLAT[id(spec)]


def _flat_match(items: list[Any], flat: tuple[tuple[str, tuple[type, ...], bool], ...]) -> bool:
    """Whether every one of ``items`` matches the flat Fields spec, as :func:`_mismatch` would
    say (a bool is no ``int``): the types found per field are collected in one pass over the
    list, then checked once each."""
    if any(type(item) is not dict for item in items):
        return False
    for name, types, nullable in flat:
        for found in {type(item.get(name, _MISSING)) for item in items}:
            if found is type(_MISSING) or (found is type(None) and nullable):
                continue
            if not issubclass(found, types) or (types == (int,) and found is bool):
                return False
    return True


_KINDS = {str: "a string", int: "an integer", float: "a number", bool: "true or false", NUMBER: "a number"}


def _kind(spec: Any) -> str:
    if isinstance(spec, Opt):
        return f"{_kind(spec.spec)} or null"
    if isinstance(spec, (MapOf, Fields)):
        return "an object"
    if isinstance(spec, ListOf):
        return "a list"
    if isinstance(spec, OneOf):
        return "one of " + ", ".join(spec.values)
    return _KINDS.get(spec, getattr(spec, "__name__", str(spec)))


def _found(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    shown = repr(value)
    return f"{_KINDS.get(type(value), type(value).__name__)} {shown if len(shown) <= 40 else shown[:37] + '...'}"
