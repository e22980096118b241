"""A write of a search's study that the file system refuses (a full disk) is one clear error, and
the search resumes after it (SPEC "Bad input and faults"): the real CLI with modver's test-only
fault injection (modver/_faults.py), at write points under .modver/studies/."""

from __future__ import annotations

import json
import os

import pytest

from tests.helpers import cli
from tests.sweep.pipeline import write_sweep_project

SEARCH = ["sweep", "--optimize", "accuracy", "--trials", "2", "--set", "model.C=uniform(0.5,1.5)", "--seed", "1",
          "--jobs", "1", "--study", "s"]  # fmt: skip


def _points(tmp_path, git_project) -> list[str]:  # type: ignore[no-untyped-def]
    root = write_sweep_project(git_project).root
    trace = tmp_path / "trace"
    studies = root / ".modver" / "studies"
    cli(root, *SEARCH, env={"MODVER_FAULT_TRACE": str(trace), "MODVER_FAULT_ROOT": str(studies)})
    return trace.read_text().splitlines()


def test_every_kind_of_study_write_that_fails_is_one_clear_error_and_the_search_resumes(tmp_path, git_project):
    points = _points(tmp_path, git_project)
    assert len(points) >= 4, points  # the folder, the journal's lock and appends, the sampler's state
    chosen = sorted({1, 2, len(points) // 2, len(points)})
    for n in chosen:
        (tmp_path / f"p{n}").mkdir()
        project = write_sweep_project(type(git_project)(tmp_path / f"p{n}"))
        root = project.root
        studies = root / ".modver" / "studies"
        env = {"MODVER_FAULT_FAIL_AT": str(n), "MODVER_FAULT_ROOT": str(studies)}
        done = cli(root, *SEARCH, "--json", env=env, code=None)
        assert "Traceback" not in done.stderr and "internal error" not in done.stderr, (n, points[n - 1], done.stderr)
        if done.returncode == 0:
            continue  # a write whose failure the search survives (a lock retried)
        errors = [line for line in done.stderr.splitlines() if line.startswith("Error: ")]  # after progress lines
        assert done.returncode == 1 and len(errors) == 1, (n, points[n - 1], done.stderr)
        listed = json.loads(cli(root, "sweeps", "--json").stdout)
        if listed:  # it got past its start: it resumes to exactly 2 trials
            again = json.loads(cli(root, "sweep", "--resume", listed[0]["sweep"], "--jobs", "1", "--json").stdout)
            assert sum(p["status"] == "succeeded" for p in again["points"]) == 2, (n, again)


@pytest.fixture(autouse=True)
def _no_inherited_faults(monkeypatch):  # type: ignore[no-untyped-def]
    for key in list(os.environ):
        if key.startswith("MODVER_FAULT"):
            monkeypatch.delenv(key)
