"""``modver blame METRIC RUN_A RUN_B``: shares of a metric's change, from mixed configurations
run on the sweep engine, each stage from the cache where its key ran."""

from __future__ import annotations

import json
from collections import Counter

from modver.project import Project
from tests.explain._project import calls, make_project, reset_calls
from tests.helpers import GitProject, mv, mv_json

MODEL_TIMES_C = """\
from pipe.calls import note
from pipe.util import shift


def model(data, C):
    note("model")
    return shift(sum(data)) * C
"""


def _two_runs(g, tmp_path):
    """Run A (model v1, C=1), then B (model v2: OFFSET 10, and C=2): score 10 -> 40."""
    g.write("pipe/model.py", MODEL_TIMES_C)
    g.commit("model multiplies by C")
    a = mv_json(g.root, "run")
    g.write("pipe/util.py", "OFFSET = 10\n\n\ndef shift(x):\n    return x + OFFSET\n")
    g.write("manifest.yaml", g.read("manifest.yaml").replace("params: {C: 1}", "params: {C: 2}"))
    g.commit("offset 10, C 2")
    b = mv_json(g.root, "run")
    return a, b


def test_blame_shares_a_code_and_a_param_change_exactly(tmp_path):
    g = make_project(tmp_path)
    a, b = _two_runs(g, tmp_path)
    assert (a["metrics"]["score"], b["metrics"]["score"]) == (10.0, 40.0)
    state, manifest = g.state(), g.read("manifest.yaml")
    reset_calls(g)
    result = mv_json(g.root, "blame", "score", a["run"], b["run"], "--jobs", "1")
    assert result["method"] == "shapley" and result["interaction"] == 0.0
    shares = {f["name"]: f for f in result["factors"]}
    assert set(shares) == {"model", "model.C"}
    # v(A)=10, v(model from B)=20, v(C from B)=20, v(B)=40: each 0.5*10 + 0.5*20
    assert shares["model"]["share"] == 15.0 and shares["model.C"]["share"] == 15.0
    assert sum(f["share"] for f in result["factors"]) + result["interaction"] == 40.0 - 10.0
    assert shares["model"]["kind"] == "version" and (shares["model"]["a"], shares["model"]["b"]) == ("v1", "v2")
    assert "OFFSET" in shares["model"]["summary"]
    assert shares["model"]["command"] == "modver diff model@v1 model@v2"
    # two configurations, each executing model and evaluate; prep always from the cache
    assert Counter(calls(g)) == {"model": 2, "evaluate": 2}
    assert result["executions"] == 4 and len(result["runs"]) == 2
    records = {r["run"]: r for r in mv_json(g.root, "runs")}
    for run in result["runs"]:
        assert records[run["run"]]["blame"] == result["blame"]
        assert records[run["run"]]["status"] == "succeeded"
    assert g.state() == state and g.read("manifest.yaml") == manifest

    reset_calls(g)  # the same blame again executes nothing
    again = mv_json(g.root, "blame", "score", a["run"], b["run"], "--jobs", "1")
    assert calls(g) == [] and again["executions"] == 0
    assert [f["share"] for f in again["factors"]] == [f["share"] for f in result["factors"]]
    assert again["blame"] != result["blame"]


def test_blame_waterfall_table_and_python_twin(tmp_path):
    g = make_project(tmp_path)
    a, b = _two_runs(g, tmp_path)
    out = mv(g.root, "blame", "score", a["run"], b["run"], "--jobs", "1").stdout
    lines = out.splitlines()
    assert lines[0].startswith("blame ") and "score 10 -> 40" in lines[0]
    rows = [line.split() for line in lines]
    assert ["model", "v1->v2", "+15", "25"] in rows and ["model.C", "1->2", "+15", "40"] in rows
    assert ["interaction", "+0", "40"] in rows
    assert "interaction" in out and "modver diff model@v1 model@v2" in out
    with Project(g.root) as p:
        result = p.blame("score", a["run"], b["run"], jobs=1)
    assert result.change == 30.0 and result.executions == 0
    assert {s.factor.name for s in result.shares} == {"model", "model.C"}
    kept = json.loads((g.root / ".modver" / "explain" / "blames" / f"{result.blame}.json").read_text())
    assert kept == json.loads(json.dumps(result.to_json()))
    page = g.root / "r.html"
    mv(g.root, "report", "-o", str(page))
    text = page.read_text(encoding="utf-8")
    section = text[text.index('<section id="blames">') :]
    assert section.count('<svg class="waterfall"') == 2  # the CLI's blame and the Python one
    assert section.count('class="bar-up"') >= 4 and "model v1-&gt;v2" in section and "+15" in section


def test_blame_one_at_a_time_beyond_the_budget(tmp_path):
    g = make_project(tmp_path)
    a, b = _two_runs(g, tmp_path)
    result = mv_json(g.root, "blame", "score", a["run"], b["run"], "--jobs", "1", "--max-runs", "1")
    assert result["method"] == "sampled" and len(result["runs"]) == 1
    assert any("--max-runs" in n for n in result["notes"])
    measured = [f for f in result["factors"] if f["share"] is not None]
    assert len(measured) == 1 and measured[0]["share"] == 20.0  # 40 - v(B with one factor from A) = 40 - 20
    assert measured[0]["share"] + result["interaction"] == 30.0


def test_blame_mistakes(tmp_path):
    g = make_project(tmp_path)
    a, b = _two_runs(g, tmp_path)
    out = mv(g.root, "blame", "scroe", a["run"], b["run"], code=1)
    assert "no metric 'scroe'" in out.stderr and "score" in out.stderr
    out = mv(g.root, "blame", "score", a["run"], "nosuchrun", code=1)
    assert "nosuchrun" in out.stderr
    same = mv_json(g.root, "blame", "score", b["run"], b["run"])
    assert same["factors"] == [] and same["executions"] == 0 and same["notes"]


def test_blame_reverts_data_by_content_from_git(tmp_path):
    g = make_project(tmp_path)
    a = mv_json(g.root, "run")  # raw 1 2 3 4, scale 1: score 10
    g.write("data/raw.txt", "1 2 3 5\n")
    g.write("manifest.yaml", g.read("manifest.yaml").replace("params: {scale: 1}", "params: {scale: 3}"))
    g.commit("more data, scale 3")
    b = mv_json(g.root, "run")  # 11 * 3 = 33
    assert (a["metrics"]["score"], b["metrics"]["score"]) == (10.0, 33.0)
    before = (g.root / "data" / "raw.txt").read_bytes()
    state = g.state()
    reset_calls(g)
    result = mv_json(g.root, "blame", "score", a["run"], b["run"], "--jobs", "1")
    shares = {f["name"]: f["share"] for f in result["factors"]}
    # v(data from A, scale from B) = 30: prep reads A's bytes, restored from git; v(data B, scale A) = 11
    assert shares == {"raw": 0.5 * (11 - 10) + 0.5 * (33 - 30), "prep.scale": 0.5 * (30 - 10) + 0.5 * (33 - 11)}
    assert [f["kind"] for f in result["factors"]] == ["param", "data"]
    assert Counter(calls(g)) == {"prep": 2, "model": 2, "evaluate": 2}
    assert (g.root / "data" / "raw.txt").read_bytes() == before and g.state() == state
    records = {r["run"]: r for r in mv_json(g.root, "runs")}
    reverted = next(r for r in result["runs"] if r["from_b"] == ["prep.scale 1->3"])
    assert records[reverted["run"]]["data"]["raw"] == a["data"]["raw"]  # keyed by A's content
    reset_calls(g)
    assert mv_json(g.root, "blame", "score", a["run"], b["run"], "--jobs", "1")["executions"] == 0
    assert calls(g) == []


def test_blame_says_when_old_data_cannot_be_found(tmp_path):
    g = make_project(tmp_path)
    g.write("data/raw.txt", "7 7\n")  # never committed
    a = mv_json(g.root, "run")
    g.write("data/raw.txt", "1 2 3 4\n")
    g.write("manifest.yaml", g.read("manifest.yaml").replace("params: {scale: 1}", "params: {scale: 3}"))
    b = mv_json(g.root, "run")
    out = mv(g.root, "blame", "score", a["run"], b["run"], code=1)
    assert "cannot revert data raw" in out.stderr and "data/raw.txt" in out.stderr


SCRIPT = {
    ".gitignore": ".modver/\n",
    "manifest.yaml": "stages:\n  train:\n    entry: train.py\n    params: {lr: 1}\n",
    "lib.py": "def loss(lr):\n    return 1.0 / lr\n",
    "train.py": """\
import argparse

import modver
from lib import loss

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float)
args = parser.parse_args()
modver.log_metrics(loss=loss(args.lr))
""",
}


def test_blame_a_script_stage_helper_regression_and_a_param(tmp_path):
    (tmp_path / "s").mkdir()
    g = GitProject(tmp_path / "s")
    for path, text in SCRIPT.items():
        g.write(path, text)
    g.commit("a script")
    mv(g.root, "init")
    a = mv_json(g.root, "run")
    g.write("lib.py", "def loss(lr):\n    return 1.0 / lr + 5\n")  # a planted regression in the helper
    g.write("manifest.yaml", SCRIPT["manifest.yaml"].replace("lr: 1", "lr: 2"))
    g.commit("regression, lr 2")
    b = mv_json(g.root, "run")
    assert (a["metrics"]["loss"], b["metrics"]["loss"]) == (1.0, 5.5)
    result = mv_json(g.root, "blame", "loss", a["run"], b["run"], "--jobs", "1")
    shares = {f["name"]: f["share"] for f in result["factors"]}
    assert shares == {"train": 5.0, "train.lr": -0.5}  # additive: each factor's own effect
    assert max(shares, key=lambda k: abs(shares[k])) == "train"
    assert "function loss changed" in result["factors"][0]["summary"]
