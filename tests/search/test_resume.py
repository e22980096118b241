"""A killed search resumes (issue 19, item 3), through the real CLI: the driver and its workers
SIGKILLed while a trial runs; `--resume` ends with exactly N counted trials, the trial in flight
runs again (its params, a new number), no trial counts twice, and the sampler goes on from its
saved state rather than from its seed. While a driver runs the study, a second one is refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest

from tests.helpers import cli
from tests.sweep.pipeline import executions, write_sweep_project

HELD = """\
    if os.path.exists(os.path.join(os.path.dirname(CALLS), "hold.flag")):
        with open(CALLS) as f:
            models = sum(line.startswith("model ") for line in f)
        while models >= 3 and os.path.exists(os.path.join(os.path.dirname(CALLS), "hold.flag")):
            time.sleep(0.05)  # the third model call is held while the test holds the flag
"""


@pytest.fixture
def held_project(git_project):
    project = write_sweep_project(git_project)
    stages = project.read("pipe/stages.py")
    project.write("pipe/stages.py", stages.replace('    _count("model")\n', '    _count("model")\n' + HELD))
    project.commit("model can be held")
    return project


def _wait_for(ready, what: str, timeout: float = 120) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"waited {timeout} s for {what}"
        time.sleep(0.05)


def _expected_params(seed: int, n: int) -> list[float]:
    """What a random sampler of ``seed`` draws for model.C, trial after trial, never interrupted."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed), direction="maximize")
    space = {"model.C": optuna.distributions.FloatDistribution(0.5, 1.5)}
    out = []
    for _ in range(n):
        trial = study.ask(space)
        out.append(trial.params["model.C"])
        study.tell(trial, 0.0)
    return out


def test_a_killed_search_resumes_to_exactly_n_trials_with_its_sampler_state(held_project):
    root = held_project.root
    (root / "hold.flag").write_text("")
    args = ["sweep", "--optimize", "accuracy", "--trials", "4", "--set", "model.C=uniform(0.5,1.5)",
            "--sampler", "random", "--seed", "3", "--jobs", "1", "--study", "s1"]  # fmt: skip
    driver = subprocess.Popen([sys.executable, "-m", "modver", *args], cwd=root, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    try:
        _wait_for(lambda: executions(root)["model"] >= 3, "the third trial's model stage to start")
        sweep = json.loads(cli(root, "sweeps", "--json").stdout)[0]["sweep"]
        other = cli(root, "sweep", "--resume", sweep, "--jobs", "1", code=1)  # while the first holds the study
        assert f"sweep {sweep} is running already" in other.stderr
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and its workers, at once
        driver.wait(timeout=60)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    (root / "hold.flag").unlink()
    assert json.loads(cli(root, "sweeps", "--json").stdout)[0]["status"] == "died"
    record = json.loads(cli(root, "sweep", "--resume", sweep, "--jobs", "1", "--json").stdout)
    assert record["status"] == "succeeded"
    done = [p for p in record["points"] if p["status"] == "succeeded"]
    assert [p["trial"] for p in done] == [0, 1, 3, 4]  # trial 2 was in flight: it ran again as trial 3
    assert [p["status"] for p in record["points"] if p["trial"] == 2] == ["interrupted"]
    expected = _expected_params(3, 4)
    drawn = [p["params"]["model.C"] for p in done]
    # the in-flight trial's params again, then the sampler's next draw: not its first again (reseeded)
    assert drawn == pytest.approx(expected)
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(root / ".modver" / "studies" / "s1" / "journal.log")))
    study = optuna.load_study(study_name="s1", storage=storage)
    states = [t.state.name for t in study.trials]
    assert states == ["COMPLETE", "COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    assert study.user_attrs["modver_interrupted"] == [2]  # told failed, and not counted
    assert executions(root)["model"] == 5  # four trials and the one killed
    # resumed again: nothing left to do, nothing runs, nothing counts twice
    again = json.loads(cli(root, "sweep", "--resume", sweep, "--jobs", "1", "--json").stdout)
    assert len(again["points"]) == 5 and executions(root)["model"] == 5
    # more trials for the same study: --trials with --resume
    more = json.loads(cli(root, "sweep", "--resume", sweep, "--trials", "5", "--jobs", "1", "--json").stdout)
    assert [p["trial"] for p in more["points"] if p["status"] == "succeeded"] == [0, 1, 3, 4, 5]
    assert [p["params"]["model.C"] for p in more["points"]][-1] == pytest.approx(_expected_params(3, 5)[-1])
