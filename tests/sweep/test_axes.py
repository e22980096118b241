"""Sweep axes: --set values with commas or range(), --zip, sweep files, and their errors."""

from __future__ import annotations

import pytest

from modver import errors
from modver.models import MAX_POINTS, SweepSpec
from modver.sweep.axes import load_sweep_file, parse_axes, split_top_level


def test_commas_make_an_axis_and_a_list_stays_one_value():
    spec = parse_axes(["model.C=0.1,1,10", "model.kernel=[1,2]", "augment.noise=0"])
    assert [(a.target, a.values) for a in spec.grid] == [("model.C", (0.1, 1, 10))]
    assert spec.sets == ("model.kernel=[1,2]", "augment.noise=0")
    assert spec.points() == [{"model.C": 0.1}, {"model.C": 1}, {"model.C": 10}]


def test_values_are_typed_like_set_values_and_quotes_keep_commas():
    spec = parse_axes(["a.b=true,'x,y',[1, 2],{k: 1, j: 2},null"])
    assert spec.grid[0].values == (True, "x,y", [1, 2], {"k": 1, "j": 2}, None)
    assert split_top_level("f(1,2),[3,4],5") == ["f(1,2)", "[3,4]", "5"]


def test_a_grid_varies_the_first_axis_slowest():
    spec = parse_axes(["model.C=1,2,3", "augment.noise=0,0.5"])
    assert spec.size() == 6
    assert spec.points()[:3] == [
        {"model.C": 1, "augment.noise": 0},
        {"model.C": 1, "augment.noise": 0.5},
        {"model.C": 2, "augment.noise": 0},
    ]


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("range(0,5)", (0, 1, 2, 3, 4)),
        ("range(1, 10, 3)", (1, 4, 7)),
        ("range(5,0,-2)", (5, 3, 1)),
        ("range(0,1,0.25)", (0.0, 0.25, 0.5, 0.75)),
    ],
)
def test_range_is_an_axis(text, values):
    assert parse_axes([f"model.seed={text}"]).grid[0].values == values


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["model.C=range(0)"], "expected range(START,STOP)"),
        (["model.C=range(0,5,0)"], "non-zero step"),
        (["model.C=range(5,0)"], "is empty"),
        (["model.C=range(a,b)"], "of numbers"),
        (["model.C=1,,2"], "empty value between commas"),
        (["C=1,2"], "expected stage.param=value"),
        (["model.C=1,2", "model.C=3,4"], "given twice"),
        (["model.C=1,2", "model.C=3"], "given twice"),
    ],
)
def test_bad_axes_are_one_clear_error(sets, message):
    with pytest.raises(errors.SweepError) as caught:
        parse_axes(sets)
    assert message in str(caught.value)
    assert caught.value.hint


def test_zip_pairs_axes_of_equal_length():
    spec = parse_axes(["model.C=1,2,3", "model.seed=7,8,9"], zip_axes=True)
    assert spec.points() == [{"model.C": 1, "model.seed": 7}, {"model.C": 2, "model.seed": 8},
                             {"model.C": 3, "model.seed": 9}]  # fmt: skip
    with pytest.raises(errors.SweepError, match="model.C has 3, model.seed has 2"):
        parse_axes(["model.C=1,2,3", "model.seed=7,8"], zip_axes=True)


def test_the_number_of_points_is_bounded_before_any_is_made():
    spec = parse_axes(["a.x=range(0,1000)", "a.y=range(0,1000)"])
    assert spec.size() == 1_000_000
    with pytest.raises(errors.SweepError, match=f"1,000,000 points \\(1000 x 1000\\), more than {MAX_POINTS:,}"):
        spec.points()
    with pytest.raises(errors.SweepError, match="more than"):
        parse_axes(["a.x=range(0,100000000)"])


def test_a_sweep_file_has_grid_and_zip(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text("grid:\n  model.C: [0.1, 1]\nzip:\n  model.seed: [1, 2, 3]\n  model.tag: [a, b, c]\n")
    spec = load_sweep_file(path, ["augment.noise=0,0.5", "model.kernel=rbf"])
    assert [a.target for a in spec.grid] == ["model.C", "augment.noise"]
    assert spec.sets == ("model.kernel=rbf",)
    assert spec.size() == 2 * 2 * 3
    assert spec.points()[0] == {"model.C": 0.1, "augment.noise": 0, "model.seed": 1, "model.tag": "a"}
    assert SweepSpec.from_json(spec.to_json()) == spec


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("grid: [1, 2]\n", "must be a mapping of stage.param"),
        ("grids:\n  model.C: [1]\n", "unknown key 'grids'"),
        ("grid:\n  model.C: 1\n", "must be a non-empty list"),
        ("grid:\n  C: [1, 2]\n", "is not stage.param"),
        ("zip:\n  model.C: [1, 2]\n  model.seed: [1]\n", "as many values each"),
        ("", "must be a mapping with `grid:`"),
        ("grid: {model.C: [1, 2]\n", "sweep.yaml"),
    ],
)
def test_bad_sweep_files_are_one_clear_error(tmp_path, text, message):
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    with pytest.raises(errors.ModverError) as caught:
        load_sweep_file(path)
    assert message in str(caught.value)
    assert str(path) in str(caught.value) or caught.value.where


def test_a_missing_sweep_file_says_so(tmp_path):
    with pytest.raises(errors.SweepError, match="cannot read the sweep file"):
        load_sweep_file(tmp_path / "nope.yaml")


@pytest.mark.parametrize("item", ["C=1", "model.C", "model C=1", ".C=1", "model.=1", "model.C x=1", "model.C =1"])
def test_run_and_sweep_read_set_with_one_parser(item):
    from modver.manifest import split_set

    assert split_set(item) is None
    with pytest.raises(errors.SweepError, match="expected stage.param=value"):
        parse_axes([item])
    assert split_set("model.C=a=b") == ("model.C", "a=b")  # the first `=` ends the target
