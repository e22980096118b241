"""Resuming a sweep, and what a dead driver leaves (issue 15, items 16 and 19), through the real
CLI: a dry run of a resume runs nothing, contradicting options are refused, one sweep runs in
one driver at a time, a died sweep shows nothing running, and gc keeps no sweep record whose
runs it removed."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modver.project import Project
from tests.helpers import cli, mv
from tests.sweep.pipeline import executions, write_sweep_project


@pytest.fixture
def sweep_project(git_project):
    return write_sweep_project(git_project)


def _runs(root: Path) -> list[str]:
    folder = root / ".modver" / "runs"
    return (
        sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")) if folder.exists() else []
    )


def _wait_for(ready, what: str, timeout: float = 120) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"waited {timeout} s for {what}"
        time.sleep(0.05)


def _point_statuses(root: Path) -> set[str]:
    return {p["status"] for s in json.loads(cli(root, "sweeps", "--json").stdout) for p in s["points"]}


def _failed_sweep(root: Path) -> str:
    """A 3-point sweep whose points all failed (C < 0); its id."""
    done = cli(root, "sweep", "--set", "model.C=-1,-2,-3", "--jobs", "2", "--json", code=1)
    record = json.loads(done.stdout)
    assert [p["status"] for p in record["points"]] == ["failed"] * 3
    return str(record["sweep"])


def test_a_dry_run_of_a_resume_runs_and_records_nothing(sweep_project):
    root = sweep_project.root
    sweep = _failed_sweep(root)
    before, runs, stored = executions(root), _runs(root), (root / ".modver" / "sweeps" / f"{sweep}.json").read_text()
    plan = json.loads(cli(root, "sweep", "--resume", sweep, "--dry-run", "--json").stdout)
    assert [p["index"] for p in plan["points"]] == [0, 1, 2]  # the points a resume would run
    assert [p["stages"]["model"]["status"] for p in plan["points"]] == ["runs"] * 3
    text = cli(root, "sweep", "--resume", sweep, "--dry-run").stdout
    assert "3 points" in text
    assert executions(root) == before and _runs(root) == runs  # nothing executed, no run recorded
    assert (root / ".modver" / "sweeps" / f"{sweep}.json").read_text() == stored


def test_options_that_contradict_each_other_are_refused(sweep_project):
    root = sweep_project.root
    sweep = _failed_sweep(root)
    runs = _runs(root)
    cases = [
        (["--resume", sweep, "--set", "model.C=1,2"], "it takes no --set"),
        (["manifest.yaml", "--resume", sweep], "it takes no MANIFEST"),
        (["--resume", sweep, "--zip"], "it takes no --zip"),
        (["--set", "model.C=1,2", "--dry-run", "--detach"], "--dry-run runs nothing, so it cannot --detach"),
    ]
    for args, message in cases:
        done = mv(root, "sweep", *args, "--jobs", "1", code=1)
        assert message in done.stderr, (args, done.stderr)
    assert _runs(root) == runs  # the --set was not silently dropped and the sweep run


def test_two_resumes_of_one_sweep_run_its_points_once(sweep_project):
    root = sweep_project.root
    stages = sweep_project.read("pipe/stages.py")
    sweep_project.write(
        "pipe/stages.py",
        stages.replace(
            "    if C < 0:\n",
            "    here = os.path.dirname(CALLS)\n"
            "    if os.path.exists(os.path.join(here, 'fail.flag')):\n"
            "        raise RuntimeError('told to fail')\n"
            "    deadline = time.time() + 120\n"
            "    while os.path.exists(os.path.join(here, 'gate.flag')) and time.time() < deadline:\n"
            "        time.sleep(0.05)  # held until the test opens the gate\n"
            "    if C < 0:\n",
        ),
    )
    sweep_project.commit("model reads flags")
    (root / "fail.flag").write_text("")
    first = json.loads(cli(root, "sweep", "--set", "model.C=1,2,3,4", "--jobs", "2", "--json", code=1).stdout)
    assert [p["status"] for p in first["points"]] == ["failed"] * 4
    (root / "fail.flag").unlink()
    (root / "gate.flag").write_text("")
    models = executions(root)["model"]
    one = subprocess.Popen([sys.executable, "-m", "modver", "sweep", "--resume", first["sweep"], "--jobs", "2"],
                           cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        _wait_for(lambda: executions(root)["model"] > models, "the first resume to run a point")
        other = cli(root, "sweep", "--resume", first["sweep"], "--jobs", "2", code=1)  # while the first holds it
        assert f"sweep {first['sweep']} is running already" in other.stderr
        (root / "gate.flag").unlink()
        _, err = one.communicate(timeout=300)
    finally:
        if one.poll() is None:
            one.kill()
    assert one.returncode == 0, err
    with Project(root) as project:
        record = project.sweep_record(first["sweep"])
        runs = project.runs(sweep=first["sweep"])
    assert record.status == "succeeded"
    assert len(runs) == 4 + 4  # the failed points' runs, and one new run per point (not two)
    assert executions(root)["model"] == models + 4


def test_a_killed_driver_leaves_a_died_sweep_nothing_running_and_no_leftover(sweep_project):
    root = sweep_project.root
    driver = subprocess.Popen([sys.executable, "-m", "modver", "sweep", "--set", "model.C=1,2,3",
                               "--set", "model.sleep=30", "--jobs", "2"], cwd=root,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    try:
        _wait_for(lambda: executions(root)["model"] >= 2, "two model stages to run")
        _wait_for(lambda: "running" in _point_statuses(root), "the sweep record to show a running point")
        os.killpg(driver.pid, signal.SIGKILL)  # the driver, its workers: all gone at once
        driver.wait(timeout=60)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    listed = json.loads(cli(root, "sweeps", "--json").stdout)
    assert listed[0]["status"] == "died"
    assert not any(p["status"] == "running" for p in listed[0]["points"])
    table = cli(root, "sweeps", env={"COLUMNS": "200"}).stdout.splitlines()
    assert table[0].split()[:8] == ["sweep", "status", "started", "points", "done", "running", "failed", "axes"]
    row = re.match(r"^\S+\s+died\s+\S+ \S+\s+3\s+(\d+)\s+(\d+)\s+(\d+)\s", table[1])
    assert row is not None and row.group(2) == "0", table  # its "running" column
    # the next sweep on this host removes the dead driver's folder under .modver/tmp
    assert [p.name for p in (root / ".modver" / "tmp").iterdir() if "cluster" in p.name]
    cli(root, "sweep", "--set", "model.C=5,6", "--jobs", "1")
    assert [p.name for p in (root / ".modver" / "tmp").iterdir() if "cluster" in p.name or "check" in p.name] == []


def test_gc_removes_a_sweep_record_with_its_runs_and_a_resume_reruns_a_point_whose_run_is_gone(sweep_project):
    root = sweep_project.root
    gone = json.loads(cli(root, "sweep", "--set", "model.C=1,2", "--jobs", "2", "--json").stdout)
    kept = json.loads(cli(root, "sweep", "--set", "model.C=3,4", "--jobs", "2", "--json").stdout)
    # the newest run kept: the first sweep has no run left, the second one run of two
    removed = json.loads(cli(root, "gc", "--keep-last", "1", "--remove-records", "--json").stdout)["removed"]
    assert [r["detail"].split(":")[0] for r in removed if r["kind"] == "sweep"] == [
        f"sweep {gone['sweep']} (succeeded)"
    ]
    assert [s["sweep"] for s in json.loads(cli(root, "sweeps", "--json").stdout)] == [kept["sweep"]]
    assert "no sweep" in cli(root, "sweep", "--resume", gone["sweep"], code=1).stderr
    # the kept sweep's point whose run is gone is not "succeeded" any more: a resume runs it again
    runs = {p["run"] for p in kept["points"]}
    left = {r["run"] for r in json.loads(cli(root, "runs", "--json").stdout)}
    assert len(runs & left) == 1
    plan = json.loads(cli(root, "sweep", "--resume", kept["sweep"], "--dry-run", "--json").stdout)
    assert [p["index"] for p in plan["points"]] == [next(p["index"] for p in kept["points"] if p["run"] not in left)]
    resumed = json.loads(cli(root, "sweep", "--resume", kept["sweep"], "--jobs", "1", "--json").stdout)
    assert resumed["status"] == "succeeded"
    left = {r["run"] for r in json.loads(cli(root, "runs", "--json").stdout)}
    assert {p["run"] for p in resumed["points"]} <= left  # every point names a run that exists
