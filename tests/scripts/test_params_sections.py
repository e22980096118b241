"""``--set`` of a key inside a section a stage lists whole (``params: [train]``): it is the
params-file key, written into the stage's copy of the file, never a dict-form param."""

from __future__ import annotations

from tests.helpers import mv, mv_json

SCRIPT = """\
import yaml
p = yaml.safe_load(open("params.yaml"))["train"]
assert set(p) == {"factor", "opt"}, p
open("out.txt", "w").write(f"{p['factor'] * 2} {p['opt']['lr']}")
"""


def _project(p):
    p.write("train.py", SCRIPT)
    p.write("params.yaml", "train:\n  factor: 1   # a comment\n  opt:\n    lr: 0.5\n")
    p.write("manifest.yaml", "stages:\n  train:\n    entry: train.py\n    params: [train]\n    outs: [out.txt]\n")
    p.write(".gitignore", ".modver/\nout.txt\n")
    p.commit("a stage listing a whole section")


def test_set_inside_a_whole_section_addresses_the_params_file(git_project):
    p = git_project
    _project(p)
    mv(p.root, "run")
    assert p.read("out.txt") == "2 0.5"
    ran = mv_json(p.root, "run", "--set", "train.factor=3", "--set", "train.opt.lr=0.1")
    assert ran["cached"] == {"train": False}
    assert p.read("out.txt") == "6 0.1"
    assert p.read("params.yaml").startswith("train:\n  factor: 1   # a comment")  # the user's file, untouched
    assert all(mv_json(p.root, "run", "--set", "train.factor=3", "--set", "train.opt.lr=0.1")["cached"].values())


def test_set_of_a_key_the_section_lacks_is_a_clear_error(git_project):
    p = git_project
    _project(p)
    ran = mv(p.root, "run", "--set", "train.factr=3", code=1)
    assert "has no key 'train.factr'" in ran.stderr and "train.factor" in ran.stderr


def test_a_section_listed_whole_that_holds_a_stages_dict_params_is_a_manifest_error(git_project):
    p = git_project
    _project(p)
    p.write("other.py", "print(1)\n")
    p.write(
        "manifest.yaml",
        "stages:\n  train:\n    entry: other.py\n    params: {factor: 2}\n"
        "  fit:\n    entry: train.py\n    params: [train]\n    outs: [out.txt]\n",
    )
    ran = mv(p.root, "run", code=1)
    assert "also names param 'factor' of stage 'train'" in ran.stderr
