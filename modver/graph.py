"""The graph of a sweep: every point planned, and its stage tasks keyed by cache key, once each.

Each point is the manifest's pipeline with the point's params set
(:func:`modver.planner.with_params`), planned by :func:`modver.planner.plan` like a run. A
stage whose cache key has an output already is **cached**; the first point (in order) that needs
a key not in the cache **runs** it; every later point that needs the same key is **shared with**
that point: its stage takes the output the first one computes. So a 3 x 2 grid over
``preprocess -> augment(noise) -> model(C) -> evaluate`` has 1 + 2 + 6 + 6 = 15 tasks, not 24.

:func:`plan_graph` makes the :class:`Graph` (what ``--dry-run`` prints); :func:`build_tasks`
turns it into the :class:`~modver.executor.StageTask` of each key, for
:func:`modver.cluster.run_graph`: a task depends on the tasks whose keys are among its inputs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from modver.engine import task_for
from modver.executor import StageTask
from modver.planner import Pipeline, StagePlan, check_param, plan, with_params
from modver.record import KeyParts
from modver.registry import Registry

__all__ = ["Graph", "PlannedPoint", "build_tasks", "plan_graph"]


@dataclass(frozen=True)
class PlannedPoint:
    """One point: its params, its pipeline and each stage's plan."""

    index: int
    params: Mapping[str, Any]  # "stage.param" -> value
    pipeline: Pipeline
    plans: tuple[StagePlan, ...]
    shared: Mapping[str, int]  # stage -> the point whose task computes its output

    def disposition(self, stage: str) -> str:
        """``cached``, ``runs`` or ``shared with point K``."""
        p = next(p for p in self.plans if p.name == stage)
        if p.cached:
            return "cached"
        return f"shared with point {self.shared[stage]}" if stage in self.shared else "runs"

    def to_json(self) -> dict[str, Any]:
        stages = {}
        for p in self.plans:
            state = "cached" if p.cached else "shared" if p.name in self.shared else "runs"
            stages[p.name] = {"status": state, "shared_with": self.shared.get(p.name), "version": p.label,
                              "cache_key": p.key}  # fmt: skip
        return {"index": self.index, "params": dict(self.params), "stages": stages}


@dataclass(frozen=True)
class Graph:
    """Every planned point and, per cache key to compute, the point and stage that runs it."""

    points: tuple[PlannedPoint, ...]
    owners: Mapping[str, tuple[int, str]]  # cache key -> (point index, stage)

    @property
    def executions(self) -> int:
        """How many stage executions the sweep needs."""
        return len(self.owners)

    def point(self, index: int) -> PlannedPoint:
        return self._by_index[index]

    def users(self, key: str) -> list[tuple[int, str]]:
        """Every (point, stage) whose output is the task ``key``'s, its owner first."""
        return self._users.get(key, [])

    @cached_property
    def _by_index(self) -> dict[int, PlannedPoint]:
        return {p.index: p for p in self.points}

    @cached_property
    def _users(self) -> dict[str, list[tuple[int, str]]]:
        users: dict[str, list[tuple[int, str]]] = {}
        for pt in self.points:
            for p in pt.plans:
                if not p.cached:
                    users.setdefault(p.key, []).append((pt.index, p.name))
        return users

    def counts(self) -> dict[str, int]:
        """Stages of all points: ``total``, ``cached``, ``shared``, and ``executions`` (tasks)."""
        stages = [(pt, p) for pt in self.points for p in pt.plans]
        return {
            "total": len(stages),
            "cached": sum(p.cached for _, p in stages),
            "shared": sum(p.name in pt.shared for pt, p in stages),
            "executions": self.executions,
        }

    def to_json(self) -> dict[str, Any]:
        """What ``sweep --dry-run --json`` prints."""
        return {"points": [p.to_json() for p in self.points], **self.counts()}


def plan_graph(
    registry: Registry,
    store: Path,
    base: Pipeline,
    points: Iterable[tuple[int, Mapping[str, Any]]],
    *,
    register: bool,
    previous: Mapping[str, KeyParts] | None = None,
    force: Sequence[str] = (),
) -> Graph:
    """Plan every point (``(index, {stage.param: value})``) of a sweep over ``base`` (see the
    module docstring). ``register`` snapshots unregistered working-tree code, as a run does;
    the dry run plans without it; ``force`` runs these stages even if cached. Nothing is executed."""
    planned: list[PlannedPoint] = []
    owners: dict[str, tuple[int, str]] = {}
    checked: set[str] = set()
    for index, params in points:
        for target in params:
            if target not in checked:
                check_param(base, target, f"sweep param {target}")
                checked.add(target)
        pipeline = with_params(base, params)
        plans = plan(registry, store, pipeline, force=force, register=register, previous=previous)
        shared: dict[str, int] = {}
        for p in plans:
            if p.cached:
                continue
            if p.key in owners:
                shared[p.name] = owners[p.key][0]
            else:
                owners[p.key] = (index, p.name)
        planned.append(PlannedPoint(index, dict(params), pipeline, tuple(plans), shared))
    return Graph(tuple(planned), owners)


def build_tasks(registry: Registry, store: Path, graph: Graph, runs: Mapping[int, str | None]) -> dict[str, StageTask]:
    """The task of every key the graph computes; its logs go to the owner point's run (``runs``)."""
    tasks = {}
    for key, (index, stage) in graph.owners.items():
        point = graph.point(index)
        p = next(p for p in point.plans if p.name == stage)
        tasks[key] = task_for(registry, store, point.pipeline, p, runs.get(index))
    return tasks
