"""Content-addressed stage outputs: ``.modver/cache/outputs/<key-hex>/``.

The key is computed by the caller (the runner digests fingerprint, params, upstream keys and
data hashes with ``modver._encoding.digest_value``: ``"mv1:<hex>"``); a bare hex string is
accepted too. The entry folder is named by the hex part and holds::

    object          the output, written by a serializer (modver.serialize); may be a folder
    stdout, stderr  what the stage printed when it ran (optional)
    entry.json      written last: key, serializer, created, stage, version, duration,
                    metrics (the metric events the stage logged), meta (anything else the caller
                    passed) and files {relative path: {size, checksum}}, the checksum being
                    "xxh3-128:<hex>" (older entries: "crc32:<hex>", "fletcher64:<hex>"; see
                    modver.serialize)

Writes are atomic and durable: the entry is built in a ``.tmp-*`` folder inside the cache root,
every file and folder of it is fsynced, and it is published with one ``os.rename`` (then the
cache root is fsynced): a crash of the process or of the machine leaves at most a temp folder
(ignored, and removed by :meth:`OutputCache.remove_stale_temps`), never a published entry whose
data is not on disk. When several processes put the same key at once, the first rename wins and
the others discard their copy, so the store ends with exactly one entry.

Reads are verified: :meth:`OutputCache.load` checks every file's size and checksum before it
deserializes anything, so an output damaged on disk, even without changing size, is a
:class:`~modver.errors.CacheError`, never a silently different object.

Objects whose classes live in user code are pickled under the materialized version's module
name (``_modver_<hex>...``); call ``modver.materialize.make_importable(store)`` before
:meth:`OutputCache.load` so such objects load without the working tree.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modver import _fs, serialize
from modver._encoding import digest_hex
from modver.errors import CacheError, StoreError

ENTRY_FILE = "entry.json"
FORMAT = 1
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

    def __init__(self, root: Path, *, lock_dir: Path | None = None):
        self.root = Path(root)
        self.lock_dir = Path(lock_dir) if lock_dir is not None else self.root / ".locks"

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
        """:meth:`get`, falling back to the project's storage: an entry missing here that a
        teammate pushed (``storage =`` in ``modver.toml``) is fetched, verified, into this cache
        (:func:`modver.storage.fetch_output`). Runs and ``load`` look entries up this way."""
        entry = self.get(key)
        if entry is not None or not (self.root.parent.parent.parent / "modver.toml").is_file():
            return entry
        from modver.storage import fetch_output

        return self.get(key) if fetch_output(self.root, key_hex(key)) else None

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

    # -- writing ------------------------------------------------------------------------------

    def put(self, key: str, obj: Any, meta: Mapping[str, Any] | None = None) -> Entry:
        """Store ``obj`` under ``key`` atomically and return its entry.

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
        if final.exists():  # a damaged entry: replace it, one process at a time
            with _fs.file_lock(self.lock_dir / f"{hexkey}.lock", what=f"cache entry {hexkey}"):
                if self._intact(key) is None:
                    _fs.remove_tree(final)
        tmp = _fs.make_temp_dir(self.root, hexkey[:16])
        try:
            record = self._write_entry(tmp, key, obj, meta)
        except BaseException:
            _fs.remove_tree(tmp)
            raise
        if not _fs.publish_dir(tmp, final):
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
        problems = []
        if serialize.OBJECT_NAME not in entry.files and not any(
            rel.startswith(serialize.OBJECT_NAME + "/") for rel in entry.files
        ):
            problems.append("entry.json lists no object file")
        for rel, info in entry.files.items():
            path = entry.path / rel
            try:
                size = path.stat().st_size
            except OSError:
                problems.append(f"{rel} is missing")
                continue
            if size != info.get("size"):
                problems.append(f"{rel} has {size} bytes, expected {info.get('size')}")
                continue
            if not deep:
                continue
            expected = str(info.get("checksum", ""))
            algorithm = expected.split(":", 1)[0]
            if algorithm not in serialize.CHECKSUMS:
                problems.append(f"{rel} has no checksum modver knows ({expected or 'none'})")
                continue
            try:
                actual = serialize.checksum_file(path, algorithm)
            except OSError as exc:
                problems.append(f"{rel} cannot be read: {exc.strerror or exc}")
                continue
            if actual != expected:
                problems.append(f"{rel} does not match its checksum")
        return problems


def _sync_tree(folder: Path) -> None:
    """fsync every file and folder under ``folder`` (itself included), each folder after what it
    holds, so that renaming ``folder`` into place publishes only data that is on disk."""
    try:
        for parent, _, names in os.walk(folder, topdown=False):
            for name in names:
                fd = os.open(os.path.join(parent, name), os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            _fs.fsync_dir(Path(parent))
    except OSError as exc:
        raise CacheError(
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
