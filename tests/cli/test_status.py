"""`modver status` says what each stage's working tree is compared with, and fails loudly."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import cli as modver


def status(root: Path, code: int = 0) -> dict[str, dict]:
    return {row["stage"]: row for row in json.loads(modver(root, "status", "--json", code=code).stdout)}


def test_an_unpinned_stage_is_compared_with_its_last_runs_version(run_project):
    p = run_project
    old = p.read("pipe/util.py")
    p.write("pipe/util.py", old.replace("FACTOR = 3", "FACTOR = 4"))
    p.commit("bigger factor")
    modver(p.root, "index")  # prep v1 (the first pipeline's), v2 (FACTOR 3), v3 (FACTOR 4)
    p.write("pipe/util.py", old)  # back to v1's code, as a fresh clone of an older commit would be
    row = status(p.root)["prep"]
    assert (row["working"], row["changed"], row["compared_with"], row["compared_source"]) == ("v2", False, None, None)
    assert "unchanged" in modver(p.root, "status").stdout.splitlines()[1]
    modver(p.root, "run")  # the run uses v2
    assert status(p.root)["prep"]["changed"] is False
    p.write("pipe/util.py", old.replace("FACTOR = 3", "FACTOR = 4"))  # v3's code: not what the last run used
    row = status(p.root)["prep"]
    assert (row["working"], row["changed"], row["compared_with"], row["compared_source"]) == (
        "v3",
        True,
        "v2",
        "last run",
    )
    line = next(line for line in modver(p.root, "status").stdout.splitlines() if line.startswith("prep"))
    assert "v2 (last run)" in line and "changed" in line


def test_a_pin_that_cannot_resolve_is_reported_in_its_row_and_run_registers_nothing(git_project):
    p = git_project
    p.write(
        "manifest.yaml", "stages:\n  prep:\n    entry: s.py:prep\n  model:\n    entry: s.py:model\n    version: v1\n"
    )
    p.write("s.py", "def prep():\n    return 1\n\n\ndef model():\n    return 2\n")
    p.commit("a hand-written manifest pins model before anything is registered")
    rows = status(p.root, code=1)
    assert rows["prep"].get("error") is None and rows["prep"]["changed"] is True
    assert "pin v1 does not resolve: unknown stage 'model'" in rows["model"]["error"]
    shown = modver(p.root, "status", code=1)
    assert "error (below)" in shown.stdout  # the table names it; the message is whole under it
    assert "error: model: pin v1 does not resolve: unknown stage 'model'" in shown.stderr
    done = modver(p.root, "run", code=1)
    assert "unknown stage 'model'" in done.stderr
    assert p.git("for-each-ref", "refs/modver") == ""  # prep was not snapshotted before the failure


def test_a_missing_entry_file_makes_status_exit_1(pipeline_project):
    p = pipeline_project
    (p.root / "pipe" / "train.py").unlink()
    rows = status(p.root, code=1)
    assert "pipe/train.py" in rows["train"]["error"]


def test_the_store_is_git_ignored_by_whichever_command_makes_it(git_project):
    p = git_project
    p.write("manifest.yaml", "stages:\n  s:\n    entry: s.py:f\n")
    p.write("s.py", "def f():\n    return 1\n")
    p.commit("no modver init, no .gitignore")
    modver(p.root, "run")
    assert (p.root / ".modver" / "runs").is_dir()
    assert p.git("status", "--porcelain", "--untracked-files=all") == ""
    assert not (p.root / ".gitignore").exists()  # the user's files are not edited


def test_a_missing_other_manifest_hints_at_the_path(pipeline_project):
    done = modver(pipeline_project.root, "status", "other.yaml", code=1)
    assert "no manifest at" in done.stderr and "check the path" in done.stderr


def test_a_data_input_that_cannot_be_read_is_reported_in_its_stages_row(run_project):
    p = run_project
    (p.root / "data" / "raw.txt").unlink()
    rows = status(p.root, code=1)
    assert "data/raw.txt" in rows["prep"]["error"] and rows["other"].get("error") is None


def test_a_fifo_as_the_manifest_is_refused_at_once(pipeline_project):
    import os

    os.mkfifo(pipeline_project.root / "fifo.yaml")
    done = modver(pipeline_project.root, "status", "fifo.yaml", code=1)  # it used to wait forever
    assert "not a regular file" in done.stderr


def test_runs_where_matching_nothing_says_so(run_project):
    modver(run_project.root, "run")
    assert "No run matches --where" in modver(run_project.root, "runs", "--where", "status == 'failed'").stdout
