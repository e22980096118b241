"""Kill ``modver push`` and ``modver pull`` half way, and push from two clones at once: the remote,
the storage and the clone come out whole, the next command finishes the work, nothing is lost.

A team is a folder holding the bare remote (``remote.git``), the storage (``shared/``) and the
clones; each kill runs on a fresh copy of the whole folder, and only writes inside it are counted
(``MODVER_FAULT_ROOT``). Counts go to ``$MODVER_FAULT_REPORT`` (see harness.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests._forge import forge
from tests.faults.harness import _IDENTITY, Project, choose, ok, record

pytestmark = pytest.mark.slow

PUSH_POINTS = 20  # of about 120; every kind of write at its first and last occurrence, the rest spread
PULL_POINTS = 16  # of about 60

FILES = {
    "manifest.yaml": (
        "stages:\n"
        "  load:\n    entry: pipe/load.py:load\n    params: {n: 4}\n"
        "  model:\n    entry: pipe/model.py:train   # the model\n    inputs: {values: load}\n    params: {C: 1}\n"
    ),
    "pipe/__init__.py": "",
    "pipe/load.py": "def load(n):\n    return list(range(n))\n",
    "pipe/model.py": "def train(values, C):\n    return [v * C for v in values]\n",
    ".gitignore": ".modver/\n",
    "modver.toml": 'storage = "../shared"\n',
}


def _git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1", **_IDENTITY}
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True)
    return done.stdout


def build_team(folder: Path) -> Path:
    """``folder``: remote.git, shared/ and alice (two runs, versions of both stages), nothing pushed."""
    folder.mkdir()
    (folder / "shared").mkdir()
    _git(folder, "init", "-q", "--bare", "-b", "main", "remote.git")
    alice = folder / "alice"
    alice.mkdir()
    _git(alice, "init", "-q", "-b", "main")
    for path, text in FILES.items():
        (alice / path).parent.mkdir(parents=True, exist_ok=True)
        (alice / path).write_text(text)
    _git(alice, "add", "-A")
    _git(alice, "commit", "-q", "-m", "pipeline")
    _git(alice, "remote", "add", "origin", "../remote.git")
    _git(alice, "push", "-q", "origin", "main")
    project = Project(alice)
    ok(project.modver("index"), "index")
    ok(project.modver("run"), "run")
    ok(project.modver("run", "--set", "model.C=2"), "run")
    return folder


def clone(team: Path, name: str) -> Project:
    _git(team, "clone", "-q", "remote.git", name)
    return Project(team / name)


def modver_refs(git_dir: Path) -> str:
    return _git(git_dir, "for-each-ref", "refs/modver")


def trace(team: Path, member: str, args: list[str], dest: Path) -> list[str]:
    copy = Path(shutil.copytree(team, dest, symlinks=True))
    log = dest.parent / f"{dest.name}.trace"
    done = Project(copy / member).modver(*args, env={"MODVER_FAULT_TRACE": str(log), "MODVER_FAULT_ROOT": str(copy)})
    ok(done, f"traced modver {' '.join(args)}")
    shutil.rmtree(copy)
    return log.read_text().splitlines()


def kill_in_team(team: Path, member: str, args: list[str], n: int) -> int:
    project = Project(team / member)
    done = project.modver(*args, env={"MODVER_FAULT_KILL_AT": str(n), "MODVER_FAULT_ROOT": str(team)})
    if done.returncode != -9:
        ok(done, f"modver {' '.join(args)} (to be killed at {n})")
    return done.returncode


def assert_everything_arrived(team: Path, name: str) -> None:
    """The remote has alice's refs, the storage all her runs and outputs, and a new clone gets them, verified."""
    alice = team / "alice"
    assert modver_refs(team / "remote.git") == modver_refs(alice)
    ok(subprocess.run(["git", "fsck", "--full"], cwd=team / "remote.git", capture_output=True, text=True), "fsck")
    runs = sorted(p.name for p in (alice / ".modver" / "runs").iterdir() if not p.name.startswith("."))
    assert sorted(p.stem for p in (team / "shared" / "runs").glob("*.json")) == runs
    outputs = sorted(p.name for p in (alice / ".modver" / "cache" / "outputs").iterdir() if not p.name.startswith("."))
    assert sorted(p.stem for p in (team / "shared" / "outputs").glob("*.json")) == outputs
    bob = clone(team, name)
    done = bob.modver("pull", "--outputs", "--json")
    ok(done, "pull --outputs in a new clone")
    storage = json.loads(done.stdout)["storage"]
    assert sorted(storage["runs"]) == runs and sorted(storage["outputs"]) == outputs and not storage["damaged"]
    assert json.loads(bob.modver("log", "--json").stdout) == json.loads(Project(alice).modver("log", "--json").stdout)


def test_a_push_killed_half_way_is_finished_by_the_next(tmp_path):
    base = build_team(tmp_path / "base")
    points = trace(base, "alice", ["push"], tmp_path / "traced")
    assert any("remote.git" in p for p in points) and any("shared" in p for p in points)
    tried = survived = 0
    for n in choose(points, PUSH_POINTS):
        team = Path(shutil.copytree(base, tmp_path / f"kill-{n}", symlinks=True))
        killed = kill_in_team(team, "alice", ["push"], n) == -9
        alice = Project(team / "alice")
        ok(alice.git("fsck", "--full"), f"fsck after a kill at {n}")
        ok(alice.modver("push"), f"the push after a kill at {n}")
        assert_everything_arrived(team, "bob")
        assert not list((team / "remote.git").rglob("*.lock")), f"a lock left in the remote after a kill at {n}"
        tried += 1
        survived += killed
        shutil.rmtree(team)
    record("modver push", "write points", survived=survived, tried=tried, points=len(points))
    assert survived >= tried - 1  # the last point may be after the last write


def diverged_team(tmp_path: Path) -> Path:
    """Alice pushed model v2; bob made his own v2 (pinned, run) without pulling: bob's pull renumbers."""
    team = build_team(tmp_path / "base")
    alice = Project(team / "alice")
    ok(alice.modver("push"), "push")
    bob = clone(team, "bob")
    ok(bob.modver("pull"), "pull")
    (team / "alice" / "pipe" / "model.py").write_text("def train(values, C):\n    return [v + C for v in values]\n")
    (team / "bob" / "pipe" / "model.py").write_text("def train(values, C):\n    return [v - C for v in values]\n")
    ok(alice.modver("snapshot", "model", "--message", "alice: plus"), "snapshot")
    ok(bob.modver("snapshot", "model", "--message", "bob: minus"), "snapshot")
    ok(bob.modver("pin", "model@v2"), "pin")
    ok(bob.modver("run"), "run")
    ok(alice.modver("run"), "run")
    ok(alice.modver("push"), "push")
    return team


def test_a_pull_killed_while_renumbering_is_finished_by_the_next(tmp_path):
    base = diverged_team(tmp_path)
    points = trace(base, "bob", ["pull"], tmp_path / "traced")
    tried = survived = 0
    for n in choose(points, PULL_POINTS):
        team = Path(shutil.copytree(base, tmp_path / f"kill-{n}", symlinks=True))
        killed = kill_in_team(team, "bob", ["pull"], n) == -9
        bob = Project(team / "bob")
        ok(bob.git("fsck", "--full"), f"fsck after a kill at {n}")
        ok(bob.modver("pull"), f"the pull after a kill at {n}")
        versions = json.loads(bob.modver("log", "model", "--json").stdout)
        assert [v["message"] for v in versions] == ["pipeline", "alice: plus", "bob: minus"], n
        assert "version: v3" in (team / "bob" / "manifest.yaml").read_text(), f"pin after a kill at {n}"
        assert "# the model" in (team / "bob" / "manifest.yaml").read_text()
        runs = json.loads(bob.modver("runs", "--json").stdout)
        mine = [r for r in runs if r["fingerprints"]["model"] == versions[2]["fingerprint"]]
        assert mine and all(r["versions"]["model"] == "v3" for r in mine), f"records after a kill at {n}"
        assert not (team / "bob" / ".git" / "modver" / "renumber.json").exists()
        tried += 1
        survived += killed
        shutil.rmtree(team)
    record("modver pull", "write points (renumbering)", survived=survived, tried=tried, points=len(points))
    assert survived >= tried - 1


def test_two_pushes_at_once_one_wins_the_other_is_told_to_pull(tmp_path):
    team = build_team(tmp_path / "team")
    alice = Project(team / "alice")
    ok(alice.modver("push"), "push")
    bob = clone(team, "bob")
    ok(bob.modver("pull"), "pull")
    for round_ in range(3):
        for who, project in (("alice", alice), ("bob", bob)):
            (project.root / "pipe" / "model.py").write_text(
                f"def train(values, C):\n    return [v * C + {round_} for v in values]  # {who}\n"
                if who == "alice"
                else f"def train(values, C):\n    return [v * C - {round_} for v in values]\n"
            )
            ok(project.modver("snapshot", "model", "--message", f"{who} {round_}"), "snapshot")
            ok(project.modver("run"), "run")
        both = [alice.popen("push"), bob.popen("push")]
        results = [(p.wait(timeout=120), *p.communicate()) for p in both]
        codes = sorted(code for code, _, _ in results)
        assert codes == [0, 1], results
        loser = (alice, bob)[[code for code, _, _ in results].index(1)]
        err = results[[code for code, _, _ in results].index(1)][2]
        assert "modver pull" in err and "Traceback" not in err and "internal error" not in err, err
        ok(loser.modver("pull"), "the loser's pull")
        ok(loser.modver("push"), "the loser's push")
        winner = bob if loser is alice else alice
        ok(winner.modver("pull"), "the winner's pull")
    logs = [json.loads(p.modver("log", "model", "--json").stdout) for p in (alice, bob)]
    assert logs[0] == logs[1]
    assert sorted(v["message"] for v in logs[0][1:]) == sorted(f"{w} {r}" for w in ("alice", "bob") for r in range(3))
    runs = [sorted(r["run"] for r in json.loads(p.modver("runs", "--json").stdout)) for p in (alice, bob)]
    assert runs[0] == runs[1] and len(runs[0]) == 2 + 6  # every run of both, nothing lost


def test_a_hostile_remote_gives_exactly_its_genuine_versions(tmp_path):
    """A remote with many damaged or forged items at once: pull takes exactly the genuine ones, names
    every refused one, and the clone stays whole (issue 15: nothing from a remote is trusted)."""
    team = build_team(tmp_path / "team")
    alice = Project(team / "alice")
    ok(alice.modver("push"), "push")
    bob = clone(team, "bob")
    ok(bob.modver("pull"), "pull")
    (team / "alice" / "pipe" / "load.py").write_text("def load(n):\n    return list(range(n, 0, -1))\n")
    ok(alice.modver("snapshot", "load", "--message", "load: reversed"), "snapshot")
    ok(alice.modver("push"), "push")  # genuine: load v2
    remote = team / "remote.git"
    model_v1 = _git(remote, "rev-parse", "refs/modver/stages/model").strip()
    load_v1 = _git(remote, "rev-parse", "refs/modver/stages/load~1").strip()
    other = json.loads(alice.modver("log", "load", "--json").stdout)[0]["fingerprint"]
    forged = forge(remote, "model", {"pipe/model.py": "def train(values, C):\n    return []\n"}, fingerprint=other)
    forge(remote, "model", {})  # built on the forged one
    forge(remote, "load", {}, meta_text="{not json")  # after the genuine v2
    for name in ("v1", "latest", "abcdef12"):
        _git(remote, "update-ref", f"refs/modver/tags/model/{name}", model_v1)
    _git(remote, "update-ref", "refs/modver/tags/model/good", forged)
    _git(remote, "update-ref", "refs/modver/stages/a/b", model_v1)
    _git(remote, "update-ref", "refs/modver/stages/evil", load_v1)  # another stage's version
    hostile = {
        "model v2", "model v3", "load v3", "tag model@v1", "tag model@latest", "tag model@abcdef12",
        "tag model@good", "stage 'a/b'", "evil v1",
    }  # fmt: skip

    done = bob.modver("pull", "--json")
    assert done.returncode == 1 and "Traceback" not in done.stderr and "internal error" not in done.stderr, done.stderr
    result = json.loads(done.stdout)
    assert result["new_versions"] == {"load": 1} and result["new_tags"] == []
    assert {r["what"] for r in result["refused"]} == hostile
    named = [line for line in done.stderr.splitlines() if line.startswith("refused from origin: ")]
    assert len(named) == len(hostile), done.stderr
    versions = json.loads(bob.modver("log", "--json").stdout)
    assert sorted((v["stage"], v["version"], v["tags"]) for v in versions) == [
        ("load", "v1", []), ("load", "v2", []), ("model", "v1", []),
    ]  # fmt: skip
    ok(bob.modver("verify"), "verify")
    ok(bob.git("fsck", "--full"), "fsck")
    ok(bob.modver("run"), "a run after the pull")
    refused = bob.modver("push")
    assert refused.returncode == 1 and "has versions this clone lacks" in refused.stderr
    assert "the remote's history was changed outside modver" in refused.stderr
    record("modver pull", "hostile remote", survived=len(hostile) + 1, tried=len(hostile) + 1, refused=len(hostile))


def test_a_pull_whose_git_write_fails_is_one_clear_error_and_finished_by_the_next(tmp_path):
    """Each write a renumbering pull makes in the clone's git directory fails once (a full disk, an
    I/O error, a read-only file system): one clear error, no ref naming a missing object, and the
    next pull finishes the work (issue 15, item 5)."""
    base = diverged_team(tmp_path)
    copy = Path(shutil.copytree(base, tmp_path / "traced", symlinks=True))
    log = tmp_path / "traced.trace"
    env = {"MODVER_FAULT_TRACE": str(log), "MODVER_FAULT_ROOT": str(copy / "bob" / ".git")}
    ok(Project(copy / "bob").modver("pull", env=env), "traced pull")
    points = log.read_text().splitlines()
    shutil.rmtree(copy)
    errnos = ("ENOSPC", "EIO", "EROFS", "EDQUOT")
    tried = failed = 0
    for i, n in enumerate(choose(points, PULL_POINTS)):
        team = Path(shutil.copytree(base, tmp_path / f"fail-{n}", symlinks=True))
        bob = Project(team / "bob")
        env = {"MODVER_FAULT_FAIL_AT": str(n), "MODVER_FAULT_ERRNO": errnos[i % 4]}
        done = bob.modver("pull", env={**env, "MODVER_FAULT_ROOT": str(team / "bob" / ".git")})
        assert "Traceback" not in done.stderr and "internal error" not in done.stderr, (n, done.stderr)
        assert done.returncode in (0, 1), (n, done.stderr)
        failed += done.returncode == 1
        fsck = bob.git("fsck", "--full")
        assert fsck.returncode == 0 and "invalid" not in fsck.stderr and "error" not in fsck.stderr, (n, fsck.stderr)
        ok(bob.modver("log", "--json"), f"log after write {n} failed")
        ok(bob.modver("pull"), f"the pull after write {n} failed")
        versions = json.loads(bob.modver("log", "model", "--json").stdout)
        assert [v["message"] for v in versions] == ["pipeline", "alice: plus", "bob: minus"], n
        assert "version: v3" in (team / "bob" / "manifest.yaml").read_text(), f"pin after write {n} failed"
        runs = json.loads(bob.modver("runs", "--json").stdout)
        mine = [r for r in runs if r["fingerprints"]["model"] == versions[2]["fingerprint"]]
        assert mine and all(r["versions"]["model"] == "v3" for r in mine), f"records after write {n} failed"
        assert not (team / "bob" / ".git" / "modver" / "renumber.json").exists()
        tried += 1
        shutil.rmtree(team)
    record(
        "modver pull", "failed git writes (renumbering)", survived=tried, tried=tried, failed=failed, points=len(points)
    )
    assert failed >= tried / 2


def test_a_push_whose_write_to_the_remote_fails_is_one_clear_error_and_finished_by_the_next(tmp_path):
    """Each write a push makes in a remote on this file system fails once: one clear error, no ref of
    the remote names a missing object, and the next push finishes the work (issue 15, item 5)."""
    base = build_team(tmp_path / "base")
    copy = Path(shutil.copytree(base, tmp_path / "traced", symlinks=True))
    log = tmp_path / "traced.trace"
    env = {"MODVER_FAULT_TRACE": str(log), "MODVER_FAULT_ROOT": str(copy / "remote.git")}
    ok(Project(copy / "alice").modver("push", env=env), "traced push")
    points = log.read_text().splitlines()
    shutil.rmtree(copy)
    tried = failed = 0
    for i, n in enumerate(choose(points, PUSH_POINTS)):
        team = Path(shutil.copytree(base, tmp_path / f"fail-{n}", symlinks=True))
        alice = Project(team / "alice")
        env = {"MODVER_FAULT_FAIL_AT": str(n), "MODVER_FAULT_ERRNO": ("ENOSPC", "EIO", "EROFS", "EDQUOT")[i % 4]}
        done = alice.modver("push", env={**env, "MODVER_FAULT_ROOT": str(team / "remote.git")})
        assert "Traceback" not in done.stderr and "internal error" not in done.stderr, (n, done.stderr)
        assert done.returncode in (0, 1), (n, done.stderr)
        failed += done.returncode == 1
        fsck = subprocess.run(["git", "fsck", "--full"], cwd=team / "remote.git", capture_output=True, text=True)
        assert fsck.returncode == 0 and "invalid" not in fsck.stderr and "error" not in fsck.stderr, (n, fsck.stderr)
        ok(alice.modver("push"), f"the push after write {n} failed")
        assert_everything_arrived(team, "bob")
        tried += 1
        shutil.rmtree(team)
    record("modver push", "failed writes to the remote", survived=tried, tried=tried, failed=failed, points=len(points))
    assert failed >= tried / 2
