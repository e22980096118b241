"""The sweep tests' project: preprocess -> augment(noise) -> model(C) -> evaluate, whose stages
count their executions in calls.log (workers append to it through the shared project folder).
Test modules make their ``sweep_project`` fixture with :func:`write_sweep_project`."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tests.helpers import GitProject

SWEEP_PIPELINE = {
    "manifest.yaml": """\
data:
  raw: data/raw.txt
stages:
  preprocess:
    entry: pipe/stages.py:preprocess
    inputs: {raw: data.raw}
  augment:
    entry: pipe/stages.py:augment
    inputs: {data: preprocess}
    params: {noise: 0.0}
  model:
    entry: pipe/stages.py:model
    inputs: {data: augment}
    params: {C: 1.0}
  evaluate:
    entry: pipe/stages.py:evaluate
    inputs: {model: model, data: preprocess}
""",
    "data/raw.txt": "1 2 3 4\n",
    "pipe/__init__.py": "",
    "pipe/stages.py": """\
import os
import time

import modver


CALLS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "calls.log")


def _count(stage):
    with open(CALLS, "a") as f:
        f.write(f"{stage} {os.getpid()} {os.environ.get('SLURM_JOB_ID', '-')}\\n")


def preprocess(raw):
    _count("preprocess")
    with open(raw) as f:
        return [float(v) for v in f.read().split()]


def augment(data, noise=0.0):
    _count("augment")
    return [v + noise for v in data]


def model(data, C=1.0, sleep=0.0):
    _count("model")
    if C < 0:
        raise ValueError(f"C must be positive, got {C}")
    time.sleep(sleep)
    return {"w": sum(data) * C}


def evaluate(model, data):
    _count("evaluate")
    accuracy = 1.0 / (1.0 + abs(model["w"] - sum(data)))
    modver.log_metrics(accuracy=accuracy)
    return accuracy
""",
}


def executions(root: Path) -> Counter[str]:
    """How many times each stage ran (calls.log), and the total under "total"."""
    path = root / "calls.log"
    lines = path.read_text().splitlines() if path.exists() else []
    counts: Counter[str] = Counter(line.split()[0] for line in lines)
    counts["total"] = len(lines)
    return counts


def write_sweep_project(git_project: GitProject) -> GitProject:
    """The four-stage pipeline in ``git_project``, committed once."""
    for path, text in SWEEP_PIPELINE.items():
        git_project.write(path, text)
    git_project.write(".gitignore", ".modver/\ncalls.log\n")
    git_project.commit("sweep pipeline")
    return git_project
