"""A search: ``modver sweep --optimize METRIC --trials N`` — Optuna's ask-and-tell on the sweep engine.

:func:`search` keeps up to one trial per worker slot in flight (``--jobs``, or the cluster's
jobs) and asks for a new trial as soon as one ends — no blocking batches:

1. **ask** (:class:`~modver.sweep.study.Study`): the trial's params, the sweep's fixed ``--set``
   values beside them;
2. **plan and record** the trial as one more point of the sweep's graph
   (:func:`modver.sweep.graph.plan_graph` with ``before``): a stage whose key is cached is
   served from the cache, one whose key another trial is computing right now waits for it
   (shared), so trials that vary only downstream params reuse the upstream outputs. Its run
   record carries ``sweep`` and ``trial``; the sweep's record gets a point with the trial's number;
3. **run** its new tasks on Dask: they join the running graph
   (:func:`modver.sweep.cluster.run_graph`'s ``feed``);
4. **tell**: when the trial's run ends, its value of METRIC (the run's metric) — or failed, when
   the run failed or did not log METRIC. A trial whose run was interrupted (Ctrl-C, SIGTERM, a
   killed driver) is not told: a resume (:meth:`~modver.sweep.study.Study.recover`) runs it again.

The sweep's lock is held for the whole search: a second driver of the same study is refused.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from modver import errors
from modver.engine.executor import StageTask
from modver.engine.planner import Pipeline, last_key_parts
from modver.engine.recorder import Recorder, first_record
from modver.engine.registry import Registry
from modver.models import SweepSpec
from modver.record import ErrorInfo, RunRecord, RunStatus
from modver.store.layout import Store
from modver.store.retention import store_lock
from modver.store.runstore import new_run_id, now_iso
from modver.store.sweepstore import SweepRecord, SweepStore
from modver.sweep.cluster import GraphControl
from modver.sweep.driver import OnProgress, Progress, SweepInterrupted, check_callables, describe_executor, points_state
from modver.sweep.graph import Graph, build_tasks, plan_graph
from modver.sweep.study import Optimize, Study

if TYPE_CHECKING:  # pragma: no cover
    from modver.sweep.cluster import ExecutorSpec, TaskEvent

__all__ = ["PRUNE_GRACE", "search"]

# seconds a pruned trial's stage has to stop itself (modver.should_prune) before its process is ended
PRUNE_GRACE = float(os.environ.get("MODVER_PRUNE_GRACE") or 5.0)


class _Trials:
    """The trials in flight, asked and told in the driver's thread (see the module docstring)."""

    def __init__(
        self, registry: Registry, store: Store, base: Pipeline, study: Study, optimize: Optimize, slots: int,
        sweeps: SweepStore, record: SweepRecord, on_progress: OnProgress | None,
    ):  # fmt: skip
        self.registry, self.store, self.base, self.study, self.optimize = registry, store, base, study, optimize
        self.slots, self.sweeps, self.record, self.on_progress = slots, sweeps, record, on_progress
        self.previous = last_key_parts(store.run_store(), [s.name for s in base.stages])
        self.graph = Graph((), {})
        self.state = points_state(self.graph, self._ended)
        self.checked: set[tuple[str, str, tuple[str, ...]]] = set()
        self.flying: dict[int, int] = {}  # point -> trial number
        self.counted = study.counted()
        self.leader: tuple[int, float] | None = None
        self.fresh: list[Any] = []
        self.control = GraphControl()
        self.live: dict[int, tuple[int | None, float]] = {}  # point -> (step, value) its stage logged last
        self.pruned: dict[int, tuple[int, float]] = {}  # point -> (step, value) at which it was pruned
        self.saved = 0.0  # when the record was last written for a live value

    def feed(self) -> Mapping[str, StageTask]:
        """New trials while a slot is free and the study wants more: their tasks."""
        tasks: dict[str, StageTask] = {}
        while len(self.flying) < self.slots and self.counted + len(self.flying) < self.optimize.trials:
            tasks.update(self._start(*self.study.ask()))
        if tasks or self.fresh:
            self.tick()
        return tasks

    def _start(self, number: int, params: dict[str, Any]) -> dict[str, StageTask]:
        index = len(self.record.points)
        run_id = new_run_id()
        t0 = time.perf_counter()
        with store_lock(self.store, shared=True):
            graph = plan_graph(self.registry, self.store, self.base, [(index, params)], register=True,
                               previous=self.previous, before=self.graph, as_defaults=False)  # fmt: skip
            point = graph.point(index)
            keys = [k for k in graph.owners if k not in self.graph.owners]
            tasks = build_tasks(self.store, graph, {index: run_id}, keys)
            check_callables(tasks, self.checked)
            started = now_iso()
            record = replace(first_record(self.registry, point.pipeline, point.plans, run_id, started,
                                          sweep=self.record.sweep), trial=number)  # fmt: skip
            recorder = Recorder.start(self.store.run_store(), record, started=time.perf_counter(),
                                      history=self.registry.history)  # fmt: skip
        self.state.planned = round(time.perf_counter() - t0, 6)
        self.graph = graph
        self.record = self.record.with_new_point(params, run=run_id, status="running", trial=number)
        self.record = replace(self.record, tasks=graph.counts())
        self.sweeps.save(self.record, durable=False)
        self.flying[index] = number
        self.state.add(graph, index, recorder, self.store)
        return tasks

    def _ended(self, index: int, run: RunRecord) -> None:
        """Point ``index``'s run ended: tell its trial (see the module docstring)."""
        number = self.flying.pop(index, None)
        self.live.pop(index, None)
        metric = self.optimize.metric
        value = float(run.metrics[metric]) if metric in run.metrics else None
        error = None
        if run.status is RunStatus.PRUNED:
            step, at = self.pruned.pop(index, (None, math.nan))
            error = f"pruned at step {step}: {metric}={at:.6g}"
            if number is not None:
                self.study.tell(number, None, pruned=True)
                self.counted += 1
                number = None
        elif run.status is not RunStatus.SUCCEEDED and run.error is not None:
            error = f"{run.error.stage + ': ' if run.error.stage else ''}{run.error.type}: {run.error.message}"
        elif run.status is RunStatus.SUCCEEDED and value is None:
            error = f"the run did not log {metric}: the trial is told failed"
        if number is not None and run.status is not RunStatus.INTERRUPTED:
            self.study.tell(number, value if run.status is RunStatus.SUCCEEDED else None)
            self.counted += 1
        status = str(run.status)
        self.record = self.record.with_point(index, status=status, error=error.splitlines()[0] if error else None)
        leading = self.leader[1] if self.leader else None
        if value is not None and run.status is RunStatus.SUCCEEDED and self.optimize.best.better(value, leading):
            self.leader = (self.record.points[index].trial or 0, value)  # shown as "trial N"
        self.fresh.append(self.record.points[index])
        self.sweeps.save(self.record, durable=False)

    def on_event(self, event: TaskEvent) -> None:
        if event.kind == "metric":
            self._heard(event)
            return
        self.state.on_event(event)
        self.tick()

    def _heard(self, event: TaskEvent) -> None:
        """A running stage logged a metric: the trial's live value; its pruner may stop it."""
        metric = event.metric or {}
        users = self.state.graph.users(event.key)
        if not users or metric.get("name") != self.optimize.metric:
            return
        index = users[0][0]
        step, value = metric.get("step"), metric.get("value")
        if index not in self.flying or not isinstance(value, int | float):
            return
        self.live[index] = (step, float(value))
        if isinstance(step, int) and index not in self.pruned and self.study.report(self.flying[index], value, step):
            self.pruned[index] = (step, float(value))
            stage = users[0][1]
            why = f"pruned at step {step}: {self.optimize.metric}={value:.6g} (--prune {self.optimize.prune})"
            self.state.pruned[index] = ErrorInfo("Pruned", why, stage)
            if all(i == index for i, _ in users):  # no other trial waits for this task
                self.control.stop(event.key, PRUNE_GRACE)
        now = time.monotonic()
        if now - self.saved > 1.0:  # `modver sweeps` shows live values, written at most once a second
            self.saved = now
            for i, (s, v) in self.live.items():
                self.record = self.record.with_point(i, latest={"step": s, "value": v})
            self.sweeps.save(self.record, durable=False)
        self.tick()

    def tick(self) -> None:
        if self.on_progress is None:
            return
        r, s = self.record, self.state
        live = {self.flying[i]: v for i, v in self.live.items() if i in self.flying}
        self.on_progress(Progress(
            self.optimize.trials, self.counted, len(self.flying), r.count("failed"), s.graph.executions,
            s.tasks_done, s.cache_hits, self.leader, tuple(self.fresh), live,
        ))  # fmt: skip
        self.fresh.clear()


def search(
    registry: Registry,
    store: Store,
    base: Pipeline,
    spec: SweepSpec,
    executor: ExecutorSpec,
    optimize: Optimize,
    *,
    resume: SweepRecord | None = None,
    on_progress: OnProgress | None = None,
) -> SweepRecord:
    """Run the search (or go on with the recorded one ``resume``) until its study has
    ``optimize.trials`` counted trials; the sweep's final record. Failed trials do not raise.
    Ctrl-C raises :class:`~modver.sweep.driver.SweepInterrupted`."""
    from modver.sweep import cluster

    sweeps = SweepStore(store.sweeps)
    record = (
        resume if resume is not None else SweepRecord.new(base.manifest_path, spec, [], describe_executor(executor))
    )
    name = optimize.study or record.sweep
    optimize = replace(optimize, study=name)
    with sweeps.hold(record.sweep):
        if resume is not None:  # read again under the lock
            record = sweeps.load(resume.sweep, alive=False)
        study = Study.open(store.studies / name, name, optimize, spec, resume=resume is not None)
        study.recover()
        record = _settle_left(record, study, store)
        record = replace(record, status="running", finished=None, optimize=optimize.to_json(),
                         executor=describe_executor(executor))  # fmt: skip
        sweeps.save(record)
        trials = _Trials(registry, store, base, study, optimize, executor.workers, sweeps, record, on_progress)
        if trials.counted >= optimize.trials:  # a resume of a finished search: no cluster to start
            return _end(sweeps, trials.record, "succeeded")
        try:
            cluster.run_graph({}, executor, on_event=trials.on_event, store=store, feed=trials.feed,
                              control=trials.control)  # fmt: skip
        except KeyboardInterrupt as exc:
            trials.state.finish_rest(RunStatus.INTERRUPTED, "interrupted (Ctrl-C)")
            _end(sweeps, trials.record, "interrupted")
            raise SweepInterrupted(record.sweep) from exc
        except BaseException as exc:
            trials.state.finish_rest(RunStatus.FAILED, f"the search stopped: {type(exc).__name__}: {exc}")
            _end(sweeps, trials.record, "failed")
            raise
        trials.state.finish_rest(RunStatus.INTERRUPTED, "the search ended")
        return _end(sweeps, trials.record, "succeeded")


def _settle_left(record: SweepRecord, study: Study, store: Store) -> SweepRecord:
    """A resumed search's points that its last driver left unfinished: the status of their run
    when their trial was told, else interrupted (their trial runs again)."""
    states, stopped = study.states(), study.interrupted()
    runs = store.run_store()
    for point in record.points:
        if point.status not in ("pending", "running", "died"):
            continue
        status = "interrupted"
        trial = -1 if point.trial is None else point.trial
        if trial not in stopped and states.get(trial) in ("complete", "fail") and point.run is not None:
            try:
                status = str(runs.load(point.run).status)
            except errors.ModverError:
                pass
        record = record.with_point(point.index, status=status)
    return record


def _end(sweeps: SweepStore, record: SweepRecord, status: str) -> SweepRecord:
    record = replace(record, status=status, finished=now_iso())
    sweeps.save(record)
    return record
