"""The test suite's own set-up: the README's test command is the one .ci/run runs first, on every
core, without the slow set; .ci/run then runs the slow set in full."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _readme_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)```", readme, re.S)
    assert block, "README.md starts with a ```bash block of the two set-up commands"
    return block.group(1).strip().splitlines()


def test_the_readme_test_command_is_one_line_on_every_core_without_the_slow_set():
    commands = _readme_commands()
    assert len(commands) == 2
    assert commands[1].endswith('.venv/bin/python -m pytest -n auto -m "not slow"')


def test_ci_runs_the_readme_test_command_then_the_slow_set():
    lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    first = lines.index(_readme_commands()[1])
    assert lines[first + 1] == ".venv/bin/python -m pytest -n auto -m slow"


def test_the_test_extra_has_xdist_and_groups_stay_on_one_worker():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert any(d.startswith("pytest-xdist") for d in project["project"]["optional-dependencies"]["test"])
    assert "--dist loadgroup" in project["tool"]["pytest"]["ini_options"]["addopts"]


def test_make_project_and_run_cli_in_process_or_in_a_real_one(make_project):
    from tests.helpers import PIPELINE, run_cli

    p = make_project(PIPELINE)
    assert p.git("status", "--porcelain") == "" and p.read("pipe/train.py") == PIPELINE["pipe/train.py"]
    here = run_cli(p.root, "status", "--json")
    there = run_cli(p.root, "status", "--json", process=True)
    assert here.stdout == there.stdout and here.code == there.returncode == 0
    missing = run_cli(p.root, "show", "nope@v9", code=1)
    assert missing.stderr.startswith("Error: ") and missing.exit_code == 1
    other = make_project({"manifest.yaml": "stages: {}\n"}, name="other")
    assert other.root != p.root and other.root.parent == p.root.parent
