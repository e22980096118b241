"""Running a sweep's graph of stage tasks on Dask and recording every point: the driver.

:func:`sweep` and :func:`run_parallel` (``modver run --jobs N``: one point) take three steps:

1. **plan** (:mod:`modver.sweep.graph`), under the store's shared gc lock like a run: every point, its
   tasks keyed by cache key, once each; each distinct callable is loaded and checked against its
   arguments (:func:`modver.engine.executor.prepare`) before any record exists;
2. **record**: one run record per point (``sweep: <id>``), every stage pending, through
   :class:`~modver.engine.recorder.Recorder`; stages found in the cache are marked cached at once, and a
   point whose stages are all cached is finished; then the sweep's record
   (:mod:`modver.store.sweepstore`), with each point's run id;
3. **execute**: :func:`modver.sweep.cluster.run_graph` runs the tasks on Dask workers as their inputs
   become ready; only this process records (workers compute), so nothing is recorded twice. A
   task's start marks its owner point's stage running; its end marks the owner's stage and every
   point sharing the task (cached: "shared with point K") and finishes each point whose stages
   are all settled. A failing task fails the points that need it and no other, unless
   ``fail_fast``: then the points left are recorded interrupted, as they are on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from modver import errors
from modver.engine.executor import StageTask, prepare
from modver.engine.planner import Pipeline, last_key_parts
from modver.engine.recorder import Event, Recorder, StageEvent, first_record
from modver.engine.registry import Registry
from modver.models import SweepSpec
from modver.record import ErrorInfo, RunRecord, RunStatus, StageRecord, StageStatus
from modver.store.layout import Store
from modver.store.retention import store_lock
from modver.store.runstore import RunStore, new_run_id, now_iso
from modver.store.sweepstore import Best, SweepPoint, SweepRecord, SweepStore
from modver.sweep.graph import Graph, build_tasks, plan_graph

if TYPE_CHECKING:  # pragma: no cover
    from modver.sweep.cluster import ExecutorSpec, Session, TaskEvent

__all__ = [
    "OnProgress", "Progress", "SweepInterrupted", "check_callables", "describe_executor", "executor_args",
    "executor_spec", "points_state", "points_to_run", "run_parallel", "run_pipelines", "sweep",
]  # fmt: skip


@dataclass(frozen=True)
class Progress:
    """Where a sweep is, after each event: for the live view (``line`` for plain output)."""

    points: int
    done: int
    running: int
    failed: int
    tasks: int
    tasks_done: int
    cache_hits: int
    best: tuple[int, float] | None  # (point, value) of --best so far
    finished: tuple[SweepPoint, ...] = ()  # the points that ended since the last progress
    live: Mapping[int, tuple[int | None, float]] = field(default_factory=dict)  # a search's running trials:
    # trial -> (step, value) of its metric, the last its stage logged


OnProgress = Callable[[Progress], None]


def describe_executor(spec: ExecutorSpec) -> str:
    """How tasks run, in a few words (the sweep record's ``executor``)."""
    if spec.address is not None:
        return spec.address
    if spec.cluster is not None and spec.cluster.kind != "local":
        return f"{spec.cluster.kind} (up to {spec.workers} jobs)"
    return f"local cluster of {spec.workers} workers"


def executor_spec(
    section: Mapping[str, Any] | None, where: str, *, jobs: int | None = None, scheduler: str | None = None,
    kind: str | None = None, debug: bool = False,
) -> ExecutorSpec:  # fmt: skip
    """The executor of ``--jobs``/``--scheduler``/``--cluster KIND`` over the manifest's ``cluster:``
    ``section`` (its jobs and options are kept when ``--cluster`` names the kind)."""
    from modver.sweep.cluster import ClusterConfig, ExecutorSpec, check_address

    if scheduler is not None and kind is not None:
        raise errors.UsageError(
            "give --scheduler or --cluster, not both", hint="--scheduler tcp://HOST:PORT uses a running Dask cluster"
        )
    if scheduler is not None:
        scheduler = check_address(scheduler)
    config = ClusterConfig.from_json(section, where=where) if section is not None else None
    if kind is not None:
        base = config if config is not None else ClusterConfig()
        config = replace(
            ClusterConfig.from_json({"kind": kind, "jobs": base.jobs, "options": dict(base.options)}, "--cluster"),
            start_timeout=base.start_timeout,
        )
    if jobs is not None and jobs < 1:
        raise errors.UsageError(f"--jobs must be at least 1, not {jobs}", hint="give --jobs N with N >= 1")
    return ExecutorSpec(jobs=jobs, scheduler=scheduler, cluster=config, debug=debug)


def executor_args(spec: ExecutorSpec) -> list[str]:
    """The command-line options that give ``spec`` again (for a detached driver)."""
    args = ["--jobs", str(spec.jobs)] if spec.jobs is not None else []
    if spec.scheduler is not None:
        args += ["--scheduler", spec.scheduler]
    elif spec.cluster is not None and spec.cluster.kind != "local":
        args += ["--cluster", spec.cluster.kind]
    return args


class _Points:
    """The records of the points being run, changed as task events arrive (this thread only)."""

    def __init__(
        self,
        graph: Graph,
        recorders: dict[int, Recorder],
        planned: float,
        on_point: Callable[[int, RunRecord], None],
        on_stage: Event | None,
    ):
        self.graph, self.recorders, self.planned = graph, recorders, planned
        self.on_point, self.on_stage = on_point, on_stage
        self.finished: dict[int, RunRecord] = {}
        self.outcomes: dict[str, TaskEvent] = {}  # the tasks that ended: done, failed or skipped
        self.pruned: dict[int, ErrorInfo] = {}  # a search's pruned trials: why, with the step and value
        self.running: set[int] = set()
        self.tasks_done = 0
        self.cache_hits = 0

    def _set(self, index: int, stage: str, kind: str | None = None, **changes: Any) -> None:
        recorder = self.recorders[index]
        record = recorder.stage(stage, **changes)
        if self.on_stage is not None and kind is not None:
            p = next(p for p in self.graph.point(index).plans if p.name == stage)
            self.on_stage(StageEvent(kind, stage, p.label, record.reason, record.notes, record.duration,
                                     record.timings))  # fmt: skip

    def mark_cached(self, store: Store, points: Sequence[int] | None = None) -> None:
        """Stages served from the cache at planning; finishes points with nothing to run."""
        cache = store.output_cache()
        for index in points if points is not None else [p.index for p in self.graph.points]:
            for p in self.graph.point(index).plans:
                if p.cached:
                    entry = cache.get(p.key)
                    metrics = tuple(entry.metrics) if entry is not None else ()
                    duration = entry.duration if entry is not None else None
                    outs = dict(entry.meta.get("outs") or {}) if entry is not None else {}
                    self._set(index, p.name, "cached", status=StageStatus.CACHED, duration=duration,
                              events=metrics, outs=outs)  # fmt: skip
                    self.cache_hits += 1
            self._settle(index)

    def add(self, graph: Graph, index: int, recorder: Recorder, store: Store) -> None:
        """Point ``index`` of ``graph`` (the graph grown by it: a search's trial) joins: its cached
        stages are marked, a stage shared with a task that has ended already takes its result."""
        self.graph = graph
        self.recorders[index] = recorder
        for p in graph.point(index).plans:
            ended = None if p.cached else self.outcomes.get(p.key)
            if ended is not None:
                self._shared(ended, [(index, p.name)])
        self.mark_cached(store, [index])

    def on_event(self, event: TaskEvent) -> None:
        if event.kind == "metric":  # a live metric of a running stage: the record gets it when it ends
            return
        users = self.graph.users(event.key)
        if event.kind not in ("started", "retried"):
            self.outcomes[event.key] = event
        (owner, stage), shared = users[0], users[1:]
        if event.kind in ("started", "retried"):
            self._set(owner, stage, "start" if event.kind == "started" else None, status=StageStatus.RUNNING)
            self.running.add(owner)
            return
        result = event.result
        assert result is not None
        if event.kind == "skipped":
            for index, name in users:
                self._set(index, name, status=StageStatus.SKIPPED, reason=result.message or "skipped")
        else:
            self.tasks_done += 1
            status = StageStatus.SUCCEEDED if event.kind == "done" else StageStatus.FAILED
            self._set(owner, stage, "done" if event.kind == "done" else "failed", status=status,
                      duration=result.duration, timings=dict(result.timings), error=result.error,
                      events=result.metrics, outs=dict(result.outs))  # fmt: skip
            self._shared(event, shared)
        for index in dict.fromkeys(i for i, _ in users):
            self._settle(index)

    def _shared(self, event: TaskEvent, users: Sequence[tuple[int, str]]) -> None:
        """The stages ``users`` share the ended task of ``event`` with its owner: its result is theirs."""
        result = event.result
        assert result is not None
        owner = self.graph.users(event.key)[0][0]
        run = self.recorders[owner].record.run
        for index, name in users:
            if event.kind == "skipped":
                self._set(index, name, status=StageStatus.SKIPPED, reason=result.message or "skipped")
                continue
            done = event.kind == "done"
            self.cache_hits += done
            self._set(index, name, "cached" if done else "failed",
                      status=StageStatus.CACHED if done else StageStatus.FAILED,
                      reason=f"shared with point {owner} of the sweep (run {run}), which computed it",
                      error=result.error, events=result.metrics, outs=dict(result.outs))  # fmt: skip

    def _settle(self, index: int) -> None:
        """Finish point ``index`` when each of its stages has an output, or one failed and the
        others are settled."""
        if index in self.finished:
            return
        stages = self.recorders[index].record.stages
        statuses = [s.status for s in stages.values()]
        if all(s.has_output for s in statuses):
            self._finish(index, RunStatus.SUCCEEDED)
        elif StageStatus.FAILED in statuses and not any(
            s in (StageStatus.PENDING, StageStatus.RUNNING) for s in statuses
        ):
            error = _first_error(stages)
            if error is not None and error.type == "Pruned":  # a search's trial, stopped by its pruner
                self._finish(index, RunStatus.PRUNED, self.pruned.get(index, error))
            else:
                self._finish(index, RunStatus.FAILED, error)

    def _finish(self, index: int, status: RunStatus, error: ErrorInfo | None = None) -> None:
        record = self.recorders[index].finish(status, planned=self.planned, error=error)
        self.finished[index] = record
        self.running.discard(index)
        self.on_point(index, record)

    def finish_rest(self, status: RunStatus, why: str) -> None:
        """Finish every point still open: those with a failed stage failed, the others ``status``."""
        for index, recorder in self.recorders.items():
            if index in self.finished:
                continue
            error = _first_error(recorder.record.stages)
            if error is not None:
                self._finish(index, RunStatus.FAILED, error)
            else:
                self._finish(
                    index, status, ErrorInfo("Interrupted" if status is RunStatus.INTERRUPTED else "Error", why)
                )


def _first_error(stages: Mapping[str, StageRecord]) -> ErrorInfo | None:
    return next((s.error for s in stages.values() if s.status is StageStatus.FAILED and s.error is not None), None)


def points_state(graph: Graph, on_point: Callable[[int, RunRecord], None]) -> _Points:
    """The records of a search's trials, as they join ``graph`` one by one (:meth:`_Points.add`)."""
    return _Points(graph, {}, 0.0, on_point, None)


def check_callables(tasks: Mapping[str, StageTask], seen: set[tuple[str, str, tuple[str, ...]]] | None = None) -> None:
    """Each distinct callable loaded and checked against its arguments, in this process, before
    anything runs (a mistyped sweep param fails now, not on a worker minutes later); ``seen``:
    those checked already."""
    seen = set() if seen is None else seen
    for task in tasks.values():
        names = (task.fingerprint, task.entry, tuple(sorted([*task.inputs, *task.data, *task.params])))
        if names not in seen:
            seen.add(names)
            prepare(task)


def _execute(
    registry: Registry,
    store: Store,
    base: Pipeline,
    points: Sequence[tuple[int, Mapping[str, Any]]],
    executor: ExecutorSpec,
    *,
    sweep_id: str | None,
    force: Sequence[str] = (),
    fail_fast: bool = False,
    on_point: Callable[[int, RunRecord], None],
    on_stage: Event | None = None,
    on_started: Callable[[Graph, dict[int, str]], None] | None = None,
    on_tick: Callable[[_Points], None] | None = None,
    pipelines: Mapping[int, Pipeline] | None = None,
    marks: Mapping[str, str] | None = None,
    session: Session | None = None,
) -> tuple[Graph, dict[int, RunRecord]]:
    """Plan, record and execute ``points`` (see the module docstring); each point's final record."""
    from modver.sweep import cluster

    runs = store.run_store()
    t0 = time.perf_counter()
    with store_lock(store, shared=True):
        previous = last_key_parts(runs, [s.name for s in base.stages])
        graph = plan_graph(registry, store, base, points, register=True, previous=previous, force=force,
                           pipelines=pipelines)  # fmt: skip
        run_ids = {index: new_run_id() for index, _ in points}
        tasks = build_tasks(store, graph, run_ids)
        check_callables(tasks)
        planned = round((time.perf_counter() - t0) / max(len(points), 1), 6)
        recorders = {}
        for point in graph.points:
            started = now_iso()
            record = first_record(registry, point.pipeline, point.plans, run_ids[point.index], started, sweep=sweep_id)
            record = replace(record, blame=(marks or {}).get("blame"), bisect=(marks or {}).get("bisect"))
            # every write names the versions by their numbers at that moment: a pull during the
            # sweep may renumber one (SPEC: a result is recorded under the version whose code ran)
            recorders[point.index] = Recorder.start(runs, record, started=time.perf_counter(), history=registry.history)
    if on_started is not None:
        on_started(graph, run_ids)
    state = _Points(graph, recorders, planned, on_point, on_stage)

    def on_event(event: TaskEvent) -> None:
        state.on_event(event)
        if on_tick is not None:
            on_tick(state)

    state.mark_cached(store)
    if on_tick is not None:
        on_tick(state)
    try:
        run_graph = cluster.run_graph if session is None else session.run_graph
        run_graph(tasks, executor, on_event=on_event, fail_fast=fail_fast, store=store)
    except KeyboardInterrupt:
        state.finish_rest(RunStatus.INTERRUPTED, "interrupted (Ctrl-C)")
        raise
    except BaseException as exc:
        state.finish_rest(RunStatus.FAILED, f"the sweep stopped: {type(exc).__name__}: {exc}")
        raise
    state.finish_rest(RunStatus.INTERRUPTED, "cancelled: another point failed (--fail-fast)")
    return graph, state.finished


def run_parallel(
    registry: Registry,
    store: Store,
    pipeline: Pipeline,
    executor: ExecutorSpec,
    *,
    force: Sequence[str] = (),
    on_event: Event | None = None,
) -> RunRecord:
    """``modver run --jobs N``: the pipeline's independent stages at once, on a local cluster of
    N workers (or ``executor``'s); the run's record. A failed stage raises, as :func:`execute` does."""
    _, finished = _execute(
        registry, store, pipeline, [(0, {})], executor, sweep_id=None, force=force, on_point=lambda i, r: None,
        on_stage=on_event,
    )  # fmt: skip
    record = finished[0]
    if record.status is RunStatus.FAILED and record.error is not None:
        stage = record.error.stage or ""
        message = record.error.message
        what = f"stage {stage} failed: {record.error.type}: {message}" if record.error.traceback else message
        raise errors.StageFailedError(what, where=stage, hint=f"full traceback: `modver show {record.run}`")
    return record


def run_pipelines(
    registry: Registry,
    store: Store,
    pipelines: Sequence[Pipeline],
    executor: ExecutorSpec,
    *,
    marks: Mapping[str, str] | None = None,
    on_stage: Event | None = None,
    session: Session | None = None,
) -> tuple[Graph, list[RunRecord]]:
    """Run several pipelines at once as the points of one graph (a stage whose key is in the cache
    is served from it, one computed for several points runs once); each point's final record, in
    the order given, marked with ``marks`` (``{"blame": id}``). A point that fails does not raise:
    its record says so. Nothing runs, and no executor starts, when every stage is cached. A
    ``session`` (:class:`~modver.sweep.cluster.Session`) keeps one executor for several calls."""
    if not pipelines:
        return Graph((), {}), []
    by_index = dict(enumerate(pipelines))
    graph, finished = _execute(
        registry, store, pipelines[0], [(i, {}) for i in by_index], executor, sweep_id=None,
        on_point=lambda i, r: None, on_stage=on_stage, pipelines=by_index, marks=marks, session=session,
    )  # fmt: skip
    return graph, [finished[i] for i in by_index]


class _Book:
    """The sweep's record, kept up to date as its points start and end."""

    def __init__(
        self, sweeps: SweepStore, record: SweepRecord, best: Best | None, on_progress: OnProgress | None,
        lock: Callable[[], None] | None = None,
    ):  # fmt: skip
        self.sweeps, self.record, self.best, self.on_progress, self.lock = sweeps, record, best, on_progress, lock
        self.leader: tuple[int, float] | None = None
        self.begun = False  # its record is written: it got past planning
        self.fresh: list[SweepPoint] = []  # points ended since the last tick

    def started(self, graph: Graph, run_ids: dict[int, str]) -> None:
        if self.lock is not None:
            self.lock()
        for index, run in run_ids.items():
            self.record = self.record.with_point(index, run=run, status="pending", error=None)
        self.record = replace(self.record, tasks=graph.counts())
        self.sweeps.save(self.record)
        self.begun = True

    def point_done(self, index: int, run: RunRecord) -> None:
        error = None
        if run.status is not RunStatus.SUCCEEDED and run.error is not None:
            error = f"{run.error.stage + ': ' if run.error.stage else ''}{run.error.type}: {run.error.message}"
        line = error.splitlines()[0] if error else None
        self.record = self.record.with_point(index, status=str(run.status), error=line)
        self.fresh.append(self.record.points[index])
        if self.best is not None and run.status is RunStatus.SUCCEEDED and self.best.metric in run.metrics:
            value = float(run.metrics[self.best.metric])
            if self.best.better(value, self.leader[1] if self.leader else None):
                self.leader = (index, value)
        self.sweeps.save(self.record, durable=False)

    def tick(self, state: _Points) -> None:
        """Points whose first stage started read "running"; then the progress is reported."""
        started = [i for i in state.running if self.record.points[i].status == "pending"]
        for index in started:
            self.record = self.record.with_point(index, status="running")
        if started:
            self.sweeps.save(self.record, durable=False)
        if self.on_progress is not None:
            r = self.record
            self.on_progress(Progress(
                len(r.points), r.count("succeeded"), len(state.running), r.count("failed"), state.graph.executions,
                state.tasks_done, state.cache_hits, self.leader, tuple(self.fresh),
            ))  # fmt: skip
        self.fresh.clear()

    def end(self, status: str | None = None) -> SweepRecord:
        """Write the sweep's final record: ``status``, or what its points say."""
        r = self.record
        if status is None:
            status = "succeeded" if r.count("succeeded") == len(r.points) else "failed"
            if r.count("interrupted") and not r.count("failed"):
                status = "interrupted"
        self.record = replace(r, status=status, finished=now_iso())
        self.sweeps.save(self.record)
        return self.record


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM, which the command line turns into one) stopped sweep ``sweep``: its
    record says interrupted, and ``modver sweep --resume SWEEP`` continues it."""

    def __init__(self, sweep: str):
        super().__init__(sweep)
        self.sweep = sweep


def points_to_run(record: SweepRecord, runs: RunStore) -> list[SweepPoint]:
    """The points of ``record`` that a resume runs: every point but those whose run succeeded and
    is still recorded (``gc --remove-records`` may have removed it: the point runs again, from
    the cache if its outputs are kept)."""
    todo = []
    for point in record.points:
        if point.status == "succeeded" and point.run is not None:
            try:
                if runs.load(point.run).status is RunStatus.SUCCEEDED:
                    continue
            except errors.ModverError:
                pass  # its run record is gone or damaged: the point is not done
        todo.append(point)
    return todo


def sweep(
    registry: Registry,
    store: Store,
    base: Pipeline,
    spec: SweepSpec,
    executor: ExecutorSpec,
    *,
    resume: SweepRecord | None = None,
    fail_fast: bool = False,
    best: Best | None = None,
    on_progress: OnProgress | None = None,
) -> SweepRecord:
    """Run every point of ``spec`` over ``base`` (or the unfinished points of ``resume``); the
    sweep's final record. Failed points do not raise: the record lists them. The sweep's lock
    is held while it runs: a second driver of the same sweep (two ``--resume``) is refused
    (:class:`~modver.errors.SweepError`). Ctrl-C raises :class:`SweepInterrupted`."""
    sweeps = SweepStore(store.sweeps)
    new = resume is None
    record = SweepRecord.new(base.manifest_path, spec, spec.points(), describe_executor(executor)) if new else resume
    assert record is not None
    with contextlib.ExitStack() as held:
        if resume is not None:  # read again under the lock: a driver that held it may have run points
            held.enter_context(sweeps.hold(resume.sweep))
            record = replace(sweeps.load(resume.sweep, alive=False), status="running", finished=None,
                             executor=describe_executor(executor), host=socket.gethostname(), pid=os.getpid())  # fmt: skip
        todo = points_to_run(record, store.run_store()) if resume is not None else list(record.points)
        # a new sweep takes its lock once planned, before its record is first written
        lock = (lambda: held.enter_context(sweeps.hold(record.sweep))) if new else None
        book = _Book(sweeps, record, best, on_progress, lock)
        try:
            _execute(registry, store, base, [(p.index, p.params) for p in todo], executor, sweep_id=record.sweep,
                     fail_fast=fail_fast, on_point=book.point_done, on_started=book.started, on_tick=book.tick)  # fmt: skip
        except KeyboardInterrupt as exc:
            if book.begun or not new:
                book.end("interrupted")
                raise SweepInterrupted(record.sweep) from exc
            raise
        except BaseException:
            if book.begun:
                book.end("failed")
            raise
        return book.end()
