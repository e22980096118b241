"""A nanoGPT-shaped project end to end through the CLI (issue 16): scripts run in workspaces,
their outs cached and placed, reruns served from the cache, sweeps sharing upstream stages."""

from __future__ import annotations

import json
import pickle

import pytest

from tests.helpers import mv, mv_json
from tests.scripts.nanogpt import FILES, calls


@pytest.fixture
def nano(git_project, tmp_path, monkeypatch):
    for path, text in FILES.items():
        git_project.write(path, text)
    git_project.commit("a nanoGPT-shaped project")
    log = tmp_path / "calls.log"
    monkeypatch.setenv("CALLS_LOG", str(log))
    git_project.log = log
    return git_project


def _files(root, *paths):
    return {p: (root / p).read_bytes() for p in paths}


OUTS = ("data/shakespeare_char/train.bin", "data/shakespeare_char/meta.pkl", "out-tiny/ckpt.pt", "samples.txt")


def test_nanogpt_runs_caches_restores_and_reruns_only_downstream(nano):
    p, log = nano, nano.log
    user_state = p.state()
    record = mv_json(p.root, "run")
    assert record["status"] == "succeeded"
    assert calls(log) == {"prepare": 1, "train": 1, "sample": 1}
    # the config file and the params arrived typed: --compile=False is a bool, max_iters an int
    stdout = (p.root / ".modver" / "runs" / record["run"] / "train.stdout").read_text()
    assert "Overriding config with config/train_tiny.py" in stdout and "Overriding: compile = False" in stdout
    assert "Overriding: max_iters = 20" in stdout and "Overriding: device = cpu" in stdout
    ckpt = pickle.loads((p.root / "out-tiny" / "ckpt.pt").read_bytes())
    assert ckpt["iter_num"] == 20 and ckpt["config"] == {"compile": False, "device": "cpu"}
    assert record["metrics"] == {"train.loss": pytest.approx(10 * 0.99**20, abs=1e-5), "train.iters": 20}
    # prepare wrote next to its __file__ in its workspace; the outs were placed at their paths
    placed = _files(p.root, *OUTS)
    assert record["stages"]["train"]["outs"].keys() == {"out-tiny"}
    assert "temperature 0.8" in placed["samples.txt"].decode()
    assert p.state() == user_state  # HEAD, index, tracked files untouched
    assert not list((p.root / ".modver" / "work").iterdir())  # workspaces are removed

    again = mv_json(p.root, "run")  # fully cached: nothing executes
    assert all(again["cached"].values()) and calls(log)["train"] == 1

    for path in ("out-tiny", "data/shakespeare_char/train.bin", "samples.txt"):
        target = p.root / path
        if target.is_dir():
            import shutil

            shutil.rmtree(target)
        else:
            target.unlink()
    restored = mv_json(p.root, "run")
    assert all(restored["cached"].values()) and sum(calls(log).values()) == 3  # restored, not executed
    assert _files(p.root, *OUTS) == placed

    # a list-form param: only the stage that lists it reruns; the user's params.yaml is untouched
    params_before = (p.root / "params.yaml").read_bytes()
    changed = mv_json(p.root, "run", "--set", "sample.temperature=0.5")
    assert changed["cached"] == {"prepare": True, "train": True, "sample": False}
    assert changed["params"]["sample"]["sample.temperature"] == 0.5
    assert (p.root / "params.yaml").read_bytes() == params_before
    assert "temperature 0.5" in (p.root / "samples.txt").read_text()

    # a dict-form param of train: train and its downstream sample rerun, prepare does not
    explained = mv(p.root, "run", "--set", "train.max_iters=30", "--explain").stdout
    assert "param max_iters 20 -> 30" in explained
    assert calls(log) == {"prepare": 1, "train": 2, "sample": 3}


def test_pin_back_a_script_stage_reruns_from_the_cache(nano):
    p, log = nano, nano.log
    mv_json(p.root, "run")
    v1_ckpt = (p.root / "out-tiny" / "ckpt.pt").read_bytes()
    p.write("train.py", FILES["train.py"].replace("loss * (1 - learning_rate)", "loss * (1 - 2 * learning_rate)"))
    p.commit("faster loss decay")
    v2 = mv_json(p.root, "run")
    assert v2["versions"]["train"] == "v2" and v2["cached"] == {"prepare": True, "train": False, "sample": False}
    assert calls(log) == {"prepare": 1, "train": 2, "sample": 2}

    mv(p.root, "pin", "train@v1")
    back = mv_json(p.root, "run")
    assert back["versions"]["train"] == "v1" and all(back["cached"].values())
    assert calls(log) == {"prepare": 1, "train": 2, "sample": 2}  # served from the cache
    assert (p.root / "out-tiny" / "ckpt.pt").read_bytes() == v1_ckpt  # v1's out placed back


def test_a_sweep_shares_upstream_stages_and_leaves_the_working_tree_alone(nano):
    p, log = nano, nano.log
    mv_json(p.root, "run")
    before = _files(p.root, *OUTS)
    out = mv(p.root, "sweep", "--set", "train.learning_rate=0.02,0.03", "--jobs", "1")
    assert out.exit_code == 0
    assert calls(log) == {"prepare": 1, "train": 3, "sample": 3}  # prepare ran once, before the sweep
    assert _files(p.root, *OUTS) == before  # sweeps never write the working tree
    runs = mv_json(p.root, "runs")
    points = sorted((r for r in runs if r.get("sweep")), key=lambda r: r["metrics"]["train.loss"])
    losses = [r["metrics"]["train.loss"] for r in points]
    assert losses == [pytest.approx(10 * 0.97**20, abs=1e-5), pytest.approx(10 * 0.98**20, abs=1e-5)]
    # a point's outs are placed on demand
    # a sweep over a list-form param: only the stage that lists it runs, at each point
    mv(p.root, "sweep", "--set", "sample.temperature=0.1,0.2", "--jobs", "1")
    assert calls(log) == {"prepare": 1, "train": 3, "sample": 5}
    assert (p.root / "params.yaml").read_text() == FILES["params.yaml"]
    assert mv_json(p.root, "checkout", points[0]["run"])["written"] == ["out-tiny"]
    placed = json.loads((p.root / "out-tiny" / "metrics.json").read_text())
    assert placed["train"]["loss"] == pytest.approx(10 * 0.97**20, abs=1e-5)
