"""A fully cached run of a 4-stage script pipeline with folder outs (10,000 files, 1 GB).

    python benchmarks/bench_scripts.py                        # 10,000 files, 1 GB, 3 rounds
    python benchmarks/bench_scripts.py --files 2000 --size-mb 100   # quicker (run_all --quick)

In one temporary git project, four script stages form a chain through their folder outs
(``data/s1`` ... ``data/s4``, each ``--files``/4 random files, ``--size-mb``/4 MB): stage k
reads the listing of stage k-1's out and writes its own. The pipeline runs once (untimed); then
each round times, in alternating order:

- **restore**: the four outs deleted from the working tree, then ``modver run`` (every stage
  cached: the outs are copied back from the cache, nothing executes); its baseline is
  ``cp -r`` of the same four folders (from the cache) to their places;
- **no-op**: ``modver run`` with the outs present and unchanged; its baseline is ``modver run``
  of the same pipeline in a second project whose stages are chained by one small file each
  instead of folder outs (no folder out to check).

Targets (issue 16): restore <= 1.5x ``cp -r``; no-op with outs <= 1.2x without. The files stay
in the page cache (the machine has the memory), so every reader reads warm data.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ENV, MODVER

STAGE = """\
import os, random, sys

k, files, size = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
if k > 1:
    src = f"data/s{k - 1}" if os.path.isdir(f"data/s{k - 1}") else f"data/s{k - 1}.txt"
    seen = len(os.listdir(src)) if os.path.isdir(src) else len(open(src).read())
rng = random.Random(k)
if sys.argv[4] == "folder":
    out = f"data/s{k}"
    for i in range(files):
        path = os.path.join(out, f"part{i % 50:02d}", f"{i:06d}.bin")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(rng.randbytes(size))
else:
    os.makedirs("data", exist_ok=True)
    with open(f"data/s{k}.txt", "w") as f:
        f.write(str(files * size))
"""


def _project(root: Path, files: int, size: int, kind: str) -> None:
    root.mkdir(parents=True)
    (root / "stage.py").write_text(STAGE)
    lines = ["stages:"]
    for k in range(1, 5):
        out = f"data/s{k}" if kind == "folder" else f"data/s{k}.txt"
        lines += [f"  s{k}:", "    entry: stage.py", f"    args: [{k}, {files}, {size}, {kind}]", f"    outs: [{out}]"]
        if k > 1:
            lines.append(f"    deps: [{'data/s' + str(k - 1) + ('' if kind == 'folder' else '.txt')}]")
    (root / "manifest.yaml").write_text("\n".join(lines) + "\n")
    (root / ".gitignore").write_text(".modver/\n/data/\n")
    for cmd in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "a 4-stage pipeline"]):
        subprocess.run(["git", *cmd], cwd=root, check=True, env=ENV)


def _run(root: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run([*MODVER, "run"], cwd=root, env=ENV, capture_output=True, text=True)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"modver run failed in {root}:\n{done.stdout}\n{done.stderr}")
    return took


def _cached_outs(root: Path) -> list[Path]:
    """The four outs' folders in the cache (``outs/data/sK`` of each stage's entry)."""
    found = sorted((root / ".modver").rglob("outs/data/s[1-4]"))
    assert len(found) == 4, found
    return found


def _drop_outs(root: Path) -> None:
    shutil.rmtree(root / "data")


def _cp(sources: list[Path], dest: Path) -> float:
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir()
    start = time.perf_counter()
    subprocess.run(["cp", "-r", *map(str, sources), str(dest)], check=True)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000, help="files in all four outs (default 10,000)")
    parser.add_argument("--size-mb", type=int, default=1000, help="MB in all four outs (default 1000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--dir", type=Path, default=None, help="folder for the temporary projects")
    args = parser.parse_args(argv)
    per_stage = args.files // 4
    size = args.size_mb * 1_000_000 // args.files
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder, small = Path(tmp) / "folder", Path(tmp) / "small"
        _project(folder, per_stage, size, "folder")
        _project(small, per_stage, size, "small")
        first = _run(folder)
        _run(small)
        sources = _cached_outs(folder)
        print(
            f"pipeline: 4 script stages, folder outs of {args.files:,} files, {args.size_mb:,} MB in all; "
            f"first run {first:.1f} s; {args.rounds} rounds; {os.cpu_count()} cores; python {sys.version.split()[0]}"
        )
        restore, cp, noop, bare = [], [], [], []
        for i in range(args.rounds):
            order = [0, 1] if i % 2 == 0 else [1, 0]
            for which in order:
                if which == 0:
                    _drop_outs(folder)
                    restore.append(_run(folder))
                    assert (folder / "data" / "s4").is_dir()
                else:
                    cp.append(_cp(sources, Path(tmp) / "cp-target"))
            for which in order:
                (noop if which == 0 else bare).append(_run(folder if which == 0 else small))
        rows = [
            ("restore missing outs (modver run)", statistics.median(restore)),
            ("cp -r of the same outs", statistics.median(cp)),
            ("no-op run, folder outs present", statistics.median(noop)),
            ("no-op run, same pipeline without folder outs", statistics.median(bare)),
        ]
        for name, value in rows:
            print(f"  {name:<46} {value:7.2f} s")
        print(f"  restore / cp -r: {rows[0][1] / rows[1][1]:.2f}x (target <= 1.5x)")
        print(f"  no-op with outs / without: {rows[2][1] / rows[3][1]:.2f}x (target <= 1.2x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
