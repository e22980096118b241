"""Git access for modver: the ONLY module that imports dulwich.

Everything modver reads from or writes to a git repository goes through :class:`GitRepo`
(repository, refs, objects) and :class:`GitTree` (a read-only :class:`~modver.models.SourceTree`
over a tree in the object database). Product code never runs the ``git`` binary.

Hot paths (walking thousands of commits, looking up a file in each) parse raw commit and tree
objects and cache them per :class:`GitRepo`: commits by sha, trees by sha (a tree shared by many
commits is parsed once).

Every failure that dulwich or the OS reports for a damaged or unreadable repository is raised as
:class:`~modver.errors.StoreError` (``raise ... from exc``, see :class:`_StoreFaults`); unknown
revisions as :class:`~modver.errors.UnknownVersionError`; no dulwich exception escapes this
module. Programming errors (TypeError, AttributeError, ... after a dulwich upgrade) are not a
corrupt store: they propagate as they are. Tested with dulwich 1.2.13 to 1.2.21.

Crash safety (a process may die between any two system calls; git's own object writing is
the model):

- A loose object is written to ``objects/xx/tmp_obj_<random>`` (mode 0444 less the umask,
  widened per ``core.sharedRepository``), fsynced, then renamed to its name; one that exists
  is only freshened (its mtime), so a concurrent ``git gc`` does not prune it. A kill leaves at
  most a ``tmp_obj_*`` file, which git's fsck ignores and ``git prune`` removes; no ``.lock``.
- A pack is written as ``objects/pack/tmp_pack_modver_<random>`` and its index as
  ``tmp_idx_modver_<checksum>_<random>`` (names that neither git nor dulwich take for a pack),
  both fsynced, then renamed to ``pack-<checksum>.pack`` and, last, ``.idx``.
- Every pack write and every compare-and-swap of a ref happens under the repository's modver
  lock, ``<git common dir>/modver/lock`` (``filelock``, flock-based: the kernel releases it when
  its holder dies). Its holder first writes ``modver/owner`` (one JSON line: ``pid``, ``host``,
  ``command``, ``action``, ``ref``, ``time``) and removes it when done. A process that takes the
  lock and finds an owner record knows that its writer died holding the lock: it removes the
  ``<ref>.lock`` the record names and modver's pack temporaries, at once. Opening a repository
  does the same when a record is left and the lock is free.
- A ``<ref>.lock`` that no owner record names belongs to git itself (or an older modver): it is
  waited for ``MODVER_REF_LOCK_TIMEOUT`` seconds (default 2), then
  :class:`~modver.errors.ConcurrencyError` names it. A live modver holder is waited for
  ``MODVER_LOCK_TIMEOUT`` seconds (default 30); after about a second, the wait is announced once
  through ``logging.getLogger("modver")`` (the CLI prints it on stderr).
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import re
import secrets
import stat
import struct
import sys
import time
import traceback
import weakref
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

import dulwich
from dulwich.errors import (
    ApplyDeltaError,
    ChecksumMismatch,
    CommitError,
    FileFormatException,
    NotGitRepository,
    RefFormatError,
    WrongObjectException,
)
from dulwich.file import FileLocked, adjust_shared_perm
from dulwich.index import UnsupportedIndexFormat, get_unstaged_changes
from dulwich.object_store import DiskObjectStore
from dulwich.objects import Blob, Commit, ShaFile, Tree, parse_tree
from dulwich.pack import PackFileDisappeared, UnresolvedDeltas, full_unpacked_object, write_pack_data, write_pack_index
from dulwich.refs import DiskRefsContainer, SymrefLoop
from dulwich.repo import InvalidWorktreeConfiguration, MemoryRepo, Repo, UnsupportedExtension, UnsupportedVersion

from modver import _fs, errors

if TYPE_CHECKING:
    from dulwich.file import SharedPerm
    from dulwich.objects import ObjectID
    from dulwich.refs import Ref

__all__ = ["AUTHOR", "GitRepo", "GitTree"]

AUTHOR = "modver <modver@localhost>"

_COMMIT, _TREE, _BLOB, _TAG = 1, 2, 3, 4
_TYPE_NAMES = {_COMMIT: "commit", _TREE: "tree", _BLOB: "blob", _TAG: "tag"}
_HEX40 = re.compile(rb"[0-9a-f]{40}\Z")
_HEX_ABBREV = re.compile(r"[0-9a-fA-F]{4,40}\Z")
_SUFFIX = re.compile(r"(~|\^)(\d*)")
_S_IFGITLINK = 0o160000
_SHA_LEN = 20  # bytes of a binary SHA-1 object id in a tree entry
LOCK_TIMEOUT_ENV = "MODVER_LOCK_TIMEOUT"  # seconds to wait for a live modver process's lock
REF_LOCK_TIMEOUT_ENV = "MODVER_REF_LOCK_TIMEOUT"  # seconds to wait for a <ref>.lock no modver owns
_LOCK_TIMEOUT = 30.0
_REF_LOCK_TIMEOUT = 2.0
_NOTICE_AFTER = 1.0  # seconds of waiting before saying whom we wait for
_OBJECT_MODE = 0o444  # git's mode for objects and packs, before the umask
_MODVER_REF = re.compile(r"refs/modver/[A-Za-z0-9_./-]+\Z")  # what an owner record may name
_PACK_TEMP = "tmp_pack_modver_"
_IDX_TEMP = "tmp_idx_modver_"
_FSCK_HINT = "the git object database may be corrupt; run `git fsck` to check it"
# What dulwich 1.2 and the OS raise on a damaged or unreadable repository (read from dulwich's
# source, and seen on damaged repositories: tests/test_git.py). Anything else is a bug.
_STORE_FAULTS: tuple[type[Exception], ...] = (
    OSError,  # a missing, unreadable or vanished file; dulwich's PackInputTooLarge
    ValueError,  # malformed numbers, hex, headers or config; UnicodeDecodeError
    OverflowError,  # a damaged pack index's offsets
    zlib.error,  # a damaged compressed object
    struct.error,  # a truncated pack index
    FileFormatException,  # ObjectFormatException, EmptyFileException, PackedRefsException
    ChecksumMismatch,
    WrongObjectException,
    ApplyDeltaError,
    UnresolvedDeltas,
    PackFileDisappeared,
    SymrefLoop,
    RefFormatError,
    UnsupportedIndexFormat,
)
# Raised by dulwich itself, these are store faults too; raised by modver, they are bugs:
# dulwich's own words for "damaged" (``raise AssertionError(...)`` on a bad pack, pack index or
# index header) and "missing" (``KeyError(sha)``) ...
_DULWICH_CONVENTIONS = (AssertionError, KeyError)
# ... and what these functions of dulwich 1.2 raise on damaged bytes (found by damaging repositories)
_DAMAGE_SITES = frozenset(
    {
        "ShaFile._is_legacy_object",  # TypeError: a loose object of one byte
        "ShaFile._parse_object",  # TypeError: a loose object cut inside its size header
        "FilePackIndex._object_offset",  # TypeError: a pack index whose object names are cut short
        "DiskRefsContainer.get_packed_refs",  # StopIteration: an empty packed-refs file
        "DiskRefsContainer._read_loose_ref_file",  # StopIteration: a ref file holding only "ref: "
        "DiskRefsContainer.read_loose_ref",  # the same, before dulwich 1.2.17
    }
)
_DULWICH_DIR = os.path.dirname(os.path.abspath(dulwich.__file__)) + os.sep
# what may be a store fault (for an ``except`` clause; :func:`_is_store_fault` decides)
_CANDIDATES: tuple[type[Exception], ...] = (*_STORE_FAULTS, *_DULWICH_CONVENTIONS, TypeError, StopIteration)
# opening a repository can also meet a repository format dulwich does not support
_OPEN_FAULTS = (UnsupportedVersion, UnsupportedExtension, InvalidWorktreeConfiguration)

# Tree entries, parsed: name -> (mode, hex sha), names decoded as utf-8 (surrogateescape).
_Entries = dict[str, tuple[int, str]]


@dataclass(frozen=True)
class _CommitInfo:
    tree: str
    parents: tuple[str, ...]
    time: int  # committer time, seconds since the epoch
    offset: int  # committer timezone offset, seconds east of UTC
    message: bytes


def _decode(name: bytes) -> str:
    return name.decode("utf-8", "surrogateescape")


def _encode(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")


def _split_path(path: str) -> list[str]:
    return [part for part in path.replace("\\", "/").split("/") if part not in ("", ".")]


def _oid(sha: str) -> ObjectID:
    """A hex sha as dulwich's object id (ASCII bytes)."""
    return cast("ObjectID", sha.encode("ascii"))


def _ref(name: str) -> Ref:
    """A ref name as dulwich's ref (bytes)."""
    return cast("Ref", _encode(name))


def _store_error(what: str, exc: BaseException, where: str | None = None) -> errors.StoreError:
    # The failed dulwich frames may hold memoryviews of a pack's mmap; clearing their locals
    # lets the repository close while this error (with its __cause__) is still alive.
    traceback.clear_frames(exc.__traceback__)
    return errors.StoreError(f"{what}: {type(exc).__name__}: {exc}", where=where, hint=_FSCK_HINT)


def _dulwich_fault(exc: BaseException) -> bool:
    """Whether dulwich itself raised ``exc`` to say that the store is damaged (see above)."""
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code
    if not code.co_filename.startswith(_DULWICH_DIR):
        return False
    if isinstance(exc, _DULWICH_CONVENTIONS):
        return True
    return isinstance(exc, (TypeError, StopIteration)) and code.co_qualname in _DAMAGE_SITES


def _is_store_fault(exc: BaseException, also: tuple[type[Exception], ...] = ()) -> bool:
    """Whether ``exc`` says that the repository is damaged or unreadable (not a bug)."""
    return isinstance(exc, _STORE_FAULTS + also) or _dulwich_fault(exc)


class _StoreFaults:
    """``with _StoreFaults(what, where):`` raises a store fault of its block as StoreError.

    A store fault is one of :data:`_STORE_FAULTS` (or of ``also``), or what dulwich raises
    itself to say that the store is damaged (:func:`_dulwich_fault`). The message is ``what:
    <exception type>: <exception>``. Everything else (a ModverError, a bug) propagates as it is.
    (Hot paths use ``except _CANDIDATES`` with :func:`_is_store_fault` instead: no object per call.)
    """

    __slots__ = ("also", "what", "where")

    def __init__(self, what: str, where: str | None = None, also: tuple[type[Exception], ...] = ()) -> None:
        self.what = what
        self.where = where
        self.also = also

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc is None:
            return
        if _is_store_fault(exc, self.also):
            raise _store_error(self.what, exc, self.where) from exc


def _seconds(variable: str, default: float) -> float:
    """A timeout from the environment variable ``variable`` (seconds), or ``default``."""
    text = os.environ.get(variable, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also refuses nan
        raise errors.UsageError(
            f"{variable}={text!r} is not a number of seconds",
            hint=f"set {variable} to a number such as 30, or unset it",
        )
    return value


def _logger() -> Any:
    import logging

    return logging.getLogger("modver")


def _create_temp(folder: str, prefix: str) -> tuple[int, str]:
    """Create ``folder/<prefix><random>`` exclusively, with git's object mode; (fd, path)."""
    while True:
        path = os.path.join(folder, prefix + secrets.token_hex(8))
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), _OBJECT_MODE), path
        except FileExistsError:
            continue


def _make_dir(path: str, shared_perm: SharedPerm | None) -> None:
    """Create the folder ``path`` if missing, widened per ``core.sharedRepository`` like git."""
    try:
        os.mkdir(path)
    except FileExistsError:
        return
    adjust_shared_perm(path, shared_perm)


def _write_loose_object(store: DiskObjectStore, obj: ShaFile) -> None:
    """Store ``obj`` as a loose object the way git does (see the module docstring)."""
    if store.contains_packed(obj.id):
        return
    hexsha = obj.id.decode("ascii")
    folder = os.path.join(store.path, hexsha[:2])
    path = os.path.join(folder, hexsha[2:])
    try:
        os.utime(path)  # already there: freshen it so that a concurrent `git gc` keeps it
        return
    except (FileNotFoundError, PermissionError):  # absent, or another user's: a fresh copy
        pass
    _make_dir(folder, store.shared_perm)
    data = obj.as_legacy_object(compression_level=store.loose_compression_level)
    fd, tmp = _create_temp(folder, "tmp_obj_")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        adjust_shared_perm(tmp, store.shared_perm)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _clean_pack_dir(pack_dir: str) -> None:
    """Remove what a pack writer of modver left when it died (only with the modver lock held).

    Its temporaries go; a ``pack-<checksum>.pack`` that it renamed into place without getting
    to its index (``tmp_idx_modver_<checksum>_...`` is still there) was never seen by anyone
    and goes too.
    """
    try:
        names = os.listdir(pack_dir)
    except FileNotFoundError:
        return
    present = set(names)
    for name in names:
        if name.startswith(_IDX_TEMP):
            base = "pack-" + name[len(_IDX_TEMP) :].split("_", 1)[0]
            if base + ".pack" in present and base + ".idx" not in present:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(pack_dir, base + ".pack"))
        if name.startswith((_PACK_TEMP, _IDX_TEMP)):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(pack_dir, name))


def _host() -> str:
    try:
        return os.uname().nodename
    except AttributeError:  # pragma: no cover - Windows
        return os.environ.get("COMPUTERNAME", "?")


def _command() -> str:
    """What this process is, for an owner record: ``modver snapshot``, or the program's name."""
    prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"
    if prog in ("modver", "__main__.py"):
        return " ".join(["modver", *[arg for arg in sys.argv[1:] if not arg.startswith("-")][:1]])
    return "python -c" if prog == "-c" else prog


def _read_owner(path: str) -> dict[str, Any] | None:
    """The owner record at ``path``; None when there is none (or it was never written)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    if not data.strip():
        return None  # its writer died before writing it: it had not started anything
    try:
        record = json.loads(data)
    except ValueError:
        return {}  # unreadable: still a record left behind
    return record if isinstance(record, dict) else {}


def _write_owner(path: str, action: str, ref: str | None) -> None:
    """Record who holds the modver lock and what it does (one write: all of it or nothing)."""
    record = {
        "pid": os.getpid(),
        "host": _host(),
        "command": _command(),
        "action": action,
        "ref": ref,
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        os.write(fd, (json.dumps(record, sort_keys=True) + "\n").encode("utf-8"))
    finally:
        os.close(fd)


def _make_lock_file(lock: str, shared_perm: SharedPerm | None) -> None:
    """Create the modver lock's folder (and, in a shared repository, the lock file) like git."""
    folder = os.path.dirname(lock)
    if not os.path.isdir(folder):
        _make_dir(folder, shared_perm)
    if shared_perm is not None and not os.path.exists(lock):  # every member of the group opens it
        with contextlib.suppress(FileExistsError):
            os.close(os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
            adjust_shared_perm(lock, shared_perm)


def _acquire(stack: contextlib.ExitStack, lock: str, owner: str) -> None:
    """Take ``lock`` into ``stack``: say after a second whom we wait for; give up after the timeout."""
    timeout = _seconds(LOCK_TIMEOUT_ENV, _LOCK_TIMEOUT)
    first = min(_NOTICE_AFTER, timeout / 2)
    try:
        stack.enter_context(_fs.file_lock(Path(lock), timeout=first))
        return
    except errors.ConcurrencyError:
        _logger().info("waiting for %s", _describe(_read_owner(owner)))
    try:
        stack.enter_context(_fs.file_lock(Path(lock), timeout=timeout - first))
    except errors.ConcurrencyError as exc:
        record = _read_owner(owner) or {}
        pid, host = record.get("pid", "?"), record.get("host", "?")
        raise errors.ConcurrencyError(
            f"gave up after {timeout:g}s waiting for {_describe(record)}: it holds {lock}",
            where=lock,
            hint=f"the lock goes when that process ends: if it hangs, stop it (`kill {pid}` on {host}) "
            f"and the next modver command repairs what it left; delete {lock} only if no modver "
            "process runs on any host using this repository",
        ) from exc


def _who(record: dict[str, Any]) -> str:
    """'modver process 1234 (modver snapshot) on host X' from an owner record."""
    return f"modver process {record.get('pid', '?')} ({record.get('command', '?')}) on host {record.get('host', '?')}"


def _describe(record: dict[str, Any] | None) -> str:
    """'modver process 1234 (modver snapshot) on host X, which is updating refs/...'."""
    if not record:
        return "another modver process"
    return f"{_who(record)}, which is {record.get('action', 'working')}"


def _close_repo(repo: Repo | MemoryRepo) -> None:
    try:
        repo.close()
    except BufferError:
        # a pack's mmap still has views exported (a live traceback): collect, then retry
        gc.collect()
        try:
            repo.close()
        except BufferError:
            pass  # the pack is released when its last view goes; nothing is lost


class GitRepo:
    """A git repository (on disk, or a dulwich ``MemoryRepo`` for tests).

    Use as a context manager or call :meth:`close`: an unclosed dulwich ``Repo`` keeps pack
    files open and complains at exit.
    """

    def __init__(self, repo: Repo | MemoryRepo, root: Path):
        self._repo = repo
        self.root = root
        # closed by close(), or at interpreter exit while modules still work: an unclosed
        # dulwich repository otherwise prints "Exception ignored in ... __del__" as Python ends
        self._closer = weakref.finalize(self, _close_repo, repo)
        self._commits: dict[str, _CommitInfo] = {}
        self._trees: dict[str, _Entries] = {}
        self._walks: dict[str, tuple[str, ...]] = {}
        self._pending: dict[str, ShaFile] | None = None  # objects held back by buffered_objects()

    # -- opening ----------------------------------------------------------------------------

    @classmethod
    def discover(cls, path: str | os.PathLike[str] = ".") -> GitRepo:
        """Open the repository containing ``path`` (walking up to its root)."""
        with _StoreFaults("cannot open the git repository", os.fspath(path), also=_OPEN_FAULTS):
            try:
                repo = Repo.discover(os.fspath(path))
            except NotGitRepository as exc:
                raise errors.NotARepositoryError(
                    f"not a git repository (or any parent folder): {os.fspath(path)}",
                    hint="run 'modver init'",
                ) from exc
        opened = cls(repo, Path(repo.path).resolve())
        opened._recover_if_left()
        return opened

    @classmethod
    def init(cls, path: str | os.PathLike[str]) -> GitRepo:
        """Create a repository at ``path`` (made if missing), with dulwich, on branch main."""
        target = Path(path)
        with _StoreFaults("cannot create a git repository", str(target)):
            target.mkdir(parents=True, exist_ok=True)
            repo = Repo.init(os.fspath(target), default_branch=b"main")
        return cls(repo, target.resolve())

    @classmethod
    def memory(cls) -> GitRepo:
        """An empty in-memory repository (tests); it has no working tree, root is ``.``."""
        return cls(MemoryRepo(), Path("."))

    def close(self) -> None:
        """Release the dulwich repository (pack files, ...); later calls do nothing."""
        self._closer()

    def __enter__(self) -> GitRepo:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"GitRepo({str(self.root)!r})"

    # -- raw objects ------------------------------------------------------------------------

    def _get_raw(self, sha: str) -> tuple[int, bytes]:
        """(type number, raw bytes) of object ``sha``, held back or stored."""
        held = self._pending.get(sha) if self._pending else None
        if held is not None:
            return held.type_num, held.as_raw_string()
        try:
            return self._repo.object_store.get_raw(_oid(sha))
        except _CANDIDATES as exc:
            if not _is_store_fault(exc):
                raise
            if isinstance(exc, KeyError):
                raise errors.StoreError(f"missing git object {sha}", hint=_FSCK_HINT) from exc
            raise _store_error(f"cannot read git object {sha}", exc) from exc

    def _raw(self, sha: str, expected: int | None = None) -> bytes:
        type_num, data = self._get_raw(sha)
        if expected is not None and type_num != expected:
            raise errors.StoreError(
                f"git object {sha} is a {_TYPE_NAMES.get(type_num, type_num)}, expected a {_TYPE_NAMES[expected]}",
                hint=_FSCK_HINT,
            )
        return data

    def _type(self, sha: str) -> int:
        if self._pending and sha in self._pending:
            return self._pending[sha].type_num
        return self._get_raw(sha)[0]

    def has_object(self, sha: str) -> bool:
        """Whether the object database holds ``sha`` (a 40-digit hex id)."""
        if not _HEX40.match(sha.encode("ascii", "replace")):
            return False
        if self._pending and sha in self._pending:
            return True
        with _StoreFaults("cannot read the object database"):
            return _oid(sha) in self._repo.object_store

    def read_blob(self, sha: str) -> bytes:
        """The bytes of blob ``sha``."""
        return self._raw(sha, _BLOB)

    def _commit(self, sha: str) -> _CommitInfo:
        info = self._commits.get(sha)
        if info is None:
            info = self._commits[sha] = self._parse_commit(sha, self._raw(sha, _COMMIT))
        return info

    @staticmethod
    def _parse_commit(sha: str, data: bytes) -> _CommitInfo:
        head, _, message = data.partition(b"\n\n")
        tree = None
        parents: list[str] = []
        when, offset = 0, 0
        try:
            for line in head.split(b"\n"):
                if line.startswith(b"tree "):
                    tree = line[5:].decode("ascii")
                elif line.startswith(b"parent "):
                    parents.append(line[7:].decode("ascii"))
                elif line.startswith(b"committer "):
                    _, _, stamp = line.rpartition(b">")
                    seconds, tz = stamp.split()
                    when = int(seconds)
                    sign = -1 if tz.startswith(b"-") else 1
                    digits = tz.lstrip(b"+-")
                    offset = sign * (int(digits[:2]) * 3600 + int(digits[2:4]) * 60)
        except ValueError as exc:
            raise _store_error(f"malformed git commit {sha}", exc) from exc
        if tree is None:
            raise errors.StoreError(f"malformed git commit {sha}: no tree", hint=_FSCK_HINT)
        return _CommitInfo(tree, tuple(parents), when, offset, message)

    def tree_entries(self, tree_sha: str) -> _Entries:
        """The entries of tree ``tree_sha`` (name -> (mode, sha)), parsed once per repository."""
        entries = self._trees.get(tree_sha)
        if entries is None:
            data = self._raw(tree_sha, _TREE)
            try:
                parsed = parse_tree(data, _SHA_LEN)
            except _STORE_FAULTS as exc:  # parse_tree reads only these bytes: what it raises is about them
                raise _store_error(f"malformed git tree {tree_sha}", exc) from exc
            entries = {_decode(name): (mode, hexsha.decode("ascii")) for name, mode, hexsha in parsed}
            self._trees[tree_sha] = entries
        return entries

    def diff_trees(self, old_commit: str, new_commit: str) -> tuple[set[str], bool]:
        """Paths whose blob differs between two commits, and whether any path appeared or vanished.

        Only subtrees whose ids differ are read (like ``git diff-tree -r``), so consecutive
        commits of a long history compare in microseconds.
        """
        changed: set[str] = set()
        structural = False
        stack = [(self.commit_tree(old_commit), self.commit_tree(new_commit), "")]
        while stack:
            a, b, base = stack.pop()
            if a == b:
                continue
            ea, eb = self.tree_entries(a), self.tree_entries(b)
            for name in ea.keys() | eb.keys():
                va, vb = ea.get(name), eb.get(name)
                if va == vb:
                    continue
                path = f"{base}{name}"
                if va is None or vb is None or stat.S_ISDIR(va[0]) != stat.S_ISDIR(vb[0]):
                    structural = True
                    changed.add(path)
                elif stat.S_ISDIR(va[0]):
                    stack.append((va[1], vb[1], path + "/"))
                else:
                    changed.add(path)
        return changed, structural

    # -- commits ----------------------------------------------------------------------------

    def head_commit(self) -> str | None:
        """The commit HEAD points at, or None before the first commit."""
        with _StoreFaults("cannot read HEAD", "HEAD"):
            try:
                _, sha = self._repo.refs.follow(_ref("HEAD"))
            except KeyError:
                return None
        return None if sha is None else self._check_ref_value("HEAD", sha)

    def current_branch(self) -> str | None:
        """The branch HEAD is on (also before its first commit), or None when detached."""
        with _StoreFaults("cannot read HEAD", "HEAD"):
            try:
                names, _ = self._repo.refs.follow(_ref("HEAD"))
            except KeyError:
                return None
        last = names[-1] if names else b"HEAD"
        if last.startswith(b"refs/heads/"):
            return _decode(last[len(b"refs/heads/") :])
        return None

    def resolve_rev(self, rev: str) -> str:
        """The commit sha ``rev`` names: branch, tag, (abbreviated) sha, ``HEAD~3``, ``main^2``."""
        text = rev.strip()
        cut = min((i for i in (text.find("~"), text.find("^")) if i >= 0), default=len(text))
        base, suffix = text[:cut], text[cut:]
        if not base:
            raise self._unknown_rev(rev, "empty revision")
        sha = self._resolve_base(base, rev)
        sha = self._peel_to_commit(sha, rev)
        pos = 0
        while pos < len(suffix):
            if suffix.startswith(("^{}", "^{commit}"), pos):
                pos += 3 if suffix.startswith("^{}", pos) else 9
                continue
            match = _SUFFIX.match(suffix, pos)
            if match is None:
                raise self._unknown_rev(rev, "cannot parse the revision suffix")
            pos = match.end()
            count = int(match.group(2)) if match.group(2) else 1
            if match.group(1) == "~":
                for _ in range(count):
                    parents = self._commit(sha).parents
                    if not parents:
                        raise self._unknown_rev(rev, "history is not that long")
                    sha = parents[0]
            elif count:
                parents = self._commit(sha).parents
                if len(parents) < count:
                    raise self._unknown_rev(rev, f"the commit has no parent {count}")
                sha = parents[count - 1]
        return sha

    def _unknown_rev(self, rev: str, why: str = "") -> errors.UnknownVersionError:
        detail = f" ({why})" if why else ""
        return errors.UnknownVersionError(
            f"unknown git revision {rev!r}{detail}",
            hint="use a branch, tag or commit sha, e.g. HEAD~1; see `git log`",
        )

    def _resolve_base(self, base: str, rev: str) -> str:
        if base == "@":
            base = "HEAD"
        raw = _encode(base)
        if _HEX40.match(raw.lower()) and self.has_object(base.lower()):
            return base.lower()
        for candidate in (
            base,
            f"refs/{base}",
            f"refs/tags/{base}",
            f"refs/heads/{base}",
            f"refs/remotes/{base}",
            f"refs/remotes/{base}/HEAD",
        ):
            with _StoreFaults("cannot read refs", base):
                try:
                    _, sha = self._repo.refs.follow(_ref(candidate))
                except (KeyError, ValueError):
                    continue
            if sha is not None:
                return self._check_ref_value(candidate, sha)
        if _HEX_ABBREV.match(base):
            with _StoreFaults("cannot read the object database"):
                matches = sorted({m.decode("ascii") for m in self._repo.object_store.iter_prefix(raw.lower())})
            commits = [m for m in matches if self._type(m) in (_COMMIT, _TAG)]
            if len(commits) == 1:
                return commits[0]
            if len(commits) > 1:
                raise self._unknown_rev(rev, "ambiguous: " + ", ".join(c[:12] for c in commits))
        raise self._unknown_rev(rev)

    def _peel_to_commit(self, sha: str, rev: str) -> str:
        for _ in range(32):
            kind = self._type(sha)
            if kind == _COMMIT:
                return sha
            if kind != _TAG:
                kind_name = _TYPE_NAMES.get(kind, kind)
                raise self._unknown_rev(rev, f"it names a {kind_name}, not a commit")
            data = self._raw(sha, _TAG)
            first = data.split(b"\n", 1)[0]
            if not (first.startswith(b"object ") and _HEX40.match(first[7:])):
                raise errors.StoreError(f"malformed git tag {sha}", hint=_FSCK_HINT)
            sha = first[7:].decode("ascii")
        raise self._unknown_rev(rev, "tag chain too long")

    def first_parent_walk(self, rev: str) -> list[str]:
        """The commits on ``rev``'s first-parent chain, oldest first."""
        tip = self.resolve_rev(rev)
        cached = self._walks.get(tip)
        if cached is None:
            chain: list[str] = []
            sha: str | None = tip
            while sha is not None:
                known = self._walks.get(sha)
                if known is not None and sha != tip:
                    chain.reverse()
                    cached = known + tuple(chain)
                    break
                chain.append(sha)
                parents = self._commit(sha).parents
                sha = parents[0] if parents else None
            else:
                chain.reverse()
                cached = tuple(chain)
            self._walks[tip] = cached
        return list(cached)

    def commit_parents(self, sha: str) -> tuple[str, ...]:
        """The parents of commit ``sha``."""
        return self._commit(sha).parents

    def commit_tree(self, sha: str) -> str:
        """The root tree sha of commit ``sha``."""
        return self._commit(sha).tree

    def commit_time(self, sha: str) -> datetime:
        """The committer time of ``sha``, timezone-aware, in the commit's own offset."""
        info = self._commit(sha)
        zone = timezone(timedelta(seconds=info.offset))
        return datetime.fromtimestamp(info.time, UTC).astimezone(zone)

    def commit_message(self, sha: str) -> str:
        """The commit message of ``sha`` (utf-8, undecodable bytes replaced)."""
        return self._commit(sha).message.decode("utf-8", "replace")

    def tree_at(self, commit_sha: str) -> GitTree:
        """The files of commit ``commit_sha``."""
        return GitTree(self, self._commit(commit_sha).tree)

    def tree(self, tree_sha: str | None) -> GitTree:
        """A :class:`GitTree` over tree ``tree_sha`` (None: an empty tree)."""
        return GitTree(self, tree_sha)

    # -- working tree -----------------------------------------------------------------------

    def is_dirty(self) -> bool:
        """Whether tracked files differ from HEAD, in the index or the working tree.

        Untracked files do not count. Before the first commit, any indexed file counts.
        A repository without a working tree is never dirty.
        """
        repo = self._repo
        if isinstance(repo, MemoryRepo) or not repo.has_index():
            return False
        head = self.head_commit()
        tree = _oid(self._commit(head).tree) if head else None
        with _StoreFaults("cannot compare the working tree with HEAD"):
            index = repo.open_index()
            for _ in index.changes_from_tree(repo.object_store, tree):
                return True
            for _ in get_unstaged_changes(index, os.fspath(self.root)):
                return True
        return False

    # -- writing objects --------------------------------------------------------------------

    def _add(self, obj: ShaFile) -> str:
        sha = obj.id.decode("ascii")
        if self._pending is not None:
            self._pending.setdefault(sha, obj)  # one already stored is harmless in the new pack
            return sha
        store = self._repo.object_store
        with _StoreFaults("cannot write to the git object database"):
            if isinstance(store, DiskObjectStore):
                _write_loose_object(store, obj)
            elif obj.id not in store:
                store.add_object(obj)
        return sha

    @contextlib.contextmanager
    def buffered_objects(self) -> Iterator[None]:
        """Hold new objects in memory and write them as one pack when the block ends.

        Many small loose-object files cost far more than one pack on most file systems; a
        history walk that registers hundreds of versions uses this. While objects are held, no
        ref may point at them: :meth:`set_ref_if_equals` refuses (flush first).
        """
        if self._pending is not None:
            yield
            return
        self._pending = {}
        try:
            yield
        finally:
            try:
                self.flush_objects()
            finally:
                self._pending = None  # also when the flush failed: later writes are not held forever

    def flush_objects(self) -> int:
        """Write the objects held by :meth:`buffered_objects` as one pack; how many."""
        if not self._pending:
            return 0
        objects = list(self._pending.values())
        store = self._repo.object_store
        with _StoreFaults("cannot write a pack to the git object database"):
            if isinstance(store, DiskObjectStore):
                self._write_pack(store, objects)
            else:
                store.add_objects([(obj, None) for obj in objects])
        self._pending.clear()
        return len(objects)

    def _write_pack(self, store: DiskObjectStore, objects: list[ShaFile]) -> None:
        """Write ``objects`` as ``pack-<checksum>.pack`` + ``.idx``: temporaries, fsynced, index last.

        dulwich's own ``add_objects`` reads the new pack back to index it; the offsets and
        CRCs are known while writing, so this indexes directly (about 3x faster on large batches).
        """
        pack_dir = os.path.join(store.path, "pack")
        with self._modver_lock("writing a pack"):
            _make_dir(pack_dir, store.shared_perm)
            try:
                fd, tmp_pack = _create_temp(pack_dir, _PACK_TEMP)
                with os.fdopen(fd, "wb") as f:
                    entries, checksum = write_pack_data(
                        f.write,
                        (full_unpacked_object(obj) for obj in objects),
                        object_format=store.object_format,
                        num_records=len(objects),
                    )
                    f.flush()
                    os.fsync(f.fileno())
                index = sorted((sha, offset, crc) for sha, (offset, crc) in entries.items())
                fd, tmp_idx = _create_temp(pack_dir, f"{_IDX_TEMP}{checksum.hex()}_")
                with os.fdopen(fd, "wb") as f:
                    write_pack_index(f, index, checksum)
                    f.flush()
                    os.fsync(f.fileno())
                adjust_shared_perm(tmp_pack, store.shared_perm)
                adjust_shared_perm(tmp_idx, store.shared_perm)
                base = os.path.join(pack_dir, "pack-" + checksum.hex())
                os.replace(tmp_pack, base + ".pack")
                os.replace(tmp_idx, base + ".idx")  # git and dulwich find a pack by its index: last
            except BaseException:
                _clean_pack_dir(pack_dir)  # we hold the lock: every modver temporary is ours
                raise
            _fs.fsync_dir(Path(pack_dir))
        store._update_pack_cache()

    def write_blob(self, data: bytes) -> str:
        """Store ``data`` as a blob (no-op if present); its sha."""
        return self._add(Blob.from_string(data))

    def write_tree(self, files: Mapping[str, str | tuple[int, str]]) -> str:
        """Store a tree holding ``files`` (POSIX path -> blob sha, or (mode, sha)); its sha.

        Nested folders become subtrees. Regular files get mode 0o100644 unless given.
        """
        root: dict[str, Any] = {}
        for path, value in files.items():
            parts = _split_path(path)
            if not parts:
                raise ValueError(f"empty path in tree: {path!r}")
            node = root
            for part in parts[:-1]:
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    raise ValueError(f"{path!r}: {part!r} is both a file and a folder")
                node = child
            if isinstance(node.get(parts[-1]), dict):
                raise ValueError(f"{path!r} is both a file and a folder")
            node[parts[-1]] = value if isinstance(value, tuple) else (0o100644, value)
        return self._write_node(root)

    def _write_node(self, node: dict[str, Any]) -> str:
        tree = Tree()
        for name, value in node.items():
            if isinstance(value, dict):
                tree.add(_encode(name), stat.S_IFDIR, _oid(self._write_node(value)))
            else:
                mode, sha = value
                tree.add(_encode(name), mode, _oid(sha))
        sha = self._add(tree)
        return sha

    def write_commit(
        self,
        tree: str,
        parents: list[str] | tuple[str, ...],
        message: str,
        *,
        author: str = AUTHOR,
        when: datetime | None = None,
    ) -> str:
        """Store a commit of ``tree`` with ``parents``; its sha. ``when`` defaults to now (UTC)."""
        stamp = int(when.timestamp()) if when is not None else int(time.time())
        delta = when.utcoffset() if when is not None else None
        offset = int(delta.total_seconds()) if delta is not None else 0
        commit = Commit()
        commit.tree = _oid(tree)
        commit.parents = [_oid(p) for p in parents]
        commit.author = commit.committer = author.encode("utf-8")
        commit.author_time = commit.commit_time = stamp
        commit.author_timezone = commit.commit_timezone = offset
        text = message if message.endswith("\n") else message + "\n"
        commit.message = text.encode("utf-8")
        return self._add(commit)

    # -- refs -------------------------------------------------------------------------------

    def _check_ref_value(self, name: str, sha: bytes) -> str:
        if not _HEX40.match(sha):
            raise errors.StoreError(
                f"corrupt git ref {name}: {sha[:60]!r} is not an object id",
                where=name,
                hint=f"inspect .git/{name}; `git fsck` reports corrupt refs",
            )
        return sha.decode("ascii")

    def read_ref(self, name: str) -> str | None:
        """The sha ``name`` (a full ref name, symbolic refs followed) points at, or None."""
        with _StoreFaults(f"cannot read ref {name}", name):
            try:
                _, sha = self._repo.refs.follow(_ref(name))
            except KeyError:
                return None
        return None if sha is None else self._check_ref_value(name, sha)

    def set_ref_if_equals(self, name: str, old: str | None, new: str) -> bool:
        """Compare-and-swap: point ``name`` at ``new`` only if it is ``old`` (None: absent).

        Returns False when the ref changed meanwhile: re-read and retry. The swap happens under
        the modver lock (waited for; a dead holder's leftovers repaired first); a ``<ref>.lock``
        that no modver process holds is waited for briefly, then
        :class:`~modver.errors.ConcurrencyError` names it.
        """
        if self._pending and new in self._pending:
            raise RuntimeError(f"ref {name} would point at unwritten object {new}: flush_objects() first")
        if isinstance(self._repo, MemoryRepo):
            return self._swap_ref(name, old, new)
        deadline = notice = None
        while True:
            with self._modver_lock(f"updating {name}", name):
                try:
                    return self._swap_ref(name, old, new)
                except FileLocked as exc:
                    lock = os.fsdecode(exc.lockfilename)
            # no modver process holds this <ref>.lock: git itself (whose ref locks last
            # milliseconds) or a modver from before the modver lock
            now = time.monotonic()
            if deadline is None:
                timeout = _seconds(REF_LOCK_TIMEOUT_ENV, _REF_LOCK_TIMEOUT)
                deadline, notice = now + timeout, now + min(_NOTICE_AFTER, timeout / 2)
            if notice is not None and now >= notice:
                _logger().info("waiting for %s, which no modver process holds (a git command?)", lock)
                notice = None
            if now >= deadline:
                raise errors.ConcurrencyError(
                    f"cannot update {name}: {lock} exists, and no running modver process holds it",
                    where=lock,
                    hint="a git command may be updating that ref: try again; if no git or modver process "
                    f"is running in this repository, one that crashed left it: delete {lock}",
                )
            time.sleep(0.01)

    def _swap_ref(self, name: str, old: str | None, new: str) -> bool:
        refs = self._repo.refs
        with _StoreFaults(f"cannot update ref {name}", name):  # FileLocked passes: the caller waits
            if old is None:
                return bool(refs.add_if_new(_ref(name), _oid(new)))
            return bool(refs.set_if_equals(_ref(name), _oid(old), _oid(new)))

    # -- the modver lock (see the module docstring) -----------------------------------------

    def _disk(self) -> Repo:
        """The repository on disk: the modver lock and the working tree exist only there."""
        if not isinstance(self._repo, Repo):
            raise TypeError(f"{self!r} is an in-memory repository: it has no files")
        return self._repo

    def _lock_paths(self) -> tuple[str, str]:
        """The modver lock and its owner record: ``<git common dir>/modver/{lock,owner}``."""
        folder = os.path.join(self._disk().commondir(), "modver")
        return os.path.join(folder, "lock"), os.path.join(folder, "owner")

    @contextlib.contextmanager
    def _modver_lock(self, action: str, ref: str | None = None) -> Iterator[None]:
        """Hold the modver lock while doing ``action`` (to ``ref``), with an owner record."""
        lock, owner = self._lock_paths()
        with contextlib.ExitStack() as held:
            try:
                _make_lock_file(lock, self._disk().object_store.shared_perm)
                _acquire(held, lock, owner)
                self._recover(owner)
                _write_owner(owner, action, ref)
            except OSError as exc:
                raise errors.StoreError(
                    f"cannot use modver's lock {lock}: {exc.strerror or exc}",
                    where=lock,
                    hint=f"modver needs to write in {os.path.dirname(lock)}: check its permissions",
                ) from exc
            try:
                yield
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(owner)

    def _recover(self, owner: str) -> None:
        """With the lock held: undo what a modver process that died holding it left behind."""
        record = _read_owner(owner)
        if record is None:
            return
        repo = self._disk()
        ref = record.get("ref")
        removed = []
        if (
            isinstance(ref, str)
            and _MODVER_REF.match(ref)
            and ".." not in ref
            and isinstance(repo.refs, DiskRefsContainer)
        ):
            stale = os.fsdecode(repo.refs.refpath(_encode(ref))) + ".lock"
            with contextlib.suppress(FileNotFoundError):
                os.unlink(stale)
                removed.append(stale)
        _clean_pack_dir(os.path.join(repo.object_store.path, "pack"))
        os.unlink(owner)
        _logger().info(
            "%s died while %s; repaired what it left%s",
            _who(record),
            record.get("action", "holding modver's lock"),
            f" (removed {removed[0]})" if removed else "",
        )

    def _recover_if_left(self) -> None:
        """Recover now if a dead modver process left an owner record and the lock is free."""
        lock, owner = self._lock_paths()
        if not os.path.exists(owner):
            return
        try:
            with _fs.file_lock(Path(lock), timeout=0):
                self._recover(owner)
        except (errors.ConcurrencyError, OSError):
            pass  # a live process holds the lock (it recovers itself), or this user may not write

    def branches(self) -> list[str]:
        """Names of the local branches (``refs/heads/*``), sorted."""
        return sorted(name[len("refs/heads/") :] for name in self.list_refs("refs/heads/"))

    def commit_all(self, message: str, *, author: str = "modver demo <demo@localhost>") -> str:
        """Stage every non-ignored file and commit it on the current branch; the new sha.

        Only ``modver demo`` uses this, on the demo's own fresh repository: no other modver
        command touches branches, HEAD or the index.
        """
        from dulwich import porcelain

        repo = self._disk()
        with _StoreFaults("cannot commit the working tree", str(self.root), also=(porcelain.Error, CommitError)):
            porcelain.add(repo, paths=None)
            sha = porcelain.commit(
                repo,
                message=message.encode("utf-8"),
                author=author.encode("utf-8"),
                committer=author.encode("utf-8"),
            )
        self._walks.clear()
        return sha.decode("ascii") if isinstance(sha, bytes) else str(sha)

    def list_refs(self, prefix: str) -> dict[str, str]:
        """Refs whose full name starts with the folder ``prefix`` (e.g. ``refs/modver/tags/``).

        Keys are full ref names.
        """
        base = prefix.rstrip("/")
        with _StoreFaults(f"cannot list refs under {prefix}", prefix):
            found = self._repo.refs.as_dict(_ref(base))
        result = {f"{base}/{_decode(key)}": sha for key, sha in found.items()}
        return {name: self._check_ref_value(name, sha) for name, sha in sorted(result.items())}


class GitTree:
    """A read-only :class:`~modver.models.SourceTree` over a git tree object.

    ``content_id`` is the git blob sha. Only regular (and executable) files are files:
    symlinks and submodules read as None. Tree objects are cached by the owning
    :class:`GitRepo`, shared by every GitTree of that repository.
    """

    def __init__(self, repo: GitRepo, tree_sha: str | None):
        self.repo = repo
        self.sha = tree_sha

    def __repr__(self) -> str:
        return f"GitTree({self.sha!r})"

    def _entry(self, path: str) -> tuple[int, str] | None:
        if self.sha is None:
            return None
        parts = _split_path(path)
        if not parts:
            return (stat.S_IFDIR, self.sha)
        tree = self.sha
        for part in parts[:-1]:
            entry = self.repo.tree_entries(tree).get(part)
            if entry is None or not stat.S_ISDIR(entry[0]):
                return None
            tree = entry[1]
        return self.repo.tree_entries(tree).get(parts[-1])

    @staticmethod
    def _is_file(mode: int) -> bool:
        return stat.S_ISREG(mode)

    def blob_id(self, path: str) -> str | None:
        """The blob sha of the file at ``path``, or None."""
        entry = self._entry(path)
        if entry is None or not self._is_file(entry[0]):
            return None
        return entry[1]

    def content_id(self, path: str) -> str | None:
        """The git blob sha of ``path`` (None when not a file)."""
        return self.blob_id(path)

    def read(self, path: str) -> bytes | None:
        """The bytes of the file at ``path``, or None."""
        sha = self.blob_id(path)
        return None if sha is None else self.repo.read_blob(sha)

    def is_dir(self, path: str) -> bool:
        """Whether ``path`` is a folder ('' is the root; an empty GitTree has only the root)."""
        if not _split_path(path):
            return True
        entry = self._entry(path)
        return entry is not None and stat.S_ISDIR(entry[0]) and entry[0] != _S_IFGITLINK

    def subtree(self, path: str) -> GitTree:
        """The folder ``path`` as its own GitTree (empty when there is no such folder)."""
        entry = self._entry(path)
        if entry is None or not stat.S_ISDIR(entry[0]):
            return GitTree(self.repo, None)
        return GitTree(self.repo, entry[1])

    def iter_files(self, prefix: str = "") -> Iterator[str]:
        """Paths of every file under folder ``prefix`` (full POSIX paths), sorted."""
        parts = _split_path(prefix)
        base = "/".join(parts)
        entry = self._entry(base)
        if entry is None or not stat.S_ISDIR(entry[0]):
            return
        yield from sorted(self._walk(entry[1], base))

    def _walk(self, tree_sha: str, base: str) -> Iterator[str]:
        entries = self.repo.tree_entries(tree_sha)
        for name in entries:
            mode, sha = entries[name]
            path = f"{base}/{name}" if base else name
            if stat.S_ISDIR(mode) and mode != _S_IFGITLINK:
                yield from self._walk(sha, path)
            elif self._is_file(mode):
                yield path
