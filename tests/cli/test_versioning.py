"""End-to-end: the versioning commands through the real CLI on real git repositories."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.helpers import mv, mv_json


def test_index_numbers_versions_in_commit_order(pipeline_project):
    p = pipeline_project
    first = p.git("rev-parse", "HEAD")
    p.write("pipe/util.py", p.read("pipe/util.py").replace("FACTOR = 3", "FACTOR = 4"))
    second = p.commit("bigger factor")
    p.write("pipe/train.py", "def train(data):\n    return max(data)\n")
    third = p.commit("max instead of mean")

    out = mv_json(p.root, "index")
    assert out["commits"] == 3
    prep = mv_json(p.root, "log", "prep")
    assert [(v["version"], v["origin"]) for v in prep] == [("v1", first), ("v2", second)]
    train = mv_json(p.root, "log", "train")
    assert [(v["version"], v["origin"]) for v in train] == [("v1", first), ("v2", third)]
    assert train[1]["message"] == "max instead of mean"
    assert all(v["fingerprint"].startswith("mv1:") for v in prep + train)


def test_index_is_incremental(pipeline_project):
    p = pipeline_project
    assert mv_json(p.root, "index")["walked"] == 1
    again = mv_json(p.root, "index")
    assert again["walked"] == 0 and again["new_versions"] == []
    p.write("pipe/train.py", "def train(data):\n    return min(data)\n")
    p.commit("min")
    third = mv_json(p.root, "index")
    assert third["walked"] == 1
    assert [v["version"] for v in third["new_versions"]] == ["v2"]


def test_formatting_only_commit_is_not_a_version(pipeline_project):
    p = pipeline_project
    p.write(
        "pipe/prep.py",
        "from pipe.util import helper  # the helper\n\n\n"
        "def prep(raw, scale = 1):\n"
        '    """Prepare the data, reformatted."""\n'
        "    return [ (helper(v) * scale) for v in raw ]\n",
    )
    p.commit("reformat")
    mv(p.root, "index")
    assert len(mv_json(p.root, "log", "prep")) == 1
    out = mv(p.root, "diff", "prep@v1").stdout
    assert "formatting only" in out


def test_a_snapshot_of_committed_code_records_its_commit(pipeline_project):
    p = pipeline_project
    p.write("pipe/util.py", p.read("pipe/util.py") + "\n# a comment: same meaning as HEAD\n")
    (prep, train) = mv_json(p.root, "snapshot")  # no index yet: the code is HEAD's
    assert prep["origin"] == p.git("rev-parse", "HEAD") and prep["message"] == "initial pipeline"
    assert train["origin"] == prep["origin"]
    p.write("pipe/util.py", p.read("pipe/util.py").replace("x * FACTOR", "x * FACTOR + 1"))
    p.commit("plus one")
    p.write("pipe/util.py", p.read("pipe/util.py").replace("x * FACTOR + 1", "x * FACTOR + 2"))
    (prep, train) = mv_json(p.root, "snapshot")
    assert prep["new"] and prep["origin"] is None  # uncommitted code: a working-tree version
    assert not train["new"] and train["origin"] == p.git("rev-parse", "HEAD~1")


def test_snapshot_then_status_and_pin(pipeline_project):
    p = pipeline_project
    mv(p.root, "index")
    p.write("pipe/util.py", p.read("pipe/util.py").replace("x * FACTOR", "x * FACTOR + 1"))
    status = {row["stage"]: row for row in mv_json(p.root, "status")}
    assert status["prep"]["changed"] is True and status["prep"]["working"] is None
    assert status["train"]["changed"] is False and status["train"]["working"] == "v1"

    snap = mv_json(p.root, "snapshot", "prep", "--message", "try +1")
    assert snap[0]["version"] == "v2" and snap[0]["origin"] is None and snap[0]["new"] is True
    again = mv_json(p.root, "snapshot", "prep")
    assert again[0]["version"] == "v2" and again[0]["new"] is False

    before = p.read("manifest.yaml")
    mv(p.root, "pin", "prep@v1")
    after = p.read("manifest.yaml")
    assert "version: v1" in after
    assert "# the first stage" in after and "# demo manifest" in after
    assert len(after.splitlines()) == len(before.splitlines()) + 1
    status = {row["stage"]: row for row in mv_json(p.root, "status")}
    assert status["prep"]["pinned"] == "v1" and status["prep"]["working"] == "v2"
    assert status["prep"]["changed"] is True
    mv(p.root, "unpin", "prep")
    assert p.read("manifest.yaml") == before


def test_diff_shows_the_changed_helper(pipeline_project):
    p = pipeline_project
    mv(p.root, "index")
    p.write("pipe/util.py", p.read("pipe/util.py").replace("FACTOR = 3", "FACTOR = 5"))
    out = mv(p.root, "diff").stdout
    assert "prep: changed" in out
    assert "-FACTOR = 3" in out and "+FACTOR = 5" in out
    assert "train: unchanged" in out
    data = mv_json(p.root, "diff")
    prep = next(d for d in data if d["stage"] == "prep")
    assert any(c["name"] == "FACTOR" and c["status"] == "changed" for c in prep["changes"])


def test_version_references(pipeline_project):
    p = pipeline_project
    first = p.git("rev-parse", "HEAD")
    p.write("pipe/train.py", "def train(data):\n    return min(data)\n")
    p.commit("min")
    mv(p.root, "index")
    show = lambda ref: mv_json(p.root, "show", ref)  # noqa: E731
    assert show("train@v1")["version"] == "v1"
    assert show("train@latest")["version"] == "v2"
    assert show(f"train@git:{first[:8]}")["version"] == "v1"
    assert show("train@git:HEAD~1")["version"] == "v1"
    fp = show("train@v2")["fingerprint"]
    assert show(f"train@{fp.split(':')[1][:8]}")["version"] == "v2"
    mv(p.root, "tag", "train@v1", "baseline")
    assert show("train@baseline")["version"] == "v1"
    assert "baseline" in mv_json(p.root, "log", "train")[0]["tags"]
    # working: registered on use, so the pin stays stable
    p.write("pipe/train.py", "def train(data):\n    return len(data)\n")
    assert show("train@working")["version"] == "v3"
    assert show("train@working")["version"] == "v3"


def test_show_lists_closure_and_source(pipeline_project):
    p = pipeline_project
    mv(p.root, "index")
    shown = mv_json(p.root, "show", "prep@v1")
    assert "pipe/prep.py" in shown["files"] and "pipe/util.py" in shown["files"]
    names = {d["name"] for d in shown["definitions"]}
    assert {"prep", "helper", "FACTOR"} <= names
    assert "unused" not in names
    text = mv(p.root, "show", "prep@v1").stdout
    assert "def helper(x):" in text


def test_version_survives_deleted_code(pipeline_project):
    p = pipeline_project
    mv(p.root, "index")
    p.git("rm", "-q", "pipe/util.py")
    p.write("pipe/prep.py", "def prep(raw, scale=1):\n    return raw\n")
    p.commit("drop the helper")
    text = mv(p.root, "show", "prep@v1").stdout
    assert "FACTOR = 3" in text
    assert "-FACTOR = 3" in mv(p.root, "diff", "prep@v1").stdout


def test_commands_never_touch_branches_head_index_or_files(pipeline_project):
    p = pipeline_project
    p.write("pipe/train.py", "def train(data):\n    return 0\n")  # a dirty, uncommitted change
    before = p.state()
    files_before = {f: p.read(f) for f in ["pipe/train.py", "pipe/prep.py", "pipe/util.py"]}
    for args in (
        ["index"],
        ["snapshot"],
        ["log"],
        ["status"],
        ["show", "prep@v1"],
        ["diff"],
        ["diff", "prep@v1"],
        ["tag", "prep@v1", "first"],
        ["index", "--all"],
    ):
        mv(p.root, *args)
    assert p.state() == before
    assert {f: p.read(f) for f in files_before} == files_before
    refs = p.git("for-each-ref", "--format=%(refname)", "refs/modver")
    assert "refs/modver/stages/prep" in refs and "refs/modver/tags/prep/first" in refs
    p.git("fsck", "--no-progress")


def test_empty_repository_is_normal(git_project):
    p = git_project
    mv(p.root, "init")
    p.write("stage.py", "def go(x=1):\n    return x\n")
    p.write("manifest.yaml", "stages:\n  go:\n    entry: stage.py:go\n")
    assert "nothing to index" in mv(p.root, "index").stdout.lower()
    snap = mv_json(p.root, "snapshot")
    assert snap[0]["version"] == "v1"


def test_init_creates_store_gitignore_and_manifest(tmp_path):
    folder = tmp_path / "fresh"
    folder.mkdir()
    mv(folder, "init")
    assert (folder / ".git").is_dir() and (folder / ".modver").is_dir()
    assert ".modver/" in (folder / ".gitignore").read_text()
    assert (folder / "manifest.yaml").exists()
    mv(folder, "init")  # idempotent
    assert (folder / ".gitignore").read_text().count(".modver") == 1
    assert mv_json(folder, "status") == []


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("manifest", "needle"),
    [
        ("stages: [oops", "manifest.yaml"),
        ("stages:\n  prep:\n    entyr: pipe/prep.py:prep\n", "entry"),
        ("stages:\n  prep:\n    params: {}\n", "entry"),
        ("stages:\n  'bad name':\n    entry: pipe/prep.py:prep\n", "bad name"),
    ],
)
def test_bad_manifest_is_one_clear_error(pipeline_project, manifest, needle):
    p = pipeline_project
    mv(p.root, "index")
    p.write("manifest.yaml", manifest)
    result = mv(p.root, "status", code=1)
    assert "Error:" in result.stderr and needle in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert p.git("for-each-ref", "refs/modver/stages/prep")  # nothing recorded was lost


def test_missing_entry_and_syntax_error(pipeline_project):
    p = pipeline_project
    p.write("pipe/prep.py", "def prep(raw:\n    return raw\n")
    result = mv(p.root, "snapshot", "prep", code=1)
    assert "pipe/prep.py:1:" in result.stderr and "^" in result.stderr
    p.write("pipe/prep.py", "def other():\n    return 1\n")
    result = mv(p.root, "snapshot", "prep", code=1)
    assert "prep" in result.stderr and "other" in result.stderr


def test_unknown_stage_and_version_list_what_exists(pipeline_project):
    p = pipeline_project
    mv(p.root, "index")
    result = mv(p.root, "show", "prep@v9", code=1)
    assert "v1" in result.stderr and "modver log prep" in result.stderr
    result = mv(p.root, "show", "nope@v1", code=1)
    assert "prep" in result.stderr and "train" in result.stderr
    result = mv(p.root, "pin", "nope@v1", code=1)
    assert "nope" in result.stderr


def test_not_a_repository(tmp_path):
    result = mv(tmp_path, "status", code=1)
    assert "not a git repository" in result.stderr.lower() or "not inside a git" in result.stderr.lower()
    assert "modver init" in result.stderr


def test_debug_shows_traceback(pipeline_project):
    p = pipeline_project
    result = mv(p.root, "--debug", "show", "prep@v9", code=1)
    assert "Traceback" in result.stderr


def test_reading_commands_never_execute_user_code(pipeline_project):
    p = pipeline_project
    marker = p.root / "executed"
    p.write("pipe/util.py", p.read("pipe/util.py") + f"\nopen({str(marker)!r}, 'w').write('ran')\n")
    p.commit("a module with a side effect on import")
    for args in (["index"], ["log"], ["status"], ["show", "prep@latest"], ["diff"], ["diff", "prep@v1"], ["snapshot"]):
        mv(p.root, *args)
    assert not marker.exists()


def test_concurrent_snapshots_lose_nothing(pipeline_project, python):
    import subprocess

    p = pipeline_project
    p.write("pipe/train.py", "def train(data):\n    return 42\n")
    procs = [
        subprocess.Popen(
            [python, "-m", "modver", "snapshot", "--json"], cwd=p.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(4)
    ]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
        outputs.append(json.loads(out))
    # every process got the same numbers; each fingerprint registered exactly once
    assert {tuple((r["stage"], r["version"]) for r in o) for o in outputs} == {(("prep", "v1"), ("train", "v1"))}
    assert sum(r["new"] for o in outputs for r in o) == 2
    for stage in ("prep", "train"):
        log = mv_json(p.root, "log", stage)
        assert len(log) == 1 and len({v["fingerprint"] for v in log}) == 1
    p.git("fsck", "--no-progress")


GOLDEN = Path(__file__).parent / "golden"


def _golden(name: str, actual: str) -> None:
    import difflib

    path = GOLDEN / name
    if os.environ.get("MODVER_REGEN_GOLDEN") or not path.exists():
        path.parent.mkdir(exist_ok=True)
        path.write_text(actual, encoding="utf-8")
    expected = path.read_text(encoding="utf-8")
    if actual != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True), str(path), "actual"))
        pytest.fail(f"output differs from {path}; regenerate with `MODVER_REGEN_GOLDEN=1 pytest tests/cli`\n{diff}")


def test_golden_status_and_diff_output(pipeline_project):
    p = pipeline_project
    mv(p.root, "snapshot")
    mv(p.root, "pin", "prep@v1")
    p.write("pipe/util.py", p.read("pipe/util.py").replace("FACTOR = 3", "FACTOR = 4"))
    _golden("status.txt", mv(p.root, "status").stdout)
    _golden("diff.txt", mv(p.root, "diff").stdout)


def test_diff_two_manifests_and_index_rev(pipeline_project):
    p = pipeline_project
    first = p.git("rev-parse", "HEAD")
    p.write(
        "b.yaml",
        p.read("manifest.yaml")
        .replace("scale: 2", "scale: 5")
        .replace("    inputs: {data: prep}\n", "    inputs: {data: prep}\n    version: v1\n"),
    )
    out = mv_json(p.root, "diff", "manifest.yaml", "b.yaml")
    rows = {(d["section"], d["key"]): (d["a"], d["b"]) for d in out["differences"]}
    assert rows[("prep", "params.scale")] == (2, 5)
    assert rows[("train", "version")] == (None, "v1")
    text = mv(p.root, "diff", "manifest.yaml", "b.yaml").stdout
    assert "params.scale" in text
    p.write("pipe/train.py", "def train(data):\n    return 7\n")
    p.commit("seven")
    out = mv_json(p.root, "index", "--rev", first)
    assert out["commits"] == 1 and [v["version"] for v in out["new_versions"]] == ["v1", "v1"]
    assert [v["version"] for v in mv_json(p.root, "index")["new_versions"]] == ["v2"]
    result = mv(p.root, "index", "--rev", "no-such-branch", code=1)
    assert "no-such-branch" in result.stderr


def test_wrong_usage_exits_2_and_version_prints(pipeline_project):
    import modver

    p = pipeline_project
    mv(p.root, "run", "--no-such-option", code=2)
    mv(p.root, "pin", code=2)
    assert mv(p.root, "--version").stdout.strip() == f"modver {modver.__version__}"


def test_show_a_bare_stage_name_shows_its_latest_version(pipeline_project):
    p = pipeline_project
    mv(p.root, "index")
    p.write("pipe/util.py", p.read("pipe/util.py").replace("FACTOR = 3", "FACTOR = 4"))
    mv(p.root, "snapshot", "prep")
    shown = mv_json(p.root, "show", "prep")
    assert (shown["stage"], shown["version"]) == ("prep", "v2")
    assert "prep@v2" in mv(p.root, "show", "prep").stdout
    assert "no runs recorded yet" in mv(p.root, "show", "nothing-like-this", code=1).stderr  # not a stage: a run


def test_show_a_word_that_is_a_stage_and_a_run_prefix_says_which_it_chose(git_project):
    p = git_project
    for path, text in {
        "manifest.yaml": "stages:\n  '2026':\n    entry: s.py:f\n",
        "s.py": "def f():\n    return 1\n",
    }.items():
        p.write(path, text)
    p.commit("a stage named like a year")
    mv(p.root, "run")
    result = mv(p.root, "show", "2026")
    assert "2026@v1" in result.stdout
    assert "'2026' is a stage and also names a run: showing 2026@latest" in result.stderr


def test_a_working_tree_version_learns_the_commit_index_finds_it_in(pipeline_project):
    p = pipeline_project
    mv(p.root, "index")
    p.write("pipe/util.py", p.read("pipe/util.py").replace("FACTOR = 3", "FACTOR = 4"))
    mv(p.root, "snapshot", "prep")  # registered from uncommitted code: no origin
    [before] = [v for v in mv_json(p.root, "log", "prep") if v["version"] == "v2"]
    assert before["origin"] is None and before["committed"] is None
    sha = p.commit("bigger factor")
    out = mv(p.root, "index").stdout
    assert f"prep@v2 (registered from the working tree) is committed in {sha[:10]}" in out
    [after] = [v for v in mv_json(p.root, "log", "prep") if v["version"] == "v2"]
    assert after["committed"] == sha
    assert {k: after[k] for k in ("number", "fingerprint", "origin", "commit")} == {
        k: before[k] for k in ("number", "fingerprint", "origin", "commit")
    }  # the version itself never changes
    assert f"committed: {sha}" in mv(p.root, "show", "prep@v2").stdout
    assert f"working tree, committed {sha[:10]}" in mv(p.root, "log", "prep").stdout
    note = json.loads(p.git("show", f"refs/modver/notes/committed:{after['commit']}"))
    assert note == {"commit": sha, "stage": "prep", "version": "v2"}
    p.write("pipe/train.py", p.read("pipe/train.py") + "\n# a comment\n")
    p.commit("a comment")
    assert "is committed in" not in mv(p.root, "index").stdout  # noted once


def test_diff_hunks_count_the_files_lines_and_show_prints_one_line_ranges(pipeline_project):
    p = pipeline_project
    p.write("pipe/prep.py", "\n" * 200 + p.read("pipe/prep.py"))  # the function now starts at line 204
    p.commit("the function moves down the file")
    mv(p.root, "index")
    p.write("pipe/prep.py", p.read("pipe/prep.py").replace("* scale", "* scale * 2"))
    out = mv(p.root, "diff").stdout
    hunk = next(line for line in out.splitlines() if line.startswith("@@"))
    assert hunk.startswith("@@ -4,") and " +204," in hunk  # v1 has it at line 4, the working tree at 204
    shown = mv(p.root, "show", "prep@latest").stdout
    assert "  1  " in shown or " 1\n" in shown  # the one-line import reads as "1", not "1-1"
    assert "1-1" not in shown
