"""modver push / pull of stage histories: a bare repository as the remote, real clones in tmp_path."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import assert_versions_verify
from tests.helpers import GitProject, mv, mv_json

MANIFEST = """\
# the team's experiment
stages:
  model:
    entry: pipe/model.py:train   # the model
    params: {C: 1.0}
"""


def model_code(body: str) -> str:
    return f"def train(C=1.0):\n    return {body}\n"


class Team:
    """A bare remote and the clones of its members, all in tmp_path."""

    def __init__(self, tmp_path: Path):
        self.tmp = tmp_path
        self.remote = tmp_path / "remote.git"
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(self.remote)], check=True)
        alice = GitProject(_mkdir(tmp_path / "alice"))
        alice.write("manifest.yaml", MANIFEST)
        alice.write("pipe/__init__.py", "")
        alice.write("pipe/model.py", model_code("C"))
        alice.write(".gitignore", ".modver/\n")
        alice.commit("the model")
        alice.git("remote", "add", "origin", str(self.remote))
        alice.git("push", "-q", "origin", "main")
        self.alice = alice

    def clone(self, name: str) -> GitProject:
        target = self.tmp / name
        subprocess.run(["git", "clone", "-q", str(self.remote), str(target)], check=True)
        project = GitProject.__new__(GitProject)
        project.root = target
        return project

    def remote_refs(self) -> str:
        done = subprocess.run(
            ["git", "for-each-ref", "refs/modver"], cwd=self.remote, capture_output=True, text=True, check=True
        )
        return done.stdout


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def snapshot(project: GitProject, body: str, message: str) -> None:
    project.write("pipe/model.py", model_code(body))
    mv(project.root, "snapshot", "--message", message)


def log(project: GitProject) -> list[dict[str, object]]:
    return [{k: v for k, v in entry.items() if k != "runs"} for entry in mv_json(project.root, "log")]


@pytest.fixture
def team(tmp_path: Path) -> Team:
    return Team(tmp_path)


def test_a_fresh_clone_pulls_without_init(team):
    mv(team.alice.root, "index")
    out = mv(team.alice.root, "push").stdout
    assert "Pushed to origin: model +1 version" in out
    assert "refs/modver/stages/model" in team.remote_refs()
    bob = team.clone("bob")
    assert not (bob.root / ".modver").exists()
    assert "Took from origin: model +1 version" in mv(bob.root, "pull").stdout
    assert log(bob) == log(team.alice)
    assert "Up to date with origin." in mv(bob.root, "pull").stdout
    assert "Nothing new to push to origin." in mv(bob.root, "push").stdout
    assert bob.git("status", "--porcelain") == ""  # no tracked file changed, .modver/ ignores itself


def test_diverged_histories_renumber_the_unpublished_version(team):
    """The issue's scenario: two clones each make model@v2; the second to push is renumbered."""
    mv(team.alice.root, "index")
    mv(team.alice.root, "push")
    bob = team.clone("bob")
    mv(bob.root, "pull")
    snapshot(team.alice, "C * 2", "alice: x2")
    snapshot(bob, "C / 3", "bob: C/3")
    mv(bob.root, "pin", "model@v2")
    bob.write("other.yaml", MANIFEST.replace("params", "version: v2\n    params"))
    run = mv_json(bob.root, "run")
    bob_fingerprint = run["fingerprints"]["model"]
    assert run["versions"]["model"] == "v2"
    mv(team.alice.root, "push")

    refused = mv(bob.root, "push", code=1)
    assert "has versions this clone lacks (model)" in refused.stderr
    assert "modver pull" in refused.stderr

    out = mv(bob.root, "pull").stdout
    assert "model v2 (yours, 'bob: C/3') is now v3; manifest.yaml, other.yaml pins updated; 1 run record updated" in out
    assert "version: v3" in bob.read("manifest.yaml")
    assert "# the model" in bob.read("manifest.yaml")  # the pin edit keeps the user's comments
    assert "version: v3" in bob.read("other.yaml")
    record = mv_json(bob.root, "runs")[0]
    assert record["versions"]["model"] == "v3"
    assert record["fingerprints"]["model"] == bob_fingerprint  # fingerprints never change
    assert record["stages"]["model"]["key_parts"]["version"] == "v3"
    versions = mv_json(bob.root, "log")
    assert [(v["version"], v["message"]) for v in versions] == [
        ("v1", "the model"),
        ("v2", "alice: x2"),
        ("v3", "bob: C/3"),
    ]
    assert versions[2]["fingerprint"] == bob_fingerprint
    assert "model@v3" in mv(bob.root, "show", "model@v3").stdout  # bob's code is still there, as v3
    assert "C / 3" in mv(bob.root, "show", "model@v3").stdout

    assert "model +1 version" in mv(bob.root, "push").stdout
    assert "model +1 version" in mv(team.alice.root, "pull").stdout
    assert log(team.alice) == log(bob)
    assert_versions_verify(team.alice.root)
    assert_versions_verify(bob.root)


def test_the_same_code_on_both_sides_takes_the_remote_number(team):
    mv(team.alice.root, "index")
    mv(team.alice.root, "push")
    bob = team.clone("bob")
    mv(bob.root, "pull")
    snapshot(team.alice, "C * 2", "alice: x2")
    snapshot(bob, "C + 1", "bob: +1")  # bob v2
    snapshot(bob, "C * 2", "bob: x2 too")  # bob v3 = alice's v2
    mv(team.alice.root, "push")
    out = mv(bob.root, "pull").stdout
    assert "model v2 (yours, 'bob: +1') is now v3" in out
    assert "model v3 (yours, 'bob: x2 too') is now v2" in out
    assert [v["message"] for v in log(bob)] == ["the model", "alice: x2", "bob: +1"]


def test_tags_travel_and_a_clash_is_reported_not_overwritten(team):
    mv(team.alice.root, "index")
    snapshot(team.alice, "C * 2", "alice: x2")
    mv(team.alice.root, "tag", "model@v1", "baseline")
    mv(team.alice.root, "tag", "model@v2", "best")
    mv(team.alice.root, "push")
    bob = team.clone("bob")
    snapshot(bob, "C", "bob's first")  # the same code as the remote's v1
    mv(bob.root, "tag", "model@v1", "best")
    out = mv(bob.root, "pull")
    assert "tag model@best is v1 here and v2 on origin: both kept as they are" in out.stderr
    assert "model@baseline" in out.stdout
    assert mv_json(bob.root, "show", "model@best")["version"] == "v1"  # not overwritten
    pushed = mv(bob.root, "push")
    assert "tag model@best is v1 here and v2 on origin" in pushed.stderr
    alice_v2 = mv_json(team.alice.root, "log")[1]["commit"]
    assert f"{alice_v2} commit\trefs/modver/tags/model/best" in team.remote_refs()  # the remote's tag kept
    mv(team.alice.root, "pull")
    assert mv_json(team.alice.root, "show", "model@best")["version"] == "v2"


def test_remote_given_as_a_path_or_file_url(team):
    mv(team.alice.root, "index")
    assert "Pushed to file://" in mv(team.alice.root, "push", f"file://{team.remote}").stdout
    bob = team.clone("bob")
    assert "Took from" in mv(bob.root, "pull", str(team.remote)).stdout
    assert log(bob) == log(team.alice)


def test_dry_run_moves_nothing(team):
    mv(team.alice.root, "index")
    out = mv(team.alice.root, "push", "--dry-run").stdout
    assert "Would push to origin: model +1 version" in out
    assert team.remote_refs() == ""
    mv(team.alice.root, "push")
    bob = team.clone("bob")
    assert "Would take from origin: model +1 version" in mv(bob.root, "pull", "--dry-run").stdout
    assert mv_json(bob.root, "log") == []


def test_unknown_or_unreachable_remote_is_one_clear_error(team, tmp_path):
    mv(team.alice.root, "index")
    missing = mv(team.alice.root, "push", "upstream", code=1)
    assert "no git remote 'upstream' (configured remotes: origin)" in missing.stderr
    assert "git remote add" in missing.stderr
    gone = mv(team.alice.root, "push", str(tmp_path / "nowhere.git"), code=1)
    assert "cannot push to" in gone.stderr and "nowhere.git" in gone.stderr
    assert "Traceback" not in gone.stderr
    unreachable = mv(team.alice.root, "pull", "ssh://127.0.0.1:1/repo.git", code=1)
    assert "cannot fetch from" in unreachable.stderr
    lone = GitProject(_mkdir(tmp_path / "lone"))
    assert "no git remote 'origin' (configured remotes: none)" in mv(lone.root, "pull", code=1).stderr


def test_json_output(team):
    mv(team.alice.root, "index")
    pushed = mv_json(team.alice.root, "push")
    assert pushed["new_versions"] == {"model": 1} and pushed["remote"] == "origin" and pushed["storage"] is None
    bob = team.clone("bob")
    pulled = mv_json(bob.root, "pull")
    assert pulled["new_versions"] == {"model": 1} and pulled["renumbered"] == []
    assert json.dumps(pulled)


FAKE_SSH = """\
#!/bin/sh
# ssh for the tests: runs the git command it is given here, as sshd would on the host
for last; do :; done
case "$*" in *"GIT_PROTOCOL=version=2"*) export GIT_PROTOCOL=version=2 ;; esac
exec sh -c "$last"
"""


def test_push_and_pull_over_ssh(team, tmp_path, monkeypatch):
    """The ssh transport (dulwich's client against git's own upload-pack and receive-pack)."""
    fake = tmp_path / "fake-ssh"
    fake.write_text(FAKE_SSH)
    fake.chmod(0o755)
    monkeypatch.setenv("GIT_SSH_COMMAND", str(fake))
    url = f"ssh://git@example.invalid{team.remote}"
    mv(team.alice.root, "index")
    assert "Pushed to" in mv(team.alice.root, "push", url).stdout
    bob = team.clone("bob")
    snapshot(team.alice, "C * 2", "alice: x2")
    snapshot(bob, "C / 3", "bob: C/3")
    mv(team.alice.root, "push", url)
    assert "has versions this clone lacks" in mv(bob.root, "push", url, code=1).stderr
    assert "model v1 (yours, 'bob: C/3') is now v3" in mv(bob.root, "pull", url).stdout
    assert "model +1 version" in mv(bob.root, "push", url).stdout
    mv(team.alice.root, "pull", url)
    assert log(team.alice) == log(bob)
