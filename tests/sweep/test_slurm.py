"""On a real single-node Slurm cluster (tests/sweep/slurm.py): the cluster itself, run_graph's
dask-jobqueue path, a job cancelled mid-task, and the driver detached as a batch job."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

from modver.cache import OutputCache
from modver.cluster import ClusterConfig, ExecutorSpec, TaskEvent, run_graph
from modver.record import StageStatus
from tests.sweep._cluster import by_stage, graph_project, graph_tasks

if TYPE_CHECKING:
    from tests.sweep.slurm import Slurm

pytest_plugins = ["tests.sweep.slurm"]  # its fixtures: slurm_cluster (the session's), slurm

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
    store = graph.root / ".modver"
    events: list[TaskEvent] = []
    results = run_graph(tasks, SLURM, on_event=events.append, store=store)
    assert {r.status for r in results.values()} == {StageStatus.SUCCEEDED}
    cache = OutputCache(store / "cache" / "outputs")
    jobs = {cache.load(k)["job"] for k in tasks}
    assert None not in jobs and all(j.isdigit() for j in jobs)  # SLURM_JOB_ID was set in every stage
    assert list((store / "logs" / "cluster").glob("dask-worker-*.err"))  # the workers' logs are in the store
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
    results = run_graph(tasks, one_job, on_event=on_event, store=graph.root / ".modver")
    assert results[key].status is StageStatus.SUCCEEDED
    assert [e.kind for e in events if e.key == key] == ["started", "retried", "done"]
    cache = OutputCache(graph.root / ".modver" / "cache" / "outputs")
    assert cache.verify(key) and cache.load(key)["job"] not in (None, cancelled[0])  # rerun in another job
    slurm.wait_until_idle()
