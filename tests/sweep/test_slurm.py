"""On a real single-node Slurm cluster (tests/sweep/slurm.py): the cluster itself, run_graph's
dask-jobqueue path, a job cancelled mid-task, and the driver detached as a batch job."""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING

import pytest

from modver.project import Project
from modver.record import StageStatus
from modver.store.cache import OutputCache
from modver.store.layout import Store
from modver.sweep.cluster import ClusterConfig, ExecutorSpec, TaskEvent, run_graph
from tests.helpers import cli
from tests.sweep._cluster import by_stage, graph_project, graph_tasks
from tests.sweep.pipeline import write_sweep_project

if TYPE_CHECKING:
    from tests.sweep.slurm import Slurm

pytest_plugins = ["tests.sweep.slurm"]  # its fixtures: slurm_cluster (the session's), slurm
# one Slurm cluster for the run: every test of it on one xdist worker (--dist loadgroup), after the others
pytestmark = pytest.mark.xdist_group("slurm")  # slow: SLOW_SUITES in tests/conftest.py

SLURM = ExecutorSpec(cluster=ClusterConfig("slurm", 2))


@pytest.fixture
def graph(git_project):
    return graph_project(git_project)


def test_the_test_cluster_runs_batch_jobs(slurm: Slurm, tmp_path):
    assert slurm.run("sinfo", "-h", "-o", "%t %c %m").split() == ["idle", "2", "4000"]
    job = slurm.run("sbatch", "--parsable", f"--output={tmp_path}/%j.out", "--wrap", "echo job $SLURM_JOB_ID").strip()
    slurm.wait_until_idle()
    assert (tmp_path / f"{job}.out").read_text() == f"job {job}\n"


def test_tasks_run_inside_slurm_jobs(slurm: Slurm, graph):
    tasks = graph_tasks(graph.root, stages=("first", "second", "boom"))
    store = Store(graph.root)
    events: list[TaskEvent] = []
    results = run_graph(tasks, SLURM, on_event=events.append, store=store)
    assert {r.status for r in results.values()} == {StageStatus.SUCCEEDED}
    cache = OutputCache(store.outputs)
    jobs = {cache.load(k)["job"] for k in tasks}
    assert None not in jobs and all(j.isdigit() for j in jobs)  # SLURM_JOB_ID was set in every stage
    assert list(store.cluster_logs.glob("dask-worker-*.err"))  # the workers' logs are in the store
    slurm.wait_until_idle()  # the worker jobs ended with the run


def test_a_job_cancelled_mid_task_is_replaced_and_its_task_runs_again(slurm: Slurm, graph, tmp_path):
    marker = tmp_path / "victim.pid"
    tasks = graph_tasks(graph.root, [f"victim.marker={marker}"], stages=("victim", "first"))
    key = by_stage(tasks)["victim"]
    events: list[TaskEvent] = []
    cancelled: list[str] = []

    def on_event(event: TaskEvent) -> None:
        events.append(event)
        if event.key == key and event.kind == "started":
            deadline = time.monotonic() + 60
            while not marker.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            cancelled.append(marker.read_text().split()[1])
            slurm.run("scancel", cancelled[0])  # the job running the task

    one_job = ExecutorSpec(cluster=ClusterConfig("slurm", 1))  # nothing runs it again but a new job
    results = run_graph(tasks, one_job, on_event=on_event, store=Store(graph.root))
    assert results[key].status is StageStatus.SUCCEEDED
    assert [e.kind for e in events if e.key == key] == ["started", "retried", "done"]
    cache = OutputCache(graph.root / ".modver" / "cache" / "outputs")
    assert cache.verify(key) and cache.load(key)["job"] not in (None, cancelled[0])  # rerun in another job
    slurm.wait_until_idle()


# -- `modver sweep --cluster slurm`, end to end: the real CLI in a subprocess, a real git project


@pytest.fixture
def sweep_project(git_project):
    return write_sweep_project(git_project)


def _sweep(slurm: Slurm, root, *args: str, timeout: float = 240) -> dict:
    done = cli(root, "sweep", "--cluster", "slurm", *args, "--json", env={"SLURM_CONF": str(slurm.conf)},
               timeout=timeout)  # fmt: skip
    return json.loads(done.stdout)


def _calls(root) -> list[tuple[str, str]]:
    """(stage, Slurm job) of every stage execution, from calls.log."""
    return [(line.split()[0], line.split()[2]) for line in (root / "calls.log").read_text().splitlines()]


def test_a_sweep_on_slurm_runs_its_stages_inside_batch_jobs(slurm: Slurm, sweep_project):
    root = sweep_project.root
    record = _sweep(slurm, root, "--set", "model.C=0.5,1,2")
    assert record["status"] == "succeeded" and [p["status"] for p in record["points"]] == ["succeeded"] * 3
    calls = _calls(root)
    assert sorted(stage for stage, _ in calls) == ["augment", "evaluate", "evaluate", "evaluate", "model", "model",
                                                   "model", "preprocess"]  # fmt: skip
    assert all(job.isdigit() for _, job in calls)  # SLURM_JOB_ID was set: every stage ran in a batch job
    with Project(root) as p:
        runs = p.runs(sweep=record["sweep"])
    assert sorted(r.run for r in runs) == sorted(pt["run"] for pt in record["points"])
    assert all(
        r.status == "succeeded" and set(r.stages) == {"preprocess", "augment", "model", "evaluate"} for r in runs
    )
    assert all("accuracy" in r.metrics for r in runs)
    slurm.wait_until_idle()  # the workers' jobs ended with the sweep


def test_a_job_cancelled_mid_sweep_is_recovered(slurm: Slurm, sweep_project):
    root = sweep_project.root
    cancelled: list[str] = []

    def cancel_the_first_model_job() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            calls = _calls(root) if (root / "calls.log").exists() else []
            jobs = [job for stage, job in calls if stage == "model"]
            if jobs:
                cancelled.append(jobs[0])
                slurm.run("scancel", jobs[0])  # while the model stage sleeps in it
                return
            time.sleep(0.1)

    canceller = threading.Thread(target=cancel_the_first_model_job)
    canceller.start()
    try:
        record = _sweep(slurm, root, "--set", "model.C=0.5,1", "--set", "model.sleep=4")
    finally:
        canceller.join()
    assert cancelled, "no model stage started"
    assert record["status"] == "succeeded" and [p["status"] for p in record["points"]] == ["succeeded"] * 2
    calls = _calls(root)
    models = [job for stage, job in calls if stage == "model"]
    assert len(models) == 3 and models.count(cancelled[0]) == 1  # the cancelled one ran again, elsewhere
    with Project(root) as p:
        runs = p.runs(sweep=record["sweep"])
    assert len(runs) == 2 and all(r.status == "succeeded" for r in runs)  # one record per point, complete
    slurm.wait_until_idle()


def test_detach_submits_the_driver_as_a_batch_job_and_returns_at_once(slurm: Slurm, sweep_project):
    root = sweep_project.root
    queued = _sweep(slurm, root, "--set", "model.C=0.5,1", "--detach", timeout=60)
    assert queued["status"] == "queued" and queued["job"].isdigit()
    assert any(job["id"] == queued["job"] for job in slurm.jobs())  # returned before the driver ended
    slurm.wait_until_idle(180)  # the driver ran the sweep, its workers as jobs of their own
    log = root / ".modver" / "logs" / "cluster" / f"driver-{queued['job']}.out"
    with Project(root) as p:
        record = p.sweep_record(queued["sweep"])
    assert record.status == "succeeded", log.read_text()
    assert [pt.status for pt in record.points] == ["succeeded"] * 2
    jobs = {job for _, job in _calls(root)}
    assert queued["job"] not in jobs and all(job.isdigit() for job in jobs)  # stages ran in the workers' jobs


def test_a_cluster_that_starts_no_worker_is_an_error_after_its_start_timeout(slurm: Slurm, sweep_project):
    root = sweep_project.root
    # every worker job fails at once (its python is /bin/false): no worker ever joins
    sweep_project.write(
        "manifest.yaml",
        sweep_project.read("manifest.yaml")
        + "cluster:\n  kind: slurm\n  jobs: 1\n  start_timeout: 5s\n  options: {python: /bin/false}\n",
    )
    done = cli(root, "sweep", "--set", "model.C=1,2", env={"SLURM_CONF": str(slurm.conf)}, code=1, timeout=120)
    lines = done.stderr.splitlines()
    assert lines[0] == "Error: the slurm cluster started no workers after 5 s", done.stderr
    assert "start_timeout" in lines[1] and len(lines) == 2, done.stderr
    assert not (root / "calls.log").exists()
    slurm.wait_until_idle()
