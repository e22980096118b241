"""Running a pipeline: plan, record, and execute each stage at its version, with caching.

:func:`execute` takes a run in three steps, each owned by a module of its own:

1. **plan** (:mod:`modver.engine.planner`): every stage's version and cache key, and why it runs or is
   served from the cache; then each stage that will run is turned into a :class:`StageTask`
   and its callable loaded and checked (:func:`modver.engine.executor.prepare`). All of it happens under
   the store's gc lock, shared (``modver gc`` waits), and before any record exists: a mistake
   found before the first stage starts is not a run;
2. **record** (:mod:`modver.engine.recorder`): the record is created with every stage pending, and
   written again as each stage starts and ends, and at the end of the run, whatever it is;
3. **execute** (:mod:`modver.engine.executor`): a cached stage is not run (its logged metrics are
   replayed); a cached output that a stage that runs needs is loaded now — and recomputed if it is
   damaged —; any other stage's task runs, in this process.

:func:`reproduce` runs a recorded run again: its exact versions (by fingerprint), params and data.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from modver import errors
from modver.engine.executor import Prepared, StageTask, TaskResult, prepare, run_task, task_for
from modver.engine.outs import check_outs, place_outs
from modver.engine.planner import Pipeline, StagePlan, check_force, last_key_parts, plan
from modver.engine.recorder import Event, Recorder, StageEvent, first_record, write_record
from modver.engine.registry import Registry
from modver.engine.scriptplan import outside_hash
from modver.manifest import Manifest, load_manifest_text
from modver.record import ErrorInfo, RunRecord, RunStatus, StageRecord, StageStatus
from modver.store.data import DataHasher
from modver.store.layout import Store
from modver.store.materialize import make_importable
from modver.store.retention import store_lock
from modver.store.runstore import RunStore, new_run_id, now_iso

__all__ = ["execute", "recorded_manifest", "reproduce"]


def execute(
    registry: Registry,
    store: Store,
    pipeline: Pipeline,
    *,
    force: Sequence[str] = (),
    on_event: Event | None = None,
    echo: TextIO | None = None,
    reproduces: str | None = None,
    place: bool = False,
    force_outs: bool = False,
) -> RunRecord:
    """Run the pipeline (see the module docstring); the finished run's record.

    ``place``: put script stages' outs in the working tree afterwards
    (:mod:`modver.engine.outs`; an out edited by hand is refused before anything runs, unless
    ``force_outs``).

    A stage that fails ends the run: the record says "failed", then the stage's error is raised
    (:class:`~modver.errors.StageFailedError` for an exception of its own code). Ctrl-C records
    "interrupted", then re-raises.
    """
    check_force(pipeline, force)  # a mistyped option is not a run: no record
    runs = store.run_store()
    run_id, started, t0 = new_run_id(), now_iso(), time.perf_counter()
    with store_lock(store, shared=True):  # `modver gc` keeps what the record will name
        previous = last_key_parts(runs, [s.name for s in pipeline.stages], exclude=run_id)
        plans = plan(registry, store, pipeline, force=force, register=True, previous=previous)
        if place:
            check_outs(store, _outs(store, plans), force=force_outs)
        planned = round(time.perf_counter() - t0, 6)  # materialize and import count per stage, below
        tasks = {p.name: task_for(store, p, run_id) for p in plans}
        prepared = {p.name: prepare(tasks[p.name], echo) for p in plans if not p.cached}
        record = first_record(registry, pipeline, plans, run_id, started, reproduces=reproduces)
        logs = {name: ready.printed for name, ready in prepared.items() if ready is not None}
        recorder = Recorder.start(runs, record, started=t0, logs=logs, history=registry.history)
    try:
        _run_stages(store, plans, tasks, prepared, recorder, on_event, echo)
    except KeyboardInterrupt:
        recorder.finish(RunStatus.INTERRUPTED, planned=planned, error=ErrorInfo("KeyboardInterrupt", "interrupted"))
        raise
    except BaseException as exc:
        if recorder.record.error is None:
            error = ErrorInfo(type(exc).__name__, str(exc), traceback=traceback.format_exc())
            recorder.finish(RunStatus.FAILED, planned=planned, error=error)
        else:
            recorder.finish(RunStatus.FAILED, planned=planned)
        raise
    record = recorder.finish(RunStatus.SUCCEEDED, planned=planned)
    if place:
        place_outs(store, record, force=force_outs)
    return record


def _outs(store: Store, plans: list[StagePlan]) -> list[tuple[str, str, str | None]]:
    """Each script stage's outs with the hash a cached stage will place (None: not known yet)."""
    cache = store.output_cache()
    found: list[tuple[str, str, str | None]] = []
    for p in plans:
        if p.files is None or not p.files.outs:
            continue
        entry = cache.get(p.key) if p.cached else None
        hashes = dict(entry.meta.get("outs") or {}) if entry is not None else {}
        found += [(p.name, out, hashes.get(out)) for out in p.files.outs]
    return found


def _run_stages(
    store: Store,
    plans: list[StagePlan],
    tasks: Mapping[str, StageTask],
    prepared: Mapping[str, Prepared | None],
    recorder: Recorder,
    on_event: Event | None,
    echo: TextIO | None,
) -> None:
    """Each stage in order: served from the cache, or its task run in this process."""
    cache = store.output_cache()
    outputs: dict[str, Any] = {}  # cache key -> an output a later stage takes
    consumers = {p.name: [q.name for q in plans if p.name in _upstream(q)] for p in plans}
    to_run = {p.name for p in plans if not p.cached}

    def emit(kind: str, p: StagePlan, stage: StageRecord) -> None:
        if on_event is not None:
            on_event(StageEvent(kind, p.name, p.label, stage.reason, stage.notes, stage.duration, stage.timings))

    for p in plans:
        needed = any(name in to_run for name in consumers[p.name])
        cached = p.cached
        if cached and needed:  # a stage that runs takes this output: load it now, recompute it if damaged
            try:
                make_importable(store)
                outputs[p.key] = cache.load(p.key)
            except errors.CacheError as exc:
                cache.remove(p.key)
                cached = False
                to_run.add(p.name)
                recorder.stage(p.name, reason=f"cached output unreadable, recomputed ({exc})")
        if cached:
            entry = cache.get(p.key)
            metrics = tuple(entry.metrics) if entry is not None else ()
            duration = entry.duration if entry is not None else None
            outs = dict(entry.meta.get("outs") or {}) if entry is not None else {}
            stage = recorder.stage(p.name, status=StageStatus.CACHED, duration=duration, events=metrics, outs=outs)
            emit("cached", p, stage)
            continue
        emit("start", p, recorder.stage(p.name, status=StageStatus.RUNNING))
        result = run_task(tasks[p.name], prepared=prepared.get(p.name), loaded=outputs, echo=echo, keep_output=needed)
        stage = recorder.stage(
            p.name, status=result.status, duration=result.duration, timings=dict(result.timings),
            error=result.error, events=result.metrics, outs=dict(result.outs),
        )  # fmt: skip
        if result.status is StageStatus.FAILED:
            emit("failed", p, stage)
            raise _failure(p, result, recorder)
        if needed:
            outputs[p.key] = result.output
        emit("done", p, stage)


def _upstream(p: StagePlan) -> set[str]:
    """The stages whose outputs ``p`` takes: its inputs, and the producers of a script's deps."""
    return {*p.spec.inputs.values(), *(p.files.upstream.values() if p.files is not None else ())}


def _failure(p: StagePlan, result: TaskResult, recorder: Recorder) -> errors.RunError:
    """The error a failed stage ends its run with; the record names it too."""
    assert result.error is not None
    recorder.amend(error=result.error)
    message = result.message or f"stage {p.name} failed"
    if result.error.traceback and message.startswith(f"stage {p.name} failed:"):
        return errors.StageFailedError(message, where=p.name, hint=result.hint)
    return errors.RunError(message, where=p.name, hint=result.hint)


def recorded_manifest(record: RunRecord, root: Path, runs: RunStore) -> Manifest:
    """The manifest a run recorded, validated again (as a manifest, and against the recorded
    versions): what ``reproduce`` runs. A damaged one is a :class:`~modver.errors.StoreError`."""
    import json

    try:
        manifest = load_manifest_text(
            json.dumps(dict(record.manifest_content)), Path(record.manifest_path or "manifest.yaml"), root
        )
    except errors.ModverError as exc:
        raise runs.damaged(record.run, f"its manifest does not load: {exc.message}") from exc
    fingerprints = record.fingerprints
    used = {name for name in fingerprints if name in manifest.stages}
    inputs = {src for name in used for src in manifest.stages[name].inputs.values() if src in manifest.stages}
    missing = sorted((set(fingerprints) - used) | (inputs - set(fingerprints)))
    if missing:
        raise runs.damaged(record.run, f"its manifest and its versions disagree on {', '.join(missing)}")
    return manifest


def reproduce(
    registry: Registry,
    store: Store,
    original: RunRecord,
    *,
    use_cache: bool = False,
    on_event: Event | None = None,
    echo: TextIO | None = None,
) -> RunRecord:
    """Run ``original`` again with exactly its versions, params and data; compare the metrics.

    Every stage is executed again unless ``use_cache``. The code comes from the store, so this
    works after it is gone from the working tree and every branch.
    """
    if not original.fingerprints:
        raise errors.RunError(
            f"run {original.run} recorded no stage versions (it failed before planning)",
            hint="reproduce a run that got past planning; see `modver runs`",
        )
    runs = store.run_store()
    recorded = recorded_manifest(original, registry.repo.root, runs)
    hasher = DataHasher(store)
    changed = []
    for name, info in original.data.items():
        try:
            path = info["path"]
            now = outside_hash(name, path) if path.startswith("/") else hasher.hash(name, path)
        except errors.ModverError:
            now = None
        if now != info["hash"]:
            changed.append(info["path"])
    if changed:
        raise errors.RunError(
            f"cannot reproduce run {original.run}: its data changed since: {', '.join(changed)}",
            hint="restore the data files the run used (their content hashes are in its record)",
        )
    fingerprints = original.fingerprints
    stages = tuple(
        replace(recorded.stages[name], version=None, params=dict(original.params.get(name, {})))
        for name in recorded.order()
        if name in fingerprints
    )
    data = {**dict(recorded.data), **{name: info["path"] for name, info in original.data.items()}}
    pipeline = Pipeline(
        stages,
        data,
        original.manifest_path,
        original.manifest_content,
        bool(recorded.options.get("docstrings", False)),
        exact=fingerprints,
    )
    force = () if use_cache else tuple(s.name for s in stages)
    record = execute(registry, store, pipeline, force=force, on_event=on_event, echo=echo, reproduces=original.run)
    old, new = original.metrics, record.metrics
    comparison = {
        name: {"original": old.get(name), "reproduced": new.get(name), "match": old.get(name) == new.get(name)}
        for name in [*old, *(n for n in new if n not in old)]
    }
    return write_record(runs, replace(record, comparison=comparison), registry.history)
