"""Save and load a large float64 numpy array through OutputCache, next to a plain file copy.

    python benchmarks/bench_cache.py                 # 1 GiB, 7 rounds
    python benchmarks/bench_cache.py --size-mb 128   # quicker

In one temporary folder, each round times: ``OutputCache.put`` of the array (serialize,
checksum, fsync of every file and folder, atomic publish), ``shutil.copyfile`` of the same bytes
(the .npy file the cache wrote), the same copy followed by ``fsync`` of the file and its folder
(what a durable copy costs), ``OutputCache.load`` (checksums verified, then ``np.load`` into
memory; once right after the writes, "cold memory", and once after touching as much memory as
it allocates, see :func:`_pretouch`), and, for reference, the load without verification, a raw
``os.write`` of the array's buffer and ``np.fromfile`` of the copy. Put and copy alternate in
order between rounds, and ``os.sync()`` (untimed) runs before every timed step so the
write-back of one step's dirty pages does not slow the next one down. Throughput is MiB/s of
array data; both the best round (least disturbed by the machine) and the median are reported,
with ratios to the copy. Targets (issues 3 and 6): put and verified load >= 70% of the copy's
throughput; put is also compared with the durable copy, since it fsyncs and the copy does not.

    python benchmarks/bench_cache.py --stamps 10     # only the stamp check of 10 cached outputs

Then (or alone, with ``--stamps N``) it times what a fully cached run does for each stage it
serves: :meth:`OutputCache.get` (read ``entry.json``) and :meth:`OutputCache.check` (read
``stamp.json``, ``stat`` every file), over N entries of mixed kinds (numpy arrays of 1-8 MiB,
pickles, with stdout/stderr), next to a full checksum of the same entries
(:meth:`OutputCache.problems`, what a check costs when every stamp changed). Target (issue 15):
the stamp check of 10 outputs under 5 ms.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from modver.store.cache import OutputCache

KEY = "mv1:" + "0123456789abcdef" * 4


def _settle() -> None:
    """Let the kernel write back dirty pages before a timed step (no-op where unsupported)."""
    sync = getattr(os, "sync", None)
    if sync is not None:
        sync()


def _pretouch(nbytes: int) -> None:
    """Touch (then free) as much fresh memory as a load will allocate.

    On VMs whose host backs guest memory lazily, the first touch of a page costs several times
    more than the copy into it (measured here: 18 GiB touched at 0.45 GB/s the first time,
    2.7 GB/s the second). Whichever in-memory read ran first after the page cache churned paid
    for it; touching the memory first gives every read the same, steady-state start.
    """
    np.ones(nbytes // 8).sum()


def _timed(fn: Callable[[], object]) -> float:
    _settle()
    start = time.perf_counter()
    result = fn()
    elapsed = time.perf_counter() - start
    del result
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="array size in MiB (default 1024)")
    parser.add_argument("--rounds", type=int, default=7, help="rounds (default 7)")
    parser.add_argument("--dir", type=Path, default=None, help="folder for the temporary files (default: system temp)")
    parser.add_argument("--stamps", type=int, default=None, help="only time the stamp check of N cached outputs")
    args = parser.parse_args(argv)
    if args.stamps is not None:
        return bench_stamps(args.stamps, args.dir)

    n = args.size_mb * (1 << 20) // 8
    array = np.random.default_rng(0).random(n)
    mb = array.nbytes / (1 << 20)
    print(
        f"array: {n:,} float64 = {mb:,.0f} MiB; {args.rounds} rounds; python {sys.version.split()[0]}, numpy {np.__version__}"
    )

    names = (
        "copy",
        "copy+fsync",
        "put",
        "load",
        "load, cold memory",
        "load, unverified",
        "raw write",
        "np.fromfile",
        "verify",
    )
    times: dict[str, list[float]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp)
        cache = OutputCache(root / "outputs")
        source = root / "source.npy"
        copy_target = root / "copy.npy"
        raw_target = root / "raw.bin"
        cache.put(KEY, array, {})
        shutil.copyfile(cache.path(KEY) / "object", source)
        buffer = memoryview(array).cast("B")

        def put() -> None:
            cache.remove(KEY)
            times["put"].append(_timed(lambda: cache.put(KEY, array, {"stage": "bench"})))

        def copy() -> None:
            copy_target.unlink(missing_ok=True)
            times["copy"].append(_timed(lambda: shutil.copyfile(source, copy_target)))

        def durable_copy() -> None:
            copy_target.unlink(missing_ok=True)

            def write() -> None:
                shutil.copyfile(source, copy_target)
                for path in (copy_target, root):  # the file, then its folder entry
                    fd = os.open(path, os.O_RDONLY)
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)

            times["copy+fsync"].append(_timed(write))

        def raw_write() -> None:
            raw_target.unlink(missing_ok=True)

            def write() -> None:
                with open(raw_target, "wb", buffering=0) as handle:
                    for start in range(0, len(buffer), 64 << 20):
                        handle.write(buffer[start : start + (64 << 20)])

            times["raw write"].append(_timed(write))

        for round_ in range(args.rounds):
            for step in (
                (put, copy, durable_copy, raw_write) if round_ % 2 == 0 else (copy, durable_copy, raw_write, put)
            ):
                step()
            times["load, cold memory"].append(_timed(lambda: cache.load(KEY)))
            _pretouch(array.nbytes)
            times["load"].append(_timed(lambda: cache.load(KEY)))
            _pretouch(array.nbytes)
            times["load, unverified"].append(_timed(lambda: cache.load(KEY, verify=False)))
            _pretouch(array.nbytes)
            times["np.fromfile"].append(_timed(lambda: np.fromfile(source, dtype=np.uint8)))
            times["verify"].append(_timed(lambda: cache.verify(KEY)))
        loaded = cache.load(KEY)
        assert loaded.shape == array.shape and np.array_equal(loaded[-1000:], array[-1000:])

    def rates(name: str) -> tuple[float, float]:
        return mb / min(times[name]), mb / statistics.median(times[name])

    copy_best, copy_median = rates("copy")
    durable_best, durable_median = rates("copy+fsync")
    print(
        f"{'':24s} {'best MiB/s':>10s} {'vs copy':>8s}   {'median':>8s} {'vs copy':>8s}   {'best, median vs copy+fsync':>26s}"
    )
    for name, label in [
        ("copy", "shutil.copyfile"),
        ("copy+fsync", "copyfile + fsync"),
        ("put", "OutputCache.put (fsync)"),
        ("load", "OutputCache.load"),
        ("load, cold memory", "  ... cold memory"),
        ("load, unverified", "  ... verify=False"),
        ("raw write", "(raw os.write)"),
        ("np.fromfile", "(np.fromfile)"),
        ("verify", "(OutputCache.verify)"),
    ]:
        best, median = rates(name)
        print(
            f"{label:24s} {best:10,.0f} {best / copy_best:8.0%}   {median:8,.0f} {median / copy_median:8.0%}"
            f"   {best / durable_best:12.0%} {median / durable_median:12.0%}"
        )
    for name, values in times.items():
        print(f"  {name:12s} s: " + " ".join(f"{v:.3f}" for v in values))
    for name, label in [("load", "verified load"), ("put", "put (fsync)")]:
        best, median = rates(name)
        verdict = ", ".join(
            f"{which} {'met' if ratio >= 0.7 else 'NOT met'} ({ratio:.0%})"
            for which, ratio in [("best", best / copy_best), ("median", median / copy_median)]
        )
        print(f"target {label} >= 70% of copy's throughput: {verdict}")
    print(
        f"put against a durable copy (copy+fsync): best {rates('put')[0] / durable_best:.0%}, median {rates('put')[1] / durable_median:.0%}"
    )
    return bench_stamps(10, args.dir)


def bench_stamps(n: int, where: Path | None, repeat: int = 200) -> int:
    """Time get() + check() of ``n`` cached outputs (a fully cached run's check), and a full
    checksum of the same entries, ``repeat`` times each; print ms per pass of all n."""
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(dir=where) as tmp:
        cache = OutputCache(Path(tmp) / "outputs")
        keys = []
        for i in range(n):
            key = f"mv1:{i:064x}"
            value = rng.random((1 + i % 8) << 17) if i % 2 == 0 else {"step": i, "weights": list(range(1000))}
            cache.put(key, value, {"stage": f"s{i}", "stdout": f"stage {i}\n" * 100, "stderr": b"warning\n"})
            keys.append(key)
        total = sum(e.size for e in cache.entries())

        def check_all() -> None:
            for key in keys:
                entry = cache.get(key)
                assert entry is not None and cache.check(entry) == []

        def checksum_all() -> None:
            for key in keys:
                assert cache.problems(key) == []

        results = {}
        for name, fn, rounds in [
            ("stamp check", check_all, repeat),
            ("full checksum", checksum_all, max(repeat // 10, 5)),
        ]:
            fn()  # warm: stamps written, pages cached
            times = []
            for _ in range(rounds):
                start = time.perf_counter()
                fn()
                times.append(time.perf_counter() - start)
            results[name] = (min(times), statistics.median(times))
    print(f"\n{n} cached outputs, {total / (1 << 20):.1f} MiB in all ({n} entries, {repeat} passes):")
    for name, (best, median) in results.items():
        print(
            f"  get + {name:14s} best {best * 1000:7.2f} ms   median {median * 1000:7.2f} ms   per output {median * 1000 / n:6.3f} ms"
        )
    verdict = "met" if results["stamp check"][1] < 0.005 * n / 10 else "NOT met"
    print(f"target: the stamp check of 10 outputs under 5 ms: {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
