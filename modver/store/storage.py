"""The project's storage: run records and cached outputs shared by a team, and reaching it.

``modver.toml`` at the project root (committed, so the whole team shares it) names it::

    storage = "s3://team-bucket/modver"     # or a folder: "/mnt/shared/modver", "../store"
    [storage_options]                        # optional: keyword arguments of the fsspec file system
    endpoint_url = "http://127.0.0.1:9000"

Any fsspec URL works (``s3://`` with ``s3fs``, ``gs://`` with ``gcsfs``, ``sftp://``...); this is
the only module that imports fsspec, and only for such a URL: a local folder is used directly
(:class:`_Folder`), so it needs nothing installed. Layout in the storage::

    runs/<run-id>/run.json, <stage>.stdout, ...     one run's files, as in .modver/runs/
    runs/<run-id>.json                              its index: {"format", "files": {name: {size, checksum}}}
    outputs/<key-hex>/entry.json, object, ...       one cache entry, as in .modver/cache/outputs/
    outputs/<key-hex>.json                          its index

An item exists for readers only once its index is there, and the index is written last: a push
killed half way leaves files without an index, which the next push writes again. Every file is
checked against its xxh3-128 checksum (:mod:`modver.serialize`) on the way out (a damaged local
entry is not sent) and on the way in: a damaged object in storage is never served — its index is
removed, so the next push of a clone that has the item sends it again. A damaged item (an index
that is not JSON, is over 64 MiB, lists ``.``, ``..``, an empty path or a file bigger than it
says) is skipped and named; the other items come. Names that no item can have (``.``, ``..``,
hidden ones; for outputs anything but a key's hex digits) are not items. Files are written under
a temporary name, fsynced (a local folder) and renamed into place (object stores, whose writes
are atomic, are written directly); an item's folders are fsynced before its index names them.
Locally, what comes in is built in a temporary folder, fsynced and published with one rename.
A cache entry travels without its ``stamp.json`` (stat stamps mean nothing on another machine).

What moves when is :mod:`modver.share.transfer`'s (``push`` and ``pull``); outputs also come on
demand: a run whose stage output a teammate computed fetches that one entry
(:func:`fetch_output`, the cache's fallback: :meth:`modver.store.layout.Store.output_cache`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import posixpath
import secrets
import shutil
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modver import _fs, errors, serialize

if TYPE_CHECKING:  # pragma: no cover
    from modver.store.layout import Store

__all__ = [
    "OUTPUTS",
    "RUNS",
    "DamagedItemError",
    "Storage",
    "StorageConfig",
    "Transfer",
    "fetch_output",
    "load_config",
    "pull_item",
    "valid_name",
]

FORMAT = 1
RUNS, OUTPUTS = "runs", "outputs"
_INDEX = ".json"
_CHUNK = 4 << 20
_MAX_INDEX = 64 << 20  # bytes: an index is read whole, so a bigger one is damaged, not read
_ATOMIC_WRITES = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "memory"}  # object stores
_BACKENDS = ("botocore", "aiobotocore", "s3fs", "gcsfs", "google", "adlfs", "azure", "paramiko", "aiohttp", "fsspec")
_log = logging.getLogger("modver")


# -- configuration ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StorageConfig:
    """``storage`` and ``[storage_options]`` of ``modver.toml``."""

    url: str
    options: dict[str, Any]
    path: Path  # the modver.toml


def load_config(store: Store) -> StorageConfig | None:
    """The storage that the project's ``modver.toml`` names, or None when there is no file or no
    ``storage``."""
    path = store.config
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise errors.StorageError(
            f"cannot read {path.name}: {exc}", where=str(path), hint='it is TOML, e.g. storage = "s3://bucket/modver"'
        ) from exc
    url, options = data.get("storage"), data.get("storage_options", {})
    if url is None:
        return None
    if not isinstance(url, str) or not url.strip() or not isinstance(options, dict):
        raise errors.StorageError(
            "`storage` must be a folder or URL (a string), `[storage_options]` a table",
            where=str(path),
            hint='e.g. storage = "/mnt/shared/modver" or storage = "s3://bucket/modver"',
        )
    url = url.strip()
    if "://" not in url and not os.path.isabs(url):
        url = str((store.root / url).resolve())  # a folder relative to the project root
    return StorageConfig(url, dict(options), path)


def _is_fault(exc: BaseException) -> bool:
    """Whether ``exc`` is the storage's trouble (network, access, a missing backend), not a bug here."""
    if isinstance(exc, (OSError, TimeoutError, ImportError)):
        return True
    if any(c.__module__.split(".")[0] in _BACKENDS for c in type(exc).__mro__):
        return True
    return isinstance(exc, ValueError) and _raised_in_backend(exc)  # a bad URL or bucket name; not a bug here


def _raised_in_backend(exc: BaseException) -> bool:
    """Whether ``exc`` was raised inside a call of a storage backend (fsspec, s3fs, ...): one of the
    frames it passed through is the backend's, not only modver's own."""
    tb = exc.__traceback__
    while tb is not None:
        if str(tb.tb_frame.f_globals.get("__name__", "")).split(".")[0] in _BACKENDS:
            return True
        tb = tb.tb_next
    return False


def _storage_error(config: StorageConfig, what: str, exc: BaseException) -> errors.StorageError:
    detail = str(exc) or type(exc).__name__
    name = type(exc).__name__
    if isinstance(exc, ImportError):
        hint = f"install fsspec and its file system for {config.url.split('://')[0]}:// (S3: pip install 'modver[s3]')"
    elif "credential" in detail.lower() or "credential" in name.lower():
        hint = "set the storage's credentials (S3: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or ~/.aws)"
    elif isinstance(exc, PermissionError) or "denied" in detail.lower() or "forbidden" in detail.lower():
        hint = "check that your credentials may read and write this location"
    else:
        hint = f"check `storage` in {config.path} (a folder that exists, or an fsspec URL) and the network"
    return errors.StorageError(f"{what} {config.url}: {name}: {detail}", where=str(config.path), hint=hint)


@contextlib.contextmanager
def _faults(config: StorageConfig, what: str) -> Iterator[None]:
    try:
        yield
    except errors.ModverError:
        raise
    except Exception as exc:
        if not _is_fault(exc):
            raise
        failed = _fs.write_failure(f"{what} {config.url}", exc)  # a full disk, EIO, a read-only storage
        if failed is not None:
            raise errors.StorageError(failed.message, where=str(config.path), hint=failed.hint) from exc
        raise _storage_error(config, what, exc) from exc


class DamagedItemError(errors.StorageError, errors.DamagedError):
    """One item of the storage is damaged (its index or a file): it is not used, its index is
    removed, and the other items are not affected."""


def valid_name(kind: str, name: str) -> bool:
    """Whether ``name`` can be an item of ``kind``: a cache key's hex digits for outputs, a name a
    run folder can have for runs (never ``.``, ``..``, hidden or with a separator)."""
    if kind == OUTPUTS:
        return len(name) in range(16, 129) and all(c in "0123456789abcdef" for c in name)
    return bool(name) and not name.startswith(".") and not any(c in name for c in "/\\\0")


# -- the storage -----------------------------------------------------------------------------------


@dataclass
class Transfer:
    """What moved (or, with ``dry_run``, would move) between this clone and the storage."""

    url: str
    runs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    bytes: int = 0
    damaged: list[str] = field(default_factory=list)  # items refused: their files do not match their checksums
    failed: list[str] = field(default_factory=list)  # "kind/name: why" of items that could not be sent (push)
    dry_run: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "runs": list(self.runs),
            "outputs": list(self.outputs),
            "bytes": self.bytes,
            "damaged": list(self.damaged),
            "failed": list(self.failed),
            "dry_run": self.dry_run,
        }


class _Folder:
    """The few file-system calls :class:`Storage` makes, on a local folder, without fsspec (whose
    import costs more than a push with nothing new): the same names and behaviour as fsspec's."""

    protocol = ("file",)

    def isdir(self, path: str) -> bool:
        return os.path.isdir(path)

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def ls(self, path: str, detail: bool = False) -> list[str]:
        return [f"{path}/{name}" for name in os.listdir(path)]

    def cat_file(self, path: str, start: int | None = None, end: int | None = None) -> bytes:
        with open(path, "rb") as handle:
            handle.seek(start or 0)
            return handle.read() if end is None else handle.read(max(end - (start or 0), 0))

    def pipe_file(self, path: str, data: bytes) -> None:
        with open(path, "wb") as handle:  # on disk before mv() renames it into place
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())

    def rm_file(self, path: str) -> None:
        os.unlink(path)

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        os.makedirs(path, exist_ok=exist_ok)

    def mv(self, source: str, target: str) -> None:
        os.replace(source, target)
        _fs.fsync_dir(Path(target).parent)

    def invalidate_cache(self) -> None:
        pass


class Storage:
    """The storage at ``config.url``: a local folder directly, anything else through fsspec."""

    fs: Any

    def __init__(self, config: StorageConfig):
        self.config = config
        url = config.url.removeprefix("file://")
        if "://" not in url and not config.options:
            self.fs, self.base = _Folder(), url
        else:
            with _faults(config, "cannot open the storage"):
                import fsspec

                # a file system of its own: credentials and settings are read now, not kept from an earlier call
                self.fs, self.base = fsspec.core.url_to_fs(config.url, skip_instance_cache=True, **config.options)
        protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        self.local = "file" in protocols
        self.atomic = bool(set(protocols) & _ATOMIC_WRITES)
        self._checked = False

    def _path(self, *parts: str) -> str:
        return "/".join([self.base.rstrip("/"), *parts])

    def check(self) -> None:
        """Raise a clear error when the storage's folder or bucket does not exist (a typo)."""
        if self._checked:
            return
        with _faults(self.config, "cannot reach the storage"):
            if self.local:
                found = self.fs.isdir(self.base)
                what = f"the storage folder {self.base} does not exist"
            else:
                bucket = self.base.split("/", 1)[0]
                found = not self.atomic or self._bucket_exists(bucket)
                what = f"the storage's bucket {bucket!r} does not exist"
        if not found:
            raise errors.StorageError(
                what,
                where=str(self.config.path),
                hint=f"check `storage` in {self.config.path} for a typo, or create it first",
            )
        self._checked = True

    def _bucket_exists(self, bucket: str) -> bool:
        try:  # not fs.exists: it answers False for an error too (no credentials, no network)
            self.fs.info(bucket)
        except FileNotFoundError:
            return False
        return True

    def items(self, kind: str) -> set[str]:
        """Names of the complete items (those with an index) of ``kind`` (runs, outputs)."""
        self.check()
        with _faults(self.config, "cannot list"):
            self.fs.invalidate_cache()
            try:
                listed = self.fs.ls(self._path(kind), detail=False)
            except FileNotFoundError:
                return set()
        names = {name.rsplit("/", 1)[-1][: -len(_INDEX)] for name in listed if name.endswith(_INDEX)}
        return {name for name in names if valid_name(kind, name)}

    def has(self, kind: str, name: str) -> bool:
        """Whether item ``kind/name`` is complete in the storage (its index is there)."""
        self.check()
        with _faults(self.config, "cannot read"):
            return bool(self.fs.exists(self._path(kind, name + _INDEX)))

    def index(self, kind: str, name: str) -> dict[str, dict[str, Any]]:
        """The files of an item: relative path -> {size, checksum}, every path a plain relative
        one and every entry a size and a checksum. An index that is not one (not JSON, too big,
        listing ``.``, ``..`` or an empty path) raises :class:`DamagedItemError` and is removed."""
        try:
            with _faults(self.config, "cannot read"):
                raw = self.fs.cat_file(self._path(kind, name + _INDEX), start=0, end=_MAX_INDEX + 1)
        except errors.StorageError as exc:
            if isinstance(exc.__cause__, FileNotFoundError):  # removed since it was listed (found damaged)
                raise DamagedItemError(
                    f"{kind}/{name} went from storage {self.config.url} while it was read; it was not used",
                    where=f"{kind}/{name}",
                ) from exc
            raise
        if len(raw) > _MAX_INDEX:
            raise self._damaged(kind, name, f"its index is over {_MAX_INDEX >> 20} MiB")
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise self._damaged(kind, name, f"its index is not valid JSON ({_fs.json_problem(exc)})") from None
        files = data.get("files") if isinstance(data, dict) else None
        if not isinstance(files, dict):
            raise self._damaged(kind, name, "its index is not an index")
        folders: set[str] = set()
        for rel, info in files.items():
            parts = rel.split("/")
            if not rel or any(part in ("", ".", "..") for part in parts) or "\\" in rel or "\0" in rel:
                raise self._damaged(kind, name, f"its index lists {rel!r}")
            if not isinstance(info, dict) or type(info.get("size")) is not int or info["size"] < 0:
                raise self._damaged(kind, name, f"its index gives {rel!r} no size")
            folders.update("/".join(parts[:i]) for i in range(1, len(parts)))
        clash = sorted(folders & files.keys())
        if clash:
            raise self._damaged(kind, name, f"its index lists {clash[0]!r} as a file and a folder")
        return files

    def _damaged(self, kind: str, name: str, why: str) -> DamagedItemError:
        with contextlib.suppress(Exception):  # best effort: the next push of a clone that has it sends it again
            self.fs.rm_file(self._path(kind, name + _INDEX))
        return DamagedItemError(
            f"damaged object in storage {self.config.url}: {kind}/{name}: {why}; it was not used",
            where=f"{kind}/{name}",
            hint="`modver push` from a clone that has it sends it again",
        )

    # -- writing -----------------------------------------------------------------------------

    def put(self, kind: str, name: str, folder: Path, expected: dict[str, str], only: list[str] | None = None) -> int:
        """Send the files of ``folder`` (``only`` those, relative paths) as item ``kind/name``,
        then its index; bytes sent.

        A file whose checksum ``expected`` lists and does not match is not sent: CacheError."""
        files: dict[str, dict[str, Any]] = {}
        with _faults(self.config, "cannot write to"):
            listed = (
                only
                if only is not None
                else [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
            )
            for rel in sorted(listed):
                files[rel] = self._put_file(folder / rel, self._path(kind, name, rel), expected.get(rel))
            if self.local:  # the renames of the files are on disk before the index names them
                for parent in sorted({posixpath.dirname(rel) for rel in files}, reverse=True):
                    _fs.fsync_dir(Path(self._path(kind, name, parent) if parent else self._path(kind, name)))
            index = json.dumps({"format": FORMAT, "files": files}, sort_keys=True).encode()
            self._write(self._path(kind, name + _INDEX), index)
        return sum(int(f["size"]) for f in files.values())

    def _put_file(self, source: Path, target: str, expected: str | None) -> dict[str, Any]:
        size = source.stat().st_size
        checksum = serialize.checksum_file(source)
        if expected is not None and expected.startswith(serialize.CHECKSUM) and expected != checksum:
            raise errors.CacheError(f"{source} does not match its checksum", where=str(source))
        if self.local:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            tmp = f"{target}.tmp-{secrets.token_hex(4)}"
            try:
                _copy_local(source, Path(tmp))
                _fs.fsync_file(Path(tmp))  # on disk before the rename: never a torn file in storage
                os.replace(tmp, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        else:
            with open(source, "rb") as handle:
                self._write_stream(target, handle)
        return {"size": size, "checksum": checksum}

    def _write(self, target: str, data: bytes) -> None:
        if self.atomic:
            self.fs.pipe_file(target, data)
            return
        tmp = f"{target}.tmp-{secrets.token_hex(4)}"
        self.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
        self.fs.pipe_file(tmp, data)
        self.fs.mv(tmp, target)

    def _write_stream(self, target: str, handle: Any) -> None:
        tmp = target if self.atomic else f"{target}.tmp-{secrets.token_hex(4)}"
        if not self.atomic:
            self.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
        with self.fs.open(tmp, "wb") as out:
            while chunk := handle.read(_CHUNK):
                out.write(chunk)
        if tmp != target:
            self.fs.mv(tmp, target)

    # -- reading -----------------------------------------------------------------------------

    def get(self, kind: str, name: str, folder: Path) -> int:
        """Bring item ``kind/name`` into the (new, empty) ``folder``, every file verified; bytes."""
        files = self.index(kind, name)
        total = 0
        with _faults(self.config, "cannot read from"):
            for rel, info in sorted(files.items()):
                target = folder / rel
                try:  # a write here that fails (a full disk) is this clone's, not the storage's
                    with _fs.write_faults(f"cannot bring {kind}/{name} from the storage"):
                        target.parent.mkdir(parents=True, exist_ok=True)
                        complete = self._get_file(self._path(kind, name, rel), target, info["size"])
                except (FileNotFoundError, IsADirectoryError) as exc:
                    raise self._damaged(kind, name, f"{rel} is missing") from exc
                if not complete:
                    raise self._damaged(kind, name, f"{rel} is bigger than its index says")
                size, checksum = target.stat().st_size, serialize.checksum_file(target)
                if size != info.get("size") or checksum != info.get("checksum"):
                    raise self._damaged(kind, name, f"{rel} does not match its checksum")
                total += size
        return total

    def _get_file(self, source: str, target: Path, size: int) -> bool:
        """Copy ``source`` to ``target``, at most ``size`` bytes; False when it holds more."""
        if self.local:
            if not os.path.isfile(source):
                raise FileNotFoundError(source)
            if os.stat(source).st_size > size:
                return False
            _copy_local(Path(source), target)
            return True
        left = size + 1
        with self.fs.open(source, "rb") as handle, open(target, "wb") as out:
            while left > 0 and (chunk := handle.read(min(_CHUNK, left))):
                out.write(chunk)
                left -= len(chunk)
        return left > 0

    def size(self, kind: str, name: str) -> int:
        """Bytes of the files of an item, from its index."""
        return sum(int(info.get("size", 0)) for info in self.index(kind, name).values() if isinstance(info, dict))


def _copy_local(source: Path, target: Path) -> None:
    """Copy a file within this machine as ``cp`` does: ``copy_file_range`` (the kernel copies, or
    shares the blocks where the file system can), else a plain copy."""
    with open(source, "rb") as src, open(target, "wb") as dst:
        left = os.fstat(src.fileno()).st_size
        try:
            while left > 0:
                done = os.copy_file_range(src.fileno(), dst.fileno(), min(left, 1 << 30))
                if done == 0:
                    break
                left -= done
            if left <= 0:
                return
        except OSError:  # not across these file systems, or not on this kernel
            pass
        src.seek(0)
        dst.seek(0)
        dst.truncate()
        shutil.copyfileobj(src, dst, _CHUNK)


# -- bringing an item -------------------------------------------------------------------------------


def pull_item(
    storage: Storage, kind: str, name: str, parent: Path, result: Transfer, moved: list[str], dry_run: bool
) -> None:
    """Bring one item (built in a temporary folder, fsynced, published with one rename); a
    damaged one is named in ``result.damaged`` and the others go on."""
    if not valid_name(kind, name):
        return  # never an item: not ".", "..", a hidden or a path-like name
    if dry_run:
        try:
            result.bytes += storage.size(kind, name)
        except DamagedItemError:
            result.damaged.append(f"{kind}/{name}")
            return
        moved.append(name)
        return
    what = f"cannot bring {kind}/{name} from the storage"
    with _fs.write_faults(what, str(parent)):
        tmp = _fs.make_temp_dir(parent, name[:24])
    try:
        size = storage.get(kind, name, tmp)
        _fs.sync_tree(tmp)  # on disk before the rename publishes it
    except DamagedItemError:
        _fs.remove_tree(tmp)
        result.damaged.append(f"{kind}/{name}")
        return
    except OSError as exc:
        _fs.remove_tree(tmp)
        raise _fs.write_failure(what, exc, str(parent)) or errors.StoreError(
            f"cannot write {kind}/{name} from the storage to {parent}: {exc.strerror or exc}",
            where=str(parent),
            hint="check free disk space and permissions of the .modver folder",
        ) from exc
    except BaseException:
        _fs.remove_tree(tmp)
        raise
    if _fs.publish_dir(tmp, parent / name):  # else another process brought it first
        moved.append(name)
        result.bytes += size


# -- the cache's fallback ----------------------------------------------------------------------------

_opened: dict[Path, Storage | None] = {}


def fetch_output(store: Store, hexkey: str) -> bool:
    """Bring cache entry ``hexkey`` from the project's storage into its cached outputs; whether it
    came. Storage that cannot be reached counts as a miss (said once on the ``modver`` logger):
    the stage is computed here instead."""
    root, cache_root = store.root, store.outputs
    try:
        if root not in _opened:
            config = load_config(store)
            _opened[root] = Storage(config) if config is not None else None
        storage = _opened[root]
        if storage is None or not storage.has(OUTPUTS, hexkey):
            return False
        result = Transfer(storage.config.url)
        pull_item(storage, OUTPUTS, hexkey, cache_root, result, result.outputs, False)
    except errors.ModverError as exc:
        _opened[root] = None
        _log.warning("note: the storage is not used for cached outputs: %s", exc)
        return False
    if result.damaged:
        _log.warning("note: the cached output %s in storage is damaged: it is computed here", hexkey[:16])
    return bool(result.outputs) or (cache_root / hexkey).is_dir()  # ours, or another process's copy
