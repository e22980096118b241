"""Files a stage runs with exec()/runpy (scheme mv2): in the closure, normalized like any module."""

from __future__ import annotations

import os
import textwrap

import pytest

from modver.errors import SourceError, StoreError
from modver.fingerprint import (
    SummaryCache,
    fingerprint_source,
    fingerprint_stage,
    scheme_of,
)
from modver.sourcetree import DictTree, WorkingTree

CONFIG = "lr = 0.1\nbatch_size = 32\n"
NANOGPT = {  # the shape of nanoGPT's train.py / configurator.py (dedented below)
    "train.py": """
        import os
        from model import GPT

        lr = 0.5
        exec(open('configurator.py').read())  # overrides from command line or config file
        print(GPT(lr))
    """,
    "configurator.py": """
        import sys
        for arg in sys.argv[1:]:
            key, _, value = arg.partition('=')
            globals()[key[2:]] = float(value)
    """,
    "model.py": "class GPT:\n    def __init__(self, lr):\n        self.lr = lr\n",
}
NANOGPT = {path: textwrap.dedent(text) for path, text in NANOGPT.items()}


def make(files):
    return DictTree({path: textwrap.dedent(text) for path, text in files.items()})


def stage(files, entry, deps=(), **kw):
    return fingerprint_stage(make(files), entry, deps, cache=SummaryCache(), **kw)


def edit(files, path, old, new):
    assert old in files[path]
    return {**files, path: files[path].replace(old, new)}


def test_a_file_run_by_exec_is_in_the_closure_and_normalized():
    closure = stage(NANOGPT, "train.py")
    assert closure.fingerprint.startswith("mv2:")
    assert closure.files == ("configurator.py", "model.py", "train.py")
    assert "configurator.py" in {d.path for d in closure.definitions}
    assert any(u.reason == "exec(open('configurator.py').read()) runs configurator.py" for u in closure.unresolved)
    # formatting, comments and docstrings of the configurator change nothing
    reformatted = edit(
        NANOGPT, "configurator.py", "import sys\n", '"""Poor man\'s configurator."""\nimport sys  # argv\n\n'
    )
    reformatted = edit(reformatted, "configurator.py", "partition('=')", 'partition( "=" )')
    assert stage(reformatted, "train.py").fingerprint == closure.fingerprint
    # a semantic edit changes the stage
    assert (
        stage(edit(NANOGPT, "configurator.py", "float(value)", "int(value)"), "train.py").fingerprint
        != closure.fingerprint
    )
    # a tree holding only the closure's files gives the same fingerprint (what a version stores)
    kept = {path: NANOGPT[path] for path in closure.files}
    assert stage(kept, "train.py").fingerprint == closure.fingerprint


def test_the_old_rules_stay_available_and_stages_that_run_no_file_keep_their_digests():
    """mv1 did not follow exec'd files: ``scheme="mv1"`` gives the digest versions registered
    before mv2 carry. A stage that runs no file has one digest under both."""
    mv1 = stage(NANOGPT, "train.py", scheme="mv1")
    without = stage({k: v for k, v in NANOGPT.items() if k != "configurator.py"}, "train.py")
    assert mv1.fingerprint.startswith("mv1:") and mv1.fingerprint == without.fingerprint
    assert "configurator.py" not in mv1.files
    assert scheme_of(mv1.fingerprint) == "mv1" and scheme_of(stage(NANOGPT, "train.py").fingerprint) == "mv2"
    plain = {"main.py": "from model import GPT\n\ndef run():\n    return GPT(1)\n", "model.py": NANOGPT["model.py"]}
    assert stage(plain, "main.py:run").fingerprint == stage(plain, "main.py:run", scheme="mv1").fingerprint
    assert stage(plain, "main.py:run").fingerprint.startswith("mv1:")
    with pytest.raises(StoreError, match="mv9"):
        scheme_of("mv9:" + "0" * 64)
    with pytest.raises(ValueError, match="unknown fingerprint scheme"):
        stage(plain, "main.py:run", scheme="mv9")


@pytest.mark.parametrize(
    "call",
    [
        "exec(open('conf/base.py').read())",
        "exec(open('conf/base.py', encoding='utf-8').read(), globals())",
        "exec(compile(open('conf/base.py').read(), 'conf/base.py', 'exec'))",
        "exec(pathlib.Path('conf/base.py').read_text())",
        "runpy.run_path('conf/base.py')",
        "run_path(path_name='conf/base.py')",
    ],
)
def test_each_form_of_running_a_literal_file(call):
    files = {
        "train.py": f"import pathlib, runpy\nfrom runpy import run_path\n\n\ndef main():\n    {call}\n",
        "conf/base.py": CONFIG,
    }
    closure = stage(files, "train.py:main")
    assert "conf/base.py" in closure.files and closure.fingerprint.startswith("mv2:")
    assert stage(edit(files, "conf/base.py", "0.1", "0.2"), "train.py:main").fingerprint != closure.fingerprint
    assert (
        stage(edit(files, "conf/base.py", "0.1\n", "0.1  # tuned\n"), "train.py:main").fingerprint
        == closure.fingerprint
    )


def test_every_statement_of_the_run_file_counts_in_order():
    """exec'd code runs top to bottom in the caller's namespace: its main block and the order
    of its statements count (for an imported module they would not)."""
    files = {
        "train.py": "exec(open('c.py').read())\n",
        "c.py": "lr = 1\nlr = 2\nif __name__ == '__main__':\n    lr = 3\n",
    }
    closure = stage(files, "train.py")
    assert stage(edit(files, "c.py", "lr = 3", "lr = 4"), "train.py").fingerprint != closure.fingerprint
    assert stage(edit(files, "c.py", "lr = 1\nlr = 2", "lr = 2\nlr = 1"), "train.py").fingerprint != closure.fingerprint


def test_what_the_run_file_imports_and_runs_is_followed():
    files = {
        "train.py": "exec(open('configurator.py').read())\n",
        "configurator.py": "from helpers import parse\nexec(open('config/base.py').read())\nparse()\n",
        "helpers.py": "def parse():\n    return 1\n\ndef unused():\n    return 0\n",
        "config/base.py": CONFIG,
    }
    closure = stage(files, "train.py")
    assert closure.files == ("config/base.py", "configurator.py", "helpers.py", "train.py")
    assert stage(edit(files, "helpers.py", "return 1", "return 2"), "train.py").fingerprint != closure.fingerprint
    assert stage(edit(files, "helpers.py", "return 0", "return 9"), "train.py").fingerprint == closure.fingerprint
    assert stage(edit(files, "config/base.py", "32", "64"), "train.py").fingerprint != closure.fingerprint


def test_paths_resolve_from_the_project_root_then_the_entry_folder():
    """A stage runs with the project root as its working directory; a script written to run
    from its own folder names files relative to it."""
    sibling = {"scripts/train.py": "exec(open('config.py').read())\n", "scripts/config.py": CONFIG}
    closure = stage(sibling, "scripts/train.py")
    assert closure.files == ("scripts/config.py", "scripts/train.py")
    up = {"scripts/train.py": "exec(open('../config.py').read())\n", "config.py": CONFIG}
    assert stage(up, "scripts/train.py").files == ("config.py", "scripts/train.py")
    both = {**sibling, "config.py": "lr = 9\n"}  # open() at run time reads the root's copy
    closure = stage(both, "scripts/train.py")
    assert "config.py" in closure.files and "scripts/config.py" not in closure.files


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("/etc/passwd", "the path leaves the project: never included"),
        ("../outside.py", "the path leaves the project: never included"),
        ("missing.py", "no such file in the project"),
    ],
)
def test_a_literal_file_that_cannot_be_included_is_reported(path, why):
    files = {"train.py": f"exec(open({path!r}).read())\n", "outside.py": CONFIG}
    closure = stage(files, "train.py")
    assert closure.fingerprint.startswith("mv1:") and closure.files == ("train.py",)
    assert [u.included for u in closure.unresolved if "runs" in u.reason] == [why]


def test_a_file_named_at_run_time_is_reported_with_the_call():
    files = {"train.py": "import sys\n\nexec(open(sys.argv[1]).read())\n"}
    closure = stage(files, "train.py")
    (report,) = [u for u in closure.unresolved if "runs" in u.reason]
    assert (report.path, report.line) == ("train.py", 3)
    assert report.reason == "exec(open(sys.argv[1]).read()) runs a file named at run time"
    assert report.included.startswith("nothing") and "deps:" in report.included
    assert closure.fingerprint == stage(files, "train.py", scheme="mv1").fingerprint


def test_exec_of_a_string_is_not_a_file():
    closure = stage({"train.py": "code = 'x = 1'\nexec(code)\n"}, "train.py")
    assert [u.reason for u in closure.unresolved] == ["exec() in train.py"]


def test_a_run_file_that_does_not_parse_is_a_source_error():
    with pytest.raises(SourceError, match=r"config\.py:1"):
        stage({"train.py": "exec(open('config.py').read())\n", "config.py": "lr = = 1\n"}, "train.py")


def test_fingerprint_source_has_no_files_to_run():
    text = "exec(open('configurator.py').read())\n"
    assert fingerprint_source(text).startswith("mv1:")


def test_the_stage_memo_sees_the_run_file_change_and_appear(tmp_path):
    (tmp_path / "train.py").write_text("exec(open('config.py').read())\n")
    cache = SummaryCache()
    missing = fingerprint_stage(WorkingTree(tmp_path), "train.py", cache=cache)
    (tmp_path / "config.py").write_text(CONFIG)
    present = fingerprint_stage(WorkingTree(tmp_path), "train.py", cache=cache)
    assert present.fingerprint != missing.fingerprint and "config.py" in present.files
    (tmp_path / "config.py").write_text("lr = 0.3\n")
    assert fingerprint_stage(WorkingTree(tmp_path), "train.py", cache=cache).fingerprint != present.fingerprint


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_a_run_file_linked_out_of_the_project_is_never_read(tmp_path):
    secret = tmp_path / "secret.py"
    secret.write_text("TOKEN = 'x'\n")
    project = tmp_path / "proj"
    project.mkdir()
    (project / "train.py").write_text("exec(open('settings.py').read())\n")
    os.symlink(secret, project / "settings.py")
    closure = fingerprint_stage(WorkingTree(project), "train.py", cache=SummaryCache())
    assert closure.files == ("train.py",) and closure.fingerprint.startswith("mv1:")
    (report,) = [u for u in closure.unresolved if "runs" in u.reason]
    assert report.included.startswith("never included") and "outside the project" in report.included


def test_a_run_file_listed_in_deps_counts_once_as_a_deps_file():
    """Users who listed their exec'd config in ``deps:`` (the advice before mv2) keep their
    fingerprints: the file counts as a deps: file, as it did."""
    closure = stage(NANOGPT, "train.py", deps=["configurator.py"])
    assert closure.fingerprint == stage(NANOGPT, "train.py", deps=["configurator.py"], scheme="mv1").fingerprint
    assert closure.fingerprint.startswith("mv1:") and "configurator.py" in closure.files
    assert any(u.included == "counted as a deps: file" for u in closure.unresolved)
    edited = edit(NANOGPT, "configurator.py", "float(value)", "int(value)")
    assert stage(edited, "train.py", deps=["configurator.py"]).fingerprint != closure.fingerprint
