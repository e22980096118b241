"""A read-only view of one git tree object: the files of a commit, or of a stored version."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from modver._git import GitRepo

S_IFGITLINK = 0o160000  # a submodule's tree entry


def split_path(path: str) -> list[str]:
    """The parts of a POSIX (or ``\\``-separated) path, without empty and ``.`` parts."""
    return [part for part in path.replace("\\", "/").split("/") if part not in ("", ".")]


class GitTree:
    """A read-only :class:`~modver.models.SourceTree` over a git tree object.

    ``content_id`` is the git blob sha. Only regular (and executable) files are files:
    symlinks and submodules read as None. Tree objects are cached by the owning
    :class:`~modver._git.GitRepo`, shared by every GitTree of that repository.
    """

    def __init__(self, repo: GitRepo, tree_sha: str | None):
        self.repo = repo
        self.sha = tree_sha

    def __repr__(self) -> str:
        return f"GitTree({self.sha!r})"

    def _entry(self, path: str) -> tuple[int, str] | None:
        if self.sha is None:
            return None
        parts = split_path(path)
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
        if not split_path(path):
            return True
        entry = self._entry(path)
        return entry is not None and stat.S_ISDIR(entry[0]) and entry[0] != S_IFGITLINK

    def subtree(self, path: str) -> GitTree:
        """The folder ``path`` as its own GitTree (empty when there is no such folder)."""
        entry = self._entry(path)
        if entry is None or not stat.S_ISDIR(entry[0]):
            return GitTree(self.repo, None)
        return GitTree(self.repo, entry[1])

    def iter_files(self, prefix: str = "") -> Iterator[str]:
        """Paths of every file under folder ``prefix`` (full POSIX paths), sorted."""
        parts = split_path(prefix)
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
            if stat.S_ISDIR(mode) and mode != S_IFGITLINK:
                yield from self._walk(sha, path)
            elif self._is_file(mode):
                yield path
