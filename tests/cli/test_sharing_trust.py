"""Nothing from a remote is trusted (issue 15): forged versions, reserved tag names and bad stage
names are refused by name, one at a time, while everything genuine is taken; push and pull work
in a linked git worktree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from modver.fingerprint import fingerprint_stage
from modver.sourcetree import WorkingTree
from modver.store.layout import Store
from modver.store.materialize import version_dir
from tests._forge import forge, git
from tests.cli.test_sharing import Team, log, snapshot
from tests.conftest import assert_versions_verify
from tests.helpers import cli, mv, mv_json

REPO_ROOT = Path(__file__).resolve().parents[2]

TWO_STAGES = """\
stages:
  prep:
    entry: pipe/prep.py:prep
  model:
    entry: pipe/model.py:train
    params: {C: 1.0}
"""


def fingerprint_of(root: Path, entry: str) -> str:
    return fingerprint_stage(WorkingTree(root), entry).fingerprint


def two_stage_team(tmp_path: Path) -> Team:
    """Alice has prep v1 and model v1 pushed."""
    team = Team(tmp_path)
    team.alice.write("manifest.yaml", TWO_STAGES)
    team.alice.write("pipe/prep.py", "def prep():\n    return [1, 2, 3]\n")
    team.alice.commit("two stages")
    team.alice.git("push", "-q", "origin", "main")
    mv(team.alice.root, "snapshot", "--message", "first")
    mv(team.alice.root, "push")
    return team


def versions(project_root: Path, stage: str) -> list[tuple[str, str]]:
    return [(v["version"], v["message"]) for v in mv_json(project_root, "log", stage)]


# -- item 1: a forged version ----------------------------------------------------------------------


def test_a_forged_version_is_refused_by_name_and_the_rest_is_taken(tmp_path: Path):
    team = two_stage_team(tmp_path)
    bob = team.clone("bob")
    mv(bob.root, "pull")
    snapshot(team.alice, "C * 2", "alice: x2")  # model v2, genuine
    team.alice.write("pipe/prep.py", "def prep():\n    return [4, 5]\n")
    mv(team.alice.root, "snapshot", "prep", "--message", "prep: new data")  # prep v2, genuine
    mv(team.alice.root, "push")
    # a commit appended on the remote: it claims the fingerprint of other code than it stores
    team.alice.write("pipe/model.py", "def train(C=1.0):\n    return C - 1\n")
    claimed = fingerprint_of(team.alice.root, "pipe/model.py:train")
    forge(team.remote, "model", {"pipe/model.py": "def train(C=1.0):\n    return 666\n"}, fingerprint=claimed)
    # and one more on top of it, claiming v1's fingerprint
    genuine_v1 = mv_json(team.alice.root, "log", "model")[0]["fingerprint"]
    forge(team.remote, "model", {}, fingerprint=genuine_v1)

    pulled = mv(bob.root, "pull", code=1)
    assert "Took from origin: model +1 version, prep +1 version" in pulled.stdout
    assert "refused from origin: model v3" in pulled.stderr
    assert "the stored code fingerprints as mv" in pulled.stderr and f"not {claimed}" in pulled.stderr
    assert "refused from origin: model v4: it comes after model v3, which is refused" in pulled.stderr
    assert "Traceback" not in pulled.stderr and "internal error" not in pulled.stderr
    assert versions(bob.root, "model") == [("v1", "two stages"), ("v2", "alice: x2")]
    assert versions(bob.root, "prep") == [("v1", "two stages"), ("v2", "prep: new data")]
    fingerprints = [v["fingerprint"] for v in mv_json(bob.root, "log", "model")]
    assert len(set(fingerprints)) == len(fingerprints)
    assert_versions_verify(bob.root)

    again = mv(bob.root, "pull", code=1)  # refused again, by name, each time: never taken silently
    assert "refused from origin: model v3" in again.stderr and "Up to date with origin." in again.stdout
    as_json = json.loads(mv(bob.root, "pull", "--json", code=1).stdout)
    assert [(r["stage"], r["version"]) for r in as_json["refused"]] == [("model", "v3"), ("model", "v4")]


def test_a_version_claiming_a_known_fingerprint_with_the_same_code_is_refused(tmp_path: Path):
    """Two versions of one chain claiming one fingerprint: never accepted, even with genuine code."""
    team = two_stage_team(tmp_path)
    bob = team.clone("bob")
    v1 = mv_json(team.alice.root, "log", "model")[0]["fingerprint"]
    forge(team.remote, "model", {}, fingerprint=v1)  # v2: a copy of v1
    pulled = mv(bob.root, "pull", code=1)
    assert "refused from origin: model v2" in pulled.stderr and "model v1 already has fingerprint" in pulled.stderr
    assert versions(bob.root, "model") == [("v1", "two stages")]
    assert versions(bob.root, "prep") == [("v1", "two stages")]


def test_forged_code_fetched_with_git_itself_is_never_run(tmp_path: Path):
    """The refs also travel with plain `git fetch`: a version's code is re-fingerprinted before
    it is materialized, so a forged version never runs and never fills the cache."""
    team = two_stage_team(tmp_path)
    team.alice.write("pipe/model.py", "def train(C=1.0):\n    return C * 5\n")
    claimed = fingerprint_of(team.alice.root, "pipe/model.py:train")
    evil = "import pathlib\n\n\ndef train(C=1.0):\n    pathlib.Path('PWNED').write_text('x')\n    return C * 5\n"
    forge(team.remote, "model", {"pipe/model.py": evil}, fingerprint=claimed)
    carol = team.clone("carol")
    carol.git("fetch", "-q", "origin", "refs/modver/*:refs/modver/*")
    assert versions(carol.root, "model")[-1] == ("v2", "forged")  # git took it: modver cannot stop git
    mv(carol.root, "pin", "model@v2")
    refused = cli(carol.root, "run", code=1)
    assert "model@v2" in refused.stderr and "fingerprints as" in refused.stderr and "not used" in refused.stderr
    assert not (carol.root / "PWNED").exists() and not (carol.root / ".modver" / "versions" / "PWNED").exists()
    assert not version_dir(Store(carol.root), claimed).exists()  # never materialized
    checks = mv(carol.root, "verify", code=1)
    assert "model@v2" in checks.stdout + checks.stderr


# -- item 13: names from the remote ----------------------------------------------------------------


def test_reserved_tag_names_and_bad_stage_names_from_the_remote_are_refused_not_blocking(tmp_path: Path):
    team = two_stage_team(tmp_path)
    mv(team.alice.root, "tag", "model@v1", "best")
    mv(team.alice.root, "push")
    v1 = git(team.remote, "rev-parse", "refs/modver/stages/model")
    for name in ("v1", "latest", "abcdef12", "working"):
        git(team.remote, "update-ref", f"refs/modver/tags/model/{name}", v1)
    git(team.remote, "update-ref", "refs/modver/stages/a/b", v1)
    bob = team.clone("bob")
    pulled = mv(bob.root, "pull", code=1)
    assert "Took from origin: model +1 version, prep +1 version, tag model@best" in pulled.stdout
    for name in ("v1", "latest", "abcdef12", "working"):
        assert f"refused from origin: tag model@{name}: invalid tag name {name!r}" in pulled.stderr
    assert "refused from origin: stage 'a/b': invalid stage name 'a/b'" in pulled.stderr
    assert [v["tags"] for v in mv_json(bob.root, "log", "model")] == [["best"]]
    assert bob.git("for-each-ref", "refs/modver/tags").count("\n") == 0  # only best
    assert "refs/modver/stages/a" not in bob.git("for-each-ref", "refs/modver")
    snapshot(bob, "C + 7", "bob: +7")
    assert "model +1 version" in mv(bob.root, "push").stdout  # the bad names on the remote do not block a push


# -- item 10: a linked worktree --------------------------------------------------------------------


def test_push_and_pull_with_renumbering_in_a_linked_worktree(tmp_path: Path):
    team = Team(tmp_path)
    mv(team.alice.root, "index")
    mv(team.alice.root, "push")
    bob = team.clone("bob")
    bob.git("worktree", "add", "-q", str(tmp_path / "bob-feature"), "-b", "feature")
    feature = type(bob).__new__(type(bob))
    feature.root = tmp_path / "bob-feature"
    assert (feature.root / ".git").is_file()
    mv(feature.root, "pull")
    snapshot(team.alice, "C * 2", "alice: x2")
    mv(team.alice.root, "push")
    snapshot(feature, "C / 3", "bob: C/3")
    mv(feature.root, "pin", "model@v2")
    out = mv(feature.root, "pull").stdout
    assert "model v2 (yours, 'bob: C/3') is now v3; manifest.yaml pin updated" in out
    assert "version: v3" in feature.read("manifest.yaml")
    assert not (bob.root / ".git" / "modver" / "renumber.json").exists()
    assert "model +1 version" in mv(feature.root, "push").stdout
    mv(team.alice.root, "pull")
    assert log(team.alice) == log(feature)


# -- item 2: a pull while a run is in progress -----------------------------------------------------

WAITING = """\
stages:
  model:
    entry: pipe/model.py:train
    version: v2
    params: {C: 1.0}
  wait:
    entry: pipe/wait.py:wait
    inputs: {model: model}
    params: {started: STARTED, gate: GATE}
"""

WAIT_CODE = """\
import pathlib
import time


def wait(model, started, gate):
    pathlib.Path(started).write_text("in the stage")
    deadline = time.monotonic() + 120
    while not pathlib.Path(gate).exists():  # the test opens the gate once its pull is done
        if time.monotonic() > deadline:
            raise TimeoutError("the gate never opened")
        time.sleep(0.02)
    return model
"""


def test_a_pull_during_a_run_leaves_the_record_naming_the_version_whose_code_ran(tmp_path: Path):
    """Issue 15, item 2: bob runs his own unpublished model@v2; a pull in the middle of the run
    renumbers it v3. Every record the run writes afterwards, the last one included, says v3."""
    team = Team(tmp_path)
    mv(team.alice.root, "index")
    mv(team.alice.root, "push")
    bob = team.clone("bob")
    mv(bob.root, "pull")
    snapshot(team.alice, "C * 2", "alice: x2")
    mv(team.alice.root, "push")
    snapshot(bob, "C / 3", "bob: C/3")  # bob's v2, not published
    started, gate = tmp_path / "started", tmp_path / "gate"
    bob.write("manifest.yaml", WAITING.replace("STARTED", str(started)).replace("GATE", str(gate)))
    bob.write("pipe/wait.py", WAIT_CODE)
    bob_v2 = mv_json(bob.root, "log", "model")[1]["fingerprint"]

    run = subprocess.Popen(
        [sys.executable, "-m", "modver", "run", "--json"], cwd=bob.root, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not started.exists():  # the run's record says model: v2 and stage wait is running
            assert run.poll() is None and time.monotonic() < deadline, run.communicate()
            time.sleep(0.02)
        running = mv_json(bob.root, "runs")[0]
        assert running["status"] == "running" and running["versions"]["model"] == "v2"
        pulled = mv(bob.root, "pull")
        assert (
            "model v2 (yours, 'bob: C/3') is now v3; manifest.yaml pin updated; 1 run record updated" in pulled.stdout
        )
        gate.write_text("open")
        out, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, err
    printed = json.loads(out)
    assert printed["versions"]["model"] == "v3" and printed["fingerprints"]["model"] == bob_v2
    (record,) = mv_json(bob.root, "runs")
    assert record["status"] == "succeeded"
    assert record["versions"]["model"] == "v3" and record["fingerprints"]["model"] == bob_v2
    assert record["stages"]["model"]["key_parts"]["version"] == "v3"
    assert [(v["version"], v["fingerprint"]) for v in mv_json(bob.root, "log", "model")][2] == ("v3", bob_v2)


def test_a_pull_during_a_sweep_leaves_every_record_naming_the_version_whose_code_ran(tmp_path: Path):
    """The sweep twin of the test above: the sweep's driver writes each point's record again as
    its stages end, and each write names the versions by their numbers at that moment."""
    team = Team(tmp_path)
    mv(team.alice.root, "index")
    mv(team.alice.root, "push")
    bob = team.clone("bob")
    mv(bob.root, "pull")
    snapshot(team.alice, "C * 2", "alice: x2")
    mv(team.alice.root, "push")
    snapshot(bob, "C / 3", "bob: C/3")  # bob's v2, not published
    started, gate = tmp_path / "started", tmp_path / "gate"
    bob.write("manifest.yaml", WAITING.replace("STARTED", str(started)).replace("GATE", str(gate)))
    bob.write("pipe/wait.py", WAIT_CODE)
    bob_v2 = mv_json(bob.root, "log", "model")[1]["fingerprint"]

    sweep = subprocess.Popen(
        [sys.executable, "-m", "modver", "sweep", "--set", "model.C=1.0,2.0", "--jobs", "1", "--json"], cwd=bob.root,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not started.exists():  # a point's stage wait is running: its record says model v2
            assert sweep.poll() is None and time.monotonic() < deadline, sweep.communicate()
            time.sleep(0.02)
        assert {r["versions"]["model"] for r in mv_json(bob.root, "runs")} == {"v2"}
        pulled = mv(bob.root, "pull")
        assert "model v2 (yours, 'bob: C/3') is now v3; manifest.yaml pin updated" in pulled.stdout
        gate.write_text("open")
        out, err = sweep.communicate(timeout=120)
    finally:
        if sweep.poll() is None:
            sweep.kill()
    assert sweep.returncode == 0, err
    assert json.loads(out)["status"] == "succeeded"
    records = mv_json(bob.root, "runs")
    assert len(records) == 2 and all(r["status"] == "succeeded" for r in records)
    for record in records:
        assert record["versions"]["model"] == "v3" and record["fingerprints"]["model"] == bob_v2
        assert record["stages"]["model"]["key_parts"]["version"] == "v3"
    assert [(v["version"], v["fingerprint"]) for v in mv_json(bob.root, "log", "model")][2] == ("v3", bob_v2)
