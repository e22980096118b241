"""Shared fixtures: a clean environment, and real git repositories in tmp_path."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.helpers import PIPELINE, RUN_PIPELINE, GitProject, build_project

settings.register_profile(
    "ci", derandomize=True, deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", deadline=None, max_examples=60)
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))

ROOT = Path(__file__).resolve().parent.parent

# The slow set (`-m slow`): whole suites of minutes each, run in full by .ci/run after the default
# set (README: `-m "not slow"`). Single slow tests elsewhere carry @pytest.mark.slow themselves.
SLOW_SUITES = (
    "tests/faults/",  # a real CLI killed or refused at every write point
    "tests/fuzz/",  # every command on generated input
    "tests/sweep/test_crash.py",  # clusters whose workers crash, are killed or signalled
    "tests/sweep/test_cluster_faults.py",
    "tests/sweep/test_signals.py",
    "tests/sweep/test_threads.py",
    "tests/sweep/test_resume.py",
    "tests/sweep/test_slurm.py",  # a real Slurm cluster
    "tests/test_packaging.py",  # builds wheels into fresh virtualenvs
    "tests/search/test_search_slurm.py",  # a search on a real Slurm cluster
    "tests/search/test_resume.py",  # a search's driver killed and resumed
    "tests/search/test_search_faults.py",  # the study's writes refused one at a time
    "tests/search/test_search_threads.py",
    "tests/explain/test_signals.py",  # blame and bisect stopped by signals
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if Path(item.path).resolve().relative_to(ROOT).as_posix().startswith(SLOW_SUITES):
            item.add_marker(pytest.mark.slow)


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


@pytest.fixture
def make_project(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., GitProject]]:
    """``make_project(files, name="proj")``: a git repository in tmp_path holding ``files``
    (path: text, e.g. :data:`~tests.helpers.PIPELINE`), committed once, ``.modver/`` ignored.
    Call it again with another ``name`` for a second project. When the test ends, every version
    registered in each verifies, as with ``git_project``."""
    made: list[Path] = []

    def make(files: Mapping[str, str], name: str = "proj", message: str = "a project") -> GitProject:
        project = build_project(tmp_path / name, files, message=message)
        made.append(project.root)
        return project

    yield make
    if request.node.get_closest_marker("damages_history") is None:
        for root in made:
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


@pytest.fixture
def run_project(pipeline_project: GitProject) -> GitProject:
    """The pipeline with three stages (prep, other, train) that run: `modver run` works on it."""
    p = pipeline_project
    for path, text in RUN_PIPELINE.items():
        p.write(path, text)
    p.commit("pipeline with three stages")
    return p
