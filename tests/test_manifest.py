"""Tests for modver.manifest: loading, validation errors, ordering, pin edits, dumping."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modver.errors import InvalidNameError, ManifestError, ModverError, UnknownStageError
from modver.manifest import (
    STARTER_MANIFEST,
    Manifest,
    dump_manifest_dict,
    load_manifest,
    load_manifest_text,
    set_pin,
)
from modver.models import StageSpec

SPEC_EXAMPLE = """\
# manifest.yaml
data:
  digits: data/digits.npz          # named input files, content-hashed
stages:
  preprocess:
    entry: pipeline/preprocess.py:preprocess
    version: v3                    # pinned; absent means "the working tree"
    inputs: {raw: data.digits}     # keyword argument -> data.<name> or another stage
    params: {scale: true}          # keyword arguments
  augment:
    entry: pipeline/augment.py:augment
    version: v5
    inputs: {data: preprocess}
    params: {noise: 0.1}
  model:
    entry: pipeline/model.py:train
    inputs: {data: augment}
    params: {C: 1.0}
  evaluate:
    entry: pipeline/evaluate.py:evaluate
    inputs: {model: model, data: preprocess}
"""

COMMENTED = """\
# Experiment 12: stronger augmentation.
#   owner: ml-team

data:
  digits:   data/digits.npz   # aligned comment


stages:
  # --- first the data ---
  preprocess:
    entry: pipeline/preprocess.py:preprocess   # the entry
    version: "v3"      # pinned after the sweep
    inputs:
      raw: data.digits
    params:
      scale: true      # keep scaling on
      test_size: 0.25

  augment:
    entry: 'pipeline/augment.py:augment'
    # no pin yet
    inputs: {data: preprocess}
    params: {noise: 0.1,   copies: 2}   # odd spacing kept

  model:
    entry: pipeline/model.py:train
    version: v7
    inputs: {data: augment}
    params:
        C: 1.0          # deeper indentation kept
  evaluate: {entry: pipeline/evaluate.py:evaluate, inputs: {model: model, data: preprocess}}
# trailing comment
"""


def write(tmp_path: Path, text: str, name: str = "manifest.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_text(text: str) -> Manifest:
    return load_manifest_text(text, Path("m.yaml"))


# --------------------------------------------------------------------------- loading


def test_loads_the_spec_example(tmp_path):
    m = load_manifest(write(tmp_path, SPEC_EXAMPLE))
    assert m.path == tmp_path / "manifest.yaml"
    assert m.root == tmp_path
    assert m.data == {"digits": "data/digits.npz"}
    assert list(m.stages) == ["preprocess", "augment", "model", "evaluate"]
    assert m.stages["preprocess"] == StageSpec(
        name="preprocess",
        entry="pipeline/preprocess.py:preprocess",
        version="v3",
        inputs={"raw": "data.digits"},
        params={"scale": True},
    )
    assert m.stages["model"].version is None
    assert m.stages["model"].params == {"C": 1.0}
    assert m.stages["evaluate"].inputs == {"model": "model", "data": "preprocess"}
    assert m.options == {"docstrings": False}
    assert m.order() == ["preprocess", "augment", "model", "evaluate"]


def test_root_can_be_given(tmp_path):
    (tmp_path / "experiments").mkdir()
    path = write(tmp_path, SPEC_EXAMPLE, "experiments/a.yaml")
    assert load_manifest(path, root=tmp_path).root == tmp_path


def test_params_are_plain_python():
    m = load_text(
        "stages:\n  a:\n    entry: a.py:f\n"
        "    params: {x: &n 1, y: [1, 2.5, 'q', null], z: {k: *n}, t: &t true, u: *t, h: 0x10}\n"
    )
    params = m.stages["a"].params
    assert params == {"x": 1, "y": [1, 2.5, "q", None], "z": {"k": 1}, "t": True, "u": True, "h": 16}
    assert type(params["t"]) is bool and type(params["u"]) is bool and type(params["h"]) is int
    assert type(params["y"]) is list and type(params["z"]) is dict and type(params["y"][2]) is str
    json.dumps(dump_manifest_dict(m))


@pytest.mark.parametrize(
    ("entry", "normalised"),
    [
        ("a.py", "a.py"),
        ("pipeline/a.py:f", "pipeline/a.py:f"),
        ("./pipeline/a.py:Model", "pipeline/a.py:Model"),
        ("src/pkg/a.py:Model.fit", "src/pkg/a.py:Model.fit"),
        ("a.py:_private", "a.py:_private"),
    ],
)
def test_entry_forms(entry, normalised):
    m = load_text(f"stages:\n  a:\n    entry: {entry}\n")
    assert m.stages["a"].entry == normalised


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("v3", "v3"),
        ("3", "v3"),
        ("latest", "latest"),
        ("'3'", "3"),
        ("git:HEAD~3", "git:HEAD~3"),
        ("abc123ef", "abc123ef"),
        ("null", None),
        ("best-run", "best-run"),
    ],
)
def test_version_values(value, expected):
    m = load_text(f"stages:\n  a:\n    entry: a.py\n    version: {value}\n")
    assert m.stages["a"].version == expected


def test_fingerprint_options():
    assert load_text("fingerprint: {docstrings: true}\nstages: {}\n").options == {"docstrings": True}
    assert load_text("fingerprint:\nstages:\n").options == {"docstrings": False}


def test_empty_sections_are_empty():
    m = load_text("data:\nstages:\n")
    assert m.data == {} and m.stages == {} and m.order() == []


def test_deps_are_normalised_paths():
    m = load_text("stages:\n  a:\n    entry: a.py\n    deps: [configs/x.yaml, ./b.py]\n")
    assert m.stages["a"].deps == ("configs/x.yaml", "b.py")


def test_starter_manifest_loads_empty(tmp_path):
    m = load_manifest(write(tmp_path, STARTER_MANIFEST))
    assert m.stages == {} and m.data == {} and m.options == {"docstrings": False}
    assert STARTER_MANIFEST.count("#") > 5  # it explains itself


def test_starter_manifest_example_works_when_uncommented():
    # Uncommenting the example lines gives a valid manifest.
    lines = []
    for line in STARTER_MANIFEST.splitlines():
        if line.startswith("#  ") or line.startswith("# fingerprint"):
            line = line[1:] if line.startswith("#  ") else line[2:]
        lines.append(line)
    m = load_text("\n".join(lines) + "\n")
    assert m.order() == ["preprocess", "train"]
    assert m.options == {"docstrings": True}


def test_load_manifest_text_accepts_bytes():
    m = load_manifest_text(SPEC_EXAMPLE.encode(), "m.yaml")
    assert list(m.stages) == ["preprocess", "augment", "model", "evaluate"]


def test_utf8_bom_is_accepted(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + SPEC_EXAMPLE.encode())
    assert load_manifest(path).stages["preprocess"].version == "v3"


# --------------------------------------------------------------------------- errors

BAD = [
    # (id, yaml, error type, where "line:col" or None, substring of message, substring of hint)
    ("malformed", "stages:\n  a: [1\n  b: 2\n", ManifestError, "3:4", "malformed YAML", "syntax"),
    (
        "duplicate key",
        "stages:\n  a:\n    entry: a.py\n    entry: b.py\n",
        ManifestError,
        "4:5",
        "duplicate key",
        "only once",
    ),
    (
        "duplicate stage",
        "stages:\n  a: {entry: a.py}\n  a: {entry: b.py}\n",
        ManifestError,
        "3:3",
        "duplicate key",
        "only once",
    ),
    ("tabs", "stages:\n\ta: 1\n", ManifestError, "2:1", "malformed YAML", "tabs"),
    ("two documents", "stages: {}\n---\nstages: {}\n", ManifestError, "2:1", "document", None),
    ("top level list", "- a\n- b\n", ManifestError, "1:1", "must be a mapping", "modver init"),
    ("top level scalar", "hello\n", ManifestError, None, "must be a mapping", "modver init"),
    ("empty", "", ManifestError, None, "empty", "modver init"),
    (
        "unknown top key",
        "stage:\n  a: {entry: a.py}\n",
        ManifestError,
        "1:1",
        "unknown key 'stage'",
        "did you mean 'stages'",
    ),
    (
        "unknown stage key",
        "stages:\n  a:\n    entry: a.py\n    parms: {x: 1}\n",
        ManifestError,
        "4:5",
        "unknown key 'parms'",
        "did you mean 'params'",
    ),
    (
        "unknown fingerprint key",
        "fingerprint: {docstring: true}\n",
        ManifestError,
        "1:15",
        "'docstring'",
        "did you mean 'docstrings'",
    ),
    ("fingerprint not bool", "fingerprint: {docstrings: yes}\n", ManifestError, "1:27", "true or false", None),
    ("missing entry", "stages:\n  a:\n    params: {x: 1}\n", ManifestError, "2:3", "no `entry`", "entry:"),
    ("empty stage", "stages:\n  a:\n", ManifestError, "2:3", "no `entry`", "entry:"),
    ("stage is a string", "stages:\n  a: a.py:f\n", ManifestError, "2:6", "must be a mapping", "{entry: a.py:f}"),
    ("stages a list", "stages:\n  - a\n", ManifestError, "2:3", "`stages` must be a mapping", None),
    ("entry not py", "stages:\n  a:\n    entry: a.txt\n", ManifestError, "3:12", ".py", "path/to/file.py"),
    ("entry bare .py", "stages:\n  a:\n    entry: .py:f\n", ManifestError, "3:12", ".py", None),
    ("entry too deep", "stages:\n  a:\n    entry: a.py:A.b.c\n", ManifestError, "3:12", "Class.method", None),
    ("entry keyword", "stages:\n  a:\n    entry: a.py:class\n", ManifestError, "3:12", "'class'", None),
    ("entry empty target", "stages:\n  a:\n    entry: 'a.py:'\n", ManifestError, "3:12", "a.py:", None),
    ("entry outside", "stages:\n  a:\n    entry: ../x.py:f\n", ManifestError, "3:12", "outside", None),
    ("entry absolute", "stages:\n  a:\n    entry: /x.py:f\n", ManifestError, "3:12", "absolute", None),
    ("entry backslash", "stages:\n  a:\n    entry: 'a\\b.py'\n", ManifestError, "3:12", "'\\'", "'/'"),
    ("entry number", "stages:\n  a:\n    entry: 3\n", ManifestError, "3:12", "must be a string", None),
    ("name dotdot", "stages:\n  a..b: {entry: a.py}\n", InvalidNameError, "2:3", "'a..b'", "letter or digit"),
    ("name lock", "stages:\n  x.lock: {entry: a.py}\n", InvalidNameError, "2:3", "'x.lock'", None),
    ("name dot end", "stages:\n  x.: {entry: a.py}\n", InvalidNameError, "2:3", "'x.'", None),
    ("name dash start", "stages:\n  -x: {entry: a.py}\n", InvalidNameError, "2:3", "'-x'", None),
    ("name space", "stages:\n  'a b': {entry: a.py}\n", InvalidNameError, "2:3", "'a b'", None),
    ("name number", "stages:\n  1: {entry: a.py}\n", InvalidNameError, "2:3", "'1'", None),
    ("name data.", "data: {x: x}\nstages:\n  data.x: {entry: a.py}\n", ManifestError, "3:3", "data", None),
    (
        "undeclared data",
        "stages:\n  a:\n    entry: a.py\n    inputs: {x: data.nope}\n",
        ManifestError,
        "4:17",
        "undeclared data 'nope'",
        "add it under `data:`",
    ),
    (
        "unknown input stage",
        "stages:\n  a:\n    entry: a.py\n    inputs: {x: preproces}\n  preprocess: {entry: p.py}\n",
        ManifestError,
        "4:17",
        "unknown stage 'preproces'",
        "did you mean 'preprocess'",
    ),
    (
        "input not identifier",
        "data: {d: d}\nstages:\n  a:\n    entry: a.py\n    inputs: {a-b: data.d}\n",
        ManifestError,
        "5:14",
        "'a-b'",
        None,
    ),
    (
        "input not string",
        "stages:\n  a:\n    entry: a.py\n    inputs: {x: [1]}\n",
        ManifestError,
        "4:17",
        "found a list",
        None,
    ),
    (
        "inputs list",
        "stages:\n  a:\n    entry: a.py\n    inputs: [x]\n",
        ManifestError,
        "4:13",
        "must be a mapping",
        None,
    ),
    (
        "params list of numbers",  # list-form params are keys of the params file (script stages)
        "stages:\n  a:\n    entry: a.py\n    params: [1, 2]\n",
        ManifestError,
        "4:14",
        "params-file key of stage 'a' must be a key of the params file",
        None,
    ),
    (
        "params list on a function stage",
        "stages:\n  a:\n    entry: a.py:f\n    params: [x.y]\n",
        ManifestError,
        "4:13",
        "params of stage 'a' must be a mapping: list-form params are for script stages",
        None,
    ),
    (
        "params scalar",
        "stages:\n  a:\n    entry: a.py\n    params: 3\n",
        ManifestError,
        "4:13",
        "must be a mapping",
        None,
    ),
    (
        "param date",
        "stages:\n  a:\n    entry: a.py\n    params: {d: 2024-01-01}\n",
        ManifestError,
        "4:17",
        "unsupported",
        "quote",
    ),
    (
        "param tagged",
        "stages:\n  a:\n    entry: a.py\n    params: {d: !foo bar}\n",
        ManifestError,
        "4:17",
        "unsupported",
        None,
    ),
    (
        "param nested int key",
        "stages:\n  a:\n    entry: a.py\n    params: {d: {1: x}}\n",
        ManifestError,
        "4:18",
        "must be strings",
        None,
    ),
    (
        "input and param",
        "data: {d: x}\nstages:\n  a:\n    entry: a.py\n    inputs: {x: data.d}\n    params: {x: 1}\n",
        ManifestError,
        "6:14",
        "both an input and a param",
        None,
    ),
    ("version float", "stages:\n  a:\n    entry: a.py\n    version: 3.5\n", ManifestError, "4:14", "version", "v3"),
    ("version bool", "stages:\n  a:\n    entry: a.py\n    version: true\n", ManifestError, "4:14", "version", None),
    ("version zero", "stages:\n  a:\n    entry: a.py\n    version: 0\n", ManifestError, "4:14", "version", None),
    ("version list", "stages:\n  a:\n    entry: a.py\n    version: [v1]\n", ManifestError, "4:14", "version", None),
    ("version spaces", "stages:\n  a:\n    entry: a.py\n    version: 'v 1'\n", ManifestError, "4:14", "version", None),
    (
        "deps string",
        "stages:\n  a:\n    entry: a.py\n    deps: x.yaml\n",
        ManifestError,
        "4:11",
        "list of paths",
        "[x.yaml]",
    ),
    (
        "deps mapping",
        "stages:\n  a:\n    entry: a.py\n    deps: {x: 1}\n",
        ManifestError,
        "4:11",
        "list of paths",
        None,
    ),
    (
        "deps item number",
        "stages:\n  a:\n    entry: a.py\n    deps: [x.yaml, 3]\n",
        ManifestError,
        "4:20",
        "file path",
        None,
    ),
    ("deps outside", "stages:\n  a:\n    entry: a.py\n    deps: [../x]\n", ManifestError, "4:12", "outside", None),
    ("data not mapping", "data: [a]\n", ManifestError, "1:7", "`data` must be a mapping", None),
    ("data value number", "data: {a: 3}\n", ManifestError, "1:11", "file path", None),
    ("data bad name", "data: {'a b': x}\n", InvalidNameError, "1:8", "'a b'", None),
    (
        "cycle",
        "stages:\n  a:\n    entry: a.py\n    inputs: {x: b}\n  b:\n    entry: b.py\n    inputs: {y: a}\n",
        ManifestError,
        None,
        "a -> b -> a",
        "cannot take its own output",
    ),
    ("self cycle", "stages:\n  a:\n    entry: a.py\n    inputs: {x: a}\n", ManifestError, None, "a -> a", None),
    ("complex key", "stages:\n  ? [a, b]\n  : {entry: a.py}\n", ManifestError, "2:5", "used as a key", "a name"),
    ("unclosed quote", "stages:\n  a:\n    entry: 'a.py\n", ManifestError, None, "malformed YAML", None),
    ("bad indentation", "stages:\n  a:\n    entry: a.py\n   inputs: {}\n", ManifestError, "4:", "malformed", None),
    ("control character", "stages:\n  a:\n    entry: a\x7f.py\n", ManifestError, "3:13", "U+007F", None),
    ("undefined alias", "stages:\n  a: *nope\n", ManifestError, "2:6", "malformed YAML", None),
]


@pytest.mark.parametrize(("text", "error", "at", "message", "hint"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_manifests_give_precise_errors(tmp_path, text, error, at, message, hint):
    path = write(tmp_path, text)
    with pytest.raises(error) as info:
        load_manifest(path)
    err = info.value
    msg = str(err)
    assert msg.startswith(str(path)), msg
    if at is not None:
        assert msg.startswith(f"{path}:{at}"), msg
    assert message in msg, msg
    if hint is not None:
        assert err.hint and hint in err.hint, err.hint


@pytest.mark.parametrize("text", [b[1] for b in BAD], ids=[b[0] for b in BAD])
def test_ruamel_exceptions_never_leak(text):
    try:
        load_text(text)
    except ModverError as err:
        cause = err.__cause__
        assert not type(err).__module__.startswith("ruamel")
        if cause is not None and type(cause).__module__.startswith("ruamel"):
            assert isinstance(err, ManifestError)
    else:  # pragma: no cover - every BAD case must fail
        pytest.fail("expected an error")


def test_malformed_yaml_chains_the_ruamel_error():
    with pytest.raises(ManifestError) as info:
        load_text("stages: [\n")
    assert type(info.value.__cause__).__module__.startswith("ruamel")


@settings(max_examples=300, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=st.sampled_from(list("ab:-{}[]?,&*!|>'\"#%@`\t\n .0123456789stageyr")), max_size=80))
def test_arbitrary_text_raises_only_modver_errors(text):
    try:
        load_text(text)
    except ModverError:
        pass


@settings(max_examples=200, derandomize=True, deadline=None)
@given(st.binary(max_size=40))
def test_arbitrary_bytes_raise_only_modver_errors(raw):
    try:
        load_manifest_text(raw, "m.yaml")
    except ModverError:
        pass


def test_missing_file_hints_at_init(tmp_path):
    with pytest.raises(ManifestError) as info:
        load_manifest(tmp_path / "manifest.yaml")
    assert "no manifest" in str(info.value)
    assert "modver init" in info.value.hint


def test_folder_instead_of_file(tmp_path):
    with pytest.raises(ManifestError, match="folder"):
        load_manifest(tmp_path)


def test_not_utf8(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_bytes(b"stages:\n  a: {entry: \xff.py}\n")
    with pytest.raises(ManifestError, match=r"m\.yaml:2:14: .*UTF-8"):
        load_manifest(path)


# --------------------------------------------------------------------------- stage() and order()


def test_unknown_stage_lists_the_declared_ones():
    m = load_text(SPEC_EXAMPLE)
    with pytest.raises(UnknownStageError) as info:
        m.stage("preproces")
    assert "preprocess, augment, model, evaluate" in str(info.value)
    assert "did you mean 'preprocess'" in info.value.hint
    assert m.stage("model").entry == "pipeline/model.py:train"


def test_order_follows_inputs_with_ties_in_file_order():
    m = load_text(
        "data: {d: d.npz}\nstages:\n"
        "  report: {entry: r.py, inputs: {m: model, e: evaluate}}\n"
        "  evaluate: {entry: e.py, inputs: {m: model, d: clean}}\n"
        "  model: {entry: m.py, inputs: {d: clean}}\n"
        "  lonely: {entry: l.py}\n"
        "  clean: {entry: c.py, inputs: {raw: data.d}}\n"
        "  other: {entry: o.py}\n"
    )
    assert m.order() == ["lonely", "clean", "model", "evaluate", "report", "other"]


def _spec(name, *inputs):
    return StageSpec(name=name, entry=f"{name}.py", inputs={f"i{k}": v for k, v in enumerate(inputs)})


def test_order_names_the_cycle():
    stages = {
        s.name: s for s in [_spec("load"), _spec("a", "load", "c"), _spec("b", "a"), _spec("c", "b"), _spec("z", "c")]
    }
    m = Manifest(path=Path("m.yaml"), data={}, stages=stages)
    with pytest.raises(ManifestError) as info:
        m.order()
    assert "a -> b -> c -> a" in str(info.value)
    assert str(info.value).startswith("m.yaml")


def test_constructed_manifest_defaults():
    m = Manifest(path=Path("x/m.yaml"), data={}, stages={})
    assert m.options == {"docstrings": False} and m.root == Path("x")


# --------------------------------------------------------------------------- set_pin


def _changed_lines(before: str, after: str) -> tuple[list[str], list[str]]:
    """Lines only in ``before`` and lines only in ``after``, comparing them in order."""
    import difflib

    removed, added = [], []
    for op in difflib.ndiff(before.splitlines(), after.splitlines()):
        if op.startswith("- "):
            removed.append(op[2:])
        elif op.startswith("+ "):
            added.append(op[2:])
    return removed, added


def test_set_pin_replaces_only_the_version_line(tmp_path):
    path = write(tmp_path, COMMENTED)
    set_pin(path, "preprocess", "v4")
    after = path.read_text()
    assert _changed_lines(COMMENTED, after) == (
        ['    version: "v3"      # pinned after the sweep'],
        ['    version: "v4"      # pinned after the sweep'],
    )
    assert len(after.splitlines()) == len(COMMENTED.splitlines())
    assert load_manifest(path).stages["preprocess"].version == "v4"


def test_set_pin_keeps_every_comment(tmp_path):
    path = write(tmp_path, COMMENTED)
    set_pin(path, "model", "v2")
    set_pin(path, "augment", "v1")
    set_pin(path, "preprocess", None)
    after = path.read_text()
    comments = [c for c in re.findall(r"#.*", COMMENTED) if "pinned after the sweep" not in c]
    for comment in comments:
        assert comment in after
    removed, added = _changed_lines(COMMENTED, after)
    assert removed == ['    version: "v3"      # pinned after the sweep', "    version: v7"]
    assert added == ["    version: v1", "    version: v2"]
    # the new pin sits right after `entry`
    lines = after.splitlines()
    i = lines.index("    entry: 'pipeline/augment.py:augment'")
    assert lines[i + 1] == "    version: v1"
    m = load_manifest(path)
    assert [m.stages[s].version for s in m.stages] == [None, "v1", "v2", None]


def test_set_pin_keeps_single_quotes(tmp_path):
    path = write(tmp_path, "stages:\n  a:\n    entry: a.py\n    version: 'v1'  # x\n")
    set_pin(path, "a", "v2")
    assert path.read_text() == "stages:\n  a:\n    entry: a.py\n    version: 'v2'  # x\n"


def test_set_pin_quotes_values_yaml_would_not_read_as_text(tmp_path):
    path = write(tmp_path, "stages:\n  a:\n    entry: a.py\n")
    set_pin(path, "a", "123456")
    assert path.read_text() == 'stages:\n  a:\n    entry: a.py\n    version: "123456"\n'
    assert load_manifest(path).stages["a"].version == "123456"
    set_pin(path, "a", "git:HEAD~3")
    assert load_manifest(path).stages["a"].version == "git:HEAD~3"


def test_set_pin_int_means_vn(tmp_path):
    path = write(tmp_path, "stages:\n  a:\n    entry: a.py\n")
    set_pin(path, "a", 3)
    assert path.read_text() == "stages:\n  a:\n    entry: a.py\n    version: v3\n"


def test_set_pin_inserts_after_entry_even_when_entry_is_not_first(tmp_path):
    text = "stages:\n  a:\n    inputs: {}\n    entry: a.py   # here\n    params: {x: 1}\n"
    path = write(tmp_path, text)
    set_pin(path, "a", "v1")
    assert path.read_text() == (
        "stages:\n  a:\n    inputs: {}\n    entry: a.py   # here\n    version: v1\n    params: {x: 1}\n"
    )


def test_set_pin_on_last_line_without_newline(tmp_path):
    path = write(tmp_path, "stages:\n  a:\n    entry: a.py")
    set_pin(path, "a", "v1")
    assert load_manifest(path).stages["a"].version == "v1"
    set_pin(path, "a", None)
    assert load_manifest(path).stages["a"].version is None


def test_set_pin_keeps_crlf_and_bom(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_bytes(b"\xef\xbb\xbfstages:\r\n  a:\r\n    entry: a.py # c\r\n    params: {}\r\n")
    set_pin(path, "a", "v2")
    assert path.read_bytes() == (
        b"\xef\xbb\xbfstages:\r\n  a:\r\n    entry: a.py # c\r\n    version: v2\r\n    params: {}\r\n"
    )


def test_set_pin_flow_style_stage_is_edited_in_place(tmp_path):
    path = write(tmp_path, COMMENTED)
    set_pin(path, "evaluate", "v2")
    removed, added = _changed_lines(COMMENTED, path.read_text())
    assert removed == ["  evaluate: {entry: pipeline/evaluate.py:evaluate, inputs: {model: model, data: preprocess}}"]
    assert added == [
        "  evaluate: {entry: pipeline/evaluate.py:evaluate, version: v2, inputs: {model: model, data: preprocess}}"
    ]
    set_pin(path, "evaluate", "v3")
    assert "version: v3, inputs" in path.read_text()
    set_pin(path, "evaluate", None)
    assert path.read_text() == COMMENTED


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("{entry: a.py, version: v1}", "{entry: a.py}"),
        ("{version: v1, entry: a.py}", "{entry: a.py}"),
        ("{entry: a.py,version: v1 ,params: {}}", "{entry: a.py,params: {}}"),
    ],
)
def test_set_pin_unpins_flow_style(tmp_path, before, after):
    path = write(tmp_path, f"stages:\n  a: {before}  # c\n")
    set_pin(path, "a", None)
    assert path.read_text() == f"stages:\n  a: {after}  # c\n"


def test_set_pin_falls_back_to_round_trip_for_unusual_layouts(tmp_path):
    text = "# head\nstages:\n  a:\n    entry: a.py  # e\n    version:\n      v1\n    params: {x: 1}  # p\n"
    path = write(tmp_path, text)
    set_pin(path, "a", "v2")
    after = path.read_text()
    assert load_manifest(path).stages["a"].version == "v2"
    for comment in ("# head", "# e", "# p"):
        assert comment in after


def test_set_pin_unknown_stage(tmp_path):
    path = write(tmp_path, SPEC_EXAMPLE)
    before = path.read_bytes()
    with pytest.raises(UnknownStageError, match="preprocess, augment"):
        set_pin(path, "nope", "v1")
    assert path.read_bytes() == before


def test_set_pin_rejects_bad_versions(tmp_path):
    path = write(tmp_path, SPEC_EXAMPLE)
    for bad in ["", "v 1", 0, True]:
        with pytest.raises(ManifestError):
            set_pin(path, "model", bad)


def test_set_pin_same_value_does_not_rewrite(tmp_path):
    path = write(tmp_path, SPEC_EXAMPLE)
    inode = os.stat(path).st_ino
    set_pin(path, "preprocess", "v3")
    set_pin(path, "model", None)
    assert os.stat(path).st_ino == inode
    assert path.read_text() == SPEC_EXAMPLE


def test_set_pin_is_atomic_and_leaves_no_temp_files(tmp_path):
    path = write(tmp_path, SPEC_EXAMPLE)
    path.chmod(0o640)
    inode = os.stat(path).st_ino
    set_pin(path, "model", "v1")
    assert os.stat(path).st_ino != inode  # replaced, not rewritten in place
    assert (os.stat(path).st_mode & 0o777) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.yaml"]


def test_set_pin_on_invalid_manifest_fails_without_writing(tmp_path):
    path = write(tmp_path, "stages:\n  a:\n    entry: a.py\n    bogus: 1\n")
    with pytest.raises(ManifestError, match="bogus"):
        set_pin(path, "a", "v1")
    assert path.read_text() == "stages:\n  a:\n    entry: a.py\n    bogus: 1\n"


def test_set_pin_missing_file(tmp_path):
    with pytest.raises(ManifestError) as info:
        set_pin(tmp_path / "manifest.yaml", "a", "v1")
    assert "modver init" in info.value.hint


def test_set_pin_four_space_indentation(tmp_path):
    text = "stages:\n    a:\n        entry: a.py\n        inputs: {}\n    b:\n        entry: b.py\n"
    path = write(tmp_path, text)
    set_pin(path, "a", "v5")
    set_pin(path, "b", "v6")
    assert path.read_text() == (
        "stages:\n    a:\n        entry: a.py\n        version: v5\n        inputs: {}\n"
        "    b:\n        entry: b.py\n        version: v6\n"
    )


# --------------------------------------------------------------------------- dump


def test_dump_is_json_and_loads_back():
    m = load_text(COMMENTED)
    dumped = dump_manifest_dict(m)
    text = json.dumps(dumped)
    assert json.loads(text) == dumped
    again = load_text(text)  # JSON is YAML
    assert dump_manifest_dict(again) == dumped
    assert dumped["stages"]["model"] == {
        "entry": "pipeline/model.py:train",
        "version": "v7",
        "inputs": {"data": "augment"},
        "params": {"C": 1.0},
        "deps": [],
    }
    assert dumped["fingerprint"] == {"docstrings": False}


def test_lone_surrogate_in_params_is_rejected():
    with pytest.raises(ManifestError, match="surrogate"):
        load_text('stages:\n  a:\n    entry: a.py\n    params: {x: "\\ud800"}\n')


def test_dump_does_not_share_params():
    m = load_text("stages:\n  a:\n    entry: a.py\n    params: {x: [1]}\n")
    dump_manifest_dict(m)["stages"]["a"]["params"]["x"].append(2)
    assert m.stages["a"].params == {"x": [1]}


_names = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True)
_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False, allow_infinity=False)
    # YAML streams cannot hold control characters or surrogates, even through JSON
    | st.text(st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\ufffe\uffff"), max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_names, inner, max_size=3),
    max_leaves=6,
)


@st.composite
def manifests(draw):
    data = draw(st.dictionaries(_names, st.from_regex(r"[a-z]{1,5}/[a-z]{1,5}\.npz", fullmatch=True), max_size=3))
    names = draw(st.lists(_names, unique=True, max_size=5))
    stages = {}
    for i, name in enumerate(names):
        refs = [f"data.{d}" for d in data] + names[:i]  # only earlier stages: no cycles
        inputs = (
            draw(st.dictionaries(st.sampled_from(["x", "y", "z"]), st.sampled_from(refs), max_size=2)) if refs else {}
        )
        params = draw(st.dictionaries(st.sampled_from(["p", "q", "r"]), _values, max_size=3))
        stages[name] = {
            "entry": draw(st.sampled_from(["a.py", "pipe/b.py:run", "c.py:Model.fit"])),
            "version": draw(st.none() | st.from_regex(r"v[1-9][0-9]{0,2}", fullmatch=True)),
            "inputs": inputs,
            "params": params,
            "deps": draw(st.lists(st.sampled_from(["cfg/a.yaml", "b.txt"]), unique=True, max_size=2)),
        }
    return {"data": data, "stages": stages, "fingerprint": {"docstrings": draw(st.booleans())}}


@settings(max_examples=100, derandomize=True, deadline=None)
@given(manifests())
def test_load_dump_round_trip(doc):
    m = load_text(json.dumps(doc, ensure_ascii=False))
    assert dump_manifest_dict(m) == doc
    assert dump_manifest_dict(load_text(json.dumps(dump_manifest_dict(m), ensure_ascii=False))) == doc
    assert sorted(m.order()) == sorted(doc["stages"])


@settings(max_examples=30, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(manifests(), st.data())
def test_set_pin_round_trip(tmp_path, doc, data):
    if not doc["stages"]:
        return
    path = tmp_path / "m.yaml"
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False), encoding="utf-8")
    stage = data.draw(st.sampled_from(sorted(doc["stages"])))
    version = data.draw(st.none() | st.sampled_from(["v1", "v42", "latest", "123456", "git:HEAD~1"]))
    set_pin(path, stage, version)
    doc["stages"][stage]["version"] = version
    assert dump_manifest_dict(load_manifest(path)) == doc


# --------------------------------------------------------------------------- import cost


def test_importing_manifest_does_not_import_ruamel():
    code = "import sys, modver.manifest; print('ruamel' in ' '.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_example_digits_manifest_loads():
    root = Path(__file__).resolve().parents[1] / "examples" / "digits"
    m = load_manifest(root / "manifest.yaml")
    assert m.order() == ["preprocess", "augment", "model", "evaluate"]
    assert m.data == {"digits": "data/digits.npz"}
    for spec in m.stages.values():
        assert (root / spec.path).is_file()
    assert (root / m.data["digits"]).is_file()


# --------------------------------------------------------------------------- bounds


def _bomb(ways: int, depth: int, indent: str = "      ") -> str:
    """Params where each level is a list of ``ways`` aliases of the level before."""
    lines = [f"{indent}l0: &l0 [{', '.join(['x'] * ways)}]"]
    lines += [f"{indent}l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * ways)}]" for i in range(1, depth)]
    return "\n".join(lines) + "\n"


def _with_params(params: str) -> str:
    return f"stages:\n  prep:\n    entry: pipe/prep.py:prep\n    params:\n{params}"


def test_an_alias_bomb_in_params_is_refused_naming_the_param():
    # 9 ways, 5 deep: 66,430 values from 5 lines (7 deep: 5.4 million, which hung `status`)
    text = _with_params(_bomb(9, 5))
    with pytest.raises(ManifestError, match="too big: the manifest's stages hold more than 20,000 values") as info:
        load_manifest_text(text, "m.yaml")
    assert "(at param 'l4' of stage 'prep')" in str(info.value) and str(info.value).startswith("m.yaml:9:11:")
    assert "alias" in info.value.hint and "20,000" in info.value.hint


def test_aliases_within_the_bound_are_expanded():
    m = load_manifest_text(_with_params(_bomb(9, 3)), "m.yaml")
    assert m.stages["prep"].params["l2"] == [[["x"] * 9] * 9] * 9  # 921 values in all


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        # one 20,000-character string used 100 times: 2 MB of text from 20 KB
        (
            _with_params("      s: &s " + "x" * 20_000 + "\n      t: [" + ", ".join(["*s"] * 100) + "]\n"),
            "more than 1,000,000 characters",
        ),
        (_with_params("      d: " + "[" * 40 + "]" * 40 + "\n"), "nested too deeply: more than 32 levels"),
        # stage bodies are expanded too: 3,000 stages sharing 2,000 inputs
        (
            "data:\n"
            + "".join(f"  d{i}: d/{i}\n" for i in range(2000))
            + "stages:\n  s0: &s {entry: a.py:f, inputs: {"
            + ", ".join(f"i{i}: data.d{i}" for i in range(2000))
            + "}}\n"
            + "".join(f"  s{i}: *s\n" for i in range(1, 3000)),
            "(at the inputs of stage 's9')",
        ),
        (
            "stages:\n  s0: {entry: a.py:f, deps: &d ["
            + ", ".join(f"d{i}" for i in range(2000))
            + "]}\n"
            + "".join(f"  s{i}: {{entry: a.py:f, deps: *d}}\n" for i in range(1, 3000)),
            "(at the deps of stage 's9')",
        ),
        ("stages:\n  s: {entry: a.py:f, params: {x: '" + "y" * 300_000 + "'}}\n", "larger than 256 KiB"),
    ],
)
def test_manifests_beyond_the_bounds_are_refused(text, needle):
    with pytest.raises(ManifestError) as info:
        load_manifest_text(text, "m.yaml")
    assert needle in str(info.value) and info.value.hint


def test_real_sized_manifests_are_within_the_bounds():
    numbers = ", ".join(str(i / 7) for i in range(5000))
    stages = "".join(
        f"  s{i}:\n    entry: pipe/s.py:f\n    inputs: {{x: s{i - 1}}}\n    params: {{a: {i}, b: [1, 2, 3], c: {{d: 'e'}}}}\n"
        for i in range(1, 200)
    )
    text = f"stages:\n  s0:\n    entry: pipe/s.py:f\n    params: {{table: [{numbers}]}}\n{stages}"
    m = load_manifest_text(text, "m.yaml")
    assert len(m.stages["s0"].params["table"]) == 5000 and m.order() == [f"s{i}" for i in range(200)]


def test_stage_order_of_a_long_chain_written_backwards():
    # every stage needs the next one: the order is the file's reversed (linear time, not quadratic)
    n = 3000
    text = (
        "stages:\n"
        + "".join(f"  s{i}: {{entry: a.py:f, inputs: {{x: s{i + 1}}}}}\n" for i in range(n))
        + f"  s{n}: {{entry: a.py:f}}\n"
    )
    assert load_manifest_text(text, "m.yaml").order() == [f"s{i}" for i in range(n, -1, -1)]


def test_an_oversized_or_special_manifest_file_is_refused_without_reading_it(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_bytes(b"stages: {}\n" + b"#" * (300 * 1024))
    with pytest.raises(ManifestError, match="larger than 256 KiB"):
        load_manifest(big)
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)  # reading it would wait for a writer forever
    with pytest.raises(ManifestError, match="not a regular file"):
        load_manifest(fifo)
    with pytest.raises(ManifestError, match="is a folder"):
        load_manifest(tmp_path)


def test_set_values_are_bounded():
    from modver.manifest import parse_scalar

    assert parse_scalar("[" + ", ".join(["0.125"] * 5000) + "]") == [0.125] * 5000
    bomb = (
        "["
        + ", ".join(
            [f"&a0 [{', '.join(['x'] * 9)}]"] + [f"&a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 5)]
        )
        + "]"
    )
    with pytest.raises(ManifestError, match=r"^--set model.C: too big: the value holds more than 20,000 values"):
        parse_scalar(bomb, "--set model.C")
    with pytest.raises(ManifestError, match="100,001 characters long, more than 100,000") as info:
        parse_scalar("x" * 100_001, "--set model.C")
    assert len(str(info.value)) < 200
    with pytest.raises(ManifestError, match="nested too deeply"):
        parse_scalar("[" * 33 + "]" * 33)
    assert parse_scalar("[" * 32 + "]" * 32) is not None


@pytest.mark.parametrize("text", ["{" * 30 + "a: " + "}" * 30, "{[a]: 1}", "? [a, b]\n: 1", "[{&k {a: 1}: 2}, *k]"])
def test_lists_and_mappings_as_keys_are_refused_before_they_are_built(text):
    # found by tests/fuzz: ruamel hashes a mapping key in time exponential in its nesting
    # ({{{{{{{{{{{{{{a: }}}}}}}}}}}}}} took minutes)
    from modver.manifest import parse_scalar

    with pytest.raises(ManifestError, match=r"^--set value:1:\d+: a list or mapping is used as a key; keys are names"):
        parse_scalar(text)
    if "?" not in text:  # a flow value
        with pytest.raises(ManifestError, match=r"m.yaml:2:\d+: a list or mapping is used as a key"):
            load_manifest_text(f"stages:\n  s: {{entry: a.py:f, params: {{p: {text}}}}}\n", "m.yaml")


def test_deeply_nested_brackets_are_refused_before_parsing():
    # found by tests/fuzz: ruamel's scanner takes seconds on thousands of nested [ (minutes on
    # the 100,000 characters a --set value may hold)
    from modver.manifest import parse_scalar

    with pytest.raises(ManifestError, match=r"^--set value:1:65: nested too deeply: more than 64 levels of \[ and \{"):
        parse_scalar("[" * 3000 + "]" * 3000)
    with pytest.raises(ManifestError, match=r"^m.yaml:4:\d+: nested too deeply: more than 64"):
        load_manifest_text(
            "stages:\n  s:\n    entry: a.py:f\n    params: {p: " + "{a: " * 70 + "1" + "}" * 71 + "\n", "m.yaml"
        )
    # brackets in quotes and comments are text
    quoted = "'" + "[" * 100 + "'"
    assert parse_scalar(quoted) == "[" * 100
    assert parse_scalar("x # " + "[" * 100) == "x"


@pytest.mark.parametrize(
    "text",
    [
        '{"\\ud85a\\ude22": 1}',  # found by tests/fuzz: a key with lone surrogates broke the run record
        '[a, {b: "\\udcff"}]',
        '"\\ud800"',
    ],
)
def test_text_with_lone_surrogates_is_refused_anywhere(text):
    from modver.manifest import parse_scalar

    with pytest.raises(ManifestError, match=r"^--set value:1:\d+: .* holds a lone surrogate escape"):
        parse_scalar(text)
    with pytest.raises(ManifestError, match="lone surrogate"):
        load_manifest_text('stages:\n  a:\n    entry: a.py\n    params: {"\\udcff": 1}\n', "m.yaml")
    with pytest.raises(ManifestError, match="lone surrogate"):
        load_manifest_text('data:\n  d: "d/\\ud800"\nstages: {}\n', "m.yaml")


def test_an_anchor_defined_twice_is_no_warning(recwarn):
    # found by tests/fuzz: ruamel's ReusedAnchorWarning reached the terminal as a Python warning
    from modver.manifest import parse_scalar

    assert parse_scalar("[&a 1, *a, &a 2, *a]") == [1, 1, 2, 2]  # YAML allows it: the later one wins
    assert not recwarn.list


def test_the_parsed_manifest_cache_rejects_stale_entries(tmp_path, monkeypatch):
    """A manifest cached by a modver whose models differ (another schema) is parsed again."""
    from modver import manifest as manifest_module

    path = tmp_path / "manifest.yaml"
    path.write_text("stages:\n  a: {entry: a.py:f, params: {C: 1}}\n")
    cache = tmp_path / "cache"
    first = manifest_module.load_manifest_cached(path, tmp_path, cache)
    assert len(list(cache.iterdir())) == 1
    parsed = []
    real = manifest_module.load_manifest_text
    monkeypatch.setattr(manifest_module, "load_manifest_text", lambda *a, **k: parsed.append(1) or real(*a, **k))
    assert manifest_module.load_manifest_cached(path, tmp_path, cache) == first and parsed == []  # from the cache
    monkeypatch.setattr(manifest_module, "manifest_schema", lambda: "another modver's models")
    assert manifest_module.load_manifest_cached(path, tmp_path, cache) == first and parsed == [1]  # parsed again
    for entry in cache.iterdir():  # a damaged entry is parsed again too
        entry.write_bytes(b"not a pickle")
    monkeypatch.undo()
    assert manifest_module.load_manifest_cached(path, tmp_path, cache) == first


def test_the_manifest_schema_follows_the_models():
    from dataclasses import fields

    from modver.manifest import Manifest, manifest_schema
    from modver.models import StageSpec

    assert {f.name for f in fields(StageSpec)} >= {"name", "entry", "version", "inputs", "params", "deps"}
    assert manifest_schema() == manifest_schema() and len(manifest_schema()) == 32
    assert Manifest.__dataclass_fields__  # a dataclass: its fields make the schema
