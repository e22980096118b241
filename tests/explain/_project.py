"""A small project whose stages' versions move a metric: the fixture of the explain tests.

``prep(raw, scale) -> model(data, C) -> evaluate(model)``; ``evaluate`` logs ``score``. Every
stage appends its name to the file ``$EXPLAIN_TEST_CALLS`` (the project's ``.calls``, git-ignored)
when it executes, so a test counts executions without trusting modver's own records. (Not a
path from ``__file__``: a stage whose code is the same in two tests' projects is one module in
a process that ran both, and would write where the first test's project was.)
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.helpers import GitProject, mv

FILES = {
    ".gitignore": ".modver/\n.calls\n",
    "manifest.yaml": """\
data:
  raw: data/raw.txt
stages:
  prep:
    entry: pipe/prep.py:prep
    inputs: {raw: data.raw}
    params: {scale: 1}
  model:
    entry: pipe/model.py:model
    inputs: {data: prep}
    params: {C: 1}
  evaluate:
    entry: pipe/evaluate.py:evaluate
    inputs: {model: model}
""",
    "data/raw.txt": "1 2 3 4\n",
    "pipe/__init__.py": "",
    "pipe/calls.py": """\
import os


def note(name):
    with open(os.environ["EXPLAIN_TEST_CALLS"], "a") as f:
        f.write(name + "\\n")
""",
    "pipe/util.py": "OFFSET = 0\n\n\ndef shift(x):\n    return x + OFFSET\n",
    "pipe/prep.py": """\
from pipe.calls import note


def prep(raw, scale):
    note("prep")
    with open(raw) as f:
        return [float(v) * scale for v in f.read().split()]
""",
    "pipe/model.py": """\
from pipe.calls import note
from pipe.util import shift


def model(data, C):
    note("model")
    return shift(sum(data) * C)
""",
    "pipe/evaluate.py": """\
import modver
from pipe.calls import note


def evaluate(model):
    note("evaluate")
    modver.log_metrics(score=model)
    return model
""",
}


def make_project(tmp_path: Path) -> GitProject:
    """The project, committed and initialised (versions not indexed yet)."""
    (tmp_path / "proj").mkdir()
    g = GitProject(tmp_path / "proj")
    for path, text in FILES.items():
        g.write(path, text)
    g.commit("start")
    mv(g.root, "init")
    os.environ["EXPLAIN_TEST_CALLS"] = str(g.root / ".calls")  # Dask workers started later inherit it
    return g


def calls(g: GitProject) -> list[str]:
    """The stages executed since the last :func:`reset_calls`, in order."""
    path = g.root / ".calls"
    return path.read_text(encoding="utf-8").split() if path.exists() else []


def reset_calls(g: GitProject) -> None:
    (g.root / ".calls").unlink(missing_ok=True)


def set_offset(g: GitProject, offset: int, message: str) -> str:
    """Commit a new ``OFFSET`` of the helper ``model`` reaches: a new version of ``model``."""
    g.write("pipe/util.py", f"OFFSET = {offset}\n\n\ndef shift(x):\n    return x + OFFSET\n")
    return g.commit(message)
