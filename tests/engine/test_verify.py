"""A version stores exactly the code it fingerprinted, and `modver verify` proves it."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from pathlib import Path

import pytest

from modver._git import GitRepo
from modver.engine.verify import verify_history
from modver.fingerprint import SummaryCache, fingerprint_stage
from modver.project import Project
from modver.sourcetree import DictTree
from modver.store.history import History
from tests.helpers import cli

HELPER_A = "FACTOR = 3\n\n\ndef helper(x):\n    return x * FACTOR\n"
HELPER_B = "FACTOR = 4\n\n\ndef helper(x):\n    return x * FACTOR + 1\n"


def _modver(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return cli(root, *args, code=0 if check else None)


def _stored_fingerprints(root: Path) -> list[tuple[str, str, str]]:
    """(version, recorded fingerprint, fingerprint of its stored code) of every prep version."""
    with Project(root) as project:
        rows = []
        for v in project.history.versions("prep"):
            tree = project.history.source_tree(v)
            again = fingerprint_stage(tree, v.entry, project.history.closure(v).deps, cache=SummaryCache())
            rows.append((v.version, v.fingerprint, again.fingerprint))
        return rows


def test_snapshots_during_editor_saves_store_what_they_fingerprinted(pipeline_project):
    """An editor saving (atomically: temp file + rename) while snapshots run: every version's
    stored code gives its own fingerprint. Before files were read once, a save between the
    fingerprint's read and the store's read stored one content under another's fingerprint."""
    p = pipeline_project
    _modver(p.root, "snapshot", "prep")
    stop = threading.Event()

    def editor() -> None:
        target, tmp = p.root / "pipe" / "util.py", p.root / "pipe" / ".util.py.swp"
        flip = False
        while not stop.is_set():
            tmp.write_text(HELPER_B if flip else HELPER_A, encoding="utf-8")
            os.replace(tmp, target)
            flip = not flip

    thread = threading.Thread(target=editor, daemon=True)
    thread.start()
    try:
        for _ in range(16):
            _modver(p.root, "snapshot", "prep")
    finally:
        stop.set()
        thread.join()
    rows = _stored_fingerprints(p.root)
    assert len(rows) >= 2  # both contents were registered
    assert [(v, fp) for v, fp, again in rows if fp != again] == []
    assert len({fp for _, fp, _ in rows}) == len(rows)  # one number per fingerprint


def test_verify_passes_on_a_real_history_and_reports_json(pipeline_project):
    p = pipeline_project
    _modver(p.root, "index")
    p.write("pipe/util.py", HELPER_B)
    _modver(p.root, "snapshot")
    done = _modver(p.root, "verify", "--json")
    checks = json.loads(done.stdout)
    assert {(c["stage"], c["version"]) for c in checks} == {("prep", "v1"), ("prep", "v2"), ("train", "v1")}
    assert all(c["ok"] and c["problems"] == [] for c in checks)
    text = _modver(p.root, "verify", "prep").stdout
    assert "prep@v1  ok" in text and "prep@v2  ok" in text and "train" not in text
    assert "2 versions checked, 0 damaged." in text


@pytest.mark.damages_history
def test_verify_finds_a_version_whose_code_is_not_its_fingerprint(pipeline_project):
    """A version registered (by a buggy writer) with one content under another's fingerprint."""
    p = pipeline_project
    _modver(p.root, "index")
    tree_a = DictTree({"pipe/__init__.py": "", "pipe/util.py": HELPER_A, "pipe/prep.py": p.read("pipe/prep.py")})
    tree_b = DictTree({"pipe/__init__.py": "", "pipe/util.py": HELPER_B, "pipe/prep.py": p.read("pipe/prep.py")})
    closure_b = fingerprint_stage(tree_b, "pipe/prep.py:prep")
    with GitRepo.discover(p.root) as repo:
        History(repo).register("prep", closure_b, tree_a, origin=None, message="bad")  # stores A as B
    done = _modver(p.root, "verify", check=False)
    assert done.returncode == 1
    assert "prep@v1  ok" in done.stdout
    assert "prep@v2  DAMAGED: the stored code fingerprints as mv1:" in done.stdout
    assert "1 damaged" in done.stdout and "Error" not in done.stderr


@pytest.mark.damages_history
def test_verify_finds_a_listed_file_that_is_not_stored():
    repo = GitRepo.memory()
    history = History(repo)
    tree = DictTree({"a.py": "import b\n\n\ndef f():\n    return b.g()\n", "b.py": "def g():\n    return 1\n"})
    closure = fingerprint_stage(tree, "a.py:f")
    assert closure.files == ("a.py", "b.py")
    history.register("s", closure, tree, origin=None)
    v = history.latest("s")
    meta = history.meta(v)
    blob = repo.write_blob(tree.read("a.py") or b"")
    meta_blob = repo.write_blob(json.dumps(meta).encode())
    commit = repo.write_commit(repo.write_tree({"meta.json": meta_blob, "src/a.py": blob}), [], "s v1: b.py lost")
    assert repo.set_ref_if_equals(History.ref("s"), v.commit, commit)
    [check] = verify_history(History(repo))
    assert not check.ok
    assert check.problems == ("b.py is listed by the version but not stored",)


def test_verify_of_an_unknown_stage_lists_the_known_ones(pipeline_project):
    p = pipeline_project
    _modver(p.root, "index")
    done = _modver(p.root, "verify", "nope", check=False)
    assert done.returncode == 1
    assert "unknown stage 'nope'" in done.stderr and "prep, train" in done.stderr
