"""docs/sharing.md runs: its console blocks, one shell session, against a real bare remote.

Every ``$ `` line runs in order (``cd`` carries over); it must exit 0, or 1 where the doc shows
an ``Error:`` line after it. Every output line the doc shows must be in what the command printed
(``…`` stands for what varies: the parts around it must appear in order).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.test_sharing import MANIFEST, model_code
from tests.helpers import GitProject

DOC = Path(__file__).resolve().parent.parent / "docs" / "sharing.md"
MARK = "@@modver-doc-rc="


def steps() -> list[tuple[str, list[str]]]:
    """(command, the output lines the doc shows after it), in order."""
    found: list[tuple[str, list[str]]] = []
    for block in re.findall(r"```console\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S):
        for line in block.splitlines():
            if line.startswith("$ "):
                found.append((line[2:], []))
            elif line.strip():
                found[-1][1].append(line.strip())
    return found


def _shown(line: str, output: str) -> bool:
    at = 0
    for part in line.split("…"):
        at = output.find(part, at)
        if at < 0:
            return False
        at += len(part)
    return True


@pytest.mark.slow
def test_sharing_doc_runs(tmp_path):
    seed = tmp_path / "seed"
    seed.mkdir()
    project = GitProject(seed)
    project.write("manifest.yaml", MANIFEST)
    project.write("pipe/__init__.py", "")
    project.write("pipe/model.py", model_code("C"))
    project.write(".gitignore", ".modver/\n")
    project.commit("the model")
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", "remote.git"], cwd=tmp_path, check=True)
    project.git("push", "-q", str(tmp_path / "remote.git"), "main")
    subprocess.run(["git", "clone", "-q", "remote.git", "alice"], cwd=tmp_path, check=True)
    (tmp_path / "shared").mkdir()
    env = {**os.environ, "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"]}
    subprocess.run([sys.executable, "-m", "modver", "index"], cwd=tmp_path / "alice", env=env, check=True,
                   capture_output=True)  # fmt: skip

    commands = steps()
    assert len(commands) >= 15
    script = "".join(f"{{ {cmd} ; }} 2>&1; echo {MARK}$?\n" for cmd, _ in commands)
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    chunks = re.split(rf"{re.escape(MARK)}(\d+)\n", done.stdout)
    texts, codes = chunks[0::2], [int(c) for c in chunks[1::2]]
    assert len(codes) == len(commands), done.stdout + done.stderr
    for (cmd, shown), text, code in zip(commands, texts, codes):
        expected = 1 if any(line.startswith("Error:") for line in shown) else 0
        assert code == expected, f"`{cmd}` exited {code}:\n{text}"
        for line in shown:
            assert _shown(line, text), f"`{cmd}` did not print {line!r}; it printed:\n{text}"
