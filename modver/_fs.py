"""Crash-safe file-system primitives shared by the store modules (cache, records, materialize).

Everything the ``.modver/`` store writes goes through here, so that a process killed at any
point leaves the store readable (SPEC invariant 5):

- files are written to a temporary sibling and moved into place with ``os.replace``
  (:func:`write_bytes_atomic`, :func:`write_text_atomic`, :func:`write_json_atomic`);
- directories are built under a temporary name in the same parent, fsynced (:func:`sync_tree`)
  and published with one ``os.rename`` (:func:`make_temp_dir`, :func:`publish_dir`): readers see
  the whole directory or nothing, even after a crash of the machine; when another process
  published the same name first, ours is discarded;
- inter-process locks come from the ``filelock`` library (:func:`file_lock`), whose timeouts
  become :class:`~modver.errors.ConcurrencyError`;
- a write the file system refuses (a full disk, a quota, a read-only file system, an I/O error:
  :data:`WRITE_FAILURES`) becomes one :class:`~modver.errors.WriteFailedError` saying what could not be
  written, where, and what to do (:func:`write_failure`, :func:`write_faults`).

Temporary names start with ``.tmp-`` so listings can skip them and :func:`remove_stale_temps`
can clean what a crash left behind.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from modver.errors import ConcurrencyError, StoreError, WriteFailedError

TEMP_PREFIX = ".tmp-"
TRASH_PREFIX = ".trash-"

# A write that the file system refuses (SPEC: "Every write can also fail"): what it is called, and
# what to do. Every write is to a temporary name first and every ref moves only after its objects
# are written, so the command can simply be run again.
_AGAIN = "then run the command again: nothing recorded was lost"
WRITE_FAILURES: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("no space left on device", f"free some space on that file system, {_AGAIN}"),
    errno.EDQUOT: ("disk quota exceeded", f"free some space or ask for a larger quota, {_AGAIN}"),
    errno.EROFS: ("read-only file system", f"make the file system writable, {_AGAIN}"),
    errno.EIO: (
        "I/O error",
        f"the disk reported an error: check it (`dmesg`), {_AGAIN}; `git fsck` checks the repository",
    ),
}


def write_failure(what: str, exc: BaseException, where: str | None = None) -> WriteFailedError | None:
    """``what: no space left on device writing PATH`` (and a hint) for a write the file system
    refused (:data:`WRITE_FAILURES`); None for any other exception."""
    if not isinstance(exc, OSError) or exc.errno not in WRITE_FAILURES:
        return None
    reason, hint = WRITE_FAILURES[exc.errno]
    path = exc.filename if exc.filename is not None else where
    target = f" writing {os.fsdecode(path)}" if path is not None else ""
    return WriteFailedError(f"{what}: {reason}{target}", where=where, hint=hint)


@contextlib.contextmanager
def write_faults(what: str, where: str | None = None) -> Iterator[None]:
    """``with write_faults(what):`` raises a write of its block that the file system refused as
    one :class:`StoreError` (:func:`write_failure`, ``from`` the OSError); any other exception
    passes as it is."""
    try:
        yield
    except OSError as exc:
        failed = write_failure(what, exc, where)
        if failed is None:
            raise
        raise failed from exc


def _temp_name(stem: str) -> str:
    return f"{TEMP_PREFIX}{stem}-{os.getpid():x}-{secrets.token_hex(4)}"


def fsync_dir(path: Path) -> None:
    """Flush a directory's entry table (the effect of a rename) to disk, where the OS allows it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse fsync on directories
        pass
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    """Flush a file's data to disk (without following a symlink); OSError when it cannot be."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_tree(folder: Path) -> None:
    """fsync every file and folder under ``folder`` (itself included), each folder after what it
    holds, so that renaming ``folder`` into place publishes only data that is on disk (a crash of
    the machine right after the rename never shows a torn file). OSError when one cannot be."""
    for parent, _, names in os.walk(folder, topdown=False, onerror=_raise):
        for name in names:
            fsync_file(Path(parent) / name)
        fsync_dir(Path(parent))


def _raise(exc: OSError) -> None:
    raise exc


def write_bytes_atomic(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Write ``data`` to ``path`` so readers see the old file or the new one, never a part.

    ``durable`` fsyncs the file before the rename (small metadata files: cheap and worth it).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / _temp_name(path.name)
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if durable:
        fsync_dir(path.parent)


def replace_file(
    path: Path, data: bytes, *, temp_dir: Path | None = None, only_if: Callable[[], bool] | None = None
) -> bool:
    """Atomically replace the user's file ``path`` (following a symlink: the link is kept).

    The temporary file is made in ``temp_dir`` (the store's ``tmp/``, git-ignored) so that a
    process killed mid-write leaves nothing in the user's folders for ``git status`` to show;
    when ``temp_dir`` is on another file system it is made beside the target instead. The new
    file keeps the old one's permissions and is fsynced before the rename. ``only_if`` is
    checked just before the rename: when it returns False nothing changes and False is
    returned.
    """
    target = Path(os.path.realpath(path))
    try:
        mode: int | None = target.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = None
    for folder in ([Path(temp_dir)] if temp_dir is not None else []) + [target.parent]:
        folder.mkdir(parents=True, exist_ok=True)
        if folder != target.parent:
            remove_stale_temps(folder)
        tmp = folder / _temp_name(target.name)
        try:
            with open(tmp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            if mode is not None:
                os.chmod(tmp, mode)
            if only_if is not None and not only_if():
                tmp.unlink()
                return False
            os.replace(tmp, target)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            if exc.errno == errno.EXDEV and folder != target.parent:
                continue  # the store is on another file system: write beside the target
            raise
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        fsync_dir(target.parent)
        return True
    raise AssertionError("unreachable: the last folder tried is the target's own")  # pragma: no cover


def write_text_atomic(path: Path, text: str, *, durable: bool = True) -> None:
    """:func:`write_bytes_atomic` for UTF-8 text."""
    write_bytes_atomic(path, text.encode("utf-8"), durable=durable)


def dumps_json(value: Any) -> str:
    """The store's JSON style: sorted keys, indent 2, trailing newline, non-ASCII kept."""
    return json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False, default=_json_default) + "\n"


def _json_default(value: Any) -> Any:
    """Last-resort conversions for values that reach a record (paths, numpy scalars, sets)."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    item = getattr(value, "item", None)  # numpy / torch scalars
    if callable(item):
        with contextlib.suppress(TypeError, ValueError, RuntimeError):
            converted = item()
            if isinstance(converted, (int, float, str, bool)) or converted is None:
                return converted
    return repr(value)


def write_json_atomic(path: Path, value: Any, *, durable: bool = True) -> None:
    """Write ``value`` as JSON (see :func:`dumps_json`) atomically."""
    write_text_atomic(path, dumps_json(value), durable=durable)


def read_json(path: Path) -> Any:
    """Read a JSON file; unreadable or invalid content becomes :class:`StoreError`."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror or exc}", where=str(path)) from exc
    try:
        return json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # ValueError: also huge integers
        raise StoreError(
            f"{path} is not valid JSON ({json_problem(exc)})",
            where=str(path),
            hint="the file is corrupt; move it away and run the command again",
        ) from exc


def json_problem(exc: BaseException) -> str:
    """What is wrong with JSON that :func:`json.loads` refused (the error it raised)."""
    if isinstance(exc, RecursionError):
        return "it is nested too deeply to be read"
    return str(exc)


def make_temp_dir(parent: Path, stem: str) -> Path:
    """Create an empty, uniquely named temporary directory inside ``parent``."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    path = parent / _temp_name(stem)
    path.mkdir()
    return path


def publish_dir(tmp: Path, final: Path) -> bool:
    """Move the finished directory ``tmp`` to ``final`` with one atomic rename.

    Returns True when ours was published, False when ``final`` already existed (another process
    won the race): then ``tmp`` is deleted and the existing directory is left untouched.
    """
    try:
        os.rename(tmp, final)
    except OSError as exc:
        if exc.errno in (errno.EEXIST, errno.ENOTEMPTY) or final.exists():
            remove_tree(tmp)
            return False
        remove_tree(tmp)
        raise write_failure(f"cannot move {tmp.name} into place as {final}", exc, str(final)) or StoreError(
            f"cannot move {tmp.name} into place as {final}: {exc.strerror or exc}", where=str(final)
        ) from exc
    fsync_dir(final.parent)
    return True


def remove_tree(path: Path) -> None:
    """Delete a directory tree, first renaming it so readers never see it half-deleted."""
    path = Path(path)
    if not path.exists():
        return
    trash = path.parent / f"{TRASH_PREFIX}{path.name}-{os.getpid():x}-{secrets.token_hex(4)}"
    try:
        os.rename(path, trash)
    except FileNotFoundError:
        return
    except OSError:
        trash = path
    shutil.rmtree(trash, ignore_errors=True)


def stale_temps(parent: Path, older_than: float = 3600.0) -> list[Path]:
    """Temporary and trash entries in ``parent`` older than ``older_than`` seconds: what a
    crashed writer left behind (young ones may belong to a live writer)."""
    parent = Path(parent)
    if not parent.is_dir():
        return []
    now = time.time()
    found = []
    for child in parent.iterdir():
        if not child.name.startswith((TEMP_PREFIX, TRASH_PREFIX)):
            continue
        try:
            age = now - child.lstat().st_mtime
        except FileNotFoundError:
            continue
        if age >= older_than:
            found.append(child)
    return sorted(found)


def remove_stale_temps(parent: Path, older_than: float = 3600.0) -> int:
    """Delete :func:`stale_temps` of ``parent``; how many were removed."""
    found = stale_temps(parent, older_than)
    for child in found:
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                child.unlink()
    return len(found)


@contextlib.contextmanager
def shared_or_exclusive_lock(
    path: Path, *, shared: bool, timeout: float = 600.0, what: str | None = None
) -> Iterator[None]:
    """Hold ``path`` locked for the block: shared (many holders at once) or exclusive (one, and no
    shared holder). flock-based, so the kernel releases it when its holder dies; waiting longer
    than ``timeout`` seconds raises :class:`ConcurrencyError`. Runs hold the store's gc lock
    shared while they plan; ``modver gc`` holds it exclusive while it removes."""
    import fcntl

    path = Path(path)
    with write_faults(f"cannot take the lock {path.name}", str(path)):  # `what` names its holder
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ConcurrencyError(
                        f"gave up waiting {timeout:g}s for {what or path}",
                        where=str(path),
                        hint="another modver process holds it (a run planning, or `modver gc`); try again when it is done",
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextlib.contextmanager
def file_lock(path: Path, *, timeout: float = 600.0, what: str | None = None) -> Iterator[None]:
    """Hold an exclusive inter-process lock on ``path`` (created if needed) for the block.

    Waiting longer than ``timeout`` seconds raises :class:`ConcurrencyError`.
    """
    from filelock import FileLock, Timeout

    path = Path(path)
    lock = FileLock(str(path), timeout=timeout)
    try:
        with write_faults(f"cannot take the lock on {what or path}", str(path)):
            path.parent.mkdir(parents=True, exist_ok=True)
            lock.acquire()
    except Timeout as exc:
        raise ConcurrencyError(
            f"gave up waiting {timeout:g}s for the lock on {what or path}",
            where=str(path),
            hint="another modver process holds it; wait for it to finish, or remove the lock file if no modver process is running",
        ) from exc
    try:
        yield
    finally:
        lock.release()
