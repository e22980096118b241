"""docs/sweeps.md runs: every `$ ` command of its console blocks and its Python blocks, in order,
on the pipeline it describes (tests/sweep/pipeline.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.sweep.pipeline import executions, write_sweep_project

DOC = Path(__file__).resolve().parents[2] / "docs" / "sweeps.md"


@pytest.fixture
def sweep_project(git_project):
    return write_sweep_project(git_project)


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


@pytest.mark.slow
def test_the_sweep_docs_run(sweep_project):
    root = sweep_project.root
    sweep_project.write("sweep.yaml", _blocks("yaml")[1])  # the sweep file the docs show
    env = {**os.environ, "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"], "NO_COLOR": "1"}
    commands = [line[2:] for block in _blocks("console") for line in block.splitlines() if line.startswith("$ ")]
    assert len(commands) >= 6
    for command in commands:
        done = subprocess.run(["bash", "-c", command], cwd=root, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"docs/sweeps.md: {command}\n{done.stdout}\n{done.stderr}"
        assert "internal error" not in done.stderr
        if "--dry-run" in command:
            assert "15 stage executions, 9 shared, 0 cached" in done.stdout
    # the grid (15), its widening by C=4 (4 more), run --jobs with C=3: model and evaluate (augment
    # with the manifest's noise 0.0 is the sweep's 0, taken as 0.0: cached); the resume of a finished
    # sweep: nothing
    assert executions(root)["total"] == 15 + 4 + 2
    for block in _blocks("python"):
        done = subprocess.run([sys.executable, "-c", block], cwd=root, env=env, capture_output=True, text=True,
                              timeout=300)  # fmt: skip
        assert done.returncode == 0, f"docs/sweeps.md: Python example failed:\n{block}\n{done.stderr}"
    file_plan = subprocess.run(["modver", "sweep", "--file", "sweep.yaml", "--dry-run"], cwd=root, env=env,
                               capture_output=True, text=True)  # fmt: skip
    assert "6 points" in file_plan.stdout, file_plan.stderr
