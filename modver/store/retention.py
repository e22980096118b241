"""What the store keeps, and removing the rest: ``modver gc``.

Cached outputs and materialized versions accumulate in ``.modver/``. :func:`collect_garbage`
removes those that no kept run uses:

- the **kept runs** are every run, unless ``keep_last`` and/or ``older_than`` narrow them: with
  ``keep_last=N`` the newest N runs are kept, with ``older_than=S`` the runs started in the
  last S seconds; with both, a run is kept when either keeps it. A run still in progress is
  always kept.
- a **cached output** (``cache/outputs/<key>/``) is kept when a kept run's stage has its key;
  a **materialized version** (``versions/_modver_<hex16>/``) when a kept run used its
  fingerprint. Anything else goes, with what crashed writers left behind (temporary folders).
- **run records** and stage histories are never removed, unless ``remove_records`` asks for
  the records of the runs that are not kept (their logs go with them), and with them the
  records of finished sweeps none of whose runs is left (``.modver/sweeps/<id>.json``).

It is safe while runs are in progress: a run holds the store's gc lock shared from the moment
it starts planning until its record (naming every key and version it will use) is written;
``collect_garbage`` holds it exclusive while it decides and removes. A run therefore either
finished planning before (and its record protects what it uses) or starts planning after (and
recomputes what is gone). ``dry_run`` only lists what would go.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modver import _fs, errors
from modver.record import RunRecord, RunStatus

if TYPE_CHECKING:  # pragma: no cover
    from modver.store.layout import Store

__all__ = [
    "GcResult",
    "Removal",
    "collect_garbage",
    "dead_workspaces",
    "parse_duration",
    "store_lock",
    "workspace_lock",
]
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass(frozen=True)
class Removal:
    """One thing ``gc`` removes (or would remove)."""

    kind: str  # "output" | "version" | "record" | "sweep" | "leftover"
    path: Path
    size: int  # bytes
    detail: str  # the stage and version of an output, the run of a record, ...

    def to_json(self) -> dict[str, Any]:
        """``kind``, ``path``, ``size`` and ``detail``."""
        return {"kind": self.kind, "path": str(self.path), "size": self.size, "detail": self.detail}


@dataclass(frozen=True)
class GcResult:
    """What ``gc`` removed (or, with ``dry_run``, would remove)."""

    removed: tuple[Removal, ...]
    kept_runs: int
    runs: int
    dry_run: bool

    @property
    def freed(self) -> int:
        """Bytes freed (or that would be)."""
        return sum(r.size for r in self.removed)

    def to_json(self) -> dict[str, Any]:
        """``dry_run``, ``runs``, ``kept_runs``, ``freed`` (bytes) and ``removed``."""
        return {
            "dry_run": self.dry_run,
            "runs": self.runs,
            "kept_runs": self.kept_runs,
            "freed": self.freed,
            "removed": [r.to_json() for r in self.removed],
        }


def parse_duration(text: str) -> float:
    """Seconds in ``30d``, ``12h``, ``90m``, ``2w``, ``45s``; :class:`~modver.errors.UsageError` otherwise."""
    match = _DURATION.match(text)
    if match is None:
        raise errors.UsageError(
            f"invalid duration {text!r}", hint="write a number and a unit: 45s, 90m, 12h, 30d or 2w"
        )
    return float(match.group(1)) * _UNITS[match.group(2)]


def store_lock(store: Store, *, shared: bool) -> AbstractContextManager[None]:
    """The store's gc lock: shared for a run that plans, exclusive for ``gc`` (see module doc)."""
    what = "the store: a run is planning" if not shared else "the store: `modver gc` is removing outputs"
    return _fs.shared_or_exclusive_lock(store.gc_lock, shared=shared, what=what)


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except FileNotFoundError:
                continue
    return total


def _started(record: RunRecord) -> float | None:
    try:
        return datetime.fromisoformat(str(record.started)).timestamp()
    except ValueError:
        return None


def kept_runs(
    records: list[RunRecord], *, keep_last: int | None, older_than: float | None, now: float
) -> list[RunRecord]:
    """The records whose runs are kept (see the module docstring); ``records`` oldest first."""
    if keep_last is None and older_than is None:
        return list(records)
    newest = {id(r) for r in records[len(records) - keep_last :]} if keep_last else set()
    kept = []
    for r in records:
        started = _started(r)
        recent = older_than is not None and started is not None and now - started < older_than
        if id(r) in newest or recent or r.status is RunStatus.RUNNING:
            kept.append(r)
    return kept


def _sweeps_without_runs(store: Store, left: set[str]) -> list[Removal]:
    """The records of finished sweeps none of whose points' runs is ``left`` (the runs whose
    records stay): a sweep record names its points' runs, and would name nothing.
    A sweep with some runs left keeps its record: resuming it runs the points whose runs are gone."""
    from modver.store.sweepstore import SweepStore

    sweeps = SweepStore(store.sweeps)
    out = []
    for record in sweeps.list():
        runs = [p.run for p in record.points if p.run is not None]
        if record.status in ("running", "queued") or not runs or any(run in left for run in runs):
            continue
        for path in (sweeps.path(record.sweep), sweeps.lock_path(record.sweep)):
            if path.exists():
                detail = f"sweep {record.sweep} ({record.status}): none of its runs is kept"
                out.append(Removal("sweep" if path.suffix == ".json" else "leftover", path, _size(path), detail))
    return out


def collect_garbage(
    store: Store,
    records: Iterable[RunRecord],
    *,
    keep_last: int | None = None,
    older_than: float | None = None,
    remove_records: bool = False,
    dry_run: bool = False,
    now: float | None = None,
) -> GcResult:
    """Remove what no kept run uses (see the module docstring); call it holding
    :func:`store_lock` exclusive, with ``records`` read under that lock, oldest first (a
    "running" record whose process is gone must already read as "died")."""
    from modver.store.materialize import package_name

    if keep_last is not None and keep_last < 0:
        raise errors.UsageError(f"--keep-last must be 0 or more, not {keep_last}", hint="e.g. --keep-last 10")
    records = list(records)
    kept = kept_runs(records, keep_last=keep_last, older_than=older_than, now=time.time() if now is None else now)
    keys, packages = set(), set()
    for r in kept:
        for stage in r.stages.values():
            keys.add(stage.cache_key)
            if stage.fingerprint is not None:
                try:
                    packages.add(package_name(stage.fingerprint))
                except errors.ModverError:
                    continue  # a fingerprint no version is materialized under
    removed: list[Removal] = []
    cache = store.output_cache()
    for entry in cache.entries():
        if entry.key not in keys:
            removed.append(Removal("output", entry.path, _size(entry.path), f"{entry.stage}@{entry.version}"))
    versions = store.versions
    if versions.is_dir():
        for folder in sorted(versions.iterdir()):
            if folder.is_dir() and not folder.name.startswith(".") and folder.name not in packages:
                removed.append(Removal("version", folder, _size(folder), folder.name))
    for parent in (cache.root, versions, store.runs, store.tmp):
        for leftover in _fs.stale_temps(parent):
            removed.append(Removal("leftover", leftover, _size(leftover), "left by a crashed writer"))
    for path in dead_workspaces(store.path / "work"):
        what = "a workspace left by a killed run" if path.is_dir() else "the lock of a workspace left by a killed run"
        removed.append(Removal("workspace", path, _size(path), what))
    if remove_records:
        runs = store.run_store()
        kept_ids = {r.run for r in kept}
        for r in records:
            if r.run not in kept_ids and r.status is not RunStatus.RUNNING:
                folder = runs.path(r.run)
                removed.append(Removal("record", folder, _size(folder), f"run {r.run} ({r.status})"))
        left = {r.run for r in records if r.run in kept_ids or r.status is RunStatus.RUNNING}
        removed.extend(_sweeps_without_runs(store, left))
    if not dry_run:
        for item in removed:
            if item.kind == "workspace" and item.path.is_dir():
                _writable(item.path)  # its deps were placed read-only
            if item.path.is_dir() and not item.path.is_symlink():
                _fs.remove_tree(item.path)
            else:
                item.path.unlink(missing_ok=True)
    return GcResult(tuple(removed), len(kept), len(records), dry_run)


def workspace_lock(root: Path) -> Path:
    """The liveness lock of the workspace at ``root`` (beside it, out of the script's sight)."""
    return root.parent / f"{root.name}.lock"


def dead_workspaces(work: Path) -> list[Path]:
    """The workspaces (and stray locks) under ``work`` whose lock no live process holds: left by
    a killed run. A live run's workspace, or one a script orphaned by a kill still runs in, is
    never listed."""
    if not work.is_dir():
        return []
    found = []
    for path in sorted(work.iterdir()):
        if path.name.endswith(".lock"):
            stray = not (work / path.name[: -len(".lock")]).exists() and _age(path) > _STRAY_LOCK_AGE
            if stray and not _held(path):  # (young: a workspace being made)
                found.append(path)
            continue
        lock = workspace_lock(path)
        if path.is_dir() and not path.is_symlink() and not _held(lock):
            found += [path, lock] if lock.exists() else [path]  # the folder first, then its lock
    return found


def _held(lock: Path) -> bool:
    import fcntl

    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        return False  # the lock is taken before the folder is made: its maker is gone
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # releases the probe's lock
    return False


def _writable(path: Path) -> None:
    for folder, dirs, _files in os.walk(path):
        for name in dirs:
            try:
                os.chmod(os.path.join(folder, name), 0o755)
            except OSError:
                continue


_STRAY_LOCK_AGE = 3600.0


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return 0.0
