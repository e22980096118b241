"""Every command's failure path: one `Error:` line and a hint on stderr, exit 1, no traceback."""

from __future__ import annotations

import pytest
from typer.main import get_command

from modver.cli import app
from tests.helpers import cli

# command -> arguments that fail for a user reason in a folder that is no git repository
FAILING = {
    "init": ["manifest.yaml/sub"],  # a path below a file
    "index": [],
    "snapshot": [],
    "log": [],
    "status": [],
    "show": ["prep@v1"],
    "pin": ["prep@v1"],
    "unpin": ["prep"],
    "tag": ["prep@v1", "best"],
    "verify": [],
    "diff": [],
    "run": [],
    "reproduce": ["latest"],
    "runs": [],
    "report": [],
    "gc": [],
    "push": [],  # issue 10
    "pull": [],
    "demo": ["--keep", "manifest.yaml"],  # a file, not an empty folder
    "sweep": ["--set", "prep.scale=1,2"],  # issue 9
    "sweeps": [],
}


def test_every_command_is_covered():
    assert set(FAILING) == set(get_command(app).commands)  # type: ignore[attr-defined]


@pytest.mark.parametrize("command", sorted(FAILING))
def test_a_failing_command_prints_one_error_line(tmp_path, command):
    (tmp_path / "manifest.yaml").write_text("stages: {}\n")
    done = cli(tmp_path, command, *FAILING[command], code=1)
    lines = done.stderr.splitlines()
    assert len([line for line in lines if line.startswith("Error:")]) == 1, done.stderr
    assert lines[0].startswith("Error:") and len(lines) == 2, done.stderr  # the error, then its hint
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr
