"""run_graph when things go wrong: a worker that does not see the store, a worker killed mid-task,
Ctrl-C in the driver. Real Dask processes, started here and stopped by their pids."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from modver.errors import ClusterError
from modver.record import StageStatus
from modver.store.cache import OutputCache
from modver.store.layout import Store
from modver.sweep.cluster import ExecutorSpec, TaskEvent, run_graph
from tests.sweep._cluster import by_stage, descendants, graph_project, graph_tasks, in_session

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def graph(git_project):
    return graph_project(git_project)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def scheduler(tmp_path):
    """A Dask scheduler on loopback (its address); ``start_worker(hide=None)`` adds a worker,
    optionally in a mount namespace where the folder ``hide`` is an empty tmpfs."""
    info = tmp_path / "scheduler.json"
    started = [
        subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
             "--no-dashboard", "--scheduler-file", str(info)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
    ]  # fmt: skip
    deadline = time.monotonic() + 30
    while not info.exists() or not info.read_text():
        assert time.monotonic() < deadline, "the Dask scheduler did not start"
        time.sleep(0.1)
    address = json.loads(info.read_text())["address"]

    def start_worker(hide: Path | None = None) -> None:
        worker = [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1", "--no-nanny",
                  "--no-dashboard"]  # fmt: skip
        if hide is not None:
            script = f'mount -t tmpfs none {hide} && exec "$@"'
            worker = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *worker]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        started.append(subprocess.Popen(worker, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env))

    yield address, start_worker
    for process in reversed(started):
        _stop(process)


def _can_hide_a_folder() -> bool:
    if shutil.which("unshare") is None:
        return False
    done = subprocess.run(["unshare", "--mount", "true"], capture_output=True)
    return done.returncode == 0


def test_a_running_scheduler_runs_the_graph(graph, scheduler):
    address, start_worker = scheduler
    start_worker()
    tasks = graph_tasks(graph.root, stages=("first", "second"))
    results = run_graph(tasks, ExecutorSpec(scheduler=address), on_event=lambda e: None, store=Store(graph.root))
    assert {r.status for r in results.values()} == {StageStatus.SUCCEEDED}
    assert list((graph.root / ".modver" / "tmp").glob("worker-check-*")) == []  # the token is gone


@pytest.mark.skipif(
    not _can_hide_a_folder(), reason="needs `unshare --mount` (root) to give a worker its own file system"
)
def test_a_worker_that_does_not_see_the_store_is_named_before_anything_runs(graph, scheduler):
    address, start_worker = scheduler
    start_worker(hide=graph.root)  # the worker sees an empty folder where the project is
    tasks = graph_tasks(graph.root, stages=("first",))
    events: list[TaskEvent] = []
    with pytest.raises(ClusterError) as caught:
        run_graph(tasks, ExecutorSpec(scheduler=address), on_event=events.append, store=Store(graph.root))
    assert re.fullmatch(
        rf"Dask worker tcp://127\.0\.0\.1:\d+ \(on .+\) does not see the store {re.escape(str(graph.root))}/\.modver",
        str(caught.value),
    )
    assert "shared file system" in (caught.value.hint or "")
    assert events == []
    assert OutputCache(graph.root / ".modver" / "cache" / "outputs").get(next(iter(tasks))) is None


def test_an_unreachable_scheduler_is_a_clear_error(graph):
    tasks = graph_tasks(graph.root, stages=("first",))
    with pytest.raises(ClusterError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        run_graph(tasks, ExecutorSpec(scheduler="tcp://127.0.0.1:9"), on_event=lambda e: None, store=Store(graph.root))


def _kill_when_written(marker: Path, killed: list[int]) -> None:
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    pid = int(marker.read_text().split()[0])
    os.kill(pid, signal.SIGKILL)
    killed.append(pid)


def test_a_worker_killed_mid_task_is_replaced_and_the_task_runs_again_once(graph, tmp_path):
    marker = tmp_path / "victim.pid"
    tasks = graph_tasks(graph.root, [f"victim.marker={marker}"], stages=("victim", "first"))
    key = by_stage(tasks)["victim"]
    killed: list[int] = []
    killer = threading.Thread(target=_kill_when_written, args=(marker, killed))
    killer.start()
    events: list[TaskEvent] = []
    try:
        results = run_graph(tasks, ExecutorSpec(jobs=2), on_event=events.append, store=Store(graph.root))
    finally:
        killer.join()
    assert results[key].status is StageStatus.SUCCEEDED
    assert [e.kind for e in events if e.key == key] == ["started", "retried", "done"]  # reported once
    cache = OutputCache(graph.root / ".modver" / "cache" / "outputs")
    assert cache.verify(key) and cache.load(key)["pid"] != killed[0]  # one valid entry, from the rerun
    assert [p for p in (graph.root / ".modver" / "cache" / "outputs").rglob("*") if ".tmp-" in p.name] == []


def test_a_task_that_kills_every_worker_running_it_fails_alone_with_a_clear_message(graph):
    tasks = graph_tasks(graph.root, stages=("crash", "first"))
    key = by_stage(tasks)
    results = run_graph(tasks, ExecutorSpec(jobs=2), on_event=lambda e: None, store=Store(graph.root))
    crashed = results[key["crash"]]
    assert crashed.status is StageStatus.FAILED and crashed.error is not None
    assert crashed.error.type == "WorkerDied"
    # its nanny said how the worker process ended: SIGKILL, as the kernel's out-of-memory killer sends
    assert crashed.message == (
        "stage crash: the Dask worker process running it was killed by signal 9 (SIGKILL) (twice; it is not run again)"
    )
    assert "memory" in (crashed.hint or "")
    assert results[key["first"]].status is StageStatus.SUCCEEDED


DRIVER = """\
import json, os, sys
from pathlib import Path
from modver.store.layout import Store
from modver.sweep.cluster import ExecutorSpec, run_graph
from tests.sweep._cluster import descendants, graph_tasks

root = Path(sys.argv[1])
tasks = graph_tasks(root, ["first.wait=60"], stages=("first", "second", "boom"))
try:
    run_graph(tasks, ExecutorSpec(jobs=2), on_event=lambda e: print(e.kind, e.key, flush=True), store=Store(root))
except KeyboardInterrupt:
    print("left", json.dumps(descendants(os.getpid())), flush=True)
    sys.exit(130)
"""


def test_ctrl_c_in_the_driver_cancels_and_leaves_no_worker_process(graph):
    tasks = graph_tasks(graph.root, ["first.wait=60"], stages=("first",))
    first = next(iter(tasks))
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(graph.root)], stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)}, start_new_session=True,
    )  # fmt: skip
    try:
        assert driver.stdout is not None
        for line in driver.stdout:  # wait until the 60 s stage runs on a worker
            if line.split() == ["started", first]:
                break
        assert descendants(driver.pid), "the driver runs its workers as child processes"
        os.kill(driver.pid, signal.SIGINT)
        out, _ = driver.communicate(timeout=60)
    finally:
        _stop(driver)  # type: ignore[arg-type]
    assert driver.returncode == 130
    left = json.loads(out.split("left ", 1)[1].splitlines()[0])
    assert [cmd for _, cmd in left if "resource_tracker" not in cmd] == []  # no worker outlives run_graph
    assert in_session(driver.pid) == []  # and nothing at all outlives the driver
    assert OutputCache(graph.root / ".modver" / "cache" / "outputs").get(first) is None


def test_a_worker_that_joins_after_the_check_and_does_not_see_the_store_fails_the_task(graph):
    import pickle
    import queue

    from distributed import Client, LocalCluster

    from modver.sweep.cluster import _run_on_worker

    task = next(iter(graph_tasks(graph.root, stages=("first",)).values()))
    heard: queue.SimpleQueue[dict] = queue.SimpleQueue()
    with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster, Client(cluster) as client:
        client.subscribe_topic("test-topic", lambda event: heard.put(event[1]))
        client.submit(_run_on_worker, task, str(graph.root / "no-such-run-folder"), 0, "test-topic").result()
        event = heard.get(timeout=30)
    # it cannot write its result where the driver reads: the result travels in its one event
    assert event["kind"] == "finished" and event["key"] == task.key
    result = pickle.loads(event["inline"])
    assert result.status is StageStatus.FAILED and result.error is not None and result.error.type == "ClusterError"
    assert re.fullmatch(r"Dask worker \S+ \(on .+\) does not see the store .+/\.modver", result.message or "")
    assert OutputCache(graph.root / ".modver" / "cache" / "outputs").get(task.key) is None  # it did not run
