"""``modver run --pin STAGE@REF``: pins for one run, recorded, the manifest untouched."""

from __future__ import annotations

import json

from modver.project import Project
from tests.explain._project import calls, make_project, reset_calls, set_offset
from tests.helpers import mv, mv_json


def test_pin_runs_an_old_version_once_and_records_it(tmp_path):
    g = make_project(tmp_path)
    set_offset(g, 10, "model: offset 10")
    mv(g.root, "index")
    manifest = g.read("manifest.yaml")
    state = g.state()
    now = mv_json(g.root, "run")
    assert now["metrics"]["score"] == 20.0 and now["versions"]["model"] == "v2"
    assert "pins" not in now
    reset_calls(g)
    pinned = mv_json(g.root, "run", "--pin", "model@v1")
    assert pinned["metrics"]["score"] == 10.0
    assert pinned["versions"]["model"] == "v1" and pinned["pins"] == {"model": "v1"}
    assert calls(g) == ["model", "evaluate"]  # prep came from the cache
    assert g.read("manifest.yaml") == manifest and g.state() == state
    stored = json.loads((g.root / ".modver" / "runs" / pinned["run"] / "run.json").read_text())
    assert stored["pins"] == {"model": "v1"}
    again = mv_json(g.root, "run")  # the pin was for that run alone
    assert again["versions"]["model"] == "v2" and "pins" not in again
    out = mv(g.root, "run", "--pin", "model@v1").stdout
    assert "pinned for this run only: model@v1" in out and "(3/3 from cache)" in out
    listed = {r["run"]: r for r in mv_json(g.root, "runs")}
    assert listed[pinned["run"]]["versions"]["model"] == "v1"


def test_pin_python_twin_and_git_refs(tmp_path):
    g = make_project(tmp_path)
    first = set_offset(g, 5, "model: offset 5")
    set_offset(g, 7, "model: offset 7")
    with Project(g.root) as p:
        record = p.run(pins=[f"model@git:{first[:10]}"])
    assert record.metrics["score"] == 15.0
    assert record.pins == {"model": f"git:{first[:10]}"}
    assert record.versions["model"] is not None


def test_pin_mistakes_are_one_clear_error(tmp_path):
    g = make_project(tmp_path)
    mv(g.root, "index")
    runs_before = mv_json(g.root, "runs")
    out = mv(g.root, "run", "--pin", "modle@v1", code=1)
    assert "unknown stage 'modle'" in out.stderr and "model" in out.stderr
    out = mv(g.root, "run", "--pin", "model@v9", code=1)
    assert "v9" in out.stderr and "v1" in out.stderr
    out = mv(g.root, "run", "--pin", "model", code=1)
    assert "STAGE@REF" in out.stderr
    out = mv(g.root, "run", "--pin", "model@v1", "--pin", "model@v1", code=1)
    assert "twice" in out.stderr
    assert mv_json(g.root, "runs") == runs_before  # a mistake is not a run


def test_a_pin_by_number_follows_a_renumbered_version():
    from modver.record import RunRecord, RunStatus, StageRecord, StageStatus

    stage = StageRecord(StageStatus.SUCCEEDED, "key", fingerprint="mv1:abc", version="v3")
    record = RunRecord("r", RunStatus.SUCCEEDED, None, stages={"model": stage}, pins={"model": "v3"})
    moved = record.with_version_labels(lambda name, fp: "v5")
    assert moved.pins == {"model": "v5"} and moved.versions == {"model": "v5"}
    tagged = RunRecord("r", RunStatus.SUCCEEDED, None, stages={"model": stage}, pins={"model": "best"})
    assert tagged.with_version_labels(lambda name, fp: "v5").pins == {"model": "best"}
    assert RunRecord.from_json(moved.to_json()).pins == {"model": "v5"}
