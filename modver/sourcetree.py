"""Read-only source trees over the file system and over plain dicts (models.SourceTree).

A tree's ``content_id`` is git's blob id, so one file content has one id whether it is read from
the working tree, from git history, or from a dict: caches keyed by it are shared by all three.
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Iterator, Mapping
from hashlib import sha1
from pathlib import Path

from modver._paths import resolve_inside

__all__ = ["DictTree", "WorkingTree", "git_blob_id"]

_SKIPPED_DIRS = frozenset({".git", ".modver", "__pycache__", "node_modules", ".venv", "venv"})


def git_blob_id(data: bytes) -> str:
    """Git's object id of a blob holding ``data``: sha1 of ``b"blob <len>\\0" + data``."""
    return sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _clean(path: str) -> str | None:
    """The normalised relative POSIX path, or None when it leaves the tree or is absolute."""
    if path in ("", "."):
        return ""
    if path.startswith("/") or "\\" in path:
        return None
    norm = posixpath.normpath(path)
    if norm == ".." or norm.startswith("../"):
        return None
    return "" if norm == "." else norm


class WorkingTree:
    """The project's files on disk, rooted at ``root``, each read at most once.

    A file's bytes are read on first use (``read`` or ``content_id``) and kept for the life of
    the tree: the fingerprint, the version's stored files and every probe of one command see the
    same bytes, even when an editor saves the file meanwhile (SPEC: files are read once). Use a
    new tree to see newer content. Paths resolve through symlinks only inside the project: one
    leading outside raises :class:`~modver.errors.PathError` naming the link and its target.
    Anything but a regular file (a folder, a FIFO, a device) reads as no file.
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self._files: dict[str, tuple[bytes, str] | None] = {}

    def __repr__(self) -> str:
        return f"WorkingTree({str(self.root)!r})"

    def _load(self, path: str) -> tuple[bytes, str] | None:
        """(bytes, git blob id) of the file at ``path``, read once; None when there is none."""
        clean = _clean(path)
        if not clean:
            return None
        if clean in self._files:
            return self._files[clean]
        found = self._read_disk(clean)
        self._files[clean] = found
        return found

    def _read_disk(self, clean: str) -> tuple[bytes, str] | None:
        target = resolve_inside(self.root, clean, "project file")
        try:
            # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below
            fd = os.open(target, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return None
        with os.fdopen(fd, "rb") as handle:
            data = handle.read()
        return data, git_blob_id(data)

    def read(self, path: str) -> bytes | None:
        """The file's bytes, or None when there is no such file."""
        found = self._load(path)
        return None if found is None else found[0]

    def content_id(self, path: str) -> str | None:
        """The git blob id of the bytes :meth:`read` returns; None if there is no such file."""
        found = self._load(path)
        return None if found is None else found[1]

    def is_dir(self, path: str) -> bool:
        """Whether ``path`` is a folder of the tree ('' is the root)."""
        clean = _clean(path)
        if clean is None:
            return False
        return (self.root / clean).is_dir() if clean else self.root.is_dir()

    def list_python_files(self) -> list[str]:
        """Every ``.py`` file of the tree (hidden folders, caches and virtualenvs skipped), sorted."""
        found: list[str] = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = [d for d in dirnames if d not in _SKIPPED_DIRS and not d.startswith(".")]
            rel = os.path.relpath(dirpath, self.root)
            for name in filenames:
                if name.endswith(".py"):
                    found.append(name if rel == "." else f"{rel}/{name}".replace(os.sep, "/"))
        return sorted(found)


class DictTree:
    """A tree held in memory: ``{"pkg/mod.py": b"..."}``. For tests and trees read from history."""

    def __init__(self, files: Mapping[str, bytes | str]) -> None:
        self._files: dict[str, bytes] = {}
        for path, data in files.items():
            clean = _clean(path)
            if not clean:
                raise ValueError(f"invalid path in DictTree: {path!r}")
            self._files[clean] = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        self._dirs = {""}
        for path in self._files:
            parent = posixpath.dirname(path)
            while parent and parent not in self._dirs:
                self._dirs.add(parent)
                parent = posixpath.dirname(parent)
        self._ids: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"DictTree({sorted(self._files)!r})"

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._files))

    def read(self, path: str) -> bytes | None:
        """The file's bytes, or None when there is no such file."""
        clean = _clean(path)
        return None if clean is None else self._files.get(clean)

    def content_id(self, path: str) -> str | None:
        """The git blob id of the file, or None when there is no such file."""
        clean = _clean(path)
        if clean is None:
            return None
        blob = self._ids.get(clean)
        if blob is None:
            data = self._files.get(clean)
            if data is None:
                return None
            blob = self._ids[clean] = git_blob_id(data)
        return blob

    def is_dir(self, path: str) -> bool:
        """Whether ``path`` is a folder holding at least one file ('' is the root)."""
        clean = _clean(path)
        return clean is not None and clean in self._dirs

    def list_python_files(self) -> list[str]:
        """Every ``.py`` file of the tree, sorted."""
        return sorted(p for p in self._files if p.endswith(".py"))
