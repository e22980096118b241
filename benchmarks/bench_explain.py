"""Benchmark: explaining results (issue 18) — blame and bisect, from the cache, on the sweep engine.

    python benchmarks/bench_explain.py [--versions 64] [--parts a,b]

Prints figures (asserts nothing):
  (a) blame of 3 factors (model's version, model.C, augment.noise) on the digits example: six
      mixed configurations. Cold (nothing of them cached) and warm (the same blame again), wall
      time, against the sum of the same six configurations run serially as `modver run --pin
      ... --set ...` in a copy of the project in the same state;
  (b) bisect over VERSIONS versions of a stage whose metric takes 0.2 s: probes and wall time,
      one probe at a time and with --jobs 2 (k-ary).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from itertools import combinations
from pathlib import Path

from _common import ENV, MODVER, ROOT


def _modver(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MODVER, *args], cwd=folder, check=True, env=ENV, capture_output=True, text=True)


def _git(folder: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=folder, check=True, env=ENV, capture_output=True)


def _wall(folder: Path, *args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    done = _modver(folder, *args)
    return time.perf_counter() - start, done


def part_a(tmp: Path) -> None:
    project = tmp / "digits"
    shutil.copytree(ROOT / "examples" / "digits", project, ignore=shutil.ignore_patterns(".modver", "__pycache__"))
    _git(project, "init", "-q")
    _git(project, "add", "-A")
    _git(project, "commit", "-qm", "example")
    _modver(project, "init")
    a = json.loads(_modver(project, "run", "--json").stdout)
    model = (project / "pipeline" / "model.py").read_text()
    (project / "pipeline" / "model.py").write_text(
        model.replace("SVC(C=C, gamma=gamma)", "SVC(C=C * 0.1, gamma=gamma)")
    )
    manifest = (project / "manifest.yaml").read_text()
    (project / "manifest.yaml").write_text(manifest.replace("noise: 0.1", "noise: 0.2").replace("C: 1.0", "C: 2.0"))
    _git(project, "commit", "-qam", "three factors")
    b = json.loads(_modver(project, "run", "--json").stdout)
    copy = tmp / "serial"
    shutil.copytree(project, copy, symlinks=True)
    cold, done = _wall(project, "blame", "accuracy", a["run"], b["run"], "--jobs", "2", "--json")
    result = json.loads(done.stdout)
    warm, done = _wall(project, "blame", "accuracy", a["run"], b["run"], "--jobs", "2", "--json")
    again = json.loads(done.stdout)
    factors = {"model": ["--pin", "model@v1"], "model.C": ["--set", "model.C=1.0"],
               "augment.noise": ["--set", "augment.noise=0.1"]}  # reverted to A  # fmt: skip
    serial = 0.0
    for size in (1, 2):
        for from_a in combinations(factors, size):
            args = [arg for name in from_a for arg in factors[name]]
            took, _ = _wall(copy, "run", *args)
            serial += took
    print(f"(a) blame of {len(result['factors'])} factors, {len(result['runs'])} configurations "
          f"({result['method']}): cold {cold:.1f} s ({result['executions']} stage executions), "
          f"warm {warm:.1f} s ({again['executions']} executions); the same configurations as serial "
          f"`modver run`s: {serial:.1f} s (cold blame / serial = {cold / serial:.2f}x, warm = {warm / serial:.2f}x)")  # fmt: skip


SCORE = """\
import time

import modver
from limit import LIMIT


def score():
    time.sleep(0.2)
    modver.log_metrics(score=LIMIT)
    return LIMIT
"""


def part_b(tmp: Path, versions: int) -> None:
    project = tmp / "many"
    project.mkdir()
    (project / "manifest.yaml").write_text("stages:\n  score:\n    entry: score.py:score\n")
    (project / "score.py").write_text(SCORE)
    (project / ".gitignore").write_text(".modver/\n")
    regress = versions * 2 // 3
    for number in range(1, versions + 1):
        (project / "limit.py").write_text(f"LIMIT = {1000 + number if number >= regress else number / 1000}\n")
        if number == 1:
            _git(project, "init", "-q")
        _git(project, "add", "-A")
        _git(project, "commit", "-qm", f"v{number}")
    _modver(project, "init")
    _modver(project, "index")
    good = json.loads(_modver(project, "run", "--pin", "score@v1", "--json").stdout)
    bad = json.loads(_modver(project, "run", "--json").stdout)
    for jobs in (1, 2):
        took, done = _wall(project, "bisect", "score", "--good", good["run"], "--bad", bad["run"], "--stage", "score",
                           "--jobs", str(jobs), "--json")  # fmt: skip
        result = json.loads(done.stdout)
        rounds = len({p["step"] for p in result["probes"]})
        print(f"(b) bisect over {versions} versions (--jobs {jobs}): first bad {result['first_bad']} "
              f"(planted: score@v{regress}), {rounds} probes (ceil(log2 {versions}) = {math.ceil(math.log2(versions))}),"
              f" {took:.1f} s")  # fmt: skip
        shutil.rmtree(project / ".modver" / "cache" / "outputs", ignore_errors=True)  # the next one starts cold too


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=64)
    parser.add_argument("--parts", default="a,b")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if "a" in args.parts:
            part_a(Path(tmp))
        if "b" in args.parts:
            part_b(Path(tmp), args.versions)


if __name__ == "__main__":
    sys.exit(main())
