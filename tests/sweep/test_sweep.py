"""`modver sweep` end to end: the real CLI, a real git project, a real Dask local cluster.

Commands that run stages go through the ``modver`` subprocess (:func:`cli`): a Dask worker
spawned by this process would inherit its ``sys.path``, which holds the stores of earlier tests.
"""

from __future__ import annotations

import json

import pytest

import modver
from modver.project import Project
from tests.helpers import cli, mv, mv_json
from tests.sweep.pipeline import executions, write_sweep_project

GRID = ("--set", "model.C=0.5,1,2", "--set", "augment.noise=0,0.1")


@pytest.fixture
def sweep_project(git_project):
    return write_sweep_project(git_project)


def _sweep_json(root, *args, code=0):
    done = cli(root, "sweep", *args, "--jobs", "2", "--json", code=code)
    return json.loads(done.stdout)


def test_dry_run_lists_every_point_and_executes_and_records_nothing(sweep_project):
    root = sweep_project.root
    out = mv(root, "sweep", *GRID, "--dry-run").stdout
    assert "6 points, 24 stages: 15 stage executions, 9 shared, 0 cached" in out
    assert "shared with point 1" in out  # augment(noise=0.1) is computed for point 1, shared by 3 and 5
    plan = mv_json(root, "sweep", *GRID, "--dry-run")
    assert plan["executions"] == 15
    assert [p["stages"]["preprocess"]["status"] for p in plan["points"]] == ["runs"] + ["shared"] * 5
    assert plan["points"][3]["stages"]["augment"] == {**plan["points"][3]["stages"]["augment"], "shared_with": 1}
    assert not (root / "calls.log").exists()
    assert not (root / ".modver" / "runs").exists() or not list((root / ".modver" / "runs").iterdir())
    assert not (root / ".modver" / "sweeps").exists()


def test_a_grid_runs_shared_stages_once_and_records_every_point(sweep_project):
    root = sweep_project.root
    record = _sweep_json(root, *GRID)
    assert record["status"] == "succeeded"
    assert executions(root) == {"preprocess": 1, "augment": 2, "model": 6, "evaluate": 6, "total": 15}
    assert [p["params"] for p in record["points"]][:2] == [{"model.C": 0.5, "augment.noise": 0},
                                                           {"model.C": 0.5, "augment.noise": 0.1}]  # fmt: skip
    assert record["tasks"]["executions"] == 15
    stored = json.loads((root / ".modver" / "sweeps" / f"{record['sweep']}.json").read_text())
    assert stored == record
    with Project(root) as p:
        runs = p.runs(sweep=record["sweep"])
    assert sorted(r.run for r in runs) == sorted(pt["run"] for pt in record["points"])
    for point, run in zip(record["points"], sorted(runs, key=lambda r: r.run), strict=True):
        assert run.sweep == record["sweep"] and run.status == "succeeded"
        assert run.params["model"]["C"] == point["params"]["model.C"]
        assert "accuracy" in run.metrics
    # a stage computed once is one execution in one record, a cache hit (shared) in the others
    executed = sum(not cached for r in runs for cached in r.cached.values())
    assert executed == 15
    shared = runs[1].stages["preprocess"]
    assert shared.status == "cached" and "shared with point 0" in shared.reason
    # rerunning the finished sweep executes nothing
    again = _sweep_json(root, *GRID)
    assert again["status"] == "succeeded" and again["sweep"] != record["sweep"]
    assert executions(root)["total"] == 15
    assert again["tasks"]["cached"] == 24


def test_runs_and_sweeps_list_a_sweep(sweep_project):
    root = sweep_project.root
    cli(root, "run")
    record = _sweep_json(root, "--set", "model.C=1,2")
    rows = mv_json(root, "runs", "--sweep", record["sweep"][:20])
    assert {r["run"] for r in rows} == {p["run"] for p in record["points"]}
    assert all(r["sweep"] == record["sweep"] for r in rows)
    assert len(mv_json(root, "runs")) == 3
    frame = modver.runs(root, sweep=record["sweep"])
    assert sorted(frame["param.model.C"]) == [1, 2]
    listed = mv_json(root, "sweeps", "--best", "accuracy")
    assert listed[0]["sweep"] == record["sweep"] and listed[0]["best"]["point"] == 0
    assert listed[0]["best"]["value"] == 1.0
    table = mv(root, "sweeps", "--best", "min:accuracy").stdout
    shown = table.splitlines()[1].split()[0]  # the sweep id, cut to a prefix that names it alone
    assert record["sweep"].startswith(shown) and "(point 1)" in table
    assert mv_json(root, "runs", "--sweep", shown) == rows  # the prefix shown is enough to name it
    failed = mv(root, "runs", "--sweep", "nope", code=1)
    assert "no sweep 'nope'" in failed.stderr


def test_a_failing_point_fails_alone_and_the_sweep_exits_1_listing_it(sweep_project):
    root = sweep_project.root
    done = cli(root, "sweep", "--set", "model.C=-1,1,2", "--jobs", "2", code=1)
    assert "1 of 3 points of sweep" in done.stderr
    assert "point 0 (model.C=-1): model: ValueError: C must be positive, got -1" in done.stderr
    assert "Traceback" not in done.stderr
    record = Project(root).sweep_record("latest")
    assert [p.status for p in record.points] == ["failed", "succeeded", "succeeded"]
    assert record.status == "failed"
    run = Project(root).run_record(record.points[0].run)
    assert run.status == "failed" and run.stages["model"].status == "failed"
    assert run.stages["evaluate"].status == "skipped" and "ValueError" in (run.error.traceback or "")
    # --resume runs only the points that did not succeed (here: the failing one, again)
    before = executions(root)["total"]
    cli(root, "sweep", "--resume", record.sweep, "--jobs", "2", code=1)
    assert executions(root)["total"] == before + 1  # model(C=-1) alone


def test_fail_fast_stops_the_sweep_at_the_first_failure(sweep_project):
    root = sweep_project.root
    # each model sleeps 1.5 s, so the rest is cancelled even if the driver, on a loaded machine,
    # takes a few seconds to hear of the failure (its records are fsynced)
    done = cli(root, "sweep", "--set", "model.C=-1,1,2,3,4,5", "--set", "model.sleep=1.5", "--jobs", "1", "--fail-fast",
               code=1)  # fmt: skip
    record = Project(root).sweep_record("latest")
    statuses = [p.status for p in record.points]
    assert statuses[0] == "failed" and "interrupted" in statuses, statuses
    assert executions(root)["model"] < 6  # one worker, C=-1 submitted first: the rest is cancelled
    assert "point 0" in done.stderr


def test_run_jobs_runs_independent_stages_on_dask(sweep_project):
    root = sweep_project.root
    record = json.loads(cli(root, "run", "--jobs", "2", "--json").stdout)
    assert record["status"] == "succeeded" and "sweep" not in record
    assert executions(root)["total"] == 4
    assert json.loads(cli(root, "run", "--json").stdout)["cached"] == dict.fromkeys(
        ["preprocess", "augment", "model", "evaluate"], True
    )
    failed = cli(root, "run", "--jobs", "2", "--set", "model.C=-1", code=1)
    assert "stage model failed: ValueError: C must be positive, got -1" in failed.stderr


def test_sweep_errors_are_one_clear_message(sweep_project):
    root = sweep_project.root
    cases = [
        (["--set", "model.C=1"], "nothing to sweep"),
        (["--set", "nope.C=1,2"], "unknown stage 'nope'"),
        (["--set", "model.data=1,2"], "is an input of stage model"),
        (["--set", "model.C=1,2", "--set", "model.gamma=1"], "cannot be called with"),
        (["--set", "model.C=1,2", "--scheduler", "tcp://x:1", "--cluster", "slurm"], "not both"),
        (["--set", "model.C=1,2", "--best", "best:acc"], "bad --best"),
        (["--resume", "nope"], "no sweeps recorded yet"),
    ]
    for args, message in cases:
        done = mv(root, "sweep", *args, "--jobs", "1", code=1)
        assert message in done.stderr, (args, done.stderr)
        assert "internal error" not in done.stderr
    for command in (["run", "--jobs", "0"], ["sweep", "--set", "model.C=1,2", "--jobs", "0"]):
        assert "--jobs must be at least 1, not 0" in mv(root, *command, code=1).stderr
    assert not (root / "calls.log").exists()
    assert not (root / ".modver" / "sweeps").exists()


def test_sweep_file_through_the_cli(sweep_project):
    root = sweep_project.root
    sweep_project.write("sweep.yaml", "grid:\n  model.C: [1, 2]\nzip:\n  augment.noise: [0, 0.1]\n")
    plan = mv_json(root, "sweep", "--file", str(root / "sweep.yaml"), "--dry-run")
    assert [p["params"] for p in plan["points"]] == [
        {"model.C": 1, "augment.noise": 0}, {"model.C": 1, "augment.noise": 0.1},
        {"model.C": 2, "augment.noise": 0}, {"model.C": 2, "augment.noise": 0.1},
    ]  # fmt: skip


def test_cli_subprocess_sweep_prints_plain_progress(sweep_project):
    root = sweep_project.root
    done = cli(root, "sweep", "--set", "model.C=1,2", "--jobs", "2", "--best", "accuracy")
    assert "point 0 (model.C=1): succeeded" in done.stdout
    assert "best accuracy: 1 at point 0 (model.C=1)" in done.stdout


def test_ctrl_c_records_unfinished_points_interrupted_and_a_rerun_executes_only_what_is_missing(sweep_project):
    import os
    import signal
    import subprocess
    import sys
    import time

    root = sweep_project.root
    args = ["sweep", "--set", "model.C=1,2,3", "--set", "model.sleep=2", "--jobs", "2"]
    driver = subprocess.Popen([sys.executable, "-m", "modver", *args], cwd=root, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while executions(root)["model"] < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert executions(root)["model"] == 2, "the model stages did not start"
    os.kill(driver.pid, signal.SIGINT)
    _, stderr = driver.communicate(timeout=120)
    assert driver.returncode == 130, stderr
    assert "Traceback" not in stderr
    record = Project(root).sweep_record("latest")
    assert record.status == "interrupted"
    assert [p.status for p in record.points] == ["interrupted"] * 3
    for point in record.points:
        run = Project(root).run_record(point.run)
        assert run.status == "interrupted" and run.sweep == record.sweep
        assert run.stages["preprocess"].status in ("succeeded", "cached")
        assert run.stages["model"].status in ("interrupted", "skipped")
    assert executions(root) == {"preprocess": 1, "augment": 1, "model": 2, "total": 4}
    # the same sweep again: preprocess and augment come from the cache, only the rest runs
    again = json.loads(cli(root, *args, "--json").stdout)
    assert again["status"] == "succeeded" and again["sweep"] != record.sweep
    counts = executions(root)
    # (a model task running at Ctrl-C may still have finished and saved its output while the
    # cluster shut down: then it is a cache hit now; its point's record said interrupted, rightly)
    assert counts["preprocess"] == 1 and counts["augment"] == 1 and counts["evaluate"] == 3
    assert 3 <= counts["model"] <= 5
    # --resume continues the interrupted sweep under its own id, with new runs: all from the cache now
    resumed = json.loads(cli(root, "sweep", "--resume", record.sweep[:21], "--jobs", "2", "--json").stdout)
    assert resumed["sweep"] == record.sweep and resumed["status"] == "succeeded"
    assert all(p["run"] != old.run for p, old in zip(resumed["points"], record.points, strict=True))
    assert executions(root) == counts


def test_sweeps_shows_a_running_sweep_from_the_records(sweep_project):
    import subprocess
    import sys
    import time

    root = sweep_project.root
    driver = subprocess.Popen(
        [sys.executable, "-m", "modver", "sweep", "--set", "model.C=1,2,3", "--set", "model.sleep=1", "--jobs", "1"],
        cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        seen: list[dict] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and driver.poll() is None:
            listed = json.loads(cli(root, "sweeps", "--json").stdout) if (root / ".modver" / "sweeps").exists() else []
            if listed and listed[0]["status"] == "running":
                seen.append(listed[0])
                if any(p["status"] == "succeeded" for p in listed[0]["points"]):
                    break
            time.sleep(0.2)
        assert seen, "the running sweep was never listed"
        statuses = {p["status"] for s in seen for p in s["points"]}
        assert {"running", "pending"} <= statuses, statuses  # one worker: one point at a time
        table = cli(root, "sweeps").stdout
        assert "running" in table or "succeeded" in table
    finally:
        driver.wait(timeout=120)
    assert driver.returncode == 0, driver.stderr.read() if driver.stderr else ""
    assert json.loads(cli(root, "sweeps", "--json").stdout)[0]["status"] == "succeeded"


def test_the_live_view_on_a_terminal(sweep_project):
    import os
    import pty
    import subprocess
    import sys

    root = sweep_project.root
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "160", "TERM": "xterm"}
    env.pop("NO_COLOR", None)
    driver = subprocess.Popen(
        [sys.executable, "-m", "modver", "sweep", "--set", "model.C=1,2", "--jobs", "2", "--best", "accuracy"],
        cwd=root, stdin=follower, stdout=follower, stderr=follower, env=env,
    )  # fmt: skip
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the terminal closed: the driver exited
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    assert driver.wait(timeout=120) == 0
    shown = b"".join(chunks).decode("utf-8", "replace")
    assert "points 2/2 done | tasks 6/6, 2 from cache | best accuracy 1 (point 0)" in shown, shown
    assert "best accuracy: 1 at point 0 (model.C=1)" in shown


def test_two_overlapping_sweeps_at_once_compute_a_shared_task_at_most_twice(sweep_project):
    import subprocess
    import sys

    from modver.store.cache import OutputCache

    root = sweep_project.root
    sweeps = [
        ["--set", "model.C=1,2,3", "--set", "augment.noise=0,0.1"],
        ["--set", "model.C=2,3,4", "--set", "augment.noise=0"],
    ]
    command = [sys.executable, "-m", "modver", "sweep", "--jobs", "1", "--json"]
    drivers = [
        subprocess.Popen([*command, *axes], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for axes in sweeps
    ]
    outputs = [d.communicate(timeout=300) for d in drivers]
    for driver, (stdout, stderr) in zip(drivers, outputs, strict=True):
        assert driver.returncode == 0, stderr
        assert json.loads(stdout)["status"] == "succeeded"
    counts = executions(root)
    # distinct tasks: preprocess 1, augment 2, model 7 and evaluate 7 (C=2 and 3 at noise 0 in both)
    assert counts["preprocess"] <= 2 and counts["augment"] <= 2 * 2
    assert counts["model"] <= 7 + 2 and counts["evaluate"] <= 7 + 2  # only the shared ones twice
    cache = OutputCache(root / ".modver" / "cache" / "outputs")
    keys = list(cache.keys())
    assert len(keys) == 1 + 2 + 7 + 7
    assert all(cache.verify(key) for key in keys)
    records = Project(root).runs()
    assert len(records) == 9 and all(r.status == "succeeded" for r in records)
