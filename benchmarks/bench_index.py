"""Benchmark: `modver index` on a generated 2,000-commit x 10-stage repository, and CLI start-up.

    python benchmarks/bench_index.py [--commits 2000] [--stages 10]

Prints figures and ratios against baselines measured in the same run (asserts nothing):
  * cold `modver index` and an incremental one with no new commits, next to `git log -p`
    of the same repository and `python -c pass`;
  * `modver --version` and `modver status` (on the bundled example) next to `python -c pass`.
The git binary is used here only to build the fixture and as the baseline.
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ENV, MODVER, ROOT, timed


def stage_source(i: int, rev: int, style: int) -> str:
    body = (
        f"    return [helper_{i}(x) + {rev} for x in data]\n"
        if style == 0
        else f"    # revision {rev}\n    return [ helper_{i}( x ) + {rev} for x in data ]\n"
    )
    return (
        "from pkg.shared import scale\n\n\n"
        f"def helper_{i}(x):\n    return scale(x) * {i + 1}\n\n\n"
        f"def stage_{i}(data):\n    '''Stage {i}.'''\n{body}"
    )


def shared_source(rev: int) -> str:
    return f"FACTOR = {rev}\n\n\ndef scale(x):\n    return x * FACTOR\n"


def build_repo(path: Path, commits: int, stages: int) -> None:
    """A repository whose commits each change one stage, the shared helper, or only formatting."""
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True, env=ENV)
    rng = random.Random(42)
    manifest = "stages:\n" + "".join(f"  s{i}:\n    entry: pkg/stage_{i}.py:stage_{i}\n" for i in range(stages))
    revs = [0] * stages
    lines: list[str] = []

    def blob(text: str) -> str:
        data = text.encode()
        return f"data {len(data)}\n{data.decode()}\n"

    for c in range(commits):
        files: dict[str, str] = {}
        if c == 0:
            files["manifest.yaml"] = manifest
            files["pkg/__init__.py"] = ""
            files["pkg/shared.py"] = shared_source(0)
            files["README.md"] = "bench\n"
            for i in range(stages):
                files[f"pkg/stage_{i}.py"] = stage_source(i, 0, 0)
        else:
            roll = rng.random()
            if roll < 0.05:
                files["pkg/shared.py"] = shared_source(c)
            elif roll < 0.15:
                files["README.md"] = f"bench {c}\n"
            else:
                i = rng.randrange(stages)
                revs[i] += 1
                files[f"pkg/stage_{i}.py"] = stage_source(i, revs[i] if rng.random() < 0.7 else revs[i] - 1, c % 2)
        lines.append(f"commit refs/heads/main\ncommitter bench <b@example.com> {1_600_000_000 + c * 60} +0000\n")
        lines.append(blob(f"commit {c}"))
        for p, text in files.items():
            lines.append(f"M 100644 inline {p}\n" + blob(text))
        lines.append("\n")
    subprocess.run(["git", "fast-import", "--quiet"], input="".join(lines).encode(), cwd=path, check=True, env=ENV)
    subprocess.run(["git", "checkout", "-q", "main"], cwd=path, check=True, env=ENV)
    subprocess.run(["git", "gc", "-q"], cwd=path, check=True, env=ENV)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=2000)
    parser.add_argument("--stages", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        t = time.perf_counter()
        build_repo(repo, args.commits, args.stages)
        print(f"built {args.commits} commits x {args.stages} stages in {time.perf_counter() - t:.1f}s")
        py = timed([sys.executable, "-c", "pass"], repo, repeat=10)
        git_log = timed(["git", "log", "-p"], repo, repeat=3)
        cold = timed([*MODVER, "index"], repo)
        incremental = timed([*MODVER, "index"], repo, repeat=5)
        shutil.rmtree(repo / ".modver")
        cold_no_disk_cache = timed([*MODVER, "index"], repo)
        out = subprocess.run([*MODVER, "log", "--json"], cwd=repo, env=ENV, capture_output=True, text=True, check=True)
        versions = out.stdout.count('"version"')

        example = Path(tmp) / "example"
        shutil.copytree(ROOT / "examples" / "digits", example)
        subprocess.run(["git", "init", "-q", "-b", "main"], cwd=example, check=True, env=ENV)
        subprocess.run(["git", "add", "-A"], cwd=example, check=True, env=ENV)
        subprocess.run(["git", "commit", "-q", "-m", "example"], cwd=example, check=True, env=ENV)
        subprocess.run([*MODVER, "index"], cwd=example, check=True, env=ENV, stdout=subprocess.DEVNULL)
        subprocess.run([*MODVER, "status"], cwd=example, check=True, env=ENV, stdout=subprocess.DEVNULL)
        version = timed([*MODVER, "--version"], example, repeat=10)
        status = timed([*MODVER, "status"], example, repeat=10)

    print(f"python -c pass                 {py * 1000:8.1f} ms")
    print(f"git log -p                     {git_log * 1000:8.1f} ms")
    print(
        f"modver index (cold)            {cold * 1000:8.1f} ms  = {cold / git_log:6.1f}x git log -p   (target <= 100x)"
        f"   [{versions} versions registered]"
    )
    print(
        f"modver index (after rm .modver){cold_no_disk_cache * 1000:8.1f} ms  = {cold_no_disk_cache / git_log:6.1f}x git log -p"
        "   [versions already in git: nothing to register]"
    )
    print(
        f"modver index (no new commits)  {incremental * 1000:8.1f} ms  = {incremental / py:6.1f}x python -c pass (target <= 15x)"
    )
    print(
        f"modver --version               {version * 1000:8.1f} ms  = {version / py:6.1f}x python -c pass (target <= 8x)"
    )
    print(
        f"modver status (example)        {status * 1000:8.1f} ms  = {status / py:6.1f}x python -c pass (target <= 20x)"
    )


if __name__ == "__main__":
    main()
