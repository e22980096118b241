"""docs/results.md runs: its commands and Python examples succeed on the bundled example."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_results_doc_runs(tmp_path: Path):
    text = (ROOT / "docs" / "results.md").read_text(encoding="utf-8")
    project = tmp_path / "digits"
    shutil.copytree(ROOT / "examples" / "digits", project, ignore=shutil.ignore_patterns(".modver", "__pycache__"))
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ["PATH"], "NO_COLOR": "1", "COLUMNS": "80"}
    ran = 0
    for block in re.findall(r"```console\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            if not line.startswith("$ ") or "examples/digits" in line:
                continue
            done = subprocess.run(["bash", "-c", line[2:]], cwd=project, env=env, capture_output=True, text=True)
            assert done.returncode == 0, f"results.md command failed: {line}\n{done.stdout}\n{done.stderr}"
            if line.startswith("$ modver runs") and "--json" not in line:  # a table that fits 80 columns
                assert all(len(out) <= 80 for out in done.stdout.splitlines()), done.stdout
            ran += 1
    assert ran >= 12
    assert (project / "report.html").is_file() and (project / "best.html").is_file()
    for block in re.findall(r"```python\n(.*?)```", text, flags=re.S):
        done = subprocess.run([sys.executable, "-c", block], cwd=project, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"results.md: Python example failed:\n{block}\n{done.stderr}"
        assert "accuracy" in done.stdout
