"""docs/search.md runs: every `$ ` command of its console blocks and its Python block, in order,
on the pipeline it describes (tests/sweep/pipeline.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.sweep.pipeline import executions, write_sweep_project

DOC = Path(__file__).resolve().parents[2] / "docs" / "search.md"


@pytest.fixture
def sweep_project(git_project):
    return write_sweep_project(git_project)


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def _run(command: str, root: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["bash", "-c", command], cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"docs/search.md: {command}\n{done.stdout}\n{done.stderr}"
    assert "internal error" not in done.stderr
    return done


@pytest.mark.slow
def test_the_search_docs_run(sweep_project):
    root = sweep_project.root
    sweep_project.write("search.yaml", _blocks("yaml")[0])
    env = {**os.environ, "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"], "NO_COLOR": "1"}
    commands = [line[2:] for block in _blocks("console") for line in block.splitlines() if line.startswith("$ ")]
    assert len(commands) == 8
    first = _run(commands[0], root, env)
    assert "trial 5" in first.stdout and "best accuracy" in first.stdout
    counts = executions(root)  # what the docs say the six trials executed
    assert (counts["preprocess"], counts["augment"], counts["model"], counts["evaluate"]) == (1, 1, 6, 6)
    outputs = {command: _run(command, root, env).stdout for command in commands[1:]}
    listed = json.loads(outputs["modver sweeps --json"])[0]
    assert listed["best"]["params"].keys() == {"model.C"}
    best = outputs["modver sweep --best latest"].splitlines()
    assert best[0] == "--set augment.noise=0" and best[1] == f"--set model.C={listed['best']['params']['model.C']!r}"
    assert executions(root)["model"] == 8  # the run of the best trial came from the cache; --trials 8 ran 2 more
    plan = _run("modver sweep --file search.yaml --optimize accuracy --trials 3 --dry-run", root, env).stdout
    assert "augment.noise ~ choice(0,0.1)" in plan and "model.C ~ uniform(0.5,1.5)" in plan
    first, *others = _blocks("python")
    for block in others:  # a stage's code, shown: it compiles
        compile(block, "docs/search.md", "exec")
    for block in [first]:
        done = subprocess.run([sys.executable, "-c", block], cwd=root, env=env, capture_output=True, text=True,
                              timeout=300)  # fmt: skip
        assert done.returncode == 0, f"docs/search.md: Python example failed:\n{block}\n{done.stderr}"
        assert re.match(r"best accuracy \d\.\d+ at trial \d: model\.C=", done.stdout), done.stdout
