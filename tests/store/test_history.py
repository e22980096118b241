"""Tests for modver.store.history: stage histories under refs/modver/..."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from modver import errors
from modver._git import GitRepo
from modver.models import Closure, Definition, StageVersion, Unresolved
from modver.store.history import History, load_index_state, save_index_state
from tests.helpers import Ran, run_cli


def git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Ada",
        "GIT_AUTHOR_EMAIL": "ada@example.com",
        "GIT_COMMITTER_NAME": "Ada",
        "GIT_COMMITTER_EMAIL": "ada@example.com",
    }
    out = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, check=True)
    return out.stdout.decode()


def blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class DictTree:
    """A minimal SourceTree over a dict, content ids are git blob shas."""

    def __init__(self, files: dict[str, bytes]):
        self.files = files
        self.reads: list[str] = []

    def read(self, path: str) -> bytes | None:
        self.reads.append(path)
        return self.files.get(path)

    def content_id(self, path: str) -> str | None:
        data = self.files.get(path)
        return None if data is None else blob_sha(data)

    def is_dir(self, path: str) -> bool:
        return path == "" or any(p.startswith(path.rstrip("/") + "/") for p in self.files)


def fp(n: int | str) -> str:
    return "mv1:" + hashlib.blake2b(str(n).encode(), digest_size=32).hexdigest()


def closure(n: int | str, files: tuple[str, ...] = ("pipeline/pre.py",), **kw) -> Closure:
    return Closure(
        fingerprint=fp(n),
        entry="pipeline/pre.py:preprocess",
        files=files,
        definitions=(Definition("pipeline/pre.py", "preprocess", "function", 1, 3, fp(f"d{n}")),),
        **kw,
    )


SRC = {"pipeline/pre.py": b"def preprocess(x):\n    return x\n", "pipeline/util.py": b"K = 1\n"}


@pytest.fixture
def history() -> History:
    return History(GitRepo.memory())


# -- names --------------------------------------------------------------------------------------


# -- registering and reading -------------------------------------------------------------------


def test_register_appends_and_dedups(history: History):
    tree = DictTree(dict(SRC))
    when = datetime(2025, 5, 1, 12, 30, tzinfo=UTC)
    v1, new = history.register("pre", closure(1), tree, origin=None, message="first", created=when)
    assert new and v1.number == 1 and v1.version == "v1"
    assert v1.fingerprint == fp(1) and v1.created == "2025-05-01T12:30:00+00:00"
    again, new = history.register("pre", closure(1), tree, origin="a" * 40, message="again")
    assert not new and again == v1
    v2, new = history.register("pre", closure(2), tree, origin="b" * 40, message="second")
    assert new and v2.number == 2 and v2.origin == "b" * 40
    # going back to old code keeps the old number
    back, new = history.register("pre", closure(1), tree, origin=None)
    assert not new and back.number == 1
    assert [v.number for v in history.versions("pre")] == [1, 2]
    assert history.versions("pre")[1] == v2
    assert history.find("pre", fp(2)) == v2
    assert history.find("pre", fp(3)) is None
    assert history.find("other", fp(1)) is None
    assert history.versions("other") == []
    assert history.stages() == ["pre"]
    assert history.latest("pre") == v2


def test_version_commit_layout(history: History):
    tree = DictTree(dict(SRC))
    c = closure(
        7,
        files=("pipeline/pre.py",),
        unresolved=(Unresolved("pipeline/pre.py", 2, "getattr()", "whole module"),),
        deps=("pipeline/util.py",),
    )
    when = datetime(2025, 1, 1, tzinfo=UTC)
    v, _ = history.register("pre", c, tree, origin="c" * 40, message="msg", created=when)
    repo = history.repo
    files = repo.tree_at(v.commit)
    assert list(files.iter_files()) == ["meta.json", "src/pipeline/pre.py", "src/pipeline/util.py"]
    meta = json.loads(files.read("meta.json"))
    assert files.read("meta.json").decode() == json.dumps(meta, sort_keys=True, indent=2) + "\n"
    assert meta == {
        "scheme": "mv1",
        "stage": "pre",
        "number": 1,
        "fingerprint": fp(7),
        "entry": "pipeline/pre.py:preprocess",
        "origin": "c" * 40,
        "created": "2025-01-01T00:00:00+00:00",
        "message": "msg",
        "files": ["pipeline/pre.py"],
        "definitions": [
            {
                "path": "pipeline/pre.py",
                "name": "preprocess",
                "kind": "function",
                "line": 1,
                "end_line": 3,
                "digest": fp("d7"),
            }
        ],
        "unresolved": [{"path": "pipeline/pre.py", "line": 2, "reason": "getattr()", "included": "whole module"}],
        "deps": ["pipeline/util.py"],
        "imports": [],
    }
    assert repo.commit_message(v.commit) == "pre v1: msg\n"
    assert repo.commit_parents(v.commit) == ()
    assert repo.commit_time(v.commit) == when
    assert history.meta(v) == meta
    assert history.closure(v) == c
    src = history.source_tree(v)
    assert {path: src.read(path) for path in src.iter_files()} == SRC
    with pytest.raises(errors.StoreError, match=r"pre@v1 \(commit \w+\) is not used: the stored code fingerprints as"):
        history.files(v)  # code to run is fingerprinted again first; fp(7) is not its fingerprint
    assert src.read("pipeline/pre.py") == SRC["pipeline/pre.py"]
    assert src.content_id("pipeline/pre.py") == blob_sha(SRC["pipeline/pre.py"])
    assert src.is_dir("pipeline") and not src.is_dir("src")
    v2, _ = history.register("pre", closure(8), tree, origin=None, message="two\nlines\nmore")
    assert repo.commit_parents(v2.commit) == (v.commit,)
    assert repo.commit_message(v2.commit) == "pre v2: two\n\nlines\nmore\n"
    assert history.versions("pre")[1].message == "two\nlines\nmore"


def test_register_missing_file_is_source_error(history: History):
    with pytest.raises(errors.SourceError, match="pipeline/gone.py"):
        history.register("pre", closure(1, files=("pipeline/gone.py",)), DictTree({}), origin=None)
    assert history.versions("pre") == []


def test_register_reuses_existing_blobs(history: History):
    repo = history.repo
    blob = repo.write_blob(SRC["pipeline/pre.py"])
    tree = DictTree(dict(SRC))
    history.register("pre", closure(1), tree, origin=None)
    assert tree.reads == []  # the blob was there: content never read
    assert history.source_tree(history.resolve("pre", "v1")).blob_id("pipeline/pre.py") == blob


def test_register_from_git_tree_shares_blobs(tmp_path: Path):
    root = tmp_path / "p"
    (root / "pipeline").mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    for path, data in SRC.items():
        (root / path).write_bytes(data)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "c")
    head = git(root, "rev-parse", "HEAD").strip()
    with GitRepo.discover(root) as repo:
        history = History(repo)
        count = int(git(root, "count-objects", "-v").split("count: ")[1].split()[0])
        v, _ = history.register("pre", closure(1), repo.tree_at(head), origin=head)
        assert (
            history.source_tree(v).blob_id("pipeline/pre.py")
            == git(root, "rev-parse", f"{head}:pipeline/pre.py").strip()
        )
    # new objects: meta blob, src/pipeline tree, src tree, root tree, commit — no file blob
    after = int(git(root, "count-objects", "-v").split("count: ")[1].split()[0])
    assert after - count == 5


def test_versions_cache_follows_other_writers(history: History):
    other = History(history.repo)
    tree = DictTree(dict(SRC))
    history.register("pre", closure(1), tree, origin=None)
    assert len(other.versions("pre")) == 1
    history.register("pre", closure(2), tree, origin=None)
    history.register("pre", closure(3), tree, origin=None)
    # other's cache is at v1; it must see v2, v3 and not give fp(3) a new number
    v, new = other.register("pre", closure(3), tree, origin=None)
    assert not new and v.number == 3
    v4, new = other.register("pre", closure(4), tree, origin=None)
    assert new and v4.number == 4
    assert [v.number for v in history.versions("pre")] == [1, 2, 3, 4]


# -- resolving ---------------------------------------------------------------------------------


@pytest.fixture
def four(history: History) -> History:
    tree = DictTree(dict(SRC))
    for n in range(1, 5):
        history.register("preprocess", closure(n), tree, origin=None, message=f"m{n}")
    history.register("model", closure("m"), tree, origin=None)
    return history


def test_resolve_forms(four: History):
    versions = four.versions("preprocess")
    assert four.resolve("preprocess", "v3") == versions[2]
    assert four.resolve("preprocess", "latest") == versions[3]
    assert four.resolve("preprocess", fp(2)) == versions[1]
    assert four.resolve("preprocess", fp(2)[4:14]) == versions[1]
    assert four.resolve("preprocess", "mv1:" + fp(2)[4:10].upper()) == versions[1]
    four.tag("preprocess", "v2", "best")
    assert four.resolve("preprocess", "best").number == 2
    assert four.resolve("preprocess", "best").tags == ("best",)


def test_resolve_unknown_version_lists_what_exists(four: History):
    four.tag("preprocess", "v2", "best")
    with pytest.raises(errors.UnknownVersionError) as info:
        four.resolve("preprocess", "v9")
    assert str(info.value) == "unknown version preprocess@v9; preprocess has v1..v4 (tags: best)"
    assert info.value.hint == "see `modver log preprocess`"
    for ref in ("v0", "nope", "abcde", "mv2:" + fp(1)[4:20], fp(1)[4:9], "ffffffffff"):
        with pytest.raises(errors.UnknownVersionError, match="preprocess has v1..v4"):
            four.resolve("preprocess", ref)
    with pytest.raises(errors.UnknownVersionError, match="model has v1$"):
        four.resolve("model", "v2")


def test_resolve_ambiguous_prefix(history: History):
    tree = DictTree(dict(SRC))
    # find two fingerprints sharing 6 hex digits
    seen: dict[str, int] = {}
    pair = None
    for n in range(200_000):
        key = fp(n)[4:10]
        if key in seen:
            pair = (seen[key], n, key)
            break
        seen[key] = n
    assert pair is not None
    a, b, prefix = pair
    history.register("pre", closure(a), tree, origin=None)
    history.register("pre", closure(b), tree, origin=None)
    with pytest.raises(errors.UnknownVersionError, match="ambiguous") as info:
        history.resolve("pre", prefix)
    assert "v1" in str(info.value) and "v2" in str(info.value)
    assert history.resolve("pre", fp(b)[4:30]).number == 2


def test_resolve_unknown_stage_lists_known(four: History):
    with pytest.raises(errors.UnknownStageError) as info:
        four.resolve("augment", "v1")
    assert "model, preprocess" in str(info.value)
    with pytest.raises(errors.InvalidNameError):
        four.resolve("bad name", "v1")


# -- tags ------------------------------------------------------------------------------------


def test_tags(four: History):
    tagged = four.tag("preprocess", "v2", "best")
    assert tagged.number == 2 and tagged.tags == ("best",)
    assert four.tag("preprocess", "v2", "best").number == 2  # idempotent
    four.tag("preprocess", four.resolve("preprocess", "v1"), "baseline")
    assert {n: v.number for n, v in four.tags("preprocess").items()} == {"baseline": 1, "best": 2}
    assert four.tags("model") == {}
    assert four.repo.read_ref("refs/modver/tags/preprocess/best") == tagged.commit
    with pytest.raises(errors.InvalidNameError, match="already points to preprocess@v2"):
        four.tag("preprocess", "v3", "best")
    assert four.tag("preprocess", "v3", "best", force=True).number == 3
    assert four.versions("preprocess")[2].tags == ("best",)
    assert four.versions("preprocess")[1].tags == ()
    for bad in ("latest", "working", "v7", "abcdef12", "a/b"):
        with pytest.raises(errors.InvalidNameError):
            four.tag("preprocess", "v1", bad)
    with pytest.raises(errors.UnknownVersionError):
        four.tag("preprocess", "v9", "x")
    with pytest.raises(errors.UnknownVersionError):
        four.tag("model", four.resolve("preprocess", "v1"), "x")


# -- corrupt store ---------------------------------------------------------------------------


def test_history_ref_pointing_at_garbage_is_store_error(history: History):
    repo = history.repo
    tree = repo.write_tree({"other.txt": repo.write_blob(b"x")})
    commit = repo.write_commit(tree, [], "not modver")
    assert repo.set_ref_if_equals("refs/modver/stages/pre", None, commit)
    with pytest.raises(errors.StoreError, match="no meta.json"):
        history.versions("pre")
    bad_meta = repo.write_tree({"meta.json": repo.write_blob(b"{nope")})
    commit2 = repo.write_commit(bad_meta, [], "bad")
    assert repo.set_ref_if_equals("refs/modver/stages/pre", commit, commit2)
    with pytest.raises(errors.StoreError, match="unreadable meta.json"):
        history.versions("pre")


def _next_commit(history: History, like: StageVersion, parents: list[str], **meta: object) -> str:
    """A commit like version ``like``'s on top of ``parents``, its meta.json changed by ``meta``."""
    repo = history.repo
    fields = {**history.meta(like), **meta}
    tree = repo.write_tree({"meta.json": repo.write_blob(json.dumps(fields).encode())})
    return repo.write_commit(tree, parents, "next")


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"number": 4}, "it says it is v4, and comes after v2"),
        ({"number": 3, "stage": "post"}, "its meta.json says it is a version of stage 'post'"),
        ({"number": 3, "fingerprint": fp(1)}, f"pre v1 already has fingerprint {fp(1)}"),
        ({"number": 3, "parents": 2}, "a history commit has several parents"),
    ],
)
def test_an_incoming_chain_is_read_up_to_its_first_bad_commit(history: History, change: dict, why: str):
    """What pull reads from a remote (issue 15): every version up to the first commit that is not
    the next version, that commit, why, and the commits after it; and a local chain holding such
    a commit is corrupt."""
    tree = DictTree(dict(SRC))
    v1, _ = history.register("pre", closure(1), tree, origin=None)
    v2, _ = history.register("pre", closure(2), tree, origin=None)
    meta = {k: v for k, v in change.items() if k != "parents"}
    parents = [v2.commit, v1.commit] if change.get("parents") else [v2.commit]
    bad = _next_commit(history, v2, parents, **{"fingerprint": fp(3), **meta})
    after = _next_commit(history, v2, [bad], number=4, fingerprint=fp(4))
    got = history.incoming("pre", after)
    assert [v.version for v in got.versions] == ["v1", "v2"]
    assert (got.bad, got.why, got.after) == (bad, why, (after,))
    assert history.incoming("pre", v2.commit).bad is None
    assert history.repo.set_ref_if_equals("refs/modver/stages/pre", v2.commit, after)
    with pytest.raises(errors.StoreError, match=f"corrupt history of stage pre at commit {bad[:12]}"):
        history.versions("pre")


# -- index state ----------------------------------------------------------------------------


def test_index_state_roundtrip_and_corruption(tmp_path: Path):
    path = tmp_path / ".modver" / "index.json"
    assert load_index_state(path) == {}
    save_index_state(path, {"main": {"last": "a" * 40}})
    assert load_index_state(path) == {"main": {"last": "a" * 40}}
    assert [p.name for p in path.parent.iterdir()] == ["index.json"]
    path.write_text("{truncated")
    assert load_index_state(path) == {}
    path.write_bytes(b"\xff\xfe")
    assert load_index_state(path) == {}
    path.write_text("[1, 2]")
    assert load_index_state(path) == {}


# -- a real repository is never touched ------------------------------------------------------


def make_project(root: Path) -> str:
    (root / "pipeline").mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    for path, data in SRC.items():
        (root / path).write_bytes(data)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "c")
    (root / "pipeline" / "pre.py").write_bytes(b"def preprocess(x):\n    return x + 1\n")
    (root / "scratch.py").write_text("untracked\n")
    return git(root, "rev-parse", "HEAD").strip()


def test_registrations_leave_head_branches_index_and_worktree_alone(tmp_path: Path):
    root = tmp_path / "p"
    head = make_project(root)
    before = {
        "status": git(root, "status", "--porcelain"),
        "head": git(root, "rev-parse", "HEAD"),
        "branch": git(root, "branch", "-a"),
        "symbolic": git(root, "symbolic-ref", "HEAD"),
        "index": (root / ".git" / "index").read_bytes(),
        "pre": (root / "pipeline" / "pre.py").read_bytes(),
    }
    with GitRepo.discover(root) as repo:
        history = History(repo)
        working = DictTree({p: (root / p).read_bytes() for p in SRC})
        for n in range(30):
            tree = repo.tree_at(head) if n % 2 else working
            history.register(f"s{n % 3}", closure(n), tree, origin=head if n % 2 else None)
        history.tag("s0", "v2", "best")
        assert repo.is_dirty()
    after = {
        "status": git(root, "status", "--porcelain"),
        "head": git(root, "rev-parse", "HEAD"),
        "branch": git(root, "branch", "-a"),
        "symbolic": git(root, "symbolic-ref", "HEAD"),
        "index": (root / ".git" / "index").read_bytes(),
        "pre": (root / "pipeline" / "pre.py").read_bytes(),
    }
    assert after == before
    git(root, "fsck", "--strict", "--no-dangling")
    refs = git(root, "for-each-ref", "--format=%(refname)", "refs/modver").split()
    assert refs == [
        "refs/modver/stages/s0",
        "refs/modver/stages/s1",
        "refs/modver/stages/s2",
        "refs/modver/tags/s0/best",
    ]
    assert git(root, "rev-list", "--count", "refs/modver/stages/s0").strip() == "10"
    assert git(root, "show", "refs/modver/stages/s1:meta.json").count('"number": 10') == 1
    assert git(root, "log", "-1", "--format=%an <%ae>", "refs/modver/stages/s1").strip() == (
        "modver <modver@localhost>"
    )


# -- concurrency -----------------------------------------------------------------------------

WORKER = textwrap.dedent(
    """
    import sys, time, hashlib
    from pathlib import Path
    from modver._git import GitRepo
    from modver.store.history import History
    from modver.models import Closure

    root, start, worker, count = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    def fp(n):
        return "mv1:" + hashlib.blake2b(str(n).encode(), digest_size=32).hexdigest()
    with GitRepo.discover(root) as repo:
        history = History(repo)
        tree = repo.tree_at(repo.head_commit())
        while time.time() < start:
            time.sleep(0.0005)
        for i in range(count):
            # every worker registers its own fingerprints and one shared by all
            key = f"shared-{i}" if i % 3 == 0 else f"w{worker}-{i}"
            c = Closure(fp(key), "pipeline/pre.py:preprocess", ("pipeline/pre.py",), ())
            v, new = history.register("pre", c, tree, origin=None, message=key)
            print(key, v.number, new, flush=True)
    """
)


@pytest.mark.parametrize("workers", [2, 4])
def test_concurrent_registration_never_loses_or_duplicates(tmp_path: Path, workers: int):
    root = tmp_path / "p"
    make_project(root)
    count = 8
    start = time.time() + 1.5
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(root), str(start), str(w), str(count)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for w in range(workers)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    for proc, (_, err) in zip(procs, outputs):
        assert proc.returncode == 0, err
        assert "Traceback" not in err and "Exception" not in err, err
    claimed: dict[str, set[int]] = {}
    new_count = 0
    for out, _ in outputs:
        for line in out.splitlines():
            key, number, new = line.split()
            claimed.setdefault(key, set()).add(int(number))
            new_count += new == "True"
    expected_keys = {f"shared-{i}" for i in range(0, count, 3)} | {
        f"w{w}-{i}" for w in range(workers) for i in range(count) if i % 3
    }
    assert set(claimed) == expected_keys
    assert all(len(numbers) == 1 for numbers in claimed.values())  # one number per fingerprint
    assert new_count == len(expected_keys)  # each registered as new exactly once
    with GitRepo.discover(root) as repo:
        versions = History(repo).versions("pre")
    assert [v.number for v in versions] == list(range(1, len(expected_keys) + 1))
    assert sorted(v.message for v in versions) == sorted(expected_keys)
    assert {v.message: v.number for v in versions} == {k: n.pop() for k, n in claimed.items()}
    assert len({v.fingerprint for v in versions}) == len(versions)
    git(root, "fsck", "--strict", "--no-dangling")


def test_stage_version_json_shape(history: History):
    v, _ = history.register("pre", closure(1), DictTree(dict(SRC)), origin=None)
    assert isinstance(v, StageVersion)
    assert v.to_json()["version"] == "v1"
    assert v.to_json()["files"] == ["pipeline/pre.py"]


# -- batches (one pack, one ref update per stage) ------------------------------------------


def test_batch_writes_one_pack_and_moves_each_ref_once(tmp_path: Path):
    root = tmp_path / "repo"
    repo = GitRepo.init(root)
    tree = DictTree({"pipeline/pre.py": b"x = 1\n"})
    with repo:
        history = History(repo)
        with history.batch():
            for n in range(5):
                history.register("pre", closure(n), tree, origin=None)
            assert repo.read_ref(History.ref("pre")) is None  # not published before the end
            assert [v.number for v in history.versions("pre")] == [1, 2, 3, 4, 5]
        assert [v.fingerprint for v in history.versions("pre")] == [fp(n) for n in range(5)]
    packs = list((root / ".git" / "objects" / "pack").glob("*.pack"))
    loose = [p for p in (root / ".git" / "objects").iterdir() if len(p.name) == 2]
    assert len(packs) == 1 and not loose
    git(root, "fsck", "--strict")


def test_batch_replays_on_top_of_a_concurrent_writer(tmp_path: Path):
    root = tmp_path / "repo"
    GitRepo.init(root).close()
    tree = DictTree({"pipeline/pre.py": b"x = 1\n"})
    with GitRepo.discover(root) as mine, GitRepo.discover(root) as other:
        history = History(mine)
        with history.batch():
            history.register("pre", closure("a"), tree, origin=None)
            history.register("pre", closure("shared"), tree, origin=None)
            # another process registers while the batch is open
            History(other).register("pre", closure("b"), tree, origin=None)
            History(other).register("pre", closure("shared"), tree, origin=None)
        versions = History(mine).versions("pre")
        assert history.rebased == {"pre"} and history.find("pre", fp("a")).number == 3  # what index reports
    assert [v.fingerprint for v in versions] == [fp("b"), fp("shared"), fp("a")]
    assert [v.number for v in versions] == [1, 2, 3]
    git(root, "fsck", "--strict")


# -- locks: a dead owner's recovered at once, a live one waited for ------------------------------

REPO_ROOT = Path(__file__).resolve().parents[2]


def modver(root: Path, *args: str, **env: str) -> Ran:
    """The real CLI in a subprocess (this checkout's modver), any exit code."""
    return run_cli(root, *args, code=None, process=True, env={"PYTHONPATH": str(REPO_ROOT), **env})


def write_points(root: Path, trace: Path, *args: str) -> list[str]:
    """The write points (under .git) of one run of ``modver ARGS`` on a copy of ``root``."""
    import shutil

    copy = trace.parent / "traced"
    shutil.copytree(root, copy)
    done = modver(copy, *args, MODVER_FAULT_TRACE=str(trace), MODVER_FAULT_ROOT=str(copy / ".git"))
    assert done.returncode == 0, done.stderr
    return [line.replace(str(copy), str(root)) for line in trace.read_text().splitlines()]


def test_a_snapshot_killed_holding_a_ref_lock_does_not_block_the_next_one(pipeline_project, tmp_path: Path, caplog):
    from modver.project import Project

    root = pipeline_project.root
    ref_lock = root / ".git" / "refs" / "modver" / "stages" / "prep.lock"
    with Project(root) as project:  # a process that is running when the snapshot dies
        project.snapshot(["train"])
        points = write_points(root, tmp_path / "trace", "snapshot", "prep")
        (created,) = [
            int(line.split()[0]) for line in points if line.split()[1] == "open" and line.endswith(str(ref_lock))
        ]
        killed = modver(
            root, "snapshot", "prep", MODVER_FAULT_KILL_AT=str(created + 1), MODVER_FAULT_ROOT=str(root / ".git")
        )
        assert killed.returncode == -9
        assert ref_lock.exists()  # killed between git's lock and its rename
        with caplog.at_level("INFO", logger="modver"):
            (result,) = project.snapshot(["prep"])
        assert not [r for r in caplog.records if "waiting" in r.getMessage()]  # at once: its owner is known dead
        assert result.new and result.version.version == "v1" and not ref_lock.exists()
    again = modver(root, "snapshot", "--json")
    assert again.returncode == 0, again.stderr
    assert {(v["stage"], v["version"], v["new"]) for v in json.loads(again.stdout)} == {
        ("prep", "v1", False),
        ("train", "v1", False),
    }
    fsck = subprocess.run(["git", "fsck", "--full"], cwd=root, capture_output=True, text=True, check=False)
    assert fsck.returncode == 0 and "error" not in fsck.stderr


def test_a_ref_lock_no_modver_process_holds_is_waited_for_then_named(pipeline_project):
    root = pipeline_project.root
    lock = root / ".git" / "refs" / "modver" / "stages" / "prep.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text("")  # git's own lock (a git command running, or one that crashed)
    start = time.monotonic()
    done = modver(root, "snapshot", MODVER_REF_LOCK_TIMEOUT="1.5")
    took = time.monotonic() - start
    assert done.returncode == 1 and took >= 1.5, (took, done.stderr)  # it waited (the upper bound is the load's)
    lines = done.stderr.splitlines()
    assert lines[0] == f"waiting for {lock}, which no modver process holds (a git command?)"
    assert lines[1] == (
        f"Error: cannot update refs/modver/stages/prep: {lock} exists, and no running modver process holds it"
    )
    assert f"delete {lock}" in " ".join(lines[2:]) and "Traceback" not in done.stderr
    assert lock.exists()  # nobody else's lock is removed behind its back
    lock.unlink()
    assert modver(root, "snapshot").returncode == 0


HOLDER = textwrap.dedent(
    """
    import sys
    from modver._git import GitRepo
    root, ref = sys.argv[1], sys.argv[2]
    with GitRepo.discover(root) as repo:
        with repo._modver_lock("updating " + ref, ref):
            print("held", flush=True)
            sys.stdin.readline()  # until the test lets go (or kills this process)
    """
)


def hold_lock(root: Path, ref: str) -> subprocess.Popen[str]:
    """A live modver process that holds the repository's modver lock until a line on its stdin."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(root), ref], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    return proc


def test_a_live_owner_is_waited_for_with_a_message_naming_it(pipeline_project):
    root = pipeline_project.root
    holder = hold_lock(root, "refs/modver/stages/prep")
    waiting = subprocess.Popen(
        [sys.executable, "-m", "modver", "snapshot"], cwd=root, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert waiting.stderr is not None
    first = waiting.stderr.readline()  # it says it waits: then the holder lets go
    holder.communicate("go\n", timeout=60)
    out, rest = waiting.communicate(timeout=120)
    done = subprocess.CompletedProcess(waiting.args, waiting.returncode, out, first + rest)
    assert done.returncode == 0, done.stderr
    host = os.uname().nodename
    assert done.stderr.splitlines() == [
        f"waiting for modver process {holder.pid} (python -c) on host {host}, which is updating refs/modver/stages/prep"
    ]
    assert "prep: new version v1" in done.stdout


def test_a_live_owner_that_never_lets_go_gives_a_clear_error(pipeline_project):
    root = pipeline_project.root
    holder = hold_lock(root, "refs/modver/stages/prep")
    try:
        done = modver(root, "snapshot", MODVER_LOCK_TIMEOUT="1.5")
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode == 1
    who = f"modver process {holder.pid} (python -c) on host {os.uname().nodename}, which is updating refs/modver/stages/prep"
    lock = root / ".git" / "modver" / "lock"
    lines = done.stderr.splitlines()
    assert lines[0] == f"waiting for {who}"
    assert lines[1] == f"Error: gave up after 1.5s waiting for {who}: it holds {lock}"
    assert f"kill {holder.pid}" in " ".join(lines[2:]) and str(lock) in " ".join(lines[2:])
    after = modver(root, "snapshot")  # the holder was killed holding the lock: its record is repaired
    assert after.returncode == 0, after.stderr
    assert after.stderr == (
        f"modver process {holder.pid} (python -c) on host {os.uname().nodename} died while updating "
        "refs/modver/stages/prep; repaired what it left\n"
    )


def test_registration_after_git_gc_packed_the_refs(tmp_path: Path):
    root = tmp_path / "p"
    make_project(root)
    tree = DictTree(dict(SRC))
    with GitRepo.discover(root) as repo:
        history = History(repo)
        for n in range(2):
            history.register("pre", closure(n), tree, origin=None)
        history.tag("pre", "v1", "first")
    git(root, "gc", "-q")
    assert not (root / ".git" / "refs" / "modver" / "stages" / "pre").exists()  # packed
    assert "refs/modver/stages/pre" in (root / ".git" / "packed-refs").read_text()
    with GitRepo.discover(root) as repo:
        history = History(repo)
        assert [v.number for v in history.versions("pre")] == [1, 2]
        assert history.register("pre", closure(1), tree, origin=None) == (history.versions("pre")[1], False)
        assert history.register("pre", closure(2), tree, origin=None)[0].number == 3
        assert history.register("post", closure(3), tree, origin=None)[0].number == 1
        assert history.tag("pre", "v3", "first", force=True).number == 3
    assert git(root, "rev-list", "--count", "refs/modver/stages/pre").strip() == "3"
    assert git(root, "rev-parse", "refs/modver/tags/pre/first") == git(root, "rev-parse", "refs/modver/stages/pre")
    git(root, "fsck", "--full", "--strict")
