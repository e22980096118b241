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
