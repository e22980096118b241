"""Run every benchmark, one after the other, and print their figures.

    python benchmarks/run_all.py [--quick]

``--quick`` uses smaller inputs (500 commits, a 128 MB array, a 200 MB data folder, 256 MB of
shared outputs, 100 MB of script outs) for a fast look; the figures in docs/performance.md come
from a full run. Each script can also be run on its own.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

FULL = [
    ["bench_fingerprint.py"],
    ["bench_index.py"],
    ["bench_run.py"],
    ["bench_cache.py"],
    ["bench_data.py"],
    ["bench_sweep.py"],  # issue 9
    ["bench_cluster.py"],  # issue 9: executors (local, Slurm)
    ["bench_results.py"],
    ["bench_share.py"],  # issue 10
    ["bench_explain.py"],  # issue 18
    ["bench_search.py"],  # issue 19
    ["bench_scripts.py"],  # issue 16: script stages' folder outs
]
QUICK = [
    ["bench_fingerprint.py"],
    ["bench_index.py", "--commits", "500"],
    ["bench_run.py", "--concurrent", "4"],
    ["bench_cache.py", "--size-mb", "128"],
    ["bench_data.py", "--files", "2000", "--size-mb", "200"],
    ["bench_sweep.py", "--points", "50"],  # issue 9
    ["bench_cluster.py"],  # issue 9: executors (local, Slurm)
    ["bench_results.py", "--runs", "2000", "--report-runs", "200"],
    ["bench_share.py", "--size-mb", "256"],
    ["bench_explain.py", "--versions", "16"],
    ["bench_search.py", "--trials", "10"],
    ["bench_scripts.py", "--files", "2000", "--size-mb", "100"],
]


def main() -> None:
    plan = QUICK if "--quick" in sys.argv[1:] else FULL
    for script, *args in plan:
        print(f"== {script} {' '.join(args)}".rstrip(), flush=True)
        start = time.perf_counter()
        subprocess.run([sys.executable, str(HERE / script), *args], check=True)
        print(f"   ({time.perf_counter() - start:.0f} s)\n", flush=True)


if __name__ == "__main__":
    main()
