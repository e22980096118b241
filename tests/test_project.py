"""The façade: one return type per method, names in the manifest's order, relative paths from -C."""

from __future__ import annotations

from modver.engine.diff import ManifestDiff, StageDiff
from modver.project import Project
from modver.record import RunRecord
from modver.results import RunDiff, ShownRun, ShownVersion, StageState
from tests.helpers import mv


def test_each_method_returns_one_type(run_project):
    p = run_project
    with Project(p.root) as project:
        project.index()
        first = project.run()
        second = project.run()
        assert isinstance(first, RunRecord) and all(isinstance(r, RunRecord) for r in project.runs())
        assert isinstance(project.show_version("prep@v1"), ShownVersion)
        assert isinstance(project.show_run(first.run), ShownRun)
        assert isinstance(project.diff_versions("prep@v1"), StageDiff)
        assert all(isinstance(d, StageDiff) for d in project.diff_working())
        assert isinstance(project.diff_manifests("manifest.yaml", "manifest.yaml"), ManifestDiff)
        assert all(isinstance(r, StageState) for r in project.status())
        same = project.diff_runs(first.run, second.run)
        assert isinstance(same, RunDiff)
        assert {k for k, _, _ in same.rows} == {"cached.prep", "cached.other", "cached.train"}


def test_two_runs_that_differ_only_in_time_say_so(run_project):
    p = run_project
    mv(p.root, "run")
    mv(p.root, "run", "--force", "prep", "--force", "other", "--force", "train")
    first, second = (r.run for r in Project(p.root).runs())
    out = mv(p.root, "diff", first, second).stdout
    assert out.strip() == f"runs {first} and {second} differ in nothing but their ids and times"
    assert "declare the same pipeline" not in out


def test_stage_names_follow_the_manifest_then_the_history(run_project):
    p = run_project
    with Project(p.root) as project:
        project.snapshot()
        assert project.stage_names() == ["prep", "other", "train"]
    p.write(
        "manifest.yaml",
        p.read("manifest.yaml").replace("  other:\n    entry: pipe/other.py:other\n    params: {x: 1}\n", ""),
    )
    with Project(p.root) as project:
        assert project.stage_names() == ["prep", "train", "other"]


def test_relative_manifests_start_at_the_folder_given(run_project, tmp_path, monkeypatch):
    p = run_project
    (p.root / "exp").mkdir()
    p.write("exp/b.yaml", p.read("manifest.yaml").replace("scale: 2", "scale: 5"))
    monkeypatch.chdir(tmp_path)  # elsewhere: `modver -C proj` reads paths from proj, as git does
    with Project(p.root) as project:
        assert project.manifest("exp/b.yaml").stages["prep"].params == {"scale": 5}
