"""Kill ``modver pin`` and ``modver run`` at their write points and at random moments: the git
repository, the manifest, the run records and the cache must come out whole, and the next
command must give what an undisturbed one gives.

Counts go to ``$MODVER_FAULT_REPORT`` (see harness.py)::

    MODVER_FAULT_REPORT=/tmp/faults.json python -m pytest tests/faults -q
"""

from __future__ import annotations

import functools
import json
import os
import random
import signal
import subprocess
from pathlib import Path

import pytest

from tests.faults.harness import (
    _IDENTITY,
    Project,
    build_history_project,
    check_survived,
    choose,
    kill_after,
    kill_at,
    ok,
    record,
    timed,
    write_points,
)

pytestmark = pytest.mark.slow

SEED = 7
RANDOM_KILLS = 8
RUN_POINTS = 45  # `modver run` has ~150 write points; every kind of write is still covered

PIPELINE = {
    "manifest.yaml": (
        "data:\n  raw: data/raw.txt\n"
        "stages:\n"
        "  load:\n    entry: pipe/load.py:load\n    inputs: {path: data.raw}\n"
        "  scale:\n    entry: pipe/scale.py:scale\n    inputs: {values: load}\n    params: {factor: 3}\n"
        "  score:\n    entry: pipe/score.py:score\n    inputs: {values: scale}\n"
    ),
    "data/raw.txt": "1 2 3 4\n",
    "pipe/__init__.py": "",
    "pipe/load.py": "def load(path):\n    with open(path) as f:\n        return [int(v) for v in f.read().split()]\n",
    "pipe/scale.py": "def scale(values, factor):\n    return [v * factor for v in values]\n",
    "pipe/score.py": (
        "import modver\n\n\ndef score(values):\n    total = sum(values)\n"
        "    modver.log_metrics(total=total)\n    return {'total': total}\n"
    ),
}


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A 12-commit history, indexed: stage s0 has several versions to pin."""
    project = build_history_project(tmp_path_factory.mktemp("faults") / "history", commits=12)
    ok(project.modver("index"), "modver index")
    return project


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A committed three-stage pipeline over a data file, never run."""
    root = tmp_path_factory.mktemp("faults") / "pipeline"
    root.mkdir()
    for path, text in {**PIPELINE, ".gitignore": ".modver/\n"}.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1", **_IDENTITY}
    git = functools.partial(subprocess.run, cwd=root, env=env, check=True, capture_output=True)
    git(["git", "init", "-q", "-b", "main"])
    git(["git", "add", "-A"])
    git(["git", "commit", "-q", "-m", "a pipeline"])
    return Project(root)


def succeeded(done: subprocess.CompletedProcess[str], what: str) -> dict:
    """A `--json` command's record: it exited 0 and said nothing of errors on stderr."""
    assert done.returncode == 0 and "Error" not in done.stderr and "Traceback" not in done.stderr, (
        f"{what}: {done.stderr}"
    )
    return json.loads(done.stdout)


def untracked_or_changed(project: Project) -> list[str]:
    """`git status --porcelain` lines (with untracked files): what a user would see."""
    done = project.git("status", "--porcelain", "--untracked-files=all")
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def check_pin(project: Project, before: str, after: str) -> None:
    manifest = (project.root / "manifest.yaml").read_text()
    assert manifest in (before, after), "the manifest is neither the old nor the new one"
    assert untracked_or_changed(project) in ([], [" M manifest.yaml"])  # no temp file of modver's


def test_pin_killed_at_every_write_point(indexed: Project, tmp_path: Path):
    args = ["pin", "s0@v2"]
    before = (indexed.root / "manifest.yaml").read_text()
    clean = indexed.copy(tmp_path / "clean")
    ok(clean.modver(*args), "modver pin")
    after = (clean.root / "manifest.yaml").read_text()
    assert after != before
    expected = clean.versions()
    points = write_points(indexed, args, tmp_path / "traced")
    chosen = choose(points)
    killed = 0
    for n in chosen:
        project = indexed.copy(tmp_path / f"kill-{n}")
        killed += kill_at(project, args, n) == -signal.SIGKILL
        check_pin(project, before, after)
        check_survived(project, args, expected)
        assert (project.root / "manifest.yaml").read_text() == after
    assert killed == len(chosen)
    record("modver pin", "write points", survived=len(chosen), tried=len(chosen), points=len(points))


def test_pin_killed_at_random_moments(indexed: Project, tmp_path: Path):
    args = ["pin", "s0@v2"]
    before = (indexed.root / "manifest.yaml").read_text()
    duration = timed(indexed.copy(tmp_path / "timed"), args)
    rng = random.Random(SEED)
    clean = indexed.copy(tmp_path / "clean")
    ok(clean.modver(*args), "modver pin")
    after, expected = (clean.root / "manifest.yaml").read_text(), clean.versions()
    killed = 0
    for i in range(RANDOM_KILLS):
        project = indexed.copy(tmp_path / f"random-{i}")
        killed += kill_after(project, args, rng.uniform(0.0, duration)) == -signal.SIGKILL
        check_pin(project, before, after)
        check_survived(project, args, expected)
    record(
        "modver pin",
        "random moments",
        survived=RANDOM_KILLS,
        tried=RANDOM_KILLS,
        killed_before_the_end=killed,
        seed=SEED,
    )


def check_run(project: Project, expected_metrics: dict) -> None:
    """After a killed run: the records read, the killed run is not 'running', the next run
    succeeds with the undisturbed metrics, every version verifies, every cache entry is whole."""
    runs = succeeded(project.modver("runs", "--json"), "modver runs --json after the kill")
    assert all(r["status"] != "running" for r in runs), "a dead run reads as running"
    record_ = succeeded(project.modver("run", "--json"), "the next modver run")
    assert record_["status"] == "succeeded" and record_["metrics"] == expected_metrics
    ok(project.modver("verify"), "modver verify")
    from modver.store.cache import OutputCache

    cache = OutputCache(project.root / ".modver" / "cache" / "outputs")
    damaged = {e.key: cache.problems(e.key) for e in cache.entries() if cache.problems(e.key)}
    assert damaged == {}
    assert untracked_or_changed(project) == []


def test_run_killed_at_write_points(pipeline: Project, tmp_path: Path):
    clean = pipeline.copy(tmp_path / "clean")
    metrics = succeeded(clean.modver("run", "--json"), "modver run")["metrics"]
    expected = clean.versions()
    points = write_points(pipeline, ["run"], tmp_path / "traced")
    chosen = choose(points, RUN_POINTS)
    killed = 0
    for n in chosen:
        project = pipeline.copy(tmp_path / f"kill-{n}")
        killed += kill_at(project, ["run"], n) == -signal.SIGKILL
        check_survived(project, ["log"], None)
        check_run(project, metrics)
        assert project.versions() == expected
    assert killed == len(chosen)
    record("modver run", "write points", survived=len(chosen), tried=len(chosen), points=len(points))


def test_run_killed_at_random_moments(pipeline: Project, tmp_path: Path):
    clean = pipeline.copy(tmp_path / "clean")
    metrics = succeeded(clean.modver("run", "--json"), "modver run")["metrics"]
    duration = timed(pipeline.copy(tmp_path / "timed"), ["run"])
    rng = random.Random(SEED)
    killed = 0
    for i in range(RANDOM_KILLS):
        project = pipeline.copy(tmp_path / f"random-{i}")
        killed += kill_after(project, ["run"], rng.uniform(0.05, duration)) == -signal.SIGKILL
        check_survived(project, ["log"], None)
        check_run(project, metrics)
    record(
        "modver run",
        "random moments",
        survived=RANDOM_KILLS,
        tried=RANDOM_KILLS,
        killed_before_the_end=killed,
        seed=SEED,
    )
