"""docs/explain.md's worked example runs: each command succeeds, and the output it shows is the
output the command prints (run and blame ids masked, spaces collapsed)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import GitProject

ROOT = Path(__file__).resolve().parents[2]
ID = re.compile(r"\b\d{8}-\d{6}-\d{6}-[0-9a-f]{6}-[0-9a-f]{6}\b")


def _shown(text: str) -> list[str]:
    """Lines as compared: ids as <id>, runs of spaces as one, blank lines dropped."""
    return [" ".join(ID.sub("<id>", line).split()) for line in text.splitlines() if line.strip()]


def worked_example() -> list[tuple[str, list[str]]]:
    """(command, the output the doc shows for it) of the worked example, in order."""
    text = (ROOT / "docs" / "explain.md").read_text(encoding="utf-8")
    section = text.split("## A worked example", 1)[1].split("\n## ", 1)[0]
    steps: list[tuple[str, list[str]]] = []
    for block in re.findall(r"```console\n(.*?)```", section, flags=re.S):
        for line in block.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            elif steps:
                steps[-1][1].append(line)
    return steps


@pytest.mark.slow
def test_the_worked_example_runs_and_prints_what_it_shows(tmp_path):
    pytest.importorskip("sklearn")
    project = tmp_path / "digits"
    shutil.copytree(ROOT / "examples" / "digits", project, ignore=shutil.ignore_patterns(".modver", "__pycache__"))
    GitProject(project).commit("example")
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ["PATH"], "NO_COLOR": "1", "COLUMNS": "120"}
    steps = worked_example()
    assert len(steps) >= 8 and any(c.startswith("modver blame") for c, _ in steps)
    for command, expected in steps:
        done = subprocess.run(["bash", "-c", command], cwd=project, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"docs/explain.md: {command}\n{done.stdout}\n{done.stderr}"
        if expected:
            assert _shown(done.stdout) == _shown("\n".join(expected)), f"docs/explain.md: {command}\n{done.stdout}"
    text = (ROOT / "docs" / "explain.md").read_text(encoding="utf-8").split("## A worked example", 1)[1]
    (block,) = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    done = subprocess.run([sys.executable, "-c", block], cwd=project, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == "0" and "model v1->v4" in done.stdout  # the same pair again: nothing executed
