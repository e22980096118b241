"""run_graph on a real Dask LocalCluster: dependencies, skips after a failure, --fail-fast, events."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from modver.errors import ClusterError, ManifestError, UsageError
from modver.record import StageStatus
from modver.store.cache import OutputCache
from modver.store.layout import Store
from modver.sweep.cluster import ClusterConfig, ExecutorSpec, TaskEvent, detach, run_graph
from tests.sweep._cluster import by_stage, graph_project, graph_tasks

TWO = ExecutorSpec(jobs=2)


@pytest.fixture
def graph(git_project):
    return graph_project(git_project)


def run(tasks, store, **kwargs):
    events: list[TaskEvent] = []
    results = run_graph(tasks, kwargs.pop("spec", TWO), on_event=events.append, store=store, **kwargs)
    return results, events


def test_each_task_runs_after_its_inputs_and_saves_its_output_in_the_store(graph):
    tasks = graph_tasks(graph.root, stages=("first", "second", "boom", "after_boom"))
    key = by_stage(tasks)
    store = Store(graph.root)
    results, events = run(tasks, store)
    assert {results[k].status for k in tasks} == {StageStatus.SUCCEEDED}
    assert all(r.output is None for r in results.values())  # outputs stay in the store
    cache = OutputCache(store.outputs)
    first, second = cache.load(key["first"]), cache.load(key["second"])
    assert second["upstream_end"] == first["end"] and second["start"] >= first["end"]
    workers = {cache.load(k)["pid"] for k in tasks}
    assert len(workers) >= 1 and os.getpid() not in workers  # in worker processes
    for k in tasks:  # each task: started, then done, once
        assert [e.kind for e in events if e.key == k] == ["started", "done"]
    # one channel, in causal order: a task is heard to start only after each of its inputs is done
    # (it is submitted then); before, "started" and "settled" came through two channels
    for k in tasks:
        for up in tasks[k].inputs.values():
            assert events.index(TaskEvent(up, "done", results[up])) < events.index(TaskEvent(k, "started"))
    assert key["first"] in tasks[key["second"]].inputs.values()


def test_independent_tasks_run_at_the_same_time(graph):
    tasks = graph_tasks(graph.root, ["first.wait=1.0"], stages=("first", "boom"))
    results, _ = run(tasks, Store(graph.root))
    cache = OutputCache(graph.root / ".modver" / "cache" / "outputs")
    first, boom = (cache.load(k) for k in by_stage(tasks).values())
    assert first["pid"] != boom["pid"]  # two workers: boom ran while first slept
    assert all(r.status is StageStatus.SUCCEEDED for r in results.values())


def test_a_task_whose_upstream_failed_is_skipped_and_the_others_go_on(graph):
    tasks = graph_tasks(graph.root, ["boom.fail=true"], stages=("first", "second", "boom", "after_boom"))
    key = by_stage(tasks)
    results, events = run(tasks, Store(graph.root))
    assert results[key["boom"]].status is StageStatus.FAILED
    assert (
        results[key["boom"]].message == "stage boom failed: RuntimeError: boom was told to fail (at pipe/stages.py:21)"
    )
    assert results[key["after_boom"]].status is StageStatus.SKIPPED
    assert results[key["after_boom"]].message == "an upstream stage did not succeed: boom"
    assert [e.kind for e in events if e.key == key["after_boom"]] == ["skipped"]  # never started
    assert results[key["second"]].status is StageStatus.SUCCEEDED


def test_fail_fast_cancels_the_rest_at_the_first_failure(graph):
    tasks = graph_tasks(
        graph.root, ["boom.fail=true", "first.wait=3"], stages=("first", "second", "boom", "after_boom")
    )
    key = by_stage(tasks)
    results, _ = run(tasks, Store(graph.root), spec=ExecutorSpec(jobs=2), fail_fast=True)
    assert results[key["boom"]].status is StageStatus.FAILED
    assert results[key["second"]].status is StageStatus.SKIPPED  # cancelled while first still slept
    assert "--fail-fast" in (results[key["second"]].message or "")
    assert set(results) == set(tasks)


def test_an_empty_graph_starts_nothing(tmp_path):
    assert run_graph({}, TWO, on_event=lambda e: None, store=Store(tmp_path)) == {}


def test_the_cluster_section_is_checked():
    assert ClusterConfig.from_json({"kind": "slurm", "jobs": 4, "options": {"queue": "gpu"}}) == ClusterConfig(
        "slurm", 4, {"queue": "gpu"}
    )
    with pytest.raises(ManifestError, match="unknown key 'job' in the cluster: section"):
        ClusterConfig.from_json({"kind": "slurm", "job": 4})
    with pytest.raises(ManifestError, match="cluster kind 'kubernetes' is not one of slurm, pbs, sge, lsf, local"):
        ClusterConfig.from_json({"kind": "kubernetes"})
    with pytest.raises(ManifestError, match="cluster jobs must be a whole number >= 1, not 0"):
        ClusterConfig.from_json({"jobs": 0})
    assert ExecutorSpec(cluster=ClusterConfig("tcp://h:8786")).address == "tcp://h:8786"
    assert ExecutorSpec(jobs=3, cluster=ClusterConfig("slurm", 8)).workers == 3
    with pytest.raises(UsageError, match="--jobs must be at least 1"):
        _ = ExecutorSpec(jobs=-1).workers


def test_the_command_line_starts_without_dask():
    code = (
        "import sys; sys.argv = ['modver', '--help']\nfrom modver.__main__ import main\ntry:\n    main()\n"
        "except SystemExit:\n    pass\nprint(' '.join(sorted(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(done.stdout.split())
    assert "modver.cli" in loaded and not loaded & {"dask", "distributed", "dask_jobqueue"}


def test_bad_batch_options_and_detach_off_slurm_are_clear_errors(graph):
    tasks = graph_tasks(graph.root, stages=("first",))
    bad = ExecutorSpec(cluster=ClusterConfig("slurm", 1, {"bogus": 1}))
    with pytest.raises(ClusterError, match="cannot start a slurm cluster with options {'bogus': 1}") as caught:
        run_graph(tasks, bad, on_event=lambda e: None, store=Store(graph.root))
    assert "jobqueue.dask.org" in (caught.value.hint or "")
    with pytest.raises(ClusterError, match="--detach submits the driver to Slurm; the cluster here is local"):
        detach(["sweep"], TWO, Store(graph.root))
