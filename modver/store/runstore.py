"""The run records on disk: ``.modver/runs/<run-id>/run.json`` and the stages' logs.

Run ids (:func:`new_run_id`) look like ``20261122-153012-123456-0004d2-9f3ab1``: UTC date,
time, microseconds, process id (6 hex digits) and 24 random bits. They sort by start time as
strings and are unique across concurrent processes and machines sharing a file system.

A record appears with its folder (built under a temporary name, published with one rename) and
is replaced atomically; next to ``run.json``, ``<stage>.stdout`` and ``<stage>.stderr`` hold what
each stage printed. The record's schema is :mod:`modver.record`. :meth:`RunStore.list` never fails
on a damaged run: a folder whose ``run.json`` is missing, unreadable or damaged is listed as a
record of status ``corrupt`` whose error says what is wrong.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

from modver import _fs
from modver.errors import AmbiguousRunError, StoreError, UnknownRunError
from modver.names import suggest, validate_name
from modver.record import ErrorInfo, RunRecord

__all__ = ["LOG_STREAMS", "RUN_FILE", "RunStore", "new_run_id", "now_iso", "run_id_time", "sort_by_start"]

RUN_FILE = "run.json"
LOG_STREAMS = ("stdout", "stderr")
_LATEST = re.compile(r"^latest(?:~(\d+))?$")


def now_iso() -> str:
    """The current time as the records write it: ISO 8601, UTC, microseconds."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def new_run_id(now: datetime | None = None) -> str:
    """A fresh run id, sortable by start time and unique across processes (see module doc)."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{moment:%Y%m%d-%H%M%S-%f}-{os.getpid() & 0xFFFFFF:06x}-{secrets.token_hex(3)}"


def run_id_time(run_id: str) -> str | None:
    """The start time encoded in a run id, as ISO 8601 UTC, or None for a foreign id."""
    try:
        moment = datetime.strptime(run_id[:22], "%Y%m%d-%H%M%S-%f").replace(tzinfo=UTC)
    except ValueError:
        return None
    return moment.isoformat(timespec="microseconds")


class RunStore:
    """The run records under ``root`` (normally ``.modver/runs``). ``on_final`` is called with a
    run's id after each final (durable) write of its record: the project's runs index takes it
    (:meth:`modver.store.layout.Store.run_store`)."""

    def __init__(self, root: Path, *, on_final: Callable[[str], None] | None = None):
        self.root = Path(root)
        self.on_final = on_final

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r})"

    def path(self, run_id: str) -> Path:
        """The folder of a run."""
        if not run_id or "/" in run_id or "\\" in run_id or run_id.startswith("."):
            raise UnknownRunError(f"invalid run id {run_id!r}")
        return self.root / run_id

    # -- writing ------------------------------------------------------------------------------

    def create(self, record: RunRecord) -> None:
        """Start a run's record; its run id must be new."""
        folder = self.path(record.run)
        # the folder appears with its run.json in it: a reader never sees a run without a record
        with _fs.write_faults(f"cannot write the record of run {record.run}", str(folder)):
            tmp = _fs.make_temp_dir(self.root, record.run)
            try:
                _fs.write_json_atomic(tmp / RUN_FILE, record.to_json())
            except BaseException:
                _fs.remove_tree(tmp)
                raise
            published = _fs.publish_dir(tmp, folder)
        if not published:
            raise StoreError(
                f"run {record.run} exists already", where=str(folder), hint="use new_run_id() for every run"
            )

    def update(self, record: RunRecord, *, durable: bool = True) -> None:
        """Replace a run's record atomically (readers see the old or the new one).

        ``durable=False`` skips the fsync: for progress updates that a later write supersedes.
        """
        if not self.path(record.run).is_dir():
            raise UnknownRunError(f"no run {record.run}", where=str(self.root), hint="create() it first")
        path = self.path(record.run) / RUN_FILE
        with _fs.write_faults(f"cannot write the record of run {record.run}", str(path)):
            _fs.write_json_atomic(path, record.to_json(), durable=durable)
        if durable and self.on_final is not None:  # a final state (progress updates are not): indexed now
            self.on_final(record.run)

    def log_path(self, run_id: str, stage: str, stream: str) -> Path:
        """``<run-id>/<stage>.stdout`` or ``.stderr``."""
        if stream not in LOG_STREAMS:
            raise ValueError(f"stream must be one of {LOG_STREAMS}, not {stream!r}")
        validate_name(stage)
        return self.path(run_id) / f"{stage}.{stream}"

    def write_log(self, run_id: str, stage: str, stream: str, content: str | bytes) -> Path:
        """Store what a stage printed (atomically, not fsynced)."""
        path = self.log_path(run_id, stage, stream)
        data = content.encode("utf-8") if isinstance(content, str) else bytes(content)
        with _fs.write_faults(f"cannot write what stage {stage} printed in run {run_id}", str(path)):
            _fs.write_bytes_atomic(path, data, durable=False)
        return path

    def read_log(self, run_id: str, stage: str, stream: str) -> str | None:
        """What a stage printed, or None when nothing was recorded."""
        try:
            return self.log_path(run_id, stage, stream).read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return None

    # -- reading ------------------------------------------------------------------------------

    def load(self, run_id: str) -> RunRecord:
        """A run's record. Unknown runs raise :class:`UnknownRunError`, damaged ones StoreError."""
        path = self.path(run_id) / RUN_FILE
        try:
            record = _fs.read_json(path)
        except FileNotFoundError as exc:
            if self.path(run_id).is_dir():
                raise StoreError(
                    f"run {run_id} has no {RUN_FILE} (its process died while starting)", where=str(path)
                ) from exc
            raise UnknownRunError(
                f"no run {run_id}", where=str(self.root), hint="see `modver runs` for the recorded runs"
            ) from exc
        except StoreError as exc:  # not JSON, or JSON Python cannot read (too deep, huge integers)
            if isinstance(exc.__cause__, (ValueError, UnicodeDecodeError, RecursionError)):
                raise self.damaged(run_id, f"it is not valid JSON ({_fs.json_problem(exc.__cause__)})") from exc
            raise
        try:
            loaded = RunRecord.from_json(record)
        except ValueError as exc:
            raise self.damaged(run_id, str(exc)) from None
        if loaded.run != run_id:
            raise self.damaged(run_id, f"it is the record of run {loaded.run!r}, not of {run_id}")
        return loaded

    def damaged(self, run_id: str, problem: str) -> StoreError:
        """The error for a run whose record is damaged: ``problem`` says what is wrong."""
        path = self.path(run_id) / RUN_FILE
        return StoreError(
            f"damaged run record {path}: {problem}",
            where=str(path),
            hint=f"move the folder {path.parent} out of {self.root} (the other runs are not affected) "
            "and run the command again",
        )

    def ids(self) -> list[str]:
        """Every run id, oldest first (ids sort by start time)."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def list(self) -> list[RunRecord]:
        """Every record, oldest first by start time; damaged runs appear with status "corrupt"."""
        return sort_by_start(self.load_listed(run_id) for run_id in self.ids())

    def load_listed(self, run_id: str) -> RunRecord:
        """A listed run's record, or, when it cannot be read, a record of status "corrupt"
        whose error says why."""
        try:
            return self.load(run_id)
        except StoreError as exc:
            return RunRecord.corrupt(run_id, run_id_time(run_id), ErrorInfo(type(exc).__name__, str(exc)))

    def resolve(self, ref: str) -> str:
        """The run id ``ref`` names: a run id, a unique prefix, ``latest`` or ``latest~N``."""
        ids = self.ids()
        if not ids:
            raise UnknownRunError("no runs recorded yet", where=str(self.root), hint="start one with `modver run`")
        ref = ref.strip()
        match = _LATEST.match(ref)
        if match:
            back = int(match.group(1) or 0)
            if back >= len(ids):
                raise UnknownRunError(
                    f"{ref} goes back {back} runs but only {len(ids)} are recorded",
                    hint=f"use latest~0 .. latest~{len(ids) - 1}",
                )
            return ids[-1 - back]
        if ref in ids:
            return ref
        matches = [run_id for run_id in ids if run_id.startswith(ref)] if ref else []
        if len(matches) == 1:
            return matches[0]
        if matches:
            shown = ", ".join(matches[:5]) + (", ..." if len(matches) > 5 else "")
            raise AmbiguousRunError(
                f"run {ref!r} is ambiguous: {len(matches)} runs match ({shown})",
                hint="give more characters of the run id",
            )
        near = suggest(ref, (run_id[: len(ref)] for run_id in ids)) if ref else None
        close = next((run_id for run_id in reversed(ids) if near and run_id.startswith(near)), None)
        raise UnknownRunError(
            f"no run {ref!r}; the latest is {ids[-1]}",
            where=str(self.root),
            hint=(f"did you mean {close!r}? " if close else "")
            + "see `modver runs`; refer to runs by id, unique prefix, latest or latest~N",
        )


def sort_by_start(records: Iterable[RunRecord]) -> list[RunRecord]:
    """``records`` oldest first by start time (then by run id)."""
    return sorted(records, key=_start_key)


def _start_key(record: RunRecord) -> tuple[str, str]:
    started = record.started if record.started is not None else run_id_time(record.run) or ""
    return (_normalize_iso(started), record.run)


def _normalize_iso(text: str) -> str:
    try:
        return datetime.fromisoformat(text).astimezone(UTC).isoformat(timespec="microseconds")
    except ValueError:
        return text
