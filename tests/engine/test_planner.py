"""The planner: versions, cache keys (unchanged since modver 0.1), and why a stage runs."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from modver import errors
from modver.engine.planner import Pipeline, StagePlan, cache_key, explain, parse_sets, plan
from modver.models import StageSpec
from modver.project import Project
from modver.record import InputKey, KeyParts

FIXTURES = Path(__file__).parents[1] / "fixtures" / "records_0.1"


def test_cache_keys_are_the_keys_modver_0_1_computed():
    """A key is a digest of its parts: records of the release before the redesign say which."""
    seen = 0
    for path in FIXTURES.glob("*.json"):
        for stage in json.loads(path.read_text())["stages"].values():
            assert cache_key(KeyParts.from_json(stage["key_parts"])) == stage["cache_key"]
            seen += 1
    assert seen >= 20


def parts(**changes) -> KeyParts:
    base = KeyParts("pipe/m.py:train", "mv1:aa", {"C": 1.0}, {"data": InputKey(stage="prep", key="mv1:k1")}, "v1")
    return replace(base, **changes)


def planned(p: KeyParts, *, version=None, cached=False, forced=False) -> StagePlan:
    return StagePlan(StageSpec("model", p.entry), version, p, cache_key(p), cached=cached, forced=forced)


@pytest.mark.parametrize(
    ("now", "reason"),
    [
        (parts(params={"C": 0.5}), "param C 1.0 -> 0.5"),
        (parts(params={"C": 1}), "param C 1.0 -> 1"),  # typed: 1 is not 1.0
        (parts(params={"C": 1.0, "lr": 0.1}), "param lr added (0.1)"),
        (parts(params={}), "param C removed (was 1.0)"),
        (parts(inputs={"data": InputKey(stage="prep", key="mv1:k2")}), "input data: output of prep changed"),
        (parts(fingerprint="mv1:bb"), "changed code of model in the working tree (was v1)"),
        (parts(entry="pipe/n.py:train"), "entry pipe/m.py:train -> pipe/n.py:train"),
    ],
)
def test_explain_names_what_changed(now: KeyParts, reason: str):
    assert reason in explain(planned(now), parts())


def test_explain_first_run_cached_and_forced():
    assert explain(planned(parts()), None).startswith("no cached output: first run of model@working tree")
    assert explain(planned(parts(), cached=True), parts()) == "the same version, params and inputs ran before"
    assert explain(planned(parts(), forced=True), parts()) == "forced with --force"
    assert "did not save one" in explain(planned(parts()), parts())  # same key, no entry


def test_parse_sets_types_values_and_refuses_mistakes():
    pipeline = Pipeline(
        (StageSpec("model", "m.py:f", params={"C": 1.0}, inputs={"data": "data.raw"}),), {"raw": "r"}, "", {}
    )
    assert parse_sets(["model.C=0.5", "model.k=[1, 2]"], pipeline).stages[0].params == {"C": 0.5, "k": [1, 2]}
    with pytest.raises(errors.RunError, match="given twice"):
        parse_sets(["model.C=1", "model.C=2"], pipeline)
    with pytest.raises(errors.RunError, match="'data' is an input of stage model"):
        parse_sets(["model.data=5"], pipeline)
    with pytest.raises(errors.UnknownStageError, match="unknown stage 'modle'") as info:
        parse_sets(["modle.C=1"], pipeline)
    assert (info.value.hint or "").startswith("did you mean 'model'?")


def test_plan_registers_only_when_asked_and_keys_chain(run_project):
    with Project(run_project.root) as project:
        pipeline = project.pipeline()
        looked = plan(project.registry, project.store, pipeline)  # status: nothing registered
        assert all(p.version is None for p in looked) and project.history.stages() == []
        plans = {p.name: p for p in plan(project.registry, project.store, pipeline, register=True)}
        assert {p.version.version for p in plans.values() if p.version} == {"v1"}
        train = plans["train"]
        assert train.key_parts.inputs["data"] == InputKey(stage="prep", key=plans["prep"].key)
        assert plans["prep"].key_parts.inputs["raw"].data == "data/raw.txt"
        assert [p.name for p in looked] == [p.name for p in plans.values()]
        assert [p.key for p in looked] == [p.key for p in plans.values()]  # registering changes no key


def test_a_bad_pin_fails_before_anything_is_registered(run_project):
    run_project.write(
        "manifest.yaml",
        run_project.read("manifest.yaml").replace(
            "entry: pipe/train.py:train", "entry: pipe/train.py:train\n    version: v7"
        ),
    )
    with Project(run_project.root) as project:
        with pytest.raises(errors.UnknownStageError):
            plan(project.registry, project.store, project.pipeline(), register=True)
        assert project.history.stages() == []
