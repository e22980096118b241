"""Making the git objects modver stores, and writing them the way git does.

Trees and commits are built from modver's values (:func:`make_trees`, :func:`make_commit`).
Writing them is crash-safe (a process may die between any two system calls):

- A loose object is written to ``objects/xx/tmp_obj_<random>`` (mode 0444 less the umask,
  widened per ``core.sharedRepository``), fsynced, then renamed to its name; one that exists
  is only freshened (its mtime), so a concurrent ``git gc`` does not prune it. A kill leaves at
  most a ``tmp_obj_*`` file, which git's fsck ignores and ``git prune`` removes; no ``.lock``.
  The folders it was renamed into are fsynced before any ref names it
  (:meth:`~modver._git.GitRepo.set_ref_if_equals`), once per folder, not once per object.
- A pack is written as ``objects/pack/tmp_pack_modver_<random>`` and its index as
  ``tmp_idx_modver_<checksum>_<random>`` (names that neither git nor dulwich take for a pack),
  both fsynced, then renamed to ``pack-<checksum>.pack`` and, last, ``.idx``. Packs are
  written under the modver lock (:mod:`modver._git.lock`), whose next holder removes what a
  dead writer left (:func:`clean_pack_dir`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from dulwich.file import adjust_shared_perm
from dulwich.objects import Commit, Tree
from dulwich.pack import full_unpacked_object, write_pack_data, write_pack_index

from modver import _fs
from modver._git.tree import split_path

if TYPE_CHECKING:
    from dulwich.file import SharedPerm
    from dulwich.object_store import DiskObjectStore
    from dulwich.objects import ObjectID, ShaFile

_OBJECT_MODE = 0o444  # git's mode for objects and packs, before the umask
_PACK_TEMP = "tmp_pack_modver_"
_IDX_TEMP = "tmp_idx_modver_"


def encode_name(name: str) -> bytes:
    """A file or ref name as git stores it (utf-8; surrogate escapes back to their bytes)."""
    return name.encode("utf-8", "surrogateescape")


def oid(sha: str) -> ObjectID:
    """A hex sha as dulwich's object id (ASCII bytes)."""
    return cast("ObjectID", sha.encode("ascii"))


def make_trees(files: Mapping[str, str | tuple[int, str]]) -> list[Tree]:
    """The tree objects holding ``files`` (POSIX path -> blob sha, or (mode, sha)): each
    subtree before the tree holding it, the root last.

    Nested folders become subtrees. Regular files get mode 0o100644 unless given.
    """
    root: dict[str, Any] = {}
    for path, value in files.items():
        parts = split_path(path)
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
    trees: list[Tree] = []
    _make_tree(root, trees)
    return trees


def _make_tree(node: dict[str, Any], trees: list[Tree]) -> ObjectID:
    tree = Tree()
    for name, value in node.items():
        if isinstance(value, dict):
            tree.add(encode_name(name), stat.S_IFDIR, _make_tree(value, trees))
        else:
            mode, sha = value
            tree.add(encode_name(name), mode, oid(sha))
    trees.append(tree)
    return tree.id


def make_commit(
    tree: str, parents: list[str] | tuple[str, ...], message: str, author: str, when: datetime | None
) -> Commit:
    """A commit of ``tree`` with ``parents`` by ``author`` at ``when`` (None: now, UTC)."""
    stamp = int(when.timestamp()) if when is not None else int(time.time())
    delta = when.utcoffset() if when is not None else None
    offset = int(delta.total_seconds()) if delta is not None else 0
    commit = Commit()
    commit.tree = oid(tree)
    commit.parents = [oid(p) for p in parents]
    commit.author = commit.committer = author.encode("utf-8")
    commit.author_time = commit.commit_time = stamp
    commit.author_timezone = commit.commit_timezone = offset
    text = message if message.endswith("\n") else message + "\n"
    commit.message = text.encode("utf-8")
    return commit


def _create_temp(folder: str, prefix: str) -> tuple[int, str]:
    """Create ``folder/<prefix><random>`` exclusively, with git's object mode; (fd, path)."""
    while True:
        path = os.path.join(folder, prefix + secrets.token_hex(8))
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), _OBJECT_MODE), path
        except FileExistsError:
            continue


def make_dir(path: str, shared_perm: SharedPerm | None) -> None:
    """Create the folder ``path`` if missing, widened per ``core.sharedRepository`` like git."""
    try:
        os.mkdir(path)
    except FileExistsError:
        return
    adjust_shared_perm(path, shared_perm)


def write_loose_object(store: DiskObjectStore, obj: ShaFile) -> str | None:
    """Store ``obj`` as a loose object the way git does (see the module docstring).

    Returns the folder it was renamed into (None when it was already stored): fsync it
    (:func:`modver._fs.fsync_dir`) before a ref names the object, so that the rename is durable.
    """
    if store.contains_packed(obj.id):
        return None
    hexsha = obj.id.decode("ascii")
    folder = os.path.join(store.path, hexsha[:2])
    path = os.path.join(folder, hexsha[2:])
    try:
        os.utime(path)  # already there: freshen it so that a concurrent `git gc` keeps it
        return None
    except (FileNotFoundError, PermissionError):  # absent, or another user's: a fresh copy
        pass
    make_dir(folder, store.shared_perm)
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
    return folder


def write_pack(store: DiskObjectStore, objects: list[ShaFile]) -> None:
    """Write ``objects`` as ``pack-<checksum>.pack`` + ``.idx``: temporaries, fsynced, index last.

    Call it holding the modver lock. dulwich's own ``add_objects`` reads the new pack back to
    index it; the offsets and CRCs are known while writing, so this indexes directly (about 3x
    faster on large batches).
    """
    pack_dir = os.path.join(store.path, "pack")
    make_dir(pack_dir, store.shared_perm)
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
        clean_pack_dir(pack_dir)  # we hold the lock: every modver temporary is ours
        raise
    _fs.fsync_dir(Path(pack_dir))


def clean_pack_dir(pack_dir: str) -> None:
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
