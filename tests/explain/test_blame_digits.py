"""Blame held to the cache on the bundled 4-stage digits example."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

from tests.helpers import GitProject, mv, mv_json

pytest.importorskip("sklearn")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "digits"


def test_blame_on_the_example_executes_only_downstream_of_each_reverted_factor(tmp_path):
    root = tmp_path / "digits"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".modver", "__pycache__"))
    g = GitProject(root)
    g.commit("the example")
    mv(root, "init")
    a = mv_json(root, "run")
    model = g.read("pipeline/model.py")
    g.write("pipeline/model.py", model.replace("SVC(C=C, gamma=gamma)", "SVC(C=C * 0.001, gamma=gamma)"))
    g.write("manifest.yaml", g.read("manifest.yaml").replace("noise: 0.1", "noise: 0.2"))
    g.commit("a planted regression in model, and more noise")
    b = mv_json(root, "run")
    assert b["versions"]["model"] == "v2" and b["metrics"]["accuracy"] < a["metrics"]["accuracy"]
    result = mv_json(root, "blame", "accuracy", a["run"], b["run"], "--jobs", "1")
    shares = {f["name"]: f["share"] for f in result["factors"]}
    assert set(shares) == {"model", "augment.noise"}
    assert abs(shares["model"]) > abs(shares["augment.noise"])  # the regression is model's
    assert sum(shares.values()) == pytest.approx(b["metrics"]["accuracy"] - a["metrics"]["accuracy"])
    executed: Counter[str] = Counter()
    for run in result["runs"]:
        record = mv_json(root, "show", run["run"])
        executed.update(name for name, s in record["stages"].items() if s["status"] == "succeeded")
    # model@v2 on A's augment, model@v1 on B's augment: model and evaluate run, nothing upstream
    assert executed == {"model": 2, "evaluate": 2} and result["executions"] == 4
