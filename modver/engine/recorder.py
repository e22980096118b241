"""The life of a run's record: started, each stage's progress, the end — and a run that died.

A :class:`Recorder` holds the run's :class:`~modver.record.RunRecord` (frozen: every change is
a new record) and writes it through :class:`~modver.store.runstore.RunStore` at each step: when the
run starts (after planning, with every stage pending and its key known), when a stage starts
(so a record shows which stage was running should the process die in it), when it ends, and at
the end of the run, whatever the end is — success, a stage that failed, or Ctrl-C. Progress
writes are not fsynced; the first and the last are. A ``running`` record whose process is gone
reads as ``died`` (:func:`mark_dead`). A run starts from :func:`first_record` (every stage
pending, with its version and key) and tells its caller what each stage does as it goes
(:class:`StageEvent`); a run (:mod:`modver.engine.run`) and a sweep's points
(:mod:`modver.sweep.driver`) share both.

A record names each version by its number, and a ``modver pull`` may renumber a version made here
while the run is in progress (SPEC: a result is recorded under the version whose code produced it).
So every write (:func:`write_record`) derives the numbers from the fingerprints against the
history as it is at that moment, holding the history's numbering lock shared; the pull moves its
refs and repairs the records holding it exclusive. A record is thus written either before the
refs move (and the pull repairs it) or after (numbered anew), never with a number read before
and written after.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modver import errors
from modver.metrics import summarize
from modver.record import ErrorInfo, RunRecord, RunStatus, StageRecord, StageStatus
from modver.store.runstore import RunStore, now_iso

if TYPE_CHECKING:
    from modver.engine.planner import Pipeline, StagePlan
    from modver.engine.registry import Registry
    from modver.store.history import History

__all__ = ["Event", "Recorder", "StageEvent", "first_record", "mark_dead", "python_info", "write_record"]


@dataclass(frozen=True)
class StageEvent:
    """What a run says about a stage as it goes: ``kind`` is start, cached, done or failed."""

    kind: str
    name: str
    label: str  # "v3"
    reason: str = ""
    notes: tuple[str, ...] = ()
    duration: float | None = None
    timings: Mapping[str, float] = field(default_factory=dict)


Event = Callable[[StageEvent], None]


def write_record(
    runs: RunStore, record: RunRecord, history: History | None, *, create: bool = False, durable: bool = True
) -> RunRecord:
    """Write ``record`` (``create``: its first write), its version numbers derived from its
    fingerprints against ``history`` now, under the numbering lock (see the module docstring);
    the record as written. Without a history, as it is."""
    with history.numbering(shared=True) if history is not None else contextlib.nullcontext():
        if history is not None:
            record = record.with_version_labels(functools.partial(_label, history))
        if create:
            runs.create(record)
        else:
            runs.update(record, durable=durable)
    return record


def _label(history: History, stage: str, fingerprint: str) -> str | None:
    """The version number of ``fingerprint`` now; None (the label kept) when the history cannot
    be read: a damaged ref must not cost the run its record (``modver verify`` names it)."""
    try:
        return history.label(stage, fingerprint)
    except errors.StoreError:
        return None


class Recorder:
    """One run's record, written at every step (see the module docstring)."""

    def __init__(self, runs: RunStore, record: RunRecord, started: float, history: History | None = None):
        self.runs = runs
        self.record = record
        self.history = history  # the version numbers of every write are derived from it
        self._started = started  # time.perf_counter() when the run began
        self._events: list[dict[str, Any]] = []

    @classmethod
    def start(
        cls,
        runs: RunStore,
        record: RunRecord,
        *,
        started: float,
        logs: Mapping[str, tuple[str, str]] | None = None,
        history: History | None = None,
    ) -> Recorder:
        """Create the record (its folder appears with it) and the stages' first log lines.

        With ``history``, each write names the versions by the numbers their fingerprints have
        at that moment (see the module docstring)."""
        record = write_record(runs, record, history, create=True)
        for stage, streams in (logs or {}).items():
            for stream, text in zip(("stdout", "stderr"), streams):
                runs.write_log(record.run, stage, stream, text)
        return cls(runs, record, started, history)

    def _write(self, *, durable: bool) -> None:
        self.record = write_record(self.runs, self.record, self.history, durable=durable)

    def stage(self, name: str, *, events: tuple[dict[str, Any], ...] = (), **changes: Any) -> StageRecord:
        """Change stage ``name``'s record (``status=...``, ``duration=...``, ...), add the metric
        events it logged, and write the record; returns the stage's new record."""
        stage = replace(self.record.stages[name], **changes)
        self._events.extend(events)
        metrics, series = summarize(self._events)
        self.record = replace(self.record.with_stage(name, stage), metrics=metrics, metric_series=series)
        self._write(durable=False)
        return self.record.stages[name]

    def finish(self, status: RunStatus, *, planned: float, error: ErrorInfo | None = None) -> RunRecord:
        """End the run: stages still running are interrupted, those never started skipped (or
        left pending when the run succeeded), the time is split, the record fsynced."""
        stages = dict(self.record.stages)
        for name, stage in stages.items():
            if stage.status is StageStatus.RUNNING:
                stages[name] = replace(stage, status=StageStatus.INTERRUPTED)
            elif stage.status is StageStatus.PENDING and status is not RunStatus.SUCCEEDED:
                stages[name] = replace(stage, status=StageStatus.SKIPPED)
        duration = round(time.perf_counter() - self._started, 6)
        in_stages = round(sum(sum(s.timings.values()) for s in stages.values()), 6)
        self.record = replace(
            self.record,
            status=status,
            stages=stages,
            finished=now_iso(),
            duration=duration,
            error=error if error is not None else self.record.error,
            timings={"plan": planned, "stages": in_stages, "other": round(max(duration - planned - in_stages, 0.0), 6)},
        )
        self._write(durable=True)
        return self.record

    def amend(self, **changes: Any) -> RunRecord:
        """Change fields of a finished record (a reproduction's comparison) and write it."""
        self.record = replace(self.record, **changes)
        self._write(durable=True)
        return self.record


def first_record(
    registry: Registry,
    pipeline: Pipeline,
    plans: Sequence[StagePlan],
    run_id: str,
    started: str,
    *,
    reproduces: str | None = None,
    sweep: str | None = None,
) -> RunRecord:
    """The record a run starts with: every stage pending, with its version and key."""
    stages = {
        p.name: StageRecord(
            StageStatus.PENDING,
            p.key,
            fingerprint=p.fingerprint,
            version=p.version.version if p.version else None,
            key_parts=p.key_parts,
            entry=p.spec.entry,
            reason=p.reason,
            notes=p.notes,
        )
        for p in plans
    }
    data = {
        (p.spec.inputs[kw][len("data.") :] if kw in p.spec.inputs else kw): {"path": i.data, "hash": i.hash}
        for p in plans
        for kw, i in p.key_parts.inputs.items()
        if i.data is not None and i.hash is not None
    }
    python, packages = python_info()
    return RunRecord(
        run=run_id,
        status=RunStatus.RUNNING,
        started=started,
        host=socket.gethostname(),
        pid=os.getpid(),
        user=_user(),
        manifest_path=pipeline.manifest_path,
        manifest_content=pipeline.manifest_content,
        stages=stages,
        params={s.name: dict(s.params) for s in pipeline.stages},
        data=data,
        git_commit=registry.repo.head_commit(),
        git_dirty=registry.repo.is_dirty(),
        python=python,
        packages=packages,
        reproduces=reproduces,
        sweep=sweep,
        pins=dict(pipeline.pins) or None,
    )


def _user() -> str | None:
    """Who starts the run: the login name (``getpass.getuser``), or None when there is none."""
    import getpass

    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no USER/LOGNAME and no passwd entry (some containers)
        return None


def python_info() -> tuple[str, dict[str, str]]:
    """Python's version and the installed packages' versions, for the run record.

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
                egg = metadata.PathDistribution(path)
                name, version = egg.metadata["Name"], egg.version
            except (OSError, ValueError, KeyError):
                continue  # an egg without readable metadata has no version to record
            if name and version:
                packages.setdefault(str(name).replace("_", "-").lower(), str(version))
    return platform.python_version(), dict(sorted(packages.items()))


def mark_dead(record: RunRecord) -> RunRecord:
    """A "running" record whose process is gone (killed, machine crash) reads as "died".

    Only checked for runs started on this host; the record on disk is left as it is.
    """
    if record.status is not RunStatus.RUNNING or record.host != socket.gethostname() or record.pid is None:
        return record
    try:
        os.kill(record.pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return replace(record, status=RunStatus.DIED)
    except PermissionError:
        return record  # it exists, owned by another user
    return record
