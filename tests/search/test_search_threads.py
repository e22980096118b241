"""A search on a running Dask scheduler with one worker process of two threads (the fixture of
tests/sweep/test_threads.py), through the real CLI: two trials run at once in that one process."""

from __future__ import annotations

import json

from tests.helpers import cli
from tests.sweep.pipeline import write_sweep_project
from tests.sweep.test_threads import two_threads  # noqa: F401 - the fixture

BARRIER = """\
    with open(CALLS) as f:
        first_two = sum(line.startswith("model ") for line in f) <= 2
    deadline = time.time() + 120
    while first_two:  # the first two trials' models wait for each other: they must run at once
        with open(CALLS) as f:
            if sum(line.startswith("model ") for line in f) >= 2:
                break
        if time.time() > deadline:
            raise RuntimeError("the other trial never started")
        time.sleep(0.01)
"""


def test_a_search_runs_two_trials_at_once_in_the_threads_of_one_worker(git_project, two_threads):  # noqa: F811
    project = write_sweep_project(git_project)
    stages = project.read("pipe/stages.py")
    project.write("pipe/stages.py", stages.replace('    _count("model")\n', '    _count("model")\n' + BARRIER))
    project.commit("the first two models wait for each other")
    root = project.root
    record = json.loads(cli(root, "sweep", "--optimize", "accuracy", "--trials", "4", "--set",
                            "model.C=uniform(0.5,1.5)", "--scheduler", two_threads, "--jobs", "2", "--json",
                            timeout=300).stdout)  # fmt: skip
    assert [p["status"] for p in record["points"]] == ["succeeded"] * 4
    calls = [line.split() for line in (root / "calls.log").read_text().splitlines()]
    assert [stage for stage, _, _ in calls].count("model") == 4
    assert len({pid for _, pid, _ in calls}) == 1  # every stage in the one worker process
