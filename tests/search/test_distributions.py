"""Distributions in --set and sweep files (issue 19, item 1), through the real CLI: parsed with
their types, mixed with fixed values and axes, and every malformed one refused before anything
runs — no study, no sweep record, no run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modver.manifest import parse_scalar
from modver.models import Distribution, SweepSpec
from modver.sweep.axes import parse_axes, render_value
from tests.helpers import mv
from tests.sweep.pipeline import write_sweep_project


@pytest.fixture
def sweep_project(git_project):
    return write_sweep_project(git_project)


def _nothing_made(root: Path) -> None:
    store = root / ".modver"
    for folder in ("studies", "sweeps", "runs"):
        made = [p.name for p in (store / folder).iterdir()] if (store / folder).is_dir() else []
        assert not [n for n in made if not n.startswith(".")], (folder, made)


def test_distributions_keep_their_types_beside_axes_and_fixed_values():
    spec = parse_axes([
        "model.C=loguniform(1e-4,1)", "model.k=int(1,64)", "model.w=int(1,1024,log)", "model.opt=choice(adam,sgd,1)",
        "augment.noise=0.0,0.1", "model.sleep=0",
    ])  # fmt: skip
    assert spec.search == (
        Distribution("model.C", "loguniform", (0.0001, 1.0)),
        Distribution("model.k", "int", (1, 64)),
        Distribution("model.w", "int", (1, 1024), log=True),
        Distribution("model.opt", "choice", ("adam", "sgd", 1)),
    )
    assert [type(v) for v in spec.search[3].args] == [str, str, int]
    assert [a.target for a in spec.grid] == ["augment.noise"] and spec.sets == ("model.sleep=0",)
    assert SweepSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec  # a sweep record keeps them
    assert "search" not in parse_axes(["model.C=1,2"]).to_json()  # a grid's record is as before


@pytest.mark.parametrize("value", [0.001, 64, True, None, "adam", "1", "a,b", "true"])
def test_a_best_param_rendered_as_a_set_value_reads_back_as_itself(value):
    assert parse_scalar(render_value(value)) == value
    assert type(parse_scalar(render_value(value))) is type(value)


def test_a_sweep_file_holds_distributions_under_search(sweep_project):
    root = sweep_project.root
    sweep_project.write("search.yaml", "grid:\n  augment.noise: [0.0, 0.5]\nsearch:\n  model.C: uniform(0.5, 1.5)\n")
    plan = json.loads(mv(root, "sweep", "--file", "search.yaml", "--optimize", "accuracy", "--trials", "3",
                         "--dry-run", "--json").stdout)  # fmt: skip
    assert plan["space"] == {"augment.noise": "choice(0.0,0.5)", "model.C": "uniform(0.5,1.5)"}
    assert plan["optimize"]["trials"] == 3 and plan["optimize"]["direction"] == "maximize"
    sweep_project.write("bad.yaml", "search:\n  model.C: [1, 2]\n")
    done = mv(root, "sweep", "--file", "bad.yaml", "--optimize", "accuracy", "--trials", "3", code=1)
    assert "search: model.C must be a distribution" in done.stderr
    _nothing_made(root)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "model.C=uniform(1)"], "bad uniform(1): expected uniform(LOW,HIGH) of numbers"),
        (["--set", "model.C=uniform(2,1)"], "uniform(2,1) needs LOW < HIGH"),
        (["--set", "model.C=loguniform(0,1)"], "is on a log scale, so LOW must be above 0"),
        (["--set", "model.C=int(1.5,3)"], "bad int(1.5,3): expected int(LOW,HIGH) or int(LOW,HIGH,log)"),
        (["--set", "model.C=int(1,3,lin)"], "bad int(1,3,lin)"),
        (["--set", "model.C=choice([1],2)"], "each choice must be one plain value"),
        (["--set", "model.C=choice(1,1)"], "gives a value twice"),
        (["--set", "model.C=uniform(,1)"], "has an empty argument"),
        (["--set", "model.C=uniform(0,1)", "--set", "model.C=2"], "--set model.C is given twice"),
        (["--set", "model.nope=uniform(0,1)"], "nope"),  # not a param of the stage: checked from its source
        (["--set", "model.C=uniform(0,1)", "--zip", "--set", "augment.noise=1,2"], "a search does not pair axes"),
        (["--set", "model.C=uniform(0,1)", "--sampler", "grid"], "--sampler grid needs values to go through"),
        (["--set", "model.C=choice(1,2)", "--sampler", "grid", "--trials", "3"], "the grid has 2 points"),
        (["--set", "model.C=uniform(0,1)", "--sampler", "anneal"], "unknown --sampler 'anneal'"),
        (["--set", "model.C=uniform(0,1)", "--study", ".hidden"], "bad --study name"),
    ],
)
def test_a_bad_search_is_one_clear_error_before_anything_runs(sweep_project, args, message):
    root = sweep_project.root
    trials = [] if "--trials" in args else ["--trials", "2"]
    done = mv(root, "sweep", "--optimize", "accuracy", *trials, *args, "--jobs", "1", code=1)
    assert message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    _nothing_made(root)


def test_distributions_need_a_search_and_a_search_needs_its_trials(sweep_project):
    root = sweep_project.root
    done = mv(root, "sweep", "--set", "model.C=uniform(0,1)", "--jobs", "1", code=1)
    assert "--set model.C=uniform(0.0,1.0) is a distribution: only a search draws from it" in done.stderr
    assert "--optimize METRIC --trials N" in done.stderr
    done = mv(root, "sweep", "--set", "model.C=uniform(0,1)", "--optimize", "accuracy", code=1)
    assert "--optimize needs --trials N" in done.stderr
    done = mv(root, "sweep", "--set", "model.C=1,2", "--seed", "3", code=1)
    assert "--seed is an option of a search" in done.stderr
    _nothing_made(root)


def test_a_search_s_progress_line_names_trials_and_their_live_values():
    from modver.cli._output import _progress_text
    from modver.store.sweepstore import Best
    from modver.sweep.driver import Progress

    line = _progress_text(Progress(20, 5, 2, 1, 12, 10, 3, (4, 0.93), (), {6: (3, 0.81), 7: (None, 0.5)}),
                          Best("accuracy"), "trial")  # fmt: skip
    assert line.startswith("trials 5/20 done, 2 running, 1 failed")
    assert "best accuracy 0.93 (trial 4)" in line and "live t6 0.81@3, t7 0.5" in line
