"""``modver blame METRIC RUN_A RUN_B``: the share of a metric's change due to each factor.

The factors (:mod:`modver.explain.factors`) are each a stage's version, a param or a data input
that differs between the runs; ``v(S)`` is the metric of the configuration that takes the
factors ``S`` from B and the others from A, so ``v(∅)`` is A's metric and ``v(all)`` B's (read
from their records: nothing reruns them).

- **Exact Shapley shares** when every mixed configuration fits the budget (``2**n - 2 <=
  max_runs``; with the default budget, up to 4 factors): factor ``i``'s share is the average of
  ``v(S ∪ {i}) - v(S)`` over the orders the factors can be added in; the shares sum to
  ``v(B) - v(A)`` and the interaction is zero.
- Otherwise **one factor reverted at a time**: ``n`` configurations, B with factor ``i`` taken
  from A; factor ``i``'s share is ``v(B) - v(B without i)`` and the **interaction** is what the
  shares leave of ``v(B) - v(A)``. When even ``n`` exceeds the budget, ``max_runs`` factors are
  drawn (the draw is seeded by the two run ids, so a second blame draws the same and is served
  from the cache); the others get no share and their effect stays in the interaction.

The configurations run as the points of one graph on the sweep engine
(:func:`modver.sweep.driver.run_pipelines`): a stage whose key ran before is served from the
cache, one that several configurations share runs once. Their run records carry ``blame: <id>``;
the blame's result is kept in ``.modver/explain/blames/<id>.json`` (its ``--json``), which the
report draws as a waterfall chart.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from itertools import combinations
from typing import TYPE_CHECKING, Any

from modver import _fs, errors
from modver.engine.recorder import Event
from modver.engine.registry import Registry
from modver.explain.factors import Factor, Mix
from modver.names import did_you_mean
from modver.record import RunRecord, RunStatus
from modver.store.layout import Store
from modver.store.runstore import new_run_id

if TYPE_CHECKING:  # pragma: no cover
    from modver.sweep.cluster import ExecutorSpec

__all__ = ["DEFAULT_MAX_RUNS", "BlameResult", "BlameRun", "Share", "blame", "metric_of", "shapley"]

DEFAULT_MAX_RUNS = 14  # every subset of 4 factors


@dataclass(frozen=True)
class Share:
    """One factor and its share of the change (None: not measured, beyond the budget)."""

    factor: Factor
    share: float | None

    def to_json(self) -> dict[str, Any]:
        return {**self.factor.to_json(), "share": self.share}


@dataclass(frozen=True)
class BlameRun:
    """One mixed configuration: the factors it takes from B, its run, its metric."""

    from_b: tuple[str, ...]  # factor labels
    run: str
    value: float | None
    status: str

    def to_json(self) -> dict[str, Any]:
        return {"from_b": list(self.from_b), "run": self.run, "value": self.value, "status": self.status}


@dataclass(frozen=True)
class BlameResult:
    """A blame: the waterfall from A's metric to B's (see the module docstring)."""

    blame: str
    metric: str
    run_a: str
    run_b: str
    value_a: float
    value_b: float
    shares: tuple[Share, ...]
    interaction: float
    method: str  # shapley | one-at-a-time | sampled
    environment: tuple[tuple[str, str | None, str | None], ...]
    runs: tuple[BlameRun, ...]
    executions: int  # stage executions the configurations needed (0: all from the cache)
    notes: tuple[str, ...] = ()

    @property
    def change(self) -> float:
        return self.value_b - self.value_a

    def to_json(self) -> dict[str, Any]:
        return {
            "blame": self.blame,
            "metric": self.metric,
            "a": {"run": self.run_a, "value": self.value_a},
            "b": {"run": self.run_b, "value": self.value_b},
            "change": self.change,
            "factors": [s.to_json() for s in self.shares],
            "interaction": self.interaction,
            "method": self.method,
            "environment": [{"package": p, "a": a, "b": b} for p, a, b in self.environment],
            "runs": [r.to_json() for r in self.runs],
            "executions": self.executions,
            "notes": list(self.notes),
        }


def metric_of(record: RunRecord, metric: str, role: str) -> float:
    """``metric`` of a run that must have it, or a clear error naming the metrics it has."""
    if metric not in record.metrics:
        have = sorted(record.metrics)
        raise errors.MetricError(
            f"run {record.run} ({role}) has no metric {metric!r}; it has: {', '.join(have) or '(none)'}",
            hint=f"{did_you_mean(metric, have)}name a metric the run logged (`modver show {record.run}`)",
        )
    return float(record.metrics[metric])


def shapley(n: int, value: dict[frozenset[int], float]) -> list[float]:
    """Exact Shapley values of ``n`` players from ``value`` of every coalition."""
    out = []
    for i in range(n):
        others = [j for j in range(n) if j != i]
        total = 0.0
        for size in range(n):
            weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            for subset in combinations(others, size):
                s = frozenset(subset)
                total += weight * (value[s | {i}] - value[s])
        out.append(total)
    return out


def _plan(mix: Mix, max_runs: int) -> tuple[str, list[frozenset[int]], list[int], list[str]]:
    """The method, the configurations to run (as the factors taken from B), the factors measured
    and what to say about the budget."""
    n = len(mix.factors)
    everything = frozenset(range(n))
    if n == 0:
        return "shapley", [], [], []
    if 2**n - 2 <= max_runs:
        subsets = [frozenset(c) for size in range(1, n) for c in combinations(range(n), size)]
        return "shapley", subsets, list(range(n)), []
    notes = [f"{n} factors: exact Shapley shares need {2**n - 2} runs, more than --max-runs {max_runs}; "
             "each factor is reverted alone instead, and the interaction is what their shares leave"]  # fmt: skip
    measured = list(range(n))
    method = "one-at-a-time"
    if n > max_runs:
        rng = random.Random(f"{mix.a.run}/{mix.b.run}")
        measured = sorted(rng.sample(measured, max_runs))
        method = "sampled"
        skipped = [mix.factors[i].label for i in range(n) if i not in measured]
        notes.append(f"only {max_runs} of {n} factors fit --max-runs: not measured: {', '.join(skipped)}")
    return method, [everything - {i} for i in measured], measured, notes


def blame(
    registry: Registry,
    store: Store,
    a: RunRecord,
    b: RunRecord,
    metric: str,
    executor: ExecutorSpec,
    *,
    max_runs: int = DEFAULT_MAX_RUNS,
    on_stage: Event | None = None,
) -> BlameResult:
    """Blame the change of ``metric`` from run ``a`` to run ``b`` on the factors that differ
    (see the module docstring)."""
    from modver.sweep.driver import run_pipelines

    if max_runs < 1:
        raise errors.UsageError(f"--max-runs must be at least 1, not {max_runs}", hint="give --max-runs N, N >= 1")
    value_a, value_b = metric_of(a, metric, "A"), metric_of(b, metric, "B")
    mix = Mix.of(registry, store, a, b)
    n = len(mix.factors)
    method, subsets, measured, notes = _plan(mix, max_runs)
    blame_id = new_run_id()
    graph, records = run_pipelines(
        registry, store, [mix.pipeline(s) for s in subsets], executor, marks={"blame": blame_id}, on_stage=on_stage
    )
    value: dict[frozenset[int], float] = {frozenset(): value_a, frozenset(range(n)): value_b}
    runs = []
    for subset, record in zip(subsets, records, strict=True):
        got = float(record.metrics[metric]) if metric in record.metrics else None
        labels = tuple(mix.factors[i].label for i in sorted(subset))
        runs.append(BlameRun(labels, record.run, got, str(record.status)))
        if record.status is not RunStatus.SUCCEEDED or got is None:
            why = record.error.message if record.error is not None else f"it logged no {metric}"
            raise errors.RunError(
                f"blame {blame_id}: the configuration taking {', '.join(labels) or 'nothing'} from B failed "
                f"(run {record.run}: {why})",
                hint=f"see `modver show {record.run}`; fix the stage, then blame again (finished stages are cached)",
            )
        value[subset] = got
    shares: list[float | None]
    if method == "shapley":
        shares = list(shapley(n, value)) if n else []
    else:
        shares = [None] * n
        for i in measured:
            shares[i] = value_b - value[frozenset(range(n)) - {i}]
    interaction = (value_b - value_a) - sum(s for s in shares if s is not None)
    if method == "shapley":
        interaction = 0.0 if abs(interaction) < 1e-12 * max(1.0, abs(value_b - value_a)) else interaction
    if n == 0:
        notes.append("the runs differ in no stage version, param or data: the change is not theirs to explain")
    if mix.environment:
        notes.append("the environment differs (packages below); it is not varied")
    result = BlameResult(
        blame_id, metric, a.run, b.run, value_a, value_b,
        tuple(Share(f, s) for f, s in zip(mix.factors, shares, strict=True)), interaction, method,
        mix.environment, tuple(runs), graph.executions, tuple(notes),
    )  # fmt: skip
    _fs.write_json_atomic(store.explain / "blames" / f"{blame_id}.json", result.to_json())  # the report draws it
    return result
