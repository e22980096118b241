"""docs/scripts.md runs: its files are written, its commands run in order through the real CLI,
and what it shows them printing is what they print (run ids and timings aside)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "scripts.md"


def _steps(text: str) -> tuple[dict[str, str], list[tuple[str, list[str]]]]:
    files = dict((path, body) for _lang, path, body in re.findall(r"```(\w+) file=(\S+)\n(.*?)```", text, flags=re.S))
    commands: list[tuple[str, list[str]]] = []
    for block in re.findall(r"```console\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            if line.startswith("$ "):
                commands.append((line[2:], []))
            elif commands and line.strip():
                commands[-1][1].append(line.strip())
    return files, commands


def test_scripts_doc_runs(tmp_path):
    files, commands = _steps(DOC.read_text(encoding="utf-8"))
    assert "manifest.yaml" in files and len(commands) >= 10
    for path, body in files.items():
        target = tmp_path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(body)
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ["PATH"], "NO_COLOR": "1", "COLUMNS": "200"}
    for command, expected in commands:
        done = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True)
        fails = any(line.startswith("Error:") for line in expected)
        assert (done.returncode != 0) == fails, f"{command}\n{done.stdout}\n{done.stderr}"
        printed = [line.strip() for line in (done.stdout + done.stderr).splitlines()]
        for line in expected:
            if line.startswith("run "):
                continue  # run ids and timings differ
            assert any(p.startswith(line) for p in printed), f"{command}: no line starts with {line!r}:\n{printed}"
