"""Tables that fit: every table of the CLI at 60, 80, 100 and 200 columns (COLUMNS, no terminal),
numbers whole, hidden columns named, headers unambiguous, run ids unique prefixes, cached runs
marked; `runs --columns` and `--last`."""

from __future__ import annotations

import pytest

from tests.helpers import cli, mv, mv_json

WIDTHS = (60, 80, 100, 200)


@pytest.fixture(scope="module")
def runs_project(tmp_path_factory: pytest.TempPathFactory):
    """The three-stage pipeline run four times: two params changed, the last run all cached."""
    from tests.conftest import PIPELINE, RUN_PIPELINE
    from tests.helpers import GitProject

    root = tmp_path_factory.mktemp("tables") / "proj"
    root.mkdir()
    p = GitProject(root)
    for path, text in {**PIPELINE, **RUN_PIPELINE}.items():
        p.write(path, text)
    p.write(".gitignore", ".modver/\n")
    p.commit("pipeline")
    mv(root, "index")
    for sets in ([], ["--set", "prep.scale=5"], ["--set", "other.x=7"], ["--set", "other.x=7"]):
        mv(root, "run", *sets)
    return p


def lines(root, width: int, *args: str) -> list[str]:
    return cli(root, *args, env={"COLUMNS": str(width), "NO_COLOR": "1"}).stdout.splitlines()


@pytest.mark.parametrize("width", WIDTHS)
def test_every_table_fits_the_width(runs_project, width: int):
    root = runs_project.root
    records = mv_json(root, "runs")
    for args in (["runs"], ["log"], ["status"], ["show", records[-1]["run"]], ["show", "prep@v1"]):
        out = lines(root, width, *args)
        assert out, args
        if args[0] == "show":  # its tables (metadata lines and source code are shown as they are)
            start = next(i for i, line in enumerate(out) if line.startswith(("definition", "stage")))
            out = out[start : out.index("", start) if "" in out[start:] else None]
        too_wide = [line for line in out if len(line) > width and not line.startswith("  ")]
        assert not too_wide, f"{args} at {width} columns:\n" + "\n".join(too_wide)


@pytest.mark.parametrize("width", WIDTHS)
def test_runs_shows_numbers_whole_and_names_what_it_hid(runs_project, width: int):
    root = runs_project.root
    records = mv_json(root, "runs")
    out = lines(root, width, "runs")
    header = out[0].split()
    assert header[0] == "run" and len(header) == len(set(header))  # no header twice
    assert not any(h.startswith(("param.", "metric.", "version.")) for h in header)  # short, unambiguous
    for record, line in zip(records, out[1:]):
        cells = line.split()
        assert cells[0] == record["run"][: len(cells[0])] and len(cells[0]) < len(record["run"])
        if "mean" in header:
            assert f"{record['metrics']['mean']:.4g}" in cells
    note = "\n".join(out[len(records) + 1 :])
    if width <= 80:
        assert "hidden to fit" in note and "--columns" in note
        assert "mean" in header  # metrics are the last to go
    if width == 200:
        assert note == ""
        assert {"prep.scale", "other.x", "mean", "loss", "cached", "started"} <= set(header)


def test_run_id_prefixes_name_one_run_and_cached_runs_are_marked(runs_project):
    root = runs_project.root
    records = mv_json(root, "runs")
    out = lines(root, 200, "runs")
    header = out[0].split()
    cached = [line.split()[header.index("cached")] for line in out[1:]]
    assert cached[-1] == "all" and records[-1]["cached"] == {"prep": True, "other": True, "train": True}
    assert all(c != "all" for c in cached[:-1])
    prefix = out[-1].split()[0]
    assert mv_json(root, "show", prefix)["run"] == records[-1]["run"]


def test_columns_and_last(runs_project):
    root = runs_project.root
    records = mv_json(root, "runs")
    out = lines(root, 80, "runs", "--columns", "run,other.*,mean", "--last", "2")
    assert out[0].split() == ["run", "other.x", "mean"] and len(out) == 3
    assert out[1].split()[1] == "7" and out[1].split()[0] in records[-2]["run"]
    full = mv_json(root, "runs", "--last", "1")
    assert [r["run"] for r in full] == [records[-1]["run"]] and full[0]["manifest"]["content"]  # whole records
    assert [r["run"] for r in mv_json(root, "runs", "--where", "other.x == 7", "--last", "1")] == [records[-1]["run"]]
    assert mv_json(root, "runs", "--last", "0") == []
    error = mv(root, "runs", "--columns", "run,meen", code=1).stderr
    assert "no column matches 'meen'" in error and "did you mean 'mean'" in error
    csv = cli(root, "runs", "--csv", env={"COLUMNS": "60"}).stdout.splitlines()
    assert csv[0].startswith("run,status,started,duration") and len(csv) == 5  # CSV: every column, never fitted


def test_a_damaged_runs_index_changes_nothing_the_user_sees(runs_project):
    root = runs_project.root
    before = (lines(root, 200, "runs"), mv_json(root, "runs"))
    index = root / ".modver" / "cache" / "runs-index.sqlite"
    assert index.is_file()
    index.write_bytes(b"\x00garbage" * 100)
    assert (lines(root, 200, "runs"), mv_json(root, "runs")) == before
    assert index.read_bytes()[:15] == b"SQLite format 3"  # rebuilt


def test_the_sweeps_table_fits_every_width(git_project):
    from tests.sweep.pipeline import write_sweep_project

    root = write_sweep_project(git_project).root
    mv(root, "sweep", "--set", "model.C=0.5,1,2", "--set", "augment.noise=0,0.1", "--jobs", "1")
    mv(root, "sweep", "--set", "model.C=3,4", "--jobs", "1")
    for width in WIDTHS:
        out = lines(root, width, "sweeps", "--best", "accuracy")
        assert out[0].split()[:2] == ["sweep", "status"], out
        assert all(len(line) <= width for line in out), f"at {width} columns:\n" + "\n".join(out)
        rows = [line for line in out if line.split() and line.split()[0][:8].isdigit()]
        assert len(rows) == 2 and all("succeeded" in row for row in rows), out
        if width >= 200:  # wide enough for every column: nothing hidden
            assert "best accuracy" in out[0] and "hidden" not in "\n".join(out)
