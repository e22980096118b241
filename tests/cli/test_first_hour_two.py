"""What a newcomer met in the first hour (issue 21): tables that tell runs apart at 80 columns,
``1`` and ``1.0`` one cache key, ``run --dry-run``, ``index`` with no stages, ``modver.runs``
with the table's filters. Each through the real CLI on a real git repository."""

from __future__ import annotations

import json

import modver
from tests.cli._first_hour import FILES, piped
from tests.helpers import GitProject, cli


def test_piped_tables_fit_80_columns_and_keep_every_varying_param(first_hour: GitProject) -> None:
    cli(first_hour.root, "sweep", "--set", "model.C=0.5,2,8", "--set", "augment.copies=1,2")
    for args in (("runs", "--sweep", "latest"), ("runs", "--last", "5")):
        out = piped(first_hour.root, *args)
        lines = out.splitlines()
        assert max(len(line) for line in lines) <= 80, out
        header = lines[0].split()
        # both swept axes and the metrics: the columns that tell the rows apart are never the ones hidden
        assert {"copies", "C", "accuracy", "loss"} <= {h.rsplit(".", 1)[-1] for h in header}, out
        assert "noise" not in out.splitlines()[0]  # a param constant across the rows says nothing


def test_requested_columns_are_never_hidden_and_constant_glob_matches_come_after_varying_ones(
    first_hour: GitProject,
) -> None:
    cli(first_hour.root, "sweep", "--set", "model.C=0.5,2", "--set", "augment.copies=1,2")
    out = piped(first_hour.root, "runs", "--columns", "run,param.*,metric.*")
    header = out.splitlines()[0].split()
    short = [h.rsplit(".", 1)[-1] for h in header]
    assert "accuracy" in short and "loss" in short, out  # asked for: shown
    if "noise" in short:  # a constant param matched by a glob comes after every varying one
        assert short.index("noise") > short.index("C") and short.index("noise") > short.index("copies"), out
    else:
        assert "noise" in out.split("hidden", 1)[1], out  # hidden, and the note names it


def test_an_int_on_the_command_line_takes_the_float_type_of_the_manifest_default(first_hour: GitProject) -> None:
    first = json.loads(cli(first_hour.root, "run", "--json").stdout)
    assert not any(first["cached"].values())
    again = json.loads(cli(first_hour.root, "run", "--set", "model.C=1", "--json").stdout)
    assert all(again["cached"].values()), again["cached"]  # 1 over C: 1.0 is the same key
    assert again["params"]["model"]["C"] == 1.0 and isinstance(again["params"]["model"]["C"], float)
    other = json.loads(cli(first_hour.root, "run", "--set", "augment.copies=2", "--json").stdout)
    assert other["params"]["augment"]["copies"] == 2 and isinstance(other["params"]["augment"]["copies"], int)


def test_dry_run_shows_the_plan_and_executes_nothing(first_hour: GitProject) -> None:
    cli(first_hour.root, "run")
    before = json.loads(cli(first_hour.root, "runs", "--json").stdout)
    out = cli(first_hour.root, "run", "--dry-run", "--set", "model.C=3").stdout
    assert "augment@v1: from the cache" in out and "model@v1: would run" in out, out
    assert "param C 1.0 -> 3.0" in out and "1 of 2 stages would run" in out, out
    plan = json.loads(cli(first_hour.root, "run", "--dry-run", "--json").stdout)
    assert [(p["stage"], p["action"]) for p in plan] == [("augment", "cached"), ("model", "cached")]
    assert json.loads(cli(first_hour.root, "runs", "--json").stdout) == before  # nothing recorded


def test_cached_explain_does_not_repeat_itself(first_hour: GitProject) -> None:
    cli(first_hour.root, "run")
    out = cli(first_hour.root, "run", "--explain").stdout
    assert "- model@v1: cached — the same version, params and inputs ran before" in out, out
    assert "cached — cached" not in out


def test_index_with_no_stages_says_so(git_project: GitProject) -> None:
    cli(git_project.root, "init")
    git_project.commit("init")
    out = cli(git_project.root, "index").stdout
    assert "declares no stages yet" in out and "Up to date" not in out, out


def test_modver_runs_takes_the_table_filters(first_hour: GitProject) -> None:
    cli(first_hour.root, "sweep", "--set", "model.C=0.5,2,8")
    frame = modver.runs(first_hour.root, where="metric.accuracy > 0.01", sort="-metric.accuracy", last=2)
    assert list(frame["param.model.C"]) == [8.0, 2.0], frame


def test_the_run_summary_line_fits_80_columns(first_hour: GitProject) -> None:
    out = piped(first_hour.root, "run")
    summary = next(line for line in out.splitlines() if line.startswith("run "))
    assert summary.endswith("(0/2 from cache)") and len(summary) <= 80, summary
    again = next(line for line in piped(first_hour.root, "run").splitlines() if line.startswith("run "))
    assert again.endswith("(2/2 from cache)") and len(again) <= 80, again


def test_diff_against_the_working_tree_registers_nothing(first_hour: GitProject) -> None:
    cli(first_hour.root, "index")
    first_hour.write("pipe/model.py", FILES["pipe/model.py"].replace("return C", "return C * 2"))
    before = json.loads(cli(first_hour.root, "log", "model", "--json").stdout)
    out = cli(first_hour.root, "diff", "model@v1", "model@working").stdout
    assert "model@v1 -> working tree" in out and "+    return C * 2" in out, out
    assert "return C * 2" in cli(first_hour.root, "diff", "model@v1").stdout
    assert json.loads(cli(first_hour.root, "log", "model", "--json").stdout) == before  # no version made
