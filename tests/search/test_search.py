"""A search (issue 19, items 2 and 4) through the real CLI on a real git repository, on real Dask
processes: Optuna's trials on the sweep engine, each one run with its `trial` and `sweep`, shared
upstream stages executed once, failed trials told failed, and the results: `modver sweeps`,
`runs --sweep`, `sweep --best ID`."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time

import optuna
import pytest

from tests.helpers import cli
from tests.sweep.pipeline import executions, write_sweep_project


@pytest.fixture
def sweep_project(git_project):
    return write_sweep_project(git_project)


def _journal(root, name):  # type: ignore[no-untyped-def]
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(root / ".modver" / "studies" / name / "journal.log")))
    return optuna.load_study(study_name=name, storage=storage)


def test_trials_that_vary_only_the_model_share_the_upstream_stages(sweep_project):
    root = sweep_project.root
    done = cli(root, "sweep", "--optimize", "accuracy", "--trials", "6", "--set", "model.C=uniform(0.5,1.5)",
               "--set", "augment.noise=0", "--jobs", "2", "--seed", "7", "--json")  # fmt: skip
    record = json.loads(done.stdout)
    assert record["status"] == "succeeded" and len(record["points"]) == 6
    assert sorted(p["trial"] for p in record["points"]) == list(range(6))
    assert {p["status"] for p in record["points"]} == {"succeeded"}
    counts = executions(root)
    assert counts["preprocess"] == 1 and counts["augment"] == 1  # once in total, for six trials
    assert counts["model"] == 6 and counts["evaluate"] == 6
    assert record["optimize"] == {"metric": "accuracy", "direction": "maximize", "trials": 6, "sampler": "tpe",
                                  "seed": 7, "study": record["sweep"], "prune": "none"}  # fmt: skip
    # each trial is a run of the sweep with its trial number, its value the run's metric
    runs = json.loads(cli(root, "runs", "--sweep", record["sweep"], "--json").stdout)
    assert sorted(r["trial"] for r in runs) == list(range(6))
    assert {r["sweep"] for r in runs} == {record["sweep"]}
    assert all(isinstance(r["params"]["model"]["C"], float) for r in runs)
    study = _journal(root, record["sweep"])
    by_trial = {t.number: t for t in study.trials}
    for r in runs:
        assert by_trial[r["trial"]].value == pytest.approx(r["metrics"]["accuracy"])
        assert by_trial[r["trial"]].params == {"model.C": r["params"]["model"]["C"]}  # the fixed value is not searched
        assert r["params"]["augment"]["noise"] == 0
    best = max(runs, key=lambda r: r["metrics"]["accuracy"])
    assert record["best"]["trial"] == best["trial"] and record["best"]["value"] == best["metrics"]["accuracy"]
    # modver sweeps: the best trial, its params and value, as a table and as JSON
    listed = json.loads(cli(root, "sweeps", "--json").stdout)[0]
    assert listed["best"] == record["best"]
    assert listed["best"]["params"] == {"model.C": best["params"]["model"]["C"]}
    table = cli(root, "sweeps").stdout
    assert f"accuracy {best['metrics']['accuracy']:.4g} (trial {best['trial']})" in table
    # sweep --best ID: the best params as --set lines, which run the best trial again (from the cache)
    lines = cli(root, "sweep", "--best", record["sweep"][:12]).stdout.splitlines()
    assert lines[0] == "--set augment.noise=0" and lines[1].startswith("--set model.C=")
    args = [a for line in lines for a in shlex.split(line)]
    again = json.loads(cli(root, "run", *args, "--json").stdout)
    assert again["metrics"]["accuracy"] == best["metrics"]["accuracy"]
    assert set(again["cached"].values()) == {True}


def test_int_and_choice_keep_their_types_and_a_failed_trial_is_told_failed(sweep_project):
    root = sweep_project.root
    # C < 0 raises in the model stage: those trials fail, the others go on (seed 2 draws -1 twice)
    done = cli(root, "sweep", "--optimize", "accuracy", "--trials", "5", "--set", "model.C=choice(-1,1,2)",
               "--set", "augment.noise=int(0,3)", "--sampler", "random", "--seed", "2", "--jobs", "2", "--json",
               "--study", "typed")  # fmt: skip
    record = json.loads(done.stdout)
    runs = {r["run"]: r for r in json.loads(cli(root, "runs", "--sweep", record["sweep"], "--json").stdout)}
    study = _journal(root, "typed")
    states = {t.number: t.state.name for t in study.trials}
    assert len(states) == 5 and set(states.values()) == {"FAIL", "COMPLETE"}
    for point in record["points"]:
        run = runs[point["run"]]
        assert type(run["params"]["model"]["C"]) is int and type(run["params"]["augment"]["noise"]) is int
        failed = run["params"]["model"]["C"] < 0
        assert point["status"] == ("failed" if failed else "succeeded")
        assert states[point["trial"]] == ("FAIL" if failed else "COMPLETE")
    assert (root / ".modver" / "studies" / "typed" / "journal.log").is_file()
    # a study's name is taken once
    again = cli(root, "sweep", "--optimize", "accuracy", "--trials", "1", "--set", "model.C=uniform(0.5,1)",
                "--study", "typed", "--jobs", "1", code=1)  # fmt: skip
    assert "study typed exists already" in again.stderr


HELD_FIRST = """\
    here = os.path.dirname(CALLS)
    with open(CALLS) as f:
        first = sum(line.startswith("model ") for line in f) == 1
    while first and os.path.exists(os.path.join(here, "hold.flag")):
        time.sleep(0.05)  # the first trial's model is held while the test holds the flag
"""


def test_a_new_trial_starts_as_soon_as_a_slot_frees_not_in_batches(sweep_project):
    root = sweep_project.root
    stages = sweep_project.read("pipe/stages.py")
    sweep_project.write("pipe/stages.py", stages.replace('    _count("model")\n', '    _count("model")\n' + HELD_FIRST))
    sweep_project.commit("the first model call can be held")
    (root / "hold.flag").write_text("")
    args = ["sweep", "--optimize", "accuracy", "--trials", "5", "--set", "model.C=uniform(0.5,1.5)", "--jobs", "2",
            "--seed", "2", "--json"]  # fmt: skip
    driver = subprocess.Popen([sys.executable, "-m", "modver", *args], cwd=root, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    try:
        # trial 0 is held: the other slot runs trials 1, 2, 3 and 4 one after the other meanwhile
        deadline = time.monotonic() + 240
        while executions(root)["evaluate"] < 4:
            assert driver.poll() is None and time.monotonic() < deadline, "the free slot did not go on"
            time.sleep(0.05)
        (root / "hold.flag").unlink()
        out, err = driver.communicate(timeout=240)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    assert driver.returncode == 0, err
    record = json.loads(out)
    assert [p["status"] for p in record["points"]] == ["succeeded"] * 5
    assert executions(root)["model"] == 5


def test_sigterm_stops_a_search_and_resume_finishes_it(sweep_project):
    root = sweep_project.root
    stages = sweep_project.read("pipe/stages.py")
    sweep_project.write("pipe/stages.py", stages.replace('    _count("model")\n', '    _count("model")\n' + HELD_FIRST))
    sweep_project.commit("the first model call can be held")
    (root / "hold.flag").write_text("")
    args = ["sweep", "--optimize", "accuracy", "--trials", "2", "--set", "model.C=uniform(0.5,1.5)", "--jobs", "1"]
    driver = subprocess.Popen([sys.executable, "-m", "modver", *args], cwd=root, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while executions(root)["model"] < 1:
            assert driver.poll() is None and time.monotonic() < deadline, "the first trial did not start"
            time.sleep(0.05)
        driver.send_signal(signal.SIGTERM)
        _, err = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    assert driver.returncode == 143, err
    assert "Traceback" not in err and "modver sweep --resume" in err
    (root / "hold.flag").unlink()
    listed = json.loads(cli(root, "sweeps", "--json").stdout)[0]
    assert listed["status"] == "interrupted" and [p["status"] for p in listed["points"]] == ["interrupted"]
    record = json.loads(cli(root, "sweep", "--resume", listed["sweep"], "--jobs", "1", "--json").stdout)
    assert [p["status"] for p in record["points"]] == ["interrupted", "succeeded", "succeeded"]
    assert record["points"][1]["params"] == record["points"][0]["params"]  # the stopped trial ran again
