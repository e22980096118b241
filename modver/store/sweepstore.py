"""Sweep records: ``.modver/sweeps/<sweep-id>.json``, one per sweep, beside the run records.

A sweep's record says what was swept (the manifest, the axes and the plain ``--set`` values),
how it runs (the executor), and its points: each point's params, its run id and its status
(``pending`` until its run starts, then its run's status). The record is written when the sweep
starts, as each point ends, and when the sweep ends — always atomically (:mod:`modver._fs`), so a
reader (``modver sweeps`` in another terminal, or on a login node while the sweep runs as a batch
job) sees the old record or the new one. The run records stay the truth about each point: a
point's run says ``sweep: <sweep-id>``. JSON (sorted keys, indent 2)::

    format    int    FORMAT
    sweep     str    the sweep id (the run id scheme: sortable by start time)
    status    str    queued (--detach: its driver waits in the batch queue) | running | succeeded |
                     failed | interrupted (a running one whose driver is gone — it holds no lock
                     ``.<sweep-id>.lock`` beside the record — reads as "died", its running points too)
    started, finished   str (ISO 8601 UTC) | null;  host str, pid int
    manifest  str    the manifest's path, relative to the project root
    axes      {grid: [{target, values}], zip: [...], sets: ["stage.param=value"]}
    executor  str    how its tasks run ("local cluster of 2 workers", "tcp://...", "slurm")
    points    [{index, params {stage.param: value}, run str | null, status str, error str | null,
               trial int (a search's trial number), latest {step, value} (a search's live metric)}]
    tasks     {total, executed, cached, failed}   stage tasks of the graph
    optimize  (a search: ``sweep --optimize``) {metric, direction (maximize | minimize), trials,
              sampler, seed, study}; its points are its trials, added as they are asked
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from modver import _fs, errors
from modver.models import SweepSpec
from modver.names import suggest
from modver.store.runstore import RunStore, new_run_id, now_iso

__all__ = ["FORMAT", "Best", "SweepPoint", "SweepRecord", "SweepStore", "best_point", "parse_best"]

FORMAT = 1
FINISHED = ("succeeded", "failed", "interrupted")


@dataclass(frozen=True)
class Best:
    """The metric ``--best`` follows: ``max:acc`` (or just ``acc``) is highest, ``min:loss`` lowest."""

    metric: str
    lowest: bool = False

    def better(self, value: float, than: float | None) -> bool:
        return than is None or (value < than if self.lowest else value > than)


def parse_best(text: str) -> Best:
    """``acc``, ``max:acc`` or ``min:loss`` as a :class:`Best`."""
    how, colon, metric = text.partition(":")
    if not colon:
        how, metric = "max", text
    if how not in ("max", "min") or not metric.strip():
        raise errors.UsageError(f"bad --best {text!r}", hint="give a metric: acc (highest), max:acc or min:loss")
    return Best(metric.strip(), lowest=how == "min")


def best_point(record: SweepRecord, runs: RunStore, best: Best) -> tuple[SweepPoint, float] | None:
    """The succeeded point of ``record`` with the best value of ``best.metric`` (from its run's
    record), or None when no point has it."""
    leader: tuple[SweepPoint, float] | None = None
    for point in record.points:
        if point.run is None or point.status != "succeeded":
            continue
        try:
            metrics = runs.load(point.run).metrics
        except errors.ModverError:
            continue  # a run record gone or damaged: `modver runs` reports it
        if best.metric in metrics and best.better(float(metrics[best.metric]), leader[1] if leader else None):
            leader = (point, float(metrics[best.metric]))
    return leader


def _in_order(params: dict[str, Any], order: Sequence[str]) -> dict[str, Any]:
    """``params`` with the targets of ``order`` first, in that order (the others after)."""
    return {**{t: params[t] for t in order if t in params}, **params}


@dataclass(frozen=True)
class SweepPoint:
    """One point of a sweep: its params, and its run once it started."""

    index: int
    params: Mapping[str, Any]  # "stage.param" -> value
    run: str | None = None
    status: str = "pending"  # pending, or its run's status
    error: str | None = None  # the one-line error of a failed point
    trial: int | None = None  # a search's trial number (its study's)
    latest: Mapping[str, Any] | None = None  # a running trial's live metric: {step, value}

    def to_json(self) -> dict[str, Any]:
        out = {"index": self.index, "params": dict(self.params), "run": self.run, "status": self.status,
               "error": self.error}  # fmt: skip
        if self.trial is not None:
            out["trial"] = self.trial
        if self.latest is not None:
            out["latest"] = dict(self.latest)
        return out


@dataclass(frozen=True)
class SweepRecord:
    """One sweep (see the module docstring)."""

    sweep: str
    status: str
    manifest: str
    spec: SweepSpec
    points: tuple[SweepPoint, ...]
    started: str | None = None
    finished: str | None = None
    host: str | None = None
    pid: int | None = None
    executor: str = ""
    tasks: Mapping[str, int] = field(default_factory=dict)
    optimize: Mapping[str, Any] | None = None  # a search's settings (see the module docstring)

    @property
    def best(self) -> Best | None:
        """A search's metric and direction (None for a grid)."""
        if self.optimize is None:
            return None
        return Best(str(self.optimize["metric"]), lowest=self.optimize.get("direction") == "minimize")

    def with_new_point(self, params: Mapping[str, Any], **fields: Any) -> SweepRecord:
        """This record with one more point (a search's trial), at the end."""
        return replace(self, points=(*self.points, SweepPoint(len(self.points), dict(params), **fields)))

    @classmethod
    def new(
        cls, manifest: str, spec: SweepSpec, points: list[dict[str, Any]], executor: str, status: str = "running"
    ) -> SweepRecord:
        """A sweep that starts now (or is ``queued`` for a batch job), every point pending."""
        return cls(
            new_run_id(), status, manifest, spec, tuple(SweepPoint(i, p) for i, p in enumerate(points)),
            started=now_iso(), host=socket.gethostname(), pid=os.getpid(), executor=executor,
        )  # fmt: skip

    def count(self, *statuses: str) -> int:
        """How many points have one of ``statuses``."""
        return sum(p.status in statuses for p in self.points)

    def with_point(self, index: int, **changes: Any) -> SweepRecord:
        points = list(self.points)
        points[index] = replace(points[index], **changes)
        return replace(self, points=tuple(points))

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "sweep": self.sweep, "status": self.status, "started": self.started,
            "finished": self.finished, "host": self.host, "pid": self.pid, "manifest": self.manifest,
            "axes": self.spec.to_json(), "executor": self.executor, "points": [p.to_json() for p in self.points],
            "tasks": dict(self.tasks), **({"optimize": dict(self.optimize)} if self.optimize is not None else {}),
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: Any) -> SweepRecord:
        """The record in ``data``; ValueError (naming what is wrong) for anything else."""
        if not isinstance(data, dict):
            raise ValueError("it is not a JSON object")
        if isinstance(data.get("format"), int) and data["format"] > FORMAT:
            raise ValueError(f"it is of sweep format {data['format']}, newer than this modver reads: upgrade modver")
        try:
            spec = SweepSpec.from_json(data.get("axes") or {})
            order = [a.target for a in spec.axes] + [d.target for d in spec.search]
            points = tuple(
                SweepPoint(
                    int(p["index"]),
                    _in_order(dict(p["params"]), order),  # as given: the file's keys are sorted
                    p.get("run"),
                    str(p.get("status", "pending")),
                    p.get("error"),
                    None if p.get("trial") is None else int(p["trial"]),
                    dict(p["latest"]) if isinstance(p.get("latest"), dict) else None,
                )
                for p in data["points"]
            )
            optimize = data.get("optimize")
            if optimize is not None and not (isinstance(optimize, dict) and isinstance(optimize.get("metric"), str)):
                raise ValueError(f"optimize should be a mapping with a metric, not {optimize!r}")
            return cls(
                str(data["sweep"]), str(data["status"]), str(data.get("manifest") or ""), spec, points, data.get("started"), data.get("finished"),
                data.get("host"), data.get("pid"), str(data.get("executor") or ""), dict(data.get("tasks") or {}),
                optimize,
            )  # fmt: skip
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"it is not a sweep record ({type(exc).__name__}: {exc})") from None

    def alive(self) -> SweepRecord:
        """This record, or — running on this host in a process that is gone — one that reads "died"
        (for a record whose sweep holds no lock: :meth:`SweepStore.load` asks the lock first)."""
        if self.status != "running" or self.host != socket.gethostname() or self.pid is None:
            return self
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return self.died()
        except PermissionError:
            pass
        return self

    def died(self) -> SweepRecord:
        """This record as its driver left it when it died: the sweep and its running points "died"."""
        points = tuple(replace(p, status="died") if p.status == "running" else p for p in self.points)
        return replace(self, status="died", points=points)


class SweepStore:
    """The sweep records under ``root`` (normally ``.modver/sweeps``)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, sweep_id: str) -> Path:
        if not sweep_id or "/" in sweep_id or "\\" in sweep_id or sweep_id.startswith("."):
            raise errors.SweepError(f"invalid sweep id {sweep_id!r}", hint="see `modver sweeps`")
        return self.root / f"{sweep_id}.json"

    def save(self, record: SweepRecord, *, durable: bool = True) -> None:
        """Write the record atomically (``durable=False``: a progress write, not fsynced)."""
        path = self.path(record.sweep)
        with _fs.write_faults(f"cannot write the record of sweep {record.sweep}", str(path)):
            self.root.mkdir(parents=True, exist_ok=True)
            _fs.write_json_atomic(path, record.to_json(), durable=durable)

    def ids(self) -> list[str]:
        """Every sweep id, oldest first."""
        if not self.root.is_dir():
            return []
        return sorted(p.name[:-5] for p in self.root.iterdir() if p.name.endswith(".json") and p.name[0] != ".")

    def lock_path(self, sweep_id: str) -> Path:
        """The lock its driver holds while the sweep runs (hidden: not a record)."""
        self.path(sweep_id)  # the id checked
        return self.root / f".{sweep_id}.lock"

    @contextlib.contextmanager
    def hold(self, sweep_id: str, *, wait: float = 2.0) -> Iterator[None]:
        """Hold the sweep's lock for the block: the driver that runs it. Another driver of the same
        sweep (a second ``--resume``) gets :class:`~modver.errors.SweepError` after ``wait``
        seconds (a reader holds it shared for an instant). flock: the kernel releases it when its
        holder dies, so a sweep whose driver was killed can be resumed at once."""
        import fcntl

        with _fs.write_faults(f"cannot take the lock of sweep {sweep_id}", str(self.lock_path(sweep_id))):
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.lock_path(sweep_id), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise errors.SweepError(
                            f"sweep {sweep_id} is running already (in another modver process)",
                            where=str(self.path(sweep_id)),
                            hint="`modver sweeps` shows its progress; resume it once it has stopped",
                        ) from None
                    time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _running(self, record: SweepRecord) -> SweepRecord:
        """``record`` (status running) as it is: alive while its lock is held, else "died" — read
        again under the lock, since its driver may have ended it just now. A record of a modver
        that took no lock falls back to its pid."""
        import fcntl

        try:
            fd = os.open(self.lock_path(record.sweep), os.O_RDONLY)
        except FileNotFoundError:
            return record.alive()
        except OSError:
            return record
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return record  # its driver holds it
            try:
                again = self.load(record.sweep, alive=False)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
        return again.died() if again.status == "running" else again

    def load(self, sweep_id: str, *, alive: bool = True) -> SweepRecord:
        """A sweep's record; an unknown id or a damaged record is a :class:`~modver.errors.SweepError`.
        A running sweep whose driver is gone reads "died" (``alive=False``: as written)."""
        path = self.path(sweep_id)
        try:
            data = _fs.read_json(path)
        except FileNotFoundError:
            raise errors.SweepError(f"no sweep {sweep_id}", where=str(self.root), hint="see `modver sweeps`") from None
        except errors.StoreError as exc:
            raise errors.SweepError(str(exc), where=str(path), hint=exc.hint) from exc
        try:
            record = SweepRecord.from_json(data)
        except ValueError as exc:
            raise errors.SweepError(
                f"damaged sweep record {path}: {exc}", where=str(path),
                hint=f"move {path} out of {self.root} (its runs are not affected)",
            ) from None  # fmt: skip
        return self._running(record) if alive and record.status == "running" else record

    def list(self) -> list[SweepRecord]:
        """Every readable sweep record, oldest first (a damaged one is left out)."""
        out = []
        for sweep_id in self.ids():
            try:
                out.append(self.load(sweep_id))
            except errors.SweepError:
                continue
        return out

    def resolve(self, ref: str) -> str:
        """The sweep id ``ref`` names: an id, a unique prefix, or ``latest``."""
        ids = self.ids()
        if not ids:
            raise errors.SweepError(
                "no sweeps recorded yet", where=str(self.root), hint="start one with `modver sweep`"
            )
        ref = ref.strip()
        if ref == "latest":
            return ids[-1]
        matches = [i for i in ids if i.startswith(ref)] if ref else []
        if ref in ids:
            return ref
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise errors.AmbiguousSweepError(f"sweep {ref!r} is ambiguous: {len(matches)} sweeps match",
                                    hint="give more characters of the sweep id")  # fmt: skip
        near = suggest(ref, (i[: len(ref)] for i in ids)) if ref else None
        raise errors.UnknownSweepError(
            f"no sweep {ref!r}; the latest is {ids[-1]}", where=str(self.root),
            hint=(f"did you mean {near!r}? " if near else "") + "see `modver sweeps`",
        )  # fmt: skip
