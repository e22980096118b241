"""Data outside the project, opted in per path (issue 16, item 10): hashed and read where it is,
never copied into the store, the history or the storage."""

from __future__ import annotations

from tests.helpers import mv, mv_json

SCRIPT = "import sys\nopen('count.txt', 'w').write(str(len(open(sys.argv[1]).read())))\n"


def test_an_outside_dep_is_hashed_and_read_but_never_stored(git_project, tmp_path):
    p = git_project
    shared = tmp_path / "shared"
    shared.mkdir()
    data = shared / "corpus.txt"
    data.write_text("abc")
    p.write("count.py", SCRIPT)
    p.write(
        "manifest.yaml",
        f"stages:\n  count:\n    entry: count.py\n    args: [{data}]\n"
        f"    deps: [{{path: {data}, outside: true}}]\n    outs: [count.txt]\n",
    )
    p.write(".gitignore", ".modver/\ncount.txt\n")
    p.commit("a stage reading a shared disk")
    first = mv_json(p.root, "run")
    assert (p.root / "count.txt").read_text() == "3"
    assert first["data"][str(data)]["path"] == str(data)
    assert all(mv_json(p.root, "run")["cached"].values())
    data.write_text("abcdef")  # the shared data changed: the stage runs again
    again = mv_json(p.root, "run")
    assert again["cached"] == {"count": False} and (p.root / "count.txt").read_text() == "6"
    stored = p.git("ls-tree", "-r", "--name-only", "refs/modver/stages/count")
    assert "corpus.txt" not in stored and "abcdef" not in "".join(
        f.read_text(errors="replace")
        for f in (p.root / ".modver").rglob("*")
        if f.is_file() and f.stat().st_size < 1 << 20
    ).replace(str(data), "")


def test_an_outside_path_needs_the_opt_in(git_project, tmp_path):
    p = git_project
    p.write("count.py", SCRIPT)
    p.write("manifest.yaml", f"stages:\n  count:\n    entry: count.py\n    deps: [{tmp_path}/x]\n")
    p.commit("no opt-in")
    assert "is absolute" in mv(p.root, "run", code=1).stderr
    p.write("manifest.yaml", f"stages:\n  count:\n    entry: count.py\n    deps: [{{path: {tmp_path}/x}}]\n")
    assert "must say `outside: true`" in mv(p.root, "run", code=1).stderr


def test_a_dep_folder_that_holds_the_script_is_merged_with_the_versions_files(git_project):
    """nanoGPT's data/shakespeare_char/ holds prepare.py and its input: listed as one dep folder,
    the workspace gets both (the version's prepare.py, the project's input.txt)."""
    p = git_project
    p.write("data/sc/prepare.py", "import os\nhere = os.path.dirname(__file__)\n"
            "open('n.txt', 'w').write(str(len(open(os.path.join(here, 'input.txt')).read())))\n")  # fmt: skip
    p.write("data/sc/input.txt", "hello")
    p.write(
        "manifest.yaml",
        "stages:\n  prep:\n    entry: data/sc/prepare.py\n    deps: [data/sc]\n    outs: [data/sc/n.txt]\n",
    )
    p.commit("a dep folder around the script")
    err = mv(p.root, "run", code=1).stderr  # the dep folder would hold the stage's own out
    assert "dep 'data/sc' of stage 'prep' holds 'data/sc/n.txt', an out of stage 'prep'" in err
    p.write(
        "manifest.yaml", "stages:\n  prep:\n    entry: data/sc/prepare.py\n    deps: [data/sc]\n    outs: [n.txt]\n"
    )
    assert mv_json(p.root, "run")["status"] == "succeeded" and (p.root / "n.txt").read_text() == "5"
    assert all(mv_json(p.root, "run")["cached"].values())
