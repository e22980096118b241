"""docs/diff.md runs: its two versions of train.py are committed and its commands print what it shows."""

from __future__ import annotations

import re
from pathlib import Path

from tests.helpers import GitProject, mv

DOC = Path(__file__).resolve().parents[2] / "docs" / "diff.md"


def test_the_diff_page_examples_print_what_the_page_shows(tmp_path: Path):
    text = DOC.read_text(encoding="utf-8")
    v1, v2 = re.findall(r"```python\n(.*?)```", text, flags=re.S)[:2]
    project = GitProject(tmp_path)
    project.write("manifest.yaml", "stages:\n  train:\n    entry: train.py\n")
    project.write("train.py", v1)
    project.commit("v1")
    project.write("train.py", v2)
    project.commit("clip")
    mv(tmp_path, "index")
    checked = 0
    for block in re.findall(r"```console\n(.*?)```", text, flags=re.S):
        command, _, shown = block.partition("\n")
        assert command.startswith("$ modver ")
        out = mv(tmp_path, *command[len("$ modver ") :].split()).stdout
        got = "\n".join(line.rstrip() for line in out.splitlines())
        assert shown.rstrip("\n") in got, f"{command} printed:\n{out}"
        checked += 1
    assert checked == 2
