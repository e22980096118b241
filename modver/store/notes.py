"""Committed notes: where the code of a version first registered from the working tree was later
found committed (by ``modver index``).

They are kept in the layout of git notes under :data:`COMMITTED_REF` (a tree of blobs named by
the version commit they annotate, each ``{"commit": "<sha>", "stage": ..., "version": ...}``;
``git show refs/modver/notes/committed:<version commit>``), which travels with
``refs/modver/*``: a version's own commit, number and fingerprint never change.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import replace

from modver import errors
from modver._git import GitRepo
from modver.models import StageVersion

__all__ = ["COMMITTED_REF", "CommittedNotes"]

COMMITTED_REF = "refs/modver/notes/committed"


class CommittedNotes:
    """The committed notes of one repository, read once per tip of :data:`COMMITTED_REF`."""

    def __init__(self, repo: GitRepo):
        self.repo = repo
        self._cache: tuple[str, dict[str, str]] | None = None

    def read(self) -> dict[str, str]:
        """Version commit -> the user's commit where its code was first found by ``index``."""
        tip = self.repo.read_ref(COMMITTED_REF)
        if tip is None:
            return {}
        if self._cache is not None and self._cache[0] == tip:
            return self._cache[1]
        found: dict[str, str] = {}
        for name, (_mode, blob) in self.repo.tree_entries(self.repo.commit_tree(tip)).items():
            try:
                note = json.loads(self.repo.read_blob(blob).decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise errors.StoreError(
                    f"corrupt note on {name} in {COMMITTED_REF} at commit {tip[:12]}: {exc}",
                    where=COMMITTED_REF,
                    hint=f"the ref was changed outside modver; inspect it with `git log {COMMITTED_REF}`",
                ) from exc
            if isinstance(note, dict) and isinstance(note.get("commit"), str):
                found[name] = note["commit"]
        self._cache = (tip, found)
        return found

    def record(self, found: list[tuple[StageVersion, str]], deadline: float) -> list[StageVersion]:
        """Note, for each (working-tree version, git commit), that the version's code was found
        committed there (the first commit found wins); returns the versions newly noted.

        The ref is updated by compare-and-swap, retried until ``deadline`` (``time.monotonic()``).
        """
        first: dict[str, tuple[StageVersion, str]] = {}
        for version, sha in found:
            if version.origin is None:
                first.setdefault(version.commit, (version, sha))
        while True:
            tip = self.repo.read_ref(COMMITTED_REF)
            known = self.read()
            new = [pair for commit, pair in first.items() if commit not in known]
            if not new:
                return []
            entries = self.repo.tree_entries(self.repo.commit_tree(tip)) if tip is not None else {}
            files: dict[str, str | tuple[int, str]] = dict(entries)
            for version, sha in new:
                files[version.commit] = self.repo.write_blob(
                    (
                        json.dumps({"commit": sha, "stage": version.stage, "version": version.version}, sort_keys=True)
                        + "\n"
                    ).encode()
                )
            lines = "\n".join(f"{v.stage} {v.version}: {sha[:12]}" for v, sha in new)
            commit = self.repo.write_commit(
                self.repo.write_tree(files), [tip] if tip else [], f"modver: versions found committed\n\n{lines}\n"
            )
            if self.repo.set_ref_if_equals(COMMITTED_REF, tip, commit):
                return [replace(v, committed=sha) for v, sha in new]
            if time.monotonic() > deadline:
                raise errors.ConcurrencyError(
                    f"could not update {COMMITTED_REF}: it kept changing",
                    where=COMMITTED_REF,
                    hint="another modver process is indexing; run `modver index` again",
                )
            time.sleep(0.01 * random.random())
