"""Save and load a large float64 numpy array through OutputCache, next to a plain file copy.

    python benchmarks/bench_cache.py                 # 1 GB, 3 rounds
    python benchmarks/bench_cache.py --size-mb 128   # quicker

Each round, in a fresh temporary folder: ``OutputCache.put`` of the array (serialize, checksum,
atomic publish), ``shutil.copyfile`` of the same bytes (the .npy file the cache wrote), and
``OutputCache.load`` (size check + ``np.load``). The order of put and copy alternates between
rounds so neither always runs on a warmer page cache, and ``os.sync()`` (untimed) runs before
each timed step so that the write-back of the previous step's dirty pages does not slow the
next one down (it dominated the figures on a VM with a slow disk). Throughput is MB/s of array data; the
median round is reported with the ratio to the copy. Target (issue 3): >= 70% of the copy.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from modver.cache import OutputCache

KEY = "mv1:" + "0123456789abcdef" * 4


def _settle() -> None:
    """Let the kernel write back dirty pages before a timed step (no-op where unsupported)."""
    sync = getattr(os, "sync", None)
    if sync is not None:
        sync()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="array size in MiB (default 1024)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the median is reported (default 3)")
    parser.add_argument("--dir", type=Path, default=None, help="folder for the temporary files (default: system temp)")
    args = parser.parse_args(argv)

    n = args.size_mb * (1 << 20) // 8
    array = np.random.default_rng(0).random(n)
    mb = array.nbytes / (1 << 20)
    print(f"array: {n:,} float64 = {mb:,.0f} MiB; {args.rounds} rounds; python {sys.version.split()[0]}, numpy {np.__version__}")

    put_s, load_s, copy_s, verify_s = [], [], [], []
    for round_ in range(args.rounds):
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            root = Path(tmp)
            cache = OutputCache(root / "outputs")

            def put() -> None:
                _settle()
                start = time.perf_counter()
                cache.put(KEY, array, {"stage": "bench"})
                put_s.append(time.perf_counter() - start)

            def copy() -> None:
                source = root / "source.npy"
                if not source.exists():
                    np.save(source, array)
                _settle()
                start = time.perf_counter()
                shutil.copyfile(source, root / "copy.npy")
                copy_s.append(time.perf_counter() - start)

            for step in (put, copy) if round_ % 2 == 0 else (copy, put):
                step()
            _settle()
            start = time.perf_counter()
            loaded = cache.load(KEY)
            load_s.append(time.perf_counter() - start)
            assert loaded.shape == array.shape and loaded[-1] == array[-1]
            del loaded
            _settle()
            start = time.perf_counter()
            assert cache.verify(KEY)
            verify_s.append(time.perf_counter() - start)

    def rate(seconds: list[float]) -> float:
        return mb / statistics.median(seconds)

    copy_rate = rate(copy_s)
    rows = [
        ("shutil.copyfile", copy_rate, None),
        ("OutputCache.put", rate(put_s), rate(put_s) / copy_rate),
        ("OutputCache.load", rate(load_s), rate(load_s) / copy_rate),
        ("OutputCache.verify", rate(verify_s), None),
    ]
    for name, value, ratio in rows:
        shown = f"  {ratio:6.0%} of copy" if ratio is not None else ""
        print(f"{name:20s} {value:8,.0f} MB/s{shown}")
    print("rounds (s): put " + " ".join(f"{s:.3f}" for s in put_s) + " | copy " + " ".join(f"{s:.3f}" for s in copy_s)
          + " | load " + " ".join(f"{s:.3f}" for s in load_s))
    ok = min(rate(put_s), rate(load_s)) >= 0.7 * copy_rate
    print(f"target >= 70% of copy throughput: {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
