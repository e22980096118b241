"""Every unknown name gets the same did-you-mean; the same --set twice is an error."""

from __future__ import annotations

import json

import pytest

from tests.helpers import cli as modver


@pytest.fixture
def ran(run_project):
    modver(run_project.root, "run")
    modver(run_project.root, "tag", "train@v1", "baseline")
    return run_project


@pytest.mark.parametrize(
    ("args", "suggestion"),
    [
        (["log", "tarin"], "did you mean 'train'?"),  # a stage
        (["pin", "tarin@v1"], "did you mean 'train'?"),
        (["show", "train@baselin"], "did you mean 'baseline'?"),  # a tag
        (["show", "train@lastest"], "did you mean 'latest'?"),  # a version word
        (["run", "--set", "tarin.x=1"], "did you mean 'train'?"),
        (["run", "--force", "tarin"], "did you mean 'train'?"),
        (["run", "--set", "prep.scael=3"], "did you mean 'scale'?"),  # a param
        (["runs", "--sort", "metric.maen"], "did you mean 'metric.mean'?"),  # a column
    ],
)
def test_an_unknown_name_gets_a_suggestion(ran, args, suggestion):
    done = modver(ran.root, *args, code=1)
    assert suggestion in done.stderr and "Traceback" not in done.stderr


def test_an_unknown_run_gets_the_closest_run(ran):
    run_id = json.loads(modver(ran.root, "runs", "--json").stdout)[0]["run"]
    typo = run_id[:12] + ("0" if run_id[12] != "0" else "1") + run_id[13:]
    done = modver(ran.root, "show", typo, code=1)
    assert f"did you mean {run_id!r}?" in done.stderr


def test_the_same_set_twice_is_an_error_and_records_nothing(ran):
    before = len(json.loads(modver(ran.root, "runs", "--json").stdout))
    done = modver(ran.root, "run", "--set", "other.x=1", "--set", "other.x=2", code=1)
    assert "--set other.x is given twice" in done.stderr
    assert len(json.loads(modver(ran.root, "runs", "--json").stdout)) == before


def test_run_set_with_a_space_in_its_target_is_the_same_error_as_sweeps(run_project):
    from tests.helpers import mv

    for command in ("run", "sweep"):
        error = mv(run_project.root, command, "--set", "prep.scale =3", code=1).stderr
        assert "bad --set 'prep.scale =3': expected stage.param=value" in error, error
