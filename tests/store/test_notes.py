"""Tests for modver.store.notes: where working-tree versions were later found committed."""

from __future__ import annotations

import hashlib

import pytest

from modver import errors
from modver._git import GitRepo
from modver.models import Closure, Definition
from modver.store.history import History
from modver.store.notes import COMMITTED_REF

SOURCE = {"pre.py": b"def preprocess(x):\n    return x\n"}


class Files:
    """A SourceTree over a dict; content ids are git blob shas."""

    def read(self, path: str) -> bytes | None:
        return SOURCE.get(path)

    def content_id(self, path: str) -> str | None:
        data = SOURCE.get(path)
        return None if data is None else hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()

    def is_dir(self, path: str) -> bool:
        return path == ""


def _register(history: History) -> None:
    fingerprint = "mv1:" + "ab" * 32
    closure = Closure(
        fingerprint=fingerprint,
        entry="pre.py:preprocess",
        files=("pre.py",),
        definitions=(Definition("pre.py", "preprocess", "function", 1, 2, fingerprint),),
    )
    history.register("pre", closure, Files(), origin=None, message="from the working tree")


def test_a_version_found_committed_is_noted_once_and_shown():
    repo = GitRepo.memory()
    history = History(repo)
    _register(history)
    (version,) = history.versions("pre")
    assert version.committed is None
    (noted,) = history.record_committed([(version, "c" * 40), (version, "d" * 40)])  # the first wins
    assert noted.committed == "c" * 40
    assert History(repo).versions("pre")[0].committed == "c" * 40  # read back from the notes
    assert history.record_committed([(version, "e" * 40)]) == []  # noted already: nothing new


def test_a_damaged_note_is_a_store_error_naming_the_notes_ref():
    repo = GitRepo.memory()
    history = History(repo)
    _register(history)
    (version,) = history.versions("pre")
    tree = repo.write_tree({version.commit: repo.write_blob(b"{not json")})
    repo.set_ref_if_equals(COMMITTED_REF, None, repo.write_commit(tree, [], "damaged"))
    with pytest.raises(errors.StoreError, match=f"corrupt note on {version.commit} in {COMMITTED_REF}") as info:
        History(repo).versions("pre")
    assert info.value.where == COMMITTED_REF
