"""Tests for modver._git: repository access, revisions, trees, refs, error mapping."""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import random
import re
import stat
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from modver import errors
from modver._git import GitRepo, GitTree


def git(cwd: Path, *args: str, input: bytes | None = None, env: dict[str, str] | None = None) -> str:
    full_env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Ada",
        "GIT_AUTHOR_EMAIL": "ada@example.com",
        "GIT_COMMITTER_NAME": "Ada",
        "GIT_COMMITTER_EMAIL": "ada@example.com",
        **(env or {}),
    }
    out = subprocess.run(["git", *args], cwd=cwd, env=full_env, input=input, capture_output=True, check=True)
    return out.stdout.decode()


def commit_files(repo: Path, files: dict[str, str], message: str, date: str | None = None) -> str:
    for path, text in files.items():
        target = repo / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    git(repo, "add", "-A")
    dates = {"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date} if date else None
    git(repo, "commit", "-q", "-m", message, env=dates)
    return git(repo, "rev-parse", "HEAD").strip()


def blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    return root


@pytest.fixture
def history3(project: Path) -> tuple[Path, list[str]]:
    shas = [
        commit_files(project, {"a.py": "x = 1\n", "pkg/b.py": "y = 1\n"}, "one"),
        commit_files(project, {"a.py": "x = 2\n"}, "two"),
        commit_files(project, {"pkg/b.py": "y = 3\n", "pkg/sub/c.py": "z\n"}, "three\n\nbody"),
    ]
    return project, shas


# -- opening ------------------------------------------------------------------------------------


def test_discover_walks_up_to_root(history3):
    root, shas = history3
    with GitRepo.discover(root / "pkg" / "sub") as repo:
        assert repo.root == root.resolve()
        assert repo.head_commit() == shas[-1]
        assert repo.current_branch() == "main"


def test_discover_outside_a_repository(tmp_path: Path):
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(errors.NotARepositoryError) as info:
        GitRepo.discover(plain)
    assert "modver init" in (info.value.hint or "")
    assert str(plain) in str(info.value)


def test_init_creates_repository_without_git_binary(tmp_path: Path):
    with GitRepo.init(tmp_path / "new") as repo:
        assert repo.head_commit() is None
        assert repo.current_branch() == "main"
        assert not repo.is_dirty()
    assert git(tmp_path / "new", "rev-parse", "--is-inside-work-tree").strip() == "true"
    assert git(tmp_path / "new", "symbolic-ref", "HEAD").strip() == "refs/heads/main"


def test_detached_head_has_no_branch(history3):
    root, shas = history3
    git(root, "checkout", "-q", shas[0])
    with GitRepo.discover(root) as repo:
        assert repo.current_branch() is None
        assert repo.head_commit() == shas[0]


# -- revisions ----------------------------------------------------------------------------------


def test_resolve_rev_forms(history3):
    root, shas = history3
    git(root, "tag", "light", shas[1])
    git(root, "tag", "-a", "annotated", "-m", "ann", shas[0])
    git(root, "branch", "side", shas[1])
    with GitRepo.discover(root) as repo:
        assert repo.resolve_rev("HEAD") == shas[2]
        assert repo.resolve_rev("main") == shas[2]
        assert repo.resolve_rev("refs/heads/main") == shas[2]
        assert repo.resolve_rev("HEAD~1") == shas[1]
        assert repo.resolve_rev("HEAD~2") == shas[0]
        assert repo.resolve_rev("main^") == shas[1]
        assert repo.resolve_rev("main^^") == shas[0]
        assert repo.resolve_rev("HEAD~1^1") == shas[0]
        assert repo.resolve_rev("side") == shas[1]
        assert repo.resolve_rev("light") == shas[1]
        assert repo.resolve_rev("annotated") == shas[0]
        assert repo.resolve_rev(shas[1]) == shas[1]
        assert repo.resolve_rev(shas[1][:8]) == shas[1]
        assert repo.resolve_rev(shas[1].upper()[:10]) == shas[1]
        assert repo.resolve_rev("@") == shas[2]


@pytest.mark.parametrize(
    "rev", ["nope", "HEAD~3", "main^2", "deadbeef", "0" * 40, "HEAD~x", "", "~1", "../config", "a b"]
)
def test_resolve_rev_unknown(history3, rev):
    root, _ = history3
    with GitRepo.discover(root) as repo, pytest.raises(errors.UnknownVersionError) as info:
        repo.resolve_rev(rev)
    assert repr(rev) in str(info.value)


def test_resolve_rev_not_a_commit(history3):
    root, shas = history3
    tree = git(root, "rev-parse", "HEAD^{tree}").strip()
    with GitRepo.discover(root) as repo, pytest.raises(errors.UnknownVersionError):
        repo.resolve_rev(tree)


def test_first_parent_walk_commit_info(history3):
    root, shas = history3
    # a merge: first-parent walk must stay on main
    git(root, "checkout", "-q", "-b", "feature", shas[0])
    side = commit_files(root, {"side.py": "s\n"}, "side")
    git(root, "checkout", "-q", "main")
    git(root, "merge", "-q", "--no-ff", "-m", "merge", "feature")
    merge = git(root, "rev-parse", "HEAD").strip()
    with GitRepo.discover(root) as repo:
        walk = repo.first_parent_walk("HEAD")
        assert walk == [*shas, merge]
        assert side not in walk
        assert repo.first_parent_walk("HEAD~1") == shas  # served from the cache prefix
        assert repo.first_parent_walk("feature") == [shas[0], side]
        assert repo.commit_message(shas[2]) == "three\n\nbody\n"
        assert repo.commit_parents(merge) == (shas[2], side)
        when = repo.commit_time(shas[0])
        assert when.tzinfo is not None
        expected = int(git(root, "log", "-1", "--format=%ct", shas[0]))
        assert int(when.timestamp()) == expected


def test_commit_time_keeps_offset(project):
    sha = commit_files(project, {"a": "1"}, "dated", date="2024-03-01T12:00:00+0200")
    with GitRepo.discover(project) as repo:
        when = repo.commit_time(sha)
    assert when == datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
    assert when.utcoffset().total_seconds() == 7200


# -- trees ------------------------------------------------------------------------------------


def test_tree_at_reads_files(history3):
    root, shas = history3
    with GitRepo.discover(root) as repo:
        first = repo.tree_at(shas[0])
        last = repo.tree_at(shas[2])
        assert first.read("a.py") == b"x = 1\n"
        assert last.read("a.py") == b"x = 2\n"
        assert last.read("pkg/sub/c.py") == b"z\n"
        assert last.read("./pkg//b.py") == b"y = 3\n"
        assert last.read("missing.py") is None
        assert last.read("pkg") is None
        assert last.read("a.py/x") is None
        assert last.content_id("a.py") == blob_sha(b"x = 2\n")
        assert last.blob_id("pkg/b.py") == git(root, "rev-parse", f"{shas[2]}:pkg/b.py").strip()
        assert first.content_id("pkg/sub/c.py") is None
        assert last.is_dir("") and last.is_dir("pkg") and last.is_dir("pkg/sub")
        assert not last.is_dir("a.py") and not last.is_dir("nope")
        assert list(last.iter_files()) == ["a.py", "pkg/b.py", "pkg/sub/c.py"]
        assert list(last.iter_files("pkg")) == ["pkg/b.py", "pkg/sub/c.py"]
        assert list(last.iter_files("pkg/sub/")) == ["pkg/sub/c.py"]
        assert list(last.iter_files("a.py")) == []
        sub = last.subtree("pkg")
        assert sub.read("sub/c.py") == b"z\n"
        empty = repo.tree(None)
        assert empty.read("a.py") is None and empty.is_dir("") and list(empty.iter_files()) == []


def test_tree_iter_files_sorted_by_path(project):
    sha = commit_files(project, {"a/b.py": "1", "a.py": "2", "a-b.py": "3"}, "c")
    with GitRepo.discover(project) as repo:
        assert list(repo.tree_at(sha).iter_files()) == sorted(["a/b.py", "a.py", "a-b.py"])


def test_symlinks_and_executables(project):
    (project / "run.sh").write_text("echo\n")
    (project / "run.sh").chmod(0o755)
    (project / "link.py").symlink_to("run.sh")
    sha = commit_files(project, {}, "modes")
    with GitRepo.discover(project) as repo:
        tree = repo.tree_at(sha)
        assert tree.read("run.sh") == b"echo\n"
        assert tree.read("link.py") is None
        assert list(tree.iter_files()) == ["run.sh"]


def test_gittree_is_a_sourcetree():
    from modver.models import SourceTree

    tree: SourceTree = GitTree(GitRepo.memory(), None)
    assert tree.read("x") is None and tree.content_id("x") is None


# -- writing objects and refs ---------------------------------------------------------------


def test_write_objects_in_memory():
    repo = GitRepo.memory()
    blob = repo.write_blob(b"hello\n")
    assert blob == blob_sha(b"hello\n")
    assert repo.write_blob(b"hello\n") == blob
    assert repo.has_object(blob) and not repo.has_object("1" * 40) and not repo.has_object("zz")
    tree = repo.write_tree({"meta.json": blob, "src/a/b.py": blob, "src/c.py": (0o100755, blob)})
    commit = repo.write_commit(tree, [], "first", when=datetime(2025, 1, 2, tzinfo=UTC))
    assert repo.commit_message(commit) == "first\n"
    assert repo.commit_time(commit) == datetime(2025, 1, 2, tzinfo=UTC)
    files = repo.tree_at(commit)
    assert list(files.iter_files()) == ["meta.json", "src/a/b.py", "src/c.py"]
    assert files.read("src/a/b.py") == b"hello\n"
    second = repo.write_commit(tree, [commit], "second")
    assert repo.commit_parents(second) == (commit,)
    with pytest.raises(ValueError):
        repo.write_tree({"a": blob, "a/b": blob})


def test_refs_compare_and_swap_in_memory():
    repo = GitRepo.memory()
    tree = repo.write_tree({"f": repo.write_blob(b"1")})
    c1 = repo.write_commit(tree, [], "1")
    c2 = repo.write_commit(tree, [c1], "2")
    name = "refs/modver/stages/pre"
    assert repo.read_ref(name) is None
    assert repo.set_ref_if_equals(name, None, c1)
    assert not repo.set_ref_if_equals(name, None, c2)  # exists already
    assert not repo.set_ref_if_equals(name, c2, c2)  # wrong old value
    assert repo.set_ref_if_equals(name, c1, c2)
    assert repo.read_ref(name) == c2
    assert repo.list_refs("refs/modver/stages/") == {name: c2}
    assert repo.list_refs("refs/modver/tags") == {}


def test_refs_on_disk_and_a_lock_no_modver_process_holds(history3, monkeypatch, caplog):
    root, shas = history3
    name = "refs/modver/stages/pre"
    monkeypatch.setenv("MODVER_REF_LOCK_TIMEOUT", "0.4")
    with GitRepo.discover(root) as repo:
        assert repo.set_ref_if_equals(name, None, shas[0])
        lock = root / ".git" / "refs" / "modver" / "stages" / "pre.lock"
        lock.write_text("")  # as git leaves it while it updates the ref (or a crashed git)
        start = time.monotonic()
        with caplog.at_level("INFO", logger="modver"), pytest.raises(errors.ConcurrencyError) as info:
            repo.set_ref_if_equals(name, shas[0], shas[1])
        assert time.monotonic() - start >= 0.4  # it waited its timeout (how much longer is the machine's load)
        assert [r.getMessage() for r in caplog.records] == [
            f"waiting for {lock}, which no modver process holds (a git command?)"
        ]
        assert str(lock) in str(info.value) and "no running modver process holds it" in str(info.value)
        assert f"delete {lock}" in info.value.hint and "git" in info.value.hint
        assert repo.read_ref(name) == shas[0] and lock.exists()  # nothing changed, nothing removed
        threading.Timer(0.2, lock.unlink).start()  # git finishes: the wait ends
        assert repo.set_ref_if_equals(name, shas[0], shas[1])
        assert not repo.set_ref_if_equals(name, shas[0], shas[2])  # a stale old value still fails
        assert repo.list_refs("refs/modver/") == {name: shas[1]}
    assert git(root, "for-each-ref", "--format=%(refname) %(objectname)", "refs/modver") == (f"{name} {shas[1]}\n")
    git(root, "pack-refs", "--all")
    with GitRepo.discover(root) as repo:
        assert repo.read_ref(name) == shas[1]
        assert repo.set_ref_if_equals(name, shas[1], shas[2])
        assert repo.list_refs("refs/modver/stages") == {name: shas[2]}


def test_is_dirty(history3):
    root, _ = history3
    with GitRepo.discover(root) as repo:
        assert not repo.is_dirty()
        (root / "untracked.py").write_text("u\n")
        assert not repo.is_dirty()  # untracked files do not count
        (root / "a.py").write_text("x = 99\n")
        assert repo.is_dirty()
        git(root, "add", "a.py")
        assert repo.is_dirty()  # staged only
        git(root, "checkout", "-q", "HEAD", "--", "a.py")
        assert not repo.is_dirty()
        (root / "pkg" / "b.py").unlink()
        assert repo.is_dirty()


# -- error mapping ----------------------------------------------------------------------------


def _loose_path(root: Path, sha: str) -> Path:
    return root / ".git" / "objects" / sha[:2] / sha[2:]


def test_corrupt_loose_object_is_store_error(history3):
    root, shas = history3
    blob = git(root, "rev-parse", f"{shas[2]}:a.py").strip()
    path = _loose_path(root, blob)
    path.chmod(0o644)
    path.write_bytes(b"this is not zlib")
    with GitRepo.discover(root) as repo, pytest.raises(errors.StoreError) as info:
        repo.tree_at(shas[2]).read("a.py")
    assert blob in str(info.value)
    assert info.value.__cause__ is not None


def test_corrupt_tree_and_commit_are_store_errors(history3):
    root, shas = history3
    tree = git(root, "rev-parse", f"{shas[0]}^{{tree}}").strip()
    bogus = b"tree 12\x00garbagegarbage"
    path = _loose_path(root, tree)
    path.chmod(0o644)
    path.write_bytes(zlib.compress(bogus))
    with GitRepo.discover(root) as repo, pytest.raises(errors.StoreError):
        repo.tree_at(shas[0]).read("a.py")
    commit_path = _loose_path(root, shas[1])
    commit_path.chmod(0o644)
    commit_path.write_bytes(zlib.compress(b"commit 5\x00nope\n"))
    with GitRepo.discover(root) as repo:
        with pytest.raises(errors.StoreError):
            repo.first_parent_walk("HEAD")
        with pytest.raises(errors.StoreError):
            repo.tree_at(shas[1])


def test_missing_object_is_store_error(history3):
    root, shas = history3
    blob = git(root, "rev-parse", f"{shas[2]}:pkg/sub/c.py").strip()
    _loose_path(root, blob).unlink()
    with GitRepo.discover(root) as repo, pytest.raises(errors.StoreError, match="missing"):
        repo.tree_at(shas[2]).read("pkg/sub/c.py")


def test_corrupt_ref_is_store_error(history3):
    root, _ = history3
    ref = root / ".git" / "refs" / "modver" / "stages" / "pre"
    ref.parent.mkdir(parents=True)
    ref.write_bytes(b"not-a-sha-at-all-but-long-enough-to-be-read-as-one-xx\n")
    with GitRepo.discover(root) as repo:
        with pytest.raises(errors.StoreError, match="corrupt git ref"):
            repo.read_ref("refs/modver/stages/pre")
        with pytest.raises(errors.StoreError):
            repo.list_refs("refs/modver/stages/")


def test_wrong_object_type_is_store_error():
    repo = GitRepo.memory()
    blob = repo.write_blob(b"x")
    with pytest.raises(errors.StoreError, match="expected a commit"):
        repo.tree_at(blob)


# -- every dulwich failure mapped, every bug let through ---------------------------------------


def _every_public_call(repo: GitRepo, shas: list[str]) -> list[tuple[str, Callable[[], object]]]:
    """Every public method of GitRepo and GitTree, on the history ``shas`` (oldest first)."""

    def read_trees() -> None:
        for sha in shas:
            tree = repo.tree_at(sha)
            for path in [*tree.iter_files(), "pkg", "pkg/b.py", "nope.py"]:
                tree.blob_id(path), tree.content_id(path), tree.read(path), tree.is_dir(path)
            list(tree.subtree("pkg").iter_files())
        list(repo.tree(repo.commit_tree(shas[-1])).iter_files("pkg"))

    def write() -> None:
        blob = repo.write_blob(b"new\n")
        commit = repo.write_commit(repo.write_tree({"a/b.txt": blob}), [shas[-1]], "new")
        repo.set_ref_if_equals("refs/modver/stages/new", None, commit)
        with repo.buffered_objects():
            repo.write_blob(b"packed\n")

    return [
        ("head_commit", repo.head_commit),
        ("current_branch", repo.current_branch),
        ("resolve_rev", lambda: repo.resolve_rev("HEAD~1")),
        ("resolve_rev abbreviated", lambda: repo.resolve_rev(shas[0][:7])),
        ("first_parent_walk", lambda: repo.first_parent_walk("main")),
        ("commit_*", lambda: [(repo.commit_parents(s), repo.commit_time(s), repo.commit_message(s)) for s in shas]),
        ("GitTree", read_trees),
        ("diff_trees", lambda: repo.diff_trees(shas[0], shas[-1])),
        ("has_object", lambda: [repo.has_object(s) for s in shas]),
        ("is_dirty", repo.is_dirty),
        ("branches", repo.branches),
        ("list_refs", lambda: repo.list_refs("refs/")),
        ("read_ref", lambda: repo.read_ref("refs/heads/main")),
        ("write", write),
        ("commit_all", lambda: repo.commit_all("all")),
    ]


def _overwrite(path: Path, data: bytes) -> None:
    path.chmod(0o644)  # git writes objects read-only
    path.write_bytes(data)


def _truncate(path: Path, size: int | None = None) -> None:
    data = path.read_bytes()
    _overwrite(path, data[: len(data) // 2 if size is None else size])


def _object(root: Path, rev: str) -> Path:
    return _loose_path(root, git(root, "rev-parse", rev).strip())


def _pack_index(root: Path) -> Path:
    git(root, "gc", "-q")
    return next((root / ".git" / "objects" / "pack").glob("*.idx"))


DAMAGES = {
    "truncated loose commit": lambda root: _truncate(_object(root, "HEAD")),
    "loose commit cut to one byte": lambda root: _truncate(_object(root, "HEAD"), 1),
    "loose commit cut inside its header": lambda root: _overwrite(_object(root, "HEAD"), b"\x90\x80"),
    "truncated loose tree": lambda root: _truncate(_object(root, "HEAD^{tree}")),
    "truncated loose blob": lambda root: _truncate(_object(root, "HEAD:a.py"), 5),
    "garbage loose object": lambda root: _overwrite(_object(root, "HEAD~1"), b"this is not zlib"),
    "garbage pack index": lambda root: _overwrite(
        idx := _pack_index(root), random.Random(8).randbytes(idx.stat().st_size)
    ),
    "truncated pack index": lambda root: _truncate(_pack_index(root)),
    "empty pack index": lambda root: _truncate(_pack_index(root), 0),
    "garbage pack": lambda root: _overwrite(_pack_index(root).with_suffix(".pack"), b"PACK garbage" * 9),
    "a ref holding garbage": lambda root: (root / ".git/refs/heads/main").write_bytes(b"garbage\n"),
    "a ref holding binary": lambda root: (root / ".git/refs/heads/main").write_bytes(b"\xff\xfe\0\n"),
    "HEAD holding 'ref: ' only": lambda root: (root / ".git/HEAD").write_bytes(b"ref: "),
    "HEAD pointing at itself": lambda root: (root / ".git/HEAD").write_bytes(b"ref: HEAD\n"),
    "garbage packed-refs": lambda root: (root / ".git/packed-refs").write_bytes(b"garbage line\n"),
    "empty packed-refs": lambda root: (root / ".git/packed-refs").write_bytes(b""),
    "garbage index": lambda root: (root / ".git/index").write_bytes(b"DIRC garbage"),
    "garbage config": lambda root: (root / ".git/config").write_bytes(b"[core\n"),
}


@pytest.mark.parametrize("damage", DAMAGES, ids=list(DAMAGES))
def test_no_dulwich_exception_escapes_a_damaged_repository(history3, damage: str):
    """Every public method either works or raises a ModverError: any other exception fails here."""
    root, shas = history3
    DAMAGES[damage](root)
    try:
        repo = GitRepo.discover(root)
    except errors.StoreError as exc:
        noticed = [("discover", exc)]
    else:
        noticed = []
        with repo:
            for name, call in _every_public_call(repo, shas):
                try:
                    call()
                except errors.ModverError as exc:
                    noticed.append((name, exc))
    assert noticed, f"{damage}: no method noticed the damage"
    for name, exc in noticed:
        assert isinstance(exc, errors.StoreError | errors.UnknownVersionError), (name, exc)
        if exc.__cause__ is not None:  # the dulwich or OS exception is kept, never shown as our own
            assert not type(exc.__cause__).__module__.startswith("modver"), (name, exc.__cause__)


def _write_buffered(repo: GitRepo) -> None:
    with repo.buffered_objects():
        repo.write_blob(b"packed\n")


BUG_SITES = {
    "discover": ("dulwich.repo.Repo.discover", lambda repo, shas: GitRepo.discover(repo.root)),
    "get_raw": ("dulwich.object_store.DiskObjectStore.get_raw", lambda repo, shas: repo.commit_tree(shas[0])),
    "__contains__": ("dulwich.object_store.DiskObjectStore.__contains__", lambda repo, shas: repo.has_object(shas[0])),
    "iter_prefix": (
        "dulwich.object_store.DiskObjectStore.iter_prefix",
        lambda repo, shas: repo.resolve_rev(shas[0][:7]),
    ),
    "follow": ("dulwich.refs.DiskRefsContainer.follow", lambda repo, shas: repo.read_ref("refs/heads/main")),
    "as_dict": ("dulwich.refs.DiskRefsContainer.as_dict", lambda repo, shas: repo.list_refs("refs/heads/")),
    "set_if_equals": (
        "dulwich.refs.DiskRefsContainer.set_if_equals",
        lambda repo, shas: repo.set_ref_if_equals("refs/heads/main", shas[-1], shas[0]),
    ),
    "parse_tree": ("modver._git.raw.parse_tree", lambda repo, shas: repo.tree_entries(repo.commit_tree(shas[0]))),
    "changes_from_tree": ("dulwich.index.Index.changes_from_tree", lambda repo, shas: repo.is_dirty()),
    "contains_packed": (
        "dulwich.object_store.DiskObjectStore.contains_packed",
        lambda repo, shas: repo.write_blob(b"new"),
    ),
    "write_pack_data": ("modver._git.objects.write_pack_data", lambda repo, shas: _write_buffered(repo)),
}


@pytest.mark.parametrize("bug", [AttributeError, TypeError, NameError, AssertionError])
@pytest.mark.parametrize("site", BUG_SITES, ids=list(BUG_SITES))
def test_a_programming_error_propagates_as_it_is(history3, monkeypatch, site: str, bug: type[Exception]):
    """A dulwich API that changed under modver is a bug to see, not "run git fsck"."""
    root, shas = history3
    target, call = BUG_SITES[site]

    def broken(*args: object, **kwargs: object) -> None:
        raise bug("simulated: the API changed")

    with GitRepo.discover(root) as repo:
        monkeypatch.setattr(target, broken)
        with pytest.raises(bug, match="simulated"):
            call(repo, shas)


def test_a_failed_pack_write_holds_nothing_back(history3, monkeypatch):
    root, _ = history3

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    with GitRepo.discover(root) as repo:
        monkeypatch.setattr("modver._git.objects.write_pack_data", disk_full)
        with pytest.raises(errors.StoreError, match="cannot write a pack.*: no space left on device"):
            _write_buffered(repo)
        monkeypatch.undo()
        sha = repo.write_blob(b"loose\n")
        assert _loose_path(root, sha).exists()  # written now, not held for a pack that never comes


def test_a_repository_format_dulwich_does_not_support_is_a_store_error(history3, monkeypatch):
    from dulwich.repo import UnsupportedVersion

    def unsupported(path: str) -> None:
        raise UnsupportedVersion(9)

    monkeypatch.setattr("dulwich.repo.Repo.discover", unsupported)
    with pytest.raises(errors.StoreError, match="cannot open the git repository: UnsupportedVersion"):
        GitRepo.discover(history3[0])


def test_git_module_is_not_imported_by_version(tmp_path: Path):
    code = "import sys, modver, modver.errors, modver.models; print('modver._git' in sys.modules, 'dulwich' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# -- scale --------------------------------------------------------------------------------------


def make_packed_history(root: Path, commits: int = 2000, files: int = 10) -> None:
    """A repository of ``commits`` commits, one of ``files`` files changing in each, packed."""
    git(root, "init", "-q", "-b", "main")
    lines: list[bytes] = []
    for i in range(commits):
        changed = i % files
        body = f"def f{changed}():\n    return {i}\n".encode()
        msg = f"commit {i}\n".encode()
        lines.append(b"commit refs/heads/main\n")
        lines.append(b"committer Ada <ada@example.com> %d +0000\n" % (1_700_000_000 + i))
        lines.append(b"data %d\n%s" % (len(msg), msg))
        if i == 0:
            for k in range(files):
                data = f"def f{k}():\n    return 0\n".encode()
                lines.append(b"M 100644 inline pkg/mod%d/file%d.py\ndata %d\n%s\n" % (k % 3, k, len(data), data))
        lines.append(b"M 100644 inline pkg/mod%d/file%d.py\ndata %d\n%s\n" % (changed % 3, changed, len(body), body))
    git(root, "fast-import", "--quiet", input=b"".join(lines))
    git(root, "gc", "-q", "--aggressive")


def measure_walk(root: Path) -> dict[str, float]:
    paths = [f"pkg/mod{k % 3}/file{k}.py" for k in range(10)]
    figures: dict[str, float] = {}
    with GitRepo.discover(root) as repo:
        start = time.perf_counter()
        walk = repo.first_parent_walk("HEAD")
        figures["walk_cold_s"] = time.perf_counter() - start
        start = time.perf_counter()
        repo.first_parent_walk("HEAD")
        figures["walk_cached_s"] = time.perf_counter() - start
        start = time.perf_counter()
        for sha in walk:
            tree = repo.tree_at(sha)
            for path in paths:
                assert tree.content_id(path)
        figures["lookups_cold_s"] = time.perf_counter() - start
        start = time.perf_counter()
        for sha in walk:
            tree = repo.tree_at(sha)
            for path in paths:
                tree.content_id(path)
        figures["lookups_cached_s"] = time.perf_counter() - start
        figures["commits"] = len(walk)
    return figures


@pytest.mark.slow
def test_walk_2000_packed_commits_fast(tmp_path: Path):
    root = tmp_path / "big"
    root.mkdir()
    make_packed_history(root)
    figures = measure_walk(root)
    print(figures)
    assert figures["commits"] == 2000
    assert figures["walk_cold_s"] < 2.0
    assert figures["lookups_cold_s"] < 5.0
    assert figures["lookups_cached_s"] < figures["lookups_cold_s"]


def test_corrupt_pack_is_store_error(history3):
    root, shas = history3
    git(root, "gc", "-q")
    pack = next((root / ".git" / "objects" / "pack").glob("*.pack"))
    pack.chmod(0o644)
    data = bytearray(pack.read_bytes())
    for i in range(12, len(data) - 20):  # keep the header, garble every object
        data[i] ^= 0x5A
    pack.write_bytes(bytes(data))
    with GitRepo.discover(root) as repo, pytest.raises(errors.StoreError) as info:
        repo.first_parent_walk("HEAD")
    assert not type(info.value.__cause__).__module__.startswith("modver")


# -- crash safety: objects, packs, the modver lock ------------------------------------------------

REPO_ROOT = Path(__file__).resolve().parents[1]
PACK_NAME = re.compile(r"pack-[0-9a-f]{40}\.(pack|idx)")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("shared", [None, "group"])
@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_objects_and_packs_get_the_permissions_git_gives(tmp_path: Path, mask: int, shared: str | None):
    old_mask = os.umask(mask)
    try:
        root = tmp_path / "repo"
        root.mkdir()
        git(root, "init", "-q", "-b", "main", *([f"--shared={shared}"] if shared else []))
        with GitRepo.discover(root) as repo:
            ours = repo.write_blob(b"written by modver, loose\n")
            with repo.buffered_objects():
                for i in range(3):
                    repo.write_blob(f"packed by modver {i}\n".encode())
        objects = root / ".git" / "objects"
        (our_pack,) = objects.glob("pack/pack-*.pack")
        # git writes the same kinds of files in the same repository, under the same umask
        theirs = git(root, "hash-object", "-w", "--stdin", input=b"written by git\n").strip()
        commit_files(root, {"a.py": "x = 1\n"}, "one")
        git(root, "repack", "-a", "-q")  # a pack of its own beside ours (no -d: ours stays)
        (git_pack,) = set(objects.glob("pack/pack-*.pack")) - {our_pack}
    finally:
        os.umask(old_mask)
    assert _mode(our_pack) == _mode(git_pack)
    assert _mode(our_pack.with_suffix(".idx")) == _mode(git_pack.with_suffix(".idx"))
    assert _mode(objects / ours[:2] / ours[2:]) == _mode(objects / theirs[:2] / theirs[2:])
    assert _mode(objects / ours[:2]) == _mode(objects / theirs[:2])
    assert _mode(our_pack) == (0o444 & ~mask | (0o040 if shared else 0))  # read-only, as git's
    modver_dir = root / ".git" / "modver"
    assert _mode(modver_dir) == _mode(objects / theirs[:2])  # the lock's folder: like git's folders
    if shared:
        assert _mode(modver_dir / "lock") & 0o060 == 0o060  # every member of the group can lock
    git(root, "fsck", "--full", "--strict")


def test_a_pack_is_never_visible_before_it_is_complete_and_synced(project: Path, monkeypatch):
    pack_dir = project / ".git" / "objects" / "pack"
    synced: set[tuple[int, int]] = set()
    listings: list[list[str]] = []
    real_fsync, real_replace, real_rename = os.fsync, os.replace, os.rename

    def look() -> None:
        listings.append(sorted(os.listdir(pack_dir)))

    def fsync(fd: int) -> None:
        real_fsync(fd)
        st = os.fstat(fd)
        synced.add((st.st_dev, st.st_ino))
        look()

    def moving(real):
        def move(src, dst, *args, **kwargs):
            if os.path.basename(dst).startswith("pack-"):
                st = os.stat(src)
                assert (st.st_dev, st.st_ino) in synced, f"{dst} appears before it is synced"
            look()
            real(src, dst, *args, **kwargs)
            look()

        return move

    with GitRepo.discover(project) as repo:
        with monkeypatch.context() as patch:
            patch.setattr(os, "fsync", fsync)
            patch.setattr(os, "replace", moving(real_replace))
            patch.setattr(os, "rename", moving(real_rename))
            with repo.buffered_objects():
                shas = [repo.write_blob(f"blob {i}\n".encode() * 50) for i in range(200)]
        assert all(repo.has_object(sha) for sha in shas)
    assert len(listings) >= 4
    for names in listings:
        for name in names:
            if name.endswith((".pack", ".idx")):  # what git and dulwich take for a pack
                assert PACK_NAME.fullmatch(name), f"{name} in {names}"
            if name.endswith(".idx"):
                assert name[: -len(".idx")] + ".pack" in names  # a pack's index comes last
    assert PACK_NAME.fullmatch(listings[-1][0]) and len(listings[-1]) == 2  # no temporary is left
    git(project, "fsck", "--full", "--strict")


def test_a_reader_meanwhile_never_loads_a_half_written_pack_index(history3, monkeypatch):
    from modver._git import objects as git_objects

    root, shas = history3
    git(root, "gc", "-q")  # the history in a pack: readers look packs up
    real = git_objects.write_pack_index
    seen: list[str] = []

    def written_in_two_halves(f, *args, **kwargs):
        whole = io.BytesIO()
        real(whole, *args, **kwargs)
        data = whole.getvalue()
        f.write(data[: len(data) // 2])
        f.flush()
        with GitRepo.discover(root) as reader:  # another process, while the index is half written
            seen.append(reader.first_parent_walk("HEAD")[-1])
            assert not reader.has_object("0" * 40)  # looks through every pack it can see
        f.write(data[len(data) // 2 :])

    monkeypatch.setattr(git_objects, "write_pack_index", written_in_two_halves)
    with GitRepo.discover(root) as repo:
        with repo.buffered_objects():
            blob = repo.write_blob(b"new\n" * 1000)
        assert repo.read_blob(blob) == b"new\n" * 1000
    assert seen == [shas[-1]]
    git(root, "fsck", "--full", "--strict")


def test_loose_objects_are_written_as_git_writes_them(project: Path, monkeypatch, caplog):
    data = b"shared content\n"
    sha = blob_sha(data)
    folder = project / ".git" / "objects" / sha[:2]
    folder.mkdir(parents=True)
    (folder / (sha[2:] + ".lock")).write_bytes(b"")  # left by an older modver killed while writing
    moved: list[str] = []
    real_replace = os.replace

    def replace(src, dst, *args, **kwargs):
        moved.append(os.path.basename(src))
        real_replace(src, dst, *args, **kwargs)

    with GitRepo.discover(project) as repo:
        with caplog.at_level("INFO", logger="modver"), monkeypatch.context() as patch:
            patch.setattr(os, "replace", replace)
            assert repo.write_blob(data) == sha  # the leftover blocks nothing
        assert not [r for r in caplog.records if "waiting" in r.getMessage()]  # not waited for
        assert len(moved) == 1 and moved[0].startswith("tmp_obj_")  # git's prefix: fsck ignores it
        assert sorted(os.listdir(folder)) == [sha[2:], sha[2:] + ".lock"]  # only the object is new
        obj = folder / sha[2:]
        os.utime(obj, (1_000_000_000, 1_000_000_000))
        inode = obj.stat().st_ino
        assert repo.write_blob(data) == sha
        assert obj.stat().st_mtime > 1_000_000_000 and obj.stat().st_ino == inode  # freshened only
    assert git(project, "cat-file", "-p", sha).encode() == data


KILLED_WRITER = """
import os, sys
from modver import _faults
_faults.install_from_env()
from modver._git import GitRepo
with GitRepo.discover(sys.argv[1]) as repo:
    repo.write_blob(b"written when killed\\n")
"""


def test_a_writer_killed_at_any_write_point_leaves_no_lock_for_git_to_see(project: Path, tmp_path: Path):
    commit_files(project, {"a.py": "x = 1\n"}, "one")
    objects = project / ".git" / "objects"
    trace = tmp_path / "trace"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "MODVER_FAULT_ROOT": str(objects)}
    run = functools.partial(
        subprocess.run, [sys.executable, "-c", KILLED_WRITER, str(project)], capture_output=True, check=False
    )
    assert run(env={**env, "MODVER_FAULT_TRACE": str(trace)}).returncode == 0
    points = len(trace.read_text().splitlines())
    assert points >= 2  # the temporary file, its rename
    sha = blob_sha(b"written when killed\n")
    for n in range(1, points + 1):
        (objects / sha[:2] / sha[2:]).unlink(missing_ok=True)
        assert run(env={**env, "MODVER_FAULT_KILL_AT": str(n)}).returncode == -9
        fsck = subprocess.run(["git", "fsck", "--full"], cwd=project, capture_output=True, text=True, check=False)
        assert fsck.returncode == 0 and "bad sha1 file" not in fsck.stderr and "error" not in fsck.stderr, fsck.stderr
        assert not list(objects.rglob("*.lock"))
        left = [p for p in objects.glob(f"{sha[:2]}/*") if p.name != sha[2:]]
        assert all(p.name.startswith("tmp_obj_") for p in left) and len(left) <= 1
        git(project, "prune", "--expire=now")  # what `git gc` does to old ones
        assert not [p for p in objects.glob(f"{sha[:2]}/*") if p.name != sha[2:]]
        with GitRepo.discover(project) as repo:
            assert repo.write_blob(b"written when killed\n") == sha  # the next writer is not hindered
        assert git(project, "cat-file", "-p", sha) == "written when killed\n"


def test_owner_record_while_the_modver_lock_is_held(project: Path):
    owner = project / ".git" / "modver" / "owner"
    with GitRepo.discover(project) as repo:
        with repo._modver_lock("updating refs/modver/stages/pre", "refs/modver/stages/pre"):
            record = json.loads(owner.read_text())
        assert not owner.exists()
    assert set(record) == {"pid", "host", "command", "action", "ref", "time"}
    assert record["pid"] == os.getpid() and record["host"] == os.uname().nodename
    assert record["action"] == "updating refs/modver/stages/pre" and record["ref"] == "refs/modver/stages/pre"
    assert datetime.fromisoformat(record["time"]).tzinfo is not None


DIES_HOLDING_THE_LOCK = """
import os, signal, sys
from modver._git import GitRepo
root, ref = sys.argv[1], sys.argv[2]
with GitRepo.discover(root) as repo:
    with repo._modver_lock("updating " + ref, ref):
        # killed where dulwich holds the git-level lock, a pack half-written beside it
        os.close(os.open(os.path.join(root, ".git", ref + ".lock"), os.O_WRONLY | os.O_CREAT | os.O_EXCL))
        pack_dir = os.path.join(root, ".git", "objects", "pack")
        for name in ("tmp_pack_modver_0123", "tmp_idx_modver_" + "ab" * 20 + "_4567", "pack-" + "ab" * 20 + ".pack"):
            with open(os.path.join(pack_dir, name), "wb") as f:
                f.write(b"PACK")
        os.kill(os.getpid(), signal.SIGKILL)
"""


def _die_holding_the_lock(root: Path, ref: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", DIES_HOLDING_THE_LOCK, str(root), ref], env=env, capture_output=True, check=False
    )
    assert done.returncode == -9, done.stderr


@pytest.mark.parametrize("opened", ["before the death", "after the death"])
def test_a_dead_holders_leftovers_are_repaired_at_once(history3, opened: str, caplog):
    root, shas = history3
    name = "refs/modver/stages/pre"
    pack_dir = root / ".git" / "objects" / "pack"
    with GitRepo.discover(root) as repo:
        assert repo.set_ref_if_equals(name, None, shas[0])
    early = GitRepo.discover(root) if opened == "before the death" else None
    _die_holding_the_lock(root, name)
    assert (root / ".git" / (name + ".lock")).exists() and (root / ".git" / "modver" / "owner").exists()
    with caplog.at_level("INFO", logger="modver"), early or GitRepo.discover(root) as repo:
        assert repo.set_ref_if_equals(name, shas[0], shas[1])  # not a wait: the owner is known to be dead
    assert git(root, "rev-parse", name).strip() == shas[1]
    assert not (root / ".git" / (name + ".lock")).exists() and not (root / ".git" / "modver" / "owner").exists()
    assert not [p.name for p in pack_dir.iterdir() if not PACK_NAME.fullmatch(p.name) or "abab" in p.name]
    (message,) = [r.getMessage() for r in caplog.records]
    assert message.startswith("modver process ") and f"died while updating {name}" in message
    fsck = subprocess.run(["git", "fsck", "--full"], cwd=root, capture_output=True, text=True, check=False)
    assert fsck.returncode == 0 and not fsck.stderr


DIES_BEFORE_THE_REF_LOCK = """
import os, signal, sys
from modver._git import GitRepo
root, ref = sys.argv[1], sys.argv[2]
with GitRepo.discover(root) as repo:
    with repo._modver_lock("updating " + ref, ref):
        os.kill(os.getpid(), signal.SIGKILL)  # its owner record names the ref; no <ref>.lock made yet
"""


def test_a_ref_lock_git_took_after_the_holder_died_is_not_removed(tmp_path: Path, monkeypatch):
    """Issue 15, item 9: a dead holder's record names a ref; git took that ref's lock since. The
    next modver command must not remove git's lock (it waits for it, then names it)."""
    from tests.helpers import GitProject, mv

    (tmp_path / "p").mkdir()
    proj = GitProject(tmp_path / "p")
    proj.write("manifest.yaml", "stages:\n  model:\n    entry: model.py:train\n")
    proj.write("model.py", "def train():\n    return 1\n")
    proj.commit("model")
    mv(proj.root, "snapshot")
    ref = "refs/modver/stages/model"
    done = subprocess.run(
        [sys.executable, "-c", DIES_BEFORE_THE_REF_LOCK, str(proj.root), ref],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        check=False,
    )
    assert done.returncode == -9, done.stderr
    owner = proj.root / ".git" / "modver" / "owner"
    assert json.loads(owner.read_text())["ref"] == ref
    died = time.time() - 60
    os.utime(owner, (died, died))  # it died a minute ago; git takes the ref now
    lock = proj.root / ".git" / (ref + ".lock")
    lock.write_text("")
    proj.write("model.py", "def train():\n    return 2\n")
    monkeypatch.setenv("MODVER_REF_LOCK_TIMEOUT", "0.2")
    refused = mv(proj.root, "snapshot", code=1)
    assert f"cannot update {ref}: {lock} exists, and no running modver process holds it" in refused.stderr
    assert lock.exists()  # git's lock: not removed
    assert not owner.exists()  # the dead holder's record is repaired all the same
    lock.unlink()  # git is done
    mv(proj.root, "snapshot")
    assert [v["version"] for v in json.loads(mv(proj.root, "log", "--json").stdout)] == ["v1", "v2"]
