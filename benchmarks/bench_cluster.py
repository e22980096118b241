"""Benchmark: sweeps on executors (issue 9) — the local cluster against serial runs, and Slurm.

    python benchmarks/bench_cluster.py [--parts b,d] [--repeat 3]

Prints figures and ratios against baselines measured in the same run (asserts nothing), on a
12-point grid (model.C x 6, augment.noise x 2) over preprocess -> augment -> model -> evaluate
whose model stage sleeps 0.5 s (the sweep tests' pipeline, tests/sweep/pipeline.py):
  (b) `modver sweep --jobs 2` (a local Dask cluster of 2 worker processes) against the same 12
      points as 12 `modver run --set ...` one after another in one project (its cache shares
      preprocess and augment too); target: at most 0.55x (the ideal on 2 cores is 0.5);
  (d) the same sweep with `--cluster slurm` (dask-jobqueue, 2 worker jobs) on the tests'
      single-node Slurm cluster (tests/sweep/slurm.py, started here and stopped by its pids)
      against local `--jobs 2`: reported, no target (batch start-up dominates). Needs root and
      Debian's slurm-wlm and munge; otherwise the figure says why it was not measured.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from _common import ENV, MODVER, ROOT
from bench_sweep import _git_project as git_project  # the same git project as parts a and c

sys.path.insert(0, str(ROOT))
from tests.sweep.pipeline import SWEEP_PIPELINE  # the pipeline the sweep tests run
from tests.sweep.slurm import missing, start_slurm  # the tests' Slurm cluster

C_VALUES = (0.25, 0.5, 1, 2, 4, 8)
NOISE = (0, 0.1)
GRID = ["--set", "model.C=" + ",".join(map(str, C_VALUES)), "--set", "augment.noise=0,0.1", "--set", "model.sleep=0.5"]


def _project(folder: Path) -> Path:
    return git_project(folder, SWEEP_PIPELINE)


def _timed_modver(folder: Path, *args: str, env: Mapping[str, str] = ENV) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run([*MODVER, *args], cwd=folder, check=True, env=env, capture_output=True, text=True)
    return time.perf_counter() - start, done.stdout


def _sweep(folder: Path, *executor: str, env: Mapping[str, str] = ENV) -> float:
    """Wall time of the 12-point sweep in a fresh project; every point must succeed."""
    wall, out = _timed_modver(_project(folder), "sweep", *GRID, *executor, "--json", env=env)
    record = json.loads(out)
    assert record["status"] == "succeeded" and len(record["points"]) == 12, record["status"]
    return wall


def _serial(folder: Path) -> float:
    """Wall time of the 12 points as 12 `modver run` one after another, in a fresh project."""
    project, wall = _project(folder), 0.0
    for c in C_VALUES:
        for noise in NOISE:
            took, _ = _timed_modver(
                project, "run", "--set", f"model.C={c}", "--set", f"augment.noise={noise}", "--set", "model.sleep=0.5"
            )
            wall += took
    return wall


def local_against_serial(tmp: Path, repeat: int) -> float:
    """(b), ``repeat`` times each, interleaved (the machine's load hits both alike); the local
    sweep's median wall time, for (d)."""
    print("(b) a 12-point sweep whose model stage sleeps 0.5 s: local cluster --jobs 2 against 12 serial runs")
    serial, local = [], []
    for i in range(repeat):
        serial.append(_serial(tmp / f"serial-{i}"))
        local.append(_sweep(tmp / f"local-{i}", "--jobs", "2"))
    s, w = statistics.median(serial), statistics.median(local)
    print(f"    12 x modver run, one after another (one project): {s:.2f} s (median of {repeat})")
    print(f"    modver sweep --jobs 2:                             {w:.2f} s (median of {repeat})")
    print(f"    ratio sweep / serial runs: {w / s:.3f}x (target <= 0.55x; sleeping alone: 6.0 s / 2 = 3.0 s)")
    print(f"    each run's ratio: {', '.join(f'{a / b:.3f}' for a, b in zip(local, serial))}")
    return w


def slurm_against_local(tmp: Path, local: float | None) -> None:
    """(d)."""
    print("(d) the same sweep on the single-node Slurm cluster (2 worker jobs) against local --jobs 2")
    why = missing()
    if why is not None:
        print(f"    not measured: {why}")
        return
    if local is None:
        local = _sweep(tmp / "local-d", "--jobs", "2")
    slurm = start_slurm(tmp / "slurm")
    try:
        env = {**ENV, "SLURM_CONF": str(slurm.conf)}
        wall = _sweep(tmp / "on-slurm", "--cluster", "slurm", "--jobs", "2", env=env)
        slurm.wait_until_idle()
    finally:
        slurm.stop()
    print(f"    modver sweep --jobs 2 (local cluster):             {local:.2f} s")
    print(f"    modver sweep --cluster slurm --jobs 2:             {wall:.2f} s")
    print(f"    ratio Slurm / local: {wall / local:.2f}x (reported: worker jobs start through the batch queue)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--parts", default="b,d", help="which parts to run, e.g. b or b,d")
    parser.add_argument("--repeat", type=int, default=3, help="times (b) is measured (the median is shown)")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    with tempfile.TemporaryDirectory(prefix="modver-bench-cluster-") as folder:
        tmp = Path(folder)
        local = local_against_serial(tmp, args.repeat) if "b" in parts else None
        if "d" in parts:
            slurm_against_local(tmp, local)


if __name__ == "__main__":
    main()
