"""The stage executor: a picklable task that runs in any process given only the project folder."""

from __future__ import annotations

import multiprocessing
import pickle
from pathlib import Path

from modver.engine.executor import StageTask, call_problem, run_task, task_for
from modver.engine.planner import Pipeline, plan
from modver.project import Project
from modver.record import StageStatus
from modver.store.cache import OutputCache
from modver.store.layout import Store


def planned(root: Path) -> tuple[Store, dict[str, StageTask]]:
    """The run_project's stages planned (versions registered) and turned into tasks."""
    with Project(root) as project:
        pipeline = Pipeline.from_manifest(project.manifest(), project.root)
        plans = plan(project.registry, project.store, pipeline, register=True)
        return project.store, {p.name: task_for(project.store, p, None) for p in plans}


TaskOutcome = tuple[str, float | None]


def _in_a_spawned_process(task: StageTask) -> TaskOutcome:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(_run, (task,))


def _run(task: StageTask) -> TaskOutcome:  # runs in the spawned process: plain data back
    result = run_task(task)
    return str(result.status), result.duration


def test_a_task_runs_in_a_spawned_process_and_gives_the_same_cache_entry(run_project):
    store, tasks = planned(run_project.root)
    cache = OutputCache(store.outputs)
    for name in ("prep", "train"):  # train takes prep's output from the cache, in the other process
        task = tasks[name]
        assert pickle.loads(pickle.dumps(task)) == task  # plain data: it travels to any process
        status, _ = _in_a_spawned_process(task)
        assert status == "succeeded"
        there = cache.get(task.key)
        assert there is not None and cache.verify(task.key)
        spawned_bytes = (there.path / "object").read_bytes()
        cache.remove(task.key)
        here = run_task(task)  # the same task in this process
        assert here.status is StageStatus.SUCCEEDED and set(here.timings) >= {"materialize", "import", "call", "save"}
        entry = cache.get(task.key)
        assert entry is not None and (entry.path / "object").read_bytes() == spawned_bytes
        assert entry.meta["key_parts"] == dict(task.key_parts)
    model = cache.load(tasks["train"].key)
    assert type(model).__name__ == "Model" and model.mean == 12.0  # (6 + 12 + 18) / 3


def test_a_failing_stage_gives_a_failed_result_with_its_error(run_project):
    run_project.write("pipe/train.py", "def train(data):\n    x = 1\n    raise ValueError('bad data')\n")
    store, tasks = planned(run_project.root)
    run_task(tasks["prep"])
    result = run_task(tasks["train"])
    assert result.status is StageStatus.FAILED and result.error is not None
    assert (result.error.type, result.error.message, result.error.where) == (
        "ValueError",
        "bad data",
        "pipe/train.py:3",
    )
    assert result.message == "stage train failed: ValueError: bad data (at pipe/train.py:3)"
    assert result.error.traceback and "ValueError" in result.error.traceback
    assert OutputCache(store.outputs).get(tasks["train"].key) is None


def test_a_callable_that_refuses_the_arguments_is_named_with_a_suggestion(run_project):
    _, tasks = planned(run_project.root)

    def prep(raw: object, scale: int = 1) -> None:
        return None

    assert call_problem(tasks["prep"], prep, ["raw", "scale"]) is None
    problem = call_problem(tasks["prep"], prep, ["raw", "scael"])
    assert problem is not None and "did you mean 'scale'?" in (problem.hint or "")
