"""Explaining results, the façade's part: ``project.explain`` — ``blame`` (the share of each factor
in a metric's change between two runs) and ``bisect`` (the first version of a stage's history
that crosses a threshold). Thin calls of :mod:`modver.explain`; they return its dataclasses."""

from __future__ import annotations

from typing import TYPE_CHECKING

from modver.api.runs import Runs
from modver.api.sweeps import Sweeps
from modver.api.workspace import Workspace

if TYPE_CHECKING:  # pragma: no cover
    from modver.engine.recorder import Event
    from modver.explain.bisect import BisectResult
    from modver.explain.blame import BlameResult

__all__ = ["Explain"]


class Explain:
    """Why a metric changed (see the module docstring)."""

    def __init__(self, workspace: Workspace):
        self._ws = workspace

    def blame(
        self, metric: str, run_a: str, run_b: str, *, jobs: int | None = None, scheduler: str | None = None,
        cluster: str | None = None, max_runs: int | None = None, on_stage: Event | None = None,
    ) -> BlameResult:  # fmt: skip
        """The share of each differing factor (stage version, param, data input) in the change of
        ``metric`` from run ``run_a`` to run ``run_b`` (:func:`modver.explain.blame.blame`); the
        mixed configurations run on the sweep engine, from the cache where their keys ran."""
        from modver.explain.blame import DEFAULT_MAX_RUNS, blame

        ws, runs = self._ws, Runs(self._ws)
        a, b = runs.record(run_a), runs.record(run_b)
        executor = Sweeps(ws).executor(jobs=jobs, scheduler=scheduler, cluster=cluster)
        return blame(ws.registry, ws.store, a, b, metric, executor,
                     max_runs=DEFAULT_MAX_RUNS if max_runs is None else max_runs, on_stage=on_stage)  # fmt: skip

    def bisect(
        self, metric: str, good: str, bad: str, *, stage: str | None = None, threshold: float | None = None,
        higher_is_better: bool | None = None, jobs: int | None = None, scheduler: str | None = None,
        cluster: str | None = None, on_stage: Event | None = None,
    ) -> BisectResult:  # fmt: skip
        """The first version of ``stage`` (or, without it, the first commit changing any stage)
        from run ``good``'s to run ``bad``'s whose ``metric`` crosses ``threshold`` (default:
        halfway), by binary search — ``jobs`` > 1 probes that many points at once
        (:func:`modver.explain.bisect.bisect`)."""
        from modver.explain.bisect import bisect

        ws, runs = self._ws, Runs(self._ws)
        g, b = runs.record(good), runs.record(bad)
        executor = Sweeps(ws).executor(jobs=jobs, scheduler=scheduler, cluster=cluster)
        return bisect(ws.registry, ws.store, g, b, metric, executor, stage=stage, threshold=threshold,
                      higher_is_better=higher_is_better, k=jobs or 1, on_stage=on_stage)  # fmt: skip
