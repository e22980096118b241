"""``modver gc`` removes the workspaces (``.modver/work/``) that killed runs left behind, never
the workspace of a live run or of a script that a kill orphaned and that still runs."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import mv_json

SCRIPT = """\
import os, signal, sys
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
signal.pause()
"""


def _until(predicate, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _free(lock: Path) -> bool:
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def _workspaces(gc: dict) -> list[str]:
    return [item["path"] for item in gc["removed"] if item["kind"] == "workspace"]


@pytest.mark.slow  # kills a run and its script
def test_gc_removes_the_workspace_of_a_killed_run_only(git_project, tmp_path):
    p = git_project
    marker = tmp_path / "pid"
    p.write("slow.py", SCRIPT)
    p.write("manifest.yaml", f"stages:\n  slow:\n    entry: slow.py\n    args: [{marker}]\n    outs: [out.txt]\n")
    p.commit("a stage that runs until it is killed")
    run = subprocess.Popen([sys.executable, "-m", "modver", "run"], cwd=p.root,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        _until(marker.exists, "the script to start")
        work = p.root / ".modver" / "work"
        (workspace,) = [w for w in work.iterdir() if w.is_dir()]
        assert _workspaces(mv_json(p.root, "gc")) == [] and workspace.is_dir()  # a live run's
        run.send_signal(signal.SIGKILL)
        run.wait()
        assert _workspaces(mv_json(p.root, "gc")) == [] and workspace.is_dir()  # its orphaned script still runs
        os.kill(int(marker.read_text()), signal.SIGKILL)
        lock = work / f"{workspace.name}.lock"
        _until(lambda: _free(lock), "the killed script's lock to be released")
        dry = mv_json(p.root, "gc", "--dry-run")
        assert sorted(_workspaces(dry)) == sorted([str(workspace), str(lock)]) and workspace.is_dir()
        gone = mv_json(p.root, "gc")
        assert sorted(_workspaces(gone)) == sorted([str(workspace), str(lock)])
        assert list(work.iterdir()) == []
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        if marker.exists():
            try:
                os.kill(int(marker.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass
