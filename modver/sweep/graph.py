"""The graph of a sweep: every point planned, and its stage tasks keyed by cache key, once each.

Each point is the manifest's pipeline with the point's params set
(:func:`modver.engine.planner.with_params`), planned by :func:`modver.engine.planner.plan` like a run. A
stage whose cache key has an output already is **cached**; the first point (in order) that needs
a key not in the cache **runs** it; every later point that needs the same key is **shared with**
that point: its stage takes the output the first one computes. So a 3 x 2 grid over
``preprocess -> augment(noise) -> model(C) -> evaluate`` has 1 + 2 + 6 + 6 = 15 tasks, not 24.

:func:`plan_graph` makes the :class:`Graph` (what ``--dry-run`` prints); :func:`build_tasks`
turns it into the :class:`~modver.engine.executor.StageTask` of each key, for
:func:`modver.sweep.cluster.run_graph`: a task depends on the tasks whose keys are among its inputs.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from modver.engine.executor import StageTask, call_problem, task_for
from modver.engine.planner import Pipeline, StagePlan, check_param, plan, with_params
from modver.engine.registry import Registry
from modver.record import KeyParts
from modver.store.layout import Store

__all__ = ["Graph", "PlannedPoint", "build_tasks", "check_calls", "plan_graph"]


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
    store: Store,
    base: Pipeline,
    points: Iterable[tuple[int, Mapping[str, Any]]],
    *,
    register: bool,
    previous: Mapping[str, KeyParts] | None = None,
    force: Sequence[str] = (),
    pipelines: Mapping[int, Pipeline] | None = None,
    before: Graph | None = None,
    as_defaults: bool = True,
) -> Graph:
    """Plan every point (``(index, {stage.param: value})``) of a sweep over ``base`` (see the
    module docstring). ``register`` snapshots unregistered working-tree code, as a run does;
    the dry run plans without it; ``force`` runs these stages even if cached; ``pipelines`` gives a
    point a pipeline of its own instead of ``base`` (blame's mixed configurations, bisect's probes).
    ``before``: the graph these points join (a search's trials join one by one), its tasks shared
    with them; ``as_defaults=False`` keeps each value's own type (a search's drawn values, see
    :func:`~modver.engine.planner.with_params`). Nothing is executed."""
    planned: list[PlannedPoint] = list(before.points) if before is not None else []
    owners: dict[str, tuple[int, str]] = dict(before.owners) if before is not None else {}
    checked: set[str] = {t for p in planned for t in p.params}
    for index, params in points:
        for target in params:
            if target not in checked:
                check_param(base, target, f"sweep param {target}")
                checked.add(target)
        pipeline = with_params(pipelines[index] if pipelines and index in pipelines else base, params,
                               as_defaults=as_defaults)  # fmt: skip
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


def build_tasks(
    store: Store, graph: Graph, runs: Mapping[int, str | None], keys: Iterable[str] | None = None
) -> dict[str, StageTask]:
    """The task of every key the graph computes (or of ``keys``); its logs go to the owner
    point's run (``runs``)."""
    tasks = {}
    for key in keys if keys is not None else graph.owners:
        index, stage = graph.owners[key]
        point = graph.point(index)
        p = next(p for p in point.plans if p.name == stage)
        tasks[key] = task_for(store, p, runs.get(index))
    return tasks


def check_calls(registry: Registry, store: Store, graph: Graph) -> None:
    """Every stage of every point can be called with its inputs and params, judged from the
    entry's source (its ``def``, read from its version or the working tree) without importing
    it — the dry run's twin of the real sweep's check (:func:`modver.engine.executor.call_problem`, the
    same error). An entry whose signature the source does not settle (decorated, defined
    dynamically, not found) is left to the real sweep."""
    sources: dict[tuple[str | None, str], bytes | None] = {}
    seen: set[tuple[str, str, tuple[str, ...]]] = set()
    for point in graph.points:
        for p in point.plans:
            inputs = {kw: i.key for kw, i in p.key_parts.inputs.items() if i.key is not None}
            data = {kw: str(i.data) for kw, i in p.key_parts.inputs.items() if i.data is not None}
            names = (*inputs, *data, *p.spec.params)
            if (p.entry, p.fingerprint, tuple(sorted(names))) in seen:
                continue
            seen.add((p.entry, p.fingerprint, tuple(sorted(names))))
            path, _, target = p.entry.partition(":")
            task = StageTask(store, p.name, p.fingerprint, "", p.entry, p.key, inputs=inputs, data=data,
                             params=dict(p.spec.params), script=p.files)  # fmt: skip
            call: Callable[..., Any] = _no_call
            if target:
                commit = p.version.commit if p.version is not None else None
                if (commit, path) not in sources:
                    sources[commit, path] = _source(registry, commit, path)
                signature = _static_signature(sources[commit, path], target)
                if signature is None:
                    continue
                call = _signed(signature)
            problem = call_problem(task, call, names)
            if problem is not None:
                raise problem


def _no_call(**kwargs: Any) -> None:
    """Stands for a whole-module stage: it takes any params."""


def _signed(signature: inspect.Signature) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> None:
        """Stands for an entry, with its signature."""

    call.__signature__ = signature  # type: ignore[attr-defined]
    return call


def _source(registry: Registry, commit: str | None, path: str) -> bytes | None:
    """The entry file of a version (its history commit), or of the working tree (None)."""
    if commit is None:
        return registry.working_tree().read(path)
    return registry.history.files_at(commit).get(path)


_HAS_DEFAULT = object()


def _static_signature(source: bytes | None, target: str) -> inspect.Signature | None:
    """The signature ``target`` (``func``, ``Class``, ``Class.method``) is called with, from the
    module's source; None when the source does not settle it."""
    try:
        module = ast.parse(source or b"")
    except (SyntaxError, ValueError, RecursionError):
        return None  # the real sweep reports it, with its line
    parts = target.split(".")
    node = _last_definition(module.body, parts[0])
    if node is None or (node.decorator_list and not isinstance(node, ast.ClassDef)) or len(parts) > 2:
        return None
    if isinstance(node, ast.ClassDef):
        if node.decorator_list or node.keywords or (node.bases and len(parts) == 1):
            return None  # a dataclass, a metaclass, an inherited __init__
        name = parts[1] if len(parts) == 2 else "__init__"
        method = _last_definition(node.body, name)
        if method is None:
            return inspect.Signature() if len(parts) == 1 else None
        if isinstance(method, ast.ClassDef):
            return None
        kinds = [d.id for d in method.decorator_list if isinstance(d, ast.Name)]
        if len(kinds) != len(method.decorator_list) or len(kinds) > 1 or kinds[:1] not in ([], ["staticmethod"],
                                                                                            ["classmethod"]):  # fmt: skip
            return None
        drop = 0 if kinds == ["staticmethod"] else 1
        return _signature(method.args, drop)
    return _signature(node.args, 0)


def _last_definition(body: list[ast.stmt], name: str) -> ast.FunctionDef | ast.ClassDef | None:
    """The last top-level ``def``/``class`` ``name`` in ``body``; None if ``name`` is also bound
    otherwise (an assignment, an import: decided at run time)."""
    found: ast.FunctionDef | ast.ClassDef | None = None
    for stmt in body:
        if isinstance(stmt, ast.FunctionDef | ast.ClassDef) and stmt.name == name:
            found = stmt
        elif (isinstance(stmt, ast.AsyncFunctionDef) and stmt.name == name) or name in _bound_names(stmt):
            return None
    return found


def _bound_names(stmt: ast.stmt) -> set[str]:
    if isinstance(stmt, ast.Import | ast.ImportFrom):
        return {(a.asname or a.name).split(".")[0] for a in stmt.names}
    if isinstance(stmt, ast.Assign | ast.AnnAssign | ast.AugAssign):
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    if isinstance(stmt, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef):
        return set()
    names = {n.id for n in ast.walk(stmt) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    defined = (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)
    names.update(n.name for n in ast.walk(stmt) if isinstance(n, defined))  # under an `if`, a `try`
    return names | {
        (a.asname or a.name).split(".")[0]
        for n in ast.walk(stmt)
        if isinstance(n, ast.Import | ast.ImportFrom)
        for a in n.names
    }


def _signature(args: ast.arguments, drop: int) -> inspect.Signature | None:
    """The signature of ``args`` without its first ``drop`` positional parameters (self, cls)."""
    P = inspect.Parameter
    positional = [*args.posonlyargs, *args.args]
    defaults = [P.empty] * (len(positional) - len(args.defaults)) + [_HAS_DEFAULT] * len(args.defaults)
    params = [
        P(a.arg, P.POSITIONAL_ONLY if i < len(args.posonlyargs) else P.POSITIONAL_OR_KEYWORD, default=d)
        for i, (a, d) in enumerate(zip(positional, defaults, strict=True))
    ][drop:]
    if len(positional) < drop:
        return None
    if args.vararg is not None:
        params.append(P(args.vararg.arg, P.VAR_POSITIONAL))
    for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        params.append(P(a.arg, P.KEYWORD_ONLY, default=P.empty if d is None else _HAS_DEFAULT))
    if args.kwarg is not None:
        params.append(P(args.kwarg.arg, P.VAR_KEYWORD))
    try:
        return inspect.Signature(params)
    except ValueError:
        return None
