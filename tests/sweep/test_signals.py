"""Ctrl-C and SIGTERM stop a sweep cleanly (issue 15, item 14): the real CLI in a process group
of its own, signalled as a terminal does (SIGINT to the whole group) or as a batch system does
(SIGTERM). Nothing is printed but one line and the command that resumes the sweep; no process
the command started is left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modver.project import Project
from tests.helpers import cli
from tests.sweep._cluster import in_session
from tests.sweep.pipeline import executions, write_sweep_project

SLOW = ["sweep", "--set", "model.C=1,2,3", "--set", "model.sleep=30", "--jobs", "2"]


@pytest.fixture
def sweep_project(git_project):
    return write_sweep_project(git_project)


def _start(root: Path, *args: str) -> subprocess.Popen[str]:
    """``modver ARGS`` in a session (and process group) of its own, as a shell runs a command."""
    return subprocess.Popen([sys.executable, "-m", "modver", *args], cwd=root, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip


def _wait_for(ready, what: str, timeout: float = 120) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"waited {timeout} s for {what}"
        time.sleep(0.05)


def _ended(driver: subprocess.Popen[str]) -> tuple[str, str]:
    """The driver's output once it exited; then nothing it started is left in its session."""
    try:
        out, err = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    # the resource tracker leaves a moment after the driver: it reads the end of its pipe
    _wait_for(lambda: in_session(driver.pid) == [], "the session to empty", timeout=30)
    return out, err


def _sweep_id(root: Path) -> str:
    with Project(root) as project:
        return project.sweep_record("latest").sweep


def _says_only_how_to_resume(err: str, sweep: str) -> None:
    assert err.splitlines() == [
        f"Error: interrupted: sweep {sweep} stopped",
        f"resume it with `modver sweep --resume {sweep}`",
    ], err


def test_ctrl_c_at_a_terminal_stops_every_process_and_says_how_to_resume(sweep_project):
    root = sweep_project.root
    for attempt in range(2):  # the workers' tracebacks came in 3 of 4 tries before the fix
        before = executions(root)["model"]
        driver = _start(root, *SLOW)
        _wait_for(lambda: executions(root)["model"] >= before + 2, "two model stages to run")  # noqa: B023
        os.killpg(driver.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground group
        _, err = _ended(driver)
        assert driver.returncode == 130, err
        sweep = _sweep_id(root)
        _says_only_how_to_resume(err, sweep)
        with Project(root) as project:
            record = project.sweep_record(sweep)
        assert record.status == "interrupted", attempt
        assert {p.status for p in record.points} == {"interrupted"}


def test_ctrl_c_while_the_cluster_starts(sweep_project):
    root = sweep_project.root
    driver = _start(root, *SLOW)
    # the sweep is recorded, then the cluster starts: its worker processes appear in the session
    _wait_for(lambda: any("spawn_main" in cmd for _, cmd in in_session(driver.pid)), "a worker process")
    os.killpg(driver.pid, signal.SIGINT)
    _, err = _ended(driver)
    assert driver.returncode == 130, err
    assert "Exception ignored" not in err and "Traceback" not in err, err
    _says_only_how_to_resume(err, _sweep_id(root))


@pytest.mark.parametrize("group", [False, True], ids=["driver", "group"])
def test_sigterm_stops_the_sweep_as_ctrl_c_does(sweep_project, group):
    root = sweep_project.root
    driver = _start(root, *SLOW)
    _wait_for(lambda: executions(root)["model"] >= 2, "two model stages to run")
    (os.killpg if group else os.kill)(driver.pid, signal.SIGTERM)
    _, err = _ended(driver)
    assert driver.returncode == 143, err
    sweep = _sweep_id(root)
    _says_only_how_to_resume(err, sweep)  # no resource_tracker warning either
    listed = json.loads(cli(root, "sweeps", "--json").stdout)
    assert listed[0]["status"] == "interrupted" and {p["status"] for p in listed[0]["points"]} == {"interrupted"}
