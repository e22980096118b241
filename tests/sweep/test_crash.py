"""A stage that kills its worker process (issue 15, item 3): through the real CLI, on a real Dask
local cluster, only the points that depend on the crashing task fail, with the exit status."""

from __future__ import annotations

import json

import pytest

from modver.project import Project
from tests.helpers import cli

CRASH_PIPELINE = {
    "manifest.yaml": """\
data:
  raw: data/raw.txt
stages:
  preprocess:
    entry: pipe/stages.py:preprocess
    inputs: {raw: data.raw}
  model:
    entry: pipe/stages.py:model
    inputs: {data: preprocess}
    params: {C: 1.0, mode: ok}
  evaluate:
    entry: pipe/stages.py:evaluate
    inputs: {model: model}
""",
    "data/raw.txt": "1 2 3\n",
    "pipe/__init__.py": "",
    "pipe/stages.py": """\
import os

import modver


def preprocess(raw):
    with open(raw) as f:
        return [float(v) for v in f.read().split()]


def model(data, C=1.0, mode="ok"):
    if mode == "exit":
        os._exit(3)  # the worker process ends under the task
    return sum(data) * C


def evaluate(model):
    modver.log_metrics(score=model)
    return model
""",
}


@pytest.fixture
def crash_project(git_project):
    for path, text in CRASH_PIPELINE.items():
        git_project.write(path, text)
    git_project.write(".gitignore", ".modver/\n")
    git_project.commit("a pipeline whose model stage may end its process")
    return git_project


# Before the fix a mode=ok point was recorded failed ("evaluate: Error: None", or a KilledWorker of
# an innocent task) in most sweeps, and Dask's ERROR lines reached the terminal in every one; each
# sweep below starts from an empty store, so every one crashes its worker processes anew.
REPEAT = 4


def test_a_stage_that_ends_its_process_fails_only_the_points_that_need_it(crash_project, tmp_path):
    root = crash_project.root
    for attempt in range(REPEAT):
        done = cli(root, "sweep", "--set", "model.C=1,2", "--set", "model.mode=ok,exit", "--jobs", "2", "--json",
                   code=1, timeout=300)  # fmt: skip
        record = json.loads(done.stdout)
        shown = f"attempt {attempt}:\n{done.stderr}"
        statuses = {(p["params"]["model.C"], p["params"]["model.mode"]): p["status"] for p in record["points"]}
        assert statuses == {(1, "ok"): "succeeded", (1, "exit"): "failed", (2, "ok"): "succeeded",
                            (2, "exit"): "failed"}, shown  # fmt: skip
        for point in record["points"]:
            if point["status"] == "failed":
                assert point["error"] == "model: WorkerDied: the worker process running it exited with status 3", shown
        # one error, naming the two points and the exit status; no Dask log line, no traceback
        errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1 and errors[0].count("exited with status 3") == 2, shown
        assert " - ERROR - " not in done.stderr and "Traceback" not in done.stderr, shown
        with Project(root) as project:
            for point in record["points"]:
                run = project.run_record(point["run"])
                if point["params"]["model.mode"] == "ok":
                    assert run.status == "succeeded" and run.metrics["score"] == 6.0 * point["params"]["model.C"]
                else:
                    assert run.stages["model"].status == "failed" and run.stages["evaluate"].status == "skipped"
                    assert run.stages["preprocess"].status in ("succeeded", "cached")
        (root / ".modver").rename(tmp_path / f"store-{attempt}")  # the next sweep computes everything again
