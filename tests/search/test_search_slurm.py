"""A search on a real single-node Slurm cluster (tests/sweep/slurm.py), through the real CLI: its
trials' stages run inside batch jobs, the upstream stages once, and the worker jobs end with it."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from tests.helpers import cli
from tests.sweep.pipeline import write_sweep_project

pytestmark = pytest.mark.xdist_group("slurm")  # one Slurm cluster at a time: slow (SLOW_SUITES)

if TYPE_CHECKING:
    from tests.sweep.slurm import Slurm

pytest_plugins = ["tests.sweep.slurm"]  # its fixtures: slurm_cluster (the session's), slurm


@pytest.fixture
def sweep_project(git_project):
    return write_sweep_project(git_project)


def test_a_search_on_slurm_runs_its_trials_inside_batch_jobs(slurm: Slurm, sweep_project):
    root = sweep_project.root
    done = cli(root, "sweep", "--cluster", "slurm", "--optimize", "accuracy", "--trials", "3", "--set",
               "model.C=uniform(0.5,1.5)", "--seed", "4", "--json", env={"SLURM_CONF": str(slurm.conf)},
               timeout=300)  # fmt: skip
    record = json.loads(done.stdout)
    assert [p["status"] for p in record["points"]] == ["succeeded"] * 3
    assert sorted(p["trial"] for p in record["points"]) == [0, 1, 2]
    calls = [line.split() for line in (root / "calls.log").read_text().splitlines()]
    assert all(job.isdigit() for _, _, job in calls)  # SLURM_JOB_ID was set in every stage
    stages = [stage for stage, _, _ in calls]
    assert stages.count("preprocess") == 1 and stages.count("augment") == 1 and stages.count("model") == 3
    slurm.wait_until_idle()  # the workers' jobs ended with the search


def test_a_detached_search_runs_its_driver_as_a_batch_job(slurm: Slurm, sweep_project):
    root = sweep_project.root
    env = {"SLURM_CONF": str(slurm.conf)}
    queued = json.loads(cli(root, "sweep", "--cluster", "slurm", "--optimize", "accuracy", "--trials", "2", "--set",
                            "model.C=uniform(0.5,1.5)", "--detach", "--json", env=env, timeout=120).stdout)  # fmt: skip
    assert queued["status"] == "queued" and queued["points"] == [] and queued["job"].isdigit()
    assert queued["optimize"]["study"] == queued["sweep"]
    slurm.wait_until_idle(240)  # the driver ran the search, its workers as jobs of their own
    record = json.loads(cli(root, "sweeps", "--json").stdout)[0]
    assert record["status"] == "succeeded", record
    assert [p["status"] for p in record["points"]] == ["succeeded"] * 2
    assert record["best"]["trial"] in (0, 1)
