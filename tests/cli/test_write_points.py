"""Where each command writes: modver's temporary files never land in the user's folders.

Every file-system write of a real `modver` process is traced (modver/_faults.py, audit hooks).
Outside `.modver/` and `.git/`, a command may only replace the one file it edits, by renaming
a finished temporary file onto it: a process killed at any point leaves nothing for
`git status` to show (a killed `pin` once left `.manifest.yaml.<random>.tmp` beside the manifest).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def traced(root: Path, *args: str, tmp_path: Path) -> list[tuple[str, list[str]]]:
    trace = tmp_path / f"trace-{len(list(tmp_path.glob('trace-*')))}.txt"
    env = {**os.environ, "MODVER_FAULT_TRACE": str(trace), "MODVER_FAULT_ROOT": str(root)}
    done = subprocess.run(
        [sys.executable, "-m", "modver", *args], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    lines = trace.read_text(encoding="utf-8").splitlines() if trace.exists() else []
    return [(line.split(" ")[1], line.split(" ")[2:]) for line in lines]


def outside_the_store(root: Path, events: list[tuple[str, list[str]]]) -> list[tuple[str, list[str]]]:
    """The events touching something other than .modver/ and .git/ (renames: by their source)."""
    inside = (str(root / ".modver") + os.sep, str(root / ".git") + os.sep)
    return [(event, paths) for event, paths in events if not (paths[0] + os.sep).startswith(inside)]


@pytest.mark.parametrize("command", [["pin", "prep@v1"], ["unpin", "prep"]])
def test_pin_and_unpin_write_only_in_the_store_then_rename_onto_the_manifest(pipeline_project, tmp_path, command):
    p = pipeline_project
    subprocess.run([sys.executable, "-m", "modver", "snapshot"], cwd=p.root, check=True, capture_output=True)
    if command[0] == "unpin":
        subprocess.run([sys.executable, "-m", "modver", "pin", "prep@v1"], cwd=p.root, check=True, capture_output=True)
    events = traced(p.root, *command, tmp_path=tmp_path)
    assert events, "the trace saw no write"
    manifest = str((p.root / "manifest.yaml").resolve())
    assert [(e, paths[1:]) for e, paths in outside_the_store(p.root, events)] == []
    renames = [paths for e, paths in events if e == "os.rename" and paths[-1] == manifest]
    assert len(renames) == 1 and renames[0][0].startswith(str(p.root / ".modver" / "tmp") + os.sep)


def test_init_writes_its_files_through_the_store(git_project, tmp_path):
    p = git_project
    p.write("README.md", "hello\n")
    events = traced(p.root, "init", tmp_path=tmp_path)
    targets = sorted(
        Path(paths[-1]).name
        for e, paths in events
        if e == "os.rename" and not paths[-1].startswith(str(p.root / ".modver"))
    )
    assert targets == [".gitignore", "manifest.yaml"]
    stray = [
        paths
        for e, paths in outside_the_store(p.root, events)
        if not (e == "os.rename" and paths[0].startswith(str(p.root / ".modver")))
        and not (e == "os.mkdir" and paths[0] == str(p.root))  # the project folder, which exists
    ]
    assert stray == []
