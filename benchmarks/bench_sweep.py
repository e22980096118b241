"""Benchmark: sweeps (issue 9) — shared work, and the scheduling overhead per point.

    python benchmarks/bench_sweep.py [--points 200] [--parts a,c]

Prints figures and ratios against baselines measured in the same run (asserts nothing):
  (a) shared work: stage executions (counted by the stages themselves, in calls.log) of a 3 x 2
      grid over preprocess -> augment(noise) -> model(C) -> evaluate as one `modver sweep`,
      against the same 6 points each run alone (`modver run` in a fresh copy of the project:
      nothing to share), against the same points as 6 `modver run --set` one after another in
      one project (its cache shares what the points have in common too), and against DVC's
      `dvc exp run --queue` + `dvc queue start -j 1` and `-j 2` on the same pipeline written as a
      dvc.yaml (when `dvc` is on PATH; otherwise the figure says it was not measured);
  (c) scheduling overhead: POINTS points of a trivial stage on the local cluster (--jobs 2), wall
      time per point, against one `modver run` of the same stage with everything cached (the
      sweep amortizes start-up; target: at most 0.5x per point).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from _common import ENV, MODVER, ROOT, timed

sys.path.insert(0, str(ROOT))
from tests.sweep.pipeline import SWEEP_PIPELINE  # the pipeline the sweep tests run

GRID = ["--set", "model.C=0.5,1,2", "--set", "augment.noise=0,0.1"]
POINTS = [(c, n) for c in (0.5, 1, 2) for n in (0, 0.1)]


def _git_project(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True)
    for path, text in files.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text(text, encoding="utf-8")
    (folder / ".gitignore").write_text(".modver/\ncalls.log\n")
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-q", "-m", "bench"]):
        subprocess.run(cmd, cwd=folder, check=True, env=ENV)
    return folder


def _modver(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MODVER, *args], cwd=folder, check=True, env=ENV, capture_output=True, text=True)


def _executions(path: Path) -> Counter[str]:
    lines = path.read_text().split() if path.exists() else []
    return Counter(word for word in lines if word in ("preprocess", "augment", "model", "evaluate"))


def _shown(counts: Counter[str]) -> str:
    parts = ", ".join(f"{s} {counts[s]}" for s in ("preprocess", "augment", "model", "evaluate"))
    return f"{sum(counts.values())} ({parts})"


# -- (a) shared work ------------------------------------------------------------------------------

DVC_STAGES = """\
import json, sys
import yaml
stage = sys.argv[1]
with open(sys.argv[2], "a") as f:
    f.write(stage + "\\n")
p = yaml.safe_load(open("params.yaml"))
if stage == "preprocess":
    json.dump([float(v) for v in open("data/raw.txt").read().split()], open("pre.json", "w"))
elif stage == "augment":
    json.dump([v + p["augment"]["noise"] for v in json.load(open("pre.json"))], open("aug.json", "w"))
elif stage == "model":
    json.dump({"w": sum(json.load(open("aug.json"))) * p["model"]["C"]}, open("model.json", "w"))
else:
    w, d = json.load(open("model.json"))["w"], json.load(open("pre.json"))
    json.dump({"accuracy": 1 / (1 + abs(w - sum(d)))}, open("metrics.json", "w"))
"""
DVC_YAML = """\
stages:
  preprocess:
    cmd: python stages.py preprocess {log}
    deps: [stages.py, data/raw.txt]
    outs: [pre.json]
  augment:
    cmd: python stages.py augment {log}
    deps: [stages.py, pre.json]
    params: [augment.noise]
    outs: [aug.json]
  model:
    cmd: python stages.py model {log}
    deps: [stages.py, aug.json]
    params: [model.C]
    outs: [model.json]
  evaluate:
    cmd: python stages.py evaluate {log}
    deps: [stages.py, model.json, pre.json]
    metrics: [{{metrics.json: {{cache: false}}}}]
"""


def _dvc(tmp: Path, jobs: int) -> tuple[Counter[str], float] | str:
    """DVC's executions of the grid through its queue, and the wall time; or why not measured."""
    dvc = shutil.which("dvc")
    if dvc is None:
        return "not measured: `dvc` is not on PATH (pip install dvc)"
    log = tmp / f"dvc-calls-{jobs}.log"
    files = {"stages.py": DVC_STAGES, "dvc.yaml": DVC_YAML.format(log=log), "data/raw.txt": "1 2 3 4\n",
             "params.yaml": "augment:\n  noise: 0.0\nmodel:\n  C: 1.0\n"}  # fmt: skip
    folder = _git_project(tmp / f"dvc-{jobs}", files)
    env = {**ENV, "DVC_NO_ANALYTICS": "1"}
    subprocess.run([dvc, "init", "-q"], cwd=folder, check=True, env=env)
    subprocess.run(["git", "add", "-A"], cwd=folder, check=True, env=env)
    subprocess.run(["git", "commit", "-q", "-m", "dvc init"], cwd=folder, check=True, env=env)
    sweep = ["-S", "model.C=0.5,1,2", "-S", "augment.noise=0,0.1"]
    subprocess.run([dvc, "exp", "run", "--queue", *sweep], cwd=folder, check=True, env=env, capture_output=True)
    start = time.perf_counter()
    subprocess.run([dvc, "queue", "start", "-j", str(jobs)], cwd=folder, check=True, env=env, capture_output=True)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        status = subprocess.run([dvc, "queue", "status"], cwd=folder, env=env, capture_output=True, text=True).stdout
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(0.5)
    wall = time.perf_counter() - start
    subprocess.run([dvc, "queue", "stop"], cwd=folder, env=env, capture_output=True)
    return _executions(log), wall


def shared_work(tmp: Path) -> None:
    print("(a) shared work: stage executions of a 3 x 2 grid (preprocess -> augment(noise) -> model(C) -> evaluate)")
    project = _git_project(tmp / "sweep", SWEEP_PIPELINE)
    start = time.perf_counter()
    _modver(project, "sweep", *GRID, "--jobs", "2")
    sweep_wall = time.perf_counter() - start
    swept = _executions(project / "calls.log")
    _modver(project, "sweep", *GRID, "--jobs", "2")
    again = sum(_executions(project / "calls.log").values()) - sum(swept.values())
    alone: Counter[str] = Counter()
    for i, (c, noise) in enumerate(POINTS):
        copy = _git_project(tmp / f"alone-{i}", SWEEP_PIPELINE)
        _modver(copy, "run", "--set", f"model.C={c}", "--set", f"augment.noise={noise}")
        alone += _executions(copy / "calls.log")
    serial = _git_project(tmp / "serial", SWEEP_PIPELINE)
    start = time.perf_counter()
    for c, noise in POINTS:
        _modver(serial, "run", "--set", f"model.C={c}", "--set", f"augment.noise={noise}")
    serial_wall = time.perf_counter() - start
    runs = _executions(serial / "calls.log")
    n_sweep, n_alone = sum(swept.values()), sum(alone.values())
    print(f"    modver sweep (one graph, --jobs 2):            {_shown(swept)} in {sweep_wall:.2f} s")
    print(f"    the same sweep again:                         {again} executions (every stage a cache hit)")
    print(f"    each point alone (fresh project, modver run): {_shown(alone)}")
    print(f"    6 x modver run in one project (its cache):    {_shown(runs)} in {serial_wall:.2f} s")
    print(f"    ratio sweep / points alone: {n_sweep}/{n_alone} = {n_sweep / n_alone:.3f}")
    for jobs in (1, 2):
        dvc = _dvc(tmp, jobs)
        if isinstance(dvc, str):
            print(f"    DVC exp run --queue + queue start -j {jobs}: {dvc}")
            break
        counts, wall = dvc
        print(f"    DVC exp run --queue + queue start -j {jobs}:    {_shown(counts)} in {wall:.2f} s")


# -- (c) scheduling overhead ---------------------------------------------------------------------

TRIVIAL = {
    "manifest.yaml": "stages:\n  t:\n    entry: pipe/t.py:f\n    params: {x: 0}\n",
    "pipe/__init__.py": "",
    "pipe/t.py": "def f(x):\n    return x\n",
}


def overhead(tmp: Path, points: int) -> None:
    print(f"(c) scheduling overhead: {points} points of a trivial stage on the local cluster (--jobs 2)")
    project = _git_project(tmp / "trivial", TRIVIAL)
    _modver(project, "run")
    cached_run = timed([*MODVER, "run"], project, repeat=5)
    start = time.perf_counter()
    done = _modver(project, "sweep", "--set", f"t.x=range(0,{points})", "--jobs", "2", "--json")
    wall = time.perf_counter() - start
    record = json.loads(done.stdout)
    assert record["status"] == "succeeded", record["status"]
    start = time.perf_counter()
    _modver(project, "sweep", "--set", f"t.x=range(0,{points})", "--jobs", "2")
    cached_wall = time.perf_counter() - start
    per_point, per_cached = wall / points, cached_wall / points
    print(f"    modver run, everything cached (median of 5):   {cached_run * 1000:.0f} ms")
    print(f"    sweep of {points} points ({record['tasks']['executions']} executions): {wall:.2f} s, "
          f"{per_point * 1000:.1f} ms per point = {per_point / cached_run:.3f}x a cached run (target <= 0.5x)")  # fmt: skip
    print(f"    the same sweep again (all cached):           {cached_wall:.2f} s, {per_cached * 1000:.1f} ms per point "
          f"= {per_cached / cached_run:.3f}x")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=200, help="points of the overhead sweep (c)")
    parser.add_argument("--parts", default="a,c", help="which parts to run, e.g. a or a,c")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    with tempfile.TemporaryDirectory(prefix="modver-bench-sweep-") as folder:
        tmp = Path(folder)
        if "a" in parts:
            shared_work(tmp)
        if "c" in parts:
            overhead(tmp, args.points)


if __name__ == "__main__":
    main()
