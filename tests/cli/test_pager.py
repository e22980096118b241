"""A long listing on a terminal goes through the pager, as git's does (PAGER, --no-pager)."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
from pathlib import Path


def on_a_terminal(root: Path, *args: str, env: dict[str, str]) -> str:
    """Run modver with stdin/stdout/stderr on a pseudo-terminal; what the terminal showed."""
    master, slave = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "modver", *args],
            cwd=root,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env={**os.environ, "TERM": "dumb", **env},
            timeout=120,
        )
    finally:
        os.close(slave)
    shown = b""
    while select.select([master], [], [], 0.2)[0]:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the terminal's other side is closed
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    assert done.returncode == 0, shown
    return shown.decode("utf-8", "replace")


def test_log_on_a_terminal_goes_through_the_pager(pipeline_project, tmp_path):
    p = pipeline_project
    subprocess.run([sys.executable, "-m", "modver", "index"], cwd=p.root, check=True, capture_output=True)
    paged = tmp_path / "paged.txt"
    shown = on_a_terminal(p.root, "log", env={"PAGER": f"cat > {paged}"})
    assert "prep@v1" in paged.read_text(encoding="utf-8") and "prep@v1" not in shown
    paged.unlink()
    shown = on_a_terminal(p.root, "--no-pager", "log", env={"PAGER": f"cat > {paged}"})
    assert not paged.exists() and "prep@v1" in shown
    shown = on_a_terminal(p.root, "log", env={"PAGER": ""})
    assert "prep@v1" in shown


def test_no_pager_is_accepted_after_the_paging_command_too(pipeline_project, tmp_path):
    p = pipeline_project
    subprocess.run([sys.executable, "-m", "modver", "index"], cwd=p.root, check=True, capture_output=True)
    paged = tmp_path / "paged.txt"
    shown = on_a_terminal(p.root, "log", "--no-pager", env={"PAGER": f"cat > {paged}"})
    assert not paged.exists() and "prep@v1" in shown
