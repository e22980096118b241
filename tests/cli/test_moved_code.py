"""Moved code still runs: a version runs under the entry path it was stored with."""

from __future__ import annotations

import json

from tests.helpers import cli as modver


def move_prep(p) -> None:
    """`git mv` the prep stage's file and point the manifest at the new path."""
    p.git("mv", "pipe/prep.py", "pipe/preprocessing.py")
    p.write("manifest.yaml", p.read("manifest.yaml").replace("pipe/prep.py:prep", "pipe/preprocessing.py:prep"))
    p.commit("move prep")


def test_a_moved_stage_file_keeps_its_version_and_runs(run_project):
    p = run_project
    first = json.loads(modver(p.root, "run", "--json").stdout)
    move_prep(p)
    done = modver(p.root, "run", "--json", "--explain")
    record = json.loads(done.stdout)
    assert record["status"] == "succeeded"
    assert record["versions"]["prep"] == first["versions"]["prep"] == "v1"  # same fingerprint, same number
    assert record["fingerprints"]["prep"] == first["fingerprints"]["prep"]
    assert record["metrics"] == first["metrics"]
    assert (
        "v1 was stored as pipe/prep.py:prep: it runs from there (the manifest says pipe/preprocessing.py:prep)"
        in done.stderr
    )
    log = json.loads(modver(p.root, "log", "prep", "--json").stdout)
    assert [v["version"] for v in log] == ["v1"]


def test_a_pinned_version_runs_after_its_file_moved(run_project):
    p = run_project
    modver(p.root, "snapshot")
    modver(p.root, "pin", "prep@v1")
    move_prep(p)
    p.write("pipe/preprocessing.py", p.read("pipe/preprocessing.py").replace("* scale", "* scale * 10"))
    p.commit("change prep")
    record = json.loads(modver(p.root, "run", "--json", "--force", "prep").stdout)
    assert record["status"] == "succeeded" and record["versions"]["prep"] == "v1"
    shown = modver(p.root, "show", "prep@v1").stdout
    assert "entry:   pipe/prep.py:prep" in shown
    assert "the manifest now declares pipe/preprocessing.py:prep: the version runs from its stored path" in shown
    as_json = json.loads(modver(p.root, "show", "prep@v1", "--json").stdout)
    assert as_json["entry"] == "pipe/prep.py:prep" and as_json["declared_entry"] == "pipe/preprocessing.py:prep"
