"""Benchmark: `modver run` overhead with every stage cached, and concurrent runs.

    python benchmarks/bench_run.py [--concurrent 8]

Prints figures and ratios against baselines measured in the same run (asserts nothing):
  (a) a fully cached `modver run` of the bundled example, next to `python -c pass` and next to
      calling the four stage functions directly in one plain Python process;
  (c) N concurrent `modver run` processes of the 4-stage pipeline (half of them with other
      params): every record present, every cache entry valid.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ENV, MODVER, ROOT, timed

DIRECT = """
import sys
sys.path.insert(0, ".")
import modver
from pipeline.preprocess import preprocess
from pipeline.augment import augment
from pipeline.model import train
from pipeline.evaluate import evaluate
data = preprocess("data/digits.npz", scale=True, test_size=0.25)
model = train(augment(data, noise=0.1, copies=1), C=1.0)
evaluate(model, data)
"""


def make_example(where: Path) -> Path:
    project = where / "digits"
    shutil.copytree(ROOT / "examples" / "digits", project, ignore=shutil.ignore_patterns(".modver", "__pycache__"))
    for cmd in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"], ["git", "commit", "-q", "-m", "example"]):
        subprocess.run(cmd, cwd=project, check=True, env=ENV)
    return project


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrent", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = make_example(Path(tmp))
        subprocess.run([*MODVER, "run"], cwd=project, check=True, env=ENV, stdout=subprocess.DEVNULL)
        py = timed([sys.executable, "-c", "pass"], project, args.repeat * 2)
        cached = timed([*MODVER, "run"], project, args.repeat)
        direct = timed([sys.executable, "-c", DIRECT], project, 3)
        print(f"python -c pass                     {py * 1000:8.1f} ms")
        print(f"4 stage functions, plain Python    {direct * 1000:8.1f} ms")
        print(
            f"modver run, every stage cached     {cached * 1000:8.1f} ms  = {cached / py:5.1f}x python -c pass"
            f" (target <= 20x), {cached / direct:4.2f}x the plain pipeline"
        )

        concurrent = make_example(Path(tmp) / "concurrent")
        start = time.perf_counter()
        procs = [
            subprocess.Popen(
                [*MODVER, "run", "--set", f"model.C={1.0 if i % 2 else 2.0}"],
                cwd=concurrent,
                env=ENV,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            for i in range(args.concurrent)
        ]
        codes = [p.wait() for p in procs]
        wall = time.perf_counter() - start
        runs = json.loads(
            subprocess.run(
                [*MODVER, "runs", "--json"], cwd=concurrent, env=ENV, capture_output=True, text=True, check=True
            ).stdout
        )
        sys.path.insert(0, str(ROOT))
        from modver.store.cache import OutputCache

        cache = OutputCache(concurrent / ".modver" / "cache" / "outputs")
        entries = list(cache.entries())
        valid = sum(1 for e in entries if cache.verify(e.key))
        statuses = sorted({r["status"] for r in runs})
        print(
            f"{args.concurrent} concurrent runs: {wall:.1f}s wall, exit codes {sorted(set(codes))}, "
            f"{len(runs)}/{args.concurrent} records ({', '.join(statuses)}), "
            f"{valid}/{len(entries)} cache entries valid"
        )


if __name__ == "__main__":
    main()
