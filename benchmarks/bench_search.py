"""Benchmark: search (issue 19) — trials per minute, driver overhead, stages saved, pruning.

    python benchmarks/bench_search.py [--trials 30] [--parts a,b,c]

Prints figures and ratios against baselines measured in the same run (asserts nothing):
  (a) throughput: `modver sweep --optimize` of TRIALS trials of a trivial one-stage pipeline on
      the local cluster (--jobs 2, random sampler): trials per minute, and the driver's time per
      trial (asking, planning, recording, telling) — the search's wall time less the cluster's
      start-up (a 1-point grid sweep's wall time), per trial — against a bare Optuna loop calling
      the same function in one process;
  (b) stages saved: a TPE study of TRIALS trials over one downstream param (model.C) of
      preprocess -> augment -> model -> evaluate: stage executions (counted by the stages) against
      4 per trial without a cache;
  (c) pruning: 20 trials whose stage logs a 20-step curve (0.1 s a step) and checks
      modver.should_prune() at each, --prune median against --prune none: wall time, pruned trials.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from _common import ENV, MODVER, ROOT

sys.path.insert(0, str(ROOT))
from tests.sweep.pipeline import SWEEP_PIPELINE  # the pipeline the sweep tests run

TRIVIAL = {
    "manifest.yaml": "stages:\n  f:\n    entry: pipe/f.py:f\n    params: {x: 0.0}\n",
    "pipe/__init__.py": "",
    "pipe/f.py": "import modver\n\n\ndef f(x=0.0):\n    modver.log_metrics(score=-(x - 0.3) ** 2)\n    return x\n",
}
CURVE = {
    "manifest.yaml": "stages:\n  train:\n    entry: pipe/train.py:train\n    params: {C: 1.0}\n",
    "pipe/__init__.py": "",
    "pipe/train.py": (
        "import time\n\nimport modver\n\n\ndef train(C=1.0):\n    for step in range(20):\n"
        "        modver.log_metrics(step=step, score=1.0 - abs(C - 1.0))\n        if modver.should_prune():\n"
        "            break\n        time.sleep(0.1)\n    return C\n"
    ),
}


def _git_project(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True)
    for path, text in files.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text(text, encoding="utf-8")
    (folder / ".gitignore").write_text(".modver/\ncalls.log\n")
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-q", "-m", "bench"]):
        subprocess.run(cmd, cwd=folder, check=True, env=ENV)
    return folder


def _timed_modver(folder: Path, *args: str) -> tuple[float, dict]:  # type: ignore[type-arg]
    start = time.perf_counter()
    done = subprocess.run([*MODVER, *args, "--json"], cwd=folder, check=True, env=ENV, capture_output=True, text=True)
    return time.perf_counter() - start, json.loads(done.stdout)


def throughput(tmp: Path, trials: int) -> None:
    folder = _git_project(tmp / "trivial", TRIVIAL)
    startup, _ = _timed_modver(folder, "sweep", "--set", "f.x=5,6", "--jobs", "2")  # the cluster's start-up, 2 points
    wall, _ = _timed_modver(folder, "sweep", "--optimize", "score", "--trials", str(trials), "--set", "f.x=uniform(0,1)",
                            "--sampler", "random", "--seed", "1", "--jobs", "2")  # fmt: skip
    import logging

    import optuna

    optuna.logging.set_verbosity(logging.ERROR)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1), direction="maximize")
    start = time.perf_counter()
    for _ in range(trials):
        trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
        study.tell(trial, -((trial.params["x"] - 0.3) ** 2))
    bare = (time.perf_counter() - start) / trials
    per_trial = max(wall - startup, 0.0) / trials
    print(f"(a) {trials} trials in {wall:.1f} s: {60 * trials / wall:.0f} trials/min (cluster start-up and a 2-point "
          f"sweep: {startup:.1f} s)")  # fmt: skip
    print(f"    driver time per trial (planning, recording, Dask, asking, telling): {1000 * per_trial:.0f} ms; "
          f"a bare Optuna loop: {1000 * bare:.2f} ms per trial")  # fmt: skip


def stages_saved(tmp: Path, trials: int) -> None:
    folder = _git_project(tmp / "pipeline", SWEEP_PIPELINE)
    wall, record = _timed_modver(folder, "sweep", "--optimize", "accuracy", "--trials", str(trials), "--set",
                                 "model.C=uniform(0.5,1.5)", "--seed", "1", "--jobs", "2")  # fmt: skip
    lines = (folder / "calls.log").read_text().split()
    counts = Counter(w for w in lines if w in ("preprocess", "augment", "model", "evaluate"))
    total = sum(counts.values())
    print(f"(b) {trials} TPE trials over model.C: {total} stage executions ({dict(counts)}) against {4 * trials} "
          f"without a cache ({4 * trials - total} saved); best accuracy {record['best']['value']:.4f}; {wall:.1f} s")  # fmt: skip


def pruning(tmp: Path) -> None:
    results = {}
    for prune in ("none", "median"):
        folder = _git_project(tmp / f"curve-{prune}", CURVE)
        wall, record = _timed_modver(folder, "sweep", "--optimize", "score", "--trials", "20", "--set",
                                     "train.C=uniform(0,2)", "--sampler", "random", "--seed", "2", "--prune", prune,
                                     "--jobs", "2")  # fmt: skip
        results[prune] = (wall, sum(p["status"] == "pruned" for p in record["points"]), record["best"]["value"])
    (w0, _, b0), (w1, n1, b1) = results["none"], results["median"]
    print(f"(c) 20 trials of 20-step curves: --prune none {w0:.1f} s (best {b0:.3f}); --prune median {w1:.1f} s, "
          f"{n1} pruned (best {b1:.3f}): {100 * (w0 - w1) / w0:.0f}% of the wall time saved")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--parts", default="a,b,c")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        if "a" in parts:
            throughput(Path(tmp), args.trials)
        if "b" in parts:
            stages_saved(Path(tmp), args.trials)
        if "c" in parts:
            pruning(Path(tmp))


if __name__ == "__main__":
    main()
