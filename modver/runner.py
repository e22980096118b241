"""The run engine: DAG order, each stage at its pinned version, cached outputs, run records.

A run goes through three steps:

1. :func:`plan` resolves every stage of a :class:`Pipeline` to a registered version (unpinned
   stages: the working tree, fingerprinted) and computes its cache key from the version's
   fingerprint, its entry, its params, its upstream stages' keys and its data files' content
   hashes. Nothing is executed; ``modver status`` uses it to say what is cached.
2. :func:`execute` walks the plan in order: a stage whose key is in the cache is served from it
   (its logged metrics replayed); any other stage's version is materialized from the store and
   called with its inputs and params, its stdout/stderr captured, its output saved.
3. The run record (:mod:`modver.records`) is written when the run starts, after every stage and
   at the end, whatever the end is: success, a stage that raised, or Ctrl-C.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import os
import platform
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from modver import _encoding, errors
from modver.data import DataHasher
from modver.models import StageVersion
from modver.names import did_you_mean

CACHE_KEY_SCHEME = "modver-output-key/1"

Event = Callable[[str, "StagePlan"], None]  # ("start" | "cached" | "done" | "failed", stage)


# --------------------------------------------------------------------------- the pipeline


@dataclass(frozen=True)
class PipelineStage:
    """What a run needs of one stage; built from a manifest or from a recorded run."""

    name: str
    entry: str
    ref: str | None  # a version reference ("v3", a tag, ...) or None for the working tree
    inputs: dict[str, str]  # kwarg -> "data.<name>" | "<stage>"
    params: dict[str, Any]
    deps: tuple[str, ...] = ()
    fingerprint: str | None = None  # exact version (reproduce): wins over ref


@dataclass(frozen=True)
class Pipeline:
    """Stages in execution order, named data files, and where the description came from."""

    stages: tuple[PipelineStage, ...]
    data: dict[str, str]
    manifest_path: str
    manifest_content: dict[str, Any]
    docstrings: bool = False


def parse_sets(sets: list[str], pipeline: Pipeline) -> Pipeline:
    """Apply ``--set stage.param=value`` overrides (values typed as YAML scalars)."""
    from modver.manifest import parse_scalar

    by_name = {s.name: s for s in pipeline.stages}
    params = {s.name: dict(s.params) for s in pipeline.stages}
    seen: set[str] = set()
    for item in sets:
        target, eq, text = item.partition("=")
        stage, dot, param = target.partition(".")
        shown = item if len(item) <= 80 else item[:77] + "..."
        if not eq or not dot or not stage or not param:
            raise errors.RunError(f"bad --set {shown!r}: expected stage.param=value", hint="e.g. --set model.C=0.5")
        if stage not in by_name:
            raise errors.UnknownStageError(
                f"--set {shown!r}: unknown stage {stage!r}; stages: {', '.join(by_name)}",
                hint=f"{did_you_mean(stage, by_name)}use a stage declared in the manifest",
            )
        if target in seen:
            raise errors.RunError(
                f"--set {target} is given twice", hint="give each param one value (a sweep of values is `modver sweep`)"
            )
        seen.add(target)
        source = by_name[stage].inputs.get(param)
        if source is not None:
            what = f"data file {source}" if source.startswith("data.") else f"the output of stage {source}"
            raise errors.RunError(
                f"--set {target}: {param!r} is an input of stage {stage} ({what}), not a param",
                hint="--set changes params; an input is wired under the stage's `inputs:` in the manifest",
            )
        params[stage][param] = parse_scalar(text, f"--set {target}")
    stages = tuple(
        PipelineStage(s.name, s.entry, s.ref, s.inputs, params[s.name], s.deps, s.fingerprint) for s in pipeline.stages
    )
    return Pipeline(stages, pipeline.data, pipeline.manifest_path, pipeline.manifest_content, pipeline.docstrings)


# --------------------------------------------------------------------------- planning


@dataclass
class StagePlan:
    """One stage of a planned run."""

    stage: PipelineStage
    version: StageVersion | None  # None: the working tree's code is not registered (yet)
    fingerprint: str
    key: str
    key_parts: dict[str, Any]
    cached: bool = False
    forced: bool = False
    reason: str = ""
    notes: list[str] = field(default_factory=list)  # worth saying whether or not it runs
    call: Callable[..., Any] | None = None  # the stage's callable, once loaded and checked
    status: str = "pending"  # pending | cached | running | succeeded | failed | skipped
    duration: float | None = None
    error: dict[str, Any] | None = None
    metrics: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase (see _timed)

    @property
    def name(self) -> str:
        return self.stage.name

    @property
    def label(self) -> str:
        return self.version.version if self.version else "working tree"

    @property
    def entry(self) -> str:
        """The entry the stage's code runs under: where its version stored it (code moved since
        keeps its fingerprint, and its version runs from the stored path), else the manifest's."""
        return self.version.entry if self.version else self.stage.entry


def cache_key(parts: Mapping[str, Any]) -> str:
    """The output key of a stage: a digest of the canonical encoding of its key parts."""
    return _encoding.digest_value([CACHE_KEY_SCHEME, dict(parts)])


def plan(
    project: Any,
    pipeline: Pipeline,
    *,
    force: tuple[str, ...] = (),
    register: bool = False,
    previous: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[StagePlan]:
    """Resolve versions and cache keys of every stage, in order; execute nothing.

    ``register``: snapshot unregistered working-tree code (a run does; ``status`` does not).
    ``previous``: the last recorded key parts per stage, to explain cache misses.
    """
    from modver.cache import OutputCache

    cache = OutputCache(project.store / "cache" / "outputs")
    hasher = DataHasher(project.root, project.store)
    tree = project.working_tree()
    check_force(pipeline, force)
    if register:
        _check_before_registering(project, pipeline, tree, hasher)
    plans: dict[str, StagePlan] = {}
    for st in pipeline.stages:
        version: StageVersion | None
        if st.fingerprint is not None:
            version = project.history.find(st.name, st.fingerprint) if st.name in project.history.stages() else None
            if version is None:
                raise errors.UnknownVersionError(
                    f"stage {st.name}: version {st.fingerprint} is not in the history",
                    hint="fetch the modver refs: git fetch origin 'refs/modver/*:refs/modver/*'",
                )
            fingerprint = version.fingerprint
        elif st.ref is not None:
            version = project.resolve(f"{st.name}@{st.ref}")
            fingerprint = version.fingerprint
        else:
            from modver.models import StageSpec

            spec = StageSpec(st.name, st.entry, deps=st.deps)
            closure = project.fingerprint(spec, tree, docstrings=pipeline.docstrings)
            fingerprint = closure.fingerprint
            version = project.history.find(st.name, fingerprint) if st.name in project.history.stages() else None
            if version is None and register:
                message = "working tree, snapshot for a run"
                version, _ = project.register_working(spec, closure, tree, message, pipeline.docstrings)
        inputs: dict[str, Any] = {}
        for kw, source in st.inputs.items():
            if source.startswith("data."):
                data_name = source[5:]
                rel = pipeline.data[data_name]
                inputs[kw] = {"data": rel, "hash": hasher.hash(data_name, rel)}
            else:
                inputs[kw] = {"stage": source, "key": plans[source].key}
        parts = {
            "entry": st.entry,
            "fingerprint": fingerprint,
            "params": dict(st.params),
            "inputs": inputs,
        }
        key = cache_key(parts)
        p = StagePlan(st, version, fingerprint, key, {**parts, "version": version.version if version else None})
        p.forced = st.name in force
        p.cached = (not p.forced) and cache.get(key) is not None
        p.reason = explain(p, (previous or {}).get(st.name))
        if version is not None and (st.fingerprint is not None or st.ref is not None):
            p.notes = _drifted_deps(project, version, tree)
        if version is not None and version.entry != st.entry:
            p.notes.append(
                f"{version.version} was stored as {version.entry}: it runs from there (the manifest says {st.entry})"
            )
        plans[st.name] = p
    hasher.save()
    return list(plans.values())


def _check_before_registering(project: Any, pipeline: Pipeline, tree: Any, hasher: Any) -> None:
    """Everything planning can fail on, checked before it registers anything: every pin
    resolves, every unpinned stage's code fingerprints, every data input hashes. A run that
    fails on a bad pin must not have snapshotted the other stages first."""
    from modver.models import StageSpec

    for st in pipeline.stages:
        if st.fingerprint is None and st.ref is not None:
            project.check_ref(f"{st.name}@{st.ref}")
        elif st.fingerprint is None:
            project.fingerprint(StageSpec(st.name, st.entry, deps=st.deps), tree, docstrings=pipeline.docstrings)
        for source in st.inputs.values():
            if source.startswith("data."):
                hasher.hash(source[5:], pipeline.data[source[5:]])


def _drifted_deps(project: Any, version: StageVersion, tree: Any) -> list[str]:
    """Notes on a pinned version's ``deps:`` files whose project copy is not the version's: code
    reads files from the project folder, so the version runs with today's copy."""
    stored = None
    notes = []
    for dep in project.history.closure(version).deps:
        stored = stored or project.history.source_tree(version)
        if stored.content_id(dep) != tree.content_id(dep):
            notes.append(f"deps file {dep} is not {version.version}'s copy: the stage reads the project's file")
    return notes


def _version_number(label: str) -> int:
    """``3`` for ``"v3"``; 0 for anything else (a fingerprint prefix)."""
    return int(label[1:]) if label[:1] == "v" and label[1:].isdigit() else 0


def explain(p: StagePlan, before: Mapping[str, Any] | None) -> str:
    """Why a stage runs, or why it is served from the cache, in one line."""
    if p.forced:
        return "forced with --force"
    if p.cached:
        return f"cached: {p.name}@{p.label} with the same params and inputs ran before"
    if not before:
        return f"no cached output: first run of {p.name}@{p.label} with these params and inputs"
    reasons: list[str] = []
    parts = p.key_parts
    if before.get("fingerprint") != parts["fingerprint"]:
        old = before.get("version") or str(before.get("fingerprint", ""))[:16]
        if p.version is None:
            reasons.append(f"changed code of {p.name} in the working tree (was {old})")
        else:
            newer = _version_number(p.label) > _version_number(old)
            reasons.append(f"{'new ' if newer else ''}version {p.label} of {p.name} (was {old})")
    old_params, new_params = before.get("params") or {}, parts["params"]
    for name in list(old_params) + [n for n in new_params if n not in old_params]:
        if name not in new_params:
            reasons.append(f"param {name} removed (was {old_params[name]!r})")
        elif name not in old_params:
            reasons.append(f"param {name} added ({new_params[name]!r})")
        elif old_params[name] != new_params[name] or type(old_params[name]) is not type(new_params[name]):
            reasons.append(f"param {name} {old_params[name]!r} -> {new_params[name]!r}")
    old_inputs = before.get("inputs") or {}
    for kw, now in parts["inputs"].items():
        was = old_inputs.get(kw)
        if "data" in now:
            if not was or was.get("hash") != now["hash"] or was.get("data") != now["data"]:
                reasons.append(f"{now['data']} changed")
        elif not was or was.get("key") != now["key"] or was.get("stage") != now["stage"]:
            reasons.append(f"input {kw}: output of {now['stage']} changed")
    if before.get("entry") not in (None, parts["entry"]):
        reasons.append(f"entry {before['entry']} -> {parts['entry']}")
    return (
        "; ".join(reasons)
        or "no cached output for this key: the last run with it did not save one (it failed or was interrupted), or the entry was removed"
    )


# --------------------------------------------------------------------------- executing


class _Tee(io.TextIOBase):
    """Write to a log file and, optionally, echo to a stream."""

    def __init__(self, log: TextIO, echo: TextIO | None):
        self.log, self.echo = log, echo

    def write(self, text: str) -> int:
        self.log.write(text)
        if self.echo is not None:
            self.echo.write(text)
        return len(text)

    def flush(self) -> None:
        self.log.flush()
        if self.echo is not None:
            self.echo.flush()

    def isatty(self) -> bool:
        return False


@contextlib.contextmanager
def _capture_into(out: TextIO, err: TextIO, echo: TextIO | None) -> Iterator[None]:
    """Tee stdout/stderr into ``out``/``err`` (and ``echo``) for the block."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Tee(out, echo), _Tee(err, echo)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


@contextlib.contextmanager
def _capture(out_path: Path, err_path: Path, echo: TextIO | None) -> Iterator[None]:
    """Tee stdout/stderr into a stage's log files (appended: its import, then its call)."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with (
        open(out_path, "a", encoding="utf-8") as out,
        open(err_path, "a", encoding="utf-8") as err,
        _capture_into(out, err, echo),
    ):
        yield


def _user_frame(tb: Any, versions_dir: Path) -> str | None:
    """``file:line`` of the innermost frame that is the user's (materialized) code."""
    where = None
    for frame in traceback.extract_tb(tb):
        if str(versions_dir) in frame.filename:
            rel = frame.filename.split(str(versions_dir), 1)[1].lstrip(os.sep)
            rel = rel.split(os.sep, 1)[1] if os.sep in rel else rel
            where = f"{rel}:{frame.lineno}"
    return where


@contextlib.contextmanager
def _timed(p: StagePlan, phase: str) -> Iterator[None]:
    """Add the block's wall time to ``p.timings[phase]`` (materialize, import, load, call, save)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        p.timings[phase] = round(p.timings.get(phase, 0.0) + time.perf_counter() - start, 6)


def _stage_callable(project: Any, p: StagePlan) -> Callable[..., Any]:
    from modver import materialize

    version = p.version
    assert version is not None
    store = project.store
    with _timed(p, "materialize"):
        materialize.materialize(lambda: project.history.files(version), version.fingerprint, store, entry=p.entry)
    with _timed(p, "import"):
        return materialize.load_entry(store, version.fingerprint, p.entry)


def _call_problem(p: StagePlan, fn: Callable[..., Any], names: Iterable[str]) -> errors.RunError | None:
    """Why ``fn`` cannot take keyword arguments ``names`` (the stage's inputs and params), or None."""
    names = list(names)
    if p.entry.partition(":")[2]:
        try:
            inspect.signature(fn).bind(**dict.fromkeys(names))
        except TypeError as exc:
            try:
                parameters = list(inspect.signature(fn).parameters)
            except (TypeError, ValueError):
                parameters = []
            typo = next(
                (did_you_mean(n, parameters) for n in names if n not in parameters and did_you_mean(n, parameters)), ""
            )
            return errors.RunError(
                f"stage {p.name}: {p.entry} cannot be called with {', '.join(names) or 'no arguments'}: {exc}",
                where=p.name,
                hint=f"{typo}its parameters are ({', '.join(parameters) or '?'}); fix `inputs:`/`params:` in the manifest or --set",
            )
        except ValueError:  # no signature to check (some builtins): the call itself will tell
            return None
    elif any(kw in p.stage.inputs and not p.stage.inputs[kw].startswith("data.") for kw in names):
        return errors.RunError(
            f"stage {p.name} is a whole module ({p.entry}): it takes params and data files, not stage outputs",
            where=p.name,
            hint="give it data inputs only, or make its entry a function",
        )
    return None


def _check_calls(project: Any, plans: list[StagePlan], echo: TextIO | None) -> dict[str, tuple[str, str]]:
    """Before anything runs: each stage to run accepts its inputs and params (a mistyped
    ``--set`` fails now, not after the upstream stages' minutes). A stage whose code does not
    even import is left alone here: it fails when it runs, with its traceback. Returns what
    importing each stage printed, ``{stage: (stdout, stderr)}``, to start its logs with."""
    printed: dict[str, tuple[str, str]] = {}
    for p in plans:
        if p.cached:
            continue
        out, err = io.StringIO(), io.StringIO()
        try:
            with _capture_into(out, err, echo):
                fn = _stage_callable(project, p)
        except Exception:
            continue
        finally:
            printed[p.name] = (out.getvalue(), err.getvalue())
        problem = _call_problem(p, fn, [*p.stage.inputs, *p.stage.params])
        if problem is not None:
            raise problem
        p.call = fn
    return printed


def _call_stage(project: Any, p: StagePlan, kwargs: dict[str, Any]) -> Any:
    fn = p.call  # loaded and checked before the run started
    if fn is None:
        fn = _stage_callable(project, p)  # a stage recomputed because its cached output was unreadable
        problem = _call_problem(p, fn, kwargs)
        if problem is not None:
            raise problem
    with _timed(p, "call"):
        return fn(**kwargs)


def python_info() -> dict[str, Any]:
    """Python and installed package versions, for the run record.

    Versions are read from the names of ``*.dist-info`` folders on ``sys.path`` (one directory
    listing per entry); only other installs (eggs) have their metadata parsed, which is slow.
    """
    packages: dict[str, str] = {}
    slow: list[Path] = []
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if name.endswith(".dist-info"):
                dist, _, version = name[: -len(".dist-info")].partition("-")
                if version:
                    packages.setdefault(dist.replace("_", "-").lower(), version)
            elif name.endswith(".egg-info"):
                slow.append(Path(entry or ".") / name)
    if slow:
        from importlib import metadata

        for path in slow:
            try:
                dist = metadata.PathDistribution(path)
                name, version = dist.metadata["Name"], dist.version
            except (OSError, ValueError, KeyError):
                continue  # an egg without readable metadata has no version to record
            if name and version:
                packages.setdefault(str(name).replace("_", "-").lower(), str(version))
    return {"python": platform.python_version(), "packages": dict(sorted(packages.items()))}


def check_force(pipeline: Pipeline, force: Iterable[str]) -> None:
    """Every ``--force`` name is a stage of the pipeline, or :class:`UnknownStageError`."""
    known = [s.name for s in pipeline.stages]
    for name in force:
        if name not in known:
            raise errors.UnknownStageError(
                f"--force {name!r}: unknown stage; stages: {', '.join(known)}",
                hint=f"{did_you_mean(name, known)}use a stage declared in the manifest",
            )


def execute(
    project: Any,
    pipeline: Pipeline,
    *,
    force: tuple[str, ...] = (),
    on_event: Event | None = None,
    echo: TextIO | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the pipeline; return the run record (also written to ``.modver/runs/<id>/run.json``).

    A stage that raises ends the run: the record says "failed" and :class:`StageFailedError` is
    raised after it is written. Ctrl-C writes an "interrupted" record, then re-raises.
    """
    from modver.cache import OutputCache
    from modver.metrics import collect_metrics, summarize
    from modver.records import LOG_STREAMS, RunStore, new_run_id, now_iso
    from modver.retention import store_lock

    check_force(pipeline, force)  # a mistyped option is not a run: no record
    store = project.store
    runs = RunStore(store / "runs")
    cache = OutputCache(store / "cache" / "outputs")
    run_id = new_run_id()
    started, t0 = now_iso(), time.perf_counter()
    planned = 0.0  # seconds spent planning, once done
    record: dict[str, Any] = {
        "run": run_id,
        "status": "running",
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": started,
        "finished": None,
        "duration": None,
        "manifest": {"path": pipeline.manifest_path, "content": pipeline.manifest_content},
        "versions": {},
        "fingerprints": {},
        "params": {s.name: dict(s.params) for s in pipeline.stages},
        "data": {},
        "cached": {},
        "stages": {},
        "metrics": {},
        "metric_series": {},
        "git": {"commit": None, "dirty": None},
        **python_info(),
        "error": None,
        **(extra or {}),
    }
    plans: list[StagePlan] = []
    events: list[dict[str, Any]] = []

    def save(status: str | None = None) -> None:
        if status is not None:
            record["status"] = status
            record["finished"] = now_iso()
            record["duration"] = round(time.perf_counter() - t0, 6)
            in_stages = round(sum(sum(p.timings.values()) for p in plans), 6)
            record["timings"] = {
                "plan": planned,
                "stages": in_stages,
                "other": round(max(record["duration"] - planned - in_stages, 0.0), 6),
            }
        last, series = summarize(events)
        record["metrics"], record["metric_series"] = last, series
        record["order"] = [p.name for p in plans]  # the order the stages ran in
        for p in plans:
            record["versions"][p.name] = p.version.version if p.version else None
            record["fingerprints"][p.name] = p.fingerprint
            record["cached"][p.name] = p.status == "cached"
            record["stages"][p.name] = {
                "status": p.status,
                "duration": p.duration,
                "cache_key": p.key,
                "key_parts": p.key_parts,
                "reason": p.reason,
                "notes": p.notes,
                "error": p.error,
                "entry": p.stage.entry,
                "timings": dict(p.timings),
            }
        runs.update(run_id, record, durable=status is not None)

    # Planning and checking come before the record: a usage mistake found before the first stage
    # starts (a bad pin, a param the stage does not take, a missing data file) is not a run.
    # `modver gc` waits while a run plans: once the record names every key and version the run
    # uses, gc keeps them (modver/retention.py)
    with store_lock(store, shared=True):
        previous = last_key_parts(runs, [s.name for s in pipeline.stages], exclude=run_id)
        plans = plan(project, pipeline, force=force, register=True, previous=previous)
        planned = round(time.perf_counter() - t0, 6)  # the check's materialize and import count per stage
        imported = _check_calls(project, plans, echo)
        record["git"] = {"commit": project._repo.head_commit(), "dirty": project._repo.is_dirty()}
        for p in plans:
            for kw, src in p.key_parts["inputs"].items():
                if "data" in src:
                    name = p.stage.inputs[kw][5:]
                    record["data"][name] = {"path": src["data"], "hash": src["hash"]}
        runs.create(run_id, record)
        for name, streams in imported.items():  # what importing the stages printed starts their logs
            for stream, text in zip(LOG_STREAMS, streams):
                runs.write_log(run_id, name, stream, text)
        save()
    try:
        from modver.materialize import make_importable

        outputs: dict[str, Any] = {}
        needed = {src for p in plans for src in p.stage.inputs.values() if not src.startswith("data.")}
        to_run = {p.name for p in plans if not p.cached}
        for p in plans:
            if (
                p.cached
                and p.name in needed
                and any(q.name in to_run for q in plans if p.name in q.stage.inputs.values())
            ):
                try:  # a stage that runs needs this output: load it now, and recompute it if it is unreadable
                    make_importable(store)
                    with _timed(p, "load"):
                        outputs[p.name] = cache.load(p.key)
                except errors.CacheError as exc:
                    cache.remove(p.key)
                    p.cached, p.reason = False, f"cached output unreadable, recomputed ({exc})"
                    to_run.add(p.name)
            if p.cached:
                entry = cache.get(p.key)
                assert entry is not None
                p.status, p.duration, p.metrics = "cached", entry.duration, list(entry.metrics)
                events.extend(p.metrics)
                if on_event:
                    on_event("cached", p)
                save()
                continue
            p.status = "running"
            save()  # the record shows which stage is running, should the process die in it
            if on_event:
                on_event("start", p)
            kwargs: dict[str, Any] = {}
            for kw, src in p.stage.inputs.items():
                if src.startswith("data."):
                    kwargs[kw] = str(project.root / pipeline.data[src[5:]])
                else:
                    if src not in outputs:
                        make_importable(store)
                        with _timed(p, "load"):
                            outputs[src] = cache.load(next(q.key for q in plans if q.name == src))
                    kwargs[kw] = outputs[src]
            kwargs.update(p.stage.params)
            out_log, err_log = runs.log_path(run_id, p.name, "stdout"), runs.log_path(run_id, p.name, "stderr")
            t = time.perf_counter()
            try:
                with collect_metrics(p.name) as collector, _capture(out_log, err_log, echo):
                    try:
                        result = _call_stage(project, p, kwargs)
                    finally:
                        p.metrics = list(collector.events)
            except errors.ModverError as exc:  # a bad param, a whole-module stage that exited 1, ...
                p.duration = round(time.perf_counter() - t, 6)
                p.status = "failed"
                p.error = {
                    "type": type(exc).__name__,
                    "message": str(exc),
                    "where": exc.where,
                    "traceback": traceback.format_exc(),
                }
                record["error"] = {"stage": p.name, **p.error}
                events.extend(p.metrics)
                raise
            except Exception as exc:
                p.duration = round(time.perf_counter() - t, 6)
                p.status = "failed"
                where = _user_frame(exc.__traceback__, store / "versions")
                tb = traceback.format_exc()
                p.error = {"type": type(exc).__name__, "message": str(exc), "where": where, "traceback": tb}
                record["error"] = {"stage": p.name, **p.error}
                events.extend(p.metrics)
                if on_event:
                    on_event("failed", p)
                raise errors.StageFailedError(
                    f"stage {p.name} failed: {type(exc).__name__}: {exc}" + (f" (at {where})" if where else ""),
                    where=p.name,
                    hint=f"full traceback: `modver show {run_id}` or rerun with --debug",
                ) from exc
            p.duration = round(time.perf_counter() - t, 6)
            events.extend(p.metrics)
            if p.name in needed and any(q.name in to_run for q in plans if p.name in q.stage.inputs.values()):
                outputs[p.name] = result
            try:
                with _timed(p, "save"):
                    cache.put(
                        p.key,
                        result,
                        {
                            "stage": p.name,
                            "version": p.label,
                            "duration": p.duration,
                            "metrics": p.metrics,
                            "stdout": out_log,
                            "stderr": err_log,
                            "run": run_id,
                            "key_parts": p.key_parts,
                        },
                    )
            except errors.CacheError as exc:
                p.status = "failed"
                p.error = {"type": type(exc).__name__, "message": str(exc), "where": None, "traceback": None}
                record["error"] = {"stage": p.name, **p.error}
                raise errors.RunError(
                    f"stage {p.name}: its output cannot be saved: {exc}",
                    where=p.name,
                    hint="return picklable objects (numpy arrays, DataFrames, dicts, fitted models)",
                ) from exc
            p.status = "succeeded"
            if on_event:
                on_event("done", p)
            save()
    except KeyboardInterrupt:
        for p in plans:
            if p.status == "running":
                p.status = "interrupted"
        record["error"] = record["error"] or {
            "stage": None,
            "type": "KeyboardInterrupt",
            "message": "interrupted",
            "traceback": None,
        }
        save("interrupted")
        raise
    except BaseException as exc:
        for p in plans:
            if p.status == "pending":
                p.status = "skipped"
        if record["error"] is None:
            record["error"] = {
                "stage": None,
                "type": type(exc).__name__,
                "message": str(exc),
                "traceback": traceback.format_exc(),
            }
        save("failed")
        raise
    save("succeeded")
    return record


def last_key_parts(runs: Any, stages: Iterable[str], exclude: str | None = None) -> dict[str, dict[str, Any]]:
    """The key parts of each of ``stages`` in the most recent run that planned it.

    Records are read newest first and only until every stage is found: usually one record,
    however many runs the project has.
    """
    wanted = set(stages)
    out: dict[str, dict[str, Any]] = {}
    for run_id in reversed(runs.ids()):
        if not wanted - out.keys():
            break
        if run_id == exclude:
            continue
        try:
            record = runs.load(run_id)
        except errors.ModverError:
            continue  # a damaged record explains nothing; the runs listing reports it
        for name, info in (record.get("stages") or {}).items():
            if name in wanted and name not in out and isinstance(info, dict) and info.get("key_parts"):
                out[name] = info["key_parts"]
    return out


def mark_dead(record: dict[str, Any]) -> dict[str, Any]:
    """A "running" record whose process is gone (killed, machine crash) reads as "died".

    Only checked for runs started on this host; the record on disk is left as it is.
    """
    if record.get("status") != "running" or record.get("host") != socket.gethostname():
        return record
    pid = record.get("pid")
    if not isinstance(pid, int):
        return record
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return {**record, "status": "died"}
    except PermissionError:
        return record  # it exists, owned by another user
    return record
