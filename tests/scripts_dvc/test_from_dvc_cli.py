"""`modver init --from-dvc` through the CLI on a DVC-shaped project made here (no dvc, no network):
the conversion, what it never touches, idempotence, and the converted pipeline run end to end."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.helpers import GitProject, mv, mv_json
from tests.scripts_dvc.dvcfiles import FILES

DVC_OWNED = ("dvc.yaml", "dvc.lock", "params.yaml", ".dvc/config", ".dvc/.gitignore")


def _hashes(root: Path) -> dict[str, str]:
    found = {p: hashlib.sha256((root / p).read_bytes()).hexdigest() for p in DVC_OWNED}
    found[".dvc/"] = " ".join(sorted(p.name for p in (root / ".dvc").iterdir()))
    return found


@pytest.fixture
def dvc(git_project: GitProject) -> GitProject:
    for path, text in FILES.items():
        git_project.write(path, text)
    git_project.commit("a DVC project")
    return git_project


def test_init_from_dvc_writes_the_manifest_and_names_what_it_left_out(dvc: GitProject):
    root, before = dvc.root, _hashes(dvc.root)
    out = mv(root, "init", "--from-dvc", str(root)).stdout
    assert "5 stages from dvc.yaml (prepare, featurize-train, featurize-test, train, evaluate)" in out
    assert "dvc.yaml:3: `artifacts:` (model) not converted" in out
    assert "dvc.yaml:51: stage 'evaluate': outs eval/curve.csv: `persist: True` ignored" in out
    assert "dvc.yaml:53: plots 'Curve': template, x not converted" in out
    assert "deps src/prepare.py, src/common.py not listed" in out
    assert "dvc.lock is not read: modver's cache starts empty" in out
    text = dvc.read("manifest.yaml")
    assert "entry: src/prepare.py\n    args: [data/data.xml]\n    deps: [data/data.xml]\n" in text
    assert "plots: [eval/curve.csv]" in text and "metrics: [eval/metrics.json]" in text
    assert _hashes(root) == before  # dvc.yaml, dvc.lock, params.yaml and .dvc/ never touched
    # idempotent: the same conversion again says so and changes nothing
    again = mv(root, "init", "--from-dvc", str(root / "dvc.yaml")).stdout
    assert "Already there, unchanged" in again and dvc.read("manifest.yaml") == text
    # a different manifest is never replaced without --force
    dvc.write("manifest.yaml", "stages:\n  x:\n    entry: src/train.py\n")
    err = mv(root, "init", "--from-dvc", str(root), code=1).stderr
    assert "manifest.yaml already exists and differs" in err and "--force" in err
    assert "x:" in dvc.read("manifest.yaml")
    assert "Replaced" in mv(root, "init", "--from-dvc", "--force", str(root)).stdout
    assert dvc.read("manifest.yaml") == text and _hashes(root) == before


def test_init_from_dvc_fails_only_when_no_stage_converts(git_project: GitProject):
    root = git_project.root
    git_project.write("dvc.yaml", "stages:\n  build:\n    cmd: make all\n  sh:\n    cmd: ./run.sh > out\n")
    err = mv(root, "init", "--from-dvc", str(root), code=1).stderr
    assert "no stage of dvc.yaml converts" in err and "dvc.yaml:2: stage 'build' not converted" in err
    assert not (root / "manifest.yaml").exists()
    assert "no DVC pipeline at" in mv(root, "init", "--from-dvc", str(root / "sub"), code=1).stderr


def test_the_converted_pipeline_runs_caches_and_follows_a_params_yaml_set(dvc: GitProject):
    root = dvc.root
    mv(root, "init", "--from-dvc", str(root))
    before = _hashes(root)
    first = mv_json(root, "run")
    assert first["status"] == "succeeded" and not any(first["cached"].values())
    assert set(first["metrics"]) >= {"acc", "n.test"}  # eval/metrics.json, nested keys joined
    assert sorted(p.name for p in (root / "data" / "features").iterdir()) == ["test", "train"]  # folder outs placed
    again = mv_json(root, "run")
    assert all(again["cached"].values()) and again["metrics"] == first["metrics"]
    features = (root / "data" / "features" / "train" / "x.json").read_text()
    # a key of params.yaml the featurize stages list: they and what reads their outs rerun, not prepare
    changed = mv_json(root, "run", "--set", "featurize.scale=3")
    assert changed["cached"] == {
        "prepare": True, "featurize-train": False, "featurize-test": False, "train": False, "evaluate": False,
    }  # fmt: skip
    assert (root / "data" / "features" / "train" / "x.json").read_text() != features  # the new outs placed
    assert "scale: 2" in dvc.read("params.yaml") and _hashes(root) == before  # the user's params.yaml kept
    assert all(mv_json(root, "run", "--set", "featurize.scale=3")["cached"].values())
