"""What `modver sweep` checks before anything starts (issue 15, items 15 and 17), through the real
CLI: bounded sweep files, scheduler addresses, the params a dry run accepts, and a batch system
that refuses the worker jobs."""

from __future__ import annotations

import os
import resource
import shutil
import socket
import subprocess
import sys

import pytest

from tests.helpers import cli, mv
from tests.sweep.pipeline import write_sweep_project


@pytest.fixture
def sweep_project(git_project):
    return write_sweep_project(git_project)


def _bounded(root, *args: str) -> subprocess.CompletedProcess[str]:
    """``modver ARGS`` with its memory capped (reading /dev/zero must not take the machine's) and
    a timeout (a FIFO read waits for a writer forever)."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))

    return subprocess.run([sys.executable, "-m", "modver", *args], cwd=root, capture_output=True, text=True,
                          timeout=60, preexec_fn=cap)  # fmt: skip


def _nothing_ran(root) -> None:
    assert not (root / "calls.log").exists()
    assert not (root / ".modver" / "sweeps").exists()


def test_a_sweep_file_is_bounded_before_it_is_read(sweep_project, tmp_path):
    root = sweep_project.root
    fifo = tmp_path / "sweep.fifo"
    os.mkfifo(fifo)
    big = tmp_path / "big.yaml"
    big.write_text("grid:\n  model.C: [" + ", ".join(["1"] * 60_000) + "]\n")
    cases = [
        ("/dev/zero", "is not a regular file (a FIFO, a socket or a device)"),  # read until memory ran out
        (str(fifo), "is not a regular file (a FIFO, a socket or a device)"),  # waited for a writer forever
        (str(tmp_path), "is a folder"),
        (str(big), "is larger than 100,000 characters"),
    ]
    for path, message in cases:
        for extra in ([], ["--dry-run"]):
            done = _bounded(root, "sweep", "--file", path, "--jobs", "1", *extra)
            assert done.returncode == 1 and f"the sweep file {path} {message}" in done.stderr, done.stderr
    _nothing_ran(root)


def test_a_malformed_scheduler_address_is_a_clear_error_even_for_a_dry_run(sweep_project):
    root = sweep_project.root
    for address in ("garbage!!", "tcp://", "localhost", "http://localhost:8787", "tcp://host:99999"):
        for extra in ([], ["--dry-run"]):
            done = mv(root, "sweep", "--set", "model.C=1,2", "--scheduler", address, *extra, code=1)
            assert f"--scheduler {address!r} is not a Dask scheduler address" in done.stderr, done.stderr
            assert "internal error" not in done.stderr
    dashboard = mv(root, "sweep", "--set", "model.C=1,2", "--scheduler", "http://localhost:8787", code=1).stderr
    assert "the dashboard's address" in dashboard
    sweep_project.write("manifest.yaml", sweep_project.read("manifest.yaml") + "cluster:\n  kind: tcp://nohost\n")
    done = mv(root, "sweep", "--set", "model.C=1,2", "--dry-run", code=1)
    assert "cluster kind 'tcp://nohost' is not a Dask scheduler address" in done.stderr, done.stderr
    _nothing_ran(root)


def test_a_dry_run_refuses_a_param_the_sweep_refuses(sweep_project):
    root = sweep_project.root
    real = mv(root, "sweep", "--set", "model.C=1,2", "--set", "model.gamma=1", "--jobs", "1", code=1).stderr
    dry = mv(root, "sweep", "--set", "model.C=1,2", "--set", "model.gamma=1", "--dry-run", code=1).stderr
    assert "stage model: pipe/stages.py:model cannot be called with data, C, gamma" in dry, dry
    assert dry.splitlines()[0] == real.splitlines()[0]  # the same error as the sweep itself
    # a missing required argument too; an entry whose signature its source does not settle is left alone
    sweep_project.write(
        "pipe/stages.py",
        sweep_project.read("pipe/stages.py").replace("def evaluate(model, data):", "def evaluate(model, data, k):"),
    )
    missing = mv(root, "sweep", "--set", "model.C=1,2", "--dry-run", code=1).stderr
    assert "stage evaluate: pipe/stages.py:evaluate cannot be called with model, data" in missing, missing
    sweep_project.write(
        "pipe/stages.py",
        sweep_project.read("pipe/stages.py").replace(
            "def evaluate(model, data, k):", "def _wrap(f):\n    return f\n\n\n@_wrap\ndef evaluate(model, data, k):"
        ),
    )
    assert "2 points" in mv(root, "sweep", "--set", "model.C=1,2", "--dry-run").stdout
    _nothing_ran(root)


def _dead_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # closed again: nothing listens there


@pytest.mark.slow  # dask-jobqueue waits for sbatch to give up on a dead controller (~30 s)
@pytest.mark.skipif(shutil.which("sbatch") is None, reason="needs Slurm's sbatch (Debian's slurm-wlm)")
def test_sbatch_failing_is_one_clear_error_at_once(sweep_project, tmp_path):
    root = sweep_project.root
    host = socket.gethostname().split(".")[0]
    conf = tmp_path / "slurm.conf"  # a controller that is not running
    conf.write_text(
        f"ClusterName=none\nSlurmctldHost={host}\nSlurmctldPort={_dead_port()}\nAuthType=auth/none\n"
        f"NodeName={host} CPUs=2 State=UNKNOWN\nPartitionName=main Nodes={host} Default=YES\n"
    )
    # it waited forever before (the timeout fails the test); sbatch itself retries for ~10 s
    done = cli(root, "sweep", "--set", "model.C=1,2", "--cluster", "slurm", code=1, timeout=180,
               env={"SLURM_CONF": str(conf)})  # fmt: skip
    lines = done.stderr.splitlines()
    assert lines[0].startswith("Error: the slurm batch system refused the worker jobs: sbatch: error: "), done.stderr
    assert "Unable to contact slurm controller" in lines[0], done.stderr
    assert "Traceback" not in done.stderr and "tornado" not in done.stderr and len(lines) == 2, done.stderr
    assert not (root / "calls.log").exists()
