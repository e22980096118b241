"""Content hashes of a manifest's data inputs (``data:``): files and folders.

The hashes (scheme and encoding; changing either is a new scheme name, never a silent edit):

- a data **file**: ``"blake2b:" + BLAKE2b-256(its bytes).hexdigest()``;
- a data **folder**: ``"blake2b-tree1:" + BLAKE2b-256(encode(entries)).hexdigest()``, where
  ``encode`` is modver's canonical, type-tagged encoding (:mod:`modver._encoding`) and
  ``entries`` is a list of ``bytes``, one per file and folder anywhere below the data folder,
  sorted (as bytes)::

      b"d" + path                           a folder (so an empty folder counts)
      b"f" + BLAKE2b-256(its bytes) + path  a file: its 32-byte digest, then its path

  ``path`` is the entry's path inside the data folder: its names, as the file system stores
  them (``os.fsencode``), joined by ``/``. The encoding length-prefixes each entry, and the
  digest has a fixed length, so no two different folders encode alike.

What is hashed: names, contents and the shape of the tree; not modes, owners or times. An
empty folder and an empty file differ (at the top the scheme names differ, inside the tags);
renaming or moving a file, or adding an empty file or an empty subfolder, changes the hash. A
symlink is hashed as what it points to (what a stage reads through it); it must stay inside
the project (:func:`modver._paths.resolve_inside`), and a link to a folder it is in is refused.
FIFOs, devices and sockets are refused before anything opens them.

What is remembered (``.modver/cache/data.json``, written atomically; losing it only costs
reading the data again): per file, by its real path in the project, its hash with its stat
(size, mtime_ns, ctime_ns, inode) — a file whose stat is unchanged is not read again, a changed
file is read alone; and per data folder, its hash with a digest of the stats of everything in
it, so an unchanged folder costs one ``stat`` per entry. As git does for its index, a "racy"
file is not remembered: one whose mtime or ctime is within :data:`RACY_NS` of the moment it was
read, since a save in the same clock tick would leave its stat unchanged. Many files are hashed
in several threads (hashlib releases the GIL while it hashes).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import marshal
import os
import stat
import sys
import threading
import time
from dataclasses import dataclass

from modver import _encoding, _fs, errors
from modver._paths import check_kind, resolve_inside
from modver.store.layout import Store

__all__ = ["FILE_SCHEME", "FOLDER_SCHEME", "RACY_NS", "DataHasher"]

FILE_SCHEME = "blake2b"
FOLDER_SCHEME = "blake2b-tree1"
MEMO_FORMAT = 2
RACY_NS = 2_000_000_000  # 2 s: covers the coarsest common timestamps (FAT: 2 s, HFS+: 1 s)
_CHUNK = 1 << 20
_THREADS = min(8, (os.cpu_count() or 1) + 2)  # reads may wait on the disk: a few more than cores
_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)  # a FIFO swapped in after the stat does not block the open
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_NOFOLLOW", 0)  # nor does a symlink swapped in lead anywhere
    | getattr(os, "O_CLOEXEC", 0)
)
_FS_ENCODING = sys.getfilesystemencoding()
_FOLDER_HINT = "remove it from the data folder: data folders hold files, folders and links to them inside the project"

# One entry of a folder as its walk saw it: (path inside the data folder, memo key of its real
# path, mode, size, mtime_ns, ctime_ns, inode).
_Entry = tuple[str, str, int, int, int, int, int]


@dataclass
class _File:
    """One file to hash: its real path, memo key, path shown in messages, path inside its data
    folder (as encoded), and once hashed its hex digest and whether it was remembered."""

    path: str
    key: str
    shown: str
    inner: bytes = b""
    hexdigest: str = ""
    remembered: bool = False


def _stamp(size: int, mtime_ns: int, ctime_ns: int, inode: int) -> str:
    """How the memo writes a stat: ``"size mtime_ns ctime_ns inode "``."""
    return f"{size} {mtime_ns} {ctime_ns} {inode} "


class DataHasher:
    """Content hashes of data files and folders, remembered in ``.modver/cache/data.json``.

    One instance serves one command: :meth:`hash` each input, then :meth:`save` the memo,
    ``{"format": 2, "files": {key: "size mtime_ns ctime_ns inode hex"},
    "folders": {key: "stats-digest hash"}}`` (keys: real paths from the project root).
    """

    def __init__(self, store: Store):
        self.root = store.root
        self._real_root = os.path.realpath(self.root)
        self.path = store.data_hashes
        self.files: dict[str, str] = {}
        self.folders: dict[str, str] = {}
        try:
            memo = _fs.read_json(self.path)
        except (FileNotFoundError, errors.StoreError):
            memo = None  # missing or damaged: it only costs reading the data again
        if isinstance(memo, dict) and memo.get("format") == MEMO_FORMAT:  # format 1: (size, mtime) only
            files, folders = memo.get("files"), memo.get("folders")
            self.files = files if isinstance(files, dict) else {}
            self.folders = folders if isinstance(folders, dict) else {}
        self.dirty = False

    def hash(self, name: str, rel: str) -> str:
        """The content hash of data input ``data.<name>`` at project-relative path ``rel``.

        Raises :class:`~modver.errors.RunError` when it is missing or unreadable, and
        :class:`~modver.errors.PathError` when it leads out of the project or is (or holds) a
        FIFO, a device or a socket.
        """
        what = f"data.{name}:"
        real = str(resolve_inside(self.root, rel, what))
        try:
            st = os.stat(real)
        except FileNotFoundError:
            raise errors.RunError(
                f"data.{name}: {rel} does not exist", where=rel, hint="create it or fix `data:` in the manifest"
            ) from None
        except OSError as exc:
            raise _unreadable(name, rel, exc) from exc
        check_kind(rel, st, what, folders=True)
        if stat.S_ISDIR(st.st_mode):
            return self._hash_folder(name, rel, real, st)
        file = _File(real, self._key(real), rel)
        file.hexdigest = self._recall(file.key, _stamp(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino))
        if not file.hexdigest:
            self._hash_files(name, [file])
        return f"{FILE_SCHEME}:{file.hexdigest}"

    def save(self) -> None:
        """Write the memo (atomically) if anything changed; a memo that cannot be written only
        costs reading the data again next time."""
        if not self.dirty:
            return
        memo = {"format": MEMO_FORMAT, "files": self.files, "folders": self.folders}
        try:
            _fs.write_text_atomic(self.path, json.dumps(memo, separators=(",", ":")) + "\n", durable=False)
        except OSError:
            return
        self.dirty = False

    # -- internals ----------------------------------------------------------------------------

    def _key(self, real: str) -> str:
        """The memo key of a real path inside the project: its path from the root."""
        return os.path.relpath(real, self._real_root).replace(os.sep, "/")

    def _recall(self, key: str, stamp: str) -> str:
        """The remembered hex digest of the file at ``key`` if its stat is ``stamp``, else ""."""
        known = self.files.get(key)
        if type(known) is str and known.startswith(stamp) and len(known) == len(stamp) + 64:
            return known[len(stamp) :]
        return ""

    def _hash_folder(self, name: str, rel: str, real: str, st: os.stat_result) -> str:
        top = self._key(real)
        entries = self._walk(name, rel, real, top, st)
        stats = hashlib.blake2b(marshal.dumps(entries), digest_size=16).hexdigest() + " "
        known = self.folders.get(top)
        if type(known) is str and known.startswith(stats):
            return known[len(stats) :]
        items: list[bytes] = []
        pending: list[_File] = []
        for inner, key, mode, size, mtime_ns, ctime_ns, inode in entries:
            path = inner.encode(_FS_ENCODING, "surrogateescape")
            if stat.S_ISDIR(mode):
                items.append(b"d" + path)
                continue
            remembered = self._recall(key, _stamp(size, mtime_ns, ctime_ns, inode))
            if remembered:
                items.append(b"f" + bytes.fromhex(remembered) + path)
            else:
                pending.append(_File(os.path.join(self._real_root, key), key, f"{rel}/{inner}", path))
        self._hash_files(name, pending)
        items.extend(b"f" + bytes.fromhex(file.hexdigest) + file.inner for file in pending)
        items.sort()
        digest = f"{FOLDER_SCHEME}:{hashlib.blake2b(_encoding.encode(items), digest_size=32).hexdigest()}"
        self._forget_gone(top, {entry[1] for entry in entries})
        if all(file.remembered for file in pending):
            self.folders[top] = stats + digest
        else:  # a racy file: the same stats could hide another content next time
            self.folders.pop(top, None)
        self.dirty = True
        return digest

    def _walk(self, name: str, rel: str, real: str, top: str, st: os.stat_result) -> list[_Entry]:
        """Every entry below a data folder, checked (symlinks inside the project, no cycles, no
        FIFOs, devices or sockets), with its stat."""
        what = f"data.{name}:"
        entries: list[_Entry] = []
        # (real folder, its memo key, its path inside the data folder + "/" or "", the
        # (device, inode) of it and of the folders it is in)
        stack: list[tuple[str, str, str, tuple[tuple[int, int], ...]]] = [(real, top, "", ((st.st_dev, st.st_ino),))]
        while stack:
            folder, key, inner, ancestors = stack.pop()
            try:
                with os.scandir(folder) as listing:
                    children = list(listing)
            except OSError as exc:
                raise _unreadable(name, f"{rel}/{inner}".rstrip("/"), exc) from exc
            prefix = "" if key == "." else key + "/"
            for child in children:
                child_inner, child_key = inner + child.name, prefix + child.name
                try:
                    child_st = child.stat(follow_symlinks=False)
                    mode = child_st.st_mode
                    link = stat.S_ISLNK(mode)
                    if link:
                        target = str(resolve_inside(self.root, child_key, what))
                        child_key, child_st = self._key(target), os.stat(target)
                        mode = child_st.st_mode
                except OSError as exc:
                    raise _unreadable(name, f"{rel}/{child_inner}", exc) from exc
                if stat.S_ISDIR(mode):
                    folder_id = (child_st.st_dev, child_st.st_ino)
                    if folder_id in ancestors:
                        raise errors.PathError(
                            f"{what} {rel}/{child_inner} "
                            + (f"is a symlink to {os.readlink(child.path)}, " if link else "is ")
                            + "a folder it is in: hashing it would never end",
                            where=f"{rel}/{child_inner}",
                            hint="remove the link, or point it at a folder outside this one",
                        )
                    stack.append(
                        (
                            os.path.join(self._real_root, child_key),
                            child_key,
                            child_inner + "/",
                            (*ancestors, folder_id),
                        )
                    )
                elif not stat.S_ISREG(mode):
                    try:
                        check_kind(f"{rel}/{child_inner}", child_st, what)
                    except errors.PathError as exc:
                        exc.hint = _FOLDER_HINT
                        raise
                entries.append(
                    (
                        child_inner,
                        child_key,
                        mode,
                        child_st.st_size,
                        child_st.st_mtime_ns,
                        child_st.st_ctime_ns,
                        child_st.st_ino,
                    )
                )
        return entries

    def _forget_gone(self, folder_key: str, keys: set[str]) -> None:
        """Drop the memo's files that were under the folder and are not among ``keys``."""
        prefix = "" if folder_key == "." else folder_key + "/"
        for key in [key for key in self.files if key.startswith(prefix) and key not in keys]:
            del self.files[key]

    def _hash_files(self, name: str, files: list[_File]) -> None:
        """Hash ``files`` (in several threads when there are several) and remember them."""
        if not files:
            return
        counter = itertools.count()
        failures: list[BaseException] = []

        def work() -> None:
            buffer = bytearray(_CHUNK)
            while not failures and (index := next(counter)) < len(files):
                try:
                    self._hash_file(name, files[index], buffer)
                except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
                    failures.append(exc)

        if len(files) == 1:
            work()
        else:
            threads = [
                threading.Thread(target=work, name="modver-data-hash", daemon=True)
                for _ in range(min(_THREADS, len(files)))
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        self.dirty = True
        if failures:
            raise failures[0]

    def _hash_file(self, name: str, file: _File, buffer: bytearray) -> None:
        """Read and hash one file, race-free: opened without blocking or following a link, its
        kind checked on the open file, its stat compared before and after reading."""
        view = memoryview(buffer)
        for _ in range(3):
            started = time.time_ns()
            try:
                fd = os.open(file.path, _OPEN_FLAGS)
            except OSError as exc:
                raise _unreadable(name, file.shown, exc) from exc
            try:
                with open(fd, "rb", buffering=0) as handle:
                    before = os.fstat(fd)
                    check_kind(file.shown, before, f"data.{name}:")  # swapped since its stat
                    digest = hashlib.blake2b(digest_size=32)
                    while size := handle.readinto(view):
                        digest.update(view[:size])
                    after = os.fstat(fd)
            except OSError as exc:
                raise _unreadable(name, file.shown, exc) from exc
            stamp = _stamp(before.st_size, before.st_mtime_ns, before.st_ctime_ns, before.st_ino)
            if stamp != _stamp(after.st_size, after.st_mtime_ns, after.st_ctime_ns, after.st_ino):
                continue  # written while we read it: read it again
            file.hexdigest = digest.hexdigest()
            file.remembered = max(before.st_mtime_ns, before.st_ctime_ns) < started - RACY_NS
            if file.remembered:
                self.files[file.key] = stamp + file.hexdigest
            else:  # racy: a save within the same clock tick would leave its stat unchanged
                self.files.pop(file.key, None)
            return
        raise errors.RunError(
            f"data.{name}: {file.shown} kept changing while it was being hashed",
            where=file.shown,
            hint="wait until whatever writes it has finished, then run again",
        )


def _unreadable(name: str, shown: str, exc: OSError) -> errors.RunError:
    return errors.RunError(
        f"data.{name}: cannot read {shown}: {exc.strerror or exc}",
        where=shown,
        hint="check that it exists and that you may read it, or fix `data:` in the manifest",
    )
