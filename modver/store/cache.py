"""Content-addressed stage outputs: ``.modver/cache/outputs/<key-hex>/``.

The key is computed by the caller (the runner digests fingerprint, params, upstream keys and
data hashes with ``modver._encoding.digest_value``: ``"mv1:<hex>"``); a bare hex string is
accepted too. The entry folder is named by the hex part and holds::

    object          the output, written by a serializer (modver.serialize); may be a folder
    stdout, stderr  what the stage printed when it ran (optional)
    entry.json      key, serializer, created, stage, version, duration, metrics (the metric
                    events the stage logged), meta (anything else the caller passed) and files
                    {relative path: {size, checksum}}, the checksum being "xxh3-128:<hex>"
                    (older entries: "crc32:<hex>", "fletcher64:<hex>"; see modver.serialize)
    stamp.json      written last, local to this clone (never pushed): the stat stamp of every
                    file above when it was written and verified (inode, size, mtime and ctime
                    in nanoseconds) and the checksum of entry.json

Writes are atomic and durable: the entry is built in a ``.tmp-*`` folder inside the cache root,
every file and folder of it is fsynced, and it is published with one ``os.rename`` (then the
cache root is fsynced): a crash of the process or of the machine leaves at most a temp folder
(ignored, and removed by :meth:`OutputCache.remove_stale_temps`), never a published entry whose
data is not on disk. When several processes put the same key at once, the first rename wins and
the others discard their copy, so the store ends with exactly one entry.

Reads are verified: :meth:`OutputCache.load` checks every file's size and checksum before it
deserializes anything, so an output damaged on disk, even without changing size, is a
:class:`~modver.errors.CacheError`, never a silently different object. A run that serves a
stage from the cache without loading its output checks the entry with :meth:`OutputCache.check`:
a file whose stat stamp is the one recorded is taken as written (any write to a file changes its
ctime, even one whose mtime is then restored with ``touch -r``; a replaced file has another
inode), any other file is checksummed in full; a file that passes gets its stamp refreshed (an
entry brought from storage has none yet), so the next check is a few ``stat`` calls again.

Objects whose classes live in user code are pickled under the materialized version's module
name (``_modver_<hex>...``); call ``modver.store.materialize.make_importable(store)`` before
:meth:`OutputCache.load` so such objects load without the working tree.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modver import _fs, serialize
from modver._encoding import digest_hex
from modver.errors import CacheError, StoreError

ENTRY_FILE = "entry.json"
STAMP_FILE = "stamp.json"
FORMAT = 1
STAMP_FORMAT = 1
_MAX_STAMPS = 16 << 20  # bytes of a stamp.json read at most (a bigger one is damage: full check)
_RESERVED_META = frozenset({"stage", "version", "duration", "metrics", "stdout", "stderr"})


@dataclass(frozen=True)
class Entry:
    """One cached output, as :meth:`OutputCache.get` reads it from ``entry.json``."""

    key: str
    serializer: str
    created: str  # ISO 8601, UTC
    path: Path  # the entry's folder
    stage: str | None = None
    version: str | None = None  # "v3"
    duration: float | None = None  # seconds the stage took when it ran
    metrics: list[dict[str, Any]] = field(default_factory=list)  # metric events it logged
    stdout: Path | None = None
    stderr: Path | None = None
    size: int = 0  # bytes of all files of the entry
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)  # everything else the caller passed

    def to_json(self) -> dict[str, Any]:
        """A JSON-friendly view (paths as strings)."""
        return {
            "key": self.key,
            "serializer": self.serializer,
            "created": self.created,
            "path": str(self.path),
            "stage": self.stage,
            "version": self.version,
            "duration": self.duration,
            "metrics": list(self.metrics),
            "stdout": str(self.stdout) if self.stdout else None,
            "stderr": str(self.stderr) if self.stderr else None,
            "size": self.size,
            "meta": dict(self.meta),
        }


def key_hex(key: str) -> str:
    """The folder name of ``key``: its hex part. Malformed keys raise :class:`CacheError`."""
    found = digest_hex(key)
    if found is None:
        raise CacheError(f"invalid cache key {key!r}: expected '<scheme>:<hex>' or '<hex>' (16-128 hex digits)")
    return found


class OutputCache:
    """Stage outputs addressed by key, under ``root`` (normally ``.modver/cache/outputs``)."""

    def __init__(self, root: Path, *, lock_dir: Path | None = None, fetch: Callable[[str], bool] | None = None):
        self.root = Path(root)
        self.lock_dir = Path(lock_dir) if lock_dir is not None else self.root / ".locks"
        self.fetch = fetch  # brings a missing entry (by key hex) from elsewhere; whether it came

    def __repr__(self) -> str:
        return f"OutputCache({str(self.root)!r})"

    # -- reading ------------------------------------------------------------------------------

    def path(self, key: str) -> Path:
        """The folder an entry for ``key`` lives (or would live) in."""
        return self.root / key_hex(key)

    def get(self, key: str) -> Entry | None:
        """The entry for ``key``, or None when there is none (a corrupt entry counts as none)."""
        try:
            return self._read_entry(self.path(key))
        except (FileNotFoundError, NotADirectoryError, StoreError):
            return None

    def lookup(self, key: str) -> Entry | None:
        """:meth:`get`, falling back to ``fetch``: the project's cache fetches an entry missing here
        that a teammate pushed to the team's storage, verified, into this cache
        (:meth:`modver.store.layout.Store.output_cache`). Runs and ``load`` look entries up this way."""
        entry = self.get(key)
        if entry is not None or self.fetch is None:
            return entry
        return self.get(key) if self.fetch(key_hex(key)) else None

    def _intact(self, key: str) -> Entry | None:
        """The entry for ``key`` if its files are all there with their recorded sizes and
        checksums."""
        entry = self.get(key)
        return entry if entry is not None and not self._problems(entry, deep=True) else None

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def keys(self) -> Iterator[str]:
        """Keys of the published entries (readable ones only)."""
        for entry in self.entries():
            yield entry.key

    def entries(self) -> Iterator[Entry]:
        """Every readable published entry, in folder-name order."""
        if not self.root.is_dir():
            return
        for child in sorted(self.root.iterdir()):
            if child.name.startswith(".") or not child.is_dir():
                continue
            try:
                yield self._read_entry(child)
            except (FileNotFoundError, StoreError):
                continue

    def load(self, key: str, *, verify: bool = True) -> Any:
        """The cached object for ``key``.

        The entry's files are checked against their recorded sizes and checksums before
        anything is deserialized (``verify=False`` checks sizes only). A missing or damaged
        entry raises :class:`CacheError` naming it.
        """
        entry = self.lookup(key)
        if entry is None:
            raise CacheError(
                f"no cached output for key {key}",
                where=str(self.path(key)),
                hint="run the pipeline again to recompute it",
            )
        problems = self._problems(entry, deep=verify)
        if problems:
            of = f" of stage {entry.stage}" + (f" ({entry.version})" if entry.version else "") if entry.stage else ""
            rerun = f"`modver run --force {entry.stage}`" if entry.stage else "`modver run --force STAGE`"
            raise CacheError(
                f"cached output{of} is damaged: {problems[0]} (entry {entry.path})",
                where=str(entry.path),
                hint=f"a run that needs it recomputes it; to replace it now, run {rerun}",
            )
        return serialize.load(entry.path, entry.serializer)

    def verify(self, key: str) -> bool:
        """Whether ``key`` has a complete entry whose files match their sizes and checksums."""
        return not self.problems(key)

    def problems(self, key: str) -> list[str]:
        """What is wrong with ``key``'s entry (empty when it is valid)."""
        folder = self.path(key)
        try:
            entry = self._read_entry(folder)
        except FileNotFoundError:
            return [f"no entry at {folder}"]
        except StoreError as exc:
            return [str(exc)]
        return self._problems(entry, deep=True)

    def check(self, entry: Entry) -> list[str]:
        """What is wrong with a published entry (empty when it is intact), checked the quick
        way: files whose stat stamp is the one :file:`stamp.json` recorded are taken as they
        were written; the others (and every file of an entry without stamps) are checked
        against their sizes and checksums, and the stamps of those that pass are recorded."""
        stamps = _read_stamps(entry.path)
        recorded = stamps.get("files", {})
        fresh: dict[str, Any] = {}
        problems: list[str] = []
        entry_stamp = _stat_stamp(entry.path / ENTRY_FILE)
        known = recorded.get(ENTRY_FILE)
        if isinstance(known, dict) and known.get("stamp") == entry_stamp:
            fresh[ENTRY_FILE] = known
        else:
            checksum = _checksum_or_none(entry.path / ENTRY_FILE)
            if isinstance(known, dict) and checksum != known.get("checksum"):
                problems.append(f"{ENTRY_FILE} was changed after it was written")
            fresh[ENTRY_FILE] = {"stamp": entry_stamp, "checksum": checksum}
        if not _lists_object(entry):
            problems.append("entry.json lists no object file")
        base = os.path.join(entry.path, "")  # plain strings: an entry may hold 10,000s of files
        for rel, info in entry.files.items():
            stamp = _stat_stamp(base + rel)
            was = recorded.get(rel)
            if stamp is not None and isinstance(was, dict) and was.get("stamp") == stamp:
                fresh[rel] = was
                continue
            problem = self._file_problem(entry, rel, info, deep=True)
            if problem is not None:
                problems.append(problem)
            fresh[rel] = {"stamp": stamp}
        if not problems and fresh != recorded:
            _write_stamps(entry.path, fresh, durable=False)
        return problems

    # -- writing ------------------------------------------------------------------------------

    def put(
        self, key: str, obj: Any, meta: Mapping[str, Any] | None = None, *, trees: Mapping[str, Path] | None = None
    ) -> Entry:
        """Store ``obj`` under ``key`` atomically and return its entry.

        ``trees`` maps paths inside the entry (``outs/data/prepared``) to files or folders that
        are *moved* there (a script stage's outs, from its workspace): they become files of the
        entry, checksummed and verified like the object.

        ``meta`` may hold ``stage``, ``version``, ``duration``, ``metrics`` (list of events),
        ``stdout``/``stderr`` (text, bytes, or a path to copy) and any other JSON values (kept
        under :attr:`Entry.meta`). When a valid entry exists already, or another process
        publishes one first, that entry is returned and ours is discarded.
        """
        meta = dict(meta or {})
        hexkey = key_hex(key)
        final = self.root / hexkey
        existing = self._intact(key)
        if existing is not None:
            return existing
        of = f" of stage {meta['stage']}" if isinstance(meta.get("stage"), str) else ""
        with _fs.write_faults(f"cannot store the output{of} in the cache", str(final)):
            if final.exists():  # a damaged entry: replace it, one process at a time
                with _fs.file_lock(self.lock_dir / f"{hexkey}.lock", what=f"cache entry {hexkey}"):
                    if self._intact(key) is None:
                        _fs.remove_tree(final)
            tmp = _fs.make_temp_dir(self.root, hexkey[:16])
            try:
                for rel, source in (trees or {}).items():
                    target = tmp / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.move(source, target)
                record = self._write_entry(tmp, key, obj, meta)
            except BaseException:
                _fs.remove_tree(tmp)
                raise
            published = _fs.publish_dir(tmp, final)
        if not published:
            winner = self.get(key)
            if winner is not None:
                return winner
            raise CacheError(
                f"another process left a damaged cache entry for {key}",
                where=str(final),
                hint="remove the folder and run again",
            )
        return self._entry_from_record(final, record)

    def remove(self, key: str) -> bool:
        """Delete ``key``'s entry; True when there was one."""
        final = self.path(key)
        if not final.exists():
            return False
        with _fs.file_lock(self.lock_dir / f"{final.name}.lock", what=f"cache entry {final.name}"):
            existed = final.exists()
            _fs.remove_tree(final)
        return existed

    def remove_stale_temps(self, older_than: float = 3600.0) -> int:
        """Delete what crashed writers left behind (temp folders older than ``older_than`` s)."""
        return _fs.remove_stale_temps(self.root, older_than)

    # -- internals ----------------------------------------------------------------------------

    def _write_entry(self, tmp: Path, key: str, obj: Any, meta: dict[str, Any]) -> dict[str, Any]:
        name, object_checksum = serialize.dump_with_checksum(obj, tmp)
        for stream in ("stdout", "stderr"):
            _write_log(tmp / stream, meta.get(stream))
        files: dict[str, dict[str, Any]] = {}
        for path in sorted(p for p in tmp.rglob("*") if p.is_file()):
            rel = path.relative_to(tmp).as_posix()
            checksum = (
                object_checksum if rel == serialize.OBJECT_NAME and object_checksum else serialize.checksum_file(path)
            )
            files[rel] = {"size": path.stat().st_size, "checksum": checksum}
        metrics = meta.get("metrics") or []
        if not isinstance(metrics, list):
            metrics = list(metrics)
        record = {
            "format": FORMAT,
            "key": key,
            "serializer": name,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "stage": meta.get("stage"),
            "version": meta.get("version"),
            "duration": meta.get("duration"),
            "metrics": metrics,
            "files": files,
            "meta": {k: v for k, v in meta.items() if k not in _RESERVED_META},
        }
        try:
            text = _fs.dumps_json(record)
        except (TypeError, ValueError) as exc:
            raise CacheError(f"cache metadata for {key} is not JSON-serializable: {exc}") from exc
        (tmp / ENTRY_FILE).write_text(text, encoding="utf-8")
        stamps: dict[str, Any] = {rel: {"stamp": _stat_stamp(tmp / rel)} for rel in files}
        stamps[ENTRY_FILE] = {"stamp": _stat_stamp(tmp / ENTRY_FILE), "checksum": _checksum_or_none(tmp / ENTRY_FILE)}
        _write_stamps(tmp, stamps, durable=False)  # fsynced with the rest of the entry, next
        _sync_tree(tmp)
        return record

    def _read_entry(self, folder: Path) -> Entry:
        record = _fs.read_json(folder / ENTRY_FILE)
        if not isinstance(record, dict) or "serializer" not in record or "files" not in record:
            raise StoreError(f"{folder / ENTRY_FILE} is not a cache entry", where=str(folder))
        return self._entry_from_record(folder, record)

    @staticmethod
    def _entry_from_record(folder: Path, record: dict[str, Any]) -> Entry:
        files = record.get("files") or {}
        return Entry(
            key=record.get("key", folder.name),
            serializer=record["serializer"],
            created=record.get("created", ""),
            path=folder,
            stage=record.get("stage"),
            version=record.get("version"),
            duration=record.get("duration"),
            metrics=list(record.get("metrics") or []),
            stdout=folder / "stdout" if "stdout" in files else None,
            stderr=folder / "stderr" if "stderr" in files else None,
            size=sum(int(info.get("size", 0)) for info in files.values()),
            files=dict(files),
            meta=dict(record.get("meta") or {}),
        )

    @staticmethod
    def _problems(entry: Entry, *, deep: bool) -> list[str]:
        problems = [] if _lists_object(entry) else ["entry.json lists no object file"]
        for rel, info in entry.files.items():
            problem = OutputCache._file_problem(entry, rel, info, deep=deep)
            if problem is not None:
                problems.append(problem)
        return problems

    @staticmethod
    def _file_problem(entry: Entry, rel: str, info: Any, *, deep: bool) -> str | None:
        """What is wrong with file ``rel`` of ``entry`` (its size; with ``deep``, its checksum)."""
        if not isinstance(info, dict):
            return f"{rel} has no size and checksum in entry.json"
        path = entry.path / rel
        try:
            size = path.stat().st_size
        except OSError:
            return f"{rel} is missing"
        if size != info.get("size"):
            return f"{rel} has {size} bytes, expected {info.get('size')}"
        if not deep:
            return None
        expected = str(info.get("checksum", ""))
        algorithm = expected.split(":", 1)[0]
        if algorithm not in serialize.CHECKSUMS:
            return f"{rel} has no checksum modver knows ({expected or 'none'})"
        try:
            actual = serialize.checksum_file(path, algorithm)
        except OSError as exc:
            return f"{rel} cannot be read: {exc.strerror or exc}"
        if actual != expected:
            return f"{rel} does not match its checksum"
        return None


def _lists_object(entry: Entry) -> bool:
    return serialize.OBJECT_NAME in entry.files or any(
        rel.startswith(serialize.OBJECT_NAME + "/") for rel in entry.files
    )


def _stat_stamp(path: Path | str) -> list[int] | None:
    """A file's stat stamp: [inode, size, mtime, ctime] (nanoseconds), or None when it cannot be
    stat'ed. Any write changes ctime, a replacement the inode."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _checksum_or_none(path: Path) -> str | None:
    try:
        return serialize.checksum_file(path)
    except OSError:
        return None


def _read_stamps(folder: Path) -> dict[str, Any]:
    """The entry's :data:`STAMP_FILE` (``{"files": {rel: {"stamp": [...], ...}}}``), or ``{}``
    when it is missing, damaged, too big or of another format: then every file is checked in full."""
    try:
        with open(folder / STAMP_FILE, "rb") as handle:
            raw = handle.read(_MAX_STAMPS + 1)
        data = json.loads(raw) if len(raw) <= _MAX_STAMPS else None
    except (OSError, ValueError, RecursionError):  # ValueError: not JSON, not UTF-8
        return {}
    if not isinstance(data, dict) or data.get("format") != STAMP_FORMAT or not isinstance(data.get("files"), dict):
        return {}
    return data


def _write_stamps(folder: Path, files: dict[str, Any], *, durable: bool) -> None:
    """Record the stamps; a stamp that cannot be written (a read-only cache) only costs the next
    check a full read."""
    try:
        _fs.write_json_atomic(folder / STAMP_FILE, {"format": STAMP_FORMAT, "files": files}, durable=durable)
    except OSError:
        pass


def _sync_tree(folder: Path) -> None:
    """fsync every file and folder under ``folder`` (:func:`modver._fs.sync_tree`)."""
    try:
        _fs.sync_tree(folder)
    except OSError as exc:
        raise _fs.write_failure("cannot write a cached output to disk", exc, str(folder)) or CacheError(
            f"cannot write a cached output to disk: {exc.strerror or exc}",
            where=str(folder),
            hint="check free disk space and permissions of the .modver folder",
        ) from exc


def _write_log(path: Path, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, str):
        path.write_text(value, encoding="utf-8")
    elif isinstance(value, (bytes, bytearray)):
        path.write_bytes(bytes(value))
    elif isinstance(value, os.PathLike):
        if Path(value).exists():
            shutil.copyfile(value, path)
    else:
        raise CacheError(f"{path.name} must be text, bytes or a path, not {type(value).__name__}")
