"""A cache of the run records' summaries, so that listing 10,000 runs does not parse 10,000 files.

``.modver/cache/runs-index.sqlite`` holds, per run, a *summary* of its record (everything the
runs table shows: status, times, host and pid, stage versions and statuses, params, metrics,
the error's first line, unknown fields such as ``sweep``; not the manifest, the series, the
packages or tracebacks), the metrics it logged with steps in a compact form (for the report's
curves: :meth:`RunIndex.steps`), and the *stamp* of the ``run.json`` it was made from (inode,
modification and change times in nanoseconds, size). modver replaces records atomically (a new
inode each time), and any other write to the file changes its change time (ctime) -- even one
whose modification time is then restored (``touch -r``) -- so a stamp that matches means the
summary is of the record as it is now.

The record is the truth, the index only a cache. The project's :class:`RunStore` indexes a
record's final write at once (its ``on_final`` calls :meth:`RunIndex.note`: see
:meth:`modver.store.layout.Store.run_store`); every other record is indexed by the first reader:

- every read lists the runs folder and stats the ``run.json`` of each run it returns; a run
  missing from the index or whose stamp changed is read from its record and its row rewritten;
  rows of runs that are gone are deleted. Nothing else is trusted.
- concurrent readers may refresh it at once: SQLite's locking serializes the writes (a write
  that waits longer than :data:`BUSY_SECONDS` is skipped; the answer is right anyway). An error
  is told transient or not by its primary result code (``sqlite_errorcode & 0xFF``: an extended
  code such as ``SQLITE_BUSY_SNAPSHOT`` is a ``SQLITE_BUSY``): a transient one (busy, locked,
  read-only, full, I/O) leaves the file and a live writer's journal alone;
- a process killed while writing leaves SQLite's journal, which the next reader rolls back;
  writes are not fsynced (``synchronous = OFF``: what a killed process wrote is with the OS
  already; a file damaged by a power loss is rebuilt, a stale row fails its stamp);
- a damaged or foreign file (not SQLite, another schema, :data:`FORMAT` changed) is deleted and
  rebuilt from the records. If it cannot be written at all, records are read directly.

Summaries are :class:`~modver.record.RunRecord` values like any other (so ``--where``, ``--sort``
and the runs table work on them unchanged) whose heavy fields are empty; :func:`summarize`
says which.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from modver.record import RunRecord, RunStatus
from modver.store.runstore import RUN_FILE, RunStore, sort_by_start

__all__ = ["BUSY_SECONDS", "FORMAT", "NOTE_SECONDS", "RunIndex", "Steps", "step_series", "summarize"]

Steps = tuple[list[int], list[float]]  # a metric's steps and its values at them

FORMAT = 2  # of the rows: a change rebuilds every index
BUSY_SECONDS = 2.0
NOTE_SECONDS = 0.2  # how long a run's own process waits to index its record (then it leaves it to readers)
# primary result codes (https://sqlite.org/rescode.html) of errors that say nothing about the
# file's content: PERM, BUSY, LOCKED, NOMEM, READONLY, INTERRUPT, IOERR, FULL, CANTOPEN, PROTOCOL
_TRANSIENT = frozenset({3, 5, 6, 7, 8, 9, 10, 13, 14, 15})
_HEAVY = ("manifest", "metric_series", "packages", "comparison", "timings")


def summarize(record: RunRecord) -> dict[str, Any]:
    """The JSON of a record's summary: its ``to_json()`` without the manifest, metric series,
    packages, comparison and timings, each stage's key parts, notes, error and timings, and the
    run's traceback."""
    data = record.to_json()
    for name in _HEAVY:
        data.pop(name, None)
    data["stages"] = {
        name: {"status": s["status"], "cache_key": s["cache_key"], "duration": s["duration"], "reason": ""}
        for name, s in data["stages"].items()
    }
    if data.get("error"):
        data["error"] = {**data["error"], "traceback": None}
    return data


def step_series(record: RunRecord) -> dict[str, Steps]:
    """Each metric ``record`` logged at two steps or more: (steps, values) in logging order."""
    out: dict[str, Steps] = {}
    for name, points in record.metric_series.items():
        stepped = [p for p in points if p.get("step") is not None]
        if len(stepped) >= 2:
            out[name] = ([p["step"] for p in stepped], [p["value"] for p in stepped])
    return out


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _stamp(path: Path) -> str | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return f"{st.st_ino}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_size}"


class RunIndex:
    """The summaries of the runs in ``runs``, cached in the SQLite file ``path``; a write waits
    at most ``busy`` seconds for another process's."""

    def __init__(self, runs: RunStore, path: Path, busy: float = BUSY_SECONDS):
        self.runs = runs
        self.path = Path(path)
        self.busy = busy

    def __repr__(self) -> str:
        return f"RunIndex({self.runs!r}, {str(self.path)!r})"

    def summaries(self, last: int | None = None) -> list[RunRecord]:
        """The summaries of every run (or of the ``last`` N by run id, i.e. by start time),
        oldest first; damaged records come back as status ``corrupt``, as :meth:`RunStore.list`
        lists them."""
        ids = self.runs.ids()
        if last is not None:
            ids = ids[-last:] if last > 0 else []
        return sort_by_start(r for r, _ in self._rows(ids, everything=last is None) if r is not None)

    def note(self, run_id: str) -> None:
        """Index the record of ``run_id`` as it is now (a run's process, after writing its final
        record, so that the next listing need not read it); nothing is raised for the cache."""
        self._rows([run_id])

    def steps(self, ids: Sequence[str]) -> dict[str, dict[str, Steps]]:
        """The metrics logged with steps by each of the runs ``ids``: run -> metric -> (steps,
        values), in the order they were logged (metrics logged at no step, or once, are left out)."""
        return {run_id: series for run_id, (_, series) in zip(ids, self._rows(ids, steps_only=True))}

    def _rows(
        self, ids: Sequence[str], *, everything: bool = False, steps_only: bool = False
    ) -> list[tuple[RunRecord | None, dict[str, Steps]]]:
        """The summary and the step series of each of ``ids``, from the index where its stamp
        matches (``steps_only``: the series alone, the summary None), else from its record
        (rewriting the row); ``everything``: ``ids`` are all the runs, and rows of other runs
        are deleted."""
        stamps = {run_id: _stamp(self.runs.path(run_id) / RUN_FILE) for run_id in ids}
        cached = self._read(None if everything else ids, steps_only)
        out: list[tuple[RunRecord | None, dict[str, Steps]]] = []
        fresh: list[tuple[str, str, str, str]] = []
        for run_id in ids:
            row = cached.get(run_id)
            if row is not None and row[0] == stamps[run_id]:
                try:
                    if steps_only:
                        out.append((None, {k: (v[0], v[1]) for k, v in json.loads(row[2]).items()}))
                    else:
                        out.append((RunRecord.from_json(json.loads(row[1])), {}))
                    continue
                except (ValueError, TypeError, AttributeError, IndexError, KeyError):  # a damaged row
                    pass
            record = self.runs.load_listed(run_id)
            if record.status is RunStatus.CORRUPT:  # listed as such each time, until it is repaired
                out.append((record, {}))
                continue
            summary, steps = summarize(record), step_series(record)
            out.append((RunRecord.from_json(summary), steps))  # the same answer whether cached or not
            stamp = stamps[run_id]
            if stamp is not None:
                fresh.append((run_id, stamp, _dumps(summary), _dumps(steps)))
        gone = [run_id for run_id in cached if run_id not in stamps] if everything else []
        if fresh or gone:
            self._write(fresh, gone)
        return out

    # -- the SQLite file ------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=self.busy, isolation_level=None)
        try:
            db.execute("PRAGMA synchronous = OFF")  # a cache: a killed process's writes are in the OS already
            if db.execute("PRAGMA user_version").fetchone()[0] != FORMAT:
                with db:  # a new file (version 0) or one of another format: start again
                    db.execute("BEGIN IMMEDIATE")
                    if db.execute("PRAGMA user_version").fetchone()[0] == FORMAT:  # another process did
                        return db
                    db.execute("DROP TABLE IF EXISTS runs")
                    db.execute("CREATE TABLE runs (run TEXT PRIMARY KEY, stamp TEXT, summary TEXT, steps TEXT)")
                    db.execute(f"PRAGMA user_version = {FORMAT}")
        except BaseException:
            db.close()
            raise
        return db

    def _read(self, ids: Sequence[str] | None, steps_only: bool) -> dict[str, tuple[str, str, str]]:
        """The cached rows (of ``ids``, or all): run -> (stamp, summary or "", steps or ""); {}
        if the file is unusable."""
        if not self.path.exists():
            return {}
        try:
            db = self._connect()
            try:
                columns = "'', steps" if steps_only else "summary, ''"  # the series only for the report
                query = f"SELECT run, stamp, {columns} FROM runs"
                rows: Iterable[tuple[str, str, str, str]]
                if ids is None:
                    rows = db.execute(query)
                else:
                    rows = db.execute(f"{query} WHERE run IN ({','.join('?' * len(ids))})", list(ids))
                return {run: (stamp, summary, steps) for run, stamp, summary, steps in rows}
            finally:
                db.close()
        except sqlite3.DatabaseError as exc:
            self._give_up(exc)
        except OSError:  # the cache folder cannot be made: the records are read directly
            pass
        return {}

    def _write(self, fresh: Sequence[tuple[str, str, str, str]], gone: Sequence[str]) -> None:
        try:
            db = self._connect()
            try:
                with db:
                    db.execute("BEGIN IMMEDIATE")
                    db.executemany(
                        "INSERT OR REPLACE INTO runs (run, stamp, summary, steps) VALUES (?, ?, ?, ?)", fresh
                    )
                    db.executemany("DELETE FROM runs WHERE run = ?", [(run_id,) for run_id in gone])
            finally:
                db.close()
        except sqlite3.DatabaseError as exc:
            self._give_up(exc)
        except OSError:
            pass

    def _give_up(self, exc: sqlite3.DatabaseError) -> None:
        """After an error of SQLite's: a file that is busy for longer than BUSY_SECONDS, read-only
        or on a full disk stays as it is, and so does its journal (the records are read directly
        this time); one that is damaged, no database or of another schema is deleted, to be
        rebuilt from the records. Errors are told apart by their primary result code."""
        code = getattr(exc, "sqlite_errorcode", None)
        if not isinstance(code, int) or code & 0xFF in _TRANSIENT:
            return  # busy, read-only, full...; or an error of the sqlite3 module itself (no code)
        for suffix in ("", "-journal", "-wal", "-shm"):
            try:
                os.unlink(f"{self.path}{suffix}")
            except OSError:
                pass
