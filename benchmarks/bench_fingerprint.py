"""Fingerprint throughput over the CPython stdlib. Run: python benchmarks/bench_fingerprint.py

Prints MB/s of (1) the baseline ``ast.parse`` + ``ast.dump``, (2) a cold modver fingerprint of
every module (fresh SummaryCache), (3) a cached re-fingerprint of the unchanged files (what
`modver index` does at a commit that did not touch the stage), and (3b) a re-fingerprint whose
stage memo misses but whose module summaries are cached. Asserts nothing.
"""

from __future__ import annotations

import ast
import gc
import sys
import sysconfig
import time
import warnings
from pathlib import Path

from modver.errors import SourceError
from modver.fingerprint import SummaryCache, fingerprint_stage
from modver.sourcetree import DictTree


def load_stdlib() -> list[tuple[str, bytes]]:
    root = Path(sysconfig.get_paths()["stdlib"])
    files = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith("site-packages/"):
            continue
        data = path.read_bytes()
        try:
            ast.parse(data)
        except (SyntaxError, ValueError):
            continue  # deliberately broken test fixtures: not part of the throughput figures
        files.append((rel, data))
    return files


def timed(label: str, size: int, fn) -> float:
    gc.collect()
    start = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - start
    print(f"{label:<48} {elapsed:8.2f} s {size / elapsed / 1e6:8.2f} MB/s")
    return elapsed


def main() -> None:
    warnings.simplefilter("ignore")
    files = load_stdlib()
    size = sum(len(data) for _, data in files)
    print(f"Python {sys.version.split()[0]}: {len(files)} stdlib files, {size / 1e6:.1f} MB")
    trees = [(rel, DictTree({rel: data})) for rel, data in files]

    def baseline() -> None:
        for _, data in files:
            ast.dump(ast.parse(data))

    cache = SummaryCache()

    def cold() -> None:
        for rel, tree in trees:
            try:
                fingerprint_stage(tree, rel, cache=cache)
            except SourceError:
                pass

    def cached() -> None:
        for rel, tree in trees:
            fingerprint_stage(tree, rel, cache=cache)

    def summaries_only() -> None:
        cache._stages.clear()  # stage memo miss, summaries still cached
        for rel, tree in trees:
            fingerprint_stage(tree, rel, cache=cache)

    base = timed("(1) baseline ast.parse + ast.dump", size, baseline)
    cold_time = timed("(2) modver cold fingerprint (fresh cache)", size, cold)
    cached_time = timed("(3) modver cached re-fingerprint (stage memo)", size, cached)
    summary_time = timed("(3b) modver re-fingerprint (summaries cached)", size, summaries_only)
    print(f"cold / baseline   = {cold_time / base:.2f}x   (target <= 3x)")
    print(f"cached / cold     = {cached_time / cold_time:.4f}  ({cold_time / cached_time:.0f}x faster)")
    print(f"summaries / cold  = {summary_time / cold_time:.4f}")


if __name__ == "__main__":
    main()
