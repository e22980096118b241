"""Every command's failure path: one `Error:` line and a hint on stderr, exit 1, no traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

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
    "checkout": ["latest"],  # issue 16
    "blame": ["accuracy", "nope-a", "nope-b"],  # issue 18
    "bisect": ["accuracy", "--good", "nope-a", "--bad", "nope-b"],  # issue 18
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


def test_a_write_the_file_system_refuses_is_one_error_even_where_no_code_names_it(git_project, tmp_path):
    """The error funnel's last resort (issue 15, item 6): `init` writes the project's .gitignore
    through a temporary file of the store, and no code of its own names that write; when it fails
    (here: a read-only file system, through the fault switch of modver/_faults.py) it is still one
    clear error with a hint, never "internal error: OSError"."""
    trace = tmp_path / "trace"
    env = {**os.environ, "MODVER_FAULT_TRACE": str(trace), "MODVER_FAULT_ROOT": str(git_project.root)}
    copy = tmp_path / "copy"
    shutil.copytree(git_project.root, copy)
    done = subprocess.run([sys.executable, "-m", "modver", "init"], cwd=copy, env={**env, "MODVER_FAULT_ROOT": str(copy)},
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    points = trace.read_text().splitlines()
    n = next(int(p.split()[0]) for p in points if p.split()[1] == "open" and "/.modver/tmp/" in p)
    env = {**env, "MODVER_FAULT_FAIL_AT": str(n), "MODVER_FAULT_ERRNO": "EROFS"}
    done = subprocess.run([sys.executable, "-m", "modver", "init"], cwd=git_project.root, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 1, done.stderr
    lines = done.stderr.splitlines()
    assert lines[0].startswith("Error: modver could not write a file: read-only file system writing "), lines
    assert "/.modver/tmp/" in lines[0] and "make the file system writable" in lines[1] and len(lines) == 2, lines
    assert (
        not (git_project.root / ".gitignore").exists() or ".modver" not in (git_project.root / ".gitignore").read_text()
    )
