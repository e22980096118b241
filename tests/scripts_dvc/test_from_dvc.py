"""`convert_dvc`: each construct of dvc.yaml, and what it names (with its line) when it cannot convert."""

from __future__ import annotations

from pathlib import Path

import pytest

from modver.errors import ManifestError
from modver.fingerprint import fingerprint_stage
from modver.manifest import load_manifest_text
from modver.manifest.from_dvc import Conversion, convert_dvc
from modver.sourcetree import DictTree

SCRIPTS = {
    "src/prepare.py": "import sys\nfrom src.util import split\nsplit(sys.argv[1])\n",
    "src/util.py": "def split(path):\n    return path\n",
    "src/train.py": "import sys\nprint(sys.argv)\n",
    "src/evaluate.py": "import json\njson.dump({'acc': 1}, open('eval/metrics.json', 'w'))\n",
    "params.yaml": "prepare:\n  seed: 1\n  split: 0.2\ntrain:\n  epochs: 3\n  lr: 0.1\nmodel: small\n",
    "data/data.xml": "<x/>",
}


def convert(dvc_yaml: str, files: dict[str, str] | None = None) -> Conversion:
    tree = DictTree({**SCRIPTS, **(files or {})})
    conversion = convert_dvc(dvc_yaml, tree, lambda entry: fingerprint_stage(tree, entry).files)
    if conversion.stages:  # whatever converts is a manifest modver accepts
        load_manifest_text(conversion.text(), Path("/p/manifest.yaml"), Path("/p"))
    return conversion


def notes(conversion: Conversion, kind: str | None = None) -> list[tuple[int | None, str]]:
    return [(n.line, n.message) for n in conversion.notes if kind is None or n.kind == kind]


def test_python_stages_deps_params_outs_metrics_plots():
    c = convert("""\
stages:
  prepare:
    cmd: python src/prepare.py data/data.xml
    deps:
    - data/data.xml
    - src/prepare.py
    - src/util.py
    params:
    - prepare.seed
    - prepare.split
    outs:
    - data/prepared:
        cache: false
        persist: true
    metrics:
    - eval/m.json:
        cache: false
    plots:
    - eval/loss.csv:
        x: step
""")
    assert c.manifest == {
        "stages": {
            "prepare": {
                "entry": "src/prepare.py",
                "args": ["data/data.xml"],
                "deps": ["data/data.xml"],
                "params": ["prepare.seed", "prepare.split"],
                "outs": ["data/prepared"],
                "metrics": ["eval/m.json"],
                "plots": ["eval/loss.csv"],
            }
        }
    }
    got = notes(c)
    assert (4, "stage 'prepare': deps src/prepare.py, src/util.py not listed: modver fingerprints "
            "src/prepare.py and the project's Python it imports") in got  # fmt: skip
    lines = {line for line, message in got if "cache: False" in message or "persist" in message or "x: step" in message}
    assert lines == {13, 14, 17, 20}  # each option named at its own line
    assert "data/data.xml" in c.manifest["stages"]["prepare"]["deps"]  # data deps are kept


def test_params_of_params_yaml_sections_and_other_files():
    c = convert(
        """\
stages:
  train:
    cmd: python src/train.py
    params:
    - params.yaml:
      - train.lr
    - train.epochs
    - config.yaml:
      - opt
""",
        {"config.yaml": "opt: adam\n"},
    )
    stage = c.manifest["stages"]["train"]
    assert stage["params"] == ["train.lr", "train.epochs"] and stage["deps"] == ["config.yaml"]
    assert any(line == 8 and "config.yaml kept as a dep" in m for line, m in notes(c))
    only_other = convert("stages:\n  t:\n    cmd: python src/train.py\n    params:\n    - config.yaml:\n",
                         {"config.yaml": "opt: adam\nlayers: 2\n"})  # fmt: skip
    assert only_other.manifest["params_file"] == "config.yaml"
    assert only_other.manifest["stages"]["t"]["params"] == ["opt", "layers"]  # the whole file: each key


def test_vars_templates_foreach_and_matrix():
    c = convert(
        """\
vars:
  - data_file: data/data.xml
  - extra.yaml:size
stages:
  train:
    foreach:
      - small
      - large
    do:
      cmd: python src/train.py ${item} ${train.epochs} ${size} ${data_file}
      deps:
      - ${data_file}
      outs: ['models/${item}.pkl']
  sweep:
    foreach:
      a: {lr: 1}
      b: {lr: 2}
    do:
      cmd: python src/train.py --lr ${item.lr} --name ${key}
      outs: ['sweep/${key}']
  grid:
    matrix:
      depth: [1, 2]
      act: [relu]
    cmd: python src/train.py ${item.depth} ${item.act}
    outs: ['grid/${item.depth}-${item.act}']
""",
        {"extra.yaml": "size: 7\nother: 1\n"},
    )
    stages = c.manifest["stages"]
    assert list(stages) == ["train-small", "train-large", "sweep-a", "sweep-b", "grid-1-relu", "grid-2-relu"]
    # a key of params.yaml stays a template (it follows --set); vars and items are filled in
    assert stages["train-small"]["args"] == ["small", "${params.train.epochs}", "7", "data/data.xml"]
    assert stages["train-large"]["outs"] == ["models/large.pkl"]
    assert stages["sweep-b"]["args"] == ["--lr", "2", "--name", "b"] and stages["sweep-b"]["outs"] == ["sweep/b"]
    assert stages["grid-2-relu"]["args"] == ["2", "relu"] and stages["grid-2-relu"]["outs"] == ["grid/2-relu"]


def test_wdir_joins_paths_and_says_the_script_runs_at_the_root():
    c = convert("""\
stages:
  train:
    wdir: src
    cmd: python train.py ../data/data.xml out
    deps: [../data/data.xml]
    outs: [out]
""")
    assert c.manifest["stages"]["train"] == {
        "entry": "src/train.py", "args": ["data/data.xml", "src/out"], "deps": ["data/data.xml"], "outs": ["src/out"],
    }  # fmt: skip
    assert any(line == 2 and "runs in src/ under DVC" in m for line, m in notes(c))


def test_top_level_metrics_and_plots_attach_to_the_stage_writing_them():
    c = convert(
        """\
stages:
  evaluate:
    cmd: python src/evaluate.py
    outs: [eval]
metrics:
- eval/metrics.json
- elsewhere/m.json
plots:
- ROC:
    template: simple
    x: fpr
    y:
      eval/roc.json: tpr
- eval/importance.png
artifacts:
  model:
    path: model.pkl
""",
        {"dvc.lock": "schema: '2.0'\n"},
    )
    stage = c.manifest["stages"]["evaluate"]
    assert stage["metrics"] == ["eval/metrics.json"] and stage["plots"] == ["eval/roc.json"]
    got = notes(c)
    assert any(line == 7 and "no converted stage writes it" in m for line, m in got)
    assert any(line == 9 and "template, x not converted" in m for line, m in got)
    assert any(line == 14 and "importance.png not converted" in m for line, m in got)
    assert any(line == 15 and "`artifacts:` (model) not converted" in m for line, m in got)
    assert any(line is None and "dvc.lock is not read: modver's cache starts empty" in m for line, m in got)


def test_what_does_not_convert_is_named_with_its_line_and_the_rest_converts():
    c = convert("""\
stages:
  shell:
    cmd: python src/train.py > log.txt
  binary:
    cmd: ./build.sh
  many:
    cmd:
    - python src/train.py
    - python src/evaluate.py
  missing:
    cmd: python src/nope.py
  unknown:
    cmd: python src/train.py ${nowhere}
  ok:
    cmd: python3 -u src/train.py
    frozen: true
""")
    assert list(c.manifest["stages"]) == ["ok"]
    skipped = dict(notes(c, "skipped"))
    assert set(skipped) == {2, 4, 6, 10, 12}
    assert "shell command line" in skipped[2] and "does not run a Python script" in skipped[4]
    assert "a list of 2 commands" in skipped[6] and "src/nope.py" in skipped[10] and "${nowhere}" in skipped[12]
    assert any(line == 16 and "`frozen` not converted" in m for line, m in notes(c))


def test_python_dash_m_of_a_project_module():
    c = convert("stages:\n  p:\n    cmd: python -m src.train --fast\n")
    assert c.manifest["stages"]["p"] == {"entry": "src/train.py", "args": ["--fast"]}


def test_a_dvc_yaml_in_a_subfolder_has_its_paths_relative_to_it():
    tree = DictTree({
        "sub/train.py": "print(1)\n", "sub/params.yaml": "lr: 0.1\n", "sub/data.csv": "x\n",
    })  # fmt: skip
    dvc_yaml = (
        "stages:\n  t:\n    cmd: python train.py data.csv\n    deps: [data.csv]\n    params: [lr]\n    outs: [out]\n"
    )
    c = convert_dvc(dvc_yaml, tree, where="sub/dvc.yaml")
    assert c.manifest == {
        "params_file": "sub/params.yaml",
        "stages": {"t": {"entry": "sub/train.py", "args": ["sub/data.csv"], "deps": ["sub/data.csv"],
                         "params": ["lr"], "outs": ["sub/out"]}},
    }  # fmt: skip
    assert any("runs in sub/ under DVC" in n.message for n in c.notes)


@pytest.mark.parametrize(
    "key", ["cmd", "deps", "outs", "params", "metrics", "plots", "foreach", "matrix", "vars", "wdir"]
)
@pytest.mark.parametrize(
    "value", ["5", "null", "{}", "[null]", "[{}]", "[{a: 5}]", "[{a: null, b: null}]", "'${nope}'", "[[1]]"]
)
@pytest.mark.parametrize("top", [False, True])
def test_a_malformed_value_is_a_note_or_one_clear_error_never_a_crash(key: str, value: str, top: bool):
    stage = "stages:\n  a:\n    cmd: python src/train.py\n"
    text = f"{key}: {value}\n{stage}" if top else stage.replace("    cmd: python src/train.py\n", f"    {key}: {value}\n") if key == "cmd" else f"{stage}    {key}: {value}\n"  # fmt: skip
    try:
        c = convert(text)
    except ManifestError as exc:
        assert str(exc) and exc.where and exc.where.startswith("dvc.yaml")
        return
    assert c.stages == ("a",) or any(n.kind == "skipped" and n.line == 2 for n in c.notes)
