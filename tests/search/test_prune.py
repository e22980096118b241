"""Live metrics and pruning (issue 19, item 5), through the real CLI on real Dask processes: a
stage's `modver.log_metrics(step=...)` reaches the driver while it runs (`modver sweeps` shows it),
and `--prune median` stops trials whose curve is bad — their stage process ended (or, a stage that
asks `modver.should_prune()`, stopped by itself), recorded `pruned` with the step and value, and
no cache entry written for them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from modver.store.layout import Store
from tests.helpers import cli

TRAIN = {
    "manifest.yaml": """\
stages:
  train:
    entry: pipe/train.py:train
    params: {C: 1.0, polite: false, steps: 15}
""",
    "pipe/__init__.py": "",
    "pipe/train.py": """\
import os
import time

import modver

HERE = os.path.dirname(os.path.dirname(__file__))


def _say(text):
    with open(os.path.join(HERE, "calls.log"), "a") as f:
        f.write(text + "\\n")


def train(C=1.0, polite=False, steps=15):
    _say(f"train {os.getpid()} {C!r}")
    score = 1.0 - abs(C - 1.0)  # a flat curve: a bad C is bad at every step
    for step in range(steps):
        modver.log_metrics(step=step, score=score)
        if polite and modver.should_prune():
            _say(f"stopped {os.getpid()} {step}")
            return {"stopped": step}
        while os.path.exists(os.path.join(HERE, "hold.flag")):
            time.sleep(0.02)  # held by the test
        time.sleep(0.1)
    return {"score": score}
""",
}


@pytest.fixture
def train_project(git_project):
    for path, text in TRAIN.items():
        git_project.write(path, text)
    git_project.write(".gitignore", ".modver/\ncalls.log\nhold.flag\n")
    git_project.commit("a stage that logs a curve")
    return git_project


def _calls(root: Path) -> list[list[str]]:
    return [line.split() for line in (root / "calls.log").read_text().splitlines()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _check_pruned(root: Path, record: dict, study_name: str) -> list[dict]:
    """Every pruned trial: recorded pruned (point, run, study) with its step and value, no cache entry."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(root / ".modver" / "studies" / study_name / "journal.log")))
    states = {t.number: t.state.name for t in optuna.load_study(study_name=study_name, storage=storage).trials}
    runs = {r["run"]: r for r in json.loads(cli(root, "runs", "--sweep", record["sweep"], "--json").stdout)}
    cache = Store(root).output_cache()
    pruned = [p for p in record["points"] if p["status"] == "pruned"]
    for point in pruned:
        assert point["error"].startswith("pruned at step ") and "score=" in point["error"], point
        run = runs[point["run"]]
        assert run["status"] == "pruned" and "pruned at step" in run["error"]["message"], run
        assert states[point["trial"]] == "PRUNED"
        assert cache.get(run["stages"]["train"]["cache_key"]) is None  # no cache entry written
    for point in record["points"]:
        if point["status"] == "succeeded":
            assert states[point["trial"]] == "COMPLETE"
    assert len(record["points"]) == 8 and {p["status"] for p in record["points"]} <= {"succeeded", "pruned"}
    # seed 33 draws trials 6 and 7 worse than all six before them: pruned whatever order trials end in
    assert {6, 7} <= {p["trial"] for p in pruned}
    return pruned


def test_a_pruned_trial_s_stage_process_ends_and_nothing_is_cached(train_project):
    root = train_project.root
    done = cli(root, "sweep", "--optimize", "score", "--trials", "8", "--set", "train.C=uniform(0,2)",
               "--prune", "median", "--sampler", "random", "--seed", "33", "--jobs", "2", "--study", "p1", "--json",
               env={"MODVER_PRUNE_GRACE": "0.3"}, timeout=300)  # fmt: skip
    record = json.loads(done.stdout)
    assert record["optimize"]["prune"] == "median"
    pruned = _check_pruned(root, record, "p1")
    assert pruned, "the seeded study pruned no trial"
    calls = _calls(root)
    for point in pruned:  # its stage's process was ended: killed mid-curve, not finished
        pid = next(int(c[1]) for c in calls if c[0] == "train" and float(c[2]) == point["params"]["train.C"])
        assert not _alive(pid)
    table = cli(root, "sweeps").stdout
    assert "score" in table


def test_a_stage_that_asks_should_prune_stops_itself(train_project):
    root = train_project.root
    done = cli(root, "sweep", "--optimize", "score", "--trials", "8", "--set", "train.C=uniform(0,2)",
               "--set", "train.polite=true", "--prune", "median", "--sampler", "random", "--seed", "33",
               "--jobs", "2", "--study", "p2", "--json", timeout=300)  # fmt: skip
    record = json.loads(done.stdout)
    pruned = _check_pruned(root, record, "p2")
    assert pruned
    # a pruned stage that saw should_prune() returned on its own (one pruned at its last steps may
    # have ended its loop first: its output is not kept either)
    stopped = [c for c in _calls(root) if c[0] == "stopped"]
    assert 1 <= len(stopped) <= len(pruned)


def test_should_prune_is_false_outside_a_search():
    import modver

    assert modver.should_prune() is False


def test_a_running_trial_s_live_metric_reaches_the_driver(train_project):
    root = train_project.root
    (root / "hold.flag").write_text("")
    args = ["sweep", "--optimize", "score", "--trials", "1", "--set", "train.C=uniform(0.5,1.5)", "--jobs", "1"]
    driver = subprocess.Popen([sys.executable, "-m", "modver", *args], cwd=root, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        latest = None
        while latest is None:  # the stage has logged step 0 and is held: its value is in the record
            assert driver.poll() is None and time.monotonic() < deadline, "no live value reached the record"
            listed = json.loads(cli(root, "sweeps", "--json").stdout) if (root / ".modver" / "sweeps").exists() else []
            points = listed[0]["points"] if listed else []
            latest = points[0].get("latest") if points else None
            time.sleep(0.1)
        assert latest["step"] == 0 and points[0]["status"] == "running"
        (root / "hold.flag").unlink()
        assert driver.wait(timeout=120) == 0
    finally:
        if driver.poll() is None:
            driver.kill()
