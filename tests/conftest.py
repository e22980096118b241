"""Shared fixtures: a clean environment, and real git repositories in tmp_path."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", derandomize=True, deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", deadline=None, max_examples=60)
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No personal git config, no GIT_* variables, no colour codes in captured output."""
    for key in list(os.environ):
        if key.startswith("GIT_") or key in {"MODVER_DEBUG", "FORCE_COLOR"}:
            monkeypatch.delenv(key, raising=False)
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Test Author")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "author@example.com")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "Test Author")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "author@example.com")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")


class GitProject:
    """A real git repository in a temporary folder, driven with the git binary (tests only)."""

    def __init__(self, root: Path):
        self.root = root
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str) -> str:
        done = subprocess.run(["git", *args], cwd=self.root, capture_output=True, text=True, check=True)
        return done.stdout.strip()

    def write(self, path: str, text: str) -> Path:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        return target

    def read(self, path: str) -> str:
        return (self.root / path).read_text(encoding="utf-8")

    def commit(self, message: str, *paths: str) -> str:
        self.git("add", *(paths or ("-A",)))
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD")

    def state(self) -> dict[str, object]:
        """Everything modver must never change: HEAD, branches, index bytes, tracked files."""
        index = self.root / ".git" / "index"
        return {
            "head": self.git("rev-parse", "--verify", "-q", "HEAD") if self.has_commits() else None,
            "symbolic": self.git("symbolic-ref", "-q", "HEAD"),
            "branches": self.git("for-each-ref", "refs/heads", "refs/tags"),
            "index": index.read_bytes() if index.exists() else None,
            "status": self.git("status", "--porcelain", "--untracked-files=no"),
        }

    def has_commits(self) -> bool:
        return (
            subprocess.run(
                ["git", "rev-parse", "-q", "--verify", "HEAD"], cwd=self.root, capture_output=True
            ).returncode
            == 0
        )


@pytest.fixture
def git_project(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[GitProject]:
    """An empty git repository (branch main) in tmp_path.

    When the test ends, every version registered in it is verified (re-fingerprinted from its
    stored files, `modver verify`): a version must store exactly the code it fingerprinted.
    Tests that damage the history on purpose opt out with ``@pytest.mark.damages_history``.
    """
    root = tmp_path / "proj"
    root.mkdir()
    project = GitProject(root)
    yield project
    if request.node.get_closest_marker("damages_history") is None:
        assert_versions_verify(root)


def assert_versions_verify(root: Path) -> None:
    """Every version under refs/modver/ of the repository at ``root`` verifies."""
    if not (root / ".git").is_dir():
        return
    from modver.project import Project

    with Project(root) as project:
        if not project.history.stages():
            return
        damaged = [c.to_json() for c in project.verify() if not c.ok]
    assert not damaged, f"versions whose stored code is not their fingerprint's: {damaged}"


PIPELINE = {
    "manifest.yaml": """\
# demo manifest
data:
  raw: data/raw.txt
stages:
  prep:
    entry: pipe/prep.py:prep   # the first stage
    inputs: {raw: data.raw}
    params: {scale: 2}
  train:
    entry: pipe/train.py:train
    inputs: {data: prep}
""",
    "data/raw.txt": "1 2 3\n",
    "pipe/__init__.py": "",
    "pipe/util.py": """\
FACTOR = 3


def helper(x):
    return x * FACTOR


def unused():
    return 'never reached'
""",
    "pipe/prep.py": """\
from pipe.util import helper


def prep(raw, scale=1):
    '''Prepare the data.'''
    return [helper(v) * scale for v in raw]
""",
    "pipe/train.py": """\
def train(data):
    return sum(data) / len(data)
""",
}


@pytest.fixture
def pipeline_project(git_project: GitProject) -> GitProject:
    """A two-stage pipeline, committed once."""
    for path, text in PIPELINE.items():
        git_project.write(path, text)
    git_project.write(".gitignore", ".modver/\n")
    git_project.commit("initial pipeline")
    return git_project


@pytest.fixture
def python() -> str:
    return sys.executable


RUN_PIPELINE = {
    "manifest.yaml": """\
data:
  raw: data/raw.txt
stages:
  prep:
    entry: pipe/prep.py:prep
    inputs: {raw: data.raw}
    params: {scale: 2}
  other:
    entry: pipe/other.py:other
    params: {x: 1}
  train:
    entry: pipe/train.py:train
    inputs: {data: prep}
""",
    "pipe/other.py": """\
from pipe.util import helper


def other(x):
    print("other says hello")
    return helper(x)
""",
    "pipe/prep.py": """\
from pipe.util import helper


def prep(raw, scale=1):
    with open(raw) as f:
        values = [int(v) for v in f.read().split()]
    return [helper(v) * scale for v in values]
""",
    "pipe/train.py": """\
import modver
from pipe.model import Model


def train(data):
    model = Model(sum(data) / len(data))
    modver.log_metrics(mean=model.mean)
    for step in range(3):
        modver.log_metrics(step=step, loss=1.0 / (step + 1))
    return model
""",
    "pipe/model.py": """\
class Model:
    def __init__(self, mean):
        self.mean = mean

    def predict(self, x):
        return x * self.mean
""",
}


@pytest.fixture
def run_project(pipeline_project: GitProject) -> GitProject:
    """The pipeline with three stages (prep, other, train) that run: `modver run` works on it."""
    p = pipeline_project
    for path, text in RUN_PIPELINE.items():
        p.write(path, text)
    p.commit("pipeline with three stages")
    return p
