"""Git access for modver: the ONLY package that imports dulwich.

Everything modver reads from or writes to a git repository goes through :class:`GitRepo`
(repository, refs, objects) and :class:`GitTree` (a read-only :class:`~modver.models.SourceTree`
over a tree in the object database). Product code never runs the ``git`` binary.

Hot paths (walking thousands of commits, looking up a file in each) parse raw commit and tree
objects and cache them per :class:`GitRepo`: commits by sha, trees by sha (a tree shared by many
commits is parsed once).

Every failure that dulwich or the OS reports for a damaged or unreadable repository is raised as
:class:`~modver.errors.StoreError`; unknown revisions as :class:`~modver.errors.UnknownVersionError`;
no dulwich exception escapes this package, and programming errors propagate as they are.

The package's modules, one job each:

- this module: :class:`GitRepo`, opening a repository and reading, writing and updating it;
- :mod:`~modver._git.raw`: what the bytes of raw commit, tree and tag objects say;
- :mod:`~modver._git.tree`: :class:`GitTree`, the files of one tree object;
- :mod:`~modver._git.objects`: making trees and commits, writing loose objects and packs
  crash-safely, as git does;
- :mod:`~modver._git.lock`: the modver lock, its owner record, the repair of what a dead holder
  left, the wait for a ``<ref>.lock`` that git holds;
- :mod:`~modver._git.faults`: which exceptions are store faults, and their mapping to StoreError.

May import: the ground modules of ``modver/`` (errors, ``_fs``, ``_encoding``...); never another
folder of modver (tests/test_architecture.py).
"""

from __future__ import annotations

import contextlib
import gc
import os
import random
import re
import stat
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, cast

from dulwich.errors import CommitError, NotGitRepository
from dulwich.index import get_unstaged_changes
from dulwich.object_store import DiskObjectStore
from dulwich.objects import Blob, ShaFile
from dulwich.repo import MemoryRepo, Repo

from modver import _fs, errors
from modver._git.faults import (
    CANDIDATES,
    FSCK_HINT,
    OPEN_FAULTS,
    StoreFaults,
    is_store_fault,
    store_error,
)
from modver._git.lock import ModverLock
from modver._git.objects import encode_name, make_commit, make_trees, oid, write_loose_object, write_pack
from modver._git.raw import HEX40, CommitInfo, Entries, decode_name, parse_commit, parse_tree_entries, tag_target
from modver._git.tree import GitTree

if TYPE_CHECKING:
    from dulwich.refs import Ref

__all__ = ["AUTHOR", "GitRepo", "GitTree"]

AUTHOR = "modver <modver@localhost>"

_COMMIT, _TREE, _BLOB, _TAG = 1, 2, 3, 4
_TYPE_NAMES = {_COMMIT: "commit", _TREE: "tree", _BLOB: "blob", _TAG: "tag"}
_HEX_ABBREV = re.compile(r"[0-9a-fA-F]{4,40}\Z")
_SUFFIX = re.compile(r"(~|\^)(\d*)")


def _ref(name: str) -> Ref:
    """A ref name as dulwich's ref (bytes)."""
    return cast("Ref", encode_name(name))


CAS_ATTEMPTS = 10  # compare-and-swap attempts of :meth:`GitRepo.update_ref` before it gives up, loudly


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
        self._commits: dict[str, CommitInfo] = {}
        self._trees: dict[str, Entries] = {}
        self._walks: dict[str, tuple[str, ...]] = {}
        self._pending: dict[str, ShaFile] | None = None  # objects held back by buffered_objects()
        self._unsynced: set[str] = set()  # folders of loose objects written since the last ref update

    # -- opening ----------------------------------------------------------------------------

    @classmethod
    def discover(cls, path: str | os.PathLike[str] = ".") -> GitRepo:
        """Open the repository containing ``path`` (walking up to its root)."""
        with StoreFaults("cannot open the git repository", os.fspath(path), also=OPEN_FAULTS):
            try:
                repo = Repo.discover(os.fspath(path))
            except NotGitRepository as exc:
                raise errors.NotARepositoryError(
                    f"not a git repository (or any parent folder): {os.fspath(path)}",
                    hint="run 'modver init'",
                ) from exc
        opened = cls(repo, Path(repo.path).resolve())
        ModverLock(repo).recover_if_left()
        return opened

    @classmethod
    def init(cls, path: str | os.PathLike[str]) -> GitRepo:
        """Create a repository at ``path`` (made if missing), with dulwich, on branch main."""
        target = Path(path)
        with StoreFaults("cannot create a git repository", str(target)):
            target.mkdir(parents=True, exist_ok=True)
            repo = Repo.init(os.fspath(target), default_branch=b"main")
        return cls(repo, target.resolve())

    @property
    def on_disk(self) -> bool:
        """Whether the repository is on disk (not a dulwich ``MemoryRepo``)."""
        return isinstance(self._repo, Repo)

    @property
    def common_dir(self) -> Path:
        """The git directory shared by every worktree of the repository (``.git`` of the main
        worktree; ``.git`` is a file in a linked worktree): where refs, objects and modver's own
        files (its lock, a pull's renumbering record) live."""
        return Path(self._disk().commondir())

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
            return self._repo.object_store.get_raw(oid(sha))
        except CANDIDATES as exc:
            if not is_store_fault(exc):
                raise
            if isinstance(exc, KeyError):
                raise errors.StoreError(f"missing git object {sha}", hint=FSCK_HINT) from exc
            raise store_error(f"cannot read git object {sha}", exc) from exc

    def _raw(self, sha: str, expected: int | None = None) -> bytes:
        type_num, data = self._get_raw(sha)
        if expected is not None and type_num != expected:
            raise errors.StoreError(
                f"git object {sha} is a {_TYPE_NAMES.get(type_num, type_num)}, expected a {_TYPE_NAMES[expected]}",
                hint=FSCK_HINT,
            )
        return data

    def _type(self, sha: str) -> int:
        if self._pending and sha in self._pending:
            return self._pending[sha].type_num
        return self._get_raw(sha)[0]

    def has_object(self, sha: str) -> bool:
        """Whether the object database holds ``sha`` (a 40-digit hex id)."""
        if not HEX40.match(sha.encode("ascii", "replace")):
            return False
        if self._pending and sha in self._pending:
            return True
        with StoreFaults("cannot read the object database"):
            return oid(sha) in self._repo.object_store

    def read_blob(self, sha: str) -> bytes:
        """The bytes of blob ``sha``."""
        return self._raw(sha, _BLOB)

    def _commit(self, sha: str) -> CommitInfo:
        info = self._commits.get(sha)
        if info is None:
            info = self._commits[sha] = parse_commit(sha, self._raw(sha, _COMMIT))
        return info

    def tree_entries(self, tree_sha: str) -> Entries:
        """The entries of tree ``tree_sha`` (name -> (mode, sha)), parsed once per repository."""
        entries = self._trees.get(tree_sha)
        if entries is None:
            entries = parse_tree_entries(tree_sha, self._raw(tree_sha, _TREE))
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
        with StoreFaults("cannot read HEAD", "HEAD"):
            try:
                _, sha = self._repo.refs.follow(_ref("HEAD"))
            except KeyError:
                return None
        return None if sha is None else self._check_ref_value("HEAD", sha)

    def current_branch(self) -> str | None:
        """The branch HEAD is on (also before its first commit), or None when detached."""
        with StoreFaults("cannot read HEAD", "HEAD"):
            try:
                names, _ = self._repo.refs.follow(_ref("HEAD"))
            except KeyError:
                return None
        last = names[-1] if names else b"HEAD"
        if last.startswith(b"refs/heads/"):
            return decode_name(last[len(b"refs/heads/") :])
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
        raw = encode_name(base)
        if HEX40.match(raw.lower()) and self.has_object(base.lower()):
            return base.lower()
        for candidate in (
            base,
            f"refs/{base}",
            f"refs/tags/{base}",
            f"refs/heads/{base}",
            f"refs/remotes/{base}",
            f"refs/remotes/{base}/HEAD",
        ):
            with StoreFaults("cannot read refs", base):
                try:
                    _, sha = self._repo.refs.follow(_ref(candidate))
                except (KeyError, ValueError):
                    continue
            if sha is not None:
                return self._check_ref_value(candidate, sha)
        if _HEX_ABBREV.match(base):
            with StoreFaults("cannot read the object database"):
                matches = sorted({m.decode("ascii") for m in self._repo.object_store.iter_prefix(raw.lower())})
            commits = [m for m in matches if self._type(m) in (_COMMIT, _TAG)]
            if len(commits) == 1:
                return commits[0]
            if len(commits) > 1:
                raise errors.AmbiguousVersionError(
                    f"unknown git revision {rev!r} (ambiguous: {', '.join(c[:12] for c in commits)})",
                    hint="give more digits of the commit sha",
                )
        raise self._unknown_rev(rev)

    def _peel_to_commit(self, sha: str, rev: str) -> str:
        for _ in range(32):
            kind = self._type(sha)
            if kind == _COMMIT:
                return sha
            if kind != _TAG:
                kind_name = _TYPE_NAMES.get(kind, kind)
                raise self._unknown_rev(rev, f"it names a {kind_name}, not a commit")
            sha = tag_target(sha, self._raw(sha, _TAG))
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
        tree = oid(self._commit(head).tree) if head else None
        with StoreFaults("cannot compare the working tree with HEAD"):
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
        with StoreFaults("cannot write to the git object database"):
            if isinstance(store, DiskObjectStore):
                folder = write_loose_object(store, obj)
                if folder is not None:
                    self._unsynced.add(folder)
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
        """Write the objects held by :meth:`buffered_objects` as one pack; how many.

        When the pack cannot be written, the held objects are dropped (no ref may name them)
        and StoreError says why."""
        if not self._pending:
            return 0
        objects = list(self._pending.values())
        self._pending.clear()
        store = self._repo.object_store
        with StoreFaults("cannot write a pack to the git object database"):
            if isinstance(store, DiskObjectStore):
                self._write_pack(store, objects)
            else:
                store.add_objects([(obj, None) for obj in objects])
        return len(objects)

    def _write_pack(self, store: DiskObjectStore, objects: list[ShaFile]) -> None:
        with self._modver_lock("writing a pack"):
            write_pack(store, objects)
        store._update_pack_cache()

    def write_blob(self, data: bytes) -> str:
        """Store ``data`` as a blob (no-op if present); its sha."""
        return self._add(Blob.from_string(data))

    def write_tree(self, files: Mapping[str, str | tuple[int, str]]) -> str:
        """Store a tree holding ``files`` (POSIX path -> blob sha, or (mode, sha)); its sha.

        Nested folders become subtrees. Regular files get mode 0o100644 unless given.
        """
        trees = make_trees(files)
        for tree in trees:
            self._add(tree)
        return trees[-1].id.decode("ascii")

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
        return self._add(make_commit(tree, parents, message, author, when))

    # -- refs -------------------------------------------------------------------------------

    def _check_ref_value(self, name: str, sha: bytes) -> str:
        if not HEX40.match(sha):
            raise errors.StoreError(
                f"corrupt git ref {name}: {sha[:60]!r} is not an object id",
                where=name,
                hint=f"inspect .git/{name}; `git fsck` reports corrupt refs",
            )
        return sha.decode("ascii")

    def read_ref(self, name: str) -> str | None:
        """The sha ``name`` (a full ref name, symbolic refs followed) points at, or None."""
        with StoreFaults(f"cannot read ref {name}", name):
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

        A ref never names an object that is not fully written: the folders of loose objects
        written since the last swap are fsynced first, and the swap itself checks that ``new``
        is in the object database (a write that failed raises StoreError; the ref stays).
        """
        if self._pending and new in self._pending:
            raise RuntimeError(f"ref {name} would point at unwritten object {new}: flush_objects() first")
        if isinstance(self._repo, MemoryRepo):
            return self._swap_ref(name, old, new)
        self._sync_objects()
        return ModverLock(self._disk()).update_ref(name, lambda: self._swap_ref(name, old, new))

    def update_ref(self, name: str, change: Callable[[str | None], str | None], *, what: str,
                   attempts: int = CAS_ATTEMPTS) -> str | None:  # fmt: skip
        """Compare-and-swap ``name`` to ``change(current)`` — the one bounded retry of a ref update.

        ``change`` gets the ref's sha (None: absent) and returns the sha it should name, or None
        when there is nothing to do. When another process moved the ref meanwhile, it is read
        again and ``change`` asked again, at most ``attempts`` times; then
        :class:`~modver.errors.ConcurrencyError` names the ref and ``what`` was being done —
        never a silent give-up. Returns the sha the ref names now (None: left absent).
        """
        for attempt in range(attempts):
            current = self.read_ref(name)
            new = change(current)
            if new is None or new == current:
                return current
            if self.set_ref_if_equals(name, current, new):
                return new
            if attempt + 1 < attempts:
                time.sleep(0.01 * random.random())  # let the other writer finish
        raise errors.ConcurrencyError(
            f"gave up {what}: {name} changed under it {attempts} times in a row",
            where=name,
            hint="other modver processes keep changing it; run the command again when they are done",
        )

    def _sync_objects(self) -> None:
        """Make the renames of the loose objects written so far durable (one fsync per folder)."""
        while self._unsynced:
            folder = self._unsynced.pop()
            _fs.fsync_dir(Path(folder))

    def _swap_ref(self, name: str, old: str | None, new: str) -> bool:
        if not self.has_object(new):  # inside the swap: under the modver lock, where the ref moves
            raise errors.StoreError(
                f"ref {name} would name object {new}, which is not in the object database: the ref did not move",
                where=name,
                hint="writing the object failed (see the error before this one); run the command again",
            )
        refs = self._repo.refs
        with StoreFaults(f"cannot update ref {name}", name):  # FileLocked passes: the caller waits
            if old is None:
                return bool(refs.add_if_new(_ref(name), oid(new)))
            return bool(refs.set_if_equals(_ref(name), oid(old), oid(new)))

    # -- the modver lock (modver._git.lock) ---------------------------------------------------

    def _disk(self) -> Repo:
        """The repository on disk: the modver lock and the working tree exist only there."""
        if not isinstance(self._repo, Repo):
            raise TypeError(f"{self!r} is an in-memory repository: it has no files")
        return self._repo

    def _modver_lock(self, action: str, ref: str | None = None) -> contextlib.AbstractContextManager[None]:
        """Hold the modver lock while doing ``action`` (to ``ref``), with an owner record."""
        return ModverLock(self._disk()).hold(action, ref)

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
        with StoreFaults("cannot commit the working tree", str(self.root), also=(porcelain.Error, CommitError)):
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
        with StoreFaults(f"cannot list refs under {prefix}", prefix):
            found = self._repo.refs.as_dict(_ref(base))
        result = {f"{base}/{decode_name(key)}": sha for key, sha in found.items()}
        return {name: self._check_ref_value(name, sha) for name, sha in sorted(result.items())}
