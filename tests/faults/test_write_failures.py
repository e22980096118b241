"""Make one write of ``modver index`` / ``snapshot`` / ``tag`` fail (a full disk, an I/O error, a
read-only file system) at each of its write points in the git repository: one clear error, no ref
names a missing object, nothing recorded is lost, and the same command afterwards finishes the work.

The fail switch is :mod:`modver._faults`' ``MODVER_FAULT_FAIL_AT=N`` / ``MODVER_FAULT_ERRNO``: the
Nth write point raises ``OSError(errno)`` as the system call would. Counts go to
``$MODVER_FAULT_REPORT`` (see harness.py).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.faults.harness import (
    Project,
    Versions,
    build_history_project,
    choose,
    leftovers,
    ok,
    record,
    undisturbed,
    write_points,
)

pytestmark = pytest.mark.slow

ERRNOS = ("ENOSPC", "EIO", "EROFS", "EDQUOT")
MESSAGES = {
    "ENOSPC": "no space left on device",
    "EIO": "I/O error",
    "EROFS": "read-only file system",
    "EDQUOT": "disk quota exceeded",
}


def git_points(base: Project, args: list[str], dest: Path) -> list[str]:
    """The write points of ``modver ARGS`` inside the git directory (numbered as the fail switch counts them)."""
    points = write_points(base, args, dest, root=".git")
    assert points, f"modver {' '.join(args)} writes nothing in .git"
    return points


def fail_at(project: Project, args: list[str], n: int, name: str) -> subprocess.CompletedProcess[str]:
    env = {"MODVER_FAULT_FAIL_AT": str(n), "MODVER_FAULT_ERRNO": name, "MODVER_FAULT_ROOT": str(project.root / ".git")}
    return project.modver(*args, env=env)


def check_failed_cleanly(
    project: Project, args: list[str], n: int, name: str, done: subprocess.CompletedProcess[str], expected: Versions
) -> bool:
    """What must hold after the nth write of ``modver ARGS`` failed with ``name``; whether it failed
    (a command may also get past a write it can do without)."""
    what = f"modver {' '.join(args)} with write {n} failing ({name})"
    assert "internal error" not in done.stderr and "Traceback" not in done.stderr, f"{what}: {done.stderr}"
    if done.returncode == 1:
        errors_printed = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
        assert len(errors_printed) == 1, f"{what}: one clear error expected: {done.stderr}"
        assert MESSAGES[name] in done.stderr, f"{what}: {done.stderr}"
    else:
        assert done.returncode == 0, f"{what}: {done.returncode} {done.stderr}"
    fsck = project.git("fsck", "--full")
    assert fsck.returncode == 0 and "error" not in fsck.stderr and "invalid" not in fsck.stderr, (
        f"{what}: {fsck.stderr}"
    )
    ok(project.modver("log", "--json"), f"modver log after {what}")  # no ref names a missing object
    left = leftovers(project)
    assert not left["modver temporaries"] or left["modver temporaries"] == ["modver/owner"], f"{what}: {left}"
    ok(project.modver(*args), f"the same command after {what}")  # it finishes the work
    assert not any(leftovers(project)[k] for k in ("locks", "modver temporaries")), what
    assert project.versions() == expected, what
    return done.returncode == 1


def fail_every_point(base: Project, args: list[str], tmp_path: Path, limit: int = 40) -> None:
    expected = undisturbed(base, tmp_path / "clean", args)
    points = git_points(base, args, tmp_path / "traced")
    chosen = choose(points, limit)
    done_anyway = []
    for i, n in enumerate(chosen):
        name = ERRNOS[i % len(ERRNOS)]
        project = base.copy(tmp_path / f"fail-{n}")
        done = fail_at(project, args, n, name)
        if not check_failed_cleanly(project, args, n, name, done, expected):
            # a command may go on only past a write it can do without: making a folder that was
            # already there (``mkdir(exist_ok=True)``), opening a folder to sync it
            event, path = points[n - 1].split()[1:3]
            assert event in ("os.mkdir", "open"), points[n - 1]
            assert (project.root / Path(path).relative_to(tmp_path / "traced")).is_dir(), points[n - 1]
            done_anyway.append(points[n - 1])
        shutil.rmtree(project.root)
    record(
        f"modver {' '.join(args)}", "failed writes", survived=len(chosen), tried=len(chosen), points=len(points),
        without_error=len(done_anyway),
    )  # fmt: skip
    assert len(done_anyway) < len(chosen) / 2


def test_a_failed_write_of_index_moves_no_ref(tmp_path: Path):
    """The issue's case: the pack of ``modver index`` cannot be written; the refs stay where they were."""
    base = build_history_project(tmp_path / "history", commits=9, stages=3)
    points = git_points(base, ["index"], tmp_path / "traced")
    pack = next(i for i, p in enumerate(points, 1) if "tmp_pack_modver_" in p)
    project = base.copy(tmp_path / "full")
    done = fail_at(project, ["index"], pack, "ENOSPC")
    assert done.returncode == 1, done.stderr
    assert "cannot write a pack to the git object database: no space left on device writing " in done.stderr
    assert "free some space" in done.stderr and "Traceback" not in done.stderr
    assert project.git("for-each-ref", "refs/modver").stdout == ""  # no ref names the pack that never came
    assert "No versions registered yet" in project.modver("log").stdout
    ok(project.modver("index"), "index once there is space again")
    assert len(project.versions()["s0"]) == 3


def test_index_survives_a_failed_write_at_every_point(tmp_path: Path):
    fail_every_point(build_history_project(tmp_path / "history", commits=9, stages=3), ["index"], tmp_path)


def test_snapshot_survives_a_failed_write_at_every_point(tmp_path: Path):
    base = build_history_project(tmp_path / "history", commits=3, stages=2)
    ok(base.modver("index"), "index")
    for i in range(2):
        path = base.root / "pipe" / f"s{i}.py"
        path.write_text(path.read_text().replace("return x +", "return 3 * x +"))
    fail_every_point(base, ["snapshot"], tmp_path)
