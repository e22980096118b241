"""Kill ``modver index`` and ``modver snapshot`` at every write point and at random moments, and
run them two at a time: the git repository, the store and the versions must come out whole.

Counts go to ``$MODVER_FAULT_REPORT`` (see harness.py)::

    MODVER_FAULT_REPORT=/tmp/faults.json python -m pytest tests/faults -q
"""

from __future__ import annotations

import random
import signal
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from tests.faults.harness import (
    Project,
    Versions,
    build_history_project,
    check_survived,
    choose,
    kill_after,
    kill_at,
    ok,
    record,
    timed,
    undisturbed,
    write_points,
)

pytestmark = pytest.mark.slow  # about two minutes: `-m "not slow"` leaves it out

RANDOM_KILLS = 8
SEED = 6


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """30 commits x 3 stages, nothing indexed yet."""
    return build_history_project(tmp_path_factory.mktemp("faults") / "history")


@pytest.fixture(scope="module")
def edited(history: Project, tmp_path_factory: pytest.TempPathFactory) -> Project:
    """The history indexed, then every stage edited in the working tree (uncommitted)."""
    project = history.copy(tmp_path_factory.mktemp("faults") / "edited")
    ok(project.modver("index"), "modver index")
    for i in range(3):
        path = project.root / "pipe" / f"s{i}.py"
        path.write_text(path.read_text() + f"\n\ndef run_twice(data):\n    return run(run(data)) + [{i}]\n")
        path.write_text(path.read_text().replace("return x +", "return 2 * x +"))
    return project


def survive_write_points(base: Project, args: list[str], tmp_path: Path) -> None:
    expected = undisturbed(base, tmp_path / "clean", args)
    points = write_points(base, args, tmp_path / "traced")
    chosen = choose(points)
    killed = 0
    left: Counter[str] = Counter()
    for n in chosen:
        project = base.copy(tmp_path / f"kill-{n}")
        killed += kill_at(project, args, n) == -signal.SIGKILL
        left.update(
            kind for kind, files in check_survived(project, args, expected)["left by the kill"].items() if files
        )
    assert killed == len(chosen)  # every chosen point was reached: the kill switch works
    record(
        f"modver {' '.join(args)}",
        "write points",
        survived=len(chosen),
        tried=len(chosen),
        points=len(points),
        kills_that_left=dict(left),
    )


def survive_random_kills(base: Project, args: list[str], tmp_path: Path) -> None:
    expected = undisturbed(base, tmp_path / "clean", args)
    duration = timed(base.copy(tmp_path / "timed"), args)
    rng = random.Random(SEED)
    killed = 0
    left: Counter[str] = Counter()
    for k in range(RANDOM_KILLS):
        project = base.copy(tmp_path / f"random-{k}")
        # the first part of a run is start-up (imports: nothing written); aim at the rest
        killed += kill_after(project, args, rng.uniform(0.3, 1.05) * duration) == -signal.SIGKILL
        left.update(
            kind for kind, files in check_survived(project, args, expected)["left by the kill"].items() if files
        )
    record(
        f"modver {' '.join(args)}",
        "random moments",
        survived=RANDOM_KILLS,
        tried=RANDOM_KILLS,
        killed_before_the_end=killed,
        kills_that_left=dict(left),
        seed=SEED,
    )


def test_index_killed_at_every_write_point(history: Project, tmp_path: Path):
    survive_write_points(history, ["index"], tmp_path)


def test_index_killed_at_random_moments(history: Project, tmp_path: Path):
    survive_random_kills(history, ["index"], tmp_path)


def test_snapshot_killed_at_every_write_point(edited: Project, tmp_path: Path):
    survive_write_points(edited, ["snapshot"], tmp_path)


def test_snapshot_killed_at_random_moments(edited: Project, tmp_path: Path):
    survive_random_kills(edited, ["snapshot"], tmp_path)


# -- two processes at once ---------------------------------------------------------------------


def run_together(project: Project, *commands: list[str]) -> list[tuple[int, str, str]]:
    """Start every command at once; (exit code, stdout, stderr) of each."""
    procs = [project.popen(*args) for args in commands]
    return [(p.wait(timeout=120), *p.communicate()) for p in procs]


def assert_consistent(versions: Versions) -> None:
    """No number given twice, none skipped, no fingerprint under two numbers."""
    for stage, found in versions.items():
        assert [n for n, _ in found] == list(range(1, len(found) + 1)), stage
        assert len({fp for _, fp in found}) == len(found), stage


def fingerprints(versions: Versions) -> dict[str, set[str]]:
    return {stage: {fp for _, fp in found} for stage, found in versions.items()}


@pytest.mark.parametrize("attempt", range(3))
def test_two_index_processes_at_once(history: Project, tmp_path: Path, attempt: int):
    expected = undisturbed(history, tmp_path / "clean", ["index"])
    project = history.copy(tmp_path / "together")
    for code, out, err in run_together(project, ["index"], ["index"]):
        ok_output(code, out, err)
    check_survived(project, ["index"], expected)
    record("modver index x2", f"attempt {attempt}", survived=1, tried=1)


@pytest.mark.parametrize("stages", [["s0"], ["s1"]], ids=["different stages", "same code"])
def test_two_snapshots_at_once(edited: Project, tmp_path: Path, stages: list[str]):
    other = ["s1"] if stages == ["s0"] else stages  # two stages, or twice the same code
    expected = undisturbed(edited, tmp_path / "clean", ["snapshot", *stages], ["snapshot", *other])
    project = edited.copy(tmp_path / "together")
    for code, out, err in run_together(project, ["snapshot", *stages], ["snapshot", *other]):
        ok_output(code, out, err)
    versions = project.versions()
    assert_consistent(versions)
    assert versions == expected
    check_survived(project, ["snapshot"], None)
    record("modver snapshot x2", "-".join(stages + other), survived=1, tried=1)


def test_index_and_snapshot_at_once(history: Project, tmp_path: Path):
    base = history.copy(tmp_path / "base")
    path = base.root / "pipe" / "s0.py"
    path.write_text(path.read_text().replace("return x +", "return 3 * x +"))  # a working-tree version
    expected = undisturbed(base, tmp_path / "clean", ["index"], ["snapshot"])
    project = base.copy(tmp_path / "together")
    for code, out, err in run_together(project, ["index"], ["snapshot"]):
        ok_output(code, out, err)
    versions = project.versions()
    assert_consistent(versions)
    assert fingerprints(versions) == fingerprints(expected)  # numbering follows who came first
    check_survived(project, ["index"], versions)
    record("modver index + snapshot", "at once", survived=1, tried=1)


def test_one_of_two_index_processes_killed_at_a_random_moment(history: Project, tmp_path: Path):
    expected = undisturbed(history, tmp_path / "clean", ["index"])
    duration = timed(history.copy(tmp_path / "timed"), ["index"])
    rng = random.Random(SEED)
    killed = 0
    for k in range(3):
        project = history.copy(tmp_path / f"pair-{k}")
        survivor = project.popen("index")
        killed += kill_after(project, ["index"], rng.uniform(0, duration)) == -signal.SIGKILL
        ok_output(survivor.wait(timeout=120), *survivor.communicate())
        check_survived(project, ["index"], expected)
    record("modver index x2, one killed", "random moments", survived=3, tried=3, killed_before_the_end=killed)


def ok_output(code: int, out: str, err: str) -> None:
    ok(subprocess.CompletedProcess([], code, out, err), "a concurrent modver")
