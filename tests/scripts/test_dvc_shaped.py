"""A DVC-shaped project (scripts reading params.yaml, folder outs, metrics JSON) through the CLI:
run, fences around the user's repository, outs in the working tree, checkout, --jobs,
reproduce, modver.load, and outs travelling through push/pull."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import modver
from tests.helpers import GitProject, mv, mv_json
from tests.scripts.dvcproject import FILES


def _refs(p: GitProject) -> list[str]:
    """The repository's refs but modver's own (refs/modver/*, which a run adds)."""
    return [line for line in p.git("for-each-ref").splitlines() if "refs/modver/" not in line]


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def dvc(git_project):
    for path, text in FILES.items():
        git_project.write(path, text)
    git_project.commit("a DVC-shaped project")
    return git_project


def test_a_dvc_shaped_project_runs_fenced_off_the_users_repository(dvc):
    p = dvc
    refs, dot_dvc, state = _refs(p), _tree(p.root / ".dvc"), p.state()
    record = mv_json(p.root, "run")
    assert record["status"] == "succeeded"
    # metrics: numeric leaves, nested keys joined with "."; a string leaf is not a metric
    assert set(record["metrics"]) >= {"avg_prec.train", "avg_prec.test"} and "label" not in record["metrics"]
    assert [e["step"] for e in record["metric_series"]["precision"]] == [0, 1, 2]  # the plots file's curve
    # the tool it called wrote refs and .dvc/tmp in the workspace, not in the user's repository
    assert _refs(p) == refs and _tree(p.root / ".dvc") == dot_dvc and p.state() == state
    assert not (p.root / ".dvc" / "tmp").exists()
    log = (p.root / ".modver" / "runs" / record["run"] / "evaluate.stdout").read_text()
    assert str(p.root) + "\n" not in log  # `git rev-parse --show-toplevel` did not find the user's repo
    # folder outs are placed, with their hashes in the record
    assert sorted(f.name for f in (p.root / "data" / "features").iterdir()) == ["test.json", "train.json"]
    assert record["stages"]["featurize"]["outs"]["data/features"].startswith("mv1:")
    # deps were read-only copies: the user's files keep their modes
    assert (p.root / "data" / "data.xml").stat().st_mode & 0o200


def test_hand_edited_outs_are_never_overwritten_silently(dvc):
    p = dvc
    first = mv_json(p.root, "run")
    (p.root / "model.pkl").write_bytes(b"mine")
    err = mv(p.root, "run", "--set", "train.n_est=20", code=1).stderr
    assert "out model.pkl of stage train in the working tree is not what modver placed there" in err
    assert (p.root / "model.pkl").read_bytes() == b"mine"
    assert len(mv_json(p.root, "runs")) == 1  # refused before anything ran: no run
    second = mv_json(p.root, "run", "--set", "train.n_est=20", "--force-outs")
    assert second["cached"] == {"prepare": True, "featurize": True, "train": False, "evaluate": False}
    now = (p.root / "model.pkl").read_bytes()
    assert now != b"mine"
    # checkout places any run's outs; an edit is refused unless --force
    assert "model.pkl" in mv_json(p.root, "checkout", first["run"])["written"]
    old = (p.root / "model.pkl").read_bytes()
    assert old != now
    shutil.rmtree(p.root / "eval")
    (p.root / "model.pkl").write_bytes(b"edited")
    assert "not what modver placed" in mv(p.root, "checkout", second["run"], code=1).stderr
    assert not (p.root / "eval").exists()  # a refusal changes nothing
    mv(p.root, "checkout", second["run"], "--force")
    assert (p.root / "model.pkl").read_bytes() == now and (p.root / "eval" / "prc.csv").is_file()


def test_jobs_reproduce_and_load_work_on_script_stages(dvc):
    p = dvc
    first = mv_json(p.root, "run")
    placed = _tree(p.root / "data")
    parallel = mv_json(p.root, "run", "--jobs", "2", "--set", "featurize.max_features=5")
    assert parallel["status"] == "succeeded" and parallel["cached"]["prepare"] is True
    assert parallel["cached"]["featurize"] is False
    assert _tree(p.root / "data") == placed  # --jobs never writes the working tree
    again = mv_json(p.root, "reproduce", first["run"])
    assert all(c["match"] for c in again["comparison"].values()) and not any(again["cached"].values())
    features = modver.load("featurize", run=first["run"], path=str(p.root))
    assert isinstance(features, Path) and sorted(f.name for f in features.iterdir()) == ["test.json", "train.json"]
    assert (features / "train.json").read_bytes() == (p.root / "data" / "features" / "train.json").read_bytes()


def test_outs_travel_with_push_and_pull(dvc, tmp_path):
    p = dvc
    remote, storage = tmp_path / "remote.git", tmp_path / "shared"
    storage.mkdir()
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
    p.write("modver.toml", f'storage = "{storage}"\n')
    p.commit("storage")
    p.git("remote", "add", "origin", str(remote))
    p.git("push", "-q", "origin", "main")
    record = mv_json(p.root, "run")
    mv(p.root, "push")
    subprocess.run(["git", "clone", "-q", str(remote), str(tmp_path / "bob")], check=True)
    bob = GitProject.__new__(GitProject)
    bob.root = tmp_path / "bob"
    mv(bob.root, "pull")
    again = mv_json(bob.root, "run")
    assert all(again["cached"].values())  # alice's outs, fetched from the storage, not recomputed
    assert again["metrics"] == record["metrics"]
    assert _tree(bob.root / "data" / "features") == _tree(p.root / "data" / "features")
    assert (bob.root / "model.pkl").read_bytes() == (p.root / "model.pkl").read_bytes()


def test_two_stages_reporting_one_metric_name_are_qualified(git_project):
    p = git_project
    for name in ("a", "b"):
        p.write(
            f"{name}.py",
            f"import json\njson.dump({{'acc': {len(name) / 2 + (name == 'b')}}}, open('m_{name}.json', 'w'))\n",
        )
    p.write(
        "manifest.yaml",
        "stages:\n  a:\n    entry: a.py\n    outs: [m_a.json]\n    metrics: [m_a.json]\n"
        "  b:\n    entry: b.py\n    outs: [m_b.json]\n    metrics: [m_b.json]\n",
    )
    p.commit("two stages, one metric name")
    record = mv_json(p.root, "run")
    assert record["metrics"] == {"a.acc": 0.5, "b.acc": 1.5}
