"""Docs that run: the CLI reference matches --help, and the tutorial's commands succeed."""

from __future__ import annotations

import difflib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
sys.path.insert(0, str(DOCS))

import gen_cli  # noqa: E402


def test_cli_reference_matches_help():
    expected = gen_cli.render()
    actual = (DOCS / "cli.md").read_text(encoding="utf-8")
    if actual != expected:
        diff = "".join(
            difflib.unified_diff(actual.splitlines(True), expected.splitlines(True), "docs/cli.md", "--help")
        )
        pytest.fail(f"docs/cli.md is out of date; regenerate with `python docs/gen_cli.py`\n{diff}")


def test_every_command_has_help_and_a_row_in_the_reference():
    intro = (DOCS / "cli_intro.md").read_text(encoding="utf-8")
    for name in gen_cli.commands():
        text = gen_cli.help_text([name])
        summary = text.split("\n\n")[1].strip()
        assert summary, f"`modver {name}` has no help text"
        assert f"| `modver {name}` |" in intro, f"`modver {name}` is missing from docs/cli_intro.md"


def test_every_doc_is_linked_from_the_readme_and_every_link_exists():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for doc in DOCS.glob("*.md"):
        if doc.name not in {"cli_intro.md"}:
            assert f"docs/{doc.name}" in readme, f"README does not link docs/{doc.name}"
    for link in re.findall(r"\]\((docs/[^)]+)\)", readme):
        assert (ROOT / link).exists(), f"README links {link}, which does not exist"
    for doc in DOCS.glob("*.md"):
        for link in re.findall(r"\]\(([\w-]+\.md)\)", doc.read_text(encoding="utf-8")):
            assert (DOCS / link).exists(), f"{doc.name} links {link}, which does not exist"


def _blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


@pytest.mark.slow
def test_tutorial_runs(tmp_path):
    text = (DOCS / "tutorial.md").read_text(encoding="utf-8")
    project = tmp_path / "digits"
    shutil.copytree(ROOT / "examples" / "digits", project, ignore=shutil.ignore_patterns(".modver", "__pycache__"))
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ["PATH"], "NO_COLOR": "1"}
    ran = 0
    for block in _blocks(text, "console"):
        for line in block.splitlines():
            if not line.startswith("$ ") or "examples/digits" in line:
                continue
            command = line[2:]
            done = subprocess.run(["bash", "-c", command], cwd=project, env=env, capture_output=True, text=True)
            assert done.returncode == 0, f"tutorial command failed: {command}\n{done.stdout}\n{done.stderr}"
            ran += 1
    assert ran >= 20
    api = (DOCS / "python-api.md").read_text(encoding="utf-8")
    for doc, block in [("tutorial.md", b) for b in _blocks(text, "python")] + [
        ("python-api.md", b) for b in _blocks(api, "python")
    ]:
        done = subprocess.run([sys.executable, "-c", block], cwd=project, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"{doc}: Python example failed:\n{block}\n{done.stderr}"
        assert "SVC" in done.stdout
