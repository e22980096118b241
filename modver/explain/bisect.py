"""``modver bisect METRIC --good RUN --bad RUN``: the first version that crosses a threshold.

The **steps** walked, in order, start at the good run's and end at the bad run's:

- with ``stage``: that stage's versions between the two runs' versions, in number order (every
  other factor — the other stages' versions, params, data — is the bad run's);
- without: the commits of the bad run's first-parent history after the good run's commit, each
  commit's stage versions together (``STAGE@git:REV``), a commit that changes no version passed
  over; params and data are the bad run's.

The first step is taken to be good and the last bad (their metrics are the runs'). A probe runs
a step's configuration on the sweep engine (a stage whose key ran before comes from the cache);
its metric is **bad** past the threshold (default: halfway between the runs' metrics; the
direction is the one from good to bad unless ``higher_is_better`` says), else **good**; a probe
that fails, or logs no such metric, is a **skip**, as ``git bisect skip``. Binary search: each
round probes the middle of the steps still in question — or, with ``k`` > 1, ``k`` points that
cut them into ``k + 1`` parts, at once — so ``n`` steps take ``ceil(log2(n - 1))`` probes one at
a time. Every round runs on one executor (:class:`~modver.sweep.cluster.Session`), started once. When skips are all that lies between the last good step and the first bad one, the
first bad is ambiguous: the result names the candidates. A probe found good after one found bad
(k-ary probing sees several points of a round) makes the history **non-monotonic**: the result
says so. The result is kept in ``.modver/explain/bisects/<id>.json`` (its ``--json``), which the
report draws as a line of the probes' metric by step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from modver import _fs, errors
from modver.engine.recorder import Event
from modver.engine.registry import Registry
from modver.explain.blame import metric_of
from modver.explain.factors import Mix, version_summary
from modver.names import did_you_mean
from modver.record import RunRecord, RunStatus
from modver.store.layout import Store
from modver.store.runstore import new_run_id

if TYPE_CHECKING:  # pragma: no cover
    from modver.sweep.cluster import ExecutorSpec

__all__ = ["BisectResult", "Probe", "Step", "bisect"]


@dataclass(frozen=True)
class Step:
    """One point of the walk: a label and the fingerprints it pins (stage -> fingerprint)."""

    label: str
    fingerprints: Mapping[str, str]
    versions: Mapping[str, str] = field(default_factory=dict)  # stage -> "vN", for diffs


@dataclass(frozen=True)
class Probe:
    """A step that was run: its metric, verdict (good, bad, skip) and run."""

    step: int
    label: str
    value: float | None
    verdict: str
    run: str
    why: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "label": self.label, "value": self.value, "verdict": self.verdict,
                "run": self.run, "why": self.why}  # fmt: skip


@dataclass(frozen=True)
class BisectResult:
    """What a bisect found (see the module docstring)."""

    bisect: str
    metric: str
    stage: str | None
    good: str
    bad: str
    threshold: float
    higher_is_better: bool
    steps: tuple[str, ...]
    probes: tuple[Probe, ...]
    first_bad: str | None  # the step's label; None when skips leave it ambiguous
    candidates: tuple[str, ...]  # ambiguous: the steps that may be the first bad one
    last_good: str | None
    changes: tuple[tuple[str, str, str], ...]  # (stage, one-line diff summary, command) at the first bad step
    shown_by: tuple[str, ...]  # the runs that show the crossing: last good, first bad
    monotonic: bool
    executions: int
    notes: tuple[str, ...] = ()
    good_value: float | None = None  # the metric of the good run and of the bad run
    bad_value: float | None = None

    @property
    def found(self) -> bool:
        return self.first_bad is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "bisect": self.bisect, "metric": self.metric, "stage": self.stage, "good": self.good, "bad": self.bad,
            "threshold": self.threshold, "higher_is_better": self.higher_is_better, "steps": list(self.steps),
            "probes": [p.to_json() for p in self.probes], "found": self.found, "first_bad": self.first_bad,
            "candidates": list(self.candidates), "last_good": self.last_good,
            "changes": [{"stage": s, "summary": d, "command": c} for s, d, c in self.changes],
            "runs": list(self.shown_by), "monotonic": self.monotonic, "executions": self.executions,
            "notes": list(self.notes), "good_value": self.good_value, "bad_value": self.bad_value,
        }  # fmt: skip


def _stage_steps(registry: Registry, good: RunRecord, bad: RunRecord, stage: str) -> list[Step]:
    """The versions of ``stage`` from the good run's to the bad run's, in number order."""
    if stage not in bad.fingerprints or stage not in good.fingerprints:
        known = list(bad.fingerprints)
        raise errors.UnknownStageError(
            f"--stage {stage!r}: not a stage of both runs; stages: {', '.join(known)}",
            hint=f"{did_you_mean(stage, known)}name a stage the two runs ran",
        )
    history = registry.history
    va, vb = history.find(stage, good.fingerprints[stage]), history.find(stage, bad.fingerprints[stage])
    if va is None or vb is None:
        raise errors.UnknownVersionError(
            f"stage {stage}: a version the runs used is not in the history",
            hint="fetch the modver refs: git fetch origin 'refs/modver/*:refs/modver/*'",
        )
    if va.number == vb.number:
        raise errors.UsageError(
            f"runs {good.run} and {bad.run} use the same version of {stage} ({va.version}): nothing to bisect",
            hint="bisect another stage (--stage), or all commits (no --stage)",
        )
    step = 1 if vb.number > va.number else -1
    by_number = {v.number: v for v in history.versions(stage)}
    chain = [by_number[n] for n in range(va.number, vb.number + step, step) if n in by_number]
    return [Step(f"{stage}@{v.version}", {stage: v.fingerprint}, {stage: v.version}) for v in chain]


def _commit_steps(registry: Registry, good: RunRecord, bad: RunRecord, mix: Mix) -> list[Step]:
    """The commits from the good run's to the bad run's that change any stage's version."""
    repo = registry.repo
    if not good.git_commit or not bad.git_commit:
        raise errors.UsageError(
            "bisect over commits needs both runs' git commits, and one of them has none",
            hint="give --stage STAGE to bisect one stage's versions",
        )
    walk = repo.first_parent_walk(bad.git_commit)
    if good.git_commit not in walk:
        raise errors.UsageError(
            f"the good run's commit {good.git_commit[:10]} is not in the first-parent history of the bad run's "
            f"({bad.git_commit[:10]})",
            hint="give a good run older than the bad one on the same branch, or --stage STAGE",
        )
    base = mix.pipeline(range(len(mix.factors)))
    manifest_rel = registry.manifest_rel(registry.repo.root / base.manifest_path) if base.manifest_path else None
    steps = [Step(f"{good.git_commit[:10]} (good run)", dict(good.fingerprints), _labels(good))]
    for sha in walk[walk.index(good.git_commit) + 1 :]:
        found = {}
        for spec in base.stages:
            version = registry.resolve(spec, f"git:{sha}", docstrings=base.docstrings, manifest_rel=manifest_rel)
            assert version is not None
            found[spec.name] = version
        prints = {name: v.fingerprint for name, v in found.items()}
        if prints != dict(steps[-1].fingerprints):
            label = f"{sha[:10]} {registry.subject(sha)}"
            steps.append(Step(label, prints, {name: v.version for name, v in found.items()}))
    if dict(steps[-1].fingerprints) != bad.fingerprints:
        steps.append(Step(f"{bad.git_commit[:10]} (bad run)", dict(bad.fingerprints), _labels(bad)))
    return steps


def _labels(record: RunRecord) -> dict[str, str]:
    return {name: label for name, label in record.versions.items() if label}


def _pick(todo: list[int], k: int) -> list[int]:
    """``k`` steps of ``todo`` that cut it into ``k + 1`` parts (the middle when ``k`` is 1)."""
    if len(todo) <= k:
        return list(todo)
    return sorted({todo[(j + 1) * len(todo) // (k + 1)] for j in range(k)})


def bisect(
    registry: Registry,
    store: Store,
    good: RunRecord,
    bad: RunRecord,
    metric: str,
    executor: ExecutorSpec,
    *,
    stage: str | None = None,
    threshold: float | None = None,
    higher_is_better: bool | None = None,
    k: int = 1,
    on_stage: Event | None = None,
) -> BisectResult:
    """Find the first step from ``good`` to ``bad`` whose ``metric`` crosses the threshold (see
    the module docstring)."""
    from modver.sweep.cluster import Session
    from modver.sweep.driver import run_pipelines

    if k < 1:
        raise errors.UsageError(f"--jobs must be at least 1, not {k}", hint="give --jobs N with N >= 1")
    value_good, value_bad = metric_of(good, metric, "good"), metric_of(bad, metric, "bad")
    if higher_is_better is None:
        if value_good == value_bad:
            raise errors.UsageError(
                f"the good and the bad run have the same {metric} ({value_good:g}): which way is bad?",
                hint="say --higher-is-better or --lower-is-better, and give --threshold",
            )
        higher_is_better = value_good > value_bad
    limit = (value_good + value_bad) / 2 if threshold is None else float(threshold)

    def is_bad(value: float) -> bool:
        return value < limit if higher_is_better else value > limit

    side = "below" if higher_is_better else "above"
    if not is_bad(value_bad) or is_bad(value_good):
        raise errors.UsageError(
            f"with threshold {limit:g}, bad means {metric} {side} it; the good run has {value_good:g}, "
            f"the bad run {value_bad:g}",
            hint="give a --threshold between the two runs' values, or the direction (--higher-is-better)",
        )
    mix = Mix.of(registry, store, good, bad)
    steps = _stage_steps(registry, good, bad, stage) if stage else _commit_steps(registry, good, bad, mix)
    base = mix.pipeline(range(len(mix.factors)))  # every factor from the bad run
    bisect_id = new_run_id()
    verdicts: dict[int, Probe] = {}
    lo, hi, executions = 0, len(steps) - 1, 0
    with Session(executor, store) as session:  # one executor for every round
        while True:
            todo = [i for i in range(lo + 1, hi) if i not in verdicts]
            if not todo:
                break
            chosen = _pick(todo, k)
            pipelines = [replace(base, exact={**base.exact, **steps[i].fingerprints}) for i in chosen]
            graph, records = run_pipelines(registry, store, pipelines, executor, marks={"bisect": bisect_id},
                                           on_stage=on_stage, session=session)  # fmt: skip
            executions += graph.executions
            for i, record in zip(chosen, records, strict=True):
                verdicts[i] = _verdict(i, steps[i].label, record, metric, is_bad)
            bads = [i for i in chosen if verdicts[i].verdict == "bad"]
            hi = min([hi, *bads])
            goods = [i for i in chosen if verdicts[i].verdict == "good" and i < hi]
            lo = max([lo, *goods])
    result = _result(bisect_id, metric, stage, good, bad, limit, higher_is_better, steps, verdicts, lo, hi,
                     executions, registry)  # fmt: skip
    result = replace(result, good_value=value_good, bad_value=value_bad)
    _fs.write_json_atomic(store.explain / "bisects" / f"{bisect_id}.json", result.to_json())  # the report draws it
    return result


def _verdict(i: int, label: str, record: RunRecord, metric: str, is_bad: Any) -> Probe:
    if record.status is not RunStatus.SUCCEEDED:
        why = record.error.message.splitlines()[0] if record.error is not None and record.error.message else "failed"
        return Probe(i, label, None, "skip", record.run, why)
    if metric not in record.metrics:
        return Probe(i, label, None, "skip", record.run, f"logged no {metric}")
    value = float(record.metrics[metric])
    return Probe(i, label, value, "bad" if is_bad(value) else "good", record.run)


def _result(
    bisect_id: str, metric: str, stage: str | None, good: RunRecord, bad: RunRecord, limit: float,
    higher_is_better: bool, steps: list[Step], verdicts: dict[int, Probe], lo: int, hi: int, executions: int,
    registry: Registry,
) -> BisectResult:  # fmt: skip
    probes = tuple(verdicts[i] for i in sorted(verdicts))
    skipped = [i for i in range(lo + 1, hi) if verdicts.get(i) and verdicts[i].verdict == "skip"]
    notes: list[str] = []
    verdicts_in_order = ["good", *(p.verdict for p in probes if p.verdict != "skip"), "bad"]
    monotonic = all(not (a == "bad" and b == "good") for a, b in pairwise(verdicts_in_order))
    if not monotonic:
        back = [p.label for p in probes if p.verdict == "good" and p.step > hi]
        notes.append(f"non-monotonic: {metric} is bad at {steps[hi].label} but good again at {', '.join(back)}; "
                     "the first crossing is named, it may not be the only one")  # fmt: skip
    if skipped:
        notes.append(f"skipped (the probe failed): {', '.join(steps[i].label for i in skipped)}")
    shown = [verdicts[lo].run if lo in verdicts else good.run, verdicts[hi].run if hi in verdicts else bad.run]
    first: str | None = None
    candidates: tuple[str, ...] = ()
    changes: tuple[tuple[str, str, str], ...] = ()
    if skipped:
        candidates = tuple(steps[i].label for i in [*skipped, hi])
    else:
        first, changes = steps[hi].label, tuple(_changes(registry, steps[lo], steps[hi]))
    return BisectResult(
        bisect_id, metric, stage, good.run, bad.run, limit, higher_is_better, tuple(s.label for s in steps), probes,
        first, candidates, steps[lo].label, changes, tuple(shown), monotonic, executions, tuple(notes),
    )  # fmt: skip


def _changes(registry: Registry, before: Step, after: Step) -> list[tuple[str, str, str]]:
    """Per stage whose version differs between two steps: its one-line diff and the command."""
    out = []
    for name, fingerprint in after.fingerprints.items():
        old = before.fingerprints.get(name)
        if old is None or old == fingerprint:
            continue
        va, vb = before.versions.get(name, old[:12]), after.versions.get(name, fingerprint[:12])
        summary = version_summary(registry, name, old, fingerprint)
        out.append((name, summary, f"modver diff {name}@{va} {name}@{vb}"))
    return out
