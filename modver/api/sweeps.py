"""Sweeps, the façade's part: ``project.sweeps`` — their axes, dry run, run, detaching, and records.

Every method is a thin call of :mod:`modver.sweep.axes` (axes), :mod:`modver.sweep.graph` (the dry
run), :mod:`modver.sweep.driver` (running and detaching a sweep), :mod:`modver.sweep.search` (a
search: ``sweep --optimize``) or :mod:`modver.store.sweepstore` (the records), and returns their models.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modver import errors
from modver.api.workspace import PathArg, Workspace
from modver.store.sweepstore import SweepStore

if TYPE_CHECKING:  # pragma: no cover
    from modver.models import SweepSpec
    from modver.store.sweepstore import Best, SweepPoint, SweepRecord
    from modver.sweep.cluster import ExecutorSpec
    from modver.sweep.driver import OnProgress
    from modver.sweep.graph import Graph
    from modver.sweep.study import Optimize

__all__ = ["Sweeps"]


class Sweeps:
    """A project's sweeps (see the module docstring); ``sweeps()`` lists their records, oldest first."""

    def __init__(self, workspace: Workspace):
        self._ws = workspace

    def __call__(self) -> list[SweepRecord]:
        """Every sweep's record, oldest first."""
        return SweepStore(self._ws.store.sweeps).list()

    def executor(
        self, manifest: PathArg = None, *, jobs: int | None = None, scheduler: str | None = None,
        cluster: str | None = None, debug: bool = False,
    ) -> ExecutorSpec:  # fmt: skip
        """Where a sweep's tasks run: ``--jobs``/``--scheduler``/``--cluster`` over the manifest's
        ``cluster:`` section (:func:`modver.sweep.driver.executor_spec`)."""
        from modver.sweep.driver import executor_spec

        m = self._ws.manifest(manifest)
        return executor_spec(m.cluster, f"{m.path}: cluster", jobs=jobs, scheduler=scheduler, kind=cluster, debug=debug)

    def spec(
        self, sets: Sequence[str], *, zip_axes: bool = False, file: PathArg = None, optimize: Optimize | None = None
    ) -> SweepSpec:
        """The axes (and distributions) of ``--set`` options (:func:`modver.sweep.axes.parse_axes`),
        or of a sweep file with them; with ``optimize``, checked as a search's
        (:func:`modver.sweep.study.check_search`)."""
        from modver.sweep.axes import load_sweep_file, parse_axes
        from modver.sweep.study import check_search

        path = None if file is None else self._ws.base / Path(file)  # an absolute file stays itself
        spec = (
            load_sweep_file(path, sets, zip_axes=zip_axes) if path is not None else parse_axes(sets, zip_axes=zip_axes)
        )
        check_search(spec, optimize)
        if optimize is None and not spec.axes:
            raise errors.SweepError(
                "nothing to sweep: no --set has several values",
                hint="give an axis: --set model.C=0.1,1,10 or --set model.seed=range(0,5), or --file SWEEP.yaml "
                "(one point is `modver run`)",
            )
        return spec

    def plan(self, spec: SweepSpec | None = None, manifest: PathArg = None, *, resume: str | None = None) -> Graph:
        """What a sweep would do, point by point and stage by stage — or, with ``resume``, what
        resuming that recorded sweep would (its points that did not succeed). Nothing is executed
        or recorded; each stage's entry is checked against the point's arguments from its source
        (:func:`modver.sweep.graph.check_calls`), as the real sweep checks it."""
        from modver.engine.planner import last_key_parts
        from modver.sweep.driver import points_to_run
        from modver.sweep.graph import check_calls, plan_graph

        if resume is not None:
            record = self.record(resume)
            spec, manifest = record.spec, self._ws.root / record.manifest
            points = [(p.index, p.params) for p in points_to_run(record, self._ws.runs_store)]
        else:
            assert spec is not None, "give a sweep spec or a sweep to resume"
            points = list(enumerate(spec.points()))
        ws = self._ws
        base = ws.pipeline(manifest, spec.sets)
        previous = last_key_parts(ws.runs_store, [s.name for s in base.stages])
        graph = plan_graph(ws.registry, ws.store, base, points, register=False, previous=previous)
        check_calls(ws.registry, ws.store, graph)
        return graph

    def run(
        self, spec: SweepSpec | None = None, manifest: PathArg = None, *, resume: str | None = None,
        executor: ExecutorSpec | None = None, fail_fast: bool = False, best: Best | None = None,
        on_progress: OnProgress | None = None,
    ) -> SweepRecord:  # fmt: skip
        """Run every point of ``spec`` — or, with ``resume``, the points of that recorded sweep that
        did not succeed, with its manifest and axes — shared stage tasks once, on Dask; the record."""
        from modver.sweep.driver import sweep

        record = self.record(resume) if resume is not None else None
        if record is not None:
            spec, manifest = record.spec, self._ws.root / record.manifest
        assert spec is not None, "give a sweep spec or a sweep to resume"
        base = self._ws.pipeline(manifest, spec.sets)
        executor = executor if executor is not None else self.executor(manifest)
        return sweep(self._ws.registry, self._ws.store, base, spec, executor, resume=record, fail_fast=fail_fast,
                     best=best, on_progress=on_progress)  # fmt: skip

    def detach(
        self, spec: SweepSpec | None = None, manifest: PathArg = None, *, resume: str | None = None,
        executor: ExecutorSpec, fail_fast: bool = False, optimize: Optimize | None = None,
    ) -> tuple[SweepRecord, str]:  # fmt: skip
        """Record the sweep as ``queued`` (its points planned once, to check them; a search with
        ``optimize``: its params checked, no point yet) — or take the recorded sweep ``resume`` —
        and submit ``modver sweep --resume ID`` as a batch job (:func:`modver.sweep.cluster.detach`);
        the record and the job's id."""
        from modver.store.sweepstore import SweepRecord
        from modver.sweep.cluster import detach
        from modver.sweep.driver import describe_executor, executor_args

        store = SweepStore(self._ws.store.sweeps)
        if resume is not None:
            record = self.record(resume)
        elif optimize is not None:
            assert spec is not None, "give a search's spec"
            base = self._ws.pipeline(manifest, spec.sets)
            self.check_search(spec, manifest)
            record = SweepRecord.new(base.manifest_path, spec, [], describe_executor(executor), "queued")
            study = optimize.study or record.sweep
            if (self._ws.store.studies / study).exists():
                raise errors.SweepError(f"study {study} exists already", where=str(self._ws.store.studies / study),
                                        hint="resume its sweep with `modver sweep --resume ID`, or give another "
                                        "--study NAME")  # fmt: skip
            record = replace(record, optimize=replace(optimize, study=study).to_json())
            store.save(record)
        else:
            assert spec is not None, "give a sweep spec or a sweep to resume"
            base = self._ws.pipeline(manifest, spec.sets)
            self.plan(spec, manifest)  # its points checked before the job is submitted
            record = SweepRecord.new(base.manifest_path, spec, spec.points(), describe_executor(executor), "queued")
            store.save(record)
        argv = ["sweep", "--resume", record.sweep, *executor_args(executor), *(["--fail-fast"] if fail_fast else [])]
        argv += ["--trials", str(optimize.trials)] if optimize is not None else []
        try:
            return record, detach(argv, executor, self._ws.store)
        except BaseException:
            if resume is None:
                store.path(record.sweep).unlink(missing_ok=True)  # never submitted: not a sweep
            raise

    def check_search(self, spec: SweepSpec, manifest: PathArg = None) -> None:
        """A search's params are the stages' and its stages can take them: one point planned (each
        param at its low end or first value) and checked from the source, as a dry run does —
        before a study or a record exists."""
        from modver.engine.planner import last_key_parts
        from modver.sweep.graph import check_calls, plan_graph

        point: dict[str, Any] = {a.target: a.values[0] for a in spec.grid}
        point.update({d.target: d.args[0] for d in spec.search})
        ws = self._ws
        base = ws.pipeline(manifest, spec.sets)
        previous = last_key_parts(ws.runs_store, [s.name for s in base.stages])
        check_calls(ws.registry, ws.store, plan_graph(ws.registry, ws.store, base, [(0, point)], register=False,
                                                      previous=previous))  # fmt: skip

    def search(
        self, spec: SweepSpec | None = None, optimize: Optimize | None = None, manifest: PathArg = None, *,
        resume: str | None = None, executor: ExecutorSpec | None = None, on_progress: OnProgress | None = None,
    ) -> SweepRecord:  # fmt: skip
        """``sweep --optimize``: run the search of ``spec`` (:func:`modver.sweep.search.search`) — or
        go on with the recorded search ``resume`` (``optimize`` may change its number of trials);
        the sweep's record."""
        from modver.sweep.search import search
        from modver.sweep.study import Optimize

        record = self.record(resume) if resume is not None else None
        if record is not None:
            if record.optimize is None:
                raise errors.SweepError(f"sweep {record.sweep} is a grid, not a search",
                                        hint=f"resume it with `modver sweep --resume {record.sweep}`")  # fmt: skip
            recorded = Optimize.from_json(record.optimize)
            trials = optimize.trials if optimize is not None else recorded.trials
            optimize = replace(recorded, trials=trials)
            spec, manifest = record.spec, self._ws.root / record.manifest
        assert spec is not None and optimize is not None, "give a spec and what to optimize, or a search to resume"
        base = self._ws.pipeline(manifest, spec.sets)
        executor = executor if executor is not None else self.executor(manifest)
        return search(self._ws.registry, self._ws.store, base, spec, executor, optimize, resume=record,
                      on_progress=on_progress)  # fmt: skip

    def best_params(self, ref: str = "latest") -> tuple[SweepRecord, SweepPoint, float, list[str]] | None:
        """A search's best trial: its record, point, value, and its params with the sweep's fixed
        values as ``stage.param=value`` lines (``--set`` gives each back as it was); None when no
        trial has a value yet."""
        from modver.store.sweepstore import best_point
        from modver.sweep.axes import render_value

        record = self.record(ref)
        if record.best is None:
            raise errors.SweepError(
                f"sweep {record.sweep} is a grid, not a search: it has no best trial by itself",
                hint="see its best point with `modver sweeps --best METRIC`",
            )
        leader = best_point(record, self._ws.runs_store, record.best)
        if leader is None:
            return None
        lines = [*record.spec.sets, *(f"{t}={render_value(v)}" for t, v in leader[0].params.items())]
        return record, leader[0], leader[1], lines

    def record(self, ref: str = "latest") -> SweepRecord:
        """One sweep's record (an id, a unique prefix or ``latest``)."""
        store = SweepStore(self._ws.store.sweeps)
        return store.load(store.resolve(ref))

    def best_point(self, record: SweepRecord, best: Best) -> tuple[SweepPoint, float] | None:
        """The sweep's succeeded point with the best value of ``best.metric``, or None."""
        from modver.store.sweepstore import best_point

        return best_point(record, self._ws.runs_store, best)
