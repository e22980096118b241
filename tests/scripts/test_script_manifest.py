"""The script-stage keys of a manifest (SPEC "Script stages and files"): what loads, and the
clear errors (path:line:col, did-you-mean) for what does not."""

from __future__ import annotations

import pytest

from modver.engine.workspace import params_argv
from modver.errors import ManifestError
from modver.manifest import dump_manifest_dict, load_manifest, load_manifest_text
from tests.helpers import mv


def _load(tmp_path, text):
    path = tmp_path / "manifest.yaml"
    path.write_text(text)
    return load_manifest(path)


GOOD = """\
params_file: conf/params.yaml
data:
  raw: data/data.xml
stages:
  prepare:
    entry: src/prepare.py
    args: [data/data.xml, 3, true]
    params: [prepare.seed, prepare.split]
    outs: [data/prepared]
  train:
    entry: train.py
    args: ["${params.train.config}", "${data.raw}"]
    params: {device: cpu, max_iters: 20}
    deps: [data/prepared/train.csv, src/util.py]
    outs: [out]
    metrics: [out/metrics.json]
    plots: [out/loss.csv]
"""


def test_script_keys_load_and_dump(tmp_path):
    m = _load(tmp_path, GOOD)
    prepare, train = m.stages["prepare"], m.stages["train"]
    assert m.params_file == "conf/params.yaml"
    assert prepare.args == ("data/data.xml", "3", "True") and prepare.file_params == ("prepare.seed", "prepare.split")
    assert prepare.outs == ("data/prepared",) and train.metrics == ("out/metrics.json",)
    assert train.code_deps == ("src/util.py",)  # a .py dep is code: fingerprinted whole
    assert m.order() == ["prepare", "train"]  # train reads inside prepare's outs: prepare is upstream
    dumped = dump_manifest_dict(m)
    assert dumped["stages"]["prepare"]["params"] == ["prepare.seed", "prepare.split"]
    again = load_manifest_text(__import__("json").dumps(dumped), tmp_path / "again.yaml")
    assert dump_manifest_dict(again) == dumped


def test_graph_order_comes_from_paths_even_against_the_file_order(tmp_path):
    m = _load(
        tmp_path,
        "stages:\n  b:\n    entry: b.py\n    deps: [x/y.txt]\n  a:\n    entry: a.py\n    outs: [x]\n",
    )
    assert m.order() == ["a", "b"]


BAD = [
    (
        "misspelt key",
        "stages:\n  a:\n    entry: a.py\n    out: [x]\n",
        "4:5",
        "unknown key 'out'",
        "did you mean 'outs'",
    ),
    ("outs of a function", "stages:\n  a:\n    entry: a.py:f\n    outs: [x]\n", "4:5", "only a script stage", None),
    ("outs string", "stages:\n  a:\n    entry: a.py\n    outs: x\n", "4:11", "must be a list of paths", "[x]"),
    ("out outside", "stages:\n  a:\n    entry: a.py\n    outs: [../x]\n", "4:12", "outside the project", None),
    (
        "args mapping",
        "stages:\n  a:\n    entry: a.py\n    args: [{a: 1}]\n",
        "4:12",
        "must be a string or a number",
        None,
    ),
    (
        "bad template",
        "stages:\n  a:\n    entry: a.py\n    args: ['${foo.x}']\n",
        "4:12",
        "unknown template",
        "${params.KEY}",
    ),
    ("unclosed template", "stages:\n  a:\n    entry: a.py\n    outs: ['${params.x']\n", "4:12", "unclosed", None),
    ("bad params key", "stages:\n  a:\n    entry: a.py\n    params: [a..b]\n", "4:14", "params-file key", None),
    (
        "two writers",
        "stages:\n  a:\n    entry: a.py\n    outs: [d]\n  b:\n    entry: b.py\n    outs: [d/x]\n",
        "7:11",
        "stages 'a' and 'b' both write 'd'",
        None,
    ),
    (
        "cycle through paths",
        "stages:\n  a:\n    entry: a.py\n    deps: [y]\n    outs: [x]\n  b:\n    entry: b.py\n    deps: [x]\n    outs: [y]\n",
        None,
        "form a cycle",
        None,
    ),
    (
        "key that names a dict param",
        "stages:\n  train:\n    entry: t.py\n    params: {lr: 1}\n  ev:\n    entry: e.py\n    params: [train.lr]\n",
        "7:13",
        "also names param 'lr' of stage 'train'",
        None,
    ),
    ("params_file not yaml", "params_file: p.txt\nstages: {}\n", "1:14", "not a YAML or JSON file", None),
]


@pytest.mark.parametrize(("text", "at", "message", "hint"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_script_keys_give_precise_errors(tmp_path, text, at, message, hint):
    path = tmp_path / "manifest.yaml"
    path.write_text(text)
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    msg = str(info.value)
    if at is not None:
        assert msg.startswith(f"{path}:{at}"), msg
    assert message in msg, msg
    if hint is not None:
        assert hint in (info.value.hint or ""), info.value.hint


def test_dict_params_are_rendered_as_python_literals():
    argv = params_argv({"compile": False, "dropout": 0.0, "lr": 1e-3, "n": 3, "none": None, "ks": [1, "a"],
                        "d": {"x": True}, "name": "x y", "big": 1e20})  # fmt: skip
    assert argv == ["--compile=False", "--dropout=0.0", "--lr=0.001", "--n=3", "--none=None", "--ks=[1, 'a']",
                    "--d={'x': True}", "--name=x y", "--big=1e+20"]  # fmt: skip


def test_a_listed_key_missing_from_the_params_file_is_a_clear_error(git_project):
    p = git_project
    p.write("params.yaml", "train:\n  n_est: 3\n")
    p.write("t.py", "print(1)\n")
    p.write("manifest.yaml", "stages:\n  t:\n    entry: t.py\n    params: [train.n_eset]\n")
    p.commit("typo")
    err = mv(p.root, "run", code=1).stderr
    assert "stage 't' lists param 'train.n_eset', which the params file params.yaml does not have" in err
    assert "did you mean 'train.n_est'" in err


def test_cmd_python_file_is_an_entry_with_args_and_other_commands_are_refused(tmp_path):
    m = _load(tmp_path, "stages:\n  t:\n    cmd: python src/train.py data/features 'model dir' --seed=1\n")
    assert m.stages["t"].entry == "src/train.py" and m.stages["t"].args == ("data/features", "model dir", "--seed=1")
    with pytest.raises(ManifestError) as info:
        _load(tmp_path, "stages:\n  t:\n    cmd: sort -u data/x\n")
    assert str(info.value).endswith(":3:10: cmd of stage 't' does not run a Python file: 'sort -u data/x'")
    with pytest.raises(ManifestError, match="both `cmd` and `args`"):
        _load(tmp_path, "stages:\n  t:\n    cmd: python t.py\n    args: [x]\n")


def test_a_template_naming_a_missing_key_is_a_clear_error(git_project):
    p = git_project
    p.write("t.py", "print(1)\n")
    p.write("params.yaml", "train: {out: model}\n")
    p.write("manifest.yaml", "stages:\n  t:\n    entry: t.py\n    outs: ['${params.train.outdir}']\n")
    p.commit("a template with a typo")
    err = mv(p.root, "run", code=1).stderr
    assert "stage t: ${params.train.outdir} names key 'train.outdir', which the params file does not have" in err
